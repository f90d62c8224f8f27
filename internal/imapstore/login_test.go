package imapstore

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

// scripted is an IMAP server that answers LOGIN and AUTHENTICATE as a
// provider does, and records what it received.
type scripted struct {
	caps    string
	login   string // tagged answer to LOGIN, after the tag
	wantIR  string // AUTHENTICATE's expected initial response (decoded)
	authOK  bool   // accept AUTHENTICATE when the response matches
	mu      sync.Mutex
	got     []string
	authIRs []string
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
	w("* OK The Microsoft Exchange IMAP4 service is ready.")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		s.mu.Lock()
		s.got = append(s.got, line)
		s.mu.Unlock()
		tag, rest, _ := strings.Cut(line, " ")
		cmd, args, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(cmd) {
		case "CAPABILITY":
			w("* CAPABILITY " + s.caps)
			w(tag + " OK CAPABILITY completed.")
		case "LOGIN":
			w(tag + " " + s.login)
		case "AUTHENTICATE":
			_, ir, hasIR := strings.Cut(args, " ")
			if !hasIR {
				w("+ ")
				ir, _ = r.ReadString('\n')
				ir = strings.TrimRight(ir, "\r\n")
			}
			dec, _ := base64.StdEncoding.DecodeString(ir)
			s.mu.Lock()
			s.authIRs = append(s.authIRs, string(dec))
			s.mu.Unlock()
			if s.authOK && string(dec) == s.wantIR {
				w(tag + " OK AUTHENTICATE completed.")
			} else {
				w(tag + " NO AUTHENTICATE failed.")
			}
		case "LOGOUT":
			w("* BYE")
			w(tag + " OK LOGOUT completed.")
			return
		default:
			w(tag + " BAD Command Error. 10")
		}
	}
}

// TestPasswordRefusalHints: a provider's refusal that means "no
// passwords here" gets an explanation; the password never shows.
func TestPasswordRefusalHints(t *testing.T) {
	tests := []struct {
		name, login, want string
	}{
		{"Exchange Online", "NO LOGIN failed.", "Microsoft 365 and Outlook.com refuse password logins"},
		{"Gmail", "NO [ALERT] Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)", "create an app password"},
		{"wrong password elsewhere", "NO [AUTHENTICATIONFAILED] Authentication failed.", ""},
	}
	for _, tt := range tests {
		srv := &scripted{caps: "IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR", login: tt.login}
		addr := srv.start(t)
		_, err := Dial(context.Background(), mailconn.Config{Addr: addr, Security: mailconn.Plaintext, User: "alice@contoso.com", Password: "hunter2-secret", Timeout: 5 * time.Second})
		if !errors.Is(err, mailconn.ErrAuth) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("%s: Dial error = %v, want ErrAuth without the password", tt.name, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "authentication failed for alice@contoso.com on "+addr+": ") || (tt.want == "") != !strings.Contains(msg, "; ") || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: Dial error = %q, want a hint %q", tt.name, msg, tt.want)
		}
	}
}

// TestXOAuth2Exchange logs in as Exchange Online expects, with and
// without SASL-IR.
func TestXOAuth2Exchange(t *testing.T) {
	for _, caps := range []string{"IMAP4rev1 AUTH=PLAIN AUTH=XOAUTH2 SASL-IR", "IMAP4rev1 AUTH=XOAUTH2"} {
		srv := &scripted{caps: caps, authOK: true, wantIR: "user=alice@contoso.com\x01auth=Bearer eyJ0eXAi.token\x01\x01"}
		addr := srv.start(t)
		a, err := auth.New(auth.Config{User: "alice@contoso.com", Tokens: auth.CommandTokens{Command: "echo eyJ0eXAi.token"}})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Dial(context.Background(), mailconn.Config{Addr: addr, Security: mailconn.Plaintext, User: "alice@contoso.com", Auth: a, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatalf("%s: Dial = %v (server got %q)", caps, err, srv.authIRs)
		}
		s.Close()
	}
}
