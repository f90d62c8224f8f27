// Package localname is how local mail trees name folders on disk: each
// level of a folder name (the parts between "/") becomes one file name
// component. internal/localstore writes Maildir, mbox and .eml trees with
// it; internal/localsrc reads such trees back (and trees of other
// programs, whose names mostly pass through unchanged).
package localname

import (
	"strings"
	"unicode/utf8"
)

// Escaper describes how one layout turns a folder level into a file name.
//
// Every level of a folder name (the parts between "/") is escaped so that
// it is exactly one safe path component that no other folder level, no
// message file and no control file of the layout can also produce:
//
//   - '%', '/', control bytes (0x00–0x1F, 0x7F) and bytes that are not
//     valid UTF-8 become %XX (upper-case hex); with Windows set, so do the
//     characters Windows forbids (\ < > : " | ? *) and a trailing ' ' or '.'
//     (Windows drops them);
//   - a leading '.' becomes %2E: this covers ".", "..", hidden files, the
//     Maildir++ dot-folders and the temporary files of internal/localstore;
//   - the empty level becomes a lone "%";
//   - a level the layout reserves (Reserved reports it) gets its first byte
//     escaped, e.g. Maildir's "cur" becomes "%63ur".
//
// Everything else (letters of any script, spaces, inner dots, '&', …) is
// kept, so ordinary names stay readable. '%' is always followed by two hex
// digits except in the lone "%", so Unescape reverses the mapping exactly.
type Escaper struct {
	// Windows escapes what Windows forbids in a file name as well, for
	// trees meant to be copied anywhere.
	Windows bool
	// Reserved reports the levels the layout keeps for itself (after
	// escaping); they get their first byte escaped.
	Reserved func(level string) bool
}

// Escape returns level as one path component (see Escaper).
func (e Escaper) Escape(level string) string {
	if level == "" {
		return "%"
	}
	var b strings.Builder
	for i := 0; i < len(level); {
		c := level[i]
		r, size := utf8.DecodeRuneInString(level[i:])
		switch {
		case r == utf8.RuneError && size <= 1,
			c < 0x20, c == 0x7f, c == '%', c == '/',
			i == 0 && c == '.',
			e.Windows && strings.IndexByte(`\<>:"|?*`, c) >= 0,
			e.Windows && i == len(level)-1 && (c == ' ' || c == '.'):
			writeEscape(&b, c)
			i++
			continue
		}
		b.WriteString(level[i : i+size])
		i += size
	}
	s := b.String()
	if e.Reserved != nil && e.Reserved(s) || e.Windows && isWindowsDevice(s) {
		var r strings.Builder
		writeEscape(&r, s[0])
		r.WriteString(s[1:])
		s = r.String()
	}
	return s
}

func writeEscape(b *strings.Builder, c byte) {
	const hex = "0123456789ABCDEF"
	b.WriteByte('%')
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&15])
}

// Unescape reverses Escape: "%XX" is the byte 0xXX, a lone "%" the empty
// level. A '%' not followed by two hex digits is kept as it is, so names
// written by other programs still decode.
func Unescape(s string) string {
	if s == "%" {
		return ""
	}
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'A' && c <= 'F' || c >= 'a' && c <= 'f'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// isWindowsDevice reports whether s, before any extension, is a name
// Windows reserves for a device (CON, NUL, COM1, …).
func isWindowsDevice(s string) bool {
	base, _, _ := strings.Cut(strings.ToUpper(s), ".")
	base = strings.TrimRight(base, " ")
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	return len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) &&
		(base[3] >= '0' && base[3] <= '9')
}
