package formats

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/syndtr/goleveldb/leveldb/iterator"
)

// PruneOptions control Prune.
type PruneOptions struct {
	// MaxUnused is the share (percent of message bytes) of records no
	// snapshot needs that a segment may keep: one with more is rewritten.
	// 0 rewrites every segment with anything to free. A segment nothing
	// needs is deleted whatever it is. Maildir files are each all or
	// nothing.
	MaxUnused float64
	DryRun    bool
}

// PruneResult is what Prune (or Erase) freed, or would free on a dry run.
type PruneResult struct {
	Messages   int   // message entries removed from the manifests
	Records    int   // stored copies removed (records, message files)
	Rewritten  int   // segments rewritten with their live records
	Deleted    int   // files deleted whole (segments, message files)
	LeftUnused int   // segments left as they are under MaxUnused
	Freed      int64 // bytes of files removed minus bytes of files written (estimated on a dry run)
	// StoredBefore and StoredAfter are the bytes of every file under
	// folders/, measured (0 on a dry run).
	StoredBefore, StoredAfter int64
	// Erased, for Erase, are the messages erased (those selected and
	// those stored in the same place), in chain order. EraseWith with an
	// Each function leaves it empty (the function gets them).
	Erased []ErasedMessage
	// ErasedCount and ErasedOnSource count the messages erased and those
	// of them the newest snapshot has on the source.
	ErasedCount, ErasedOnSource int
}

// ErasedMessage is a message Erase removed (or would remove).
type ErasedMessage struct {
	Folder, Key, MessageID, Subject string
	Date                            time.Time
	Size                            int64
	// OnSource: the newest snapshot has it on the source, so the next
	// backup stores it again unless it is deleted there.
	OnSource bool
}

// EraseOptions say what EraseWith erases and how it reports it.
type EraseOptions struct {
	// Match selects the messages to erase, by their folder in the newest
	// snapshot's names.
	Match func(folder string, m *Message) bool
	// Selection (the filters as given) and Reason go into the erasure
	// record.
	Selection, Reason string
	DryRun            bool
	// Each, when set, is called with every message erased (or, on a dry
	// run, that would be), in chain order, once the erase is committed;
	// PruneResult.Erased then stays empty, so that nothing grows with
	// the number of messages erased.
	Each func(m ErasedMessage) error
}

// Erase removes the messages match selects (by their folder in the
// newest snapshot's names) from every snapshot and their bytes from disk:
// the segments that hold them are rewritten without them (other messages
// stored in the same place, the same bytes, go too), or their Maildir
// files deleted, and the manifests rewritten; the archive records the
// erasure (when, selection, reason, counts) in erasures/. Nothing else is
// pruned. The caller holds the lock. The result lists the messages
// erased (EraseWith reports them one by one instead).
func (a *Archive) Erase(match func(folder string, m *Message) bool, selection, reason string, dryRun bool) (*PruneResult, error) {
	var erased []ErasedMessage
	res, err := a.EraseWith(EraseOptions{Match: match, Selection: selection, Reason: reason, DryRun: dryRun,
		Each: func(m ErasedMessage) error {
			erased = append(erased, m)
			return nil
		}})
	if res != nil {
		res.Erased = erased
	}
	return res, err
}

// EraseWith is Erase with the messages erased reported through
// opts.Each.
func (a *Archive) EraseWith(opts EraseOptions) (*PruneResult, error) {
	if opts.Match == nil {
		return nil, errors.New("formats: erase without a selection")
	}
	rec := &ErasureRecord{Time: time.Now().UTC(), Selection: opts.Selection, Reason: opts.Reason}
	return a.compactArchive("erase", opts.Match, -1, opts.DryRun, rec, opts.Each)
}

// Prune removes from the archive the stored messages no snapshot needs: a
// message is needed when some snapshot has it present on the source. After
// forget, those are the messages that only forgotten snapshots had. The
// segments that hold them are rewritten with the records still needed
// (written and fsynced first), the manifests rewritten to name the new
// locations and to drop the messages removed, through the rewrite
// journal; the old segments (or, in a Maildir archive, the message files)
// are deleted last. The caller holds the lock.
//
// Memory does not grow with the archive: the chain is replayed from the
// manifests into a temporary on-disk store (which copies are needed, and
// by which messages), the storage works one segment at a time, and the
// manifests that change are written streaming.
func (a *Archive) Prune(opts PruneOptions) (*PruneResult, error) {
	return a.compactArchive("prune", nil, opts.MaxUnused, opts.DryRun, nil, nil)
}

// storedRec is one stored copy (a location) and whether it must stay.
type storedRec struct {
	loc    Location
	msg    *Message // one of the messages stored there
	live   bool     // a kept message is stored there
	forced bool     // an erased message is stored there: it goes, live or not

	insts []*locValue // the messages stored there, in chain order
}

// recIter goes through a segment's stored copies in offset order; it may
// be called more than once.
type recIter func(fn func(r *storedRec) error) error

// compaction is the work a storage does for Prune and Erase: given the
// stored copies and which must stay, free the others. The storage goes
// through the copies with segments (a segment at a time) or each (a copy
// at a time), never holding them all, and says what it did through
// removed and moved; it lists new segments in newSegs and files to
// delete in remove (taken after each segment or copy).
type compaction struct {
	idx        index
	maxUnused  float64
	onlyForced bool // erase: only where an erased message is stored
	dryRun     bool
	res        *PruneResult

	// Set by the storage.
	newSegs map[string]*Segment // a replaced segment's replacement; nil: gone
	remove  []string            // files to delete once no manifest names them

	// Set by compactArchive.
	//
	// segments calls fn with every segment (or Maildir file) holding
	// stored copies, in path order, and an iterator of its copies.
	segments func(fn func(seg string, recs recIter) error) error
	// each calls fn with every stored copy in location order.
	each func(fn func(r *storedRec) error) error
	// removed: r's copy is no longer stored (on a dry run: would not
	// be); moved: it is now at to; force: r's copy goes as an erased
	// one (another name of an erased message's file), for the passes
	// after.
	removed func(r *storedRec) error
	moved   func(r *storedRec, to Location) error
	force   func(r *storedRec) error
}

// Keys of prune's work store besides the walk's own.
const (
	wkLoc   = 'l' // l SEG 0 OFF(8) N(8): message N is stored there (locValue)
	wkMark  = 'z' // z SEG 0 OFF(8) N(8): message N was marked gone (lvGone), in the snapshot that added it (lvDead)
	wkRef   = 'x' // x N(8) SNAP(4): snapshot SNAP has a flag change or gone key of message N
	wkDrop  = 'd' // d N(8): message N is dropped (its copy removed)
	wkMove  = 'm' // m N(8): message N's copy moved there (Location)
	wkErase = 'e' // e N(8): message N is erased (ErasedMessage)
	wkForce = 'f' // f SEG 0 OFF(8): the copy there goes as an erased one
)

func locKey(kind byte, l Location) []byte {
	b := make([]byte, 0, len(l.Seg)+18)
	b = append(append(b, kind), l.Seg...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint64(b, uint64(l.Off))
}

func nKey(kind byte, n int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{kind}, uint64(n))
}

// locValue is a message stored at a location: its number in the chain,
// the snapshot (position) that added it, its folder, whether it is live
// (present at the end of the snapshot that added it) and gone at the
// end, and what storages and reports need of it: for a prune the key,
// size and date, for an erase the whole entry.
type locValue struct {
	n          int64
	live, gone bool
	addSnap    int
	fid        uint32
	msg        Message
}

const (
	lvLive = 1 << iota
	lvGone
	lvFull
	lvDead // in a mark (wkMark): gone in the snapshot that added it
)

func (v *locValue) encode(full bool) []byte {
	var fl byte
	if v.live {
		fl |= lvLive
	}
	if v.gone {
		fl |= lvGone
	}
	if full {
		fl |= lvFull
	}
	e := valEnc{b: []byte{fl}}
	e.uvarint(uint64(v.addSnap))
	e.uvarint(uint64(v.fid))
	if full {
		e.b = encodeMessage(e.b, &IndexMessage{Message: v.msg})
		return e.b
	}
	e.str(v.msg.Key)
	e.varint(v.msg.Size)
	t := v.msg.InternalDate
	_, zone := t.Zone()
	e.varint(t.Unix())
	e.uvarint(uint64(t.Nanosecond()))
	e.varint(int64(zone))
	return e.b
}

var errWorkEntry = errors.New("formats: retention work store: damaged entry")

// decode reads the value of the entry with key k (wkLoc).
func (v *locValue) decode(k, b []byte) error {
	if len(k) < 1+1+16 {
		return errWorkEntry
	}
	seg := string(k[1 : len(k)-17])
	off := int64(binary.BigEndian.Uint64(k[len(k)-16:]))
	v.n = int64(binary.BigEndian.Uint64(k[len(k)-8:]))
	d := valDec{b: b}
	fl := d.byte1()
	v.live, v.gone = fl&lvLive != 0, fl&lvGone != 0
	v.addSnap = int(d.uvarint())
	v.fid = uint32(d.uvarint())
	if d.err != nil {
		return errWorkEntry
	}
	if fl&lvFull != 0 {
		var im IndexMessage
		if err := decodeMessage(d.b, &im); err != nil {
			return errWorkEntry
		}
		v.msg = im.Message
	} else {
		v.msg = Message{Key: d.str(), Size: d.varint()}
		sec, nsec, zone := d.varint(), d.uvarint(), d.varint()
		if d.err != nil || len(d.b) != 0 || nsec >= 1e9 {
			return errWorkEntry
		}
		t := time.Unix(sec, int64(nsec))
		if zone == 0 {
			t = t.UTC()
		} else {
			t = t.In(time.FixedZone("", int(zone)))
		}
		v.msg.InternalDate = t
	}
	v.msg.Seg, v.msg.Off = seg, off
	return nil
}

// snapStart is where a snapshot's records start in a walk: the number of
// its first added message and the offset of its first reference in the
// refs file.
type snapStart struct {
	n    int64
	refs int64
}

// pruneWork is the state of one prune or erase between its passes.
type pruneWork struct {
	a      *Archive
	ch     *snapChain
	st     *workStore
	full   bool // erase: keep whole entries
	starts []snapStart
	names  map[uint32]string // each folder's last name
	// refs records, for each flag change and gone key in chain order,
	// the message it named (N+1, or 0 for none).
	refs    *bufio.Writer
	refsF   *os.File
	refsOff int64
	// dirty marks the snapshots whose manifest changes.
	dirty []bool
	// segSnap is the snapshot (position) that commits each segment.
	segSnap map[string]int
	moves   bool // some message is moved
	drops   bool // some message is dropped
	// remove is the list of files to delete (one per line).
	remove  *bufio.Writer
	removeF *os.File
	removeN int
	forced  int // locations of erased messages

	selected   func(string, *Message) bool // erase: the messages to erase
	forcedMore bool                        // copies forced besides those selected (wkForce)
}

// compactArchive is Prune (selected nil) and Erase (selected names the
// messages to erase, recorded as erasure; each gets them).
func (a *Archive) compactArchive(command string, selected func(folder string, m *Message) bool, maxUnused float64, dryRun bool,
	erasure *ErasureRecord, each func(ErasedMessage) error) (*PruneResult, error) {
	ch, err := a.readChain()
	if err != nil {
		return nil, err
	}
	res := &PruneResult{}
	if !dryRun {
		if err := a.removeRewriteLeftovers(); err != nil {
			return nil, err
		}
		// Segments a killed prune wrote and never committed.
		if err := a.removeChainOrphans(ch); err != nil {
			return nil, err
		}
		if res.StoredBefore, err = a.storedSize(); err != nil {
			return nil, err
		}
	}
	st, err := newWorkStore()
	if err != nil {
		return nil, err
	}
	defer st.close()
	pw := &pruneWork{a: a, ch: ch, st: st, full: selected != nil, selected: selected, dirty: make([]bool, len(ch.snaps)),
		segSnap: map[string]int{}}
	defer pw.closeFiles()
	if err := pw.walk(); err != nil {
		return nil, err
	}
	c := &compaction{idx: ch.segments(), maxUnused: maxUnused, onlyForced: selected != nil, dryRun: dryRun, res: res,
		newSegs: map[string]*Segment{}}
	c.segments = func(fn func(string, recIter) error) error {
		return pw.segments(func(seg string, recs recIter) error {
			if err := fn(seg, recs); err != nil {
				return err
			}
			return pw.drainRemove(c)
		})
	}
	c.each = func(fn func(*storedRec) error) error {
		return pw.stored(nil, func(r *storedRec) error {
			if err := fn(r); err != nil {
				return err
			}
			return pw.drainRemove(c)
		})
	}
	c.removed = func(r *storedRec) error { return pw.removed(res, r) }
	c.moved = pw.moved
	c.force = func(r *storedRec) error {
		pw.forcedMore = true
		return pw.st.put(locKey(wkForce, r.loc), []byte{1})
	}
	if err := a.store.compact(c); err != nil {
		return nil, err
	}
	if err := pw.drainRemove(c); err != nil {
		return nil, err
	}
	for p := range c.newSegs {
		if i, ok := pw.segSnap[p]; ok {
			pw.dirty[i] = true
		}
	}
	if erasure != nil {
		erasure.Messages, erasure.Records = res.ErasedCount, pw.forced
		if res.ErasedCount == 0 {
			return res, nil
		}
	}
	changed := false
	for _, d := range pw.dirty {
		changed = changed || d
	}
	if dryRun || !changed && pw.removeN == 0 {
		if !dryRun {
			res.StoredAfter = res.StoredBefore
		}
		return res, pw.eachErased(each, res)
	}
	if err := pw.rewrite(c); err != nil {
		return nil, err
	}
	snaps := make([]journalSnap, len(ch.snaps))
	for i, cs := range ch.snaps {
		snaps[i] = journalSnap{Seq: cs.h.Seq, ID: cs.h.ID, New: pw.dirty[i]}
	}
	if err := a.commitJournal(command, snaps, pw.eachRemove, erasure); err != nil {
		return nil, err
	}
	if res.StoredAfter, err = a.storedSize(); err != nil {
		return nil, err
	}
	// The state index (cache/) went with the rewrite; the next writer
	// rebuilds it from the new manifests.
	return res, pw.eachErased(each, res)
}

// removeChainOrphans removes what interrupted runs left behind, as
// RemoveOrphans does, knowing the committed segments from the chain's
// headers; a Maildir archive asks the state index which files are named
// (it records every message's location).
func (a *Archive) removeChainOrphans(ch *snapChain) error {
	if a.Config.Storage != StorageMaildir {
		_, err := a.removeOrphans(ch.segments())
		return err
	}
	ix, err := a.OpenIndex(IndexOptions{})
	if err != nil {
		return err
	}
	defer ix.Close()
	_, err = a.RemoveOrphansIndex(ix)
	return err
}

func (pw *pruneWork) closeFiles() {
	if pw.refsF != nil {
		pw.refsF.Close()
	}
	if pw.removeF != nil {
		pw.removeF.Close()
	}
}

// walk is the first pass: every message with where it is stored and
// whether a snapshot has it present (wkLoc), and what refers to it.
func (pw *pruneWork) walk() error {
	f, err := os.Create(pw.st.path("refs"))
	if err != nil {
		return fmt.Errorf("retention work file: %w", err)
	}
	pw.refsF, pw.refs = f, bufio.NewWriterSize(f, 64<<10)
	for i, cs := range pw.ch.snaps {
		for _, g := range cs.h.Segments {
			pw.segSnap[g.Path] = i
		}
	}
	var w *walker
	var buf [binary.MaxVarintLen64]byte
	w = newWalker(pw.ch, pw.st, walkHooks{
		beginSnap: func(i int) error {
			pw.starts = append(pw.starts, snapStart{n: w.n, refs: pw.refsOff})
			return nil
		},
		add: func(i int, f *replayFolder, n int64, m *Message) error {
			v := locValue{live: true, addSnap: i, fid: f.id, msg: *m}
			k := binary.BigEndian.AppendUint64(locKey(wkLoc, m.Location()), uint64(n))
			return pw.st.put(k, v.encode(pw.full))
		},
		ref: func(i int, _ *replayFolder, _ *DeltaRecord, cur *curEntry, _ bool) error {
			var ref uint64
			if cur != nil {
				ref = uint64(cur.n) + 1
				k := binary.BigEndian.AppendUint32(nKey(wkRef, cur.n), uint32(i))
				if err := pw.st.put(k, nil); err != nil {
					return err
				}
			}
			n := binary.PutUvarint(buf[:], ref)
			pw.refsOff += int64(n)
			_, err := pw.refs.Write(buf[:n])
			return err
		},
		gone: func(cur *curEntry) error {
			// Marked apart (no lookup): stored reads the marks with the
			// entries.
			var mark byte = lvGone
			if cur.goneSnap == cur.addSnap {
				mark |= lvDead
			} else if !pw.full {
				return nil
			}
			k := binary.BigEndian.AppendUint64(locKey(wkMark, cur.loc), uint64(cur.n))
			return pw.st.put(k, []byte{mark})
		},
	})
	if err := w.run(); err != nil {
		return err
	}
	pw.names = w.folders.last
	if err := pw.refs.Flush(); err != nil {
		return fmt.Errorf("retention work file: %w", err)
	}
	return pw.st.flush()
}

// segments calls fn with each segment (or Maildir file) that holds
// stored copies, in path order, and an iterator of its copies.
func (pw *pruneWork) segments(fn func(seg string, recs recIter) error) error {
	it, err := pw.st.iterate([]byte{wkLoc})
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		k := it.Key()
		if len(k) < 1+17 {
			return errWorkEntry
		}
		seg := string(k[1 : len(k)-17])
		prefix := append(append([]byte{wkLoc}, seg...), 0)
		recs := func(each func(r *storedRec) error) error { return pw.stored(prefix, each) }
		if err := fn(seg, recs); err != nil {
			return err
		}
		// On to the next segment.
		if !it.Seek(append(append([]byte{wkLoc}, seg...), 1)) {
			break
		}
		it.Prev()
	}
	return it.Error()
}

// stored calls fn with the stored copies whose entries have the prefix
// (nil: all), in location order: a copy is live when a message stored
// there is (present at the end of the snapshot that added it), forced
// when the erase selects one (then it is not live).
func (pw *pruneWork) stored(prefix []byte, fn func(r *storedRec) error) error {
	if prefix == nil {
		prefix = []byte{wkLoc}
	}
	it, err := pw.st.iterate(prefix)
	if err != nil {
		return err
	}
	defer it.Release()
	// The marks of the same messages, in the same order.
	marks, err := pw.st.iterate(append([]byte{wkMark}, prefix[1:]...))
	if err != nil {
		return err
	}
	defer marks.Release()
	marked := marks.Next()
	var r *storedRec
	flush := func() error {
		if r == nil {
			return nil
		}
		if pw.forcedMore && !r.forced {
			forced, err := pw.st.has(locKey(wkForce, r.loc))
			if err != nil {
				return err
			}
			r.forced = forced
		}
		if r.forced {
			r.live = false
		}
		err := fn(r)
		r = nil
		return err
	}
	for it.Next() {
		v := &locValue{}
		if err := v.decode(it.Key(), it.Value()); err != nil {
			return err
		}
		for marked && bytes.Compare(marks.Key()[1:], it.Key()[1:]) < 0 {
			marked = marks.Next()
		}
		if marked && bytes.Equal(marks.Key()[1:], it.Key()[1:]) && len(marks.Value()) == 1 {
			mark := marks.Value()[0]
			v.gone = v.gone || mark&lvGone != 0
			v.live = v.live && mark&lvDead == 0
		}
		loc := v.msg.Location()
		if r != nil && r.loc != loc {
			if err := flush(); err != nil {
				return err
			}
		}
		if r == nil {
			r = &storedRec{loc: loc, msg: &v.msg}
		}
		r.insts = append(r.insts, v)
		r.live = r.live || v.live
		if pw.selected != nil && pw.selected(pw.names[v.fid], &v.msg) {
			r.forced = true
		}
	}
	if err := it.Error(); err != nil {
		return err
	}
	if err := marks.Error(); err != nil {
		return err
	}
	return flush()
}

// moved notes that r's copy is now at to: the manifests that add its
// messages change.
func (pw *pruneWork) moved(r *storedRec, to Location) error {
	pw.moves = true
	for _, v := range r.insts {
		pw.dirty[v.addSnap] = true
		if err := pw.st.put(nKey(wkMove, v.n), encodeLoc(to)); err != nil {
			return err
		}
	}
	return nil
}

// removed notes that r's copy is no longer stored: its messages are
// dropped (and, when it is forced, erased), with the manifests that add
// them or have a flag change or gone key of them.
func (pw *pruneWork) removed(res *PruneResult, r *storedRec) error {
	res.Records++
	if r.forced {
		pw.forced++
	}
	for _, v := range r.insts {
		pw.drops = true
		res.Messages++
		pw.dirty[v.addSnap] = true
		if err := pw.st.put(nKey(wkDrop, v.n), []byte{1}); err != nil {
			return err
		}
		if err := pw.refDirty(v.n); err != nil {
			return err
		}
		if r.forced {
			res.ErasedCount++
			if !v.gone {
				res.ErasedOnSource++
			}
			em := ErasedMessage{Folder: pw.names[v.fid], Key: v.msg.Key, MessageID: v.msg.MessageID, Subject: v.msg.Subject,
				Date: v.msg.InternalDate, Size: v.msg.Size, OnSource: !v.gone}
			if err := pw.st.put(nKey(wkErase, v.n), encodeErased(&em)); err != nil {
				return err
			}
		}
	}
	return nil
}

// refDirty marks the snapshots with a flag change or gone key of message
// n as changing.
func (pw *pruneWork) refDirty(n int64) error {
	it, err := pw.st.iterate(nKey(wkRef, n))
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		k := it.Key()
		if len(k) != 13 {
			return errWorkEntry
		}
		if i := int(binary.BigEndian.Uint32(k[9:])); i < len(pw.dirty) {
			pw.dirty[i] = true
		}
	}
	return it.Error()
}

// drainRemove moves the storage's list of files to delete to the work
// file.
func (pw *pruneWork) drainRemove(c *compaction) error {
	if len(c.remove) == 0 {
		return nil
	}
	if pw.remove == nil {
		f, err := os.Create(pw.st.path("remove"))
		if err != nil {
			return fmt.Errorf("retention work file: %w", err)
		}
		pw.removeF, pw.remove = f, bufio.NewWriterSize(f, 64<<10)
	}
	for _, p := range c.remove {
		if _, err := pw.remove.WriteString(p + "\n"); err != nil {
			return fmt.Errorf("retention work file: %w", err)
		}
		pw.removeN++
	}
	c.remove = c.remove[:0]
	return nil
}

// eachRemove calls fn with each file to delete.
func (pw *pruneWork) eachRemove(fn func(string) error) error {
	if pw.remove == nil {
		return nil
	}
	if err := pw.remove.Flush(); err != nil {
		return fmt.Errorf("retention work file: %w", err)
	}
	if _, err := pw.removeF.Seek(0, io.SeekStart); err != nil {
		return err
	}
	sc := bufio.NewScanner(pw.removeF)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if err := fn(sc.Text()); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("retention work file: %w", err)
	}
	_, err := pw.removeF.Seek(0, io.SeekEnd)
	return err
}

func encodeLoc(l Location) []byte {
	e := valEnc{}
	e.str(l.Seg)
	e.varint(l.Off)
	return e.b
}

func decodeLoc(b []byte) (Location, error) {
	d := valDec{b: b}
	l := Location{Seg: d.str(), Off: d.varint()}
	if d.err != nil || len(d.b) != 0 {
		return l, errWorkEntry
	}
	return l, nil
}

func encodeErased(m *ErasedMessage) []byte {
	e := valEnc{}
	for _, s := range []string{m.Folder, m.Key, m.MessageID, m.Subject} {
		e.str(s)
	}
	e.varint(m.Date.UnixNano())
	e.varint(m.Size)
	if m.OnSource {
		e.uvarint(1)
	} else {
		e.uvarint(0)
	}
	return e.b
}

func decodeErased(b []byte) (ErasedMessage, error) {
	d := valDec{b: b}
	m := ErasedMessage{Folder: d.str(), Key: d.str(), MessageID: d.str(), Subject: d.str()}
	m.Date = time.Unix(0, d.varint()).UTC()
	m.Size = d.varint()
	m.OnSource = d.uvarint() == 1
	if d.err != nil || len(d.b) != 0 {
		return m, errWorkEntry
	}
	return m, nil
}

// eachErased calls each (if set) with the messages erased, in chain
// order.
func (pw *pruneWork) eachErased(each func(ErasedMessage) error, res *PruneResult) error {
	if each == nil || res.ErasedCount == 0 {
		return nil
	}
	it, err := pw.st.iterate([]byte{wkErase})
	if err != nil {
		return err
	}
	defer it.Release()
	for it.Next() {
		m, err := decodeErased(it.Value())
		if err != nil {
			return err
		}
		if err := each(m); err != nil {
			return err
		}
	}
	return it.Error()
}

// rewrite writes the new manifest of every snapshot that changes (as
// snapshots/SEQ-ID.json.new): the dropped messages left out (their added
// entries, flag changes and gone keys; a change left with nothing and no
// event goes), the moved ones at their new locations, the replaced
// segments in place of the old ones.
func (pw *pruneWork) rewrite(c *compaction) error {
	for i, cs := range pw.ch.snaps {
		if !pw.dirty[i] {
			continue
		}
		ns := cs.h.Snapshot
		ns.Changes, ns.Segments = nil, nil
		for _, g := range cs.h.Segments {
			if ng, ok := c.newSegs[g.Path]; ok {
				if ng != nil {
					ns.Segments = append(ns.Segments, *ng)
				}
				continue
			}
			ns.Segments = append(ns.Segments, g)
		}
		if err := pw.a.writeNewManifest(&ns, func(sw *SnapshotStream) error { return pw.rewriteSnapshot(i, cs, sw) }); err != nil {
			return err
		}
	}
	return nil
}

func (pw *pruneWork) rewriteSnapshot(i int, cs *chainSnap, sw *SnapshotStream) error {
	m, err := pw.a.OpenManifest(cs.sf)
	if err != nil {
		return err
	}
	defer m.Close()
	if _, err := pw.refsF.Seek(pw.starts[i].refs, io.SeekStart); err != nil {
		return err
	}
	refs := bufio.NewReaderSize(pw.refsF, 64<<10)
	n := pw.starts[i].n
	// The messages dropped and moved, by number: the snapshot's added
	// messages come in that order.
	drops, err := pw.byNumber(wkDrop, n, pw.drops)
	if err != nil {
		return err
	}
	defer drops.close()
	moves, err := pw.byNumber(wkMove, n, pw.moves)
	if err != nil {
		return err
	}
	defer moves.close()
	for ci := range cs.changes {
		c := &cs.changes[ci]
		begun := false
		begin := func() error {
			if begun {
				return nil
			}
			begun = true
			return sw.BeginChange(c.Folder, c.Event, c.From)
		}
		err := cs.records(m, ci, func(r *DeltaRecord) error {
			var drop bool
			if r.Kind == RecordAdded {
				k := n
				n++
				if drop = drops.at(k) != nil; !drop {
					if b := moves.at(k); b != nil {
						to, err := decodeLoc(b)
						if err != nil {
							return err
						}
						r.Message.Seg, r.Message.Off = to.Seg, to.Off
					}
				}
				if err := drops.err(); err != nil {
					return err
				}
				if err := moves.err(); err != nil {
					return err
				}
			} else {
				ref, err := binary.ReadUvarint(refs)
				if err != nil {
					return fmt.Errorf("retention work file: %w", err)
				}
				if ref > 0 && pw.drops {
					if drop, err = pw.st.has(nKey(wkDrop, int64(ref-1))); err != nil {
						return err
					}
				}
			}
			if drop {
				return nil
			}
			if err := begin(); err != nil {
				return err
			}
			return sw.Record(r)
		})
		if err != nil {
			return err
		}
		added, flags, gone := cs.counts(ci)
		if !begun && (c.Event != "" || added+flags+gone == 0) {
			if err := begin(); err != nil {
				return err
			}
		}
		if err := sw.EndChange(); err != nil {
			return err
		}
	}
	return nil
}

// numbered goes through the entries of one kind keyed by message number
// (wkDrop, wkMove) in order, for numbers asked in increasing order.
type numbered struct {
	it  iterator.Iterator // nil: there are none
	ok  bool
	bad error
}

// byNumber returns the entries of kind from message number n on (none
// when any is false).
func (pw *pruneWork) byNumber(kind byte, n int64, any bool) (*numbered, error) {
	if !any {
		return &numbered{}, nil
	}
	it, err := pw.st.iterate([]byte{kind})
	if err != nil {
		return nil, err
	}
	return &numbered{it: it, ok: it.Seek(nKey(kind, n))}, nil
}

// at returns the value of the entry of message k, or nil.
func (b *numbered) at(k int64) []byte {
	for b.it != nil && b.ok && b.bad == nil {
		key := b.it.Key()
		if len(key) != 9 {
			b.bad = errWorkEntry
			return nil
		}
		switch n := int64(binary.BigEndian.Uint64(key[1:])); {
		case n < k:
			b.ok = b.it.Next()
		case n == k:
			return b.it.Value()
		default:
			return nil
		}
	}
	return nil
}

func (b *numbered) err() error {
	if b.bad != nil {
		return b.bad
	}
	if b.it != nil {
		return b.it.Error()
	}
	return nil
}

func (b *numbered) close() {
	if b.it != nil {
		b.it.Release()
	}
}

// storedSize is the size of every file under folders/ (a file with
// several names once: diskUsage).
func (a *Archive) storedSize() (int64, error) {
	var n diskUsage
	err := filepath.WalkDir(filepath.Join(a.Root, FoldersDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err == nil {
				n.add(fi)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure stored files: %w", err)
	}
	return n.total(), nil
}
