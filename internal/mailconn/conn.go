// Package mailconn is what the mail protocol adapters share: where and how
// to connect (implicit TLS, STARTTLS, plaintext for loopback tests), TLS
// verification with an extra CA file, how to log in (an auth.Auth), the
// error classes the command line maps to exit codes, and a progress
// watchdog on the connection.
package mailconn

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailvault/mailvault/internal/auth"
)

// Errors callers classify (cmd/mailvault maps them to exit codes).
var (
	ErrAuth        = auth.ErrAuth
	ErrUnreachable = errors.New("cannot connect")
	ErrTLS         = errors.New("TLS verification failed")
	ErrTimeout     = errors.New("server did not answer in time")
	ErrNoTLS       = errors.New("server does not offer STARTTLS")
	// ErrTLSHandshake: the TLS handshake did not complete for a reason
	// other than the certificate (a plaintext port, a closed or reset
	// connection, a protocol version the server refuses).
	ErrTLSHandshake = errors.New("TLS handshake failed")
	ErrInUse        = errors.New("mailbox in use by another client, retry later")
)

// Security is how a connection is protected.
type Security int

const (
	ImplicitTLS Security = iota // imaps://, port 993
	StartTLS                    // imap://, STARTTLS required
	Plaintext                   // imap:// with --insecure-plaintext: no TLS at all
)

// Config says where and how to connect.
type Config struct {
	Addr       string // host:port
	Security   Security
	User       string
	Password   string        // a password login when Auth is nil
	Auth       *auth.Auth    // how to log in (nil: User and Password)
	CAFile     string        // PEM file of extra trusted CAs (or a self-signed certificate)
	SkipVerify bool          // do not verify the server certificate
	Timeout    time.Duration // no progress for this long while waiting on the server fails the connection
	// DialContext, when set, opens the TCP connection in place of a
	// net.Dialer: a fleet run wraps it to bound the connections to one
	// server. The connection it returns is closed when the session ends.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// HintPrefix is the prefix of the command-line flags that error hints
	// name: "" gives --ca-file, "target-" gives --target-ca-file.
	HintPrefix string
}

// Login is how to log in: Auth, or a password login of User with
// Password.
func (c *Config) Login() *auth.Auth {
	if c.Auth != nil {
		return c.Auth
	}
	return auth.Password(c.User, c.Password)
}

// TLSConfig builds the TLS configuration for host: system roots plus
// CAFile, verification on unless SkipVerify.
func (c *Config) TLSConfig() (*tls.Config, error) {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.SkipVerify}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// WatchdogConn enforces progress: while a command is outstanding
// (busy > 0), a read that receives nothing for timeout fails, and so does
// a write that cannot proceed. go-imap sets its own deadlines on the
// connection; the earlier of both wins.
type WatchdogConn struct {
	net.Conn
	timeout  time.Duration
	busy     atomic.Int32
	mu       sync.Mutex
	libRead  time.Time
	TimedOut atomic.Bool
	received atomic.Int64
}

// Received is how many bytes the server has sent so far: 0 after a
// failure means it never sent its greeting.
func (w *WatchdogConn) Received() int64 { return w.received.Load() }

func (w *WatchdogConn) readDeadline() time.Time {
	w.mu.Lock()
	d := w.libRead
	w.mu.Unlock()
	if w.busy.Load() > 0 && w.timeout > 0 {
		ours := time.Now().Add(w.timeout)
		if d.IsZero() || ours.Before(d) {
			d = ours
		}
	}
	return d
}

func (w *WatchdogConn) Read(p []byte) (int, error) {
	if w.TimedOut.Load() {
		// go-imap retries reads after a timeout; once is enough.
		return 0, os.ErrDeadlineExceeded
	}
	w.Conn.SetReadDeadline(w.readDeadline())
	n, err := w.Conn.Read(p)
	w.received.Add(int64(n))
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) && w.busy.Load() > 0 {
		w.TimedOut.Store(true)
		w.Conn.Close()
	}
	return n, err
}

func (w *WatchdogConn) Write(p []byte) (int, error) {
	if w.timeout > 0 {
		w.Conn.SetWriteDeadline(time.Now().Add(w.timeout))
	}
	return w.Conn.Write(p)
}

// SetReadDeadline records go-imap's own deadline.
func (w *WatchdogConn) SetReadDeadline(t time.Time) error {
	w.mu.Lock()
	w.libRead = t
	w.mu.Unlock()
	return w.Conn.SetReadDeadline(w.readDeadline())
}

func (w *WatchdogConn) SetDeadline(t time.Time) error {
	w.SetReadDeadline(t)
	return w.Conn.SetWriteDeadline(t)
}

// Begin marks a command outstanding and arms the read deadline at once,
// also for a Read already blocked.
func (w *WatchdogConn) Begin() {
	w.busy.Add(1)
	w.Conn.SetReadDeadline(w.readDeadline())
}

func (w *WatchdogConn) End() {
	w.busy.Add(-1)
	w.Conn.SetReadDeadline(w.readDeadline())
}

// Dial opens the TCP (and, for ImplicitTLS, TLS) connection.
func Dial(ctx context.Context, cfg *Config, alpn string) (*WatchdogConn, net.Conn, error) {
	d := net.Dialer{Timeout: cfg.Timeout}
	dial := d.DialContext
	if cfg.DialContext != nil {
		dial = cfg.DialContext
	}
	raw, err := dial(ctx, "tcp", cfg.Addr)
	if err != nil {
		return nil, nil, fmt.Errorf("%w to %s: %w", ErrUnreachable, cfg.Addr, unwrapNet(err))
	}
	wd := &WatchdogConn{Conn: raw, timeout: cfg.Timeout}
	if cfg.Security != ImplicitTLS {
		return wd, wd, nil
	}
	tcfg, err := cfg.TLSConfig()
	if err != nil {
		raw.Close()
		return nil, nil, err
	}
	if alpn != "" {
		tcfg.NextProtos = []string{alpn}
	}
	tc := tls.Client(wd, tcfg)
	wd.Begin()
	err = tc.HandshakeContext(ctx)
	wd.End()
	if err != nil {
		raw.Close()
		return nil, nil, cfg.ClassifyTLS(alpn, err)
	}
	return wd, tc, nil
}

// ClassifyTLS turns an error of the TLS handshake with c.Addr (implicit
// TLS, or after STARTTLS/STLS) into one of the classes above, with a hint
// for the user. proto is "imap" or "pop3", for the hints.
func (c *Config) ClassifyTLS(proto string, err error) error {
	var (
		unknownAuth x509.UnknownAuthorityError
		hostErr     x509.HostnameError
		invalid     x509.CertificateInvalidError
		verifyErr   *tls.CertificateVerificationError
		recordErr   tls.RecordHeaderError
		op          *net.OpError
	)
	switch {
	case errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &invalid) || errors.As(err, &verifyErr):
		return fmt.Errorf("%w for %s: %v (use --%sca-file to trust a private CA)", ErrTLS, c.Addr, err, c.HintPrefix)
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("%w: TLS handshake with %s", ErrTimeout, c.Addr)
	case errors.As(err, &recordErr):
		if c.Security != ImplicitTLS {
			return fmt.Errorf("%w with %s: the server did not answer TLS after agreeing to start it", ErrTLSHandshake, c.Addr)
		}
		return fmt.Errorf("%w with %s: the server did not answer TLS: is port %s plaintext? try %s", ErrTLSHandshake, c.Addr, c.port(), plainScheme(proto))
	case errors.As(err, &op) && op.Op == "remote error":
		hint := ""
		if strings.Contains(op.Err.Error(), "protocol version") {
			hint = " (mailvault needs TLS 1.2 or newer; the server offers only older versions)"
		}
		return fmt.Errorf("%w with %s: the server refused it: %v%s", ErrTLSHandshake, c.Addr, op.Err, hint)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w with %s: the server closed the connection (does it speak TLS on this port?)", ErrTLSHandshake, c.Addr)
	case isReset(err):
		return fmt.Errorf("%w with %s: the server reset the connection (it may refuse TLS 1.2 and newer, or not speak TLS on this port)", ErrTLSHandshake, c.Addr)
	}
	return fmt.Errorf("%w with %s: %w", ErrTLSHandshake, c.Addr, unwrapNet(err))
}

// ClassifyGreeting turns an error that ended the connection before the
// server's greeting (other than a timeout) into ErrUnreachable.
func (c *Config) ClassifyGreeting(err error) error {
	what := "closed the connection"
	if isReset(err) {
		what = "reset the connection"
	}
	return fmt.Errorf("%w to %s: the server %s before its greeting", ErrUnreachable, c.Addr, what)
}

func (c *Config) port() string {
	_, p, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return c.Addr
	}
	return p
}

// plainScheme is the URL scheme to suggest for a plaintext port.
func plainScheme(proto string) string {
	if proto == "pop3" {
		return "pop3:// (STLS)"
	}
	return "imap:// (STARTTLS)"
}

// isReset reports a connection reset by the peer. Some libraries format
// the cause with %v, so the text is checked too.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || strings.Contains(err.Error(), "connection reset by peer")
}

// unwrapNet strips net.OpError's noisy prefix.
func unwrapNet(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	return err
}
