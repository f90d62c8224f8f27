package formats

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	lverrors "github.com/syndtr/goleveldb/leveldb/errors"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// The state index (docs/FORMAT.md, "State index") is the archive's state
// at one snapshot, on disk, so that no command holds a folder's messages
// in memory: an ordered key-value store (goleveldb) under cache/, read in
// key order and updated in batches. It is derived data: rebuilt from the
// manifests, streaming, when it is missing, damaged, of another archive
// or behind them.
//
//	cache/INDEX                  names the current index directory
//	cache/index-RAND/state/      the state (leveldb)
//	cache/index-RAND/hash/       the content hash index, for writers that
//	                             deduplicate (leveldb; random keys kept
//	                             apart so that the state's mostly ordered
//	                             writes are cheap to compact)
//
// Keys are in indexkey.go. Only the writer holding the archive's lock
// updates the index; readers open it read-only when it is at the
// snapshot they want and no writer has it, else they build a temporary
// index of their own (ReadIndex).

const (
	indexVersion = 1
	indexPointer = "INDEX"
	indexPrefix  = "index-"
)

// Batches of writes: at most indexBatch operations or indexBatchBytes
// (variables for tests that cut an application short at every batch).
var (
	indexBatch      = 1000
	indexBatchBytes = 1 << 20
)

// indexOptions keep the store's memory small: its caches and write
// buffers are the bulk of a run's memory that does not depend on the
// messages in flight.
//
// Seek compactions are off: leveldb compacts a table after a number of
// lookups went through it to another one (100 per 1.6 MB), which is
// meant for read-mostly stores; ours look up a key for nearly every
// message written (the run's own hashes, keys added out of order), most
// of them missing, and those compactions tripled what a first backup
// of 200,000 messages rewrote (state 117 MB instead of 31, hash index
// 171 MB instead of 74: TestIndexLookupsDoNotCompact).
//
// Level 0 is compacted at 8 tables instead of 4: the hash index's keys
// are random and a run's state keys come in interleaved runs, so that
// each compaction of level 0 rewrites most of level 1; at 8 it rewrites it
// half as often (first backup of 200,000 messages: state 31 -> 19 MB,
// hash index 70 -> 42 MB rewritten; TestIndexCompactsLevel0Late). Lookups
// go through up to 8 tables' Bloom filters; a run's lookups are few.
//
// The block cache is small (256 KiB): a run's lookups are mostly of keys
// that are not there (Bloom filters answer) or in key order (one block
// read serves many), and the pages are in the OS cache anyway. With 2 MiB
// per store, the first backup of 1,000,000 messages kept 4 MB more live
// heap, which under the heap's soft limit (cmd/mailvault/main.go) made
// the collector run 9,437 times instead of 7,453 and cost 171 s of CPU
// instead of 152 (peak RSS 63.6 -> 58.5 MiB).
func indexOptions(readOnly bool, writeBuffer int) *opt.Options {
	return &opt.Options{
		BlockCacheCapacity:     256 << 10,
		WriteBuffer:            writeBuffer,
		OpenFilesCacheCapacity: 64,
		Filter:                 filter.NewBloomFilter(10),
		DisableSeeksCompaction: true,
		CompactionL0Trigger:    8,
		WriteL0SlowdownTrigger: 16,
		WriteL0PauseTrigger:    24,
		NoSync:                 true, // derived data: a crash leaves it behind, which is repaired
		ReadOnly:               readOnly,
		ErrorIfMissing:         readOnly,
	}
}

// IndexFolder is a folder in the state index: its last metadata and
// counts of its messages.
type IndexFolder struct {
	ID      uint32 `json:"id"`
	Folder  Folder `json:"folder"`
	Deleted bool   `json:"deleted,omitempty"`
	Present int64  `json:"present"` // messages on the source
	Gone    int64  `json:"gone"`    // messages kept as gone
	Bytes   int64  `json:"bytes"`   // size of the present messages
	// Last is the greatest key ever added (encoded): a key after it is
	// new to the folder, with no need to look it up.
	Last []byte `json:"last,omitempty"`
}

// Name is the folder's name.
func (f *IndexFolder) Name() string { return f.Folder.Name }

type indexMeta struct {
	Version    int       `json:"version"`
	Archive    string    `json:"archive"`
	Seq        int       `json:"seq"`
	ID         string    `json:"id"`
	NextFolder uint32    `json:"next_folder"`
	Applying   *applyPos `json:"applying,omitempty"`
	// Locations: the index records where each message is stored (for
	// verify, and for the left-overs of a Maildir archive).
	Locations bool `json:"locations,omitempty"`
}

// applyPos is how far the application of a snapshot got, written with
// every batch, so that an application cut short is resumed where it
// stopped.
type applyPos struct {
	Seq    int    `json:"seq"`
	ID     string `json:"id"`
	Delta  int    `json:"delta"`  // entries finished
	Event  bool   `json:"event"`  // the event of entry Delta is done
	Record int    `json:"record"` // records of entry Delta done
}

// snapshotStamp identifies a manifest file as the index applied it.
type snapshotStamp struct {
	ID    string `json:"id"`
	Size  int64  `json:"size"`
	MTime int64  `json:"mtime"`
}

// hashMeta is the hash index's record of the state it matches.
type hashMeta struct {
	Archive string `json:"archive"`
	Seq     int    `json:"seq"`
	ID      string `json:"id"`
}

// Index is an open state index.
type Index struct {
	a        *Archive
	dir      string
	db       *leveldb.DB
	hdb      *leveldb.DB // the hash index; nil without dedup
	readOnly bool
	temp     bool
	meta     indexMeta
	folders  map[string]*IndexFolder // by name, deleted ones too
	byID     map[uint32]*IndexFolder
	segs     segCache
	b        *ixBatch
	hb       *leveldb.Batch
	dirty    map[uint32]bool // folders changed in the pending batch
	runSeen  *runFilter      // the run's own hashes (PutRunHashes), with the hash index
	// added are the keys the application of a snapshot added so far, by
	// folder: what needs no lookup (see Index.add).
	added map[uint32]*addedKeys
}

// IndexOptions say what a writer's index must hold.
type IndexOptions struct {
	// Locations keeps where each message is stored (Locations,
	// HasFile); the index of a Maildir archive always does.
	Locations bool
	// Dedup opens (and keeps up to date) the hash index, for ByHash.
	Dedup bool
	// Progress, when set, is told of each manifest applied while the
	// index is built or caught up.
	Progress func(seq, total int)
}

// IndexError wraps what went wrong in the store itself (a damaged file,
// an I/O error): the index is derived data, and a writer that sees one
// drops it so that the next run builds it again.
type IndexError struct{ Err error }

func (e *IndexError) Error() string { return "state index: " + e.Err.Error() }
func (e *IndexError) Unwrap() error { return e.Err }

func ixErr(err error) error {
	if err == nil {
		return nil
	}
	var ie *IndexError
	if errors.As(err, &ie) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerVersion) {
		return err
	}
	return &IndexError{Err: err}
}

// OpenIndex returns the index at the latest committed snapshot, for the
// writer holding the archive's lock: the archive's index, caught up with
// the manifests committed after it (a run that crashed between its commit
// and its index update left them), or, when there is none or it cannot be
// used (damaged, of another archive, a manifest changed, held open by a
// reader), a new one built from every manifest. It becomes the archive's
// index.
func (a *Archive) OpenIndex(opts IndexOptions) (*Index, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	cache := filepath.Join(a.Root, CacheDir)
	if err := os.MkdirAll(cache, 0o700); err != nil {
		return nil, unwritable("create", CacheDir, err)
	}
	locations := opts.Locations || a.Config.Storage == StorageMaildir
	var ix *Index
	if name := a.currentIndex(); name != "" {
		ix, err = openIndexDir(a, filepath.Join(cache, name), false)
		if err == nil && (!ix.matches(files, true) || ix.meta.Locations != locations) {
			ix.Close()
			ix = nil
		}
		if err != nil {
			ix = nil
		}
	}
	fresh := ix == nil
	if fresh {
		dir, err := os.MkdirTemp(cache, indexPrefix)
		if err != nil {
			return nil, unwritable("create index in", CacheDir, err)
		}
		if ix, err = createIndexDir(a, dir, locations); err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
	}
	if err := ix.catchUp(files, len(files), opts.Progress); err != nil {
		ix.Close()
		if fresh {
			os.RemoveAll(ix.dir)
		}
		return nil, err
	}
	if opts.Dedup {
		if err := ix.openHash(); err != nil {
			ix.Close()
			return nil, err
		}
	}
	if fresh {
		if err := writeFileAtomic(filepath.Join(cache, indexPointer), []byte(filepath.Base(ix.dir)+"\n"), nil); err != nil {
			ix.Close()
			os.RemoveAll(ix.dir)
			return nil, unwritable("write", CacheDir+"/"+indexPointer, err)
		}
	}
	a.removeOldIndexes(filepath.Base(ix.dir))
	return ix, nil
}

// ReadIndex returns an index at the snapshot with sequence number seq (0:
// the latest) for a command that only reads: the archive's own index,
// opened read-only, when it is exactly at that snapshot and no writer has
// it open; else a temporary index built from the manifests up to it in
// the system's temporary directory, removed by Close. It never writes the
// archive.
func (a *Archive) ReadIndex(seq int) (*Index, error) {
	return a.readIndex(seq, false)
}

// readIndex is ReadIndex; with locations the index records them, and
// then it is always a temporary index (verify trusts no cache).
func (a *Archive) readIndex(seq int, locations bool) (*Index, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	if seq <= 0 || seq > len(files) {
		seq = len(files)
	}
	if name := a.currentIndex(); name != "" && seq > 0 && !locations {
		ix, err := openIndexDir(a, filepath.Join(a.Root, CacheDir, name), true)
		if err == nil {
			if ix.meta.Seq == seq && ix.matches(files, false) {
				return ix, nil
			}
			ix.Close()
		}
	}
	removeStaleTempIndexes(os.TempDir(), time.Hour)
	dir, err := os.MkdirTemp("", tempIndexPrefix)
	if err != nil {
		return nil, fmt.Errorf("temporary index: %w", err)
	}
	ix, err := createIndexDir(a, dir, locations)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ix.temp = true
	if err := ix.catchUp(files, seq, nil); err != nil {
		ix.Close()
		return nil, err
	}
	return ix, nil
}

// tempIndexPrefix starts the names of readers' temporary indexes.
const tempIndexPrefix = "mailvault-index-"

// removeStaleTempIndexes removes the temporary indexes that a reader
// killed before it could remove them left in dir (removeStaleDirs).
func removeStaleTempIndexes(dir string, minAge time.Duration) {
	removeStaleDirs(dir, tempIndexPrefix, filepath.Join("state", "LOCK"), minAge)
}

// removeStaleDirs removes the directories named prefix* in dir that a
// process killed before it could remove them left: those older than
// minAge whose leveldb store (its LOCK file at lock, relative) no process
// holds (leveldb keeps an flock on it while the store is open; the kernel
// drops it when the process dies).
func removeStaleDirs(dir, prefix, lock string, minAge time.Duration) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < minAge {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if f, err := os.OpenFile(filepath.Join(path, lock), os.O_RDWR, 0); err == nil {
			ok, _ := tryLock(f)
			f.Close() // drops the lock taken
			if !ok {
				continue // open in a running process
			}
		}
		os.RemoveAll(path)
	}
}

// currentIndex is the directory name cache/INDEX holds, or "".
func (a *Archive) currentIndex() string {
	b, err := os.ReadFile(filepath.Join(a.Root, CacheDir, indexPointer))
	if err != nil {
		return ""
	}
	name := strings.TrimSpace(string(b))
	if !strings.HasPrefix(name, indexPrefix) || !ValidDir(name) {
		return ""
	}
	return name
}

// removeOldIndexes deletes index directories other than keep that no
// reader holds.
func (a *Archive) removeOldIndexes(keep string) {
	entries, _ := os.ReadDir(filepath.Join(a.Root, CacheDir))
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), indexPrefix) || e.Name() == keep {
			continue
		}
		dir := filepath.Join(a.Root, CacheDir, e.Name())
		if f, err := os.OpenFile(filepath.Join(dir, "state", "LOCK"), os.O_RDWR, 0); err == nil {
			ok, _ := tryLock(f)
			if !ok {
				f.Close()
				continue // a reader has it open
			}
			f.Close()
		}
		os.RemoveAll(dir)
	}
}

func createIndexDir(a *Archive, dir string, locations bool) (*Index, error) {
	db, err := leveldb.OpenFile(filepath.Join(dir, "state"), indexOptions(false, 2<<20))
	if err != nil {
		return nil, ixErr(err)
	}
	ix := &Index{a: a, dir: dir, db: db, folders: map[string]*IndexFolder{}, byID: map[uint32]*IndexFolder{},
		meta: indexMeta{Version: indexVersion, Archive: a.Config.ID, NextFolder: 1, Locations: locations}}
	if err := ix.putMeta(); err != nil {
		db.Close()
		return nil, err
	}
	return ix, nil
}

func openIndexDir(a *Archive, dir string, readOnly bool) (*Index, error) {
	db, err := leveldb.OpenFile(filepath.Join(dir, "state"), indexOptions(readOnly, 2<<20))
	if err != nil {
		return nil, ixErr(err)
	}
	ix := &Index{a: a, dir: dir, db: db, readOnly: readOnly, folders: map[string]*IndexFolder{}, byID: map[uint32]*IndexFolder{}}
	if err := ix.load(); err != nil {
		db.Close()
		return nil, err
	}
	return ix, nil
}

// load reads the meta record and the folders.
func (ix *Index) load() error {
	b, err := ix.db.Get([]byte{ixMeta}, nil)
	if err != nil {
		return ixErr(err)
	}
	if err := json.Unmarshal(b, &ix.meta); err != nil {
		return ixErr(err)
	}
	if ix.meta.Version != indexVersion {
		return ixErr(fmt.Errorf("version %d", ix.meta.Version))
	}
	it := ix.db.NewIterator(util.BytesPrefix([]byte{ixFolder}), nil)
	defer it.Release()
	for it.Next() {
		f := &IndexFolder{}
		if err := json.Unmarshal(it.Value(), f); err != nil {
			return ixErr(err)
		}
		ix.folders[f.Folder.Name] = f
		ix.byID[f.ID] = f
	}
	return ixErr(it.Error())
}

// matches reports whether the index is of this archive and was built
// from these manifests: the same archive id, and every manifest up to
// the index's snapshot (and the one it was applying) with the id, size
// and modification time it had then. A changed manifest means damage or
// replacement: the index is rebuilt, which reports what is wrong.
func (ix *Index) matches(files []SnapshotFile, writing bool) bool {
	m := ix.meta
	if m.Archive != ix.a.Config.ID || m.Seq > len(files) {
		return false
	}
	upto := m.Seq
	if m.Applying != nil {
		if !writing || m.Applying.Seq != m.Seq+1 || m.Applying.Seq > len(files) {
			return false
		}
		upto = m.Applying.Seq
	}
	if upto > 0 && (m.Applying == nil && files[m.Seq-1].ID != m.ID) {
		return false
	}
	it := ix.db.NewIterator(util.BytesPrefix([]byte{ixSnapshot}), nil)
	defer it.Release()
	n := 0
	for it.Next() {
		k := it.Key()
		if len(k) != 5 {
			return false
		}
		seq := int(binary.BigEndian.Uint32(k[1:]))
		if seq != n+1 || seq > upto {
			return false
		}
		var st snapshotStamp
		if json.Unmarshal(it.Value(), &st) != nil {
			return false
		}
		sf := files[seq-1]
		fi, err := os.Stat(sf.Path)
		if err != nil || sf.Seq != seq || sf.ID != st.ID || fi.Size() != st.Size || fi.ModTime().UnixNano() != st.MTime {
			return false
		}
		n++
	}
	return it.Error() == nil && n == upto
}

// Close releases the index; a temporary one is removed.
func (ix *Index) Close() error {
	var err error
	if ix.hdb != nil {
		err = ix.hdb.Close()
		ix.hdb = nil
	}
	if ix.db != nil {
		if e := ix.db.Close(); err == nil {
			err = e
		}
		ix.db = nil
	}
	if ix.temp {
		os.RemoveAll(ix.dir)
	}
	return err
}

// Drop closes the index and removes it from the archive's cache, so that
// the next writer builds it again: for a writer that found it damaged.
func (ix *Index) Drop() {
	dir, temp := ix.dir, ix.temp
	ix.Close()
	if !temp {
		os.Remove(filepath.Join(ix.a.Root, CacheDir, indexPointer))
		os.RemoveAll(dir)
	}
}

// Seq and ID are the snapshot the index is at (0 and "" for none).
func (ix *Index) Seq() int   { return ix.meta.Seq }
func (ix *Index) ID() string { return ix.meta.ID }

// Temporary reports whether the index was built for this reader only.
func (ix *Index) Temporary() bool { return ix.temp }

// SnapshotID returns the id of the snapshot with sequence number seq, as
// far as the index has applied them.
func (ix *Index) SnapshotID(seq int) (string, error) {
	b, err := ix.db.Get(snapshotKey(seq), nil)
	if err != nil {
		return "", ixErr(err)
	}
	var st snapshotStamp
	if err := json.Unmarshal(b, &st); err != nil {
		return "", ixErr(err)
	}
	return st.ID, nil
}

// Folders returns every folder the archive knows, deleted ones too, by
// name.
func (ix *Index) Folders() []*IndexFolder {
	out := make([]*IndexFolder, 0, len(ix.folders))
	for _, f := range ix.folders {
		c := *f
		out = append(out, &c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Folder.Name < out[j].Folder.Name })
	return out
}

// Folder returns the folder of that name, or nil.
func (ix *Index) Folder(name string) *IndexFolder {
	f := ix.folders[name]
	if f == nil {
		return nil
	}
	c := *f
	return &c
}

// Get returns the message stored under key in folder fid (the latest
// entry of the key), or nil.
func (ix *Index) Get(fid uint32, key string) (*IndexMessage, error) {
	b, err := ix.db.Get(messageKey(fid, key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, ixErr(err)
	}
	m := &IndexMessage{}
	if err := decodeMessage(b, m); err != nil {
		return nil, ixErr(err)
	}
	return m, nil
}

// ByHash returns a message of folder fid with the given SHA-256 (the
// first one added), or nil. It needs the hash index (IndexOptions.Dedup).
// What it returns is checked against the state: a stale entry of the hash
// index is a miss, never a wrong answer.
func (ix *Index) ByHash(fid uint32, sum string) (*IndexMessage, error) {
	if ix.hdb == nil {
		return nil, errors.New("formats: the index was opened without its hash index")
	}
	k, err := ix.hdb.Get(hashKey(fid, sum), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, ixErr(err)
	}
	key, _, err := decodeKey(k)
	if err != nil {
		return nil, nil
	}
	m, err := ix.Get(fid, key)
	if err != nil || m == nil || m.SHA256 != sum {
		return nil, err
	}
	return m, nil
}

// Segment returns a committed segment, or nil.
func (ix *Index) Segment(path string) (*Segment, error) {
	if g := ix.segs.get(path); g != nil {
		return g, nil
	}
	b, err := ix.db.Get(append([]byte{ixSegment}, path...), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, ixErr(err)
	}
	g := &Segment{}
	if err := json.Unmarshal(b, g); err != nil {
		return nil, ixErr(err)
	}
	ix.segs.put(g)
	return g, nil
}

// segCache keeps the last segments looked up: a reader goes through one
// segment's messages at a time, and a segment's frame table can be large.
// Readers on several goroutines share it.
type segCache struct {
	mu   sync.Mutex
	list []*Segment
}

func (c *segCache) get(path string) *Segment {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, g := range c.list {
		if g.Path == path {
			c.list[0], c.list[i] = c.list[i], c.list[0]
			return g
		}
	}
	return nil
}

func (c *segCache) put(g *Segment) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.list) < 8 {
		c.list = append(c.list, g)
	} else {
		copy(c.list[1:], c.list[:len(c.list)-1])
	}
	c.list[0] = g
}

// Segments calls fn with every committed segment in path order.
func (ix *Index) Segments(fn func(g *Segment) error) error {
	it := ix.db.NewIterator(util.BytesPrefix([]byte{ixSegment}), nil)
	defer it.Release()
	for it.Next() {
		g := &Segment{}
		if err := json.Unmarshal(it.Value(), g); err != nil {
			return ixErr(err)
		}
		if err := fn(g); err != nil {
			return err
		}
	}
	return ixErr(it.Error())
}

// MessageIter goes through a folder's messages in key order.
type MessageIter struct {
	it, old iterator.Iterator
	m       IndexMessage
	om      IndexMessage
	hasOld  bool
	err     error
}

// Messages returns an iterator over folder fid's messages in key order
// (the order of CompareKeys). With all, older entries of keys that were
// added again come too, before the latest entry of their key. The caller
// must Release it.
func (ix *Index) Messages(fid uint32, all bool) *MessageIter {
	mi := &MessageIter{it: ix.db.NewIterator(util.BytesPrefix(fidBytes(nil, ixMessage, fid)), nil)}
	if all {
		mi.old = ix.db.NewIterator(util.BytesPrefix(fidBytes(nil, ixOld, fid)), nil)
		mi.advanceOld()
	}
	return mi
}

// Seek moves the iterator so that Next returns the first message whose
// key is not before key (CompareKeys); without older entries.
func (mi *MessageIter) Seek(fid uint32, key string) {
	mi.it.Seek(messageKey(fid, key))
	mi.it.Prev()
}

func (mi *MessageIter) advanceOld() {
	mi.hasOld = false
	if mi.old != nil && mi.old.Next() {
		if err := decodeMessage(mi.old.Value(), &mi.om); err != nil {
			mi.err = ixErr(err)
			return
		}
		mi.hasOld = true
	}
}

// Next returns the next message, or nil at the end or on an error (see
// Err). The message is valid until the next call.
func (mi *MessageIter) Next() *IndexMessage {
	if mi.err != nil {
		return nil
	}
	if !mi.it.Next() {
		if mi.hasOld { // older entries whose key has no latest entry (cannot happen; kept for safety)
			mi.m = mi.om
			mi.advanceOld()
			return &mi.m
		}
		return nil
	}
	cur := mi.it.Key()[5:]
	if mi.hasOld {
		ok := mi.old.Key()[5:]
		if bytes.Compare(ok[:len(ok)-4], cur) <= 0 {
			mi.it.Prev()
			mi.m = mi.om
			mi.advanceOld()
			return &mi.m
		}
	}
	if err := decodeMessage(mi.it.Value(), &mi.m); err != nil {
		mi.err = ixErr(err)
		return nil
	}
	return &mi.m
}

// Err returns the error that ended the iteration, if any.
func (mi *MessageIter) Err() error {
	if mi.err != nil {
		return mi.err
	}
	if err := mi.it.Error(); err != nil {
		return ixErr(err)
	}
	if mi.old != nil {
		return ixErr(mi.old.Error())
	}
	return nil
}

// Release frees the iterator.
func (mi *MessageIter) Release() {
	mi.it.Release()
	if mi.old != nil {
		mi.old.Release()
	}
}

// IndexLocation is a place messages are stored at: a record of a
// segment or a Maildir file.
type IndexLocation struct {
	Seg    string // the segment path, or the Maildir file's directory and unique part
	Off    int64  // record offset in a segment; 0 for a Maildir file
	SHA256 string // of the message recorded there
	Size   int64
	Key    string // a message recorded there (the first in key order)
	FID    uint32 // the folder of that message
	// Conflict: another message recorded at the same place has other
	// content (a damaged manifest).
	Conflict bool
}

// Locations calls fn with every place messages are stored at, in order:
// segments by path, records by offset; Maildir files by name. It needs
// an index with locations (a reader's temporary index for verify, or the
// index of a Maildir archive).
func (ix *Index) Locations(fn func(l *IndexLocation) error) error {
	if !ix.meta.Locations {
		return errors.New("formats: the index does not record locations")
	}
	it := ix.db.NewIterator(util.BytesPrefix([]byte{ixLocation}), nil)
	defer it.Release()
	var l IndexLocation
	var place []byte
	have := false
	for it.Next() {
		k := it.Key()[1:]
		i := bytes.IndexByte(k, 0)
		if i < 0 || len(k) < i+9+4 {
			return ixErr(errBadIndex)
		}
		sha, size, err := decodeLocation(it.Value())
		if err != nil {
			return ixErr(err)
		}
		if have && bytes.Equal(place, k[:i+9]) {
			if sha != l.SHA256 || size != l.Size {
				l.Conflict = true
			}
			continue
		}
		if have {
			if err := fn(&l); err != nil {
				return err
			}
		}
		place = append(place[:0], k[:i+9]...)
		key, _, err := decodeKey(k[i+9+4:])
		if err != nil {
			return ixErr(err)
		}
		l = IndexLocation{Seg: string(k[:i]), Off: int64(binary.BigEndian.Uint64(k[i+1 : i+9])), SHA256: sha, Size: size, Key: key,
			FID: binary.BigEndian.Uint32(k[i+9 : i+13])}
		have = true
	}
	if err := it.Error(); err != nil {
		return ixErr(err)
	}
	if have {
		return fn(&l)
	}
	return nil
}

// HasFile reports whether a message is recorded in the Maildir file of
// folder directory dir with the given unique part (MaildirBase of its
// name). It needs an index with locations.
func (ix *Index) HasFile(dir, base string) (bool, error) {
	if !ix.meta.Locations {
		return false, errors.New("formats: the index does not record locations")
	}
	k := append([]byte{ixLocation}, FoldersDir+"/"+dir+"/cur/"+base...)
	it := ix.db.NewIterator(util.BytesPrefix(append(k, 0)), nil)
	defer it.Release()
	found := it.Next()
	return found, ixErr(it.Error())
}

func encodeLocation(sha string, size int64) []byte {
	e := valEnc{}
	e.str(sha)
	e.varint(size)
	return e.b
}

func decodeLocation(b []byte) (string, int64, error) {
	d := valDec{b: b}
	sha := d.str()
	size := d.varint()
	if d.err != nil {
		return "", 0, errBadIndex
	}
	return sha, size, nil
}

// --- building and updating ---

// catchUp applies the manifests after the index's snapshot, up to the
// one with sequence number upto, resuming one whose application was cut
// short.
func (ix *Index) catchUp(files []SnapshotFile, upto int, progress func(seq, total int)) error {
	for _, sf := range files[ix.meta.Seq:upto] {
		m, err := ix.a.OpenManifest(sf)
		if err != nil {
			return err
		}
		err = ix.Apply(m)
		m.Close()
		if err != nil {
			return err
		}
		if progress != nil {
			progress(sf.Seq, upto)
		}
	}
	return nil
}

func (ix *Index) putMeta() error {
	b, _ := json.Marshal(&ix.meta)
	return ixErr(ix.db.Put([]byte{ixMeta}, b, nil))
}

// openHash opens the hash index and rebuilds it from the state when it
// does not match it.
func (ix *Index) openHash() error {
	hdb, err := leveldb.OpenFile(filepath.Join(ix.dir, "hash"), indexOptions(false, 1<<20))
	if lverrors.IsCorrupted(err) {
		os.RemoveAll(filepath.Join(ix.dir, "hash"))
		hdb, err = leveldb.OpenFile(filepath.Join(ix.dir, "hash"), indexOptions(false, 1<<20))
	}
	if err != nil {
		return ixErr(err)
	}
	ix.hdb = hdb
	ix.runSeen = newRunFilter()
	want := hashMeta{Archive: ix.meta.Archive, Seq: ix.meta.Seq, ID: ix.meta.ID}
	var have hashMeta
	if b, err := hdb.Get([]byte{ixMeta}, nil); err == nil && json.Unmarshal(b, &have) == nil && have == want {
		return nil
	}
	return ix.rebuildHash()
}

// rebuildHash makes the hash index again, empty, from the state's
// messages: for a content, the first key in key order.
func (ix *Index) rebuildHash() error {
	dir := filepath.Join(ix.dir, "hash")
	ix.hdb.Close()
	ix.hdb = nil
	if err := os.RemoveAll(dir); err != nil {
		return ixErr(err)
	}
	hdb, err := leveldb.OpenFile(dir, indexOptions(false, 1<<20))
	if err != nil {
		return ixErr(err)
	}
	ix.hdb = hdb
	var b leveldb.Batch
	pending := map[string]bool{}
	for _, f := range ix.byID {
		mi := ix.Messages(f.ID, false)
		for m := mi.Next(); m != nil; m = mi.Next() {
			k := hashKey(f.ID, m.SHA256)
			if pending[string(k)] {
				continue
			}
			if _, err := ix.hdb.Get(k, nil); err == nil {
				continue
			}
			b.Put(k, AppendKey(nil, m.Key))
			pending[string(k)] = true
			if b.Len() >= indexBatch {
				if err := ix.hdb.Write(&b, nil); err != nil {
					mi.Release()
					return ixErr(err)
				}
				b.Reset()
				clear(pending)
			}
		}
		err := mi.Err()
		mi.Release()
		if err != nil {
			return err
		}
	}
	if err := ix.hdb.Write(&b, nil); err != nil {
		return ixErr(err)
	}
	return ix.putHashMeta()
}

func (ix *Index) putHashMeta() error {
	b, _ := json.Marshal(hashMeta{Archive: ix.meta.Archive, Seq: ix.meta.Seq, ID: ix.meta.ID})
	return ixErr(ix.hdb.Put([]byte{ixMeta}, b, nil))
}

// ixBatch is a batch of writes with what they change, so that the
// application reads its own pending writes.
type ixBatch struct {
	db   *leveldb.DB
	b    leveldb.Batch
	over map[string][]byte // pending puts
	del  map[string]bool   // pending deletes
	size int
}

func newBatch(db *leveldb.DB) *ixBatch {
	return &ixBatch{db: db, over: map[string][]byte{}, del: map[string]bool{}}
}

func (b *ixBatch) get(k []byte) ([]byte, error) {
	if b.del[string(k)] {
		return nil, nil
	}
	if v, ok := b.over[string(k)]; ok {
		return v, nil
	}
	v, err := b.db.Get(k, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	return v, ixErr(err)
}

func (b *ixBatch) put(k, v []byte) {
	b.b.Put(k, v)
	b.over[string(k)] = v
	delete(b.del, string(k))
	b.size += len(k) + len(v)
}

func (b *ixBatch) delete(k []byte) {
	b.b.Delete(k)
	delete(b.over, string(k))
	b.del[string(k)] = true
	b.size += len(k)
}

func (b *ixBatch) full() bool { return b.b.Len() >= indexBatch || b.size >= indexBatchBytes }

// indexLookupHook, when set, is called before an application looks a
// key it adds up (tests count them).
var indexLookupHook func()

// indexWriteHook, when set, is called before each batch is written; a
// test that returns an error from it cuts an application short there.
var indexWriteHook func() error

func (b *ixBatch) write() error {
	if indexWriteHook != nil {
		if err := indexWriteHook(); err != nil {
			return err
		}
	}
	if err := b.db.Write(&b.b, nil); err != nil {
		return ixErr(err)
	}
	b.b.Reset()
	clear(b.over)
	clear(b.del)
	b.size = 0
	return nil
}

// flush writes the pending batch with the folders it changed and the
// position reached, atomically; and the hash index's pending entries.
func (ix *Index) flush() error {
	for fid := range ix.dirty {
		f := ix.byID[fid]
		if f == nil {
			ix.b.delete(fidBytes(nil, ixFolder, fid))
			continue
		}
		v, _ := json.Marshal(f)
		ix.b.put(fidBytes(nil, ixFolder, fid), v)
	}
	clear(ix.dirty)
	mb, _ := json.Marshal(&ix.meta)
	ix.b.put([]byte{ixMeta}, mb)
	if err := ix.b.write(); err != nil {
		return err
	}
	if ix.hdb != nil && ix.hb.Len() > 0 {
		if err := ix.hdb.Write(ix.hb, nil); err != nil {
			return ixErr(err)
		}
		ix.hb.Reset()
	}
	return nil
}

func (ix *Index) maybeFlush() error {
	if ix.b.full() {
		return ix.flush()
	}
	return nil
}

func (ix *Index) corrupt(h *Header, format string, args ...any) error {
	return fmt.Errorf("%w: snapshot %s: %s", ErrCorrupt, h.ID, fmt.Sprintf(format, args...))
}

// Apply applies one committed snapshot to the index, streaming its
// records in batches: it must be the snapshot after the index's (or the
// one whose application was cut short, which is resumed). Each batch
// records how far it got, so a crash at any point leaves an index that
// the next writer finishes (OpenIndex). The rules are those of replaying
// manifests (docs/FORMAT.md, "State at a snapshot"); a snapshot that
// breaks them is an error wrapping ErrCorrupt.
func (ix *Index) Apply(m *ManifestReader) error {
	if ix.readOnly {
		return errors.New("formats: index opened read-only")
	}
	h := m.Header()
	sf := m.sf
	pos := ix.meta.Applying
	if pos != nil && (pos.Seq != h.Seq || pos.ID != h.ID) {
		return ix.corrupt(h, "the index was applying snapshot %s", pos.ID)
	}
	if pos == nil && (h.Seq != ix.meta.Seq+1 || h.Parent != ix.meta.ID) {
		return fmt.Errorf("%w: snapshot %s does not follow %s", ErrCorrupt, h.ID, ix.meta.ID)
	}
	ix.b, ix.hb, ix.dirty = newBatch(ix.db), new(leveldb.Batch), map[uint32]bool{}
	ix.added = map[uint32]*addedKeys{}
	if ix.hdb != nil {
		if err := ix.hdb.Put([]byte{ixMeta}, []byte(`{}`), nil); err != nil {
			return ixErr(err)
		}
	}
	if pos == nil {
		// First batch: the stamp, the segments, the position.
		fi, err := os.Stat(sf.Path)
		if err != nil {
			return fmt.Errorf("read snapshot %s: %w", h.ID, err)
		}
		st, _ := json.Marshal(snapshotStamp{ID: h.ID, Size: fi.Size(), MTime: fi.ModTime().UnixNano()})
		ix.b.put(snapshotKey(h.Seq), st)
		for i := range h.Segments {
			g := &h.Segments[i]
			k := append([]byte{ixSegment}, g.Path...)
			if v, err := ix.b.get(k); err != nil {
				return err
			} else if v != nil {
				return ix.corrupt(h, "segment %s committed twice", g.Path)
			}
			v, _ := json.Marshal(g)
			ix.b.put(k, v)
		}
		pos = &applyPos{Seq: h.Seq, ID: h.ID}
		ix.meta.Applying = pos
		if err := ix.flush(); err != nil {
			return err
		}
	}
	for i := pos.Delta; i < len(h.Deltas); i++ {
		d := &h.Deltas[i]
		// A version 2 manifest has a folder's event on its first entry;
		// a version 1 manifest a retention rewrite folded may have one on
		// a later change of the folder (created, ..., deleted), applied
		// in order as a replay does.
		event := d.Event != ""
		if !pos.Event {
			if event {
				if err := ix.applyEvent(h, d); err != nil {
					return err
				}
			}
			pos.Event = true
			if err := ix.flush(); err != nil {
				return err
			}
		}
		f := ix.folders[d.Folder]
		if f == nil {
			f = ix.newFolder(Folder{Name: d.Folder})
		}
		if err := ix.applyRecords(m, i, h, f, pos); err != nil {
			return err
		}
		if d.Event == EventDeleted {
			if err := ix.flush(); err != nil {
				return err
			}
			if err := ix.sweepGone(h, f); err != nil {
				return err
			}
		}
		pos.Delta, pos.Event, pos.Record = i+1, false, 0
		if err := ix.maybeFlush(); err != nil {
			return err
		}
	}
	for _, fo := range h.Folders {
		f := ix.folders[fo.Name]
		if f == nil {
			f = ix.newFolder(fo)
		}
		f.Folder, f.Deleted = fo, false
		ix.dirty[f.ID] = true
	}
	ix.meta.Seq, ix.meta.ID, ix.meta.Applying = h.Seq, h.ID, nil
	if err := ix.flush(); err != nil {
		return err
	}
	if ix.hdb != nil {
		return ix.putHashMeta()
	}
	return nil
}

func (ix *Index) newFolder(fo Folder) *IndexFolder {
	f := &IndexFolder{ID: ix.meta.NextFolder, Folder: fo}
	ix.meta.NextFolder++
	ix.folders[fo.Name] = f
	ix.byID[f.ID] = f
	ix.b.put(append([]byte{ixName}, fo.Name...), binary.BigEndian.AppendUint32(nil, f.ID))
	ix.dirty[f.ID] = true
	return f
}

// applyEvent applies a folder's event (renamed, deleted); the caller
// flushes with the event marked done.
func (ix *Index) applyEvent(h *Header, d *Delta) error {
	f := ix.folders[d.Folder]
	switch d.Event {
	case EventRenamed:
		old := ix.folders[d.From]
		if old == nil {
			return ix.corrupt(h, "rename of unknown folder %q", d.From)
		}
		if f != nil && f != old {
			// The new name's old state is replaced, as a replay does.
			if err := ix.dropFolder(f); err != nil {
				return err
			}
		}
		delete(ix.folders, d.From)
		ix.b.delete(append([]byte{ixName}, d.From...))
		old.Folder.Name, old.Deleted = d.Folder, false
		ix.folders[d.Folder] = old
		ix.b.put(append([]byte{ixName}, d.Folder...), binary.BigEndian.AppendUint32(nil, old.ID))
		ix.dirty[old.ID] = true
	case EventDeleted:
		if f == nil {
			return ix.corrupt(h, "deletion of unknown folder %q", d.Folder)
		}
		f.Deleted = true
		ix.dirty[f.ID] = true
	}
	return nil
}

// dropFolder removes a folder's messages from the index (a rename onto
// its name replaced it). It writes in batches; it may be repeated.
func (ix *Index) dropFolder(f *IndexFolder) error {
	if err := ix.flush(); err != nil {
		return err
	}
	for _, kind := range []byte{ixMessage, ixOld} {
		it := ix.db.NewIterator(util.BytesPrefix(fidBytes(nil, kind, f.ID)), nil)
		for it.Next() {
			ix.b.delete(append([]byte(nil), it.Key()...))
			if ix.b.full() {
				if err := ix.b.write(); err != nil {
					it.Release()
					return err
				}
			}
		}
		err := it.Error()
		it.Release()
		if err != nil {
			return ixErr(err)
		}
	}
	delete(ix.byID, f.ID)
	ix.dirty[f.ID] = true // deleted by flush
	return nil
}

// sweepGone marks every present message of a deleted folder gone. It
// may be repeated (a resumed application does).
func (ix *Index) sweepGone(h *Header, f *IndexFolder) error {
	it := ix.db.NewIterator(util.BytesPrefix(fidBytes(nil, ixMessage, f.ID)), nil)
	defer it.Release()
	var m IndexMessage
	for it.Next() {
		if err := decodeMessage(it.Value(), &m); err != nil {
			return ixErr(err)
		}
		if m.GoneIn != 0 {
			continue
		}
		m.GoneIn = h.Seq
		f.Present--
		f.Gone++
		f.Bytes -= m.Size
		ix.dirty[f.ID] = true
		ix.b.put(append([]byte(nil), it.Key()...), encodeMessage(nil, &m))
		if err := ix.maybeFlush(); err != nil {
			return err
		}
	}
	return ixErr(it.Error())
}

// applyRecords applies entry i's records from pos.Record on.
func (ix *Index) applyRecords(m *ManifestReader, i int, h *Header, f *IndexFolder, pos *applyPos) error {
	d := &h.Deltas[i]
	if d.Records == 0 {
		return nil
	}
	rr, err := m.Records(i)
	if err != nil {
		return err
	}
	defer rr.Close()
	for n := 0; ; n++ {
		r, err := rr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if n < pos.Record {
			continue // applied before the application was cut short
		}
		switch r.Kind {
		case RecordAdded:
			err = ix.add(h, f, &r.Message)
		case RecordFlags:
			err = ix.setFlags(f, r.Key, r.Flags)
		case RecordGone:
			err = ix.setGone(h, f, r.Key)
		}
		if err != nil {
			return err
		}
		pos.Record = n + 1
		if err := ix.maybeFlush(); err != nil {
			return err
		}
	}
}

func (ix *Index) add(h *Header, f *IndexFolder, msg *Message) error {
	if !validMaildirPath(msg.Seg) {
		g, err := ix.segmentForApply(msg.Seg)
		if err != nil {
			return err
		}
		if g == nil {
			return ix.corrupt(h, "message %s in unknown segment %s", msg.Key, msg.Seg)
		}
		if msg.Off >= g.USize {
			return ix.corrupt(h, "message %s beyond the end of %s", msg.Key, msg.Seg)
		}
	}
	k := messageKey(f.ID, msg.Key)
	enc := k[5:]
	ak := ix.added[f.ID]
	if ak == nil {
		ak = &addedKeys{before: bytes.Clone(f.Last), last: bytes.Clone(f.Last)}
		ix.added[f.ID] = ak
	}
	if bytes.Compare(enc, f.Last) > 0 {
		f.Last = append(f.Last[:0], enc...)
	}
	if !ak.isNew(enc) {
		if indexLookupHook != nil {
			indexLookupHook()
		}
		v, err := ix.b.get(k)
		if err != nil {
			return err
		}
		if v != nil {
			var old IndexMessage
			if err := decodeMessage(v, &old); err != nil {
				return ixErr(err)
			}
			if old.GoneIn == 0 {
				return ix.corrupt(h, "message %s added twice to %q", msg.Key, f.Folder.Name)
			}
			// The key comes back: its old entry is kept apart.
			ix.b.put(oldKey(f.ID, msg.Key, old.AddedIn), v)
		}
	}
	nm := IndexMessage{Message: *msg, AddedIn: h.Seq}
	ix.b.put(k, encodeMessage(nil, &nm))
	f.Present++
	f.Bytes += msg.Size
	ix.dirty[f.ID] = true
	if ix.meta.Locations {
		// What is stored where, one entry per message naming it (no
		// lookup: Locations compares the entries of a place).
		lk := append(locationKey(ixLocation, msg.Seg, msg.Off), k[1:]...)
		ix.b.put(lk, encodeLocation(msg.SHA256, msg.Size))
	}
	if ix.hdb != nil {
		// The last message added with a content stands for it: a
		// message, present or gone, whose copy can be reused.
		ix.hb.Put(hashKey(f.ID, msg.SHA256), AppendKey(nil, msg.Key))
	}
	return nil
}

// segmentForApply finds a segment, committed before or in the batch.
func (ix *Index) segmentForApply(path string) (*Segment, error) {
	if g := ix.segs.get(path); g != nil {
		return g, nil
	}
	v, err := ix.b.get(append([]byte{ixSegment}, path...))
	if err != nil || v == nil {
		return nil, err
	}
	g := &Segment{}
	if err := json.Unmarshal(v, g); err != nil {
		return nil, ixErr(err)
	}
	ix.segs.put(g)
	return g, nil
}

func (ix *Index) setFlags(f *IndexFolder, key string, flags []string) error {
	k := messageKey(f.ID, key)
	v, err := ix.b.get(k)
	if err != nil || v == nil {
		return err
	}
	var m IndexMessage
	if err := decodeMessage(v, &m); err != nil {
		return ixErr(err)
	}
	m.Flags = flags
	ix.b.put(k, encodeMessage(nil, &m))
	return nil
}

func (ix *Index) setGone(h *Header, f *IndexFolder, key string) error {
	k := messageKey(f.ID, key)
	v, err := ix.b.get(k)
	if err != nil || v == nil {
		return err
	}
	var m IndexMessage
	if err := decodeMessage(v, &m); err != nil {
		return ixErr(err)
	}
	if m.GoneIn != 0 {
		return nil
	}
	m.GoneIn = h.Seq
	f.Present--
	f.Gone++
	f.Bytes -= m.Size
	ix.dirty[f.ID] = true
	ix.b.put(k, encodeMessage(nil, &m))
	return nil
}

// addedKeys tells which keys a snapshot's application adds to a folder
// are new to it without a lookup: those after every key the folder had
// before (before: its Last then) that the application did not add
// already. A run that fetched a big folder in parts over several
// connections commits their messages in turns, ascending runs of keys
// that interleave, so that comparing with the greatest key added alone
// took three keys in four for possible duplicates (a lookup each, the
// apply's biggest cost after decoding). The IMAP keys added are kept as
// bits of 1024-UID chunks (a bit per key when UIDs are dense, 16 KiB per
// 100,000), up to maxAddedChunks chunks; past that, and for other keys,
// a key is new only after every key added (lookups, as before). Rebuilt
// empty when an application is resumed, whose before is then the Last it
// reached: conservative all the same.
type addedKeys struct {
	before []byte
	last   []byte // the greatest key added
	chunks map[uint64]*[addedChunkBits / 64]uint64
	full   bool // a chunk could not be added: the bits are not complete
}

const (
	addedChunkBits = 1024
	maxAddedChunks = 4096 // 512 KiB
)

// isNew reports whether enc is new to the folder for sure, and records
// it as added.
func (a *addedKeys) isNew(enc []byte) bool {
	after := bytes.Compare(enc, a.last) > 0
	if after {
		a.last = append(a.last[:0], enc...)
	}
	if bytes.Compare(enc, a.before) <= 0 {
		return false
	}
	if len(enc) != 9 || enc[0] != keyIMAP || a.full {
		return after
	}
	c := uint64(binary.BigEndian.Uint32(enc[1:]))<<32 | uint64(binary.BigEndian.Uint32(enc[5:])/addedChunkBits)
	bit := binary.BigEndian.Uint32(enc[5:]) % addedChunkBits
	chunk := a.chunks[c]
	if chunk == nil {
		if len(a.chunks) >= maxAddedChunks {
			// From now on only keys after every key added are new
			// for sure (the bits no longer hold every key added).
			a.full = true
			return after
		}
		if a.chunks == nil {
			a.chunks = map[uint64]*[addedChunkBits / 64]uint64{}
		}
		chunk = new([addedChunkBits / 64]uint64)
		a.chunks[c] = chunk
	}
	if chunk[bit/64]&(1<<(bit%64)) != 0 {
		return false // added already
	}
	chunk[bit/64] |= 1 << (bit % 64)
	return true
}
