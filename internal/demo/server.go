package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// delim is imapmemserver's hierarchy delimiter.
const delim = '/'

// Server is an IMAP server inside this process: go-imap's in-memory
// server behind implicit TLS on 127.0.0.1, with a self-signed certificate
// made for this run, SPECIAL-USE attributes in LIST (imapmemserver drops
// them), LIST-STATUS, and a count per user of the commands that read
// message bodies or change a mailbox, so the demo can show that a backup
// only read the server.
//
// It is not meant for anything but the demo and tests: it keeps every
// message in memory and has no CONDSTORE.
type Server struct {
	// Addr is the implicit-TLS address, 127.0.0.1:port.
	Addr string
	// CAPEM is the PEM encoding of the server's self-signed certificate,
	// what a client passes to --ca-file.
	CAPEM []byte

	pool  *x509.CertPool
	mem   *imapmemserver.Server
	users map[string]*imapmemserver.User
	srv   *imapserver.Server
	ln    net.Listener
	done  chan struct{}

	mu    sync.Mutex
	boxes map[string]map[string]*box // user -> folder -> state
	stats map[string]*Stats
}

// box is what the server tracks about a folder to answer LIST itself.
type box struct {
	subscribed bool
	specialUse []imap.MailboxAttr
}

// Stats counts what the clients of one user asked of the server.
type Stats struct {
	// BodyFetches is the number of FETCH commands asking for message
	// bodies or parts of them (BODY[…], BODY.PEEK[…], BINARY[…]).
	BodyFetches int
	// Writes is the number of commands that change the mailbox or could:
	// SELECT (not EXAMINE), CREATE, DELETE, RENAME, SUBSCRIBE,
	// UNSUBSCRIBE, APPEND, STORE, EXPUNGE, COPY, MOVE, and FETCH BODY[…]
	// without PEEK (which sets \Seen).
	Writes int
}

// caps are the capabilities the server advertises; imapserver adds
// UNSELECT, IDLE, ENABLE, SASL-IR and LITERAL-.
var caps = imap.CapSet{
	imap.CapIMAP4rev1:        {},
	imap.CapNamespace:        {},
	imap.CapUIDPlus:          {},
	imap.CapMove:             {},
	imap.CapListExtended:     {},
	imap.CapListStatus:       {},
	imap.CapSpecialUse:       {},
	imap.CapCreateSpecialUse: {},
	imap.CapLiteralPlus:      {},
}

// StartServer starts a server on a free port of 127.0.0.1 with the given
// users (name to password), each with an empty INBOX. Close stops it.
func StartServer(users map[string]string) (*Server, error) {
	cert, certPEM, pool, err := selfSigned()
	if err != nil {
		return nil, err
	}
	s := &Server{
		CAPEM: certPEM,
		pool:  pool,
		mem:   imapmemserver.New(),
		users: map[string]*imapmemserver.User{},
		done:  make(chan struct{}),
		boxes: map[string]map[string]*box{},
		stats: map[string]*Stats{},
	}
	for name, pass := range users {
		u := imapmemserver.NewUser(name, pass)
		if err := u.Create("INBOX", nil); err != nil {
			return nil, fmt.Errorf("create INBOX of %s: %w", name, err)
		}
		s.mem.AddUser(u)
		s.users[name] = u
		s.boxes[name] = map[string]*box{"INBOX": {}}
		s.stats[name] = &Stats{}
	}
	s.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{Session: s.mem.NewSession(), srv: s}, nil, nil
		},
		Caps:   caps,
		Logger: discard{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on 127.0.0.1: %w", err)
	}
	s.Addr = ln.Addr().String()
	s.ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(s.ln)
	}()
	return s, nil
}

// Close stops the server and closes its connections.
func (s *Server) Close() error {
	err := s.srv.Close()
	_ = s.ln.Close()
	<-s.done
	return err
}

// Stats returns what the clients of user asked so far.
func (s *Server) Stats(user string) Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stats[user]; st != nil {
		return *st
	}
	return Stats{}
}

// CreateFolder creates a folder in user's account, bypassing IMAP (and
// the counts of Stats), with the special-use attribute attr unless it is
// "".
func (s *Server) CreateFolder(user, name, attr string) error {
	u := s.users[user]
	if u == nil {
		return fmt.Errorf("create folder %q: no user %q", name, user)
	}
	if err := u.Create(name, nil); err != nil {
		return fmt.Errorf("create folder %q: %w", name, err)
	}
	b := &box{subscribed: true}
	if attr != "" {
		b.specialUse = []imap.MailboxAttr{imap.MailboxAttr(attr)}
	}
	s.mu.Lock()
	s.boxes[user][name] = b
	s.mu.Unlock()
	return u.Subscribe(name)
}

// Append stores a message in user's folder, bypassing IMAP (and the
// counts of Stats), and returns its source key as mailvault names it:
// "UIDVALIDITY:UID".
func (s *Server) Append(user, folder string, flags []string, date time.Time, body []byte) (string, error) {
	u := s.users[user]
	if u == nil {
		return "", fmt.Errorf("append to %q: no user %q", folder, user)
	}
	opts := &imap.AppendOptions{Time: date}
	for _, f := range flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	data, err := u.Append(folder, literal{bytes.NewReader(body)}, opts)
	if err != nil {
		return "", fmt.Errorf("append to %q: %w", folder, err)
	}
	return fmt.Sprintf("%d:%d", data.UIDValidity, data.UID), nil
}

// literal is a message body for User.Append.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// Dial connects to the server as a mail client would (TLS verified
// against the server's certificate) and logs in. The caller closes the
// client.
func (s *Server) Dial(user, pass string) (*imapclient.Client, error) {
	c, err := imapclient.DialTLS(s.Addr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", s.Addr, err)
	}
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("log in as %s: %w", user, err)
	}
	return c, nil
}

// selfSigned makes a certificate for 127.0.0.1 valid for a day.
func selfSigned() (tls.Certificate, []byte, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("generate the server key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("generate a serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "mailvault demo server (self-signed)"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("create the server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, nil, fmt.Errorf("parse the server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool, nil
}

// discard drops the server's log: connection errors of the demo's own
// clients are not news.
type discard struct{}

func (discard) Printf(string, ...any) {}

// session wraps an imapmemserver session: it answers LIST itself (with
// special-use attributes) and counts reads of bodies and changes.
type session struct {
	imapserver.Session
	srv  *Server
	user string
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)

func (s *session) count(bodies, writes int) {
	s.srv.mu.Lock()
	if st := s.srv.stats[s.user]; st != nil {
		st.BodyFetches += bodies
		st.Writes += writes
	}
	s.srv.mu.Unlock()
}

// Login implements imapserver.Session.
func (s *session) Login(username, password string) error {
	if err := s.Session.Login(username, password); err != nil {
		return err
	}
	s.user = username
	return nil
}

// Select implements imapserver.Session: EXAMINE is a read, SELECT a write.
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if options == nil || !options.ReadOnly {
		s.count(0, 1)
	}
	return s.Session.Select(name, options)
}

// Fetch implements imapserver.Session.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	bodies, writes := 0, 0
	if len(options.BodySection) > 0 || len(options.BinarySection) > 0 {
		bodies = 1
	}
	for _, b := range options.BodySection {
		if !b.Peek {
			writes = 1
		}
	}
	for _, b := range options.BinarySection {
		if !b.Peek {
			writes = 1
		}
	}
	s.count(bodies, writes)
	return s.Session.Fetch(w, numSet, options)
}

// Append implements imapserver.Session.
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	s.count(0, 1)
	return s.Session.Append(mailbox, r, options)
}

// Store implements imapserver.Session.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.count(0, 1)
	return s.Session.Store(w, numSet, flags, options)
}

// Expunge implements imapserver.Session.
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	s.count(0, 1)
	return s.Session.Expunge(w, uids)
}

// Copy implements imapserver.Session.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.count(0, 1)
	return s.Session.Copy(numSet, dest)
}

// Move implements imapserver.SessionMove.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	s.count(0, 1)
	mv, ok := s.Session.(imapserver.SessionMove)
	if !ok {
		return errors.New("demo server: MOVE not supported")
	}
	return mv.Move(w, numSet, dest)
}

// Namespace implements imapserver.SessionNamespace.
func (s *session) Namespace() (*imap.NamespaceData, error) {
	ns, ok := s.Session.(imapserver.SessionNamespace)
	if !ok {
		return nil, errors.New("demo server: NAMESPACE not supported")
	}
	return ns.Namespace()
}

// Create implements imapserver.Session.
func (s *session) Create(name string, options *imap.CreateOptions) error {
	s.count(0, 1)
	if err := s.Session.Create(name, options); err != nil {
		return err
	}
	b := &box{}
	if options != nil {
		b.specialUse = append(b.specialUse, options.SpecialUse...)
	}
	s.srv.mu.Lock()
	s.srv.boxes[s.user][strings.TrimRight(name, string(delim))] = b
	s.srv.mu.Unlock()
	return nil
}

// Delete implements imapserver.Session.
func (s *session) Delete(name string) error {
	s.count(0, 1)
	if err := s.Session.Delete(name); err != nil {
		return err
	}
	s.srv.mu.Lock()
	delete(s.srv.boxes[s.user], name)
	s.srv.mu.Unlock()
	return nil
}

// Rename implements imapserver.Session.
func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	s.count(0, 1)
	if err := s.Session.Rename(oldName, newName, options); err != nil {
		return err
	}
	s.srv.mu.Lock()
	boxes := s.srv.boxes[s.user]
	b := boxes[oldName]
	if b == nil {
		b = &box{}
	}
	delete(boxes, oldName)
	boxes[strings.TrimRight(newName, string(delim))] = b
	s.srv.mu.Unlock()
	return nil
}

// Subscribe implements imapserver.Session.
func (s *session) Subscribe(name string) error {
	return s.setSubscribed(name, true, s.Session.Subscribe)
}

// Unsubscribe implements imapserver.Session.
func (s *session) Unsubscribe(name string) error {
	return s.setSubscribed(name, false, s.Session.Unsubscribe)
}

func (s *session) setSubscribed(name string, on bool, inner func(string) error) error {
	s.count(0, 1)
	if err := inner(name); err != nil {
		return err
	}
	s.srv.mu.Lock()
	if b := s.srv.boxes[s.user][name]; b != nil {
		b.subscribed = on
	}
	s.srv.mu.Unlock()
	return nil
}

// List implements imapserver.Session. It mirrors imapmemserver's List and
// adds the special-use attributes.
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	var l []imap.ListData
	s.srv.mu.Lock()
	for name, b := range s.srv.boxes[s.user] {
		match := false
		for _, pattern := range patterns {
			match = match || imapserver.MatchList(name, delim, ref, pattern)
		}
		if !match {
			continue
		}
		use := b.specialUse
		if options.SelectSubscribed && !b.subscribed || options.SelectSpecialUse && len(use) == 0 {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: delim}
		if b.subscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		data.Attrs = append(data.Attrs, use...)
		l = append(l, data)
	}
	s.srv.mu.Unlock()
	sort.Slice(l, func(i, j int) bool { return l[i].Mailbox < l[j].Mailbox })
	for i := range l {
		if options.ReturnStatus != nil {
			status, err := s.Session.Status(l[i].Mailbox, options.ReturnStatus)
			if err != nil {
				continue // deleted meanwhile
			}
			l[i].Status = status
		}
		if err := w.WriteList(&l[i]); err != nil {
			return err
		}
	}
	return nil
}

// waitClose closes c when ctx ends, the only way to interrupt a blocked
// go-imap command; the returned function stops that.
func waitClose(ctx context.Context, c *imapclient.Client) func() bool {
	return context.AfterFunc(ctx, func() { c.Close() })
}
