// Package msghdr reads what mailvault keeps of a message's header —
// Message-ID, From, To, Subject, Date — the same way everywhere: when a
// backup records a message, and when a restore target is searched for the
// messages it already holds.
package msghdr

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

var metaReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// Meta is what the archive keeps of a message's header.
type Meta struct{ MessageID, From, To, Subject, Date string }

// Parse extracts Message-ID, From, Subject and Date from raw header
// bytes, tolerating malformed headers. From and Subject are RFC 2047
// decoded; every value is valid UTF-8 and at most MaxField bytes.
func Parse(raw []byte) Meta {
	br := metaReaders.Get().(*bufio.Reader)
	defer metaReaders.Put(br)
	br.Reset(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n")))
	hdr, err := textproto.ReadHeader(br)
	if err != nil && hdr.Len() == 0 {
		return Meta{}
	}
	get := func(k string) string { return strings.TrimSpace(hdr.Get(k)) }
	decode := func(s string) string {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
		return s
	}
	return Meta{
		MessageID: Clean(get("Message-Id")),
		From:      Clean(decode(get("From"))),
		To:        Clean(decode(get("To"))),
		Subject:   Clean(decode(get("Subject"))),
		Date:      Clean(get("Date")),
	}
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
