// Package msghdr reads what mailvault keeps of a message's header —
// Message-ID, From, To, Subject, Date — the same way everywhere: when a
// backup records a message, and when a restore target is searched for the
// messages it already holds.
package msghdr

import (
	"bytes"
	"mime"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
)

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// Meta is what the archive keeps of a message's header.
type Meta struct{ MessageID, From, To, Subject, Date string }

// Parse extracts Message-ID, From, To, Subject and Date from raw header
// bytes, tolerating malformed headers. From, To and Subject are RFC 2047
// decoded; every value is valid UTF-8 and at most MaxField bytes.
//
// It reads the header exactly as go-message's textproto.ReadHeader does
// (the first field of each name wins; a line that is not a field, or a
// field name with a byte outside 33–126, ends the header; a header whose
// first line is folded is empty) but keeps only the five fields it
// returns: a backup parses every message's header, and building the whole
// header cost more than the rest of storing a small message
// (TestParseSameAsTextproto and FuzzParse compare the two).
func Parse(raw []byte) Meta {
	var v [nFields]string
	var seen [nFields]bool
	scanFields(raw, func(i int, value []byte) bool {
		if !seen[i] {
			seen[i] = true
			v[i] = unfold(value)
		}
		return seen != [nFields]bool{true, true, true, true, true}
	})
	get := func(i int) string { return strings.TrimSpace(v[i]) }
	decode := func(s string) string {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
		return s
	}
	return Meta{
		MessageID: Clean(get(fieldMessageID)),
		From:      Clean(decode(get(fieldFrom))),
		To:        Clean(decode(get(fieldTo))),
		Subject:   Clean(decode(get(fieldSubject))),
		Date:      Clean(get(fieldDate)),
	}
}

// The fields Parse keeps, by their index in fieldNames.
const (
	fieldMessageID = iota
	fieldFrom
	fieldTo
	fieldSubject
	fieldDate
	nFields
)

var fieldNames = [nFields]string{"message-id", "from", "to", "subject", "date"}

// line returns the first line of b without its end ("\r\n" or "\n", as
// bufio.Reader.ReadLine strips it) and what follows it. A last line
// without an end is followed by the "\r\n\r\n" textproto's reader was
// given after the header.
func line(b []byte) (l, rest []byte, ok bool) {
	if len(b) == 0 {
		return nil, nil, false
	}
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return b, nil, true
	}
	l, rest = b[:i], b[i+1:]
	if len(l) > 0 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	return l, rest, true
}

// scanFields calls fn with the index and the raw value (after the colon,
// continuation lines included with their line ends) of each field of raw
// that Parse keeps, in order, while fn returns true.
func scanFields(raw []byte, fn func(i int, value []byte) bool) {
	if len(raw) > 0 && isSpace(raw[0]) {
		return // textproto: malformed initial line
	}
	rest := raw
	for {
		first, after, ok := line(rest)
		if !ok || len(first) == 0 {
			// The end of raw, or a blank line. (At the end of raw the
			// reader sees "\r\n\r\n": a blank line either way.)
			return
		}
		// The field: this line and the continuation lines after it.
		field := rest[:len(rest)-len(after)]
		for len(after) > 0 && isSpace(after[0]) {
			_, next, _ := line(after)
			field = rest[:len(rest)-len(next)]
			after = next
		}
		rest = after
		colon := bytes.IndexByte(field, ':')
		if colon < 0 {
			return // textproto: malformed header line
		}
		key := trim(field[:colon])
		for _, c := range key {
			if c < 33 || c > 126 || c == ':' {
				return // textproto: malformed header key
			}
		}
		if len(key) == 0 {
			continue
		}
		for i, name := range fieldNames {
			if len(key) == len(name) && asciiEqualFold(key, name) {
				if !fn(i, field[colon+1:]) {
					return
				}
				break
			}
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// trim removes leading and trailing spaces and tabs.
func trim(s []byte) []byte {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	n := len(s)
	for n > i && isSpace(s[n-1]) {
		n--
	}
	return s[i:n]
}

func asciiEqualFold(b []byte, lower string) bool {
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// unfold joins a field value's lines as textproto does: each line
// without its line end and surrounding spaces and tabs, the non-empty
// ones joined by one space.
func unfold(v []byte) string {
	var b strings.Builder
	for len(v) > 0 {
		var l []byte
		l, v, _ = line(v)
		l = trim(l)
		if len(l) == 0 {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.Write(l)
	}
	return b.String()
}

// MaxField bounds a header value kept in a manifest.
const MaxField = 998

// Clean makes s valid UTF-8 without control characters, at most MaxField
// bytes.
func Clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > MaxField {
		cut := MaxField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

// MessageID returns the Message-ID of a raw header, as Parse does.
func MessageID(raw []byte) string { return Parse(raw).MessageID }
