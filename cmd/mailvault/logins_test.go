package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/dovecottest"
)

// aliceMail is what seedAlice stores: folder -> message count.
var aliceMail = map[string]int{"INBOX": 3, "Work": 2, "Work/2026": 1}

// seedAlice fills alice's mailbox over IMAP with her own password (the
// test's setup; the backups below never use it).
func seedAlice(t *testing.T, s *dovecottest.Server, user, pw string) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Work", "Work/2026"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for folder, n := range aliceMail {
		for i := range n {
			msg := fmt.Sprintf("From: bob@example.com\r\nTo: %s@example.com\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@example.com>\r\n\r\nbody %d\r\n", user, folder, i, strings.ReplaceAll(folder, "/", "."), i, i)
			cmd := c.Append(folder, int64(len(msg)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}})
			cmd.Write([]byte(msg))
			cmd.Close()
			if _, err := cmd.Wait(); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// appendTo adds one message to each folder.
func appendTo(t *testing.T, s *dovecottest.Server, user, pw string, folders ...string) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range folders {
		msg := fmt.Sprintf("From: carol@example.com\r\nSubject: later in %s\r\nMessage-ID: <later-%s@example.com>\r\n\r\nlater\r\n", f, strings.ReplaceAll(f, "/", "."))
		cmd := c.Append(f, int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// appendN adds n distinct messages to folder.
func appendN(t *testing.T, s *dovecottest.Server, user, pw, folder string, n int, tag string) {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		msg := fmt.Sprintf("From: carol@example.com\r\nSubject: %s %d\r\nMessage-ID: <%s-%d@example.com>\r\n\r\n%s %d\r\n", tag, i, tag, i, tag, i)
		cmd := c.Append(folder, int64(len(msg)), nil)
		cmd.Write([]byte(msg))
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
}

// checkArchive checks that vault holds want (folder -> count).
func checkArchive(t *testing.T, vault string, want map[string]int) {
	t.Helper()
	got := archivetest.Present(t, vault)
	for f, n := range want {
		if got[f] != n {
			t.Errorf("archive: folder %q holds %d messages, want %d (all: %v)", f, got[f], n, got)
		}
	}
}

// noSecrets fails if any secret appears in the outputs or in a file
// under dir.
func noSecrets(t *testing.T, dir string, outputs []string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec == "" {
			continue
		}
		for _, o := range outputs {
			if strings.Contains(o, sec) {
				t.Errorf("a secret appears in the output %q", o)
			}
		}
		if dir == "" {
			continue
		}
		filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			data, _ := os.ReadFile(path)
			if bytes.Contains(data, []byte(sec)) {
				t.Errorf("a secret appears in %s", path)
			}
			return nil
		})
	}
}

// TestAdminLogin backs up alice's mailbox with the password of a Dovecot
// master user, over IMAP and POP3, without alice's password.
func TestAdminLogin(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{
		Users:   map[string]string{"alice": "alice-secret", "bob": "bob-secret", "carol": "carol-secret"},
		Masters: map[string]string{"admin": "admin-secret"},
	})
	seedAlice(t, s, "alice", "alice-secret")
	dir := t.TempDir()
	adminFile := filepath.Join(dir, "admin.pw")
	os.WriteFile(adminFile, []byte("admin-secret\n"), 0o600)
	imapURL := "imap://alice@" + s.IMAPAddr
	popURL := "pop3://alice@" + s.POP3Addr
	plain := "--insecure-plaintext"
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		code  int
		want  string // in stderr
		check map[string]int
	}{
		{"IMAPS, admin password from the environment", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "admin-secret"},
			[]string{"imaps://alice@" + s.IMAPSAddr, "--ca-file", s.CAFile, "--admin-user", "admin"}, exitOK, "", aliceMail},
		{"IMAP, admin password file", nil,
			[]string{imapURL, plain, "--admin-user", "admin", "--admin-password-file", adminFile}, exitOK, "", aliceMail},
		{"IMAP, admin password command", nil,
			[]string{imapURL, plain, "--admin-user", "admin", "--admin-password-command", "cat " + adminFile}, exitOK, "", aliceMail},
		{"IMAP, admin password from the usual sources", map[string]string{"MAILVAULT_PASSWORD": "admin-secret"},
			[]string{imapURL, plain, "--admin-user", "admin"}, exitOK, "", aliceMail},
		{"IMAP, forced PLAIN", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "admin-secret"},
			[]string{imapURL, plain, "--admin-user", "admin", "--auth-mech", "plain"}, exitOK, "", aliceMail},
		{"POP3", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "admin-secret"},
			[]string{popURL, plain, "--admin-user", "admin"}, exitOK, "", map[string]int{"INBOX": 3}},
		{"POP3S", nil,
			[]string{"pop3s://alice@" + s.POP3SAddr, "--ca-file", s.CAFile, "--admin-user", "admin", "--admin-password-file", adminFile}, exitOK, "", map[string]int{"INBOX": 3}},
		{"Dovecot's user*master LOGIN form", map[string]string{"MAILVAULT_PASSWORD": "admin-secret"},
			[]string{"imap://alice*admin@" + s.IMAPAddr, plain}, exitOK, "", aliceMail},
		{"IMAP, wrong admin password", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "wrong-secret"},
			[]string{imapURL, plain, "--admin-user", "admin"}, exitAuth, "authentication failed for alice (as admin admin) on " + s.IMAPAddr, nil},
		{"POP3, wrong admin password", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "wrong-secret"},
			[]string{popURL, plain, "--admin-user", "admin"}, exitAuth, "authentication failed for alice (as admin admin) on " + s.POP3Addr, nil},
		{"IMAP, not a master user", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "bob-secret"},
			[]string{imapURL, plain, "--admin-user", "bob"}, exitAuth, "authentication failed for alice (as admin bob)", nil},
		{"POP3, not a master user", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "bob-secret"},
			[]string{popURL, plain, "--admin-user", "bob"}, exitAuth, "authentication failed for alice (as admin bob)", nil},
		{"no admin password", nil,
			[]string{imapURL, plain, "--admin-user", "admin"}, exitAuth, "no password for admin admin (acting as imap://alice@", nil},
		{"admin password as a flag", nil,
			[]string{imapURL, plain, "--admin-user", "admin", "--admin-password", "admin-secret"}, exitUsage, "--password is refused", nil},
		{"admin password file without --admin-user", nil,
			[]string{imapURL, plain, "--admin-password-file", adminFile}, exitUsage, "go with --admin-user", nil},
		{"two password sources for the admin", nil,
			[]string{imapURL, plain, "--admin-user", "admin", "--admin-password-file", adminFile, "--password-file", adminFile}, exitUsage, "only the admin's password is needed", nil},
		{"admin with xoauth2", map[string]string{"MAILVAULT_ADMIN_PASSWORD": "admin-secret"},
			[]string{imapURL, plain, "--admin-user", "admin", "--auth-mech", "xoauth2"}, exitUsage, "does not go with an admin login", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			code, out, errs := runCLI(t, tt.env, append([]string{"backup", "-q"}, append(tt.args, vault)...)...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errs, tt.code, tt.want)
			}
			if tt.check != nil {
				checkArchive(t, vault, tt.check)
			}
			noSecrets(t, vault, []string{out, errs}, "admin-secret", "alice-secret", "bob-secret")
		})
	}

	t.Run("restore to a target with --target-admin-user", func(t *testing.T) {
		vault := filepath.Join(t.TempDir(), "vault")
		env := map[string]string{"MAILVAULT_ADMIN_PASSWORD": "admin-secret", "MAILVAULT_TARGET_ADMIN_PASSWORD": "admin-secret"}
		if code, _, errs := runCLI(t, env, "backup", "-q", imapURL, plain, "--admin-user", "admin", vault); code != exitOK {
			t.Fatalf("backup: exit %d %s", code, errs)
		}
		code, out, errs := runCLI(t, env, "restore", "-q", vault, "imap://carol@"+s.IMAPAddr, plain, "--admin-user", "admin")
		if code != exitOK {
			t.Fatalf("restore: exit %d %s %s", code, out, errs)
		}
		// carol now holds alice's mail: back her up with the admin login.
		check := filepath.Join(t.TempDir(), "carol")
		if code, _, errs := runCLI(t, env, "backup", "-q", "imap://carol@"+s.IMAPAddr, plain, "--admin-user", "admin", check); code != exitOK {
			t.Fatalf("backup of carol: exit %d %s", code, errs)
		}
		checkArchive(t, check, aliceMail)
		// migrate names the target's admin with --target-admin-user.
		migrated := filepath.Join(t.TempDir(), "vault2")
		code, out, errs = runCLI(t, env, "migrate", "-q", imapURL, "imap://bob@"+s.IMAPAddr, "--archive", migrated,
			plain, "--target-insecure-plaintext", "--admin-user", "admin", "--target-admin-user", "admin")
		if code != exitOK {
			t.Fatalf("migrate: exit %d %s %s", code, out, errs)
		}
		bobVault := filepath.Join(t.TempDir(), "bob")
		if code, _, errs := runCLI(t, env, "backup", "-q", "imap://bob@"+s.IMAPAddr, plain, "--admin-user", "admin", bobVault); code != exitOK {
			t.Fatalf("backup of bob: exit %d %s", code, errs)
		}
		checkArchive(t, bobVault, aliceMail)
	})
}

// tokenServer is an OAuth2 token introspection endpoint for Dovecot's
// oauth2 passdb: it takes tokens "alice.…" for alice, as its policy says.
type tokenServer struct {
	url string

	mu     sync.Mutex
	policy func(tok string, uses int) bool // is tok valid on its uses-th introspection (1-based)?
	uses   map[string]int
	issued map[string]bool // tokens seen by the endpoint
}

func startTokenServer(t *testing.T) *tokenServer {
	t.Helper()
	ts := &tokenServer{uses: map[string]int{}, issued: map[string]bool{}}
	ts.policy = func(string, int) bool { return true }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.FormValue("token")
		ts.mu.Lock()
		ts.uses[tok]++
		ts.issued[tok] = true
		ok := strings.HasPrefix(tok, "alice.") && ts.policy(tok, ts.uses[tok])
		ts.mu.Unlock()
		if !ok {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"active": true, "username": "alice"})
	}))
	t.Cleanup(srv.Close)
	ts.url = srv.URL + "/introspect"
	return ts
}

// tokenCommand is a --oauth2-token-command that prints a new token
// "alice.<pid>.<nanoseconds>" followed by pad characters x on every run,
// or "stale" when stale is set and it is not asked again after a refusal.
type tokenCommand struct {
	command string
	runs    string // file with one line per run
}

func newTokenCommand(t *testing.T, pad int, stale bool) *tokenCommand {
	t.Helper()
	dir := t.TempDir()
	tc := &tokenCommand{runs: filepath.Join(dir, "runs")}
	script := filepath.Join(dir, "token.sh")
	staleLine := ""
	if stale {
		staleLine = `if [ "$MAILVAULT_OAUTH2_RETRY" != 1 ]; then echo stale; exit 0; fi` + "\n"
	}
	body := fmt.Sprintf("echo run >> %s\n%sprintf 'alice.%%s.%%s%s\\n' $$ $(date +%%s%%N)\n", tc.runs, staleLine, strings.Repeat("x", pad))
	if err := os.WriteFile(script, []byte(body), 0o700); err != nil {
		t.Fatal(err)
	}
	tc.command = "sh " + script
	return tc
}

// count is how often the command ran.
func (tc *tokenCommand) count() int {
	data, err := os.ReadFile(tc.runs)
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "run\n")
}

func (ts *tokenServer) setPolicy(p func(tok string, uses int) bool) {
	ts.mu.Lock()
	ts.policy = p
	ts.mu.Unlock()
}

func (ts *tokenServer) tokens() []string {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	var out []string
	for tok := range ts.issued {
		out = append(out, tok)
	}
	return out
}

// TestOAuth2Login backs up over IMAP and POP3 with XOAUTH2 and
// OAUTHBEARER tokens that a Dovecot oauth2 passdb checks against an
// introspection endpoint of the test.
func TestOAuth2Login(t *testing.T) {
	// A token longer than POP3's 255-octet AUTH line (an Azure AD token
	// is over 1 KB) is sent after the server's empty challenge.
	ts := startTokenServer(t)
	long, short := newTokenCommand(t, 400, false), newTokenCommand(t, 0, false)
	s := dovecottest.Start(t, dovecottest.Options{
		Users:                  map[string]string{"alice": "alice-secret"},
		OAuth2IntrospectionURL: ts.url,
	})
	seedAlice(t, s, "alice", "alice-secret")
	plain := "--insecure-plaintext"
	imapURL := "imap://alice@" + s.IMAPAddr
	popURL := "pop3://alice@" + s.POP3Addr
	tests := []struct {
		name  string
		args  []string
		check map[string]int
	}{
		{"IMAP, mechanism chosen", []string{imapURL, plain, "--oauth2-token-command", long.command}, aliceMail},
		{"IMAP XOAUTH2", []string{imapURL, plain, "--oauth2-token-command", long.command, "--auth-mech", "xoauth2"}, aliceMail},
		{"IMAP OAUTHBEARER", []string{imapURL, plain, "--oauth2-token-command", long.command, "--auth-mech", "oauthbearer"}, aliceMail},
		{"IMAPS XOAUTH2", []string{"imaps://alice@" + s.IMAPSAddr, "--ca-file", s.CAFile, "--oauth2-token-command", long.command}, aliceMail},
		{"POP3 XOAUTH2, long token", []string{popURL, plain, "--oauth2-token-command", long.command, "--auth-mech", "xoauth2"}, map[string]int{"INBOX": 3}},
		{"POP3 OAUTHBEARER, long token", []string{popURL, plain, "--oauth2-token-command", long.command, "--auth-mech", "oauthbearer"}, map[string]int{"INBOX": 3}},
		{"POP3 XOAUTH2, short token", []string{popURL, plain, "--oauth2-token-command", short.command, "--auth-mech", "xoauth2"}, map[string]int{"INBOX": 3}},
		{"POP3 OAUTHBEARER, short token", []string{popURL, plain, "--oauth2-token-command", short.command, "--auth-mech", "oauthbearer"}, map[string]int{"INBOX": 3}},
		{"POP3S, mechanism chosen", []string{"pop3s://alice@" + s.POP3SAddr, "--ca-file", s.CAFile, "--oauth2-token-command", long.command}, map[string]int{"INBOX": 3}},
	}
	var outputs []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			before := long.count() + short.count()
			conns := []string{"--connections", "2"}
			if strings.HasPrefix(tt.args[0], "pop3") {
				conns = nil // one session per POP3 mailbox: --connections is refused
			}
			code, out, errs := runCLI(t, nil, append(append([]string{"backup", "-q"}, conns...), append(tt.args, vault)...)...)
			outputs = append(outputs, out, errs)
			if code != exitOK {
				t.Fatalf("exit %d, stderr %q", code, errs)
			}
			checkArchive(t, vault, tt.check)
			if long.count()+short.count() == before {
				t.Error("the token command never ran")
			}
			noSecrets(t, vault, nil, ts.tokens()...)
		})
	}
	noSecrets(t, "", outputs, ts.tokens()...)

	t.Run("token file", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "token")
		os.WriteFile(file, []byte("alice.from-a-file\n"), 0o600)
		vault := filepath.Join(t.TempDir(), "vault")
		code, out, errs := runCLI(t, nil, "backup", "-q", imapURL, plain, "--oauth2-token-file", file, vault)
		if code != exitOK {
			t.Fatalf("exit %d %s %s", code, out, errs)
		}
		checkArchive(t, vault, aliceMail)
		noSecrets(t, vault, []string{out, errs}, "alice.from-a-file")
	})

	// Every token is good for one login only, as if each expired right
	// after it was used: the runs complete only if every new connection
	// (the listing one and the workers, then a second run) asks the
	// command again. A run opens a connection per 100 messages to fetch
	// (backup.connectionMessages), so each IMAP run has 100 more.
	t.Run("token expires after one login", func(t *testing.T) {
		ts.setPolicy(func(_ string, uses int) bool { return uses == 1 })
		defer ts.setPolicy(func(string, int) bool { return true })
		old := map[string]bool{}
		for _, tok := range ts.tokens() {
			old[tok] = true
		}
		want := map[string]int{"INBOX": 104, "Work": 103, "Work/2026": 1}
		for _, tc := range []struct {
			url, conns string
			want       map[string]int
			minRuns    int // token command runs of one backup at least
		}{{imapURL, "3", want, 2}, {popURL, "", map[string]int{"INBOX": 104}, 1}} {
			vault := filepath.Join(t.TempDir(), "vault")
			for run := 1; run <= 2; run++ {
				if run == 1 && tc.conns == "3" {
					appendN(t, s, "alice", "alice-secret", "INBOX", 100, "early")
				}
				if run == 2 && tc.conns == "3" {
					// New mail in two folders: the second run needs workers too.
					appendTo(t, s, "alice", "alice-secret", "INBOX", "Work")
					appendN(t, s, "alice", "alice-secret", "Work", 100, "later")
				}
				before, seen := long.count(), len(ts.tokens())
				args := []string{"backup", "-q", tc.url, plain, "--oauth2-token-command", long.command, vault}
				if tc.conns != "" {
					args = append(args, "--connections", tc.conns)
				}
				code, out, errs := runCLI(t, nil, args...)
				if code != exitOK {
					t.Fatalf("%s run %d: exit %d %s %s", tc.url, run, code, out, errs)
				}
				runs, tokens := long.count()-before, len(ts.tokens())-seen
				t.Logf("%s run %d: %d token command runs, %d tokens", tc.url, run, runs, tokens)
				if runs < tc.minRuns || tokens != runs {
					t.Errorf("%s run %d: the token command ran %d times and the server saw %d new tokens; want at least %d, one per run", tc.url, run, runs, tokens, tc.minRuns)
				}
			}
			checkArchive(t, vault, tc.want)
		}
		ts.mu.Lock()
		defer ts.mu.Unlock()
		for tok, n := range ts.uses {
			if n > 1 && !old[tok] {
				t.Errorf("a token was sent %d times", n)
			}
		}
	})

	// The first token a run gets is stale: the login asks the command
	// again (with MAILVAULT_OAUTH2_RETRY=1) and goes on.
	t.Run("stale token, asked again", func(t *testing.T) {
		st := newTokenCommand(t, 0, true)
		for _, u := range []string{imapURL, popURL} {
			vault := filepath.Join(t.TempDir(), "vault")
			before := st.count()
			args := []string{"backup", "-q", u, plain, "--oauth2-token-command", st.command, vault}
			if u == imapURL {
				args = append(args, "--connections", "1")
			}
			code, out, errs := runCLI(t, nil, args...)
			if code != exitOK {
				t.Fatalf("%s: exit %d %s %s", u, code, out, errs)
			}
			if n := st.count() - before; n != 2 {
				t.Errorf("%s: the token command ran %d times, want 2 (stale, then fresh)", u, n)
			}
		}
	})

	t.Run("refused token", func(t *testing.T) {
		ts.setPolicy(func(string, int) bool { return false })
		defer ts.setPolicy(func(string, int) bool { return true })
		for _, tc := range []struct{ url, mech string }{{imapURL, "xoauth2"}, {imapURL, "oauthbearer"}, {popURL, "xoauth2"}, {popURL, "oauthbearer"}} {
			vault := filepath.Join(t.TempDir(), "vault")
			before := long.count()
			start := time.Now()
			code, out, errs := runCLI(t, nil, "backup", tc.url, plain, "--auth-mech", tc.mech, "--oauth2-token-command", long.command, vault)
			want := "authentication failed for alice on "
			if code != exitAuth || !strings.Contains(errs, want) || !strings.Contains(errs, "refused the OAuth2 token ("+strings.ToUpper(tc.mech)+")") {
				t.Fatalf("%s %s: exit %d, stderr %q; want %d and a message about the token", tc.url, tc.mech, code, errs, exitAuth)
			}
			if strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("%s %s: error is not one line: %q", tc.url, tc.mech, errs)
			}
			if n := long.count() - before; n != 2 {
				t.Errorf("%s %s: the token command ran %d times, want 2 (once, and once more after the refusal)", tc.url, tc.mech, n)
			}
			t.Logf("%s %s: %s (%s)", tc.url, tc.mech, strings.TrimSpace(errs), time.Since(start).Round(time.Millisecond))
			noSecrets(t, vault, []string{out, errs}, ts.tokens()...)
		}
	})

	t.Run("token command fails", func(t *testing.T) {
		vault := filepath.Join(t.TempDir(), "vault")
		code, _, errs := runCLI(t, nil, "backup", imapURL, plain, "--oauth2-token-command", "echo 'no refresh token; run mailvault auth login' >&2; exit 3", vault)
		if code != exitAuth || !strings.Contains(errs, "OAuth2 token command failed (exit status 3): no refresh token; run mailvault auth login") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
	})

	t.Run("usage", func(t *testing.T) {
		marker := filepath.Join(t.TempDir(), "asked")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--oauth2-token", "abc"}, "--password is refused"},
			{[]string{"--oauth2-token-command", "true", "--oauth2-token-file", "/x"}, "give one of"},
			{[]string{"--oauth2-token-command", "true", "--password-file", "/x"}, "takes no password"},
			{[]string{"--oauth2-token-command", "true", "--auth-mech", "plain"}, "does not go with an oauth2 login"},
			{[]string{"--auth-mech", "cram-md5"}, "unknown mechanism"},
		} {
			vault := filepath.Join(t.TempDir(), "vault")
			code, _, errs := runCLI(t, map[string]string{"MAILVAULT_PASSWORD": "alice-secret"}, append([]string{"backup", imapURL, plain, vault}, tc.args...)...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want %d and %q", tc.args, code, errs, exitUsage, tc.want)
			}
		}
		vault := filepath.Join(t.TempDir(), "vault")
		code, _, errs := runCLI(t, nil, "backup", imapURL, plain, vault, "--auth-mech", "xoauth2", "--password-command", "touch "+marker+"; echo pw")
		if code != exitUsage || !strings.Contains(errs, "does not go with a password login") {
			t.Errorf("xoauth2 with a password: exit %d, stderr %q", code, errs)
		}
		if _, err := os.Stat(marker); err == nil {
			t.Error("the password command ran before the mechanism was refused")
		}
	})
}
