package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"io"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/iterator"
)

// SizeTolerance is how much the size of a message a target holds may
// differ from the archived size for the two to be taken for the same
// message when their Message-ID and INTERNALDATE agree (see Index.Take).
// Servers that rewrite what they store change a few dozen bytes: GNU
// Mailutils adds Status, X-UID and X-IMAPbase header fields (about 70
// bytes) and collapses white space after header colons, Courier adds a
// final CRLF to a message without one.
const SizeTolerance = 4096

// IndexEntry is what a target knows of one message it holds.
type IndexEntry struct {
	MessageID string
	Size      int64
	// SHA256 is the SHA-256 of the message's bytes as the target serves
	// them; "" when the target did not read them.
	SHA256 string
	// InternalDate is the date the target keeps for the message; zero
	// when it keeps none (a local target).
	InternalDate time.Time
	// BodySHA256 is BodyHash of the message; "" when not read.
	BodySHA256 string
}

// Index is the identity of the messages a folder holds, so that a restore
// appends only what is missing. It counts copies: each entry matches one
// archived message at most, so a folder that held the same message twice
// is restored with both copies, and a re-run appends n-k copies where the
// archive has n and the target holds k.
//
// Take matches an archived message with the first rule that applies:
//
//  1. the same bytes: SHA-256 equal (targets that read whole messages);
//  2. the same Message-ID and the same size (exact where the server keeps
//     the bytes; Cyrus' munge8bit replaces 8-bit header bytes with "X"
//     and keeps the size);
//  3. the same Message-ID, the same INTERNALDATE (the same instant, or the
//     same wall-clock time in another zone: GNU Mailutils keeps the time
//     and forces +0000) and a size within SizeTolerance, the closest size
//     first (a server that adds header fields or a final CRLF);
//  4. for a message without a Message-ID: the same BodyHash (the body
//     after the header, trailing line ends ignored) and the same
//     INTERNALDATE.
//
// Among the copies a rule matches, Take takes the first one added that is
// not taken yet (for rule 3: the first among the closest sizes). Rules 3
// and 4 need the target's INTERNALDATE; a target that keeps none matches
// by rules 1 and 2 only.
//
// Memory: an index keeps its entries in memory up to IndexMemoryEntries
// (20,000), then moves them to a store on disk (goleveldb, in a
// temporary directory os.TempDir()/mailvault-tindex-*) and answers the
// same from there: its memory is then about 4 MB and a bit per entry
// (125 KB for a million). Close removes the directory: whoever drops an
// index must close it (an adapter that fails after building one, the
// engine when it is done with a folder). The directory of a process
// killed before it could is removed by the next index that goes to disk
// under the same temporary directory, once it is an hour old and no
// process holds its store.
//
// Errors: Add, AddEntry, Take, Has and NeedsBodyHash have no error
// result. When the disk store fails (the temporary directory cannot be
// made, the disk is full, a read fails) or the index is used after Close,
// the index records the first error, which Err returns, and from then on
// matches nothing (Take, Has and NeedsBodyHash report false) and ignores
// what is added. A false Take is then no proof that the folder lacks the
// message: the caller checks Err after its Takes and before appending
// what they did not match, and gives the folder up if it is not nil.
// Adapters check it once they have built an index: Target.Index returns
// the error (and closes the index) rather than a spoiled index.
//
// An Index is not safe for concurrent use.
type Index struct {
	n      int // entries added
	bodies int // entries added that rule 4 can match
	err    error
	closed bool

	// In memory, until the index holds more than IndexMemoryEntries.
	entries []indexEntry
	byID    map[string][]int
	bySHA   map[string][]int
	byBody  map[string][]int

	// On disk, after (index_disk.go).
	dir      string
	db       *leveldb.DB
	it       iterator.Iterator // reads db; nil after a write
	batch    leveldb.Batch     // keys not yet in db
	puts     int               // keys in batch
	unsorted int               // keys written since db was last compacted
	taken    []uint64          // a bit per entry: taken
	// cursors: for a prefix of keys, the sequence number before which
	// every entry under it is taken (a few, for many copies).
	cursors map[string]uint64
	seq     uint64 // of the next entry
}

// IndexMemoryEntries is how many entries an Index keeps in memory before
// it moves them to disk. At about 230 bytes an entry, 20,000 are 4.6 MB,
// no more than the disk store costs. It is a variable for tests (of the
// adapters too), which lower it to put small indexes on disk; it is read
// when an entry is added, so it must not change while indexes are built.
var IndexMemoryEntries = 20_000

type indexEntry struct {
	IndexEntry
	taken bool
}

// NewIndex returns an empty index.
func NewIndex() *Index {
	return &Index{byID: map[string][]int{}, bySHA: map[string][]int{}, byBody: map[string][]int{}}
}

// Add records a message the folder holds, known by Message-ID and size,
// or by SHA-256 (sha may be "" when the target did not read the message).
func (x *Index) Add(messageID string, size int64, sha string) {
	x.AddEntry(IndexEntry{MessageID: messageID, Size: size, SHA256: sha})
}

// AddEntry records a message the folder holds.
func (x *Index) AddEntry(e IndexEntry) {
	x.n++
	if !x.usable() {
		return
	}
	if e.BodySHA256 != "" && e.MessageID == "" {
		x.bodies++
	}
	if x.db == nil && len(x.entries) >= IndexMemoryEntries {
		if x.spill(); x.err != nil {
			return
		}
	}
	if x.db != nil {
		x.diskAdd(e)
		return
	}
	i := len(x.entries)
	x.entries = append(x.entries, indexEntry{IndexEntry: e})
	if e.MessageID != "" {
		x.byID[e.MessageID] = append(x.byID[e.MessageID], i)
	}
	if e.SHA256 != "" {
		x.bySHA[e.SHA256] = append(x.bySHA[e.SHA256], i)
	}
	if e.BodySHA256 != "" && e.MessageID == "" {
		x.byBody[e.BodySHA256] = append(x.byBody[e.BodySHA256], i)
	}
}

// Len returns the number of entries added.
func (x *Index) Len() int { return x.n }

// Err returns the first error of the disk store (or of a use after
// Close), nil if none: see Index.
func (x *Index) Err() error {
	if x == nil {
		return nil
	}
	return x.err
}

// Built is how a target's Index method ends: it returns x, or the error
// that spoiled its building (err, else x's own: its disk store failed),
// closing x.
func (x *Index) Built(err error) (*Index, error) {
	if err == nil {
		err = x.Err()
	}
	if err != nil {
		x.Close()
		return nil, err
	}
	return x, nil
}

// Close releases the index: it removes its temporary directory when it
// went to disk. Closing an index in memory, a nil one or one closed
// already does nothing more. An index is not used after Close (Take
// reports false and Err an error).
func (x *Index) Close() error {
	if x == nil || x.closed {
		return nil
	}
	x.closed = true
	x.entries, x.byID, x.bySHA, x.byBody = nil, nil, nil, nil
	return x.diskClose()
}

var errIndexClosed = errors.New("restore: target index used after Close")

// usable reports whether the index can be used, recording the use of a
// closed one as its error.
func (x *Index) usable() bool {
	if x.closed && x.err == nil {
		x.err = errIndexClosed
	}
	return x.err == nil
}

// Take reports whether the folder holds a copy of m not yet matched, and
// marks that copy as matched (see Index for the rules).
func (x *Index) Take(m *Message) bool {
	if !x.usable() {
		return false
	}
	if x.db != nil {
		d, ok := x.diskFind(m)
		if ok {
			x.setTaken(d.seq)
		}
		return ok
	}
	i := x.find(m)
	if i < 0 {
		return false
	}
	x.entries[i].taken = true
	return true
}

// Has reports whether the folder holds a copy of m not yet matched,
// without marking it.
func (x *Index) Has(m *Message) bool {
	if !x.usable() {
		return false
	}
	if x.db != nil {
		_, ok := x.diskFind(m)
		return ok
	}
	return x.find(m) >= 0
}

// NeedsBodyHash reports whether m, a message without a Message-ID whose
// bytes the folder does not hold, could match a rewritten copy by rule 4:
// the caller then sets m.BodySHA256 and calls Take.
func (x *Index) NeedsBodyHash(m *Message) bool {
	if m.MessageID != "" || m.BodySHA256 != "" || m.InternalDate.IsZero() || x.bodies == 0 || !x.usable() {
		return false
	}
	if x.db != nil {
		return x.diskNeedsBodyHash(m)
	}
	if x.first(x.bySHA[m.SHA256], func(*indexEntry) bool { return m.SHA256 != "" }) >= 0 {
		return false
	}
	for _, e := range x.entries {
		if !e.taken && e.MessageID == "" && e.BodySHA256 != "" && sameDate(e.InternalDate, m.InternalDate) {
			return true
		}
	}
	return false
}

func (x *Index) find(m *Message) int {
	if m.SHA256 != "" {
		if i := x.first(x.bySHA[m.SHA256], func(*indexEntry) bool { return true }); i >= 0 {
			return i
		}
	}
	if m.MessageID != "" {
		ids := x.byID[m.MessageID]
		if i := x.first(ids, func(e *indexEntry) bool { return e.Size == m.Size }); i >= 0 {
			return i
		}
		best, diff := -1, int64(SizeTolerance)+1
		for _, i := range ids {
			e := &x.entries[i]
			if e.taken || !sameDate(e.InternalDate, m.InternalDate) {
				continue
			}
			if d := abs(e.Size - m.Size); d < diff {
				best, diff = i, d
			}
		}
		return best
	}
	if m.BodySHA256 != "" {
		return x.first(x.byBody[m.BodySHA256], func(e *indexEntry) bool { return sameDate(e.InternalDate, m.InternalDate) })
	}
	return -1
}

// first returns the first entry of ids not taken for which ok holds, -1
// if none.
func (x *Index) first(ids []int, ok func(*indexEntry) bool) int {
	for _, i := range ids {
		if e := &x.entries[i]; !e.taken && ok(e) {
			return i
		}
	}
	return -1
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// sameDate reports whether two INTERNALDATEs, both known, are the same to
// the second: the same instant, or the same wall-clock time written in
// another zone.
func sameDate(a, b time.Time) bool {
	if a.IsZero() || b.IsZero() {
		return false
	}
	a, b = a.Truncate(time.Second), b.Truncate(time.Second)
	const wall = "2006-01-02 15:04:05"
	return a.Equal(b) || a.Format(wall) == b.Format(wall)
}

// BodyHash returns the hex SHA-256 of a message's body: the bytes after
// the empty line that ends the header (CRLF CRLF, or LF LF), without the
// line ends at its very end. A message without an empty line is all
// header: its hash is that of nothing. It is what survives servers that
// rewrite header fields and add a final line end.
func BodyHash(r io.Reader) (string, error) {
	b := NewBodyHasher()
	if _, err := io.Copy(b, r); err != nil {
		return "", err
	}
	return b.Sum(), nil
}

// BodyHasher computes BodyHash of the bytes written to it.
type BodyHasher struct {
	h      hash.Hash
	inBody bool
	last   [3]byte // the last bytes of the header seen, for its end
	crlf   []byte  // CR and LF bytes held back until a byte that is neither shows they are not the end
}

// NewBodyHasher returns a BodyHasher.
func NewBodyHasher() *BodyHasher {
	// The header starts after a line end: an empty first line ends it.
	return &BodyHasher{h: sha256.New(), last: [3]byte{0, '\r', '\n'}}
}

// Sum returns the hex BodyHash of what was written.
func (b *BodyHasher) Sum() string { return hex.EncodeToString(b.h.Sum(nil)) }

// Write implements io.Writer.
func (b *BodyHasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !b.inBody {
			c := p[0]
			p = p[1:]
			if c == '\n' && (b.last[2] == '\n' || b.last[2] == '\r' && b.last[1] == '\n' && b.last[0] == '\r') {
				b.inBody = true
			}
			b.last = [3]byte{b.last[1], b.last[2], c}
			continue
		}
		i := 0
		for i < len(p) && p[i] != '\r' && p[i] != '\n' {
			i++
		}
		if i > 0 {
			if len(b.crlf) > 0 {
				b.h.Write(b.crlf)
				b.crlf = b.crlf[:0]
			}
			b.h.Write(p[:i])
			p = p[i:]
			continue
		}
		b.crlf = append(b.crlf, p[0])
		p = p[1:]
	}
	return n, nil
}
