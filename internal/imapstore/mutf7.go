package imapstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// mutf7 is the base64 alphabet of modified UTF-7 (RFC 3501 5.1.3).
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// decodeMailbox decodes a mailbox name as a server sent it, by the rules
// go-imap applies (so that both paths name a folder alike): raw UTF-8 is
// accepted, other ASCII must be printable, "&-" is "&", and a base64
// section must hold UTF-16 of non-ASCII characters, with no padding and no
// two sections in a row. INBOX in any case is "INBOX". The error says what
// is wrong, for the warning.
func decodeMailbox(raw []byte) (string, error) {
	s := string(raw)
	if strings.EqualFold(s, "INBOX") {
		return "INBOX", nil
	}
	if !utf8.ValidString(s) {
		return "", errors.New("raw 8-bit bytes that are not UTF-8")
	}
	var b strings.Builder
	afterSection := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", fmt.Errorf("control byte 0x%02x", c)
		}
		if c != '&' {
			b.WriteByte(c)
			afterSection = false
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errors.New("unterminated & section")
		}
		sec := s[i+1 : i+1+end]
		i += end + 1
		if sec == "" {
			b.WriteByte('&')
			afterSection = false
			continue
		}
		if afterSection {
			return "", errors.New("two & sections in a row")
		}
		if strings.ContainsAny(sec, "=\r\n") {
			return "", errors.New("bad base64 in an & section")
		}
		data, err := mutf7.DecodeString(sec)
		if err != nil || len(data)%2 != 0 {
			return "", errors.New("bad base64 in an & section")
		}
		u := make([]uint16, len(data)/2)
		for k := range u {
			u[k] = uint16(data[2*k])<<8 | uint16(data[2*k+1])
		}
		for _, r := range utf16.Decode(u) {
			if r >= 0x20 && r <= 0x7e {
				return "", errors.New("an & section encodes ASCII")
			}
			if r == utf8.RuneError {
				return "", errors.New("an & section holds broken UTF-16")
			}
			b.WriteRune(r)
		}
		afterSection = true
	}
	return b.String(), nil
}

// escapeMailbox names a folder whose name is not valid modified UTF-7:
// printable ASCII and valid UTF-8 characters stay, "%" and every other
// byte become %XX. The result is readable and reversible (unescape).
func escapeMailbox(raw []byte) string {
	var b strings.Builder
	for i := 0; i < len(raw); {
		c := raw[i]
		if c >= 0x20 && c < 0x7f && c != '%' {
			b.WriteByte(c)
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			if r, n := utf8.DecodeRune(raw[i:]); r != utf8.RuneError {
				b.WriteRune(r)
				i += n
				continue
			}
		}
		fmt.Fprintf(&b, "%%%02X", c)
		i++
	}
	return b.String()
}
