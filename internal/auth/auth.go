package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
)

// ErrAuth is wrapped by every error that means the login cannot succeed:
// the server refused it, or no secret or token could be obtained.
// mailconn.ErrAuth is this error.
var ErrAuth = errors.New("authentication failed")

// ErrConfig is wrapped by the errors of New: the fields contradict each
// other (a usage error).
var ErrConfig = errors.New("invalid login settings")

// Method is how an account logs in.
type Method string

const (
	MethodPassword Method = "password" // the user's own password
	MethodAdmin    Method = "admin"    // an admin's password, acting as the user (SASL PLAIN authzid)
	MethodOAuth2   Method = "oauth2"   // an OAuth2 bearer token (XOAUTH2 or OAUTHBEARER)
)

// Mechanism is a way of sending the credentials.
type Mechanism string

const (
	// MechAuto lets the login choose from the method and what the server
	// offers.
	MechAuto Mechanism = ""
	// MechLogin is the protocol's own command: IMAP LOGIN, POP3 USER/PASS.
	MechLogin Mechanism = "LOGIN"
	// MechPlain is SASL PLAIN (RFC 4616): IMAP AUTHENTICATE PLAIN, POP3
	// AUTH PLAIN.
	MechPlain Mechanism = "PLAIN"
	// MechXOAuth2 is Google's and Microsoft's XOAUTH2.
	MechXOAuth2 Mechanism = "XOAUTH2"
	// MechOAuthBearer is OAUTHBEARER (RFC 7628).
	MechOAuthBearer Mechanism = "OAUTHBEARER"
)

// ParseMechanism reads a --auth-mech value (any case).
func ParseMechanism(s string) (Mechanism, error) {
	m := Mechanism(strings.ToUpper(strings.TrimSpace(s)))
	switch m {
	case MechAuto, MechLogin, MechPlain, MechXOAuth2, MechOAuthBearer:
		return m, nil
	}
	return "", fmt.Errorf("%w: unknown mechanism %q (want login, plain, xoauth2 or oauthbearer)", ErrConfig, s)
}

// Config holds the explicit fields an Auth is built from: by the command
// line today, by a configuration file later. Exactly one of Password,
// AdminUser (with AdminPassword) and Tokens is set.
type Config struct {
	// User is the mailbox the session acts on: the URL's user.
	User string
	// Password is User's own password.
	Password string
	// AdminUser authenticates with AdminPassword and acts as User (SASL
	// PLAIN with User as the authorization identity: Dovecot master users,
	// Cyrus admins).
	AdminUser     string
	AdminPassword string
	// Tokens gives OAuth2 access tokens. It is asked on every login and
	// once more after a refused token.
	Tokens TokenSource
	// Mechanism forces a mechanism; MechAuto chooses.
	Mechanism Mechanism
}

// Auth is how one account logs in, for IMAP and POP3 alike. It is
// immutable and safe for concurrent use by several connections.
type Auth struct {
	method   Method
	user     string
	admin    string
	password string // the user's or the admin's
	tokens   TokenSource
	mech     Mechanism
}

// Password returns a password login for user.
func Password(user, password string) *Auth {
	return &Auth{method: MethodPassword, user: user, password: password}
}

// New checks c and builds its Auth.
func New(c Config) (*Auth, error) {
	if c.User == "" {
		return nil, fmt.Errorf("%w: no user name", ErrConfig)
	}
	a := &Auth{user: c.User, mech: c.Mechanism}
	n := 0
	if c.Password != "" {
		n++
		a.method, a.password = MethodPassword, c.Password
	}
	if c.AdminUser != "" {
		n++
		if c.AdminPassword == "" {
			return nil, fmt.Errorf("%w: admin login as %s without the admin's password", ErrConfig, c.AdminUser)
		}
		a.method, a.admin, a.password = MethodAdmin, c.AdminUser, c.AdminPassword
	} else if c.AdminPassword != "" {
		return nil, fmt.Errorf("%w: an admin password without an admin user", ErrConfig)
	}
	if c.Tokens != nil {
		n++
		a.method, a.tokens = MethodOAuth2, c.Tokens
	}
	switch {
	case n == 0:
		return nil, fmt.Errorf("%w: no password, admin login or OAuth2 token source for %s", ErrConfig, c.User)
	case n > 1:
		return nil, fmt.Errorf("%w: give only one of a password, an admin login and an OAuth2 token source for %s", ErrConfig, c.User)
	}
	if err := CheckMechanism(a.method, c.Mechanism); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckMechanism reports whether mech can send a login of method m, so
// that a caller can refuse a bad combination before asking for a secret.
func CheckMechanism(m Method, mech Mechanism) error {
	if !slices.Contains(m.mechanisms(), mech) {
		return fmt.Errorf("%w: mechanism %s does not go with a%s %s login (use %s)", ErrConfig, mech, article(m), m, strings.Join(names(m.mechanisms()[1:]), " or "))
	}
	return nil
}

func article(m Method) string {
	if m == MethodAdmin || m == MethodOAuth2 {
		return "n"
	}
	return ""
}

func names(ms []Mechanism) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = strings.ToLower(string(m))
	}
	return out
}

// mechanisms are the mechanisms a method can use, MechAuto first.
func (m Method) mechanisms() []Mechanism {
	switch m {
	case MethodPassword:
		return []Mechanism{MechAuto, MechLogin, MechPlain}
	case MethodAdmin:
		return []Mechanism{MechAuto, MechPlain}
	}
	return []Mechanism{MechAuto, MechXOAuth2, MechOAuthBearer}
}

// Method is how the account logs in.
func (a *Auth) Method() Method { return a.method }

// User is the mailbox the session acts on.
func (a *Auth) User() string { return a.user }

// Who names the login in messages: "alice", or "alice (as admin admin)".
// It holds no secret.
func (a *Auth) Who() string {
	if a.method == MethodAdmin {
		return a.user + " (as admin " + a.admin + ")"
	}
	return a.user
}

// Offer is what the server said it accepts, from its capabilities before
// login.
type Offer struct {
	// Listed reports whether the server listed its capabilities at all
	// (POP3 servers without CAPA do not).
	Listed bool
	// SASL are the SASL mechanisms offered (IMAP AUTH=…, POP3 SASL …).
	SASL []string
	// LoginDisabled is IMAP's LOGINDISABLED: the LOGIN command is refused.
	LoginDisabled bool
}

func (o Offer) has(m Mechanism) bool {
	return slices.ContainsFunc(o.SASL, func(s string) bool { return strings.EqualFold(s, string(m)) })
}

// Attempt is one login an adapter performs: the protocol's login command
// with User and Password when Mechanism is MechLogin, else the SASL
// exchange of SASL.
type Attempt struct {
	Mechanism      Mechanism
	SASL           sasl.Client
	User, Password string
}

// RefusedError is what an adapter's try function returns when the server
// answered the login with a refusal (IMAP NO or BAD, POP3 -ERR), as
// opposed to a broken connection. Text is the server's answer, which must
// not hold a secret (servers do not echo passwords or tokens).
type RefusedError struct{ Text string }

func (e *RefusedError) Error() string { return "server refused the login: " + e.Text }

// Login logs in through try, which performs one Attempt on the adapter's
// connection. server names the server in messages (host:port). A refusal
// of an OAuth2 token is tried once more with a token asked again. The
// error wraps ErrAuth when the login was refused or the credentials could
// not be obtained; any other error of try (a broken connection) is
// returned as it is.
func (a *Auth) Login(ctx context.Context, server string, offer Offer, try func(Attempt) error) error {
	mech, err := a.choose(offer)
	if err != nil {
		return fmt.Errorf("%w for %s on %s: %w", ErrAuth, a.Who(), server, err)
	}
	attempts := 1
	if a.method == MethodOAuth2 {
		attempts = 2
	}
	var refused *RefusedError
	var detail string
	for i := range attempts {
		at := Attempt{Mechanism: mech}
		var failure *string
		switch a.method {
		case MethodOAuth2:
			token, err := a.tokens.Token(ctx, i > 0)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return fmt.Errorf("%w for %s on %s: %w", ErrAuth, a.Who(), server, err)
			}
			var c oauthClient
			if mech == MechXOAuth2 {
				c = &xoauth2Client{user: a.user, token: token}
			} else {
				c = &oauthBearerClient{user: a.user, token: token}
			}
			at.SASL, failure = c, c.failure()
		case MethodAdmin:
			at.SASL = sasl.NewPlainClient(a.user, a.admin, a.password)
		default:
			if mech == MechPlain {
				at.SASL = sasl.NewPlainClient("", a.user, a.password)
			} else {
				at.User, at.Password = a.user, a.password
			}
		}
		err := try(at)
		if err == nil {
			return nil
		}
		if !errors.As(err, &refused) {
			return err
		}
		if failure != nil {
			detail = *failure
		}
	}
	msg := fmt.Sprintf("%s for %s on %s: %s", ErrAuth.Error(), a.Who(), server, strings.TrimSpace(refused.Text))
	if detail != "" {
		msg += " (" + detail + ")"
	}
	if h := a.hint(mech, refused.Text); h != "" {
		msg += "; " + h
	}
	return &loginError{msg: msg}
}

type loginError struct{ msg string }

func (e *loginError) Error() string { return e.msg }
func (e *loginError) Unwrap() error { return ErrAuth }

// choose picks the mechanism of a login.
func (a *Auth) choose(o Offer) (Mechanism, error) {
	if a.mech != MechAuto {
		if a.mech == MechLogin && o.LoginDisabled {
			return "", errors.New("the server allows no LOGIN command on this connection (LOGINDISABLED)")
		}
		return a.mech, nil
	}
	switch a.method {
	case MethodAdmin:
		return MechPlain, nil
	case MethodOAuth2:
		// XOAUTH2 is what Microsoft and Google accept; OAUTHBEARER is the
		// standard one, taken when it is offered and XOAUTH2 is not.
		if !o.has(MechXOAuth2) && o.has(MechOAuthBearer) {
			return MechOAuthBearer, nil
		}
		return MechXOAuth2, nil
	}
	if o.LoginDisabled {
		if !o.has(MechPlain) {
			return "", errors.New("the server allows no password login on this connection")
		}
		return MechPlain, nil
	}
	return MechLogin, nil
}

// hint explains a refusal that has a known cause beyond a wrong password.
func (a *Auth) hint(mech Mechanism, text string) string {
	if a.method == MethodOAuth2 {
		return fmt.Sprintf("the server refused the OAuth2 token (%s), also when asked again; check that the token command gives a current token for %s with the IMAP/POP scope", mech, a.user)
	}
	return PasswordHint(text)
}

// PasswordHint returns an explanation for a server's refusal of a password
// login whose text shows that the account does not take passwords at all:
// "" when the text says nothing of the kind.
func PasswordHint(text string) string {
	t := strings.ToLower(strings.TrimSpace(text))
	switch {
	case strings.Contains(t, "application-specific password") || strings.Contains(t, "app password"):
		return "this account does not accept its normal password over IMAP/POP3: create an app password in the account's security settings (Gmail: myaccount.google.com/apppasswords, after turning on 2-step verification) and give it as the password, or log in with OAuth2 (--oauth2-token-command; see docs/OAUTH.md)"
	case microsoftGeneric(t):
		return "Microsoft 365 and Outlook.com refuse password logins (basic authentication is off) and answer this also for a wrong password: log in with OAuth2 — 'mailvault auth login --provider microsoft --client-id ID' once, then --oauth2-token-command 'mailvault auth token --provider microsoft' (see docs/OAUTH.md)"
	}
	return ""
}

// microsoftGeneric recognises Exchange Online's answers to a password
// login it will not take (lower-cased text).
func microsoftGeneric(t string) bool {
	t = strings.TrimSuffix(t, ".")
	switch t {
	case "login failed", "authenticate failed", "logon failure: unknown user name or bad password":
		return true
	}
	return false
}
