package e2e

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// thunderbirdMbox writes messages as Thunderbird does (mboxo: a "From "
// body line becomes ">From "), and returns the messages' exact bytes.
func thunderbirdMbox(t *testing.T, path string, msgs []corpus.Message) []string {
	t.Helper()
	var b bytes.Buffer
	var sums []string
	for _, m := range msgs {
		b.WriteString("From - " + m.InternalDate.UTC().Format("Mon Jan _2 15:04:05 2006") + "\r\n")
		for _, line := range bytes.SplitAfter(m.Body, []byte("\n")) {
			if bytes.HasPrefix(line, []byte("From ")) {
				b.WriteString(">")
			}
			b.Write(line)
		}
		b.WriteString("\r\n")
		s := sha256.Sum256(m.Body)
		sums = append(sums, hex.EncodeToString(s[:]))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	sort.Strings(sums)
	return sums
}

// TestLocalMboxToDovecot: an old PC's Thunderbird folders → archive →
// a new IMAP account: the same bodies, in the same folders.
func TestLocalMboxToDovecot(t *testing.T) {
	t.Parallel()
	var inbox, sent, projects []corpus.Message
	for _, m := range corpus.Generate(corpus.Options{Seed: 51, Messages: 90}) {
		// mboxo cannot tell a ">From " line of the message from an escaped
		// "From " line: such messages do not survive a Thunderbird mbox.
		if bytes.Contains(m.Body, []byte("\n>From ")) {
			continue
		}
		if bytes.Contains(m.Body, []byte{0}) || bytes.Contains(bytes.ReplaceAll(m.Body, []byte("\r\n"), nil), []byte("\n")) || !bytes.HasSuffix(m.Body, []byte("\r\n")) {
			continue // Dovecot's IMAP rewrites NUL and bare LF; keep the comparison about mailvault
		}
		switch (len(inbox) + len(sent) + len(projects)) % 3 {
		case 0:
			inbox = append(inbox, m)
		case 1:
			sent = append(sent, m)
		default:
			projects = append(projects, m)
		}
		if len(inbox)+len(sent)+len(projects) >= 60 {
			break
		}
	}
	profile := filepath.Join(t.TempDir(), "Local Folders")
	want := map[string][]string{
		"INBOX":         thunderbirdMbox(t, filepath.Join(profile, "Inbox"), inbox),
		"Sent":          thunderbirdMbox(t, filepath.Join(profile, "Sent"), sent),
		"Work/Projects": thunderbirdMbox(t, filepath.Join(profile, "Work.sbd", "Projects"), projects),
	}
	os.WriteFile(filepath.Join(profile, "Inbox.msf"), []byte("// index, not mail"), 0o600)
	vault := filepath.Join(t.TempDir(), "vault")
	r := mustRun(t, "backup", "mbox:"+profile, vault)
	t.Logf("local backup: %s", strings.TrimSpace(r.stdout))
	r = mustRun(t, "backup", "mbox:"+profile, vault)
	if !strings.Contains(r.stdout, "0 messages added") {
		t.Errorf("second run on an unchanged mbox tree: %s", r.stdout)
	}
	mustRun(t, "verify", vault)

	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": "pw"}})
	mustRun(t, "restore", vault, "imaps://bob@"+srv.IMAPSAddr, "--ca-file", srv.CAFile)
	got := imaptest.ReadServer(t, login(t, srv, "bob"))
	for folder, sums := range want {
		var have []string
		for _, m := range got[folder] {
			have = append(have, m.SHA256)
		}
		sort.Strings(have)
		if strings.Join(have, ",") != strings.Join(sums, ",") {
			t.Errorf("folder %s: %d messages on the new server, want the %d of the mbox, byte for byte", folder, len(have), len(sums))
		}
	}
}

// TestLocalMaildirSource backs up a Maildir written by a restore and
// restores it again: what goes around comes around.
func TestLocalMaildirSource(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 53, Messages: 80})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	md := filepath.Join(t.TempDir(), "Maildir")
	mustRun(t, "restore", vault, "maildir:"+md)
	vault2 := filepath.Join(t.TempDir(), "vault2")
	mustRun(t, "backup", "maildir:"+md, vault2)
	dir := filepath.Join(srv.MailRoot, "bob") // Dovecot with the UTF-8 option
	mustRun(t, "restore", vault2, "maildir:"+dir+"?utf8")
	chownMail(t, dir)
	sameMail(t, want, imaptest.ReadServer(t, login(t, srv, "bob")), nil)
}
