// Package oauthtest runs an authorization server on 127.0.0.1 that acts as
// the Microsoft identity platform's v2.0 endpoints do for mailvault: the
// device-code flow, the refresh grant with strict rotation (a refresh
// token works once), and the client-credentials grant. It also serves as
// the token introspection endpoint of Dovecot's oauth2 passdb
// (dovecottest.Options.OAuth2IntrospectionURL), so that the tokens it
// issues log in to a test Dovecot.
package oauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// Options configures Start.
type Options struct {
	Tenant       string // the tenant in the URL path, e.g. "contoso"
	ClientID     string // the only client accepted
	ClientSecret string // the client-credentials secret
	User         string // the user the issued tokens belong to (introspection)
	// Pending is how many device-code polls answer authorization_pending
	// before the user "approves".
	Pending int
	// ExpiresIn is the access tokens' lifetime in seconds (default 3600).
	ExpiresIn int
}

// Server is a running authorization server.
type Server struct {
	// URL is the authority: URL/TENANT/oauth2/v2.0/{devicecode,token}.
	URL string
	// IntrospectURL is the introspection endpoint for Dovecot.
	IntrospectURL string

	opts Options
	mu   sync.Mutex
	n    int             // tokens issued
	rt   string          // the one valid refresh token
	at   map[string]bool // valid access tokens
	used []string        // refresh tokens presented, in order
	reqs []string        // "grant_type" of each token request
	poll int
	errs []string // protocol mistakes of the client
}

// Start starts the server; it stops when the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.ExpiresIn == 0 {
		opts.ExpiresIn = 3600
	}
	s := &Server{opts: opts, at: map[string]bool{}}
	mux := http.NewServeMux()
	base := "/" + opts.Tenant + "/oauth2/v2.0"
	mux.HandleFunc("POST "+base+"/devicecode", s.deviceCode)
	mux.HandleFunc("POST "+base+"/token", s.token)
	mux.HandleFunc("POST /introspect", s.introspect)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.IntrospectURL = srv.URL + "/introspect"
	return s
}

func reply(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func oauthErr(w http.ResponseWriter, code string) {
	reply(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": "AADSTS00000: " + code + " (test).\r\nTrace ID: 0000\r\nTimestamp: 2026-12-01"})
}

func (s *Server) mistake(format string, args ...any) {
	s.errs = append(s.errs, fmt.Sprintf(format, args...))
}

func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.FormValue("client_id") != s.opts.ClientID {
		oauthErr(w, "unauthorized_client")
		return
	}
	scope := r.FormValue("scope")
	for _, want := range []string{"https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"} {
		if !strings.Contains(scope, want) {
			s.mistake("device code request without scope %s", want)
		}
	}
	reply(w, http.StatusOK, map[string]any{
		"device_code": "device-code-1", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin",
		"expires_in": 900, "interval": 1, "message": "To sign in, use a web browser…",
	})
}

// issue returns a new access and refresh token pair; the previous refresh
// token stops working (rotation).
func (s *Server) issue(w http.ResponseWriter, refresh bool) {
	s.n++
	at := fmt.Sprintf("%s.access.%d", s.opts.User, s.n)
	s.at[at] = true
	resp := map[string]any{"token_type": "Bearer", "access_token": at, "expires_in": s.opts.ExpiresIn}
	if refresh {
		s.rt = fmt.Sprintf("refresh.%d", s.n)
		resp["refresh_token"] = s.rt
	}
	reply(w, http.StatusOK, resp)
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	grant := r.FormValue("grant_type")
	s.reqs = append(s.reqs, grant)
	if r.FormValue("client_id") != s.opts.ClientID {
		oauthErr(w, "unauthorized_client")
		return
	}
	switch grant {
	case "urn:ietf:params:oauth:grant-type:device_code":
		if r.FormValue("device_code") != "device-code-1" {
			oauthErr(w, "invalid_grant")
			return
		}
		if s.poll < s.opts.Pending {
			s.poll++
			oauthErr(w, "authorization_pending")
			return
		}
		s.issue(w, true)
	case "refresh_token":
		rt := r.FormValue("refresh_token")
		s.used = append(s.used, rt)
		if !strings.Contains(r.FormValue("scope"), "IMAP.AccessAsUser.All") {
			s.mistake("refresh without the IMAP scope: %q", r.FormValue("scope"))
		}
		if rt == "" || rt != s.rt {
			oauthErr(w, "invalid_grant")
			return
		}
		s.issue(w, true)
	case "client_credentials":
		if r.FormValue("client_secret") != s.opts.ClientSecret || s.opts.ClientSecret == "" {
			oauthErr(w, "invalid_client")
			return
		}
		if r.FormValue("scope") != "https://outlook.office365.com/.default" {
			s.mistake("client credentials with scope %q", r.FormValue("scope"))
		}
		s.issue(w, false)
	default:
		oauthErr(w, "unsupported_grant_type")
	}
}

func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	ok := s.at[r.FormValue("token")]
	s.mu.Unlock()
	if !ok {
		reply(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	reply(w, http.StatusOK, map[string]any{"active": true, "username": s.opts.User})
}

// Revoke makes the current refresh token and every access token invalid,
// as a password change or an admin's revocation does.
func (s *Server) Revoke() {
	s.mu.Lock()
	s.rt = ""
	s.at = map[string]bool{}
	s.mu.Unlock()
}

// ExpireAccessTokens makes every access token issued so far invalid (the
// refresh token keeps working), as if they had expired early.
func (s *Server) ExpireAccessTokens() {
	s.mu.Lock()
	s.at = map[string]bool{}
	s.mu.Unlock()
}

// RefreshTokens returns the refresh tokens presented so far, in order.
func (s *Server) RefreshTokens() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.used...)
}

// CurrentRefreshToken is the one refresh token that works now.
func (s *Server) CurrentRefreshToken() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rt
}

// Requests returns the grant type of each token request, in order.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.reqs...)
}

// Mistakes returns what the client got wrong (missing scopes …).
func (s *Server) Mistakes() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.errs...)
}
