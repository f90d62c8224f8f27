package localsrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/localstore"
	"github.com/mailvault/mailvault/internal/mutf7"
	"github.com/mailvault/mailvault/restore"
)

// --- helpers ---

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func setMtime(t *testing.T, path string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(path, at, at); err != nil {
		t.Fatal(err)
	}
}

// hashKey is the key of an mbox message with these bytes: a hash of the
// message without its X-Mozilla-* header lines.
func hashKey(body string) string {
	var kept strings.Builder
	inHead := true
	skip := false
	for _, line := range strings.SplitAfter(body, "\n") {
		if inHead && (line == "\n" || line == "\r\n") {
			inHead = false
			skip = false
		} else if inHead && line != "" && line[0] != ' ' && line[0] != '\t' {
			skip = len(line) >= 10 && strings.EqualFold(line[:10], "X-Mozilla-")
		}
		if !skip {
			kept.WriteString(line)
		}
	}
	s := sha256.Sum256([]byte(kept.String()))
	return "sha256:" + hex.EncodeToString(s[:16])
}

func TestMozillaHeadersLeftOutOfKey(t *testing.T) {
	a := "X-Mozilla-Status: 0000\r\nSubject: s\r\n\r\nbody\r\n"
	b := "X-Mozilla-Status: 0001\r\nSubject: s\r\n\r\nbody\r\n"
	if hashKey(a) != hashKey(b) {
		t.Fatal("test helper disagrees")
	}
	dir := t.TempDir()
	for i, body := range []string{a, b} {
		p := filepath.Join(dir, fmt.Sprint("f", i))
		os.WriteFile(p, []byte("From - Mon Jan  2 15:04:05 2006\r\n"+body), 0o600)
		src, err := NewMbox(p)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		folders, _ := src.Folders(context.Background())
		src.Examine(context.Background(), folders[0].Name)
		src.List(context.Background(), func(k string, flags []string) error { keys = append(keys, k); return nil })
		if len(keys) != 1 || keys[0] != hashKey(a) {
			t.Errorf("file %d: keys %v, want [%s]: reading a message in Thunderbird must not change its key", i, keys, hashKey(a))
		}
	}
}

// got is one message as a source delivered it.
type got struct {
	key   string
	flags []string
	date  time.Time
	size  int64
	body  string
}

// folderSummary is "name" for a selectable folder, "name (noselect)"
// otherwise, with the special use if any.
func folderSummary(t *testing.T, src backup.Source) []string {
	t.Helper()
	infos, err := src.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, fi := range infos {
		if fi.Delimiter != "/" {
			t.Errorf("folder %q: delimiter %q", fi.Name, fi.Delimiter)
		}
		s := fi.Name
		if fi.NoSelect {
			s += " (noselect)"
		}
		if fi.SpecialUse != "" {
			s += " " + fi.SpecialUse
		}
		out = append(out, s)
	}
	return out
}

// readFolder examines a folder, lists it and fetches every listed key,
// checking that List and Fetch agree.
func readFolder(t *testing.T, src backup.Source, name string) []got {
	t.Helper()
	ctx := context.Background()
	st, err := src.Examine(ctx, name)
	if err != nil {
		t.Fatalf("examine %q: %v", name, err)
	}
	if st.UIDValidity != 0 || st.UIDNext != 0 || st.HighestModSeq != 0 {
		t.Errorf("%q: status %+v, want only Messages", name, st)
	}
	var keys []string
	flags := map[string][]string{}
	if err := src.List(ctx, func(key string, f []string) error {
		keys = append(keys, key)
		flags[key] = formats.NormalizeFlags(f)
		return nil
	}); err != nil {
		t.Fatalf("list %q: %v", name, err)
	}
	if int(st.Messages) != len(keys) {
		t.Errorf("%q: Examine says %d messages, List gave %d", name, st.Messages, len(keys))
	}
	var out []got
	if err := src.Fetch(ctx, keys, func(m *backup.Message) error {
		b, err := io.ReadAll(m.Body)
		if err != nil {
			return err
		}
		if int64(len(b)) != m.Size {
			t.Errorf("%q %s: Size %d, body %d bytes", name, m.Key, m.Size, len(b))
		}
		if f := formats.NormalizeFlags(m.Flags); !slices.Equal(f, flags[m.Key]) {
			t.Errorf("%q %s: Fetch flags %v, List flags %v", name, m.Key, f, flags[m.Key])
		}
		out = append(out, got{key: m.Key, flags: formats.NormalizeFlags(m.Flags), date: m.InternalDate, size: m.Size, body: string(b)})
		return nil
	}); err != nil {
		t.Fatalf("fetch %q: %v", name, err)
	}
	if len(out) != len(keys) {
		t.Errorf("%q: %d keys listed, %d delivered", name, len(keys), len(out))
	}
	for i := range min(len(out), len(keys)) {
		if out[i].key != keys[i] {
			t.Errorf("%q: delivered %s at %d, asked for %s", name, out[i].key, i, keys[i])
		}
	}
	return out
}

// listKeys returns the keys List reports for the examined folder.
func listKeys(t *testing.T, src backup.Source) []string {
	t.Helper()
	var keys []string
	if err := src.List(context.Background(), func(key string, _ []string) error {
		keys = append(keys, key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// want is an expected message.
type want struct {
	key   string // "" for the hash of body
	flags []string
	date  time.Time
	body  string
}

func checkMessages(t *testing.T, folder string, gotMsgs []got, wants []want) {
	t.Helper()
	if len(gotMsgs) != len(wants) {
		t.Fatalf("%q: %d messages, want %d", folder, len(gotMsgs), len(wants))
	}
	for i, w := range wants {
		g := gotMsgs[i]
		key := w.key
		if key == "" {
			key = hashKey(w.body)
		}
		if g.key != key {
			t.Errorf("%q #%d: key %s, want %s", folder, i, g.key, key)
		}
		if g.body != w.body {
			t.Errorf("%q #%d: body\n%q\nwant\n%q", folder, i, short(g.body), short(w.body))
		}
		if !slices.Equal(g.flags, formats.NormalizeFlags(w.flags)) {
			t.Errorf("%q #%d: flags %v, want %v", folder, i, g.flags, formats.NormalizeFlags(w.flags))
		}
		if !g.date.Equal(w.date) {
			t.Errorf("%q #%d: date %v, want %v", folder, i, g.date, w.date)
		}
	}
}

func short(s string) string {
	if len(s) > 300 {
		return s[:150] + "…" + s[len(s)-150:]
	}
	return s
}

// runEngine backs src up twice into a new archive: the first run stores
// total messages, the second nothing, and the archive verifies.
func runEngine(t *testing.T, src backup.Source, url, proto string, total int) {
	t.Helper()
	ctx := context.Background()
	a, err := formats.Create(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	opts := backup.Options{Source: url, Protocol: proto, Dial: func(context.Context) (backup.Source, error) { return src, nil }}
	res, err := backup.Run(ctx, a, opts)
	if err != nil {
		t.Fatalf("first run: %v", err)
	}
	if res.Added != total || len(res.Failed) > 0 {
		t.Errorf("first run: added %d (want %d), failed %v", res.Added, total, res.Failed)
	}
	res, err = backup.Run(ctx, a, opts)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if res.Added != 0 || res.Stored != 0 || res.Gone != 0 || res.FlagChanges != 0 {
		t.Errorf("second run: added %d, stored %d, gone %d, flag changes %d; want nothing", res.Added, res.Stored, res.Gone, res.FlagChanges)
	}
	rep, err := a.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Errorf("verify: %v", rep.Problems)
	}
	if rep.Snapshots != 2 {
		t.Errorf("verify: %d snapshots, want 2", rep.Snapshots)
	}
}

func utc(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// --- Thunderbird mbox tree ---

// thunderbirdTree writes a Thunderbird profile's local folders and
// returns the expected messages per folder.
func thunderbirdTree(t *testing.T, root string) map[string][]want {
	mA := "X-Mozilla-Status: 0001\nX-Mozilla-Status2: 00000000\nFrom: Ann <ann@example.org>\nSubject: quoting\n" +
		"Date: Sat, 03 Jan 2026 12:00:00 +0000\n\nHello\n>From the start of a line\n>>From stays quoted\n >From not at the start\n"
	wA := strings.Replace(mA, "\n>From the start", "\nFrom the start", 1)
	mB := "X-Mozilla-Status: 0005\nSubject: b\n\nno blank line before the next From line\n"
	mC := "Status: RO\nX-Status: AF\nSubject: c\n\nends with two blank lines\n\n\n"
	long := strings.Repeat("x", 150000)
	mBig := "Subject: big\n\n" + long + "\n>From after a long line\n" + strings.Repeat("y", 70000) + ">From inside a line\n"
	wBig := strings.Replace(mBig, "\n>From after", "\nFrom after", 1)
	mE := "X-Mozilla-Status: 1000\nX-Mozilla-Keys: $label1 todo          \nSubject: e\n\nno final newline"
	inbox := "From - Sat Jan  3 12:34:56 2026\n" + mA + "\n" +
		"From sender@example.org  Mon Feb  2 08:09:10 2026 +0100\n" + mB +
		"From MAILER-DAEMON Tue Mar 10 01:02:03 2026\n" + mC + "\n" +
		"From - Sat Jan  3 12:34:56 2026\n" + mA + "\n" +
		"From big@example.org Thu Mar 12 00:00:00 GMT 2026\n" + mBig + "\n" +
		"From foo@example.org Wed, 11 Mar 2026 10:00:00 -0500\n" + mE
	writeFile(t, filepath.Join(root, "Inbox"), inbox)

	s1 := "X-Mozilla-Status: 0003\r\nSubject: s1\r\n\r\nline\r\n>From quoted\r\n>>From kept\r\n"
	s2 := "X-Mozilla-Status: 0008\r\nDate: Fri, 03 Apr 2026 10:00:00 +0200\r\nSubject: s2\r\n\r\nbody\r\n"
	s3 := "Subject: s3\r\n\r\nno date anywhere\r\n\r\n"
	sent := "From - Thu Apr  2 03:04:05 2026\r\n" + s1 + "\r\n" +
		"From -\r\n" + s2 + "\r\n" +
		"From x\r\n" + s3 + "\r\n"
	writeFile(t, filepath.Join(root, "Sent"), sent)
	mtime := utc(2020, 5, 6, 7, 8, 9)
	setMtime(t, filepath.Join(root, "Sent"), mtime)

	writeFile(t, filepath.Join(root, "Drafts"), "")
	mT := "Status: O\nSubject: t\n\nbye\n"
	writeFile(t, filepath.Join(root, "Trash"), "From a@b.c \t Sun Jan 5 1:02:03 2025\n"+mT+"\n")
	mW := "X-Mozilla-Status: 0000\nSubject: w\n\nwork\n"
	writeFile(t, filepath.Join(root, "Work"), "From - Mon Jan  5 10:00:00 2026\n"+mW+"\n")
	mCl := "X-Mozilla-Status: 0004\nSubject: client\n\nclient\n"
	writeFile(t, filepath.Join(root, "Work.sbd", "Clients"), "From - Mon Jan  5 11:00:00 2026\n"+mCl+"\n")
	m26 := "Subject: 2026\n\nplans\n"
	writeFile(t, filepath.Join(root, "Work.sbd", "Projects.sbd", "2026"), "From - Tue Jan  6 12:00 2026\n"+m26+"\n")

	// Files that are not folders.
	for _, p := range []string{"Inbox.msf", "Sent.msf", "Work.msf", "Work.sbd/Clients.msf"} {
		writeFile(t, filepath.Join(root, p), "// <!-- <mdb:mork:z v=\"1.4\"/> -->\n< <(a=c)> >\n")
	}
	writeFile(t, filepath.Join(root, "msgFilterRules.dat"), "version=\"9\"\nlogging=\"no\"\n")
	writeFile(t, filepath.Join(root, "popstate.dat"), "")
	writeFile(t, filepath.Join(root, "folderTree.json"), "")
	writeFile(t, filepath.Join(root, "notes.txt"), "Fromage is not a From line\n")
	writeFile(t, filepath.Join(root, ".hidden"), "From x Mon Jan  5 10:00:00 2026\n\nhidden\n")
	if err := os.MkdirAll(filepath.Join(root, "Inbox.mozmsgs"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "Work.sbd", "Empty.sbd", "x.msf"), "")

	return map[string][]want{
		"INBOX": {
			{body: wA, flags: []string{`\Seen`}, date: utc(2026, 1, 3, 12, 34, 56)},
			{body: mB, flags: []string{`\Seen`, `\Flagged`}, date: utc(2026, 2, 2, 7, 9, 10)},
			{body: mC, flags: []string{`\Seen`, `\Answered`, `\Flagged`}, date: utc(2026, 3, 10, 1, 2, 3)},
			{key: hashKey(wA) + "#2", body: wA, flags: []string{`\Seen`}, date: utc(2026, 1, 3, 12, 34, 56)},
			{body: wBig, date: utc(2026, 3, 12, 0, 0, 0)},
			{body: mE, flags: []string{"$Forwarded", "$label1", "todo"}, date: utc(2026, 3, 11, 15, 0, 0)},
		},
		"Sent": {
			{body: strings.Replace(s1, "\n>From quoted", "\nFrom quoted", 1), flags: []string{`\Seen`, `\Answered`}, date: utc(2026, 4, 2, 3, 4, 5)},
			{body: s2, flags: []string{`\Deleted`}, date: utc(2026, 4, 3, 8, 0, 0)},
			{body: s3, date: mtime},
		},
		"Drafts":             nil,
		"Trash":              {{body: mT, date: utc(2025, 1, 5, 1, 2, 3)}},
		"Work":               {{body: mW, date: utc(2026, 1, 5, 10, 0, 0)}},
		"Work/Clients":       {{body: mCl, flags: []string{`\Flagged`}, date: utc(2026, 1, 5, 11, 0, 0)}},
		"Work/Projects/2026": {{body: m26, date: utc(2026, 1, 6, 12, 0, 0)}},
	}
}

func TestMboxThunderbird(t *testing.T) {
	root := t.TempDir()
	wants := thunderbirdTree(t, root)
	src, err := NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	folders := folderSummary(t, src)
	wantFolders := []string{
		"INBOX", `Drafts \Drafts`, `Sent \Sent`, `Trash \Trash`, "Work",
		"Work/Clients", "Work/Projects (noselect)", "Work/Projects/2026",
	}
	if !slices.Equal(folders, wantFolders) {
		t.Fatalf("folders\n%q\nwant\n%q", folders, wantFolders)
	}
	total := 0
	for name, w := range wants {
		checkMessages(t, name, readFolder(t, src, name), w)
		total += len(w)
	}

	// Keys are the same on every listing, and after a new NewMbox.
	ctx := context.Background()
	if _, err := src.Examine(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	k1 := listKeys(t, src)
	k2 := listKeys(t, src) // reads the file again
	src2, err := NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src2.Examine(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	k3 := listKeys(t, src2)
	if !slices.Equal(k1, k2) || !slices.Equal(k1, k3) || len(k1) != 6 {
		t.Errorf("keys differ between listings:\n%v\n%v\n%v", k1, k2, k3)
	}

	// A message's key does not depend on the others: drop the first
	// message and the rest keep theirs.
	data, _ := os.ReadFile(filepath.Join(root, "Inbox"))
	i := bytes.Index(data, []byte("\nFrom sender@"))
	writeFile(t, filepath.Join(root, "Inbox"), string(data[i+1:]))
	if _, err := src.Examine(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	// The former copy "#2" is now the only one.
	wantKeys := []string{k1[1], k1[2], hashKey(wants["INBOX"][0].body), k1[4], k1[5]}
	if k := listKeys(t, src); !slices.Equal(k, wantKeys) {
		t.Errorf("after removing the first message: %v, want %v", k, wantKeys)
	}
	writeFile(t, filepath.Join(root, "Inbox"), string(data))

	// Not a folder.
	if _, err := src.Examine(ctx, "Work/Projects"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("examine a NoSelect folder: %v", err)
	}
	if _, err := src.Examine(ctx, "Nope"); !errors.Is(err, ErrNoFolder) {
		t.Errorf("examine a missing folder: %v", err)
	}

	runEngine(t, src, "mbox:"+root, "mbox", total)
}

func TestMboxFetch(t *testing.T) {
	root := t.TempDir()
	path := filepath.Join(root, "Inbox")
	m1 := "Subject: one\n\n1\n"
	m2 := "Subject: two\n\n2\n"
	writeFile(t, path, "From - Sat Jan  3 12:34:56 2026\n"+m1+"\nFrom - Sat Jan  3 12:34:57 2026\n"+m2)
	src, err := NewMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if f := folderSummary(t, src); !slices.Equal(f, []string{"INBOX"}) {
		t.Errorf("single file Inbox: folders %v", f)
	}
	ctx := context.Background()
	if _, err := src.Examine(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	keys := listKeys(t, src)
	// Unknown keys are not delivered; the order is the caller's.
	var order []string
	err = src.Fetch(ctx, []string{keys[1], "sha256:00", keys[0]}, func(m *backup.Message) error {
		order = append(order, m.Key)
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err != nil || !slices.Equal(order, []string{keys[1], keys[0]}) {
		t.Errorf("fetch: %v, order %v", err, order)
	}
	// fn's error stops Fetch.
	stop := errors.New("stop")
	if err := src.Fetch(ctx, keys, func(*backup.Message) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("fetch returned %v, want fn's error", err)
	}
	// The file is rewritten (compacted) between List and Fetch: the
	// changed message fails its read.
	writeFile(t, path, "From - Sat Jan  3 12:34:56 2026\n"+strings.Replace(m1, "1", "X", 1)+"\nFrom - Sat Jan  3 12:34:57 2026\n"+m2)
	err = src.Fetch(ctx, keys[:1], func(m *backup.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "changed since the folder was listed") || !strings.Contains(err.Error(), path) {
		t.Errorf("fetch of a rewritten message: %v", err)
	}
	// A cancelled context.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := src.Examine(cctx, "INBOX"); !errors.Is(err, context.Canceled) {
		t.Errorf("examine with a cancelled context: %v", err)
	}

	// A single file named name.mbox is folder "name".
	p2 := filepath.Join(root, "Old%20mail.mbox")
	writeFile(t, p2, "")
	src2, err := NewMbox(p2)
	if err != nil {
		t.Fatal(err)
	}
	if f := folderSummary(t, src2); !slices.Equal(f, []string{"Old mail"}) {
		t.Errorf("single file Old%%20mail.mbox: folders %v", f)
	}
	if got := readFolder(t, src2, "Old mail"); len(got) != 0 {
		t.Errorf("empty file: %d messages", len(got))
	}
}

// --- mbox written by internal/localstore ---

// mboxrdRoundTrip is what reading a message written by localstore's
// mboxrd writer gives: a line matching ^>+From keeps the '>' the writer
// added (this package removes one '>' only from ^>From lines), and a
// message without a final newline gains one.
func mboxrdRoundTrip(body []byte) string {
	lines := strings.SplitAfter(string(body), "\n")
	for i, l := range lines {
		if strings.HasPrefix(strings.TrimLeft(l, ">"), "From ") && strings.HasPrefix(l, ">") {
			lines[i] = ">" + l
		}
	}
	s := strings.Join(lines, "")
	if !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	return s
}

func TestMboxLocalstore(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	msgs := corpus.Generate(corpus.Options{Seed: 7, Messages: 40})
	tg, err := localstore.NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	wants := map[string][]want{}
	seen := map[string]map[string]int{}
	for _, m := range msgs {
		appendTo(t, tg, m)
		body := mboxrdRoundTrip(m.Body)
		if seen[m.Folder] == nil {
			seen[m.Folder] = map[string]int{}
		}
		key := hashKey(body)
		seen[m.Folder][key]++
		if n := seen[m.Folder][key]; n > 1 {
			key += "#" + string(rune('0'+n))
		}
		// mbox keeps no flags.
		wants[m.Folder] = append(wants[m.Folder], want{key: key, body: body, date: m.InternalDate})
	}
	if err := tg.CreateFolder(ctx, corpus.EmptyFolder); err != nil {
		t.Fatal(err)
	}
	wants[corpus.EmptyFolder] = nil
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}

	src, err := NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	infos, _ := src.Folders(ctx)
	for _, fi := range infos {
		if fi.NoSelect {
			t.Errorf("folder %q is NoSelect: localstore writes every parent", fi.Name)
		}
		names = append(names, fi.Name)
	}
	wantNames := slices.Clone(corpus.Folders())
	slices.SortFunc(wantNames, compareNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("folders\n%q\nwant\n%q", names, wantNames)
	}
	total := 0
	for name, w := range wants {
		checkMessages(t, name, readFolder(t, src, name), w)
		total += len(w)
	}
	runEngine(t, src, "mbox:"+root, "mbox", total)
}

// appendTo stores a corpus message with a restore target, creating its
// folder.
func appendTo(t *testing.T, tg restore.Target, m corpus.Message) {
	t.Helper()
	ctx := context.Background()
	if err := tg.CreateFolder(ctx, m.Folder); err != nil {
		t.Fatal(err)
	}
	rm := &restore.Message{Flags: m.Flags, InternalDate: m.InternalDate, Size: int64(len(m.Body))}
	p, err := tg.Append(ctx, m.Folder, rm, bytes.NewReader(m.Body))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// --- Maildir++ ---

func TestMaildirPlusPlus(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"", ".Sent", ".Work.Projects", ".&AMk-t&AOk-", ".Trash"} {
		for _, sub := range []string{"cur", "new", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d, sub), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Not folders.
	if err := os.MkdirAll(filepath.Join(root, ".cache", "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "courierimapkeywords", ":list"), "")
	writeFile(t, filepath.Join(root, "dovecot-uidlist"), "3 V1 N1\n")
	writeFile(t, filepath.Join(root, "dovecot-keywords"), "0 $label1\n1 Work\n3 later\nbogus line\n")
	writeFile(t, filepath.Join(root, ".Sent", "dovecot-keywords"), "0 Other\n")
	writeFile(t, filepath.Join(root, ".Sent", "maildirfolder"), "")

	type file struct {
		path  string
		body  string
		date  time.Time
		key   string
		flags []string
	}
	files := []file{
		{"cur/1700000000.M1P1.host,S=20:2,FRS", "Subject: a\n\nread\n", utc(2023, 11, 14, 22, 13, 20), "1700000000.M1P1.host,S=20", []string{`\Flagged`, `\Answered`, `\Seen`}},
		{"cur/1700000001.M2P1.host:2,Sabcd", "Subject: b\r\n\r\nkeywords\r\n", utc(2023, 11, 14, 22, 13, 21), "1700000001.M2P1.host", []string{`\Seen`, "$label1", "Work", "later"}},
		{"cur/1700000002.M3P1.host:2,", "Subject: c\n\nnothing\n", utc(2023, 11, 14, 22, 13, 22), "1700000002.M3P1.host", nil},
		{"cur/1700000003.M4P1.host:2,DPT", "Subject: d\n\ndraft\n", utc(2023, 11, 14, 22, 13, 23), "1700000003.M4P1.host", []string{`\Draft`, "$Forwarded", `\Deleted`}},
		{"new/1700000004.M5P1.host", "Subject: new\n\nunread", utc(2023, 11, 14, 22, 13, 24), "1700000004.M5P1.host", nil},
		{"tmp/1700000005.M6P1.host", "Subject: tmp\n\nbeing delivered\n", time.Time{}, "", nil},
		{"cur/.hidden", "x", time.Time{}, "", nil},
		{".Sent/cur/1600000000.M1P2.host:2,Sa", "Subject: sent\n\nsent\n", utc(2020, 9, 13, 12, 26, 40), "1600000000.M1P2.host", []string{`\Seen`, "Other"}},
		{".Work.Projects/new/1600000001.M1P3.host", "Subject: p\n\nproject\n", utc(2020, 9, 13, 12, 26, 41), "1600000001.M1P3.host", nil},
		{".&AMk-t&AOk-/cur/1600000002.M1P4.host:2,S", "Subject: été\n\nsoleil\n", utc(2020, 9, 13, 12, 26, 42), "1600000002.M1P4.host", []string{`\Seen`}},
	}
	wants := map[string][]want{"INBOX": nil, "Sent": nil, "Work/Projects": nil, "Été": nil, "Trash": nil}
	folderOf := map[string]string{"": "INBOX", ".Sent": "Sent", ".Work.Projects": "Work/Projects", ".&AMk-t&AOk-": "Été"}
	for _, f := range files {
		p := filepath.Join(root, f.path)
		writeFile(t, p, f.body)
		if f.key == "" {
			continue
		}
		setMtime(t, p, f.date)
		dir := filepath.Dir(filepath.Dir(f.path))
		if dir == "." {
			dir = ""
		}
		name := folderOf[dir]
		wants[name] = append(wants[name], want{key: f.key, body: f.body, date: f.date, flags: f.flags})
	}

	src, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	folders := folderSummary(t, src)
	wantFolders := []string{"INBOX", `Sent \Sent`, `Trash \Trash`, "Work (noselect)", "Work/Projects", "Été"}
	if !slices.Equal(folders, wantFolders) {
		t.Fatalf("folders\n%q\nwant\n%q", folders, wantFolders)
	}
	total := 0
	for name, w := range wants {
		checkMessages(t, name, readFolder(t, src, name), w)
		total += len(w)
	}

	// Between List and Fetch a message gets new flags and another
	// moves from new/ to cur/ (both are renames), a third is deleted.
	ctx := context.Background()
	if _, err := src.Examine(ctx, "INBOX"); err != nil {
		t.Fatal(err)
	}
	keys := listKeys(t, src)
	if !slices.Equal(keys, listKeys(t, src)) {
		t.Error("two listings differ")
	}
	mv := func(from, to string) {
		if err := os.Rename(filepath.Join(root, from), filepath.Join(root, to)); err != nil {
			t.Fatal(err)
		}
	}
	mv("cur/1700000002.M3P1.host:2,", "cur/1700000002.M3P1.host:2,F")
	mv("new/1700000004.M5P1.host", "cur/1700000004.M5P1.host:2,S")
	if err := os.Remove(filepath.Join(root, "cur/1700000000.M1P1.host,S=20:2,FRS")); err != nil {
		t.Fatal(err)
	}
	flags := map[string][]string{}
	if err := src.Fetch(ctx, keys, func(m *backup.Message) error {
		flags[m.Key] = m.Flags
		_, err := io.Copy(io.Discard, m.Body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(flags) != 4 || !slices.Equal(flags["1700000002.M3P1.host"], []string{`\Flagged`}) ||
		!slices.Equal(flags["1700000004.M5P1.host"], []string{`\Seen`}) {
		t.Errorf("after renames: %v", flags)
	}
	if _, ok := flags["1700000000.M1P1.host,S=20"]; ok {
		t.Error("a deleted file was delivered")
	}
	mv("cur/1700000002.M3P1.host:2,F", "cur/1700000002.M3P1.host:2,")
	mv("cur/1700000004.M5P1.host:2,S", "new/1700000004.M5P1.host")
	writeFile(t, filepath.Join(root, "cur/1700000000.M1P1.host,S=20:2,FRS"), files[0].body)
	setMtime(t, filepath.Join(root, "cur/1700000000.M1P1.host,S=20:2,FRS"), files[0].date)

	runEngine(t, src, "maildir:"+root, "maildir", total)
}

// --- nested Maildir written by internal/localstore ---

func TestMaildirLocalstore(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	msgs := corpus.Generate(corpus.Options{Seed: 3, Messages: 40})
	msgs = append(msgs,
		corpus.Message{Folder: "INBOX/Sub", Flags: []string{"$Forwarded", `\Seen`, "Work"}, InternalDate: utc(2024, 2, 29, 23, 59, 59), Body: []byte("Subject: sub\r\n\r\nin INBOX/Sub\r\n")},
		corpus.Message{Folder: "Été", Flags: []string{`\Draft`, `\Deleted`, `\Answered`, `\Flagged`}, InternalDate: utc(2001, 1, 1, 0, 0, 0), Body: []byte("Subject: ete\n\nsummer")},
	)
	tg, err := localstore.NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	wants := map[string][]want{}
	for _, m := range msgs {
		appendTo(t, tg, m)
		wants[m.Folder] = append(wants[m.Folder], want{body: string(m.Body), date: m.InternalDate, flags: m.Flags})
	}
	if err := tg.CreateFolder(ctx, corpus.EmptyFolder); err != nil {
		t.Fatal(err)
	}
	wants[corpus.EmptyFolder] = nil
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	// A message delivered to new/ and one still in tmp/.
	writeFile(t, filepath.Join(root, "new", "1800000000.M1P9.host"), "Subject: fresh\n\nnew mail\n")
	setMtime(t, filepath.Join(root, "new", "1800000000.M1P9.host"), utc(2027, 1, 15, 8, 0, 0))
	wants["INBOX"] = append(wants["INBOX"], want{key: "1800000000.M1P9.host", body: "Subject: fresh\n\nnew mail\n", date: utc(2027, 1, 15, 8, 0, 0)})
	writeFile(t, filepath.Join(root, "tmp", "1800000001.M1P9.host"), "Subject: partial\n")

	src, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	infos, _ := src.Folders(ctx)
	for _, fi := range infos {
		names = append(names, fi.Name)
	}
	wantNames := append(slices.Clone(corpus.Folders()), "INBOX/Sub", "Été")
	slices.SortFunc(wantNames, compareNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("folders\n%q\nwant\n%q", names, wantNames)
	}
	total := 0
	for name, ws := range wants {
		gotMsgs := readFolder(t, src, name)
		// Keys are the file names localstore chose: match by order of
		// the names (they grow with time) is not guaranteed, so match by
		// body and date.
		if len(gotMsgs) != len(ws) {
			t.Errorf("%q: %d messages, want %d", name, len(gotMsgs), len(ws))
			continue
		}
		used := make([]bool, len(gotMsgs))
	next:
		for _, w := range ws {
			for i, g := range gotMsgs {
				if used[i] || g.body != w.body || !g.date.Equal(w.date) {
					continue
				}
				used[i] = true
				if wf := formats.NormalizeFlags(w.flags); !slices.Equal(g.flags, wf) {
					t.Errorf("%q %s: flags %v, want %v", name, g.key, g.flags, wf)
				}
				if w.key != "" && g.key != w.key {
					t.Errorf("%q: key %s, want %s", name, g.key, w.key)
				}
				if strings.Contains(g.key, ":") {
					t.Errorf("%q: key %s holds the info", name, g.key)
				}
				continue next
			}
			t.Errorf("%q: message %q (date %v) not read back", name, short(w.body), w.date)
		}
		total += len(ws)
	}
	runEngine(t, src, "maildir:"+root, "maildir", total)
}

// --- errors ---

func TestErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope")
	if _, err := NewMbox(missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("NewMbox of a missing path: %v", err)
	}
	if _, err := NewMaildir(missing); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("NewMaildir of a missing path: %v", err)
	}
	text := filepath.Join(dir, "notes.txt")
	writeFile(t, text, "Dear diary\n")
	if _, err := NewMbox(text); err == nil || !strings.Contains(err.Error(), "not an mbox file") || !strings.Contains(err.Error(), text) {
		t.Errorf("NewMbox of a text file: %v", err)
	}
	if _, err := NewMaildir(text); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("NewMaildir of a file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(empty, "x.msf"), "")
	if _, err := NewMbox(empty); err == nil || !strings.Contains(err.Error(), "no mbox files") {
		t.Errorf("NewMbox of a directory without mbox files: %v", err)
	}
	if _, err := NewMaildir(empty); err == nil || !strings.Contains(err.Error(), "not a Maildir") {
		t.Errorf("NewMaildir of a directory without Maildirs: %v", err)
	}

	// A file that stopped being an mbox file after NewMbox.
	tree := filepath.Join(dir, "tree")
	writeFile(t, filepath.Join(tree, "Inbox"), "From - Sat Jan  3 12:34:56 2026\nSubject: x\n\nx\n")
	writeFile(t, filepath.Join(tree, "Work"), "From - Sat Jan  3 12:34:56 2026\nSubject: w\n\nw\n")
	src, err := NewMbox(tree)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(tree, "Work"), "garbage\n")
	if _, err := src.Examine(context.Background(), "Work"); err == nil || !strings.Contains(err.Error(), "not an mbox file") {
		t.Errorf("examine a file that is no longer an mbox file: %v", err)
	}
	writeFile(t, filepath.Join(tree, "Work"), "From - Sat Jan  3 12:34:56 2026\nSubject: w\n\nw\n")

	if os.Geteuid() == 0 {
		t.Log("running as root: skipping the unreadable-file checks (root reads files of mode 000)")
		return
	}
	// Unreadable files: named in the error, no panic.
	if err := os.Chmod(filepath.Join(tree, "Work"), 0); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(filepath.Join(tree, "Work"), 0o600)
	if _, err := NewMbox(filepath.Join(tree, "Work")); err == nil || !strings.Contains(err.Error(), filepath.Join(tree, "Work")) {
		t.Errorf("NewMbox of an unreadable file: %v", err)
	}
	src, err = NewMbox(tree)
	if err != nil {
		t.Fatalf("NewMbox of a tree with an unreadable file: %v", err)
	}
	if f := folderSummary(t, src); !slices.Equal(f, []string{"INBOX", "Work"}) {
		t.Errorf("folders with an unreadable file: %v", f)
	}
	if _, err := src.Examine(context.Background(), "Work"); err == nil || !strings.Contains(err.Error(), filepath.Join(tree, "Work")) {
		t.Errorf("examine an unreadable mbox file: %v", err)
	}
	// The engine backs up the rest and reports the folder.
	a, err := formats.Create(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(context.Background(), a, backup.Options{Source: "mbox:" + tree, Protocol: "mbox", Dial: func(context.Context) (backup.Source, error) { return src, nil }})
	if !errors.Is(err, backup.ErrPartial) || res == nil || res.Added != 1 || !slices.Equal(res.Failed, []string{"Work"}) {
		t.Errorf("backup with an unreadable file: %v %+v", err, res)
	}

	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	bad := filepath.Join(md, "cur", "1.M1P1.host:2,S")
	writeFile(t, bad, "Subject: secret\n\n")
	if err := os.Chmod(bad, 0); err != nil {
		t.Fatal(err)
	}
	msrc, err := NewMaildir(md)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := msrc.Examine(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	err = msrc.Fetch(context.Background(), listKeys(t, msrc), func(m *backup.Message) error {
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("fetch an unreadable message file: %v", err)
	}
}

// --- units ---

func TestParseFromLine(t *testing.T) {
	est := time.FixedZone("EST", -5*3600)
	for _, c := range []struct {
		line string
		want time.Time
		ok   bool
	}{
		{"From - Sat Jan  3 12:34:56 2026\n", utc(2026, 1, 3, 12, 34, 56), true},
		{"From MAILER-DAEMON Fri Mar 13 00:00:00 2026\r\n", utc(2026, 3, 13, 0, 0, 0), true},
		{"From a@b.c Mon Feb  2 08:09:10 2026 +0100", utc(2026, 2, 2, 7, 9, 10), true},
		{"From a@b.c Mon Feb  2 08:09:10 2026 -0130", utc(2026, 2, 2, 9, 39, 10), true},
		{"From a@b.c Sat Jan  3 01:05:34 EST 1996", time.Date(1996, 1, 3, 1, 5, 34, 0, est), true},
		{"From a@b.c\tSat  Jan\t3  1:05  1996", utc(1996, 1, 3, 1, 5, 0), true},
		{"From a@b.c Jan 3 01:05:34 1996", utc(1996, 1, 3, 1, 5, 34), true},
		{"From uucp Tue Mar  4 10:00:00 1997 remote from host", utc(1997, 3, 4, 10, 0, 0), true},
		{`From "john doe"@example.org Tue Mar  4 10:00:00 1997`, utc(1997, 3, 4, 10, 0, 0), true},
		{"From jan Wed Dec 31 23:59:59 2025", utc(2025, 12, 31, 23, 59, 59), true},
		{"From foo Wed, 11 Mar 2026 10:00:00 -0500", utc(2026, 3, 11, 15, 0, 0), true},
		{"From -", time.Time{}, false},
		{"From x Mon Feb 30 10:00:00 2026", time.Time{}, false},
		{"From x Mon Feb 3 25:00:00 2026", time.Time{}, false},
		{"From x Mon Feb 3 10:00:00", time.Time{}, false},
	} {
		got, ok := parseFromLine(c.line, time.UTC)
		if ok != c.ok || ok && !got.Equal(c.want) {
			t.Errorf("%q: %v %v, want %v %v", c.line, got, ok, c.want, c.ok)
		}
	}
	// A zone for dates without one.
	la, _ := time.LoadLocation("America/Los_Angeles")
	if la != nil {
		got, _ := parseFromLine("From - Sat Jan  3 12:34:56 2026", la)
		if !got.Equal(utc(2026, 1, 3, 20, 34, 56)) {
			t.Errorf("local zone: %v", got)
		}
	}
}

func TestMboxZone(t *testing.T) {
	path := filepath.Join(t.TempDir(), "Inbox")
	writeFile(t, path, "From - Sat Jan  3 12:34:56 2026\nSubject: x\n\nx\n")
	src, err := NewMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	src.Zone = time.FixedZone("CET", 3600)
	if g := readFolder(t, src, "INBOX"); len(g) != 1 || !g[0].date.Equal(utc(2026, 1, 3, 11, 34, 56)) {
		t.Errorf("Zone: %+v", g)
	}
}

func TestDecodeMUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"&AMk-t&AOk-":       "Été",
		"Sent":              "Sent",
		"R&-D":              "R&D",
		"&ZeVnLIqe-":        "日本語",
		"&2D3eAA-":          "\U0001F600",
		"&AMk":              "&AMk",         // unterminated
		"&AGEAYgBj-":        "&AGEAYgBj-",   // encoded ASCII is not valid
		"&2D0-":             "&2D0-",        // lone surrogate
		"Ünïcödé & Co":      "Ünïcödé & Co", // UTF-8 already
		"a&AMk-b&AOk-c&-d":  "aÉbéc&d",
		"&AMk-&AOk-":        "Éé",
		"&Jjo-!":            "☺!",
		"plain.with.dots-x": "plain.with.dots-x",
	} {
		if got := mutf7.DecodeOrKeep(in); got != want {
			t.Errorf("mutf7.DecodeOrKeep(%q) = %q, want %q", in, got, want)
		}
	}
}

func bufioReader(r io.Reader) *bufio.Reader { return bufio.NewReaderSize(r, 16) }

func TestUnquoter(t *testing.T) {
	in := ">From a\n>>From b\nx>From c\n>From\n>From \r\n>Fro"
	want := "From a\n>>From b\nx>From c\n>From\nFrom \r\n>Fro"
	for _, size := range []int{1, 2, 3, 7, 64} {
		u := &unquoter{br: bufioReader(strings.NewReader(in)), atStart: true}
		var out bytes.Buffer
		buf := make([]byte, size)
		for {
			n, err := u.Read(buf)
			out.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if out.String() != want {
			t.Errorf("read size %d: %q, want %q", size, out.String(), want)
		}
	}
}
