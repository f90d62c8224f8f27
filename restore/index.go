package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"time"
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
// Rules 3 and 4 need the target's INTERNALDATE; a target that keeps none
// matches by rules 1 and 2 only.
type Index struct {
	entries []indexEntry
	byID    map[string][]int
	bySHA   map[string][]int
	byBody  map[string][]int
}

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
func (x *Index) Len() int { return len(x.entries) }

// Take reports whether the folder holds a copy of m not yet matched, and
// marks that copy as matched (see Index for the rules).
func (x *Index) Take(m *Message) bool {
	i := x.find(m)
	if i < 0 {
		return false
	}
	x.entries[i].taken = true
	return true
}

// Has reports whether the folder holds a copy of m not yet matched,
// without marking it.
func (x *Index) Has(m *Message) bool { return x.find(m) >= 0 }

// NeedsBodyHash reports whether m, a message without a Message-ID whose
// bytes the folder does not hold, could match a rewritten copy by rule 4:
// the caller then sets m.BodySHA256 and calls Take.
func (x *Index) NeedsBodyHash(m *Message) bool {
	if m.MessageID != "" || m.BodySHA256 != "" || m.InternalDate.IsZero() || len(x.byBody) == 0 {
		return false
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
