package localstore

import (
	"errors"
	"path/filepath"
	"strings"
)

// Delimiter is the hierarchy delimiter of every target of this package.
const Delimiter = "/"

// inbox is the canonical spelling of the IMAP INBOX.
const inbox = "INBOX"

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
