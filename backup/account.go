package backup

import (
	"context"
	"fmt"
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
// may be named at once. Folders fetched at the same time: the first to
// read some bytes claims them and stores them; another that reads them
// keeps its message aside (deferredMsg) and records it, with that copy's
// location, once the first folder is done (settle).
//
// Folders are walked in tiers (walkOrder): All Mail after the others, so
// that its own copies are the messages no other folder shows.
//
// Only storages that reuse the bytes of a message still on the source do
// this (the mbox segments, formats.Archive.ReuseStored): a Maildir archive
// keeps a file per message in each folder, for Maildir readers.

// sharedCopies finds the bytes stored for another folder of the account.
type sharedCopies interface {
	// find returns where bytes with SHA-256 sum are stored for another
	// folder, if a folder may record them now; an error tells that the
	// archive's state could not be read.
	find(sum string) (location, bool, error)
}

// accountDedup is the run's sharedCopies: the copies this run committed
// and the archive's folders that may hold the same bytes.
type accountDedup struct {
	mu sync.Mutex
	// inRun: this run's copies are kept for the other folders, which
	// costs a hash per message of the run; only when the account lists
	// folders that show the others' messages again (All Mail, Starred:
	// Gmail; run.showsAgain), even excluded ones. Otherwise only the
	// archive's copies are found.
	inRun bool
	// ready are this run's copies that may be named; held are the copies
	// committed for folders still in progress (with checkpoints).
	ready map[string]location
	held  map[*folderJob]map[string]location
	// anytime: no checkpoints, every committed copy may be named.
	anytime bool
	// archived are the archive's folders looked in: those this run
	// synchronises (loaded anyway) and All Mail (\All), which holds every
	// message a Gmail account has; all of them when All Mail is
	// synchronised (its new messages are mostly in labels). They are
	// folder ids of the state index, looked up by hash (Index.ByHash).
	ix       *formats.Index
	archived []uint32
	// left counts, per tier (walkOrder), the folders not finished yet;
	// tierDone[t] is closed when none of tier t is left.
	left     [tiers]int
	tierDone [tiers]chan struct{}
	// The folders of a tier run at once. claimed names, by SHA-256, the
	// folder in progress that stores those bytes (from the moment it read
	// them); another folder that reads them defers its message
	// (deferredMsg) until that folder is done, instead of storing them
	// again, unless the wait would close a cycle of waits (waits: who
	// waits for whom). done[j] is closed when j's folder finishes.
	claimed map[string]*folderJob
	waits   map[*folderJob]map[*folderJob]bool
	done    map[*folderJob]chan struct{}
}

// deferredMsg is a message whose bytes another folder in progress is
// storing: it is added to its folder once that one is done, with the
// location of that copy.
type deferredMsg struct {
	msg   formats.Message
	owner *folderJob
}

func newAccountDedup(anytime bool) *accountDedup {
	d := &accountDedup{ready: map[string]location{}, held: map[*folderJob]map[string]location{}, anytime: anytime,
		claimed: map[string]*folderJob{}, waits: map[*folderJob]map[*folderJob]bool{}, done: map[*folderJob]chan struct{}{}}
	for t := range d.tierDone {
		d.tierDone[t] = make(chan struct{})
	}
	return d
}

func (d *accountDedup) find(sum string) (location, bool, error) {
	d.mu.Lock()
	l, ok := d.ready[sum]
	d.mu.Unlock()
	if ok {
		return l, true, nil
	}
	for _, fid := range d.archived {
		m, err := d.ix.ByHash(fid, sum)
		if err != nil {
			return location{}, false, err
		}
		if m != nil {
			return location{m.Seg, m.Off, ""}, true, nil
		}
	}
	return location{}, false, nil
}

// claim is asked by a folder about to store bytes no copy holds: it
// returns the folder in progress already storing them, when j's may wait
// for it (canWait, and no cycle of waits); otherwise j's folder stores
// them, and claims them.
func (d *accountDedup) claim(sum string, j *folderJob, canWait bool) (*folderJob, bool) {
	if !d.inRun {
		return nil, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	o, ok := d.claimed[sum]
	switch {
	case !ok:
		d.claimed[sum] = j
	case o != j && canWait && !d.reaches(o, j):
		if d.waits[j] == nil {
			d.waits[j] = map[*folderJob]bool{}
		}
		d.waits[j][o] = true
		return o, true
	}
	return nil, false
}

// reaches reports whether from waits, directly or not, for to; d.mu is
// held.
func (d *accountDedup) reaches(from, to *folderJob) bool {
	seen := map[*folderJob]bool{}
	var walk func(j *folderJob) bool
	walk = func(j *folderJob) bool {
		if j == to {
			return true
		}
		if seen[j] {
			return false
		}
		seen[j] = true
		for k := range d.waits[j] {
			if walk(k) {
				return true
			}
		}
		return false
	}
	return walk(from)
}

// committed records the copies a writer of job's folder committed.
func (d *accountDedup) committed(j *folderJob, hashes map[string]location) {
	if len(hashes) == 0 || !d.inRun {
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
// counts it as done for the folders waiting for it and those of later
// tiers.
func (d *accountDedup) finished(j *folderJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for sum, l := range d.held[j] {
		if _, ok := d.ready[sum]; !ok {
			d.ready[sum] = l
		}
	}
	delete(d.held, j)
	for sum, o := range d.claimed {
		if o == j {
			delete(d.claimed, sum) // committed (ready), or not stored
		}
	}
	delete(d.waits, j)
	if ch := d.done[j]; ch != nil {
		close(ch)
	}
	if t := walkOrder(j); d.left[t] > 0 {
		if d.left[t]--; d.left[t] == 0 {
			close(d.tierDone[t])
		}
	}
}

// waitEarlier blocks a folder until every folder of the earlier tiers is
// done (their copies are then found), or ctx ends; then the folder starts.
func (d *accountDedup) waitEarlier(ctx context.Context, j *folderJob) {
	for t := range walkOrder(j) {
		select {
		case <-d.tierDone[t]:
		case <-ctx.Done():
			return
		}
	}
	d.mu.Lock()
	d.done[j] = make(chan struct{})
	d.mu.Unlock()
}

// settle adds a folder's deferred messages to its delta once the folders
// storing their bytes are done (their records are then committed, in
// every later checkpoint and in the last snapshot), with the location of
// that copy. When the run stops first, cannot write, or a folder did not
// store the bytes after all, it adds none and returns why: the folder
// fails, and the next run fetches them.
func (d *accountDedup) settle(r *run, fs *folderSync) error {
	if len(fs.deferred) == 0 {
		return nil
	}
	for _, dm := range fs.deferred {
		d.mu.Lock()
		ch := d.done[dm.owner]
		d.mu.Unlock()
		select {
		case <-ch:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	r.mu.Lock()
	fatal := r.fatal
	r.mu.Unlock()
	if fatal != nil {
		return fatal
	}
	msgs := make([]addedMessage, len(fs.deferred))
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, dm := range fs.deferred {
		l, ok := d.ready[dm.msg.SHA256]
		if !ok {
			return fmt.Errorf("folder %q did not store the bytes of %s after all", dm.owner.info.Name, dm.msg.Key)
		}
		msgs[i] = addedMessage{Message: dm.msg}
		msgs[i].Seg, msgs[i].Off = l.seg, l.off
	}
	if err := fs.change.add(msgs); err != nil {
		return err
	}
	fs.deferred = nil
	return nil
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

// showsAgain reports whether a source lists folders that show the
// messages of the others again (\All, \Flagged): a Gmail account, whose
// labels then share many messages too.
func showsAgain(infos []FolderInfo) bool {
	for _, fi := range infos {
		if fi.SpecialUse == `\All` || fi.SpecialUse == `\Flagged` {
			return true
		}
	}
	return false
}

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
	d.ix = r.ix
	seen := map[uint32]bool{}
	look := func(f *formats.IndexFolder) {
		if f != nil && !seen[f.ID] {
			seen[f.ID] = true
			d.archived = append(d.archived, f.ID)
		}
	}
	all := false
	for _, j := range todo {
		look(j.prevState)
		look(r.ix.Folder(j.info.Name))
		t := walkOrder(j)
		d.left[t]++
		all = all || t == tierAll
	}
	for _, f := range r.ix.Folders() {
		if all || f.Folder.SpecialUse == `\All` {
			look(f)
		}
	}
	for t, n := range d.left {
		if n == 0 {
			close(d.tierDone[t])
		}
	}
	d.inRun = r.showsAgain
	r.shared = d
}
