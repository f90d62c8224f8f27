package main

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// mailbox is an in-process IMAP account that changes between backups,
// with what it held at each backup (the oracle).
type mailbox struct {
	t     *testing.T
	srv   *imaptest.MemServer
	c     *imapclient.Client
	vault string
	env   map[string]string
	url   string
	n     int
	held  map[string]bool   // bodies on the server now
	dumps [][]string        // sorted bodies at each backup
	ids   []string          // snapshot id of each backup
	bySub map[string]string // body by subject
}

func newMailbox(t *testing.T, format ...string) *mailbox {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	m := &mailbox{t: t, srv: srv, c: srv.Dial(t, "alice", "pw"), vault: filepath.Join(t.TempDir(), "vault"),
		env: map[string]string{"MAILVAULT_PASSWORD": "pw"}, url: "imap://alice@" + srv.Addr, held: map[string]bool{}, bySub: map[string]string{}}
	m.add(2)
	m.backup(format...)
	return m
}

// add appends k messages to INBOX, each with a marker of its own.
func (m *mailbox) add(k int) {
	for range k {
		m.n++
		body := fmt.Sprintf("Subject: msg %d\r\nMessage-ID: <%d@test>\r\n\r\nbody of MARK%04dK\r\n%s\r\n", m.n, m.n, m.n, strings.Repeat("filler line\r\n", 50+m.n%7))
		imaptest.Append(m.t, m.c, "INBOX", nil, time.Date(2026, 1, 1, 0, m.n, 0, 0, time.UTC), []byte(body))
		m.held[body] = true
		m.bySub[fmt.Sprintf("msg %d", m.n)] = body
	}
}

// del expunges the message with subject "msg N".
func (m *mailbox) del(n int) {
	t := m.t
	if _, err := m.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := m.c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: fmt.Sprintf("msg %d", n)}}}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if len(found.AllSeqNums()) != 1 {
		t.Fatalf("msg %d: found %v", n, found.AllSeqNums())
	}
	if err := m.c.Store(imap.SeqSetNum(found.AllSeqNums()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	delete(m.held, m.bySub[fmt.Sprintf("msg %d", n)])
}

func (m *mailbox) backup(extra ...string) {
	m.t.Helper()
	code, out, errs := runCLI(m.t, m.env, append([]string{"backup", m.url, m.vault, "--insecure-plaintext", "--quiet"}, extra...)...)
	if code != 0 {
		m.t.Fatalf("backup: exit %d: %s %s", code, out, errs)
	}
	var dump []string
	for b := range m.held {
		dump = append(dump, b)
	}
	sort.Strings(dump)
	m.dumps = append(m.dumps, dump)
	a, err := formats.Open(m.vault)
	if err != nil {
		m.t.Fatal(err)
	}
	files, err := a.ListSnapshots()
	if err != nil {
		m.t.Fatal(err)
	}
	m.ids = append(m.ids, files[len(files)-1].ID)
}

// restored restores snapshot id to eml files and returns their contents,
// sorted.
func (m *mailbox) restored(id string) []string {
	t := m.t
	t.Helper()
	dir := filepath.Join(t.TempDir(), "eml")
	if code, out, errs := runCLI(t, nil, "restore", m.vault, "eml:"+dir, "--snapshot", id, "--quiet"); code != 0 {
		t.Fatalf("restore %s: exit %d: %s %s", id, code, out, errs)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := os.ReadFile(p)
			got = append(got, string(data))
		}
		return err
	})
	sort.Strings(got)
	return got
}

// checkRestores checks that every snapshot of the vault restores to what
// the server held when it was taken, and that verify is clean.
func (m *mailbox) checkRestores() []string {
	t := m.t
	t.Helper()
	a, err := formats.Open(m.vault)
	if err != nil {
		t.Fatal(err)
	}
	files, err := a.ListSnapshots()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, f.ID)
		i := indexOf(m.ids, f.ID)
		if i < 0 {
			t.Fatalf("snapshot %s is not one of the backups", f.ID)
		}
		if got := m.restored(f.ID); strings.Join(got, "\x00") != strings.Join(m.dumps[i], "\x00") {
			t.Fatalf("snapshot %s (backup %d) restores %d messages, the server held %d", f.ID, i+1, len(got), len(m.dumps[i]))
		}
	}
	if code, out, errs := runCLI(t, nil, "verify", m.vault); code != 0 || strings.Contains(out, "left by interrupted") {
		t.Fatalf("verify: exit %d: %s %s", code, out, errs)
	}
	return ids
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// TestForgetCLI: forget --dry-run prints every snapshot with its fate and
// rule and changes nothing; forget removes the others; every kept
// snapshot restores what the server held then; a held lock refuses it.
func TestForgetCLI(t *testing.T) {
	m := newMailbox(t)
	for i := range 4 {
		m.add(1)
		m.del(i + 1)
		m.backup()
	}
	before := treeDigest(t, m.vault)
	code, out, errs := runCLI(t, nil, "forget", m.vault, "--keep-last", "2", "--dry-run")
	if code != 0 {
		t.Fatalf("dry run: exit %d: %s %s", code, out, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || strings.Count(out, "forget  ") != 3 || strings.Count(out, "keep    ") != 2 ||
		!strings.Contains(lines[4], "last, newest snapshot") || !strings.Contains(lines[0], "no rule keeps it") ||
		lines[5] != "would forget 3 of 5 snapshots (dry run: nothing changed)" {
		t.Fatalf("dry run printed:\n%s", out)
	}
	if treeDigest(t, m.vault) != before {
		t.Fatal("dry run changed the archive")
	}

	a, err := formats.Open(m.vault)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock("test"); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, nil, "forget", m.vault, "--keep-last", "2"); code != exitLocked {
		t.Fatalf("forget while locked: exit %d, want %d: %s", code, exitLocked, errs)
	}
	a.Unlock()

	if code, out, errs := runCLI(t, nil, "forget", m.vault, "--keep-last", "2"); code != 0 || !strings.Contains(out, "forgot 3 of 5 snapshots") {
		t.Fatalf("forget: exit %d: %s %s", code, out, errs)
	}
	if ids := m.checkRestores(); strings.Join(ids, " ") != strings.Join(m.ids[3:], " ") {
		t.Fatalf("kept %v, want %v", ids, m.ids[3:])
	}
	// A backup after forget goes on from the kept snapshots.
	m.add(1)
	m.backup()
	m.checkRestores()

	for _, bad := range [][]string{{"forget", m.vault}, {"forget", m.vault, "--keep-daily", "x"}, {"forget", m.vault, "--keep-within", "3w"}} {
		if code, _, _ := runCLI(t, nil, bad...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", bad, code, exitUsage)
		}
	}
}
