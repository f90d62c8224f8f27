package localstore

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/internal/mutf7"
)

// maxName is the longest file name most file systems allow (NAME_MAX).
const maxName = 255

// shortMark separates the kept prefix of a shortened level from the hash
// of the whole level. escape never writes it ('%' is always followed by
// two hex digits there), so a shortened name is distinct from every
// escaped one.
const shortMark = "%~"

// layout turns the levels of folder names into file names for one kind
// of tree: escaped (see localname.Escaper), in modified UTF-7 when utf7 is set, and
// shortened when longer than max bytes.
type layout struct {
	esc  localname.Escaper
	utf7 bool
	max  int
}

// encode returns a level's escaped (and, for utf7, modified UTF-7) form.
func (l layout) encode(level string) string {
	s := l.esc.Escape(level)
	if l.utf7 {
		s = mutf7.Encode(s)
	}
	return s
}

// decode reverses encode for the names encode writes, and keeps other
// names as they are (a '%' not followed by two hex digits, text that is
// not valid modified UTF-7).
func (l layout) decode(name string) string {
	if l.utf7 {
		name = mutf7.DecodeOrKeep(name)
	}
	return localname.Unescape(name)
}

// name returns the file name of a level and whether it was shortened. A
// level whose encoded form is longer than l.max bytes is kept as the
// longest prefix (cut between characters) whose encoded form fits
// together with shortMark and the first 16 hex digits of the SHA-256 of
// the whole level: the same level always gets the same name, and two
// levels get the same one only if their hashes collide.
func (l layout) name(level string) (string, bool) {
	s := l.encode(level)
	if len(s) <= l.max {
		return s, false
	}
	sum := sha256.Sum256([]byte(level))
	tag := shortMark + hex.EncodeToString(sum[:8])
	fits := func(cut int) bool { return len(l.encode(level[:cut]))+len(tag) <= l.max }
	// Cut points are the starts of runes; find the last that fits.
	cuts := []int{}
	for i := range level {
		cuts = append(cuts, i)
	}
	lo, hi := 0, len(cuts)-1 // cuts[0] = 0 always fits (escape("") is "%")
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if fits(cuts[mid]) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	for lo > 0 && !fits(cuts[lo]) { // lengths are not quite monotonic (a trailing '.' is escaped)
		lo--
	}
	return l.encode(level[:cuts[lo]]) + tag, true
}

// MaildirLevelName is the folder level a directory of a Maildir tree in
// Dovecot's LAYOUT=fs stands for: modified UTF-7 decoded (when valid),
// then the escaping of this package undone. Names written with UTF-8 (by
// Dovecot with its UTF-8 option, or NewMaildirUTF8) come back unchanged,
// since raw 8-bit text is not modified UTF-7.
func MaildirLevelName(dir string) string {
	return layout{utf7: true}.decode(dir)
}
