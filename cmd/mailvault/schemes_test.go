package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/archivetest"
)

// The scheme table, written out again by hand: for each scheme, what it
// may be and every scheme-dependent flag that applies. A change to the
// table must change this too.
var wantSchemes = map[string]struct {
	source, target, migrateSource bool
	flags                         string // space-separated
}{
	"imaps":   {true, true, true, "login tls timeout protocol connections checkpoint window throttle"},
	"imap":    {true, true, true, "login tls plaintext timeout protocol connections checkpoint window throttle"},
	"pop3s":   {true, false, true, "login tls timeout protocol delete-after pop3-allow-retr checkpoint throttle"},
	"pop3":    {true, false, true, "login tls plaintext timeout protocol delete-after pop3-allow-retr checkpoint throttle"},
	"":        {true, false, false, "login tls plaintext timeout protocol delete-after pop3-allow-retr connections checkpoint throttle"},
	"mbox":    {true, true, false, "checkpoint"},
	"maildir": {true, true, false, "checkpoint"},
	"eml":     {false, true, false, ""},
}

// expand turns the groups of wantSchemes into flag names.
func expand(flags string) []string {
	var out []string
	for _, f := range strings.Fields(flags) {
		switch f {
		case "login":
			out = append(out, "password-file", "password-command", "password", "admin-user", "admin-password-file",
				"admin-password-command", "admin-password", "oauth2-token-command", "oauth2-token-file", "oauth2-token", "auth-mech")
		case "tls":
			out = append(out, "ca-file", "tls-skip-verify")
		case "plaintext":
			out = append(out, "insecure-plaintext", "i-know-this-sends-my-password-in-clear")
		case "throttle":
			out = append(out, "max-bytes-per-day", "throttle-wait")
		default:
			out = append(out, f)
		}
	}
	return out
}

// TestSchemeTable checks every scheme against every scheme-dependent
// flag: it applies, or the table says it does not.
func TestSchemeTable(t *testing.T) {
	if len(schemes) != len(wantSchemes) {
		t.Errorf("the table has %d schemes, the test knows %d", len(schemes), len(wantSchemes))
	}
	var all []string
	for f := range schemeFlags {
		all = append(all, f)
	}
	sort.Strings(all)
	for name, want := range wantSchemes {
		s := lookupScheme(name)
		if s == nil {
			t.Errorf("scheme %q missing from the table", name)
			continue
		}
		if s.source != want.source || s.target != want.target || s.migrateSource != want.migrateSource {
			t.Errorf("scheme %q: source %v, target %v, migrate source %v; want %v, %v, %v", name, s.source, s.target, s.migrateSource, want.source, want.target, want.migrateSource)
		}
		allowed := expand(want.flags)
		for _, f := range allowed {
			if _, ok := schemeFlags[f]; !ok {
				t.Errorf("flag %q is not in schemeFlags", f)
			}
		}
		for _, f := range all {
			if got, w := s.applies(f), slices.Contains(allowed, f); got != w {
				t.Errorf("scheme %q, --%s: applies = %v, want %v", name, f, got, w)
			}
		}
	}
}

// TestSchemeFlagsCover: every flag of backup, restore and migrate is
// either scheme-dependent (in the table) or applies to every scheme
// (listed here), so that a new flag cannot be forgotten.
func TestSchemeFlagsCover(t *testing.T) {
	independent := []string{
		"format", "compress", "allow-source-change", "verbose", "v", "quiet", "q", "log-format", "help", "h",
		// restore and migrate: the archive side.
		"snapshot", "as-of", "folder", "include", "exclude", "since", "before", "from", "to", "subject",
		"message-id", "deleted-since", "into", "map", "no-map", "dry-run", "report", "archive",
		// Fleet runs: the configuration file names the sources, and
		// --config is refused together with a SOURCE (fleet_cli_test.go).
		"config", "account", "parallel", "metrics",
		// Folders of any source: IMAP's, local mail's (POP3 has INBOX).
		"exclude-folder",
	}
	app := newApp(nil, nil)
	for _, name := range []string{"backup", "restore", "migrate"} {
		for _, f := range app.Command(name).Flags {
			for _, n := range f.Names() {
				n = strings.TrimPrefix(n, "target-")
				if _, ok := schemeFlags[n]; !ok && !slices.Contains(independent, n) {
					t.Errorf("%s --%s is neither in the scheme table nor known to apply to every scheme", name, n)
				}
			}
		}
	}
}

// flagArgs are the command-line arguments that set each scheme-dependent
// flag to a valid value.
func flagArgs(t *testing.T, prefix, f, scheme string) []string {
	dir := t.TempDir()
	file := filepath.Join(dir, "secret")
	os.WriteFile(file, []byte("pw\n"), 0o600)
	switch f {
	case "password-file", "admin-password-file", "oauth2-token-file", "ca-file":
		return []string{"--" + prefix + f, file}
	case "password-command", "admin-password-command", "oauth2-token-command":
		return []string{"--" + prefix + f, "echo pw"}
	case "admin-user":
		return []string{"--" + prefix + f, "admin"}
	case "auth-mech":
		return []string{"--" + prefix + f, "plain"}
	case "timeout":
		return []string{"--timeout", "2s"}
	case "protocol":
		if scheme == "" || strings.HasSuffix(scheme, ":") {
			return []string{"--protocol", "imaps"}
		}
		return []string{"--protocol", scheme}
	case "delete-after":
		return []string{"--delete-after", "0"}
	case "connections":
		return []string{"--connections", "2"}
	case "checkpoint":
		return []string{"--checkpoint", "1m"}
	case "window":
		return []string{"--window", "8"}
	case "max-bytes-per-day":
		return []string{"--max-bytes-per-day", "1GB"}
	case "throttle-wait":
		return []string{"--throttle-wait", "1m"}
	case "password", "admin-password", "oauth2-token":
		return []string{"--" + prefix + f, "secret-on-the-command-line"}
	}
	return []string{"--" + prefix + f} // a boolean
}

// endpoints are a SOURCE or TARGET of each scheme. Servers are on a port
// where nothing listens, local mail where there is none: a run the table
// lets through fails later, never with the table's error.
func endpoints(t *testing.T) map[string]string {
	dir := t.TempDir()
	return map[string]string{
		"imaps": "imaps://alice@127.0.0.1:1", "imap": "imap://alice@127.0.0.1:1",
		"pop3s": "pop3s://alice@127.0.0.1:1", "pop3": "pop3://alice@127.0.0.1:1", "": "alice@127.0.0.1:1",
		"mbox": "mbox:" + filepath.Join(dir, "none.mbox"), "maildir": "maildir:" + filepath.Join(dir, "none"),
		"eml": "eml:" + filepath.Join(dir, "eml"),
	}
}

// TestSchemeFlagsCLI runs backup, restore and migrate with each scheme
// and each scheme-dependent flag of the command: a flag that does not
// apply is a usage error (exit 2) naming the flag and the scheme, before
// anything is connected or created; one that applies never gets that
// error. A secret given as a flag value is refused for every scheme.
func TestSchemeFlagsCLI(t *testing.T) {
	env := map[string]string{"MAILVAULT_PASSWORD": "pw", "MAILVAULT_TARGET_PASSWORD": "pw"}
	eps := endpoints(t)
	flagsOf := func(cmd string) []string {
		var out []string
		for _, f := range newApp(nil, nil).Command(cmd).Flags {
			n := f.Names()[0]
			if _, ok := schemeFlags[strings.TrimPrefix(n, "target-")]; ok {
				out = append(out, n)
			}
		}
		return out
	}
	check := func(t *testing.T, s *scheme, flag, shown string, argv []string, created string) {
		t.Helper()
		code, out, errs := runCLI(t, env, argv...)
		base := strings.TrimPrefix(flag, "target-")
		secret := slices.Contains([]string{"password", "admin-password", "oauth2-token"}, base)
		switch {
		case secret:
			if code != exitUsage || !strings.Contains(errs, "--"+flag+" is refused") && !strings.Contains(errs, "(--"+flag+")") {
				t.Errorf("%v: exit %d %q, want exit 2 refusing the secret on the command line", argv, code, errs)
			}
		case s.applies(base):
			if strings.Contains(errs, "does not apply to") {
				t.Errorf("%v: exit %d %q: --%s applies to %s", argv, code, errs, flag, s.form)
			}
		default:
			if code != exitUsage || !strings.Contains(errs, "--"+flag+" does not apply to "+shown) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 saying --%s does not apply to %s", argv, code, out, errs, flag, shown)
			}
			if _, err := os.Stat(created); err == nil {
				t.Errorf("%v: %s was created by a refused command line", argv, created)
			}
		}
	}
	t.Run("backup", func(t *testing.T) {
		for _, s := range schemes {
			if !s.source {
				continue
			}
			for _, f := range flagsOf("backup") {
				vault := filepath.Join(t.TempDir(), "vault")
				argv := append([]string{"backup", eps[s.name], vault}, flagArgs(t, "", f, s.name)...)
				check(t, s, f, s.form, argv, vault)
			}
		}
	})
	t.Run("restore", func(t *testing.T) {
		for _, s := range schemes {
			if !s.target {
				continue
			}
			for _, f := range flagsOf("restore") {
				target := eps[s.name]
				created := filepath.Join(t.TempDir(), "none") // a local target is a new path
				if s.local {
					target = s.name + ":" + created
				}
				argv := append([]string{"restore", filepath.Join(t.TempDir(), "no-archive"), target}, flagArgs(t, "", f, s.name)...)
				check(t, s, f, s.form, argv, created)
			}
		}
	})
	t.Run("migrate", func(t *testing.T) {
		for _, src := range schemes {
			if !src.migrateSource {
				continue
			}
			for _, dst := range schemes {
				if !dst.target {
					continue
				}
				for _, f := range flagsOf("migrate") {
					archive := filepath.Join(t.TempDir(), "vault")
					argv := []string{"migrate", eps[src.name], eps[dst.name], "--archive", archive}
					if base, ok := strings.CutPrefix(f, "target-"); ok {
						check(t, dst, f, dst.form, append(argv, flagArgs(t, "target-", base, dst.name)...), archive)
						continue
					}
					argv = append(argv, flagArgs(t, "", f, src.name)...)
					if slices.Contains(accountFlagNames, f) {
						check(t, src, f, src.form, argv, archive)
						continue
					}
					// Shared by both sides: it applies when it applies to
					// either.
					code, _, errs := runCLI(t, env, argv...)
					if src.applies(f) || dst.applies(f) {
						if strings.Contains(errs, "does not apply to") {
							t.Errorf("%v: exit %d %q: --%s applies to %s or %s", argv, code, errs, f, src.form, dst.form)
						}
					} else if code != exitUsage || !strings.Contains(errs, fmt.Sprintf("--%s does not apply to %s or %s", f, src.form, dst.form)) {
						t.Errorf("%v: exit %d %q, want exit 2 saying --%s applies to neither side", argv, code, errs, f)
					}
				}
			}
		}
	})
}

// TestSchemeRoles: a scheme used where it cannot be is a usage error
// naming it and what can be used instead.
func TestSchemeRoles(t *testing.T) {
	dir := t.TempDir()
	vault := filepath.Join(dir, "vault")
	for _, tc := range []struct {
		argv []string
		want string
	}{
		{[]string{"backup", "eml:" + dir, vault}, "eml:DIR cannot be a source (use imaps://USER@HOST[:PORT]"},
		{[]string{"restore", vault, "pop3s://alice@127.0.0.1:1"}, "pop3s://USER@HOST[:PORT] cannot be a target (use imaps://USER@HOST[:PORT], imap://USER@HOST[:PORT], mbox:PATH, maildir:PATH, eml:DIR)"},
		{[]string{"restore", vault, "alice@127.0.0.1"}, "name the protocol"},
		{[]string{"restore", vault, "ftp://alice:pw@host"}, `unsupported target "ftp://alice:REDACTED@host"`},
		{[]string{"backup", "ftp://alice@host", vault}, `unsupported URL scheme "ftp" in "ftp://alice@host"`},
		{[]string{"migrate", "mbox:" + dir, "imaps://alice@127.0.0.1:1", "--archive", vault}, "mbox:PATH cannot be a source of migrate"},
		{[]string{"migrate", "alice@127.0.0.1", "imaps://alice@127.0.0.1:1", "--archive", vault}, "name the protocol"},
		{[]string{"migrate", "imaps://alice@127.0.0.1:1", "pop3://alice@127.0.0.1:1", "--archive", vault}, "cannot be a target"},
		{[]string{"backup", "maildir:" + dir + "?utf8", vault}, "?utf8 is for maildir: targets"},
		{[]string{"restore", vault, "mbox:" + dir + "?utf8"}, "?utf8 is for maildir: targets"},
		{[]string{"restore", vault, "mbox:"}, "needs a path"},
		{[]string{"backup", "maildir://", vault}, "needs a path"},
	} {
		code, _, errs := runCLI(t, map[string]string{"MAILVAULT_PASSWORD": "pw"}, tc.argv...)
		if code != exitUsage || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d %q, want exit 2 and %q", tc.argv, code, errs, tc.want)
		}
		if strings.Contains(errs, ":pw@") {
			t.Errorf("%v: the error repeats the password: %q", tc.argv, errs)
		}
	}
}

// writeMbox writes an mbox file of n small messages.
func writeMbox(t *testing.T, path string, n int) {
	t.Helper()
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "From alice@example.com Mon Jan  6 10:00:%02d 2025\nSubject: local %d\nMessage-ID: <local-%d@example.com>\n\nmessage %d\n\n", i%60, i, i, i)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestLocalBackupCheckpoints: a backup of local mail commits checkpoints
// with --checkpoint as a server's does (runLocalBackup ignored the flag).
func TestLocalBackupCheckpoints(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "Inbox")
	writeMbox(t, mbox, 30)
	vault := filepath.Join(dir, "vault")
	if code, out, errs := runCLI(t, nil, "backup", "mbox:"+mbox, vault, "--checkpoint", "1ms"); code != exitOK {
		t.Fatalf("backup: exit %d %s %s", code, out, errs)
	}
	a, _ := archivetest.Latest(t, vault)
	files, err := a.ListSnapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 2 {
		t.Errorf("a local backup of 30 messages with --checkpoint 1ms committed %d snapshot(s), want checkpoints before the last", len(files))
	}
	if present := archivetest.Present(t, vault)["INBOX"]; present != 30 {
		t.Errorf("archive holds %d messages, want 30", present)
	}
}

// TestLocalSourceSlashes: mbox://PATH is mbox:PATH on the source side too
// (the target side took both), recorded as the same mailbox.
func TestLocalSourceSlashes(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "Inbox")
	writeMbox(t, mbox, 3)
	vault := filepath.Join(dir, "vault")
	for _, src := range []string{"mbox://" + mbox, "mbox:" + mbox} {
		if code, out, errs := runCLI(t, nil, "backup", src, vault); code != exitOK {
			t.Fatalf("backup %s: exit %d %s %s", src, code, out, errs)
		}
	}
	if present := archivetest.Present(t, vault)["INBOX"]; present != 3 {
		t.Errorf("archive holds %d messages, want 3", present)
	}
}
