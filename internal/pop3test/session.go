package pop3test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// maxCommandLine bounds a command line (RFC 2449 allows 255 octets; this is
// generous so that long SASL responses fit).
const maxCommandLine = 64 << 10

var (
	errLineTooLong = errors.New("pop3test: command line too long")
	errCut         = errors.New("pop3test: connection cut on purpose")
)

// session is one connection.
type session struct {
	srv  *Server
	raw  net.Conn
	conn net.Conn // raw, or the TLS connection over it after STLS
	r    *bufio.Reader
	w    *bufio.Writer
	tls  bool

	user    string // argument of the last accepted USER
	authed  bool
	msgs    []*stored // snapshot at login, numbered 1..N
	deleted map[uint64]bool
}

func (s *Server) serve(raw net.Conn) {
	ss := &session{
		srv:  s,
		raw:  raw,
		conn: raw,
		r:    bufio.NewReader(raw),
		w:    bufio.NewWriterSize(raw, 64<<10),
	}
	defer func() { ss.conn.Close() }()
	if ss.reply("+OK POP3 ready") != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if err != nil {
			if errors.Is(err, errLineTooLong) {
				_ = ss.reply("-ERR line too long")
			}
			return
		}
		done, err := ss.handle(line)
		if done || err != nil {
			return
		}
	}
}

func (ss *session) readLine() (string, error) {
	var buf []byte
	for {
		chunk, err := ss.r.ReadSlice('\n')
		buf = append(buf, chunk...)
		if len(buf) > maxCommandLine {
			return "", errLineTooLong
		}
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", err
		}
	}
	buf = bytes.TrimSuffix(buf, []byte("\n"))
	buf = bytes.TrimSuffix(buf, []byte("\r"))
	return string(buf), nil
}

func (ss *session) reply(line string) error {
	if _, err := ss.w.WriteString(line + "\r\n"); err != nil {
		return err
	}
	return ss.w.Flush()
}

// replyMulti sends a status line, lines (dot-stuffed) and the terminator.
func (ss *session) replyMulti(status string, lines []string) error {
	ss.w.WriteString(status + "\r\n")
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			ss.w.WriteByte('.')
		}
		ss.w.WriteString(l + "\r\n")
	}
	ss.w.WriteString(".\r\n")
	return ss.w.Flush()
}

// redact returns line as recorded by Commands.
func redact(line, verb string, args []string) string {
	word, _, _ := strings.Cut(line, " ")
	switch verb {
	case "PASS":
		if len(args) > 0 {
			return word + " <redacted>"
		}
	case "AUTH":
		if len(args) > 1 {
			return word + " " + args[0] + " <redacted>"
		}
	}
	return line
}

// handle runs one command line; done reports that the session is over.
func (ss *session) handle(line string) (done bool, err error) {
	word, rest, _ := strings.Cut(line, " ")
	verb := strings.ToUpper(word)
	args := strings.Fields(rest)
	ss.srv.record(redact(line, verb, args))

	switch verb {
	case "CAPA":
		return false, ss.capa()
	case "QUIT":
		if ss.authed {
			ss.srv.commit(ss.deleted)
		}
		_ = ss.reply("+OK bye")
		return true, nil
	}
	if !ss.authed {
		switch verb {
		case "STLS":
			return false, ss.stls()
		case "USER":
			return false, ss.cmdUser(rest)
		case "PASS":
			return false, ss.cmdPass(rest)
		case "AUTH":
			return false, ss.cmdAuth(args)
		case "STAT", "LIST", "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP":
			return false, ss.reply("-ERR not logged in")
		}
		return false, ss.reply("-ERR unknown command")
	}
	switch verb {
	case "STAT":
		n, size := 0, 0
		for _, st := range ss.msgs {
			if !ss.deleted[st.id] {
				n++
				size += len(st.msg.Body)
			}
		}
		return false, ss.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST":
		return false, ss.cmdList(args)
	case "UIDL":
		return false, ss.cmdUidl(args)
	case "RETR":
		return false, ss.cmdRetr(args)
	case "TOP":
		return false, ss.cmdTop(args)
	case "DELE":
		if len(args) != 1 {
			return false, ss.reply("-ERR syntax: DELE msg")
		}
		st, i, e := ss.message(args[0])
		if e != "" {
			return false, ss.reply(e)
		}
		ss.deleted[st.id] = true
		return false, ss.reply(fmt.Sprintf("+OK message %d deleted", i))
	case "RSET":
		clear(ss.deleted)
		return false, ss.reply(fmt.Sprintf("+OK maildrop has %d messages", len(ss.msgs)))
	case "NOOP":
		return false, ss.reply("+OK")
	case "USER", "PASS", "AUTH", "STLS":
		return false, ss.reply("-ERR already logged in")
	}
	return false, ss.reply("-ERR unknown command")
}

func (ss *session) capa() error {
	caps := []string{"USER"}
	if !ss.srv.opts.NoUIDL {
		caps = append(caps, "UIDL")
	}
	if !ss.srv.opts.NoTOP {
		caps = append(caps, "TOP")
	}
	if ss.srv.tlsCfg != nil && !ss.tls && !ss.authed {
		caps = append(caps, "STLS")
	}
	caps = append(caps, "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING")
	return ss.replyMulti("+OK Capability list follows", caps)
}

func (ss *session) stls() error {
	if ss.srv.tlsCfg == nil {
		return ss.reply("-ERR STLS not available")
	}
	if ss.tls {
		return ss.reply("-ERR already using TLS")
	}
	if err := ss.reply("+OK Begin TLS negotiation"); err != nil {
		return err
	}
	tconn := tls.Server(ss.raw, ss.srv.tlsCfg)
	_ = ss.raw.SetDeadline(time.Now().Add(30 * time.Second))
	if err := tconn.Handshake(); err != nil {
		return err
	}
	_ = ss.raw.SetDeadline(time.Time{})
	// Plaintext pipelined after STLS is dropped with the old reader
	// (RFC 2595 §3.1 answer to response injection).
	ss.conn, ss.tls = tconn, true
	ss.r = bufio.NewReader(tconn)
	ss.w = bufio.NewWriterSize(tconn, 64<<10)
	ss.user = ""
	return nil
}

func (ss *session) tlsMissing() bool {
	return ss.srv.opts.RequireTLS && !ss.tls
}

func (ss *session) cmdUser(rest string) error {
	if ss.tlsMissing() {
		return ss.reply("-ERR [AUTH] TLS required")
	}
	if rest == "" {
		return ss.reply("-ERR syntax: USER name")
	}
	ss.user = rest
	return ss.reply("+OK send PASS")
}

func (ss *session) cmdPass(rest string) error {
	if ss.tlsMissing() {
		return ss.reply("-ERR [AUTH] TLS required")
	}
	if ss.user == "" {
		return ss.reply("-ERR USER first")
	}
	user := ss.user
	ss.user = ""
	return ss.login(user, rest)
}

func (ss *session) cmdAuth(args []string) error {
	if len(args) == 0 {
		return ss.replyMulti("+OK SASL mechanisms follow", []string{"PLAIN"})
	}
	if ss.tlsMissing() {
		return ss.reply("-ERR [AUTH] TLS required")
	}
	if !strings.EqualFold(args[0], "PLAIN") {
		return ss.reply("-ERR unsupported SASL mechanism")
	}
	var resp string
	if len(args) > 1 {
		resp = args[1]
	} else {
		if err := ss.reply("+ "); err != nil {
			return err
		}
		line, err := ss.readLine()
		if err != nil {
			return err
		}
		ss.srv.record("<redacted>")
		if line == "*" {
			return ss.reply("-ERR authentication cancelled")
		}
		resp = line
	}
	var dec []byte
	if resp != "=" {
		var err error
		if dec, err = base64.StdEncoding.DecodeString(resp); err != nil {
			return ss.reply("-ERR invalid base64")
		}
	}
	parts := strings.Split(string(dec), "\x00")
	if len(parts) != 3 || (parts[0] != "" && parts[0] != parts[1]) {
		return ss.reply("-ERR [AUTH] Authentication failed")
	}
	return ss.login(parts[1], parts[2])
}

func (ss *session) login(user, pass string) error {
	o := &ss.srv.opts
	if user != o.User || pass != o.Password {
		return ss.reply("-ERR [AUTH] Authentication failed")
	}
	if o.Locked {
		return ss.reply("-ERR [IN-USE] Mailbox is locked by another client")
	}
	ss.authed = true
	ss.msgs = ss.srv.snapshot()
	ss.deleted = map[uint64]bool{}
	size := 0
	for _, st := range ss.msgs {
		size += len(st.msg.Body)
	}
	return ss.reply(fmt.Sprintf("+OK maildrop has %d messages (%d octets)", len(ss.msgs), size))
}

// message resolves a message-number argument; e is the -ERR line to send
// when it does not name a message of this session that is not deleted.
func (ss *session) message(arg string) (st *stored, num int, e string) {
	n, ok := parseNumber(arg)
	if !ok || n < 1 || n > int64(len(ss.msgs)) {
		return nil, 0, "-ERR no such message"
	}
	st = ss.msgs[n-1]
	if ss.deleted[st.id] {
		return nil, 0, fmt.Sprintf("-ERR message %d already deleted", n)
	}
	return st, int(n), ""
}

func (ss *session) cmdList(args []string) error {
	if len(args) > 1 {
		return ss.reply("-ERR syntax: LIST [msg]")
	}
	if len(args) == 1 {
		st, i, e := ss.message(args[0])
		if e != "" {
			return ss.reply(e)
		}
		return ss.reply(fmt.Sprintf("+OK %d %d", i, len(st.msg.Body)))
	}
	var lines []string
	size := 0
	for i, st := range ss.msgs {
		if !ss.deleted[st.id] {
			lines = append(lines, fmt.Sprintf("%d %d", i+1, len(st.msg.Body)))
			size += len(st.msg.Body)
		}
	}
	return ss.replyMulti(fmt.Sprintf("+OK %d messages (%d octets)", len(lines), size), lines)
}

func (ss *session) cmdUidl(args []string) error {
	if ss.srv.opts.NoUIDL {
		return ss.reply("-ERR UIDL not supported")
	}
	if len(args) > 1 {
		return ss.reply("-ERR syntax: UIDL [msg]")
	}
	if len(args) == 1 {
		st, i, e := ss.message(args[0])
		if e != "" {
			return ss.reply(e)
		}
		return ss.reply(fmt.Sprintf("+OK %d %s", i, st.msg.UIDL))
	}
	var lines []string
	for i, st := range ss.msgs {
		if !ss.deleted[st.id] {
			lines = append(lines, fmt.Sprintf("%d %s", i+1, st.msg.UIDL))
		}
	}
	return ss.replyMulti("+OK unique-id listing follows", lines)
}

func (ss *session) cmdRetr(args []string) error {
	if len(args) != 1 {
		return ss.reply("-ERR syntax: RETR msg")
	}
	st, _, e := ss.message(args[0])
	if e != "" {
		return ss.reply(e)
	}
	return ss.send(st, st.msg.Body, true)
}

func (ss *session) cmdTop(args []string) error {
	if ss.srv.opts.NoTOP {
		return ss.reply("-ERR TOP not supported")
	}
	if len(args) != 2 {
		return ss.reply("-ERR syntax: TOP msg n")
	}
	st, _, e := ss.message(args[0])
	if e != "" {
		return ss.reply(e)
	}
	n, ok := parseNumber(args[1])
	if !ok {
		return ss.reply("-ERR syntax: TOP msg n")
	}
	body := top(st.msg.Body, n)
	if ss.srv.opts.TopExtraLine {
		if i := bytes.Index(body, []byte("\r\n\r\n")); i >= 0 {
			body = append(append(bytes.Clone(body[:i+4]), "\r\n"...), body[i+4:]...)
		}
	}
	if ss.srv.opts.TopShort {
		if i := bytes.LastIndexByte(bytes.TrimSuffix(body, []byte("\n")), '\n'); i >= 0 {
			body = body[:i+1]
		}
	}
	return ss.send(st, body, false)
}

// send answers RETR (retr) or TOP with body, applying FailRetr and CutRetr.
func (ss *session) send(st *stored, body []byte, retr bool) error {
	uidl := st.msg.UIDL
	if ss.srv.opts.FailRetr != "" && uidl == ss.srv.opts.FailRetr {
		return ss.reply("-ERR simulated failure")
	}
	if !ss.srv.exists(st.id) {
		return ss.reply("-ERR message was removed by another session")
	}
	payload := wire(body)
	if ss.srv.shouldCut(uidl) {
		ss.w.WriteString("+OK message follows\r\n")
		ss.w.Write(payload[:len(payload)/2])
		ss.w.Flush()
		ss.conn.Close()
		return errCut
	}
	ss.w.WriteString(fmt.Sprintf("+OK %d octets\r\n", len(body)))
	ss.w.Write(payload)
	if err := ss.w.Flush(); err != nil {
		return err
	}
	// Seen before the terminator, so that a client that has read the whole
	// response finds it in Server.Seen.
	if retr {
		ss.srv.markSeen(uidl)
	}
	return ss.reply(".")
}
