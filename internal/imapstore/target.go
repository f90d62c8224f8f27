package imapstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/mailvault/mailvault/formats"
	"io"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/msghdr"
	"github.com/mailvault/mailvault/restore"
)

// Target is an IMAP account used as a restore target. Unlike Store it
// writes: CREATE, SELECT and APPEND.
type Target struct {
	s       *Store
	cfg     mailconn.Config
	delim   string
	perm    map[string]permFlags // per folder, from SELECT
	dropped int
	// broken is set when the connection was dropped on purpose (an APPEND
	// whose message could not be read): the next call reconnects.
	broken bool
	// Quirks adapt the target to its provider; Warn, if set, is told
	// about them once.
	Quirks TargetQuirks
	Warn   func(msg string)
	padded int // messages given a final CRLF (Quirks.FinalCRLF)
}

var _ restore.Target = (*Target)(nil)

type permFlags struct {
	any   bool // \* : new keywords allowed
	flags map[string]bool
}

// DialTarget connects and logs in for a restore.
func DialTarget(ctx context.Context, cfg mailconn.Config) (*Target, error) {
	s, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &Target{s: s, cfg: cfg, perm: map[string]permFlags{}}
	err = s.do(ctx, func() error {
		list, err := s.c.List("", "", nil).Collect()
		if err != nil {
			return s.connErr(ctx, "list", err)
		}
		if len(list) > 0 && list[0].Delim != 0 {
			t.delim = string(list[0].Delim)
		}
		return nil
	})
	if err != nil {
		s.Close()
		return nil, err
	}
	return t, nil
}

// ensure reconnects when the connection was lost (for example after a
// refused APPEND), so that the engine can go on: create a folder, retry.
func (t *Target) ensure(ctx context.Context) error {
	if !t.broken && t.s.c.State() != imap.ConnStateLogout {
		return nil
	}
	s, err := Dial(ctx, t.cfg)
	if err != nil {
		return err
	}
	t.s.c.Close()
	t.s, t.broken = s, false
	return nil
}

// Delimiter implements restore.Target.
func (t *Target) Delimiter() string {
	if t.delim == "" {
		return "/"
	}
	return t.delim
}

// Folders implements restore.Target.
func (t *Target) Folders(ctx context.Context) ([]restore.TargetFolder, error) {
	if err := t.ensure(ctx); err != nil {
		return nil, err
	}
	infos, err := t.s.Folders(ctx)
	if err != nil {
		return nil, err
	}
	var out []restore.TargetFolder
	for _, fi := range infos {
		if fi.NoSelect {
			continue
		}
		out = append(out, restore.TargetFolder{Name: fi.Name, SpecialUse: fi.SpecialUse})
	}
	return out, nil
}

// CreateFolder implements restore.Target: parents first, existing ones
// are fine.
func (t *Target) CreateFolder(ctx context.Context, name string) error {
	if strings.EqualFold(name, "INBOX") {
		return nil
	}
	if err := t.reservedErr(name); err != nil {
		return err
	}
	if err := t.ensure(ctx); err != nil {
		return err
	}
	levels := []string{name}
	if d := t.Delimiter(); d != "" {
		levels = strings.Split(name, d)
	}
	return t.s.do(ctx, func() error {
		for i := range levels {
			sub := strings.Join(levels[:i+1], t.Delimiter())
			err := t.s.c.Create(sub, nil).Wait()
			var ie *imap.Error
			if err == nil || errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || i < len(levels)-1) {
				continue
			}
			if errors.As(err, &ie) {
				// Some servers answer plain NO for an existing folder.
				if st, serr := t.s.c.Status(sub, &imap.StatusOptions{NumMessages: true}).Wait(); serr == nil && st != nil {
					continue
				}
				// A name the server will not take: this folder fails,
				// the others go on.
				return fmt.Errorf("%w: create %q: %w", restore.ErrFolderRefused, sub, err)
			}
			return t.s.connErr(ctx, "create", err)
		}
		return nil
	})
}

// Index implements restore.Target: it SELECTs the folder (to learn which
// flags it can store) and reads every message's Message-ID and size, and
// the SHA-256 of those without a Message-ID.
func (t *Target) Index(ctx context.Context, folder string) (*restore.Index, error) {
	idx := restore.NewIndex()
	if err := t.ensure(ctx); err != nil {
		return nil, err
	}
	err := t.s.do(ctx, func() error {
		sd, err := t.s.c.Select(folder, nil).Wait()
		if err != nil {
			var ie *imap.Error
			if errors.As(err, &ie) {
				return nil // no such folder: nothing there
			}
			return t.s.connErr(ctx, "select", err)
		}
		pf := permFlags{flags: map[string]bool{}}
		for _, f := range sd.PermanentFlags {
			if f == imap.FlagWildcard {
				pf.any = true
			}
			pf.flags[strings.ToLower(string(f))] = true
		}
		t.perm[folder] = pf
		if sd.NumMessages == 0 {
			return nil
		}
		hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
		msgs, err := t.s.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{hdr},
		}).Collect()
		if err != nil {
			return t.s.connErr(ctx, "read target folder", err)
		}
		var noID imap.UIDSet
		for _, m := range msgs {
			id := msghdr.MessageID(m.FindBodySection(hdr))
			if id == "" {
				noID.AddNum(m.UID)
				continue
			}
			idx.Add(id, m.RFC822Size, "")
			t.aliasPadded(idx, id, m.RFC822Size)
		}
		if len(noID) == 0 {
			return nil
		}
		// Messages without a Message-ID are known by their content.
		cmd := t.s.c.Fetch(noID, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}})
		defer cmd.Close()
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			for {
				item := msg.Next()
				if item == nil {
					break
				}
				if b, ok := item.(imapclient.FetchItemDataBodySection); ok && b.Literal != nil {
					h := sha256.New()
					if _, err := io.Copy(h, b.Literal); err != nil {
						return t.s.connErr(ctx, "read target message", err)
					}
					idx.Add("", b.Literal.Size(), hex.EncodeToString(h.Sum(nil)))
				}
			}
		}
		if err := cmd.Close(); err != nil {
			return t.s.connErr(ctx, "read target message", err)
		}
		return nil
	})
	return idx, err
}

// flagsFor returns the flags the folder can store and how many keywords
// it drops. Keywords that are not valid IMAP atoms are dropped too
// (go-imap would refuse to encode them).
func (t *Target) flagsFor(folder string, flags []string) (out []imap.Flag, dropped int) {
	pf, known := t.perm[folder]
	for _, f := range flags {
		lf := strings.ToLower(f)
		if strings.HasPrefix(f, `\`) {
			if lf == `\recent` {
				continue
			}
			out = append(out, imap.Flag(f))
			continue
		}
		if !formats.ValidKeyword(f) || known && !pf.any && !pf.flags[lf] {
			dropped++
			continue
		}
		out = append(out, imap.Flag(f))
	}
	return out, dropped
}

// DroppedKeywords implements restore.KeywordDropper: the keywords left
// out of the messages the server stored.
func (t *Target) DroppedKeywords() int { return t.dropped }

// readTracker remembers the error reading a message body, to tell the
// archive's failures from the connection's.
type readTracker struct {
	r   io.Reader
	err error
}

func (r *readTracker) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Append implements restore.Target with a pipelined APPEND: it returns once
// the message is sent; the answer comes through the Pending.
func (t *Target) Append(ctx context.Context, folder string, m *restore.Message, body io.Reader) (restore.Pending, error) {
	var cmd *imapclient.AppendCommand
	if err := t.ensure(ctx); err != nil {
		return nil, err
	}
	flags, dropped := t.flagsFor(folder, m.Flags)
	size := m.Size
	if lim, ok := t.s.caps.AppendLimit(); ok && lim != nil && m.Size > int64(*lim) {
		// Refused before a byte goes out (RFC 7889).
		if _, err := io.Copy(io.Discard, body); err != nil {
			return nil, fmt.Errorf("read message: %w", err)
		}
		return restore.Done{Err: fmt.Errorf("%w: %d bytes, over the server's APPENDLIMIT of %d bytes", restore.ErrRejected, m.Size, *lim)}, nil
	}
	if t.Quirks.FinalCRLF {
		b, n, done, err := t.finalCRLF(body, m.Size)
		if err != nil {
			return nil, err
		}
		defer done()
		body, size = b, n
	}
	err := t.s.do(ctx, func() error {
		cmd = t.s.c.Append(folder, size, &imap.AppendOptions{Flags: flags, Time: m.InternalDate})
		rt := &readTracker{r: body}
		_, werr := io.Copy(cmd, rt)
		if rt.err != nil {
			// The message could not be read: the literal is short, and
			// ending the command now would make the server take the
			// next command's bytes for the rest of it. Drop the
			// connection first, so the server discards the APPEND; the
			// next call reconnects.
			t.s.wd.Close()
			cmd.Close()
			t.broken = true
			return fmt.Errorf("read message: %w", rt.err)
		}
		cerr := cmd.Close()
		if werr == nil {
			werr = cerr
		}
		if werr != nil {
			// The server may have refused the message before its literal.
			if _, err := cmd.Wait(); err != nil {
				if ans := classifyAppend(err); ans != nil {
					return ans
				}
			}
			return lost(t.s.connErr(ctx, "append", werr))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return appendPending{t: t, s: t.s, ctx: ctx, cmd: cmd, dropped: dropped}, nil
}

type appendPending struct {
	t       *Target
	s       *Store // the connection the APPEND went over
	ctx     context.Context
	cmd     *imapclient.AppendCommand
	dropped int
}

func (p appendPending) Wait() error {
	var err error
	p.s.do(p.ctx, func() error {
		_, err = p.cmd.Wait()
		return nil
	})
	if err == nil {
		p.t.dropped += p.dropped
		return nil
	}
	if ans := classifyAppend(err); ans != nil {
		return ans
	}
	return lost(p.s.connErr(p.ctx, "append", err))
}

// lost marks a broken connection as restore.ErrConnectionLost, so that
// the engine checks and retries instead of giving up (after the wait the
// server asked for, when it closed the connection throttling).
func lost(err error) error {
	var ce *backup.ConnError
	if errors.As(err, &ce) {
		return fmt.Errorf("%w: %w", restore.ErrConnectionLost, err)
	}
	var te *backup.ThrottleError
	if errors.As(err, &te) {
		return fmt.Errorf("%w: %w", restore.ErrThrottled, err)
	}
	return err
}

// classifyAppend maps a server's NO to an APPEND onto restore's errors;
// nil when err is not a server answer.
func classifyAppend(err error) error {
	var ie *imap.Error
	if !errors.As(err, &ie) {
		return nil
	}
	text := strings.TrimSpace(ie.Text)
	switch h, wait, _ := throttleHint(err); h {
	case hintDaily:
		return fmt.Errorf("%w: the server says %q; run the same command again in 24 hours to resume", backup.ErrDailyLimit, text)
	case hintBackoff:
		return fmt.Errorf("%w: %w", restore.ErrThrottled, &backup.ThrottleError{Wait: wait, Err: errors.New(text)})
	}
	switch ie.Code {
	case imap.ResponseCodeOverQuota, imap.ResponseCodeLimit:
		if ie.Code == imap.ResponseCodeOverQuota || strings.Contains(strings.ToLower(text), "quota") {
			return fmt.Errorf("%w: %s", restore.ErrOverQuota, text)
		}
	case imap.ResponseCodeTryCreate, imap.ResponseCodeNonExistent:
		return fmt.Errorf("%w: %s", restore.ErrTryCreate, text)
	case "THROTTLED", imap.ResponseCodeUnavailable, imap.ResponseCodeInUse:
		return fmt.Errorf("%w: %s", restore.ErrThrottled, text)
	}
	if strings.Contains(strings.ToLower(text), "quota") {
		return fmt.Errorf("%w: %s", restore.ErrOverQuota, text)
	}
	return fmt.Errorf("%w: %s %s", restore.ErrRejected, ie.Code, text)
}

// Close implements restore.Target.
func (t *Target) Close() error { return t.s.Close() }
