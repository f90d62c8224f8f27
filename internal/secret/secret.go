// Package secret obtains an account password without it ever appearing on
// a command line: from a file, an environment variable, a command, or a
// prompt on a terminal, in that order of preference.
package secret

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"golang.org/x/term"
)

// EnvVar is the environment variable holding a password.
const EnvVar = "MAILVAULT_PASSWORD"

// ErrNoPassword means no source of a password was set.
var ErrNoPassword = errors.New("no password")

// ErrFailed means the source set gave no password: a password file
// missing or unreadable, a command that failed, an empty password.
// Such errors keep their own words and wrap it.
var ErrFailed = errors.New("the password source failed")

// failed is an error of a password source that failed: its text is the
// error's own; errors.Is finds ErrFailed and what it wraps.
type failed struct{ error }

func (f failed) Unwrap() []error { return []error{f.error, ErrFailed} }

func fail(format string, a ...any) error { return failed{fmt.Errorf(format, a...)} }

// Sources are the places a password may come from.
type Sources struct {
	File    string // --password-file
	Command string // --password-command, run with sh -c
	EnvVar  string // the environment variable; "" means EnvVar
	Getenv  func(string) string
	Stdin   *os.File  // prompt here when it is a terminal
	Prompt  io.Writer // where the prompt is written
	Warn    func(string)
}

// Get returns the password for the account named by who (used in the
// prompt only).
func (s Sources) Get(ctx context.Context, who string) (string, error) {
	env := s.EnvVar
	if env == "" {
		env = EnvVar
	}
	switch {
	case s.File != "":
		fi, err := os.Stat(s.File)
		if err != nil {
			return "", fail("password file: %w", err)
		}
		if fi.Mode().Perm()&0o077 != 0 && s.Warn != nil {
			s.Warn(fmt.Sprintf("password file %s is readable by other users (chmod 600 it)", s.File))
		}
		data, err := os.ReadFile(s.File)
		if err != nil {
			return "", fail("password file: %w", err)
		}
		return nonEmpty(firstLine(string(data)), "password file "+s.File)
	case s.Getenv != nil && s.Getenv(env) != "":
		return s.Getenv(env), nil
	case s.Command != "":
		var out, errb bytes.Buffer
		cmd := exec.CommandContext(ctx, "sh", "-c", s.Command)
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(errb.String())
			if len(msg) > 200 {
				msg = msg[:200]
			}
			return "", fail("password command failed: %v %s", err, msg)
		}
		return nonEmpty(firstLine(out.String()), "password command")
	case s.Stdin != nil && term.IsTerminal(int(s.Stdin.Fd())):
		fmt.Fprintf(s.Prompt, "Password for %s: ", who)
		pw, err := term.ReadPassword(int(s.Stdin.Fd()))
		fmt.Fprintln(s.Prompt)
		if err != nil {
			return "", fail("read password: %w", err)
		}
		return nonEmpty(string(pw), "prompt")
	}
	return "", fmt.Errorf("%w for %s: set %s, or use --password-file or --password-command (or run on a terminal to be asked)", ErrNoPassword, who, env)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, "\r")
}

func nonEmpty(pw, from string) (string, error) {
	if pw == "" {
		return "", fail("empty password from %s", from)
	}
	return pw, nil
}
