package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/secret"
)

// clientSecretEnv holds an application's client secret for app-only
// tokens.
const clientSecretEnv = "MAILVAULT_OAUTH2_CLIENT_SECRET"

func authCommand() *cli.Command {
	return &cli.Command{
		Name:  "auth",
		Usage: "sign in to a provider for OAuth2 logins, and print access tokens",
		Description: `Microsoft 365 and Outlook.com take IMAP and POP3 logins only with OAuth2.
'mailvault auth login' signs in once with the device-code flow (open a web
page on any device, enter a code) and stores the refresh token in a file
readable only by you; 'mailvault auth token' then prints a fresh access
token whenever asked, so it serves as the --oauth2-token-command of backup,
restore and migrate. See docs/OAUTH.md for registering the application
(--client-id) and for app-only access to every mailbox of a tenant.

EXAMPLES:
   mailvault auth login --provider microsoft --client-id 00000000-0000-0000-0000-000000000000
   mailvault backup imaps://alice@contoso.com@outlook.office365.com ./vault \
       --oauth2-token-command 'mailvault auth token --provider microsoft'
   mailvault auth token --provider microsoft --tenant contoso.onmicrosoft.com \
       --client-id ID --client-secret-file ~/.mailvault-app-secret      # app-only

` + exitCodesHelp,
		Subcommands: []*cli.Command{authLoginCommand(), authTokenCommand()},
	}
}

// providerFlags name the identity provider and the application.
func providerFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "the identity provider: `microsoft`"},
		&cli.StringFlag{Name: "tenant", Usage: "Microsoft tenant: `T` = common (work, school and personal accounts; the default at login), organizations, consumers, or a tenant ID or domain"},
		&cli.StringFlag{Name: "client-id", Usage: "the application (client) `ID` registered in Microsoft Entra (docs/OAUTH.md)"},
		&cli.StringFlag{Name: "token-file", Usage: "where the refresh token is kept (`FILE`, mode 0600; default: your config directory's mailvault/microsoft-token.json)"},
		&cli.StringFlag{Name: "authority", Value: auth.DefaultAuthority, Usage: "the identity platform's `URL` (a national cloud's, e.g. https://login.microsoftonline.us)"},
	}
}

func authLoginCommand() *cli.Command {
	return &cli.Command{
		Name:  "login",
		Usage: "sign in with the device-code flow and store the refresh token",
		Description: `Prints an address and a code: open the address on any device, enter the
code and sign in to the mailbox's account. The refresh token is stored in
--token-file (mode 0600); one file per account.

` + exitCodesHelp,
		Flags: providerFlags(),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("mailvault auth login takes no arguments, only flags")
			}
			m, path, err := microsoftApp(c)
			if err != nil {
				return err
			}
			if m.ClientID == "" {
				return usagef("auth login needs --client-id: the application registered for mailvault in Microsoft Entra (see docs/OAUTH.md)")
			}
			if m.Tenant == "" {
				m.Tenant = auth.DefaultTenant
			}
			e := envOf(c)
			tok, err := m.DeviceLogin(c.Context, func(dc auth.DeviceCode) {
				fmt.Fprintf(e.stderr, "To sign in, open %s and enter the code %s", dc.VerificationURI, dc.UserCode)
				if !dc.Expiry.IsZero() {
					fmt.Fprintf(e.stderr, " (valid until %s)", dc.Expiry.Local().Format("15:04"))
				}
				fmt.Fprintln(e.stderr)
			})
			if err != nil {
				return fmt.Errorf("%w: %w", auth.ErrAuth, err)
			}
			f := &auth.TokenFile{Provider: "microsoft", Tenant: m.Tenant, ClientID: m.ClientID, Scopes: auth.DelegatedScopes,
				RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry}
			if m.Authority != auth.DefaultAuthority {
				f.Authority = m.Authority
			}
			unlock, err := auth.LockTokenFile(path)
			if err != nil {
				return err
			}
			defer unlock()
			if err := f.Save(path); err != nil {
				return err
			}
			cmd := "mailvault auth token --provider microsoft"
			if c.IsSet("token-file") {
				cmd += " --token-file " + shellQuote(path)
			}
			fmt.Fprintf(e.stdout, "signed in; the refresh token is in %s\nlog in with: --oauth2-token-command \"%s\"\n", path, cmd)
			return nil
		},
	}
}

func authTokenCommand() *cli.Command {
	return &cli.Command{
		Name:  "token",
		Usage: "print an access token (for --oauth2-token-command)",
		Description: `Prints an access token on standard output. With the login stored by
'mailvault auth login' (--token-file): the stored access token while it is
valid for 5 more minutes, else a new one from the refresh token, whose
successor is saved first (Microsoft rotates refresh tokens). Concurrent runs
take turns on the file. With MAILVAULT_OAUTH2_RETRY=1 (set by mailvault when
the server refused the previous token) or --refresh, a new one is always
fetched.

With --client-secret-file (or $` + clientSecretEnv + `): an app-only token
for --tenant and --client-id by the client-credentials grant, which logs in
to any mailbox the admin gave the application access to (docs/OAUTH.md).

` + exitCodesHelp,
		Flags: append(providerFlags(),
			&cli.BoolFlag{Name: "refresh", Usage: "fetch a new access token even if the stored one is still valid"},
			&cli.StringFlag{Name: "client-secret-file", Usage: "app-only access: read the application's client secret from the first line of `FILE` (chmod 600)"},
			&cli.StringFlag{Name: "client-secret", Hidden: true},
		),
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return usagef("mailvault auth token takes no arguments, only flags")
			}
			if c.IsSet("client-secret") {
				return secretFlagError("client-secret")
			}
			m, path, err := microsoftApp(c)
			if err != nil {
				return err
			}
			e := envOf(c)
			ctx, cancel := context.WithTimeout(c.Context, 2*time.Minute)
			defer cancel()
			var tok string
			if c.IsSet("client-secret-file") || e.getenv(clientSecretEnv) != "" {
				if m.Tenant == "" || m.ClientID == "" || m.Tenant == "common" || m.Tenant == "organizations" || m.Tenant == "consumers" {
					return usagef("app-only tokens need --tenant (your tenant's ID or domain) and --client-id")
				}
				secretValue, err := secret.Sources{File: c.String("client-secret-file"), EnvVar: clientSecretEnv, Getenv: e.getenv}.Get(ctx, "the client secret")
				if err != nil {
					return err
				}
				t, err := m.AppToken(ctx, secretValue)
				if err != nil {
					return fmt.Errorf("%w: %w", auth.ErrAuth, err)
				}
				tok = t.AccessToken
			} else {
				fresh := c.Bool("refresh") || e.getenv(auth.RetryEnv) == "1"
				tok, err = auth.StoredToken(ctx, m, path, fresh)
				if err != nil {
					if errors.Is(err, auth.ErrNoTokenFile) || errors.Is(err, auth.ErrReauthenticate) {
						return fmt.Errorf("%w: %w", auth.ErrAuth, err)
					}
					return err
				}
			}
			fmt.Fprintln(e.stdout, tok)
			return nil
		},
	}
}

// microsoftApp reads the provider flags: the application and the token
// file.
func microsoftApp(c *cli.Context) (auth.Microsoft, string, error) {
	if p := c.String("provider"); p != "microsoft" {
		if p == "" {
			return auth.Microsoft{}, "", usagef("--provider is needed: microsoft (Gmail: see docs/OAUTH.md)")
		}
		return auth.Microsoft{}, "", usagef("--provider %q: only microsoft has a built-in sign-in (Gmail: app passwords or your own token command, see docs/OAUTH.md)", p)
	}
	m := auth.Microsoft{Tenant: c.String("tenant"), ClientID: c.String("client-id")}
	if c.IsSet("authority") || c.Command.Name == "login" {
		m.Authority = strings.TrimRight(c.String("authority"), "/")
	}
	path := expandHome(c.String("token-file"))
	if path == "" {
		dir, err := os.UserConfigDir()
		if err != nil {
			return m, "", usagef("no config directory (%v): give --token-file", err)
		}
		path = filepath.Join(dir, "mailvault", "microsoft-token.json")
	}
	return m, path, nil
}

// shellQuote quotes s for sh when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-~") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
