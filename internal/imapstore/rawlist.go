package imapstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// rawConn is a minimal IMAP client of our own for the one command go-imap
// cannot survive on some servers: LIST, when a reply holds a mailbox name
// that is not valid modified UTF-7 (go-imap then fails the whole command
// and the connection). It logs in like Store does and reads responses
// with a tolerant parser.
type rawConn struct {
	cfg  mailconn.Config
	wd   *mailconn.WatchdogConn
	conn net.Conn
	r    *bufio.Reader
	tag  int
}

// rawLine is one response: its text with each literal left as "{n}", and
// the literals' bytes in order.
type rawLine struct {
	text []byte
	lits [][]byte
}

const maxRawLiteral = 1 << 20

func dialRaw(ctx context.Context, cfg mailconn.Config) (*rawConn, error) {
	wd, conn, err := mailconn.Dial(ctx, &cfg, "imap")
	if err != nil {
		return nil, err
	}
	rc := &rawConn{cfg: cfg, wd: wd, conn: conn, r: bufio.NewReader(conn)}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	wd.Begin()
	defer wd.End()
	if err := rc.login(ctx); err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	return rc, nil
}

func (rc *rawConn) login(ctx context.Context) error {
	greet, err := rc.readLine()
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if !bytes.HasPrefix(greet.text, []byte("* OK")) && !bytes.HasPrefix(greet.text, []byte("* PREAUTH")) {
		return fmt.Errorf("greeting: %q", greet.text)
	}
	if rc.cfg.Security == mailconn.StartTLS {
		if _, err := rc.command("STARTTLS", nil); err != nil {
			return fmt.Errorf("%w: %w", mailconn.ErrNoTLS, err)
		}
		tcfg, err := rc.cfg.TLSConfig()
		if err != nil {
			return err
		}
		tc := tls.Client(rc.conn, tcfg)
		if err := tc.Handshake(); err != nil {
			return rc.cfg.ClassifyTLS("imap", err)
		}
		rc.conn, rc.r = tc, bufio.NewReader(tc)
	}
	if bytes.HasPrefix(greet.text, []byte("* PREAUTH")) {
		return nil
	}
	caps, err := rc.command("CAPABILITY", nil)
	if err != nil {
		return err
	}
	offer := auth.Offer{Listed: true}
	for _, l := range caps {
		f := strings.Fields(strings.ToUpper(string(l.text)))
		if len(f) < 2 || f[0] != "*" || f[1] != "CAPABILITY" {
			continue
		}
		for _, c := range f[2:] {
			if c == "LOGINDISABLED" {
				offer.LoginDisabled = true
			}
			if m, ok := strings.CutPrefix(c, "AUTH="); ok {
				offer.SASL = append(offer.SASL, m)
			}
		}
	}
	// The same login as Store's (password, admin or OAuth2), over our wire.
	return rc.cfg.Login().Login(ctx, rc.cfg.Addr, offer, func(at auth.Attempt) error {
		var err error
		if at.SASL != nil {
			err = rc.authenticate(at.SASL)
		} else {
			_, err = rc.command("LOGIN "+quoteString(at.User)+" "+quoteString(at.Password), nil)
		}
		var ne *rawNo
		if errors.As(err, &ne) {
			return &auth.RefusedError{Text: ne.text}
		}
		return err
	})
}

// authenticate runs a SASL exchange (RFC 3501 AUTHENTICATE, with the
// initial response of RFC 4959 when the client has one).
func (rc *rawConn) authenticate(c sasl.Client) error {
	mech, ir, err := c.Start()
	if err != nil {
		return err
	}
	cmd := "AUTHENTICATE " + mech
	if ir != nil {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		cmd += " " + enc
	}
	_, err = rc.commandWith(cmd, func(challenge []byte) (string, error) {
		ch, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(challenge)))
		if err != nil {
			return "*", nil
		}
		resp, err := c.Next(ch)
		if err != nil {
			return "*", nil
		}
		if len(resp) == 0 {
			resp = []byte{0x01} // see noEmptyResponse
		}
		return base64.StdEncoding.EncodeToString(resp), nil
	})
	return err
}

// rawNo is a NO or BAD answer.
type rawNo struct{ text string }

func (e *rawNo) Error() string { return "server answered " + e.text }

// command sends one command and returns the untagged responses before its
// tagged OK. A continuation request is answered with the next of conts.
func (rc *rawConn) command(cmd string, conts []string) ([]rawLine, error) {
	return rc.commandWith(cmd, func([]byte) (string, error) {
		if len(conts) == 0 {
			return "*", nil
		}
		c := conts[0]
		conts = conts[1:]
		return c, nil
	})
}

// commandWith is command with each continuation request answered by
// cont, given the request's text after "+ ".
func (rc *rawConn) commandWith(cmd string, cont func(challenge []byte) (string, error)) ([]rawLine, error) {
	rc.tag++
	tag := "r" + strconv.Itoa(rc.tag)
	if _, err := io.WriteString(rc.conn, tag+" "+cmd+"\r\n"); err != nil {
		return nil, err
	}
	var out []rawLine
	for {
		l, err := rc.readLine()
		if err != nil {
			return nil, err
		}
		switch {
		case bytes.HasPrefix(l.text, []byte("+")):
			resp, err := cont(bytes.TrimPrefix(bytes.TrimPrefix(l.text, []byte("+")), []byte(" ")))
			if err != nil {
				return nil, err
			}
			if _, err := io.WriteString(rc.conn, resp+"\r\n"); err != nil {
				return nil, err
			}
		case bytes.HasPrefix(l.text, []byte(tag+" ")):
			status := string(l.text[len(tag)+1:])
			if strings.HasPrefix(strings.ToUpper(status), "OK") {
				return out, nil
			}
			return out, &rawNo{text: status}
		default:
			out = append(out, l)
		}
	}
}

// readLine reads one response line with its literals.
func (rc *rawConn) readLine() (rawLine, error) {
	var l rawLine
	for {
		line, err := rc.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			// A very long line: keep reading it.
			l.text = append(l.text, line...)
			continue
		}
		if err != nil {
			return l, err
		}
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte("\n")), []byte("\r"))
		l.text = append(l.text, line...)
		n, ok := trailingLiteral(line)
		if !ok {
			return l, nil
		}
		if n > maxRawLiteral {
			return l, fmt.Errorf("literal of %d bytes in a response", n)
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(rc.r, lit); err != nil {
			return l, err
		}
		l.lits = append(l.lits, lit)
	}
}

// trailingLiteral reports whether line ends with a literal announcement
// {n} (or {n+}).
func trailingLiteral(line []byte) (int, bool) {
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	i := bytes.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(string(line[i+1:len(line)-1]), "+"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

func (rc *rawConn) close() {
	rc.wd.Begin()
	rc.command("LOGOUT", nil)
	rc.wd.End()
	rc.conn.Close()
}

// quoteString quotes s as an IMAP quoted string.
func quoteString(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// rawListEntry is one LIST response as the server sent it.
type rawListEntry struct {
	attrs []string
	delim string // "" for NIL
	name  []byte // the mailbox name's bytes, unquoted, not decoded
}

// rawList runs LIST "" "*" (RETURN (SPECIAL-USE) when specialUse) on a
// connection of its own.
func rawList(ctx context.Context, cfg mailconn.Config, specialUse bool) ([]rawListEntry, error) {
	rc, err := dialRaw(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer rc.close()
	stop := context.AfterFunc(ctx, func() { rc.conn.Close() })
	defer stop()
	rc.wd.Begin()
	defer rc.wd.End()
	cmd := `LIST "" "*"`
	if specialUse {
		cmd += " RETURN (SPECIAL-USE)"
	}
	lines, err := rc.command(cmd, nil)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	var out []rawListEntry
	for _, l := range lines {
		e, ok := parseRawList(l)
		if ok {
			out = append(out, e)
			continue
		}
		if bytes.HasPrefix(bytes.ToUpper(l.text), []byte("* LIST ")) {
			// Which folder it is cannot be told: going on would record
			// it as deleted on the server.
			return nil, fmt.Errorf("cannot read the server's LIST line %q", escapeMailbox(l.text))
		}
	}
	return out, nil
}

// parseRawList parses "* LIST (attrs) delim name" tolerantly: the name is
// a quoted string, a literal, or else everything after the delimiter (a
// server that does not quote a name with spaces).
func parseRawList(l rawLine) (rawListEntry, bool) {
	var e rawListEntry
	t := l.text
	up := bytes.ToUpper(t)
	if !bytes.HasPrefix(up, []byte("* LIST ")) {
		return e, false
	}
	t = t[len("* LIST "):]
	if len(t) == 0 || t[0] != '(' {
		return e, false
	}
	end := bytes.IndexByte(t, ')')
	if end < 0 {
		return e, false
	}
	e.attrs = append(e.attrs, strings.Fields(string(t[1:end]))...)
	t = bytes.TrimLeft(t[end+1:], " ")
	switch {
	case bytes.HasPrefix(bytes.ToUpper(t), []byte("NIL")):
		t = t[3:]
	case len(t) > 0 && t[0] == '"':
		v, rest, ok := unquote(t)
		if !ok {
			return e, false
		}
		e.delim, t = string(v), rest
	default:
		return e, false
	}
	t = bytes.TrimLeft(t, " ")
	switch {
	case len(t) > 0 && t[0] == '"':
		v, _, ok := unquote(t)
		if !ok {
			return e, false
		}
		e.name = v
	case len(t) > 0 && t[0] == '{':
		if len(l.lits) == 0 {
			return e, false
		}
		e.name = l.lits[0]
	default:
		e.name = bytes.TrimRight(t, " ")
	}
	return e, len(e.name) > 0
}

// unquote reads a quoted string at the start of t.
func unquote(t []byte) (val, rest []byte, ok bool) {
	var v []byte
	for i := 1; i < len(t); i++ {
		switch t[i] {
		case '\\':
			if i+1 < len(t) {
				i++
				v = append(v, t[i])
			}
		case '"':
			return v, t[i+1:], true
		default:
			v = append(v, t[i])
		}
	}
	return nil, nil, false
}
