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
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailvault/mailvault/formats"
)

// Options configure a restore run.
type Options struct {
	// Map configures the folder mapping. Target, TargetDelim and
	// TargetPrefix are filled in by Run from the target; Source, when
	// zero, from the archive (ArchiveNamespace).
	Map    MapOptions
	DryRun bool // plan only: read the target, write nothing
	// Window is how many appends may be in flight at once (pipelining).
	Window int
	// Log, if set, receives progress and warnings.
	Log *slog.Logger
	// Progress, if set, is called with running totals as messages are
	// handled, from one goroutine of its own (never while the engine
	// holds a lock), and once more with the final totals before Run
	// returns. Totals that arrive while it runs are merged: it may not
	// see every step.
	Progress func(p Progress)
	// Hook is called after each stored message ("message-restored"); crash
	// tests use it.
	Hook func(point string)
	// Sleep waits before a retry after throttling; it returns early with
	// ctx's error when the run stops. nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
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
	// SpecialUse is the attribute the folder is created with (the target
	// offers CREATE-SPECIAL-USE and has no folder for the role).
	SpecialUse string `json:"create_special_use,omitempty"`
	// Structure: the archived folder holds no messages, only folders
	// (\Noselect); it is created as structure where the target allows.
	Structure bool  `json:"structure,omitempty"`
	Messages  int   `json:"selected_messages"`
	Bytes     int64 `json:"selected_bytes"`
	Present   int   `json:"already_present"`
	Stored    int   `json:"appended"` // the target acknowledged them
	// StoredBytes is the size of the messages the target acknowledged.
	StoredBytes int64 `json:"appended_bytes"`
	// Missing counts appends the target acknowledged that the folder does
	// not hold afterwards (see AppendChecker): not restored.
	Missing     int          `json:"missing,omitempty"`
	Rejected    []Rejection  `json:"rejected,omitempty"`
	Unreadable  []Unreadable `json:"unreadable,omitempty"`
	NotRestored int          `json:"not_restored,omitempty"` // neither stored nor present, rejected or unreadable: the folder failed or the run stopped
	// ByLabels counts the messages of an All Mail (\All) folder left to
	// the labels on a target whose folders are labels (LabelTarget): the
	// target shows them there once a label holds them.
	ByLabels  int             `json:"shown_by_labels,omitempty"`
	Error     string          `json:"error,omitempty"` // why the folder could not be restored, or not all of it
	sf        *SelectedFolder // its messages (nil for structure)
	role      string          // the archived folder's special use
	toLabels  bool            // messages a label restores are left to it (leaveToLabels)
	failed    bool
	done      int   // messages handled, for the progress line
	doneBytes int64 // their bytes
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
	StatusPartial  = "partial"  // some were rejected, unreadable, missing or in a refused folder; the rest is there
	StatusStopped  = "stopped"  // the run stopped early (over quota, the target failed, interrupted)
	StatusDryRun   = "dry-run"
)

// Report is the outcome of a restore (or, with DryRun, its plan). Every
// count and byte total comes from the target's answers, never from the
// plan, except the selected_* totals that say what was asked for.
type Report struct {
	Snapshot string `json:"snapshot"`
	DryRun   bool   `json:"dry_run"`
	Status   string `json:"status"`
	Error    string `json:"error,omitempty"`
	// ArchiveNamespace is the namespace of the archived names, and
	// ArchiveNamespaceFrom how it was learned (NamespaceRecorded, …);
	// TargetNamespace the target's.
	ArchiveNamespace     Namespace     `json:"archive_namespace"`
	ArchiveNamespaceFrom string        `json:"archive_namespace_from"`
	TargetNamespace      Namespace     `json:"target_namespace"`
	Folders              []*FolderPlan `json:"folders"`
	Messages             int           `json:"selected_messages"`
	Bytes                int64         `json:"selected_bytes"`
	Stored               int           `json:"appended"`
	StoredBytes          int64         `json:"appended_bytes"`
	Present              int           `json:"already_present"`
	PresentBytes         int64         `json:"already_present_bytes"`
	Missing              int           `json:"missing"`
	Rejected             int           `json:"rejected"`
	Unreadable           int           `json:"unreadable"`
	NotRestored          int           `json:"not_restored"`
	ByLabels             int           `json:"shown_by_labels,omitempty"` // see FolderPlan.ByLabels
	FailedFolders        int           `json:"failed_folders"`
	RenamedFolders       int           `json:"renamed_folders"`
	DroppedKeywords      int           `json:"dropped_keywords"`
	Elapsed              time.Duration `json:"elapsed_ns"`
}

// ErrPartial is wrapped when some messages were not restored (rejected by
// the target, unreadable in the archive, missing after the target
// acknowledged them, in a folder the target refused) while the others
// were.
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
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	existing, err := t.Folders(ctx)
	if err != nil {
		return nil, fmt.Errorf("list target folders: %w", err)
	}
	rep := &Report{Snapshot: sel.Snapshot.ID, DryRun: opts.DryRun}
	rep.TargetNamespace = Namespace{Delimiter: t.Delimiter()}
	if n, ok := t.(Namespacer); ok {
		rep.TargetNamespace = n.Namespace()
	}
	opts.Map.TargetDelim, opts.Map.TargetPrefix = rep.TargetNamespace.Delimiter, rep.TargetNamespace.Prefix
	opts.Map.Target = existing
	if opts.Map.Source == (Namespace{}) {
		opts.Map.Source, rep.ArchiveNamespaceFrom = ArchiveNamespace(sel.Snapshot, sel.Archived)
	} else {
		rep.ArchiveNamespaceFrom = NamespaceGiven
	}
	rep.ArchiveNamespace = opts.Map.Source
	if opts.Map.Archived == nil {
		opts.Map.Archived = sel.Archived
	}
	mapper := NewFolderMapper(opts.Map)
	exists := map[string]bool{}    // folders that can hold messages
	structure := map[string]bool{} // and those that hold only folders
	hasRole := map[string]bool{}
	for _, f := range existing {
		if f.NoSelect {
			structure[f.Name] = true
			continue
		}
		exists[f.Name] = true
		for _, r := range roles {
			if targetHasRole(f.SpecialUse, r) {
				hasRole[r] = true
			}
		}
	}
	namer, _ := t.(FolderNamer)
	suc, _ := t.(SpecialUseCreator)
	canUse := suc != nil && suc.CanCreateSpecialUse()
	for _, sf := range sel.Folders {
		target, how := mapper.Map(sf.Folder)
		fp := &FolderPlan{Source: sf.Folder.Name, Target: target, How: how, Create: !exists[target],
			Messages: sf.Messages, Bytes: sf.Bytes, sf: sf, role: sf.Folder.SpecialUse}
		if role := mapper.Role(sf.Folder); fp.Create && canUse && role != "" && !hasRole[role] && how == MapSame {
			fp.SpecialUse, hasRole[role] = role, true
		}
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
	if _, ok := t.(StructureCreator); ok {
		rep.Folders = append(rep.Folders, structurePlans(mapper, sel.Structure, rep.Folders, exists, structure, rep.TargetNamespace)...)
	}
	warnShared(rep.Folders, opts.Log)
	r := &runner{ctx: ctx, a: a, sel: sel, t: t, opts: &opts, rep: rep, exists: exists}
	defer r.closeLabelSets()
	if err := r.leaveToLabels(); err != nil {
		return nil, err
	}
	r.run()
	if err := r.shownByLabels(); err != nil && r.err == nil {
		r.err = err
	}
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
			ErrOverQuota, rep.Stored-rep.Missing, said)
	}
	if err != nil {
		rep.Status, rep.Error = StatusStopped, err.Error()
		return rep, err
	}
	if rep.Rejected+rep.Unreadable+rep.NotRestored+rep.Missing > 0 || rep.FailedFolders > 0 {
		rep.Status = StatusPartial
		var what []string
		if rep.Unreadable > 0 {
			what = append(what, fmt.Sprintf("%d unreadable in the archive", rep.Unreadable))
		}
		if rep.Rejected > 0 {
			what = append(what, fmt.Sprintf("%d rejected by the target", rep.Rejected))
		}
		if rep.Missing > 0 {
			what = append(what, fmt.Sprintf("%d acknowledged by the target but missing from it afterwards", rep.Missing))
		}
		if rep.FailedFolders > 0 {
			what = append(what, fmt.Sprintf("%d folders the target refused (%d messages)", rep.FailedFolders, rep.NotRestored))
		}
		return rep, fmt.Errorf("%w: %s (see the warnings or --report)", ErrPartial, strings.Join(what, ", "))
	}
	rep.Status = StatusComplete
	return rep, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// structurePlans plans the archived \Noselect folders that no restored
// folder lies below (those come with the folders below them) and that the
// target does not have.
func structurePlans(mapper *FolderMapper, structure []formats.Folder, plans []*FolderPlan, exists, existsAsStructure map[string]bool, ns Namespace) []*FolderPlan {
	delim := ns.Delimiter
	if delim == "" {
		delim = "/"
	}
	var out []*FolderPlan
	for _, f := range structure {
		target, how := mapper.Map(f)
		below := false
		for _, p := range append(plans, out...) {
			if strings.HasPrefix(p.Target, target+delim) || p.Target == target {
				below = true
				break
			}
		}
		if below || exists[target] || existsAsStructure[target] || strings.EqualFold(target, "INBOX") {
			continue
		}
		out = append(out, &FolderPlan{Source: f.Name, Target: target, How: how, Create: true, Structure: true})
	}
	return out
}

// warnShared warns about archived folders restored into one target folder.
func warnShared(plans []*FolderPlan, log *slog.Logger) {
	by := map[string][]string{}
	for _, fp := range plans {
		by[fp.Target] = append(by[fp.Target], fp.Source)
	}
	for _, fp := range plans {
		if src := by[fp.Target]; len(src) > 1 && src[0] == fp.Source {
			log.Warn("several archived folders go to one target folder: their messages are restored together", "target", fp.Target, "archived", strings.Join(src, ", "))
		}
	}
}

// finish counts, per folder and in all, the selected messages that were
// neither stored nor found present nor rejected nor unreadable, the
// messages missing after appending, and the folders the target refused.
func (rep *Report) finish() {
	rep.NotRestored, rep.FailedFolders, rep.Missing, rep.ByLabels = 0, 0, 0, 0
	for _, fp := range rep.Folders {
		rep.ByLabels += fp.ByLabels
		if fp.failed {
			rep.FailedFolders++
		}
		rep.Missing += fp.Missing
		if rep.DryRun {
			continue
		}
		fp.NotRestored = fp.Messages - fp.Present - fp.Stored - len(fp.Rejected) - len(fp.Unreadable) - fp.ByLabels
		rep.NotRestored += fp.NotRestored
	}
}

type runner struct {
	ctx  context.Context
	a    *formats.Archive
	sel  *Selected
	t    Target
	opts *Options
	rep  *Report
	// exists is written before the workers start, read after.
	exists map[string]bool
	// stopping is done when the run stops: interrupted, or stop called
	// with the error that ends it (the first one is its cause). Workers
	// then send nothing new and wait for the answers to what is in
	// flight (over ctx, which stays live), so that everything the target
	// accepted is counted.
	stopping context.Context
	stop     context.CancelCauseFunc
	err      error
	// mu guards warned, rep's totals, the plans' results and prog while
	// workers run.
	mu       sync.Mutex
	warned   int
	prog     Progress
	progress chan Progress // to the goroutine that calls Options.Progress
	// inLabels are the SHA-256 of the messages the plans of label folders
	// restore, when All Mail's messages are left to the labels
	// (labels.go); nil otherwise. Read-only once workers run.
	inLabels *sumSet
	// onTarget are the SHA-256 of the messages the target acknowledged or
	// held, when inLabels is set. Under mu.
	onTarget *sumSet
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
	fr  *folderRun
	m   *formats.MessageState
	msg *Message
	pos int // the message's place in the folder's selection (Selected.Each)
	p   Pending
}

// folderRun is one folder being restored over one connection. Nothing in
// it grows with the folder: after a lost connection, the messages found
// present or stored before the one whose answer was lost are read from
// the selection again (holds).
type folderRun struct {
	fp      *FolderPlan
	acked   int  // appends the target acknowledged in this run
	rebased bool // the folder was created again meanwhile: its count before is void
}

// fail ends the run with err (the first error wins): workers send nothing
// new.
func (r *runner) fail(err error) { r.stop(err) }

// stopped reports whether the run is stopping.
func (r *runner) stopped() bool { return r.stopping.Err() != nil }

func (r *runner) run() {
	r.stopping, r.stop = context.WithCancelCause(r.ctx)
	defer r.stop(nil)
	for _, fp := range r.rep.Folders {
		r.prog.Total += fp.Messages
		r.prog.Bytes += fp.Bytes
	}
	if r.opts.Progress != nil {
		r.progress = make(chan Progress, 1)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for p := range r.progress {
				r.opts.Progress(p)
			}
		}()
		defer func() {
			close(r.progress)
			<-done
			r.mu.Lock()
			final := r.prog
			r.mu.Unlock()
			r.opts.Progress(final)
		}()
	}
	defer func() {
		if r.err == nil && r.stopping.Err() != nil {
			r.err = context.Cause(r.stopping)
		}
	}()
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
		if !fp.Create || r.opts.DryRun {
			continue
		}
		if err := r.create(r.t, fp); err != nil {
			if errors.Is(err, ErrFolderRefused) && r.ctx.Err() == nil {
				r.failFolder(fp, err)
				continue
			}
			r.fail(err)
			return
		}
	}
	r.folders()
}

// create creates a planned folder: as structure, with its special-use
// attribute, or plainly.
func (r *runner) create(t Target, fp *FolderPlan) error {
	switch {
	case fp.Structure:
		if err := t.(StructureCreator).CreateStructure(r.ctx, fp.Target); err != nil {
			if r.ctx.Err() != nil {
				return r.ctx.Err()
			}
			// Structure only: no message is lost, the run goes on.
			r.opts.Log.Warn("folder that holds only folders not created", "folder", fp.Target, "err", err)
			return nil
		}
	case fp.SpecialUse != "":
		err := t.(SpecialUseCreator).CreateSpecialUse(r.ctx, fp.Target, fp.SpecialUse)
		if errors.Is(err, ErrSpecialUseRefused) {
			r.opts.Log.Warn("folder created without its special-use attribute", "folder", fp.Target, "special_use", fp.SpecialUse, "err", err)
			fp.SpecialUse, err = "", nil
		}
		if err != nil {
			return fmt.Errorf("create folder %q: %w", fp.Target, err)
		}
	default:
		if err := t.CreateFolder(r.ctx, fp.Target); err != nil {
			return fmt.Errorf("create folder %q: %w", fp.Target, err)
		}
	}
	r.exists[fp.Target] = true
	return nil
}

// unit is the folders restored into one target folder: they go over one
// connection, one after the other, so that what the engine checks of
// the target folder is not mixed with another connection's appends.
type unit struct {
	plans []*FolderPlan
	bytes int64
}

// units groups the folders with messages by target folder, biggest first.
func (r *runner) units() []*unit {
	by := map[string]*unit{}
	var out []*unit
	for _, fp := range r.rep.Folders {
		if fp.Structure {
			continue
		}
		u := by[fp.Target]
		if u == nil {
			u = &unit{}
			by[fp.Target] = u
			out = append(out, u)
		}
		u.plans = append(u.plans, fp)
		u.bytes += fp.Bytes
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].bytes > out[j].bytes })
	return out
}

// folders restores the folders over up to Options.Connections
// connections, biggest first. The first error that ends the run stops
// every worker after the answers to its appends in flight.
func (r *runner) folders() {
	todo := r.units()
	n := 1
	if r.opts.Open != nil && !r.opts.DryRun {
		n = max(1, min(r.opts.Connections, len(todo)))
	}
	var mu sync.Mutex
	next := func() *unit {
		mu.Lock()
		defer mu.Unlock()
		if len(todo) == 0 || r.stopped() {
			return nil
		}
		u := todo[0]
		todo = todo[1:]
		return u
	}
	var g errgroup.Group
	workers := make([]*worker, n)
	for i := range workers {
		w := &worker{reader: r.sel.NewReader(r.a)}
		workers[i] = w
		if i == 0 {
			w.t = r.t
		}
		g.Go(func() error {
			defer w.reader.Close()
			if w.t == nil {
				t, err := r.opts.Open(r.ctx)
				if err != nil {
					if !r.stopped() {
						r.opts.Log.Warn("could not open another connection to the target; going on with fewer", "connection", i+1, "err", err)
					}
					return nil
				}
				defer t.Close()
				if p, ok := t.(Preparer); ok {
					if err := p.Prepare(r.ctx); err != nil {
						r.opts.Log.Warn("could not prepare another connection to the target; going on with fewer", "connection", i+1, "err", err)
						return nil
					}
				}
				w.t = t
			}
			for u := next(); u != nil; u = next() {
				for _, fp := range u.plans {
					if err := r.folder(w, fp); err != nil {
						r.fail(err)
						return err
					}
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil && r.err == nil && r.stopping.Err() == nil {
		r.err = err
	}
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

// identify fills in what idx needs to match msg (the hash of its body for
// a message without a Message-ID, read from the archive), and reports
// whether idx holds it (marking the copy as matched).
func (r *runner) identify(w *worker, idx *Index, m *formats.MessageState, msg *Message) bool {
	if idx.Take(msg) {
		return true
	}
	if !idx.NeedsBodyHash(msg) {
		return false
	}
	body, err := w.reader.Open(&m.Message)
	if err != nil {
		return false // the append reports it unreadable
	}
	sum, err := BodyHash(newVerifier(body, m.Size, m.SHA256))
	if err != nil {
		return false
	}
	msg.BodySHA256 = sum
	return idx.Take(msg)
}

// folder restores one folder over w's connection. It returns the error
// that ends the run, after the answers to the appends in flight.
func (r *runner) folder(w *worker, fp *FolderPlan) error {
	defer r.giveUp(fp)
	if r.folderFailed(fp) {
		return nil
	}
	r.mu.Lock()
	r.prog.Folder = fp.Target
	r.mu.Unlock()
	fr := &folderRun{fp: fp}
	idx := NewIndex()
	if r.exists[fp.Target] {
		var err error
		if idx, err = w.t.Index(r.ctx, fp.Target); err != nil {
			if errors.Is(err, ErrFolderRefused) && r.ctx.Err() == nil {
				r.failFolder(fp, fmt.Errorf("read target folder %q: %w", fp.Target, err))
				return nil
			}
			return fmt.Errorf("read target folder %q: %w", fp.Target, err)
		}
	}
	defer idx.Close()
	checker, _ := w.t.(AppendChecker)
	before, counted := -1, false
	var queue []inflight
	var err error
	failed := func(e error) {
		if e != nil && err == nil {
			err = e
			r.fail(e) // the other workers stop sending at once
		}
	}
	pos := -1
	ierr := r.sel.Each(fp.sf, func(m *formats.MessageState) error {
		pos++
		if r.stopped() || r.folderFailed(fp) {
			return errStop
		}
		if r.leftToLabels(fp, m) {
			return nil
		}
		msg := toMessage(m)
		if r.identify(w, idx, m, msg) {
			r.present(fr, m)
			return nil
		}
		if ierr := idx.Err(); ierr != nil {
			return fmt.Errorf("read target folder %q: %w", fp.Target, ierr)
		}
		if r.opts.DryRun {
			return nil
		}
		if !counted {
			// Before the first append: what the folder held.
			counted = true
			if checker != nil && r.exists[fp.Target] {
				n, herr := checker.Held(r.ctx, fp.Target)
				if herr != nil {
					return fmt.Errorf("count the messages of target folder %q: %w", fp.Target, herr)
				}
				before = n
			}
		}
		f := inflight{fr: fr, m: m, msg: msg, pos: pos}
		p, aerr := r.append(w, fp, f.m, f.msg)
		if failed(aerr); aerr != nil {
			return errStop
		}
		if p == nil {
			return nil
		}
		f.p = p
		queue = append(queue, f)
		if len(queue) >= r.opts.Window {
			serr := r.settle(w, queue[0])
			queue = queue[1:]
			if failed(serr); serr != nil {
				return errStop
			}
		}
		return nil
	})
	if ierr != nil && ierr != errStop {
		failed(ierr)
	}
	// Even when the run is stopping: what the target accepted counts.
	for _, f := range queue {
		failed(r.settle(w, f))
	}
	if err != nil {
		return err
	}
	if r.ctx.Err() != nil {
		return r.ctx.Err()
	}
	if before >= 0 && !fr.rebased && fr.acked > 0 && !r.folderFailed(fp) {
		return r.verify(checker, fr, before)
	}
	return nil
}

// verify checks that the folder holds what the target acknowledged: its
// count grew by as much (Held), and, where the target can tell, every
// acknowledged message is there (Missing). A shortfall fails the folder.
func (r *runner) verify(checker AppendChecker, fr *folderRun, before int) error {
	fp := fr.fp
	missing, ok, err := checker.Missing(r.ctx, fp.Target)
	if err != nil {
		return fmt.Errorf("check the appends to target folder %q: %w", fp.Target, err)
	}
	if !ok {
		missing = 0
	}
	after, err := checker.Held(r.ctx, fp.Target)
	if err != nil {
		return fmt.Errorf("count the messages of target folder %q: %w", fp.Target, err)
	}
	// Other clients may add mail meanwhile (a larger count hides
	// nothing the appended UIDs show), or remove some.
	short := before + fr.acked - after
	missing = max(missing, short)
	if missing <= 0 {
		return nil
	}
	missing = min(missing, fr.acked)
	r.mu.Lock()
	fp.Missing = missing
	if fp.Error == "" {
		fp.Error = fmt.Sprintf("the target acknowledged %d appends, but %d of them are not in the folder (it holds %d messages, %d before)", fr.acked, missing, after, before)
	}
	r.mu.Unlock()
	r.opts.Log.Warn("messages missing on the target after it acknowledged them", "folder", fp.Target, "acknowledged", fr.acked, "missing", missing, "held_before", before, "held_after", after)
	return nil
}

// append opens the archived message and hands it to the target. It
// returns a nil Pending when nothing is in flight: the message was
// unreadable (recorded), and an error when the target failed (the run
// stops).
func (r *runner) append(w *worker, fp *FolderPlan, m *formats.MessageState, msg *Message) (Pending, error) {
	body, err := w.reader.Open(&m.Message)
	if err == nil {
		if a, ok := w.t.(AtomicAppender); !ok || !a.AppendsAtomically() {
			body, err = w.checked(m, body)
		}
	}
	if err != nil {
		r.unreadable(fp, m, err)
		return nil, nil
	}
	v := newVerifier(body, m.Size, m.SHA256)
	p, err := w.t.Append(r.ctx, fp.Target, msg, v)
	if v.err != nil {
		// The archive could not give the message: the target stored
		// nothing of it, whatever it answered.
		r.unreadable(fp, m, v.err)
		return nil, nil
	}
	if err != nil {
		if isAnswer(err) {
			return Done{Err: err}, nil
		}
		return nil, fmt.Errorf("append to %q: %w", fp.Target, err)
	}
	return p, nil
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
		errors.Is(err, ErrThrottled) || errors.Is(err, ErrConnectionLost) || errors.Is(err, ErrKeywordsRefused)
}

// maxThrottled is how many times a message is sent again after the
// target asked to slow down; the waits double from 2 s.
const maxThrottled = 5

// settle waits for the target's answer to one append and acts on it:
// counts it, retries it (a lost connection, TRYCREATE, refused keywords,
// throttling), or records why it was not stored. While the run is
// stopping nothing is sent again. It returns the error that ends the run.
func (r *runner) settle(w *worker, f inflight) error {
	fp := f.fr.fp
	err := f.p.Wait()
	created, rekeyed, throttled, lost := false, false, 0, false
	for err != nil {
		if cerr := r.ctx.Err(); cerr != nil {
			return cerr // interrupted: the answer is unknown
		}
		switch {
		case errors.Is(err, ErrConnectionLost) && !lost:
			if r.stopped() {
				return nil // not checked: the next run finds it, or appends it
			}
			if throttledLoss(err) {
				// The server closed the connection asking to slow down.
				d := throttleDelay(err, 1)
				r.opts.Log.Warn("target asks to slow down; waiting", "seconds", d.Seconds())
				if serr := r.opts.Sleep(r.stopping, d); serr != nil {
					return nil // stopping: not checked, the next run finds it or appends it
				}
			}
			// Stored or not? Ask the target before appending again.
			lost = true
			held, ierr := r.holds(w, f)
			if ierr != nil {
				return fmt.Errorf("read target folder %q again: %w", fp.Target, ierr)
			}
			if held {
				err = nil
				continue
			}
		case errors.Is(err, ErrOverQuota):
			return err
		case errors.Is(err, ErrTryCreate) && !created:
			created = true
			if r.stopped() {
				return nil
			}
			if cerr := w.t.CreateFolder(r.ctx, fp.Target); cerr != nil {
				if errors.Is(cerr, ErrFolderRefused) {
					r.failFolder(fp, fmt.Errorf("create folder %q: %w", fp.Target, cerr))
					return nil
				}
				return fmt.Errorf("create folder %q: %w", fp.Target, cerr)
			}
			f.fr.rebased = true
		case errors.Is(err, ErrKeywordsRefused) && !rekeyed:
			rekeyed = true // the target drops the keywords now
		case errors.Is(err, ErrThrottled) && throttled < maxThrottled:
			throttled++
			d := throttleDelay(err, throttled)
			r.opts.Log.Warn("target asks to slow down; waiting", "seconds", d.Seconds())
			if serr := r.opts.Sleep(r.stopping, d); serr != nil {
				return nil // stopping: this one is not sent again
			}
		case errors.Is(err, ErrRejected) || errors.Is(err, ErrTryCreate) || errors.Is(err, ErrThrottled) || errors.Is(err, ErrKeywordsRefused):
			r.reject(f, err)
			return nil
		default:
			return fmt.Errorf("append to %q: %w", fp.Target, err)
		}
		if r.stopped() || r.folderFailed(fp) {
			return nil
		}
		p, aerr := r.append(w, fp, f.m, f.msg)
		if aerr != nil {
			return aerr
		}
		if p == nil {
			return nil
		}
		err = p.Wait()
	}
	r.mu.Lock()
	fp.Stored++
	fp.StoredBytes += f.m.Size
	r.rep.Stored++
	r.rep.StoredBytes += f.m.Size
	r.markOnTarget(f.m)
	f.fr.acked++
	r.mu.Unlock()
	r.advance(fp, f.m, &r.prog.Stored)
	if r.opts.Hook != nil {
		r.opts.Hook("message-restored")
	}
	return nil
}

// holds reads the folder again after a lost connection and reports
// whether it holds f's message beyond the copies taken by the messages
// before it in the selection that were found present or stored (every
// one before it is settled: answers are taken in order); the rejected
// and unreadable ones took none.
func (r *runner) holds(w *worker, f inflight) (bool, error) {
	fp := f.fr.fp
	idx, err := w.t.Index(r.ctx, fp.Target)
	if err != nil {
		return false, err
	}
	defer idx.Close()
	r.mu.Lock()
	skip := map[string]bool{}
	for _, x := range fp.Rejected {
		skip[x.Key] = true
	}
	for _, x := range fp.Unreadable {
		skip[x.Key] = true
	}
	r.mu.Unlock()
	pos := -1
	err = r.sel.Each(fp.sf, func(m *formats.MessageState) error {
		if pos++; pos >= f.pos {
			return errStop
		}
		if skip[m.Key] || r.leftToLabels(fp, m) {
			return nil
		}
		r.identify(w, idx, m, toMessage(m))
		return nil
	})
	if err != nil && err != errStop {
		return false, err
	}
	held := r.identify(w, idx, f.m, f.msg)
	return held, idx.Err()
}

func (r *runner) present(fr *folderRun, m *formats.MessageState) {
	r.mu.Lock()
	fr.fp.Present++
	r.rep.Present++
	r.rep.PresentBytes += m.Size
	r.markOnTarget(m)
	r.mu.Unlock()
	r.advance(fr.fp, m, &r.prog.Present)
}

func (r *runner) reject(f inflight, err error) {
	fp := f.fr.fp
	r.mu.Lock()
	fp.Rejected = append(fp.Rejected, Rejection{Key: f.m.Key, Reason: err.Error()})
	r.rep.Rejected++
	warn := r.warnOnce()
	r.mu.Unlock()
	if warn {
		r.opts.Log.Warn("message rejected by the target", "folder", fp.Target, "key", f.m.Key, "err", err)
	}
	r.advance(fp, f.m, &r.prog.Rejected)
}

func (r *runner) unreadable(fp *FolderPlan, m *formats.MessageState, err error) {
	u := Unreadable{Key: m.Key, Location: m.Location().String(), Reason: err.Error()}
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
	if !fp.failed || fp.done == fp.Messages {
		r.mu.Unlock()
		return
	}
	r.prog.Failed += fp.Messages - fp.done
	r.prog.Done += fp.Messages - fp.done
	r.prog.DoneBytes += fp.Bytes - fp.doneBytes
	fp.done, fp.doneBytes = fp.Messages, fp.Bytes
	p := r.prog
	r.mu.Unlock()
	r.post(p)
}

func (r *runner) advance(fp *FolderPlan, m *formats.MessageState, counter *int) {
	r.mu.Lock()
	fp.done++
	fp.doneBytes += m.Size
	*counter++
	r.prog.Done++
	r.prog.DoneBytes += m.Size
	p := r.prog
	r.mu.Unlock()
	r.post(p)
}

// post hands running totals to the progress goroutine without waiting
// for it: totals it has not taken yet are replaced by newer ones.
func (r *runner) post(p Progress) {
	if r.progress == nil {
		return
	}
	for {
		select {
		case r.progress <- p:
			return
		default:
		}
		select {
		case old := <-r.progress:
			if old.Done > p.Done {
				p = old // a newer total posted meanwhile by another worker
			}
		default:
		}
	}
}
