package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// DefaultAuthority is the Microsoft identity platform of the global cloud.
// National clouds have their own (login.microsoftonline.us,
// login.partner.microsoftonline.cn).
const DefaultAuthority = "https://login.microsoftonline.com"

// DefaultTenant signs in work, school and personal accounts alike.
const DefaultTenant = "common"

// DelegatedScopes are asked for by the device-code login: IMAP and POP3
// as the signed-in user, and a refresh token (offline_access).
var DelegatedScopes = []string{
	"https://outlook.office.com/IMAP.AccessAsUser.All",
	"https://outlook.office.com/POP.AccessAsUser.All",
	"offline_access",
}

// AppScope is the scope of app-only access (client credentials): the
// permissions an admin granted the application (IMAP.AccessAsApp,
// POP.AccessAsApp).
const AppScope = "https://outlook.office365.com/.default"

// ErrReauthenticate means the refresh token was refused (expired, revoked,
// or the password changed): the device-code login must be run again.
var ErrReauthenticate = errors.New("the refresh token was refused")

// Microsoft is an application registered with the Microsoft identity
// platform (Entra ID), which logs in to Exchange Online and Outlook.com.
type Microsoft struct {
	Authority string // "" means DefaultAuthority
	Tenant    string // "" means DefaultTenant; else organizations, consumers, a tenant ID or domain
	ClientID  string // the application (client) ID
	// HTTPClient, if set, makes the requests.
	HTTPClient *http.Client
}

func (m Microsoft) base() string {
	a, t := strings.TrimRight(m.Authority, "/"), m.Tenant
	if a == "" {
		a = DefaultAuthority
	}
	if t == "" {
		t = DefaultTenant
	}
	return a + "/" + url.PathEscape(t) + "/oauth2/v2.0"
}

func (m Microsoft) ctx(ctx context.Context) context.Context {
	if m.HTTPClient != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, m.HTTPClient)
	}
	return ctx
}

func (m Microsoft) config(scopes []string) *oauth2.Config {
	return &oauth2.Config{
		ClientID: m.ClientID,
		Scopes:   scopes,
		Endpoint: oauth2.Endpoint{
			DeviceAuthURL: m.base() + "/devicecode",
			TokenURL:      m.base() + "/token",
			AuthStyle:     oauth2.AuthStyleInParams,
		},
	}
}

// DeviceCode is what the user must do to approve a device-code login.
type DeviceCode struct {
	VerificationURI string
	UserCode        string
	Expiry          time.Time
}

// DeviceLogin runs the device-code flow (RFC 8628) for DelegatedScopes:
// show is called once with the address to open and the code to enter,
// then the token endpoint is polled until the user approved, refused, or
// the code expired. The token holds the first refresh token.
func (m Microsoft) DeviceLogin(ctx context.Context, show func(DeviceCode)) (*oauth2.Token, error) {
	ctx = m.ctx(ctx)
	conf := m.config(DelegatedScopes)
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, fmt.Errorf("device code from %s: %w", m.base(), tokenError(err))
	}
	show(DeviceCode{VerificationURI: da.VerificationURI, UserCode: da.UserCode, Expiry: da.Expiry})
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, errors.New("sign-in: the code expired before it was entered")
		}
		return nil, fmt.Errorf("sign-in: %w", tokenError(err))
	}
	if tok.RefreshToken == "" {
		return nil, errors.New("sign-in: the server gave no refresh token (was offline_access granted?)")
	}
	return tok, nil
}

// Refresh exchanges a refresh token for an access token for scopes (nil:
// DelegatedScopes). Microsoft rotates refresh tokens: the token returned
// holds the new one, which the caller must store before using the access
// token. (x/oauth2's own refresh sends no scope, which the v2.0 endpoint
// documents as required.)
func (m Microsoft) Refresh(ctx context.Context, refreshToken string, scopes []string) (*oauth2.Token, error) {
	if scopes == nil {
		scopes = DelegatedScopes
	}
	form := url.Values{
		"client_id":     {m.ClientID},
		"grant_type":    {"refresh_token"},
		"refresh_token": {refreshToken},
		"scope":         {strings.Join(scopes, " ")},
	}
	client := m.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.base()+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("refresh token at %s: %w", m.base(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("refresh token at %s: %w", m.base(), err)
	}
	var tr struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		RefreshToken string `json:"refresh_token"`
		ExpiresIn    int64  `json:"expires_in"`
		Error        string `json:"error"`
		Description  string `json:"error_description"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, fmt.Errorf("refresh token at %s: HTTP %d, not a token response", m.base(), resp.StatusCode)
	}
	if tr.Error != "" || resp.StatusCode != http.StatusOK || tr.AccessToken == "" {
		e := &oauth2.RetrieveError{ErrorCode: tr.Error, ErrorDescription: tr.Description}
		if tr.Error == "invalid_grant" {
			return nil, fmt.Errorf("%w (%s): sign in again with 'mailvault auth login'", ErrReauthenticate, tokenError(e))
		}
		if tr.Error == "" {
			return nil, fmt.Errorf("refresh token at %s: HTTP %d without an access token", m.base(), resp.StatusCode)
		}
		return nil, fmt.Errorf("refresh token at %s: %w", m.base(), tokenError(e))
	}
	tok := &oauth2.Token{AccessToken: tr.AccessToken, TokenType: tr.TokenType, RefreshToken: tr.RefreshToken}
	if tr.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = refreshToken // not rotated this time
	}
	return tok, nil
}

// AppToken gets an app-only access token with the client-credentials
// grant: the application's secret stands for no user; the mailbox is
// named in the XOAUTH2 login, and the admin must have granted the
// application IMAP.AccessAsApp (or POP.AccessAsApp) and given its service
// principal access to the mailbox in Exchange Online.
func (m Microsoft) AppToken(ctx context.Context, clientSecret string) (*oauth2.Token, error) {
	conf := clientcredentials.Config{
		ClientID:     m.ClientID,
		ClientSecret: clientSecret,
		TokenURL:     m.base() + "/token",
		Scopes:       []string{AppScope},
		AuthStyle:    oauth2.AuthStyleInParams,
	}
	tok, err := conf.Token(m.ctx(ctx))
	if err != nil {
		return nil, fmt.Errorf("app-only token from %s: %w", m.base(), tokenError(err))
	}
	return tok, nil
}

// tokenError renders an error of the token endpoint as code and the first
// line of its description (Microsoft's descriptions add trace ids and
// timestamps on further lines). The response body is never repeated.
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	desc, _, _ := strings.Cut(strings.TrimSpace(re.ErrorDescription), "\n")
	desc = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(desc), "\r"))
	switch {
	case re.ErrorCode != "" && desc != "":
		return fmt.Errorf("%s: %s", re.ErrorCode, desc)
	case re.ErrorCode != "":
		return errors.New(re.ErrorCode)
	case re.Response != nil:
		return fmt.Errorf("HTTP %d", re.Response.StatusCode)
	}
	return errors.New("the token endpoint refused the request")
}
