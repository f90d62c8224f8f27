package formats

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// A walk replays a chain record by record, as State.Apply does, keeping
// what it must know per message (the message each key of a folder names
// now) in an on-disk store, so that memory does not grow with the
// archive. Retention passes hook into it: prune notes which stored copies
// a snapshot needs, forget fingerprints what every snapshot holds.

// workDirPrefix starts the names of retention's temporary directories
// (in the system's temporary directory).
const workDirPrefix = "mailvault-retain-"

// workStore is a temporary ordered store (goleveldb) with a write batch
// that reads its own pending writes. It is used by one goroutine.
type workStore struct {
	dir  string // the temporary directory holding it, removed by close
	db   *leveldb.DB
	b    leveldb.Batch
	over map[string][]byte // pending puts
	size int
}

// newWorkStore creates a store in a new temporary directory; stale
// directories of killed runs are removed first.
func newWorkStore() (*workStore, error) {
	removeStaleWorkDirs(os.TempDir(), time.Hour)
	dir, err := os.MkdirTemp("", workDirPrefix)
	if err != nil {
		return nil, fmt.Errorf("retention work directory: %w", err)
	}
	db, err := leveldb.OpenFile(filepath.Join(dir, "walk"), &opt.Options{
		BlockCacheCapacity:     1 << 20,
		WriteBuffer:            1 << 20,
		DisableBufferPool:      true,
		OpenFilesCacheCapacity: 64,
		Filter:                 filter.NewBloomFilter(10),
		DisableSeeksCompaction: true,
		CompactionL0Trigger:    8,
		WriteL0SlowdownTrigger: 16,
		WriteL0PauseTrigger:    24,
		NoSync:                 true, // temporary: a crash leaves a directory to remove
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("retention work store: %w", err)
	}
	return &workStore{dir: dir, db: db, over: map[string][]byte{}}, nil
}

// removeStaleWorkDirs removes the work directories that a run killed
// before it could remove them left in dir (removeStaleDirs).
func removeStaleWorkDirs(dir string, minAge time.Duration) {
	removeStaleDirs(dir, workDirPrefix, filepath.Join("walk", "LOCK"), minAge)
}

// path returns a file name in the store's directory, for a pass's own
// sequential files.
func (s *workStore) path(name string) string { return filepath.Join(s.dir, name) }

func (s *workStore) close() {
	if s.db != nil {
		s.db.Close()
		s.db = nil
	}
	os.RemoveAll(s.dir)
}

func (s *workStore) get(k []byte) ([]byte, error) {
	if v, ok := s.over[string(k)]; ok {
		return v, nil
	}
	v, err := s.db.Get(k, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	return v, err
}

func (s *workStore) has(k []byte) (bool, error) {
	if _, ok := s.over[string(k)]; ok {
		return true, nil
	}
	return s.db.Has(k, nil)
}

func (s *workStore) put(k, v []byte) error {
	s.b.Put(k, v)
	s.over[string(k)] = v
	s.size += len(k) + len(v)
	if s.b.Len() >= 4096 || s.size >= 1<<20 {
		return s.flush()
	}
	return nil
}

func (s *workStore) flush() error {
	if s.b.Len() == 0 {
		return nil
	}
	if err := s.db.Write(&s.b, nil); err != nil {
		return fmt.Errorf("retention work store: %w", err)
	}
	s.b.Reset()
	clear(s.over)
	s.size = 0
	return nil
}

// iterate returns an iterator over the keys with the prefix, pending
// writes included.
func (s *workStore) iterate(prefix []byte) (iterator.Iterator, error) {
	if err := s.flush(); err != nil {
		return nil, err
	}
	return s.db.NewIterator(util.BytesPrefix(prefix), nil), nil
}

// Keys of a walk's store.
const (
	wkCurrent = 'k' // k FID(4) KEY: the message the key names now (curEntry)
)

// curEntry is the message a key of a folder names now: the instance
// (messages are numbered in the order the chain adds them, from 0), the
// snapshot (position in the chain, from 0) that added it, the one that
// recorded it gone (-1: present), and where it is stored.
type curEntry struct {
	n        int64
	addSnap  int
	goneSnap int
	loc      Location
}

func (e *curEntry) encode() []byte {
	b := binary.AppendUvarint(nil, uint64(e.n))
	b = binary.AppendUvarint(b, uint64(e.addSnap))
	b = binary.AppendUvarint(b, uint64(e.goneSnap+1))
	b = binary.AppendUvarint(b, uint64(len(e.loc.Seg)))
	b = append(b, e.loc.Seg...)
	return binary.AppendVarint(b, e.loc.Off)
}

func (e *curEntry) decode(b []byte) error {
	d := valDec{b: b}
	e.n = int64(d.uvarint())
	e.addSnap = int(d.uvarint())
	e.goneSnap = int(d.uvarint()) - 1
	e.loc.Seg = d.str()
	e.loc.Off = d.varint()
	if d.err != nil || len(d.b) != 0 {
		return errors.New("formats: retention work store: damaged entry")
	}
	return nil
}

func curKey(fid uint32, key string) []byte {
	return AppendKey(fidBytes(make([]byte, 0, 32), wkCurrent, fid), key)
}

// walkHooks are what a pass does at each step of a walk; nil hooks are
// skipped. snap is the position of the snapshot in the chain.
type walkHooks struct {
	// beginSnap is called before a snapshot's records, endSnap after its
	// folder list was applied.
	beginSnap, endSnap func(snap int) error
	// add: message n added to folder f.
	add func(snap int, f *replayFolder, n int64, m *Message) error
	// ref: a flag change or gone key for folder f; cur is the message
	// the key named (nil: none), gone whether this record marked it
	// gone.
	ref func(snap int, f *replayFolder, r *DeltaRecord, cur *curEntry, gone bool) error
	// swept: message cur marked gone because its folder was deleted.
	swept func(snap int, f *replayFolder, cur *curEntry) error
	// deleted: folder f was deleted (after its change's records; its
	// messages are marked gone, swept, next).
	deleted func(snap int, f *replayFolder) error
	// gone: message cur was marked gone (by a gone key or a deletion);
	// cur.goneSnap is set.
	gone func(cur *curEntry) error
}

// walker is one walk over a chain.
type walker struct {
	ch      *snapChain
	st      *workStore // nil: keys are not followed (no cur, no checks that need them)
	folders *folderReplay
	segs    map[string]*Segment
	n       int64
	hooks   walkHooks
	// last is the greatest key (encoded) each folder was ever added;
	// added the keys the snapshot being walked added, by folder.
	last  map[uint32][]byte
	added map[uint32]*addedKeys
}

func newWalker(ch *snapChain, st *workStore, hooks walkHooks) *walker {
	return &walker{ch: ch, st: st, folders: newFolderReplay(), segs: map[string]*Segment{}, hooks: hooks, last: map[uint32][]byte{}}
}

// run walks the whole chain. It checks what State.Apply checks; a chain
// that breaks the rules gives an error wrapping ErrCorrupt.
func (w *walker) run() error {
	for i, cs := range w.ch.snaps {
		if err := w.snapshot(i, cs); err != nil {
			return err
		}
	}
	return nil
}

func (w *walker) corrupt(cs *chainSnap, format string, args ...any) error {
	return fmt.Errorf("%w: snapshot %s: %s", ErrCorrupt, cs.h.ID, fmt.Sprintf(format, args...))
}

func (w *walker) snapshot(i int, cs *chainSnap) error {
	for gi := range cs.h.Segments {
		g := &cs.h.Segments[gi]
		if w.segs[g.Path] != nil {
			return w.corrupt(cs, "segment %s committed twice", g.Path)
		}
		w.segs[g.Path] = g
	}
	w.added = map[uint32]*addedKeys{}
	if w.hooks.beginSnap != nil {
		if err := w.hooks.beginSnap(i); err != nil {
			return err
		}
	}
	if len(cs.changes) > 0 {
		m, err := w.ch.a.OpenManifest(cs.sf)
		if err != nil {
			return err
		}
		err = w.changes(i, cs, m)
		m.Close()
		if err != nil {
			return err
		}
	}
	w.folders.listings(cs.h.Folders)
	if w.hooks.endSnap != nil {
		return w.hooks.endSnap(i)
	}
	return nil
}

func (w *walker) changes(i int, cs *chainSnap, m *ManifestReader) error {
	var cur curEntry
	for ci := range cs.changes {
		c := &cs.changes[ci]
		f, err := w.folders.change(cs.h.ID, c.Folder, c.Event, c.From)
		if err != nil {
			return err
		}
		err = cs.records(m, ci, func(r *DeltaRecord) error {
			switch r.Kind {
			case RecordAdded:
				return w.add(i, cs, f, &r.Message)
			default:
				found, err := w.lookup(f, r.Key, &cur)
				if err != nil {
					return err
				}
				marked := false
				if found && r.Kind == RecordGone && cur.goneSnap < 0 {
					if err := w.markGone(i, f, r.Key, &cur); err != nil {
						return err
					}
					marked = true
				}
				if w.hooks.ref != nil {
					var ref *curEntry
					if found {
						ref = &cur
					}
					return w.hooks.ref(i, f, r, ref, marked)
				}
				return nil
			}
		})
		if err != nil {
			return err
		}
		if c.Event == EventDeleted {
			if w.hooks.deleted != nil {
				if err := w.hooks.deleted(i, f); err != nil {
					return err
				}
			}
			if err := w.sweep(i, f); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *walker) add(i int, cs *chainSnap, f *replayFolder, m *Message) error {
	if !m.Location().isFile() {
		g := w.segs[m.Seg]
		if g == nil {
			return w.corrupt(cs, "message %s in unknown segment %s", m.Key, m.Seg)
		}
		if m.Off >= g.USize {
			return w.corrupt(cs, "message %s beyond the end of %s", m.Key, m.Seg)
		}
	}
	n := w.n
	w.n++
	var err error
	if w.st != nil {
		k := curKey(f.id, m.Key)
		// A key after every key the folder had before the snapshot, and
		// not added by it yet, is new to it: no lookup (the index's rule,
		// addedKeys: keys come in order, or in a few interleaved runs).
		enc := k[5:]
		ak := w.added[f.id]
		if ak == nil {
			ak = &addedKeys{before: bytes.Clone(w.last[f.id]), last: bytes.Clone(w.last[f.id])}
			w.added[f.id] = ak
		}
		if last := w.last[f.id]; bytes.Compare(enc, last) > 0 {
			w.last[f.id] = append(last[:0], enc...)
		}
		var v []byte
		if !ak.isNew(enc) {
			if v, err = w.st.get(k); err != nil {
				return err
			}
		}
		if v != nil {
			var old curEntry
			if err := old.decode(v); err != nil {
				return err
			}
			if old.goneSnap < 0 {
				return w.corrupt(cs, "message %s added twice to %q", m.Key, f.Folder.Name)
			}
		}
		e := curEntry{n: n, addSnap: i, goneSnap: -1, loc: m.Location()}
		if err := w.st.put(k, e.encode()); err != nil {
			return err
		}
	}
	if w.hooks.add != nil {
		return w.hooks.add(i, f, n, m)
	}
	return nil
}

// lookup finds the message key names in f now.
func (w *walker) lookup(f *replayFolder, key string, e *curEntry) (bool, error) {
	if w.st == nil {
		return false, nil
	}
	v, err := w.st.get(curKey(f.id, key))
	if err != nil || v == nil {
		return false, err
	}
	return true, e.decode(v)
}

func (w *walker) markGone(i int, f *replayFolder, key string, e *curEntry) error {
	e.goneSnap = i
	if err := w.st.put(curKey(f.id, key), e.encode()); err != nil {
		return err
	}
	if w.hooks.gone != nil {
		return w.hooks.gone(e)
	}
	return nil
}

// sweep marks every message of a deleted folder gone.
func (w *walker) sweep(i int, f *replayFolder) error {
	if w.st == nil {
		return nil
	}
	it, err := w.st.iterate(fidBytes(nil, wkCurrent, f.id))
	if err != nil {
		return err
	}
	defer it.Release()
	var e curEntry
	for it.Next() {
		if err := e.decode(it.Value()); err != nil {
			return err
		}
		if e.goneSnap >= 0 {
			continue
		}
		e.goneSnap = i
		if err := w.st.put(append([]byte(nil), it.Key()...), e.encode()); err != nil {
			return err
		}
		if w.hooks.gone != nil {
			if err := w.hooks.gone(&e); err != nil {
				return err
			}
		}
		if w.hooks.swept != nil {
			if err := w.hooks.swept(i, f, &e); err != nil {
				return err
			}
		}
	}
	return it.Error()
}
