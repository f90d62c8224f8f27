package pop3test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/migadu/go-pop3/pop3client"
)

const (
	testUser = "alice@example.org"
	testPass = "s3cret pass"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func dial(t *testing.T, s *Server, o pop3client.Options) *pop3client.Client {
	t.Helper()
	if o.MaxLineLength == 0 {
		o.MaxLineLength = 1 << 20
	}
	c, err := pop3client.Dial(ctxFor(t), s.Addr, o)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func login(t *testing.T, s *Server) *pop3client.Client {
	t.Helper()
	c := dial(t, s, pop3client.Options{})
	if err := c.User(ctxFor(t), testUser, testPass); err != nil {
		t.Fatalf("User: %v", err)
	}
	return c
}

func readAll(t *testing.T, rc io.ReadCloser, err error) []byte {
	t.Helper()
	if err != nil {
		t.Fatalf("retrieve: %v", err)
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	if err := rc.Close(); err != nil {
		t.Fatalf("close body: %v", err)
	}
	return b
}

func retr(t *testing.T, c *pop3client.Client, n int) []byte {
	t.Helper()
	rc, err := c.Retr(ctxFor(t), n)
	return readAll(t, rc, err)
}

func topOf(t *testing.T, c *pop3client.Client, n, lines int) []byte {
	t.Helper()
	rc, err := c.Top(ctxFor(t), n, lines)
	return readAll(t, rc, err)
}

// wantErr checks that err is a -ERR response containing want.
func wantErr(t *testing.T, err error, want string) {
	t.Helper()
	var pe *pop3client.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want a -ERR response containing %q", err, want)
	}
	if !strings.HasPrefix(pe.Response, "-ERR") || !strings.Contains(pe.Response, want) {
		t.Fatalf("got response %q, want -ERR containing %q", pe.Response, want)
	}
}

var (
	plainMsg = Message{UIDL: "u1", Body: []byte("From: a@example.org\r\nSubject: one\r\n\r\nline1\r\nline2\r\nline3\r\n")}
	dotMsg   = Message{UIDL: "u2", Body: []byte("Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n...\r\n.\r\n")}
	bigMsg   = Message{UIDL: "u3", Body: bigBody()}
)

// bigBody has a 100 KB line starting with ".", every byte but CR and LF, and
// a bare CR in a line.
func bigBody() []byte {
	var b bytes.Buffer
	b.WriteString("Subject: =?utf-8?q?gro=C3=9F?=\r\nX-Raw: gr\xc3\xb6\xc3\x9f\xff\r\n\r\n")
	b.WriteString(".")
	b.Write(bytes.Repeat([]byte("0123456789"), 10<<10))
	b.WriteString("\r\n")
	for c := 0; c < 256; c++ {
		if c != '\r' && c != '\n' {
			b.WriteByte(byte(c))
		}
	}
	b.WriteString("\r\nbare\rcr\r\n.\r\nlast\r\n")
	return b.Bytes()
}

func startBasic(t *testing.T, o Options) *Server {
	o.User, o.Password = testUser, testPass
	if o.Messages == nil {
		o.Messages = []Message{plainMsg, dotMsg, bigMsg}
	}
	return Start(t, o)
}

func TestSessionBasics(t *testing.T) {
	s := startBasic(t, Options{})
	ctx := ctxFor(t)
	c := dial(t, s, pop3client.Options{})
	if g := c.Greeting(); g != "+OK POP3 ready" {
		t.Errorf("greeting %q", g)
	}
	caps, err := c.Capa(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"USER", "UIDL", "TOP", "RESP-CODES", "PIPELINING"} {
		if !slices.Contains(caps, want) {
			t.Errorf("CAPA %q lacks %s", caps, want)
		}
	}
	if slices.Contains(caps, "STLS") {
		t.Errorf("CAPA %q offers STLS", caps)
	}
	if _, _, err := c.Stat(ctx); err == nil {
		t.Errorf("STAT before login succeeded")
	}
	if err := c.User(ctx, testUser, testPass); err != nil {
		t.Fatal(err)
	}

	msgs := []Message{plainMsg, dotMsg, bigMsg}
	total := 0
	for _, m := range msgs {
		total += len(m.Body)
	}
	n, size, err := c.Stat(ctx)
	if err != nil || n != 3 || size != int64(total) {
		t.Errorf("STAT = %d %d %v, want 3 %d", n, size, err, total)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 3 {
		t.Fatalf("LIST = %v %v", list, err)
	}
	uidl, err := c.Uidl(ctx)
	if err != nil || len(uidl) != 3 {
		t.Fatalf("UIDL = %v %v", uidl, err)
	}
	for i, m := range msgs {
		if list[i].Num != i+1 || list[i].Size != int64(len(m.Body)) {
			t.Errorf("LIST[%d] = %+v, want %d %d", i, list[i], i+1, len(m.Body))
		}
		if uidl[i].Num != i+1 || uidl[i].UniqueID != m.UIDL {
			t.Errorf("UIDL[%d] = %+v, want %d %s", i, uidl[i], i+1, m.UIDL)
		}
		one, err := c.ListOne(ctx, i+1)
		if err != nil || one != list[i] {
			t.Errorf("LIST %d = %+v %v", i+1, one, err)
		}
		u, err := c.UidlOne(ctx, i+1)
		if err != nil || u != uidl[i] {
			t.Errorf("UIDL %d = %+v %v", i+1, u, err)
		}
	}
	if _, err := c.ListOne(ctx, 4); err == nil {
		t.Errorf("LIST 4 succeeded")
	}

	// TOP first: it must not mark anything seen.
	for i, m := range msgs {
		if got := topOf(t, c, i+1, 2147483647); !bytes.Equal(got, m.Body) {
			t.Errorf("TOP %d 2147483647: got %d bytes, want the %d-byte body", i+1, len(got), len(m.Body))
		}
	}
	if got := s.Seen(); len(got) != 0 {
		t.Errorf("Seen after TOP = %v", got)
	}
	for i, m := range msgs {
		if got := retr(t, c, i+1); !bytes.Equal(got, m.Body) {
			t.Errorf("RETR %d: got %d bytes, want %d; differ at %d", i+1, len(got), len(m.Body), firstDiff(got, m.Body))
		}
		if !s.Seen()[m.UIDL] {
			t.Errorf("RETR %d did not mark %s seen", i+1, m.UIDL)
		}
	}
	if err := c.Noop(ctx); err != nil {
		t.Errorf("NOOP: %v", err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Errorf("QUIT: %v", err)
	}

	cmds := s.Commands()
	if !slices.Contains(cmds, "PASS <redacted>") || !slices.Contains(cmds, "USER "+testUser) {
		t.Errorf("Commands = %q", cmds)
	}
	for _, l := range cmds {
		if strings.Contains(l, "s3cret") {
			t.Errorf("password recorded: %q", l)
		}
	}
	if cmds[len(cmds)-1] != "QUIT" || !slices.Contains(cmds, "TOP 3 2147483647") || !slices.Contains(cmds, "RETR 2") {
		t.Errorf("Commands = %q", cmds)
	}
	if got := s.Sessions(); got != 1 {
		t.Errorf("Sessions = %d", got)
	}
	if got := s.Messages(); len(got) != 3 {
		t.Errorf("Messages after read-only session = %d", len(got))
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestTop(t *testing.T) {
	noBlank := Message{UIDL: "nb", Body: []byte("Subject: only header\r\nX: y\r\n")}
	noFinalCRLF := Message{UIDL: "nf", Body: []byte("Subject: s\r\n\r\nb1\r\nb2")}
	s := startBasic(t, Options{Messages: []Message{plainMsg, dotMsg, noBlank, noFinalCRLF}})
	c := login(t, s)
	const hdr = "From: a@example.org\r\nSubject: one\r\n\r\n"
	for _, tc := range []struct {
		msg, n int
		want   string
	}{
		{1, 0, hdr},
		{1, 1, hdr + "line1\r\n"},
		{1, 2, hdr + "line1\r\nline2\r\n"},
		{1, 3, string(plainMsg.Body)},
		{1, 4, string(plainMsg.Body)},
		{2, 1, "Subject: dots\r\n\r\n.\r\n"},
		{2, 3, "Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\n"},
		{3, 0, string(noBlank.Body)},
		{3, 5, string(noBlank.Body)},
		{4, 1, "Subject: s\r\n\r\nb1\r\n"},
		// The server adds the missing final CRLF; the client would add it anyway.
		{4, 2, "Subject: s\r\n\r\nb1\r\nb2\r\n"},
	} {
		if got := topOf(t, c, tc.msg, tc.n); string(got) != tc.want {
			t.Errorf("TOP %d %d = %q, want %q", tc.msg, tc.n, got, tc.want)
		}
	}
	if got := s.Seen(); len(got) != 0 {
		t.Errorf("Seen after TOP = %v", got)
	}
	// Arguments the client cannot send, on the wire.
	r := rawLogin(t, s)
	r.send("TOP 1 99999999999999999999999")
	if st, body := r.multi(); !strings.HasPrefix(st, "+OK") || body != string(plainMsg.Body) {
		t.Errorf("TOP 1 huge = %q %q", st, body)
	}
	for _, cmd := range []string{"TOP 1 -1", "TOP 1", "TOP 1 x", "TOP 0 1", "TOP 5 1"} {
		r.send(cmd)
		if l := r.line(); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("%s = %q", cmd, l)
		}
	}
}

func TestDeleQuitCommits(t *testing.T) {
	s := startBasic(t, Options{})
	ctx := ctxFor(t)
	c := login(t, s)
	if err := c.Dele(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// Deleted in this session: not listed, not retrievable, not counted.
	if err := c.Dele(ctx, 1); err == nil {
		t.Errorf("second DELE 1 succeeded")
	}
	if _, err := c.Retr(ctx, 1); err == nil {
		t.Errorf("RETR of a deleted message succeeded")
	}
	if _, err := c.Top(ctx, 1, 0); err == nil {
		t.Errorf("TOP of a deleted message succeeded")
	}
	if _, err := c.ListOne(ctx, 1); err == nil {
		t.Errorf("LIST of a deleted message succeeded")
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 2 || list[0].Num != 2 || list[1].Num != 3 {
		t.Errorf("LIST after DELE 1 = %+v %v", list, err)
	}
	uidl, err := c.Uidl(ctx)
	if err != nil || len(uidl) != 2 || uidl[0].UniqueID != "u2" {
		t.Errorf("UIDL after DELE 1 = %+v %v", uidl, err)
	}
	if n, size, _ := c.Stat(ctx); n != 2 || size != int64(len(dotMsg.Body)+len(bigMsg.Body)) {
		t.Errorf("STAT after DELE 1 = %d %d", n, size)
	}
	// Numbers stay fixed within the session.
	if got := retr(t, c, 2); !bytes.Equal(got, dotMsg.Body) {
		t.Errorf("RETR 2 after DELE 1 = %q", got)
	}
	if err := c.Dele(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 3 {
		t.Errorf("deletion committed before QUIT")
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 1 || got[0].UIDL != "u2" || !bytes.Equal(got[0].Body, dotMsg.Body) {
		t.Errorf("Messages after DELE 1, DELE 3, QUIT = %v", got)
	}

	// The next session numbers from 1 again.
	c2 := login(t, s)
	u, err := c2.UidlOne(ctx, 1)
	if err != nil || u.UniqueID != "u2" {
		t.Errorf("UIDL 1 in the next session = %+v %v", u, err)
	}
}

func TestDeleWithoutQuitCommitsNothing(t *testing.T) {
	s := startBasic(t, Options{})
	ctx := ctxFor(t)

	// Client closes the connection.
	c := login(t, s)
	if err := c.Dele(ctx, 1); err != nil {
		t.Fatal(err)
	}
	c.Close()

	// RSET then QUIT.
	c = login(t, s)
	if err := c.Dele(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Rset(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _, _ := c.Stat(ctx); n != 3 {
		t.Errorf("STAT after RSET = %d", n)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}

	// The server shuts down with a session open.
	t.Run("shutdown", func(t *testing.T) {
		var s2 *Server
		t.Cleanup(func() { // runs after the server's own cleanup
			if n := len(s2.Messages()); n != 3 {
				t.Errorf("shutdown committed a deletion: %d messages", n)
			}
		})
		s2 = startBasic(t, Options{})
		c := login(t, s2)
		if err := c.Dele(ctxFor(t), 1); err != nil {
			t.Fatal(err)
		}
	})

	waitFor(t, func() bool { return s.Sessions() == 2 })
	if got := s.Messages(); len(got) != 3 {
		t.Errorf("Messages = %d, want 3", len(got))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAddRemove(t *testing.T) {
	s := startBasic(t, Options{})
	ctx := ctxFor(t)

	c := login(t, s)
	s.Add(Message{UIDL: "u4", Body: []byte("Subject: new\r\n\r\nnew\r\n")})
	s.Remove("u1")
	// The logged-in session keeps its snapshot and numbering.
	if n, _, _ := c.Stat(ctx); n != 3 {
		t.Errorf("STAT in the old session = %d, want 3", n)
	}
	if _, err := c.Retr(ctx, 1); err == nil {
		t.Errorf("RETR of a message removed by another client succeeded")
	}
	if got := retr(t, c, 2); !bytes.Equal(got, dotMsg.Body) {
		t.Errorf("RETR 2 in the old session = %q", got)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}

	c = login(t, s)
	uidl, err := c.Uidl(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range uidl {
		ids = append(ids, u.UniqueID)
	}
	if !slices.Equal(ids, []string{"u2", "u3", "u4"}) || uidl[0].Num != 1 {
		t.Errorf("UIDL after Add/Remove = %+v", uidl)
	}
	if got := retr(t, c, 3); string(got) != "Subject: new\r\n\r\nnew\r\n" {
		t.Errorf("RETR 3 = %q", got)
	}
}

func TestNoUIDLNoTOP(t *testing.T) {
	s := startBasic(t, Options{NoUIDL: true, NoTOP: true})
	ctx := ctxFor(t)
	c := login(t, s)
	caps, err := c.Capa(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(caps, "UIDL") || slices.Contains(caps, "TOP") || !slices.Contains(caps, "USER") {
		t.Errorf("CAPA = %q", caps)
	}
	_, err = c.Uidl(ctx)
	wantErr(t, err, "")
	_, err = c.UidlOne(ctx, 1)
	wantErr(t, err, "")
	_, err = c.Top(ctx, 1, 0)
	wantErr(t, err, "")
	// The session is still usable.
	if got := retr(t, c, 1); !bytes.Equal(got, plainMsg.Body) {
		t.Errorf("RETR 1 = %q", got)
	}
}

func TestFailRetr(t *testing.T) {
	s := startBasic(t, Options{FailRetr: "u2"})
	ctx := ctxFor(t)
	c := login(t, s)
	_, err := c.Retr(ctx, 2)
	wantErr(t, err, "simulated failure")
	_, err = c.Top(ctx, 2, 0)
	wantErr(t, err, "simulated failure")
	if s.Seen()["u2"] {
		t.Errorf("failed RETR marked the message seen")
	}
	if got := retr(t, c, 3); !bytes.Equal(got, bigMsg.Body) {
		t.Errorf("RETR 3 after the failure differs")
	}
	if _, err := c.List(ctx); err != nil {
		t.Errorf("LIST after the failure: %v", err)
	}
}

// cutRead retrieves message n of a cut session and returns what the client
// delivered and the error io.ReadAll reported.
func cutRead(t *testing.T, c *pop3client.Client, n int) ([]byte, error) {
	t.Helper()
	rc, err := c.Retr(ctxFor(t), n)
	if err != nil {
		t.Fatalf("RETR %d: %v", n, err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	return got, err
}

func TestCutRetr(t *testing.T) {
	for _, once := range []bool{false, true} {
		t.Run(map[bool]string{false: "always", true: "once"}[once], func(t *testing.T) {
			s := startBasic(t, Options{CutRetr: "u3", CutOnce: once})
			ctx := ctxFor(t)
			c := login(t, s)
			if got := retr(t, c, 1); !bytes.Equal(got, plainMsg.Body) {
				t.Errorf("RETR 1 = %q", got)
			}
			if err := c.Dele(ctx, 1); err != nil {
				t.Fatal(err)
			}
			got, err := cutRead(t, c, 3)
			t.Logf("cut RETR: %d of %d bytes, io.ReadAll error %v", len(got), len(bigMsg.Body), err)
			if len(got) >= len(bigMsg.Body) || len(got) < len(bigMsg.Body)/3 {
				t.Errorf("cut RETR delivered %d of %d bytes", len(got), len(bigMsg.Body))
			}
			if err := c.Noop(ctx); err == nil {
				t.Errorf("NOOP after the cut succeeded")
			}
			if s.Seen()["u3"] {
				t.Errorf("cut RETR marked the message seen")
			}
			if len(s.Messages()) != 3 {
				t.Errorf("cut session committed its DELE")
			}

			c = login(t, s)
			if once {
				if got := retr(t, c, 3); !bytes.Equal(got, bigMsg.Body) {
					t.Errorf("RETR 3 in the second session differs")
				}
				if !s.Seen()["u3"] {
					t.Errorf("RETR 3 not marked seen")
				}
				return
			}
			if _, err := c.Top(ctx, 3, 0); err != nil {
				t.Fatal(err)
			}
			if err := c.Noop(ctx); err == nil {
				t.Errorf("NOOP after a cut TOP succeeded")
			}
		})
	}
}

func TestLocked(t *testing.T) {
	s := startBasic(t, Options{Locked: true})
	ctx := ctxFor(t)
	c := dial(t, s, pop3client.Options{})
	err := c.User(ctx, testUser, testPass)
	wantErr(t, err, "[IN-USE] Mailbox is locked by another client")
	err = c.AuthPlain(ctx, "", testUser, testPass)
	wantErr(t, err, "[IN-USE]")
	// Wrong credentials still say so.
	err = c.User(ctx, testUser, "wrong")
	wantErr(t, err, "[AUTH] Authentication failed")
}

func TestAuthentication(t *testing.T) {
	s := startBasic(t, Options{})
	ctx := ctxFor(t)
	c := dial(t, s, pop3client.Options{})
	wantErr(t, c.User(ctx, testUser, "wrong"), "[AUTH] Authentication failed")
	wantErr(t, c.User(ctx, "bob", testPass), "[AUTH] Authentication failed")
	wantErr(t, c.AuthPlain(ctx, "", testUser, "wrong"), "[AUTH] Authentication failed")
	if err := c.AuthPlain(ctx, "", testUser, testPass); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 3 {
		t.Errorf("STAT = %d %v", n, err)
	}
	for _, l := range s.Commands() {
		if strings.Contains(l, "s3cret") || strings.Contains(l, "wrong") && !strings.HasSuffix(l, "<redacted>") {
			t.Errorf("secret recorded: %q", l)
		}
	}
	if !slices.Contains(s.Commands(), "AUTH PLAIN <redacted>") {
		t.Errorf("Commands = %q", s.Commands())
	}
}

func caPool(t *testing.T, s *Server) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no certificate in CAFile")
	}
	return pool
}

func TestSTLS(t *testing.T) {
	s := startBasic(t, Options{STLS: true})
	ctx := ctxFor(t)
	if s.CAFile == "" {
		t.Fatal("no CAFile")
	}

	plain := dial(t, s, pop3client.Options{})
	caps, err := plain.Capa(ctx)
	if err != nil || !slices.Contains(caps, "STLS") {
		t.Fatalf("CAPA = %q %v", caps, err)
	}
	plain.Close()

	// pop3client does not derive ServerName from the address: without it
	// Dial fails ("either ServerName or InsecureSkipVerify must be specified").
	c := dial(t, s, pop3client.Options{STARTTLS: true, TLSConfig: &tls.Config{RootCAs: caPool(t, s), ServerName: "127.0.0.1"}})
	if _, ok := c.Conn().(*tls.Conn); !ok {
		t.Fatalf("connection is %T after STLS", c.Conn())
	}
	caps, err = c.Capa(ctx)
	if err != nil || slices.Contains(caps, "STLS") {
		t.Errorf("CAPA after STLS = %q %v", caps, err)
	}
	if err := c.User(ctx, testUser, testPass); err != nil {
		t.Fatal(err)
	}
	if got := retr(t, c, 3); !bytes.Equal(got, bigMsg.Body) {
		t.Errorf("RETR 3 over TLS differs")
	}
	if _, err := c.Cmd(ctx, "STLS"); err != nil {
		t.Fatal(err)
	}

	// Verification by host name works too.
	byName, err := pop3client.Dial(ctx, s.Addr, pop3client.Options{STARTTLS: true,
		TLSConfig: &tls.Config{RootCAs: caPool(t, s), ServerName: "localhost"}})
	if err != nil {
		t.Errorf("STLS with ServerName localhost: %v", err)
	} else {
		byName.Close()
	}

	// Without the CA the handshake fails.
	if c, err := pop3client.Dial(ctx, s.Addr, pop3client.Options{STARTTLS: true, TLSConfig: &tls.Config{ServerName: "127.0.0.1"}}); err == nil {
		c.Close()
		t.Errorf("STLS without trusting CAFile succeeded")
	} else if !strings.Contains(err.Error(), "certificate") {
		t.Errorf("STLS without trusting CAFile: %v", err)
	}
}

func TestRequireTLS(t *testing.T) {
	s := startBasic(t, Options{STLS: true, RequireTLS: true})
	ctx := ctxFor(t)
	plain := dial(t, s, pop3client.Options{})
	wantErr(t, plain.User(ctx, testUser, testPass), "[AUTH] TLS required")
	wantErr(t, plain.AuthPlain(ctx, "", testUser, testPass), "[AUTH] TLS required")
	st, err := plain.Cmd(ctx, "PASS "+testPass)
	if err != nil || st != "-ERR [AUTH] TLS required" {
		t.Errorf("PASS before STLS = %q %v", st, err)
	}

	c := dial(t, s, pop3client.Options{STARTTLS: true, TLSConfig: &tls.Config{RootCAs: caPool(t, s), ServerName: "127.0.0.1"}})
	if err := c.User(ctx, testUser, testPass); err != nil {
		t.Fatal(err)
	}
	if n, _, err := c.Stat(ctx); err != nil || n != 3 {
		t.Errorf("STAT = %d %v", n, err)
	}
}

// raw is a hand-driven connection, for what the client cannot send or hides.
type raw struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func rawDial(t *testing.T, s *Server) *raw {
	t.Helper()
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	r := &raw{t: t, c: c, r: bufio.NewReader(c)}
	if g := r.line(); g != "+OK POP3 ready" {
		t.Fatalf("greeting %q", g)
	}
	return r
}

func rawLogin(t *testing.T, s *Server) *raw {
	r := rawDial(t, s)
	r.send("USER " + testUser + "\r\nPASS " + testPass)
	if a, b := r.line(), r.line(); !strings.HasPrefix(a, "+OK") || !strings.HasPrefix(b, "+OK") {
		t.Fatalf("login: %q %q", a, b)
	}
	return r
}

func (r *raw) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s+"\r\n"); err != nil {
		r.t.Fatal(err)
	}
}

// line reads a line and returns it without CRLF; it fails on a bare LF.
func (r *raw) line() string {
	r.t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		r.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		r.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// multi reads a status line and, after +OK, the multi-line body as sent
// (still dot-stuffed, CRLF kept, terminator removed).
func (r *raw) multi() (status, body string) {
	r.t.Helper()
	status = r.line()
	if !strings.HasPrefix(status, "+OK") {
		return status, ""
	}
	var b strings.Builder
	for {
		l := r.line()
		if l == "." {
			return status, b.String()
		}
		b.WriteString(l + "\r\n")
	}
}

func TestWire(t *testing.T) {
	s := startBasic(t, Options{})
	r := rawLogin(t, s)
	// Pipelined commands answer in order.
	r.send("STAT\r\nLIST 2\r\nUIDL 2\r\nRETR 2\r\nNOOP\r\nLIST")
	if l := r.line(); l != "+OK 3 "+itoa(len(plainMsg.Body)+len(dotMsg.Body)+len(bigMsg.Body)) {
		t.Errorf("STAT = %q", l)
	}
	if l := r.line(); l != "+OK 2 "+itoa(len(dotMsg.Body)) {
		t.Errorf("LIST 2 = %q", l)
	}
	if l := r.line(); l != "+OK 2 u2" {
		t.Errorf("UIDL 2 = %q", l)
	}
	st, body := r.multi()
	if want := "Subject: dots\r\n\r\n..\r\n...\r\n..leading\r\nmid.dle\r\n....\r\n..\r\n"; !strings.HasPrefix(st, "+OK") || body != want {
		t.Errorf("RETR 2 on the wire = %q %q, want %q", st, body, want)
	}
	if l := r.line(); l != "+OK" {
		t.Errorf("NOOP = %q", l)
	}
	st, body = r.multi()
	if !strings.HasPrefix(st, "+OK") || body != "1 "+itoa(len(plainMsg.Body))+"\r\n2 "+itoa(len(dotMsg.Body))+"\r\n3 "+itoa(len(bigMsg.Body))+"\r\n" {
		t.Errorf("LIST = %q %q", st, body)
	}
	for _, cmd := range []string{"RETR", "RETR 0", "RETR 4", "RETR x", "DELE 9", "FOO", "USER x", "LIST 1 2"} {
		r.send(cmd)
		if l := r.line(); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("%s = %q", cmd, l)
		}
	}
	r.send("quit")
	if l := r.line(); l != "+OK bye" {
		t.Errorf("QUIT = %q", l)
	}
	if _, err := r.r.ReadByte(); err != io.EOF {
		t.Errorf("connection still open after QUIT: %v", err)
	}
	if !slices.Contains(s.Commands(), "PASS <redacted>") {
		t.Errorf("Commands = %q", s.Commands())
	}

	// Before login.
	r = rawDial(t, s)
	for _, cmd := range []string{"STAT", "PASS x", "STLS", "NOOP"} {
		r.send(cmd)
		if l := r.line(); !strings.HasPrefix(l, "-ERR") {
			t.Errorf("%s before login = %q", cmd, l)
		}
	}
	r.send("QUIT")
	if l := r.line(); l != "+OK bye" {
		t.Errorf("QUIT = %q", l)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestClientQuirks pins down how pop3client v0.1.4 treats what it receives,
// using bodies that break the server's CRLF assumption on purpose.
func TestClientQuirks(t *testing.T) {
	bareLF := Message{UIDL: "lf", Body: []byte("Subject: lf\n\na\nb\r\n")}
	noFinal := Message{UIDL: "nf", Body: []byte("Subject: nf\r\n\r\nlast")}
	s := startBasic(t, Options{Messages: []Message{bareLF, noFinal, bigMsg}, CutRetr: "u3", CutOnce: true})
	ctx := ctxFor(t)

	// Bare LF comes back as CRLF (bufio.Reader.ReadLine eats "\n" and
	// "\r\n" alike; the client appends "\r\n" to every line).
	c := login(t, s)
	if got := retr(t, c, 1); string(got) != "Subject: lf\r\n\r\na\r\nb\r\n" {
		t.Errorf("bare LF: %q", got)
	}
	// A final line without a line ending comes back with CRLF (this server
	// adds it before the terminator; the client would add it anyway).
	if got := retr(t, c, 2); string(got) != "Subject: nf\r\n\r\nlast\r\n" {
		t.Errorf("no final CRLF: %q", got)
	}

	// A cut body reads like a complete one: the partial last line is
	// delivered with CRLF appended and the connection's io.EOF is passed
	// on as the body's io.EOF, so io.ReadAll and Close report no error.
	// Only the size (LIST) or the next command tells.
	got, err := cutRead(t, c, 3)
	if err != nil {
		t.Errorf("io.ReadAll of a cut body: %v (the client used to hide the cut)", err)
	}
	if len(got) >= len(bigMsg.Body) || !bytes.HasSuffix(got, []byte("\r\n")) {
		t.Errorf("cut body: %d bytes of %d, ends %q", len(got), len(bigMsg.Body), got[max(0, len(got)-2):])
	}
	if err := c.Noop(ctx); err == nil {
		t.Errorf("NOOP after the cut succeeded")
	}

	// Lines are bounded by MaxLineLength (default 4096, CRLF not counted):
	// a longer line fails the read in the middle of the body, and the
	// connection is left mid-response, unusable.
	c, err = pop3client.Dial(ctx, s.Addr, pop3client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.User(ctx, testUser, testPass); err != nil {
		t.Fatal(err)
	}
	rc, err := c.Retr(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(rc); err == nil || !strings.Contains(err.Error(), "line too long") {
		t.Errorf("100 KB line with the default MaxLineLength: %v", err)
	}
}
