package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/migadu/go-pop3/pop3client"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// inboxOnly keeps the corpus messages of INBOX.
func inboxOnly(msgs []corpus.Message) []corpus.Message {
	var out []corpus.Message
	for _, m := range msgs {
		if m.Folder == "INBOX" {
			out = append(out, m)
		}
	}
	return out
}

// archivedINBOX returns the SHA-256s of the messages present in the
// archive's INBOX, sorted.
func archivedINBOX(t *testing.T, vault string) []string {
	t.Helper()
	_, st := archivetest.Latest(t, vault)
	var out []string
	if f := st.Folders["INBOX"]; f != nil {
		for _, m := range f.Present() {
			out = append(out, m.SHA256)
		}
	}
	sort.Strings(out)
	return out
}

// popShas reads a mailbox over POP3 with TOP (which marks nothing read)
// and returns the SHA-256s of the messages as the POP3 server serves them:
// Dovecot's POP3 sends NUL bytes as they are (its IMAP sends 0x80) and
// ends a message that lacks a final newline with CRLF.
func popShas(t *testing.T, addr, user string) []string {
	t.Helper()
	ctx := context.Background()
	p, err := pop3client.Dial(ctx, addr, pop3client.Options{MaxLineLength: 1 << 24})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Quit(ctx)
	if err := p.User(ctx, user, "pw"); err != nil {
		t.Fatal(err)
	}
	list, err := p.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, in := range list {
		r, err := p.Top(ctx, in.Num, 1<<31-1)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, r)
		r.Close()
		out = append(out, hex.EncodeToString(h.Sum(nil)))
	}
	sort.Strings(out)
	return out
}

// TestPOP3Backup backs up a Dovecot inbox over POP3: the same bytes as
// IMAP serves, no message marked as read, incremental by UIDL across
// deletions by another client, and restorable to an IMAP account.
func TestPOP3Backup(t *testing.T) {
	t.Parallel()
	msgs := inboxOnly(corpus.Generate(corpus.Options{Seed: 41, Messages: 200, Large: 1}))
	srv, c := dovecot(t, msgs)
	before := imaptest.ReadServer(t, c)["INBOX"]
	served := popShas(t, srv.POP3Addr, "alice")
	vault := filepath.Join(t.TempDir(), "vault")
	src := []string{"backup", "pop3s://alice@" + srv.POP3SAddr, vault, "--ca-file", srv.CAFile}
	r := mustRun(t, src...)
	t.Logf("pop3 backup: %s", strings.TrimSpace(r.stdout))
	if got, want := archivedINBOX(t, vault), served; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("archive holds %d messages, server %d (or bytes differ)", len(got), len(want))
	}
	after := imaptest.ReadServer(t, c)["INBOX"]
	for i := range before {
		if strings.Join(before[i].Flags, " ") != strings.Join(after[i].Flags, " ") {
			t.Errorf("uid %d: flags %v became %v: the POP3 backup marked mail as read", before[i].UID, before[i].Flags, after[i].Flags)
		}
	}
	mustRun(t, "verify", vault)
	snaps := snapshots(t, vault)
	if snaps[0].Protocol != "pop3" || !strings.HasPrefix(snaps[0].Source, "pop3s://alice@") {
		t.Errorf("snapshot records protocol %q source %q", snaps[0].Protocol, snaps[0].Source)
	}

	// Nothing new: nothing downloaded.
	r = mustRun(t, src...)
	if !strings.Contains(r.stdout, "0 messages added") {
		t.Errorf("second run: %s", r.stdout)
	}
	// Another client deletes the first two messages (message numbers
	// shift) and new mail arrives: one new message, two gone, no duplicate.
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	mustIMAP(t, c.Store(imap.SeqSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
	mustIMAP(t, c.Expunge().Close())
	mustIMAP(t, c.Unselect().Wait())
	imaptest.Append(t, c, "INBOX", nil, time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), []byte("Subject: new over pop3\r\nMessage-ID: <new@pop3>\r\n\r\nhello\r\n"))
	// EXPUNGE also removed the corpus messages flagged \Deleted.
	expunged := len(before) + 1 - len(imaptest.ReadServer(t, c)["INBOX"])
	r = mustRun(t, src...)
	if !strings.Contains(r.stdout, "1 messages added") || !strings.Contains(r.stdout, fmt.Sprintf(" %d gone", expunged)) {
		t.Errorf("after deletions and new mail: %s, want 1 added and %d gone", r.stdout, expunged)
	}
	now := popShas(t, srv.POP3Addr, "alice")
	if got, want := archivedINBOX(t, vault), now; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("archive holds %d present messages, server %d", len(got), len(want))
	}
	// The two deleted messages stay in the archive.
	_, st := archivetest.Latest(t, vault)
	gone := 0
	for _, m := range st.Folders["INBOX"].Archived {
		if m.Gone {
			gone++
		}
	}
	if gone != expunged {
		t.Errorf("%d messages kept as gone, want %d", gone, expunged)
	}

	// Restore to an IMAP account: byte-identical.
	mustRun(t, "restore", vault, "imaps://bob@"+srv.IMAPSAddr, "--ca-file", srv.CAFile)
	got := popShas(t, srv.POP3Addr, "bob")
	if strings.Join(got, ",") != strings.Join(now, ",") {
		t.Errorf("restored %d messages to bob, want %d identical", len(got), len(now))
	}
}

// TestPOP3DeleteAfter: --delete-after deletes only what the committed
// archive holds; a run killed between DELE and QUIT deletes nothing.
func TestPOP3DeleteAfter(t *testing.T) {
	t.Parallel()
	msgs := inboxOnly(corpus.Generate(corpus.Options{Seed: 43, Messages: 60}))
	srv, c := dovecot(t, msgs)
	want := popShas(t, srv.POP3Addr, "alice")
	vault := filepath.Join(t.TempDir(), "vault")
	src := []string{"backup", "pop3s://alice@" + srv.POP3SAddr, vault, "--ca-file", srv.CAFile}

	// Keep for 30 days: nothing is old enough, nothing is deleted.
	r := mustRun(t, append(src, "--delete-after", "30")...)
	if !strings.Contains(r.stdout, "deleted 0 messages") || len(imaptest.ReadServer(t, c)["INBOX"]) != len(want) {
		t.Fatalf("--delete-after 30 on fresh mail: %s", r.stdout)
	}
	// Killed between DELE and QUIT: the server keeps everything.
	k := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=deleted-before-quit"}, append(src, "--delete-after", "0")...)
	if !k.signaled {
		t.Fatalf("failpoint did not fire: exit %d %s %s", k.code, k.stdout, k.stderr)
	}
	time.Sleep(200 * time.Millisecond) // let Dovecot notice the dead session
	if n := len(imaptest.ReadServer(t, c)["INBOX"]); n != len(want) {
		t.Fatalf("after a kill between DELE and QUIT the server holds %d messages, want %d", n, len(want))
	}
	if got := archivedINBOX(t, vault); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("archive holds %d messages, want each of %d once", len(got), len(want))
	}
	// --delete-after 0 for real.
	r = mustRun(t, append(src, "--delete-after", "0")...)
	if wantLine := fmt.Sprintf("deleted %d messages from the server\n", len(want)); !strings.Contains(r.stdout, wantLine) {
		t.Errorf("delete run printed %q, want the line %q", r.stdout, wantLine)
	}
	if n := len(imaptest.ReadServer(t, c)["INBOX"]); n != 0 {
		t.Errorf("server still holds %d messages after --delete-after 0", n)
	}
	// Everything is still in the archive, and the next run records them gone.
	mustRun(t, src...)
	_, st := archivetest.Latest(t, vault)
	var all []string
	for _, m := range st.Folders["INBOX"].Archived {
		if !m.Gone {
			t.Errorf("message %s not recorded as gone", m.Key)
		}
		all = append(all, m.SHA256)
	}
	sort.Strings(all)
	if strings.Join(all, ",") != strings.Join(want, ",") {
		t.Errorf("archive holds %d messages after deletion, want %d", len(all), len(want))
	}
	mustRun(t, "verify", vault)
}

// TestPOP3Errors: a locked mailbox, a wrong password, and auto-detection
// preferring what answers.
func TestPOP3Errors(t *testing.T) {
	t.Parallel()
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}, POP3Lock: true})
	vault := filepath.Join(t.TempDir(), "vault")
	// Another client holds the mailbox.
	ctx := context.Background()
	other, err := pop3client.Dial(ctx, srv.POP3Addr, pop3client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.User(ctx, "alice", "pw"); err != nil {
		t.Fatal(err)
	}
	r := mv(t, bin, nil, "backup", "pop3s://alice@"+srv.POP3SAddr, vault, "--ca-file", srv.CAFile)
	if r.code != 9 || !strings.Contains(r.stderr, "mailbox in use by another client, retry later") {
		t.Errorf("locked mailbox: exit %d %q, want 9", r.code, r.stderr)
	}
	other.Quit(ctx)
	r = mv(t, bin, []string{"MAILVAULT_PASSWORD=wrong"}, "backup", "pop3s://alice@"+srv.POP3SAddr, vault, "--ca-file", srv.CAFile)
	if r.code != 4 || !strings.Contains(r.stderr, "authentication failed") {
		t.Errorf("wrong password: exit %d %q, want 4", r.code, r.stderr)
	}
	// --protocol pop3 on a bare user@host:port.
	r = mustRun(t, "backup", "alice@"+srv.POP3Addr, vault, "--protocol", "pop3", "--insecure-plaintext")
	if snaps := snapshots(t, vault); snaps[len(snaps)-1].Protocol != "pop3" {
		t.Errorf("--protocol pop3 recorded %q", snaps[len(snaps)-1].Protocol)
	}
}
