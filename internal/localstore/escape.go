package localstore

import (
	"errors"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

// Delimiter is the hierarchy delimiter of every target of this package.
const Delimiter = "/"

// inbox is the canonical spelling of the IMAP INBOX.
const inbox = "INBOX"

// escaper describes how one layout turns a folder level into a file name.
//
// Every level of a folder name (the parts between "/") is escaped so that
// it is exactly one safe path component that no other folder level, no
// message file and no control file of the layout can also produce:
//
//   - '%', '/', control bytes (0x00–0x1F, 0x7F) and bytes that are not
//     valid UTF-8 become %XX (upper-case hex); with windows set, so do the
//     characters Windows forbids (\ < > : " | ? *) and a trailing ' ' or '.'
//     (Windows drops them);
//   - a leading '.' becomes %2E: this covers ".", "..", hidden files, the
//     Maildir++ dot-folders and the temporary files of this package;
//   - the empty level becomes a lone "%";
//   - a level the layout reserves (reserved reports it) gets its first byte
//     escaped, e.g. Maildir's "cur" becomes "%63ur".
//
// Everything else (letters of any script, spaces, inner dots, '&', …) is
// kept, so ordinary names stay readable. '%' is always followed by two hex
// digits except in the lone "%", so unescape reverses the mapping exactly.
type escaper struct {
	windows  bool
	reserved func(level string) bool
}

func (e escaper) escape(level string) string {
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
			e.windows && strings.IndexByte(`\<>:"|?*`, c) >= 0,
			e.windows && i == len(level)-1 && (c == ' ' || c == '.'):
			writeEscape(&b, c)
			i++
			continue
		}
		b.WriteString(level[i : i+size])
		i += size
	}
	s := b.String()
	if e.reserved != nil && e.reserved(s) || e.windows && isWindowsDevice(s) {
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

// UnescapeLevel reverses the escaping of a folder level in a file name
// ("%XX" is the byte 0xXX, a lone "%" the empty level). A '%' not followed
// by two hex digits is kept as it is, so names written by other programs
// still decode. Readers of the trees this package writes use it.
func UnescapeLevel(s string) string { return unescape(s) }

// unescape reverses escape. A '%' not followed by two hex digits is kept
// as it is, so names written by other programs still decode.
func unescape(s string) string {
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

// levels splits a folder name at the delimiter. The first level is
// compared to INBOX without regard to case, as IMAP does.
func levels(folder string) []string {
	l := strings.Split(folder, Delimiter)
	if strings.EqualFold(l[0], inbox) {
		l[0] = inbox
	}
	return l
}

// normalize returns the canonical form of a folder name (INBOX spelt in
// upper case).
func normalize(folder string) string { return strings.Join(levels(folder), Delimiter) }

var errOutside = errors.New("localstore: folder path leaves the root")

// join joins escaped levels below root and checks, defensively, that the
// result stays below root.
func join(root string, escaped ...string) (string, error) {
	p := filepath.Join(append([]string{root}, escaped...)...)
	rel, err := filepath.Rel(root, p)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) || filepath.IsAbs(rel) {
		return "", errOutside
	}
	return p, nil
}
