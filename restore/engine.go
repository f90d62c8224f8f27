package restore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
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
	// Sleep waits before a retry after throttling; nil means a timer that
	// an interruption (ctx) cuts short.
	Sleep func(time.Duration)
	// Connections is how many folders are restored at once, each over its
	// own target connection opened with Open; 0 or 1 (or a nil Open)
	// means the one target given to Run. A folder's messages always go
	// over one connection, in archive order.
	Connections int
	Open        func(ctx context.Context) (Target, error)
}

// Progress is a running total of a restore, from the target's answers.
type Progress struct {
	Folder           string
	Done, Total      int   // messages handled (stored, present, rejected, unreadable or given up) / planned
	DoneBytes, Bytes int64 // message bytes handled / planned
	Stored, Present  int
	Rejected         int
	Failed           int // unreadable in the archive, or in a folder the target refused
}

// FolderPlan is what the restore does for one archived folder, and then
// what it did.
type FolderPlan struct {
	Source string `json:"source"`
	Target string `json:"target"`
	// StoredAs is where a local target keeps the folder when that is not
	// its name (a level too long for a file name is shortened).
	StoredAs string `json:"stored_as,omitempty"`
	How      string `json:"mapping"` // see FolderMapper.Map
	Create   bool   `json:"create"`  // the target folder does not exist yet
	Messages int    `json:"selected_messages"`
	Bytes    int64  `json:"selected_bytes"`
	Present  int    `json:"already_present"`
	Stored   int    `json:"appended"`
	// StoredBytes is the size of the messages the target accepted.
	StoredBytes int64        `json:"appended_bytes"`
	Rejected    []Rejection  `json:"rejected,omitempty"`
	Unreadable  []Unreadable `json:"unreadable,omitempty"`
	NotRestored int          `json:"not_restored,omitempty"` // neither stored nor present, rejected or unreadable: the folder failed or the run stopped
	Error       string       `json:"error,omitempty"`        // why the folder could not be restored
	msgs        []*formats.MessageState
	failed      bool
	done        int   // messages handled, for the progress line
	doneBytes   int64 // their bytes
}

// Rejection is a message the target refused.
type Rejection struct {
	Key    string `json:"key"`
	Reason string `json:"reason"`
}

// Unreadable is an archived message that could not be read (a damaged or
// missing segment or file): it was skipped.
type Unreadable struct {
	Key string `json:"key"`
	// Location is the segment and offset ("folders/X/….mbox.zst@1234")
	// or the Maildir file of the message, relative to the archive.
	Location string `json:"location"`
	Reason   string `json:"reason"`
}

// Report statuses.
const (
	StatusComplete = "complete" // every selected message is on the target
	StatusPartial  = "partial"  // some were rejected, unreadable or in a refused folder; the rest is there
	StatusStopped  = "stopped"  // the run stopped early (over quota, the target failed, interrupted)
	StatusDryRun   = "dry-run"
)

// Report is the outcome of a restore (or, with DryRun, its plan). Every
// count and byte total comes from the target's answers, never from the
// plan, except the selected_* totals that say what was asked for.
type Report struct {
	Snapshot        string        `json:"snapshot"`
	DryRun          bool          `json:"dry_run"`
	Status          string        `json:"status"`
	Error           string        `json:"error,omitempty"`
	Folders         []*FolderPlan `json:"folders"`
	Messages        int           `json:"selected_messages"`
	Bytes           int64         `json:"selected_bytes"`
	Stored          int           `json:"appended"`
	StoredBytes     int64         `json:"appended_bytes"`
	Present         int           `json:"already_present"`
	PresentBytes    int64         `json:"already_present_bytes"`
	Rejected        int           `json:"rejected"`
	Unreadable      int           `json:"unreadable"`
	NotRestored     int           `json:"not_restored"`
	FailedFolders   int           `json:"failed_folders"`
	RenamedFolders  int           `json:"renamed_folders"`
	DroppedKeywords int           `json:"dropped_keywords"`
	Elapsed         time.Duration `json:"elapsed_ns"`
}

// ErrPartial is wrapped when some messages were not restored (rejected by
// the target, unreadable in the archive, in a folder the target refused)
// while the others were.
var ErrPartial = errors.New("restore: some messages were not restored")

// KeywordDropper is implemented by targets that drop keywords they cannot
// store, to report how many (counted for stored messages only).
type KeywordDropper interface{ DroppedKeywords() int }

// maxWarnings bounds the per-message warnings logged; the report lists
// every message.
const maxWarnings = 20

// Run restores the selected messages into the target. It returns the
// report with what was done even when it fails.
func Run(ctx context.Context, a *formats.Archive, sel *Selected, t Target, opts Options) (*Report, error) {
	start := time.Now()
	if opts.Window <= 0 {
		opts.Window = 16
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
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
	namer, _ := t.(FolderNamer)
	rep := &Report{Snapshot: sel.Snapshot.ID, DryRun: opts.DryRun}
	for _, sf := range sel.Folders {
		target, how := mapper.Map(sf.Folder)
		fp := &FolderPlan{Source: sf.Folder.Name, Target: target, How: how, Create: !exists[target],
			Messages: len(sf.Messages), Bytes: sf.Bytes, msgs: sf.Messages}
		if namer != nil {
			if as, changed := namer.StoredAs(target); changed {
				fp.StoredAs = as
				if exists[as] { // listed under the name it is kept as
					fp.Create, exists[target] = false, true
				}
				rep.RenamedFolders++
				opts.Log.Warn("folder name too long for the target: kept under a shortened name", "folder", target, "stored_as", as)
			}
		}
		rep.Folders = append(rep.Folders, fp)
		rep.Messages += fp.Messages
		rep.Bytes += fp.Bytes
	}
	r := &runner{ctx: ctx, a: a, st: sel.State, t: t, opts: &opts, rep: rep, exists: exists}
	r.run()
	rep.Elapsed = time.Since(start)
	rep.finish()
	err = r.err
	switch {
	case opts.DryRun && err == nil:
		rep.Status = StatusDryRun
		return rep, nil
	case err != nil && ctx.Err() != nil:
		err = ctx.Err()
	case errors.Is(err, ErrOverQuota):
		said := strings.TrimPrefix(err.Error(), ErrOverQuota.Error()+": ")
		err = fmt.Errorf("%w after %d messages were restored in this run; make room and run the same command again to resume (the target said: %s)",
			ErrOverQuota, rep.Stored, said)
	}
	if err != nil {
		rep.Status, rep.Error = StatusStopped, err.Error()
		return rep, err
	}
	if rep.Rejected+rep.Unreadable+rep.NotRestored > 0 || rep.FailedFolders > 0 {
		rep.Status = StatusPartial
		var what []string
		if rep.Unreadable > 0 {
			what = append(what, fmt.Sprintf("%d unreadable in the archive", rep.Unreadable))
		}
		if rep.Rejected > 0 {
			what = append(what, fmt.Sprintf("%d rejected by the target", rep.Rejected))
		}
		if rep.FailedFolders > 0 {
			what = append(what, fmt.Sprintf("%d folders the target refused (%d messages)", rep.FailedFolders, rep.NotRestored))
		}
		return rep, fmt.Errorf("%w: %s (see the warnings or --report)", ErrPartial, strings.Join(what, ", "))
	}
	rep.Status = StatusComplete
	return rep, nil
}

// finish counts, per folder and in all, the selected messages that were
// neither stored nor found present nor rejected nor unreadable, and the
// folders that failed.
func (rep *Report) finish() {
	rep.NotRestored, rep.FailedFolders = 0, 0
	for _, fp := range rep.Folders {
		if fp.Error != "" {
			rep.FailedFolders++
		}
		if rep.DryRun {
			continue
		}
		fp.NotRestored = fp.Messages - fp.Present - fp.Stored - len(fp.Rejected) - len(fp.Unreadable)
		rep.NotRestored += fp.NotRestored
	}
}

type runner struct {
	ctx    context.Context
	a      *formats.Archive
	st     *formats.State
	t      Target
	opts   *Options
	rep    *Report
	exists map[string]bool
	// stop is set on the first error that ends the run: workers then
	// send nothing new and wait for the answers to what is in flight, so
	// that everything the target accepted is counted.
	stop atomic.Bool
	// mu guards err, warned, rep's totals, the plans' results and prog
	// while workers run.
	mu     sync.Mutex
	err    error
	warned int
	prog   Progress
}

// worker restores folders over one target connection.
type worker struct {
	t      Target
	reader *formats.MessageReader
	buf    bytes.Buffer // a checked message, for a target that is not atomic
}

// checkedInMemory is the largest message read into memory to be checked
// before it goes to a target that is not atomic; a larger one is read
// twice (checked, then sent).
const checkedInMemory = 1 << 20

// inflight is an append waiting for the target's answer.
type inflight struct {
	fp *FolderPlan
	m  *formats.MessageState
	p  Pending
}

// fail records the error that ends the run (the first one wins) and
// stops the workers.
func (r *runner) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
	r.stop.Store(true)
}

func (r *runner) run() {
	for _, fp := range r.rep.Folders {
		r.prog.Total += fp.Messages
		r.prog.Bytes += fp.Bytes
	}
	if !r.opts.DryRun {
		if p, ok := r.t.(Preparer); ok {
			if err := p.Prepare(r.ctx); err != nil {
				r.fail(fmt.Errorf("prepare the target: %w", err))
				return
			}
		}
	}
	// Create the folders first: servers refuse an APPEND to a missing
	// folder before its literal, which costs the connection.
	for _, fp := range r.rep.Folders {
		if fp.Create && !r.opts.DryRun {
			if err := r.t.CreateFolder(r.ctx, fp.Target); err != nil {
				if errors.Is(err, ErrFolderRefused) && r.ctx.Err() == nil {
					r.failFolder(fp, fmt.Errorf("create folder %q: %w", fp.Target, err))
					continue
				}
				r.fail(fmt.Errorf("create folder %q: %w", fp.Target, err))
				return
			}
			r.exists[fp.Target] = true
		}
	}
	r.folders()
}

// folders restores the folders over up to Options.Connections
// connections, biggest first. The first error that ends the run stops
// every worker after the answers to its appends in flight.
func (r *runner) folders() {
	todo := make([]*FolderPlan, len(r.rep.Folders))
	copy(todo, r.rep.Folders)
	sort.SliceStable(todo, func(i, j int) bool { return todo[i].Bytes > todo[j].Bytes })
	n := 1
	if r.opts.Open != nil && !r.opts.DryRun {
		n = max(1, min(r.opts.Connections, len(todo)))
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	next := func() *FolderPlan {
		mu.Lock()
		defer mu.Unlock()
		if len(todo) == 0 || r.stop.Load() {
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
				t, err := r.opts.Open(r.ctx)
				if err != nil {
					if r.ctx.Err() == nil && !r.stop.Load() {
						r.opts.Log.Warn("could not open another connection to the target; going on with fewer", "connection", i+1, "err", err)
					}
					return
				}
				defer t.Close()
				if p, ok := t.(Preparer); ok {
					if err := p.Prepare(r.ctx); err != nil {
						r.opts.Log.Warn("could not prepare another connection to the target; going on with fewer", "connection", i+1, "err", err)
						return
					}
				}
				w.t = t
			}
			for fp := next(); fp != nil; fp = next() {
				r.folder(w, fp)
			}
		}()
	}
	wg.Wait()
	for _, w := range workers {
		if w.t == nil {
			continue
		}
		if d, ok := w.t.(KeywordDropper); ok {
			r.rep.DroppedKeywords += d.DroppedKeywords()
		}
	}
}

func toMessage(m *formats.MessageState) *Message {
	return &Message{Flags: m.Flags, InternalDate: m.InternalDate, Size: m.Size, SHA256: m.SHA256, MessageID: m.MessageID}
}

// folder restores one folder over w's connection.
func (r *runner) folder(w *worker, fp *FolderPlan) {
	defer r.giveUp(fp)
	if r.folderFailed(fp) {
		return
	}
	r.mu.Lock()
	r.prog.Folder = fp.Target
	r.mu.Unlock()
	idx := NewIndex()
	if r.exists[fp.Target] {
		var err error
		if idx, err = w.t.Index(r.ctx, fp.Target); err != nil {
			if errors.Is(err, ErrFolderRefused) && r.ctx.Err() == nil {
				r.failFolder(fp, fmt.Errorf("read target folder %q: %w", fp.Target, err))
				return
			}
			r.fail(fmt.Errorf("read target folder %q: %w", fp.Target, err))
			return
		}
	}
	var queue []inflight
	for _, m := range fp.msgs {
		msg := toMessage(m)
		if idx.Take(msg) {
			r.present(fp, m)
			continue
		}
		if r.opts.DryRun {
			continue
		}
		if r.stop.Load() || r.folderFailed(fp) {
			break
		}
		if err := r.ctx.Err(); err != nil {
			r.fail(err)
			break
		}
		p := r.append(w, fp, m)
		if p == nil {
			continue
		}
		queue = append(queue, inflight{fp, m, p})
		if len(queue) >= r.opts.Window {
			r.settle(w, queue[0])
			queue = queue[1:]
		}
	}
	// Even when the run is stopping: what the target accepted counts.
	for _, f := range queue {
		r.settle(w, f)
	}
}

// append opens the archived message and hands it to the target. It
// returns nil when nothing is in flight: the message was unreadable
// (recorded) or the target failed (the run stops).
func (r *runner) append(w *worker, fp *FolderPlan, m *formats.MessageState) Pending {
	body, err := w.reader.Open(&m.Message)
	if err == nil {
		if a, ok := w.t.(AtomicAppender); !ok || !a.AppendsAtomically() {
			body, err = w.checked(m, body)
		}
	}
	if err != nil {
		r.unreadable(fp, m, err)
		return nil
	}
	v := newVerifier(body, m.Size, m.SHA256)
	p, err := w.t.Append(r.ctx, fp.Target, toMessage(m), v)
	if v.err != nil {
		// The archive could not give the message: the target stored
		// nothing of it, whatever it answered.
		r.unreadable(fp, m, v.err)
		return nil
	}
	if err != nil {
		if isAnswer(err) {
			return Done{Err: err}
		}
		r.fail(fmt.Errorf("append to %q: %w", fp.Target, err))
		return nil
	}
	return p
}

// checked reads all of a message and checks its size and SHA-256 before
// anything of it goes to the target. It returns a reader of the checked
// bytes: held in memory, or, for a large message, the message opened
// again.
func (w *worker) checked(m *formats.MessageState, body io.Reader) (io.Reader, error) {
	v := newVerifier(body, m.Size, m.SHA256)
	if m.Size <= checkedInMemory {
		w.buf.Reset()
		if _, err := w.buf.ReadFrom(v); err != nil {
			return nil, err
		}
		return bytes.NewReader(w.buf.Bytes()), nil
	}
	if _, err := io.Copy(io.Discard, v); err != nil {
		return nil, err
	}
	return w.reader.Open(&m.Message)
}

func isAnswer(err error) bool {
	return errors.Is(err, ErrOverQuota) || errors.Is(err, ErrTryCreate) || errors.Is(err, ErrRejected) ||
		errors.Is(err, ErrThrottled) || errors.Is(err, ErrConnectionLost)
}

// settle waits for the target's answer to one append and acts on it:
// counts it, retries it (a lost connection, TRYCREATE, throttling), or
// records why it was not stored. While the run is stopping nothing is
// sent again.
func (r *runner) settle(w *worker, f inflight) {
	err := f.p.Wait()
	created, throttled, lost := false, 0, false
	for err != nil {
		if cerr := r.ctx.Err(); cerr != nil {
			r.fail(cerr) // interrupted: the answer is unknown
			return
		}
		switch {
		case errors.Is(err, ErrConnectionLost) && !lost:
			if r.stop.Load() {
				return // not checked: the next run finds it, or appends it
			}
			if throttledLoss(err) {
				// The server closed the connection asking to slow down.
				d := throttleDelay(err, 1)
				r.opts.Log.Warn("target asks to slow down; waiting", "seconds", d.Seconds())
				if werr := r.wait(d); werr != nil {
					r.fail(werr)
					return
				}
			}
			// Stored or not? Ask the target before appending again.
			lost = true
			idx, ierr := w.t.Index(r.ctx, f.fp.Target)
			if ierr != nil {
				r.fail(fmt.Errorf("read target folder %q again: %w", f.fp.Target, ierr))
				return
			}
			if idx.Has(toMessage(f.m)) {
				err = nil
				continue
			}
		case errors.Is(err, ErrOverQuota):
			r.fail(err)
			return
		case errors.Is(err, ErrTryCreate) && !created:
			created = true
			if r.stop.Load() {
				return
			}
			if cerr := w.t.CreateFolder(r.ctx, f.fp.Target); cerr != nil {
				if errors.Is(cerr, ErrFolderRefused) {
					r.failFolder(f.fp, fmt.Errorf("create folder %q: %w", f.fp.Target, cerr))
					return
				}
				r.fail(fmt.Errorf("create folder %q: %w", f.fp.Target, cerr))
				return
			}
		case errors.Is(err, ErrThrottled) && throttled < 5:
			throttled++
			d := throttleDelay(err, throttled)
			r.opts.Log.Warn("target asks to slow down; waiting", "seconds", d.Seconds())
			if werr := r.wait(d); werr != nil {
				r.fail(werr)
				return
			}
		case errors.Is(err, ErrRejected) || errors.Is(err, ErrTryCreate) || errors.Is(err, ErrThrottled):
			r.reject(f, err)
			return
		default:
			r.fail(fmt.Errorf("append to %q: %w", f.fp.Target, err))
			return
		}
		if r.stop.Load() || r.folderFailed(f.fp) {
			return
		}
		p := r.append(w, f.fp, f.m)
		if p == nil {
			return
		}
		err = p.Wait()
	}
	r.mu.Lock()
	f.fp.Stored++
	f.fp.StoredBytes += f.m.Size
	r.rep.Stored++
	r.rep.StoredBytes += f.m.Size
	r.mu.Unlock()
	r.advance(f.fp, f.m, &r.prog.Stored)
	if r.opts.Hook != nil {
		r.opts.Hook("message-restored")
	}
}

func (r *runner) present(fp *FolderPlan, m *formats.MessageState) {
	r.mu.Lock()
	fp.Present++
	r.rep.Present++
	r.rep.PresentBytes += m.Size
	r.mu.Unlock()
	r.advance(fp, m, &r.prog.Present)
}

func (r *runner) reject(f inflight, err error) {
	r.mu.Lock()
	f.fp.Rejected = append(f.fp.Rejected, Rejection{Key: f.m.Key, Reason: err.Error()})
	r.rep.Rejected++
	warn := r.warnOnce()
	r.mu.Unlock()
	if warn {
		r.opts.Log.Warn("message rejected by the target", "folder", f.fp.Target, "key", f.m.Key, "err", err)
	}
	r.advance(f.fp, f.m, &r.prog.Rejected)
}

// location names where an archived message is kept.
func location(m *formats.MessageState) string {
	if formats.ValidMaildirPath(m.Seg) {
		return m.Seg
	}
	return fmt.Sprintf("%s@%d", m.Seg, m.Off)
}

func (r *runner) unreadable(fp *FolderPlan, m *formats.MessageState, err error) {
	u := Unreadable{Key: m.Key, Location: location(m), Reason: err.Error()}
	r.mu.Lock()
	fp.Unreadable = append(fp.Unreadable, u)
	r.rep.Unreadable++
	warn := r.warnOnce()
	r.mu.Unlock()
	if warn {
		r.opts.Log.Warn("archived message unreadable; skipped", "folder", fp.Source, "key", u.Key, "location", u.Location, "err", err)
	}
	r.advance(fp, m, &r.prog.Failed)
}

// warnOnce reports whether one more per-message warning may be logged
// (r.mu held); the one after the last says that the report has the rest.
func (r *runner) warnOnce() bool {
	r.warned++
	if r.warned == maxWarnings+1 {
		r.opts.Log.Warn("more messages were not restored; --report lists every one")
	}
	return r.warned <= maxWarnings
}

func (r *runner) folderFailed(fp *FolderPlan) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fp.failed
}

// failFolder gives up one folder the target refused; the others go on.
// Its messages not yet handled count as not restored.
func (r *runner) failFolder(fp *FolderPlan, err error) {
	r.mu.Lock()
	if fp.failed {
		r.mu.Unlock()
		return
	}
	fp.failed = true
	fp.Error = err.Error()
	r.mu.Unlock()
	r.opts.Log.Warn("folder not restored: the target refused it", "folder", fp.Target, "err", err)
}

// giveUp counts the messages of a folder the target refused that were
// not handled as failed for the progress line, so that it ends at the
// total.
func (r *runner) giveUp(fp *FolderPlan) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !fp.failed || fp.done == fp.Messages {
		return
	}
	r.prog.Failed += fp.Messages - fp.done
	r.prog.Done += fp.Messages - fp.done
	r.prog.DoneBytes += fp.Bytes - fp.doneBytes
	fp.done, fp.doneBytes = fp.Messages, fp.Bytes
	if r.opts.Progress != nil {
		r.opts.Progress(r.prog)
	}
}

func (r *runner) advance(fp *FolderPlan, m *formats.MessageState, counter *int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	fp.done++
	fp.doneBytes += m.Size
	*counter++
	r.prog.Done++
	r.prog.DoneBytes += m.Size
	if r.opts.Progress != nil {
		r.opts.Progress(r.prog)
	}
}
