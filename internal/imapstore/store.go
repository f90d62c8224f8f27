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
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/connerr"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// Store is one IMAP connection used as a backup Source.
type Store struct {
	cfg  mailconn.Config
	wd   *mailconn.WatchdogConn
	c    *imapclient.Client
	caps imap.CapSet
	// examined is the message count EXAMINE reported. (go-imap's
	// Mailbox() is updated only after Select's Wait returns: racy.)
	examined uint32
	validity uint32 // UIDVALIDITY of the examined folder
	// expunges counts the EXPUNGE responses of the session (go-imap calls
	// the handler from its reader goroutine before it reads on);
	// examineExpunges is its value at the last EXAMINE.
	expunges        atomic.Int64
	examineExpunges int64
	// dropped counts FETCH responses with a body that go-imap matched to
	// no command: the answers to a UID FETCH whose UID came after the body
	// literal (NOTES.md hazard 1). Once that is seen, uidLate is set and
	// the session fetches bodies by sequence number.
	dropped atomic.Int64
	uidLate bool
	// Warn, if set, is told about server misbehaviour mailvault worked around.
	Warn func(msg string)
}

var (
	_ backup.Source         = (*Store)(nil)
	_ backup.ChangeLister   = (*Store)(nil)
	_ backup.ExpungeChecker = (*Store)(nil)
	_ backup.SinceLister    = (*Store)(nil)
)

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
	opts := &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { s.expunges.Add(1) },
		Fetch:   s.unmatchedFetch,
	}}
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
				ce := &connerr.Error{Err: cfg.ClassifyGreeting(err)}
				if t := throttleErr("greeting", err, ce); t != nil {
					return nil, t // "* BYE [UNAVAILABLE] …": a new connection later may be welcome
				}
				return nil, ce
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
// error; a broken connection becomes a connerr.Error. A server's
// request to slow down (in its answer or in the BYE that closed the
// connection) becomes a backup.ThrottleError, its daily cap an error
// wrapping backup.ErrDailyLimit (see throttleErr).
func (s *Store) connErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var te *backup.ThrottleError
	if errors.As(err, &te) || errors.Is(err, backup.ErrDailyLimit) {
		return err // classified already (a login)
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		werr := fmt.Errorf("%s: %w", what, err)
		if t := throttleErr(what, err, werr); t != nil {
			return t
		}
		return werr
	}
	orig := err
	var bye *imapclient.ByeError
	if s.wd.TimedOut.Load() {
		err = fmt.Errorf("%w: no answer for %s during %s (see --timeout)", mailconn.ErrTimeout, s.cfg.Timeout, what)
	} else if errors.As(err, &bye) {
		err = fmt.Errorf("%s: server closed the connection: %s", what, strings.TrimSpace("["+string(bye.Code)+"] "+bye.Text))
		if bye.Code == "" {
			err = fmt.Errorf("%s: server closed the connection: %s", what, strings.TrimSpace(bye.Text))
		}
	} else if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
		err = fmt.Errorf("%s: server closed the connection", what)
	} else {
		err = fmt.Errorf("%s: %w", what, err)
	}
	ce := &connerr.Error{Err: err}
	if t := throttleErr(what, orig, ce); t != nil {
		return t
	}
	return ce
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
			if t := throttleErr("login", err, fmt.Errorf("login: %w", err)); t != nil {
				return t // not a refusal: "NO [UNAVAILABLE] …", "Request is throttled"
			}
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
// Once ctx has closed the connection the result is ctx's error, even if f
// finished from what was buffered: the session is over.
func (s *Store) do(ctx context.Context, f func() error) error {
	stop := context.AfterFunc(ctx, func() { s.c.Close() })
	s.wd.Begin()
	err := f()
	s.wd.End()
	if !stop() {
		return ctx.Err()
	}
	return err
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
		s.examineExpunges = s.expunges.Load()
		return nil
	})
	return st, err
}

// shortListing reports an error when a listing of n messages is shorter
// than EXAMINE's count less the expunges reported since: it would make
// archived messages look deleted.
func (s *Store) shortListing(n int) error {
	if want := int64(s.examined) - (s.expunges.Load() - s.examineExpunges); int64(n) < want {
		return fmt.Errorf("server listed %d messages, EXAMINE reported %d", n, s.examined)
	}
	return nil
}

// List implements backup.Source with FETCH 1:* (UID FLAGS), matched by
// sequence number so that no server ordering can lose a message.
func (s *Store) List(ctx context.Context, fn func(key string, flags []string) error) error {
	if s.examined == 0 {
		return nil
	}
	return s.do(ctx, func() error {
		n := 0
		err := s.fetchFlags(ctx, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, 0, "list messages", func(uid, seq uint32, flags []string) error {
			n++
			return fn(makeKey(s.validity, uid), flags)
		})
		if err != nil {
			return err
		}
		return s.shortListing(n)
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
	if s.examined == 0 {
		return true, nil
	}
	uids, err := s.uidSearch(ctx, &imap.SearchCriteria{}, "list messages")
	if err != nil {
		return true, err
	}
	if err := s.shortListing(len(uids)); err != nil {
		return true, err
	}
	slices.Sort(uids)
	changed, err := s.changedSince(ctx, modseq)
	if err != nil {
		return true, err
	}
	for _, uid := range uids {
		flags, ok := changed[uint32(uid)]
		if err := fn(makeKey(s.validity, uint32(uid)), flags, ok); err != nil {
			return true, err
		}
	}
	return true, nil
}

// ListSince implements backup.SinceLister with CONDSTORE: UID SEARCH UID
// prev.UIDNEXT:* gives the new messages, their count against EXAMINE's
// tells whether any older one left, and UID FETCH 1:* (FLAGS)
// (CHANGEDSINCE modseq) the flags changed since. The older messages whose
// flags changed come first, then the new ones, each in UID order.
func (s *Store) ListSince(ctx context.Context, prev backup.FolderStatus, present int64, fn func(key string, flags []string, changed bool) error) (bool, error) {
	if !s.caps.Has(imap.CapCondStore) || prev.HighestModSeq == 0 || prev.UIDNext == 0 || prev.UIDValidity != s.validity {
		return false, nil
	}
	var uids []imap.UID
	if s.examined > 0 {
		var err error
		crit := &imap.SearchCriteria{UID: []imap.UIDSet{{imap.UIDRange{Start: imap.UID(prev.UIDNext), Stop: 0}}}}
		if uids, err = s.uidSearch(ctx, crit, "list new messages"); err != nil {
			return true, err
		}
	}
	// "N:*" names the last message even when its UID is below N.
	uids = slices.DeleteFunc(uids, func(u imap.UID) bool { return uint32(u) < prev.UIDNext })
	exists := int64(s.examined) - (s.expunges.Load() - s.examineExpunges)
	if exists-int64(len(uids)) != present {
		return false, nil
	}
	slices.Sort(uids)
	changed := map[uint32][]string{}
	if s.examined > 0 {
		var err error
		if changed, err = s.changedSince(ctx, prev.HighestModSeq); err != nil {
			return true, err
		}
	}
	older := make([]uint32, 0, len(changed))
	for uid := range changed {
		if uid < prev.UIDNext {
			older = append(older, uid)
		}
	}
	slices.Sort(older)
	for _, uid := range older {
		if err := fn(makeKey(s.validity, uid), changed[uid], true); err != nil {
			return true, err
		}
	}
	for _, uid := range uids {
		flags, ok := changed[uint32(uid)]
		if err := fn(makeKey(s.validity, uint32(uid)), flags, ok); err != nil {
			return true, err
		}
	}
	return true, nil
}

// uidSearch runs UID SEARCH crit (RETURN (ALL) with ESEARCH).
func (s *Store) uidSearch(ctx context.Context, crit *imap.SearchCriteria, what string) ([]imap.UID, error) {
	var uids []imap.UID
	err := s.do(ctx, func() error {
		opts := &imap.SearchOptions{}
		if s.caps.Has(imap.CapESearch) {
			opts.ReturnAll = true
		}
		data, err := s.c.UIDSearch(crit, opts).Wait()
		if err != nil {
			return s.connErr(ctx, what, err)
		}
		uids = data.AllUIDs()
		return nil
	})
	return uids, err
}

// changedSince returns the flags of the examined folder's messages
// changed after modseq, by UID.
func (s *Store) changedSince(ctx context.Context, modseq uint64) (map[uint32][]string, error) {
	changed := map[uint32][]string{}
	err := s.do(ctx, func() error {
		return s.fetchFlags(ctx, imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, modseq, "list flag changes", func(uid, _ uint32, flags []string) error {
			changed[uid] = flags
			return nil
		})
	})
	return changed, err
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

// codeExpungeIssued is RFC 5530's answer to a FETCH of messages expunged
// meanwhile: the others were delivered.
const codeExpungeIssued imap.ResponseCode = "EXPUNGEISSUED"

// Fetch implements backup.Source with UID FETCH … BODY.PEEK[]. Messages are
// named by UID only: sequence numbers change when another client
// expunges. UIDs the answer did not deliver, or delivered with an empty
// body (Dovecot's answer for a message expunged meanwhile, or in a folder
// deleted meanwhile), are looked for again with UID SEARCH: those no
// longer in the folder are left out (the engine learns it from Expunged);
// the others are fetched again by UID (one by one when they are few) and,
// as a last resort, by sequence number (fetchBySeq).
//
// An empty body is never delivered: a message cannot be told from one the
// server no longer has, and an archive must not record it as empty. (A
// truly empty message, which Dovecot and most servers refuse to store, is
// reported as not delivered.)
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
	if !s.uidLate {
		if err := s.fetchByUID(ctx, uids, got, fn); err != nil {
			return err
		}
	}
	missing := notIn(uids, got)
	if len(missing) == 0 {
		return nil
	}
	missing, err := s.present(ctx, missing)
	if err != nil || len(missing) == 0 {
		return err
	}
	if !s.uidLate {
		// Again by UID: one by one when they are few, else as one set.
		if len(missing) <= refetchOneByOne {
			for _, u := range missing {
				if err := s.fetchByUID(ctx, []uint32{u}, got, fn); err != nil {
					return err
				}
			}
		} else if err := s.fetchByUID(ctx, missing, got, fn); err != nil {
			return err
		}
		if missing = notIn(missing, got); len(missing) == 0 {
			return nil
		}
	}
	return s.fetchBySeq(ctx, missing, got, fn)
}

// refetchOneByOne bounds the messages Fetch asks for again one UID FETCH
// each (a round trip each).
const refetchOneByOne = 16

// fetchByUID runs UID FETCH of uids.
func (s *Store) fetchByUID(ctx context.Context, uids []uint32, got map[uint32]bool, fn func(m *backup.Message) error) error {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	dropped := s.dropped.Load()
	err := s.do(ctx, func() error {
		return s.fetch(ctx, set, &fetchMode{}, got, fn)
	})
	if s.dropped.Load() != dropped && !s.uidLate {
		s.uidLate = true
		s.warn("the server sends UID after the message body, which the IMAP library cannot match to UID FETCH: fetching bodies by sequence number, each checked against its UID")
	}
	return err
}

// present returns those of uids the folder still holds (UID SEARCH, which
// also brings the expunges the server has not reported yet).
func (s *Store) present(ctx context.Context, uids []uint32) ([]uint32, error) {
	var set imap.UIDSet
	for _, u := range uids {
		set.AddNum(imap.UID(u))
	}
	var found []imap.UID
	err := s.do(ctx, func() error {
		data, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
		if err != nil {
			return s.connErr(ctx, "search messages", err)
		}
		found = data.AllUIDs()
		return nil
	})
	if err != nil {
		return nil, err
	}
	in := map[uint32]bool{}
	for _, u := range found {
		in[uint32(u)] = true
	}
	var out []uint32
	for _, u := range uids {
		if in[u] {
			out = append(out, u)
		}
	}
	return out, nil
}

// Expunged implements backup.ExpungeChecker with UID SEARCH: the keys of
// the examined folder that it no longer holds.
func (s *Store) Expunged(ctx context.Context, keys []string) ([]string, error) {
	var uids []uint32
	var gone []string
	for _, k := range keys {
		if uid, ok := parseKey(k, s.validity); ok {
			uids = append(uids, uid)
		} else {
			gone = append(gone, k) // another UIDVALIDITY: not in this folder
		}
	}
	if len(uids) == 0 {
		return gone, nil
	}
	still, err := s.present(ctx, uids)
	if err != nil {
		return nil, err
	}
	for _, u := range notIn(uids, setOf(still)) {
		gone = append(gone, makeKey(s.validity, u))
	}
	return gone, nil
}

// fetchBySeq fetches uids by sequence number, the last resort when a UID
// FETCH does not deliver them (UID after the body literal). Each UID's
// number is read just before with UID FETCH (UID), whose answers carry no
// literal; the numbers hold as long as the server reports no EXPUNGE (none
// may come during a FETCH, RFC 3501 7.4.1), which deliver checks before
// handing over each body, and a body whose answer names another UID is
// left out.
func (s *Store) fetchBySeq(ctx context.Context, uids []uint32, got map[uint32]bool, fn func(m *backup.Message) error) error {
	for try := 0; try < 3 && len(uids) > 0; try++ {
		e0 := s.expunges.Load()
		var set imap.UIDSet
		for _, u := range uids {
			set.AddNum(imap.UID(u))
		}
		uidAt := map[uint32]uint32{}
		var seqs imap.SeqSet
		err := s.do(ctx, func() error {
			return s.fetchFlags(ctx, set, 0, "number messages", func(uid, seq uint32, _ []string) error {
				uidAt[seq] = uid
				seqs.AddNum(seq)
				return nil
			})
		})
		if err != nil {
			return err
		}
		if len(uidAt) == 0 {
			return nil
		}
		if s.expunges.Load() != e0 {
			continue // the numbers may have moved: read them again
		}
		err = s.do(ctx, func() error {
			return s.fetch(ctx, seqs, &fetchMode{uidAt: uidAt, expunges: e0}, got, fn)
		})
		if err != nil {
			return err
		}
		uids = notIn(uids, got)
	}
	return nil
}

func notIn(uids []uint32, got map[uint32]bool) []uint32 {
	var out []uint32
	for _, u := range uids {
		if !got[u] {
			out = append(out, u)
		}
	}
	return out
}

func setOf(uids []uint32) map[uint32]bool {
	m := make(map[uint32]bool, len(uids))
	for _, u := range uids {
		m[u] = true
	}
	return m
}

// unmatchedFetch receives the FETCH responses go-imap matched to no
// command: flag updates from other sessions, and bodies of a UID FETCH
// answered with the UID after the literal. It must read them to the end.
func (s *Store) unmatchedFetch(msg *imapclient.FetchMessageData) {
	for item := msg.Next(); item != nil; item = msg.Next() {
		if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
			s.dropped.Add(1)
			io.Copy(io.Discard, b.Literal)
		}
	}
}

// fetchMode says how fetch checks answers. uidAt, for a FETCH by sequence
// number, is the UID expected at each number, valid while the session's
// EXPUNGE count is expunges.
type fetchMode struct {
	uidAt    map[uint32]uint32
	expunges int64
	// broken is set when a body literal failed (the connection broke):
	// see dropFetch.
	broken bool
}

// fetch runs one FETCH over set.
func (s *Store) fetch(ctx context.Context, set imap.NumSet, mode *fetchMode, got map[uint32]bool, fn func(m *backup.Message) error) error {
	cmd := s.c.Fetch(set, fetchOpts)
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		if err := s.deliver(ctx, msg, mode, got, fn); err != nil {
			s.dropFetch(cmd, mode.broken)
			return err
		}
	}
	if err := cmd.Close(); err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) && ie.Code == codeExpungeIssued {
			return nil // the others were delivered; the engine asks about the rest
		}
		return s.connErr(ctx, "fetch", err)
	}
	return nil
}

// deliver hands one FETCH response to fn, streaming the body when UID,
// FLAGS and INTERNALDATE came before it and spooling it otherwise. An empty
// body is not delivered (see Fetch); neither is, in a FETCH by sequence
// number, a body whose number may no longer be its UID's.
func (s *Store) deliver(ctx context.Context, msg *imapclient.FetchMessageData, mode *fetchMode, got map[uint32]bool, fn func(m *backup.Message) error) error {
	m := &backup.Message{}
	var uid uint32
	var haveFlags, haveDate, sawBody bool // sawBody: the first body section was seen
	var sp *spool
	defer func() {
		if sp != nil {
			sp.close()
		}
	}()
	uidAt := mode.uidAt
	// expected tells whether a body at this sequence number may be uid's.
	expected := func(uid uint32) bool {
		if uidAt == nil {
			return uid != 0
		}
		return s.expunges.Load() == mode.expunges && uidAt[msg.SeqNum] != 0 && (uid == 0 || uidAt[msg.SeqNum] == uid)
	}
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
			if delivered || sawBody {
				continue
			}
			sawBody = true
			if it.Literal == nil || it.Literal.Size() == 0 {
				continue // empty: not delivered
			}
			body := &sizedReader{r: it.Literal, left: it.Literal.Size()}
			if uid != 0 && haveFlags && haveDate && expected(uid) && !got[uid] {
				m.Body = body
				m.Key = makeKey(s.validity, uid)
				got[uid] = true
				delivered = true
				if err := fn(m); err != nil {
					mode.broken = body.broken
					return s.bodyErr(ctx, err)
				}
				continue
			}
			var err error
			if sp, err = newSpool(body); err != nil {
				mode.broken = body.broken
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
	if !expected(uid) || got[uid] {
		return nil // not the message asked for: the engine reports it missing
	}
	m.Key = makeKey(s.validity, uid)
	got[uid] = true
	m.Body = sp.reader()
	return fn(m)
}

// dropFetch gives up a FETCH whose answer may still be arriving, without
// reading the rest from the server, and closes the client. go-imap's
// reader goroutine hands each body literal over and waits until it is read
// to its end or fails; only then does it read the connection again, and
// Client.Close waits for that goroutine. So the socket is closed first
// (nothing more arrives) and then:
//   - normally, the command is drained: the literals already buffered are
//     read one at a time, each once, as the reader goroutine hands them
//     over, until it runs into the closed socket and ends; then the client
//     is closed. (Closing the client first waits forever when the reader
//     goroutine waits for a literal nobody reads.)
//   - when a literal failed (broken), the reader goroutine is already
//     reading the dead connection and ends by itself, while the failed
//     literal must not be read again (that would read the buffer with it):
//     the client is closed first, and the command released after.
func (s *Store) dropFetch(cmd *imapclient.FetchCommand, broken bool) {
	s.wd.Conn.Close()
	if broken {
		s.c.Close()
		cmd.Close()
		return
	}
	cmd.Close()
	s.c.Close()
}

// bodyErr classifies an error from fn while it read a body literal: a
// broken connection becomes a connerr.Error, the engine's own errors pass.
func (s *Store) bodyErr(ctx context.Context, err error) error {
	var ce *connerr.Error
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
	r      io.Reader
	left   int64
	ended  bool // the literal returned EOF or an error
	broken bool // it ended with an error, or before its size
}

func (s *sizedReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	s.left -= int64(n)
	if err != nil {
		s.ended = true
		s.broken = err != io.EOF || s.left > 0
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
