package imapstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/compattest"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/restore"
)

// realServer is an IMAP server a test runs against: Dovecot, or one of
// compattest's.
type realServer struct {
	kind   string
	addr   string
	user   string
	pw     string
	ns     formats.Namespace
	client func(t *testing.T) *imapclient.Client
}

// realServers starts Dovecot and every compattest IMAP server (each
// subtest its own), and runs f on each in parallel.
func realServers(t *testing.T, f func(t *testing.T, s realServer)) {
	kinds := append([]string{"dovecot"}, func() []string {
		var out []string
		for _, k := range compattest.IMAPKinds {
			out = append(out, string(k))
		}
		return out
	}()...)
	for _, kind := range kinds {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			var s realServer
			if kind == "dovecot" {
				d := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
				s = realServer{kind: kind, addr: d.IMAPAddr, user: "alice", pw: "pw", ns: formats.Namespace{Delimiter: "/"},
					client: func(t *testing.T) *imapclient.Client {
						c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { c.Close() })
						if err := c.Login("alice", "pw").Wait(); err != nil {
							t.Fatal(err)
						}
						return c
					}}
			} else {
				c := compattest.Start(t, compattest.Kind(kind))
				s = realServer{kind: kind, addr: c.IMAPAddr, user: "alice", pw: compattest.Password, ns: formats.Namespace{Prefix: c.Prefix, Delimiter: c.Delimiter},
					client: func(t *testing.T) *imapclient.Client { return c.IMAP(t, "alice") }}
			}
			f(t, s)
		})
	}
}

func (s realServer) dial(t *testing.T) *Target {
	t.Helper()
	tg, err := DialTarget(context.Background(), mailconn.Config{Addr: s.addr, Security: mailconn.Plaintext, User: s.user, Password: s.pw, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("%s: DialTarget: %v", s.kind, err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// name is the server's name of a folder in the user's view ("/" between
// levels).
func (s realServer) name(user string) string {
	if strings.EqualFold(user, "INBOX") {
		return "INBOX"
	}
	return s.ns.Prefix + strings.ReplaceAll(user, "/", s.ns.Delimiter)
}

func testMessage(i int, kw bool) ([]byte, *restore.Message) {
	body := []byte(fmt.Sprintf("From: a@example.com\r\nSubject: target test %d\r\nMessage-ID: <target-%d@example.com>\r\n\r\nbody %d\r\n", i, i, i))
	m := &restore.Message{Flags: []string{`\Seen`}, InternalDate: time.Date(2024, 3, 4, 5, 6, 7, 0, time.UTC), Size: int64(len(body)), MessageID: fmt.Sprintf("<target-%d@example.com>", i)}
	if kw {
		m.Flags = append(m.Flags, "$Label1")
	}
	return body, m
}

// appendWait appends one message and waits for the answer, sending it
// again once without keywords when the folder refuses them, as the engine
// does.
func appendWait(t *testing.T, tg *Target, folder string, body []byte, m *restore.Message) error {
	t.Helper()
	for try := 0; ; try++ {
		p, err := tg.Append(context.Background(), folder, m, bytes.NewReader(body))
		if err == nil {
			err = p.Wait()
		}
		if errors.Is(err, restore.ErrKeywordsRefused) && try == 0 {
			continue
		}
		return err
	}
}

// TestTargetNamespaceAndCreate: the target learns the server's personal
// namespace, and creates a nested folder by creating it alone (the server
// makes the parent): on GNU Mailutils creating the parent first would
// make it a mailbox file that can hold no folder. A folder the server
// cannot create is refused with the server's words.
func TestTargetNamespaceAndCreate(t *testing.T) {
	realServers(t, func(t *testing.T, s realServer) {
		tg := s.dial(t)
		ctx := context.Background()
		if ns := tg.Namespace(); ns != s.ns {
			t.Errorf("Namespace() = %+v, want %+v", ns, s.ns)
		}
		nested := s.name("Archive/2024")
		if err := tg.CreateFolder(ctx, nested); err != nil {
			t.Fatalf("CreateFolder(%q): %v", nested, err)
		}
		if err := tg.CreateFolder(ctx, nested); err != nil {
			t.Errorf("CreateFolder(%q) again: %v", nested, err)
		}
		body, m := testMessage(1, false)
		if err := appendWait(t, tg, nested, body, m); err != nil {
			t.Errorf("append to %q: %v", nested, err)
		}
		// A folder that holds messages and a folder below it: GNU
		// Mailutils (mbox) cannot have both.
		parent, child := s.name("Lists"), s.name("Lists/go")
		if err := tg.CreateFolder(ctx, parent); err != nil {
			t.Fatalf("CreateFolder(%q): %v", parent, err)
		}
		err := tg.CreateFolder(ctx, child)
		if s.kind == string(compattest.Mailutils) {
			if !errors.Is(err, restore.ErrFolderRefused) || !strings.Contains(err.Error(), "Cannot create mailbox") {
				t.Errorf("CreateFolder(%q) on Mailutils = %v, want refused with the server's words", child, err)
			}
		} else if err != nil {
			t.Errorf("CreateFolder(%q): %v", child, err)
		}
		// A name outside the personal namespace, where there is a prefix.
		if s.ns.Prefix != "" {
			err := tg.CreateFolder(ctx, "Outside")
			if !errors.Is(err, restore.ErrFolderRefused) || !strings.Contains(err.Error(), "the server answered NO") {
				t.Errorf("CreateFolder(%q) = %v, want refused with the server's words", "Outside", err)
			}
		}
		// Structure only: whatever the server makes of it, no error that
		// stops anything, and no message-holding folder on servers that
		// keep structure.
		if err := tg.CreateStructure(ctx, s.name("Projects")); err != nil {
			t.Logf("%s: CreateStructure: %v", s.kind, err)
		}
		list, err := s.client(t).List("", "*", nil).Collect()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range list {
			names = append(names, fmt.Sprintf("%s%v", l.Mailbox, l.Attrs))
		}
		t.Logf("%s: folders after creating: %s", s.kind, strings.Join(names, " "))
	})
}

// TestTargetAppendsKept: appends into a folder the target has read (to
// know what it holds) are all kept. GNU Mailutils loses appends into a
// folder the same connection has SELECTed: the target EXAMINEs. Held
// counts them, and Missing checks the APPENDUID answers where the server
// gives them.
func TestTargetAppendsKept(t *testing.T) {
	realServers(t, func(t *testing.T, s realServer) {
		tg := s.dial(t)
		ctx := context.Background()
		folder := s.name("Work")
		if err := tg.CreateFolder(ctx, folder); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"INBOX", folder} {
			if _, err := tg.Index(ctx, f); err != nil {
				t.Fatalf("Index(%q): %v", f, err)
			}
			before, err := tg.Held(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 3; i++ {
				body, m := testMessage(10+i, i == 1)
				if err := appendWait(t, tg, f, body, m); err != nil {
					t.Fatalf("append %d to %q: %v", i, f, err)
				}
			}
			missing, ok, err := tg.Missing(ctx, f)
			if err != nil || missing != 0 || ok != (s.kind != string(compattest.Mailutils)) {
				t.Errorf("Missing(%q) = %d, %v, %v; want 0, ok where the server has UIDPLUS", f, missing, ok, err)
			}
			after, err := tg.Held(ctx, f)
			if err != nil || after != before+3 {
				t.Errorf("Held(%q) = %d, %v after 3 appends to %d", f, after, err, before)
			}
			// Mailutils drops what it lost when the connection that
			// SELECTed the folder moves on: read the folder again.
			if _, err := tg.Index(ctx, f); err != nil {
				t.Fatal(err)
			}
			c := s.client(t)
			sd, err := c.Select(f, &imap.SelectOptions{ReadOnly: true}).Wait()
			if err != nil || sd.NumMessages != uint32(before+3) {
				t.Errorf("%q holds %v messages (%v), want %d", f, sd, err, before+3)
			}
			c.Logout().Wait()
		}
		if want := map[bool]int{true: 2, false: 0}[s.kind == string(compattest.Mailutils)]; tg.DroppedKeywords() != want {
			t.Errorf("DroppedKeywords() = %d, want %d (one keyword per folder refused)", tg.DroppedKeywords(), want)
		}
	})
}

// TestTargetIndexRewritten: what the target holds is recognised as what
// was appended, also where the server rewrites messages (GNU Mailutils
// adds header fields; Cyrus replaces 8-bit header bytes; Courier adds a
// final CRLF), and messages without a Message-ID too; with the index in
// memory and on disk.
func TestTargetIndexRewritten(t *testing.T) {
	for _, mode := range []struct {
		name      string
		threshold int
	}{{"memory", restore.IndexMemoryEntries}, {"disk", 1}} {
		old := restore.IndexMemoryEntries
		restore.IndexMemoryEntries = mode.threshold
		t.Run(mode.name, testTargetIndexRewritten) // returns when its parallel subtests are done
		restore.IndexMemoryEntries = old
	}
}

func testTargetIndexRewritten(t *testing.T) {
	realServers(t, func(t *testing.T, s realServer) {
		tg := s.dial(t)
		ctx := context.Background()
		date := time.Date(2024, 3, 4, 5, 6, 7, 0, time.FixedZone("+0100", 3600))
		bodies := []string{
			"From: a@example.com\r\nSubject:   spaced\r\nMessage-ID: <rw-1@example.com>\r\n\r\nno final newline",
			"From: a@example.com\r\nSubject: Grüße\r\nMessage-ID: <rw-2@example.com>\r\n\r\n8-bit header\r\n",
			"From: a@example.com\r\nSubject: no id\r\n\r\nwithout a Message-ID\r\n",
			"From: a@example.com\r\nSubject: no id\r\n\r\nwithout a Message-ID\r\n", // twice
		}
		var msgs []*restore.Message
		for _, b := range bodies {
			m := &restore.Message{InternalDate: date, Size: int64(len(b)), SHA256: sha(b)}
			if i := strings.Index(b, "Message-ID: "); i >= 0 {
				m.MessageID = strings.SplitN(b[i+12:], "\r\n", 2)[0]
			}
			msgs = append(msgs, m)
			if err := appendWait(t, tg, "INBOX", []byte(b), m); err != nil {
				t.Fatal(err)
			}
		}
		idx, err := tg.Index(ctx, "INBOX")
		if err != nil {
			t.Fatal(err)
		}
		defer idx.Close()
		for i, m := range msgs {
			if idx.NeedsBodyHash(m) {
				m.BodySHA256, _ = restore.BodyHash(strings.NewReader(bodies[i]))
			}
			if !idx.Take(m) {
				t.Errorf("%s: message %d not recognised in the target's index", s.kind, i+1)
			}
		}
		extra := &restore.Message{InternalDate: date, Size: int64(len(bodies[3])), SHA256: sha(bodies[3])}
		if idx.NeedsBodyHash(extra) || idx.Take(extra) {
			t.Errorf("%s: a third copy taken for one the folder holds", s.kind)
		}
		if err := idx.Err(); err != nil {
			t.Errorf("%s: Index: %v", s.kind, err)
		}
	})
}

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
