package backup

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

// maxHeader bounds the header bytes kept to extract metadata.
const maxHeader = 64 << 10

// headerCapture keeps the start of a message up to the end of its header.
type headerCapture struct {
	buf  []byte
	done bool
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	n := min(len(p), maxHeader-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	if bytes.Contains(h.buf, []byte("\n\n")) || bytes.Contains(h.buf, []byte("\n\r\n")) || len(h.buf) >= maxHeader {
		h.done = true
	}
	return len(p), nil
}

var metaReaders = sync.Pool{New: func() any { return bufio.NewReader(nil) }}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// meta is what the manifest keeps of a message's header.
type meta struct{ MessageID, From, To, Subject, Date string }

// parseMeta extracts Message-ID, From, Subject and Date from raw header
// bytes, tolerating malformed headers. From and Subject are RFC 2047
// decoded; every value is valid UTF-8 and at most maxField bytes.
func parseMeta(raw []byte) meta {
	br := metaReaders.Get().(*bufio.Reader)
	defer metaReaders.Put(br)
	br.Reset(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n")))
	hdr, err := textproto.ReadHeader(br)
	if err != nil && hdr.Len() == 0 {
		return meta{}
	}
	get := func(k string) string { return strings.TrimSpace(hdr.Get(k)) }
	decode := func(s string) string {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
		return s
	}
	return meta{
		MessageID: clean(get("Message-Id")),
		From:      clean(decode(get("From"))),
		To:        clean(decode(get("To"))),
		Subject:   clean(decode(get("Subject"))),
		Date:      clean(get("Date")),
	}
}

const maxField = 998

// clean makes s valid UTF-8 without control characters, at most maxField bytes.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxField {
		cut := maxField
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}
