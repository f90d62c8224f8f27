package e2e

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/compattest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestServersIMAPBackup backs up each IMAP server we can run besides
// Dovecot (Cyrus in both namespaces, Courier, GNU Mailutils), seeded with
// nested and non-ASCII folders, a folder name with a space, flags,
// keywords and dates: the backup over verified STARTTLS exits 0, the
// archive verifies and holds exactly what the server serves (bytes, flags,
// INTERNALDATEs), the source is unchanged (no flag set, nothing
// expunged), and a second backup adds nothing.
func TestServersIMAPBackup(t *testing.T) {
	for _, kind := range compattest.IMAPKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := compattest.Start(t, kind)
			rep := s.Append(t, "alice", compattest.SeedMessages("alice", 1, 24))
			c := s.IMAP(t, "alice")
			before := imaptest.ReadServer(t, c)
			vault := filepath.Join(t.TempDir(), "vault")
			src := []string{"backup", "imap://alice@" + s.IMAPAddr, vault, "--ca-file", s.CAFile}
			r := mv(t, bin, nil, src...)
			if r.code != 0 {
				t.Fatalf("backup: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			t.Logf("%s: %s%s", kind, r.stdout, r.stderr)
			mustRun(t, "verify", vault)
			after := imaptest.ReadServer(t, c)
			sameServer(t, before, after)
			archivetest.MatchesServer(t, vault, after)
			total := 0
			for _, n := range rep.Appended {
				total += n
			}
			if !strings.Contains(r.stdout, " "+itoa(uint32(total))+" messages added") {
				t.Errorf("first backup: %s, want %d messages added", r.stdout, total)
			}
			r = mustRun(t, src...)
			if !strings.Contains(r.stdout, " 0 messages added") || !strings.Contains(r.stdout, " 0 flag changes") {
				t.Errorf("second backup: %s, want nothing added or changed", r.stdout)
			}
			sameServer(t, before, imaptest.ReadServer(t, c))
		})
	}
}

// sameServer fails the test unless a server holds the same folders and
// messages (UIDs, flags, bytes, dates) as before.
func sameServer(t *testing.T, before, after map[string][]imaptest.ServerMessage) {
	t.Helper()
	if strings.Join(compattest.SortedKeys(before), "|") != strings.Join(compattest.SortedKeys(after), "|") {
		t.Errorf("folders changed: %v became %v", compattest.SortedKeys(before), compattest.SortedKeys(after))
	}
	for name, msgs := range before {
		now := after[name]
		if len(now) != len(msgs) {
			t.Errorf("folder %q: %d messages became %d", name, len(msgs), len(now))
			continue
		}
		for i, m := range msgs {
			n := now[i]
			switch {
			case n.UID != m.UID:
				t.Errorf("folder %q: message %d: UID %d became %d", name, i+1, m.UID, n.UID)
			case strings.Join(n.Flags, " ") != strings.Join(m.Flags, " "):
				t.Errorf("folder %q uid %d: flags %v became %v", name, m.UID, m.Flags, n.Flags)
			case !bytes.Equal(n.Body, m.Body):
				t.Errorf("folder %q uid %d: the server's bytes changed", name, m.UID)
			case !n.InternalDate.Equal(m.InternalDate):
				t.Errorf("folder %q uid %d: INTERNALDATE %v became %v", name, m.UID, m.InternalDate, n.InternalDate)
			}
		}
	}
}
