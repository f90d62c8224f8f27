// Package mailurl parses the account URLs mailvault takes on its command
// line (imaps://user@host[:port], imap://…) and refuses secrets in them.
package mailurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalid is wrapped by every error for a URL that cannot be used.
var ErrInvalid = errors.New("invalid URL")

// ErrPasswordInURL is returned for a URL that carries a password.
var ErrPasswordInURL = errors.New("a password in the URL is refused: it would be visible in ps, shell history and logs; use --password-file, MAILVAULT_PASSWORD or --password-command")

// URL is a parsed account URL.
type URL struct {
	Scheme string // imaps, imap
	User   string
	Host   string
	Port   int
}

// DefaultPorts are the standard ports of the schemes.
var DefaultPorts = map[string]int{"imaps": 993, "imap": 143, "pop3s": 995, "pop3": 110}

// Parse parses an account URL. A bare USER@HOST[:PORT] gives Scheme ""
// (the caller detects the protocol).
func Parse(s string) (*URL, error) {
	if !strings.Contains(s, "://") && strings.Contains(s, "@") {
		u, err := parse("auto://" + s)
		if u != nil {
			u.Scheme = ""
		}
		if err != nil && !errors.Is(err, ErrPasswordInURL) {
			return nil, &invalidError{err}
		}
		return u, err
	}
	u, err := parse(s)
	if err != nil && !errors.Is(err, ErrPasswordInURL) {
		return nil, &invalidError{err}
	}
	return u, err
}

type invalidError struct{ err error }

func (e *invalidError) Error() string   { return e.err.Error() }
func (e *invalidError) Unwrap() []error { return []error{e.err, ErrInvalid} }

func parse(s string) (*URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", redactRaw(s), errors.Unwrap(err))
	}
	scheme := strings.ToLower(u.Scheme)
	port, known := DefaultPorts[scheme]
	if scheme == "auto" {
		known = true
	}
	if !known {
		return nil, fmt.Errorf("unsupported URL scheme %q in %q (use imaps://, imap://, pop3s:// or pop3://)", u.Scheme, redactRaw(s))
	}
	if u.User == nil || u.User.Username() == "" {
		return nil, fmt.Errorf("URL %q has no user name (imaps://USER@HOST)", redactRaw(s))
	}
	if _, has := u.User.Password(); has {
		return nil, ErrPasswordInURL
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("URL %q has no host", s)
	}
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("bad port in %q", s)
		}
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("URL %q: paths, queries and fragments are not supported", s)
	}
	return &URL{Scheme: scheme, User: u.User.Username(), Host: u.Hostname(), Port: port}, nil
}

// Addr is host:port.
func (u *URL) Addr() string { return net.JoinHostPort(u.Host, strconv.Itoa(u.Port)) }

// WithScheme returns u with another scheme, on that scheme's default port
// unless u named a port.
func (u *URL) WithScheme(scheme string, portGiven bool) *URL {
	c := *u
	c.Scheme = scheme
	if !portGiven {
		c.Port = DefaultPorts[scheme]
	}
	return &c
}

// String is the URL without any secret, as recorded in manifests.
func (u *URL) String() string {
	if u.Scheme == "" {
		if u.Port == 0 {
			return url.User(u.User).String() + "@" + u.Host
		}
		return url.User(u.User).String() + "@" + u.Addr()
	}
	return (&url.URL{Scheme: u.Scheme, User: url.User(u.User), Host: u.Addr()}).String()
}

// Redact returns s with any password between "//" and "@" replaced, for
// error messages about a string that is not a valid URL.
func Redact(s string) string { return redactRaw(s) }

// redactRaw removes anything between "//" and "@" after a ':' so that an
// error message never repeats a password.
func redactRaw(s string) string {
	i := strings.Index(s, "//")
	if i < 0 {
		return s
	}
	rest := s[i+2:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	if c := strings.Index(rest[:at], ":"); c >= 0 {
		return s[:i+2] + rest[:c] + ":REDACTED" + rest[at:]
	}
	return s
}
