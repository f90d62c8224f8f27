package formats

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The state cache (ARCHIVE/cache/, see docs/FORMAT.md, "State cache") is
// the State at one snapshot, kept so that a run does not replay every
// manifest. It is derived data: nothing needs it for correctness, and a
// cache that is missing, damaged, of another archive or at a snapshot the
// archive does not have is ignored.
//
//	cache/index.json                        which snapshot; segments; folders
//	cache/SEQ-ID-s-RAND.zst                 segments (a few files, see below)
//	cache/SEQ-ID-f-RAND.zst                 one folder's messages
//
// index.json is {"mailvault_state_cache":1,"index":{...},"sha256":HEX},
// HEX the SHA-256 of the index bytes. It names every other file with its
// size and SHA-256; a file is used only if both match. The other files are
// zstd-compressed binary records (cacheEnc). SEQ-ID is the snapshot the
// writer was at and RAND random: a file's name is never reused.
//
// Writing costs what changed: a folder whose messages did not change since
// the cache keeps its file, and segments (which only accumulate) are kept
// in files of decreasing size, the newest segments written to a new file
// and small files merged (like a binary counter), so that each segment is
// rewritten O(log n) times and there are O(log n) files.

// CacheIndexFile is the state cache's index, in CacheDir.
const CacheIndexFile = "index.json"

const (
	cacheVersion      = 1
	maxCacheIndex     = 256 << 20
	cacheFolderMagic  = "mvcf\x01"
	cacheSegmentMagic = "mvcs\x01"
)

// Test hooks: folder message files read and written.
var cacheFolderReads, cacheFolderWrites atomic.Int64

// cacheFileRef names a file of the cache with what it must be.
type cacheFileRef struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	Count  int    `json:"count"` // messages (folder file) or segments in it
}

type cacheFolder struct {
	Folder  Folder        `json:"folder"`
	Deleted bool          `json:"deleted,omitempty"`
	File    *cacheFileRef `json:"messages,omitempty"` // nil when it has none
}

type cacheIndex struct {
	Archive  string         `json:"archive"` // Config.ID
	Seq      int            `json:"seq"`
	ID       string         `json:"id"`
	Snapshot *Snapshot      `json:"snapshot"` // without segments and changes
	Segments []cacheFileRef `json:"segments"` // in commit order
	Folders  []cacheFolder  `json:"folders"`
	// Manifests stamps manifests 1…Seq by size and modification time: a
	// manifest changed since the cache was written (damaged, replaced) is
	// noticed by a stat, without reading it, and the state is then
	// rebuilt from all manifests, which reports the damage.
	Manifests []manifestStamp `json:"manifests"`
}

type manifestStamp struct {
	Size  int64 `json:"size"`
	MTime int64 `json:"mtime"` // Unix nanoseconds
}

// stampManifests stats the given manifests.
func stampManifests(files []SnapshotFile) ([]manifestStamp, error) {
	out := make([]manifestStamp, len(files))
	for i, sf := range files {
		fi, err := os.Stat(sf.Path)
		if err != nil {
			return nil, err
		}
		out[i] = manifestStamp{Size: fi.Size(), MTime: fi.ModTime().UnixNano()}
	}
	return out, nil
}

type cacheEnvelope struct {
	Version int             `json:"mailvault_state_cache"`
	Index   json.RawMessage `json:"index"`
	SHA256  string          `json:"sha256"`
}

// savedCache is what the cache on disk holds of a State.
type savedCache struct {
	root   string
	chunks []cacheFileRef // hold segOrder[:sum of Count]
}

// cacheLoader reads the messages of a lazy State's folders.
type cacheLoader struct {
	a  *Archive
	id string // the snapshot the cache was at

	mu        sync.Mutex
	err       error  // the first folder that could not be loaded
	replayed  bool   // replay was tried (a damaged folder file)
	replay    *State // the state at id, replayed from the manifests
	replayErr error
}

// lazyFolder is how a folder of a lazy State gets its messages.
type lazyFolder struct {
	once sync.Once
	err  error
	l    *cacheLoader
	name string // the folder's name at the cache's snapshot
	file cacheFileRef
}

// Load reads the folder's messages if it is a lazy folder not read yet
// (see Archive.LoadState); otherwise it does nothing. It is safe to call
// from several goroutines. A folder file that is missing or damaged is
// detected by its SHA-256 and the folder rebuilt from the manifests
// instead (slow but right); only if that fails too does Load return an
// error, the same error every later time, and State.Err reports it. A
// folder that failed to load has no messages: the State must then not be
// used to write a snapshot.
func (f *FolderState) Load() error {
	z := f.lazy
	if z == nil {
		return nil
	}
	z.once.Do(func() {
		ms, err := z.l.readFolder(z.file)
		if err != nil {
			ms, err = z.l.replayFolder(z.name)
			if err != nil {
				z.err = fmt.Errorf("state of folder %q: %w", z.name, err)
				z.l.fail(z.err)
				return
			}
			f.cached = nil // the file is bad: write it again
		}
		f.setArchived(ms)
	})
	return z.err
}

func (f *FolderState) setArchived(ms []*MessageState) {
	f.Archived = ms
	f.byKey = make(map[string]*MessageState, len(ms))
	f.byHash = make(map[string]*MessageState, len(ms))
	for _, m := range ms {
		f.byKey[m.Key] = m
		if f.byHash[m.SHA256] == nil {
			f.byHash[m.SHA256] = m
		}
	}
}

// LoadAll loads every folder of a lazy State (see FolderState.Load), so
// that FolderState.Archived can be read directly.
func (st *State) LoadAll() error {
	for _, name := range st.FolderNames() {
		if err := st.Folders[name].Load(); err != nil {
			return err
		}
	}
	return nil
}

// Err returns the first error of loading a folder of a lazy State, or nil.
// Lookup, ByHash and Present cannot return errors: a caller that used them
// must check Err before it commits a snapshot built from their answers.
// (Apply, Load and LoadAll return the error themselves.)
func (st *State) Err() error {
	if st.loader == nil {
		return nil
	}
	st.loader.mu.Lock()
	defer st.loader.mu.Unlock()
	return st.loader.err
}

func (l *cacheLoader) fail(err error) {
	l.mu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.mu.Unlock()
}

func (l *cacheLoader) readFolder(ref cacheFileRef) ([]*MessageState, error) {
	cacheFolderReads.Add(1)
	data, err := l.a.readCacheFile(ref)
	if err != nil {
		return nil, err
	}
	return decodeFolderMessages(data, ref.Count)
}

// replayFolder is the slow path for a damaged folder file: the folder's
// messages at the cache's snapshot, replayed from the manifests (once for
// all folders). A lazy folder's messages have not changed since then.
func (l *cacheLoader) replayFolder(name string) ([]*MessageState, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.replayed {
		l.replayed = true
		snaps, err := l.a.Snapshots()
		if err == nil {
			l.replay, err = Replay(snaps, l.id)
		}
		l.replayErr = err
	}
	if l.replayErr != nil {
		return nil, l.replayErr
	}
	f := l.replay.Folders[name]
	if f == nil {
		return nil, fmt.Errorf("%w: folder %q is not in snapshot %s", ErrCorrupt, name, l.id)
	}
	delete(l.replay.Folders, name)
	return f.Archived, nil
}

// LoadState returns the state at the latest committed snapshot, as Replay
// of every snapshot would, using the state cache when it is usable: if
// cache/index.json is the state at snapshot K of this archive (same
// archive id, and the K-th manifest has its sequence number and id), only
// the manifests after K are read and applied. Otherwise (no cache, or a
// damaged, foreign or stale one) it reads and replays every manifest.
//
// The State is lazy: a folder from the cache has its metadata but reads
// its messages only when first needed, by Lookup, ByHash, Present, Apply,
// Load or LoadAll. FolderState.Archived is nil until then. See
// FolderState.Load for errors. When no manifest follows the cache,
// st.Snapshot is the cache's copy of the last manifest, without its
// Segments and Changes (st.Segments has every segment).
func (a *Archive) LoadState() (*State, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	if len(files) > 0 {
		if st := a.loadCachedState(files); st != nil {
			return st, nil
		}
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, err
	}
	return Replay(snaps, "")
}

// loadCachedState is LoadState from the cache, or nil when the cache
// cannot be used (any error: the full replay then reports what is wrong
// with the archive itself).
func (a *Archive) loadCachedState(files []SnapshotFile) *State {
	idx, err := a.readCacheIndex()
	if err != nil {
		return nil
	}
	for i, sf := range files {
		if sf.Seq != i+1 {
			return nil
		}
	}
	if idx.Archive != a.Config.ID || idx.Seq < 1 || idx.Seq > len(files) || files[idx.Seq-1].ID != idx.ID ||
		idx.Snapshot == nil || idx.Snapshot.ID != idx.ID || idx.Snapshot.Seq != idx.Seq {
		return nil
	}
	stamps, err := stampManifests(files[:idx.Seq])
	if err != nil || !slices.Equal(stamps, idx.Manifests) {
		return nil
	}
	st, err := a.stateFromIndex(idx)
	if err != nil {
		return nil
	}
	prev := idx.Snapshot
	for _, sf := range files[idx.Seq:] {
		s, err := a.ReadSnapshot(sf)
		if err != nil || s.Seq != prev.Seq+1 {
			return nil
		}
		if err := st.Apply(s); err != nil {
			return nil
		}
		prev = s
	}
	return st
}

func (a *Archive) readCacheIndex() (*cacheIndex, error) {
	f, err := os.Open(filepath.Join(a.Root, CacheDir, CacheIndexFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCacheIndex+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCacheIndex {
		return nil, errors.New("state cache index too large")
	}
	var env cacheEnvelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, err
	}
	if env.Version != cacheVersion || sha256Hex(env.Index) != env.SHA256 {
		return nil, errors.New("state cache index: other version or checksum mismatch")
	}
	var idx cacheIndex
	if err := json.Unmarshal(env.Index, &idx); err != nil {
		return nil, err
	}
	return &idx, nil
}

// stateFromIndex builds the lazy state the index describes: segments are
// read now, folders' messages later. Every file the index names must exist
// with its size.
func (a *Archive) stateFromIndex(idx *cacheIndex) (*State, error) {
	st := NewState()
	st.Snapshot = idx.Snapshot
	l := &cacheLoader{a: a, id: idx.ID}
	for _, ref := range idx.Segments {
		data, err := a.readCacheFile(ref)
		if err != nil {
			return nil, err
		}
		segs, err := decodeSegments(data, ref.Count)
		if err != nil {
			return nil, err
		}
		for i := range segs {
			g := &segs[i]
			if st.Segments[g.Path] != nil {
				return nil, fmt.Errorf("%w: state cache: segment %s twice", ErrCorrupt, g.Path)
			}
			st.Segments[g.Path] = g
			st.segOrder = append(st.segOrder, g.Path)
		}
	}
	for _, cf := range idx.Folders {
		name := cf.Folder.Name
		if name == "" || st.Folders[name] != nil {
			return nil, fmt.Errorf("%w: state cache: bad folder %q", ErrCorrupt, name)
		}
		f := &FolderState{Folder: cf.Folder, Deleted: cf.Deleted}
		if cf.File == nil {
			f.setArchived(nil)
		} else {
			ref := *cf.File
			if ref.Count < 1 || !a.cacheFileThere(ref) {
				return nil, fmt.Errorf("%w: state cache: file of folder %q", ErrCorrupt, name)
			}
			f.lazy = &lazyFolder{l: l, name: name, file: ref}
			f.cached = &ref
		}
		st.Folders[name] = f
	}
	st.saved = &savedCache{root: a.Root, chunks: idx.Segments}
	st.loader = l
	return st, nil
}

// SaveStateCache writes the state cache for st, the state at
// st.Snapshot, which must be committed; the caller holds the archive's
// lock. Only what changed since the cache st was loaded from (or last
// saved to) is written: the files of folders whose messages changed, a
// file with the new segments, and a new index, which replaces the old one
// atomically; files no index names any more are removed after. A state
// without cache (from Replay) is written whole. Nothing is fsynced: a
// cache lost or damaged in a crash is detected and ignored. An error
// leaves the previous cache in place (still valid for its snapshot);
// callers may just log it. It refuses a State whose Err is set.
//
// A folder's file is reused when Apply did not change its messages, so a
// State must change only through Apply (a message edited in place would
// not reach the cache). SaveStateCache must not run while other
// goroutines use st.
func (a *Archive) SaveStateCache(st *State) error {
	if st == nil || st.Snapshot == nil {
		return nil
	}
	if err := st.Err(); err != nil {
		return fmt.Errorf("state cache not saved: %w", err)
	}
	dir := filepath.Join(a.Root, CacheDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("state cache: %w", err)
	}
	s := st.Snapshot
	prefix := fmt.Sprintf("%08d-%s-", s.Seq, s.ID)
	head := *s
	head.Segments, head.Changes = nil, nil
	idx := cacheIndex{Archive: a.Config.ID, Seq: s.Seq, ID: s.ID, Snapshot: &head}
	files, err := a.ListSnapshots()
	if err != nil {
		return err
	}
	if len(files) < s.Seq || files[s.Seq-1].ID != s.ID {
		return fmt.Errorf("state cache: snapshot %s is not committed", s.ID)
	}
	if idx.Manifests, err = stampManifests(files[:s.Seq]); err != nil {
		return err
	}
	reuse := st.saved != nil && st.saved.root == a.Root

	// Segments: keep the files that hold the oldest ones.
	if len(st.segOrder) != len(st.Segments) {
		// Not built by Apply: start over in a fixed order.
		st.segOrder = st.segOrder[:0]
		for p := range st.Segments {
			st.segOrder = append(st.segOrder, p)
		}
		sort.Strings(st.segOrder)
		reuse = false
	}
	var chunks []cacheFileRef
	covered := 0
	if reuse {
		for _, c := range st.saved.chunks {
			if !a.cacheFileThere(c) {
				chunks, covered = nil, 0
				break
			}
			chunks = append(chunks, c)
			covered += c.Count
		}
		if covered > len(st.segOrder) {
			chunks, covered = nil, 0
		}
	}
	type span struct {
		ref      *cacheFileRef // nil: to be written
		start, n int
	}
	var spans []span
	start := 0
	for i := range chunks {
		spans = append(spans, span{&chunks[i], start, chunks[i].Count})
		start += chunks[i].Count
	}
	if covered < len(st.segOrder) {
		spans = append(spans, span{nil, covered, len(st.segOrder) - covered})
	}
	for n := len(spans); n >= 2 && spans[n-1].n >= spans[n-2].n; n = len(spans) {
		spans = append(spans[:n-2], span{nil, spans[n-2].start, spans[n-2].n + spans[n-1].n})
	}
	for _, sp := range spans {
		if sp.ref != nil {
			idx.Segments = append(idx.Segments, *sp.ref)
			continue
		}
		ref, err := a.writeCacheFile(prefix+"s-", encodeSegments(st.Segments, st.segOrder[sp.start:sp.start+sp.n]))
		if err != nil {
			return err
		}
		ref.Count = sp.n
		idx.Segments = append(idx.Segments, ref)
	}

	// Folders: keep the files of folders whose messages did not change.
	written := map[*FolderState]*cacheFileRef{}
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		cf := cacheFolder{Folder: f.Folder, Deleted: f.Deleted}
		if reuse && f.cached != nil && a.cacheFileThere(*f.cached) {
			cf.File = f.cached
		} else {
			if err := f.Load(); err != nil {
				return fmt.Errorf("state cache not saved: %w", err)
			}
			if len(f.Archived) > 0 {
				ref, err := a.writeCacheFile(prefix+"f-", encodeFolderMessages(f.Archived))
				if err != nil {
					return err
				}
				ref.Count = len(f.Archived)
				cacheFolderWrites.Add(1)
				cf.File = &ref
				written[f] = &ref
			}
		}
		idx.Folders = append(idx.Folders, cf)
	}

	body, err := json.Marshal(&idx)
	if err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, `{"mailvault_state_cache":%d,"index":%s,"sha256":"%s"}`+"\n", cacheVersion, body, sha256Hex(body))
	if err := replaceFile(filepath.Join(dir, CacheIndexFile), []byte(b.String())); err != nil {
		return fmt.Errorf("state cache: %w", err)
	}
	for f, ref := range written {
		f.cached = ref
	}
	st.saved = &savedCache{root: a.Root, chunks: idx.Segments}

	// What no index names any more (or an interrupted save left).
	named := map[string]bool{}
	for _, r := range idx.Segments {
		named[r.Name] = true
	}
	for _, cf := range idx.Folders {
		if cf.File != nil {
			named[cf.File.Name] = true
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil // the new cache is in place; the rest goes next time
	}
	for _, e := range entries {
		n := e.Name()
		if strings.HasSuffix(n, ".tmp") || validCacheName(n) && !named[n] {
			os.Remove(filepath.Join(dir, n))
		}
	}
	return nil
}

// validCacheName accepts the names of the files an index names:
// SEQ-ID-K-RAND.zst.
func validCacheName(n string) bool {
	base, ok := strings.CutSuffix(n, ".zst")
	parts := strings.Split(base, "-")
	if !ok || len(parts) != 4 || len(parts[0]) != 8 || !ValidID(parts[1]) || parts[2] != "f" && parts[2] != "s" || !ValidID(parts[3]) {
		return false
	}
	for _, c := range parts[0] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// cacheFileThere reports whether the file ref names is there with its size.
func (a *Archive) cacheFileThere(ref cacheFileRef) bool {
	if !validCacheName(ref.Name) {
		return false
	}
	fi, err := os.Stat(filepath.Join(a.Root, CacheDir, ref.Name))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == ref.Size
}

// readCacheFile reads, checks and decompresses a file of the cache.
func (a *Archive) readCacheFile(ref cacheFileRef) ([]byte, error) {
	if !validCacheName(ref.Name) {
		return nil, fmt.Errorf("%w: state cache: bad file name %q", ErrCorrupt, ref.Name)
	}
	raw, err := os.ReadFile(filepath.Join(a.Root, CacheDir, ref.Name))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) != ref.Size || sha256Hex(raw) != ref.SHA256 {
		return nil, fmt.Errorf("%w: state cache file %s: checksum mismatch", ErrCorrupt, ref.Name)
	}
	dec, err := cacheDecoder()
	if err != nil {
		return nil, err
	}
	data, err := dec.DecodeAll(raw, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: state cache file %s: %v", ErrCorrupt, ref.Name, err)
	}
	return data, nil
}

// writeCacheFile compresses data into a new file of the cache named
// prefix + RAND.zst.
func (a *Archive) writeCacheFile(prefix string, data []byte) (cacheFileRef, error) {
	enc, err := cacheEncoder()
	if err != nil {
		return cacheFileRef{}, err
	}
	raw := enc.EncodeAll(data, make([]byte, 0, len(data)/4+64))
	ref := cacheFileRef{Name: prefix + randomHex(4) + ".zst", Size: int64(len(raw)), SHA256: sha256Hex(raw)}
	if err := replaceFile(filepath.Join(a.Root, CacheDir, ref.Name), raw); err != nil {
		return cacheFileRef{}, fmt.Errorf("state cache: %w", err)
	}
	return ref, nil
}

// replaceFile writes path through a temporary file and a rename, so that
// the name never holds part of a file. It does not fsync: the cache is
// checked by checksums when read.
func replaceFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var cacheDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
})

var cacheEncoder = sync.OnceValues(func() (*zstd.Encoder, error) {
	// A 1 MiB window: the default 8 MiB history was the biggest allocation
	// of a backup's end (it is written while the run's state is in memory).
	return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(1<<20), zstd.WithLowerEncoderMem(true))
})

// Binary records of the cache files (before compression). Integers are
// (zigzag) varints, strings a length and the bytes; "interned" strings
// (segment paths, flags, snapshot ids, which repeat) are the index+1 of an
// earlier one, or 0 and the string.
//
// Folder file: "mvcf\x01", count, number of flags in all, then per message
// key, sha256, size, internal date (unix seconds, nanoseconds, zone
// offset in seconds), number of flags+1 (0: nil) and each flag (interned),
// message_id, from, to, subject, date, seg (interned), off, added_in
// (interned), gone (0 or 1), gone_in (interned).
//
// Segments file: "mvcs\x01", count, number of frames in all, then per
// segment path, size, sha256, usize, records, number of frames+1 (0: nil)
// and each frame's two offsets.

type cacheEnc struct {
	b   []byte
	tab map[string]uint64
}

func (e *cacheEnc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *cacheEnc) varint(v int64)   { e.b = binary.AppendVarint(e.b, v) }

func (e *cacheEnc) str(s string) {
	e.uvarint(uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *cacheEnc) istr(s string) {
	if i, ok := e.tab[s]; ok {
		e.uvarint(i + 1)
		return
	}
	e.tab[s] = uint64(len(e.tab))
	e.uvarint(0)
	e.str(s)
}

func encodeFolderMessages(ms []*MessageState) []byte {
	nflags := 0
	for _, m := range ms {
		nflags += len(m.Flags)
	}
	e := &cacheEnc{b: make([]byte, 0, 256*len(ms)+16), tab: map[string]uint64{}}
	e.b = append(e.b, cacheFolderMagic...)
	e.uvarint(uint64(len(ms)))
	e.uvarint(uint64(nflags))
	for _, m := range ms {
		e.str(m.Key)
		e.str(m.SHA256)
		e.varint(m.Size)
		_, off := m.InternalDate.Zone()
		e.varint(m.InternalDate.Unix())
		e.uvarint(uint64(m.InternalDate.Nanosecond()))
		e.varint(int64(off))
		if m.Flags == nil {
			e.uvarint(0)
		} else {
			e.uvarint(uint64(len(m.Flags)) + 1)
			for _, fl := range m.Flags {
				e.istr(fl)
			}
		}
		e.str(m.MessageID)
		e.str(m.From)
		e.str(m.To)
		e.str(m.Subject)
		e.str(m.Date)
		e.istr(m.Seg)
		e.varint(m.Off)
		e.istr(m.AddedIn)
		if m.Gone {
			e.uvarint(1)
		} else {
			e.uvarint(0)
		}
		e.istr(m.GoneIn)
	}
	return e.b
}

func encodeSegments(all map[string]*Segment, paths []string) []byte {
	nframes := 0
	for _, p := range paths {
		nframes += len(all[p].Frames)
	}
	e := &cacheEnc{b: make([]byte, 0, 128*len(paths)+16*nframes+16)}
	e.b = append(e.b, cacheSegmentMagic...)
	e.uvarint(uint64(len(paths)))
	e.uvarint(uint64(nframes))
	for _, p := range paths {
		g := all[p]
		e.str(g.Path)
		e.varint(g.Size)
		e.str(g.SHA256)
		e.varint(g.USize)
		e.varint(int64(g.Records))
		if g.Frames == nil {
			e.uvarint(0)
		} else {
			e.uvarint(uint64(len(g.Frames)) + 1)
			for _, fr := range g.Frames {
				e.varint(fr[0])
				e.varint(fr[1])
			}
		}
	}
	return e.b
}

var errCacheData = fmt.Errorf("%w: state cache: bad record", ErrCorrupt)

// cacheDec reads records from one string holding the whole file, so that
// the strings it returns share its memory.
type cacheDec struct {
	s   string
	i   int
	tab []string
	err error
}

func (d *cacheDec) fail() {
	if d.err == nil {
		d.err = errCacheData
	}
}

func (d *cacheDec) magic(m string) {
	if !strings.HasPrefix(d.s, m) {
		d.fail()
		return
	}
	d.i = len(m)
}

func (d *cacheDec) uvarint() uint64 {
	var x uint64
	for shift := uint(0); shift < 64; shift += 7 {
		if d.i >= len(d.s) {
			d.fail()
			return 0
		}
		c := d.s[d.i]
		d.i++
		if c < 0x80 {
			if shift == 63 && c > 1 {
				d.fail()
				return 0
			}
			return x | uint64(c)<<shift
		}
		x |= uint64(c&0x7f) << shift
	}
	d.fail()
	return 0
}

func (d *cacheDec) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// count reads a number of things each of which takes at least a byte.
func (d *cacheDec) count() int {
	n := d.uvarint()
	if n > uint64(len(d.s)) {
		d.fail()
		return 0
	}
	return int(n)
}

func (d *cacheDec) str() string {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.s)-d.i) {
		d.fail()
		return ""
	}
	s := d.s[d.i : d.i+int(n)]
	d.i += int(n)
	return s
}

func (d *cacheDec) istr() string {
	k := d.uvarint()
	if k == 0 {
		s := d.str()
		d.tab = append(d.tab, s)
		return s
	}
	if k > uint64(len(d.tab)) {
		d.fail()
		return ""
	}
	return d.tab[k-1]
}

func decodeFolderMessages(data []byte, want int) ([]*MessageState, error) {
	d := &cacheDec{s: string(data)}
	d.magic(cacheFolderMagic)
	n, nflags := d.count(), d.count()
	if d.err != nil || n != want {
		return nil, errCacheData
	}
	slab := make([]MessageState, n)
	out := make([]*MessageState, n)
	flags := make([]string, nflags)
	zones := map[int]*time.Location{}
	for i := range slab {
		m := &slab[i]
		m.Key = d.str()
		m.SHA256 = d.str()
		m.Size = d.varint()
		sec, nsec, off := d.varint(), d.uvarint(), d.varint()
		if nsec >= 1e9 || off < -24*3600 || off > 24*3600 {
			d.fail()
		}
		m.InternalDate = time.Unix(sec, int64(nsec)).UTC()
		if off != 0 {
			loc := zones[int(off)]
			if loc == nil {
				loc = time.FixedZone("", int(off))
				zones[int(off)] = loc
			}
			m.InternalDate = m.InternalDate.In(loc)
		}
		if k := d.uvarint(); k > 0 {
			k--
			if k > uint64(len(flags)) {
				return nil, errCacheData
			}
			m.Flags, flags = flags[:k:k], flags[k:]
			for j := range m.Flags {
				m.Flags[j] = d.istr()
			}
		}
		m.MessageID = d.str()
		m.From = d.str()
		m.To = d.str()
		m.Subject = d.str()
		m.Date = d.str()
		m.Seg = d.istr()
		m.Off = d.varint()
		m.AddedIn = d.istr()
		m.Gone = d.uvarint() == 1
		m.GoneIn = d.istr()
		if d.err != nil {
			return nil, d.err
		}
		out[i] = m
	}
	if d.i != len(d.s) {
		return nil, errCacheData
	}
	return out, nil
}

func decodeSegments(data []byte, want int) ([]Segment, error) {
	d := &cacheDec{s: string(data)}
	d.magic(cacheSegmentMagic)
	n, nframes := d.count(), d.count()
	if d.err != nil || n != want {
		return nil, errCacheData
	}
	out := make([]Segment, n)
	frames := make([][2]int64, nframes)
	for i := range out {
		g := &out[i]
		g.Path = d.str()
		g.Size = d.varint()
		g.SHA256 = d.str()
		g.USize = d.varint()
		g.Records = int(d.varint())
		if k := d.uvarint(); k > 0 {
			k--
			if k > uint64(len(frames)) {
				return nil, errCacheData
			}
			g.Frames, frames = frames[:k:k], frames[k:]
			for j := range g.Frames {
				g.Frames[j] = [2]int64{d.varint(), d.varint()}
			}
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if d.i != len(d.s) {
		return nil, errCacheData
	}
	return out, nil
}
