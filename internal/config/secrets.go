package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/secret"
)

// commandTimeout bounds a password command: a nightly run must not wait
// forever for one that asks a question nobody answers.
const commandTimeout = 2 * time.Minute

// ResolveSecrets reads the secret of every account in accounts (all of
// c's when nil) and sets its Auth: password files (which must be readable
// by their owner only), environment variables and password commands, each
// read or run once however many accounts share it (a server's admin
// password). OAuth2 token files are checked (present, owner-only); token
// commands run later, at each login. The error names the file and line
// of the key whose secret is missing.
func (c *Config) ResolveSecrets(ctx context.Context, accounts []*Account, getenv func(string) string) error {
	if accounts == nil {
		accounts = c.Accounts
	}
	cache := map[SecretRef]string{}
	get := func(ref SecretRef) (string, error) {
		key := SecretRef{File: ref.File, Env: ref.Env, Command: ref.Command}
		if pw, ok := cache[key]; ok {
			return pw, nil
		}
		pw, err := c.read(ctx, ref, getenv)
		if err != nil {
			return "", err
		}
		cache[key] = pw
		return pw, nil
	}
	for _, a := range accounts {
		cfg := auth.Config{User: a.Source.User, Mechanism: a.Login.Mechanism}
		var err error
		switch a.Login.Method {
		case auth.MethodPassword:
			cfg.Password, err = get(a.Login.Password)
		case auth.MethodAdmin:
			cfg.AdminUser = a.Login.AdminUser
			cfg.AdminPassword, err = get(a.Login.AdminPassword)
		case auth.MethodOAuth2:
			if a.Login.TokenCommand != "" {
				cfg.Tokens = auth.CommandTokens{Command: a.Login.TokenCommand}
			} else {
				if err := ownerOnly(c.Path, a.Login.TokenLine, "oauth2_token_file", a.Login.TokenFile); err != nil {
					return err
				}
				cfg.Tokens = auth.FileTokens{Path: a.Login.TokenFile}
			}
		}
		if err != nil {
			return err
		}
		if a.Auth, err = auth.New(cfg); err != nil {
			return errorf(c.Path, a.Line, "account %q: %s", a.Name, authMessage(err))
		}
	}
	return nil
}

// read gets one secret.
func (c *Config) read(ctx context.Context, ref SecretRef, getenv func(string) string) (string, error) {
	if ref.File != "" {
		if err := ownerOnly(c.Path, ref.Line, ref.Key, ref.File); err != nil {
			return "", err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, commandTimeout)
	defer cancel()
	pw, err := secret.Sources{File: ref.File, Command: ref.Command, EnvVar: ref.Env, Getenv: func(k string) string {
		if ref.Env == "" {
			return ""
		}
		return getenv(k)
	}}.Get(ctx, ref.Key)
	if err != nil {
		if errors.Is(err, secret.ErrNoPassword) {
			return "", errorf(c.Path, ref.Line, "%s: the environment variable %s is not set (or empty)", ref.Key, ref.Env)
		}
		if ctx.Err() == context.DeadlineExceeded {
			return "", errorf(c.Path, ref.Line, "%s: the command gave no password within %s", ref.Key, commandTimeout)
		}
		return "", errorf(c.Path, ref.Line, "%s: %v", ref.Key, err)
	}
	return pw, nil
}

// ownerOnly refuses a secret file that is missing, not a regular file, or
// readable by other users than its owner.
func ownerOnly(file string, line int, key, path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return errorf(file, line, "%s: %v", key, err)
	}
	if !fi.Mode().IsRegular() {
		return errorf(file, line, "%s: %s is not a regular file", key, path)
	}
	if m := fi.Mode().Perm(); m&0o044 != 0 {
		return errorf(file, line, "%s: %s holds a secret and other users can read it (mode %04o): chmod 600 %s", key, path, m, path)
	}
	return nil
}

// Describe says how an account logs in, for messages and check-config:
// never a secret.
func (a *Account) Describe() string {
	switch a.Login.Method {
	case auth.MethodAdmin:
		return fmt.Sprintf("admin %s (%s)", a.Login.AdminUser, a.Login.AdminPassword.Key)
	case auth.MethodOAuth2:
		if a.Login.TokenCommand != "" {
			return "OAuth2 (oauth2_token_command)"
		}
		return "OAuth2 (oauth2_token_file)"
	}
	return "password (" + a.Login.Password.Key + ")"
}
