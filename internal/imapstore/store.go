package imapstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// Store is one IMAP connection used as a backup Source.
type Store struct {
	cfg   mailconn.Config
	wd    *mailconn.WatchdogConn
	c     *imapclient.Client
	caps  imap.CapSet
	seqOf map[uint32]uint32 // UID -> sequence number, from the last List
	// examined is the message count EXAMINE reported. (go-imap's
	// Mailbox() is updated only after Select's Wait returns: racy.)
	examined uint32
	validity uint32 // UIDVALIDITY of the examined folder
	// Warn, if set, is told about server misbehaviour mailvault worked around.
	Warn func(msg string)
}

var _ backup.Source = (*Store)(nil)

// Dial connects and logs in.
func Dial(ctx context.Context, cfg mailconn.Config) (*Store, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	wd, conn, err := mailconn.Dial(ctx, &cfg, "imap")
	if err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, wd: wd}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	opts := &imapclient.Options{}
	wd.Begin()
	defer wd.End()
	if cfg.Security == mailconn.StartTLS {
		tcfg, err := cfg.TLSConfig()
		if err != nil {
			conn.Close()
			return nil, err
		}
		opts.TLSConfig = tcfg
		s.c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			conn.Close()
			var ie *imap.Error
			if errors.As(err, &ie) {
				return nil, fmt.Errorf("%w on %s (%s): use imaps:// (or --insecure-plaintext on a trusted loopback)", mailconn.ErrNoTLS, cfg.Addr, strings.TrimSpace(ie.Text))
			}
			return nil, s.connErrTLS(ctx, err)
		}
	} else {
		s.c = imapclient.New(conn, opts)
		if err := s.c.WaitGreeting(); err != nil {
			s.c.Close()
			if ctx.Err() == nil && !s.wd.TimedOut.Load() {
				return nil, &backup.ConnError{Err: cfg.ClassifyGreeting(err)}
			}
			return nil, s.connErr(ctx, "greeting", err)
		}
	}
	if err := s.login(ctx); err != nil {
		s.c.Close()
		return nil, err
	}
	return s, nil
}

func (s *Store) connErrTLS(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if s.wd.TimedOut.Load() {
		return fmt.Errorf("%w: STARTTLS on %s", mailconn.ErrTimeout, s.cfg.Addr)
	}
	if s.wd.Received() == 0 {
		return s.cfg.ClassifyGreeting(err)
	}
	return s.cfg.ClassifyTLS("imap", err)
}

// connErr wraps an error of a command: a NO/BAD answer stays a plain
// error; a broken connection becomes a backup.ConnError.
func (s *Store) connErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return fmt.Errorf("%s: %w", what, err)
	}
	if s.wd.TimedOut.Load() {
		err = fmt.Errorf("%w: no answer for %s during %s (see --timeout)", mailconn.ErrTimeout, s.cfg.Timeout, what)
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("%s: server closed the connection", what)
	} else {
		err = fmt.Errorf("%s: %w", what, err)
	}
	return &backup.ConnError{Err: err}
}

func (s *Store) login(ctx context.Context) error {
	caps, err := s.c.Capability().Wait()
	if err != nil {
		return s.connErr(ctx, "capability", err)
	}
	offer := auth.Offer{Listed: true, LoginDisabled: caps.Has(imap.CapLoginDisabled)}
	for c := range caps {
		if m, ok := strings.CutPrefix(string(c), "AUTH="); ok {
			offer.SASL = append(offer.SASL, m)
		}
	}
	err = s.cfg.Login().Login(ctx, s.cfg.Addr, offer, func(at auth.Attempt) error {
		var err error
		if at.SASL != nil {
			err = s.c.Authenticate(noEmptyResponse{at.SASL})
		} else {
			err = s.c.Login(at.User, at.Password).Wait()
		}
		var ie *imap.Error
		if errors.As(err, &ie) {
			// The server's text may echo the user name but never the password.
			return &auth.RefusedError{Text: ie.Text}
		}
		return err
	})
	if err != nil {
		if errors.Is(err, mailconn.ErrAuth) {
			return err
		}
		return s.connErr(ctx, "login", err)
	}
	// Capabilities may change after login.
	s.caps, err = s.c.Capability().Wait()
	if err != nil {
		return s.connErr(ctx, "capability", err)
	}
	return nil
}

// noEmptyResponse answers ^A where a SASL client gives an empty response:
// go-imap sends an empty response as "=", which Dovecot answers with "BAD
// Invalid base64 data" instead of ending the exchange with its verdict.
// The one empty response we send is XOAUTH2's acknowledgement of the
// server's error report, after which any answer ends the exchange (^A is
// what OAUTHBEARER sends there).
type noEmptyResponse struct{ sasl.Client }

func (c noEmptyResponse) Next(challenge []byte) ([]byte, error) {
	resp, err := c.Client.Next(challenge)
	if err == nil && len(resp) == 0 {
		resp = []byte{0x01}
	}
	return resp, err
}

// do runs f with the watchdog armed and ctx able to abort the connection.
func (s *Store) do(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	defer stop()
	s.wd.Begin()
	defer s.wd.End()
	return f()
}

// Close logs out (briefly) and closes the connection.
func (s *Store) Close() error {
	if s.c == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		s.c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return s.c.Close()
}

// Examine implements backup.Source: EXAMINE, never SELECT.
func (s *Store) Examine(ctx context.Context, name string) (backup.FolderStatus, error) {
	var st backup.FolderStatus
	err := s.do(ctx, func() error {
		sd, err := s.c.Select(name, &imap.SelectOptions{ReadOnly: true, CondStore: s.caps.Has(imap.CapCondStore)}).Wait()
		if err != nil {
			return s.connErr(ctx, "examine", err)
		}
		st = backup.FolderStatus{UIDValidity: sd.UIDValidity, UIDNext: uint32(sd.UIDNext), Messages: sd.NumMessages, HighestModSeq: sd.HighestModSeq}
		s.examined, s.validity = sd.NumMessages, sd.UIDValidity
		return nil
	})
	s.seqOf = nil
	return st, err
}

// List implements backup.Source with FETCH 1:* (UID FLAGS), matched by
// sequence number so that no server ordering can lose a message.
func (s *Store) List(ctx context.Context, fn func(key string, flags []string) error) error {
	s.seqOf = map[uint32]uint32{}
	if s.examined == 0 {
		return nil
	}
	return s.do(ctx, func() error {
		err := s.fetchFlags(ctx, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, 0, "list messages", func(uid, seq uint32, flags []string) error {
			s.seqOf[uid] = seq
			return fn(makeKey(s.validity, uid), flags)
		})
		if err != nil {
			return err
		}
		// A listing shorter than EXAMINE's count would make archived
		// messages look deleted: refuse it.
		if uint32(len(s.seqOf)) < s.examined {
			return fmt.Errorf("server listed %d messages, EXAMINE reported %d", len(s.seqOf), s.examined)
		}
		return nil
	})
}

// ListChanged implements backup.ChangeLister with CONDSTORE (RFC 7162):
// UID SEARCH ALL gives every key, and UID FETCH 1:* (FLAGS)
// (CHANGEDSINCE modseq) the flags of the messages changed since; a folder
// of 100,000 messages with three flag changes costs two short answers
// instead of 100,000 FETCH lines. ok is false when the server has no
// CONDSTORE.
func (s *Store) ListChanged(ctx context.Context, modseq uint64, fn func(key string, flags []string, changed bool) error) (bool, error) {
	if !s.caps.Has(imap.CapCondStore) || modseq == 0 {
		return false, nil
	}
	s.seqOf = map[uint32]uint32{}
	if s.examined == 0 {
		return true, nil
	}
	var uids []imap.UID
	err := s.do(ctx, func() error {
		opts := &imap.SearchOptions{}
		if s.caps.Has(imap.CapESearch) {
			opts.ReturnAll = true
		}
		data, err := s.c.UIDSearch(&imap.SearchCriteria{}, opts).Wait()
		if err != nil {
			return s.connErr(ctx, "list messages", err)
		}
		uids = data.AllUIDs()
		return nil
	})
	if err != nil {
		return true, err
	}
	// A listing shorter than EXAMINE's count would make archived messages
	// look deleted: refuse it.
	if uint32(len(uids)) < s.examined {
		return true, fmt.Errorf("server listed %d messages, EXAMINE reported %d", len(uids), s.examined)
	}
	slices.Sort(uids)
	changed := map[uint32][]string{}
	err = s.do(ctx, func() error {
		return s.fetchFlags(ctx, imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, modseq, "list flag changes", func(uid, _ uint32, flags []string) error {
			changed[uid] = flags
			return nil
		})
	})
	if err != nil {
		return true, err
	}
	for i, uid := range uids {
		// Sequence numbers are the UIDs' ranks: EXAMINE is read-only and
		// this session expunges nothing.
		s.seqOf[uint32(uid)] = uint32(i + 1)
		flags, ok := changed[uint32(uid)]
		if err := fn(makeKey(s.validity, uint32(uid)), flags, ok); err != nil {
			return true, err
		}
	}
	return true, nil
}

// fetchFlags runs FETCH set (UID FLAGS), with (CHANGEDSINCE modseq) when
// modseq is not 0, and calls fn with each message's UID, sequence number
// and flags; messages answered without a UID are skipped.
func (s *Store) fetchFlags(ctx context.Context, set imap.NumSet, modseq uint64, what string, fn func(uid, seq uint32, flags []string) error) error {
	cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, ChangedSince: modseq})
	defer cmd.Close()
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			return s.connErr(ctx, what, err)
		}
		if buf.UID == 0 {
			continue
		}
		if err := fn(uint32(buf.UID), msg.SeqNum, flagStrings(buf.Flags)); err != nil {
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.connErr(ctx, what, err)
	}
	return nil
}

func flagStrings(fl []imap.Flag) []string {
	out := make([]string, len(fl))
	for i, f := range fl {
		out[i] = string(f)
	}
	return out
}

var fetchOpts = &imap.FetchOptions{
	UID: true, Flags: true, InternalDate: true, RFC822Size: true,
	BodySection: []*imap.FetchItemBodySection{{Peek: true}},
}

// Fetch implements backup.Source with UID FETCH … BODY.PEEK[]. Messages the
// server answered without a usable UID (go-imap then drops them silently)
// are fetched again by sequence number.
func (s *Store) Fetch(ctx context.Context, keys []string, fn func(m *backup.Message) error) error {
	var uids []uint32
	for _, k := range keys {
		if uid, ok := parseKey(k, s.validity); ok {
			uids = append(uids, uid)
		}
	}
	if len(uids) == 0 {
		return nil
	}
	got := map[uint32]bool{}
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	err := s.do(ctx, func() error {
		return s.fetch(ctx, set, nil, got, fn)
	})
	if err != nil {
		return err
	}
	var missing []uint32
	for _, u := range uids {
		if !got[u] {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 || s.seqOf == nil {
		return nil
	}
	// Fall back to sequence numbers for what was not delivered.
	var seqs imap.SeqSet
	uidAt := map[uint32]uint32{}
	for _, u := range missing {
		if seq, ok := s.seqOf[u]; ok {
			seqs.AddNum(seq)
			uidAt[seq] = u
		}
	}
	if len(uidAt) == 0 {
		return nil
	}
	if s.Warn != nil {
		s.Warn(fmt.Sprintf("server did not deliver %d messages by UID (UID sent after the body?); fetching them by sequence number", len(uidAt)))
	}
	return s.do(ctx, func() error {
		return s.fetch(ctx, seqs, uidAt, got, fn)
	})
}

// fetch runs one FETCH over set. uidAt, for a sequence-number fetch, gives
// the UID expected at each sequence number.
func (s *Store) fetch(ctx context.Context, set imap.NumSet, uidAt map[uint32]uint32, got map[uint32]bool, fn func(m *backup.Message) error) error {
	cmd := s.c.Fetch(set, fetchOpts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		if err := s.deliver(ctx, msg, uidAt, got, fn); err != nil {
			// go-imap's reader goroutine may still be inside the literal:
			// close the connection before releasing the command, or both
			// read the same buffer.
			s.c.Close()
			cmd.Close()
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		return s.connErr(ctx, "fetch", err)
	}
	return nil
}

// deliver hands one FETCH response to fn, streaming the body when UID,
// FLAGS and INTERNALDATE came before it and spooling it otherwise.
func (s *Store) deliver(ctx context.Context, msg *imapclient.FetchMessageData, uidAt map[uint32]uint32, got map[uint32]bool, fn func(m *backup.Message) error) error {
	m := &backup.Message{}
	var uid uint32
	var haveFlags, haveDate bool
	var sp *spool
	defer func() {
		if sp != nil {
			sp.close()
		}
	}()
	delivered := false
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch it := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = uint32(it.UID)
		case imapclient.FetchItemDataFlags:
			m.Flags, haveFlags = flagStrings(it.Flags), true
		case imapclient.FetchItemDataInternalDate:
			m.InternalDate, haveDate = it.Time, true
		case imapclient.FetchItemDataRFC822Size:
			m.Size = it.Size
		case imapclient.FetchItemDataBodySection:
			if it.Literal == nil || delivered || sp != nil {
				continue
			}
			body := &sizedReader{r: it.Literal, left: it.Literal.Size()}
			if uid != 0 && haveFlags && haveDate && (uidAt == nil || uidAt[msg.SeqNum] == uid) && !got[uid] {
				m.Body = body
				m.Key = makeKey(s.validity, uid)
				got[uid] = true
				delivered = true
				if err := fn(m); err != nil {
					s.abandon(body)
					return s.bodyErr(ctx, err)
				}
				continue
			}
			var err error
			if sp, err = newSpool(body); err != nil {
				s.abandon(body)
				return s.connErr(ctx, "fetch body", err)
			}
		}
	}
	if delivered || sp == nil {
		return nil
	}
	if uid == 0 && uidAt != nil {
		uid = uidAt[msg.SeqNum]
	}
	if uid == 0 || got[uid] || (uidAt != nil && uidAt[msg.SeqNum] != uid) {
		return nil // not the message we asked for; it will be retried next run
	}
	got[uid] = true
	m.Key = makeKey(s.validity, uid)
	m.Body = sp.reader()
	return fn(m)
}

// abandon gives up the connection in the middle of a body. go-imap's
// reader goroutine waits until the literal is read to its end or fails, and
// Client.Close waits for that goroutine: so the socket is closed first and a
// literal not yet finished is read until it fails. A finished literal is
// not touched, as the reader goroutine is using the buffer again.
func (s *Store) abandon(body *sizedReader) {
	s.wd.Conn.Close()
	if !body.ended {
		io.Copy(io.Discard, body)
	}
}

// bodyErr classifies an error from fn while it read a body literal: a
// broken connection becomes a ConnError, the engine's own errors pass.
func (s *Store) bodyErr(ctx context.Context, err error) error {
	var ce *backup.ConnError
	if errors.As(err, &ce) {
		return s.connErr(ctx, "fetch body", ce.Err)
	}
	return err
}

// spool holds a body that arrived before the message's UID, FLAGS or
// INTERNALDATE: in memory when small, in a temporary file otherwise.
type spool struct {
	mem  bytes.Buffer
	file *os.File
}

const spoolMem = 1 << 20

func newSpool(r io.Reader) (*spool, error) {
	sp := &spool{}
	if _, err := io.CopyN(&sp.mem, r, spoolMem+1); err == io.EOF {
		return sp, nil
	} else if err != nil {
		return nil, err
	}
	f, err := os.CreateTemp("", "mailvault-spool-*")
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	sp.file = f
	if _, err := f.Write(sp.mem.Bytes()); err != nil {
		return nil, err
	}
	sp.mem.Reset()
	if _, err := io.Copy(f, r); err != nil {
		return nil, err
	}
	_, err = f.Seek(0, io.SeekStart)
	return sp, err
}

func (sp *spool) reader() io.Reader {
	if sp.file != nil {
		return sp.file
	}
	return &sp.mem
}

func (sp *spool) close() {
	if sp.file != nil {
		sp.file.Close()
	}
}

// sizedReader turns a literal that ends before its announced size into an
// error: go-imap reports a connection cut mid-literal as a normal EOF.
type sizedReader struct {
	r     io.Reader
	left  int64
	ended bool // the literal returned EOF or an error
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err != nil {
		s.ended = true
	}
	if err == io.EOF && s.left > 0 {
		return n, fmt.Errorf("body ended %d bytes early: %w", s.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// makeKey is the archive key of an IMAP message: "UIDVALIDITY:UID".
func makeKey(validity, uid uint32) string {
	return strconv.FormatUint(uint64(validity), 10) + ":" + strconv.FormatUint(uint64(uid), 10)
}

// parseKey returns the UID of a key of the given UIDVALIDITY.
func parseKey(key string, validity uint32) (uint32, bool) {
	v, u, ok := strings.Cut(key, ":")
	if !ok || v != strconv.FormatUint(uint64(validity), 10) {
		return 0, false
	}
	uid, err := strconv.ParseUint(u, 10, 32)
	return uint32(uid), err == nil && uid != 0
}
