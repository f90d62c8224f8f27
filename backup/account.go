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
	// left counts, per tier (walkOrder), the folders not finished yet;
	// tierDone[t] is closed when none of tier t is left.
	left     [tiers]int
	tierDone [tiers]chan struct{}
}

func newAccountDedup(anytime bool) *accountDedup {
	d := &accountDedup{ready: map[string]location{}, held: map[*folderJob]map[string]location{}, anytime: anytime}
	for t := range d.tierDone {
		d.tierDone[t] = make(chan struct{})
	}
	return d
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
// counts it as done for the folders of later tiers.
func (d *accountDedup) finished(j *folderJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for sum, l := range d.held[j] {
		if _, ok := d.ready[sum]; !ok {
			d.ready[sum] = l
		}
	}
	delete(d.held, j)
	if t := walkOrder(j); d.left[t] > 0 {
		if d.left[t]--; d.left[t] == 0 {
			close(d.tierDone[t])
		}
	}
}

// waitEarlier blocks a folder until every folder of the earlier tiers is
// done (their copies are then found), or ctx ends.
func (d *accountDedup) waitEarlier(ctx context.Context, j *folderJob) {
	for t := range walkOrder(j) {
		select {
		case <-d.tierDone[t]:
		case <-ctx.Done():
			return
		}
	}
}

// The tiers folders are walked in: a tier starts once the folders of the
// earlier ones are done, and records the copies they stored. The folders
// of a tier run at once (over several connections); those of the same
// tier may each store a message they share.
const (
	tierFolders = iota // labels, and every folder on other servers
	tierFlagged        // \Flagged (Gmail's Starred): a subset of the others
	tierAll            // \All (Gmail's All Mail): every message of the account
	tiers
)

// walkOrder returns the tier of a folder. All Mail (\All) holds every
// message of the account, most of them also in another folder (a label),
// whose copy it then records: the copies stored in All Mail's own
// directory are the messages with no other folder.
func walkOrder(j *folderJob) int {
	switch j.info.SpecialUse {
	case `\All`:
		return tierAll
	case `\Flagged`:
		return tierFlagged
	}
	return tierFolders
}

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
		t := walkOrder(j)
		d.left[t]++
		all = all || t == tierAll
	}
	for _, name := range r.st.FolderNames() {
		if f := r.st.Folders[name]; all || f.SpecialUse == `\All` {
			look(f)
		}
	}
	for t, n := range d.left {
		if n == 0 {
			close(d.tierDone[t])
		}
	}
	r.shared = d
}
