package localsrc

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

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

// mutf7 is the base64 alphabet of IMAP's modified UTF-7 (',' for '/').
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// decodeMUTF7 decodes a name in IMAP's modified UTF-7 (RFC 3501 5.1.3), as
// Dovecot and Courier store Maildir++ folder names: "&-" is '&', and
// "&<base64 of UTF-16>-" is the encoded text. A name that is not valid
// modified UTF-7 is returned unchanged.
func decodeMUTF7(s string) string {
	if !strings.Contains(s, "&") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			return s // raw 8-bit: not modified UTF-7 (already UTF-8)
		}
		if c != '&' {
			b.WriteByte(c)
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return s
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			b.WriteByte('&')
			continue
		}
		raw, err := mutf7.Strict().DecodeString(enc)
		if err != nil || len(raw)%2 != 0 {
			return s
		}
		u := make([]uint16, len(raw)/2)
		for j := range u {
			u[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		runes := utf16.Decode(u)
		for _, r := range runes {
			if r == utf8.RuneError || r < 0x20 || r >= 0x20 && r <= 0x7e {
				// Printable ASCII must not be encoded; U+FFFD means a
				// broken surrogate pair.
				return s
			}
			b.WriteRune(r)
		}
	}
	return b.String()
}

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
