package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// memFleet starts an in-memory IMAPS server with users a, b and c (each
// with two messages) and writes a configuration of the three, c with a
// wrong password. It returns the server and the configuration's path.
func memFleet(t *testing.T) (*imaptest.MemServer, string) {
	t.Helper()
	s := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"a": "pa", "b": "pb", "c": "pc"}, ImplicitTLS: true})
	for _, u := range []string{"a", "b", "c"} {
		c := s.Dial(t, u, "p"+u)
		for i := range 2 {
			msg := fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody\r\n", u, i, u, i)
			imaptest.Append(t, c, "INBOX", []imap.Flag{imap.FlagSeen}, time.Date(2026, 1, 1+i, 0, 0, 0, 0, time.UTC), []byte(msg))
		}
		c.Close()
	}
	dir := t.TempDir()
	for _, u := range []string{"a", "b"} {
		os.WriteFile(filepath.Join(dir, u+".pw"), []byte("p"+u+"\n"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "c.pw"), []byte("wrong\n"), 0o600)
	var b strings.Builder
	fmt.Fprintf(&b, "[defaults]\narchive_root = \"vaults\"\nca_file = %q\n", s.CAFile)
	for _, u := range []string{"a", "b", "c"} {
		fmt.Fprintf(&b, "\n[[account]]\nname = %q\nsource = \"imaps://%s@%s\"\npassword_file = \"%s.pw\"\n", u, u, s.TLSAddr, u)
	}
	path := filepath.Join(dir, "mailvault.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, path
}

// TestFleetUsageErrors: a wrong file or flag is one line naming the file
// and line (for the file), exit 2, and nothing connects or is created.
func TestFleetUsageErrors(t *testing.T) {
	s, good := memFleet(t)
	dir := filepath.Dir(good)
	bad := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	acct := fmt.Sprintf("[[account]]\nname = \"a\"\nsource = \"imaps://a@%s\"\narchive = \"vaults/a\"\n", s.TLSAddr)
	unknown := bad("unknown.toml", acct+"password_file = \"a.pw\"\nfolders = [\"INBOX\"]\n")
	missing := bad("missing.toml", acct+"password_file = \"nope.pw\"\n")
	os.WriteFile(filepath.Join(dir, "open.pw"), []byte("pa\n"), 0o644)
	os.Chmod(filepath.Join(dir, "open.pw"), 0o644)
	exposed := bad("exposed.toml", acct+"password_file = \"open.pw\"\n")
	seeded := len(s.Commands())
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"backup", "--config", unknown}, unknown + `:6: unknown key "folders" in [[account]]`},
		{[]string{"backup", "--config", missing}, missing + ":5: password_file: stat "},
		{[]string{"backup", "--config", exposed}, exposed + ":5: password_file: " + filepath.Join(dir, "open.pw") + " holds a secret and other users can read it (mode 0644): chmod 600"},
		{[]string{"check-config", unknown}, unknown + ":6: unknown key"},
		{[]string{"restore", "--config", missing, "--account", "a"}, missing + ":5: password_file"},
		{[]string{"backup", "--config", good, "--password-file", "x"}, "--password-file does not go with --config"},
		{[]string{"backup", "--config", good, "--connections", "2"}, "--connections does not go with --config"},
		{[]string{"backup", "--config", good, "imaps://a@h", "./v"}, "no SOURCE or ARCHIVE arguments"},
		{[]string{"backup", "--config", good, "--account", "zed"}, `--account "zed": no such account in ` + good},
		{[]string{"backup", "--config", good, "--parallel", "0"}, "--parallel must be between 1 and 256"},
		{[]string{"backup", "imaps://a@h", "./v", "--report", "r.json"}, "--report goes with --config FILE"},
		{[]string{"backup", "--config", good, "--report", filepath.Join(dir, "no", "such", "r.json")}, "--report: write "},
		{[]string{"restore", "--config", good}, "restore --config needs exactly one --account NAME"},
		{[]string{"restore", "--config", good, "--account", "a", "--password-file", "x"}, "--password-file goes with an explicit TARGET"},
		{[]string{"restore", "./v", "maildir:x", "--account", "a"}, "--account goes with --config FILE"},
		{[]string{"check-config"}, "usage: mailvault check-config FILE"},
	}
	for _, tt := range tests {
		code, stdout, stderr := runCLI(t, nil, tt.args...)
		if code != exitUsage || !strings.HasPrefix(stderr, "mailvault: ") || !strings.Contains(stderr, tt.want) || strings.Count(stderr, "\n") != 1 {
			t.Errorf("%v: exit %d\nstderr %q\nwant exit %d and one line with %q (stdout %q)", tt.args, code, stderr, exitUsage, tt.want, stdout)
		}
	}
	if cmds := s.Commands(); len(cmds) != seeded {
		t.Errorf("the server got commands from runs that should not connect: %v", cmds)
	}
	if _, err := os.Stat(filepath.Join(dir, "vaults")); err == nil {
		t.Error("a run with a usage error created archives")
	}
}

// TestFleetOutput: one line per account and a total (JSON objects with
// --log-format json), nothing on stdout with -q but the one error line on
// stderr, and the exit code of a run with a failed account.
func TestFleetOutput(t *testing.T) {
	s, cfg := memFleet(t)
	code, stdout, stderr := runCLI(t, nil, "backup", "--config", cfg, "--log-format", "json")
	if code != exitPartial {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitPartial, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("stdout has %d lines, want 3 accounts and a total:\n%s", len(lines), stdout)
	}
	status := map[string]string{}
	for _, l := range lines[:3] {
		var a struct{ Name, Status, Error string }
		if err := json.Unmarshal([]byte(l), &a); err != nil {
			t.Fatalf("account line %q: %v", l, err)
		}
		status[a.Name] = a.Status
	}
	if status["a"] != "complete" || status["b"] != "complete" || status["c"] != "failed" {
		t.Errorf("statuses %v", status)
	}
	var total map[string]float64
	if err := json.Unmarshal([]byte(lines[3]), &total); err != nil || total["accounts"] != 3 || total["complete"] != 2 || total["failed"] != 1 {
		t.Errorf("total line %q (%v)", lines[3], err)
	}
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if !json.Valid([]byte(l)) {
			t.Errorf("stderr line is not JSON: %q", l)
		}
	}

	code, stdout, stderr = runCLI(t, nil, "backup", "--config", cfg, "-q")
	if code != exitPartial || stdout != "" || strings.Count(stderr, "\n") != 1 ||
		!strings.HasPrefix(stderr, "mailvault: not every account was backed up completely: 1 of 3 accounts: c failed (authentication failed for c") {
		t.Errorf("-q: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// Only the accounts named: a and b, both complete: exit 0.
	code, stdout, stderr = runCLI(t, nil, "backup", "--config", cfg, "--account", "a", "--account", "b")
	if code != exitOK || !strings.Contains(stdout, "a: complete, snapshot ") || !strings.Contains(stdout, "b: complete") ||
		strings.Contains(stdout, "c:") || !strings.Contains(stdout, "2 accounts: 2 complete, 0 partial, 0 failed") {
		t.Errorf("--account a --account b: exit %d\n%s\n%s", code, stdout, stderr)
	}

	// A restore of a's archive to a's own mailbox, with a's login from the
	// file.
	code, stdout, stderr = runCLI(t, nil, "restore", "--config", cfg, "--account", "a", "--into", "Restored")
	if code != exitOK || !strings.Contains(stdout, "restored 2 messages") {
		t.Fatalf("restore --config: exit %d\n%s\n%s", code, stdout, stderr)
	}
	c := s.Dial(t, "a", "pa")
	got := imaptest.ReadServer(t, c)
	if len(got["Restored/INBOX"]) != 2 || len(got["INBOX"]) != 2 {
		t.Errorf("after restore: %d in Restored/INBOX, %d in INBOX; want 2 and 2", len(got["Restored/INBOX"]), len(got["INBOX"]))
	}
}

// TestFleetInterrupted: a run interrupted before it reaches an account
// reports it failed ("not started") and exits 130.
func TestFleetInterrupted(t *testing.T) {
	_, cfg := memFleet(t)
	rep := filepath.Join(t.TempDir(), "report.json")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb strings.Builder
	code := runContext(ctx, []string{"mailvault", "backup", "--config", cfg, "--report", rep}, nil, &out, &errb, func(string) string { return "" })
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d\n%s\n%s", code, exitInterrupted, out.String(), errb.String())
	}
	r := readFleetReport(t, rep)
	if len(r.Accounts) != 3 || r.Finished == nil {
		t.Fatalf("report: %d accounts, finished %v", len(r.Accounts), r.Finished)
	}
	for _, a := range r.Accounts {
		if a.Status != "failed" || a.Error != "not started: the run was interrupted" {
			t.Errorf("account %s: %s %q", a.Name, a.Status, a.Error)
		}
	}
}

// TestFleetMemoryLimit: a fleet run of k accounts at once gets k times one
// run's soft heap limit (memoryLimit, main.go); a limit the user set
// (GOMEMLIMIT) or none stays as it is.
func TestFleetMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		cur  int64
		k    int
		want int64
	}{
		{memoryLimit, 1, memoryLimit},
		{memoryLimit, 4, 4 * memoryLimit},
		{memoryLimit, 16, 16 * memoryLimit},
		{memoryLimit, 0, memoryLimit},
		{math.MaxInt64, 8, math.MaxInt64},
		{100 << 20, 8, 100 << 20},
	} {
		if got := fleetMemoryLimit(tc.cur, tc.k); got != tc.want {
			t.Errorf("fleetMemoryLimit(%d, %d) = %d, want %d", tc.cur, tc.k, got, tc.want)
		}
	}
}
