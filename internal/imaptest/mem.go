package imaptest

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
)

// memDelim is imapmemserver's hierarchy delimiter.
const memDelim = '/'

// MemOptions configures StartMem.
type MemOptions struct {
	// Users maps user names to passwords. Every user starts with an empty
	// INBOX.
	Users map[string]string
	// SpecialUse maps folder names to a special-use attribute, for example
	// "Enviados": `\Sent`. It applies to every user; the folders themselves
	// must still be created (see Create). The attribute is reported in every
	// LIST response for the folder, with or without RETURN (SPECIAL-USE).
	// Attributes given in CREATE (USE (...)) are reported as well.
	SpecialUse map[string]string
	// TLS offers STARTTLS with a generated self-signed certificate (IP SAN
	// 127.0.0.1, DNS name localhost). Plaintext LOGIN is still allowed
	// unless RequireTLS is set.
	TLS bool
	// RequireTLS refuses LOGIN before STARTTLS (the server then advertises
	// LOGINDISABLED). It implies TLS.
	RequireTLS bool
	// ImplicitTLS additionally listens with implicit TLS on TLSAddr.
	ImplicitTLS bool
	// AppendLimit, if positive, is advertised as APPENDLIMIT=N (RFC 7889)
	// and enforced.
	AppendLimit uint32
}

// MemServer is a running in-memory IMAP server (go-imap's imapmemserver)
// listening on 127.0.0.1.
type MemServer struct {
	// Addr is the plaintext (and STARTTLS) address, 127.0.0.1:port.
	Addr string
	// TLSAddr is the implicit TLS address when MemOptions.ImplicitTLS is
	// set, "" otherwise.
	TLSAddr string
	// CAFile is the path of the PEM encoded self-signed certificate when
	// TLS or ImplicitTLS is set, "" otherwise.
	CAFile string
	// CertPool holds the self-signed certificate when TLS or ImplicitTLS is
	// set, nil otherwise.
	CertPool *x509.CertPool

	requireTLS bool
	log        cmdLog
	specialUse map[string]imap.MailboxAttr

	mu    sync.Mutex
	boxes map[string]map[string]*memBox // user -> folder -> state
}

// memBox is what MemServer tracks about a folder to answer LIST itself:
// imapmemserver keeps subscriptions and special-use attributes in
// unexported fields (and drops the latter).
type memBox struct {
	subscribed bool
	specialUse []imap.MailboxAttr
	noSelect   bool // listed \Noselect, holds nothing (Gmail's "[Gmail]")
}

// memCaps are the capabilities the in-memory server advertises. UNSELECT,
// IDLE, ENABLE, SASL-IR and LITERAL- are added by imapserver itself.
var memCaps = imap.CapSet{
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

// StartMem starts an in-memory IMAP server on 127.0.0.1 with the given
// users. t.Cleanup closes its listeners and connections. Server errors are
// logged with t.Logf until the test ends.
func StartMem(t testing.TB, opts MemOptions) *MemServer {
	t.Helper()
	return startMem(t, opts, memExt{})
}

// memExt is how a server built on MemServer (StartGmail) changes it.
type memExt struct {
	caps []imap.Cap // advertised in addition to memCaps
	// wrap, if set, returns the session a connection gets, from the
	// MemServer's own.
	wrap func(conn *imapserver.Conn, sess *memSession) imapserver.Session
}

func startMem(t testing.TB, opts MemOptions, ext memExt) *MemServer {
	t.Helper()
	if opts.RequireTLS {
		opts.TLS = true
	}
	s := &MemServer{
		requireTLS: opts.RequireTLS,
		specialUse: make(map[string]imap.MailboxAttr),
		boxes:      make(map[string]map[string]*memBox),
	}
	for name, attr := range opts.SpecialUse {
		s.specialUse[name] = imap.MailboxAttr(attr)
	}

	mem := imapmemserver.New()
	for name, pass := range opts.Users {
		u := imapmemserver.NewUser(name, pass)
		if err := u.Create("INBOX", nil); err != nil {
			t.Fatalf("imaptest: creating INBOX for %q: %v", name, err)
		}
		mem.AddUser(u)
		s.boxes[name] = map[string]*memBox{"INBOX": {}}
	}

	var tm *tlsMaterial
	if opts.TLS || opts.ImplicitTLS {
		tm = newTLSMaterial(t)
		s.CAFile = tm.pemPath
		s.CertPool = tm.pool
	}

	caps := memCaps.Copy()
	for _, c := range ext.caps {
		caps[c] = struct{}{}
	}
	logger := &testLogger{t: t}
	srvOpts := &imapserver.Options{
		NewSession: func(conn *imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			sess := &memSession{Session: mem.NewSession(), srv: s}
			if ext.wrap != nil {
				return ext.wrap(conn, sess), nil, nil
			}
			if opts.AppendLimit > 0 {
				return &limitedSession{memSession: sess, limit: opts.AppendLimit}, nil, nil
			}
			return sess, nil, nil
		},
		Caps:         caps,
		Logger:       logger,
		InsecureAuth: !opts.RequireTLS,
	}
	if opts.TLS {
		srvOpts.TLSConfig = tm.server
	}
	srv := imapserver.New(srvOpts)

	var wg sync.WaitGroup
	var listeners []net.Listener
	serve := func(ln net.Listener) {
		listeners = append(listeners, ln)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				logger.Printf("serve: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		_ = srv.Close()
		for _, ln := range listeners {
			_ = ln.Close()
		}
		wg.Wait()
		logger.stop()
	})

	ln := listen(t)
	s.Addr = ln.Addr().String()
	serve(&recListener{Listener: ln, log: &s.log, tls: tm})
	if opts.ImplicitTLS {
		tln := listen(t)
		s.TLSAddr = tln.Addr().String()
		serve(tls.NewListener(&recListener{Listener: tln, log: &s.log, tls: tm, implicit: true}, tm.server))
	}
	return s
}

// listen opens a TCP listener on a free port of 127.0.0.1.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("imaptest: listen: %v", err)
	}
	return ln
}

// Commands returns every command line the server received so far, on all
// connections and listeners (including after STARTTLS): tags stripped,
// literal data left out (the {n} announcements stay), LOGIN recorded as
// "LOGIN <redacted>" and SASL data as "<redacted>".
func (s *MemServer) Commands() []string {
	return s.log.snapshot()
}

// Dial connects to Addr and logs in, failing the test on error. The
// connection is plaintext, except that it is upgraded with STARTTLS
// (verified against CertPool) when the server was started with RequireTLS,
// since it would refuse LOGIN otherwise. t.Cleanup closes the client.
func (s *MemServer) Dial(t testing.TB, user, pass string) *imapclient.Client {
	t.Helper()
	var (
		c   *imapclient.Client
		err error
	)
	if s.requireTLS {
		c, err = imapclient.DialStartTLS(s.Addr, &imapclient.Options{
			TLSConfig: &tls.Config{RootCAs: s.CertPool, MinVersion: tls.VersionTLS12},
		})
	} else {
		c, err = imapclient.DialInsecure(s.Addr, nil)
	}
	if err != nil {
		t.Fatalf("imaptest: dial %s: %v", s.Addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("imaptest: login as %q: %v", user, err)
	}
	return c
}

// Append appends a message to folder with the given flags and internal date
// (the server's clock when date is zero) and returns its UID. It fails the
// test on error.
func Append(t testing.TB, c *imapclient.Client, folder string, flags []imap.Flag, date time.Time, body []byte) imap.UID {
	t.Helper()
	cmd := c.Append(folder, int64(len(body)), &imap.AppendOptions{Flags: flags, Time: date})
	if _, err := cmd.Write(body); err != nil {
		t.Fatalf("imaptest: append to %q: %v", folder, err)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("imaptest: append to %q: %v", folder, err)
	}
	data, err := cmd.Wait()
	if err != nil {
		t.Fatalf("imaptest: append to %q: %v", folder, err)
	}
	return data.UID
}

// Create creates a folder, failing the test on error.
func Create(t testing.TB, c *imapclient.Client, name string) {
	t.Helper()
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("imaptest: create %q: %v", name, err)
	}
}

// memSession wraps an imapmemserver session to keep track of folders,
// subscriptions and special-use attributes, and answers LIST from that.
// limitedSession advertises and enforces an APPENDLIMIT.
type limitedSession struct {
	*memSession
	limit uint32
}

func (s *limitedSession) AppendLimit() uint32 { return s.limit }

type memSession struct {
	imapserver.Session
	srv  *MemServer
	user string
}

var _ imapserver.SessionIMAP4rev2 = (*memSession)(nil)

// Login implements imapserver.Session.
func (s *memSession) Login(username, password string) error {
	if err := s.Session.Login(username, password); err != nil {
		return err
	}
	s.user = username
	return nil
}

// Create implements imapserver.Session.
func (s *memSession) Create(name string, options *imap.CreateOptions) error {
	if err := s.Session.Create(name, options); err != nil {
		return err
	}
	box := &memBox{}
	if options != nil {
		box.specialUse = append(box.specialUse, options.SpecialUse...)
	}
	s.srv.mu.Lock()
	s.srv.boxes[s.user][strings.TrimRight(name, string(memDelim))] = box
	s.srv.mu.Unlock()
	return nil
}

// Delete implements imapserver.Session.
func (s *memSession) Delete(name string) error {
	if err := s.Session.Delete(name); err != nil {
		return err
	}
	s.srv.mu.Lock()
	delete(s.srv.boxes[s.user], name)
	s.srv.mu.Unlock()
	return nil
}

// Rename implements imapserver.Session.
func (s *memSession) Rename(oldName, newName string, options *imap.RenameOptions) error {
	if err := s.Session.Rename(oldName, newName, options); err != nil {
		return err
	}
	s.srv.mu.Lock()
	boxes := s.srv.boxes[s.user]
	box := boxes[oldName]
	if box == nil {
		box = &memBox{}
	}
	delete(boxes, oldName)
	boxes[strings.TrimRight(newName, string(memDelim))] = box
	s.srv.mu.Unlock()
	return nil
}

// Subscribe implements imapserver.Session.
func (s *memSession) Subscribe(name string) error {
	return s.setSubscribed(name, true, s.Session.Subscribe)
}

// Unsubscribe implements imapserver.Session.
func (s *memSession) Unsubscribe(name string) error {
	return s.setSubscribed(name, false, s.Session.Unsubscribe)
}

func (s *memSession) setSubscribed(name string, on bool, inner func(string) error) error {
	if err := inner(name); err != nil {
		return err
	}
	s.srv.mu.Lock()
	if box := s.srv.boxes[s.user][name]; box != nil {
		box.subscribed = on
	}
	s.srv.mu.Unlock()
	return nil
}

// List implements imapserver.Session. It mirrors imapmemserver's List but
// adds the special-use attributes.
func (s *memSession) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if len(patterns) == 0 {
		return w.WriteList(&imap.ListData{
			Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect},
			Delim: memDelim,
		})
	}

	var l []imap.ListData
	s.srv.mu.Lock()
	for name, box := range s.srv.boxes[s.user] {
		match := false
		for _, pattern := range patterns {
			if imapserver.MatchList(name, memDelim, ref, pattern) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		use := box.specialUse
		if attr, ok := s.srv.specialUse[name]; ok {
			use = append([]imap.MailboxAttr{attr}, use...)
		}
		if options.SelectSubscribed && !box.subscribed {
			continue
		}
		if options.SelectSpecialUse && len(use) == 0 {
			continue
		}
		data := imap.ListData{Mailbox: name, Delim: memDelim}
		if box.noSelect {
			data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect, imap.MailboxAttrHasChildren)
		}
		if box.subscribed {
			data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
		}
		data.Attrs = append(data.Attrs, use...)
		l = append(l, data)
	}
	s.srv.mu.Unlock()

	sort.Slice(l, func(i, j int) bool { return l[i].Mailbox < l[j].Mailbox })
	for i := range l {
		if options.ReturnStatus != nil && !slices.Contains(l[i].Attrs, imap.MailboxAttrNoSelect) {
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

// Namespace implements imapserver.SessionNamespace.
func (s *memSession) Namespace() (*imap.NamespaceData, error) {
	ns, ok := s.Session.(imapserver.SessionNamespace)
	if !ok {
		return nil, errors.New("imaptest: NAMESPACE not supported")
	}
	return ns.Namespace()
}

// Move implements imapserver.SessionMove.
func (s *memSession) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	mv, ok := s.Session.(imapserver.SessionMove)
	if !ok {
		return errors.New("imaptest: MOVE not supported")
	}
	return mv.Move(w, numSet, dest)
}

// testLogger forwards server log messages to t.Logf until stop is called,
// after which they are dropped (t.Logf panics once the test is over).
type testLogger struct {
	t       testing.TB
	mu      sync.Mutex
	stopped bool
}

// Printf implements imapserver.Logger.
func (l *testLogger) Printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.stopped {
		l.t.Logf("imapserver: "+format, args...)
	}
}

func (l *testLogger) stop() {
	l.mu.Lock()
	l.stopped = true
	l.mu.Unlock()
}
