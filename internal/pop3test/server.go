package pop3test

import (
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"testing"
)

// Message is a message held by the server.
type Message struct {
	// UIDL is the unique id answered by UIDL (and the key of Options.FailRetr,
	// Options.CutRetr and Server.Seen).
	UIDL string
	// Body is the message as the server holds it, lines ending in CRLF. It is
	// sent as is, dot-stuffed; a final line without a line ending gets CRLF.
	Body []byte
}

// Options configures a Server.
type Options struct {
	// User and Password are the only accepted credentials.
	User, Password string
	// Messages is the initial mailbox.
	Messages []Message
	// NoUIDL makes UIDL answer -ERR; CAPA does not list UIDL.
	NoUIDL bool
	// NoTOP makes TOP answer -ERR; CAPA does not list TOP.
	NoTOP bool
	// FailRetr is the UIDL of a message for which RETR and TOP answer
	// "-ERR simulated failure".
	FailRetr string
	// CutRetr is the UIDL of a message whose RETR or TOP body is cut after
	// half of it (of the dot-stuffed octets): the connection is closed.
	CutRetr string
	// CutOnce limits CutRetr to the first cut: later sessions get the
	// message whole.
	CutOnce bool
	// Locked makes PASS and AUTH with the right credentials answer
	// "-ERR [IN-USE] Mailbox is locked by another client".
	Locked bool
	// STLS offers STLS with a generated self-signed certificate (IP SAN
	// 127.0.0.1, DNS SAN localhost); Server.CAFile holds it in PEM.
	STLS bool
	// RequireTLS makes USER, PASS and AUTH before STLS answer
	// "-ERR [AUTH] TLS required".
	RequireTLS bool
	// TopExtraLine makes TOP send an empty line more after the header
	// than the message has, as GNU Mailutils 3.15 pop3d does; RETR and
	// LIST stay right.
	TopExtraLine bool
	// TopShort makes TOP leave out the last line of the message.
	TopShort bool
}

// Server is a running POP3 server.
type Server struct {
	// Addr is the host:port the server listens on (127.0.0.1).
	Addr string
	// CAFile is a PEM file with the certificate to trust when Options.STLS
	// is set, "" otherwise.
	CAFile string

	opts   Options
	ln     net.Listener
	tlsCfg *tls.Config
	wg     sync.WaitGroup

	mu       sync.Mutex
	msgs     []*stored
	nextID   uint64
	commands []string
	seen     map[string]bool
	sessions int
	cutDone  bool
	conns    map[net.Conn]struct{}
	closed   bool
}

// stored is a message in the mailbox, with an identity that survives renumbering.
type stored struct {
	id  uint64
	msg Message
}

// Start starts a server; t.Cleanup closes it, and with it every open session
// (without committing anything).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pop3test: listen: %v", err)
	}
	s := &Server{
		Addr:  ln.Addr().String(),
		opts:  opts,
		ln:    ln,
		seen:  map[string]bool{},
		conns: map[net.Conn]struct{}{},
	}
	s.opts.Messages = nil
	for _, m := range opts.Messages {
		s.addLocked(m)
	}
	if opts.STLS {
		cfg, caFile, err := newTLS(t.TempDir())
		if err != nil {
			ln.Close()
			t.Fatalf("pop3test: %v", err)
		}
		s.tlsCfg, s.CAFile = cfg, caFile
	}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.sessions++
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *Server) close() {
	s.mu.Lock()
	s.closed = true
	s.ln.Close()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// Commands returns the command lines received so far, in order, over all
// sessions, without line endings. The argument of PASS is replaced by
// "<redacted>", as are the credentials of AUTH.
func (s *Server) Commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.commands...)
}

// Messages returns the current mailbox: the initial messages plus Add, minus
// Remove and committed deletions, in message-number order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, len(s.msgs))
	for i, st := range s.msgs {
		out[i] = Message{UIDL: st.msg.UIDL, Body: bytes.Clone(st.msg.Body)}
	}
	return out
}

// Seen returns the UIDLs of the messages that were RETRieved completely.
func (s *Server) Seen() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.seen))
	for k, v := range s.seen {
		out[k] = v
	}
	return out
}

// Add appends a message to the mailbox (new mail). Sessions that are already
// logged in do not see it.
func (s *Server) Add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.addLocked(m)
}

func (s *Server) addLocked(m Message) {
	s.nextID++
	s.msgs = append(s.msgs, &stored{id: s.nextID, msg: Message{UIDL: m.UIDL, Body: bytes.Clone(m.Body)}})
}

// Remove removes the messages with this UIDL (another client deleted them),
// shifting the numbers of the following messages in the next sessions. A
// logged-in session keeps its numbering, but RETR and TOP of a removed
// message answer -ERR.
func (s *Server) Remove(uidl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.msgs[:0]
	for _, st := range s.msgs {
		if st.msg.UIDL != uidl {
			kept = append(kept, st)
		}
	}
	clear(s.msgs[len(kept):])
	s.msgs = kept
}

// Sessions returns the number of connections accepted so far.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions
}

func (s *Server) record(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.commands = append(s.commands, line)
}

// snapshot returns the mailbox for a session that just logged in.
func (s *Server) snapshot() []*stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*stored(nil), s.msgs...)
}

func (s *Server) exists(id uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.msgs {
		if st.id == id {
			return true
		}
	}
	return false
}

func (s *Server) markSeen(uidl string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seen[uidl] = true
}

// shouldCut reports whether the body of a message with this UIDL must be cut
// now, and consumes the single cut of CutOnce.
func (s *Server) shouldCut(uidl string) bool {
	if s.opts.CutRetr == "" || uidl != s.opts.CutRetr {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opts.CutOnce && s.cutDone {
		return false
	}
	s.cutDone = true
	return true
}

// commit removes the messages deleted by a session that ended with QUIT.
func (s *Server) commit(deleted map[uint64]bool) {
	if len(deleted) == 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.msgs[:0]
	for _, st := range s.msgs {
		if !deleted[st.id] {
			kept = append(kept, st)
		}
	}
	clear(s.msgs[len(kept):])
	s.msgs = kept
}
