// Package testenv decides, in one place, what a test does when something
// it needs from the machine is missing: a server (Dovecot, the
// compatibility servers), an external tool (zstd, python3), root.
//
// One variable decides: CI. With CI=true (any value strconv.ParseBool
// reads as true: 1, t, TRUE, …) every such test must run, and a missing
// requirement FAILS the test; otherwise the test is SKIPPED, visibly, with
// the reason (go test -v prints it; go test prints "SKIP" for a package
// only when -v is given, so .ci/run sets CI=true). Nothing here ever lets
// a test pass without the check it was written for.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"testing"
)

// Var is the environment variable that makes missing requirements fail.
const Var = "CI"

// Strict reports whether missing requirements fail tests: CI=true.
func Strict() bool {
	on, err := strconv.ParseBool(os.Getenv(Var))
	return err == nil && on
}

// Unavailable ends t because something it needs is missing: a failure
// with CI=true, a skip otherwise. The message says what is missing and
// why.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Strict() {
		t.Fatalf("%s (%s=true: every requirement must be installed)", msg, Var)
	}
	t.Skipf("%s (skipped; with %s=true this fails)", msg, Var)
}

// RequireTool returns the path of the program name, ending t with
// Unavailable when it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Unavailable(t, "%s is not installed: %v", name, err)
	}
	return p
}

// RequireRoot ends t with Unavailable unless the test runs as root; why
// says what needs it.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() != 0 {
		Unavailable(t, "%s needs root", why)
	}
}
