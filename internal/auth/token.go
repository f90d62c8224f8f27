package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// RetryEnv is set to "1" in the environment of a token command run again
// because the server refused the token it gave before: a command that
// caches tokens (mailvault auth token does) must then fetch a new one.
const RetryEnv = "MAILVAULT_OAUTH2_RETRY"

// TokenSource gives OAuth2 access tokens. Token is called for every login
// (every new connection and every reconnect), from several goroutines at
// once; retry is true when the server refused the previous token of this
// login. Errors must not contain the token.
type TokenSource interface {
	Token(ctx context.Context, retry bool) (string, error)
}

// CommandTokens runs Command with sh -c for every token and takes the
// first line it prints. Its standard error is shown in the error when it
// fails; its output never is. A command still running after
// TokenCommandTimeout is killed.
type CommandTokens struct{ Command string }

// TokenCommandTimeout bounds one run of a token command.
const TokenCommandTimeout = 2 * time.Minute

func (c CommandTokens) Token(ctx context.Context, retry bool) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, TokenCommandTimeout)
	defer cancel()
	var out, errb bytes.Buffer
	cmd := exec.CommandContext(ctx, "sh", "-c", c.Command)
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = os.Environ()
	if retry {
		cmd.Env = append(cmd.Env, RetryEnv+"=1")
	}
	if err := cmd.Run(); err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return "", fmt.Errorf("OAuth2 token command gave no token within %s", TokenCommandTimeout)
		}
		msg := strings.TrimSpace(errb.String())
		if len(msg) > 200 {
			msg = msg[:200]
		}
		if msg != "" {
			msg = ": " + strings.ReplaceAll(msg, "\n", " ")
		}
		return "", fmt.Errorf("OAuth2 token command failed (%v)%s", err, msg)
	}
	return checkToken(firstLine(out.String()), "the OAuth2 token command")
}

// FileTokens reads the first line of the file at Path for every token,
// so that another program can keep the file current.
type FileTokens struct{ Path string }

func (f FileTokens) Token(ctx context.Context, retry bool) (string, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return "", fmt.Errorf("OAuth2 token file: %w", err)
	}
	return checkToken(firstLine(string(data)), "OAuth2 token file "+f.Path)
}

// errBadToken is returned for a token that could not be sent.
var errBadToken = errors.New("not a bearer token")

// checkToken refuses an empty token and one with characters a bearer
// token (RFC 6750 b64token) never has: they would break the SASL message.
func checkToken(tok, from string) (string, error) {
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", fmt.Errorf("empty OAuth2 token from %s", from)
	}
	for i := 0; i < len(tok); i++ {
		if tok[i] <= ' ' || tok[i] > '~' {
			return "", fmt.Errorf("%w from %s: it holds a space, a control or a non-ASCII character", errBadToken, from)
		}
	}
	return tok, nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return strings.TrimSuffix(s, "\r")
}
