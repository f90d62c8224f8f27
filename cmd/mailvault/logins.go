package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/mailurl"
	"github.com/mailvault/mailvault/internal/secret"
)

// adminEnv is the environment variable of an account's admin password:
// MAILVAULT_ADMIN_PASSWORD, MAILVAULT_TARGET_ADMIN_PASSWORD.
func (acc account) adminEnv() string {
	return strings.Replace(acc.env, "_PASSWORD", "_ADMIN_PASSWORD", 1)
}

// loginFlags say how an account logs in besides its own password: an
// admin login or OAuth2.
func loginFlags(acc account) []cli.Flag {
	p, w := acc.prefix, acc.what
	return []cli.Flag{
		&cli.StringFlag{Name: p + "admin-user", Usage: "log in to the " + w + "server as admin `NAME` with NAME's password and act as the URL's user (SASL PLAIN with an authorization identity: Dovecot master users, Cyrus admins)"},
		&cli.StringFlag{Name: p + "admin-password-file", Usage: "read the " + w + "admin's password from the first line of `FILE` (chmod 600)"},
		&cli.StringFlag{Name: p + "admin-password-command", Usage: "run `CMD` with sh -c and use the first line it prints as the " + w + "admin's password"},
		&cli.StringFlag{Name: p + "admin-password", Hidden: true},
		&cli.StringFlag{Name: p + "oauth2-token-command", Usage: "log in to the " + w + "server with OAuth2: run `CMD` with sh -c for each connection and use the first line it prints as the access token"},
		&cli.StringFlag{Name: p + "oauth2-token-file", Usage: "log in to the " + w + "server with OAuth2: read the access token from the first line of `FILE` for each connection"},
		&cli.StringFlag{Name: p + "oauth2-token", Hidden: true},
		&cli.StringFlag{Name: p + "auth-mech", Usage: "force the " + w + "login mechanism `MECH`: login (IMAP LOGIN, POP3 USER/PASS), plain, xoauth2 or oauthbearer (default: chosen from the login and the server's offer)"},
	}
}

// secretFlagError refuses a secret given as a flag value.
func secretFlagError(flag string) error {
	return fmt.Errorf("%w (--%s)", errPasswordFlag, flag)
}

// accountAuth builds how the account of u logs in from the flags of acc,
// and obtains the password it needs. Rules (README, "Logins"):
//   - --oauth2-token-command or --oauth2-token-file: OAuth2, no password;
//   - --admin-user: the admin's password, from --admin-password-file,
//     $MAILVAULT_ADMIN_PASSWORD or --admin-password-command, and when none
//     of these is set, from the usual password sources;
//   - otherwise the user's password from the usual sources.
func accountAuth(c *cli.Context, u *mailurl.URL, acc account, warn func(string, ...any)) (*auth.Auth, error) {
	p := acc.prefix
	for _, f := range []string{"password", "admin-password", "oauth2-token"} {
		if c.IsSet(p + f) {
			return nil, secretFlagError(p + f)
		}
	}
	mech, err := auth.ParseMechanism(c.String(p + "auth-mech"))
	if err != nil {
		return nil, usagef("--%sauth-mech: %v", p, err)
	}
	admin := c.String(p + "admin-user")
	tokCmd, tokFile := c.String(p+"oauth2-token-command"), c.String(p+"oauth2-token-file")
	pwFlags := c.IsSet(p+"password-file") || c.IsSet(p+"password-command")
	adminPwFlags := c.IsSet(p+"admin-password-file") || c.IsSet(p+"admin-password-command")
	cfg := auth.Config{User: u.User, Mechanism: mech}
	method := auth.MethodPassword
	switch {
	case tokCmd != "" || tokFile != "":
		method = auth.MethodOAuth2
	case admin != "":
		method = auth.MethodAdmin
	}
	// Refuse a mechanism that cannot send this login before asking for a
	// secret (a prompt would be wasted).
	if err := auth.CheckMechanism(method, mech); err != nil {
		return nil, usagef("--%sauth-mech: %v", p, err)
	}
	e := envOf(c)
	switch {
	case tokCmd != "" || tokFile != "":
		if tokCmd != "" && tokFile != "" {
			return nil, usagef("give one of --%soauth2-token-command and --%soauth2-token-file", p, p)
		}
		if admin != "" || pwFlags || adminPwFlags {
			return nil, usagef("an OAuth2 login (--%soauth2-token-…) takes no password and no --%sadmin-user", p, p)
		}
		if tokCmd != "" {
			cfg.Tokens = auth.CommandTokens{Command: tokCmd}
		} else {
			path := expandHome(tokFile)
			if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
				warn(fmt.Sprintf("OAuth2 token file %s is readable by other users (chmod 600 it)", path))
			}
			cfg.Tokens = auth.FileTokens{Path: path}
		}
	case admin != "":
		if pwFlags && adminPwFlags {
			return nil, usagef("with --%sadmin-user only the admin's password is needed: give --%sadmin-password-file/-command or --%spassword-file/-command, not both", p, p, p)
		}
		who := fmt.Sprintf("admin %s (acting as %s)", admin, u)
		pw, err := secret.Sources{
			File: c.String(p + "admin-password-file"), Command: c.String(p + "admin-password-command"), EnvVar: acc.adminEnv(),
			Getenv: e.getenv, Warn: func(s string) { warn(s) },
		}.Get(c.Context, who)
		if errors.Is(err, secret.ErrNoPassword) {
			pw, err = secret.Sources{
				File: c.String(p + "password-file"), Command: c.String(p + "password-command"), EnvVar: acc.env,
				Getenv: e.getenv, Stdin: e.stdin, Prompt: e.stderr, Warn: func(s string) { warn(s) },
			}.Get(c.Context, who)
			if errors.Is(err, secret.ErrNoPassword) {
				return nil, fmt.Errorf("%w for %s: set %s, or use --%sadmin-password-file or --%sadmin-password-command (or run on a terminal to be asked)", secret.ErrNoPassword, who, acc.adminEnv(), p, p)
			}
		}
		if err != nil {
			return nil, err
		}
		cfg.AdminUser, cfg.AdminPassword = admin, pw
	default:
		if adminPwFlags {
			return nil, usagef("--%sadmin-password-file and --%sadmin-password-command go with --%sadmin-user", p, p, p)
		}
		pw, err := secret.Sources{
			File: c.String(p + "password-file"), Command: c.String(p + "password-command"), EnvVar: acc.env,
			Getenv: e.getenv, Stdin: e.stdin, Prompt: e.stderr,
			Warn: func(s string) { warn(s) },
		}.Get(c.Context, u.String())
		if err != nil {
			return nil, err
		}
		cfg.Password = pw
	}
	a, err := auth.New(cfg)
	if err != nil {
		return nil, usagef("%v", err)
	}
	return a, nil
}
