package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// A run: Run, the state of one run, what it records, and its result.

// Options configure a backup run.
type Options struct {
	Source   string // the source URL without any secret, recorded in the manifest
	Protocol string // "imap", …
	Dial     Dialer
	Log      *slog.Logger // nil: discard
	// Hook, when set, is called at named points ("message-stored",
	// "body-chunk", "checkpoint-committed", "deferred-wait": a folder at
	// its end waits for bytes another writer holds; and the archive's own
	// points); crash tests use it.
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
	// Exclude are folder patterns (exclude.go): the folders they match
	// are not backed up, and what the archive holds of them stays.
	Exclude []string
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
	// Progress, when set, is told how the run advances (see Event).
	Progress func(Event)
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

	// The state is the state index (cache/), caught up with the manifests
	// committed after it, or built from them: messages are read from it
	// as folders are synchronised, never held whole.
	ix, err := openIndex(a)
	if err != nil {
		return nil, err
	}
	defer ix.Close()
	res := &Result{}
	if res.Orphans, err = a.RemoveOrphansIndex(ix); err != nil {
		return nil, err
	}
	if len(res.Orphans) > 0 {
		opts.Log.Info("removed leftovers of an interrupted run", "files", len(res.Orphans))
	}

	r := &run{ctx: ctx, a: a, opts: &opts, ix: ix, res: res}
	r.snap = &formats.Snapshot{
		ID:       formats.NewSnapshotID(),
		Seq:      1,
		Source:   opts.Source,
		Protocol: opts.Protocol,
		Started:  opts.now().UTC(),
	}
	if ix.Seq() > 0 {
		r.snap.Seq, r.snap.Parent = ix.Seq()+1, ix.ID()
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
	archived := archivedFolders(ix)
	r.showsAgain = showsAgain(infos)
	infos = r.excludeFolders(infos, archived)
	p := makePlan(archived, infos)
	for _, d := range p.twice {
		opts.Log.Warn("the source lists a folder twice; it is backed up once", "folder", d.kept, "also", d.also)
	}
	res.Folders = len(p.folders)
	if q, ok := r.src.(QuotaReader); ok {
		if quota, has, err := q.Quota(ctx); err != nil {
			opts.Log.Warn("could not read the quota", "err", err)
		} else if has {
			r.snap.Quota = quota
		}
	}
	r.walk(p)

	// The outcome is decided here, from what the snapshot records, and
	// does not change once it is committed: a signal that arrives later
	// interrupts nothing.
	r.snap.Finished = opts.now().UTC()
	interrupted := ctx.Err() != nil
	r.snap.Status = formats.StatusComplete
	if interrupted || r.fatal != nil || r.snap.Incomplete() {
		r.snap.Status = formats.StatusPartial
	}
	if r.fatal == nil {
		// Delta files of folders that ended without sealing them (a
		// storage error stops the run before).
		for _, j := range r.jobs {
			if err := j.out.change.seal(); err != nil {
				r.setFatal(err)
			}
		}
	}
	h, err := a.CommitDeltas(r.snap, r.streamed)
	if err != nil {
		if r.fatal != nil {
			return nil, r.fatal
		}
		return nil, fmt.Errorf("commit snapshot: %w", storageErr(err))
	}
	res.Snapshot = r.snap
	r.headers = append(r.headers, h)
	r.tally()
	// The index follows the committed manifests; failing here damages
	// nothing (the next run catches it up, or builds it again).
	if err := ix.CatchUp(); err != nil {
		opts.Log.Warn("could not update the state index", "err", err)
		ix.Drop()
	} else if err := a.AfterCommitIndex(ix, r.runSeq); err != nil {
		opts.Log.Warn("could not finish after the commit", "err", err)
	}
	if err := ix.ClearRunHashes(); err != nil {
		opts.Log.Warn("could not update the state index", "err", err)
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
// archive holds now, as their headers count the records. Stored and Bytes
// were counted as the writers holding them committed.
func (r *run) tally() {
	res := r.res
	res.Added, res.Gone, res.FlagChanges, res.Failed = 0, 0, 0, nil
	for _, f := range r.snap.Folders {
		if f.Status == formats.FolderFailed {
			res.Failed = append(res.Failed, f.Name)
		}
	}
	for _, h := range r.headers {
		for _, d := range h.Deltas {
			res.Added += d.Added
			res.Gone += d.Gone
			res.FlagChanges += d.FlagChanges
			if f := r.ix.Folder(d.Folder); d.Event == formats.EventDeleted && f != nil && !f.Deleted {
				// Every message present before is gone (the index is
				// not caught up yet).
				res.Gone += int(f.Present)
			}
		}
	}
}

// deleteArchived deletes from the source what the committed archive holds
// and what is old enough, then ends the session so that the deletion takes
// effect. Only folders synchronised in this run are touched. r.ix is at
// the committed snapshot.
func (r *run) deleteArchived() error {
	d, ok := r.src.(Deleter)
	if !ok {
		return nil
	}
	if r.ix.Seq() != r.snap.Seq {
		return fmt.Errorf("the state index is not at snapshot %s", r.snap.ID)
	}
	files, err := r.a.ListSnapshots()
	if err != nil {
		return err
	}
	finished := make([]time.Time, len(files)+1)
	for _, sf := range files {
		m, err := r.a.OpenManifest(sf)
		if err != nil {
			return err
		}
		finished[sf.Seq] = m.Header().Finished
		m.Close()
	}
	cutoff := r.opts.now().Add(-r.opts.DeleteAfter)
	var keys []string
	for _, f := range r.snap.Folders {
		if f.Status != formats.FolderOK && f.Status != formats.FolderUnchanged {
			continue
		}
		xf := r.ix.Folder(f.Name)
		if xf == nil {
			continue
		}
		mi := r.ix.Messages(xf.ID, false)
		for m := mi.Next(); m != nil; m = mi.Next() {
			if m.Gone() || m.AddedIn <= 0 || m.AddedIn >= len(finished) {
				continue
			}
			if t := finished[m.AddedIn]; !t.IsZero() && !t.After(cutoff) {
				keys = append(keys, m.Key)
			}
		}
		err := mi.Err()
		mi.Release()
		if err != nil {
			return err
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

// openIndex opens the archive's state index for a writing run; an index
// that fails while it is caught up is dropped and built again once.
func openIndex(a *formats.Archive) (*formats.Index, error) {
	opts := formats.IndexOptions{Dedup: true}
	ix, err := a.OpenIndex(opts)
	var ie *formats.IndexError
	if errors.As(err, &ie) {
		a.DropIndex()
		ix, err = a.OpenIndex(opts)
	}
	if err != nil {
		return nil, fmt.Errorf("read the archive's state: %w", err)
	}
	if err := ix.ClearRunHashes(); err != nil {
		ix.Close()
		return nil, fmt.Errorf("read the archive's state: %w", err)
	}
	return ix, nil
}

// run is the state of one backup run.
type run struct {
	ctx  context.Context
	a    *formats.Archive
	opts *Options
	ix   *formats.Index // the archive's state at the run's start (caught up after its commit)
	res  *Result
	snap *formats.Snapshot
	src  Source // the connection that listed the folders
	// mu guards res, snap (its id, seq, parent, errors), the jobs' done
	// marks and outcomes, and fatal while workers run.
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
	// headers are the run's committed manifests (checkpoints, then the
	// last), whose entries count the records; streamed are the delta
	// writers of the last snapshot.
	headers  []*formats.Header
	streamed []*formats.DeltaWriter
	jobs     []*folderJob // every listed folder, set before workers start
	// fatal, once set, stops the run: the archive cannot be written.
	fatal error
	// notRenamed are vanished folders the plan took for renamed ones whose
	// content said otherwise (confirmRename): they are deleted. Under mu.
	notRenamed []string
	// limit, once set, stops the run: a daily limit is reached
	// (ErrDailyLimit). throttledSince is when the server first asked to
	// slow down. Both under mu.
	limit          error
	throttledSince time.Time
	// budgetUsed is what the snapshots of the last 24 hours fetched;
	// fetched what this run fetched, for Options.MaxBytesPerDay.
	budgetUsed int64
	fetched    atomic.Int64
	// shared finds the bytes stored for other folders (account.go); nil
	// when the storage keeps a copy per folder. Set before workers start.
	// showsAgain: the source lists folders that show the others'
	// messages again (Gmail's All Mail, Starred), excluded or not.
	shared     *accountDedup
	showsAgain bool
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

// setFatal stops the run: the archive cannot be written.
func (r *run) setFatal(err error) {
	r.mu.Lock()
	if r.fatal == nil {
		r.fatal = err
	}
	r.mu.Unlock()
	if r.shared != nil {
		r.shared.wake() // folders waiting for bytes another one holds
	}
}

// folderJob is one listed folder: planned in name order, synchronised by
// a worker when the plan says so, recorded in name order.
type folderJob struct {
	folderPlan
	// prevState is the archive's state of the folder the plan carries on
	// (folderPlan.prev); nil for a new folder.
	prevState *formats.IndexFolder
	// Under run.mu: done is set once a worker finished with the folder, ok
	// or failed; out is then its outcome (record, delta and committed
	// writers no checkpoint took). A folder that is not synchronised has its
	// planned record there from the start.
	done bool
	out  pending
	// checkpointWanted asks the folder's fetchers to commit their writers
	// with a checkpoint at the next message: another folder waits for a
	// segment of this one to be committed by one (account.go).
	checkpointWanted atomic.Bool
}

// walk carries out the plan: it synchronises the folders that need it,
// then records every listed folder in the snapshot, in name order, and the
// folder events.
func (r *run) walk(p plan) {
	jobs := make([]*folderJob, 0, len(p.folders))
	for _, fp := range p.folders {
		j := &folderJob{folderPlan: fp}
		if fp.prev != "" {
			j.prevState = r.ix.Folder(fp.prev)
		}
		j.out = pending{job: j, folder: fp.folder, change: delta{Change: fp.change, a: r.a}}
		if fp.change.Event == formats.EventRenamed {
			r.opts.Log.Info("folder renamed", "from", fp.change.From, "to", fp.info.Name)
		}
		if fp.action == actFailed {
			r.fail(fp.info.Name, fp.info.Err)
		}
		jobs = append(jobs, j)
	}
	r.jobs = jobs
	r.syncJobs(jobs)
	for _, j := range jobs {
		if j.action == actSync && !j.done {
			// Interrupted: keep what the archive knew.
			if known := r.ix.Folder(j.info.Name); known != nil {
				f := known.Folder
				f.Status = formats.FolderFailed
				f.Error = "not reached: run stopped"
				r.snap.Folders = append(r.snap.Folders, f)
			}
			continue
		}
		r.snap.Folders = append(r.snap.Folders, j.out.folder)
		if !j.out.change.empty() { // what no checkpoint holds
			r.snap.Changes = append(r.snap.Changes, j.out.change.Change)
			r.streamed = append(r.streamed, j.out.change.writers()...)
		}
		r.snap.Segments = append(r.snap.Segments, j.out.segs...)
	}
	// Segments in a stable order, whatever order the workers ended in.
	sort.Slice(r.snap.Segments, func(i, j int) bool { return r.snap.Segments[i].Path < r.snap.Segments[j].Path })
	if r.ctx.Err() != nil || r.fatal != nil {
		return
	}
	deleted := append(p.deleted, r.notRenamed...)
	sort.Strings(deleted)
	for _, name := range deleted {
		r.opts.Log.Info("folder deleted on the server", "folder", name)
		r.snap.Changes = append(r.snap.Changes, formats.Change{Folder: name, Event: formats.EventDeleted})
	}
}
