package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// Options configure a restore run.
type Options struct {
	Map    MapOptions // Target is filled in by Run from the target's folders
	DryRun bool       // plan only: read the target, write nothing
	// Window is how many appends may be in flight at once (pipelining).
	Window int
	// Log, if set, receives progress and warnings.
	Log *slog.Logger
	// Progress, if set, is called after each message with running totals.
	Progress func(p Progress)
	// Hook is called after each stored message ("message-restored"); crash
	// tests use it.
	Hook func(point string)
	// Sleep waits before a retry after throttling; nil means time.Sleep.
	Sleep func(time.Duration)
	// Connections is how many folders are restored at once, each over its
	// own target connection opened with Open; 0 or 1 (or a nil Open)
	// means the one target given to Run. A folder's messages always go
	// over one connection, in archive order.
	Connections int
	Open        func(ctx context.Context) (Target, error)
}

// Progress is a running total of a restore.
type Progress struct {
	Folder           string
	Done, Total      int   // messages handled (stored, present or rejected) / planned
	DoneBytes, Bytes int64 // message bytes handled / planned
	Stored, Present  int
	Rejected         int
}

// FolderPlan is what the restore does for one archived folder.
type FolderPlan struct {
	Source   string      `json:"source"`
	Target   string      `json:"target"`
	How      string      `json:"mapping"` // see FolderMapper.Map
	Create   bool        `json:"create"`  // the target folder does not exist yet
	Messages int         `json:"messages"`
	Bytes    int64       `json:"bytes"`
	Present  int         `json:"already_present"`
	Stored   int         `json:"appended"`
	Rejected []Rejection `json:"rejected,omitempty"`
	msgs     []*formats.MessageState
}

// Rejection is a message the target refused.
type Rejection struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Report is the outcome of a restore (or, with DryRun, its plan).
type Report struct {
	Snapshot        string        `json:"snapshot"`
	DryRun          bool          `json:"dry_run"`
	Folders         []*FolderPlan `json:"folders"`
	Messages        int           `json:"messages"`
	Bytes           int64         `json:"bytes"`
	Stored          int           `json:"appended"`
	Present         int           `json:"already_present"`
	Rejected        int           `json:"rejected"`
	DroppedKeywords int           `json:"dropped_keywords,omitempty"`
	Elapsed         time.Duration `json:"elapsed_ns"`
}

// ErrPartial is wrapped when some messages were rejected by the target
// and skipped.
var ErrPartial = errors.New("restore: some messages were not restored")

// KeywordDropper is implemented by targets that drop keywords they cannot
// store, to report how many.
type KeywordDropper interface{ DroppedKeywords() int }

// Run restores the selected messages into the target.
func Run(ctx context.Context, a *formats.Archive, sel *Selected, t Target, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Window <= 0 {
		opts.Window = 16
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Sleep == nil {
		opts.Sleep = time.Sleep
	}
	existing, err := t.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("list target folders: %w", err)
	}
	opts.Map.TargetDelim = t.Delimiter()
	opts.Map.Target = existing
	if opts.Map.Archived == nil {
		for _, name := range sel.State.FolderNames() {
			opts.Map.Archived = append(opts.Map.Archived, sel.State.Folders[name].Folder)
		}
	}
	mapper := NewFolderMapper(opts.Map)
	exists := map[string]bool{}
	for _, f := range existing {
		exists[f.Name] = true
	}
	rep := &Report{Snapshot: sel.Snapshot.ID, DryRun: opts.DryRun}
	for _, sf := range sel.Folders {
		target, how := mapper.Map(sf.Folder)
		fp := &FolderPlan{Source: sf.Folder.Name, Target: target, How: how, Create: !exists[target],
			Messages: len(sf.Messages), Bytes: sf.Bytes, msgs: sf.Messages}
		rep.Folders = append(rep.Folders, fp)
		rep.Messages += fp.Messages
		rep.Bytes += fp.Bytes
	}
	r := &runner{ctx: ctx, a: a, st: sel.State, t: t, opts: &opts, rep: rep, exists: exists}
	err = r.run()
	rep.Elapsed = time.Since(start)
	if err != nil {
		return rep, err
	}
	if rep.Rejected > 0 {
		return rep, fmt.Errorf("%w: %d rejected by the target (see the report)", ErrPartial, rep.Rejected)
	}
	return rep, nil
}

type runner struct {
	ctx    context.Context
	a      *formats.Archive
	st     *formats.State
	t      Target
	opts   *Options
	rep    *Report
	exists map[string]bool
	// mu guards rep's totals and prog while workers run.
	mu   sync.Mutex
	prog Progress
}

// worker restores folders over one target connection.
type worker struct {
	t      Target
	reader *formats.MessageReader
}

// inflight is an append waiting for the target's answer.
type inflight struct {
	fp *FolderPlan
	m  *formats.MessageState
	p  Pending
}

func (r *runner) run() error {
	for _, fp := range r.rep.Folders {
		r.prog.Total += fp.Messages
		r.prog.Bytes += fp.Bytes
	}
	// Create the folders first: servers refuse an APPEND to a missing
	// folder before its literal, which costs the connection.
	for _, fp := range r.rep.Folders {
		if fp.Create && !r.opts.DryRun {
			if err := r.t.CreateFolder(r.ctx, fp.Target); err != nil {
				return fmt.Errorf("create folder %q: %w", fp.Target, err)
			}
			r.exists[fp.Target] = true
		}
	}
	return r.folders()
}

// folders restores the folders over up to Options.Connections
// connections, biggest first; the first error stops the others.
func (r *runner) folders() error {
	todo := make([]*FolderPlan, len(r.rep.Folders))
	copy(todo, r.rep.Folders)
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Bytes > todo[j].Bytes })
	n := 1
	if r.opts.Open != nil && !r.opts.DryRun {
		n = max(1, min(r.opts.Connections, len(todo)))
	}
	ctx, cancel := context.WithCancel(r.ctx)
	defer cancel()
	parent := r.ctx
	r.ctx = ctx
	defer func() { r.ctx = parent }()
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	next := func() *FolderPlan {
		mu.Lock()
		defer mu.Unlock()
		if len(todo) == 0 || firstErr != nil {
			return nil
		}
		fp := todo[0]
		todo = todo[1:]
		return fp
	}
	workers := make([]*worker, n)
	for i := range workers {
		w := &worker{reader: r.a.NewMessageReader(r.st)}
		workers[i] = w
		if i == 0 {
			w.t = r.t
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer w.reader.Close()
			if w.t == nil {
				t, err := r.opts.Open(ctx)
				if err != nil {
					if ctx.Err() == nil { // not merely stopped by another connection's error
						r.opts.Log.Warn("could not open another connection to the target; going on with fewer", "connection", i+1, "err", err)
					}
					return
				}
				w.t = t
				defer t.Close()
			}
			for fp := next(); fp != nil; fp = next() {
				if err := r.folder(w, fp); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	for _, w := range workers {
		if d, ok := w.t.(KeywordDropper); ok && w.t != nil {
			r.rep.DroppedKeywords += d.DroppedKeywords()
		}
	}
	if firstErr != nil && parent.Err() != nil {
		return parent.Err()
	}
	return firstErr
}

func toMessage(m *formats.MessageState) *Message {
	return &Message{Flags: m.Flags, InternalDate: m.InternalDate, Size: m.Size, SHA256: m.SHA256, MessageID: m.MessageID}
}

func (r *runner) folder(w *worker, fp *FolderPlan) error {
	r.mu.Lock()
	r.prog.Folder = fp.Target
	r.mu.Unlock()
	idx := NewIndex()
	if r.exists[fp.Target] {
		var err error
		if idx, err = w.t.Index(r.ctx, fp.Target); err != nil {
			return fmt.Errorf("read target folder %q: %w", fp.Target, err)
		}
	}
	var queue []inflight
	wait := func(f inflight) error {
		err := f.p.Wait()
		return r.answer(w, f, err)
	}
	for _, m := range fp.msgs {
		msg := toMessage(m)
		if idx.Take(msg) {
			fp.Present++
			r.mu.Lock()
			r.rep.Present++
			r.mu.Unlock()
			r.advance(m, &r.prog.Present)
			continue
		}
		if r.opts.DryRun {
			continue
		}
		if err := r.ctx.Err(); err != nil {
			return err
		}
		p, err := r.append(w, fp, m)
		if err != nil {
			return err
		}
		queue = append(queue, inflight{fp, m, p})
		if len(queue) >= r.opts.Window {
			if err := wait(queue[0]); err != nil {
				return err
			}
			queue = queue[1:]
		}
	}
	for _, f := range queue {
		if err := wait(f); err != nil {
			return err
		}
	}
	return nil
}

// append opens the archived message and hands it to the target.
func (r *runner) append(w *worker, fp *FolderPlan, m *formats.MessageState) (Pending, error) {
	body, err := w.reader.Open(&m.Message)
	if err != nil {
		return nil, fmt.Errorf("read archived message %s: %w", m.Key, err)
	}
	p, err := w.t.Append(r.ctx, fp.Target, toMessage(m), body)
	if err != nil {
		if isAnswer(err) {
			return Done{Err: err}, nil
		}
		return nil, fmt.Errorf("append to %q: %w", fp.Target, err)
	}
	return p, nil
}

func isAnswer(err error) bool {
	return errors.Is(err, ErrOverQuota) || errors.Is(err, ErrTryCreate) || errors.Is(err, ErrRejected) ||
		errors.Is(err, ErrThrottled) || errors.Is(err, ErrConnectionLost)
}

// answer handles the target's answer to one append.
func (r *runner) answer(w *worker, f inflight, err error) error {
	created, throttled, lost := false, 0, false
	for err != nil {
		switch {
		case errors.Is(err, ErrConnectionLost) && !lost:
			// Stored or not? Ask the target before appending again.
			lost = true
			idx, ierr := w.t.Index(r.ctx, f.fp.Target)
			if ierr != nil {
				return fmt.Errorf("read target folder %q again: %w", f.fp.Target, ierr)
			}
			if idx.Has(toMessage(f.m)) {
				err = nil
				continue
			}
		case errors.Is(err, ErrOverQuota):
			r.mu.Lock()
			stored := r.rep.Stored
			r.mu.Unlock()
			return fmt.Errorf("%w after %d messages were restored in this run; make room and run the same command again to resume: %v",
				ErrOverQuota, stored, err)
		case errors.Is(err, ErrTryCreate) && !created:
			created = true
			if cerr := w.t.CreateFolder(r.ctx, f.fp.Target); cerr != nil {
				return fmt.Errorf("create folder %q: %w", f.fp.Target, cerr)
			}
		case errors.Is(err, ErrThrottled) && throttled < 5:
			throttled++
			d := time.Duration(1<<throttled) * time.Second
			r.opts.Log.Warn("target asks to slow down; waiting", "seconds", d.Seconds())
			r.opts.Sleep(d)
		case errors.Is(err, ErrRejected) || errors.Is(err, ErrTryCreate) || errors.Is(err, ErrThrottled):
			f.fp.Rejected = append(f.fp.Rejected, Rejection{Key: f.m.Key, Reason: err.Error()})
			r.mu.Lock()
			r.rep.Rejected++
			r.mu.Unlock()
			r.opts.Log.Warn("message rejected by the target", "folder", f.fp.Target, "key", f.m.Key, "err", err)
			r.advance(f.m, &r.prog.Rejected)
			return nil
		default:
			return fmt.Errorf("append to %q: %w", f.fp.Target, err)
		}
		p, aerr := r.append(w, f.fp, f.m)
		if aerr != nil {
			return aerr
		}
		err = p.Wait()
	}
	f.fp.Stored++
	r.mu.Lock()
	r.rep.Stored++
	r.mu.Unlock()
	r.advance(f.m, &r.prog.Stored)
	if r.opts.Hook != nil {
		r.opts.Hook("message-restored")
	}
	return nil
}

func (r *runner) advance(m *formats.MessageState, counter *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	*counter++
	r.prog.Done++
	r.prog.DoneBytes += m.Size
	if r.opts.Progress != nil {
		r.opts.Progress(r.prog)
	}
}
