package main

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// TestCommandLineMistakes: a mistyped command or help topic is a usage
// error (exit 2) with one line that suggests the closest command; asking
// for help is not an error.
func TestCommandLineMistakes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string // in stdout
		stderr  string // in stderr
		oneLine bool   // stderr is exactly one line
	}{
		{"misspelt command", []string{"bakup", "imaps://alice@example.com", "./vault"}, exitUsage, "", `unknown command "bakup" (did you mean "backup"?`, true},
		{"misspelt command, singular", []string{"snapshot", "./vault"}, exitUsage, "", `did you mean "snapshots"?`, true},
		{"unknown command, nothing close", []string{"frobnicate"}, exitUsage, "", `unknown command "frobnicate" (see 'mailvault --help')`, true},
		{"help of an unknown command", []string{"help", "bakup"}, exitUsage, "", `no help for "bakup" (did you mean "backup"?`, true},
		{"no command", nil, exitUsage, "", "USAGE:", false},
		{"--help", []string{"--help"}, exitOK, "COMMANDS:", "", false},
		{"-h", []string{"-h"}, exitOK, "COMMANDS:", "", false},
		{"help", []string{"help"}, exitOK, "COMMANDS:", "", false},
		{"help backup", []string{"help", "backup"}, exitOK, "EXIT CODES:", "", false},
		{"backup --help", []string{"backup", "--help"}, exitOK, "EXIT CODES:", "", false},
		{"unknown global flag", []string{"--frobnicate"}, exitUsage, "", "flag provided but not defined: -frobnicate (see 'mailvault --help')", true},
		{"unknown command flag", []string{"ls", "--frobnicate", "./vault"}, exitUsage, "", "(see 'mailvault ls --help')", true},
		{"--version", []string{"--version"}, exitOK, runtime.Version(), "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, nil, tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errs, tt.stderr) {
				t.Fatalf("mailvault %q: exit %d, stdout %q, stderr %q; want exit %d, %q in stdout, %q in stderr",
					tt.args, code, out, errs, tt.code, tt.stdout, tt.stderr)
			}
			if tt.oneLine && (strings.Count(errs, "\n") != 1 || !strings.HasPrefix(errs, "mailvault: ")) {
				t.Errorf("stderr is not one line starting with 'mailvault: ': %q", errs)
			}
			if strings.Contains(out+errs, "mailvault mailvault") {
				t.Errorf("output says 'mailvault mailvault': %q %q", out, errs)
			}
			if tt.code == exitOK && errs != "" {
				t.Errorf("stderr of a successful run: %q", errs)
			}
		})
	}
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/mailvault/mailvault", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "4f9b7f8abcdef0123456789"},
			{Key: "vcs.modified", Value: "true"},
			{Key: "GOOS", Value: "linux"},
		},
	}
	tests := []struct {
		name            string
		bi              *debug.BuildInfo
		version, commit string // -ldflags -X values
		want            string
	}{
		{"from build info", bi, "", "", "mailvault v1.2.3 (commit 4f9b7f8abcde, modified) go1.26.8"},
		{"ldflags win", bi, "v2.0.0", "0123456789abcdef", "mailvault v2.0.0 (commit 0123456789ab) go1.26.8"},
		{"a development build", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "", "", "mailvault (devel) (commit unknown) go1.26.8"},
		{"no build info", nil, "", "", "mailvault (devel) (commit unknown) " + runtime.Version()},
	}
	for _, tt := range tests {
		if got := versionLine(tt.bi, tt.version, tt.commit); got != tt.want {
			t.Errorf("%s: versionLine = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestClosestCommand(t *testing.T) {
	names := []string{"backup", "restore", "migrate", "snapshots", "ls", "cat", "verify"}
	tests := []struct{ in, want string }{
		{"bakup", "backup"},
		{"backpu", "backup"},
		{"Backup", "backup"},
		{"snapshot", "snapshots"},
		{"restor", "restore"},
		{"lss", "ls"},
		{"verfy", "verify"},
		{"frobnicate", ""},
		{"x", ""},
	}
	for _, tt := range tests {
		if got := closest(tt.in, names); got != tt.want {
			t.Errorf("closest(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
