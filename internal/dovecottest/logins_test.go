package dovecottest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// rawSession is a line-level IMAP client, to see the server's exact
// answers to logins.
type rawSession struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func rawDial(t *testing.T, addr string) *rawSession {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	s := &rawSession{t: t, conn: conn, r: bufio.NewReader(conn)}
	s.line() // greeting
	return s
}

func (s *rawSession) line() string {
	s.t.Helper()
	l, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Fatalf("read: %v", err)
	}
	return strings.TrimRight(l, "\r\n")
}

func (s *rawSession) send(line string) {
	s.t.Helper()
	if _, err := fmt.Fprintf(s.conn, "%s\r\n", line); err != nil {
		s.t.Fatal(err)
	}
}

// cmd sends a command and returns its tagged answer; continuation
// requests get the responses in conts, in order.
func (s *rawSession) cmd(line string, conts ...string) string {
	s.t.Helper()
	s.n++
	tag := fmt.Sprintf("a%d", s.n)
	s.send(tag + " " + line)
	for {
		l := s.line()
		if strings.HasPrefix(l, "+") {
			if len(conts) == 0 {
				s.t.Fatalf("%s: unexpected continuation %q", line, l)
			}
			s.send(conts[0])
			conts = conts[1:]
			continue
		}
		if strings.HasPrefix(l, tag+" ") {
			return strings.TrimPrefix(l, tag+" ")
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestMasterUsers(t *testing.T) {
	s := Start(t, Options{
		Users:   map[string]string{"alice": "alice-pw", "bob": "bob-pw"},
		Masters: map[string]string{"admin": "admin-pw"},
	})
	tests := []struct {
		name, cmd, want string
	}{
		{"PLAIN with authorization identity", "AUTHENTICATE PLAIN " + b64("alice\x00admin\x00admin-pw"), "OK"},
		{"user*master LOGIN", "LOGIN alice*admin admin-pw", "OK"},
		{"wrong master password", "AUTHENTICATE PLAIN " + b64("alice\x00admin\x00nope"), "NO"},
		{"ordinary user as master", "AUTHENTICATE PLAIN " + b64("alice\x00bob\x00bob-pw"), "NO"},
		{"master as itself", "LOGIN admin admin-pw", "NO"},
		{"ordinary login", "LOGIN bob bob-pw", "OK"},
	}
	for _, tt := range tests {
		got := rawDial(t, s.IMAPAddr).cmd(tt.cmd)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %s", tt.name, got, tt.want)
		}
	}
}

func TestOAuth2(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.FormValue("token")
		mu.Lock()
		seen = append(seen, tok)
		mu.Unlock()
		if user, ok := strings.CutPrefix(tok, "good-"); ok {
			json.NewEncoder(w).Encode(map[string]any{"active": true, "username": user})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": false})
	}))
	t.Cleanup(srv.Close)
	s := Start(t, Options{Users: map[string]string{"alice": "alice-pw"}, OAuth2IntrospectionURL: srv.URL + "/introspect"})
	tests := []struct {
		name, cmd string
		conts     []string
		want      string
	}{
		{"XOAUTH2", "AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer good-alice\x01\x01"), nil, "OK"},
		{"OAUTHBEARER", "AUTHENTICATE OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer good-alice\x01\x01"), nil, "OK"},
		{"XOAUTH2 refused", "AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer bad\x01\x01"), []string{""}, "NO"},
		// go-imap cannot send an empty line as a response (it sends "=",
		// which Dovecot answers with BAD): imapstore answers ^A.
		{"XOAUTH2 refused, ^A answer", "AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer bad\x01\x01"), []string{b64("\x01")}, "NO"},
		{"OAUTHBEARER refused", "AUTHENTICATE OAUTHBEARER " + b64("n,a=alice,\x01auth=Bearer bad\x01\x01"), []string{b64("\x01")}, "NO"},
		{"token of another user", "AUTHENTICATE XOAUTH2 " + b64("user=alice\x01auth=Bearer good-bob\x01\x01"), []string{""}, "NO"},
		{"password still works", "LOGIN alice alice-pw", nil, "OK"},
	}
	for _, tt := range tests {
		got := rawDial(t, s.IMAPAddr).cmd(tt.cmd, tt.conts...)
		if !strings.HasPrefix(got, tt.want) {
			t.Errorf("%s: %q, want %s", tt.name, got, tt.want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) == 0 {
		t.Error("the introspection endpoint was never asked")
	}
}
