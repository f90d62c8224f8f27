package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailvault/mailvault/internal/oauthtest"
)

// TestAuthMicrosoft signs in with the device-code flow against an
// authorization server of the test, then gets access tokens from the
// stored refresh token, which the server rotates on every use.
func TestAuthMicrosoft(t *testing.T) {
	as := oauthtest.Start(t, oauthtest.Options{Tenant: "contoso", ClientID: "app-id", ClientSecret: "app-secret", User: "alice", Pending: 1})
	dir := t.TempDir()
	file := filepath.Join(dir, "cfg", "alice.json")
	app := []string{"--provider", "microsoft", "--authority", as.URL, "--tenant", "contoso", "--token-file", file}
	stored := func() map[string]any {
		t.Helper()
		fi, err := os.Stat(file)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("token file mode %v, want 0600", fi.Mode().Perm())
		}
		var m map[string]any
		data, _ := os.ReadFile(file)
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	var outputs []string
	cli := func(env map[string]string, args ...string) (int, string, string) {
		t.Helper()
		code, out, errs := runCLI(t, env, args...)
		outputs = append(outputs, errs)
		return code, out, errs
	}

	code, out, errs := cli(nil, append([]string{"auth", "login", "--client-id", "app-id"}, app...)...)
	if code != exitOK || !strings.Contains(errs, "open https://microsoft.com/devicelogin and enter the code ABCD-EFGH") || !strings.Contains(out, "signed in; the refresh token is in "+file) {
		t.Fatalf("auth login: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	outputs = append(outputs, out)
	if got := stored(); got["refresh_token"] != "refresh.1" || got["client_id"] != "app-id" || got["tenant"] != "contoso" {
		t.Fatalf("stored %v", got)
	}
	if fi, _ := os.Stat(filepath.Dir(file)); fi.Mode().Perm() != 0o700 {
		t.Errorf("token directory mode %v, want 0700", fi.Mode().Perm())
	}

	// The access token of the login is still valid: no request.
	n := len(as.Requests())
	token := []string{"auth", "token", "--provider", "microsoft", "--token-file", file}
	if code, out, errs := cli(nil, token...); code != exitOK || out != "alice.access.1\n" || len(as.Requests()) != n {
		t.Fatalf("auth token: exit %d %q %q (%d requests)", code, out, errs, len(as.Requests())-n)
	}
	// --refresh and MAILVAULT_OAUTH2_RETRY=1 fetch a new one; each new
	// refresh token is saved (the server takes each one once).
	if code, out, errs := cli(nil, append(token, "--refresh")...); code != exitOK || out != "alice.access.2\n" {
		t.Fatalf("auth token --refresh: exit %d %q %q", code, out, errs)
	}
	if got := stored(); got["refresh_token"] != "refresh.2" || got["access_token"] != "alice.access.2" {
		t.Errorf("after a refresh the file holds %v", got)
	}
	if code, out, errs := cli(map[string]string{"MAILVAULT_OAUTH2_RETRY": "1"}, token...); code != exitOK || out != "alice.access.3\n" {
		t.Fatalf("auth token after a refused token: exit %d %q %q", code, out, errs)
	}

	// Connections of a run ask at once: they take turns, each refresh
	// uses the refresh token the one before saved.
	var wg sync.WaitGroup
	results := make([]string, 6)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out, errs := runProcess(t, nil, append(token, "--refresh")...)
			results[i] = strings.TrimSpace(out)
			if code != exitOK {
				t.Errorf("concurrent auth token: exit %d %s", code, errs)
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, r := range results {
		seen[r] = true
	}
	if len(seen) != len(results) || stored()["refresh_token"] != as.CurrentRefreshToken() {
		t.Errorf("concurrent refreshes gave %v; file holds %v, server wants %s", results, stored()["refresh_token"], as.CurrentRefreshToken())
	}
	for i, rt := range as.RefreshTokens() {
		if want := "refresh." + string(rune('1'+i)); i < 9 && rt != want {
			t.Errorf("refresh %d used %s, want %s (the latest)", i, rt, want)
		}
	}

	// A revoked login: exit 4, sign in again.
	as.Revoke()
	code, out, errs = cli(nil, append(token, "--refresh")...)
	if code != exitAuth || !strings.Contains(errs, "the refresh token was refused (invalid_grant: AADSTS00000: invalid_grant (test).): sign in again with 'mailvault auth login'") {
		t.Errorf("revoked: exit %d %q %q", code, out, errs)
	}

	// App-only access with the client-credentials grant.
	secretFile := filepath.Join(dir, "secret")
	os.WriteFile(secretFile, []byte("app-secret\n"), 0o600)
	appOnly := []string{"auth", "token", "--provider", "microsoft", "--authority", as.URL, "--tenant", "contoso", "--client-id", "app-id"}
	if code, out, errs := cli(nil, append(appOnly, "--client-secret-file", secretFile)...); code != exitOK || !strings.HasPrefix(out, "alice.access.") {
		t.Errorf("app-only: exit %d %q %q", code, out, errs)
	}
	if code, out, errs := cli(map[string]string{"MAILVAULT_OAUTH2_CLIENT_SECRET": "app-secret"}, appOnly...); code != exitOK || !strings.HasPrefix(out, "alice.access.") {
		t.Errorf("app-only, secret from the environment: exit %d %q %q", code, out, errs)
	}
	if code, _, errs := cli(map[string]string{"MAILVAULT_OAUTH2_CLIENT_SECRET": "wrong"}, appOnly...); code != exitAuth || !strings.Contains(errs, "invalid_client") {
		t.Errorf("app-only, wrong secret: exit %d %q", code, errs)
	}
	if m := as.Mistakes(); len(m) > 0 {
		t.Errorf("protocol mistakes: %v", m)
	}

	// Usage and file errors.
	os.Chmod(file, 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{token, exitError, "readable by other users"},
		{[]string{"auth", "token", "--provider", "microsoft", "--token-file", filepath.Join(dir, "none.json")}, exitAuth, "no stored login"},
		{[]string{"auth", "login", "--provider", "microsoft", "--token-file", file}, exitUsage, "needs --client-id"},
		{[]string{"auth", "login", "--provider", "google", "--client-id", "x"}, exitUsage, "only microsoft"},
		{[]string{"auth", "token", "--provider", "microsoft", "--client-secret", "x"}, exitUsage, "--password is refused"},
		{[]string{"auth", "token", "--provider", "microsoft", "--client-id", "x", "--client-secret-file", secretFile}, exitUsage, "need --tenant"},
		{[]string{"auth", "token", "--provider", "microsoft", "--bogus"}, exitUsage, "flag provided but not defined"},
	} {
		if code, _, errs := cli(nil, tc.args...); code != tc.code || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", tc.args, code, errs, tc.code, tc.want)
		}
	}
	// No token ever reached the standard error or the login's messages.
	for _, o := range outputs {
		if strings.Contains(o, "access.") || strings.Contains(o, "refresh.") || strings.Contains(o, "app-secret") {
			t.Errorf("a secret in the output %q", o)
		}
	}
}
