package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/testenv"
)

// TestDovecotBackup is the main end-to-end test: a generated corpus on a
// real Dovecot, backed up over verified TLS, checked message by message
// against what the server serves, read by independent tools, then changed
// on the server and backed up again.
func TestDovecotBackup(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 7, Messages: 300, Large: 2})
	srv, c := dovecot(t, msgs)
	before := imaptest.ReadServer(t, c)
	unseen := 0
	for _, ms := range before {
		for _, m := range ms {
			if !strings.Contains(strings.Join(m.Flags, " "), `\seen`) {
				unseen++
			}
		}
	}
	if unseen == 0 {
		t.Fatal("corpus has no unread message: the read-only check would prove nothing")
	}
	vault := filepath.Join(t.TempDir(), "vault")
	r := mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	t.Logf("first run: %s", strings.TrimSpace(r.stdout))

	// Nothing changed on the server, \Seen included.
	after := imaptest.ReadServer(t, c)
	for folder, ms := range before {
		for i, m := range ms {
			if strings.Join(after[folder][i].Flags, " ") != strings.Join(m.Flags, " ") {
				t.Errorf("%s uid %d: flags %v after backup, %v before", folder, m.UID, after[folder][i].Flags, m.Flags)
			}
		}
	}
	archivetest.MatchesServer(t, vault, before)
	_, st := archivetest.Latest(t, vault)
	for _, want := range []struct{ folder, use string }{{"Sent", `\Sent`}, {"Drafts", `\Drafts`}, {"Trash", `\Trash`}, {"Junk", `\Junk`}} {
		if f := st.Folders[want.folder]; f == nil || f.SpecialUse != want.use {
			t.Errorf("folder %s: special use not recorded as %s", want.folder, want.use)
		}
	}
	for _, name := range []string{"Año 2023/Facturas", "日本", "Ünïcödé & Co", "dots.in.name", "Work/Projects/2026"} {
		if f := st.Folders[name]; f == nil || f.Delimiter != "/" {
			t.Errorf("folder %q missing or without its delimiter", name)
		}
	}
	if r := mustRun(t, "verify", vault); !strings.Contains(r.stdout, "ok:") {
		t.Errorf("verify: %s", r.stdout)
	}
	checkIndependentReaders(t, vault)

	// cat gives the exact bytes the server serves.
	m := before["INBOX"][0]
	r = mustRun(t, "cat", vault, "INBOX", keyOf(st, "INBOX", m.UID))
	if r.stdout != string(m.Body) {
		t.Errorf("cat INBOX uid %d: %d bytes, want the server's %d", m.UID, len(r.stdout), len(m.Body))
	}

	// No change: no folder is even examined (CONDSTORE), nothing stored.
	r = mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	if !strings.Contains(r.stdout, "(0 examined), 0 messages added") {
		t.Errorf("no-change run: %s, want no folder examined and nothing added", r.stdout)
	}
	if snaps := snapshots(t, vault); len(snaps[1].Segments) != 0 {
		t.Errorf("no-change run wrote %d segments", len(snaps[1].Segments))
	}

	// Changes on the server: new mail, a flag change, a deletion, a rename,
	// a deleted folder, a new folder.
	imaptest.Append(t, c, "INBOX", nil, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), []byte("Subject: new\r\n\r\nnew mail\r\n"))
	if _, err := c.Select("Sent", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	mustIMAP(t, c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged, "$Important"}}, nil).Close())
	mustIMAP(t, c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	mustIMAP(t, c.Expunge().Close())
	mustIMAP(t, c.Unselect().Wait())
	goneBody := before["Sent"][1].Body
	mustIMAP(t, c.Rename("Spaces in name", "Renamed folder", nil).Wait())
	mustIMAP(t, c.Delete("Junk").Wait())
	imaptest.Create(t, c, "Brand new")
	imaptest.Create(t, c, "Parent only/Child") // Dovecot lists "Parent only" as \Noselect (or \NonExistent)
	imaptest.Append(t, c, "Brand new", []imap.Flag{imap.FlagSeen}, time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC), []byte("Subject: fresh\r\n\r\nin a new folder\r\n"))

	r = mustRun(t, append([]string{"backup", "-v"}, append(source(srv), vault)...)...)
	t.Logf("after changes: %s", strings.TrimSpace(r.stdout))
	// Dovecot has CONDSTORE: the changed folders are listed with UID
	// SEARCH and FETCH (CHANGEDSINCE), not a FLAGS line per message.
	if !strings.Contains(r.stderr, "CONDSTORE") || !strings.Contains(r.stderr, `folder=Sent`) {
		t.Errorf("the run after flag changes did not list changes with CHANGEDSINCE: %s", r.stderr)
	}
	if !strings.Contains(r.stdout, "2 messages added (2 stored") {
		t.Errorf("after changes: %s, want exactly the 2 new messages stored (the renamed folder is not fetched again)", r.stdout)
	}
	snaps := snapshots(t, vault)
	events := map[string]string{}
	for _, ch := range snaps[2].Changes {
		if ch.Event != "" {
			events[ch.Folder] = ch.Event
		}
	}
	_, st = archivetest.Latest(t, vault)
	if f := st.Folders["Parent only"]; f == nil || f.Status != formats.FolderNoSelect {
		t.Errorf("a \\Noselect parent is not kept as structure: %+v", f)
	}
	if f := st.Folders["Parent only/Child"]; f == nil || f.Status != formats.FolderOK {
		t.Errorf("child of a \\Noselect parent not backed up: %+v", f)
	}
	if events["Renamed folder"] != formats.EventRenamed || events["Junk"] != formats.EventDeleted || events["Brand new"] != formats.EventCreated {
		t.Errorf("folder events = %v, want rename, deletion and creation recorded", events)
	}
	archivetest.MatchesServer(t, vault, imaptest.ReadServer(t, c))
	// Deleted mail and the deleted folder stay readable.
	_, st = archivetest.Latest(t, vault)
	var gone *formats.MessageState
	for _, m := range st.Folders["Sent"].Archived {
		if m.Gone {
			gone = m
		}
	}
	if gone == nil {
		t.Fatal("the expunged Sent message is not recorded as gone")
	}
	if r := mustRun(t, "cat", vault, "Sent", gone.Key); r.stdout != string(goneBody) {
		t.Errorf("cat of an expunged message: %d bytes, want %d", len(r.stdout), len(goneBody))
	}
	if f := st.Folders["Junk"]; f == nil || !f.Deleted || len(f.Archived) == 0 {
		t.Errorf("deleted folder Junk not kept in the archive")
	}
	if r := mustRun(t, "ls", vault, "--all"); !strings.Contains(r.stdout, "deleted") {
		t.Errorf("ls --all does not show the deleted folder: %s", r.stdout)
	}

	// UIDVALIDITY change: the folder is re-created with the same messages.
	// Every message is fetched again but no byte is stored twice.
	folder := "Work/Projects/2026"
	var bodies []imaptest.ServerMessage
	bodies = append(bodies, before[folder]...)
	mustIMAP(t, c.Delete(folder).Wait())
	imaptest.Create(t, c, folder)
	for _, m := range bodies {
		imaptest.Append(t, c, folder, nil, m.InternalDate, m.Body)
	}
	r = mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	if !strings.Contains(r.stdout, "messages added (0 stored") {
		t.Errorf("after a UIDVALIDITY change: %s, want nothing stored again", r.stdout)
	}
	snaps = snapshots(t, vault)
	var ev string
	for _, ch := range snaps[3].Changes {
		if ch.Folder == folder {
			ev = ch.Event
		}
	}
	if ev != formats.EventUIDValidity {
		t.Errorf("event for %s = %q, want %q", folder, ev, formats.EventUIDValidity)
	}
	archivetest.MatchesServer(t, vault, imaptest.ReadServer(t, c))
	mustRun(t, "verify", vault)
	checkIndependentReaders(t, vault)
}

func mustIMAP(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func snapshots(t testing.TB, vault string) []*formats.Snapshot {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	s, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyOf(st *formats.State, folder string, uid imap.UID) string {
	for _, m := range st.Folders[folder].Present() {
		if strings.HasSuffix(m.Key, ":"+itoa(uint32(uid))) {
			return m.Key
		}
	}
	return ""
}

func itoa(u uint32) string { return strconv.FormatUint(uint64(u), 10) }

// checkIndependentReaders decompresses every folder's segments with the
// zstd CLI and reads the stream with Python's mailbox module, checking
// count, sizes and hashes against the manifests.
func checkIndependentReaders(t *testing.T, vault string) {
	t.Helper()
	zstd, python := testenv.RequireTool(t, "zstd"), testenv.RequireTool(t, "python3")
	_, st := archivetest.Latest(t, vault)
	type rec struct {
		seg string
		off int64
		m   *formats.MessageState
	}
	byDir := map[string][]rec{}
	seen := map[string]bool{}
	for _, f := range st.Folders {
		for _, m := range f.Archived {
			id := m.Seg + "@" + itoa(uint32(m.Off))
			if seen[id] {
				continue
			}
			seen[id] = true
			dir := filepath.Dir(m.Seg)
			byDir[dir] = append(byDir[dir], rec{m.Seg, m.Off, m})
		}
	}
	script, _ := filepath.Abs(filepath.Join("..", "..", "testdata", "mboxrd_check.py"))
	tmp := t.TempDir()
	checked := 0
	// One python process checks every folder: starting one costs seconds
	// on a loaded machine (more through a pyenv shim).
	pyArgs := []string{script}
	n := 0
	for dir, recs := range byDir {
		n++
		sort.Slice(recs, func(i, j int) bool {
			if recs[i].seg != recs[j].seg {
				return recs[i].seg < recs[j].seg
			}
			return recs[i].off < recs[j].off
		})
		segs, _ := filepath.Glob(filepath.Join(vault, dir, "*.mbox.zst"))
		sort.Strings(segs)
		stream, expected := filepath.Join(tmp, fmt.Sprintf("stream%d.mbox", n)), filepath.Join(tmp, fmt.Sprintf("expected%d.json", n))
		out, err := os.Create(stream)
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(zstd, append([]string{"-dcq"}, segs...)...)
		cmd.Stdout = out
		if err := cmd.Run(); err != nil {
			t.Fatalf("zstd -dc %s: %v", dir, err)
		}
		out.Close()
		var exp []map[string]any
		for _, r := range recs {
			exp = append(exp, map[string]any{"sha256": r.m.SHA256, "size": r.m.Size})
		}
		data, _ := json.Marshal(exp)
		if err := os.WriteFile(expected, data, 0o600); err != nil {
			t.Fatal(err)
		}
		pyArgs = append(pyArgs, stream, expected)
		checked += len(recs)
	}
	if o, err := exec.Command(python, pyArgs...).CombinedOutput(); err != nil {
		t.Errorf("python mailbox oracle: %v\n%s", err, o)
	}
	if checked == 0 {
		t.Fatal("independent readers checked nothing")
	}
	t.Logf("zstd CLI + python mailbox: %d messages in %d folders match the manifests", checked, len(byDir))
}

// TestDovecotBigFolderInParts: a folder with thousands of new messages is
// fetched in parts over several connections to a real Dovecot; the archive
// holds each message once with the server's bytes, flags and dates.
func TestDovecotBigFolderInParts(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 51, Messages: 4600})
	for i := range msgs {
		msgs[i].Folder = "INBOX"
	}
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	r := mustRun(t, append([]string{"backup", "-v", "--connections", "4"}, append(source(srv), vault)...)...)
	if !strings.Contains(r.stderr, "fetching a big folder in parts") {
		t.Errorf("INBOX was not fetched in parts: %s", r.stderr)
	}
	archivetest.MatchesServer(t, vault, want)
	if n := archivetest.Present(t, vault)["INBOX"]; n != len(want["INBOX"]) {
		t.Errorf("archive holds %d INBOX messages, server %d", n, len(want["INBOX"]))
	}
	mustRun(t, "verify", vault)
	r = mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	if !strings.Contains(r.stdout, " 0 messages added") {
		t.Errorf("second run: %s", r.stdout)
	}
}
