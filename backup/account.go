package backup

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/mailvault/mailvault/formats"
)

// Dedup across folders: the same bytes in several folders of the account
// (Gmail shows a message once per label and again in All Mail; a message
// copied or moved to another folder) are stored once. Each folder's
// manifest records the message, so the archive knows every folder it was
// in; the entries of all but the first point at the one stored copy. A
// folder's own duplicates are found first (fetcher.duplicate); this is the
// lookup the store step asks next (accountDedup.lookup).
//
// A manifest may only name a location that it, or a snapshot before it,
// commits. The copies found here are the archive's (committed by earlier
// runs) and this run's, whose writers committed them (their segments are
// fsynced; the state index keeps them by SHA-256 under accountScope, on
// disk). Without checkpoints the run commits one snapshot holding every
// folder it started, so any of this run's committed copies may be named at
// once. With checkpoints, a folder in progress names only the copies that
// a checkpoint committed already, its own, and those of finished folders
// that the next checkpoint takes (closedLocked).
//
// Folders fetched at the same time: the first writer to read some bytes
// claims them (claims) and stores them; another folder that reads them
// keeps its message aside (deferredMsg) and goes on fetching: it never
// waits for another folder while it fetches. Its deferred messages are
// added to its delta once the copy may be named (resolve: after its
// writers commit, and when many wait). At its end, after committing its
// own writers (so that it holds no claim), it waits only for the claims
// of other writers to be committed, and asks them to commit soon
// (writer.wanted): a writer commits without waiting for anything, so these
// waits form no cycle. A copy it may not name yet (with checkpoints: the
// writer's folder is still in progress) is added all the same, and the
// folder carries that segment as a dependency (pending.deps): a checkpoint
// takes a finished folder only together with, or after, the segments it
// depends on; the run's last snapshot takes every folder.
//
// Folders are walked in tiers (walkOrder): All Mail after the others, so
// that its own copies are the messages no other folder shows.
//
// A storage that keeps a file per message in each folder, for Maildir
// readers (a Maildir archive, formats.Archive.LinkStored), stores the
// bytes once too: the file is a hard link to the copy found. Each folder
// then names its own file, never another folder's location, so nothing
// above about naming applies: a folder never defers, and links to a copy
// wherever it is, committed or not (accountDedup.link). The claims still
// tell who stores the bytes; a writer ends the record it claimed right
// away, and the other folders link to that file (accountDedup.ended).
//
// Memory: claims holds a SHA-256 per record of the open writers (at most
// writerMessages each, one writer per connection); uncommitted a path per
// segment no checkpoint commits yet; doneDeps a few segment paths per
// finished folder; each folder's deferred messages are bounded by
// deferMessages between passes (resolve asks the writers holding them to
// commit). The run's copies themselves are in the state index, on disk.

// accountScope is the scope of the run's copies in the state index
// (Index.PutRunHashes): every folder looks there. A folder directory never
// starts with "/" (formats.FolderDir).
const accountScope = "/account"

// deferMessages is how many deferred messages a folder holds before it
// looks which of them it may record (resolve) and asks the writers holding
// the others to commit.
var deferMessages = 2000

// copyState is what accountDedup.lookup found for some bytes.
type copyState int

const (
	copyNone  copyState = iota // no copy: the caller stores them (it claimed them)
	copyHere                   // a copy the folder may name now
	copyLater                  // another writer stores them, or a copy the folder may not name yet: defer
)

// accountDedup is the run's dedup across folders: the copies this run
// committed and the archive's folders that may hold the same bytes.
type accountDedup struct {
	// inRun: this run's copies are kept for the other folders, which
	// costs a hash per message of the run (on disk); only when the
	// account lists folders that show the others' messages again (All
	// Mail, Starred: Gmail; run.showsAgain), even excluded ones.
	// Otherwise only the archive's copies are found.
	inRun bool
	// anytime: no checkpoints, every committed copy may be named.
	anytime bool
	// link: the storage links the bytes found to a file of the folder
	// (formats.Archive.LinkStored): lookup answers copyHere with any
	// copy, the archive's, one this run's writers committed, or one a
	// writer claimed and ended, whose file is complete (endedAt).
	link bool
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

	mu sync.Mutex
	// claims are the bytes, by SHA-256, that a writer read and stores and
	// has not committed yet: the writer.
	claims map[string]*writer
	// ended are, with link, where the writers holding claims stored the
	// bytes (they ended the record), until the claims end.
	ended map[string]location
	// uncommitted are this run's committed segments that no checkpoint
	// commits yet, with their folder (with checkpoints only).
	uncommitted map[string]*folderJob
	// doneDeps are the finished folders no checkpoint took yet, with the
	// segments of other folders their delta names that no checkpoint
	// committed when they finished (pending.deps).
	doneDeps map[*folderJob][]string
	// closed caches closedLocked while version is closedAt.
	closed            map[*folderJob]bool
	version, closedAt int
	// changed is closed, and replaced, when claims end or the run stops:
	// a folder waiting at its end looks at its deferred messages again.
	changed chan struct{}
}

// deferredMsg is a message whose bytes another writer stores: it is added
// to its folder once the copy may be named. loc is the copy, once
// committed (nil while a writer holds the bytes).
type deferredMsg struct {
	msg formats.Message
	loc *location
}

func newAccountDedup(anytime bool) *accountDedup {
	d := &accountDedup{anytime: anytime, claims: map[string]*writer{}, ended: map[string]location{}, uncommitted: map[string]*folderJob{},
		doneDeps: map[*folderJob][]string{}, changed: make(chan struct{}), closedAt: -1}
	for t := range d.tierDone {
		d.tierDone[t] = make(chan struct{})
	}
	return d
}

// lookup finds where bytes with SHA-256 sum, read by f, are stored for
// another folder or by another writer: a copy f may name now (copyHere),
// one it must defer to (copyLater, with the copy when it is committed), or
// none (copyNone): f stores them, and its writer claims them until it
// commits (or aborts). An error tells that the archive's state could not
// be read.
func (d *accountDedup) lookup(sum string, f *fetcher) (location, copyState, error) {
	for _, fid := range d.archived {
		m, err := d.ix.ByHash(fid, sum)
		if err != nil {
			return location{}, copyNone, err
		}
		if m != nil {
			return location{seg: m.Seg, off: m.Off, flags: m.Flags}, copyHere, nil
		}
	}
	if !d.inRun {
		return location{}, copyNone, nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	// Claims first: a writer puts its copies in the index before its
	// claims end (committed), so bytes not claimed now and stored by
	// this run are found there. (f's own writer holds them when a part's
	// writer committed them and the folder did not take that commit in
	// yet: fetcher.duplicate does not find them then.)
	if d.link {
		// The writer holding a claim ends the record as soon as it has
		// it (store: nothing in between waits): its file is linked then.
		for w := d.claims[sum]; w != nil && w != f.out; w = d.claims[sum] {
			if l, ok := d.ended[sum]; ok {
				return l, copyHere, nil
			}
			changed := d.changed
			d.mu.Unlock()
			<-changed
			d.mu.Lock()
		}
	} else if d.claims[sum] != nil {
		return location{}, copyLater, nil
	}
	rl, err := d.ix.RunHash(accountScope, sum)
	if err != nil {
		return location{}, copyNone, err
	}
	if rl != nil {
		l := location{seg: rl.Seg, off: rl.Off}
		if d.link || d.nameableLocked(l.seg, f.job) {
			return l, copyHere, nil
		}
		return l, copyLater, nil
	}
	d.claims[sum] = f.out
	f.out.dedup = d
	return location{}, copyNone, nil
}

// nameableLocked reports whether folder j may name a location in seg (a
// segment this run committed) in its delta now; d.mu is held.
func (d *accountDedup) nameableLocked(seg string, j *folderJob) bool {
	if d.anytime {
		return true
	}
	o, ok := d.uncommitted[seg]
	if !ok || o == j {
		return true // committed by a checkpoint, or j's own
	}
	return d.closedLocked()[o]
}

// closedLocked returns the finished folders that the next checkpoint
// takes whatever else it takes (see takeable); d.mu is held.
func (d *accountDedup) closedLocked() map[*folderJob]bool {
	if d.closedAt != d.version {
		in := make(map[*folderJob]bool, len(d.doneDeps))
		for j := range d.doneDeps {
			in[j] = true
		}
		d.pruneLocked(in, func(j *folderJob) []string { return d.doneDeps[j] })
		d.closed, d.closedAt = in, d.version
	}
	return d.closed
}

// pruneLocked removes from in the folders depending on a segment that no
// checkpoint committed and whose folder is not in in, until none is left;
// d.mu is held.
func (d *accountDedup) pruneLocked(in map[*folderJob]bool, deps func(*folderJob) []string) {
	for again := true; again; {
		again = false
		for j := range in {
			for _, seg := range deps(j) {
				if o, ok := d.uncommitted[seg]; ok && !in[o] {
					delete(in, j)
					again = true
					break
				}
			}
		}
	}
}

// takeable removes from in (the folders a checkpoint would take: the
// finished ones and the caller's in progress) those whose delta names a
// segment the checkpoint would not commit; deps returns a folder's.
func (d *accountDedup) takeable(in map[*folderJob]bool, deps func(*folderJob) []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.pruneLocked(in, deps)
}

// checkpointed records a committed checkpoint: its segments, and the
// finished folders it took.
func (d *accountDedup) checkpointed(segs []formats.Segment, took []*folderJob) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, g := range segs {
		delete(d.uncommitted, g.Path)
	}
	for _, j := range took {
		delete(d.doneDeps, j)
	}
	d.version++
}

// committed records what a writer of folder j committed: its segment, and
// its copies, which other folders find from now on; the writer's claims
// end.
func (d *accountDedup) committed(j *folderJob, c writerCommit) error {
	if !d.inRun {
		return nil
	}
	if c.seg != nil && !d.anytime {
		d.mu.Lock()
		d.uncommitted[c.seg.Path] = j
		d.mu.Unlock()
	}
	if len(c.hashes) > 0 {
		locs := make(map[string]formats.RunLocation, len(c.hashes))
		for sum, l := range c.hashes {
			locs[sum] = formats.RunLocation{Seg: l.seg, Off: l.off}
		}
		if err := d.ix.PutRunHashes(accountScope, locs); err != nil {
			d.release(c.w, c.hashes)
			return storageErr(err)
		}
	}
	d.release(c.w, c.hashes)
	return nil
}

// release ends w's claims on the bytes in hashes: committed, or not
// stored after all.
func (d *accountDedup) release(w *writer, hashes map[string]location) {
	if w == nil || len(hashes) == 0 {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for sum := range hashes {
		if d.claims[sum] == w {
			delete(d.claims, sum)
			delete(d.ended, sum)
		}
	}
	d.wakeLocked()
}

// releaseOne ends w's claim on one message's bytes, which it did not store.
func (d *accountDedup) releaseOne(w *writer, sum string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.claims[sum] == w {
		delete(d.claims, sum)
		delete(d.ended, sum)
	}
	d.wakeLocked()
}

// endedAt records that w, holding the claim on the bytes sum, stored them
// at l (it ended the record): with link, other writers link to that file
// from now on.
func (d *accountDedup) endedAt(w *writer, sum string, l location) {
	if !d.link {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.claims[sum] == w {
		d.ended[sum] = l
		d.wakeLocked()
	}
}

// wake makes the folders waiting at their end look again (the run
// stops).
func (d *accountDedup) wake() {
	d.mu.Lock()
	d.wakeLocked()
	d.mu.Unlock()
}

func (d *accountDedup) wakeLocked() {
	close(d.changed)
	d.changed = make(chan struct{})
}

// resolve adds to fs's delta the deferred messages whose copy the folder
// may name now. With final (the folder fetched all it will), it adds every
// message whose copy is committed, and the segments it may not name yet
// become the folder's dependencies. It returns the writers that still hold
// the bytes of the others, the folders whose segments hold the copies not
// added yet, how many messages no writer stored after all (their claims
// ended without a copy: the run cannot write), and a channel closed when
// claims end.
func (d *accountDedup) resolve(fs *folderSync, final bool) (holders []*writer, owners []*folderJob, lost int, changed <-chan struct{}, err error) {
	var add []addedMessage
	d.mu.Lock()
	changed = d.changed
	keep := fs.deferred[:0]
	for _, dm := range fs.deferred {
		if dm.loc == nil {
			if w := d.claims[dm.msg.SHA256]; w != nil {
				if !slices.Contains(holders, w) {
					holders = append(holders, w)
				}
				keep = append(keep, dm)
				continue
			}
			rl, rerr := d.ix.RunHash(accountScope, dm.msg.SHA256)
			if rerr != nil {
				d.mu.Unlock()
				return nil, nil, 0, nil, fmt.Errorf("look up %s in the archive's state: %w", dm.msg.Key, rerr)
			}
			if rl == nil {
				lost++
				keep = append(keep, dm)
				continue
			}
			dm.loc = &location{seg: rl.Seg, off: rl.Off}
		}
		if ok := d.nameableLocked(dm.loc.seg, fs.job); ok || final {
			if !ok && !slices.Contains(fs.deps, dm.loc.seg) {
				fs.deps = append(fs.deps, dm.loc.seg)
			}
			m := addedMessage{Message: dm.msg}
			m.Seg, m.Off = dm.loc.seg, dm.loc.off
			add = append(add, m)
			continue
		}
		if o := d.uncommitted[dm.loc.seg]; o != nil && !slices.Contains(owners, o) {
			owners = append(owners, o)
		}
		keep = append(keep, dm)
	}
	d.mu.Unlock()
	clear(fs.deferred[len(keep):])
	fs.deferred = keep
	return holders, owners, lost, changed, fs.change.add(add)
}

// tidy records the deferred messages fs may record now; when many are
// left, it asks the writers holding their bytes to commit, and the
// folders holding their copies to take a checkpoint.
func (d *accountDedup) tidy(fs *folderSync) error {
	if len(fs.deferred) == 0 {
		return nil
	}
	holders, owners, _, _, err := d.resolve(fs, false)
	if err != nil {
		return err
	}
	if len(fs.deferred) >= deferMessages {
		for _, w := range holders {
			w.wanted.Store(true)
		}
		for _, o := range owners {
			o.checkpointWanted.Store(true)
		}
	}
	fs.deferNext = len(fs.deferred) + deferMessages
	return nil
}

// settle adds a folder's deferred messages to its delta once the writers
// holding their bytes committed them: called at the folder's end, after
// it committed its own writers. It waits only for writers that commit
// without waiting (see above), and asks them to commit soon. When the run
// stops first, or a writer did not store the bytes after all (the archive
// cannot be written), it returns why: the folder fails, and the next run
// fetches what was not added.
func (d *accountDedup) settle(r *run, fs *folderSync) error {
	for len(fs.deferred) > 0 {
		holders, _, lost, changed, err := d.resolve(fs, true)
		if err != nil {
			return err
		}
		if lost > 0 {
			return fmt.Errorf("%d messages whose bytes another folder read were not stored by it", lost)
		}
		if len(fs.deferred) == 0 {
			break
		}
		for _, w := range holders {
			w.wanted.Store(true)
		}
		r.opts.hook("deferred-wait")
		select {
		case <-changed:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
		r.mu.Lock()
		fatal := r.fatal
		r.mu.Unlock()
		if fatal != nil {
			return fatal
		}
	}
	return nil
}

// finished records a folder as done, with the segments it depends on,
// and counts it as done for the folders of later tiers.
func (d *accountDedup) finished(j *folderJob, deps []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.doneDeps[j] = slices.Clone(deps)
	d.version++
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
}

// The tiers folders are walked in: a tier starts once the folders of the
// earlier ones are done, and records the copies they stored. The folders
// of a tier run at once (over several connections) and defer to each
// other's copies.
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
// the order they are walked), unless the storage keeps a full copy per
// folder.
func (r *run) setupShared(todo []*folderJob) {
	if !r.a.ReuseStored(true) && !r.a.LinkStored() {
		return
	}
	d := newAccountDedup(r.opts.Checkpoint <= 0)
	d.ix, d.link = r.ix, r.a.LinkStored()
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
