package imaptest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
)

// fakeCaps is what the fake advertises. Deliberately absent: LIST-STATUS,
// CONDSTORE, SPECIAL-USE, UIDPLUS, ESEARCH, STARTTLS.
const fakeCaps = "IMAP4rev1 LITERAL+ ID UNSELECT"

// fakeDefaultDate is the INTERNALDATE of messages given without one.
var fakeDefaultDate = time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC)

// fakeSystemFlags are announced in every FLAGS response.
var fakeSystemFlags = []string{`\Answered`, `\Flagged`, `\Deleted`, `\Seen`, `\Draft`}

// FakeMessage is a message held by the fake server.
type FakeMessage struct {
	// UID must increase within a folder. Zero means "previous UID + 1".
	UID imap.UID
	// Flags are sent as given, e.g. `\Seen`, `$Forwarded`.
	Flags []string
	// InternalDate defaults to 2024-01-02 03:04:05 UTC when zero.
	InternalDate time.Time
	// Body is the full message, returned byte for byte (it may hold any
	// bytes, NUL, bare CR and bare LF included).
	Body []byte
}

// FakeOptions configures StartFake.
type FakeOptions struct {
	// User and Password are the only credentials LOGIN accepts.
	User, Password string
	// Folders maps folder names (hierarchy delimiter "/", any Unicode) to
	// their messages in UID order. INBOX always exists. UIDVALIDITY is 1000
	// plus the folder's index with INBOX first and the other folders sorted
	// by name (see Fake.UIDValidity); UIDNEXT is the last UID + 1.
	Folders map[string][]FakeMessage
	// UIDAfterLiteral makes FETCH responses send the BODY[] literal first
	// and UID, FLAGS, INTERNALDATE and RFC822.SIZE after it:
	//	* 1 FETCH (BODY[] {n}\r\n...data... UID 7 FLAGS (\Seen))
	UIDAfterLiteral bool
	// OmitUIDInSeqFetch leaves UID out of non-UID FETCH responses even when
	// it was asked for.
	OmitUIDInSeqFetch bool
	// HangAt makes the server go silent, keeping the TCP connection open
	// until the test ends: "greeting" (never send the greeting), "login",
	// "list", "examine" (EXAMINE or SELECT) or "fetch" (in a FETCH or UID
	// FETCH with BODY[], after writing the first half of the first literal).
	// "" disables it.
	HangAt string
	// CutAt "fetch" is like HangAt "fetch" but closes the connection after
	// the half literal. "" disables it.
	CutAt string
	// FailFolder names a folder that EXAMINE/SELECT accept but where any
	// FETCH with BODY[] answers "NO [SERVERBUG] simulated failure".
	FailFolder string
	// HangOnce applies HangAt and CutAt only to the first connection that
	// reaches that point; later connections behave.
	HangOnce bool
	// WireNames maps folder names (keys of Folders) to the exact bytes
	// the server uses for them instead of their modified UTF-7 form, such
	// as names that are not valid modified UTF-7 ("Caf\xe9", "A\x01B",
	// "&AGEAYgBj-"). LIST sends them as a quoted string (a literal when
	// they hold CR, LF or NUL); STATUS, EXAMINE and SELECT recognise them.
	WireNames map[string]string
	// ListExtra are lines LIST sends after the folders, as they are
	// (without CRLF), such as responses a client cannot parse.
	ListExtra []string
	// UnquotedStatus makes STATUS answer with the folder's name unquoted,
	// as GNU Mailutils 3.15 does ("* STATUS My Folder (MESSAGES 2)").
	UnquotedStatus bool
	// ListAlso are names LIST reports in addition to the folders, e.g.
	// "Inbox" next to INBOX (a server that lists its inbox twice). EXAMINE
	// and STATUS resolve them as usual (INBOX in any case is INBOX).
	ListAlso []string
	// OnBody, if set, is called after the fake sent (and flushed) a message
	// body in a FETCH response, with the folder and the message's UID. A test
	// changes the mailbox from it "while a client fetches" (Expunge,
	// Recreate). It runs on the connection's goroutine, which waits for it.
	OnBody func(folder string, uid imap.UID)
	// ExpungedOmit leaves messages expunged by another session (Expunge)
	// out of FETCH responses of a session that has not been told yet. By
	// default the fake answers for them as Dovecot 2.3 does: UID and FLAGS,
	// RFC822.SIZE 0 and an empty BODY[].
	ExpungedOmit bool
	// Answer, if set, is asked before the fake handles each command (after
	// its literals were read): conn is the connection's number (1 for the
	// first accepted), name the command ("LOGIN", "EXAMINE", "UID FETCH"…)
	// and n how many commands of that name the fake has received on all
	// connections, this one included. A non-empty answer replaces the
	// fake's own: each of its lines ("\r\n" between them) that starts
	// with "* " is sent as it is, any other with the command's tag in
	// front ("NO [UNAVAILABLE] try later"); when one is a "* BYE" the
	// connection is closed after the last line.
	Answer func(conn int, name string, n int) string
	// BandwidthCap, if positive, is how many message bytes the fake serves
	// in FETCH bodies over all connections: a FETCH response with a body
	// that would go over it is not sent; the fake answers "* BYE
	// [OVERQUOTA] Account exceeded command or bandwidth limits." (Gmail's
	// answer) and closes the connection, then and for every later FETCH of
	// a body.
	BandwidthCap int64
}

// Fake is a running scripted IMAP4rev1 server that implements just enough
// for a read-only backup, and misbehaves as told by FakeOptions. It listens
// on 127.0.0.1, plaintext only.
//
// It deliberately departs from RFC 3501 where that helps catch a careless
// client: BODY[] without PEEK sets \Seen even in a mailbox opened with
// EXAMINE, and STORE and EXPUNGE work in EXAMINE too, so that Flags shows
// any change a client attempted.
type Fake struct {
	// Addr is the listening address, 127.0.0.1:port.
	Addr string

	opts FakeOptions
	ln   net.Listener
	log  cmdLog
	done chan struct{} // closed when the test ends
	wg   sync.WaitGroup

	mu       sync.Mutex
	folders  map[string]*fakeFolder
	names    []string // INBOX first, then sorted
	recreate uint32   // folders re-created so far (Recreate)
	conns    map[net.Conn]struct{}
	nconns   int
	tripped  map[string]bool // misbehaviour points already used (HangOnce)
	closed   bool
	counts   map[string]int // commands received by name (Answer)
	served   int64          // body bytes sent (BandwidthCap)
}

type fakeFolder struct {
	uidValidity uint32
	uidNext     imap.UID
	msgs        []*fakeMsg
	deleted     bool // replaced by Recreate: sessions that selected it are disconnected
}

type fakeMsg struct {
	uid      imap.UID
	flags    []string
	date     time.Time
	body     []byte // never modified
	expunged bool   // removed from its folder; sessions may not know yet
}

// StartFake starts a fake server. t.Cleanup closes the listener and every
// connection, hung ones included.
func StartFake(t testing.TB, opts FakeOptions) *Fake {
	t.Helper()
	switch opts.HangAt {
	case "", "greeting", "login", "list", "examine", "fetch":
	default:
		t.Fatalf("imaptest: unknown HangAt %q", opts.HangAt)
	}
	switch opts.CutAt {
	case "", "fetch":
	default:
		t.Fatalf("imaptest: unknown CutAt %q", opts.CutAt)
	}

	f := &Fake{
		opts:    opts,
		done:    make(chan struct{}),
		folders: make(map[string]*fakeFolder),
		conns:   make(map[net.Conn]struct{}),
		tripped: make(map[string]bool),
		counts:  make(map[string]int),
	}
	src := map[string][]FakeMessage{"INBOX": nil}
	for name, msgs := range opts.Folders {
		src[canonFolder(name)] = msgs
	}
	for name := range src {
		if name != "INBOX" {
			f.names = append(f.names, name)
		}
	}
	sort.Strings(f.names)
	f.names = append([]string{"INBOX"}, f.names...)
	for i, name := range f.names {
		fd, err := newFakeFolder(1000+uint32(i), src[name])
		if err != nil {
			t.Fatalf("imaptest: folder %q: %v", name, err)
		}
		f.folders[name] = fd
	}

	f.ln = listen(t)
	f.Addr = f.ln.Addr().String()
	f.wg.Add(1)
	go f.acceptLoop()
	t.Cleanup(f.close)
	return f
}

// newFakeFolder returns a folder holding msgs.
func newFakeFolder(validity uint32, msgs []FakeMessage) (*fakeFolder, error) {
	fd := &fakeFolder{uidValidity: validity}
	var last imap.UID
	for _, m := range msgs {
		uid := m.UID
		if uid == 0 {
			uid = last + 1
		}
		if uid <= last {
			return nil, fmt.Errorf("UID %d after %d, UIDs must increase", uid, last)
		}
		date := m.InternalDate
		if date.IsZero() {
			date = fakeDefaultDate
		}
		fd.msgs = append(fd.msgs, &fakeMsg{
			uid:   uid,
			flags: append([]string(nil), m.Flags...),
			date:  date,
			body:  bytes.Clone(m.Body),
		})
		last = uid
	}
	fd.uidNext = last + 1
	return fd, nil
}

// Expunge removes the messages with the given UIDs from folder, as another
// client's EXPUNGE would: a session that has the folder selected is told at
// its next command that allows it (UID FETCH, UID SEARCH, NOOP…; never
// during FETCH, STORE or SEARCH, RFC 3501 7.4.1), and until then keeps
// their sequence numbers. It reports how many messages it removed.
func (f *Fake) Expunge(folder string, uids ...imap.UID) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd := f.folders[canonFolder(folder)]
	if fd == nil {
		return 0
	}
	n := 0
	drop := make(map[imap.UID]bool, len(uids))
	for _, u := range uids {
		drop[u] = true
	}
	kept := fd.msgs[:0:0]
	for _, m := range fd.msgs {
		if drop[m.uid] {
			m.expunged = true
			n++
			continue
		}
		kept = append(kept, m)
	}
	fd.msgs = kept
	return n
}

// Recreate deletes folder and creates it again holding msgs, as another
// client's DELETE and CREATE would: the new folder has a new UIDVALIDITY,
// which Recreate returns. A session that has the old folder selected is
// disconnected at its next command (* BYE), as Dovecot does.
func (f *Fake) Recreate(folder string, msgs []FakeMessage) (uint32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	name := canonFolder(folder)
	old := f.folders[name]
	if old == nil {
		return 0, fmt.Errorf("imaptest: no folder %q", folder)
	}
	f.recreate++
	fd, err := newFakeFolder(5000+f.recreate, msgs)
	if err != nil {
		return 0, err
	}
	old.deleted = true
	f.folders[name] = fd
	return fd.uidValidity, nil
}

// canonFolder spells INBOX in upper case, whatever the case given.
func canonFolder(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

func (f *Fake) acceptLoop() {
	defer f.wg.Done()
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			conn.Close()
			return
		}
		f.conns[conn] = struct{}{}
		f.nconns++
		num := f.nconns
		f.wg.Add(1)
		f.mu.Unlock()
		go f.serveConn(conn, num)
	}
}

func (f *Fake) close() {
	f.mu.Lock()
	f.closed = true
	conns := make([]net.Conn, 0, len(f.conns))
	for c := range f.conns {
		conns = append(conns, c)
	}
	f.mu.Unlock()
	close(f.done)
	f.ln.Close()
	for _, c := range conns {
		c.Close()
	}
	f.wg.Wait()
}

// Commands returns the command lines received so far across all
// connections: tags stripped, literal data left out (the {n} announcements
// stay), LOGIN recorded as "LOGIN <redacted>".
func (f *Fake) Commands() []string {
	return f.log.snapshot()
}

// Flags returns the current flags of every message in folder by UID, or nil
// if there is no such folder.
func (f *Fake) Flags(folder string) map[imap.UID][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	fd := f.folders[canonFolder(folder)]
	if fd == nil {
		return nil
	}
	out := make(map[imap.UID][]string, len(fd.msgs))
	for _, m := range fd.msgs {
		out[m.uid] = append([]string{}, m.flags...)
	}
	return out
}

// UIDValidity returns the UIDVALIDITY of folder, 0 if there is no such
// folder.
func (f *Fake) UIDValidity(folder string) uint32 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fd := f.folders[canonFolder(folder)]; fd != nil {
		return fd.uidValidity
	}
	return 0
}

// Connections returns the number of connections accepted so far.
func (f *Fake) Connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nconns
}

// trip reports how to misbehave at point: "hang", "cut" or "".
func (f *Fake) trip(point string) string {
	mode := ""
	switch point {
	case f.opts.HangAt:
		mode = "hang"
	case f.opts.CutAt:
		mode = "cut"
	default:
		return ""
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.opts.HangOnce && f.tripped[point] {
		return ""
	}
	f.tripped[point] = true
	return mode
}

func (f *Fake) serveConn(conn net.Conn, num int) {
	defer f.wg.Done()
	defer func() {
		conn.Close()
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
	}()
	s := &fakeConn{
		f:    f,
		num:  num,
		conn: conn,
		r:    bufio.NewReader(io.TeeReader(conn, &lineRecorder{log: &f.log})),
		w:    bufio.NewWriter(conn),
	}
	s.serve()
}

// errQuit ends a connection: after LOGOUT, a hang or a cut.
var errQuit = errors.New("quit")

// fakeConn is one client connection to the fake.
type fakeConn struct {
	f        *Fake
	num      int // the connection's number, from 1
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	authed   bool
	selected string // "" when no folder is selected
	readOnly bool
	// view is the selected folder's messages as this session knows them
	// (sequence number i+1 is view[i]); viewOf is that folder.
	view   []*fakeMsg
	viewOf *fakeFolder
}

func (s *fakeConn) serve() {
	if s.f.trip("greeting") != "" {
		s.hang()
		return
	}
	s.line("* OK [CAPABILITY %s] ready", fakeCaps)
	if s.w.Flush() != nil {
		return
	}
	for {
		cmd, err := readCommand(s.r, s.w)
		if err != nil {
			var se *errSyntax
			if !errors.As(err, &se) {
				return
			}
			tag := "*"
			if cmd != nil && cmd.tag != "" {
				tag = cmd.tag
			}
			err = s.tagged(tag, "BAD", "Syntax error: "+se.msg)
		} else if s.viewDeleted() {
			s.line("* BYE Selected mailbox was deleted, have to disconnect")
			_ = s.w.Flush()
			return
		} else if ans := s.scripted(cmd); ans != "" {
			err = s.answer(cmd.tag, ans)
		} else {
			err = s.handle(cmd)
		}
		if err != nil {
			return
		}
	}
}

// scripted returns FakeOptions.Answer's answer to cmd, "" for none.
func (s *fakeConn) scripted(cmd *fakeCmd) string {
	if s.f.opts.Answer == nil {
		return ""
	}
	s.f.mu.Lock()
	s.f.counts[cmd.name]++
	n := s.f.counts[cmd.name]
	s.f.mu.Unlock()
	return s.f.opts.Answer(s.num, cmd.name, n)
}

// answer sends a scripted answer (see FakeOptions.Answer).
func (s *fakeConn) answer(tag, ans string) error {
	bye := false
	for _, l := range strings.Split(ans, "\r\n") {
		if strings.HasPrefix(l, "* ") {
			bye = bye || strings.HasPrefix(strings.ToUpper(l), "* BYE")
			s.line("%s", l)
		} else {
			s.line("%s %s", tag, l)
		}
	}
	if err := s.w.Flush(); err != nil || bye {
		return errQuit
	}
	return nil
}

// overCap reports whether sending n more body bytes would go over
// FakeOptions.BandwidthCap; if not, they are counted as served.
func (s *fakeConn) overCap(n int) bool {
	if s.f.opts.BandwidthCap <= 0 {
		return false
	}
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	if s.f.served+int64(n) > s.f.opts.BandwidthCap {
		return true
	}
	s.f.served += int64(n)
	return false
}

// hang flushes what was written and then waits, silent, for the test to end.
func (s *fakeConn) hang() {
	_ = s.w.Flush()
	<-s.f.done
}

// line writes one response line (without flushing).
func (s *fakeConn) line(format string, args ...any) {
	fmt.Fprintf(s.w, format+"\r\n", args...)
}

// tagged writes a tagged status response and flushes.
func (s *fakeConn) tagged(tag, status, text string) error {
	s.line("%s %s %s", tag, status, text)
	return s.w.Flush()
}

func (s *fakeConn) handle(cmd *fakeCmd) error {
	switch cmd.name {
	case "CAPABILITY":
		s.line("* CAPABILITY %s", fakeCaps)
		return s.tagged(cmd.tag, "OK", "CAPABILITY completed")
	case "NOOP":
		if s.selected != "" {
			s.syncView()
		}
		return s.tagged(cmd.tag, "OK", "NOOP completed")
	case "LOGOUT":
		s.line("* BYE Logging out")
		_ = s.tagged(cmd.tag, "OK", "LOGOUT completed")
		return errQuit
	case "ID":
		s.line("* ID NIL")
		return s.tagged(cmd.tag, "OK", "ID completed")
	case "LOGIN":
		return s.login(cmd)
	case "LIST", "STATUS", "EXAMINE", "SELECT":
		if !s.authed {
			return s.tagged(cmd.tag, "BAD", "Log in first")
		}
		switch cmd.name {
		case "LIST":
			return s.list(cmd)
		case "STATUS":
			return s.status(cmd)
		default:
			return s.selectFolder(cmd)
		}
	case "FETCH", "UID FETCH", "SEARCH", "UID SEARCH", "STORE", "UID STORE", "EXPUNGE", "CLOSE", "UNSELECT":
		if s.selected == "" {
			return s.tagged(cmd.tag, "BAD", "No mailbox selected")
		}
		switch cmd.name {
		case "FETCH", "UID FETCH":
			return s.fetch(cmd)
		case "SEARCH", "UID SEARCH":
			return s.search(cmd)
		case "STORE", "UID STORE":
			return s.store(cmd)
		case "EXPUNGE":
			s.expunge()
			s.syncView()
			return s.tagged(cmd.tag, "OK", "EXPUNGE completed")
		default:
			if cmd.name == "CLOSE" && !s.readOnly {
				s.expunge()
			}
			s.selected, s.view, s.viewOf = "", nil, nil
			return s.tagged(cmd.tag, "OK", cmd.name+" completed")
		}
	default:
		return s.tagged(cmd.tag, "BAD", "Unknown command")
	}
}

func (s *fakeConn) login(cmd *fakeCmd) error {
	if s.authed {
		return s.tagged(cmd.tag, "BAD", "Already logged in")
	}
	if len(cmd.args) != 2 {
		return s.tagged(cmd.tag, "BAD", "LOGIN needs a user name and a password")
	}
	user, ok1 := cmd.args[0].str()
	pass, ok2 := cmd.args[1].str()
	if !ok1 || !ok2 {
		return s.tagged(cmd.tag, "BAD", "LOGIN needs a user name and a password")
	}
	if s.f.trip("login") != "" {
		s.hang()
		return errQuit
	}
	if user != s.f.opts.User || pass != s.f.opts.Password {
		return s.tagged(cmd.tag, "NO", "[AUTHENTICATIONFAILED] Invalid credentials")
	}
	s.authed = true
	return s.tagged(cmd.tag, "OK", "[CAPABILITY "+fakeCaps+"] Logged in")
}

// mailboxArg decodes a mailbox name argument.
func mailboxArg(t tok) (string, bool) {
	s, ok := t.str()
	if !ok {
		return "", false
	}
	if dec, err := decodeMUTF7(s); err == nil {
		s = dec
	}
	return canonFolder(s), true
}

// mailbox decodes a mailbox name argument, recognising the exact bytes
// of Options.WireNames first.
func (s *fakeConn) mailbox(t tok) (string, bool) {
	if raw, ok := t.str(); ok {
		for name, wire := range s.f.opts.WireNames {
			if raw == wire {
				return name, true
			}
		}
	}
	return mailboxArg(t)
}

func (s *fakeConn) list(cmd *fakeCmd) error {
	if len(cmd.args) != 2 || cmd.args[0].kind == tokList || cmd.args[1].kind == tokList {
		return s.tagged(cmd.tag, "BAD", "LIST extensions are not supported")
	}
	ref, _ := mailboxArg(cmd.args[0])
	pattern, _ := mailboxArg(cmd.args[1])
	if s.f.trip("list") != "" {
		s.hang()
		return errQuit
	}
	if pattern == "" {
		s.line(`* LIST (\Noselect) "/" ""`)
		return s.tagged(cmd.tag, "OK", "LIST completed")
	}
	for _, name := range s.f.names {
		if !imapserver.MatchList(name, '/', ref, pattern) {
			continue
		}
		attr := `\HasNoChildren`
		for _, other := range s.f.names {
			if strings.HasPrefix(other, name+"/") {
				attr = `\HasChildren`
				break
			}
		}
		if wire, ok := s.f.opts.WireNames[name]; ok {
			if strings.ContainsAny(wire, "\r\n\x00") {
				fmt.Fprintf(s.w, "* LIST (%s) \"/\" {%d}\r\n%s\r\n", attr, len(wire), wire)
			} else {
				s.line(`* LIST (%s) "/" %s`, attr, quote(wire))
			}
			continue
		}
		s.line(`* LIST (%s) "/" %s`, attr, quote(encodeMUTF7(name)))
	}
	for _, name := range s.f.opts.ListAlso {
		if imapserver.MatchList(name, '/', ref, pattern) {
			s.line(`* LIST (\HasNoChildren) "/" %s`, quote(encodeMUTF7(name)))
		}
	}
	for _, l := range s.f.opts.ListExtra {
		s.line("%s", l)
	}
	return s.tagged(cmd.tag, "OK", "LIST completed")
}

func (s *fakeConn) status(cmd *fakeCmd) error {
	if len(cmd.args) != 2 || cmd.args[1].kind != tokList {
		return s.tagged(cmd.tag, "BAD", "STATUS needs a mailbox and a list of items")
	}
	name, ok := s.mailbox(cmd.args[0])
	if !ok {
		return s.tagged(cmd.tag, "BAD", "bad mailbox name")
	}
	s.f.mu.Lock()
	fd := s.f.folders[name]
	var items []string
	var bad string
	if fd != nil {
		for _, it := range cmd.args[1].list {
			var v uint64
			switch item := strings.ToUpper(it.s); item {
			case "MESSAGES":
				v = uint64(len(fd.msgs))
			case "UIDNEXT":
				v = uint64(fd.uidNext)
			case "UIDVALIDITY":
				v = uint64(fd.uidValidity)
			case "UNSEEN":
				for _, m := range fd.msgs {
					if !hasFlag(m.flags, `\Seen`) {
						v++
					}
				}
			case "RECENT":
			default:
				bad = it.s
			}
			items = append(items, strings.ToUpper(it.s)+" "+strconv.FormatUint(v, 10))
		}
	}
	s.f.mu.Unlock()
	switch {
	case fd == nil:
		return s.tagged(cmd.tag, "NO", "[NONEXISTENT] Mailbox doesn't exist")
	case bad != "":
		return s.tagged(cmd.tag, "BAD", "Unsupported STATUS item "+bad)
	}
	if s.f.opts.UnquotedStatus {
		s.line("* STATUS %s (%s)", encodeMUTF7(name), strings.Join(items, " "))
	} else {
		s.line("* STATUS %s (%s)", quote(encodeMUTF7(name)), strings.Join(items, " "))
	}
	return s.tagged(cmd.tag, "OK", "STATUS completed")
}

func (s *fakeConn) selectFolder(cmd *fakeCmd) error {
	examine := cmd.name == "EXAMINE"
	if len(cmd.args) != 1 {
		return s.tagged(cmd.tag, "BAD", cmd.name+" parameters are not supported")
	}
	name, ok := s.mailbox(cmd.args[0])
	if !ok {
		return s.tagged(cmd.tag, "BAD", "bad mailbox name")
	}
	if s.f.trip("examine") != "" {
		s.hang()
		return errQuit
	}
	s.selected, s.view, s.viewOf = "", nil, nil
	s.f.mu.Lock()
	fd := s.f.folders[name]
	var exists, validity uint32
	var uidNext imap.UID
	flags := append([]string(nil), fakeSystemFlags...)
	if fd != nil {
		exists, validity, uidNext = uint32(len(fd.msgs)), fd.uidValidity, fd.uidNext
		s.view, s.viewOf = sharedView(fd.msgs), fd
		for _, m := range fd.msgs {
			for _, fl := range m.flags {
				if !hasFlag(flags, fl) {
					flags = append(flags, fl)
				}
			}
		}
	}
	s.f.mu.Unlock()
	if fd == nil {
		return s.tagged(cmd.tag, "NO", "[NONEXISTENT] Mailbox doesn't exist")
	}
	s.selected, s.readOnly = name, examine
	s.line("* FLAGS (%s)", strings.Join(flags, " "))
	if examine {
		s.line("* OK [PERMANENTFLAGS ()] Read-only mailbox")
	} else {
		s.line(`* OK [PERMANENTFLAGS (%s \*)] Flags permitted`, strings.Join(fakeSystemFlags, " "))
	}
	s.line("* %d EXISTS", exists)
	s.line("* 0 RECENT")
	s.line("* OK [UIDVALIDITY %d] UIDs valid", validity)
	s.line("* OK [UIDNEXT %d] Predicted next UID", uidNext)
	if examine {
		return s.tagged(cmd.tag, "OK", "[READ-ONLY] EXAMINE completed")
	}
	return s.tagged(cmd.tag, "OK", "[READ-WRITE] SELECT completed")
}

// matchSet returns the indexes, in ascending order, of the messages of the
// selected folder that set designates (by UID when byUID). It fails for a
// sequence number beyond the mailbox. s.f.mu must be held.
func (s *fakeConn) matchSet(set string, byUID bool) ([]int, error) {
	ranges, err := parseNumSet(set)
	if err != nil {
		return nil, err
	}
	msgs := s.view
	var max uint32
	if byUID {
		if len(msgs) > 0 {
			max = uint32(msgs[len(msgs)-1].uid)
		}
	} else {
		max = uint32(len(msgs))
		for _, r := range ranges {
			if (r.lo != star && r.lo > max) || (r.hi != star && r.hi > max) || max == 0 {
				return nil, errors.New("invalid message sequence number")
			}
		}
	}
	var out []int
	for i, m := range msgs {
		n := uint32(i + 1)
		if byUID {
			n = uint32(m.uid)
		}
		for _, r := range ranges {
			if lo, hi := r.resolve(max); lo <= n && n <= hi {
				out = append(out, i)
				break
			}
		}
	}
	return out, nil
}

// fetchItems is what a FETCH command asked for.
type fetchItems struct {
	uid, flags, date, size bool
	body                   bool // BODY[] or BODY.PEEK[]
	seen                   bool // BODY[] without PEEK: sets \Seen
}

func parseFetchItems(t tok) (fetchItems, error) {
	var want fetchItems
	atoms := []tok{t}
	if t.kind == tokList {
		atoms = t.list
	}
	for _, a := range atoms {
		if a.kind != tokAtom {
			return want, errors.New("bad FETCH item")
		}
		switch strings.ToUpper(a.s) {
		case "UID":
			want.uid = true
		case "FLAGS":
			want.flags = true
		case "INTERNALDATE":
			want.date = true
		case "RFC822.SIZE":
			want.size = true
		case "FAST":
			want.flags, want.date, want.size = true, true, true
		case "BODY[]":
			want.body, want.seen = true, true
		case "BODY.PEEK[]":
			want.body = true
		default:
			return want, fmt.Errorf("unsupported FETCH item %s", a.s)
		}
	}
	return want, nil
}

// fetched is a snapshot of one message for a FETCH response.
type fetched struct {
	seq          int
	uid          imap.UID
	flags        []string
	flagsChanged bool
	date         time.Time
	body         []byte
}

func (s *fakeConn) fetch(cmd *fakeCmd) error {
	byUID := cmd.name == "UID FETCH"
	if len(cmd.args) != 2 || cmd.args[0].kind != tokAtom {
		return s.tagged(cmd.tag, "BAD", "FETCH needs a sequence set and items")
	}
	want, err := parseFetchItems(cmd.args[1])
	if err != nil {
		return s.tagged(cmd.tag, "BAD", err.Error())
	}
	if want.body && s.selected == canonFolder(s.f.opts.FailFolder) {
		return s.tagged(cmd.tag, "NO", "[SERVERBUG] simulated failure")
	}

	s.f.mu.Lock()
	idx, err := s.matchSet(cmd.args[0].s, byUID)
	s.f.mu.Unlock()
	if err != nil {
		return s.tagged(cmd.tag, "BAD", err.Error())
	}

	sendUID := byUID || (want.uid && !s.f.opts.OmitUIDInSeqFetch)
	first := true
	for _, i := range idx {
		// Each message as it is now: another session may have expunged it
		// since the command started.
		s.f.mu.Lock()
		m := s.view[i]
		fe := fetched{seq: i + 1, uid: m.uid, date: m.date, body: m.body}
		if m.expunged {
			fe.body = nil
		} else if want.seen && !hasFlag(m.flags, `\Seen`) {
			m.flags = append(m.flags, `\Seen`)
			fe.flagsChanged = true
		}
		fe.flags = append([]string(nil), m.flags...)
		s.f.mu.Unlock()
		if m.expunged && s.f.opts.ExpungedOmit {
			continue
		}
		if want.body && s.overCap(len(fe.body)) {
			s.line("* BYE [OVERQUOTA] Account exceeded command or bandwidth limits.")
			_ = s.w.Flush()
			return errQuit
		}
		var items []string
		if sendUID {
			items = append(items, fmt.Sprintf("UID %d", fe.uid))
		}
		if want.flags || fe.flagsChanged {
			items = append(items, "FLAGS ("+strings.Join(fe.flags, " ")+")")
		}
		if want.date {
			items = append(items, `INTERNALDATE "`+fe.date.Format("_2-Jan-2006 15:04:05 -0700")+`"`)
		}
		if want.size {
			items = append(items, fmt.Sprintf("RFC822.SIZE %d", len(fe.body)))
		}
		fmt.Fprintf(s.w, "* %d FETCH (", fe.seq)
		if !want.body {
			s.line("%s)", strings.Join(items, " "))
			continue
		}
		if !s.f.opts.UIDAfterLiteral && len(items) > 0 {
			fmt.Fprintf(s.w, "%s ", strings.Join(items, " "))
		}
		fmt.Fprintf(s.w, "BODY[] {%d}\r\n", len(fe.body))
		if first {
			first = false
			if mode := s.f.trip("fetch"); mode != "" {
				_, _ = s.w.Write(fe.body[:len(fe.body)/2])
				_ = s.w.Flush()
				if mode == "hang" {
					s.hang()
				}
				return errQuit
			}
		}
		_, _ = s.w.Write(fe.body)
		if s.f.opts.UIDAfterLiteral && len(items) > 0 {
			fmt.Fprintf(s.w, " %s", strings.Join(items, " "))
		}
		s.line(")")
		if s.f.opts.OnBody != nil {
			if s.w.Flush() != nil {
				return errQuit
			}
			s.f.opts.OnBody(s.selected, fe.uid)
		}
	}
	if byUID {
		s.syncView()
	}
	return s.tagged(cmd.tag, "OK", cmd.name+" completed")
}

func (s *fakeConn) search(cmd *fakeCmd) error {
	byUID := cmd.name == "UID SEARCH"
	// Supported: ALL, UID <set>, <sequence set>.
	var set string
	var setByUID bool
	switch {
	case len(cmd.args) == 1 && strings.EqualFold(cmd.args[0].s, "ALL") && cmd.args[0].kind == tokAtom:
		set = "1:*"
		setByUID = true
	case len(cmd.args) == 2 && strings.EqualFold(cmd.args[0].s, "UID") && cmd.args[1].kind == tokAtom:
		set, setByUID = cmd.args[1].s, true
	case len(cmd.args) == 1 && cmd.args[0].kind == tokAtom:
		set = cmd.args[0].s
	default:
		return s.tagged(cmd.tag, "BAD", "Only SEARCH ALL, UID <set> and <set> are supported")
	}
	if byUID {
		// A UID command may tell of expunges first (RFC 3501 7.4.1).
		s.syncView()
	}
	s.f.mu.Lock()
	idx, err := s.matchSet(set, setByUID)
	var nums []string
	msgs := s.view
	for _, i := range idx {
		if msgs[i].expunged {
			continue
		}
		n := uint64(i + 1)
		if byUID {
			n = uint64(msgs[i].uid)
		}
		nums = append(nums, strconv.FormatUint(n, 10))
	}
	s.f.mu.Unlock()
	if err != nil {
		return s.tagged(cmd.tag, "BAD", err.Error())
	}
	s.line("%s", strings.TrimSpace("* SEARCH "+strings.Join(nums, " ")))
	return s.tagged(cmd.tag, "OK", cmd.name+" completed")
}

func (s *fakeConn) store(cmd *fakeCmd) error {
	byUID := cmd.name == "UID STORE"
	if len(cmd.args) < 3 || cmd.args[0].kind != tokAtom || cmd.args[1].kind != tokAtom {
		return s.tagged(cmd.tag, "BAD", "STORE needs a set, an item and flags")
	}
	item := strings.ToUpper(cmd.args[1].s)
	silent := strings.HasSuffix(item, ".SILENT")
	item = strings.TrimSuffix(item, ".SILENT")
	if item != "FLAGS" && item != "+FLAGS" && item != "-FLAGS" {
		return s.tagged(cmd.tag, "BAD", "Unsupported STORE item "+cmd.args[1].s)
	}
	flagToks := cmd.args[2:]
	if len(flagToks) == 1 && flagToks[0].kind == tokList {
		flagToks = flagToks[0].list
	}
	var flags []string
	for _, ft := range flagToks {
		if ft.kind != tokAtom {
			return s.tagged(cmd.tag, "BAD", "bad flag")
		}
		flags = append(flags, ft.s)
	}

	s.f.mu.Lock()
	idx, err := s.matchSet(cmd.args[0].s, byUID)
	var out []fetched
	msgs := s.view
	for _, i := range idx {
		m := msgs[i]
		switch item {
		case "FLAGS":
			m.flags = append([]string(nil), flags...)
		case "+FLAGS":
			for _, fl := range flags {
				if !hasFlag(m.flags, fl) {
					m.flags = append(m.flags, fl)
				}
			}
		case "-FLAGS":
			kept := m.flags[:0:0]
			for _, fl := range m.flags {
				if !hasFlag(flags, fl) {
					kept = append(kept, fl)
				}
			}
			m.flags = kept
		}
		out = append(out, fetched{seq: i + 1, uid: m.uid, flags: append([]string(nil), m.flags...)})
	}
	s.f.mu.Unlock()
	if err != nil {
		return s.tagged(cmd.tag, "BAD", err.Error())
	}
	if !silent {
		for _, fe := range out {
			if byUID {
				s.line("* %d FETCH (UID %d FLAGS (%s))", fe.seq, fe.uid, strings.Join(fe.flags, " "))
			} else {
				s.line("* %d FETCH (FLAGS (%s))", fe.seq, strings.Join(fe.flags, " "))
			}
		}
	}
	if byUID {
		s.syncView()
	}
	return s.tagged(cmd.tag, "OK", cmd.name+" completed")
}

// expunge removes the messages flagged \Deleted from the selected folder.
// The session learns of it, like the others, from syncView.
func (s *fakeConn) expunge() {
	s.f.mu.Lock()
	fd := s.viewOf
	kept := fd.msgs[:0:0]
	for _, m := range fd.msgs {
		if hasFlag(m.flags, `\Deleted`) {
			m.expunged = true
			continue
		}
		kept = append(kept, m)
	}
	fd.msgs = kept
	s.f.mu.Unlock()
}

// syncView tells the session of the messages expunged from its selected
// folder since it last knew (* n EXPUNGE, highest first so that each number
// is still valid when read) and of new ones (* n EXISTS).
func (s *fakeConn) syncView() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	own := false
	for i := len(s.view) - 1; i >= 0; i-- {
		if s.view[i].expunged {
			if !own { // the view shares the folder's array: copied before it changes
				s.view, own = slices.Clone(s.view), true
			}
			s.line("* %d EXPUNGE", i+1)
			s.view = slices.Delete(s.view, i, i+1)
		}
	}
	if s.viewOf != nil && len(s.viewOf.msgs) > len(s.view) {
		s.view = sharedView(s.viewOf.msgs)
		s.line("* %d EXISTS", len(s.view))
	}
}

// sharedView is a session's view of a folder's messages that shares
// their array (nothing changes an array in place once a session sees it:
// an expunge makes a new one, syncView copies before deleting), so that
// sessions of a big folder do not each hold a copy: a memory measurement
// of a client (TestMemoryBounded) would count the server's copies.
func sharedView(msgs []*fakeMsg) []*fakeMsg { return msgs[:len(msgs):len(msgs)] }

// viewDeleted reports whether the selected folder was deleted (Recreate).
func (s *fakeConn) viewDeleted() bool {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.viewOf != nil && s.viewOf.deleted
}

// hasFlag reports whether flags holds flag, ignoring case.
func hasFlag(flags []string, flag string) bool {
	for _, f := range flags {
		if strings.EqualFold(f, flag) {
			return true
		}
	}
	return false
}
