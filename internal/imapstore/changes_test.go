package imapstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// Backups of a folder that another client changes while the backup
// fetches it (issues 10.11 and 17.1), against the scripted fake server and
// against Dovecot: the same test body, one server or the other.

// server is a mailbox a test changes "from another client".
type server struct {
	addr string
	// expunge removes messages from folder; recreate deletes folder and
	// creates it again with the given bodies, returning its new UIDVALIDITY.
	expunge  func(t *testing.T, folder string, uids ...imap.UID)
	recreate func(t *testing.T, folder string, bodies [][]byte) uint32
}

// bodies returns n distinct messages of varied sizes.
func bodies(n int, tag string) [][]byte {
	var out [][]byte
	for i := 1; i <= n; i++ {
		out = append(out, []byte(fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s%d@test>\r\n\r\n%s\r\n", tag, i, tag, i, strings.Repeat(fmt.Sprintf("line %d of %s\r\n", i, tag), 40*(i%7+1)))))
	}
	return out
}

func fakeServer(t *testing.T, o imaptest.FakeOptions, folder string, msgs [][]byte) *server {
	t.Helper()
	o.User, o.Password = "alice", "pw"
	var fm []imaptest.FakeMessage
	for _, b := range msgs {
		fm = append(fm, imaptest.FakeMessage{Body: b, Flags: []string{`\Seen`}})
	}
	o.Folders = map[string][]imaptest.FakeMessage{folder: fm, "Other": {{Body: []byte("Subject: o\r\n\r\nother\r\n")}}}
	f := imaptest.StartFake(t, o)
	return &server{
		addr: f.Addr,
		expunge: func(t *testing.T, folder string, uids ...imap.UID) {
			if n := f.Expunge(folder, uids...); n != len(uids) {
				t.Errorf("expunged %d of %d messages", n, len(uids))
			}
		},
		recreate: func(t *testing.T, folder string, bodies [][]byte) uint32 {
			var fm []imaptest.FakeMessage
			for _, b := range bodies {
				fm = append(fm, imaptest.FakeMessage{Body: b})
			}
			v, err := f.Recreate(folder, fm)
			if err != nil {
				t.Error(err)
			}
			return v
		},
	}
}

func dovecotServer(t *testing.T, folder string, msgs [][]byte) *server {
	t.Helper()
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	c := login(t, srv.IMAPAddr)
	var cm []corpus.Message
	for i, b := range msgs {
		cm = append(cm, corpus.Message{Folder: folder, Body: b, Flags: []string{`\Seen`}, InternalDate: time.Date(2025, 3, 4, 5, 6, i, 0, time.UTC)})
	}
	cm = append(cm, corpus.Message{Folder: "Other", Body: []byte("Subject: o\r\n\r\nother\r\n"), InternalDate: time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := corpus.Load(ctx, c, cm); err != nil {
		t.Fatal(err)
	}
	other := login(t, srv.IMAPAddr) // "another client"
	return &server{
		addr: srv.IMAPAddr,
		expunge: func(t *testing.T, folder string, uids ...imap.UID) {
			if _, err := other.Select(folder, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			set := imap.UIDSetNum(uids...)
			if err := other.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := other.UIDExpunge(set).Collect(); err != nil {
				t.Fatal(err)
			}
			if err := other.Unselect().Wait(); err != nil {
				t.Fatal(err)
			}
		},
		recreate: func(t *testing.T, folder string, bodies [][]byte) uint32 {
			if err := other.Delete(folder).Wait(); err != nil {
				t.Fatal(err)
			}
			if err := other.Create(folder, nil).Wait(); err != nil {
				t.Fatal(err)
			}
			for _, b := range bodies {
				cmd := other.Append(folder, int64(len(b)), nil)
				cmd.Write(b)
				cmd.Close()
				if _, err := cmd.Wait(); err != nil {
					t.Fatal(err)
				}
			}
			sd, err := other.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
			if err != nil {
				t.Fatal(err)
			}
			return sd.UIDValidity
		},
	}
}

func login(t *testing.T, addr string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// readServer reads the whole mailbox as it is now.
func readServer(t *testing.T, addr string) map[string][]imaptest.ServerMessage {
	t.Helper()
	c := login(t, addr)
	defer c.Close()
	return imaptest.ReadServer(t, c)
}

// backupRun backs up the server into vault with imapstore, calling
// onStored after each stored message with how many were stored so far.
func backupRun(t *testing.T, addr, vault string, batch int, onStored func(n int)) (*backup.Result, error) {
	t.Helper()
	a, err := formats.OpenOrCreate(vault)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	n := 0
	var warnings []string
	res, err := backup.Run(context.Background(), a, backup.Options{
		Source: "imap://alice@" + addr, Protocol: "imap", BatchSize: batch,
		Hook: func(p string) {
			if p == "message-stored" && onStored != nil {
				mu.Lock()
				n++
				k := n
				mu.Unlock()
				onStored(k)
			}
		},
		Dial: func(ctx context.Context) (backup.Source, error) {
			s, err := imapstore.Dial(ctx, mailconn.Config{Addr: addr, User: "alice", Password: "pw", Security: mailconn.Plaintext, Timeout: 20 * time.Second})
			if err != nil {
				return nil, err
			}
			s.Warn = func(m string) {
				mu.Lock()
				warnings = append(warnings, m)
				mu.Unlock()
			}
			return s, nil
		},
	})
	for _, w := range warnings {
		t.Logf("warning: %s", w)
	}
	return res, err
}

// checkOwnUIDs checks that every message the archive holds in folder,
// present or gone, has the bytes the server served for its UID (in
// before, read before the run).
func checkOwnUIDs(t *testing.T, vault, folder string, before []imaptest.ServerMessage) {
	t.Helper()
	a, st := archivetest.Latest(t, vault)
	f := st.Folders[folder]
	if f == nil {
		t.Fatalf("folder %q not archived", folder)
	}
	want := map[string]imaptest.ServerMessage{}
	for _, m := range before {
		want[strconv.FormatUint(uint64(f.UIDValidity), 10)+":"+strconv.FormatUint(uint64(m.UID), 10)] = m
	}
	for _, m := range f.Archived {
		sm, ok := want[m.Key]
		if !ok {
			continue // another incarnation's key: checked by the caller
		}
		sum := sha256.Sum256(archivetest.Bytes(t, a, st, m))
		if got := hex.EncodeToString(sum[:]); got != sm.SHA256 || m.SHA256 != sm.SHA256 {
			t.Errorf("%s %s: archived %d bytes (sha %.12s), the server served %d bytes (sha %.12s) for that UID",
				folder, m.Key, m.Size, got, len(sm.Body), sm.SHA256)
		}
	}
}

// TestExpungedWhileFetching (issue 17.1): another client expunges
// messages in the middle of a backup's fetch. Nothing fails, every
// archived message has the bytes of its own UID (never an empty body,
// never another message's), and every message still on the server is
// archived: the next run fetches nothing and the archive matches.
func TestExpungedWhileFetching(t *testing.T) {
	const folder = "Box"
	msgs := bodies(60, "x")
	tests := []struct {
		name string
		srv  func(t *testing.T) *server
	}{
		{"fake, expunged answered empty", func(t *testing.T) *server { return fakeServer(t, imaptest.FakeOptions{}, folder, msgs) }},
		{"fake, expunged left out", func(t *testing.T) *server {
			return fakeServer(t, imaptest.FakeOptions{ExpungedOmit: true}, folder, msgs)
		}},
		{"fake, UID after the literal", func(t *testing.T) *server {
			return fakeServer(t, imaptest.FakeOptions{UIDAfterLiteral: true}, folder, msgs)
		}},
		{"fake, UID after the literal, expunged left out", func(t *testing.T) *server {
			return fakeServer(t, imaptest.FakeOptions{UIDAfterLiteral: true, ExpungedOmit: true}, folder, msgs)
		}},
		{"dovecot", func(t *testing.T) *server { return dovecotServer(t, folder, msgs) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv(t)
			before := readServer(t, srv.addr)[folder]
			if len(before) != len(msgs) {
				t.Fatalf("server holds %d messages, want %d", len(before), len(msgs))
			}
			uid := func(i int) imap.UID { return before[i-1].UID }
			gone := []imap.UID{uid(16), uid(17), uid(18), uid(25), uid(31), uid(32), uid(33), uid(60)}
			vault := filepath.Join(t.TempDir(), "vault")
			expunged := false
			res, err := backupRun(t, srv.addr, vault, 10, func(n int) {
				if n == 15 && !expunged {
					expunged = true
					srv.expunge(t, folder, gone...)
				}
			})
			if err != nil || len(res.Failed) > 0 || res.Snapshot.Status != formats.StatusComplete {
				t.Fatalf("backup = %v; want a complete snapshot", err)
			}
			if !expunged {
				t.Fatal("the expunge never happened")
			}
			checkOwnUIDs(t, vault, folder, before)
			now := readServer(t, srv.addr)
			if len(now[folder]) != len(msgs)-len(gone) {
				t.Fatalf("server holds %d messages after the expunge, want %d", len(now[folder]), len(msgs)-len(gone))
			}
			// What the archive holds beyond the server is what was expunged
			// after it was fetched.
			_, st := archivetest.Latest(t, vault)
			onServer := map[imap.UID]bool{}
			for _, m := range now[folder] {
				onServer[m.UID] = true
			}
			present := map[imap.UID]bool{}
			for _, m := range st.Folders[folder].Present() {
				_, u, _ := strings.Cut(m.Key, ":")
				n, _ := strconv.ParseUint(u, 10, 32)
				present[imap.UID(n)] = true
				if !onServer[imap.UID(n)] && !slices.Contains(gone, imap.UID(n)) {
					t.Errorf("archived %s, which the server never had", m.Key)
				}
			}
			for u := range onServer {
				if !present[u] {
					t.Errorf("uid %d is on the server, not in the archive", u)
				}
			}
			// The next run fetches nothing and records the rest as gone.
			res, err = backupRun(t, srv.addr, vault, 10, nil)
			if err != nil || res.Added != 0 {
				t.Fatalf("next run: %v, added %d; want nothing to fetch", err, res.Added)
			}
			archivetest.MatchesServer(t, vault, now)
			checkOwnUIDs(t, vault, folder, before)
		})
	}
}

// TestRecreatedWhileFetching (issue 10.11): another client deletes the
// folder and creates it again while a backup fetches it. The run fetches
// the new folder: the archive holds the new folder's messages under its
// new UIDVALIDITY and nothing of the old one as present; what was fetched
// of the old one is kept as gone, each under its own UID.
func TestRecreatedWhileFetching(t *testing.T) {
	const folder = "Box"
	msgs := bodies(40, "old")
	fresh := append(slices.Clone(msgs[3:7]), bodies(4, "new")...)
	tests := []struct {
		name string
		srv  func(t *testing.T) *server
	}{
		{"fake", func(t *testing.T) *server { return fakeServer(t, imaptest.FakeOptions{}, folder, msgs) }},
		{"dovecot", func(t *testing.T) *server { return dovecotServer(t, folder, msgs) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := tt.srv(t)
			before := readServer(t, srv.addr)[folder]
			vault := filepath.Join(t.TempDir(), "vault")
			var validity uint32
			res, err := backupRun(t, srv.addr, vault, 10, func(n int) {
				if n == 15 && validity == 0 {
					validity = srv.recreate(t, folder, fresh)
				}
			})
			if err != nil || res.Snapshot.Status != formats.StatusComplete {
				t.Fatalf("backup = %v; want a complete snapshot", err)
			}
			if validity == 0 {
				t.Fatal("the folder was never re-created")
			}
			_, st := archivetest.Latest(t, vault)
			box := st.Folders[folder]
			if box.UIDValidity != validity {
				t.Errorf("archived UIDVALIDITY %d, the server's is %d", box.UIDValidity, validity)
			}
			archivetest.MatchesServer(t, vault, readServer(t, srv.addr))
			oldValidity := ""
			for _, m := range box.Archived {
				if v, _, _ := strings.Cut(m.Key, ":"); v != strconv.FormatUint(uint64(validity), 10) {
					oldValidity = v
					if !m.Gone {
						t.Errorf("%s of the deleted folder recorded as present", m.Key)
					}
				}
			}
			if oldValidity == "" {
				t.Fatal("nothing of the old folder was archived: the test did not re-create it during the fetch")
			}
			// The old folder's messages, as gone, have their own bytes.
			a, _ := archivetest.Latest(t, vault)
			byUID := map[string]string{}
			for _, m := range before {
				byUID[oldValidity+":"+strconv.FormatUint(uint64(m.UID), 10)] = m.SHA256
			}
			for _, m := range box.Archived {
				if want, ok := byUID[m.Key]; ok {
					sum := sha256.Sum256(archivetest.Bytes(t, a, st, m))
					if hex.EncodeToString(sum[:]) != want {
						b := archivetest.Bytes(t, a, st, m)
						t.Errorf("%s: archived bytes are not the old folder's message of that UID: %d bytes %.60q", m.Key, len(b), b)
					}
				}
			}
			// The next run has nothing to do.
			res, err = backupRun(t, srv.addr, vault, 10, nil)
			if err != nil || res.Added != 0 {
				t.Fatalf("next run: %v, added %d", err, res.Added)
			}
		})
	}
}

// TestInboxListedTwice (issue 10.17): a server that lists INBOX twice
// (INBOX and Inbox) is backed up, INBOX once.
func TestInboxListedTwice(t *testing.T) {
	srv := fakeServer(t, imaptest.FakeOptions{ListAlso: []string{"Inbox"}}, "INBOX", bodies(5, "in"))
	vault := filepath.Join(t.TempDir(), "vault")
	res, err := backupRun(t, srv.addr, vault, 10, nil)
	if err != nil {
		t.Fatalf("backup = %v", err)
	}
	if res.Folders != 2 || res.Added != 6 {
		t.Errorf("%d folders, %d messages added; want 2 (INBOX, Other) and 6", res.Folders, res.Added)
	}
	archivetest.MatchesServer(t, vault, readServer(t, srv.addr))
}
