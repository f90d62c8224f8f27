package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/restore"
)

var edgeBodies = map[string]string{
	"from-lines":  "Subject: from lines\r\nMessage-ID: <a@x>\r\n\r\nFrom here\r\n>From there\r\n>>From everywhere\r\n",
	"bare-lf":     "Subject: bare\nFrom: =?UTF-8?B?SsO8cmdlbg==?= <j@example.com>\n\nline\nFrom x\n",
	"no-final-nl": "Subject: no newline\r\n\r\nthe end",
	"nul-8bit":    "Subject: bin\r\n\r\n\x00\x01\xff caf\xe9 \xe2\x82\xac\r\n",
	"first-from":  "From: a@b\r\nSubject: starts with From:\r\n\r\nbody\r\n",
}

func TestBackupInProcess(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{
		Users:      map[string]string{"alice": "pw"},
		SpecialUse: map[string]string{"Enviados": `\Sent`},
	})
	c := srv.Dial(t, "alice", "pw")
	for _, f := range []string{"Enviados", "Año 2023", "Año 2023/Facturas", "日本", "..", "CON"} {
		imaptest.Create(t, c, f)
	}
	date := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
	i := 0
	for name, body := range edgeBodies {
		for _, folder := range []string{"INBOX", "Año 2023/Facturas", "日本", ".."} {
			flags := []imap.Flag{imap.FlagSeen}
			if i%2 == 0 {
				flags = []imap.Flag{imap.FlagFlagged, "$Label1"}
			}
			imaptest.Append(t, c, folder, flags, date.Add(time.Duration(i)*time.Hour), []byte(body+"\r\n"+name+folder))
			i++
		}
	}
	imaptest.Append(t, c, "Enviados", nil, date, []byte("Subject: sent\r\n\r\nsent mail\r\n"))
	before := imaptest.ReadServer(t, c)

	vault := filepath.Join(t.TempDir(), "vault")
	env := map[string]string{"MAILVAULT_PASSWORD": "pw"}
	url := "imap://alice@" + srv.Addr
	// Flags after the positional arguments work too.
	code, out, errs := runCLI(t, env, "backup", url, vault, "--insecure-plaintext")
	if code != 0 {
		t.Fatalf("backup exit %d: %s %s", code, out, errs)
	}
	if !strings.Contains(out, "complete") {
		t.Errorf("backup output = %q, want a complete snapshot summary", out)
	}
	// Read-only: every flag unchanged, no SELECT/STORE/EXPUNGE, only BODY.PEEK.
	after := imaptest.ReadServer(t, c)
	assertSameServer(t, before, after)
	for _, cmd := range srv.Commands() {
		u := strings.ToUpper(cmd)
		if strings.HasPrefix(u, "SELECT") || strings.Contains(u, "STORE") || strings.Contains(u, "EXPUNGE") ||
			(strings.Contains(u, "BODY[") && !strings.Contains(u, "BODY.PEEK[")) {
			t.Errorf("backup sent a modifying command: %q", cmd)
		}
	}
	archivetest.MatchesServer(t, vault, before)

	// A second run with nothing changed fetches no body and writes no segment.
	nCmds := len(srv.Commands())
	code, out, errs = runCLI(t, env, "backup", "--insecure-plaintext", url, vault)
	if code != 0 {
		t.Fatalf("second backup exit %d: %s %s", code, out, errs)
	}
	lists := 0
	for _, cmd := range srv.Commands()[nCmds:] {
		if strings.Contains(strings.ToUpper(cmd), "BODY") {
			t.Errorf("no-change run fetched bodies: %q", cmd)
		}
		if strings.HasPrefix(strings.ToUpper(cmd), "LIST ") {
			lists++
		}
	}
	// The folders are listed once: a LIST (with their status) to check the
	// source before the engine lists them again costs Dovecot a read of
	// every big folder (2 s at 900,000 messages).
	if lists != 1 {
		t.Errorf("no-change run into an existing archive sent %d LIST commands, want 1", lists)
	}
	a, _ := formats.Open(vault)
	snaps, _ := a.Snapshots()
	if len(snaps) != 2 || len(snaps[1].Segments) != 0 || len(snaps[1].Changes) != 0 {
		t.Fatalf("second snapshot: %d snapshots, segments %v, changes %v; want no segment and no change", len(snaps), snaps[1].Segments, snaps[1].Changes)
	}

	// New mail, a flag change and a deletion.
	imaptest.Append(t, c, "INBOX", nil, date, []byte("Subject: new\r\n\r\nnew mail\r\n"))
	if _, err := c.Select("日本", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagAnswered}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	deleted := before["日本"][1]
	code, out, errs = runCLI(t, env, "backup", url, vault, "--insecure-plaintext")
	if code != 0 {
		t.Fatalf("third backup exit %d: %s %s", code, out, errs)
	}
	if !strings.Contains(out, "1 messages added") || !strings.Contains(out, "1 gone") || !strings.Contains(out, "1 flag changes") {
		t.Errorf("third backup summary = %q, want 1 added, 1 gone, 1 flag change", out)
	}
	// The memory server has no CONDSTORE: flags were listed whole, and
	// nothing asked for CHANGEDSINCE.
	for _, cmd := range srv.Commands() {
		if strings.Contains(strings.ToUpper(cmd), "CHANGEDSINCE") {
			t.Errorf("CHANGEDSINCE sent to a server without CONDSTORE: %q", cmd)
		}
	}
	// The deleted message is still in the archive and readable.
	code, out, _ = runCLI(t, env, "ls", vault, "日本", "--all")
	if code != 0 || !strings.Contains(out, "(gone)") {
		t.Errorf("ls --all = %d %q, want a gone message", code, out)
	}
	key := fmt.Sprintf("%d:%d", uidValidity(t, vault, "日本"), deleted.UID)
	code, out, errs = runCLI(t, env, "cat", vault, "日本", key)
	if code != 0 || out != string(deleted.Body) {
		t.Errorf("cat of a deleted message: exit %d, %d bytes (%s), want the %d original bytes", code, len(out), errs, len(deleted.Body))
	}
	code, out, errs = runCLI(t, env, "verify", vault)
	if code != 0 {
		t.Errorf("verify exit %d: %s %s", code, out, errs)
	}
	code, out, _ = runCLI(t, env, "snapshots", vault)
	if code != 0 || strings.Count(out, "complete") != 3 {
		t.Errorf("snapshots = %q, want three complete runs", out)
	}
	// Hostile names stayed inside the archive.
	entries, _ := os.ReadDir(filepath.Join(vault, "folders"))
	for _, e := range entries {
		if !formats.ValidDir(e.Name()) {
			t.Errorf("folder directory %q is not safe", e.Name())
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(vault), "folders")); err == nil {
		t.Errorf("a folder escaped the archive directory")
	}
}

func uidValidity(t *testing.T, vault, folder string) uint32 {
	t.Helper()
	_, _, st, err := openState(vault, "")
	if err != nil {
		t.Fatal(err)
	}
	return st.Folders[folder].UIDValidity
}

func assertSameServer(t *testing.T, before, after map[string][]imaptest.ServerMessage) {
	t.Helper()
	for folder, msgs := range before {
		if len(after[folder]) != len(msgs) {
			t.Errorf("folder %q: %d messages after backup, %d before", folder, len(after[folder]), len(msgs))
			continue
		}
		for i, m := range msgs {
			if strings.Join(m.Flags, " ") != strings.Join(after[folder][i].Flags, " ") {
				t.Errorf("folder %q uid %d: flags %v after backup, %v before", folder, m.UID, after[folder][i].Flags, m.Flags)
			}
		}
	}
}

func TestCatVerifyRepair(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{})
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	_, st := archivetest.Latest(t, vault)
	m := st.Folders["Work"].Present()[1]
	// cat by a hash prefix gives the same bytes as by key.
	_, byKey, _ := runCLI(t, pwEnv, "cat", vault, "Work", m.Key)
	code, byHash, errs := runCLI(t, pwEnv, "cat", vault, "Work", m.SHA256[:10])
	if code != 0 || byHash != byKey || int64(len(byKey)) != m.Size {
		t.Errorf("cat by hash prefix: exit %d (%s), %d bytes; by key %d bytes; want %d", code, errs, len(byHash), len(byKey), m.Size)
	}
	if code, _, errs := runCLI(t, pwEnv, "cat", vault, "Work", "9:9"); code != exitUsage || !strings.Contains(errs, "no message") {
		t.Errorf("cat of an unknown key: exit %d %q", code, errs)
	}
	// Leftovers of a killed run are reported, then removed by --repair.
	seg := filepath.Join(vault, "folders", "INBOX", "00000002-deadbeef.mbox.zst.tmp")
	os.WriteFile(seg, []byte("partial"), 0o600)
	code, out, _ := runCLI(t, pwEnv, "verify", vault)
	if code != 0 || !strings.Contains(out, "1 files left by interrupted runs") {
		t.Errorf("verify with a leftover: exit %d %q", code, out)
	}
	code, out, _ = runCLI(t, pwEnv, "verify", vault, "--repair")
	if _, err := os.Stat(seg); code != 0 || err == nil || !strings.Contains(out, "removed 1 files") {
		t.Errorf("verify --repair: exit %d %q, leftover still there: %v", code, out, err == nil)
	}
	// A damaged segment is found, with exit code 6.
	g := st.Segments[m.Seg]
	p := filepath.Join(vault, g.Path)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 1
	os.WriteFile(p, data, 0o600)
	code, out, errs = runCLI(t, pwEnv, "verify", vault)
	if code != exitArchive || !strings.Contains(out, "problem:") || !strings.Contains(errs, "checksum mismatch") {
		t.Errorf("verify of a damaged segment: exit %d stdout %q stderr %q", code, out, errs)
	}
}

// openState opens an archive read-only and replays it to the snapshot
// named by sel: "" or "latest" for the last one, else an id or a unique
// prefix of one.
func openState(root, sel string) (*formats.Archive, []*formats.Snapshot, *formats.State, error) {
	a, err := formats.Open(root)
	if err != nil {
		return nil, nil, nil, err
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, nil, nil, err
	}
	if len(snaps) == 0 {
		return nil, nil, nil, fmt.Errorf("archive %s has no snapshots yet", root)
	}
	id, err := restore.ResolveSnapshot(snaps, sel, time.Time{})
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := formats.Replay(snaps, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return a, snaps, st, nil
}
