package mailconn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestWatchdogOnlyWhileBusy(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	wd := &WatchdogConn{Conn: client, timeout: 100 * time.Millisecond}
	// Idle: no deadline, a read waits for the server as long as it takes.
	go func() {
		time.Sleep(300 * time.Millisecond)
		server.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	if n, err := wd.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("idle read = %q, %v; want the late data", buf[:n], err)
	}
	// Busy: no progress for the timeout fails the read, and every read after.
	wd.Begin()
	start := time.Now()
	_, err := wd.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("busy read = %v after %v, want a deadline error after 100ms", err, time.Since(start))
	}
	if _, err := wd.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || !wd.TimedOut.Load() {
		t.Errorf("read after a timeout = %v, want it to fail at once", err)
	}
}

func TestWatchdogProgressRearms(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	// A slow but steady server (a byte every 100ms, 2.5s in all, 2.5
	// times the timeout) is not cut. The margin between a gap and the
	// timeout is wide: a loaded machine oversleeps.
	wd := &WatchdogConn{Conn: client, timeout: time.Second}
	wd.Begin()
	go func() {
		for i := 0; i < 25; i++ {
			time.Sleep(100 * time.Millisecond)
			server.Write([]byte{'x'})
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 25; i++ {
		if _, err := wd.Read(buf); err != nil {
			t.Fatalf("read %d of a trickling server: %v", i, err)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "host:993", CAFile: filepath.Join(dir, "missing.pem")}, "read CA file"},
		{Config{Addr: "host:993", CAFile: bad}, "holds no PEM certificate"},
		{Config{Addr: "no-port"}, "missing port"},
	} {
		if _, err := tt.cfg.TLSConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("TLSConfig(%+v) error = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	c, err := (&Config{Addr: "mail.example.com:993"}).TLSConfig()
	if err != nil || c.ServerName != "mail.example.com" || c.InsecureSkipVerify {
		t.Errorf("TLSConfig = %+v, %v; want verification of mail.example.com", c, err)
	}
}

func TestClassifyTLS(t *testing.T) {
	imaps := &Config{Addr: "mail.example.com:993", Security: ImplicitTLS}
	target := &Config{Addr: "new.example.com:993", Security: ImplicitTLS, HintPrefix: "target-"}
	starttls := &Config{Addr: "mail.example.com:143", Security: StartTLS}
	remote := func(msg string) error { return &net.OpError{Op: "remote error", Err: errors.New(msg)} }
	tests := []struct {
		name  string
		cfg   *Config
		proto string
		err   error
		class error
		want  []string
	}{
		{"unknown CA", imaps, "imap", x509.UnknownAuthorityError{}, ErrTLS, []string{"use --ca-file"}},
		{"unknown CA of the target", target, "imap", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, ErrTLS, []string{"use --target-ca-file"}},
		{"wrong host name", imaps, "imap", x509.HostnameError{Certificate: &x509.Certificate{}, Host: "mail.example.com"}, ErrTLS, []string{"--ca-file"}},
		{"deadline", imaps, "imap", os.ErrDeadlineExceeded, ErrTimeout, []string{"TLS handshake with mail.example.com:993"}},
		{"plaintext port, IMAP", imaps, "imap", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, ErrTLSHandshake, []string{"is port 993 plaintext? try imap:// (STARTTLS)"}},
		{"plaintext port, POP3", &Config{Addr: "h:995"}, "pop3", tls.RecordHeaderError{}, ErrTLSHandshake, []string{"is port 995 plaintext? try pop3:// (STLS)"}},
		{"not TLS after STARTTLS", starttls, "imap", tls.RecordHeaderError{}, ErrTLSHandshake, []string{"after agreeing to start it"}},
		{"old TLS only", imaps, "imap", remote("tls: protocol version not supported"), ErrTLSHandshake, []string{"refused", "TLS 1.2 or newer"}},
		{"other alert", imaps, "imap", remote("tls: handshake failure"), ErrTLSHandshake, []string{"refused it: tls: handshake failure"}},
		{"EOF", imaps, "imap", io.EOF, ErrTLSHandshake, []string{"closed the connection"}},
		{"unexpected EOF", imaps, "pop3", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), ErrTLSHandshake, []string{"closed the connection"}},
		{"reset", imaps, "imap", &net.OpError{Op: "read", Err: os.NewSyscallError("read", syscall.ECONNRESET)}, ErrTLSHandshake, []string{"reset the connection"}},
		{"anything else", imaps, "imap", errors.New("tls: something odd"), ErrTLSHandshake, []string{"something odd"}},
	}
	for _, tt := range tests {
		got := tt.cfg.ClassifyTLS(tt.proto, tt.err)
		if !errors.Is(got, tt.class) {
			t.Errorf("%s: ClassifyTLS = %v, want it to wrap %v", tt.name, got, tt.class)
		}
		for _, w := range tt.want {
			if !strings.Contains(got.Error(), w) {
				t.Errorf("%s: ClassifyTLS = %q, want it to say %q", tt.name, got, w)
			}
		}
	}
}

func TestClassifyGreeting(t *testing.T) {
	cfg := &Config{Addr: "mail.example.com:143"}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{io.EOF, "cannot connect to mail.example.com:143: the server closed the connection before its greeting"},
		{errors.New("connection closed before greeting"), "closed the connection before its greeting"},
		{fmt.Errorf("got error before greeting: %v", os.NewSyscallError("read", syscall.ECONNRESET)), "reset the connection before its greeting"},
	} {
		got := cfg.ClassifyGreeting(tt.err)
		if !errors.Is(got, ErrUnreachable) || !strings.Contains(got.Error(), tt.want) {
			t.Errorf("ClassifyGreeting(%v) = %v, want ErrUnreachable saying %q", tt.err, got, tt.want)
		}
	}
}

func TestWatchdogCountsReceived(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	wd := &WatchdogConn{Conn: client}
	go server.Write([]byte("* OK"))
	buf := make([]byte, 8)
	n, _ := wd.Read(buf)
	if wd.Received() != int64(n) || n == 0 {
		t.Errorf("Received = %d after reading %d bytes", wd.Received(), n)
	}
}
