package imapstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/connerr"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/msghdr"
	"github.com/mailvault/mailvault/restore"
)

// Target is an IMAP account used as a restore target. Unlike Store it
// writes: CREATE and APPEND. It never SELECTs (opens read-write) a folder:
// GNU Mailutils loses APPENDs into a folder the same connection has
// SELECTed; it EXAMINEs a folder to read what it holds.
type Target struct {
	s       *Store
	cfg     mailconn.Config
	ns      formats.Namespace
	dropped int
	// noKeywords are the folders that refused a message for its
	// keywords: keywords are dropped there from then on.
	noKeywords map[string]bool
	// mu guards acked and noKeywords, which Pendings write.
	mu    sync.Mutex
	acked map[string]*ackedAppends
	// broken is set when the connection was dropped on purpose (an APPEND
	// whose message could not be read): the next call reconnects.
	broken bool
	// Quirks adapt the target to its provider; Warn, if set, is told
	// about them once.
	Quirks TargetQuirks
	Warn   func(msg string)
	padded int // messages given a final CRLF (Quirks.FinalCRLF)
}

var (
	_ restore.Target            = (*Target)(nil)
	_ restore.Namespacer        = (*Target)(nil)
	_ restore.SpecialUseCreator = (*Target)(nil)
	_ restore.StructureCreator  = (*Target)(nil)
	_ restore.AppendChecker     = (*Target)(nil)
	_ restore.KeywordDropper    = (*Target)(nil)
	_ restore.LabelTarget       = (*Target)(nil)
)

// Labels reports whether the server's folders are labels sharing messages
// (Gmail's X-GM-EXT-1): see restore.LabelTarget.
func (t *Target) Labels() bool {
	return t.s != nil && t.s.caps.Has("X-GM-EXT-1")
}

// ackedAppends is what the server answered to the APPENDs into one folder
// since the engine last asked how many messages it holds.
type ackedAppends struct {
	n        int         // APPENDs answered OK
	validity uint32      // UIDVALIDITY of the APPENDUID answers
	uids     imap.UIDSet // their UIDs (ranges: small for consecutive UIDs)
	unknown  int         // OKs without an APPENDUID (or of another UIDVALIDITY)
}

// DialTarget connects and logs in for a restore, and learns the server's
// personal namespace.
func DialTarget(ctx context.Context, cfg mailconn.Config) (*Target, error) {
	s, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	t := &Target{s: s, cfg: cfg, noKeywords: map[string]bool{}, acked: map[string]*ackedAppends{}}
	prefix, delim, err := s.personalNamespace(ctx)
	if err != nil {
		s.Close()
		return nil, err
	}
	t.ns = formats.Namespace{Prefix: prefix, Delimiter: delim}
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
	if t.ns.Delimiter == "" {
		return "/"
	}
	return t.ns.Delimiter
}

// Namespace implements restore.Namespacer: the server's personal
// namespace ("INBOX." and "." on Courier).
func (t *Target) Namespace() formats.Namespace {
	return formats.Namespace{Prefix: t.ns.Prefix, Delimiter: t.Delimiter()}
}

// Folders implements restore.Target.
func (t *Target) Folders(ctx context.Context) ([]restore.TargetFolder, error) {
	if err := t.ensure(ctx); err != nil {
		return nil, err
	}
	// LIST only: a restore needs no STATUS (which GNU Mailutils answers
	// in a form go-imap cannot read when a name holds a space).
	infos, err := t.s.list(ctx, false)
	if err != nil {
		if !t.s.unreadable(ctx, err) {
			return nil, t.s.connErr(ctx, "list folders", err)
		}
		raw, rerr := t.s.listRaw(ctx)
		if rerr != nil {
			return nil, t.s.connErr(ctx, "list folders", fmt.Errorf("%w (and again with mailvault's own parser: %w)", err, rerr))
		}
		// A new Store, not Store.redial, which changes the connection
		// under Pendings of the old one: each keeps its own.
		n, err := Dial(ctx, t.cfg)
		if err != nil {
			return nil, err
		}
		t.s.c.Close()
		t.s, infos = n, raw
	}
	var out []restore.TargetFolder
	for _, fi := range infos {
		out = append(out, restore.TargetFolder{Name: fi.Name, SpecialUse: fi.SpecialUse, NoSelect: fi.NoSelect})
	}
	return out, nil
}

// CreateFolder implements restore.Target. The folder itself is created
// (RFC 3501: the server makes the parents it needs, as structure where it
// can); only when that fails and a parent is missing are the parents
// created first, and the folder again. Creating parents first would make
// them folders of their own (GNU Mailutils' mbox store makes a parent a
// mailbox file that can hold no folder). A name the server refuses is
// restore.ErrFolderRefused with the server's words.
func (t *Target) CreateFolder(ctx context.Context, name string) error {
	return t.create(ctx, name, nil)
}

// CanCreateSpecialUse implements restore.SpecialUseCreator.
func (t *Target) CanCreateSpecialUse() bool {
	return t.s.caps.Has(imap.CapCreateSpecialUse)
}

// CreateSpecialUse implements restore.SpecialUseCreator with CREATE …
// (USE (attr)) (RFC 6154); refused, the folder is created without.
func (t *Target) CreateSpecialUse(ctx context.Context, name, use string) error {
	err := t.create(ctx, name, &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttr(use)}})
	if err == nil || !errors.Is(err, restore.ErrFolderRefused) {
		return err
	}
	if perr := t.create(ctx, name, nil); perr != nil {
		return perr
	}
	return fmt.Errorf("%w: %w", restore.ErrSpecialUseRefused, err)
}

// CreateStructure implements restore.StructureCreator: CREATE with the
// delimiter after the name, which RFC 3501 makes a declaration that
// folders will be created below it. What the server makes of it is its
// own: Dovecot and GNU Mailutils keep a \Noselect folder, Cyrus an empty
// folder, Courier nothing.
func (t *Target) CreateStructure(ctx context.Context, name string) error {
	if err := t.ensure(ctx); err != nil {
		return err
	}
	return t.s.do(ctx, func() error {
		if err := t.s.c.Create(name+t.Delimiter(), nil).Wait(); err != nil {
			var ie *imap.Error
			if !errors.As(err, &ie) {
				return t.s.connErr(ctx, "create", err)
			}
			if _, exists, lerr := t.listOne(ctx, name); lerr != nil || exists {
				return lerr // there already
			}
			return fmt.Errorf("create %q: %s", name+t.Delimiter(), serverWords(ie))
		}
		return nil
	})
}

// serverWords is what a server said in a NO or BAD answer.
func serverWords(ie *imap.Error) string {
	w := string(ie.Type)
	if ie.Code != "" {
		w += " [" + string(ie.Code) + "]"
	}
	return w + " " + strings.TrimSpace(ie.Text)
}

func (t *Target) create(ctx context.Context, name string, opts *imap.CreateOptions) error {
	if strings.EqualFold(name, "INBOX") {
		return nil
	}
	if err := t.reservedErr(name); err != nil {
		return err
	}
	if err := t.ensure(ctx); err != nil {
		return err
	}
	return t.s.do(ctx, func() error {
		err := t.s.c.Create(name, opts).Wait()
		var ie *imap.Error
		switch {
		case err == nil:
			return nil
		case !errors.As(err, &ie):
			return t.s.connErr(ctx, "create", err)
		case ie.Code == imap.ResponseCodeAlreadyExists:
			return t.usable(ctx, name, ie)
		}
		// Some servers answer a plain NO for a folder that exists
		// (Cyrus, Mailutils: "Mailbox already exists").
		attrs, exists, lerr := t.listOne(ctx, name)
		if lerr != nil {
			return lerr
		}
		if exists {
			return usableAttrs(name, attrs, ie)
		}
		d := t.Delimiter()
		levels := strings.Split(name, d)
		if len(levels) > 1 {
			parent := strings.Join(levels[:len(levels)-1], d)
			if _, pexists, lerr := t.listOne(ctx, parent); lerr != nil {
				return lerr
			} else if !pexists {
				// The server wants the parents first.
				for i := 1; i < len(levels); i++ {
					sub := strings.Join(levels[:i], d)
					if strings.EqualFold(sub, "INBOX") {
						continue
					}
					if perr := t.s.c.Create(sub, nil).Wait(); perr != nil && !errors.As(perr, new(*imap.Error)) {
						return t.s.connErr(ctx, "create", perr)
					}
				}
				err = t.s.c.Create(name, opts).Wait()
				if err == nil {
					return nil
				}
				if !errors.As(err, &ie) {
					return t.s.connErr(ctx, "create", err)
				}
			}
		}
		// A name the server will not take: this folder fails, the
		// others go on.
		return fmt.Errorf("%w: CREATE %q: the server answered %s", restore.ErrFolderRefused, name, serverWords(ie))
	})
}

// usable checks that an existing folder can hold messages.
func (t *Target) usable(ctx context.Context, name string, ie *imap.Error) error {
	attrs, _, err := t.listOne(ctx, name)
	if err != nil {
		return err
	}
	return usableAttrs(name, attrs, ie)
}

func usableAttrs(name string, attrs []imap.MailboxAttr, ie *imap.Error) error {
	for _, a := range attrs {
		if strings.EqualFold(string(a), string(imap.MailboxAttrNoSelect)) || strings.EqualFold(string(a), string(imap.MailboxAttrNonExistent)) {
			return fmt.Errorf("%w: CREATE %q: the server keeps %q as a folder that cannot hold messages (%s) and answered %s",
				restore.ErrFolderRefused, name, name, a, serverWords(ie))
		}
	}
	return nil
}

// listOne runs LIST "" name (wildcards in it matched literally) and
// returns the folder's attributes and whether it exists.
func (t *Target) listOne(ctx context.Context, name string) ([]imap.MailboxAttr, bool, error) {
	list, err := t.s.c.List("", name, nil).Collect()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return nil, false, nil
		}
		return nil, false, t.s.connErr(ctx, "list", err)
	}
	for _, ld := range list {
		if ld.Mailbox == name || strings.EqualFold(name, "INBOX") && strings.EqualFold(ld.Mailbox, "INBOX") {
			return ld.Attrs, true, nil
		}
	}
	return nil, false, nil
}

// examine opens a folder read-only and returns what EXAMINE reports; nil
// when the server answers NO (no such folder). The caller leaves the
// folder with unselect when done.
func (t *Target) examine(ctx context.Context, folder string) (*imap.SelectData, error) {
	sd, err := t.s.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		var ie *imap.Error
		if errors.As(err, &ie) {
			return nil, nil
		}
		return nil, t.s.connErr(ctx, "examine", err)
	}
	return sd, nil
}

// unselect leaves the examined folder: Courier refuses APPENDs into the
// folder the connection has EXAMINEd ("Current box is selected
// READ-ONLY"). UNSELECT where the server has it, else CLOSE, which
// removes nothing from a folder opened read-only (RFC 3501 6.4.2).
func (t *Target) unselect(ctx context.Context) error {
	cmd := t.s.c.UnselectAndExpunge
	if t.s.caps.Has(imap.CapUnselect) || t.s.caps.Has(imap.CapIMAP4rev2) {
		cmd = t.s.c.Unselect
	}
	if err := cmd().Wait(); err != nil && !errors.As(err, new(*imap.Error)) {
		return t.s.connErr(ctx, "unselect", err)
	}
	return nil
}

// Index implements restore.Target: it EXAMINEs the folder (read-only)
// and reads every message's Message-ID, size and INTERNALDATE, and the
// SHA-256 and body hash of those without a Message-ID. It streams what
// the server sends into the index (which goes to disk past
// restore.IndexMemoryEntries): it holds nothing per message but the UIDs
// of those without a Message-ID, as ranges.
func (t *Target) Index(ctx context.Context, folder string) (*restore.Index, error) {
	if err := t.ensure(ctx); err != nil {
		return nil, err
	}
	idx := restore.NewIndex()
	err := t.s.do(ctx, func() error {
		sd, err := t.examine(ctx, folder)
		if err != nil || sd == nil {
			return err
		}
		if err := t.indexExamined(ctx, idx, sd); err != nil {
			return err
		}
		return t.unselect(ctx)
	})
	return idx.Built(err)
}

// indexExamined reads the examined folder into idx. It stops early when
// idx fails (the caller reports idx.Err).
func (t *Target) indexExamined(ctx context.Context, idx *restore.Index, sd *imap.SelectData) error {
	if sd.NumMessages == 0 {
		return nil
	}
	hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Message-ID"}, Peek: true}
	cmd := t.s.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, RFC822Size: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{hdr},
	})
	defer cmd.Close()
	var noID imap.UIDSet
	for msg := cmd.Next(); msg != nil && idx.Err() == nil; msg = cmd.Next() {
		var (
			uid    imap.UID
			e      restore.IndexEntry
			header []byte
		)
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataRFC822Size:
				e.Size = it.Size
			case imapclient.FetchItemDataInternalDate:
				e.InternalDate = it.Time
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil || !it.MatchCommand(hdr) {
					continue
				}
				b, err := io.ReadAll(io.LimitReader(it.Literal, maxIndexHeader))
				if err != nil {
					return t.s.connErr(ctx, "read target folder", err)
				}
				header = b
			}
		}
		if e.MessageID = msghdr.MessageID(header); e.MessageID == "" {
			noID.AddNum(uid)
			continue
		}
		idx.AddEntry(e)
	}
	if err := cmd.Close(); err != nil {
		return t.s.connErr(ctx, "read target folder", err)
	}
	if len(noID) == 0 || idx.Err() != nil {
		return nil
	}
	// Messages without a Message-ID are known by their content.
	body := &imap.FetchItemBodySection{Peek: true}
	cmd = t.s.c.Fetch(noID, &imap.FetchOptions{UID: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}})
	defer cmd.Close()
	for msg := cmd.Next(); msg != nil && idx.Err() == nil; msg = cmd.Next() {
		var e restore.IndexEntry
		read := false
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataInternalDate:
				e.InternalDate = it.Time
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil || !it.MatchCommand(body) {
					continue
				}
				h, bh := sha256.New(), restore.NewBodyHasher()
				if _, err := io.Copy(io.MultiWriter(h, bh), it.Literal); err != nil {
					return t.s.connErr(ctx, "read target message", err)
				}
				e.Size, e.SHA256, e.BodySHA256, read = it.Literal.Size(), hex.EncodeToString(h.Sum(nil)), bh.Sum(), true
			}
		}
		if read {
			idx.AddEntry(e)
		}
	}
	if err := cmd.Close(); err != nil {
		return t.s.connErr(ctx, "read target message", err)
	}
	return nil
}

// maxIndexHeader bounds the bytes of the Message-ID header field read
// for the index (a server sends a few dozen).
const maxIndexHeader = 64 << 10

// Held implements restore.AppendChecker: the number of messages a fresh
// EXAMINE reports. (STATUS would do, but GNU Mailutils answers it with
// an unquoted name when the name holds a space, which go-imap cannot
// read.) It forgets the APPENDs recorded for the folder.
func (t *Target) Held(ctx context.Context, folder string) (int, error) {
	if err := t.ensure(ctx); err != nil {
		return 0, err
	}
	var n int
	err := t.s.do(ctx, func() error {
		sd, err := t.examine(ctx, folder)
		if err != nil {
			return err
		}
		if sd == nil {
			return fmt.Errorf("examine %q: no such folder", folder)
		}
		n = int(sd.NumMessages)
		return t.unselect(ctx)
	})
	t.mu.Lock()
	delete(t.acked, folder)
	t.mu.Unlock()
	return n, err
}

// Missing implements restore.AppendChecker with the APPENDUID answers
// (UIDPLUS): UID SEARCH for them in the folder. ok is false when the
// server gave no APPENDUID for some APPEND, or the folder's UIDVALIDITY
// changed.
func (t *Target) Missing(ctx context.Context, folder string) (int, bool, error) {
	t.mu.Lock()
	a := t.acked[folder]
	t.mu.Unlock()
	if a == nil || a.n == 0 {
		return 0, true, nil
	}
	if a.unknown > 0 || len(a.uids) == 0 {
		return 0, false, nil
	}
	if err := t.ensure(ctx); err != nil {
		return 0, false, err
	}
	missing, ok := 0, true
	err := t.s.do(ctx, func() error {
		sd, err := t.examine(ctx, folder)
		if err != nil {
			return err
		}
		if sd == nil {
			ok = false
			return nil
		}
		if sd.UIDValidity != a.validity {
			ok = false
			return t.unselect(ctx)
		}
		data, err := t.s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{a.uids}}, nil).Wait()
		if err != nil {
			return t.s.connErr(ctx, "search messages", err)
		}
		if err := t.unselect(ctx); err != nil {
			return err
		}
		// A UID answered twice stands for one message: the second
		// counts as missing.
		missing = a.n - len(data.AllUIDs())
		return nil
	})
	return missing, ok, err
}

// recordAppend notes the server's OK to an APPEND into folder.
func (t *Target) recordAppend(folder string, data *imap.AppendData) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a := t.acked[folder]
	if a == nil {
		a = &ackedAppends{}
		t.acked[folder] = a
	}
	a.n++
	switch {
	case data == nil || data.UID == 0 || a.validity != 0 && data.UIDValidity != a.validity:
		a.unknown++
	default:
		a.validity = data.UIDValidity
		if !a.uids.Contains(data.UID) {
			a.uids.AddNum(data.UID)
		}
	}
}

// flagsFor returns the flags to store with a message in folder and how
// many keywords it drops: those of a folder that refused keywords, and
// keywords that are not valid IMAP atoms (go-imap would refuse to encode
// them). keywords tells whether any keyword is sent.
func (t *Target) flagsFor(folder string, flags []string) (out []imap.Flag, dropped int, keywords bool) {
	for _, f := range flags {
		if strings.HasPrefix(f, `\`) {
			if strings.EqualFold(f, `\Recent`) {
				continue
			}
			out = append(out, imap.Flag(f))
			continue
		}
		if !formats.ValidKeyword(f) || t.refusesKeywords(folder) {
			dropped++
			continue
		}
		out = append(out, imap.Flag(f))
		keywords = true
	}
	return out, dropped, keywords
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
	flags, dropped, keywords := t.flagsFor(folder, m.Flags)
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
					return t.keywordsRefused(folder, keywords, ans)
				}
			}
			return lost(t.s.connErr(ctx, "append", werr))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return appendPending{t: t, s: t.s, ctx: ctx, cmd: cmd, dropped: dropped, folder: folder, keywords: keywords}, nil
}

type appendPending struct {
	t        *Target
	s        *Store // the connection the APPEND went over
	ctx      context.Context
	cmd      *imapclient.AppendCommand
	dropped  int
	folder   string
	keywords bool // keywords were sent
}

func (p appendPending) Wait() error {
	var err error
	var data *imap.AppendData
	p.s.do(p.ctx, func() error {
		data, err = p.cmd.Wait()
		return nil
	})
	if err == nil {
		p.t.dropped += p.dropped
		p.t.recordAppend(p.folder, data)
		return nil
	}
	if ans := classifyAppend(err); ans != nil {
		return p.t.keywordsRefused(p.folder, p.keywords, ans)
	}
	return lost(p.s.connErr(p.ctx, "append", err))
}

func (t *Target) refusesKeywords(folder string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.noKeywords[folder]
}

// keywordsRefused turns the refusal of a message that carried keywords
// into restore.ErrKeywordsRefused and drops keywords in folder from now
// on: GNU Mailutils answers "BAD Unrecognized flag" to any keyword. (A
// message refused for another reason is refused again without them.)
func (t *Target) keywordsRefused(folder string, keywords bool, ans error) error {
	if !keywords || !errors.Is(ans, restore.ErrRejected) {
		return ans
	}
	t.mu.Lock()
	t.noKeywords[folder] = true
	t.mu.Unlock()
	return fmt.Errorf("%w: %w", restore.ErrKeywordsRefused, ans)
}

// lost marks a broken connection as restore.ErrConnectionLost, so that
// the engine checks and retries instead of giving up (after the wait the
// server asked for, when it closed the connection throttling).
func lost(err error) error {
	var ce *connerr.Error
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
