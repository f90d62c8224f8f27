package localsrc_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/backup/sourcetest"
	"github.com/mailvault/mailvault/internal/localsrc"
)

// The backup.Source conformance suite (backup/sourcetest) on a
// Thunderbird mbox tree and on a nested Maildir tree, each written here
// by hand as those programs write them.

func TestSourceSuiteMbox(t *testing.T) {
	root := t.TempDir()
	folders := sourcetest.Mailbox(false)
	for i, f := range folders {
		var file bytes.Buffer
		for j, m := range f.Messages {
			m.Body = withMboxFlags(m.Body, m.Flags)
			folders[i].Messages[j] = m
			fmt.Fprintf(&file, "From alice@example.com %s\r\n", m.InternalDate.Format(time.ANSIC))
			for _, line := range strings.SplitAfter(string(m.Body), "\r\n") {
				if strings.HasPrefix(line, "From ") {
					file.WriteByte('>') // mboxo quoting, as Thunderbird writes it
				}
				file.WriteString(line)
			}
			file.WriteString("\r\n")
		}
		writeFile(t, filepath.Join(root, thunderbirdPath(f.Name)), file.Bytes(), time.Now())
	}
	sourcetest.Run(t, sourcetest.Store{
		Dial:    func(context.Context) (backup.Source, error) { return localsrc.NewMbox(root) },
		Folders: folders,
		State:   func(t *testing.T) string { return treeState(t, root) },
	})
}

// thunderbirdPath is where Thunderbird keeps a folder: "A/B" in A.sbd/B,
// INBOX in Inbox.
func thunderbirdPath(name string) string {
	if name == "INBOX" {
		return "Inbox"
	}
	levels := strings.Split(name, "/")
	for i := range levels[:len(levels)-1] {
		levels[i] += ".sbd"
	}
	return filepath.Join(levels...)
}

// withMboxFlags puts a message's flags in its header as mbox readers keep
// them: Status (R), X-Status (A, F, D, T) and X-Mozilla-Keys (keywords).
func withMboxFlags(body []byte, flags []string) []byte {
	var status, xstatus string
	var keys []string
	for _, f := range flags {
		switch f {
		case `\Seen`:
			status += "R"
		case `\Answered`:
			xstatus += "A"
		case `\Flagged`:
			xstatus += "F"
		case `\Deleted`:
			xstatus += "D"
		case `\Draft`:
			xstatus += "T"
		default:
			keys = append(keys, f)
		}
	}
	var h bytes.Buffer
	if status != "" {
		h.WriteString("Status: " + status + "O\r\n")
	}
	if xstatus != "" {
		h.WriteString("X-Status: " + xstatus + "\r\n")
	}
	if len(keys) > 0 {
		h.WriteString("X-Mozilla-Keys: " + strings.Join(keys, " ") + "\r\n")
	}
	return append(h.Bytes(), body...)
}

func TestSourceSuiteMaildir(t *testing.T) {
	root := t.TempDir()
	folders := sourcetest.Mailbox(false)
	for _, f := range folders {
		dir := root
		if f.Name != "INBOX" {
			dir = filepath.Join(root, filepath.FromSlash(f.Name))
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		var keywords []string
		for i, m := range f.Messages {
			info := ""
			for _, fl := range m.Flags {
				if l, ok := maildirLetters[fl]; ok {
					info += l
					continue
				}
				k := slices.Index(keywords, fl)
				if k < 0 {
					k, keywords = len(keywords), append(keywords, fl)
				}
				info += string(rune('a' + k))
			}
			b := []byte(info)
			slices.Sort(b)
			name := fmt.Sprintf("%d.M%06dP1.suite,S=%d:2,%s", 1735700000+i, i, len(m.Body), b)
			writeFile(t, filepath.Join(dir, "cur", name), m.Body, m.InternalDate)
		}
		if len(keywords) > 0 {
			var kw strings.Builder
			for i, k := range keywords {
				fmt.Fprintf(&kw, "%d %s\n", i, k)
			}
			writeFile(t, filepath.Join(dir, "dovecot-keywords"), []byte(kw.String()), time.Now())
		}
	}
	sourcetest.Run(t, sourcetest.Store{
		Dial:    func(context.Context) (backup.Source, error) { return localsrc.NewMaildir(root) },
		Folders: folders,
		State:   func(t *testing.T) string { return treeState(t, root) },
	})
}

// maildirLetters are the Maildir info letters of the system flags.
var maildirLetters = map[string]string{`\Draft`: "D", `\Flagged`: "F", `$Forwarded`: "P", `\Answered`: "R", `\Seen`: "S", `\Deleted`: "T"}

func writeFile(t *testing.T, path string, data []byte, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// treeState renders every file and directory under root: path, size,
// modification time and SHA-256.
func treeState(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v %d %s", strings.TrimPrefix(p, root), info.Mode(), info.Size(), info.ModTime().UTC().Format(time.RFC3339Nano))
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(data)
			line += " " + hex.EncodeToString(s[:8])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "; ")
}
