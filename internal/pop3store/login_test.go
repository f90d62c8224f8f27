package pop3store

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// scripted is a POP3 server that answers USER/PASS and AUTH as Exchange
// Online does, and records the SASL responses it received.
type scripted struct {
	pass   string // answer to PASS
	wantIR string // accepted AUTH XOAUTH2 response (decoded)
	mu     sync.Mutex
	lines  []string
}

func (s *scripted) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return ln.Addr().String()
}

func (s *scripted) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	w := func(l string) { conn.Write([]byte(l + "\r\n")) }
	read := func() (string, bool) {
		l, err := r.ReadString('\n')
		l = strings.TrimRight(l, "\r\n")
		s.mu.Lock()
		s.lines = append(s.lines, l)
		s.mu.Unlock()
		return l, err == nil
	}
	w("+OK The Microsoft Exchange POP3 service is ready.")
	for {
		line, ok := read()
		if !ok {
			return
		}
		cmd, args, _ := strings.Cut(line, " ")
		switch strings.ToUpper(cmd) {
		case "CAPA":
			for _, l := range []string{"+OK", "TOP", "UIDL", "SASL PLAIN XOAUTH2", "USER", "."} {
				w(l)
			}
		case "USER":
			w("+OK")
		case "PASS":
			w(s.pass)
		case "AUTH":
			_, ir, hasIR := strings.Cut(args, " ")
			if !hasIR {
				w("+ ")
				ir, _ = read()
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			if string(dec) == s.wantIR {
				w("+OK User successfully authenticated.")
				continue
			}
			// As Gmail does: an error report, then -ERR after the
			// client's (empty) answer.
			w("+ " + base64.StdEncoding.EncodeToString([]byte(`{"status":"400","schemes":"Bearer","scope":"https://outlook.office.com/POP.AccessAsUser.All"}`)))
			if l, _ := read(); l != "" {
				w("-ERR the XOAUTH2 error report wants an empty answer")
				continue
			}
			w("-ERR Authentication failure: unknown user name or bad password.")
		case "QUIT":
			w("+OK Microsoft Exchange Server POP3 server signing off.")
			return
		default:
			w("-ERR Command is not valid in this state.")
		}
	}
}

func TestPasswordRefusalHint(t *testing.T) {
	srv := &scripted{pass: "-ERR Logon failure: unknown user name or bad password."}
	addr := srv.start(t)
	_, err := Dial(context.Background(), mailconn.Config{Addr: addr, Security: mailconn.Plaintext, User: "alice@contoso.com", Password: "hunter2-secret", Timeout: 5 * time.Second}, nil)
	if !errors.Is(err, mailconn.ErrAuth) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "Microsoft 365 and Outlook.com refuse password logins") {
		t.Fatalf("Dial error = %v, want ErrAuth with the Microsoft hint and no password", err)
	}
}

// TestXOAuth2 sends a long token after the server's empty challenge (an
// AUTH line is at most 255 octets) and a short one on the AUTH line; a
// refused token gets the empty answer XOAUTH2 wants and one more try.
func TestXOAuth2(t *testing.T) {
	for _, tok := range []string{"short.token", "eyJ0eXAi." + strings.Repeat("A", 1500)} {
		srv := &scripted{wantIR: "user=alice@contoso.com\x01auth=Bearer " + tok + "\x01\x01"}
		addr := srv.start(t)
		a, _ := auth.New(auth.Config{User: "alice@contoso.com", Tokens: auth.CommandTokens{Command: "echo " + tok}})
		s, err := Dial(context.Background(), mailconn.Config{Addr: addr, Security: mailconn.Plaintext, User: "alice@contoso.com", Auth: a, Timeout: 5 * time.Second}, nil)
		if err != nil {
			t.Fatalf("token of %d bytes: Dial = %v", len(tok), err)
		}
		s.Close()
		srv.mu.Lock()
		authLine := srv.lines[1]
		srv.mu.Unlock()
		if len(authLine) > 255 || (len(tok) < 100) != strings.HasPrefix(authLine, "AUTH XOAUTH2 ") {
			t.Errorf("token of %d bytes: AUTH line %.40q… (%d octets)", len(tok), authLine, len(authLine))
		}
	}

	srv := &scripted{wantIR: "never"}
	addr := srv.start(t)
	a, _ := auth.New(auth.Config{User: "alice@contoso.com", Tokens: auth.CommandTokens{Command: "echo expired.token"}})
	_, err := Dial(context.Background(), mailconn.Config{Addr: addr, Security: mailconn.Plaintext, User: "alice@contoso.com", Auth: a, Timeout: 5 * time.Second}, nil)
	if !errors.Is(err, mailconn.ErrAuth) || !strings.Contains(err.Error(), "unknown user name or bad password. (status 400, scope https://outlook.office.com/POP.AccessAsUser.All); the server refused the OAuth2 token (XOAUTH2)") {
		t.Fatalf("refused token: Dial error = %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if n := strings.Count(strings.Join(srv.lines, "\n"), "AUTH XOAUTH2"); n != 2 {
		t.Errorf("AUTH XOAUTH2 sent %d times, want 2 (the token asked again once)", n)
	}
}
