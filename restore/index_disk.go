package restore

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/storage"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// An Index on disk keeps its entries in a goleveldb store as postings:
// one key per way an entry can be found, ordered so that the first key of
// a prefix is the copy a rule takes. Every key ends with the entry's
// sequence number (the order it was added in). The store is only added
// to: the entries taken are a bit each in memory (Index.taken, 125 KB
// for a million entries), which reads skip. Deleting their keys instead
// would make goleveldb rewrite the whole store again and again, as
// deletions of random keys are compacted into it.
//
//	'i' id size seq   rules 2 and 3: the copies of a Message-ID by size
//	's' sha seq       rule 1
//	'b' body seq      rule 4 (entries without a Message-ID)
//	'u' sec seq       NeedsBodyHash: the entries of 'b' by INTERNALDATE,
//	'w' wall seq      as an instant and as a wall-clock time (seconds)
//
// Strings are written with their length first (uvarint), integers as 8
// big-endian bytes with the sign bit flipped, so that keys sort by
// (string, number, seq). The value of 'i', 's' and 'b' keys is the rest
// of the entry (what the key does not hold), 'u' and 'w' keys have none.
const (
	keyID   = 'i'
	keySHA  = 's'
	keyBody = 'b'
	keySec  = 'u'
	keyWall = 'w'
)

const indexDirPrefix = "mailvault-tindex-"

// indexStaleAge is how old the directory of an index no process holds
// must be before another index removes it (an index that has just made
// its directory has not yet opened, and locked, its store).
const indexStaleAge = time.Hour

// indexBatch is how many keys are gathered before they go to the store.
const indexBatch = 1000

// indexCompactAfter: when a read follows more keys added than this, the
// store is first compacted to one sorted level, so that a lookup reads
// one block instead of one per level and per table of level 0.
const indexCompactAfter = 50_000

// indexCursors is how many cursors (Index.cursors) an index keeps.
const indexCursors = 1024

// indexDBOptions keep the store's memory small and its reads fast.
// Lookups are random: a block cache of a few MB holds few of a large
// store's blocks, and then loses the tables' index blocks to them (with
// 1 MiB, a million entries: 45 KB read and 9,000 takes/s). Without one,
// goleveldb keeps each open table's index block in memory (about 2% of
// the store: 0.7 MB for a million entries) and a lookup reads one data
// block (88,000 takes/s). OpenFilesCacheCapacity bounds the open tables,
// of 2 MiB each: 100 hold four million entries.
func indexDBOptions() *opt.Options {
	return &opt.Options{
		DisableBlockCache:      true,
		WriteBuffer:            1 << 20,
		OpenFilesCacheCapacity: 100,
		NoSync:                 true, // a killed run's store is thrown away
		ErrorIfExist:           true,
	}
}

// diskEntry is an entry as the disk store holds it: its date as seconds
// (sec, and sec+off for the wall clock), which is all sameDate compares.
type diskEntry struct {
	id, sha, body string
	size          int64
	dated         bool
	sec, off      int64
	seq           uint64
}

func toDiskEntry(e IndexEntry, seq uint64) diskEntry {
	d := diskEntry{id: e.MessageID, sha: e.SHA256, body: e.BodySHA256, size: e.Size, seq: seq}
	if !e.InternalDate.IsZero() {
		d.dated = true
		d.sec, d.off = dateSeconds(e.InternalDate)
	}
	return d
}

// dateSeconds returns the instant of t and its offset from UTC, in
// seconds: sameDate(a, b) holds exactly when both are known and the
// seconds or the seconds plus the offsets (the wall clock) are equal.
func dateSeconds(t time.Time) (sec, off int64) {
	_, o := t.Zone()
	return t.Unix(), int64(o)
}

// sameDate is sameDate of d's date and one of dateSeconds.
func (d *diskEntry) sameDate(sec, off int64) bool {
	return d.dated && (d.sec == sec || d.sec+d.off == sec+off)
}

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendNum(b []byte, n int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(n)^1<<63)
}

func strKey(kind byte, s string) []byte { return appendStr([]byte{kind}, s) }

// postings returns the keys of d and their values.
func (d *diskEntry) postings() (keys, values [][]byte) {
	add := func(k, v []byte) {
		keys = append(keys, binary.BigEndian.AppendUint64(k, d.seq))
		values = append(values, v)
	}
	if d.id != "" {
		add(appendNum(strKey(keyID, d.id), d.size), d.value(false, d.sha, ""))
	}
	if d.sha != "" {
		body := d.body // kept only for entries without a Message-ID
		if d.id != "" {
			body = ""
		}
		add(strKey(keySHA, d.sha), d.value(true, "", body))
	}
	if d.body != "" && d.id == "" {
		add(strKey(keyBody, d.body), d.value(true, d.sha, ""))
		if d.dated {
			add(appendNum([]byte{keySec}, d.sec), nil)
			add(appendNum([]byte{keyWall}, d.sec+d.off), nil)
		}
	}
	return keys, values
}

// value encodes the fields of d a key does not hold: the Message-ID and
// size (when withID), sha and body as given, and the date.
func (d *diskEntry) value(withID bool, sha, body string) []byte {
	var b []byte
	id, size := "", int64(0)
	if withID {
		id, size = d.id, d.size
	}
	b = appendStr(b, id)
	b = binary.AppendVarint(b, size)
	b = appendStr(b, sha)
	b = appendStr(b, body)
	if !d.dated {
		return append(b, 0)
	}
	b = append(b, 1)
	b = binary.AppendVarint(b, d.sec)
	return binary.AppendVarint(b, d.off)
}

// decodePosting reads an entry from an 'i', 's' or 'b' key and its value.
func decodePosting(key, val []byte) (diskEntry, error) {
	d, ok := decodeKey(key)
	if !ok {
		return d, fmt.Errorf("restore: corrupt target index key %q", key)
	}
	if !d.decodeValue(val) {
		return d, fmt.Errorf("restore: corrupt target index value of key %q", key)
	}
	return d, nil
}

func decodeKey(key []byte) (diskEntry, bool) {
	var d diskEntry
	if len(key) < 9 {
		return d, false
	}
	kind, rest := key[0], key[1:len(key)-8]
	d.seq = binary.BigEndian.Uint64(key[len(key)-8:])
	s, rest, ok := readStr(rest)
	if !ok {
		return d, false
	}
	switch kind {
	case keyID:
		if len(rest) != 8 {
			return d, false
		}
		d.id, d.size = s, int64(binary.BigEndian.Uint64(rest)^1<<63)
	case keySHA:
		d.sha = s
	case keyBody:
		d.body = s
	default:
		return d, false
	}
	return d, len(rest) == 0 || kind == keyID
}

// decodeValue fills in what value holds.
func (d *diskEntry) decodeValue(val []byte) bool {
	id, val, ok1 := readStr(val)
	size, n := binary.Varint(val)
	if !ok1 || n <= 0 {
		return false
	}
	sha, val, ok2 := readStr(val[n:])
	body, val, ok3 := readStr(val)
	if !ok2 || !ok3 || len(val) == 0 {
		return false
	}
	if id != "" {
		d.id, d.size = id, size
	}
	if sha != "" {
		d.sha = sha
	}
	if body != "" {
		d.body = body
	}
	if val[0] == 1 {
		sec, n1 := binary.Varint(val[1:])
		if n1 <= 0 {
			return false
		}
		off, n2 := binary.Varint(val[1+n1:])
		if n2 <= 0 {
			return false
		}
		d.dated, d.sec, d.off = true, sec, off
	}
	return true
}

func readStr(b []byte) (string, []byte, bool) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, false
	}
	return string(b[k : k+int(n)]), b[k+int(n):], true
}

func (x *Index) fail(op string, err error) {
	if err != nil && x.err == nil {
		x.err = fmt.Errorf("%s target index: %w", op, err)
	}
}

// spill moves the entries in memory to a new disk store.
func (x *Index) spill() {
	tmp := os.TempDir()
	removeStaleIndexDirs(tmp)
	dir, err := os.MkdirTemp(tmp, indexDirPrefix+"*")
	if err != nil {
		x.fail("create", err)
		return
	}
	db, err := leveldb.OpenFile(dir, indexDBOptions())
	if err != nil {
		os.RemoveAll(dir)
		x.fail("create", err)
		return
	}
	x.dir, x.db = dir, db
	for i := range x.entries {
		if e := &x.entries[i]; !e.taken {
			x.seq = uint64(i)
			x.diskAdd(e.IndexEntry)
		}
	}
	x.seq = uint64(len(x.entries))
	x.entries, x.byID, x.bySHA, x.byBody = nil, nil, nil, nil
}

func (x *Index) diskAdd(e IndexEntry) {
	d := toDiskEntry(e, x.seq)
	x.seq++
	keys, values := d.postings()
	for i, k := range keys {
		x.batch.Put(k, values[i])
	}
	x.puts += len(keys)
	if x.batch.Len() >= indexBatch {
		x.flush()
	}
}

func (x *Index) isTaken(seq uint64) bool {
	return seq/64 < uint64(len(x.taken)) && x.taken[seq/64]&(1<<(seq%64)) != 0
}

func (x *Index) setTaken(seq uint64) {
	for seq/64 >= uint64(len(x.taken)) {
		x.taken = append(x.taken, 0)
	}
	x.taken[seq/64] |= 1 << (seq % 64)
}

// flush writes the gathered writes.
func (x *Index) flush() {
	if x.batch.Len() == 0 || x.err != nil {
		return
	}
	x.releaseIter()
	x.fail("write", x.db.Write(&x.batch, nil))
	x.batch.Reset()
	x.unsorted += x.puts
	x.puts = 0
}

func (x *Index) releaseIter() {
	if x.it != nil {
		x.it.Release()
		x.it = nil
	}
}

// readable writes the entries added before a read, and reports whether
// the index can be read.
func (x *Index) readable() bool {
	x.flush()
	if x.unsorted > indexCompactAfter && x.err == nil {
		x.fail("compact", x.db.CompactRange(util.Range{}))
		x.unsorted = 0
	}
	if x.it == nil && x.err == nil {
		// One iterator serves every read until the next write: making
		// one per read costs more than the read.
		x.it = x.db.NewIterator(nil, nil)
	}
	return x.err == nil
}

func (x *Index) diskClose() error {
	if x.dir == "" {
		return nil
	}
	x.releaseIter()
	err := x.db.Close()
	if rerr := os.RemoveAll(x.dir); err == nil {
		err = rerr
	}
	x.db, x.dir, x.taken = nil, "", nil
	x.batch.Reset()
	if err != nil {
		return fmt.Errorf("close target index: %w", err)
	}
	return nil
}

// scan calls f with each posting from start (included) to limit
// (excluded) in key order, but those of entries taken, until f returns
// false. It counts the postings of entries taken in *skipped when
// skipped is not nil.
func (x *Index) scan(start, limit []byte, f func(d *diskEntry) bool, skipped *int) {
	for ok := x.it.Seek(start); ok && bytes.Compare(x.it.Key(), limit) < 0; ok = x.it.Next() {
		d, err := decodePosting(x.it.Key(), x.it.Value())
		if err != nil {
			x.fail("read", err)
			return
		}
		if x.isTaken(d.seq) {
			if skipped != nil {
				*skipped++
			}
			continue
		}
		if !f(&d) {
			break
		}
	}
	x.fail("read", x.it.Error())
}

// firstOf returns the first posting under prefix of an entry not taken
// for which ok holds.
func (x *Index) firstOf(prefix []byte, ok func(*diskEntry) bool) (diskEntry, bool) {
	start := prefix
	if c, found := x.cursors[string(prefix)]; found && ok == nil {
		start = binary.BigEndian.AppendUint64(bytes.Clone(prefix), c)
	}
	var hit diskEntry
	found, skipped := false, 0
	x.scan(start, util.BytesPrefix(prefix).Limit, func(d *diskEntry) bool {
		if ok == nil || ok(d) {
			hit, found = *d, true
			return false
		}
		return true
	}, &skipped)
	if found && ok == nil && skipped > 0 {
		// The copies before hit are all taken: the next lookup starts at
		// hit, instead of skipping them again (many copies of one
		// message would cost the square of their number).
		if len(x.cursors) >= indexCursors {
			clear(x.cursors)
		}
		if x.cursors == nil {
			x.cursors = map[string]uint64{}
		}
		x.cursors[string(prefix)] = hit.seq
	}
	return hit, found && x.err == nil
}

// diskFind is find on disk: the entry Take takes.
func (x *Index) diskFind(m *Message) (diskEntry, bool) {
	if !x.readable() {
		return diskEntry{}, false
	}
	if m.SHA256 != "" {
		if d, ok := x.firstOf(strKey(keySHA, m.SHA256), nil); ok || x.err != nil {
			return d, ok
		}
	}
	sec, off := dateSeconds(m.InternalDate)
	dated := !m.InternalDate.IsZero()
	if m.MessageID != "" {
		idKey := strKey(keyID, m.MessageID)
		if d, ok := x.firstOf(appendNum(idKey, m.Size), nil); ok || x.err != nil || !dated {
			return d, ok
		}
		// Rule 3: the sizes within the tolerance, the closest first, then
		// the first added.
		lo, hi := m.Size-SizeTolerance, m.Size+SizeTolerance
		if m.Size < math.MinInt64+SizeTolerance {
			lo = math.MinInt64
		}
		start, limit := appendNum(bytes.Clone(idKey), lo), util.BytesPrefix(idKey).Limit
		if m.Size <= math.MaxInt64-SizeTolerance-1 {
			limit = appendNum(bytes.Clone(idKey), hi+1)
		}
		var best diskEntry
		found, diff := false, int64(SizeTolerance)+1
		x.scan(start, limit, func(d *diskEntry) bool {
			if !d.sameDate(sec, off) {
				return true
			}
			if dd := abs(d.size - m.Size); dd < diff || dd == diff && d.seq < best.seq {
				best, found, diff = *d, true, dd
			}
			return true
		}, nil)
		return best, found && x.err == nil
	}
	if m.BodySHA256 != "" && dated {
		return x.firstOf(strKey(keyBody, m.BodySHA256), func(d *diskEntry) bool { return d.sameDate(sec, off) })
	}
	return diskEntry{}, false
}

func (x *Index) diskNeedsBodyHash(m *Message) bool {
	if !x.readable() {
		return false
	}
	if m.SHA256 != "" {
		if _, ok := x.firstOf(strKey(keySHA, m.SHA256), nil); ok || x.err != nil {
			return false
		}
	}
	sec, off := dateSeconds(m.InternalDate)
	return x.exists(appendNum([]byte{keySec}, sec)) || x.exists(appendNum([]byte{keyWall}, sec+off))
}

// exists reports whether a key of an entry not taken starts with prefix
// (of a kind without a value to decode).
func (x *Index) exists(prefix []byte) bool {
	ok := false
	for more := x.it.Seek(prefix); !ok && more && bytes.HasPrefix(x.it.Key(), prefix); more = x.it.Next() {
		k := x.it.Key()
		ok = len(k) >= 8 && !x.isTaken(binary.BigEndian.Uint64(k[len(k)-8:]))
	}
	x.fail("read", x.it.Error())
	return ok && x.err == nil
}

// removeStaleIndexDirs removes the directories of indexes whose process
// ended without Close (killed): older than indexStaleAge and with a
// store no process holds (goleveldb locks its directory while open).
// It is best effort: what it cannot remove stays.
func removeStaleIndexDirs(tmp string) {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), indexDirPrefix) {
			continue
		}
		info, err := e.Info()
		if err != nil || time.Since(info.ModTime()) < indexStaleAge {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		st, err := storage.OpenFile(p, false)
		if err != nil {
			continue // held by a live index, or not ours to judge
		}
		st.Close()
		os.RemoveAll(p)
	}
}
