package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/mailurl"
)

// The scheme table: every kind of SOURCE and TARGET the commands take,
// what each may be used as, and which of the flags that depend on the
// scheme apply to it. A flag given for a scheme it does not apply to is a
// usage error naming both, never silently ignored.

// scheme is one kind of SOURCE or TARGET.
type scheme struct {
	name string // before ":" (local) or "://" (server); "" for a bare USER@HOST
	form string // how help and errors write it
	// What it may be: a backup SOURCE, a restore (and migrate) TARGET,
	// migrate's SOURCE.
	source, target, migrateSource bool
	// local is mail on this computer: PATH follows "name:" or "name://".
	local bool
	// flags are the scheme-dependent flags (schemeFlags) that apply, by
	// name without the account prefix ("target-" for migrate's target).
	flags []string
}

var (
	// loginFlagNames say how to log in to a server (accountFlags). The
	// hidden ones carry a secret and are refused for every scheme
	// (errPasswordFlag) before the table is asked.
	loginFlagNames = []string{"password-file", "password-command", "password", "admin-user", "admin-password-file",
		"admin-password-command", "admin-password", "oauth2-token-command", "oauth2-token-file", "oauth2-token", "auth-mech"}
	tlsFlagNames       = []string{"ca-file", "tls-skip-verify"}
	plaintextFlagNames = []string{"insecure-plaintext", plaintextAck}
	// serverFlagNames apply to every server, as source or target.
	serverFlagNames = slices.Concat(loginFlagNames, tlsFlagNames, []string{"timeout"})
	// throttleFlagNames bound what a backup asks of a server.
	throttleFlagNames = []string{"max-bytes-per-day", "throttle-wait"}
)

// schemeFlags are the flags whose use depends on the scheme, with what
// each is for (said when it is given for a scheme it does not apply to).
// Every other flag of backup, restore and migrate applies to every scheme.
var schemeFlags = map[string]string{
	"timeout":                "it bounds the wait for a mail server",
	"ca-file":                "it is for a mail server's TLS certificate",
	"tls-skip-verify":        "it is for a mail server's TLS certificate",
	"insecure-plaintext":     "it is for imap:// and pop3://, which otherwise require STARTTLS",
	plaintextAck:             "it goes with --insecure-plaintext, for imap:// and pop3://",
	"protocol":               "it chooses the protocol of a bare USER@HOST",
	"delete-after":           "only a POP3 backup deletes from the server: an IMAP or local backup never changes its source",
	"pop3-allow-retr":        "it is for POP3 servers",
	"connections":            "IMAP servers take several connections; a POP3 server allows one session per mailbox, and local mail is read and written by one process",
	"checkpoint":             "it is for backups",
	"window":                 "it is for IMAP targets, which take several APPENDs in flight",
	"max-bytes-per-day":      "it limits what a backup downloads from a mail server",
	"throttle-wait":          "it bounds the waits a mail server asks for",
	"password-file":          "local mail needs no login",
	"password-command":       "local mail needs no login",
	"password":               "local mail needs no login",
	"admin-user":             "local mail needs no login",
	"admin-password-file":    "local mail needs no login",
	"admin-password-command": "local mail needs no login",
	"admin-password":         "local mail needs no login",
	"oauth2-token-command":   "local mail needs no login",
	"oauth2-token-file":      "local mail needs no login",
	"oauth2-token":           "local mail needs no login",
	"auth-mech":              "local mail needs no login",
}

// schemes is the table.
var schemes = []*scheme{
	{name: "imaps", form: "imaps://USER@HOST[:PORT]", source: true, target: true, migrateSource: true,
		flags: slices.Concat(serverFlagNames, throttleFlagNames, []string{"protocol", "connections", "checkpoint", "window"})},
	{name: "imap", form: "imap://USER@HOST[:PORT]", source: true, target: true, migrateSource: true,
		flags: slices.Concat(serverFlagNames, plaintextFlagNames, throttleFlagNames, []string{"protocol", "connections", "checkpoint", "window"})},
	{name: "pop3s", form: "pop3s://USER@HOST[:PORT]", source: true, migrateSource: true,
		flags: slices.Concat(serverFlagNames, throttleFlagNames, []string{"protocol", "delete-after", "pop3-allow-retr", "checkpoint"})},
	{name: "pop3", form: "pop3://USER@HOST[:PORT]", source: true, migrateSource: true,
		flags: slices.Concat(serverFlagNames, plaintextFlagNames, throttleFlagNames, []string{"protocol", "delete-after", "pop3-allow-retr", "checkpoint"})},
	// A bare USER@HOST takes what any server protocol takes; once the
	// protocol is found, the flags are checked again (checkDetected).
	{name: "", form: "USER@HOST[:PORT]", source: true,
		flags: slices.Concat(serverFlagNames, plaintextFlagNames, throttleFlagNames, []string{"protocol", "delete-after", "pop3-allow-retr", "connections", "checkpoint"})},
	{name: "mbox", form: "mbox:PATH", source: true, target: true, local: true, flags: []string{"checkpoint"}},
	{name: "maildir", form: "maildir:PATH", source: true, target: true, local: true, flags: []string{"checkpoint"}},
	{name: "eml", form: "eml:DIR", target: true, local: true},
}

// lookupScheme returns the table's entry for a scheme name.
func lookupScheme(name string) *scheme {
	for _, s := range schemes {
		if s.name == name {
			return s
		}
	}
	return nil
}

// applies reports whether a scheme-dependent flag applies to s.
func (s *scheme) applies(flag string) bool { return slices.Contains(s.flags, flag) }

// endpoint is a parsed SOURCE or TARGET.
type endpoint struct {
	scheme *scheme
	url    *mailurl.URL // a server's (scheme "" for a bare USER@HOST)
	path   string       // local mail's, "~" expanded
	utf8   bool         // maildir:DIR?utf8, a target with UTF-8 folder names
}

// role is what an endpoint is used as.
type role int

const (
	asSource        role = iota // of backup
	asTarget                    // of restore and migrate
	asMigrateSource             // of migrate: a server named with its protocol
)

// schemeList names the schemes that can be used as r, for errors.
func schemeList(r role) string {
	var out []string
	for _, s := range schemes {
		if s.can(r) {
			out = append(out, s.form)
		}
	}
	return strings.Join(out, ", ")
}

func (s *scheme) can(r role) bool {
	switch r {
	case asSource:
		return s.source
	case asTarget:
		return s.target
	case asMigrateSource:
		return s.migrateSource
	}
	return false
}

// parseEndpoint parses a SOURCE or TARGET and checks that its scheme can
// be used as r. mbox:PATH and mbox://PATH (and the same for maildir and
// eml) are the same; a maildir target may end in ?utf8.
func parseEndpoint(raw string, r role) (*endpoint, error) {
	what := map[role]string{asSource: "source", asTarget: "target", asMigrateSource: "source of migrate"}[r]
	for _, s := range schemes {
		if !s.local {
			continue
		}
		rest, ok := strings.CutPrefix(raw, s.name+":")
		if !ok {
			continue
		}
		if !s.can(r) {
			return nil, usagef("%s cannot be a %s (use %s)", s.form, what, schemeList(r))
		}
		rest = strings.TrimPrefix(rest, "//")
		e := &endpoint{scheme: s}
		if p, ok := strings.CutSuffix(rest, "?utf8"); ok {
			if s.name != "maildir" || r != asTarget {
				return nil, usagef("%s: ?utf8 is for maildir: targets (the folder names of a Maildir written for a Dovecot with its UTF-8 option)", printable(raw))
			}
			rest, e.utf8 = p, true
		}
		if rest == "" {
			return nil, usagef("%s: needs a path, e.g. %s:~/Mail", s.name, s.name)
		}
		e.path = expandHome(rest)
		return e, nil
	}
	if name, _, ok := strings.Cut(raw, "://"); ok {
		if s := lookupScheme(strings.ToLower(name)); s == nil || s.local {
			if r == asTarget {
				return nil, usagef("unsupported target %q (use %s)", printable(mailurl.Redact(raw)), schemeList(r))
			}
			return nil, usagef("unsupported URL scheme %q in %q (use %s)", printable(name), printable(mailurl.Redact(raw)), schemeList(r))
		}
	}
	u, err := mailurl.Parse(raw)
	if err != nil {
		return nil, err
	}
	s := lookupScheme(u.Scheme)
	switch {
	case u.Scheme == "" && r != asSource:
		return nil, usagef("%q: name the protocol (%s)", printable(raw), schemeList(r))
	case !s.can(r):
		return nil, usagef("%s cannot be a %s (use %s)", s.form, what, schemeList(r))
	}
	return &endpoint{scheme: s, url: u}, nil
}

// checkFlags refuses the scheme-dependent flags given on the command line
// (with the account prefix) that do not apply to s, among names (nil: all
// of them).
func checkFlags(c *cli.Context, s *scheme, prefix string, names []string) error {
	if names == nil {
		for f := range schemeFlags {
			names = append(names, f)
		}
		slices.Sort(names)
	}
	for _, f := range names {
		if !c.IsSet(prefix+f) || s.applies(f) {
			continue
		}
		return usagef("--%s%s does not apply to %s (%s)", prefix, f, s.form, why(s, f))
	}
	return nil
}

// why says why flag f does not apply to s.
func why(s *scheme, f string) string {
	switch {
	case s.local && (slices.Contains(serverFlagNames, f) || slices.Contains(plaintextFlagNames, f)):
		return fmt.Sprintf("%s is local mail: there is no server to connect or log in to", s.form)
	}
	return schemeFlags[f]
}

// checkSecrets refuses a secret given as a flag value, whatever the
// scheme.
func checkSecrets(c *cli.Context, acc account) error {
	for _, f := range []string{"password", "admin-password", "oauth2-token"} {
		if c.IsSet(acc.prefix + f) {
			return secretFlagError(acc.prefix + f)
		}
	}
	return nil
}
