package secret

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGet(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	os.WriteFile(file, []byte("from-file\nignored\n"), 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvVar {
				return v
			}
			return ""
		}
	}
	tests := []struct {
		name string
		s    Sources
		want string
		err  string
	}{
		{"file wins", Sources{File: file, Getenv: env("from-env"), Command: "echo cmd"}, "from-file", ""},
		{"env", Sources{Getenv: env("from-env"), Command: "echo cmd"}, "from-env", ""},
		{"command", Sources{Getenv: env(""), Command: "printf 'from-cmd\\r\\n'"}, "from-cmd", ""},
		{"command fails", Sources{Command: "echo oops >&2; exit 3"}, "", "password command failed"},
		{"missing file", Sources{File: filepath.Join(dir, "nope")}, "", "password file"},
		{"nothing", Sources{Getenv: env("")}, "", "no password"},
		{"empty command output", Sources{Command: "true"}, "", "empty password"},
	}
	for _, tt := range tests {
		got, err := tt.s.Get(context.Background(), "alice")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: Get() error = %v, want %q", tt.name, err, tt.err)
			}
			// Every failure is "no password available" (exit 4): none
			// set, or the one set failed.
			if errors.Is(err, ErrNoPassword) == errors.Is(err, ErrFailed) {
				t.Errorf("%s: Get() error = %v, wraps neither or both of ErrNoPassword and ErrFailed", tt.name, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%s: Get() = %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
	if _, err := (Sources{}).Get(context.Background(), "x"); !errors.Is(err, ErrNoPassword) {
		t.Errorf("Get() with no source = %v, want ErrNoPassword", err)
	}
	var warned string
	os.Chmod(file, 0o644)
	(Sources{File: file, Warn: func(s string) { warned = s }}).Get(context.Background(), "x")
	if !strings.Contains(warned, "readable by other users") {
		t.Errorf("no warning for a world-readable password file")
	}
}
