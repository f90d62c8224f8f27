package e2e

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
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
	t.Parallel()
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
			if _, st := archivetest.Latest(t, vault); st.Snapshot.Namespace == nil || st.Snapshot.Namespace.Prefix != s.Prefix || st.Snapshot.Namespace.Delimiter != s.Delimiter {
				t.Errorf("the snapshot records namespace %+v, the server's is %q %q", st.Snapshot.Namespace, s.Prefix, s.Delimiter)
			}
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

			// One new message and one flag change in INBOX: the run lists
			// what changed (with CONDSTORE, only that) and records both.
			// Not on Mailutils: a client selecting its mbox read-write
			// makes it rewrite the file (Status headers) and number the
			// messages again, which a backup rightly records as gone and
			// new.
			if kind == compattest.Mailutils {
				return
			}
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			imaptest.Append(t, c, "INBOX", nil, time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC), []byte("Subject: third run\r\n\r\nnew\r\n"))
			if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			before = imaptest.ReadServer(t, c)
			r = mustRun(t, src...)
			if !strings.Contains(r.stdout, " 1 messages added") || !strings.Contains(r.stdout, " 1 flag changes") || !strings.Contains(r.stdout, " 0 gone") {
				t.Errorf("third backup: %s, want 1 added, 1 flag change, 0 gone", r.stdout)
			}
			after = imaptest.ReadServer(t, c)
			sameServer(t, before, after)
			archivetest.MatchesServer(t, vault, after)
			mustRun(t, "verify", vault)
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

// TestServersPOP3Backup backs up the inbox of each POP3 server we can run
// besides Dovecot (Cyrus, Courier, GNU Mailutils, popa3d, Solid POP3 on a
// Maildir and on an mbox): the archive holds exactly the bytes RETR
// serves, the backup changed no message's flags, and a second backup
// downloads nothing.
func TestServersPOP3Backup(t *testing.T) {
	t.Parallel()
	for _, kind := range compattest.POP3Kinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := compattest.Start(t, kind)
			msgs := compattest.SeedMessages("alice", 1, 12)
			for i := range msgs {
				msgs[i].Folder = "INBOX"
			}
			if kind.IMAP() {
				s.Append(t, "alice", msgs)
			} else {
				s.Deliver(t, "alice", msgs)
			}
			before := pop3State(t, s)
			vault := filepath.Join(t.TempDir(), "vault")
			src := []string{"backup", "pop3://alice@" + s.POP3Addr, vault}
			if s.CAFile != "" {
				src = append(src, "--ca-file", s.CAFile)
			} else {
				src = append(src, "--insecure-plaintext")
			}
			r := mv(t, bin, nil, src...)
			t.Logf("%s: exit %d: %s%s", kind, r.code, r.stdout, r.stderr)
			if r.code != 0 {
				t.Fatalf("backup: exit %d", r.code)
			}
			// GNU Mailutils' TOP adds an empty line after the header: the
			// backup must say so rather than store it silently.
			topDefect := kind == compattest.Mailutils
			if warned := strings.Contains(r.stderr, "12 messages were archived as the server's TOP returned them"); warned != topDefect {
				t.Errorf("warning about TOP answers of the wrong size: %v, want %v", warned, topDefect)
			}
			if after := pop3State(t, s); after != before {
				t.Errorf("the backup changed the mailbox's flags:\nbefore %s\nafter  %s", before, after)
			}
			mustRun(t, "verify", vault)
			r = mustRun(t, src...)
			if !strings.Contains(r.stdout, " 0 messages added") {
				t.Errorf("second backup: %s", r.stdout)
			}
			if after := pop3State(t, s); after != before {
				t.Errorf("the second backup changed the mailbox's flags:\nbefore %s\nafter  %s", before, after)
			}
			if kind == compattest.Cyrus {
				// A bare USER@HOST:PORT of a POP3 port is detected as POP3
				// without an IMAP command sent to it.
				r := mustRun(t, "backup", "alice@"+s.POP3Addr, filepath.Join(t.TempDir(), "vault"), "--ca-file", s.CAFile)
				if !strings.Contains(r.stderr, "using pop3://alice@"+s.POP3Addr) || !strings.Contains(r.stderr, "greets as a POP3 server") || strings.Contains(r.stderr, "in response") {
					t.Errorf("detection: %s", r.stderr)
				}
			}
			// RETR last: it marks messages read on several servers.
			matchesRetr(t, s, vault, topDefect)
			if topDefect {
				// With RETR allowed, the archive holds RETR's bytes.
				vault2 := filepath.Join(t.TempDir(), "vault")
				src[2] = vault2
				r := mustRun(t, append(src, "--pop3-allow-retr")...)
				if !strings.Contains(r.stderr, "using RETR from now on") {
					t.Errorf("--pop3-allow-retr: %s", r.stderr)
				}
				matchesRetr(t, s, vault2, false)
			}
		})
	}
}

// matchesRetr checks that the INBOX of an archive holds what RETR serves
// now. GNU Mailutils rewrites its own headers (Status, X-UID, X-UIDL,
// X-IMAPbase) as clients come and go: they are left out of the comparison
// there, and with topExtraLine so is the empty line its TOP adds after
// the header.
func matchesRetr(t *testing.T, s *compattest.Server, vault string, topExtraLine bool) {
	t.Helper()
	retr := s.POP3(t, "alice", "RETR")
	a, st := archivetest.Latest(t, vault)
	inbox := st.Folders["INBOX"]
	if inbox == nil || len(inbox.Present()) != len(retr) {
		t.Fatalf("archive's INBOX does not hold the %d messages RETR serves", len(retr))
	}
	byKey := map[string][]byte{}
	for _, m := range inbox.Present() {
		byKey[m.Key] = archivetest.Bytes(t, a, st, m)
	}
	norm := func(b []byte) []byte { return b }
	if s.Kind == compattest.Mailutils {
		norm = func(b []byte) []byte { return withoutHeaders(b, "Status", "X-Status", "X-UID", "X-UIDL", "X-IMAPbase") }
	}
	for _, m := range retr {
		got, ok := byKey[m.UIDL]
		if !ok {
			t.Errorf("message %d (UIDL %s) not archived", m.Num, m.UIDL)
			continue
		}
		got = norm(got)
		if topExtraLine {
			if !bytes.Contains(got, []byte("\r\n\r\n\r\n")) {
				t.Errorf("message %d: no empty line after the header: Mailutils' TOP defect is gone?", m.Num)
			}
			got = bytes.Replace(got, []byte("\r\n\r\n\r\n"), []byte("\r\n\r\n"), 1)
		}
		if want := norm(m.Body); !bytes.Equal(got, want) {
			t.Errorf("message %d (UIDL %s): archived %d bytes, RETR serves %d (LIST says %d)", m.Num, m.UIDL, len(got), len(want), m.Size)
		}
	}
}

// withoutHeaders drops the named header fields of a message.
func withoutHeaders(msg []byte, names ...string) []byte {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return msg
	}
	var out []byte
	for _, line := range bytes.SplitAfter(msg[:end+2], []byte("\r\n")) {
		drop := false
		for _, n := range names {
			if len(line) > len(n) && line[len(n)] == ':' && strings.EqualFold(string(line[:len(n)]), n) {
				drop = true
			}
		}
		if !drop {
			out = append(out, line...)
		}
	}
	return append(out, msg[end+2:]...)
}

// pop3State is what a POP3 client could change of a server's inbox: the
// flags IMAP shows, or the state its mail drop records.
func pop3State(t *testing.T, s *compattest.Server) string {
	t.Helper()
	var b strings.Builder
	if s.Kind.IMAP() {
		for _, m := range imaptest.ReadServer(t, s.IMAP(t, "alice"))["INBOX"] {
			fmt.Fprintf(&b, "%d:%v ", m.UID, m.Flags)
		}
		return b.String()
	}
	st := s.DropFlags(t, "alice")
	for _, k := range compattest.SortedKeys(st) {
		fmt.Fprintf(&b, "%s=%s ", k, st[k])
	}
	return b.String()
}
