package backup

import (
	"fmt"
	"sort"

	"github.com/mailvault/mailvault/formats"
)

// Checkpoints: with Options.Checkpoint, what a run stored so far is
// committed as partial snapshots during the run, so that a killed run is
// resumed by the next one instead of started over.

// pending is what a folder holds that no snapshot names yet: its record,
// its delta, and the writers it committed. The folder's worker owns it
// while it synchronises the folder and hands it to the run when it is done
// (finish); a checkpoint takes its delta and writers.
type pending struct {
	job    *folderJob
	folder formats.Folder
	change delta
	segs   []formats.Segment
	// deps are segments of other folders in progress that the delta names
	// (a finished folder's, see account.go): a checkpoint takes the
	// folder with them or after them.
	deps []string
}

// finish hands a folder's outcome to the run: its worker is done with it.
func (r *run) finish(p pending) {
	// Its delta files wait for a snapshot without a file open or buffers.
	if err := p.change.seal(); err != nil {
		r.setFatal(err)
	}
	r.mu.Lock()
	p.job.out, p.job.done = p, true
	r.mu.Unlock()
	if r.shared != nil {
		r.shared.finished(p.job, p.deps)
	}
	r.opts.progress(Event{Kind: EventFolderDone, Folder: p.job.info.Name})
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

// flushDue reports whether what w holds must be committed now, with a
// checkpoint: its oldest message not yet committed has waited
// Options.Checkpoint, or it holds Options.CheckpointBytes.
func (r *run) flushDue(w *writer) bool {
	if r.opts.Checkpoint <= 0 || w.since.IsZero() {
		return false
	}
	return r.opts.now().Sub(w.since) >= r.opts.Checkpoint ||
		(r.opts.CheckpointBytes > 0 && w.bytes >= r.opts.CheckpointBytes)
}

// checkpoint commits, as a partial snapshot, what the run holds so far:
// the folders finished since the last checkpoint, and cur, the calling
// worker's folder in progress, whose messages so far are all in committed
// writers (the caller committed its writer, or it is between parts).
// Without cur it does so only when checkpointDue; with cur, the caller
// decided (flushDue). The run goes on as the next snapshot, which records
// only what comes after: the deltas and writers the checkpoint took are
// emptied (cur's too). A folder in progress is recorded as failed ("in
// progress") with no UIDNEXT, so that a run killed after the checkpoint
// examines it again and fetches only what the checkpoint does not hold.
// Folders not reached are not listed: they keep their archived state.
func (r *run) checkpoint(cur *pending) {
	if r.opts.Checkpoint <= 0 || r.stopped() || (cur == nil && !r.checkpointDue()) {
		return
	}
	r.ckMu.Lock()
	defer r.ckMu.Unlock()
	now := r.opts.now()
	if cur == nil && now.Sub(r.lastCheckpoint) < r.opts.Checkpoint {
		return // another worker just took one
	}
	r.lastCheckpoint = now
	r.mu.Lock()
	defer r.mu.Unlock()
	cp := &formats.Snapshot{
		ID: r.snap.ID, Seq: r.snap.Seq, Parent: r.snap.Parent,
		Source: r.opts.Source, Protocol: r.opts.Protocol, Namespace: r.snap.Namespace, Quota: r.snap.Quota,
		Started: r.snap.Started, Finished: now.UTC(), Status: formats.StatusPartial,
	}
	// The finished folders and cur, less those naming segments the
	// checkpoint would not commit (account.go).
	take := map[*folderJob]bool{}
	for _, j := range r.jobs {
		if j.done || (cur != nil && cur.job == j) {
			take[j] = true
		}
	}
	if r.shared != nil {
		r.shared.takeable(take, func(j *folderJob) []string {
			if j.done {
				return j.out.deps
			}
			return cur.deps
		})
	}
	var took []*pending
	var tookDone []*folderJob
	var streamed []*formats.DeltaWriter
	added := 0
	for _, j := range r.jobs {
		if !take[j] {
			continue
		}
		p := &j.out
		if !j.done {
			p = cur
		} else {
			tookDone = append(tookDone, j)
		}
		f := p.folder
		if !j.done {
			f.Status, f.Error = formats.FolderFailed, "in progress at a checkpoint"
			f.UIDNext, f.HighestModSeq, f.Messages = 0, 0, 0
		}
		cp.Folders = append(cp.Folders, f)
		if !p.change.empty() {
			cp.Changes = append(cp.Changes, p.change.Change)
			added += records(p.change.adds)
			streamed = append(streamed, p.change.writers()...)
		}
		cp.Segments = append(cp.Segments, p.segs...)
		took = append(took, p)
	}
	if len(cp.Changes) == 0 {
		return
	}
	sort.Slice(cp.Segments, func(i, j int) bool { return cp.Segments[i].Path < cp.Segments[j].Path })
	h, err := r.a.CommitDeltas(cp, streamed)
	for _, p := range took {
		// Committed, or used up by the failed commit.
		p.change.taken()
		if err == nil {
			p.segs, p.deps = nil, nil
		}
	}
	if err != nil {
		// The records of the delta files it took are lost with it: the
		// run stops (what it stored is fetched again by the next run).
		r.fatal = fmt.Errorf("commit a checkpoint: %w", storageErr(err))
		r.opts.Log.Error("could not commit a checkpoint", "err", err)
		if r.shared != nil {
			r.shared.wake()
		}
		return
	}
	if r.shared != nil {
		r.shared.checkpointed(cp.Segments, tookDone)
	}
	r.checkpoints = append(r.checkpoints, cp)
	r.headers = append(r.headers, h)
	r.snap.ID, r.snap.Seq, r.snap.Parent = formats.NewSnapshotID(), cp.Seq+1, cp.ID
	r.opts.hook("checkpoint-committed")
	r.opts.Log.Info("checkpoint committed", "snapshot", cp.ID, "folders", len(took), "messages", added)
}
