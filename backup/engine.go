package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/msghdr"
)

// Options configure a backup run.
type Options struct {
	Source   string // the source URL without any secret, recorded in the manifest
	Protocol string // "imap", …
	Dial     Dialer
	Log      *slog.Logger // nil: discard
	// Hook, when set, is called at named points ("message-stored",
	// "body-chunk", and the archive's own points); crash tests use it.
	Hook func(point string)
	// Connections is how many connections may synchronise folders at
	// once (each folder over one); 0 means 1.
	Connections int
	// Checkpoint, when positive, commits what the run stored so far as a
	// partial snapshot during the run, so that a run killed half-way (a
	// first backup of a big account, a slow link) is resumed by the next
	// run instead of started over: a stored message waits at most this long
	// before it is committed, also in the middle of a folder or of one
	// fetch command. 0 means one snapshot per run.
	Checkpoint time.Duration
	// CheckpointBytes, with Checkpoint, also commits a folder's messages
	// once this many of their bytes wait to be committed. 0 means
	// DefaultCheckpointBytes; negative, no byte bound.
	CheckpointBytes int64
	// BatchSize is how many messages one fetch command asks for.
	BatchSize int
	// Attempts is how often a folder is tried when its connection fails
	// (a new connection each time). 0 means 2.
	Attempts int
	// ThrottleWait bounds how long the run keeps waiting on the server's
	// requests to slow down (ThrottleError), from the first one: a wait
	// that would end later fails the folder. 0 means DefaultThrottleWait.
	ThrottleWait time.Duration
	// MaxBytesPerDay, when positive, stops the run (ErrDailyLimit) before
	// a message would bring the bytes fetched in the last 24 hours (by
	// this run and by the snapshots committed in that window) over it.
	MaxBytesPerDay int64
	// Sleep waits d during a backoff, returning ctx.Err() early when ctx
	// ends; nil means a timer.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Delete, with a Source that is a Deleter, removes from the source the
	// messages committed in the archive that were first archived at least
	// DeleteAfter ago (0: right after this run's commit).
	Delete      bool
	DeleteAfter time.Duration
}

// DefaultCheckpointBytes is Options.CheckpointBytes when not set: with a
// fast link, what a killed run has to fetch again stays bounded.
const DefaultCheckpointBytes = 1 << 30

// Result summarises a run. Its counts are what the run committed (its
// checkpoints and its last snapshot), never what it planned or fetched.
type Result struct {
	Snapshot    *formats.Snapshot
	Folders     int   // folders listed by the source
	Selected    int   // folders opened (examined)
	Added       int   // messages added to the archive's state
	Stored      int   // messages whose bytes were written (Added minus duplicates)
	Bytes       int64 // bytes of the stored messages
	Gone        int   // messages recorded as gone from the source
	FlagChanges int
	Orphans     []string // left-overs of interrupted runs that were removed
	Failed      []string // folders the snapshot records as failed (or not reached)
	Deleted     int      // messages deleted from the source (Options.Delete)
	Throttled   int      // waits the server asked for (ThrottleError)
}

// ErrPartial is wrapped by the error Run returns when the snapshot was
// committed but some folders or messages could not be backed up.
var ErrPartial = errors.New("backup: some folders or messages could not be backed up")

// ErrInterrupted is wrapped when the run was cancelled; what was fetched
// until then is committed as a partial snapshot.
var ErrInterrupted = errors.New("backup: interrupted")

// ErrStorage is wrapped when the archive cannot be written (disk full,
// quota, permissions). The run stops at once; what was stored completely is
// committed as a partial snapshot if the manifest can still be written.
var ErrStorage = errors.New("backup: cannot write the archive")

func storageErr(err error) error {
	if err == nil || errors.Is(err, ErrStorage) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrStorage, err)
}

// errMissing marks messages the server listed but did not deliver.
var errMissing = errors.New("messages listed by the server were not delivered")

func (o *Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o *Options) sleep(ctx context.Context, d time.Duration) error {
	if o.Sleep != nil {
		return o.Sleep(ctx, d)
	}
	return sleep(ctx, d)
}

func (o *Options) hook(p string) {
	if o.Hook != nil {
		o.Hook(p)
	}
}

// Run backs up the source into the archive and commits one snapshot. The
// archive must not be locked by another run. When some folders fail the
// snapshot is committed as partial and the returned error wraps
// ErrPartial; when nothing could be read at all (no connection, no folder
// list) no snapshot is written.
func Run(ctx context.Context, a *formats.Archive, opts Options) (*Result, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 500
	}
	if opts.Attempts <= 0 {
		opts.Attempts = 2
	}
	if opts.CheckpointBytes == 0 {
		opts.CheckpointBytes = DefaultCheckpointBytes
	}
	if opts.ThrottleWait <= 0 {
		opts.ThrottleWait = DefaultThrottleWait
	}
	a.Hook = opts.Hook
	if err := a.Lock("backup"); err != nil {
		return nil, err
	}
	defer a.Unlock()

	// The state comes from the cache (folders' messages read only when a
	// folder is synchronised) plus the manifests committed since; without
	// a usable cache, from all manifests.
	st, err := a.LoadState()
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if res.Orphans, err = a.RemoveOrphans(st); err != nil {
		return nil, err
	}
	if len(res.Orphans) > 0 {
		opts.Log.Info("removed leftovers of an interrupted run", "files", len(res.Orphans))
	}

	r := &run{ctx: ctx, a: a, opts: &opts, st: st, res: res}
	r.snap = &formats.Snapshot{
		ID:       formats.NewSnapshotID(),
		Seq:      1,
		Source:   opts.Source,
		Protocol: opts.Protocol,
		Started:  opts.now().UTC(),
	}
	if st.Snapshot != nil {
		r.snap.Seq, r.snap.Parent = st.Snapshot.Seq+1, st.Snapshot.ID
	}
	// Message files are named after the run's first snapshot, whichever
	// snapshot (a checkpoint or the last) ends up committing them.
	r.runSeq, r.runID, r.lastCheckpoint = r.snap.Seq, r.snap.ID, opts.now()
	defer r.closeSource()

	if opts.MaxBytesPerDay > 0 {
		if r.budgetUsed, err = bytesSince(a, opts.now().Add(-24*time.Hour)); err != nil {
			return nil, fmt.Errorf("count the bytes fetched in the last 24 hours: %w", err)
		}
		if r.budgetUsed >= opts.MaxBytesPerDay {
			return nil, fmt.Errorf("%w: --max-bytes-per-day %d reached (%d bytes fetched in the last 24 hours); nothing was fetched, run again later",
				ErrDailyLimit, opts.MaxBytesPerDay, r.budgetUsed)
		}
	}
	infos, err := r.start()
	if err != nil {
		return nil, err
	}
	infos = uniqueFolders(infos, opts.Log)
	res.Folders = len(infos)
	r.walk(infos)

	// The outcome is decided here, from what the snapshot records, and
	// does not change once it is committed: a signal that arrives later
	// interrupts nothing.
	r.snap.Finished = opts.now().UTC()
	interrupted := ctx.Err() != nil
	r.snap.Status = formats.StatusComplete
	if interrupted || r.fatal != nil || r.snap.Incomplete() {
		r.snap.Status = formats.StatusPartial
	}
	if err := r.st.Err(); err != nil {
		// A folder's archived messages could not be read: what this run
		// decided about that folder cannot be trusted.
		return nil, fmt.Errorf("read the archive's state: %w", err)
	}
	if err := a.Commit(r.snap); err != nil {
		if r.fatal != nil {
			return nil, r.fatal
		}
		return nil, fmt.Errorf("commit snapshot: %w", storageErr(err))
	}
	res.Snapshot = r.snap
	r.tally()
	if err := r.applySnapshot(); err != nil {
		opts.Log.Warn("could not update the state cache", "err", err)
	} else {
		if a.Config.Storage == formats.StorageMaildir && res.FlagChanges > 0 {
			// File names carry flags in a Maildir: rename what changed.
			// Failing here leaves old flags in names, not a damaged archive.
			for _, s := range append(r.checkpoints, r.snap) {
				if _, err := a.SyncMaildirFlags(r.st, s); err != nil {
					opts.Log.Warn("could not update flags in Maildir file names", "err", err)
				}
			}
		}
		// The cache is derived data: failing to write it only makes the
		// next run read the manifests.
		if err := a.SaveStateCache(r.st); err != nil {
			opts.Log.Warn("could not update the state cache", "err", err)
		}
	}
	if opts.Delete && r.fatal == nil && !interrupted {
		if ctx.Err() != nil {
			return res, fmt.Errorf("%w before deleting from the source (snapshot %s is committed %s)", ErrInterrupted, r.snap.ID, r.snap.Status)
		}
		if err := r.deleteArchived(); err != nil {
			return res, fmt.Errorf("delete from the source after committing snapshot %s: %w", r.snap.ID, err)
		}
	}
	switch {
	case r.fatal != nil:
		return res, fmt.Errorf("%w (what was stored before is committed as partial snapshot %s)", r.fatal, r.snap.ID)
	case interrupted:
		return res, fmt.Errorf("%w: snapshot %s committed as partial", ErrInterrupted, r.snap.ID)
	case r.limit != nil:
		return res, fmt.Errorf("%w: %w; what was fetched is committed as partial snapshot %s, and the next run continues where this one stopped",
			ErrPartial, r.limit, r.snap.ID)
	case r.snap.Status != formats.StatusComplete:
		return res, fmt.Errorf("%w: %s", ErrPartial, r.failures())
	}
	return res, nil
}

// failures describes what made the snapshot partial.
func (r *run) failures() string {
	if len(r.snap.Errors) > 0 {
		return strings.Join(r.snap.Errors, "; ")
	}
	var out []string
	for _, f := range r.snap.Folders {
		if f.Status == formats.FolderFailed {
			out = append(out, fmt.Sprintf("folder %q: %s", f.Name, f.Error))
		}
	}
	return strings.Join(out, "; ")
}

// tally sets the result's message counts and failed folders from the
// snapshots the run committed (its checkpoints and its last one): what the
// archive holds now. Stored and Bytes were counted as the writers holding
// them committed.
func (r *run) tally() {
	res := r.res
	res.Added, res.Gone, res.FlagChanges, res.Failed = 0, 0, 0, nil
	for _, f := range r.snap.Folders {
		if f.Status == formats.FolderFailed {
			res.Failed = append(res.Failed, f.Name)
		}
	}
	gone, flagged := map[string]bool{}, map[string]bool{}
	for _, s := range append(slices.Clone(r.checkpoints), r.snap) {
		for _, c := range s.Changes {
			res.Added += len(c.Added)
			for _, k := range c.Gone {
				if id := c.Folder + "\x00" + k; !gone[id] {
					gone[id] = true
					res.Gone++
				}
			}
			for _, fc := range c.Flags {
				if id := c.Folder + "\x00" + fc.Key; !flagged[id] {
					flagged[id] = true
					res.FlagChanges++
				}
			}
			if f := r.st.Folders[c.Folder]; c.Event == formats.EventDeleted && f != nil {
				res.Gone += len(f.Present())
			}
		}
	}
}

// applySnapshot brings r.st to the committed snapshot (after the run's
// checkpoints), once.
func (r *run) applySnapshot() error {
	if r.st.Snapshot == r.snap {
		return nil
	}
	for _, cp := range r.checkpoints {
		if err := r.st.Apply(cp); err != nil {
			return err
		}
	}
	return r.st.Apply(r.snap)
}

// deleteArchived deletes from the source what the committed archive holds
// and what is old enough, then ends the session so that the deletion takes
// effect. Only folders synchronised in this run are touched.
func (r *run) deleteArchived() error {
	d, ok := r.src.(Deleter)
	if !ok {
		return nil
	}
	snaps, err := r.a.Snapshots()
	if err != nil {
		return err
	}
	finished := map[string]time.Time{r.snap.ID: r.snap.Finished}
	for _, s := range snaps {
		finished[s.ID] = s.Finished
	}
	if err := r.applySnapshot(); err != nil {
		return err
	}
	cutoff := r.opts.now().Add(-r.opts.DeleteAfter)
	var keys []string
	for _, f := range r.snap.Folders {
		if f.Status != formats.FolderOK && f.Status != formats.FolderUnchanged {
			continue
		}
		for _, m := range r.st.Folders[f.Name].Present() {
			if t := finished[m.AddedIn]; !t.IsZero() && !t.After(cutoff) {
				keys = append(keys, m.Key)
			}
		}
	}
	if len(keys) == 0 {
		return nil
	}
	n, err := d.Delete(r.ctx, keys)
	if err != nil {
		return err
	}
	r.opts.hook("deleted-before-quit")
	if err := r.src.Close(); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	r.src = nil
	r.res.Deleted = n
	r.opts.Log.Info("deleted from the source", "messages", n)
	return nil
}

// run is the state of one backup run.
type run struct {
	ctx  context.Context
	a    *formats.Archive
	opts *Options
	st   *formats.State
	res  *Result
	snap *formats.Snapshot
	src  Source // the connection that listed the folders
	// mu guards res, snap (its id, seq, parent, errors), the jobs' done
	// marks and segments, and fatal while workers run.
	mu sync.Mutex
	// runSeq and runID name the run's message files: the first snapshot
	// of the run.
	runSeq int
	runID  string
	// ckMu serialises checkpoints; checkpoints are the snapshots
	// committed during the run, in order, before r.snap.
	ckMu           sync.Mutex
	lastCheckpoint time.Time
	checkpoints    []*formats.Snapshot
	jobs           []*folderJob // every listed folder, set before workers start
	// fatal, once set, stops the run: the archive cannot be written.
	fatal error
	// limit, once set, stops the run: a daily limit is reached
	// (ErrDailyLimit). throttledSince is when the server first asked to
	// slow down. Both under mu.
	limit          error
	throttledSince time.Time
	// budgetUsed is what the snapshots of the last 24 hours fetched;
	// fetched what this run fetched, for Options.MaxBytesPerDay.
	budgetUsed int64
	fetched    atomic.Int64
}

// worker synchronises folders over its own connection.
type worker struct {
	r    *run
	pool *pool // nil outside syncJobs
	src  Source
	// Per-message scratch, reused so that a run's garbage does not grow
	// with the number of messages.
	copyBuf []byte
	hash    hash.Hash
	hc      headerCapture
}

func (r *run) connect() error {
	src, err := r.opts.Dial(r.ctx)
	if err != nil {
		return err
	}
	r.src = src
	return nil
}

func (r *run) closeSource() {
	if r.src != nil {
		r.src.Close()
		r.src = nil
	}
}

func (w *worker) connect() error {
	src, err := w.r.opts.Dial(w.r.ctx)
	if err != nil {
		return err
	}
	w.src = src
	return nil
}

func (w *worker) closeSource() {
	if w.src != nil {
		w.src.Close()
		w.src = nil
	}
}

// count updates the run's counters.
func (r *run) count(fn func(res *Result)) {
	r.mu.Lock()
	fn(r.res)
	r.mu.Unlock()
}

// stopped reports whether the run must not start more work.
func (r *run) stopped() bool {
	if r.ctx.Err() != nil {
		return true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.fatal != nil || r.limit != nil
}

func (r *run) fail(folder string, err error) {
	msg := fmt.Sprintf("folder %q: %v", folder, err)
	r.mu.Lock()
	r.snap.Errors = append(r.snap.Errors, msg)
	r.mu.Unlock()
	r.opts.Log.Error("folder failed", "folder", folder, "err", err)
}

// folderJob is one listed folder: planned in name order, synchronised by
// a worker when it may have changed, recorded in name order.
type folderJob struct {
	fi     FolderInfo
	known  *formats.FolderState // the archive's folder of this name
	prev   *formats.FolderState // the archive's state of it (or of its old name)
	folder formats.Folder
	change formats.Change
	segs   []formats.Segment // committed by its writers (under run.mu)
	sync   bool              // it must be examined
	done   bool              // a worker finished it, ok or failed (under run.mu)
	// mu guards change while parts of the folder are fetched at once.
	mu sync.Mutex
}

// syncJobs synchronises the folders that need it over up to
// Options.Connections connections, biggest folders first. The connection
// that listed the folders is the first worker's; the others are opened as
// the workers start, and a worker whose connection is refused (servers
// limit connections per user) leaves its share to the others.
func (r *run) syncJobs(jobs []*folderJob) {
	var todo []*folderJob
	for _, j := range jobs {
		if j.sync {
			todo = append(todo, j)
		}
	}
	if len(todo) == 0 {
		return
	}
	sort.SliceStable(todo, func(a, b int) bool { return jobSize(todo[a]) > jobSize(todo[b]) })
	p := &pool{r: r}
	p.cond = sync.NewCond(&p.mu)
	for _, j := range todo {
		p.tasks = append(p.tasks, func(w *worker) { w.run(j) })
	}
	// One connection per folder, and more for a big folder's parts.
	useful := int64(len(todo))
	for _, j := range todo {
		if size := jobSize(j); j.fi.Status != nil && size >= splitMin {
			useful += size / partMin
		}
	}
	n := int(max(1, min(int64(r.opts.Connections), useful)))
	workers := make([]*worker, n)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{r: r, pool: p}
		workers[i] = w
		if i == 0 {
			w.src, r.src = r.src, nil
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				if err := w.connect(); err != nil {
					if r.ctx.Err() == nil {
						r.opts.Log.Warn("could not open another connection; going on with fewer", "connection", i+1, "err", err)
					}
					return
				}
			}
			for t := p.next(); t != nil; t = p.next() {
				t(w)
				p.done()
				r.checkpoint(jobs, nil)
			}
		}()
	}
	wg.Wait()
	// The first worker's connection goes back to the run (a POP3 session
	// deletes over it); the others are closed.
	r.src = workers[0].src
	for _, w := range workers[1:] {
		w.closeSource()
	}
}

// checkpointDue reports whether the folders finished since the last
// checkpoint should be committed now: Options.Checkpoint has passed.
func (r *run) checkpointDue() bool {
	if r.opts.Checkpoint <= 0 {
		return false
	}
	r.ckMu.Lock()
	defer r.ckMu.Unlock()
	return r.opts.now().Sub(r.lastCheckpoint) >= r.opts.Checkpoint
}

// flushDue reports whether what fs holds must be committed now, with a
// checkpoint: its oldest message not yet committed has waited
// Options.Checkpoint, or its writer holds Options.CheckpointBytes.
func (r *run) flushDue(fs *folderSync) bool {
	if r.opts.Checkpoint <= 0 || fs.since.IsZero() {
		return false
	}
	return r.opts.now().Sub(fs.since) >= r.opts.Checkpoint ||
		(r.opts.CheckpointBytes > 0 && fs.bytes >= r.opts.CheckpointBytes)
}

// checkpoint commits, as a partial snapshot, what the run holds so far:
// the folders finished since the last checkpoint, and own, a folder in
// progress whose messages so far are all in committed writers (the caller
// committed its writer, or it is between parts). Without own it does so
// only when checkpointDue; with own, the caller decided (flushDue). The
// run goes on as the next snapshot, which records only what comes after.
// A folder in progress is recorded as failed ("in progress") with no
// UIDNEXT, so that a run killed after the checkpoint examines it again
// and fetches only what the checkpoint does not hold. Folders not reached
// are not listed: they keep their archived state.
func (r *run) checkpoint(jobs []*folderJob, own *folderJob) {
	if r.opts.Checkpoint <= 0 || r.stopped() || (own == nil && !r.checkpointDue()) {
		return
	}
	r.ckMu.Lock()
	defer r.ckMu.Unlock()
	now := r.opts.now()
	if own == nil && now.Sub(r.lastCheckpoint) < r.opts.Checkpoint {
		return // another worker just took one
	}
	r.lastCheckpoint = now
	if own != nil {
		own.mu.Lock()
		defer own.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := &formats.Snapshot{
		ID: r.snap.ID, Seq: r.snap.Seq, Parent: r.snap.Parent,
		Source: r.opts.Source, Protocol: r.opts.Protocol,
		Started: r.snap.Started, Finished: now.UTC(), Status: formats.StatusPartial,
	}
	var took []*folderJob
	added := 0
	for _, j := range jobs {
		if !j.done && j != own {
			continue
		}
		f := j.folder
		if !j.done {
			f.Status, f.Error = formats.FolderFailed, "in progress at a checkpoint"
			f.UIDNext, f.HighestModSeq, f.Messages = 0, 0, 0
		}
		cp.Folders = append(cp.Folders, f)
		if c := j.change; c.Event != "" || len(c.Added)+len(c.Flags)+len(c.Gone) > 0 {
			cp.Changes = append(cp.Changes, c)
			added += len(c.Added)
		}
		cp.Segments = append(cp.Segments, j.segs...)
		took = append(took, j)
	}
	if len(cp.Changes) == 0 {
		return
	}
	sort.Slice(cp.Segments, func(i, j int) bool { return cp.Segments[i].Path < cp.Segments[j].Path })
	if err := r.a.Commit(cp); err != nil {
		// The next checkpoint or the last snapshot holds them.
		r.opts.Log.Warn("could not commit a checkpoint", "err", err)
		return
	}
	for _, j := range took {
		j.change = formats.Change{Folder: j.change.Folder}
		j.segs = nil
	}
	r.checkpoints = append(r.checkpoints, cp)
	r.snap.ID, r.snap.Seq, r.snap.Parent = formats.NewSnapshotID(), cp.Seq+1, cp.ID
	r.opts.hook("checkpoint-committed")
	r.opts.Log.Info("checkpoint committed", "snapshot", cp.ID, "folders", len(took), "messages", added)
}

// pool hands tasks (a folder, or a part of a big folder) to workers. A
// worker waits while the queue is empty but tasks are running, since a
// running folder may add parts.
type pool struct {
	r      *run
	mu     sync.Mutex
	cond   *sync.Cond
	tasks  []func(*worker)
	active int
}

// next returns the next task, or nil when there is none left.
func (p *pool) next() func(*worker) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.tasks) == 0 && p.active > 0 && p.r.ctx.Err() == nil {
		p.cond.Wait()
	}
	if len(p.tasks) == 0 || p.r.stopped() {
		return nil
	}
	t := p.tasks[0]
	p.tasks = p.tasks[1:]
	p.active++
	return t
}

func (p *pool) done() {
	p.mu.Lock()
	p.active--
	p.cond.Broadcast()
	p.mu.Unlock()
}

// pushFront queues tasks ahead of the others.
func (p *pool) pushFront(tasks ...func(*worker)) {
	p.mu.Lock()
	p.tasks = append(tasks, p.tasks...)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// jobSize estimates a folder's work: the messages it may have to fetch.
func jobSize(j *folderJob) int64 {
	if j.fi.Status == nil {
		return 1 << 40 // unknown: start early
	}
	n := int64(j.fi.Status.Messages)
	if j.prev != nil {
		n -= int64(j.prev.Messages)
	}
	return n
}

// run synchronises one folder and records the outcome in the job.
func (w *worker) run(j *folderJob) {
	r := w.r
	err := w.syncFolder(j)
	if err != nil {
		j.folder.Status = formats.FolderFailed
		j.folder.Error = err.Error()
		// The folder is examined again next run (a failed folder is never
		// skipped). UIDVALIDITY stays what the keys stored this run
		// belong to: the one EXAMINE reported, else the archive's.
		j.folder.UIDNext, j.folder.HighestModSeq = 0, 0
		if j.prev != nil && j.folder.UIDValidity == 0 {
			j.folder.UIDValidity = j.prev.UIDValidity
		}
		if errors.Is(err, ErrStorage) {
			r.mu.Lock()
			if r.fatal == nil {
				r.fatal = err
			}
			r.mu.Unlock()
		} else if errors.Is(err, ErrDailyLimit) {
			r.stopAtLimit(err)
		} else if r.ctx.Err() == nil {
			r.fail(j.fi.Name, err)
		}
	} else {
		j.folder.Status = formats.FolderOK
	}
	r.mu.Lock()
	j.done = true
	r.mu.Unlock()
}

// uniqueFolders drops folders listed twice: the same name again, or INBOX
// again in another case (INBOX is case-insensitive, RFC 3501 5.1; go-imap
// spells every variant "INBOX"). The first listing is kept, with the
// status or special use of a later one where it has none.
func uniqueFolders(infos []FolderInfo, log *slog.Logger) []FolderInfo {
	out := infos[:0:0]
	at := map[string]int{}
	for _, fi := range infos {
		id := fi.Name
		if strings.EqualFold(id, "INBOX") {
			id = "INBOX"
		}
		i, seen := at[id]
		if !seen {
			at[id] = len(out)
			out = append(out, fi)
			continue
		}
		log.Warn("the source lists a folder twice; it is backed up once", "folder", out[i].Name, "also", fi.Name)
		if out[i].Status == nil && !fi.NoSelect {
			out[i].Status, out[i].NoSelect = fi.Status, false
		}
		if out[i].SpecialUse == "" {
			out[i].SpecialUse = fi.SpecialUse
		}
	}
	return out
}

// walk backs up every listed folder and records folder events.
func (r *run) walk(infos []FolderInfo) {
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	listed := map[string]bool{}
	for _, fi := range infos {
		listed[fi.Name] = true
	}
	// Folders the archive knows that the source no longer lists.
	vanished := map[uint32]string{}
	var vanishedNames []string
	for name, f := range r.st.Folders {
		if !f.Deleted && !listed[name] {
			vanishedNames = append(vanishedNames, name)
			if f.UIDValidity != 0 {
				vanished[f.UIDValidity] = name
			}
		}
	}
	renamed := map[string]bool{}
	jobs := make([]*folderJob, 0, len(infos))
	for _, fi := range infos {
		prev := r.st.Folders[fi.Name]
		j := &folderJob{fi: fi, change: formats.Change{Folder: fi.Name}, known: prev}
		if prev == nil || prev.Deleted {
			j.change.Event = formats.EventCreated
			// A folder that appears while one with the same UIDVALIDITY
			// vanished was renamed: its messages carry over.
			if fi.Status != nil && fi.Status.UIDValidity != 0 {
				if old, ok := vanished[fi.Status.UIDValidity]; ok && !renamed[old] {
					renamed[old] = true
					j.change.Event, j.change.From = formats.EventRenamed, old
					prev = r.st.Folders[old]
					r.opts.Log.Info("folder renamed", "from", old, "to", fi.Name)
				}
			}
			if j.change.Event == formats.EventCreated {
				prev = nil
			}
		}
		j.prev = prev
		j.folder = formats.Folder{
			Name:       fi.Name,
			Delimiter:  fi.Delimiter,
			Attrs:      fi.Attrs,
			SpecialUse: fi.SpecialUse,
			Dir:        formats.FolderDir(fi.Name),
		}
		jobs = append(jobs, j)
		switch {
		case fi.Err != nil:
			j.folder.Status, j.folder.Error = formats.FolderFailed, fi.Err.Error()
			if prev != nil {
				j.folder.UIDValidity = prev.UIDValidity
			}
			r.fail(fi.Name, fi.Err)
		case fi.NoSelect:
			j.folder.Status = formats.FolderNoSelect
		case prev != nil && unchanged(prev, fi.Status):
			j.folder.UIDValidity, j.folder.UIDNext = prev.UIDValidity, prev.UIDNext
			j.folder.HighestModSeq, j.folder.Messages = prev.HighestModSeq, prev.Messages
			j.folder.Status = formats.FolderUnchanged
		default:
			j.sync = true
		}
	}
	r.jobs = jobs
	r.syncJobs(jobs)
	for _, j := range jobs {
		if j.sync && !j.done {
			// Interrupted: keep what the archive knew.
			if j.known != nil {
				f := j.known.Folder
				f.Status = formats.FolderFailed
				f.Error = "not reached: run stopped"
				r.snap.Folders = append(r.snap.Folders, f)
			}
			continue
		}
		r.snap.Folders = append(r.snap.Folders, j.folder)
		c := j.change // what no checkpoint holds
		if c.Event != "" || len(c.Added)+len(c.Flags)+len(c.Gone) > 0 {
			r.snap.Changes = append(r.snap.Changes, c)
		}
		r.snap.Segments = append(r.snap.Segments, j.segs...)
	}
	// Segments in a stable order, whatever order the workers ended in.
	sort.Slice(r.snap.Segments, func(i, j int) bool { return r.snap.Segments[i].Path < r.snap.Segments[j].Path })
	if r.ctx.Err() != nil || r.fatal != nil {
		return
	}
	sort.Strings(vanishedNames)
	for _, name := range vanishedNames {
		if !renamed[name] {
			r.opts.Log.Info("folder deleted on the server", "folder", name)
			r.snap.Changes = append(r.snap.Changes, formats.Change{Folder: name, Event: formats.EventDeleted})
		}
	}
}

// unchanged reports whether a folder can be skipped without selecting it.
// Without HIGHESTMODSEQ, flag changes are invisible in the status, so the
// folder is always examined.
func unchanged(prev *formats.FolderState, s *FolderStatus) bool {
	if s == nil || prev.Deleted || (prev.Status != formats.FolderOK && prev.Status != formats.FolderUnchanged) {
		return false
	}
	return s.HighestModSeq != 0 && s.UIDValidity == prev.UIDValidity && s.UIDNext == prev.UIDNext &&
		s.Messages == prev.Messages && s.HighestModSeq == prev.HighestModSeq
}

// folderSync is the work on one folder in one run, kept across retries.
type folderSync struct {
	prev      *formats.FolderState             // the archive's state of the folder (or of its old name)
	prevKnown map[string]*formats.MessageState // by key, present in the archive's incarnation
	added     map[string]bool                  // keys added in this run, of the folder's current incarnation
	byHash    map[string]location              // stored in this run, by SHA-256
	seg       formats.RecordWriter
	segs      *[]formats.Segment // the folder's committed segments (under run.mu)
	job       *folderJob         // the folder's job; nil for a part's own folderSync
	part      int                // the writer's part number: 0, or a part of a split folder
	parts     *atomic.Int64      // part numbers handed out so far, shared with the folder's parts
	// since is when the oldest message of the change not yet committed was
	// added (zero: none); stored and bytes count the messages the writer
	// holds, credited to the result once it commits.
	since  time.Time
	stored int
	bytes  int64
	// validity is the UIDVALIDITY the folder's keys belong to (the first
	// EXAMINE's, or the new one after the folder was re-created during the
	// run); restarts counts such re-creations.
	validity uint32
	restarts int
	// poison counts, per key, the connections lost while that message was
	// read: a message that breaks the connection every time is left out
	// (and reported) so that the rest of the folder is still backed up.
	poison map[string]int
}

// errRecreated: the folder was deleted and created again while it was
// fetched; its new incarnation is fetched next.
var errRecreated = errors.New("folder re-created during the run")

// syncFolder brings one folder up to date, retrying on a new connection
// when the connection fails. It fills folder and change.
func (w *worker) syncFolder(j *folderJob) error {
	folder, change, prev := &j.folder, &j.change, j.prev
	r := w.r
	fs := &folderSync{prev: prev, added: map[string]bool{}, byHash: map[string]location{}, poison: map[string]int{}, segs: &j.segs, job: j, parts: &atomic.Int64{}}
	defer func() {
		if fs.seg != nil {
			fs.seg.Abort()
		}
	}()
	var err error
	// One more attempt than asked for, when a message that kept breaking the
	// connection is then left out.
	for attempt := 1; attempt <= r.opts.Attempts+1; attempt++ {
		if attempt > r.opts.Attempts && !fs.poisoned() {
			break
		}
		if w.src == nil {
			if err = w.connect(); err != nil {
				if w.throttled(folder.Name, &err) {
					attempt--
					continue
				}
				break
			}
		}
		err = w.syncOnce(folder, change, prev, fs)
		if errors.Is(err, errRecreated) {
			attempt-- // not a failure: the new folder is fetched (newIncarnation bounds this)
			continue
		}
		if w.throttled(folder.Name, &err) {
			attempt-- // not a failure: resumed after the wait (ThrottleWait bounds this)
			continue
		}
		if err == nil || r.ctx.Err() != nil || !isConnErr(err) || errors.Is(err, ErrStorage) {
			break
		}
		r.opts.Log.Warn("connection lost, reconnecting", "folder", folder.Name, "attempt", attempt, "err", err)
		w.closeSource()
	}
	// Whatever was stored completely is kept, even when the folder failed.
	if cerr := w.commitWriter(fs, change); cerr != nil {
		return cerr
	}
	return err
}

// commitWriter commits the folder's current writer, if it holds messages,
// and credits them to the result; the next message starts a new writer
// (another part number). If the commit fails, the messages the writer held
// are taken out of change: the snapshot never names them.
func (w *worker) commitWriter(fs *folderSync, change *formats.Change) error {
	r := w.r
	fs.since = time.Time{}
	if fs.seg == nil || fs.seg.Records() == 0 {
		return nil
	}
	stored, bytes := fs.stored, fs.bytes
	fs.stored, fs.bytes = 0, 0
	seg, cerr := fs.seg.Commit()
	if cerr != nil {
		kept := change.Added[:0]
		for _, m := range change.Added {
			if !fs.seg.Owns(m.Seg) {
				kept = append(kept, m)
			}
		}
		change.Added = kept
		return storageErr(cerr)
	}
	r.mu.Lock()
	if seg != nil {
		*fs.segs = append(*fs.segs, *seg)
	}
	r.res.Stored += stored
	r.res.Bytes += bytes
	r.mu.Unlock()
	fs.seg = nil
	fs.part = int(fs.parts.Add(1))
	return nil
}

// location is where a message's bytes are stored, and the key it was
// stored for.
type location struct {
	seg string
	off int64
	key string
}

func (fs *folderSync) poisoned() bool {
	for _, n := range fs.poison {
		if n >= 2 {
			return true
		}
	}
	return false
}

// ConnError marks errors after which the connection is unusable and a new
// one may succeed. Adapters wrap such errors with it.
type ConnError struct{ Err error }

func (e *ConnError) Error() string { return e.Err.Error() }
func (e *ConnError) Unwrap() error { return e.Err }

func isConnErr(err error) bool {
	var ce *ConnError
	return errors.As(err, &ce)
}

// newIncarnation is called when the folder's UIDVALIDITY is no longer the
// one its keys belong to: it was deleted and created again during the run.
// Every key of the old folder (archived before, or added by this run) is
// recorded as gone (the bytes stay archived), and the new folder is
// fetched from scratch, its messages deduplicated by content. A second
// re-creation fails the folder: the next run examines it again.
func (w *worker) newIncarnation(folder *formats.Folder, change *formats.Change, fs *folderSync, validity uint32) error {
	old := fs.validity
	fs.restarts++
	retired := make([]string, 0, len(fs.added)+len(fs.prevKnown))
	for k := range fs.added {
		retired = append(retired, k)
	}
	for k := range fs.prevKnown {
		retired = append(retired, k)
	}
	sort.Strings(retired)
	change.Gone = append(change.Gone, retired...)
	change.Flags = nil
	if change.Event == "" {
		change.Event = formats.EventUIDValidity
	}
	fs.validity, folder.UIDValidity = validity, validity
	fs.prevKnown = map[string]*formats.MessageState{}
	fs.added = map[string]bool{}
	fs.poison = map[string]int{}
	w.r.opts.Log.Warn("folder deleted and created again during the run (UIDVALIDITY changed): it is fetched again",
		"folder", folder.Name, "old", old, "new", validity, "fetched from the old folder", len(retired))
	if fs.restarts > 1 {
		return fmt.Errorf("UIDVALIDITY changed again during the run (%d, then %d); the next run fetches the folder", old, validity)
	}
	return nil
}

func (w *worker) syncOnce(folder *formats.Folder, change *formats.Change, prev *formats.FolderState, fs *folderSync) error {
	r := w.r
	status, err := w.src.Examine(r.ctx, folder.Name)
	if err != nil {
		return fmt.Errorf("examine: %w", err)
	}
	if fs.prevKnown != nil && status.UIDValidity != fs.validity {
		// Deleted and created again since this run examined it (the
		// connection broke meanwhile).
		if err := w.newIncarnation(folder, change, fs, status.UIDValidity); err != nil {
			return err
		}
	}
	folder.UIDValidity, folder.UIDNext = status.UIDValidity, status.UIDNext
	folder.Messages, folder.HighestModSeq = status.Messages, status.HighestModSeq

	if fs.prevKnown == nil {
		r.count(func(res *Result) { res.Selected++ })
		fs.validity = status.UIDValidity
		fs.prevKnown = map[string]*formats.MessageState{}
		if prev != nil {
			// A new UIDVALIDITY is a new incarnation: every old key is gone;
			// the messages come back under new keys, deduplicated by hash.
			newIncarnation := prev.UIDValidity != status.UIDValidity
			for _, m := range prev.Present() {
				if newIncarnation {
					change.Gone = append(change.Gone, m.Key)
				} else {
					fs.prevKnown[m.Key] = m
				}
			}
			if newIncarnation {
				if change.Event == "" {
					change.Event = formats.EventUIDValidity
				}
				r.opts.Log.Warn("UIDVALIDITY changed: messages are fetched again and deduplicated by content", "folder", folder.Name, "old", prev.UIDValidity, "new", status.UIDValidity)
			}
		}
	}

	// What the server has now.
	onServer := map[string]bool{}
	var want []string
	skipped := 0
	change.Flags = change.Flags[:0]
	list := func(key string, flags []string, known bool) error {
		onServer[key] = true
		if m := fs.prevKnown[key]; m != nil {
			if !known {
				return nil
			}
			flags = NormalizeFlags(flags)
			if !slices.Equal(m.Flags, flags) {
				change.Flags = append(change.Flags, formats.FlagChange{Key: m.Key, Flags: flags})
			}
			return nil
		}
		if !fs.added[key] && fs.poison[key] < 2 {
			want = append(want, key)
		}
		if fs.poison[key] >= 2 {
			skipped++
		}
		return nil
	}
	listed := false
	if cl, ok := w.src.(ChangeLister); ok && prev != nil && prev.UIDValidity == status.UIDValidity &&
		prev.HighestModSeq != 0 && status.HighestModSeq != 0 && status.HighestModSeq >= prev.HighestModSeq {
		r.opts.Log.Info("listing only flag changes since the last run (CONDSTORE)", "folder", folder.Name, "modseq", prev.HighestModSeq)
		listed, err = cl.ListChanged(r.ctx, prev.HighestModSeq, list)
	}
	if !listed && err == nil {
		err = w.src.List(r.ctx, func(key string, flags []string) error { return list(key, flags, true) })
	}
	if err != nil {
		return fmt.Errorf("list messages: %w", err)
	}
	// Gone since the last run (computed once: the first complete listing).
	var gone []string
	for key, m := range fs.prevKnown {
		if !onServer[key] {
			gone = append(gone, m.Key)
			delete(fs.prevKnown, key)
		}
	}
	sort.Strings(gone)
	change.Gone = append(change.Gone, gone...)
	if skipped > 0 {
		r.opts.Log.Warn("leaving out messages that broke the connection twice", "folder", folder.Name, "messages", skipped)
	}
	if len(want) == 0 {
		if skipped > 0 {
			return fmt.Errorf("%d %w (each broke the connection)", skipped, errMissing)
		}
		return nil
	}
	r.opts.Log.Info("fetching", "folder", folder.Name, "messages", len(want))

	if w.pool != nil && r.opts.Connections > 1 && len(want) >= splitMin {
		if err := w.fetchParts(folder, status.UIDValidity, change, fs, want); err != nil {
			return err
		}
		rest := make([]string, 0, len(want))
		for _, k := range want {
			if !fs.added[k] {
				rest = append(rest, k)
			}
		}
		want = rest
		if w.src == nil {
			// The connection broke while fetching a part: reconnect and
			// fetch what is left.
			return &ConnError{Err: errors.New("connection lost while fetching a part of the folder")}
		}
	}

	missing, expunged := skipped, 0
	for start := 0; start < len(want); start += r.opts.BatchSize {
		batch := want[start:min(start+r.opts.BatchSize, len(want))]
		inBatch := make(map[string]bool, len(batch))
		for _, k := range batch {
			inBatch[k] = true
		}
		delivered := make(map[string]bool, len(batch))
		err := w.src.Fetch(r.ctx, batch, func(m *Message) error {
			if fs.added[m.Key] || fs.prevKnown[m.Key] != nil || !inBatch[m.Key] || delivered[m.Key] {
				_, err := io.Copy(io.Discard, m.Body)
				return err
			}
			if fs.job != nil && r.flushDue(fs) {
				// Commit what this folder holds so far, with the run's
				// finished folders, before this message (maybe a long one
				// on a slow link) is read.
				if err := w.commitWriter(fs, change); err != nil {
					return err
				}
				r.checkpoint(r.jobs, fs.job)
			}
			if err := r.charge(m.Size); err != nil {
				return err
			}
			// Counted once stored: a source may skip a message whose
			// body it could not deliver whole and go on.
			if err := w.storeCharged(folder, change, fs, m); err != nil {
				return err
			}
			delivered[m.Key] = true
			return nil
		})
		if err != nil {
			return fmt.Errorf("fetch: %w", err)
		}
		if len(delivered) < len(batch) {
			n, err := w.expunged(batch, delivered)
			if err != nil {
				return err
			}
			expunged += n
			missing += len(batch) - len(delivered) - n
		}
	}
	if expunged > 0 {
		r.opts.Log.Info("messages expunged on the server while the folder was fetched", "folder", folder.Name, "messages", expunged)
	}
	if status.UIDValidity != 0 {
		// The folder may have been deleted and created again while it was
		// fetched, on a connection that went on serving the old one (whose
		// messages may then be missing): then the new one is fetched.
		again, err := w.src.Examine(r.ctx, folder.Name)
		if err != nil {
			return fmt.Errorf("examine again: %w", err)
		}
		if again.UIDValidity != fs.validity {
			if err := w.newIncarnation(folder, change, fs, again.UIDValidity); err != nil {
				return err
			}
			return errRecreated
		}
	}
	if missing > 0 {
		return fmt.Errorf("%d %w", missing, errMissing)
	}
	return nil
}

// expunged returns how many of the batch's keys that the source did not
// deliver are no longer in the folder (expunged by another client since
// the listing): those are not failures. Without an ExpungeChecker, none.
func (w *worker) expunged(batch []string, delivered map[string]bool) (int, error) {
	ec, ok := w.src.(ExpungeChecker)
	if !ok {
		return 0, nil
	}
	lost := map[string]bool{}
	var keys []string
	for _, k := range batch {
		if !delivered[k] && !lost[k] {
			lost[k] = true
			keys = append(keys, k)
		}
	}
	gone, err := ec.Expunged(w.r.ctx, keys)
	if err != nil {
		return 0, fmt.Errorf("look for expunged messages: %w", err)
	}
	n := 0
	for _, k := range gone {
		if lost[k] {
			delete(lost, k)
			n++
		}
	}
	return n, nil
}

// store writes one fetched message into the folder's segment, or, when the
// folder already holds the same bytes, records it without storing again.
func (w *worker) store(folder *formats.Folder, change *formats.Change, fs *folderSync, m *Message) error {
	r := w.r
	if fs.seg == nil {
		seg, err := r.a.NewWriterPart(folder.Dir, r.runSeq, r.runID, fs.part)
		if err != nil {
			return storageErr(err)
		}
		fs.seg = seg
	}
	flags := NormalizeFlags(m.Flags)
	if err := fs.seg.BeginRecord(m.InternalDate, flags); err != nil {
		return storageErr(err)
	}
	if w.copyBuf == nil {
		w.copyBuf = make([]byte, 64<<10)
		w.hash = sha256.New()
	}
	h := w.hash
	h.Reset()
	w.hc.buf, w.hc.done = w.hc.buf[:0], false
	tee := &teeWriter{seg: fs.seg, h: h, hc: &w.hc, hook: r.opts.hook}
	n, err := io.CopyBuffer(tee, m.Body, w.copyBuf)
	if err != nil {
		fs.seg.AbortRecord()
		if tee.err != nil {
			return storageErr(fmt.Errorf("store %s: %w", m.Key, tee.err))
		}
		fs.poison[m.Key]++
		return &ConnError{Err: fmt.Errorf("read %s: %w", m.Key, err)}
	}
	sum := hex.EncodeToString(h.Sum(nil))
	md := msghdr.Parse(w.hc.buf)
	msg := formats.Message{
		Key:          m.Key,
		SHA256:       sum,
		Size:         n,
		InternalDate: m.InternalDate.UTC(),
		Flags:        flags,
		MessageID:    md.MessageID,
		From:         md.From,
		To:           md.To,
		Subject:      md.Subject,
		Date:         md.Date,
	}
	// The same bytes already stored in this folder (in this run, before, or
	// under its old name) are not stored again.
	var dup *location
	present := false // the stored copy's message is on the source now
	if l, ok := fs.byHash[sum]; ok {
		dup = &l
		present = fs.added[l.key]
	}
	for _, f := range []*formats.FolderState{fs.prev, r.st.Folders[change.Folder]} {
		if dup == nil && f != nil {
			if d := f.ByHash(sum); d != nil {
				dup = &location{d.Seg, d.Off, d.Key}
				present = !d.Gone && fs.prevKnown[d.Key] != nil
			}
		}
	}
	if dup != nil && present && r.a.Config.Storage == formats.StorageMaildir {
		// A Maildir archive keeps one file per message on the source, so
		// that a Maildir reader (or a server serving the archive) sees
		// both copies; the bytes of gone messages (a new UIDVALIDITY) are
		// still reused.
		dup = nil
	}
	if dup != nil {
		if err := fs.seg.AbortRecord(); err != nil {
			return storageErr(err)
		}
		msg.Seg, msg.Off = dup.seg, dup.off
	} else {
		loc, off, err := fs.seg.EndRecord()
		if err != nil {
			return storageErr(fmt.Errorf("store %s: %w", m.Key, err))
		}
		msg.Seg, msg.Off = loc, off
		fs.byHash[sum] = location{loc, off, m.Key}
		fs.stored++
		fs.bytes += n
	}
	change.Added = append(change.Added, msg)
	fs.added[m.Key] = true
	if fs.since.IsZero() {
		fs.since = r.opts.now()
	}
	r.opts.hook("message-stored")
	return nil
}

// A folder with at least splitMin messages to fetch is split into parts of
// at least partMin messages, fetched at once over several connections.
const (
	splitMin = 4000
	partMin  = 1000
)

// fetchPart is a range of a big folder's messages, fetched by whichever
// worker takes it first.
type fetchPart struct {
	index int
	keys  []string
	taken atomic.Bool
}

func (p *fetchPart) take() bool { return p.taken.CompareAndSwap(false, true) }

// fetchParts fetches want in parts: idle workers take parts over their own
// connections (EXAMINE of the same folder), and this worker takes every
// part nobody took. Each part has its own writer. What a part could not
// fetch is left for the caller, which fetches it on its own connection;
// only a storage error is returned.
func (w *worker) fetchParts(folder *formats.Folder, validity uint32, change *formats.Change, fs *folderSync, want []string) error {
	k := min(w.r.opts.Connections, len(want)/partMin)
	if k < 2 {
		return nil
	}
	size := (len(want) + k - 1) / k
	parts := make([]*fetchPart, 0, k)
	for start := 0; start < len(want); start += size {
		parts = append(parts, &fetchPart{index: int(fs.parts.Add(1)), keys: want[start:min(start+size, len(want))]})
	}
	w.r.opts.Log.Info("fetching a big folder in parts", "folder", folder.Name, "messages", len(want), "parts", len(parts))
	var wg sync.WaitGroup
	mu := &fs.job.mu // guards change, fs.added, fs.byHash and errs
	var errs []error
	wg.Add(len(parts))
	run := func(pw *worker, p *fetchPart) {
		defer wg.Done()
		if err := pw.fetchPart(w, folder, validity, p, fs, change, mu); err != nil {
			mu.Lock()
			errs = append(errs, err)
			mu.Unlock()
		}
	}
	var tasks []func(*worker)
	for _, p := range parts[1:] {
		tasks = append(tasks, func(pw *worker) {
			if p.take() {
				run(pw, p)
			}
		})
	}
	w.pool.pushFront(tasks...)
	for _, p := range parts {
		if !p.take() {
			continue // another worker has it
		}
		if w.src == nil {
			wg.Done() // this connection broke: the caller fetches the rest
			continue
		}
		run(w, p)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchPart fetches one part of a folder over pw's connection into writers
// of its own, and adds what they committed to the folder's change, as
// often as a checkpoint is due and at the end. parent is the worker that
// split the folder (its connection has the folder examined already).
func (pw *worker) fetchPart(parent *worker, folder *formats.Folder, validity uint32, p *fetchPart, fs *folderSync, change *formats.Change, mu *sync.Mutex) error {
	r := pw.r
	if pw.src == nil {
		if err := pw.connect(); err != nil {
			if r.ctx.Err() == nil {
				r.opts.Log.Warn("could not connect for a part of a folder", "folder", folder.Name, "err", err)
			}
			return nil
		}
	}
	if pw != parent {
		st, err := pw.src.Examine(r.ctx, folder.Name)
		if err != nil || st.UIDValidity != validity {
			if isConnErr(err) {
				pw.closeSource()
			}
			return nil
		}
	}
	pfs := &folderSync{prev: fs.prev, prevKnown: fs.prevKnown, added: map[string]bool{}, byHash: map[string]location{}, poison: map[string]int{},
		part: p.index, segs: fs.segs, parts: fs.parts}
	defer func() {
		if pfs.seg != nil {
			pfs.seg.Abort()
		}
	}()
	pchange := &formats.Change{Folder: change.Folder}
	// flush commits the part's writer and hands what it holds to the
	// folder; then, when the folder's own writer holds nothing, every
	// message of the folder so far is committed and a checkpoint may take
	// it.
	flush := func(checkpoint bool) error {
		if err := pw.commitWriter(pfs, pchange); err != nil {
			return err
		}
		mu.Lock()
		change.Added = append(change.Added, pchange.Added...)
		for _, m := range pchange.Added {
			fs.added[m.Key] = true
		}
		for h, l := range pfs.byHash {
			if _, ok := fs.byHash[h]; !ok {
				fs.byHash[h] = l
			}
		}
		mu.Unlock()
		pchange.Added = nil
		if checkpoint && fs.job != nil && (fs.seg == nil || fs.seg.Records() == 0) {
			r.checkpoint(r.jobs, fs.job)
		}
		return nil
	}
	inPart := make(map[string]bool, len(p.keys))
	for _, k := range p.keys {
		inPart[k] = true
	}
	var err error
	for start := 0; start < len(p.keys) && err == nil; start += r.opts.BatchSize {
		batch := p.keys[start:min(start+r.opts.BatchSize, len(p.keys))]
		err = pw.src.Fetch(r.ctx, batch, func(m *Message) error {
			if pfs.added[m.Key] || !inPart[m.Key] {
				_, err := io.Copy(io.Discard, m.Body)
				return err
			}
			if r.flushDue(pfs) {
				if err := flush(true); err != nil {
					return err
				}
			}
			if err := r.charge(m.Size); err != nil {
				return err
			}
			return pw.storeCharged(folder, pchange, pfs, m)
		})
	}
	if errors.Is(err, ErrStorage) {
		return err
	}
	if ferr := flush(r.checkpointDue()); ferr != nil {
		return ferr
	}
	if errors.Is(err, ErrDailyLimit) {
		pw.closeSource()
		return err
	}
	if err != nil {
		if r.ctx.Err() == nil {
			r.opts.Log.Warn("a part of a folder failed; the rest is fetched on another connection", "folder", folder.Name, "err", err)
		}
		if isConnErr(err) || r.ctx.Err() == nil {
			pw.closeSource()
		}
	}
	return nil
}

// teeWriter feeds message bytes to the segment, the hash and the header
// capture. A write error of the segment is kept apart from read errors.
type teeWriter struct {
	seg  formats.RecordWriter
	h    hash.Hash
	hc   *headerCapture
	hook func(string)
	err  error
}

func (t *teeWriter) Write(p []byte) (int, error) {
	t.h.Write(p)
	t.hc.Write(p)
	if _, err := t.seg.Write(p); err != nil {
		t.err = err
		return 0, err
	}
	t.hook("body-chunk")
	return len(p), nil
}

// systemFlags maps lower-cased system flags to their canonical spelling.
var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

// NormalizeFlags returns flags with system flags in canonical case, \Recent
// (a session flag) dropped, duplicates removed, sorted.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		lf := strings.ToLower(f)
		if lf == `\recent` || f == "" {
			continue
		}
		if c, ok := systemFlags[lf]; ok {
			f = c
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
