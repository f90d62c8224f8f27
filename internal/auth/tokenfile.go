package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// TokenFile is what "mailvault auth login" stores: the refresh token, the
// application it belongs to, and the last access token while it is
// valid. It is kept with mode 0600 and replaced atomically.
type TokenFile struct {
	Provider     string    `json:"provider"`
	Authority    string    `json:"authority,omitempty"`
	Tenant       string    `json:"tenant"`
	ClientID     string    `json:"client_id"`
	Scopes       []string  `json:"scopes"`
	RefreshToken string    `json:"refresh_token"`
	AccessToken  string    `json:"access_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
	Updated      time.Time `json:"updated"`
}

// ErrNoTokenFile means no login was stored at the path.
var ErrNoTokenFile = errors.New("no stored login")

// LoadTokenFile reads the token file at path. A file that other users can
// read is refused: it holds a refresh token.
func LoadTokenFile(path string) (*TokenFile, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w in %s: run 'mailvault auth login' first", ErrNoTokenFile, path)
	}
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("token file %s is readable by other users: chmod 600 it (and consider the refresh token in it exposed)", path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("token file: %w", err)
	}
	var f TokenFile
	if err := json.Unmarshal(data, &f); err != nil || f.RefreshToken == "" {
		return nil, fmt.Errorf("token file %s is damaged (run 'mailvault auth login' again)", path)
	}
	return &f, nil
}

// Save writes f to path atomically: a temporary file in the same
// directory (mode 0600), fsynced, renamed over path, and the directory
// fsynced, so a crash leaves either the old or the new refresh token,
// never a mix or nothing. The directory is created with mode 0700 when
// missing.
func (f *TokenFile) Save(path string) error {
	f.Updated = time.Now().UTC()
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	done := false
	defer func() {
		if !done {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("token file: %w", err)
	}
	done = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// LockTokenFile serialises the users of the token file at path (the
// connections of a run each run the token command at once): it blocks
// until the lock, held on path+".lock", is free.
func LockTokenFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("token file lock: %w", err)
	}
	l, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("token file lock: %w", err)
	}
	if err := lockFile(l); err != nil {
		l.Close()
		return nil, fmt.Errorf("token file lock: %w", err)
	}
	return func() { l.Close() }, nil
}

// reuseMargin is how long a stored access token must still be valid to be
// handed out again instead of refreshed.
const reuseMargin = 5 * time.Minute

// StoredToken returns an access token for the login stored at path: the
// stored access token while it is valid for reuseMargin more (unless
// fresh), else one from the refresh grant, whose rotated refresh token is
// saved before the access token is returned. m gives the application
// (empty fields are taken from the file). Concurrent callers (processes
// too) are serialised by LockTokenFile, so each refresh uses the latest
// refresh token.
func StoredToken(ctx context.Context, m Microsoft, path string, fresh bool) (string, error) {
	unlock, err := LockTokenFile(path)
	if err != nil {
		return "", err
	}
	defer unlock()
	f, err := LoadTokenFile(path)
	if err != nil {
		return "", err
	}
	if !fresh && f.AccessToken != "" && time.Until(f.Expiry) > reuseMargin {
		return f.AccessToken, nil
	}
	if m.Authority == "" {
		m.Authority = f.Authority
	}
	if m.Tenant == "" {
		m.Tenant = f.Tenant
	}
	if m.ClientID == "" {
		m.ClientID = f.ClientID
	}
	tok, err := m.Refresh(ctx, f.RefreshToken, f.Scopes)
	if err != nil {
		return "", err
	}
	f.RefreshToken, f.AccessToken, f.Expiry = tok.RefreshToken, tok.AccessToken, tok.Expiry
	if err := f.Save(path); err != nil {
		return "", fmt.Errorf("save the new refresh token: %w", err)
	}
	return tok.AccessToken, nil
}
