package backup

import (
	"context"
	"sync"

	"github.com/mailvault/mailvault/formats"
)

// Dedup across folders: the same bytes in several folders of the account
// (Gmail shows a message once per label and again in All Mail; a message
// copied or moved to another folder) are stored once. Each folder's
// manifest records the message, so the archive knows every folder it was
// in; the entries of all but the first point at the one stored copy. A
// folder's own duplicates are found first (fetcher.duplicate); this is the
// lookup the store step asks next (run.shared).
//
// A manifest may only name a location that it, or a snapshot before it,
// commits. The copies found here are therefore: the archive's (committed
// by earlier runs), and what this run's writers committed for folders that
// are done, whose segments every later checkpoint and the last snapshot
// carry. Without checkpoints the run commits one snapshot holding every
// folder it started, so a committed writer of a folder still in progress
// may be named at once.
//
// Only storages that reuse the bytes of a message still on the source do
// this (the mbox segments, formats.Archive.ReuseStored): a Maildir archive
// keeps a file per message in each folder, for Maildir readers.

// sharedCopies finds the bytes stored for another folder of the account.
type sharedCopies interface {
	// find returns where bytes with SHA-256 sum are stored for another
	// folder, if a folder may record them now.
	find(sum string) (location, bool)
}

// accountDedup is the run's sharedCopies: the copies this run committed
// and the archive's folders that may hold the same bytes.
type accountDedup struct {
	mu sync.Mutex
	// ready are this run's copies that may be named; held are the copies
	// committed for folders still in progress (with checkpoints).
	ready map[string]location
	held  map[*folderJob]map[string]location
	// anytime: no checkpoints, every committed copy may be named.
	anytime bool
	// archived are the archive's folders looked in: those this run
	// synchronises (loaded anyway) and All Mail (\All), which holds every
	// message a Gmail account has; all of them when All Mail is
	// synchronised (its new messages are mostly in labels).
	archived []*formats.FolderState
	// others counts the folders to finish before the folders walked last
	// (\All) start; othersDone is closed when none is left.
	others     int
	othersDone chan struct{}
}

func newAccountDedup(anytime bool) *accountDedup {
	return &accountDedup{ready: map[string]location{}, held: map[*folderJob]map[string]location{}, anytime: anytime, othersDone: make(chan struct{})}
}

func (d *accountDedup) find(sum string) (location, bool) {
	d.mu.Lock()
	l, ok := d.ready[sum]
	d.mu.Unlock()
	if ok {
		return l, true
	}
	for _, f := range d.archived {
		if m := f.ByHash(sum); m != nil {
			return location{m.Seg, m.Off, ""}, true
		}
	}
	return location{}, false
}

// committed records the copies a writer of job's folder committed.
func (d *accountDedup) committed(j *folderJob, hashes map[string]location) {
	if len(hashes) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dst := d.ready
	if !d.anytime {
		if dst = d.held[j]; dst == nil {
			dst = map[string]location{}
			d.held[j] = dst
		}
	}
	for sum, l := range hashes {
		if _, ok := dst[sum]; !ok {
			l.key = "" // another folder's key: never this folder's
			dst[sum] = l
		}
	}
}

// finished makes the copies of job's folder, now done, available, and
// counts it towards the folders walked last.
func (d *accountDedup) finished(j *folderJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for sum, l := range d.held[j] {
		if _, ok := d.ready[sum]; !ok {
			d.ready[sum] = l
		}
	}
	delete(d.held, j)
	if !walkedLast(j) && d.others > 0 {
		if d.others--; d.others == 0 {
			close(d.othersDone)
		}
	}
}

// waitOthers blocks a folder walked last until every other folder of the
// run is done (their copies are then found), or ctx ends.
func (d *accountDedup) waitOthers(ctx context.Context) {
	d.mu.Lock()
	none := d.others == 0
	d.mu.Unlock()
	if none {
		return
	}
	select {
	case <-d.othersDone:
	case <-ctx.Done():
	}
}

// walkedLast reports whether a folder is synchronised after the others:
// All Mail (\All) holds every message of the account, most of them also in
// another folder (a label), whose copy it then records. The copies stored
// in All Mail's own directory are the messages with no other folder.
func walkedLast(j *folderJob) bool { return j.info.SpecialUse == `\All` }

// setupShared prepares the dedup across folders for the folders todo (in
// the order they are walked), unless the storage keeps a copy per folder.
func (r *run) setupShared(todo []*folderJob) {
	if !r.a.ReuseStored(true) {
		return
	}
	d := newAccountDedup(r.opts.Checkpoint <= 0)
	seen := map[*formats.FolderState]bool{}
	look := func(f *formats.FolderState) {
		if f != nil && !seen[f] {
			seen[f] = true
			d.archived = append(d.archived, f)
		}
	}
	all := false
	for _, j := range todo {
		look(j.prevState)
		look(r.st.Folders[j.info.Name])
		if !walkedLast(j) {
			d.others++
		} else {
			all = true
		}
	}
	for _, name := range r.st.FolderNames() {
		if f := r.st.Folders[name]; all || f.SpecialUse == `\All` {
			look(f)
		}
	}
	if d.others == 0 {
		close(d.othersDone)
	}
	r.shared = d
}
