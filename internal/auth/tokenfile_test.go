package auth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/oauthtest"
)

func TestTokenFileSave(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new")
	path := filepath.Join(dir, "t.json")
	for i, rt := range []string{"first", "second"} {
		f := &TokenFile{Provider: "microsoft", Tenant: "common", ClientID: "id", RefreshToken: rt}
		if err := f.Save(path); err != nil {
			t.Fatalf("Save %d: %v", i, err)
		}
		got, err := LoadTokenFile(path)
		if err != nil || got.RefreshToken != rt {
			t.Fatalf("LoadTokenFile after Save %d = %+v, %v", i, got, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after two saves, want the file alone", len(entries))
	}
	os.WriteFile(path, []byte("{"), 0o600)
	if _, err := LoadTokenFile(path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Errorf("damaged file: %v", err)
	}
	if _, err := LoadTokenFile(filepath.Join(dir, "none")); !errors.Is(err, ErrNoTokenFile) {
		t.Errorf("missing file: %v", err)
	}
}

// TestStoredToken: reuse while valid, refresh with rotation when asked for
// a fresh one or close to expiry, and a refused refresh token.
func TestStoredToken(t *testing.T) {
	as := oauthtest.Start(t, oauthtest.Options{Tenant: "t1", ClientID: "cid", User: "alice", ExpiresIn: 120})
	m := Microsoft{Authority: as.URL, Tenant: "t1", ClientID: "cid"}
	path := filepath.Join(t.TempDir(), "tok.json")
	f := &TokenFile{Provider: "microsoft", Authority: as.URL, Tenant: "t1", ClientID: "cid", RefreshToken: "stale", AccessToken: "alice.cached", Expiry: time.Now().Add(time.Hour)}
	f.Save(path)
	ctx := context.Background()
	if tok, err := StoredToken(ctx, Microsoft{}, path, false); tok != "alice.cached" || err != nil {
		t.Errorf("StoredToken = %q, %v; want the cached token", tok, err)
	}
	if _, err := StoredToken(ctx, Microsoft{}, path, true); !errors.Is(err, ErrReauthenticate) || strings.Contains(err.Error(), "Trace ID") {
		t.Errorf("refused refresh token: %v", err)
	}
	// A real login, then refreshes: the server issues 120 s tokens, under
	// the 5-minute reuse margin, so every call refreshes.
	tok, err := m.DeviceLogin(ctx, func(DeviceCode) {})
	if err != nil {
		t.Fatal(err)
	}
	f = &TokenFile{Provider: "microsoft", Tenant: "t1", ClientID: "cid", RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry}
	f.Save(path)
	for i := 2; i <= 3; i++ {
		got, err := StoredToken(ctx, Microsoft{Authority: as.URL}, path, false)
		if err != nil || got != "alice.access."+string(rune('0'+i)) {
			t.Fatalf("refresh %d: %q, %v", i, got, err)
		}
		if f, _ := LoadTokenFile(path); f.RefreshToken != as.CurrentRefreshToken() {
			t.Errorf("refresh %d: file holds %s, server wants %s", i, f.RefreshToken, as.CurrentRefreshToken())
		}
	}
	if m := as.Mistakes(); len(m) > 0 {
		t.Errorf("protocol mistakes: %v", m)
	}
}
