// Package mutf7 is IMAP's modified UTF-7 (RFC 3501 5.1.3), the encoding of
// folder names on the wire and, by default, in Dovecot's and Courier's
// Maildir directory names.
package mutf7

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// enc is the base64 alphabet of modified UTF-7 (',' for '/'), unpadded.
var enc = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// Encode encodes UTF-8 text: printable ASCII stands for itself except '&',
// written "&-"; every other run of characters is "&", the base64 of its
// UTF-16 and "-".
func Encode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c <= 0x7e {
			if c == '&' {
				b.WriteString("&-")
			} else {
				b.WriteByte(c)
			}
			i++
			continue
		}
		var run []uint16
		for i < len(s) && (s[i] < 0x20 || s[i] > 0x7e) {
			r, size := utf8.DecodeRuneInString(s[i:])
			run = utf16.AppendRune(run, r)
			i += size
		}
		raw := make([]byte, 0, 2*len(run))
		for _, u := range run {
			raw = append(raw, byte(u>>8), byte(u))
		}
		b.WriteByte('&')
		b.WriteString(enc.EncodeToString(raw))
		b.WriteByte('-')
	}
	return b.String()
}

// Decode decodes modified UTF-7 strictly: raw 8-bit or control bytes, a
// '&' without its '-', bad base64, printable ASCII or broken UTF-16 inside
// a section are errors.
func Decode(s string) (string, error) {
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] > 0x7e {
				return "", errors.New("mutf7: raw byte outside printable ASCII")
			}
		}
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return "", errors.New("mutf7: raw byte outside printable ASCII")
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New("mutf7: unterminated & section")
		}
		sec := s[i+1 : i+1+end]
		i += end + 2
		if sec == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := enc.Strict().DecodeString(sec)
		if err != nil || len(raw)%2 != 0 {
			return "", errors.New("mutf7: bad base64 in an & section")
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for _, r := range utf16.Decode(u) {
			if r == utf8.RuneError {
				return "", errors.New("mutf7: broken UTF-16 in an & section")
			}
			if r >= 0x20 && r <= 0x7e {
				return "", errors.New("mutf7: an & section encodes printable ASCII")
			}
			b.WriteRune(r)
		}
	}
	return b.String(), nil
}

// DecodeOrKeep decodes s, or returns it unchanged when it is not valid
// modified UTF-7 (a name already in UTF-8, say).
func DecodeOrKeep(s string) string {
	d, err := Decode(s)
	if err != nil {
		return s
	}
	return d
}
