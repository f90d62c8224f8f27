package demo

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/mutf7"
)

// message is what the demo expects of one message.
type message struct {
	key   string // "UIDVALIDITY:UID" on the server it came from
	body  []byte
	flags []string
}

// model is what an account should hold: folder -> key -> message.
type model struct {
	folders map[string]map[string]*message
}

func newModel() *model { return &model{folders: map[string]map[string]*message{}} }

func (m *model) folder(name string) map[string]*message {
	f := m.folders[name]
	if f == nil {
		f = map[string]*message{}
		m.folders[name] = f
	}
	return f
}

func (m *model) add(folder, key string, body []byte, flags []string) {
	m.folder(folder)[key] = &message{key: key, body: body, flags: append([]string(nil), flags...)}
}

func (m *model) remove(folder, key string) { delete(m.folders[folder], key) }

func (m *model) setFlags(folder, key string, flags []string) {
	if msg := m.folders[folder][key]; msg != nil {
		msg.flags = flags
	}
}

func (m *model) count() int {
	n := 0
	for _, f := range m.folders {
		n += len(f)
	}
	return n
}

// equal checks that got holds exactly the folders and messages of m, with
// the same bytes and flags; what names got in errors.
func (m *model) equal(got *model, what string) error {
	for name := range got.folders {
		if _, ok := m.folders[name]; !ok {
			return fmt.Errorf("%s has a folder %q it should not have", what, name)
		}
	}
	if err := m.subsetOf(got, what); err != nil {
		return err
	}
	for name, f := range got.folders {
		for key := range f {
			if m.folders[name][key] == nil {
				return fmt.Errorf("%s: folder %q holds message %s, which it should not", what, name, key)
			}
		}
	}
	return nil
}

// subsetOf checks that every folder and message of m is in got with the
// same bytes and flags. Keys are compared only when got's keys come from
// the same server, so messages are matched by their bytes.
func (m *model) subsetOf(got *model, what string) error {
	for _, name := range sortedKeys(m.folders) {
		gf, ok := got.folders[name]
		if !ok {
			return fmt.Errorf("%s has no folder %q", what, name)
		}
		byBody := map[[32]byte][]*message{}
		for _, g := range gf {
			sum := sha256.Sum256(g.body)
			byBody[sum] = append(byBody[sum], g)
		}
		for _, key := range sortedKeys(m.folders[name]) {
			want := m.folders[name][key]
			g := gf[key]
			if g == nil {
				// Not the same server: find the message by its bytes.
				if c := byBody[sha256.Sum256(want.body)]; len(c) > 0 {
					g = c[0]
				}
			}
			if g == nil {
				return fmt.Errorf("%s: folder %q lacks message %s (%q)", what, name, key, subject(want.body))
			}
			if err := sameBytes(g.body, want.body); err != nil {
				return fmt.Errorf("%s: folder %q message %s: %w", what, name, key, err)
			}
			if !sameFlags(g.flags, want.flags) {
				return fmt.Errorf("%s: folder %q message %s has flags %v; want %v", what, name, key, g.flags, want.flags)
			}
		}
	}
	return nil
}

// sameBytes says where got first differs from want.
func sameBytes(got, want []byte) error {
	if bytes.Equal(got, want) {
		return nil
	}
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	return fmt.Errorf("%d bytes differ from the original's %d from byte %d on", len(got), len(want), i)
}

// sameFlags compares flag sets as IMAP does: without regard to case or
// order, \Recent left out.
func sameFlags(a, b []string) bool {
	norm := func(fl []string) []string {
		var out []string
		for _, f := range fl {
			f = strings.ToLower(f)
			if f != `\recent` && !slices.Contains(out, f) {
				out = append(out, f)
			}
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(norm(a), norm(b))
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// checkArchive reads the archive in dir as an independent reader would
// (formats only, none of the engines) and checks that it holds n
// complete snapshots and that its latest state is want: the same folders,
// the same messages present under the same keys, every one's stored
// bytes and flags those of want. It returns the latest snapshot.
func checkArchive(dir string, n int, want *model) (*formats.Snapshot, error) {
	a, err := formats.Open(dir)
	if err != nil {
		return nil, err
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, err
	}
	if len(snaps) != n {
		return nil, fmt.Errorf("the archive holds %d snapshots; want %d", len(snaps), n)
	}
	for _, s := range snaps {
		if s.Status != formats.StatusComplete {
			return nil, fmt.Errorf("snapshot %s is %s; want %s", s.ID, s.Status, formats.StatusComplete)
		}
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		return nil, err
	}
	got := newModel()
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		if f.Deleted {
			continue
		}
		got.folder(name)
		for _, m := range f.Present() {
			r, err := a.OpenMessage(st, &m.Message)
			if err != nil {
				return nil, fmt.Errorf("read %s %s from the archive: %w", name, m.Key, err)
			}
			body, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				return nil, fmt.Errorf("read %s %s from the archive: %w", name, m.Key, err)
			}
			got.add(name, m.Key, body, m.Flags)
		}
	}
	if err := want.equal(got, "the archive"); err != nil {
		return nil, err
	}
	return snaps[len(snaps)-1], nil
}

// delta counts what a snapshot records.
func delta(s *formats.Snapshot) (added, gone, flags int) {
	a, g, f := deltaKeys(s)
	return len(a), len(g), len(f)
}

// deltaKeys returns "FOLDER KEY" of the messages a snapshot records as
// added, gone and with new flags.
func deltaKeys(s *formats.Snapshot) (added, gone, flags []string) {
	for _, c := range s.Changes {
		for _, m := range c.Added {
			added = append(added, c.Folder+" "+m.Key)
		}
		for _, k := range c.Gone {
			gone = append(gone, c.Folder+" "+k)
		}
		for _, f := range c.Flags {
			flags = append(flags, c.Folder+" "+f.Key)
		}
	}
	return
}

func sameStrings(what string, got, want []string) error {
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	if !slices.Equal(g, w) {
		return fmt.Errorf("%s: %q; want %q", what, g, w)
	}
	return nil
}

// segmentDir returns the directory of a folder's segments in the archive.
func segmentDir(dir, folder string) (string, error) {
	a, err := formats.Open(dir)
	if err != nil {
		return "", err
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return "", err
	}
	for _, s := range snaps {
		for _, c := range s.Changes {
			if c.Folder == folder && len(c.Added) > 0 {
				return filepath.Join(dir, filepath.FromSlash(path.Dir(c.Added[0].Seg))), nil
			}
		}
	}
	return "", fmt.Errorf("no segment of %s", folder)
}

func keyUID(key string) (imap.UID, error) {
	_, u, _ := strings.Cut(key, ":")
	n, err := strconv.ParseUint(u, 10, 32)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("bad source key %q", key)
	}
	return imap.UID(n), nil
}

// readAccount reads every folder and message of an account over IMAP, as
// a mail program would (EXAMINE, BODY.PEEK).
func readAccount(ctx context.Context, srv *Server, user, pass string) (*model, error) {
	c, err := srv.Dial(user, pass)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	defer waitClose(ctx, c)()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("list the folders of %s: %w", user, err)
	}
	got := newModel()
	for _, l := range list {
		got.folder(l.Mailbox)
		data, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			return nil, fmt.Errorf("examine %s of %s: %w", l.Mailbox, user, err)
		}
		if data.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			return nil, fmt.Errorf("fetch %s of %s: %w", l.Mailbox, user, err)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			flags := make([]string, len(m.Flags))
			for i, f := range m.Flags {
				flags[i] = string(f)
			}
			got.add(l.Mailbox, fmt.Sprintf("%d:%d", data.UIDValidity, m.UID), body, flags)
		}
		if n := uint32(len(msgs)); n != data.NumMessages {
			return nil, fmt.Errorf("fetch %s of %s: %d messages; the folder has %d", l.Mailbox, user, n, data.NumMessages)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		return nil, fmt.Errorf("log out of %s: %w", user, err)
	}
	return got, nil
}

// maildirFlags are the Maildir info letters of the IMAP system flags.
var maildirFlags = map[byte]string{'D': `\Draft`, 'F': `\Flagged`, 'R': `\Answered`, 'S': `\Seen`}

// checkMaildir checks that the Maildir tree at root (Dovecot LAYOUT=fs:
// INBOX at the root, folder A/B in A/B, each level in modified UTF-7 as a
// stock Dovecot expects) holds every folder of want and,
// in each, exactly one file per message of the folder, its bytes those of
// the message and its name's flag letters the message's flags, and no
// other folder. It returns the number of files.
func checkMaildir(root string, want *model) (int, error) {
	files := 0
	err := filepath.WalkDir(root, func(p string, e os.DirEntry, err error) error {
		if err != nil || !e.IsDir() || e.Name() != "cur" {
			return err
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if name == "." {
			name = "INBOX"
		} else if name, err = mutf7.Decode(name); err != nil {
			return fmt.Errorf("the export has a folder directory %q that is not in modified UTF-7: %v", rel, err)
		}
		if _, ok := want.folders[name]; !ok {
			return fmt.Errorf("the export has a folder %q the archive does not", name)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, name := range sortedKeys(want.folders) {
		dir := root
		if name != "INBOX" {
			dir = filepath.Join(root, filepath.FromSlash(mutf7.Encode(name)))
		}
		type file struct {
			name string
			body []byte
		}
		var got []file
		for _, sub := range []string{"cur", "new"} {
			entries, err := os.ReadDir(filepath.Join(dir, sub))
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && sub == "new" {
					continue
				}
				return files, fmt.Errorf("export folder %q: %w", name, err)
			}
			for _, e := range entries {
				body, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
				if err != nil {
					return files, fmt.Errorf("export folder %q: %w", name, err)
				}
				got = append(got, file{sub + "/" + e.Name(), body})
			}
		}
		// One file per message: two messages with the same bytes (two
		// UIDs on the server) are two files.
		left := map[[32]byte][]*message{}
		for _, key := range sortedKeys(want.folders[name]) {
			m := want.folders[name][key]
			sum := sha256.Sum256(m.body)
			left[sum] = append(left[sum], m)
		}
		if len(got) != len(want.folders[name]) {
			return files, fmt.Errorf("export folder %q holds %d files; want %d", name, len(got), len(want.folders[name]))
		}
		for _, f := range got {
			sum := sha256.Sum256(f.body)
			if len(left[sum]) == 0 {
				return files, fmt.Errorf("export folder %q: file %s equals no message of the folder, or one that has a file already", name, f.name)
			}
			m := left[sum][0]
			left[sum] = left[sum][1:]
			_, info, _ := strings.Cut(path.Base(f.name), ":2,")
			for letter, flag := range maildirFlags {
				if strings.IndexByte(info, letter) >= 0 != hasFlag(m.flags, flag) {
					return files, fmt.Errorf("export folder %q: file %s: flag letters %q do not match the flags %v", name, f.name, info, m.flags)
				}
			}
			files++
		}
	}
	return files, nil
}
