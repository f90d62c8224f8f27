package dovecottest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

func tlsConfig(t *testing.T, s *Server, serverName string) *tls.Config {
	t.Helper()
	pemData, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		t.Fatal("CAFile holds no certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName}
}

func login(t *testing.T, c *imapclient.Client, user, pass string) {
	t.Helper()
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
}

func dial(t *testing.T, s *Server, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	login(t, c, user, pass)
	return c
}

func list(t *testing.T, c *imapclient.Client) map[string]*imap.ListData {
	t.Helper()
	all, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatalf("LIST: %v", err)
	}
	m := make(map[string]*imap.ListData)
	for _, d := range all {
		m[d.Mailbox] = d
	}
	return m
}

func TestServer(t *testing.T) {
	users := map[string]string{"alice": "alice-pw", "bob": "bob secret", "carol": "carol-pw"}
	s := Start(t, Options{
		Users: users,
		Quota: map[string]string{"carol": "*:storage=20K"},
	})
	for _, addr := range []string{s.IMAPAddr, s.IMAPSAddr, s.POP3Addr, s.POP3SAddr} {
		if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
			t.Fatalf("address %q is not on 127.0.0.1", addr)
		}
	}

	t.Run("Plaintext", func(t *testing.T) {
		c := dial(t, s, "alice", "alice-pw")
		caps, err := c.Capability().Wait()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for c := range caps {
			names = append(names, string(c))
		}
		slices.Sort(names)
		t.Logf("CAPABILITY after login: %s", strings.Join(names, " "))
		for _, want := range []imap.Cap{imap.CapSpecialUse, imap.CapUIDPlus, imap.CapMove, imap.CapCondStore, imap.CapListExtended} {
			if !caps.Has(want) {
				t.Errorf("capability %s missing", want)
			}
		}
		if err := c.Logout().Wait(); err != nil {
			t.Errorf("LOGOUT: %v", err)
		}
	})

	t.Run("WrongPassword", func(t *testing.T) {
		c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		err = c.Login("alice", "wrong").Wait()
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
			t.Fatalf("login with a wrong password: got %v, want a NO response", err)
		}
		if err := c.Login("nobody", "alice-pw").Wait(); err == nil {
			t.Fatal("login as an unknown user succeeded")
		}
	})

	t.Run("ImplicitTLS", func(t *testing.T) {
		for _, name := range []string{"127.0.0.1", "localhost"} {
			c, err := imapclient.DialTLS(s.IMAPSAddr, &imapclient.Options{TLSConfig: tlsConfig(t, s, name)})
			if err != nil {
				t.Fatalf("DialTLS (ServerName %s): %v", name, err)
			}
			login(t, c, "bob", "bob secret")
		}
		// Without the CA the certificate must not verify.
		c, err := imapclient.DialTLS(s.IMAPSAddr, &imapclient.Options{TLSConfig: &tls.Config{ServerName: "127.0.0.1"}})
		if err == nil {
			c.Close()
			t.Fatal("TLS verification succeeded without the CA")
		}
	})

	t.Run("STARTTLS", func(t *testing.T) {
		c, err := imapclient.DialStartTLS(s.IMAPAddr, &imapclient.Options{TLSConfig: tlsConfig(t, s, "127.0.0.1")})
		if err != nil {
			t.Fatalf("DialStartTLS: %v", err)
		}
		login(t, c, "alice", "alice-pw")
	})

	t.Run("POP3", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", s.POP3Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		pop3Login(t, conn)
		raw, err := net.DialTimeout("tcp", s.POP3SAddr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		tc := tls.Client(raw, tlsConfig(t, s, "localhost"))
		if err := tc.Handshake(); err != nil {
			t.Fatalf("POP3S handshake: %v", err)
		}
		pop3Login(t, tc)
	})

	t.Run("SpecialUse", func(t *testing.T) {
		c := dial(t, s, "alice", "alice-pw")
		before := list(t, c)
		for _, name := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive"} {
			if _, ok := before[name]; ok {
				t.Errorf("special-use folder %q exists before it was created (auto = no expected)", name)
			}
		}
		for _, name := range []string{"Sent", "Plain"} {
			if err := c.Create(name, nil).Wait(); err != nil {
				t.Fatalf("CREATE %s: %v", name, err)
			}
		}
		after := list(t, c)
		if d := after["Sent"]; d == nil || !slices.Contains(d.Attrs, imap.MailboxAttrSent) {
			t.Errorf("LIST Sent = %+v, want the \\Sent attribute", d)
		}
		if d := after["Plain"]; d == nil || slices.Contains(d.Attrs, imap.MailboxAttrSent) {
			t.Errorf("LIST Plain = %+v, want no \\Sent attribute", d)
		}
	})

	t.Run("NonASCIIFolders", func(t *testing.T) {
		c := dial(t, s, "alice", "alice-pw")
		names := []string{"Año 2023/Facturas", "日本", "dots.in.name", "Ünïcödé & Co"}
		for _, name := range names {
			if err := c.Create(name, nil).Wait(); err != nil {
				t.Fatalf("CREATE %q: %v", name, err)
			}
		}
		got := list(t, c)
		for _, name := range append(names, "Año 2023", "INBOX") {
			d := got[name]
			if d == nil {
				t.Errorf("LIST lacks %q; got %v", name, keys(got))
				continue
			}
			if d.Delim != '/' {
				t.Errorf("delimiter of %q = %q, want '/'", name, d.Delim)
			}
		}
		// UTF-8 names on disk (mail_location option UTF-8), LAYOUT=fs.
		for _, dir := range []string{"Año 2023/Facturas", "日本", "dots.in.name"} {
			if st, err := os.Stat(filepath.Join(s.MailRoot, "alice", dir)); err != nil || !st.IsDir() {
				t.Errorf("Maildir folder %q not found on disk: %v", dir, err)
			}
		}
		// Bob must not see alice's folders.
		if _, ok := list(t, dial(t, s, "bob", "bob secret"))["日本"]; ok {
			t.Error("bob sees alice's folder")
		}
		if out := s.Doveadm(t, "mailbox", "list", "-u", "alice"); !strings.Contains(out, "Año 2023/Facturas") {
			t.Errorf("doveadm mailbox list: %q lacks Año 2023/Facturas", out)
		}
	})

	t.Run("Quota", func(t *testing.T) {
		c := dial(t, s, "carol", "carol-pw")
		small := testMessage(1024)
		if err := appendMsg(c, small); err != nil {
			t.Fatalf("APPEND within quota: %v", err)
		}
		err := appendMsg(c, testMessage(30*1024))
		var imapErr *imap.Error
		if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeOverQuota {
			t.Fatalf("APPEND over quota: got %v, want NO [OVERQUOTA]", err)
		}
		// alice has no quota.
		if err := appendMsg(dial(t, s, "alice", "alice-pw"), testMessage(30*1024)); err != nil {
			t.Fatalf("APPEND without quota: %v", err)
		}
	})
}

// TestCleanup checks that the server is stopped and its files removed when
// the test that started it ends.
func TestCleanup(t *testing.T) {
	var s *Server
	t.Run("start", func(t *testing.T) {
		s = Start(t, Options{Users: map[string]string{"u": "p"}})
	})
	if s == nil {
		t.Skip("not started")
	}
	if _, err := os.Stat(s.MailRoot); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("mail root still present after cleanup: %v", err)
	}
	if conn, err := net.DialTimeout("tcp", s.IMAPAddr, time.Second); err == nil {
		conn.Close()
		t.Errorf("IMAP port still accepts connections after cleanup")
	}
}

// TestRetryOnBindFailure gives the first attempt a port that is taken and
// checks that Start retries with new ports.
func TestRetryOnBindFailure(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() { // hang up at once, as a foreign non-IMAP service might
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	calls := 0
	freePortsFunc = func(n int) ([]int, error) {
		calls++
		ports, err := freePorts(n)
		if calls == 1 && err == nil {
			ports[0] = l.Addr().(*net.TCPAddr).Port
		}
		return ports, err
	}
	defer func() { freePortsFunc = freePorts }()
	s := Start(t, Options{Users: map[string]string{"u": "p"}})
	if calls != 2 {
		t.Fatalf("Start picked ports %d times, want 2", calls)
	}
	dial(t, s, "u", "p")
}

func TestValidate(t *testing.T) {
	bad := []Options{
		{Users: map[string]string{"a:b": "p"}},
		{Users: map[string]string{"Alice": "p"}},
		{Users: map[string]string{"a": "p\nq"}},
		{Users: map[string]string{"a": "p"}, Quota: map[string]string{"b": "*:storage=1K"}},
		{Users: map[string]string{"a": "p"}, Quota: map[string]string{"a": "*:storage=1K x"}},
		{SpecialUse: map[string]string{`Se"nt`: `\Sent`}},
		{SpecialUse: map[string]string{"Sent": "Sent"}},
	}
	for i, o := range bad {
		if err := validate(o); err == nil {
			t.Errorf("case %d: validate(%+v) = nil, want an error", i, o)
		}
	}
	if err := validate(Options{Users: map[string]string{"a": "p q"}, Quota: map[string]string{"a": "*:storage=20K"}}); err != nil {
		t.Errorf("validate: %v", err)
	}
}

func keys(m map[string]*imap.ListData) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}

func testMessage(size int) []byte {
	var b bytes.Buffer
	b.WriteString("From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n\r\n")
	line := strings.Repeat("x", 70) + "\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	return b.Bytes()
}

func appendMsg(c *imapclient.Client, msg []byte) error {
	cmd := c.Append("INBOX", int64(len(msg)), nil)
	if _, err := cmd.Write(msg); err != nil {
		cmd.Close()
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

func pop3Login(t *testing.T, conn net.Conn) {
	t.Helper()
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	expect := func(what string) {
		t.Helper()
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "+OK") {
			t.Fatalf("POP3 %s: %q, %v", what, line, err)
		}
	}
	expect("greeting")
	for _, cmd := range []string{"USER alice", "PASS alice-pw", "QUIT"} {
		if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
			t.Fatal(err)
		}
		expect(cmd)
	}
}

// TestIMAPVSZLimit checks that Options.IMAPVSZLimit becomes the address
// space limit of the imap process serving a session, and that a bad value
// is refused.
func TestIMAPVSZLimit(t *testing.T) {
	if err := validate(Options{IMAPVSZLimit: "1G\n}"}); err == nil {
		t.Error(`validate(IMAPVSZLimit "1G\n}") = nil, want an error`)
	}
	s := Start(t, Options{Users: map[string]string{"alice": "alice-pw"}, IMAPVSZLimit: "1G"})
	c := dial(t, s, "alice", "alice-pw")
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	pidData, err := os.ReadFile(filepath.Join(s.base, "run", "master.pid"))
	if err != nil {
		t.Fatal(err)
	}
	master := strings.TrimSpace(string(pidData))
	var limits []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		comm, _ := os.ReadFile(filepath.Join(p, "comm"))
		stat, _ := os.ReadFile(filepath.Join(p, "stat"))
		i := bytes.LastIndexByte(stat, ')')
		if strings.TrimSpace(string(comm)) != "imap" || i < 0 {
			continue
		}
		if f := strings.Fields(string(stat[i+1:])); len(f) < 2 || f[1] != master {
			continue
		}
		data, err := os.ReadFile(filepath.Join(p, "limits"))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(l, "Max address space") {
				limits = append(limits, strings.Join(strings.Fields(l), " "))
			}
		}
	}
	want := "Max address space 1073741824 1073741824 bytes"
	if len(limits) != 1 || limits[0] != want {
		t.Errorf("imap processes of this Dovecot have limits %q, want one with %q", limits, want)
	}
}
