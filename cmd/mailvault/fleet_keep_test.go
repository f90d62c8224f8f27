package main

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/report"
)

// keepFleet is an in-memory IMAPS server with users, each with the
// password "p"+name, and a directory for a configuration of them.
type keepFleet struct {
	t   *testing.T
	s   *imaptest.MemServer
	dir string
	n   int // messages appended so far, for distinct bodies
}

func newKeepFleet(t *testing.T, users ...string) *keepFleet {
	t.Helper()
	pw := map[string]string{}
	for _, u := range users {
		pw[u] = "p" + u
	}
	f := &keepFleet{t: t, s: imaptest.StartMem(t, imaptest.MemOptions{Users: pw, ImplicitTLS: true}), dir: t.TempDir()}
	for _, u := range users {
		if err := os.WriteFile(filepath.Join(f.dir, u+".pw"), []byte("p"+u+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// add appends one message to each folder of user's mailbox (creating
// the folder first when create is set).
func (f *keepFleet) add(user string, create bool, folders ...string) {
	f.t.Helper()
	c := f.s.Dial(f.t, user, "p"+user)
	defer c.Close()
	for _, folder := range folders {
		if create && folder != "INBOX" {
			if err := c.Create(folder, nil).Wait(); err != nil {
				f.t.Fatal(err)
			}
		}
		f.n++
		msg := fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s.%d@x>\r\n\r\nbody %d of %s\r\n%s", folder, f.n, user, f.n, f.n, folder, strings.Repeat("filler line\r\n", 40))
		imaptest.Append(f.t, c, folder, []imap.Flag{imap.FlagSeen}, time.Date(2026, 1, 1, 0, f.n, 0, 0, time.UTC), []byte(msg))
	}
}

// expungeFirst removes the oldest message of user's INBOX.
func (f *keepFleet) expungeFirst(user string) {
	f.t.Helper()
	c := f.s.Dial(f.t, user, "p"+user)
	defer c.Close()
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		f.t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		f.t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		f.t.Fatal(err)
	}
}

// config writes the configuration: head, then one [[account]] per entry
// of accounts (name, host, extra keys).
func (f *keepFleet) config(head string, accounts ...[3]string) string {
	f.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "[defaults]\narchive_root = \"vaults\"\nca_file = %q\n%s\n", f.s.CAFile, head)
	port := portOf(f.s.TLSAddr)
	for _, a := range accounts {
		fmt.Fprintf(&b, "\n[[account]]\nname = %q\nsource = \"imaps://%s@%s:%s\"\npassword_file = \"%s.pw\"\n%s", a[0], a[0], a[1], port, a[0], a[2])
	}
	path := filepath.Join(f.dir, "mailvault.toml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		f.t.Fatal(err)
	}
	return path
}

func (f *keepFleet) vault(name string) string { return filepath.Join(f.dir, "vaults", name) }

// server returns what user's mailbox holds now.
func (f *keepFleet) server(user string) map[string][]imaptest.ServerMessage {
	f.t.Helper()
	c := f.s.Dial(f.t, user, "p"+user)
	defer c.Close()
	return imaptest.ReadServer(f.t, c)
}

func archivedFolders(t *testing.T, vault string) []string {
	t.Helper()
	var out []string
	for name, n := range archivetest.Present(t, vault) {
		out = append(out, fmt.Sprintf("%s=%d", name, n))
	}
	sort.Strings(out)
	return out
}

// TestFleetExcludeFolders: exclude_folders leaves an account's matching
// folders out of its archive and archives the others; the key comes from
// the account, else its [[server]], else [defaults] (the account's list
// replaces the inherited one; [] clears it). check-config shows it.
func TestFleetExcludeFolders(t *testing.T) {
	users := []string{"dflt", "srv", "own", "none"}
	f := newKeepFleet(t, users...)
	for _, u := range users {
		f.add(u, true, "INBOX", "Work", "Trash", "Trash/Old", "[Gmail]", "[Gmail]/All Mail")
	}
	// Two [[server]] hosts for one server: 127.0.0.1 and localhost.
	cfg := f.config(`exclude_folders = ["Trash*"]

[[server]]
host = "localhost"
exclude_folders = ["[Gmail]/All Mail", "Trash*"]`,
		[3]string{"dflt", "127.0.0.1", ""},
		[3]string{"srv", "localhost", ""},
		[3]string{"own", "localhost", "exclude_folders = [\"Work\", \"[Gmail]/%\"]\n"},
		[3]string{"none", "127.0.0.1", "exclude_folders = []\n"},
	)
	code, stdout, stderr := runCLI(t, nil, "backup", "--config", cfg)
	if code != exitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", code, stdout, stderr)
	}
	all := []string{"INBOX=1", "Trash/Old=1", "Trash=1", "Work=1", "[Gmail]/All Mail=1", "[Gmail]=1"}
	want := map[string][]string{
		"dflt": {"INBOX=1", "Work=1", "[Gmail]/All Mail=1", "[Gmail]=1"},
		"srv":  {"INBOX=1", "Work=1", "[Gmail]=1"},
		"own":  {"INBOX=1", "Trash/Old=1", "Trash=1", "[Gmail]=1"},
		"none": all,
	}
	for _, u := range users {
		if got := archivedFolders(t, f.vault(u)); !reflect.DeepEqual(got, want[u]) {
			t.Errorf("%s: archived %v, want %v", u, got, want[u])
		}
	}
	// What is archived is the server's.
	archivetest.MatchesServer(t, f.vault("none"), f.server("none"))
	server := f.server("srv")
	for _, excluded := range []string{"Trash", "Trash/Old", "[Gmail]/All Mail"} {
		delete(server, excluded)
	}
	archivetest.MatchesServer(t, f.vault("srv"), server)

	code, stdout, _ = runCLI(t, nil, "check-config", cfg)
	if code != exitOK {
		t.Fatalf("check-config: exit %d\n%s", code, stdout)
	}
	for _, w := range []string{
		`dflt: ok: `, `(1 snapshots); excluding "Trash*"`,
		`srv: ok: `, `excluding "[Gmail]/All Mail", "Trash*"`,
		`excluding "Work", "[Gmail]/%"`,
	} {
		if !strings.Contains(stdout, w) {
			t.Errorf("check-config does not show %q:\n%s", w, stdout)
		}
	}
	if line := lineOf(stdout, "none: "); strings.Contains(line, "excluding") {
		t.Errorf("check-config shows exclusions for an account with none: %q", line)
	}
}

// lineOf returns the first line of out that starts with prefix.
func lineOf(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

func snapshotCount(t *testing.T, vault string) int {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	files, err := a.ListSnapshots()
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// TestFleetRetention: with keep_last = 2, four fleet runs leave two
// snapshots per account; the kept ones are the newest, the archive
// verifies and its latest snapshot is the server's. prune = true (from
// [defaults]) frees the bytes of a message only forgotten snapshots
// had; an account with prune = false keeps them. The report, the
// account lines and the metrics say what retention did.
func TestFleetRetention(t *testing.T) {
	f := newKeepFleet(t, "a", "b")
	cfg := f.config("keep_last = 2\nprune = true",
		[3]string{"a", "127.0.0.1", ""},
		[3]string{"b", "127.0.0.1", "prune = false\n"},
	)
	rep := filepath.Join(f.dir, "report.json")
	metrics := filepath.Join(f.dir, "mailvault.prom")
	ids := map[string][]string{}
	for run := 1; run <= 4; run++ {
		for _, u := range []string{"a", "b"} {
			f.add(u, false, "INBOX")
			if run == 2 {
				f.expungeFirst(u) // the message of run 1: gone once run 1's snapshot goes
			}
		}
		code, stdout, stderr := runCLI(t, nil, "backup", "--config", cfg, "--report", rep, "--metrics", metrics)
		if code != exitOK {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, code, stdout, stderr)
		}
		r := readFleetReport(t, rep)
		for _, acc := range r.Accounts {
			ids[acc.Name] = append(ids[acc.Name], acc.Snapshot)
			forgot := 0
			if run >= 3 {
				forgot = 1
			}
			if acc.Status != report.StatusComplete || acc.SnapshotsForgotten != forgot || acc.RetentionError != "" || acc.Error != "" {
				t.Errorf("run %d, %s: %+v; want complete, %d forgotten", run, acc.Name, acc, forgot)
			}
			// Run 3 forgets run 1's snapshot: prune frees run 1's message,
			// gone since run 2, in a (prune from [defaults]) only.
			if freed := acc.BytesFreed > 0; freed != (run == 3 && acc.Name == "a") {
				t.Errorf("run %d, %s: %d bytes freed", run, acc.Name, acc.BytesFreed)
			}
			line := lineOf(stdout, acc.Name+": complete")
			if run >= 3 && !strings.Contains(line, ", forgot 1 snapshots") {
				t.Errorf("run %d: account line %q does not say what retention did", run, line)
			}
		}
		for _, u := range []string{"a", "b"} {
			if n, want := snapshotCount(t, f.vault(u)), min(run, 2); n != want {
				t.Errorf("run %d, %s: %d snapshots, want %d", run, u, n, want)
			}
		}
	}
	for _, u := range []string{"a", "b"} {
		a, err := formats.Open(f.vault(u))
		if err != nil {
			t.Fatal(err)
		}
		files, err := a.ListSnapshots()
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, fl := range files {
			kept = append(kept, fl.ID)
		}
		if want := ids[u][2:]; !reflect.DeepEqual(kept, want) {
			t.Errorf("%s keeps %v, want the newest two %v", u, kept, want)
		}
		if code, out, errs := runCLI(t, nil, "verify", f.vault(u)); code != exitOK {
			t.Errorf("verify %s: exit %d\n%s\n%s", u, code, out, errs)
		}
		archivetest.MatchesServer(t, f.vault(u), f.server(u))
	}
	code, out, _ := runCLI(t, nil, "check-config", cfg)
	if code != exitOK || !strings.HasSuffix(lineOf(out, "a: ok: "), "; retention keep_last 2, then prune") || !strings.HasSuffix(lineOf(out, "b: ok: "), "; retention keep_last 2") {
		t.Errorf("check-config does not show the retention of a and b: exit %d\n%s", code, out)
	}
	// b did not prune: a prune now frees what a's retention freed.
	code, out, errs := runCLI(t, nil, "prune", f.vault("b"))
	if code != exitOK || !strings.Contains(out, "removed 1 messages") {
		t.Errorf("prune b: exit %d\n%s\n%s", code, out, errs)
	}
	prom, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^mailvault_last_run_snapshots_forgotten\{account="a"\} 1$`,
		`(?m)^mailvault_last_run_bytes_freed\{account="b"\} 0$`,
		`(?m)^mailvault_last_run_retention_failed\{account="a"\} 0$`,
	} {
		if !regexp.MustCompile(re).Match(prom) {
			t.Errorf("metrics do not match %s:\n%s", re, prom)
		}
	}
}

// TestFleetRetentionFailure: when an account's retention fails after its
// backup committed a snapshot (here: an old snapshot's delta file is
// damaged, which the backup, reading the state index, does not need and
// forget, replaying the chain, does), that account alone is failed (its
// line, the report's status and retention_error, the metrics), its new
// snapshot stays, the other accounts' retention runs, and the run exits
// 3. Once the file is repaired, the next run's retention catches up.
func TestFleetRetentionFailure(t *testing.T) {
	f := newKeepFleet(t, "a", "b", "c")
	cfg := f.config("keep_last = 2",
		[3]string{"a", "127.0.0.1", ""},
		[3]string{"b", "127.0.0.1", ""},
		[3]string{"c", "127.0.0.1", ""},
	)
	for run := 1; run <= 2; run++ {
		for _, u := range []string{"a", "b", "c"} {
			f.add(u, false, "INBOX")
		}
		if code, out, errs := runCLI(t, nil, "backup", "--config", cfg); code != exitOK {
			t.Fatalf("run %d: exit %d\n%s\n%s", run, code, out, errs)
		}
	}
	deltas, err := filepath.Glob(filepath.Join(f.vault("b"), "snapshots", "00000001-*", "*.jsonl.zst"))
	if err != nil || len(deltas) != 1 {
		t.Fatalf("b's first snapshot's delta files: %v %v", deltas, err)
	}
	good, err := os.ReadFile(deltas[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(deltas[0], []byte("damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"a", "b", "c"} {
		f.add(u, false, "INBOX")
	}
	rep := filepath.Join(f.dir, "report.json")
	metrics := filepath.Join(f.dir, "mailvault.prom")
	code, stdout, stderr := runCLI(t, nil, "backup", "--config", cfg, "--report", rep, "--metrics", metrics)
	if code != exitPartial {
		t.Fatalf("third run: exit %d, want %d\n%s\n%s", code, exitPartial, stdout, stderr)
	}
	const why = "retention: forget: snapshot "
	if !strings.Contains(stderr, "1 of 3 accounts: b failed ("+why) || !strings.Contains(stderr, "archive data is corrupt") {
		t.Errorf("stderr does not name b's retention failure:\n%s", stderr)
	}
	if line := lineOf(stdout, "b: "); !strings.HasPrefix(line, "b: failed, snapshot ") || !strings.Contains(line, "1 added") || !strings.Contains(line, ": "+why) {
		t.Errorf("b's line: %q", line)
	}
	if !strings.Contains(stdout, "3 accounts: 2 complete, 0 partial, 1 failed") {
		t.Errorf("total line:\n%s", stdout)
	}
	r := readFleetReport(t, rep)
	for _, acc := range r.Accounts {
		switch acc.Name {
		case "b":
			if acc.Status != report.StatusFailed || acc.Snapshot == "" || acc.Added != 1 || acc.SnapshotsForgotten != 0 ||
				!strings.HasPrefix(acc.RetentionError, "forget: snapshot ") || acc.Error != "retention: "+acc.RetentionError {
				t.Errorf("report of b: %+v", acc)
			}
			if n := snapshotCount(t, f.vault("b")); n != 3 {
				t.Errorf("b holds %d snapshots, want 3 (its backup committed, its retention failed)", n)
			}
		default:
			if acc.Status != report.StatusComplete || acc.SnapshotsForgotten != 1 || acc.RetentionError != "" || acc.Error != "" {
				t.Errorf("report of %s: %+v", acc.Name, acc)
			}
			if n := snapshotCount(t, f.vault(acc.Name)); n != 2 {
				t.Errorf("%s holds %d snapshots, want 2", acc.Name, n)
			}
		}
	}
	prom, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^mailvault_last_run_retention_failed\{account="b"\} 1$`,
		`(?m)^mailvault_last_run_retention_failed\{account="a"\} 0$`,
		`(?m)^mailvault_last_run_status\{account="b",status="failed"\} 1$`,
		`(?m)^mailvault_fleet_accounts\{status="failed"\} 1$`,
	} {
		if !regexp.MustCompile(re).Match(prom) {
			t.Errorf("metrics do not match %s:\n%s", re, prom)
		}
	}
	if regexp.MustCompile(`last_success_timestamp_seconds\{account="b"\} `).Match(prom) &&
		!regexp.MustCompile(`last_success_timestamp_seconds\{account="a"\} `).Match(prom) {
		t.Errorf("metrics: b has a last success and a has none")
	}

	// The file repaired, the next run forgets both snapshots over 2.
	if err := os.WriteFile(deltas[0], good, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := runCLI(t, nil, "backup", "--config", cfg); code != exitOK || !strings.Contains(lineOf(out, "b: "), "forgot 2 snapshots") {
		t.Errorf("fourth run: exit %d\n%s\n%s", code, out, errs)
	}
	if n := snapshotCount(t, f.vault("b")); n != 2 {
		t.Errorf("b holds %d snapshots after the fourth run, want 2", n)
	}
	if code, out, errs := runCLI(t, nil, "verify", f.vault("b")); code != exitOK {
		t.Errorf("verify b: exit %d\n%s\n%s", code, out, errs)
	}
}
