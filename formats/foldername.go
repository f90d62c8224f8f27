package formats

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// maxDirName bounds the length of a folder's directory name, well under
// the 255-byte limit of common file systems.
const maxDirName = 120

// FolderDir maps a folder name (any string, including "..", "/", NUL and
// reserved device names) to a single, safe path component used as the
// folder's directory in the archive. ASCII letters, digits, '-' and '_'
// are kept; every other byte becomes %XX. Names that would be long are
// cut and suffixed with a hash of the full name. Windows device names
// (CON, NUL, COM1, …) get their first letter escaped. The mapping is
// injective up to the hash, so distinct folders get distinct directories.
func FolderDir(name string) string {
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isSafeDirByte(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	s := b.String()
	if s == "" {
		return "%00empty"
	}
	if isReservedDevice(s) {
		s = "%" + strings.ToUpper(hex.EncodeToString([]byte{s[0]})) + s[1:]
	}
	if len(s) > maxDirName {
		sum := sha256.Sum256([]byte(name))
		cut := maxDirName - 1 - 16
		// Do not cut inside a %XX escape.
		for cut > 0 && (s[cut-1] == '%' || (cut > 1 && s[cut-2] == '%')) {
			cut--
		}
		s = s[:cut] + "~" + hex.EncodeToString(sum[:8])
	}
	return s
}

func isSafeDirByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// isReservedDevice reports whether s (before any extension) is a name
// Windows reserves for a device.
func isReservedDevice(s string) bool {
	base := strings.ToUpper(s)
	switch base {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(base) == 4 && (strings.HasPrefix(base, "COM") || strings.HasPrefix(base, "LPT")) && base[3] >= '0' && base[3] <= '9' {
		return true
	}
	return false
}

// ValidDir reports whether d is a directory or file name FolderDir could
// have produced: a single path component with only safe bytes, '%', '~'
// and '.', not "." or "..", not a device name and not too long. Manifests
// read from disk are checked with it so that a hostile manifest cannot
// point outside the archive.
func ValidDir(d string) bool {
	if d == "" || d == "." || d == ".." || len(d) > maxDirName+40 || isReservedDevice(d) {
		return false
	}
	for i := 0; i < len(d); i++ {
		c := d[i]
		if !isSafeDirByte(c) && c != '%' && c != '~' && c != '.' {
			return false
		}
	}
	return true
}
