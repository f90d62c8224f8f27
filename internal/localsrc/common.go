package localsrc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/localname"
)

// Delimiter is the hierarchy delimiter of the folders both sources list.
const Delimiter = "/"

// inbox is the canonical spelling of the IMAP INBOX.
const inbox = "INBOX"

// ErrNoFolder is returned by Examine for a name Folders did not list, or
// for a folder that cannot hold messages.
var ErrNoFolder = errors.New("localsrc: no such folder")

// folderList turns the folders found on disk (name -> mbox file or
// Maildir directory) into the sorted listing:
// parents before children (INBOX first), every missing ancestor added as a
// NoSelect parent, and special use guessed from the name of top-level
// folders.
func folderList(found map[string]string) []backup.FolderInfo {
	all := maps.Clone(found)
	for name := range found {
		l := strings.Split(name, Delimiter)
		for i := 1; i < len(l); i++ {
			if p := strings.Join(l[:i], Delimiter); !hasKey(all, p) {
				all[p] = ""
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	slices.SortFunc(names, compareNames)
	out := make([]backup.FolderInfo, 0, len(names))
	for _, n := range names {
		fi := backup.FolderInfo{Name: n, Delimiter: Delimiter}
		if all[n] == "" {
			fi.NoSelect = true
			fi.Attrs = append(fi.Attrs, `\Noselect`)
		}
		if !strings.Contains(n, Delimiter) {
			fi.SpecialUse = specialUse[strings.ToLower(n)]
		}
		if fi.SpecialUse != "" {
			fi.Attrs = append(fi.Attrs, fi.SpecialUse)
		}
		out = append(out, fi)
	}
	return out
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// compareNames orders folder names level by level, INBOX first, so that a
// parent comes right before its children.
func compareNames(a, b string) int {
	la, lb := strings.Split(a, Delimiter), strings.Split(b, Delimiter)
	if (la[0] == inbox) != (lb[0] == inbox) {
		if la[0] == inbox {
			return -1
		}
		return 1
	}
	return slices.Compare(la, lb)
}

// specialUse maps the lower-cased names mail clients give their top-level
// folders (Thunderbird, mutt, Dovecot defaults) to special-use attributes.
var specialUse = map[string]string{
	"sent":          `\Sent`,
	"sent messages": `\Sent`,
	"sent items":    `\Sent`,
	"drafts":        `\Drafts`,
	"trash":         `\Trash`,
	"deleted items": `\Trash`,
	"junk":          `\Junk`,
	"spam":          `\Junk`,
	"archive":       `\Archive`,
	"archives":      `\Archive`,
}

// inboxName returns INBOX for a top-level level spelt "Inbox" in any case.
func inboxName(level string) string {
	if strings.EqualFold(level, inbox) {
		return inbox
	}
	return level
}

// unescapeLevel reverses internal/localstore's escaping of a folder level.
func unescapeLevel(s string) string { return localname.Unescape(s) }

// addFlag appends f to flags unless it is there already.
func addFlag(flags []string, f string) []string {
	if slices.Contains(flags, f) {
		return flags
	}
	return append(flags, f)
}

// ctxReader stops reading once ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// pathError names the file an I/O error is about, unless it already does
// (os.PathError).
func pathError(path string, err error) error {
	if strings.Contains(err.Error(), path) {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}

// folderInfos returns a copy of the folders a source found when it was
// opened, so that callers cannot change the source's own list.
func folderInfos(ctx context.Context, infos []backup.FolderInfo) ([]backup.FolderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	out := make([]backup.FolderInfo, len(infos))
	for i, fi := range infos {
		fi.Attrs = slices.Clone(fi.Attrs)
		out[i] = fi
	}
	return out, nil
}
