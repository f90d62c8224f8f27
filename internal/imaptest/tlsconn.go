package imaptest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// tlsMaterial is a freshly generated self-signed certificate and the TLS
// configurations built from it.
type tlsMaterial struct {
	pool    *x509.CertPool
	pemPath string
	server  *tls.Config // serves the certificate
	client  *tls.Config // trusts only the certificate, for ServerName localhost
}

// newTLSMaterial generates a self-signed ECDSA certificate valid for
// 127.0.0.1 and localhost and writes it, PEM encoded, to a temporary file.
func newTLSMaterial(t testing.TB) *tlsMaterial {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("imaptest: generating key: %v", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatalf("imaptest: generating serial: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "imaptest self-signed"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("imaptest: creating certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("imaptest: parsing certificate: %v", err)
	}
	path := filepath.Join(t.TempDir(), "imaptest-ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(path, pemData, 0o600); err != nil {
		t.Fatalf("imaptest: writing certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlsMaterial{
		pool:    pool,
		pemPath: path,
		server: &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		},
		client: &tls.Config{
			RootCAs:    pool,
			ServerName: "localhost",
			MinVersion: tls.VersionTLS12,
		},
	}
}

// recListener wraps the connections it accepts in recConns.
type recListener struct {
	net.Listener
	log      *cmdLog
	tls      *tlsMaterial // nil when the server offers no TLS
	implicit bool         // the client speaks TLS from the first byte
}

// Accept implements net.Listener.
func (l *recListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newRecConn(raw, l.log, l.tls, l.implicit), nil
}

// recConn is the net.Conn handed to imapserver. It records the command lines
// the client sends, including those sent after STARTTLS or over implicit TLS.
//
// To see plaintext behind TLS it terminates the client's TLS itself and
// relays the decrypted stream to imapserver through a net.Pipe carrying a
// second TLS session, so that imapserver still sees a *tls.Conn (which it
// requires before allowing LOGIN when InsecureAuth is off):
//
//	client ==TLS== raw | bridge (records) | pipe ==TLS== imapserver
//
// Before STARTTLS, reads and writes go straight to the raw connection.
type recConn struct {
	raw net.Conn
	rec *lineRecorder
	tls *tlsMaterial

	mu       sync.Mutex
	cur      net.Conn // raw, or imapserver's end of the pipe once bridged
	bridged  bool
	startTag string // tag of a STARTTLS command awaiting its response
	out      []byte // partial response line while startTag != ""
}

func newRecConn(raw net.Conn, log *cmdLog, tm *tlsMaterial, implicit bool) *recConn {
	c := &recConn{raw: raw, cur: raw, tls: tm}
	c.rec = &lineRecorder{log: log, onCommand: c.onCommand}
	if implicit {
		c.mu.Lock()
		c.bridgeLocked()
		c.mu.Unlock()
	}
	return c
}

func (c *recConn) onCommand(tag, name string) {
	if name != "STARTTLS" || c.tls == nil {
		return
	}
	c.mu.Lock()
	if !c.bridged {
		c.startTag = tag
		c.out = c.out[:0]
	}
	c.mu.Unlock()
}

// Read implements net.Conn.
func (c *recConn) Read(p []byte) (int, error) {
	c.mu.Lock()
	cur, bridged := c.cur, c.bridged
	c.mu.Unlock()
	n, err := cur.Read(p)
	if n > 0 && !bridged {
		_, _ = c.rec.Write(p[:n])
	}
	return n, closedErr(err)
}

// closedErr reports a closed pipe as net.ErrClosed, which imapserver
// expects when a connection is closed under it (and does not log).
func closedErr(err error) error {
	if errors.Is(err, io.ErrClosedPipe) {
		return net.ErrClosed
	}
	return err
}

// Write implements net.Conn. While a STARTTLS command is pending it watches
// the server's output for the tagged OK, after which it starts the bridge.
func (c *recConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	cur, watch := c.cur, !c.bridged && c.startTag != ""
	c.mu.Unlock()
	n, err := cur.Write(p)
	if watch && n > 0 {
		c.watchOutput(p[:n])
	}
	return n, closedErr(err)
}

func (c *recConn) watchOutput(p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bridged || c.startTag == "" {
		return
	}
	c.out = append(c.out, p...)
	for {
		i := bytes.IndexByte(c.out, '\n')
		if i < 0 {
			return
		}
		line := string(c.out[:i])
		c.out = c.out[i+1:]
		if strings.HasPrefix(line, c.startTag+" ") {
			ok := strings.HasPrefix(strings.ToUpper(line[len(c.startTag)+1:]), "OK")
			c.startTag = ""
			c.out = c.out[:0]
			if ok {
				c.bridgeLocked()
			}
			return
		}
	}
}

// bridgeLocked switches the connection to relayed TLS. c.mu must be held.
func (c *recConn) bridgeLocked() {
	serverSide, bridgeSide := net.Pipe()
	c.cur = serverSide
	c.bridged = true
	go c.bridge(bridgeSide)
}

func (c *recConn) bridge(p net.Conn) {
	outer := tls.Server(c.raw, c.tls.server)
	hop := tls.Client(p, c.tls.client)
	go func() {
		// Client to server, recorded.
		_, _ = io.Copy(hop, io.TeeReader(outer, c.rec))
		p.Close()
	}()
	// Server to client. Closing the client's side only once everything the
	// server wrote has been relayed keeps a final BYE from being lost.
	_, _ = io.Copy(outer, hop)
	outer.Close()
	c.raw.Close()
	p.Close()
}

// Close implements net.Conn.
func (c *recConn) Close() error {
	c.mu.Lock()
	cur := c.cur
	c.mu.Unlock()
	return cur.Close()
}

// LocalAddr implements net.Conn.
func (c *recConn) LocalAddr() net.Addr { return c.raw.LocalAddr() }

// RemoteAddr implements net.Conn.
func (c *recConn) RemoteAddr() net.Addr { return c.raw.RemoteAddr() }

// SetDeadline implements net.Conn.
func (c *recConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.SetDeadline(t)
}

// SetReadDeadline implements net.Conn.
func (c *recConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.SetReadDeadline(t)
}

// SetWriteDeadline implements net.Conn.
func (c *recConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.SetWriteDeadline(t)
}
