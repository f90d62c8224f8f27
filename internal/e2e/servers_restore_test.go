package e2e

import (
	"bytes"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/compattest"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// seedDovecot creates compattest's seed folders on a Dovecot (nested and
// non-ASCII ones, one with a space, parents that are structure only) and
// appends msgs with their flags and dates, as alice.
func seedDovecot(t *testing.T, srv *dovecottest.Server, msgs []compattest.Message) {
	t.Helper()
	c := login(t, srv, "alice")
	created := map[string]bool{"INBOX": true}
	for _, m := range msgs {
		if !created[m.Folder] {
			mustIMAP(t, c.Create(m.Folder, nil).Wait())
			created[m.Folder] = true
		}
		flags := make([]imap.Flag, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = imap.Flag(f)
		}
		cmd := c.Append(m.Folder, int64(len(m.Body)), &imap.AppendOptions{Flags: flags, Time: m.InternalDate})
		if _, err := cmd.Write(m.Body); err != nil {
			t.Fatal(err)
		}
		mustIMAP(t, cmd.Close())
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// userView is a server's folder name in the user's view: the namespace
// prefix removed, "/" between levels.
func userView(name, prefix, delim string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return strings.ReplaceAll(strings.TrimPrefix(name, prefix), delim, "/")
}

// serverChanges makes a message as the archive holds it look as a server
// documentedly stores it, and a message as the server serves it
// comparable (docs/SERVERS.md): Cyrus replaces 8-bit header bytes with
// "X" (munge8bit); Courier adds a final CRLF; GNU Mailutils adds Status,
// X-IMAPbase and X-UID header fields and a final newline, and keeps no
// keywords.
func serverChanges(kind compattest.Kind, archived, served []byte, flags []string) (want, got []byte, wantFlags []string) {
	want, got, wantFlags = archived, served, flags
	finalCRLF := func(b []byte) []byte {
		if !bytes.HasSuffix(b, []byte("\r\n")) {
			return append(append([]byte{}, b...), '\r', '\n')
		}
		return b
	}
	switch kind {
	case compattest.Cyrus, compattest.CyrusDebian:
		want = append([]byte{}, archived...)
		end := bytes.Index(want, []byte("\r\n\r\n"))
		for i := 0; i < end; i++ {
			if want[i] >= 0x80 {
				want[i] = 'X'
			}
		}
	case compattest.Courier:
		want = finalCRLF(archived)
	case compattest.Mailutils:
		want = finalCRLF(archived)
		got = withoutHeaders(served, "Status", "X-Status", "X-UID", "X-UIDL", "X-IMAPbase")
		wantFlags = nil
		for _, f := range flags {
			if strings.HasPrefix(f, `\`) {
				wantFlags = append(wantFlags, f)
			}
		}
	}
	return want, got, wantFlags
}

// sameInstantOrWallClock: GNU Mailutils keeps INTERNALDATE's wall clock
// and forces the zone to +0000.
func sameInstantOrWallClock(a, b time.Time) bool {
	const wall = "2006-01-02 15:04:05"
	return a.Equal(b) || a.Format(wall) == b.Format(wall)
}

// TestServersIMAPRestore restores an archive of a Dovecot (nested and
// non-ASCII folders, one with a space, structure-only parents, a \Sent
// folder, flags, keywords, dates) into each IMAP server we can run
// besides Dovecot: exit 0, every folder in the server's personal
// namespace (below "INBOX." on Courier and on Cyrus with Debian's
// settings), every message there with its flags and date except what the
// server documentedly changes, and a second restore appends nothing.
func TestServersIMAPRestore(t *testing.T) {
	msgs := compattest.SeedMessages("alice", 1, 24)
	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	seedDovecot(t, dc, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(dc), vault)...)...)
	a, st := archivetest.Latest(t, vault)
	if ns := st.Snapshot.Namespace; ns == nil || ns.Prefix != "" || ns.Delimiter != "/" {
		t.Errorf("the Dovecot archive records namespace %+v, want no prefix and /", ns)
	}
	for _, kind := range compattest.IMAPKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := compattest.Start(t, kind)
			target := []string{"restore", vault, "imap://alice@" + s.IMAPAddr, "--ca-file", s.CAFile}
			plan := mustRun(t, append(target, "--dry-run")...)
			if !strings.Contains(plan.stdout, "target namespace: ") || !strings.Contains(plan.stdout, s.FolderName("Archive/2024")+" (new)") {
				t.Errorf("dry run does not show the target's namespace:\n%s", plan.stdout)
			}
			r := mv(t, bin, nil, target...)
			t.Logf("%s: exit %d\n%s%s", kind, r.code, r.stdout, r.stderr)
			if r.code != 0 {
				t.Fatalf("restore: exit %d", r.code)
			}
			got := imaptest.ReadServer(t, s.IMAP(t, "alice"))
			byView := map[string][]imaptest.ServerMessage{}
			for name, m := range got {
				if name != "INBOX" && s.Prefix != "" && !strings.HasPrefix(name, s.Prefix) {
					t.Errorf("folder %q is outside the personal namespace %q", name, s.Prefix)
				}
				byView[userView(name, s.Prefix, s.Delimiter)] = m
			}
			for name, fs := range st.Folders {
				present := fs.Present()
				if len(present) == 0 {
					continue
				}
				held := byView[name]
				if len(held) != len(present) {
					t.Errorf("folder %q (%q on the server): %d messages, archive has %d", name, s.FolderName(name), len(held), len(present))
					continue
				}
				used := make([]bool, len(held))
				for _, m := range present {
					archived := archivetest.Bytes(t, a, st, m)
					found := false
					for i, h := range held {
						want, body, wantFlags := serverChanges(kind, archived, h.Body, m.Flags)
						if used[i] || !bytes.Equal(want, body) {
							continue
						}
						used[i], found = true, true
						if a, b := flagSet(wantFlags), flagSet(h.Flags); a != b {
							t.Errorf("folder %q, %s: flags %s, want %s", name, m.MessageID, b, a)
						}
						if !sameInstantOrWallClock(h.InternalDate, m.InternalDate) || kind != compattest.Mailutils && !h.InternalDate.Equal(m.InternalDate) {
							t.Errorf("folder %q, %s: INTERNALDATE %v, want %v", name, m.MessageID, h.InternalDate, m.InternalDate)
						}
						break
					}
					if !found {
						t.Errorf("folder %q: %s (%d bytes) not on the server as the archive holds it", name, m.MessageID, m.Size)
					}
				}
			}
			if kind == compattest.Cyrus || kind == compattest.CyrusDebian {
				// CREATE-SPECIAL-USE: Sent is created as the \Sent folder.
				list, err := s.IMAP(t, "alice").List("", s.FolderName("Sent"), &imap.ListOptions{ReturnSpecialUse: true}).Collect()
				if err != nil || len(list) != 1 || !hasAttr(list[0].Attrs, imap.MailboxAttrSent) {
					t.Errorf("Sent on Cyrus: %v %v, want the \\Sent attribute", list, err)
				}
			}
			r = mustRun(t, target...)
			if !strings.Contains(r.stdout, " 0 appended") || !strings.Contains(r.stdout, "24 already present") {
				t.Errorf("second restore: %s", r.stdout)
			}
		})
	}
}

func hasAttr(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if strings.EqualFold(string(x), string(a)) {
			return true
		}
	}
	return false
}

// flagSet writes flags as a lower-cased sorted set, without \Recent.
func flagSet(flags []string) string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, strings.ToLower(f))
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// TestServersCourierToDovecot: an archive of a Courier (every folder
// below "INBOX.") restored to Dovecot puts the folders at the top level,
// byte for byte, and the plan says where the archive's namespace came
// from.
func TestServersCourierToDovecot(t *testing.T) {
	s := compattest.Start(t, compattest.Courier)
	msgs := compattest.SeedMessages("alice", 1, 18)
	s.Append(t, "alice", msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, "backup", "imap://alice@"+s.IMAPAddr, vault, "--ca-file", s.CAFile)
	served := imaptest.ReadServer(t, s.IMAP(t, "alice"))

	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": "pw"}})
	target := []string{"restore", vault, "imaps://bob@" + dc.IMAPSAddr, "--ca-file", dc.CAFile}
	plan := mustRun(t, append(target, "--dry-run")...)
	if !strings.Contains(plan.stdout, `archive namespace: prefix "INBOX.", delimiter "." (recorded)`) {
		t.Errorf("dry run:\n%s", plan.stdout)
	}
	mustRun(t, target...)
	c, err := imapclient.DialInsecure(dc.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	mustIMAP(t, c.Login("bob", "pw").Wait())
	got := imaptest.ReadServer(t, c)
	rename := map[string]string{}
	for name := range served {
		rename[name] = userView(name, s.Prefix, s.Delimiter)
	}
	sameMail(t, served, got, rename)
	for name := range got {
		if strings.HasPrefix(name, "INBOX/") {
			t.Errorf("folder %q restored below INBOX", name)
		}
	}
	if r := mustRun(t, target...); !strings.Contains(r.stdout, " 0 appended") {
		t.Errorf("second restore: %s", r.stdout)
	}
}

// TestServersFolderRefused: GNU Mailutils (mbox) cannot hold a folder
// with messages that has a folder below it. Restoring both, the one it
// cannot create is reported with the server's words and skipped (exit
// 3); every other folder is restored.
func TestServersFolderRefused(t *testing.T) {
	var msgs []compattest.Message
	for i, m := range compattest.SeedMessages("alice", 1, 6) {
		m.Folder = []string{"INBOX", "Lists", "Lists/go"}[i%3]
		msgs = append(msgs, m)
	}
	dc := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	seedDovecot(t, dc, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(dc), vault)...)...)
	s := compattest.Start(t, compattest.Mailutils)
	r := mv(t, bin, nil, "restore", vault, "imap://alice@"+s.IMAPAddr, "--ca-file", s.CAFile)
	if r.code != 3 || !strings.Contains(r.stdout, "restored 4 of 6 messages") || !strings.Contains(r.stdout, "1 folders refused by the target") ||
		!strings.Contains(r.stderr, "Cannot create mailbox") || !strings.Contains(r.stderr, "Lists/go") {
		t.Fatalf("restore: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	got := imaptest.ReadServer(t, s.IMAP(t, "alice"))
	if len(got["INBOX"]) != 2 || len(got["Lists"]) != 2 {
		t.Errorf("INBOX holds %d, Lists %d; want 2 and 2", len(got["INBOX"]), len(got["Lists"]))
	}
}
