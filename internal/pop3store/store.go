// Package pop3store adapts a POP3 server to the backup engine's Source: the
// inbox only, stored as folder INBOX, messages keyed by UIDL. It never
// marks a message as read when it can avoid it (TOP n L with a large L
// instead of RETR, which makes Dovecot and others set \Seen), never deletes
// unless asked, and deletes only through Delete followed by a normal Close
// (QUIT), which the engine calls after the archive is committed.
package pop3store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/migadu/go-pop3/pop3client"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/connerr"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// Limits raised from go-pop3's defaults: a mail line can be long, and a
// mailbox can hold many messages.
const (
	maxLine  = 16 << 20
	maxLines = 10_000_000
	topAll   = 1<<31 - 1 // "TOP n topAll" returns the whole message
)

// Store is one POP3 session used as a backup Source.
type Store struct {
	cfg    mailconn.Config
	c      *pop3client.Client
	caps   map[string]bool
	num    map[string]int // key -> message number in this session
	size   map[int]int64  // message number -> size from LIST
	policy *Policy
	// Warn, if set, is told about server behaviour mailvault worked around.
	Warn func(msg string)

	mu       sync.Mutex
	timedOut bool
	sess     context.Context
	cancel   context.CancelFunc
	timer    *time.Timer
}

// Policy is what the user allows and what a run learns about a server
// across its sessions.
type Policy struct {
	// AllowRetr lets the backup fetch with RETR when the server has no TOP,
	// or when TOP and LIST disagree on a message's size. RETR marks
	// messages read on many servers (Dovecot, Courier, GNU Mailutils):
	// without it, such messages are archived as TOP returns them (with a
	// warning) or not at all.
	AllowRetr bool

	mu      sync.Mutex
	UseRetr bool // TOP proved unusable and AllowRetr: RETR from now on
	// TopMismatch counts the messages archived as TOP returned them
	// although their size differs from LIST's (AllowRetr unset).
	TopMismatch int
	warned      map[string]bool
}

func (p *Policy) retr() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.UseRetr
}

func (p *Policy) setRetr() {
	p.mu.Lock()
	p.UseRetr = true
	p.mu.Unlock()
}

func (p *Policy) mismatch() {
	p.mu.Lock()
	p.TopMismatch++
	p.mu.Unlock()
}

// Mismatches returns Policy.TopMismatch.
func (p *Policy) Mismatches() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.TopMismatch
}

func (p *Policy) warnOnce(s *Store, key, msg string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.warned == nil {
		p.warned = map[string]bool{}
	}
	if !p.warned[key] && s.Warn != nil {
		s.Warn(msg)
	}
	p.warned[key] = true
}

var (
	_ backup.Source  = (*Store)(nil)
	_ backup.Deleter = (*Store)(nil)
)

// Dial connects and logs in. policy carries what earlier sessions of the
// same run learnt (nil for a fresh one).
func Dial(ctx context.Context, cfg mailconn.Config, policy *Policy) (*Store, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if policy == nil {
		policy = &Policy{}
	}
	s := &Store{cfg: cfg, policy: policy}
	opts := pop3client.Options{MaxLineLength: maxLine, MaxResponseLines: maxLines, Dialer: &net.Dialer{Timeout: cfg.Timeout}}
	if cfg.Security != mailconn.Plaintext {
		tcfg, err := cfg.TLSConfig()
		if err != nil {
			return nil, err
		}
		opts.TLSConfig, opts.STARTTLS = tcfg, cfg.Security == mailconn.StartTLS
	}
	dctx, done := s.op(ctx)
	c, err := pop3client.Dial(dctx, cfg.Addr, opts)
	done()
	if err != nil {
		s.cancel()
		return nil, s.dialErr(ctx, err)
	}
	s.c = c
	if err := s.login(ctx); err != nil {
		c.Close()
		s.cancel()
		return nil, err
	}
	return s, nil
}

func (s *Store) dialErr(ctx context.Context, err error) error {
	var op *net.OpError
	var pe *pop3client.ProtocolError
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case s.didTimeOut():
		return fmt.Errorf("%w: %s did not answer within %s", mailconn.ErrTimeout, s.cfg.Addr, s.cfg.Timeout)
	case errors.As(err, &pe) && s.cfg.Security == mailconn.StartTLS:
		return fmt.Errorf("%w on %s (%s): use pop3s:// (or --insecure-plaintext on a trusted loopback)", mailconn.ErrNoTLS, s.cfg.Addr, strings.TrimSpace(pe.Response))
	case errors.As(err, &op) && op.Op == "dial":
		return fmt.Errorf("%w to %s: %w", mailconn.ErrUnreachable, s.cfg.Addr, op.Err)
	case s.cfg.Security == mailconn.Plaintext:
		// No TLS: the greeting is all that was read.
		return s.cfg.ClassifyGreeting(err)
	}
	// pop3client does the TLS handshake and reads the greeting without
	// telling which failed; an end of the connection is classified as the
	// handshake's.
	return s.cfg.ClassifyTLS("pop3", err)
}

// op arms the watchdog for one operation and returns the session's
// context: the session is cancelled (and its connection unblocked) when the
// server makes no progress for the timeout, or when ctx, the operation's
// context, is done before the operation; touch re-arms the watchdog. A
// cancelled session is over: every later call fails. The session context
// is cancelled only then and at Close, never after each call: cancelling a
// context right after a go-pop3 call can race with the library's own guard
// and poison the next command's deadline.
func (s *Store) op(ctx context.Context) (context.Context, func()) {
	s.mu.Lock()
	if s.sess == nil {
		s.sess, s.cancel = context.WithCancel(context.WithoutCancel(ctx))
		s.timer = time.AfterFunc(s.cfg.Timeout, func() {
			s.mu.Lock()
			s.timedOut = true
			s.mu.Unlock()
			s.cancel()
		})
	} else {
		s.timer.Reset(s.cfg.Timeout)
	}
	sess, cancel := s.sess, s.cancel
	s.mu.Unlock()
	stop := context.AfterFunc(ctx, cancel)
	return sess, func() {
		s.timer.Stop()
		stop()
	}
}

// ctxDone returns ctx's error once ctx is done, else err: a call that ctx
// ended, even one that completed meanwhile, reports the context's error
// (the session it ran in is over).
func ctxDone(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// touch re-arms the watchdog after progress.
func (s *Store) touch(context.Context) { s.timer.Reset(s.cfg.Timeout) }

func (s *Store) didTimeOut() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.timedOut
}

// connErr classifies an error of a command: a server's -ERR stays a plain
// error; a broken connection becomes a connerr.Error.
func (s *Store) connErr(ctx context.Context, what string, err error) error {
	var pe *pop3client.ProtocolError
	switch {
	case errors.As(err, &pe):
		return fmt.Errorf("%s: server answered %s", what, strings.TrimSpace(pe.Response))
	case s.didTimeOut():
		err = fmt.Errorf("%w: no answer for %s during %s (see --timeout)", mailconn.ErrTimeout, s.cfg.Timeout, what)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed):
		err = fmt.Errorf("%s: server closed the connection", what)
	default:
		err = fmt.Errorf("%s: %w", what, err)
	}
	return &connerr.Error{Err: err}
}

func (s *Store) login(ctx context.Context) error {
	octx, done := s.op(ctx)
	defer done()
	caps, err := s.c.Capa(octx)
	s.caps = map[string]bool{}
	offer := auth.Offer{Listed: err == nil}
	if err == nil {
		for _, c := range caps {
			f := strings.Fields(strings.ToUpper(c))
			if len(f) == 0 {
				continue
			}
			s.caps[f[0]] = true
			if f[0] == "SASL" {
				offer.SASL = append(offer.SASL, f[1:]...)
			}
		}
	}
	if s.caps["UTF8"] {
		// RFC 6856: without it, Courier serves a message with 8-bit
		// headers wrapped in a "Cannot display Unicode content" notice of
		// its own, with a new MIME boundary each time, instead of the
		// message. The answer does not matter.
		if _, err := s.c.Cmd(octx, "UTF8"); err != nil {
			return s.connErr(ctx, "utf8", err)
		}
	}
	err = s.cfg.Login().Login(octx, s.cfg.Addr, offer, func(at auth.Attempt) error {
		var err error
		if at.SASL != nil {
			err = s.authenticate(octx, at.SASL)
		} else {
			err = s.c.User(octx, at.User, at.Password)
		}
		var pe *pop3client.ProtocolError
		if errors.As(err, &pe) {
			resp := strings.TrimSpace(strings.TrimPrefix(pe.Response, "-ERR"))
			if strings.Contains(strings.ToUpper(resp), "[IN-USE]") {
				return fmt.Errorf("%w: %s on %s: %s", mailconn.ErrInUse, s.cfg.Login().Who(), s.cfg.Addr, resp)
			}
			return &auth.RefusedError{Text: resp}
		}
		return err
	})
	if err != nil {
		if errors.Is(err, mailconn.ErrAuth) || errors.Is(err, mailconn.ErrInUse) {
			return err
		}
		return s.connErr(ctx, "login", err)
	}
	return nil
}

// maxAuthLine is the longest AUTH command that carries its initial
// response (RFC 5034, 4): a longer one (an OAuth2 token) is sent after the
// server's empty challenge instead.
const maxAuthLine = 255

// maxAuthSteps bounds the challenges of one SASL exchange.
const maxAuthSteps = 8

// authenticate runs a SASL exchange with AUTH (RFC 5034) over go-pop3's
// raw command: go-pop3 has only AUTH PLAIN without an authorization
// identity.
func (s *Store) authenticate(ctx context.Context, c sasl.Client) error {
	mech, ir, err := c.Start()
	if err != nil {
		return err
	}
	line := "AUTH " + mech
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc) <= maxAuthLine {
			line += " " + enc
			ir = nil
		}
	}
	resp, err := s.c.Cmd(ctx, line)
	for step := 0; ; step++ {
		if err != nil {
			return err
		}
		if step > maxAuthSteps {
			return fmt.Errorf("AUTH %s: the server sent challenge after challenge", mech)
		}
		switch {
		case strings.HasPrefix(resp, "+OK"):
			return nil
		case resp == "+" || strings.HasPrefix(resp, "+ "):
			var out []byte
			if ir != nil {
				out, ir = ir, nil
			} else {
				challenge, derr := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(resp, "+")))
				if derr == nil {
					out, derr = c.Next(challenge)
				}
				if derr != nil {
					// Cancel the exchange; the server answers -ERR.
					resp, err = s.c.Cmd(ctx, "*")
					continue
				}
			}
			resp, err = s.c.Cmd(ctx, base64.StdEncoding.EncodeToString(out))
		default:
			return &pop3client.ProtocolError{Response: resp}
		}
	}
}

// Close ends the session with QUIT, which makes deletions final.
func (s *Store) Close() error {
	if s.c == nil {
		return nil
	}
	ctx, done := s.op(context.Background())
	err := s.c.Quit(ctx)
	done()
	s.c.Close()
	s.c = nil
	s.cancel()
	return err
}

// Folders implements backup.Source: POP3 has one folder.
func (s *Store) Folders(ctx context.Context) ([]backup.FolderInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return []backup.FolderInfo{{Name: "INBOX"}}, nil
}

// Examine implements backup.Source with STAT.
func (s *Store) Examine(ctx context.Context, name string) (backup.FolderStatus, error) {
	if err := ctx.Err(); err != nil {
		return backup.FolderStatus{}, err
	}
	if name != "INBOX" {
		return backup.FolderStatus{}, fmt.Errorf("POP3 has no folder %q", name)
	}
	octx, done := s.op(ctx)
	defer done()
	n, _, err := s.c.Stat(octx)
	if err != nil {
		return backup.FolderStatus{}, s.connErr(ctx, "stat", err)
	}
	return backup.FolderStatus{Messages: uint32(n)}, ctxDone(ctx, nil)
}

// List implements backup.Source: the key of a message is its UIDL; a
// server without UIDL gets keys from a hash of the header (TOP n 0) and the
// size, with one warning.
func (s *Store) List(ctx context.Context, fn func(key string, flags []string) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.list(ctx, fn)
	return ctxDone(ctx, err)
}

func (s *Store) list(ctx context.Context, fn func(key string, flags []string) error) error {
	octx, done := s.op(ctx)
	defer done()
	infos, err := s.c.List(octx)
	if err != nil {
		return s.connErr(ctx, "list", err)
	}
	s.size = map[int]int64{}
	for _, in := range infos {
		s.size[in.Num] = in.Size
	}
	s.num = map[string]int{}
	uidls, err := s.c.Uidl(octx)
	var pe *pop3client.ProtocolError
	if errors.As(err, &pe) {
		s.policy.warnOnce(s, "uidl", "server has no UIDL: messages are recognised by a hash of their header and size")
		for _, in := range infos {
			key, err := s.headerKey(octx, in.Num, in.Size)
			if err != nil {
				return err
			}
			s.touch(octx)
			s.num[key] = in.Num
			if err := fn(key, nil); err != nil {
				return err
			}
		}
		return nil
	}
	if err != nil {
		return s.connErr(ctx, "uidl", err)
	}
	for _, u := range uidls {
		if _, dup := s.num[u.UniqueID]; dup || u.UniqueID == "" {
			continue // a broken server; the content hash still catches duplicates
		}
		s.num[u.UniqueID] = u.Num
		if err := fn(u.UniqueID, nil); err != nil {
			return err
		}
	}
	return nil
}

// headerKey is the key of a message on a server without UIDL.
func (s *Store) headerKey(ctx context.Context, msg int, size int64) (string, error) {
	r, err := s.c.Top(ctx, msg, 0)
	if err != nil {
		return "", s.connErr(ctx, "top", err)
	}
	h := sha256.New()
	_, err = io.Copy(h, r)
	r.Close()
	if err != nil {
		return "", s.connErr(ctx, "top", err)
	}
	return fmt.Sprintf("hdr:%s:%d", hex.EncodeToString(h.Sum(nil))[:32], size), nil
}

// errShort reports a body shorter than LIST said; errMismatch a TOP body
// of another size than LIST said, when RETR is allowed.
var (
	errShort    = errors.New("message shorter than the size the server listed")
	errMismatch = errors.New("TOP returned another size than LIST")
	// errNoTop is the error of a server without TOP when RETR is not allowed.
	errNoTop = errors.New("the server has no TOP command, and RETR would mark the messages as read: allow it with --pop3-allow-retr")
)

// Fetch implements backup.Source. Messages are read with TOP n <large>,
// which returns the whole message without marking it read. The size TOP
// returned is compared with LIST's (RFC 1939 calls it exact; a message
// without a final line break may come with the CRLF the protocol adds).
// Where they differ the server is at fault (GNU Mailutils pop3d adds an
// empty line after the header of every TOP answer): with
// Policy.AllowRetr the message, and every later one, is fetched with RETR;
// without, a longer TOP answer is archived as it came, with a warning, and
// a shorter one (part of the message missing) is not archived. A message
// the server refuses (-ERR) is skipped and reported by the engine as not
// delivered; it is fetched again next run.
func (s *Store) Fetch(ctx context.Context, keys []string, fn func(m *backup.Message) error) error {
	return ctxDone(ctx, s.fetch(ctx, keys, fn))
}

func (s *Store) fetch(ctx context.Context, keys []string, fn func(m *backup.Message) error) error {
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		msg, ok := s.num[key]
		if !ok {
			continue
		}
		err := s.fetchOne(ctx, key, msg, fn)
		var tm *topMismatch
		switch {
		case errors.Is(err, errShort) && !s.policy.retr():
			// Is it TOP that is short, or the connection that broke?
			if nerr := s.noop(ctx); nerr != nil {
				return nerr
			}
			if !s.policy.AllowRetr {
				s.policy.warnOnce(s, "short:"+key, fmt.Sprintf("server's TOP returned less than LIST's size for message %s: not archived, as part of it is missing; --pop3-allow-retr fetches such messages with RETR, which marks them as read on many servers", key))
				continue
			}
			s.policy.setRetr()
			s.policy.warnOnce(s, "retr", "server's TOP returns less than LIST's size: using RETR, as --pop3-allow-retr allows (it marks messages as read on many servers)")
			err = s.fetchOne(ctx, key, msg, fn)
		case errors.As(err, &tm):
			s.policy.setRetr()
			s.policy.warnOnce(s, "retr", fmt.Sprintf("server's TOP returned %d bytes for message %s where LIST says %d: using RETR from now on, as --pop3-allow-retr allows (it marks messages as read on many servers)", tm.got, key, tm.want))
			err = s.fetchOne(ctx, key, msg, fn)
		}
		if errors.Is(err, errShort) {
			if nerr := s.noop(ctx); nerr != nil {
				return nerr
			}
			return &connerr.Error{Err: fmt.Errorf("message %s: %w", key, err)}
		}
		var skip *skipped
		if errors.As(err, &skip) {
			s.policy.warnOnce(s, "err:"+key, fmt.Sprintf("server refused message %s: %s; it is retried next run", key, skip.resp))
			continue
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// topMismatch is errMismatch with the sizes.
type topMismatch struct{ got, want int64 }

func (e *topMismatch) Error() string {
	return fmt.Sprintf("TOP returned %d bytes, LIST says %d", e.got, e.want)
}

func (e *topMismatch) Unwrap() error { return errMismatch }

type skipped struct{ resp string }

func (e *skipped) Error() string { return "server refused the message: " + e.resp }

func (s *Store) noop(ctx context.Context) error {
	octx, done := s.op(ctx)
	defer done()
	if err := s.c.Noop(octx); err != nil {
		return s.connErr(ctx, "fetch", io.ErrUnexpectedEOF)
	}
	return nil
}

func (s *Store) fetchOne(ctx context.Context, key string, msg int, fn func(m *backup.Message) error) error {
	octx, done := s.op(ctx)
	defer done()
	var r io.ReadCloser
	var err error
	useRetr := s.policy.retr()
	if !useRetr && !s.caps["TOP"] && len(s.caps) > 0 {
		if !s.policy.AllowRetr {
			return errNoTop
		}
		s.policy.warnOnce(s, "retr", "server offers no TOP: using RETR, as --pop3-allow-retr allows (it marks messages as read on many servers)")
		useRetr = true
	}
	if useRetr {
		r, err = s.c.Retr(octx, msg)
	} else {
		r, err = s.c.Top(octx, msg, topAll)
	}
	if err != nil {
		var pe *pop3client.ProtocolError
		if errors.As(err, &pe) {
			if !useRetr && strings.Contains(strings.ToUpper(pe.Response), "TOP") {
				// The server has no TOP after all.
				if !s.policy.AllowRetr {
					return errNoTop
				}
				s.policy.setRetr()
				s.policy.warnOnce(s, "retr", "server refuses TOP: using RETR, as --pop3-allow-retr allows (it marks messages as read on many servers)")
				return s.fetchOne(ctx, key, msg, fn)
			}
			return &skipped{resp: strings.TrimSpace(pe.Response)}
		}
		return s.connErr(ctx, "fetch", err)
	}
	defer r.Close()
	body := &checked{r: r, want: s.size[msg], touch: func() { s.touch(octx) }, top: !useRetr, refuse: s.policy.AllowRetr}
	date, full := peekDate(body)
	err = fn(&backup.Message{Key: key, Size: s.size[msg], InternalDate: date, Body: full})
	switch {
	case body.short:
		return errShort
	case body.mismatch:
		return &topMismatch{got: body.n, want: body.want}
	}
	if err != nil {
		var ce *connerr.Error
		if errors.As(err, &ce) {
			return s.connErr(ctx, "fetch", ce.Err)
		}
		return err
	}
	if body.long {
		s.policy.mismatch()
		s.policy.warnOnce(s, "long", fmt.Sprintf("server's TOP returned %d bytes for message %s where LIST says %d: archived what TOP returned, which may differ from what RETR returns (GNU Mailutils pop3d adds an empty line after the header); --pop3-allow-retr fetches such messages with RETR instead, which marks them as read on many servers", body.n, key, body.want))
	}
	return nil
}

// checked reads a message body, re-arming the watchdog as data arrives,
// and checks its size against LIST's at the end: a body that ends before
// the listed size is errShort (go-pop3 reports a connection cut
// mid-message as a clean end); a TOP body of another size is errMismatch
// when refuse is set (the caller fetches it again with RETR), else it is
// delivered and marked long.
type checked struct {
	r        io.Reader
	want     int64
	n        int64
	tail     [2]byte // the last two bytes read
	head     []byte  // the start of the message, until the header's end is seen
	headDone bool
	// blank tells that the header is followed by an empty line: the
	// first body line is empty, or the server added one.
	blank    bool
	top      bool // the body is a TOP answer
	refuse   bool // end a TOP body of the wrong size with errMismatch
	short    bool
	mismatch bool
	long     bool
	touch    func()
}

func (c *checked) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n >= 2 {
		copy(c.tail[:], p[n-2:n])
	} else if n == 1 {
		c.tail[0], c.tail[1] = c.tail[1], p[0]
	}
	if n > 0 {
		c.touch()
		c.scanHead(p[:n])
	}
	if err != io.EOF || c.want <= 0 {
		return n, err
	}
	switch {
	case c.n < c.want:
		c.short = true
		return n, errShort
	case c.n == c.want || !c.top:
	case c.n == c.want+2 && c.tail == [2]byte{'\r', '\n'} && !c.blank:
		// The CRLF a multi-line answer adds to a message without a final
		// line break (Cyrus, Dovecot and others leave it out of LIST).
		// GNU Mailutils' TOP is 2 bytes longer too, but with an empty
		// line after the header; a message without a final line break
		// and an empty first body line is taken for it.
	case c.refuse:
		c.mismatch = true
		return n, errMismatch
	default:
		c.long = true
	}
	return n, err
}

// scanHead finds where the header ends and whether an empty line follows.
func (c *checked) scanHead(p []byte) {
	if c.headDone {
		return
	}
	c.head = append(c.head, p...)
	if i := bytes.Index(c.head, []byte("\r\n\r\n")); i >= 0 {
		if rest := c.head[i+4:]; len(rest) >= 2 {
			c.blank = bytes.HasPrefix(rest, []byte("\r\n"))
			c.headDone, c.head = true, nil
		}
	} else if len(c.head) > 1<<20 {
		c.headDone, c.head = true, nil
	}
}

// Delete implements backup.Deleter: DELE for each key. The deletions are
// made final by Close (QUIT); a session that ends any other way deletes
// nothing.
func (s *Store) Delete(ctx context.Context, keys []string) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	octx, done := s.op(ctx)
	defer done()
	n := 0
	for _, key := range keys {
		msg, ok := s.num[key]
		if !ok {
			continue
		}
		if err := s.c.Dele(octx, msg); err != nil {
			return n, s.connErr(ctx, "dele", err)
		}
		s.touch(octx)
		n++
	}
	return n, nil
}

// peekDate reads the header of a message (at most 64 KiB) to find when it
// arrived, as POP3 has no INTERNALDATE: the date of the first Received
// header, else the Date header, else now. It returns the date and a reader
// of the whole message.
func peekDate(r io.Reader) (time.Time, io.Reader) {
	buf := make([]byte, 0, 4096)
	chunk := make([]byte, 4096)
	for len(buf) < 64<<10 && !bytes.Contains(buf, []byte("\r\n\r\n")) && !bytes.Contains(buf, []byte("\n\n")) {
		n, err := r.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			if err == io.EOF {
				return headerDate(buf), bytes.NewReader(buf)
			}
			return time.Now().UTC(), io.MultiReader(bytes.NewReader(buf), errReader{err})
		}
	}
	return headerDate(buf), io.MultiReader(bytes.NewReader(buf), r)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func headerDate(raw []byte) time.Time {
	msg, err := mail.ReadMessage(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n")))
	if err == nil {
		if rcv := msg.Header["Received"]; len(rcv) > 0 {
			if i := strings.LastIndex(rcv[0], ";"); i >= 0 {
				if t, err := mail.ParseDate(strings.TrimSpace(rcv[0][i+1:])); err == nil {
					return t.UTC()
				}
			}
		}
		if t, err := msg.Header.Date(); err == nil {
			return t.UTC()
		}
	}
	return time.Now().UTC().Truncate(time.Second)
}
