package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/pop3test"
)

// rawServer accepts connections on 127.0.0.1 and hands each to handle.
func rawServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// reset closes c with a TCP RST instead of a FIN.
func reset(c net.Conn) {
	c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

// readHello reads what the client sends first (a TLS ClientHello).
func readHello(c net.Conn) {
	buf := make([]byte, 4096)
	c.Read(buf)
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestConnectFailures: every way a server can fail before the login is a
// connection failure (exit 7), with a hint where one helps.
func TestConnectFailures(t *testing.T) {
	cert := selfSigned(t)
	closeNow := rawServer(t, func(c net.Conn) {})
	rstNow := rawServer(t, reset)
	tlsEOF := rawServer(t, readHello)
	oldTLS := rawServer(t, func(c net.Conn) {
		tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}).Handshake()
	})
	oldTLSRST := rawServer(t, func(c net.Conn) { readHello(c); reset(c) })
	_, plainIMAP := fakeServer(t, imaptest.FakeOptions{})
	plainIMAPAddr := strings.TrimPrefix(plainIMAP, "imap://alice@")
	plainPOP := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw"})
	_, plainPOPPort, _ := net.SplitHostPort(plainPOP.Addr)
	_, plainIMAPPort, _ := net.SplitHostPort(plainIMAPAddr)

	tests := []struct {
		name, url string
		want      []string
	}{
		{"IMAP: closed before the greeting", "imap://alice@" + closeNow, []string{"closed the connection before its greeting"}},
		// go-imap sends STARTTLS without waiting for the greeting: the
		// server's close then reads as EOF or, when the command reached
		// the closed socket first, as a reset. Both are this case.
		{"IMAP STARTTLS: closed before the greeting", "imap://alice@" + closeNow, []string{"the connection before its greeting"}},
		{"IMAP: reset before the greeting", "imap://alice@" + rstNow, []string{"cannot connect"}},
		{"POP3: closed before the greeting", "pop3://alice@" + closeNow, []string{"closed the connection before its greeting"}},
		{"IMAPS: handshake EOF", "imaps://alice@" + tlsEOF, []string{"TLS handshake", "closed the connection"}},
		{"POP3S: handshake EOF", "pop3s://alice@" + tlsEOF, []string{"TLS handshake", "closed the connection"}},
		{"IMAPS: TLS version refused", "imaps://alice@" + oldTLS, []string{"TLS handshake", "protocol version", "TLS 1.2"}},
		{"POP3S: TLS version refused", "pop3s://alice@" + oldTLS, []string{"TLS handshake", "protocol version"}},
		{"IMAPS: TLS refused with RST", "imaps://alice@" + oldTLSRST, []string{"TLS handshake", "reset"}},
		{"IMAPS on a plaintext port", "imaps://alice@" + plainIMAPAddr, []string{"did not answer TLS", "is port " + plainIMAPPort + " plaintext?", "try imap:// (STARTTLS)"}},
		{"POP3S on a plaintext port", "pop3s://alice@" + plainPOP.Addr, []string{"did not answer TLS", "is port " + plainPOPPort + " plaintext?", "try pop3:// (STLS)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			args := []string{"backup", tt.url, vault, "--timeout", "5s"}
			if strings.HasPrefix(tt.name, "IMAP:") || strings.HasPrefix(tt.name, "POP3:") {
				args = append(args, "--insecure-plaintext")
			}
			code, out, errs := runCLI(t, pwEnv, args...)
			if code != exitConnect {
				t.Fatalf("exit %d, stderr %q stdout %q; want %d", code, errs, out, exitConnect)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not say %q", errs, w)
				}
			}
			if strings.Count(errs, "\n") != 1 {
				t.Errorf("stderr is not one line: %q", errs)
			}
			if _, err := os.Stat(vault); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a run that could not connect created the archive directory (%v)", err)
			}
		})
	}
}

// TestMigrateChecksTargetFirst: a target that will refuse the restore is
// found before the backup starts, with the target's flag names in hints.
func TestMigrateChecksTargetFirst(t *testing.T) {
	src := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := src.Dial(t, "alice", "pw")
	imaptest.Append(t, c, "INBOX", nil, time.Now(), []byte("Subject: one\r\n\r\nbody\r\n"))
	dst := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "newpw"}, TLS: true, RequireTLS: true, ImplicitTLS: true})
	closed := closedAddr(t)
	env := map[string]string{"MAILVAULT_PASSWORD": "pw", "MAILVAULT_TARGET_PASSWORD": "newpw"}
	tests := []struct {
		name   string
		target string
		env    map[string]string
		extra  []string
		code   int
		want   []string
		not    string
	}{
		{"wrong target password", "imaps://alice@" + dst.TLSAddr, map[string]string{"MAILVAULT_PASSWORD": "pw", "MAILVAULT_TARGET_PASSWORD": "nope"},
			[]string{"--target-ca-file", dst.CAFile}, exitAuth, []string{"authentication failed for alice"}, ""},
		{"untrusted target certificate", "imaps://alice@" + dst.TLSAddr, env, nil, exitConnect, []string{"TLS verification failed", "--target-ca-file"}, " --ca-file"},
		{"untrusted target certificate, STARTTLS", "imap://alice@" + dst.Addr, env, nil, exitConnect, []string{"--target-ca-file"}, " --ca-file"},
		{"unreachable target", "imaps://alice@" + closed, env, nil, exitConnect, []string{"cannot connect to " + closed}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			before := len(src.Commands())
			args := append([]string{"migrate", "imap://alice@" + src.Addr, tt.target, "--archive", vault, "--insecure-plaintext", "--timeout", "5s"}, tt.extra...)
			code, out, errs := runCLI(t, tt.env, args...)
			if code != tt.code {
				t.Fatalf("exit %d, stderr %q stdout %q; want %d", code, errs, out, tt.code)
			}
			for _, w := range tt.want {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr %q does not say %q", errs, w)
				}
			}
			if tt.not != "" && strings.Contains(errs, tt.not) {
				t.Errorf("stderr %q names %q, the source's flag", errs, tt.not)
			}
			for _, cmd := range src.Commands()[before:] {
				if u := strings.ToUpper(cmd); strings.Contains(u, "FETCH") || strings.Contains(u, "EXAMINE") {
					t.Errorf("the backup started before the target was checked: %q", cmd)
				}
			}
			if _, err := os.Stat(vault); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the archive was created before the target was checked (%v)", err)
			}
		})
	}
	// With a good target, the same migrate works.
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, env, "migrate", "imap://alice@"+src.Addr, "imaps://alice@"+dst.TLSAddr, "--archive", vault, "--insecure-plaintext", "--target-ca-file", dst.CAFile)
	if code != exitOK {
		t.Fatalf("migrate: exit %d %s %s", code, out, errs)
	}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// TestInsecurePlaintextLoopbackOnly: --insecure-plaintext sends the
// password in clear, so it is refused for an address that is not this
// machine unless the user says they know.
func TestInsecurePlaintextLoopbackOnly(t *testing.T) {
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@192.0.2.10", vault, "--insecure-plaintext")
	if code != exitUsage || !strings.Contains(errs, "--i-know-this-sends-my-password-in-clear") || !strings.Contains(errs, "192.0.2.10") {
		t.Errorf("plaintext to a remote address: exit %d %q %q; want %d naming the acknowledgement flag", code, out, errs, exitUsage)
	}
	// Acknowledged, it goes ahead (and fails to connect to this test address).
	code, _, errs = runCLI(t, pwEnv, "backup", "imap://alice@192.0.2.10", vault, "--insecure-plaintext", "--i-know-this-sends-my-password-in-clear", "--timeout", "1s")
	if code != exitConnect || !strings.Contains(errs, "unencrypted") {
		t.Errorf("acknowledged plaintext: exit %d %q; want %d after a warning", code, errs, exitConnect)
	}
	// The target of a migrate has its own pair of flags.
	code, _, errs = runCLI(t, map[string]string{"MAILVAULT_PASSWORD": "pw", "MAILVAULT_TARGET_PASSWORD": "pw"},
		"migrate", "imap://alice@127.0.0.1:1", "imap://alice@192.0.2.10", "--archive", vault, "--insecure-plaintext", "--target-insecure-plaintext")
	if code != exitUsage || !strings.Contains(errs, "--target-i-know-this-sends-my-password-in-clear") {
		t.Errorf("plaintext to a remote target: exit %d %q; want %d naming the target's acknowledgement flag", code, errs, exitUsage)
	}
	// localhost is loopback.
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	_, port, _ := net.SplitHostPort(srv.Addr)
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@localhost:"+port, vault, "--insecure-plaintext"); code != exitOK {
		t.Errorf("plaintext to localhost: exit %d %s %s", code, out, errs)
	}
	// The help says so.
	_, out, _ = runCLI(t, nil, "backup", "--help")
	if !strings.Contains(out, "--i-know-this-sends-my-password-in-clear") {
		t.Errorf("backup --help does not explain the acknowledgement flag")
	}
}

func TestPlaintextAllowed(t *testing.T) {
	resolve := func(_ context.Context, host string) ([]net.IPAddr, error) {
		switch host {
		case "mail.local":
			return []net.IPAddr{{IP: net.ParseIP("127.0.1.1")}}, nil
		case "mixed.example":
			return []net.IPAddr{{IP: net.ParseIP("127.0.0.1")}, {IP: net.ParseIP("203.0.113.5")}}, nil
		case "remote.example":
			return []net.IPAddr{{IP: net.ParseIP("203.0.113.5")}}, nil
		}
		return nil, errors.New("no such host")
	}
	tests := []struct {
		host string
		ok   bool
	}{
		{"127.0.0.1", true},
		{"127.255.0.9", true},
		{"::1", true},
		{"localhost", true},
		{"LOCALHOST", true},
		{"mail.local", true},
		{"mixed.example", false},
		{"remote.example", false},
		{"192.0.2.10", false},
		{"::ffff:192.0.2.10", false},
		{"nonexistent.invalid", false},
	}
	for _, tt := range tests {
		err := loopbackOnly(context.Background(), tt.host, resolve)
		if (err == nil) != tt.ok {
			t.Errorf("loopbackOnly(%q) = %v, want ok %v", tt.host, err, tt.ok)
		}
	}
}
