package auth

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type staticTokens []string

func (s *staticTokens) Token(ctx context.Context, retry bool) (string, error) {
	if len(*s) == 0 {
		return "", errors.New("no more tokens")
	}
	t := (*s)[0]
	*s = (*s)[1:]
	return t, nil
}

func TestNew(t *testing.T) {
	toks := &staticTokens{}
	tests := []struct {
		name string
		c    Config
		want Method
		err  string
	}{
		{"password", Config{User: "alice", Password: "pw"}, MethodPassword, ""},
		{"password, LOGIN", Config{User: "alice", Password: "pw", Mechanism: MechLogin}, MethodPassword, ""},
		{"password, PLAIN", Config{User: "alice", Password: "pw", Mechanism: MechPlain}, MethodPassword, ""},
		{"admin", Config{User: "alice", AdminUser: "admin", AdminPassword: "apw"}, MethodAdmin, ""},
		{"oauth2", Config{User: "alice", Tokens: toks}, MethodOAuth2, ""},
		{"oauth2, OAUTHBEARER", Config{User: "alice", Tokens: toks, Mechanism: MechOAuthBearer}, MethodOAuth2, ""},
		{"no user", Config{Password: "pw"}, "", "no user name"},
		{"nothing", Config{User: "alice"}, "", "no password, admin login or OAuth2"},
		{"admin without password", Config{User: "alice", AdminUser: "admin"}, "", "without the admin's password"},
		{"admin password alone", Config{User: "alice", Password: "pw", AdminPassword: "apw"}, "", "without an admin user"},
		{"password and tokens", Config{User: "alice", Password: "pw", Tokens: toks}, "", "only one of"},
		{"admin and tokens", Config{User: "alice", AdminUser: "admin", AdminPassword: "apw", Tokens: toks}, "", "only one of"},
		{"password with XOAUTH2", Config{User: "alice", Password: "pw", Mechanism: MechXOAuth2}, "", "does not go with a password login (use login or plain)"},
		{"admin with LOGIN", Config{User: "alice", AdminUser: "admin", AdminPassword: "apw", Mechanism: MechLogin}, "", "does not go with an admin login (use plain)"},
		{"oauth2 with PLAIN", Config{User: "alice", Tokens: toks, Mechanism: MechPlain}, "", "does not go with an oauth2 login (use xoauth2 or oauthbearer)"},
	}
	for _, tt := range tests {
		a, err := New(tt.c)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) || !errors.Is(err, ErrConfig) {
				t.Errorf("%s: New() error = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || a.Method() != tt.want || a.User() != "alice" {
			t.Errorf("%s: New() = %v, %v; want method %s", tt.name, a, err, tt.want)
		}
	}
}

func TestParseMechanism(t *testing.T) {
	for in, want := range map[string]Mechanism{"": MechAuto, "login": MechLogin, "Plain": MechPlain, "xoauth2": MechXOAuth2, " OAUTHBEARER ": MechOAuthBearer} {
		if got, err := ParseMechanism(in); got != want || err != nil {
			t.Errorf("ParseMechanism(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseMechanism("cram-md5"); !errors.Is(err, ErrConfig) {
		t.Errorf("ParseMechanism(cram-md5) error = %v, want ErrConfig", err)
	}
}

func TestChoose(t *testing.T) {
	pw := Password("alice", "pw")
	admin, _ := New(Config{User: "alice", AdminUser: "admin", AdminPassword: "apw"})
	oauth, _ := New(Config{User: "alice", Tokens: &staticTokens{}})
	forced, _ := New(Config{User: "alice", Tokens: &staticTokens{}, Mechanism: MechOAuthBearer})
	forcedLogin, _ := New(Config{User: "alice", Password: "pw", Mechanism: MechLogin})
	tests := []struct {
		name  string
		a     *Auth
		offer Offer
		want  Mechanism
		err   string
	}{
		{"password: LOGIN command", pw, Offer{Listed: true, SASL: []string{"PLAIN"}}, MechLogin, ""},
		{"password, LOGINDISABLED: PLAIN", pw, Offer{Listed: true, SASL: []string{"plain"}, LoginDisabled: true}, MechPlain, ""},
		{"password, LOGINDISABLED, no PLAIN", pw, Offer{Listed: true, LoginDisabled: true}, "", "no password login"},
		{"forced LOGIN, LOGINDISABLED", forcedLogin, Offer{Listed: true, LoginDisabled: true}, "", "LOGINDISABLED"},
		{"admin: PLAIN", admin, Offer{}, MechPlain, ""},
		{"oauth2, both offered: XOAUTH2", oauth, Offer{Listed: true, SASL: []string{"XOAUTH2", "OAUTHBEARER"}}, MechXOAuth2, ""},
		{"oauth2, only OAUTHBEARER", oauth, Offer{Listed: true, SASL: []string{"PLAIN", "OAUTHBEARER"}}, MechOAuthBearer, ""},
		{"oauth2, nothing listed: XOAUTH2", oauth, Offer{}, MechXOAuth2, ""},
		{"oauth2 forced", forced, Offer{Listed: true, SASL: []string{"XOAUTH2"}}, MechOAuthBearer, ""},
	}
	for _, tt := range tests {
		got, err := tt.a.choose(tt.offer)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: choose() error = %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if got != tt.want || err != nil {
			t.Errorf("%s: choose() = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}

func start(t *testing.T, at Attempt) (string, string) {
	t.Helper()
	mech, ir, err := at.SASL.Start()
	if err != nil {
		t.Fatal(err)
	}
	return mech, string(ir)
}

func TestSASLMessages(t *testing.T) {
	admin, _ := New(Config{User: "alice", AdminUser: "admin", AdminPassword: "apw"})
	xo, _ := New(Config{User: "alice@example.com", Tokens: &staticTokens{"tok"}, Mechanism: MechXOAuth2})
	ob, _ := New(Config{User: "a,b=c", Tokens: &staticTokens{"tok"}, Mechanism: MechOAuthBearer})
	plain, _ := New(Config{User: "alice", Password: "pw", Mechanism: MechPlain})
	tests := []struct {
		name     string
		a        *Auth
		mech, ir string
	}{
		{"admin: PLAIN with authorization identity", admin, "PLAIN", "alice\x00admin\x00apw"},
		{"XOAUTH2", xo, "XOAUTH2", "user=alice@example.com\x01auth=Bearer tok\x01\x01"},
		{"OAUTHBEARER, escaped authzid", ob, "OAUTHBEARER", "n,a=a=2Cb=3Dc,\x01auth=Bearer tok\x01\x01"},
		{"password PLAIN", plain, "PLAIN", "\x00alice\x00pw"},
	}
	for _, tt := range tests {
		var mech, ir string
		tt.a.Login(context.Background(), "server", Offer{}, func(at Attempt) error {
			mech, ir = start(t, at)
			return nil
		})
		if mech != tt.mech || ir != tt.ir {
			t.Errorf("%s: Start() = %q, %q; want %q, %q", tt.name, mech, ir, tt.mech, tt.ir)
		}
	}
}

func TestErrorChallenges(t *testing.T) {
	report := []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`)
	xo := &xoauth2Client{user: "u", token: "t"}
	if resp, err := xo.Next(report); err != nil || resp == nil || len(resp) != 0 {
		t.Errorf("XOAUTH2 Next(error) = %q, %v; want an empty response", resp, err)
	}
	if got, want := *xo.failure(), "status 401, scope https://mail.google.com/"; got != want {
		t.Errorf("XOAUTH2 failure = %q, want %q", got, want)
	}
	ob := &oauthBearerClient{user: "u", token: "t"}
	if resp, err := ob.Next([]byte(`{"status":"invalid_token"}`)); err != nil || string(resp) != "\x01" {
		t.Errorf("OAUTHBEARER Next(error) = %q, %v; want ^A", resp, err)
	}
	if got := errorReport([]byte("secret-looking garbage")); strings.Contains(got, "garbage") {
		t.Errorf("errorReport repeats an unreadable challenge: %q", got)
	}
}

func TestLoginRetry(t *testing.T) {
	refuse := func(Attempt) error { return &RefusedError{Text: "Authentication failed."} }
	t.Run("oauth2: asked again once", func(t *testing.T) {
		var retries []bool
		src := tokenFunc(func(ctx context.Context, retry bool) (string, error) {
			retries = append(retries, retry)
			return "tok", nil
		})
		a, _ := New(Config{User: "alice", Tokens: src})
		var tokens int
		err := a.Login(context.Background(), "host:993", Offer{}, func(at Attempt) error {
			tokens++
			_, ir := start(t, at)
			if tokens == 1 {
				at.SASL.Next([]byte(`{"status":"401"}`))
				return &RefusedError{Text: "Authentication failed."}
			}
			if !strings.Contains(ir, "Bearer tok") {
				t.Errorf("second attempt sent %q", ir)
			}
			return nil
		})
		if err != nil || len(retries) != 2 || retries[0] || !retries[1] {
			t.Errorf("Login = %v, token asked with retry %v; want success, [false true]", err, retries)
		}
	})
	t.Run("oauth2: refused twice", func(t *testing.T) {
		toks := &staticTokens{"one", "two", "three"}
		a, _ := New(Config{User: "alice", Tokens: toks})
		err := a.Login(context.Background(), "host:993", Offer{}, refuse)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "authentication failed for alice on host:993: Authentication failed.; the server refused the OAuth2 token (XOAUTH2)") || len(*toks) != 1 {
			t.Errorf("Login = %v (tokens left %d); want a refusal after two tokens", err, len(*toks))
		}
		if strings.Contains(err.Error(), "one") || strings.Contains(err.Error(), "two") {
			t.Errorf("the error names a token: %v", err)
		}
	})
	t.Run("password: not retried", func(t *testing.T) {
		n := 0
		err := Password("alice", "s3cret").Login(context.Background(), "h:143", Offer{}, func(Attempt) error { n++; return refuse(Attempt{}) })
		if n != 1 || !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Login = %v after %d attempts", err, n)
		}
	})
	t.Run("broken connection is not a refusal", func(t *testing.T) {
		a, _ := New(Config{User: "alice", Tokens: &staticTokens{"one", "two"}})
		err := a.Login(context.Background(), "h:143", Offer{}, func(Attempt) error { return io.ErrUnexpectedEOF })
		if !errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, ErrAuth) {
			t.Errorf("Login = %v, want the connection error", err)
		}
	})
	t.Run("token source fails", func(t *testing.T) {
		a, _ := New(Config{User: "alice", Tokens: &staticTokens{}})
		err := a.Login(context.Background(), "h:143", Offer{}, func(Attempt) error { t.Error("tried without a token"); return nil })
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "no more tokens") {
			t.Errorf("Login = %v, want ErrAuth with the source's error", err)
		}
	})
}

type tokenFunc func(ctx context.Context, retry bool) (string, error)

func (f tokenFunc) Token(ctx context.Context, retry bool) (string, error) { return f(ctx, retry) }

func TestPasswordHint(t *testing.T) {
	tests := []struct {
		text, want string
	}{
		{"Application-specific password required: https://support.google.com/accounts/answer/185833 (Failure)", "app password"},
		{"Please use an app password", "app password"},
		{"LOGIN failed.", "Microsoft 365"},
		{"AUTHENTICATE failed.", "Microsoft 365"},
		{"Logon failure: unknown user name or bad password.", "Microsoft 365"},
		{"Authentication failed.", ""},
		{"[AUTHENTICATIONFAILED] Invalid credentials (Failure)", ""},
	}
	for _, tt := range tests {
		got := PasswordHint(tt.text)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("PasswordHint(%q) = %q, want it to mention %q", tt.text, got, tt.want)
		}
	}
	// Through Login, the hint ends the message.
	err := Password("alice", "pw").Login(context.Background(), "outlook.office365.com:993", Offer{}, func(Attempt) error { return &RefusedError{Text: "LOGIN failed."} })
	if !strings.Contains(err.Error(), "LOGIN failed.; Microsoft 365 and Outlook.com refuse password logins") || !strings.Contains(err.Error(), "mailvault auth login --provider microsoft") {
		t.Errorf("Login error = %v, want the Microsoft hint", err)
	}
}

func TestTokenSources(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	script := `if [ "$` + RetryEnv + `" = 1 ]; then echo fresh; else printf 'cached\r\n'; fi`
	if got, err := (CommandTokens{Command: script}).Token(ctx, false); got != "cached" || err != nil {
		t.Errorf("Token(retry=false) = %q, %v; want cached", got, err)
	}
	if got, err := (CommandTokens{Command: script}).Token(ctx, true); got != "fresh" || err != nil {
		t.Errorf("Token(retry=true) = %q, %v; want fresh", got, err)
	}
	_, err := (CommandTokens{Command: "echo secret-token; echo broken >&2; exit 2"}).Token(ctx, false)
	if err == nil || !strings.Contains(err.Error(), "exit status 2): broken") || strings.Contains(err.Error(), "secret-token") {
		t.Errorf("failing command: %v", err)
	}
	if _, err := (CommandTokens{Command: "echo 'two words'"}).Token(ctx, false); !errors.Is(err, errBadToken) || strings.Contains(err.Error(), "words") {
		t.Errorf("token with a space: %v", err)
	}
	if _, err := (CommandTokens{Command: "true"}).Token(ctx, false); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("no output: %v", err)
	}
	file := filepath.Join(dir, "tok")
	os.WriteFile(file, []byte("ya29.abc\n"), 0o600)
	if got, err := (FileTokens{Path: file}).Token(ctx, false); got != "ya29.abc" || err != nil {
		t.Errorf("FileTokens = %q, %v", got, err)
	}
	if _, err := (FileTokens{Path: filepath.Join(dir, "none")}).Token(ctx, false); err == nil {
		t.Error("FileTokens of a missing file: no error")
	}
}
