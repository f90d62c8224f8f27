package formats

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// What a writing run needs of the state index besides lookups: catching
// up with what it committed, its own stored bytes by content (on disk, so
// that deduplication within a run does not hold a map of every message
// it stored), and the storage's view of what the manifests name (orphans,
// flags in Maildir file names).

// CatchUp applies the manifests committed after the index's snapshot
// (a run's checkpoints and its last snapshot), streaming.
func (ix *Index) CatchUp() error {
	files, err := ix.a.ListSnapshots()
	if err != nil {
		return err
	}
	return ix.catchUp(files, len(files), nil)
}

// ixRunHash prefixes a run's own stored bytes in the hash index:
// r SCOPE 0 SHA(32).
const ixRunHash = 'r'

// RunLocation is where a run stored a message's bytes, and the key it
// stored them for.
type RunLocation struct {
	Seg string
	Off int64
	Key string
}

func runHashKey(scope, sum string) ([]byte, error) {
	raw, err := hex.DecodeString(sum)
	if err != nil || len(raw) != 32 {
		return nil, fmt.Errorf("formats: bad sha256 %q", sum)
	}
	k := append([]byte{ixRunHash}, scope...)
	return append(append(k, 0), raw...), nil
}

// PutRunHashes records bytes a run stored (committed writers), by
// SHA-256, under scope (a folder's directory): RunHash finds them. It
// needs the hash index (IndexOptions.Dedup).
func (ix *Index) PutRunHashes(scope string, locs map[string]RunLocation) error {
	if ix.hdb == nil {
		return errors.New("formats: the index was opened without its hash index")
	}
	var b leveldb.Batch
	for sum, l := range locs {
		k, err := runHashKey(scope, sum)
		if err != nil {
			return err
		}
		ix.runSeen.add(k)
		e := valEnc{}
		e.str(l.Seg)
		e.varint(l.Off)
		e.str(l.Key)
		b.Put(k, e.b)
	}
	return ixErr(ix.hdb.Write(&b, nil))
}

// RunHash returns where the run stored bytes with SHA-256 sum under
// scope, or nil.
func (ix *Index) RunHash(scope, sum string) (*RunLocation, error) {
	if ix.hdb == nil {
		return nil, errors.New("formats: the index was opened without its hash index")
	}
	k, err := runHashKey(scope, sum)
	if err != nil {
		return nil, err
	}
	if !ix.runSeen.has(k) {
		return nil, nil // stored by no writer of this run: no lookup
	}
	v, err := ix.hdb.Get(k, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, ixErr(err)
	}
	d := valDec{b: v}
	l := &RunLocation{Seg: d.str(), Off: d.varint(), Key: d.str()}
	if d.err != nil {
		return nil, ixErr(d.err)
	}
	return l, nil
}

// ClearRunHashes removes every run's stored-bytes records: at the start
// of a run (a killed run left its own) and at its end.
func (ix *Index) ClearRunHashes() error {
	if ix.hdb == nil {
		return nil
	}
	ix.runSeen.clear()
	it := ix.hdb.NewIterator(util.BytesPrefix([]byte{ixRunHash}), nil)
	defer it.Release()
	var b leveldb.Batch
	for it.Next() {
		b.Delete(append([]byte(nil), it.Key()...))
		if b.Len() >= indexBatch {
			if err := ix.hdb.Write(&b, nil); err != nil {
				return ixErr(err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return ixErr(err)
	}
	return ixErr(ix.hdb.Write(&b, nil))
}

// runFilter is a Bloom filter of the run's own hashes (their keys in the
// hash index), of a fixed size: RunHash looks up only the sums a writer
// of the run may have stored. Nearly every message a run stores is new,
// and those lookups of missing keys were the biggest cost of a first
// backup after the fetch itself (9 µs each at 200,000 messages, growing
// with the store's levels). 1 MiB and 4 probes: 2.4 % false positives at
// a million sums, 0.2 % at 250,000; more sums only mean more lookups.
// Safe for concurrent use.
type runFilter struct {
	bits []atomic.Uint64
}

const runFilterBits = 8 << 20

func newRunFilter() *runFilter { return &runFilter{bits: make([]atomic.Uint64, runFilterBits/64)} }

// probes calls fn with the filter's bit positions for key: its last 32
// bytes are a SHA-256 (random), what comes before is mixed in by FNV-1a.
func (f *runFilter) probes(key []byte, fn func(bit uint64) bool) bool {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range key[:len(key)-32] {
		h = (h ^ uint64(c)) * 1099511628211
	}
	sum := key[len(key)-32:]
	a := binary.LittleEndian.Uint64(sum) ^ h
	b := binary.LittleEndian.Uint64(sum[8:]) | 1
	for i := uint64(0); i < 4; i++ {
		if !fn((a + i*b) % runFilterBits) {
			return false
		}
	}
	return true
}

func (f *runFilter) add(key []byte) {
	if f == nil {
		return
	}
	f.probes(key, func(bit uint64) bool {
		f.bits[bit/64].Or(1 << (bit % 64))
		return true
	})
}

// has reports whether key may have been added (always, without a filter).
func (f *runFilter) has(key []byte) bool {
	if f == nil {
		return true
	}
	return f.probes(key, func(bit uint64) bool { return f.bits[bit/64].Load()&(1<<(bit%64)) != 0 })
}

func (f *runFilter) clear() {
	if f == nil {
		return
	}
	for i := range f.bits {
		f.bits[i].Store(0)
	}
}

// indexView is the storage's view (index) of what the state index
// names; the first error of a lookup is kept, and a caller must check it
// before acting on what the view said (an unreadable index must not make
// committed files look like left-overs).
type indexView struct {
	ix  *Index
	err error
}

func (v *indexView) segment(path string) *Segment {
	g, err := v.ix.Segment(path)
	if err != nil && v.err == nil {
		v.err = err
	}
	return g
}

func (v *indexView) segmentPaths() []string {
	var out []string
	err := v.ix.Segments(func(g *Segment) error {
		out = append(out, g.Path)
		return nil
	})
	if err != nil && v.err == nil {
		v.err = err
	}
	return out
}

func (v *indexView) eachStored(fn func(m *Message) error) error {
	for _, f := range v.ix.Folders() {
		mi := v.ix.Messages(f.ID, true)
		for m := mi.Next(); m != nil; m = mi.Next() {
			msg := m.Message // fn may keep it; the iterator's is reused
			if err := fn(&msg); err != nil {
				mi.Release()
				return err
			}
		}
		err := mi.Err()
		mi.Release()
		if err != nil {
			return err
		}
	}
	return nil
}

// RemoveOrphansIndex is RemoveOrphans with the state index (at the latest
// committed snapshot) in place of a State.
func (a *Archive) RemoveOrphansIndex(ix *Index) ([]string, error) {
	v := &indexView{ix: ix}
	orphans, marks, err := a.orphans(v, true)
	if v.err != nil {
		return nil, v.err
	}
	if err != nil {
		return nil, err
	}
	return orphans, a.removePaths(append(orphans, marks...))
}

// AfterCommitIndex is AfterCommit for a run that keeps the state index:
// ix is at the run's last snapshot and from is the sequence number of
// the run's first one. It shows the flags the run changed where the
// storage keeps them on disk (Maildir file names), reading the run's
// flag records from its manifests and each message from the index.
func (a *Archive) AfterCommitIndex(ix *Index, from int) error {
	if _, ok := a.store.(*maildirStorage); !ok {
		return nil
	}
	files, err := a.ListSnapshots()
	if err != nil {
		return err
	}
	if from < 1 || from > len(files) {
		return nil
	}
	var ferr error
	changed := func(yield func(storedFlags) bool) {
		for _, sf := range files[from-1:] {
			m, err := a.OpenManifest(sf)
			if err != nil {
				ferr = err
				return
			}
			ok := eachFlagRecord(m, func(folder, key string) bool {
				f := ix.Folder(folder)
				if f == nil {
					return true
				}
				msg, err := ix.Get(f.ID, key)
				if err != nil {
					ferr = err
					return false
				}
				if msg == nil {
					return true
				}
				return yield(storedFlags{loc: msg.Location(), size: msg.Size, flags: msg.Flags})
			}, &ferr)
			m.Close()
			if !ok {
				return
			}
		}
	}
	if _, err := a.store.syncFlags(changed); err != nil {
		return fmt.Errorf("update flags in message file names: %w", err)
	}
	return ferr
}

// eachFlagRecord calls fn with each flag record of m; it returns false
// when fn or a read stopped it (a read error goes to *errp).
func eachFlagRecord(m *ManifestReader, fn func(folder, key string) bool, errp *error) bool {
	for i, d := range m.Header().Deltas {
		if d.FlagChanges == 0 {
			continue
		}
		rr, err := m.Records(i)
		if err != nil {
			*errp = err
			return false
		}
		for {
			r, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rr.Close()
				*errp = err
				return false
			}
			if r.Kind == RecordFlags && !fn(d.Folder, r.Key) {
				rr.Close()
				return false
			}
		}
		rr.Close()
	}
	return true
}

// DropIndex removes the archive's state index from its cache, so that
// the next OpenIndex builds it again: for a writer whose index failed
// while it was caught up. The caller holds the lock.
func (a *Archive) DropIndex() {
	if name := a.currentIndex(); name != "" {
		os.Remove(filepath.Join(a.Root, CacheDir, indexPointer))
		os.RemoveAll(filepath.Join(a.Root, CacheDir, name))
	}
}
