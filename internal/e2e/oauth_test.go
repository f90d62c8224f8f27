package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/oauthtest"
)

// TestMicrosoftLoginToDovecot signs in with 'mailvault auth login'
// (device code, against the test's authorization server), then backs up
// over IMAPS with 'mailvault auth token' as the token command; Dovecot
// checks each token with the same server's introspection endpoint. Between
// two runs every access token stops working: each connection of the
// second run is refused its cached token, runs the command again, which
// refreshes (rotating the refresh token, one process at a time), and the
// run completes.
func TestMicrosoftLoginToDovecot(t *testing.T) {
	t.Parallel()
	as := oauthtest.Start(t, oauthtest.Options{Tenant: "contoso", ClientID: "app-id", User: "alice"})
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}, OAuth2IntrospectionURL: as.IntrospectURL})
	c := login(t, srv, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := corpus.Load(ctx, c, corpus.Generate(corpus.Options{Seed: 61, Messages: 120})); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "alice.json")
	r := mustRun(t, "auth", "login", "--provider", "microsoft", "--client-id", "app-id", "--tenant", "contoso", "--authority", as.URL, "--token-file", file)
	if !strings.Contains(r.stderr, "enter the code ABCD-EFGH") {
		t.Errorf("auth login said %q", r.stderr)
	}
	tokenCmd := fmt.Sprintf("%s auth token --provider microsoft --token-file %s", bin, file)
	vault := filepath.Join(t.TempDir(), "vault")
	args := append(source(srv), "--oauth2-token-command", tokenCmd, "--connections", "4", vault)
	mustRun(t, append([]string{"backup", "-q"}, args...)...)
	archivetest.MatchesServer(t, vault, imaptest.ReadServer(t, c))
	refreshes := func() int { return strings.Count(strings.Join(as.Requests(), " "), "refresh_token") }
	if n := refreshes(); n != 0 {
		t.Errorf("first run: %d refreshes, want 0 (the login's access token is valid for an hour)", n)
	}

	imaptest.Append(t, c, "INBOX", nil, time.Now(), []byte("Subject: after expiry\r\nMessage-ID: <late@x>\r\n\r\nhi\r\n"))
	as.ExpireAccessTokens()
	r = mustRun(t, append([]string{"backup"}, args...)...)
	if !strings.Contains(r.stdout, "1 messages added") {
		t.Errorf("second run: %s", r.stdout)
	}
	archivetest.MatchesServer(t, vault, imaptest.ReadServer(t, c))
	used := as.RefreshTokens()
	if len(used) == 0 {
		t.Fatal("second run: no refresh after the access tokens expired")
	}
	for i, rt := range used {
		if want := fmt.Sprintf("refresh.%d", i+1); rt != want {
			t.Errorf("refresh %d presented %s, want %s: a rotated refresh token was lost", i+1, rt, want)
		}
	}
	t.Logf("second run: %d refreshes, the last refresh token %s", len(used), as.CurrentRefreshToken())
	if r := mustRun(t, "verify", vault); r.code != 0 {
		t.Error(r.stderr)
	}
}
