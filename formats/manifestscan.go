package formats

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
)

// manifestScan is the first pass over a manifest file of any version: a
// byte-level JSON scanner that checks the syntax, computes the SHA-256 of
// the snapshot value compacted (as DecodeSnapshot does with json.Compact,
// without holding the value), and records where the snapshot's members
// and, in a version 1 manifest, each change's members are in the file.
// Memory is bounded by the number of top-level snapshot members and of
// changes (one per folder), never by the number of records.
type manifestScan struct {
	manifest int  // mailvault_manifest
	shaSpan  span // the envelope's sha256 member's value
	// snapshotFound: the envelope had a snapshot member (not null).
	snapshotFound bool
	sum           []byte // SHA-256 of the compacted snapshot value
	// members are the snapshot's members other than "changes", as byte
	// ranges of the file from the key's opening quote to the value's end.
	members []span
	// changes are the elements of the snapshot's "changes" array (the
	// last such member, as encoding/json would keep).
	changes []changeSpan
}

// span is a byte range [Start, End) of a file.
type span struct{ Start, End int64 }

func (s span) len() int64 { return s.End - s.Start }

// changeSpan locates one version 1 change's members.
type changeSpan struct {
	null                  bool // the element is JSON null
	folder, event, from   span // value ranges; zero when absent
	added, flags, gone    span // value ranges (array or null); zero when absent
	nAdded, nFlags, nGone int
}

// maxJSONDepth bounds nesting, as encoding/json does (it allows 10000;
// no manifest needs more than a few levels).
const maxJSONDepth = 64

type jscan struct {
	r       *bufio.Reader
	off     int64
	h       hash.Hash // non-nil while inside the snapshot value
	hbuf    []byte
	keyBuf  []byte
	longKey bool
	// memberStart is the offset of the opening quote of the member name
	// object last read.
	memberStart int64
}

var errSyntax = errors.New("invalid JSON")

func (s *jscan) fail(format string, args ...any) error {
	return fmt.Errorf("%w at offset %d: %s", errSyntax, s.off, fmt.Sprintf(format, args...))
}

// emit feeds consumed token bytes to the hash.
func (s *jscan) emit(b ...byte) {
	if s.h == nil {
		return
	}
	s.hbuf = append(s.hbuf, b...)
	if len(s.hbuf) >= 32<<10 {
		s.flush()
	}
}

func (s *jscan) flush() {
	if s.h != nil && len(s.hbuf) > 0 {
		s.h.Write(s.hbuf)
	}
	s.hbuf = s.hbuf[:0]
}

// next returns the next byte that is not insignificant white space,
// consumed.
func (s *jscan) next() (byte, error) {
	for {
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return 0, s.fail("unexpected end")
			}
			return 0, err
		}
		s.off++
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

// peek returns the next significant byte without consuming it (white
// space before it is consumed).
func (s *jscan) peek() (byte, error) {
	c, err := s.next()
	if err != nil {
		return 0, err
	}
	s.r.UnreadByte()
	s.off--
	return c, nil
}

func (s *jscan) expect(want byte) error {
	c, err := s.next()
	if err != nil {
		return err
	}
	if c != want {
		return s.fail("%q where %q was expected", c, want)
	}
	s.emit(c)
	return nil
}

// str consumes a string whose opening quote has been consumed (and
// emitted). With key, its raw bytes (escapes undecoded) are kept in
// keyBuf, up to 256 bytes.
func (s *jscan) str(key bool) error {
	if key {
		s.keyBuf, s.longKey = s.keyBuf[:0], false
	}
	for {
		// Fast path: a run of plain bytes in the buffer.
		buf, _ := s.r.Peek(s.r.Buffered())
		n := 0
		for n < len(buf) {
			c := buf[n]
			if c == '"' || c == '\\' || c < 0x20 {
				break
			}
			n++
		}
		if n > 0 {
			if key {
				if len(s.keyBuf)+n <= 256 {
					s.keyBuf = append(s.keyBuf, buf[:n]...)
				} else {
					s.longKey = true
				}
			}
			s.emit(buf[:n]...)
			s.r.Discard(n)
			s.off += int64(n)
		}
		c, err := s.r.ReadByte()
		if err != nil {
			if err == io.EOF {
				return s.fail("unterminated string")
			}
			return err
		}
		s.off++
		switch {
		case c == '"':
			s.emit(c)
			return nil
		case c < 0x20:
			return s.fail("control character in string")
		case c == '\\':
			e, err := s.r.ReadByte()
			if err != nil {
				return s.fail("unterminated string")
			}
			s.off++
			esc := []byte{c, e}
			switch e {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				for i := 0; i < 4; i++ {
					x, err := s.r.ReadByte()
					if err != nil {
						return s.fail("unterminated string")
					}
					s.off++
					if !isHex(x) {
						return s.fail("bad \\u escape")
					}
					esc = append(esc, x)
				}
			default:
				return s.fail("bad escape \\%c", e)
			}
			if key {
				if len(s.keyBuf)+len(esc) <= 256 {
					s.keyBuf = append(s.keyBuf, esc...)
				} else {
					s.longKey = true
				}
			}
			s.emit(esc...)
		default: // a byte Peek did not have yet
			if key {
				if len(s.keyBuf) < 256 {
					s.keyBuf = append(s.keyBuf, c)
				} else {
					s.longKey = true
				}
			}
			s.emit(c)
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// keyName returns the member name just read by str(true), unescaped.
func (s *jscan) keyName() string {
	if s.longKey {
		return "\x00long"
	}
	raw := s.keyBuf
	for _, c := range raw {
		if c == '\\' {
			var k string
			q := append(append([]byte{'"'}, raw...), '"')
			if json.Unmarshal(q, &k) != nil {
				return "\x00bad"
			}
			return k
		}
	}
	return string(raw)
}

// number consumes a number whose first byte c has been consumed, and
// returns its bytes.
func (s *jscan) number(c byte) ([]byte, error) {
	out := []byte{c}
	for {
		b, err := s.r.ReadByte()
		if err != nil {
			break
		}
		if b >= '0' && b <= '9' || b == '.' || b == 'e' || b == 'E' || b == '+' || b == '-' {
			out = append(out, b)
			s.off++
			continue
		}
		s.r.UnreadByte()
		break
	}
	if !validNumber(out) {
		return nil, s.fail("bad number %q", out)
	}
	s.emit(out...)
	return out, nil
}

// validNumber checks JSON number syntax.
func validNumber(b []byte) bool {
	i := 0
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || b[i] < '0' || b[i] > '9' {
			return false
		}
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
	}
	return i == len(b)
}

// literal consumes true, false or null whose first byte c was consumed.
func (s *jscan) literal(c byte) (string, error) {
	var want string
	switch c {
	case 't':
		want = "true"
	case 'f':
		want = "false"
	case 'n':
		want = "null"
	default:
		return "", s.fail("unexpected %q", c)
	}
	for i := 1; i < len(want); i++ {
		b, err := s.r.ReadByte()
		if err != nil || b != want[i] {
			return "", s.fail("bad literal")
		}
		s.off++
	}
	s.emit([]byte(want)...)
	return want, nil
}

// skip consumes one value of any kind, checking its syntax.
func (s *jscan) skip(depth int) error {
	if depth > maxJSONDepth {
		return s.fail("nested too deeply")
	}
	c, err := s.next()
	if err != nil {
		return err
	}
	switch {
	case c == '{':
		s.emit(c)
		return s.object(depth, func(string) error { return s.skip(depth + 1) })
	case c == '[':
		s.emit(c)
		_, err := s.array(depth, func() error { return s.skip(depth + 1) })
		return err
	case c == '"':
		s.emit(c)
		return s.str(false)
	case c == '-' || c >= '0' && c <= '9':
		_, err := s.number(c)
		return err
	default:
		_, err := s.literal(c)
		return err
	}
}

// object consumes the members of an object whose '{' was consumed,
// calling member with each name (unescaped) positioned at the value,
// which member must consume.
func (s *jscan) object(depth int, member func(name string) error) error {
	c, err := s.next()
	if err != nil {
		return err
	}
	if c == '}' {
		s.emit(c)
		return nil
	}
	for {
		if c != '"' {
			return s.fail("%q where a member name was expected", c)
		}
		s.emit(c)
		start := s.off - 1
		if err := s.str(true); err != nil {
			return err
		}
		name := s.keyName()
		if err := s.expect(':'); err != nil {
			return err
		}
		s.memberStart = start
		if err := member(name); err != nil {
			return err
		}
		c, err = s.next()
		if err != nil {
			return err
		}
		s.emit(c)
		switch c {
		case '}':
			return nil
		case ',':
		default:
			return s.fail("%q after a member", c)
		}
		if c, err = s.next(); err != nil {
			return err
		}
	}
}

// array consumes the elements of an array whose '[' was consumed,
// calling elem positioned at each element, which elem must consume. It
// returns the number of elements.
func (s *jscan) array(depth int, elem func() error) (int, error) {
	c, err := s.peek()
	if err != nil {
		return 0, err
	}
	if c == ']' {
		s.next()
		s.emit(c)
		return 0, nil
	}
	n := 0
	for {
		if err := elem(); err != nil {
			return n, err
		}
		n++
		c, err := s.next()
		if err != nil {
			return n, err
		}
		s.emit(c)
		switch c {
		case ']':
			return n, nil
		case ',':
		default:
			return n, s.fail("%q after an array element", c)
		}
	}
}

// valueSpan consumes one value with skip and returns its byte range.
func (s *jscan) valueSpan(depth int) (span, error) {
	if _, err := s.peek(); err != nil {
		return span{}, err
	}
	start := s.off
	err := s.skip(depth)
	return span{start, s.off}, err
}

// isNull reports whether the next value is null, without consuming it.
func (s *jscan) isNull() bool {
	c, err := s.peek()
	return err == nil && c == 'n'
}

// fieldIs matches a member name as encoding/json matches it to a field:
// exactly or without case.
func fieldIs(name, field string) bool { return strings.EqualFold(name, field) }

// scanManifest reads a whole manifest file through r (positioned at its
// start) and returns what it found. h receives the compacted snapshot
// value. Errors wrap errSyntax for bad JSON.
func scanManifest(r io.Reader, h hash.Hash) (*manifestScan, error) {
	s := &jscan{r: bufio.NewReaderSize(r, 64<<10)}
	out := &manifestScan{}
	if err := s.expect('{'); err != nil {
		return nil, err
	}
	err := s.object(0, func(name string) error {
		switch {
		case fieldIs(name, "mailvault_manifest"):
			c, err := s.next()
			if err != nil {
				return err
			}
			if c == 'n' {
				_, err := s.literal(c)
				out.manifest = 0
				return err
			}
			if c != '-' && (c < '0' || c > '9') {
				return s.fail("mailvault_manifest is not a number")
			}
			b, err := s.number(c)
			if err != nil {
				return err
			}
			v, err := strconv.Atoi(string(b))
			if err != nil {
				return s.fail("mailvault_manifest %s is not an integer", b)
			}
			out.manifest = v
			return nil
		case fieldIs(name, "sha256"):
			sp, err := s.valueSpan(1)
			if err != nil {
				return err
			}
			out.shaSpan = sp
			return nil
		case fieldIs(name, "snapshot"):
			if s.isNull() {
				out.snapshotFound = false
				return s.skip(1)
			}
			h.Reset()
			s.h, s.hbuf = h, s.hbuf[:0]
			out.members, out.changes = nil, nil
			err := s.snapshot(out)
			s.flush()
			s.h = nil
			out.snapshotFound = err == nil
			out.sum = h.Sum(nil)
			return err
		default:
			return s.skip(1)
		}
	})
	if err != nil {
		return nil, err
	}
	// Only white space may follow.
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s.off++
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return nil, s.fail("data after the manifest")
	}
	return out, nil
}

// snapshot scans the snapshot object.
func (s *jscan) snapshot(out *manifestScan) error {
	if err := s.expect('{'); err != nil {
		return err
	}
	return s.object(1, func(name string) error {
		if !fieldIs(name, "changes") {
			keyStart := s.memberStart
			if _, err := s.valueSpan(2); err != nil {
				return err
			}
			out.members = append(out.members, span{keyStart, s.off})
			return nil
		}
		out.changes = out.changes[:0]
		if s.isNull() {
			return s.skip(2)
		}
		if err := s.expect('['); err != nil {
			return err
		}
		_, err := s.array(2, func() error {
			var cs changeSpan
			if s.isNull() {
				cs.null = true
				out.changes = append(out.changes, cs)
				return s.skip(3)
			}
			if err := s.expect('{'); err != nil {
				return err
			}
			err := s.object(3, func(name string) error {
				var err error
				switch {
				case fieldIs(name, "folder"):
					cs.folder, err = s.valueSpan(4)
				case fieldIs(name, "event"):
					cs.event, err = s.valueSpan(4)
				case fieldIs(name, "from"):
					cs.from, err = s.valueSpan(4)
				case fieldIs(name, "added"):
					cs.added, cs.nAdded, err = s.countedSpan()
				case fieldIs(name, "flags"):
					cs.flags, cs.nFlags, err = s.countedSpan()
				case fieldIs(name, "gone"):
					cs.gone, cs.nGone, err = s.countedSpan()
				default:
					err = s.skip(4)
				}
				return err
			})
			out.changes = append(out.changes, cs)
			return err
		})
		return err
	})
}

// countedSpan consumes an array (or null) and returns its range and its
// number of elements. Any other kind of value is an error.
func (s *jscan) countedSpan() (span, int, error) {
	c, err := s.peek()
	if err != nil {
		return span{}, 0, err
	}
	start := s.off
	if c == 'n' {
		err := s.skip(4)
		return span{start, s.off}, 0, err
	}
	if c != '[' {
		return span{}, 0, s.fail("%q where an array was expected", c)
	}
	s.next()
	s.emit(c)
	n, err := s.array(4, func() error { return s.skip(5) })
	return span{start, s.off}, n, err
}
