package formats

import (
	"strconv"
	"unicode/utf8"
)

// A delta file holds a JSON line per message a run added: at 1,000,000
// messages, encoding/json's reflection cost a backup more CPU (and
// garbage) than anything of its own but the mail's compression. The
// message record is written and read here by hand, byte for byte as
// encoding/json writes it (TestMessageJSONSameAsEncodingJSON,
// FuzzMessageJSON); any line this reader does not recognise as exactly
// that shape goes to encoding/json, so what a file may hold and the
// errors it gets are unchanged.

const jsonHex = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json's Marshal does
// (HTML characters escaped, invalid UTF-8 replaced, U+2028 and U+2029
// escaped).
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', jsonHex[b>>4], jsonHex[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', jsonHex[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// appendMessageJSON appends m as json.Marshal(m) gives it; ok is false
// when it cannot (a time Marshal refuses): the caller then uses Marshal.
func appendMessageJSON(b []byte, m *Message) (_ []byte, ok bool) {
	date, err := m.InternalDate.MarshalJSON()
	if err != nil {
		return b, false
	}
	b = append(b, `{"key":`...)
	b = appendJSONString(b, m.Key)
	b = append(b, `,"sha256":`...)
	b = appendJSONString(b, m.SHA256)
	b = append(b, `,"size":`...)
	b = strconv.AppendInt(b, m.Size, 10)
	b = append(b, `,"internal_date":`...)
	b = append(b, date...)
	if len(m.Flags) > 0 {
		b = append(b, `,"flags":[`...)
		for i, f := range m.Flags {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, f)
		}
		b = append(b, ']')
	}
	for _, f := range [...]struct{ name, v string }{
		{`,"message_id":`, m.MessageID}, {`,"from":`, m.From}, {`,"to":`, m.To}, {`,"subject":`, m.Subject}, {`,"date":`, m.Date},
	} {
		if f.v != "" {
			b = append(b, f.name...)
			b = appendJSONString(b, f.v)
		}
	}
	b = append(b, `,"seg":`...)
	b = appendJSONString(b, m.Seg)
	b = append(b, `,"off":`...)
	b = strconv.AppendInt(b, m.Off, 10)
	return append(b, '}'), true
}

// jsonScan reads the shape appendMessageJSON writes. Any surprise (an
// escape, a key in another spelling, a null, a number with a fraction)
// makes it give up: the line is then read by encoding/json.
type jsonScan struct {
	b   []byte
	i   int
	bad bool
	buf []byte // unescaped string
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) byte(c byte) {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return
	}
	s.bad = true
}

func (s *jsonScan) peek(c byte) bool {
	s.ws()
	return s.i < len(s.b) && s.b[s.i] == c
}

// raw returns a string's bytes between its quotes, unescaped into s.buf
// when it has escapes. It gives up (bad) on what encoding/json would
// read differently or refuse: control characters, invalid UTF-8 (which
// json replaces), surrogate escapes.
func (s *jsonScan) raw() []byte {
	s.ws()
	if s.bad || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.bad = true
		return nil
	}
	j := s.i + 1
	ascii, esc := true, false
	for ; j < len(s.b) && s.b[j] != '"'; j++ {
		c := s.b[j]
		switch {
		case c < 0x20:
			s.bad = true
			return nil
		case c == '\\':
			esc = true
			j++ // the escaped byte, whatever it is: read below
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	if j >= len(s.b) {
		s.bad = true
		return nil
	}
	v := s.b[s.i+1 : j]
	s.i = j + 1
	if !ascii && !utf8.Valid(v) {
		s.bad = true
		return nil
	}
	if !esc {
		return v
	}
	out := s.buf[:0]
	for k := 0; k < len(v); k++ {
		c := v[k]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		k++
		if k >= len(v) {
			s.bad = true
			return nil
		}
		switch v[k] {
		case '"', '\\', '/':
			out = append(out, v[k])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if k+5 > len(v) {
				s.bad = true
				return nil
			}
			r, err := strconv.ParseUint(string(v[k+1:k+5]), 16, 32)
			if err != nil || r >= 0xD800 && r < 0xE000 {
				s.bad = true // a surrogate: encoding/json's pairing rules
				return nil
			}
			out = utf8.AppendRune(out, rune(r))
			k += 4
		default:
			s.bad = true
			return nil
		}
	}
	s.buf = out
	return out
}

func (s *jsonScan) str() string {
	v := s.raw()
	if s.bad {
		return ""
	}
	return string(v)
}

func (s *jsonScan) int() int64 {
	s.ws()
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(string(s.b[s.i:j]), 10, 64)
	if err != nil || j < len(s.b) && (s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E') || j-s.i > 1 && s.b[s.i] == '0' || j-s.i > 2 && s.b[s.i] == '-' && s.b[s.i+1] == '0' {
		s.bad = true
		return 0
	}
	s.i = j
	return n
}

// decodeAddLine reads a delta line `{"a":MESSAGE}` into m. ok is false
// when the line is anything else, or not in the shape it knows: the
// caller then decodes it with encoding/json.
func decodeAddLine(line []byte, m *Message) (ok bool) {
	s := &jsonScan{b: line}
	s.byte('{')
	if k := s.raw(); s.bad || string(k) != "a" {
		return false
	}
	s.byte(':')
	s.byte('{')
	*m = Message{}
	var have uint16
	for !s.bad && !s.peek('}') {
		if have != 0 {
			s.byte(',')
		}
		k := s.raw()
		s.byte(':')
		if s.bad {
			return false
		}
		var bit uint16
		switch string(k) {
		case "key":
			bit, m.Key = 1<<0, s.str()
		case "sha256":
			bit, m.SHA256 = 1<<1, s.str()
		case "size":
			bit, m.Size = 1<<2, s.int()
		case "internal_date":
			bit = 1 << 3
			s.ws()
			start := s.i
			s.raw()
			if s.bad || m.InternalDate.UnmarshalJSON(s.b[start:s.i]) != nil {
				return false
			}
		case "flags":
			bit = 1 << 4
			s.byte('[')
			m.Flags = nil
			for !s.bad && !s.peek(']') {
				if len(m.Flags) > 0 {
					s.byte(',')
				}
				m.Flags = append(m.Flags, s.str())
			}
			s.byte(']')
			if m.Flags == nil {
				m.Flags = []string{}
			}
		case "message_id":
			bit, m.MessageID = 1<<5, s.str()
		case "from":
			bit, m.From = 1<<6, s.str()
		case "to":
			bit, m.To = 1<<7, s.str()
		case "subject":
			bit, m.Subject = 1<<8, s.str()
		case "date":
			bit, m.Date = 1<<9, s.str()
		case "seg":
			bit, m.Seg = 1<<10, s.str()
		case "off":
			bit, m.Off = 1<<11, s.int()
		default:
			return false
		}
		if have&bit != 0 {
			return false // a key twice: encoding/json's rules apply
		}
		have |= bit
	}
	s.byte('}')
	s.byte('}')
	s.ws()
	return !s.bad && s.i == len(s.b) && have != 0
}
