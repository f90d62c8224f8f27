package localstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/internal/testenv"
	"github.com/mailvault/mailvault/restore"
)

// testFolders are the folders the corpus is spread over.
var testFolders = []string{"INBOX", "Sent", "Año 2023/Facturas", "日本", ".hidden", ".."}

type tmsg struct {
	folder string
	flags  []string
	date   time.Time
	body   []byte
}

// testCorpus is the seed-1 corpus (with every edge case) spread over
// testFolders, plus messages carrying $Forwarded and a keyword that is
// not an atom.
func testCorpus() []tmsg {
	var out []tmsg
	for i, m := range corpus.Generate(corpus.Options{Seed: 1, Messages: 60}) {
		out = append(out, tmsg{folder: testFolders[i%len(testFolders)], flags: m.Flags, date: m.InternalDate, body: m.Body})
	}
	edges := corpus.EdgeCases()
	out = append(out,
		tmsg{folder: "Sent", flags: []string{"$Forwarded", `\Seen`}, date: time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC), body: edges[corpus.EdgeCRLF]},
		tmsg{folder: "日本", flags: []string{`\Answered`, `\Recent`}, date: time.Date(2003, 7, 1, 0, 0, 1, 0, time.UTC), body: edges[corpus.EdgeNoMessageID]},
	)
	return out
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (m tmsg) msg() *restore.Message {
	return &restore.Message{Flags: m.flags, InternalDate: m.date, Size: int64(len(m.body)), SHA256: sha(m.body), MessageID: messageID(m.body[:min(len(m.body), maxHeader)])}
}

func folderList(msgs []tmsg) []string {
	var fs []string
	for _, m := range msgs {
		if !slices.Contains(fs, m.folder) {
			fs = append(fs, m.folder)
		}
	}
	return fs
}

// restoreAll does what the restore engine does: create the folders, read
// each folder's index once and append what it does not hold. It returns
// the number of messages appended.
func restoreAll(t *testing.T, tg restore.Target, msgs []tmsg) int {
	t.Helper()
	ctx := context.Background()
	if p, ok := tg.(restore.Preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
	}
	existing, err := tg.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	idx := map[string]*restore.Index{}
	for _, f := range folderList(msgs) {
		if !slices.ContainsFunc(existing, func(tf restore.TargetFolder) bool { return tf.Name == f }) {
			if err := tg.CreateFolder(ctx, f); err != nil {
				t.Fatalf("CreateFolder %q: %v", f, err)
			}
		}
		if idx[f], err = tg.Index(ctx, f); err != nil {
			t.Fatalf("Index %q: %v", f, err)
		}
	}
	n := 0
	for _, m := range msgs {
		rm := m.msg()
		if idx[m.folder].Take(rm) {
			continue
		}
		p, err := tg.Append(ctx, m.folder, rm, bytes.NewReader(m.body))
		if err != nil {
			t.Fatalf("Append to %q: %v", m.folder, err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("Append to %q: %v", m.folder, err)
		}
		n++
	}
	if err := tg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if root := rootOf(tg); root != "" {
		if _, err := os.Lstat(filepath.Join(root, lockName)); err == nil {
			t.Errorf("the lock file is left after Close")
		}
	}
	return n
}

// rootOf returns the root directory of a target of this package.
func rootOf(tg restore.Target) string {
	switch x := tg.(type) {
	case *Maildir:
		return x.root
	case *Mbox:
		return x.root
	case *EML:
		return x.root
	}
	return ""
}

type fileState struct {
	sha   string
	mtime time.Time
	mode  fs.FileMode
}

// snapshot records every file and directory below root.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := fileState{mode: info.Mode()}
		if d.Type().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			st.sha, st.mtime = sha(data), info.ModTime()
		}
		rel, _ := filepath.Rel(root, p)
		if rel != lockName { // held while a target writes; tests check it is gone after Close
			out[rel] = st
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkPerms checks that directories are 0700 and files 0600.
func checkPerms(t *testing.T, snap map[string]fileState) {
	t.Helper()
	for p, st := range snap {
		want := fs.FileMode(filePerm)
		if st.mode.IsDir() {
			want = fs.ModeDir | dirPerm
		}
		if p != "." && st.mode != want {
			t.Errorf("%s: mode %v, want %v", p, st.mode, want)
		}
	}
}

// checkUntouched checks that every file of before is still there,
// unchanged.
func checkUntouched(t *testing.T, before, after map[string]fileState) {
	t.Helper()
	for p, st := range before {
		if a, ok := after[p]; !ok {
			t.Errorf("%s disappeared", p)
		} else if !st.mode.IsDir() && (a.sha != st.sha || !a.mtime.Equal(st.mtime)) {
			t.Errorf("%s changed", p)
		}
	}
}

// rerun checks that a fresh target on the same root appends nothing and
// changes nothing.
func rerun(t *testing.T, root string, open func() restore.Target, msgs []tmsg) {
	t.Helper()
	before := snapshot(t, root)
	if n := restoreAll(t, open(), msgs); n != 0 {
		t.Errorf("second run appended %d messages, want 0", n)
	}
	after := snapshot(t, root)
	checkUntouched(t, before, after)
	if len(after) != len(before) {
		t.Errorf("second run: %d files, want %d", len(after), len(before))
	}
	checkPerms(t, after)
}

func checkFolders(t *testing.T, tg restore.Target, want []string) {
	t.Helper()
	got, err := tg.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range got {
		names = append(names, f.Name)
		if f.SpecialUse != "" {
			t.Errorf("folder %q has special use %q", f.Name, f.SpecialUse)
		}
	}
	slices.Sort(names)
	want = slices.Clone(want)
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(names, want) {
		t.Errorf("Folders = %q, want %q", names, want)
	}
}

// withParents adds the parents of every folder.
func withParents(folders []string) []string {
	var out []string
	for _, f := range folders {
		l := strings.Split(f, "/")
		for i := range l {
			out = append(out, strings.Join(l[:i+1], "/"))
		}
	}
	return out
}

// maildirInfo is the expected ":2," part of a message.
func maildirInfo(flags []string) string {
	var std []byte
	for _, f := range flags {
		switch strings.ToLower(f) {
		case `\draft`:
			std = append(std, 'D')
		case `\flagged`:
			std = append(std, 'F')
		case "$forwarded":
			std = append(std, 'P')
		case `\answered`:
			std = append(std, 'R')
		case `\seen`:
			std = append(std, 'S')
		case `\deleted`:
			std = append(std, 'T')
		}
	}
	slices.Sort(std)
	return string(std)
}

// readKeywordMap reads a folder's dovecot-keywords as letter -> keyword.
func readKeywordMap(t *testing.T, dir string) map[byte]string {
	t.Helper()
	kw, err := formats.ReadMaildirKeywords(filepath.Join(dir, keywordsFile))
	if err != nil {
		t.Fatal(err)
	}
	m := map[byte]string{}
	for i, k := range kw {
		if k != "" {
			m[byte('a'+i)] = k
		}
	}
	return m
}

func TestMaildir(t *testing.T) {
	root := filepath.Join(t.TempDir(), "Maildir")
	msgs := testCorpus()
	open := func() restore.Target {
		md, err := NewMaildir(root)
		if err != nil {
			t.Fatal(err)
		}
		return md
	}
	if n := restoreAll(t, open(), msgs); n != len(msgs) {
		t.Fatalf("first run appended %d messages, want %d", n, len(msgs))
	}
	md := open().(*Maildir)
	checkFolders(t, md, withParents(testFolders))

	// Every message is a file in cur/ with its exact bytes, INTERNALDATE
	// as mtime, S=<size> and its flags in the name, keywords through
	// dovecot-keywords.
	for _, folder := range testFolders {
		dir, err := md.path(folder)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(dir, root) {
			t.Fatalf("%q is at %s, outside %s", folder, dir, root)
		}
		kw := readKeywordMap(t, dir)
		var want, got []string
		for _, m := range msgs {
			if m.folder != folder {
				continue
			}
			var ks []string
			for _, f := range m.flags {
				if !strings.HasPrefix(f, `\`) {
					ks = append(ks, strings.ToLower(f))
				}
			}
			slices.Sort(ks)
			want = append(want, fmt.Sprintf("%s S=%d %s %v %d", sha(m.body), len(m.body), maildirInfo(m.flags), ks, m.date.Unix()))
		}
		ents, err := os.ReadDir(filepath.Join(dir, "cur"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p := filepath.Join(dir, "cur", e.Name())
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := os.Stat(p)
			base, info, ok := strings.Cut(e.Name(), ":2,")
			if !ok {
				t.Errorf("%s: no :2, info", e.Name())
				continue
			}
			_, size, _ := strings.Cut(base, ",")
			var std string
			var ks []string
			for i := 0; i < len(info); i++ {
				c := info[i]
				if c >= 'a' && c <= 'z' {
					k, ok := kw[c]
					if !ok {
						t.Errorf("%s: letter %c not in dovecot-keywords", e.Name(), c)
					}
					ks = append(ks, strings.ToLower(k))
					if i > 0 && info[i-1] >= c && info[i-1] >= 'a' {
						t.Errorf("%s: keyword letters not sorted", e.Name())
					}
				} else {
					std += string(c)
				}
			}
			if !slices.IsSorted([]byte(std)) {
				t.Errorf("%s: flags not sorted", e.Name())
			}
			slices.Sort(ks)
			got = append(got, fmt.Sprintf("%s %s %s %v %d", sha(data), size, std, ks, st.ModTime().Unix()))
			if !st.ModTime().Equal(st.ModTime().Truncate(time.Second)) {
				t.Errorf("%s: mtime %v has a fraction", e.Name(), st.ModTime())
			}
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			t.Errorf("%s: cur/ holds\n%s\nwant\n%s", folder, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		for _, sub := range []string{"new", "tmp"} {
			if ents, _ := os.ReadDir(filepath.Join(dir, sub)); len(ents) != 0 {
				t.Errorf("%s/%s is not empty: %d entries", folder, sub, len(ents))
			}
		}
	}
	if md.DroppedKeywords() != 0 {
		t.Errorf("%d keywords dropped", md.DroppedKeywords())
	}
	checkPerms(t, snapshot(t, root))
	rerun(t, root, open, msgs)

	// A message a mail client left in new/ counts too.
	ents, err := os.ReadDir(filepath.Join(root, "cur"))
	if err != nil || len(ents) == 0 {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(root, "cur", ents[0].Name()), filepath.Join(root, "new", formats.MaildirBase(ents[0].Name()))); err != nil {
		t.Fatal(err)
	}
	if n := restoreAll(t, open(), msgs); n != 0 {
		t.Errorf("with a message in new/: appended %d, want 0", n)
	}
}

func TestMaildirKeywords(t *testing.T) {
	root := t.TempDir()
	md, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := md.CreateFolder(ctx, "K"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "K")
	// A folder Dovecot already used: letters a and d are taken.
	if err := os.WriteFile(filepath.Join(dir, keywordsFile), []byte("0 Existing\n3 Other\ngarbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	body := corpus.EdgeCases()[corpus.EdgeCRLF]
	var all []string
	for i := range 30 {
		all = append(all, fmt.Sprintf("kw%02d", i))
	}
	names := map[string]bool{}
	appendNew := func(flags []string) string {
		t.Helper()
		m := tmsg{folder: "K", flags: flags, date: time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), body: body}
		p, err := md.Append(ctx, "K", m.msg(), bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir(filepath.Join(dir, "cur"))
		var added []string
		for _, e := range ents {
			if !names[e.Name()] {
				names[e.Name()] = true
				added = append(added, e.Name())
			}
		}
		if len(added) != 1 {
			t.Fatalf("Append added %q", added)
		}
		_, info, _ := strings.Cut(added[0], ":2,")
		return info
	}

	if info := appendNew([]string{"other", `\Seen`, "$Forwarded", `\Flagged`, "Existing"}); info != "FPSabd" {
		t.Errorf("info %q, want FPSabd", info)
	}
	// 30 new keywords: letters c, e.. z are free (23 letters; b is
	// $Forwarded), so 7 are dropped; invalid atoms and unknown system flags
	// are dropped too.
	info := appendNew(append(slices.Clone(all), `\Draft`, `\Answered`, `\Deleted`, "bad keyword", "bad(", `\Unknown`, `\Recent`))
	if want := "DRTc" + "efghijklmnopqrstuvwxyz"; info != want {
		t.Errorf("info %q, want %q", info, want)
	}
	if got := md.DroppedKeywords(); got != 30-23+3 {
		t.Errorf("DroppedKeywords = %d, want %d", got, 30-23+3)
	}
	kw := readKeywordMap(t, dir)
	if kw['a'] != "Existing" || kw['d'] != "Other" || kw['b'] != "$Forwarded" || kw['c'] != "kw00" || kw['e'] != "kw01" || kw['z'] != "kw22" || len(kw) != 26 {
		t.Errorf("dovecot-keywords: %q", kw)
	}
	// A fresh target reads the keywords back.
	if err := md.Close(); err != nil {
		t.Fatal(err)
	}
	md2, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	md = md2
	if info := appendNew([]string{"KW05", "kw29"}); info != "i" {
		t.Errorf("info %q, want i (kw05; kw29 dropped)", info)
	}
	if md.DroppedKeywords() != 1 {
		t.Errorf("DroppedKeywords = %d, want 1", md.DroppedKeywords())
	}
	data, _ := os.ReadFile(filepath.Join(dir, keywordsFile))
	if !strings.HasPrefix(string(data), "0 Existing\n1 $Forwarded\n2 kw00\n3 Other\n4 kw01\n") {
		t.Errorf("dovecot-keywords:\n%s", data)
	}
}

// TestMaildirNoOverwrite makes the next unique names collide with
// existing files.
func TestMaildirNoOverwrite(t *testing.T) {
	root := t.TempDir()
	md, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := md.Prepare(ctx); err != nil { // creates root, as a restore does before it writes
		t.Fatal(err)
	}
	edges := corpus.EdgeCases()
	m1 := tmsg{folder: "INBOX", flags: []string{`\Seen`}, date: time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC), body: edges[corpus.EdgeCRLF]}
	m2 := tmsg{folder: "INBOX", date: time.Date(2012, 1, 1, 0, 0, 0, 0, time.UTC), body: edges[corpus.EdgeUTF8]}
	m3 := tmsg{folder: "INBOX", date: time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC), body: edges[corpus.EdgeLatin1]}
	// Before the folder is first used: a file in cur/ with the unique
	// name "taken".
	foreign := filepath.Join(root, "cur", "taken,S=3:2,S")
	if err := os.WriteFile(foreign, []byte("old"), 0o600); err != nil {
		t.Fatal(err)
	}
	seq := []string{"taken", "u1", "u2", "u3", "u4"}
	md.unique = func() string { s := seq[0]; seq = seq[1:]; return s }
	appendMsg := func(m tmsg) {
		t.Helper()
		p, err := md.Append(ctx, m.folder, m.msg(), bytes.NewReader(m.body))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	appendMsg(m1) // skips "taken", uses u1
	// Now, behind the target's back, files appear where u2 and u3 would
	// go: in cur/ (with other flags) and in tmp/.
	if err := os.WriteFile(filepath.Join(root, "cur", fmt.Sprintf("u2,S=%d:2,", len(m2.body))), []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "tmp", "u3"), []byte("tmp"), 0o600); err != nil {
		t.Fatal(err)
	}
	appendMsg(m2) // u2 exists in cur/: goes to u3... which exists in tmp/
	appendMsg(m3)
	ents, _ := os.ReadDir(filepath.Join(root, "cur"))
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	want := []string{
		"taken,S=3:2,S",
		fmt.Sprintf("u1,S=%d:2,S", len(m1.body)),
		fmt.Sprintf("u2,S=%d:2,", len(m2.body)),
		fmt.Sprintf("u3,S=%d:2,", len(m2.body)),
		fmt.Sprintf("u4,S=%d:2,", len(m3.body)),
	}
	if !slices.Equal(names, want) {
		t.Fatalf("cur/ = %q, want %q", names, want)
	}
	for name, body := range map[string][]byte{want[0]: []byte("old"), want[1]: m1.body, want[2]: []byte("other"), want[3]: m2.body, want[4]: m3.body} {
		if data, _ := os.ReadFile(filepath.Join(root, "cur", name)); !bytes.Equal(data, body) {
			t.Errorf("%s holds %q", name, data)
		}
	}
	if data, _ := os.ReadFile(filepath.Join(root, "tmp", "u3")); string(data) != "tmp" {
		t.Errorf("tmp/u3 was overwritten")
	}
}

// wireForm is what Dovecot serves for a Maildir file it did not write:
// bare LF as CRLF and NUL as 0x80.
func wireForm(b []byte) []byte {
	var out []byte
	for i, c := range b {
		switch {
		case c == '\n' && (i == 0 || b[i-1] != '\r'):
			out = append(out, '\r', '\n')
		case c == 0:
			out = append(out, 0x80)
		default:
			out = append(out, c)
		}
	}
	return out
}

func flagSet(flags []string) []string {
	var s []string
	for _, f := range flags {
		f = strings.ToLower(f)
		if f != `\recent` && !slices.Contains(s, f) {
			s = append(s, f)
		}
	}
	slices.Sort(s)
	return s
}

// chownTree gives a tree to the user Dovecot's mail processes run as
// (dovecottest runs them as "mail" when the tests run as root).
func chownTree(t *testing.T, root string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	uid, gid := 8, 8
	if u, err := user.Lookup("mail"); err == nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMaildirDovecot has a real Dovecot serve the Maildir written.
func TestMaildirDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": "pw"}})
	root := filepath.Join(srv.MailRoot, "bob") // mail_location with the UTF-8 option
	msgs := testCorpus()
	msgs = append(msgs, tmsg{folder: "INBOX/Sub", flags: []string{"Work"}, date: time.Date(2022, 12, 31, 23, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeRFC2047]})
	md, err := NewMaildirUTF8(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := restoreAll(t, md, msgs); n != len(msgs) {
		t.Fatalf("appended %d, want %d", n, len(msgs))
	}
	chownTree(t, root)

	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, d := range list {
		listed = append(listed, d.Mailbox)
	}
	// Dovecot's name of a folder: its levels as escaped on disk.
	serverName := func(folder string) string {
		l := levels(folder)
		for i := range l {
			if i > 0 || l[i] != inbox {
				l[i] = maildirEscaper.Escape(l[i])
			}
		}
		return strings.Join(l, "/")
	}
	byFolder := map[string][]tmsg{}
	for _, m := range msgs {
		byFolder[m.folder] = append(byFolder[m.folder], m)
	}
	checked := 0
	for folder, want := range byFolder {
		name := serverName(folder)
		if !slices.Contains(listed, name) {
			t.Errorf("%q (%q) not listed by Dovecot: %q", folder, name, listed)
			continue
		}
		if _, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Fatalf("SELECT %q: %v", name, err)
		}
		msgsGot, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH %q: %v", name, err)
		}
		var got, exp []string
		for _, g := range msgsGot {
			var fl []string
			for _, f := range g.Flags {
				fl = append(fl, string(f))
			}
			var body []byte
			for _, b := range g.BodySection {
				body = b.Bytes
			}
			got = append(got, fmt.Sprintf("%s %d %v %s", sha(body), g.RFC822Size, flagSet(fl), g.InternalDate.UTC().Format(time.RFC3339)))
		}
		for _, m := range want {
			w := wireForm(m.body)
			exp = append(exp, fmt.Sprintf("%s %d %v %s", sha(w), len(w), flagSet(m.flags), m.date.Format(time.RFC3339)))
		}
		slices.Sort(got)
		slices.Sort(exp)
		checked += len(got)
		if !slices.Equal(got, exp) {
			t.Errorf("%s: Dovecot serves\n%s\nwant\n%s", folder, strings.Join(got, "\n"), strings.Join(exp, "\n"))
		}
	}
	if checked != len(msgs) {
		t.Errorf("Dovecot served %d messages, want %d", checked, len(msgs))
	}
	t.Logf("Dovecot served %d messages in %d folders (%q)", checked, len(byFolder), listed)
}

func TestEML(t *testing.T) {
	root := filepath.Join(t.TempDir(), "eml")
	msgs := testCorpus()
	open := func() restore.Target {
		e, err := NewEML(root)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	// Before the first run: a foreign file with the name the first INBOX
	// message will get, and a copy of the second one under its name.
	var inboxMsgs []tmsg
	for _, m := range msgs {
		if m.folder == "INBOX" {
			inboxMsgs = append(inboxMsgs, m)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "INBOX"), 0o700); err != nil {
		t.Fatal(err)
	}
	first, second := inboxMsgs[0], inboxMsgs[1]
	foreign := filepath.Join(root, "INBOX", emlName(first.date, sha(first.body), 1))
	if err := os.WriteFile(foreign, []byte("not the message"), 0o600); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(root, "INBOX", emlName(second.date, sha(second.body), 1))
	if err := os.WriteFile(copyPath, second.body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(copyPath, second.date, second.date); err != nil {
		t.Fatal(err)
	}
	// The copy is already present: it is not appended.
	if n := restoreAll(t, open(), msgs); n != len(msgs)-1 {
		t.Fatalf("first run appended %d messages, want %d", n, len(msgs)-1)
	}
	if data, _ := os.ReadFile(foreign); string(data) != "not the message" {
		t.Errorf("foreign file overwritten")
	}
	e := open().(*EML)
	checkFolders(t, e, withParents(testFolders))
	for _, folder := range testFolders {
		dir, err := e.dir(folder)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]bool{}
		for _, m := range msgs {
			if m.folder != folder {
				continue
			}
			name := emlName(m.date, sha(m.body), 1)
			if m.folder == "INBOX" && bytes.Equal(m.body, first.body) && m.date.Equal(first.date) {
				name = emlName(m.date, sha(m.body), 2)
			}
			want[name] = true
			p := filepath.Join(dir, name)
			data, err := os.ReadFile(p)
			if err != nil {
				t.Errorf("%s: %v", folder, err)
				continue
			}
			if !bytes.Equal(data, m.body) {
				t.Errorf("%s: bytes differ", p)
			}
			if st, _ := os.Stat(p); !st.ModTime().Equal(m.date) {
				t.Errorf("%s: mtime %v, want %v", p, st.ModTime(), m.date)
			}
		}
		if folder == "INBOX" {
			want[filepath.Base(foreign)] = true
		}
		ents, _ := os.ReadDir(dir)
		for _, ent := range ents {
			if !ent.IsDir() && !want[ent.Name()] {
				t.Errorf("%s: unexpected file %s", folder, ent.Name())
			}
		}
	}
	rerun(t, root, open, msgs)
}

// readMboxFile splits an mbox file written by Mbox into From lines and
// messages (unquoted, without the blank line ending each record).
func readMboxFile(t *testing.T, path string) (froms []string, bodies [][]byte) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) == 0 {
		return nil, nil
	}
	if !bytes.HasPrefix(data, []byte("From ")) || !bytes.HasSuffix(data, []byte("\n\n")) {
		t.Fatalf("%s: not a complete mbox file", path)
	}
	var cur []byte
	flush := func() {
		if froms != nil {
			bodies = append(bodies, bytes.TrimSuffix(cur, []byte("\n")))
		}
		cur = nil
	}
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("From ")) {
			flush()
			froms = append(froms, string(line))
			continue
		}
		if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
			line = line[1:]
		}
		cur = append(cur, line...)
	}
	flush()
	return froms, bodies
}

// mboxForm is a message as an mbox reader returns it: with a final
// newline added when it has none.
func mboxForm(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(slices.Clone(b), '\n')
	}
	return b
}

func TestMbox(t *testing.T) {
	root := filepath.Join(t.TempDir(), "mbox")
	msgs := testCorpus()
	open := func() restore.Target {
		mb, err := NewMbox(root)
		if err != nil {
			t.Fatal(err)
		}
		return mb
	}
	if n := restoreAll(t, open(), msgs); n != len(msgs) {
		t.Fatalf("first run appended %d messages, want %d", n, len(msgs))
	}
	mb := open().(*Mbox)
	checkFolders(t, mb, withParents(testFolders))
	files := map[string]string{}
	for _, folder := range testFolders {
		p, err := mb.file(folder)
		if err != nil {
			t.Fatal(err)
		}
		files[folder] = p
		froms, bodies := readMboxFile(t, p)
		var wantFroms []string
		var wantBodies [][]byte
		for _, m := range msgs {
			if m.folder == folder {
				wantFroms = append(wantFroms, "From MAILER-DAEMON "+m.date.Format("Mon Jan _2 15:04:05 2006")+"\n")
				wantBodies = append(wantBodies, mboxForm(m.body))
			}
		}
		if !slices.Equal(froms, wantFroms) {
			t.Errorf("%s: From lines %q, want %q", folder, froms, wantFroms)
		}
		if !slices.EqualFunc(bodies, wantBodies, bytes.Equal) {
			t.Errorf("%s: messages differ", folder)
		}
	}
	rerun(t, root, open, msgs)
	checkPythonMbox(t, files, msgs)
}

const pythonMbox = `
import hashlib, json, mailbox, re, sys
out = {}
for path in sys.argv[1:]:
    box = mailbox.mbox(path, create=False)
    msgs = []
    for key in box.iterkeys():
        raw = re.sub(rb"(?m)^>(>*From )", rb"\1", box.get_bytes(key))
        msgs.append([hashlib.sha256(raw).hexdigest(), box.get_message(key).get_from()])
    out[path] = msgs
print(json.dumps(out))
`

// checkPythonMbox has Python's mailbox module read the mbox files.
func checkPythonMbox(t *testing.T, files map[string]string, msgs []tmsg) {
	t.Helper()
	py := testenv.RequireTool(t, "python3")
	args := []string{"-c", pythonMbox}
	for _, p := range files {
		args = append(args, p)
	}
	out, err := exec.Command(py, args...).Output()
	if err != nil {
		t.Fatalf("python3: %v", err)
	}
	var got map[string][][2]string
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("python3 output: %v\n%s", err, out)
	}
	for folder, p := range files {
		var want [][2]string
		for _, m := range msgs {
			if m.folder == folder {
				want = append(want, [2]string{sha(mboxForm(m.body)), "MAILER-DAEMON " + m.date.Format("Mon Jan _2 15:04:05 2006")})
			}
		}
		if !slices.Equal(got[p], want) {
			t.Errorf("%s: Python reads %d messages %q, want %d %q", folder, len(got[p]), got[p], len(want), want)
		}
	}
}

// TestMboxTruncated cuts the last record of an mbox file at every offset
// (a crash in the middle of an append) and checks that the next run
// repairs the file and appends the message exactly once.
func TestMboxTruncated(t *testing.T) {
	edges := corpus.EdgeCases()
	base := []tmsg{
		{folder: "F", date: time.Date(2010, 1, 1, 0, 0, 0, 0, time.UTC), body: edges[corpus.EdgeFromLine]},
		{folder: "F", date: time.Date(2010, 1, 2, 0, 0, 0, 0, time.UTC), body: edges[corpus.EdgeNoFinalNewline]},
	}
	for _, last := range []string{corpus.EdgeCRLF, corpus.EdgeBareLF, corpus.EdgeNoFinalNewline, corpus.EdgeNoMessageID, corpus.EdgeFromDoubleQuoted} {
		t.Run(last, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			msgs := append(slices.Clone(base), tmsg{folder: "F", date: time.Date(2010, 1, 3, 0, 0, 0, 0, time.UTC), body: edges[last]})
			open := func() restore.Target {
				mb, err := NewMbox(root)
				if err != nil {
					t.Fatal(err)
				}
				return mb
			}
			restoreAll(t, open(), msgs[:2])
			path := filepath.Join(root, "F.mbox")
			good, _ := os.ReadFile(path)
			restoreAll(t, open(), msgs)
			full, _ := os.ReadFile(path)
			// A process that dies while writing the record leaves it
			// pending, cut anywhere; before the write returned, the
			// From line was not committed.
			pending := slices.Clone(full)
			pending[len(good)+fromMarkAt] = fromPending
			for cut := len(good); cut <= len(full); cut++ {
				if err := os.WriteFile(path, pending[:cut], 0o600); err != nil {
					t.Fatal(err)
				}
				if n := restoreAll(t, open(), msgs); n != 1 {
					t.Fatalf("pending, cut at %d: appended %d, want 1", cut, n)
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, full) {
					t.Fatalf("pending, cut at %d (%q): file not repaired:\n%q", cut, full[cut-min(cut, 10):cut], got[len(good):])
				}
			}
			// A machine crash can also lose the end of a committed
			// record. Cut anywhere, it is removed and written again,
			// unless the cut leaves a blank line at the end (only
			// possible with bare LF line endings): then the shortened
			// record stays, is not taken for the message, and the
			// message is appended again after it.
			for cut := len(good); cut < len(full); cut++ {
				if err := os.WriteFile(path, full[:cut], 0o600); err != nil {
					t.Fatal(err)
				}
				if n := restoreAll(t, open(), msgs); n != 1 {
					t.Fatalf("committed, cut at %d: appended %d, want 1", cut, n)
				}
				want := full
				if cut > len(good) && bytes.HasSuffix(full[:cut], []byte("\n\n")) {
					if last != corpus.EdgeBareLF {
						t.Errorf("cut at %d ends in a blank line", cut)
					}
					want = append(slices.Clone(full[:cut]), full[len(good):]...)
				}
				if got, _ := os.ReadFile(path); !bytes.Equal(got, want) {
					t.Fatalf("committed, cut at %d (%q): file not repaired:\n%q", cut, full[cut-min(cut, 10):cut], got[len(good):])
				}
			}
		})
	}
}

// TestMboxForeign appends to mbox files another program wrote: one
// without a final blank line is padded, one that is not an mbox file is
// refused and left alone.
func TestMboxForeign(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	foreign := "From - Thu Jan  1 00:00:00 2015\nSubject: x\n\nbody"
	if err := os.WriteFile(filepath.Join(root, "Old.mbox"), []byte(foreign), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "Text.mbox"), []byte("hello\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := tmsg{folder: "Old", date: time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeCRLF]}
	if n := restoreAll(t, mustMbox(t, root), []tmsg{m}); n != 1 {
		t.Fatalf("appended %d", n)
	}
	got, _ := os.ReadFile(filepath.Join(root, "Old.mbox"))
	want := foreign + "\n\n" + string(formatsFromLine(m.date)) + string(m.body) + "\n"
	if string(got) != want {
		t.Errorf("Old.mbox:\n%q\nwant\n%q", got, want)
	}
	if n := restoreAll(t, mustMbox(t, root), []tmsg{m}); n != 0 {
		t.Errorf("second run appended %d", n)
	}
	mb := mustMbox(t, root)
	m.folder = "Text"
	if _, err := mb.Index(ctx, "Text"); !errors.Is(err, errNotMbox) {
		t.Errorf("Index of a text file: %v", err)
	}
	if _, err := mb.Append(ctx, "Text", m.msg(), bytes.NewReader(m.body)); !errors.Is(err, errNotMbox) {
		t.Errorf("Append to a text file: %v", err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "Text.mbox")); string(got) != "hello\n" {
		t.Errorf("text file changed: %q", got)
	}
}

func formatsFromLine(d time.Time) []byte {
	return []byte("From MAILER-DAEMON " + d.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n")
}

func mustMbox(t *testing.T, root string) *Mbox {
	t.Helper()
	mb, err := NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	return mb
}

// hostileFolders are folder names that must stay inside the root and
// map to distinct places.
var hostileFolders = []string{
	"..", ".", "", "../..", "../../etc", "a/../../b", "/abs", "//", "x\x00y", "C:\\evil", "a\\..\\b",
	"CON", "nul.txt", "cur", "new", "tmp", "dovecot-keywords", "dovecot.index", "a.mbox", "A.MBOX", "b.eml",
	"%", "%2E", "%2E.", "%25", ".hidden", "trailing.", "trailing ", "q?*<>|\":", "\xff\xfe", "INBOX", "inbox/Sub",
	"Sub", "x.mbox/y", strings.Repeat("é", 60),
	"\x01ctl", "a\nb", "tab\tx", "\x7f", "R&D", "&AOk-", "&", "a%~0123456789abcdef", "x/./y", "x/../y",
	strings.Repeat("z", 256), strings.Repeat("z", 256) + "/" + strings.Repeat("é", 130),
}

func TestHostileFolders(t *testing.T) {
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		t.Run(kind, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			open := func() restore.Target {
				var tg restore.Target
				var err error
				switch kind {
				case "maildir":
					tg, err = NewMaildir(root)
				case "mbox":
					tg, err = NewMbox(root)
				default:
					tg, err = NewEML(root)
				}
				if err != nil {
					t.Fatal(err)
				}
				return tg
			}
			var msgs []tmsg
			body := corpus.EdgeCases()[corpus.EdgeCRLF]
			for i, f := range hostileFolders {
				msgs = append(msgs, tmsg{folder: f, date: time.Date(2000+i, 1, 1, 0, 0, 0, 0, time.UTC), body: body})
			}
			if n := restoreAll(t, open(), msgs); n != len(msgs) {
				t.Fatalf("appended %d, want %d", n, len(msgs))
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 1 {
				t.Errorf("the parent of root holds %d entries", len(ents))
			}
			tg := open()
			// Every folder holds exactly its own message.
			for i, f := range hostileFolders {
				idx, err := tg.Index(context.Background(), f)
				if err != nil {
					t.Fatalf("Index %q: %v", f, err)
				}
				if !idx.Take(msgs[i].msg()) || idx.Take(msgs[i].msg()) {
					t.Errorf("%q does not hold exactly one copy of its message", f)
				}
			}
			var want []string
			for _, f := range hostileFolders {
				want = append(want, normalize(f))
			}
			want = withParents(want)
			for i, f := range want {
				// A level too long for a file name is listed as kept.
				if as, changed := tg.(restore.FolderNamer).StoredAs(f); changed {
					want[i] = as
				}
			}
			if kind == "maildir" {
				want = slices.DeleteFunc(want, func(s string) bool { return s == "INBOX" })
				want = append(want, "INBOX")
			}
			checkFolders(t, tg, want)
			rerun(t, root, open, msgs)
			err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if p != root && d.IsDir() && strings.HasPrefix(d.Name(), ".") {
					t.Errorf("dot directory %s", p)
				}
				if d.IsDir() && len(d.Name()) > 255 {
					t.Errorf("long name %s", p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEscape(t *testing.T) {
	for _, e := range []localname.Escaper{maildirEscaper, mboxEscaper, emlEscaper} {
		seen := map[string]string{}
		for _, f := range append(hostileFolders, "a", "A", "a.b", "%41", "Año 2023", "日本", "x y") {
			s := e.Escape(f)
			if s == "" || s == "." || s == ".." || strings.ContainsAny(s, "/\x00") || strings.HasPrefix(s, ".") {
				t.Errorf("escape(%q) = %q", f, s)
			}
			if localname.Unescape(s) != f {
				t.Errorf("localname.Unescape(escape(%q)) = %q", f, localname.Unescape(s))
			}
			if o, dup := seen[s]; dup {
				t.Errorf("%q and %q both escape to %q", o, f, s)
			}
			seen[s] = f
		}
	}
	for in, want := range map[string]string{"": "%", ".": "%2E", "..": "%2E.", "a%b": "a%25b", "Año 2023": "Año 2023", "cur": "%63ur", "new.x": "new.x"} {
		if got := maildirEscaper.Escape(in); got != want {
			t.Errorf("maildir escape(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"a:b": "a%3Ab", "CON": "%43ON", "x.mbox": "%78.mbox", "end.": "end%2E", "cur": "cur"} {
		if got := mboxEscaper.Escape(in); got != want {
			t.Errorf("mbox escape(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestBadBody checks that a body that does not match its size or SHA-256
// is rejected and leaves nothing behind.
func TestBadBody(t *testing.T) {
	ctx := context.Background()
	body := corpus.EdgeCases()[corpus.EdgeCRLF]
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		root := t.TempDir()
		var tg restore.Target
		var err error
		switch kind {
		case "maildir":
			tg, err = NewMaildir(root)
		case "mbox":
			tg, err = NewMbox(root)
		default:
			tg, err = NewEML(root)
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tg.CreateFolder(ctx, "F"); err != nil {
			t.Fatal(err)
		}
		before := snapshot(t, root)
		m := tmsg{folder: "F", date: time.Now(), body: body}
		for _, r := range []io.Reader{bytes.NewReader(body[:len(body)-1]), io.MultiReader(bytes.NewReader(body), strings.NewReader("x"))} {
			p, err := tg.Append(ctx, "F", m.msg(), r)
			if err != nil {
				t.Fatalf("%s: %v", kind, err)
			}
			if err := p.Wait(); !errors.Is(err, restore.ErrRejected) {
				t.Errorf("%s: short/long body: %v", kind, err)
			}
		}
		bad := m.msg()
		bad.SHA256 = sha([]byte("other"))
		if p, err := tg.Append(ctx, "F", bad, bytes.NewReader(body)); err != nil || !errors.Is(p.Wait(), restore.ErrRejected) {
			t.Errorf("%s: wrong SHA-256 accepted", kind)
		}
		// A folder that does not exist.
		if p, err := tg.Append(ctx, "Missing", m.msg(), bytes.NewReader(body)); err != nil || !errors.Is(p.Wait(), restore.ErrTryCreate) {
			t.Errorf("%s: append to a missing folder: %v", kind, err)
		}
		if err := tg.Close(); err != nil {
			t.Fatal(err)
		}
		after := snapshot(t, root)
		checkUntouched(t, before, after)
		if len(after) != len(before) {
			t.Errorf("%s: rejected messages left files behind", kind)
		}
	}
}

// TestMaildirNamesBounded: the names a folder's state keeps are bounded
// (maxKnownNames): a folder with more files keeps none, and appends do
// not add any, so a restore into a folder of a million messages holds no
// name per message; every message still gets a file of its own.
func TestMaildirNamesBounded(t *testing.T) {
	old := maxKnownNames
	maxKnownNames = 20
	defer func() { maxKnownNames = old }()
	root := t.TempDir()
	md, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := md.Prepare(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		os.WriteFile(filepath.Join(root, "cur", fmt.Sprintf("%d.old.host,S=3:2,S", i)), []byte("old"), 0o600)
	}
	for i := 0; i < 30; i++ {
		body := []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
		p, err := md.Append(ctx, "INBOX", &restore.Message{Size: int64(len(body))}, bytes.NewReader(body))
		if err == nil {
			err = p.Wait()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	f := md.folders[normalize("INBOX")]
	if f == nil || len(f.names) != 0 {
		t.Fatalf("folder state keeps %d names, want none past the bound", len(f.names))
	}
	if ents, _ := os.ReadDir(filepath.Join(root, "cur")); len(ents) != 80 {
		t.Errorf("cur/ holds %d files, want 80", len(ents))
	}
}
