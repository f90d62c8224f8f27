package imaptest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// peekAll asks for what a backup needs, without setting \Seen.
func peekAll() *imap.FetchOptions {
	return &imap.FetchOptions{
		UID:          true,
		Flags:        true,
		InternalDate: true,
		RFC822Size:   true,
		BodySection:  []*imap.FetchItemBodySection{{Peek: true}},
	}
}

// streamed is one message as streamed off the wire, with the order in which
// its items arrived.
type streamed struct {
	seq     uint32
	uid     imap.UID
	flags   []imap.Flag
	date    time.Time
	size    int64
	body    []byte
	litSize int64 // size announced by the literal
	litErr  error // error returned while reading the literal
	order   []string
}

// streamFetch runs cmd to completion, reading each literal as it arrives.
//
// A literal that fails or comes up short closes the client before cmd.Close:
// after a literal read error go-imap's reader goroutine goes on decoding
// while FetchCommand.Close (and Collect) would read the rest of the literal
// from the same bufio.Reader, a data race (seen with -race). And a
// connection closed in the middle of a literal reads as a short literal
// with no error at all.
func streamFetch(c *imapclient.Client, cmd *imapclient.FetchCommand) ([]streamed, error) {
	var out []streamed
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		m := streamed{seq: msg.SeqNum}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				m.uid = item.UID
				m.order = append(m.order, "UID")
			case imapclient.FetchItemDataFlags:
				m.flags = item.Flags
				m.order = append(m.order, "FLAGS")
			case imapclient.FetchItemDataInternalDate:
				m.date = item.Time
				m.order = append(m.order, "INTERNALDATE")
			case imapclient.FetchItemDataRFC822Size:
				m.size = item.Size
				m.order = append(m.order, "RFC822.SIZE")
			case imapclient.FetchItemDataBodySection:
				m.order = append(m.order, "BODY[]")
				m.litSize = item.Literal.Size()
				m.body, m.litErr = io.ReadAll(item.Literal)
				if m.litErr != nil || int64(len(m.body)) != m.litSize {
					c.Close()
					out = append(out, m)
					err := cmd.Close()
					if m.litErr != nil {
						err = m.litErr
					}
					if err == nil {
						err = errors.New("short literal")
					}
					return out, err
				}
			}
		}
		out = append(out, m)
	}
	return out, cmd.Close()
}

func hasImapFlag(flags []imap.Flag, want imap.Flag) bool {
	for _, f := range flags {
		if strings.EqualFold(string(f), string(want)) {
			return true
		}
	}
	return false
}

func containsLine(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			return true
		}
	}
	return false
}

func TestMemSpecialUseAndCommands(t *testing.T) {
	s := StartMem(t, MemOptions{
		Users:      map[string]string{"alice": "s3cret-pw"},
		SpecialUse: map[string]string{"Enviados": `\Sent`},
	})
	c := s.Dial(t, "alice", "s3cret-pw")
	Create(t, c, "Enviados")
	Create(t, c, "Archivo/2023")
	if err := c.Create("Basura", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrTrash}}).Wait(); err != nil {
		t.Fatal(err)
	}

	date := time.Date(2023, 5, 6, 7, 8, 9, 0, time.UTC)
	body := []byte("From: a@example.org\r\nSubject: hola\r\n\r\nunique-body-text\r\n")
	uid := Append(t, c, "Enviados", []imap.Flag{imap.FlagSeen, "$Forwarded"}, date, body)
	if uid == 0 {
		t.Fatal("Append returned UID 0")
	}

	for _, opts := range []*imap.ListOptions{nil, {ReturnSpecialUse: true}, {ReturnStatus: &imap.StatusOptions{NumMessages: true}}} {
		list, err := c.List("", "*", opts).Collect()
		if err != nil {
			t.Fatal(err)
		}
		attrs := map[string][]imap.MailboxAttr{}
		for _, l := range list {
			attrs[l.Mailbox] = l.Attrs
			if l.Delim != '/' {
				t.Errorf("delimiter of %s = %q", l.Mailbox, l.Delim)
			}
			if opts != nil && opts.ReturnStatus != nil && l.Mailbox == "Enviados" && (l.Status == nil || *l.Status.NumMessages != 1) {
				t.Errorf("LIST-STATUS of Enviados: %+v", l.Status)
			}
		}
		if len(attrs) != 4 {
			t.Errorf("LIST %+v: got %v, want INBOX, Enviados, Archivo/2023, Basura", opts, attrs)
		}
		if !slices.Contains(attrs["Enviados"], imap.MailboxAttrSent) {
			t.Errorf("LIST %+v: Enviados attrs %v, want \\Sent", opts, attrs["Enviados"])
		}
		if !slices.Contains(attrs["Basura"], imap.MailboxAttrTrash) {
			t.Errorf("LIST %+v: Basura attrs %v, want \\Trash (given at CREATE)", opts, attrs["Basura"])
		}
		if len(attrs["INBOX"]) != 0 {
			t.Errorf("LIST %+v: INBOX attrs %v", opts, attrs["INBOX"])
		}
	}
	list, err := c.List("", "*", &imap.ListOptions{SelectSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Errorf("LIST (SPECIAL-USE) returned %d folders, want 2", len(list))
	}

	if _, err := c.Select("Enviados", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(uid), peekAll()))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || !bytes.Equal(msgs[0].body, body) || msgs[0].uid != uid || !msgs[0].date.Equal(date) ||
		!hasImapFlag(msgs[0].flags, imap.FlagSeen) || !hasImapFlag(msgs[0].flags, "$Forwarded") {
		t.Fatalf("fetched %+v", msgs)
	}

	cmds := s.Commands()
	for _, want := range []string{"LOGIN <redacted>", `CREATE "Enviados"`, `CREATE "Basura" (USE (\Trash))`, `APPEND "Enviados" (\Seen $Forwarded)`, `EXAMINE "Enviados"`, "UID FETCH 1 ("} {
		if !containsLine(cmds, want) {
			t.Errorf("Commands() lacks %q: %q", want, cmds)
		}
	}
	for _, l := range cmds {
		if strings.Contains(l, "s3cret") || strings.Contains(l, "unique-body-text") {
			t.Errorf("Commands() leaks a password, literal data or a tag: %q", l)
		}
		if strings.HasPrefix(l, "UID FETCH") && !strings.Contains(l, "BODY.PEEK[]") {
			t.Errorf("fetch without PEEK: %q", l)
		}
	}
}

func TestMemSTARTTLS(t *testing.T) {
	s := StartMem(t, MemOptions{
		Users:       map[string]string{"alice": "pw"},
		RequireTLS:  true,
		ImplicitTLS: true,
	})
	if s.CAFile == "" || s.CertPool == nil || s.TLSAddr == "" {
		t.Fatalf("TLS fields not set: %+v", s)
	}

	// Plaintext LOGIN is refused.
	plain, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if !plain.Caps().Has(imap.CapStartTLS) || !plain.Caps().Has(imap.CapLoginDisabled) {
		t.Errorf("caps before STARTTLS: %v", plain.Caps())
	}
	if err := plain.Login("alice", "pw").Wait(); err == nil {
		t.Fatal("plaintext LOGIN accepted despite RequireTLS")
	}

	// A client that does not trust the certificate fails.
	if c, err := imapclient.DialStartTLS(s.Addr, nil); err == nil {
		c.Close()
		t.Fatal("STARTTLS without the CA succeeded")
	}

	// STARTTLS verified against CertPool, by IP address.
	c, err := imapclient.DialStartTLS(s.Addr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: s.CertPool}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	Append(t, c, "INBOX", nil, time.Time{}, []byte("Subject: x\r\n\r\nover tls\r\n"))
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(1), peekAll()))
	if err != nil || len(msgs) != 1 || string(msgs[0].body) != "Subject: x\r\n\r\nover tls\r\n" {
		t.Fatalf("fetch over STARTTLS: %+v, %v", msgs, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT over STARTTLS: %v", err)
	}

	// Implicit TLS, trusting the PEM file, by DNS name.
	pemData, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("CAFile holds no certificate")
	}
	ct, err := imapclient.DialTLS(s.TLSAddr, &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	if ct.Caps().Has(imap.CapStartTLS) {
		t.Errorf("STARTTLS offered over implicit TLS: %v", ct.Caps())
	}
	if err := ct.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ct.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait(); err != nil {
		t.Fatal(err)
	}

	// Dial upgrades by itself when TLS is required.
	s.Dial(t, "alice", "pw")

	cmds := s.Commands()
	i := slices.Index(cmds, "STARTTLS")
	if i < 0 {
		t.Fatalf("no STARTTLS in %q", cmds)
	}
	after := cmds[i+1:]
	for _, want := range []string{"LOGIN <redacted>", "APPEND INBOX", "EXAMINE INBOX", "UID FETCH", "LOGOUT", "STATUS INBOX"} {
		if !containsLine(after, want) {
			t.Errorf("commands after STARTTLS lack %q: %q", want, after)
		}
	}
}

func TestMemPlaintextWithTLSOffered(t *testing.T) {
	s := StartMem(t, MemOptions{Users: map[string]string{"u": "p"}, TLS: true})
	c, err := imapclient.DialInsecure(s.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Caps().Has(imap.CapStartTLS) {
		t.Errorf("STARTTLS not offered: %v", c.Caps())
	}
	if err := c.Login("u", "p").Wait(); err != nil {
		t.Fatalf("plaintext LOGIN refused without RequireTLS: %v", err)
	}
}

// Fake fixtures.

var (
	bodyA = []byte("Subject: a\r\n\r\nline1\r\n\x00nul\rbare-cr\nbare-lf\r\n.\r\nFrom x\r\n)\r\n* 1 FETCH (UID 99)\r\n")
	bodyB = []byte("Subject: b\r\n\r\n" + strings.Repeat("0123456789", 500) + "\r\n")
	dateA = time.Date(2022, 3, 4, 5, 6, 7, 0, time.FixedZone("", 3600))
)

func fakeOpts() FakeOptions {
	return FakeOptions{
		User:     "bob",
		Password: `p"w\d`,
		Folders: map[string][]FakeMessage{
			"INBOX": {
				{UID: 7, Flags: []string{`\Seen`, "$Label1"}, InternalDate: dateA, Body: bodyA},
				{UID: 9, Body: bodyB},
			},
			"Entwürfe":     {{UID: 3, Body: bodyA}},
			"Archive/2020": {{UID: 1, Body: bodyB}},
		},
	}
}

func dialFake(t *testing.T, f *Fake, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(f.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// watchdogConn gives every Read its own deadline and ignores the
// deadlines imapclient sets (it has none while waiting for a response).
// A read error is sticky: imapclient retries a failed read several times
// (four reads, so four full timeouts, before WaitGreeting gives up).
type watchdogConn struct {
	net.Conn
	timeout time.Duration

	mu      sync.Mutex
	readErr error
}

func (c *watchdogConn) Read(p []byte) (int, error) {
	if err := c.err(); err != nil {
		return 0, err
	}
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
	n, err := c.Conn.Read(p)
	if err != nil {
		c.mu.Lock()
		if c.readErr == nil {
			c.readErr = err
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *watchdogConn) SetReadDeadline(time.Time) error { return nil }

func (c *watchdogConn) SetDeadline(t time.Time) error { return c.Conn.SetWriteDeadline(t) }

func (c *watchdogConn) err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readErr
}

func dialWatched(t *testing.T, addr string) (*imapclient.Client, *watchdogConn) {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	wc := &watchdogConn{Conn: raw, timeout: time.Second}
	c := imapclient.New(wc, nil)
	t.Cleanup(func() { c.Close() })
	return c, wc
}

func TestFakeFetchExact(t *testing.T) {
	f := StartFake(t, fakeOpts())
	c := dialFake(t, f, "bob", `p"w\d`)

	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ID(&imap.IDData{Name: "test"}).Wait(); err != nil {
		t.Fatal(err)
	}
	if c.Caps().Has(imap.CapListStatus) || c.Caps().Has(imap.CapCondStore) || c.Caps().Has(imap.CapSpecialUse) {
		t.Errorf("unexpected caps %v", c.Caps())
	}

	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range list {
		names = append(names, l.Mailbox)
		if l.Delim != '/' {
			t.Errorf("delimiter %q", l.Delim)
		}
	}
	if want := []string{"INBOX", "Archive/2020", "Entwürfe"}; !slices.Equal(names, want) {
		t.Errorf("LIST: %q, want %q", names, want)
	}
	root, err := c.List("", "", nil).Collect()
	if err != nil || len(root) != 1 || root[0].Delim != '/' {
		t.Errorf(`LIST "" "": %+v, %v`, root, err)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || st.UIDNext != 10 || st.UIDValidity != 1000 || *st.NumUnseen != 1 {
		t.Errorf("STATUS: %+v", st)
	}

	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.NumMessages != 2 || sel.UIDValidity != 1000 || sel.UIDNext != 10 {
		t.Errorf("EXAMINE: %+v", sel)
	}
	uids, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if got := uids.AllUIDs(); !slices.Equal(got, []imap.UID{7, 9}) {
		t.Errorf("UID SEARCH ALL: %v", got)
	}

	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7, 9), peekAll()))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("got %d messages", len(msgs))
	}
	a, b := msgs[0], msgs[1]
	if a.uid != 7 || !bytes.Equal(a.body, bodyA) || a.size != int64(len(bodyA)) || !a.date.Equal(dateA) ||
		!hasImapFlag(a.flags, imap.FlagSeen) || !hasImapFlag(a.flags, "$Label1") {
		t.Errorf("message 7: %+v", a)
	}
	if b.uid != 9 || !bytes.Equal(b.body, bodyB) || len(b.flags) != 0 {
		t.Errorf("message 9: uid %d flags %v body equal %v", b.uid, b.flags, bytes.Equal(b.body, bodyB))
	}
	if a.order[0] != "UID" {
		t.Errorf("item order %v", a.order)
	}

	// Non-ASCII folder names travel as modified UTF-7.
	if sel, err := c.Select("Entwürfe", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil || sel.UIDValidity != f.UIDValidity("Entwürfe") {
		t.Fatalf("EXAMINE Entwürfe: %+v, %v", sel, err)
	}
	msgs, err = streamFetch(c, c.Fetch(imap.UIDSetNum(3), peekAll()))
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].body, bodyA) {
		t.Fatalf("fetch in Entwürfe: %+v, %v", msgs, err)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Error(err)
	}

	if got := f.Flags("INBOX"); len(got[7]) != 2 || len(got[9]) != 0 {
		t.Errorf("flags changed: %v", got)
	}
	cmds := f.Commands()
	for _, want := range []string{"LOGIN <redacted>", "ID (", "EXAMINE INBOX", `EXAMINE "Entw&APw-rfe"`, "UID FETCH 7,9", "LOGOUT"} {
		if !containsLine(cmds, want) {
			t.Errorf("Commands() lacks %q: %q", want, cmds)
		}
	}
	for _, l := range cmds {
		if strings.Contains(l, `p"w`) || containsLine([]string{l}, "SELECT") || containsLine([]string{l}, "STORE") {
			t.Errorf("unexpected command %q", l)
		}
	}
	if f.Connections() != 1 {
		t.Errorf("Connections() = %d", f.Connections())
	}
}

func TestFakeUIDAfterLiteral(t *testing.T) {
	opts := fakeOpts()
	opts.UIDAfterLiteral = true
	f := StartFake(t, opts)
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}

	// go-imap v2.0.0-beta.9 delivered nothing, and no error, for a UID
	// FETCH whose responses carry UID after the literal (NOTES.md hazard
	// 1); the patched copy in third_party/go-imap delivers the messages.
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7, 9), peekAll()))
	if err != nil {
		t.Fatalf("UID FETCH failed: %v", err)
	}
	if len(msgs) != 2 || msgs[0].uid != 7 || !bytes.Equal(msgs[0].body, bodyA) || msgs[0].order[0] != "BODY[]" ||
		msgs[1].uid != 9 || !bytes.Equal(msgs[1].body, bodyB) {
		t.Fatalf("UID FETCH delivered %+v, want UIDs 7 and 9 with their bodies, body first", msgs)
	}

	// By sequence number the messages arrive, UID after the body.
	msgs, err = streamFetch(c, c.Fetch(imap.SeqSetNum(1, 2), peekAll()))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("FETCH delivered %d messages", len(msgs))
	}
	if m := msgs[0]; m.uid != 7 || !bytes.Equal(m.body, bodyA) || m.order[0] != "BODY[]" || !slices.Contains(m.order, "UID") {
		t.Errorf("message 1: uid %d order %v", m.uid, m.order)
	}
	if m := msgs[1]; m.uid != 9 || !bytes.Equal(m.body, bodyB) {
		t.Errorf("message 2: uid %d", m.uid)
	}
}

func TestFakeOmitUIDInSeqFetch(t *testing.T) {
	opts := fakeOpts()
	opts.OmitUIDInSeqFetch = true
	f := StartFake(t, opts)
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.SeqSetNum(1), peekAll()))
	if err != nil || len(msgs) != 1 || msgs[0].uid != 0 || !bytes.Equal(msgs[0].body, bodyA) {
		t.Fatalf("FETCH 1: %+v, %v", msgs, err)
	}
	msgs, err = streamFetch(c, c.Fetch(imap.UIDSetNum(7), peekAll()))
	if err != nil || len(msgs) != 1 || msgs[0].uid != 7 {
		t.Fatalf("UID FETCH 7: %+v, %v", msgs, err)
	}
}

func TestFakeHang(t *testing.T) {
	steps := map[string]func(c *imapclient.Client) error{
		"greeting": func(c *imapclient.Client) error { return c.WaitGreeting() },
		"login":    func(c *imapclient.Client) error { return c.Login("bob", `p"w\d`).Wait() },
		"list": func(c *imapclient.Client) error {
			_, err := c.List("", "*", nil).Collect()
			return err
		},
		"examine": func(c *imapclient.Client) error {
			_, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
			return err
		},
		"fetch": func(c *imapclient.Client) error {
			_, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7, 9), peekAll()))
			return err
		},
	}
	order := []string{"greeting", "login", "list", "examine", "fetch"}
	for i, point := range order {
		t.Run(point, func(t *testing.T) {
			opts := fakeOpts()
			opts.HangAt = point
			f := StartFake(t, opts)
			c, wc := dialWatched(t, f.Addr)
			for _, before := range order[:i] {
				if err := steps[before](c); err != nil {
					t.Fatalf("%s: %v", before, err)
				}
			}
			start := time.Now()
			err := steps[point](c)
			if err == nil {
				t.Fatalf("%s succeeded on a hung server", point)
			}
			t.Logf("%s failed after %v: %v", point, time.Since(start), err)
			if d := time.Since(start); d < 900*time.Millisecond || d > 3*time.Second {
				t.Errorf("%s failed after %v, want about 1s", point, d)
			}
			if rerr := wc.err(); !errors.Is(rerr, os.ErrDeadlineExceeded) {
				t.Errorf("read error %v, want a deadline (the connection must stay open)", rerr)
			}
		})
	}
}

func TestFakeHangFetchHalfLiteral(t *testing.T) {
	opts := fakeOpts()
	opts.HangAt = "fetch"
	f := StartFake(t, opts)
	c, wc := dialWatched(t, f.Addr)
	if err := c.Login("bob", `p"w\d`).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7), peekAll()))
	if err == nil {
		t.Fatal("fetch succeeded")
	}
	if len(msgs) != 1 || !bytes.Equal(msgs[0].body, bodyA[:len(bodyA)/2]) {
		t.Errorf("got %+v, want the first half of the body", msgs)
	}
	if !errors.Is(wc.err(), os.ErrDeadlineExceeded) {
		t.Errorf("read error %v", wc.err())
	}
}

func TestFakeCutFetch(t *testing.T) {
	opts := fakeOpts()
	opts.CutAt = "fetch"
	f := StartFake(t, opts)
	c, wc := dialWatched(t, f.Addr)
	if err := c.Login("bob", `p"w\d`).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7, 9), peekAll()))
	if err == nil {
		t.Fatal("fetch succeeded on a cut connection")
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("cut noticed after %v", d)
	}
	// go-imap hazard: the literal reader reports a cut as a normal end.
	if len(msgs) != 1 || msgs[0].litErr != nil || !bytes.Equal(msgs[0].body, bodyA[:len(bodyA)/2]) || msgs[0].litSize != int64(len(bodyA)) {
		t.Errorf("got %d messages; first: body %d of %d bytes, literal error %v", len(msgs), len(msgs[0].body), msgs[0].litSize, msgs[0].litErr)
	}
	if rerr := wc.err(); rerr == nil || errors.Is(rerr, os.ErrDeadlineExceeded) {
		t.Errorf("read error %v, want EOF or reset", rerr)
	}
}

func TestFakeHangOnce(t *testing.T) {
	opts := fakeOpts()
	opts.HangAt = "fetch"
	opts.HangOnce = true
	f := StartFake(t, opts)

	c1, _ := dialWatched(t, f.Addr)
	if err := c1.Login("bob", `p"w\d`).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c1.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := streamFetch(c1, c1.Fetch(imap.UIDSetNum(7, 9), peekAll())); err == nil {
		t.Fatal("first connection did not hang")
	}

	c2 := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c2.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c2, c2.Fetch(imap.UIDSetNum(7, 9), peekAll()))
	if err != nil || len(msgs) != 2 || !bytes.Equal(msgs[1].body, bodyB) {
		t.Fatalf("second connection: %d messages, %v", len(msgs), err)
	}
	if n := f.Connections(); n != 2 {
		t.Errorf("Connections() = %d", n)
	}
}

func TestFakeFailFolder(t *testing.T) {
	opts := fakeOpts()
	opts.FailFolder = "Archive/2020"
	f := StartFake(t, opts)
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("Archive/2020", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE of the failing folder: %v", err)
	}
	_, err := streamFetch(c, c.Fetch(imap.UIDSetNum(1), peekAll()))
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo || imapErr.Code != imap.ResponseCodeServerBug {
		t.Fatalf("fetch error %v, want NO [SERVERBUG]", err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("fetch without body: %v, %v", msgs, err)
	}
	// Other folders work on the same connection.
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(9), peekAll())); err != nil || len(msgs) != 1 {
		t.Fatalf("INBOX after the failure: %v, %v", msgs, err)
	}
}

func TestFakeBodyWithoutPeekSetsSeen(t *testing.T) {
	f := StartFake(t, fakeOpts())
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := streamFetch(c, c.Fetch(imap.UIDSetNum(9), peekAll())); err != nil {
		t.Fatal(err)
	}
	if got := f.Flags("INBOX")[9]; len(got) != 0 {
		t.Fatalf("BODY.PEEK[] changed flags: %v", got)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(9), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}))
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].body, bodyB) {
		t.Fatalf("fetch: %+v, %v", msgs, err)
	}
	if !hasImapFlag(msgs[0].flags, imap.FlagSeen) {
		t.Errorf("FETCH response flags %v, want the new \\Seen", msgs[0].flags)
	}
	if got := f.Flags("INBOX")[9]; !slices.Contains(got, `\Seen`) {
		t.Errorf("flags after BODY[]: %v, want \\Seen", got)
	}
	if !containsLine(f.Commands(), "UID FETCH 9 (UID BODY[])") {
		t.Errorf("commands: %q", f.Commands())
	}
}

func TestFakeStoreExpunge(t *testing.T) {
	f := StartFake(t, fakeOpts())
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}
	if _, err := c.Store(imap.UIDSetNum(7), store, nil).Collect(); err != nil {
		t.Fatal(err)
	}
	if got := f.Flags("INBOX")[7]; !slices.Contains(got, `\Deleted`) {
		t.Fatalf("flags after STORE: %v", got)
	}
	if _, err := c.Expunge().Collect(); err != nil {
		t.Fatal(err)
	}
	got := f.Flags("INBOX")
	if _, ok := got[7]; ok || len(got) != 1 {
		t.Fatalf("after EXPUNGE: %v", got)
	}
	cmds := f.Commands()
	for _, want := range []string{"SELECT INBOX", "UID STORE 7 +FLAGS", "EXPUNGE"} {
		if !containsLine(cmds, want) {
			t.Errorf("Commands() lacks %q: %q", want, cmds)
		}
	}
}

func TestFakeLogin(t *testing.T) {
	opts := fakeOpts()
	opts.Password = "pässwörd\r\n" // sent as a literal
	f := StartFake(t, opts)

	c, err := imapclient.DialInsecure(f.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Login("bob", "wrong").Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo ||
		imapErr.Code != imap.ResponseCodeAuthenticationFailed || imapErr.Text != "Invalid credentials" {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Login("bob", opts.Password).Wait(); err != nil {
		t.Fatalf("literal password: %v", err)
	}
	if _, err := c.List("", "*", nil).Collect(); err != nil {
		t.Fatal(err)
	}
	for _, l := range f.Commands() {
		if strings.Contains(l, "wrong") || strings.Contains(l, "ss") {
			t.Errorf("password in Commands(): %q", l)
		}
	}
	if n := strings.Count(strings.Join(f.Commands(), "\n"), "LOGIN <redacted>"); n != 2 {
		t.Errorf("%d redacted LOGINs in %q", n, f.Commands())
	}
}

func TestFakeUnknownCommand(t *testing.T) {
	f := StartFake(t, fakeOpts())
	c := dialFake(t, f, "bob", `p"w\d`)
	err := c.Create("New", nil).Wait()
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeBad {
		t.Fatalf("CREATE: %v, want BAD", err)
	}
	// LIST-STATUS is not offered; a client that asks anyway gets BAD.
	_, err = c.List("", "*", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true}}).Collect()
	if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeBad {
		t.Fatalf("LIST RETURN (STATUS): %v, want BAD", err)
	}
}

func TestRecorder(t *testing.T) {
	var log cmdLog
	r := &lineRecorder{log: &log}
	in := "a1 LOGIN {3}\r\nbob {5+}\r\nsec\r\nt\r\n" +
		"a2 APPEND INBOX (\\Seen) {11}\r\nhello\r\nA3 X\r\n\r\n" +
		"a4 UID FETCH 1:* (UID BODY.PEEK[])\r\n" +
		"a5 AUTHENTICATE PLAIN AGJvYgBwdw==\r\n" +
		"a6 AUTHENTICATE PLAIN\r\nAGJvYgBwdw==\r\n" +
		"a7 IDLE\r\nDONE\r\n"
	// Feed one byte at a time to exercise the state machine.
	for i := 0; i < len(in); i++ {
		if _, err := r.Write([]byte{in[i]}); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{
		"LOGIN <redacted>",
		`APPEND INBOX (\Seen) {11}`,
		"UID FETCH 1:* (UID BODY.PEEK[])",
		"AUTHENTICATE PLAIN <redacted>",
		"AUTHENTICATE PLAIN",
		"<redacted>",
		"IDLE",
		"DONE",
	}
	if got := log.snapshot(); !slices.Equal(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestMUTF7(t *testing.T) {
	for _, tc := range []struct{ dec, enc string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"A&B", "A&-B"},
		{"日本語/メール", "&ZeVnLIqe-/&MOEw,DDr-"},
		{"😀", "&2D3eAA-"},
	} {
		if got := encodeMUTF7(tc.dec); got != tc.enc {
			t.Errorf("encode(%q) = %q, want %q", tc.dec, got, tc.enc)
		}
		if got, err := decodeMUTF7(tc.enc); err != nil || got != tc.dec {
			t.Errorf("decode(%q) = %q, %v", tc.enc, got, err)
		}
	}
}

func TestReadServerAndFlagSet(t *testing.T) {
	s := StartMem(t, MemOptions{Users: map[string]string{"u": "p"}})
	c := s.Dial(t, "u", "p")
	Create(t, c, "Empty")
	Create(t, c, "Año/Facturas")
	date := time.Date(2021, 1, 2, 3, 4, 5, 0, time.UTC)
	Append(t, c, "Año/Facturas", []imap.Flag{"$Label1", imap.FlagSeen}, date, bodyA)
	Append(t, c, "Año/Facturas", nil, date, bodyB)

	got := ReadServer(t, c)
	if len(got) != 3 || got["Empty"] == nil || len(got["Empty"]) != 0 || len(got["INBOX"]) != 0 {
		t.Fatalf("folders: %v", got)
	}
	msgs := got["Año/Facturas"]
	if len(msgs) != 2 || msgs[0].UID != 1 || msgs[1].UID != 2 || !bytes.Equal(msgs[0].Body, bodyA) ||
		!msgs[0].InternalDate.Equal(date) || len(msgs[0].SHA256) != 64 ||
		strings.Join(msgs[0].Flags, " ") != `$label1 \seen` || len(msgs[1].Flags) != 0 {
		t.Errorf("messages: %+v", msgs)
	}
	for _, l := range s.Commands() {
		if strings.HasPrefix(l, "SELECT") || strings.Contains(l, "BODY[]") {
			t.Errorf("ReadServer sent %q", l)
		}
	}

	f := StartFake(t, fakeOpts())
	fromFake := ReadServer(t, dialFake(t, f, "bob", `p"w\d`))
	if len(fromFake) != 3 || len(fromFake["INBOX"]) != 2 || !bytes.Equal(fromFake["Entwürfe"][0].Body, bodyA) {
		t.Errorf("fake: %v", fromFake)
	}

	if got := FlagSet([]string{`\Seen`, "$Label1", `\Recent`, `\Flagged`}); strings.Join(got, " ") != `$label1 \flagged \seen` {
		t.Errorf("FlagSet = %q", got)
	}
}

// TestFakeAnswer: scripted answers replace the fake's own, tagged or
// untagged, and a BYE closes the connection.
func TestFakeAnswer(t *testing.T) {
	opts := fakeOpts()
	var seen []string
	var mu sync.Mutex
	opts.Answer = func(conn int, name string, n int) string {
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%d %s %d", conn, name, n))
		mu.Unlock()
		switch {
		case name == "EXAMINE" && n == 1:
			return "NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 250 milliseconds"
		case name == "EXAMINE" && n == 2:
			// Late enough that the client has written the NOOP pipelined
			// after it before it reads the BYE.
			time.Sleep(200 * time.Millisecond)
			return "BAD Request is throttled. Suggested Backoff Time: 300 milliseconds\r\n* BYE Connection closed. 14"
		}
		return ""
	}
	f := StartFake(t, opts)
	c := dialFake(t, f, "bob", `p"w\d`)
	_, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeUnavailable || !strings.Contains(ie.Text, "250 milliseconds") {
		t.Fatalf("EXAMINE #1 = %v, want the scripted NO", err)
	}
	// A command pipelined after the one answered with BYE fails with it.
	examine := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true})
	noop := c.Noop()
	if _, err = examine.Wait(); !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeBad {
		t.Fatalf("EXAMINE #2 = %v, want the scripted BAD", err)
	}
	var bye *imapclient.ByeError
	if err = noop.Wait(); !errors.As(err, &bye) || bye.Text != "Connection closed. 14" {
		t.Fatalf("NOOP after the BYE = %v, want the BYE", err)
	}
	c2 := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c2.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatalf("EXAMINE #3 = %v, want the fake's own answer", err)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"1 LOGIN 1", "1 EXAMINE 1", "1 EXAMINE 2", "2 LOGIN 2", "2 EXAMINE 3"}
	var got []string
	for _, s := range seen {
		if !strings.Contains(s, "CAPABILITY") {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("Answer asked about %v, want %v", got, want)
	}
}

// TestFakeBandwidthCap: once the bodies served reach the cap, FETCH gets
// Gmail's BYE.
func TestFakeBandwidthCap(t *testing.T) {
	opts := fakeOpts()
	opts.BandwidthCap = int64(len(bodyA)) + 1 // the first body fits, the second does not
	f := StartFake(t, opts)
	c := dialFake(t, f, "bob", `p"w\d`)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := streamFetch(c, c.Fetch(imap.UIDSetNum(7, 9), peekAll()))
	var bye *imapclient.ByeError
	if !errors.As(err, &bye) || bye.Code != imap.ResponseCodeOverQuota || len(msgs) != 1 || msgs[0].uid != 7 {
		t.Fatalf("UID FETCH 7,9 = %d messages, %v; want message 7 then the BYE", len(msgs), err)
	}
}
