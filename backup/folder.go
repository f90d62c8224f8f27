package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync/atomic"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/connerr"
)

// Synchronising one folder: examine it, list what it holds now against
// what the archive knows, fetch what is new (in parts when it is big),
// examine it again to see that it was not re-created meanwhile.
//
// Per-message state of a folder goes through a few narrow seams, each
// with a handful of methods, so that bounded memory can replace their maps
// with the on-disk state index one at a time:
//   - knownMessages: which keys the folder holds (archived in the
//     incarnation synchronised, or added by this run);
//   - the fetcher's dedup index (fetcher.duplicate, fetcher.merge): bytes
//     stored by this run, by SHA-256, next to the archive's;
//   - delta: the changes no snapshot names yet (the "delta sink");
//   - writer: messages stored but not yet committed.
// Besides those, a listing (list) keeps the keys it saw, to find the gone
// ones, and returns the keys to fetch: a merge-join of the listing with
// the known keys, in key order, replaces both.

// folderSync is the work on one folder in one run, kept across retries on
// new connections. Only the worker synchronising the folder uses it; the
// parts of a big folder hand their results to that worker (fetchParts).
type folderSync struct {
	pending                       // the folder's record, delta and committed writers
	prev     *formats.IndexFolder // the archive's state of the folder (or of its old name); nil for a new one
	known    *knownMessages
	fetcher  *fetcher     // stores what this worker's connection fetches
	partNo   atomic.Int64 // writer part numbers handed out, shared with the parts
	examined bool         // the folder was examined once: known is loaded
	// confirm is set for a folder the plan took for a renamed one (a
	// vanished folder had its UIDVALIDITY): its content must show it.
	confirm bool
	// validity is the UIDVALIDITY the folder's keys belong to (the first
	// EXAMINE's, or the new one after the folder was re-created during the
	// run); restarts counts such re-creations.
	validity uint32
	restarts int
	// deferred are messages whose bytes another writer of the run stores:
	// added once the folder may name that copy (account.go); deferNext is
	// how many make the folder look at them before its end
	// (accountDedup.tidy).
	deferred  []deferredMsg
	deferNext int
}

func newFolderSync(r *run, j *folderJob) *folderSync {
	fs := &folderSync{pending: j.out, prev: j.prevState, known: newKnown(r.ix), deferNext: deferMessages}
	var archive []uint32
	for _, f := range []*formats.IndexFolder{j.prevState, r.ix.Folder(j.info.Name)} {
		if f != nil && !slices.Contains(archive, f.ID) {
			archive = append(archive, f.ID)
		}
	}
	fs.fetcher = &fetcher{ix: r.ix, name: fs.folder.Name, dir: fs.folder.Dir, partNo: &fs.partNo, out: &writer{},
		known: fs.known, archive: archive, poison: map[string]int{}, job: j, deferred: &fs.deferred}
	return fs
}

// knownMessages is a folder's "known messages" lookup while it is
// synchronised: the messages the archive holds as present in the
// incarnation being synchronised (archived: read from the state index,
// less those this run recorded as gone), and the keys this run added to it
// (added). Nothing of the archived messages is held in memory but a
// cursor; the keys this run added or dropped are held in compact sets.
type knownMessages struct {
	ix      *formats.Index
	fid     uint32  // the archived folder's id in the index; 0: none
	dropped *keySet // archived keys recorded gone by this run
	added   *keySet // keys this run added (committed writers for a part's view: see parent)
	parent  *keySet // for a part's view: the folder's added keys
	// A cursor over the archived messages in key order: a listing comes
	// in key order, so that lookups are a merge-join, not random reads.
	cur     *formats.MessageIter
	curMsg  formats.IndexMessage
	curOK   bool
	lastKey string
	err     error // the first error of the index; the folder fails with it
}

func newKnown(ix *formats.Index) *knownMessages {
	return &knownMessages{ix: ix, dropped: newKeySet(), added: newKeySet()}
}

// view returns a lookup of the same archived messages with additions of
// its own (a part's), that also sees what the folder added. The archived
// messages and the dropped keys do not change while parts run.
func (k *knownMessages) view() *knownMessages {
	return &knownMessages{ix: k.ix, fid: k.fid, dropped: k.dropped, added: newKeySet(), parent: k.added}
}

// load makes the present messages of the archive's folder fid the
// archived ones.
func (k *knownMessages) load(fid uint32) {
	k.close()
	k.fid = fid
}

// close releases the cursor.
func (k *knownMessages) close() {
	if k.cur != nil {
		if err := k.cur.Err(); err != nil && k.err == nil {
			k.err = err
		}
		k.cur.Release()
		k.cur = nil
	}
	k.curOK, k.lastKey = false, ""
}

// rewind starts the cursor again: a new listing starts from the lowest
// key.
func (k *knownMessages) rewind() { k.close() }

// knownSteps counts the entries knownMessages read (tests).
var knownSteps atomic.Int64

func (k *knownMessages) next() {
	knownSteps.Add(1)
	m := k.cur.Next()
	k.curOK = m != nil
	if m != nil {
		k.curMsg = *m
	}
}

// seekAfter is how many entries find steps over before it seeks.
const seekAfter = 16

// find returns the archive's latest entry of key (present or gone), or
// nil.
func (k *knownMessages) find(key string) *formats.IndexMessage {
	if k.cur != nil && k.lastKey != "" && formats.CompareKeys(key, k.lastKey) < 0 {
		// Out of order: one lookup.
		m, err := k.ix.Get(k.fid, key)
		if err != nil && k.err == nil {
			k.err = err
		}
		return m
	}
	if k.cur == nil {
		k.cur = k.ix.Messages(k.fid, false)
		k.cur.Seek(k.fid, key)
		k.next()
	}
	// A listing asks every key in order: the cursor steps. Keys further
	// apart (the few new messages of a big folder, fetched at its end)
	// are sought: stepping there read the whole folder's entries (15 s
	// for one new message in a folder of 900,000).
	for n := 0; k.curOK && formats.CompareKeys(k.curMsg.Key, key) < 0; n++ {
		if n == seekAfter {
			k.cur.Seek(k.fid, key)
		}
		k.next()
	}
	k.lastKey = key
	if k.curOK && k.curMsg.Key == key {
		m := k.curMsg
		return &m
	}
	return nil
}

// lookup returns the archive's message under key, if it is present in the
// incarnation being synchronised.
func (k *knownMessages) lookup(key string) *formats.IndexMessage {
	if k.fid == 0 || k.dropped.has(key) {
		return nil
	}
	if m := k.find(key); m != nil && !m.Gone() {
		return m
	}
	return nil
}

// has reports whether the folder holds the message under key: archived,
// or added by this run.
func (k *knownMessages) has(key string) bool {
	return k.added.has(key) || k.parent.has(key) || k.lookup(key) != nil
}

// add records a key the run added.
func (k *knownMessages) add(key string) { k.added.add(key) }

// eachArchived calls fn with each archived message present in the
// incarnation being synchronised, in key order.
func (k *knownMessages) eachArchived(fn func(m *formats.IndexMessage) error) error {
	if k.fid == 0 {
		return nil
	}
	mi := k.ix.Messages(k.fid, false)
	defer mi.Release()
	for m := mi.Next(); m != nil; m = mi.Next() {
		if m.Gone() || k.dropped.has(m.Key) {
			continue
		}
		if err := fn(m); err != nil {
			return err
		}
	}
	return mi.Err()
}

// dropUnlisted drops the archived keys a complete listing did not name
// and calls gone with each: gone from the source.
func (k *knownMessages) dropUnlisted(listed *keySet, gone func(key string) error) error {
	var drop []string
	flush := func() error {
		for _, key := range drop {
			k.dropped.add(key)
			if err := gone(key); err != nil {
				return err
			}
		}
		drop = drop[:0]
		return nil
	}
	err := k.eachArchived(func(m *formats.IndexMessage) error {
		if !listed.has(m.Key) {
			drop = append(drop, m.Key)
			if len(drop) >= 1024 {
				return flush()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	k.rewind()
	return flush()
}

// sample returns up to n archived messages, the lowest first (in key
// order).
func (k *knownMessages) sample(n int) ([]formats.IndexMessage, error) {
	var out []formats.IndexMessage
	errEnough := errors.New("enough")
	err := k.eachArchived(func(m *formats.IndexMessage) error {
		out = append(out, *m)
		if len(out) >= n {
			return errEnough
		}
		return nil
	})
	if err != nil && err != errEnough {
		return nil, err
	}
	return out, nil
}

// retire empties the lookup and calls fn with every key it held: the
// folder was re-created.
func (k *knownMessages) retire(fn func(key string) error) error {
	if err := k.eachArchived(func(m *formats.IndexMessage) error { return fn(m.Key) }); err != nil {
		return err
	}
	if err := k.added.each(fn); err != nil {
		return err
	}
	k.close()
	k.fid, k.dropped, k.added = 0, newKeySet(), newKeySet()
	return nil
}

// delta is a folder's "delta sink": its changes that no snapshot names
// yet. The folder's event is in Change; its records go straight to delta
// files, one writer per kind (added, flag changes, gone keys, applied in
// that order), so that none is held in memory. The folder's worker adds
// to it; a checkpoint or the run's last snapshot takes it.
type delta struct {
	formats.Change
	a                 *formats.Archive
	adds, flags, gone *formats.DeltaWriter
}

func (d *delta) writer(w **formats.DeltaWriter) (*formats.DeltaWriter, error) {
	if *w == nil {
		dw, err := d.a.NewDelta(d.Folder)
		if err != nil {
			return nil, storageErr(err)
		}
		*w = dw
	}
	return *w, nil
}

// add records messages whose writer committed.
func (d *delta) add(msgs []addedMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	w, err := d.writer(&d.adds)
	if err != nil {
		return err
	}
	for i := range msgs {
		if err := w.Add(&msgs[i].Message, msgs[i].stored); err != nil {
			return storageErr(err)
		}
	}
	return nil
}

// flag records the new flags of an archived message.
func (d *delta) flag(key string, flags []string) error {
	w, err := d.writer(&d.flags)
	if err != nil {
		return err
	}
	return storageErr(w.Flags(key, flags))
}

// dropFlags forgets the flag changes recorded: a new listing records them
// again, or the folder was re-created.
func (d *delta) dropFlags() {
	if d.flags != nil {
		d.flags.Abort()
		d.flags = nil
	}
}

// gone records a key no longer on the source.
func (d *delta) goneKey(key string) error {
	w, err := d.writer(&d.gone)
	if err != nil {
		return err
	}
	return storageErr(w.Gone(key))
}

// dropGone forgets the gone keys recorded.
func (d *delta) dropGone() {
	if d.gone != nil {
		d.gone.Abort()
		d.gone = nil
	}
}

// event records ev, unless the delta has an event already.
func (d *delta) event(ev string) {
	if d.Event == "" {
		d.Event = ev
	}
}

func records(w *formats.DeltaWriter) int {
	if w == nil {
		return 0
	}
	return w.Records()
}

func (d *delta) empty() bool {
	return d.Event == "" && records(d.adds)+records(d.flags)+records(d.gone) == 0
}

// writers returns the delta's writers holding records, in the order
// they apply.
func (d *delta) writers() []*formats.DeltaWriter {
	var out []*formats.DeltaWriter
	for _, w := range []*formats.DeltaWriter{d.adds, d.flags, d.gone} {
		if w != nil {
			out = append(out, w)
		}
	}
	return out
}

// seal completes the delta's files: the folder is done, its writers wait
// for a snapshot without holding files or buffers.
func (d *delta) seal() error {
	for _, w := range d.writers() {
		if err := w.Seal(); err != nil {
			return storageErr(err)
		}
	}
	return nil
}

// taken empties the delta once a snapshot committed it.
func (d *delta) taken() {
	d.Change = formats.Change{Folder: d.Folder}
	d.adds, d.flags, d.gone = nil, nil, nil
}

// accept takes a committed writer into the folder: its segment, its
// messages into the delta, what it stored into the run's dedup records,
// and its records into the result.
func (fs *folderSync) accept(r *run, c writerCommit) error {
	if c.seg != nil {
		fs.segs = append(fs.segs, *c.seg)
	}
	err := fs.change.add(c.added)
	if err == nil && len(c.hashes) > 0 {
		locs := make(map[string]formats.RunLocation, len(c.hashes))
		for sum, l := range c.hashes {
			locs[sum] = formats.RunLocation{Seg: l.seg, Off: l.off, Key: l.key}
		}
		err = storageErr(r.ix.PutRunHashes(fs.fetcher.dir, locs))
	}
	if r.shared != nil {
		if err != nil {
			r.shared.release(c.w, c.hashes) // no folder names them
			return err
		}
		if err := r.shared.committed(fs.job, c); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	if c.stored > 0 || c.bytes > 0 {
		r.count(func(res *Result) {
			res.Stored += c.stored
			res.Bytes += c.bytes
		})
	}
	return nil
}

// commit commits the folder's own writer into the folder, and records
// the deferred messages it may record now.
func (fs *folderSync) commit(r *run) error {
	c, err := fs.fetcher.out.commit(&fs.partNo)
	if err != nil {
		return err
	}
	if err := fs.accept(r, c); err != nil {
		return err
	}
	return fs.tidy(r)
}

// tidy records the deferred messages the folder may record now
// (accountDedup.tidy).
func (fs *folderSync) tidy(r *run) error {
	if r.shared == nil {
		return nil
	}
	return r.shared.tidy(fs)
}

// run synchronises one folder and hands the outcome to the run.
func (w *worker) run(j *folderJob) {
	r := w.r
	if r.shared != nil {
		r.shared.waitEarlier(r.ctx, j)
	}
	fs := newFolderSync(r, j)
	err := w.syncFolder(fs)
	fs.known.close()
	if err == nil && fs.known.err != nil {
		err = fmt.Errorf("read the archive's state: %w", fs.known.err)
	}
	if err != nil {
		fs.folder.Status = formats.FolderFailed
		fs.folder.Error = err.Error()
		// The folder is examined again next run (a failed folder is never
		// skipped). UIDVALIDITY stays what the keys stored this run
		// belong to: the one EXAMINE reported, else the archive's.
		fs.folder.UIDNext, fs.folder.HighestModSeq = 0, 0
		if fs.prev != nil && fs.folder.UIDValidity == 0 {
			fs.folder.UIDValidity = fs.prev.Folder.UIDValidity
		}
		if errors.Is(err, ErrStorage) {
			r.setFatal(err)
		} else if errors.Is(err, ErrDailyLimit) {
			r.stopAtLimit(err)
		} else if r.ctx.Err() == nil {
			r.fail(j.info.Name, err)
		}
	} else {
		fs.folder.Status = formats.FolderOK
	}
	r.finish(fs.pending)
}

// syncFolder brings one folder up to date, retrying on a new connection
// when the connection fails. It fills the folder's record and delta.
func (w *worker) syncFolder(fs *folderSync) error {
	r := w.r
	defer fs.fetcher.out.abort()
	var err error
	// One more attempt than asked for, when a message that kept breaking the
	// connection is then left out.
	for attempt := 1; attempt <= r.opts.Attempts+1; attempt++ {
		if attempt > r.opts.Attempts && !fs.fetcher.poisoned() {
			break
		}
		if w.src == nil {
			if err = w.connect(); err != nil {
				if w.throttled(fs.folder.Name, &err) {
					attempt--
					continue
				}
				break
			}
		}
		err = w.syncOnce(fs)
		if err != nil && fs.fetcher.out.wanted.Load() {
			// Another folder waits for bytes this writer holds: not
			// through a reconnection or a backoff.
			if cerr := fs.commit(r); cerr != nil {
				return cerr
			}
		}
		if errors.Is(err, errRecreated) {
			attempt-- // not a failure: the new folder is fetched (newIncarnation bounds this)
			continue
		}
		if w.throttled(fs.folder.Name, &err) {
			attempt-- // not a failure: resumed after the wait (ThrottleWait bounds this)
			continue
		}
		if err == nil || r.ctx.Err() != nil || !isConnErr(err) || errors.Is(err, ErrStorage) {
			break
		}
		r.opts.Log.Warn("connection lost, reconnecting", "folder", fs.folder.Name, "attempt", attempt, "err", err)
		w.closeSource()
	}
	// Whatever was stored completely is kept, even when the folder failed.
	if cerr := fs.commit(r); cerr != nil {
		return cerr
	}
	if r.shared != nil {
		if serr := r.shared.settle(r, fs); serr != nil && err == nil {
			err = fmt.Errorf("messages whose bytes another folder stored: %w", serr)
		}
	}
	return err
}

func (w *worker) syncOnce(fs *folderSync) error {
	r := w.r
	status, err := w.src.Examine(r.ctx, fs.folder.Name)
	if err != nil {
		return fmt.Errorf("examine: %w", err)
	}
	if fs.examined && status.UIDValidity != fs.validity {
		// Deleted and created again since this run examined it (the
		// connection broke meanwhile).
		if err := w.newIncarnation(fs, status.UIDValidity); err != nil {
			return err
		}
	}
	fs.folder.UIDValidity, fs.folder.UIDNext = status.UIDValidity, status.UIDNext
	fs.folder.Messages, fs.folder.HighestModSeq = status.Messages, status.HighestModSeq
	if !fs.examined {
		if err := w.begin(fs, status); err != nil {
			return err
		}
	}

	want, skipped, err := w.list(fs, status)
	if err != nil {
		return err
	}
	if fs.confirm {
		same, err := w.confirmRename(fs)
		if err != nil {
			return err
		}
		fs.confirm = false
		if !same {
			if want, skipped, err = w.list(fs, status); err != nil {
				return err
			}
		}
	}
	if skipped > 0 {
		r.opts.Log.Warn("leaving out messages that broke the connection twice", "folder", fs.folder.Name, "messages", skipped)
	}
	if fs.known.err != nil {
		return fmt.Errorf("read the archive's state: %w", fs.known.err)
	}
	if want.len() == 0 {
		if skipped > 0 {
			return fmt.Errorf("%d %w (each broke the connection)", skipped, errMissing)
		}
		return nil
	}
	r.opts.Log.Info("fetching", "folder", fs.folder.Name, "messages", want.len())
	r.opts.progress(Event{Kind: EventFetching, Folder: fs.folder.Name, Messages: want.len()})

	if w.pool != nil && r.opts.Connections > 1 && want.len() >= splitMin {
		if err := w.fetchParts(fs, status.UIDValidity, want); err != nil {
			return err
		}
		rest := &keyList{}
		fs.known.rewind()
		want.each(func(k string) error {
			if !fs.known.has(k) {
				rest.add(k)
			}
			return nil
		})
		want = rest
		if w.src == nil {
			// The connection broke while fetching a part: reconnect and
			// fetch what is left.
			return &connerr.Error{Err: errors.New("connection lost while fetching a part of the folder")}
		}
	}

	missing, expunged, err := w.fetch(fs, want)
	if err != nil {
		return err
	}
	missing += skipped
	if expunged > 0 {
		r.opts.Log.Info("messages expunged on the server while the folder was fetched", "folder", fs.folder.Name, "messages", expunged)
	}
	if status.UIDValidity != 0 {
		// The folder may have been deleted and created again while it was
		// fetched, on a connection that went on serving the old one (whose
		// messages may then be missing): then the new one is fetched.
		again, err := w.src.Examine(r.ctx, fs.folder.Name)
		if err != nil {
			return fmt.Errorf("examine again: %w", err)
		}
		if again.UIDValidity != fs.validity {
			if err := w.newIncarnation(fs, again.UIDValidity); err != nil {
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

// begin is the folder's first EXAMINE in this run: the archive's present
// messages become the known ones, or, under a new UIDVALIDITY, gone.
func (w *worker) begin(fs *folderSync, status FolderStatus) error {
	r := w.r
	r.count(func(res *Result) { res.Selected++ })
	fs.examined, fs.validity = true, status.UIDValidity
	if fs.prev == nil {
		return nil
	}
	if fs.prev.Folder.UIDValidity == status.UIDValidity {
		fs.known.load(fs.prev.ID)
		fs.confirm = fs.change.Event == formats.EventRenamed
		return nil
	}
	// A new UIDVALIDITY is a new incarnation: every old key is gone; the
	// messages come back under new keys, deduplicated by hash.
	old := newKnown(r.ix)
	old.load(fs.prev.ID)
	if err := old.eachArchived(func(m *formats.IndexMessage) error { return fs.change.goneKey(m.Key) }); err != nil {
		return err
	}
	fs.change.event(formats.EventUIDValidity)
	r.opts.Log.Warn("UIDVALIDITY changed: messages are fetched again and deduplicated by content", "folder", fs.folder.Name, "old", fs.prev.Folder.UIDValidity, "new", status.UIDValidity)
	return nil
}

// list reads what the examined folder holds now. Flag changes of known
// messages go to the delta (all of them again at each listing), archived
// keys the source no longer lists are recorded as gone, and the keys to
// fetch are returned; skipped counts those left out because they broke the
// connection twice.
func (w *worker) list(fs *folderSync, status FolderStatus) (want *keyList, skipped int, err error) {
	r := w.r
	listed := newKeySet()
	want = &keyList{}
	poison := fs.fetcher.poison
	fs.change.dropFlags()
	fs.known.rewind()
	each := func(key string, flags []string, flagsKnown bool) error {
		listed.add(key)
		if m := fs.known.lookup(key); m != nil {
			if !flagsKnown {
				return nil
			}
			flags = formats.NormalizeFlags(flags)
			if !slices.Equal(m.Flags, flags) {
				return fs.change.flag(m.Key, flags)
			}
			return nil
		}
		if !fs.known.has(key) && poison[key] < 2 {
			want.add(key)
		}
		if poison[key] >= 2 {
			skipped++
		}
		return nil
	}
	done, partial := false, false
	if sl, ok := w.src.(SinceLister); ok && fs.prev != nil && !fs.confirm && fs.change.Event == "" &&
		fs.prev.Folder.UIDValidity == status.UIDValidity && fs.prev.Folder.UIDNext != 0 &&
		fs.prev.Folder.HighestModSeq != 0 && status.HighestModSeq >= fs.prev.Folder.HighestModSeq {
		p := fs.prev.Folder
		done, err = sl.ListSince(r.ctx, FolderStatus{UIDValidity: p.UIDValidity, UIDNext: p.UIDNext, HighestModSeq: p.HighestModSeq}, fs.prev.Present, each)
		partial = done
		if done && err == nil {
			r.opts.Log.Info("listed only what changed since the last run (no archived message left the folder)", "folder", fs.folder.Name, "new", want.len())
		}
	}
	if cl, ok := w.src.(ChangeLister); ok && !done && err == nil && fs.prev != nil && fs.prev.Folder.UIDValidity == status.UIDValidity &&
		fs.prev.Folder.HighestModSeq != 0 && status.HighestModSeq != 0 && status.HighestModSeq >= fs.prev.Folder.HighestModSeq {
		r.opts.Log.Info("listing only flag changes since the last run (CONDSTORE)", "folder", fs.folder.Name, "modseq", fs.prev.Folder.HighestModSeq)
		done, err = cl.ListChanged(r.ctx, fs.prev.Folder.HighestModSeq, each)
	}
	if !done && err == nil {
		err = w.src.List(r.ctx, func(key string, flags []string) error { return each(key, flags, true) })
	}
	if err != nil {
		if errors.Is(err, ErrStorage) {
			return nil, 0, err
		}
		return nil, 0, fmt.Errorf("list messages: %w", err)
	}
	if fs.known.err != nil {
		return nil, 0, fmt.Errorf("read the archive's state: %w", fs.known.err)
	}
	// Gone since the last run (found once: the first complete listing).
	// A listing of what changed lists no old key: none left.
	if partial {
		return want, skipped, nil
	}
	if err := fs.known.dropUnlisted(listed, fs.change.goneKey); err != nil {
		return nil, 0, err
	}
	return want, skipped, nil
}

// fetch fetches want in batches over this worker's connection. missing
// counts the keys the source did not deliver and still lists; expunged,
// those it no longer lists.
func (w *worker) fetch(fs *folderSync, want *keyList) (missing, expunged int, err error) {
	r := w.r
	fs.known.rewind()
	for start := 0; start < want.len(); start += r.opts.BatchSize {
		batch := want.slice(start, min(start+r.opts.BatchSize, want.len()))
		inBatch := make(map[string]bool, len(batch))
		for _, k := range batch {
			inBatch[k] = true
		}
		delivered := make(map[string]bool, len(batch))
		err := w.src.Fetch(r.ctx, batch, func(m *Message) error {
			if fs.known.has(m.Key) || !inBatch[m.Key] || delivered[m.Key] {
				_, err := io.Copy(io.Discard, m.Body)
				return err
			}
			if commit, checkpoint := r.flushWanted(fs.fetcher.out, fs.job); commit {
				// Commit what this folder holds so far, with the run's
				// finished folders, before this message (maybe a long one
				// on a slow link) is read. (Or only the writer: another
				// folder waits for bytes it holds.)
				if err := fs.commit(r); err != nil {
					return err
				}
				if checkpoint {
					r.checkpoint(&fs.pending)
				}
			}
			if err := r.charge(m.Size); err != nil {
				return err
			}
			// Counted once stored: a source may skip a message whose
			// body it could not deliver whole and go on.
			if err := w.storeCharged(fs.fetcher, m); err != nil {
				return err
			}
			delivered[m.Key] = true
			if fs.fetcher.out.full() {
				// A writer holds a bounded number of messages.
				return fs.commit(r)
			}
			if len(fs.deferred) >= fs.deferNext {
				return fs.tidy(r)
			}
			return nil
		})
		if err != nil {
			return 0, 0, fmt.Errorf("fetch: %w", err)
		}
		if len(delivered) < len(batch) {
			n, err := w.expunged(batch, delivered)
			if err != nil {
				return 0, 0, err
			}
			expunged += n
			missing += len(batch) - len(delivered) - n
		}
	}
	return missing, expunged, nil
}

// newIncarnation is called when the folder's UIDVALIDITY is no longer the
// one its keys belong to: it was deleted and created again during the run.
// Every key of the old folder (archived before, or added by this run) is
// recorded as gone (the bytes stay archived), and the new folder is
// fetched from scratch, its messages deduplicated by content. A second
// re-creation fails the folder: the next run examines it again.
func (w *worker) newIncarnation(fs *folderSync, validity uint32) error {
	old := fs.validity
	fs.restarts++
	retired := 0
	if err := fs.known.retire(func(key string) error {
		retired++
		return fs.change.goneKey(key)
	}); err != nil {
		return err
	}
	fs.change.dropFlags()
	fs.change.event(formats.EventUIDValidity)
	fs.validity, fs.folder.UIDValidity = validity, validity
	fs.fetcher.poison = map[string]int{}
	w.r.opts.Log.Warn("folder deleted and created again during the run (UIDVALIDITY changed): it is fetched again",
		"folder", fs.folder.Name, "old", old, "new", validity, "fetched from the old folder", retired)
	if fs.restarts > 1 {
		return fmt.Errorf("UIDVALIDITY changed again during the run (%d, then %d); the next run fetches the folder", old, validity)
	}
	return nil
}

// confirmSamples is how many archived messages confirmRename compares.
const confirmSamples = 3

// confirmRename checks a folder the plan took for a renamed one by its
// content: UIDVALIDITY alone does not prove it (servers that derive it
// from the clock can give two folders created in the same second the same
// value, and a vanished folder's value may be reused). It fetches up to
// confirmSamples messages the archive holds under keys the server still
// lists and compares their SHA-256. When one differs, or none can be
// compared, the folder is
// fetched whole as a new folder, and the vanished one is recorded as
// deleted (the bytes of identical messages are still reused).
func (w *worker) confirmRename(fs *folderSync) (bool, error) {
	r := w.r
	samples, err := fs.known.sample(confirmSamples)
	if err != nil {
		return false, fmt.Errorf("read the archive's state: %w", err)
	}
	if len(samples) == 0 {
		return true, nil // nothing of the old folder is listed: nothing carries over
	}
	want := map[string]string{}
	var keys []string
	for _, m := range samples {
		want[m.Key] = m.SHA256
		keys = append(keys, m.Key)
	}
	compared, differ := 0, false
	err = w.src.Fetch(r.ctx, keys, func(m *Message) error {
		sum, ok := want[m.Key]
		if !ok {
			_, err := io.Copy(io.Discard, m.Body)
			return err
		}
		h := sha256.New()
		if _, err := io.Copy(h, m.Body); err != nil {
			return &connerr.Error{Err: fmt.Errorf("read %s: %w", m.Key, err)}
		}
		delete(want, m.Key)
		compared++
		if hex.EncodeToString(h.Sum(nil)) != sum {
			differ = true
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("compare with the archive: %w", err)
	}
	if compared > 0 && !differ {
		return true, nil
	}
	// Not a rename: the vanished folder was deleted (all its messages are
	// kept as gone) and this one is new. Its bytes may still be reused.
	vanished := fs.change.From
	if err := fs.known.retire(func(string) error { return nil }); err != nil {
		return false, err
	}
	fs.change.dropGone()
	fs.change.dropFlags()
	fs.change.Event, fs.change.From = formats.EventCreated, ""
	fs.prev = nil
	r.mu.Lock()
	r.notRenamed = append(r.notRenamed, vanished)
	r.mu.Unlock()
	r.opts.Log.Warn("a folder with the UIDVALIDITY of a vanished one holds other messages: not a rename; the vanished folder is recorded as deleted and this one fetched whole",
		"folder", fs.folder.Name, "vanished", vanished, "compared", compared)
	return false, nil
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
