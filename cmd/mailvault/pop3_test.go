package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/migadu/go-pop3/pop3mem"
	"github.com/migadu/go-pop3/pop3server"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/pop3test"
)

func popMessages(n int) []pop3test.Message {
	var out []pop3test.Message
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("Subject: pop %d\r\nMessage-ID: <p%d@x>\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\n\r\n.leading dot\r\nFrom here\r\n%s\r\n", i, i, strings.Repeat("y", i*50))
		out = append(out, pop3test.Message{UIDL: fmt.Sprintf("uidl-%d", i), Body: []byte(body)})
	}
	return out
}

// TestPOP3Faults runs POP3 backups against a scripted server that
// misbehaves: each fault gets a clear outcome, and the next run completes
// the archive with each message once.
func TestPOP3Faults(t *testing.T) {
	tests := []struct {
		name     string
		opts     pop3test.Options
		code     int
		want     string // in stderr
		nextCode int
		extra    []string
	}{
		{"clean", pop3test.Options{}, exitOK, "", exitOK, nil},
		{"-ERR on one message", pop3test.Options{FailRetr: "uidl-3"}, exitPartial, "1 messages listed by the server were not delivered", exitPartial, nil},
		{"cut in the middle of a message, once", pop3test.Options{CutRetr: "uidl-4", CutOnce: true}, exitOK, "", exitOK, nil},
		{"cut every time", pop3test.Options{CutRetr: "uidl-4"}, exitPartial, "server closed the connection", exitPartial, nil},
		{"no UIDL", pop3test.Options{NoUIDL: true}, exitOK, "server has no UIDL", exitOK, nil},
		{"no TOP, RETR allowed", pop3test.Options{NoTOP: true}, exitOK, "using RETR", exitOK, []string{"--pop3-allow-retr"}},
		{"wrong password", pop3test.Options{Password: "other"}, exitAuth, "authentication failed", exitAuth, nil},
		{"mailbox locked", pop3test.Options{Locked: true}, exitInUse, "mailbox in use by another client, retry later", exitInUse, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.User = "alice"
			if o.Password == "" {
				o.Password = "pw"
			}
			o.Messages = popMessages(6)
			srv := pop3test.Start(t, o)
			vault := filepath.Join(t.TempDir(), "vault")
			args := append([]string{"backup", "pop3://alice@" + srv.Addr, vault, "--insecure-plaintext", "-v"}, tt.extra...)
			code, out, errs := runCLI(t, pwEnv, args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want %d and %q", code, errs, out, tt.code, tt.want)
			}
			for _, c := range srv.Commands() {
				if strings.HasPrefix(c, "DELE") {
					t.Errorf("a backup without --delete-after sent %q", c)
				}
			}
			if !tt.opts.NoTOP && len(srv.Seen()) > 0 {
				t.Errorf("messages marked read by RETR: %v", srv.Seen())
			}
			if code == exitAuth || code == exitInUse {
				return
			}
			// The next run: nothing twice, and what was missing when the
			// fault is gone.
			code, out, errs = runCLI(t, pwEnv, args...)
			if code != tt.nextCode {
				t.Fatalf("second run: exit %d %s %s", code, out, errs)
			}
			present := archivetest.Present(t, vault)["INBOX"]
			want := 6
			if tt.nextCode == exitPartial {
				want = 5
			}
			if present != want {
				t.Errorf("archive holds %d messages, want %d", present, want)
			}
			// Every archived message is exactly what the server holds.
			a, st := archivetest.Latest(t, vault)
			held := map[string]bool{}
			for _, m := range o.Messages {
				held[string(m.Body)] = true
			}
			for _, m := range st.Folders["INBOX"].Present() {
				if !held[string(archivetest.Bytes(t, a, st, m))] {
					t.Errorf("archived message %s differs from the server's", m.Key)
				}
			}
			if code, out, _ := runCLI(t, pwEnv, "verify", vault); code != 0 {
				t.Errorf("verify: %s", out)
			}
			if tt.nextCode == exitPartial {
				// Once the server behaves, the next run fetches what was missing.
				clean := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw", Messages: popMessages(6)})
				code, out, errs := runCLI(t, pwEnv, "backup", "pop3://alice@"+clean.Addr, vault, "--insecure-plaintext")
				if code != exitOK || !strings.Contains(out, "1 messages added") || archivetest.Present(t, vault)["INBOX"] != 6 {
					t.Errorf("run after the fault is gone: exit %d %s %s; archive holds %d", code, out, errs, archivetest.Present(t, vault)["INBOX"])
				}
			}
		})
	}
}

// TestPOP3MigaduServer backs up from go-pop3's own in-process server.
func TestPOP3MigaduServer(t *testing.T) {
	store := pop3mem.New()
	store.AddUser("alice", "pw")
	for i, m := range popMessages(5) {
		if err := store.AddMessage("alice", m.UIDL, m.Body); err != nil {
			t.Fatal(i, err)
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := pop3server.New(pop3server.Options{NewSession: store.NewSession, InsecureAuth: true, Logger: slog.New(slog.DiscardHandler)})
	go srv.Serve(ln)
	t.Cleanup(func() { ln.Close() })
	vault := filepath.Join(t.TempDir(), "vault")
	args := []string{"backup", "pop3://alice@" + ln.Addr().String(), vault, "--insecure-plaintext"}
	if code, out, errs := runCLI(t, pwEnv, args...); code != 0 || !strings.Contains(out, "5 messages added") {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	if code, out, _ := runCLI(t, pwEnv, args...); code != 0 || !strings.Contains(out, "0 messages added") {
		t.Errorf("second run: %d %s", code, out)
	}
	a, st := archivetest.Latest(t, vault)
	for i, m := range st.Folders["INBOX"].Present() {
		if got, want := string(archivetest.Bytes(t, a, st, m)), string(popMessages(5)[i].Body); got != want {
			t.Errorf("message %d: archived %q, want %q", i, got, want)
		}
	}
}

func TestDetect(t *testing.T) {
	unreachable := func(context.Context) error { return fmt.Errorf("%w: refused", mailconn.ErrUnreachable) }
	ok := func(context.Context) error { return nil }
	auth := func(context.Context) error { return fmt.Errorf("%w: bad", mailconn.ErrAuth) }
	tests := []struct {
		name  string
		cands []candidate
		want  string
		err   error
	}{
		{"imaps first", []candidate{{"imaps", ok}, {"pop3s", ok}}, "imaps", nil},
		{"falls back to pop3", []candidate{{"imaps", unreachable}, {"imap", unreachable}, {"pop3s", ok}}, "pop3s", nil},
		{"auth stops", []candidate{{"imaps", auth}, {"pop3s", ok}}, "", mailconn.ErrAuth},
		{"nothing answers", []candidate{{"imaps", unreachable}, {"pop3", unreachable}}, "", mailconn.ErrUnreachable},
	}
	for _, tt := range tests {
		got, _, err := tryCandidates(context.Background(), tt.cands)
		if got != tt.want || (tt.err == nil) != (err == nil) || tt.err != nil && !errors.Is(err, tt.err) {
			t.Errorf("%s: tryCandidates = %q, %v; want %q, %v", tt.name, got, err, tt.want, tt.err)
		}
	}
}

// TestPOP3TopDisagrees: a server whose TOP answer differs from LIST's
// size (GNU Mailutils pop3d adds an empty line after the header; a short
// TOP loses the end) or that has no TOP. RETR, which marks messages read,
// is used only with --pop3-allow-retr; without it a longer TOP answer is
// archived with a warning naming the defect, and a shorter one or a
// server without TOP fails (exit 3) with a hint.
func TestPOP3TopDisagrees(t *testing.T) {
	tests := []struct {
		name      string
		opts      pop3test.Options
		allow     bool
		code      int
		want      string // in stderr
		archived  int
		exactRetr bool // archived bytes = the messages (RETR's)
	}{
		{"extra line", pop3test.Options{TopExtraLine: true}, false, exitOK, "GNU Mailutils pop3d adds an empty line", 6, false},
		{"extra line, RETR allowed", pop3test.Options{TopExtraLine: true}, true, exitOK, "using RETR from now on", 6, true},
		{"short TOP", pop3test.Options{TopShort: true}, false, exitPartial, "--pop3-allow-retr fetches such messages with RETR", 0, false},
		{"short TOP, RETR allowed", pop3test.Options{TopShort: true}, true, exitOK, "using RETR", 6, true},
		{"no TOP", pop3test.Options{NoTOP: true}, false, exitPartial, "allow it with --pop3-allow-retr", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.User, o.Password, o.Messages = "alice", "pw", popMessages(6)
			srv := pop3test.Start(t, o)
			vault := filepath.Join(t.TempDir(), "vault")
			args := []string{"backup", "pop3://alice@" + srv.Addr, vault, "--insecure-plaintext"}
			if tt.allow {
				args = append(args, "--pop3-allow-retr")
			}
			code, out, errs := runCLI(t, pwEnv, args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q (stdout %q); want %d and %q", code, errs, out, tt.code, tt.want)
			}
			if !tt.allow && len(srv.Seen()) > 0 {
				t.Errorf("RETR used without --pop3-allow-retr: %v marked read", srv.Seen())
			}
			if got := archivetest.Present(t, vault)["INBOX"]; got != tt.archived {
				t.Fatalf("archive holds %d messages, want %d", got, tt.archived)
			}
			a, st := archivetest.Latest(t, vault)
			held := map[string]bool{}
			for _, m := range o.Messages {
				held[string(m.Body)] = true
			}
			for _, m := range st.Folders["INBOX"].Present() {
				if got := held[string(archivetest.Bytes(t, a, st, m))]; got != tt.exactRetr {
					t.Errorf("message %s: archived bytes = RETR's is %v, want %v", m.Key, got, tt.exactRetr)
				}
			}
			if tt.archived > 0 && !tt.exactRetr && !strings.Contains(errs, "6 messages were archived as the server's TOP returned them") {
				t.Errorf("no count of the messages archived from TOP: %s", errs)
			}
		})
	}
}

// TestDetectPOP3Port: a bare USER@HOST:PORT whose port is a POP3 server.
// Detection recognises the POP3 greeting: it sends no IMAP command
// (STARTTLS) to it, and its "using pop3://" line carries no IMAP parse
// error.
func TestDetectPOP3Port(t *testing.T) {
	srv := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw", Messages: popMessages(3), STLS: true})
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", "alice@"+srv.Addr, vault, "--ca-file", srv.CAFile)
	if code != exitOK || !strings.Contains(out, "3 messages added") {
		t.Fatalf("backup: exit %d %s %s", code, out, errs)
	}
	var using string
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "using ") {
			using = l
		}
	}
	if !strings.Contains(using, "using pop3://alice@"+srv.Addr) {
		t.Fatalf("no \"using pop3://\" line: %s", errs)
	}
	for _, bad := range []string{"in response", "imapwire", "greeting"} {
		if strings.Contains(using, bad) {
			t.Errorf("the \"using\" line shows an IMAP parse error (%q): %s", bad, using)
		}
	}
	if !strings.Contains(using, "greets as a POP3 server") {
		t.Errorf("the \"using\" line does not say why IMAP was skipped: %s", using)
	}
	for _, c := range srv.Commands() {
		if strings.Contains(strings.ToUpper(c), "STARTTLS") || strings.Contains(strings.ToUpper(c), "CAPABILITY") {
			t.Errorf("an IMAP command was sent to the POP3 port: %q", c)
		}
	}
}

func TestGreetingKind(t *testing.T) {
	for line, want := range map[string]string{
		"+OK Dovecot ready.\r\n":                 "pop3",
		"+OK\r\n":                                "pop3",
		"* OK [CAPABILITY IMAP4rev1] ready\r\n":  "imap",
		"* PREAUTH welcome\r\n":                  "imap",
		"* BYE too many connections\r\n":         "imap",
		"\x16\x03\x01":                           "",
		"":                                       "",
		"220 mail.example.com ESMTP Postfix\r\n": "",
	} {
		if got := greetingKind(line); got != want {
			t.Errorf("greetingKind(%q) = %q, want %q", line, got, want)
		}
	}
}
