package backup

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
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
	prev     *formats.FolderState // the archive's state of the folder (or of its old name); nil for a new one
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
	// deferred are messages whose bytes a folder that started earlier is
	// storing: added once it is done (accountDedup.settle).
	deferred []deferredMsg
}

func newFolderSync(r *run, j *folderJob) *folderSync {
	fs := &folderSync{pending: j.out, prev: j.prevState, known: newKnown()}
	var archive []*formats.FolderState
	for _, f := range []*formats.FolderState{j.prevState, r.st.Folders[j.info.Name]} {
		if f != nil && !slices.Contains(archive, f) {
			archive = append(archive, f)
		}
	}
	fs.fetcher = &fetcher{name: fs.folder.Name, dir: fs.folder.Dir, partNo: &fs.partNo, out: &writer{}, stored: map[string]location{},
		known: fs.known, archive: archive, poison: map[string]int{}, job: j, deferred: &fs.deferred}
	return fs
}

// knownMessages is a folder's "known messages" lookup while it is
// synchronised: the messages the archive holds as present in the
// incarnation being synchronised (archived), and the keys this run added
// to it (added).
type knownMessages struct {
	archived map[string]*formats.MessageState
	added    map[string]bool
}

func newKnown() *knownMessages {
	return &knownMessages{archived: map[string]*formats.MessageState{}, added: map[string]bool{}}
}

// view returns a lookup of the same archived messages with no additions:
// a part's. The archived messages do not change while parts run.
func (k *knownMessages) view() *knownMessages {
	return &knownMessages{archived: k.archived, added: map[string]bool{}}
}

// load adds the archive's present messages.
func (k *knownMessages) load(present []*formats.MessageState) {
	for _, m := range present {
		k.archived[m.Key] = m
	}
}

// lookup returns the archive's message under key, if it is present in the
// incarnation being synchronised.
func (k *knownMessages) lookup(key string) *formats.MessageState { return k.archived[key] }

// has reports whether the folder holds the message under key: archived,
// or added by this run.
func (k *knownMessages) has(key string) bool { return k.added[key] || k.archived[key] != nil }

// add records a key the run added.
func (k *knownMessages) add(key string) { k.added[key] = true }

// dropUnlisted removes the archived keys a complete listing did not name
// and returns them, sorted: gone from the source.
func (k *knownMessages) dropUnlisted(listed map[string]bool) []string {
	var gone []string
	for key, m := range k.archived {
		if !listed[key] {
			gone = append(gone, m.Key)
			delete(k.archived, key)
		}
	}
	sort.Strings(gone)
	return gone
}

// sample returns up to n archived keys, the lowest first (in key order).
func (k *knownMessages) sample(n int) []string {
	keys := make([]string, 0, len(k.archived))
	for key := range k.archived {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	return keys[:min(n, len(keys))]
}

// retire empties the lookup and returns every key it held, sorted: the
// folder was re-created.
func (k *knownMessages) retire() []string {
	keys := make([]string, 0, len(k.added)+len(k.archived))
	for key := range k.added {
		keys = append(keys, key)
	}
	for key := range k.archived {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	*k = *newKnown()
	return keys
}

// delta is a folder's "delta sink": its changes that no snapshot names
// yet. The folder's worker adds to it; a checkpoint or the run's last
// snapshot takes it.
type delta struct{ formats.Change }

// add records messages whose writer committed.
func (d *delta) add(msgs []formats.Message) { d.Added = append(d.Added, msgs...) }

// flag records the new flags of an archived message.
func (d *delta) flag(key string, flags []string) {
	d.Flags = append(d.Flags, formats.FlagChange{Key: key, Flags: flags})
}

// dropFlags forgets the flag changes recorded: a new listing records them
// again, or the folder was re-created.
func (d *delta) dropFlags() { d.Flags = d.Flags[:0] }

// gone records keys no longer on the source.
func (d *delta) gone(keys ...string) { d.Gone = append(d.Gone, keys...) }

// event records ev, unless the delta has an event already.
func (d *delta) event(ev string) {
	if d.Event == "" {
		d.Event = ev
	}
}

func (d *delta) empty() bool {
	return d.Event == "" && len(d.Added)+len(d.Flags)+len(d.Gone) == 0
}

// taken empties the delta once a snapshot committed it.
func (d *delta) taken() { d.Change = formats.Change{Folder: d.Folder} }

// accept takes a committed writer into the folder: its segment, its
// messages into the delta, what it stored into the folder's dedup index,
// and its records into the result.
func (fs *folderSync) accept(r *run, c writerCommit) {
	if c.seg != nil {
		fs.segs = append(fs.segs, *c.seg)
	}
	fs.change.add(c.added)
	fs.fetcher.merge(c.hashes)
	if r.shared != nil {
		r.shared.committed(fs.job, c.hashes)
	}
	if c.stored > 0 || c.bytes > 0 {
		r.count(func(res *Result) {
			res.Stored += c.stored
			res.Bytes += c.bytes
		})
	}
}

// commit commits the folder's own writer into the folder.
func (fs *folderSync) commit(r *run) error {
	c, err := fs.fetcher.out.commit(&fs.partNo)
	if err != nil {
		return err
	}
	fs.accept(r, c)
	return nil
}

// run synchronises one folder and hands the outcome to the run.
func (w *worker) run(j *folderJob) {
	r := w.r
	if r.shared != nil {
		r.shared.waitEarlier(r.ctx, j)
	}
	fs := newFolderSync(r, j)
	if err := w.syncFolder(fs); err != nil {
		fs.folder.Status = formats.FolderFailed
		fs.folder.Error = err.Error()
		// The folder is examined again next run (a failed folder is never
		// skipped). UIDVALIDITY stays what the keys stored this run
		// belong to: the one EXAMINE reported, else the archive's.
		fs.folder.UIDNext, fs.folder.HighestModSeq = 0, 0
		if fs.prev != nil && fs.folder.UIDValidity == 0 {
			fs.folder.UIDValidity = fs.prev.UIDValidity
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
		w.begin(fs, status)
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
	if len(want) == 0 {
		if skipped > 0 {
			return fmt.Errorf("%d %w (each broke the connection)", skipped, errMissing)
		}
		return nil
	}
	r.opts.Log.Info("fetching", "folder", fs.folder.Name, "messages", len(want))
	r.opts.progress(Event{Kind: EventFetching, Folder: fs.folder.Name, Messages: len(want)})

	if w.pool != nil && r.opts.Connections > 1 && len(want) >= splitMin {
		if err := w.fetchParts(fs, status.UIDValidity, want); err != nil {
			return err
		}
		rest := make([]string, 0, len(want))
		for _, k := range want {
			if !fs.known.has(k) {
				rest = append(rest, k)
			}
		}
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
func (w *worker) begin(fs *folderSync, status FolderStatus) {
	r := w.r
	r.count(func(res *Result) { res.Selected++ })
	fs.examined, fs.validity = true, status.UIDValidity
	if fs.prev == nil {
		return
	}
	if fs.prev.UIDValidity == status.UIDValidity {
		fs.known.load(fs.prev.Present())
		fs.confirm = fs.change.Event == formats.EventRenamed
		return
	}
	// A new UIDVALIDITY is a new incarnation: every old key is gone; the
	// messages come back under new keys, deduplicated by hash.
	for _, m := range fs.prev.Present() {
		fs.change.gone(m.Key)
	}
	fs.change.event(formats.EventUIDValidity)
	r.opts.Log.Warn("UIDVALIDITY changed: messages are fetched again and deduplicated by content", "folder", fs.folder.Name, "old", fs.prev.UIDValidity, "new", status.UIDValidity)
}

// list reads what the examined folder holds now. Flag changes of known
// messages go to the delta (all of them again at each listing), archived
// keys the source no longer lists are recorded as gone, and the keys to
// fetch are returned; skipped counts those left out because they broke the
// connection twice.
func (w *worker) list(fs *folderSync, status FolderStatus) (want []string, skipped int, err error) {
	r := w.r
	listed := map[string]bool{}
	poison := fs.fetcher.poison
	fs.change.dropFlags()
	each := func(key string, flags []string, flagsKnown bool) error {
		listed[key] = true
		if m := fs.known.lookup(key); m != nil {
			if !flagsKnown {
				return nil
			}
			flags = formats.NormalizeFlags(flags)
			if !slices.Equal(m.Flags, flags) {
				fs.change.flag(m.Key, flags)
			}
			return nil
		}
		if !fs.known.has(key) && poison[key] < 2 {
			want = append(want, key)
		}
		if poison[key] >= 2 {
			skipped++
		}
		return nil
	}
	done := false
	if cl, ok := w.src.(ChangeLister); ok && fs.prev != nil && fs.prev.UIDValidity == status.UIDValidity &&
		fs.prev.HighestModSeq != 0 && status.HighestModSeq != 0 && status.HighestModSeq >= fs.prev.HighestModSeq {
		r.opts.Log.Info("listing only flag changes since the last run (CONDSTORE)", "folder", fs.folder.Name, "modseq", fs.prev.HighestModSeq)
		done, err = cl.ListChanged(r.ctx, fs.prev.HighestModSeq, each)
	}
	if !done && err == nil {
		err = w.src.List(r.ctx, func(key string, flags []string) error { return each(key, flags, true) })
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list messages: %w", err)
	}
	// Gone since the last run (found once: the first complete listing).
	fs.change.gone(fs.known.dropUnlisted(listed)...)
	return want, skipped, nil
}

// fetch fetches want in batches over this worker's connection. missing
// counts the keys the source did not deliver and still lists; expunged,
// those it no longer lists.
func (w *worker) fetch(fs *folderSync, want []string) (missing, expunged int, err error) {
	r := w.r
	for start := 0; start < len(want); start += r.opts.BatchSize {
		batch := want[start:min(start+r.opts.BatchSize, len(want))]
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
			if r.flushDue(fs.fetcher.out) {
				// Commit what this folder holds so far, with the run's
				// finished folders, before this message (maybe a long one
				// on a slow link) is read.
				if err := fs.commit(r); err != nil {
					return err
				}
				r.checkpoint(&fs.pending)
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
	retired := fs.known.retire()
	fs.change.gone(retired...)
	fs.change.dropFlags()
	fs.change.event(formats.EventUIDValidity)
	fs.validity, fs.folder.UIDValidity = validity, validity
	fs.fetcher.poison = map[string]int{}
	w.r.opts.Log.Warn("folder deleted and created again during the run (UIDVALIDITY changed): it is fetched again",
		"folder", fs.folder.Name, "old", old, "new", validity, "fetched from the old folder", len(retired))
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
	keys := fs.known.sample(confirmSamples)
	if len(keys) == 0 {
		return true, nil // nothing of the old folder is listed: nothing carries over
	}
	want := map[string]string{}
	for _, k := range keys {
		want[k] = fs.known.lookup(k).SHA256
	}
	compared, differ := 0, false
	err := w.src.Fetch(r.ctx, keys, func(m *Message) error {
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
	fs.known.retire()
	fs.change.Gone = fs.change.Gone[:0]
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
