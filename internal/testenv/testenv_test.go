package testenv

import (
	"fmt"
	"strings"
	"testing"
)

// recorder is a testing.TB that records how a helper ended the test
// instead of ending it.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	if r.fatal == "" && r.skip == "" {
		r.fatal = fmt.Sprintf(format, args...)
	}
}
func (r *recorder) Skipf(format string, args ...any) {
	if r.fatal == "" && r.skip == "" {
		r.skip = fmt.Sprintf(format, args...)
	}
}

func TestStrict(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
	}{
		{"", false}, {"true", true}, {"TRUE", true}, {"1", true}, {"false", false}, {"0", false}, {"yes", false},
	} {
		t.Setenv(Var, tc.value)
		if got := Strict(); got != tc.want {
			t.Errorf("Strict() with %s=%q = %v, want %v", Var, tc.value, got, tc.want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	for _, tc := range []struct {
		ci         string
		fail, skip bool
	}{{"true", true, false}, {"", false, true}, {"false", false, true}} {
		t.Setenv(Var, tc.ci)
		r := &recorder{TB: t}
		Unavailable(r, "dovecot is not installed: %s", "not in PATH")
		if (r.fatal != "") != tc.fail || (r.skip != "") != tc.skip {
			t.Errorf("Unavailable with %s=%q: fatal %q, skip %q; want fail %v, skip %v", Var, tc.ci, r.fatal, r.skip, tc.fail, tc.skip)
		}
		if msg := r.fatal + r.skip; !strings.Contains(msg, "dovecot is not installed: not in PATH") {
			t.Errorf("Unavailable message %q does not give the reason", msg)
		}
	}
}

func TestRequireTool(t *testing.T) {
	t.Setenv(Var, "true")
	r := &recorder{TB: t}
	if p := RequireTool(r, "sh"); p == "" || r.fatal != "" || r.skip != "" {
		t.Errorf("RequireTool(sh) = %q, fatal %q, skip %q; want its path", p, r.fatal, r.skip)
	}
	const missing = "mailvault-no-such-tool"
	r = &recorder{TB: t}
	RequireTool(r, missing)
	if !strings.Contains(r.fatal, missing) {
		t.Errorf("RequireTool(%s) with CI=true: fatal %q, skip %q; want a failure naming it", missing, r.fatal, r.skip)
	}
	t.Setenv(Var, "")
	r = &recorder{TB: t}
	RequireTool(r, missing)
	if !strings.Contains(r.skip, missing) || r.fatal != "" {
		t.Errorf("RequireTool(%s) outside CI: fatal %q, skip %q; want a skip naming it", missing, r.fatal, r.skip)
	}
}
