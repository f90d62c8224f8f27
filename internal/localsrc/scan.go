package localsrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"time"
)

// fromPrefix starts every mbox separator line.
const fromPrefix = "From "

// maxFromLine bounds the bytes of a From line kept to read its date.
const maxFromLine = 1024

// errNotMbox is a file that does not start with "From ".
var errNotMbox = errors.New("not an mbox file (it does not start with \"From \")")

// mboxMsg is one message of an mbox file as the scan found it.
type mboxMsg struct {
	key        string
	start, end int64    // the message's bytes in the file, quoted, without From line and separator
	size       int64    // unquoted size
	sum        [32]byte // SHA-256 of the unquoted bytes
	flags      []string
	date       time.Time
}

// scanner reads an mbox file in one pass, splitting it into messages and
// hashing each message's unquoted bytes as it goes, without ever holding
// a whole message.
type scanner struct {
	zone  *time.Location
	mtime time.Time
	msgs  []mboxMsg
	seen  map[string]int // base key -> copies so far

	// The message being read.
	open      bool
	from      []byte
	h         hash.Hash
	size      int64
	start     int64
	end       int64 // after the last byte of the message known so far
	held      []byte
	heldEnd   int64
	head      []byte
	headDone  bool
	sumBuffer [sha256.Size]byte
	// kh hashes the message without Thunderbird's X-Mozilla-* header
	// lines, which Thunderbird rewrites in place when a message is read or
	// tagged: the key stays the same, and the change shows as a flag
	// change instead of a new message.
	kh       hash.Hash
	skipLine bool
}

// scanMbox splits an mbox stream into messages (see the package
// documentation for the rules).
func scanMbox(ctx context.Context, r io.Reader, zone *time.Location, mtime time.Time) ([]mboxMsg, error) {
	s := &scanner{zone: zone, mtime: mtime, seen: map[string]int{}, h: sha256.New(), kh: sha256.New()}
	br := bufio.NewReaderSize(r, 64<<10)
	var pos int64
	lineStart, inFrom := true, false
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			switch {
			case pos == 0 && !bytes.HasPrefix(line, []byte(fromPrefix)):
				return nil, errNotMbox
			case lineStart && bytes.HasPrefix(line, []byte(fromPrefix)):
				s.finish()
				s.begin()
				s.from = append(s.from, line[:min(len(line), maxFromLine)]...)
				inFrom = true
			case inFrom:
				s.from = append(s.from, line[:min(len(line), maxFromLine-len(s.from))]...)
			default:
				s.line(line, lineStart, pos)
			}
			pos += int64(len(line))
			lineStart = line[len(line)-1] == '\n'
			if inFrom && lineStart {
				inFrom = false
				s.start, s.end = pos, pos
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return nil, err
		}
	}
	if inFrom {
		// The file ends within a From line: an empty message.
		s.start, s.end = pos, pos
	}
	s.finish()
	return s.msgs, nil
}

func (s *scanner) begin() {
	s.open = true
	s.from = s.from[:0]
	s.h.Reset()
	s.kh.Reset()
	s.skipLine = false
	s.size = 0
	s.held = s.held[:0]
	s.head = s.head[:0]
	s.headDone = false
}

// line takes one line (or a piece of a long one) of the message at file
// offset off. A blank line is held back until it is known not to be the
// separator before the next From line; a line matching ^>From loses its
// first '>' (mboxo quoting).
func (s *scanner) line(p []byte, lineStart bool, off int64) {
	end := off + int64(len(p))
	if lineStart && (len(p) == 1 && p[0] == '\n' || len(p) == 2 && p[0] == '\r' && p[1] == '\n') {
		s.headDone = true
		s.skipLine = false
		s.flushHeld()
		s.held = append(s.held[:0], p...)
		s.heldEnd = end
		return
	}
	s.flushHeld()
	if lineStart && !s.headDone && len(p) > 0 && p[0] != ' ' && p[0] != '\t' {
		s.skipLine = len(p) >= len(mozillaPrefix) && strings.EqualFold(string(p[:len(mozillaPrefix)]), mozillaPrefix)
	}
	if lineStart && bytes.HasPrefix(p, []byte(">"+fromPrefix)) {
		p = p[1:]
	}
	s.emit(p)
	s.end = end
}

func (s *scanner) flushHeld() {
	if len(s.held) > 0 {
		s.emit(s.held)
		s.end = s.heldEnd
		s.held = s.held[:0]
	}
}

func (s *scanner) emit(p []byte) {
	if !s.headDone && len(s.head) < maxHeader {
		s.head = append(s.head, p[:min(len(p), maxHeader-len(s.head))]...)
	}
	s.h.Write(p)
	if !s.skipLine {
		s.kh.Write(p)
	}
	s.size += int64(len(p))
}

// mozillaPrefix starts the header lines left out of an mbox message's key.
const mozillaPrefix = "X-Mozilla-"

// finish records the message being read; a held blank line is the
// separator and is dropped.
func (s *scanner) finish() {
	if !s.open {
		return
	}
	s.open = false
	m := mboxMsg{start: s.start, end: s.end, size: s.size}
	s.h.Sum(s.sumBuffer[:0])
	m.sum = s.sumBuffer
	var ksum [sha256.Size]byte
	base := "sha256:" + hex.EncodeToString(s.kh.Sum(ksum[:0])[:16])
	s.seen[base]++
	m.key = base
	if n := s.seen[base]; n > 1 {
		m.key += "#" + strconv.Itoa(n)
	}
	var hdrDate time.Time
	var ok bool
	m.flags, hdrDate, ok = mboxMeta(s.head)
	if t, fromOK := parseFromLine(string(s.from), s.zone); fromOK {
		m.date = t
	} else if ok {
		m.date = hdrDate
	} else {
		m.date = s.mtime
	}
	s.msgs = append(s.msgs, m)
}

// unquoter undoes mboxo quoting while reading one message: a line that
// starts with ">From " loses its '>'. Lines with more '>' are kept.
type unquoter struct {
	br      *bufio.Reader
	atStart bool
}

func (u *unquoter) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if u.atStart {
			if b, _ := u.br.Peek(len(fromPrefix) + 1); string(b) == ">"+fromPrefix {
				u.br.Discard(1)
			}
			u.atStart = false
		}
		if u.br.Buffered() == 0 {
			if _, err := u.br.Peek(1); err != nil {
				if n > 0 {
					return n, nil
				}
				return 0, err
			}
		}
		b, _ := u.br.Peek(min(u.br.Buffered(), len(p)-n))
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[:i+1]
			u.atStart = true
		}
		n += copy(p[n:], b)
		u.br.Discard(len(b))
	}
	return n, nil
}

// verifier checks, at the end of a message, that the bytes read are the
// ones the scan hashed: the file may have been rewritten (compacted) in
// between.
type verifier struct {
	r    io.Reader
	h    hash.Hash
	n    int64
	want *mboxMsg
	path string
}

func (v *verifier) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		var sum [sha256.Size]byte
		if v.n != v.want.size || !bytes.Equal(v.h.Sum(sum[:0]), v.want.sum[:]) {
			return n, fmt.Errorf("%s: message %s changed since the folder was listed (the file was rewritten); run the backup again", v.path, v.want.key)
		}
	}
	return n, err
}
