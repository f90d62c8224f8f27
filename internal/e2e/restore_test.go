package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// fingerprint is what a restore must keep of a message.
func fingerprint(m imaptest.ServerMessage) string {
	return fmt.Sprintf("%s|%s|%d", m.SHA256, strings.Join(m.Flags, " "), m.InternalDate.Unix())
}

// sameMail checks that every folder of want holds, in got[rename(folder)],
// the same messages: bytes, flags (as sets) and INTERNALDATE.
func sameMail(t *testing.T, want, got map[string][]imaptest.ServerMessage, rename map[string]string) {
	t.Helper()
	for folder, msgs := range want {
		tf := folder
		if r, ok := rename[folder]; ok {
			tf = r
		}
		a, b := []string{}, []string{}
		for _, m := range msgs {
			a = append(a, fingerprint(m))
		}
		for _, m := range got[tf] {
			b = append(b, fingerprint(m))
		}
		sort.Strings(a)
		sort.Strings(b)
		if strings.Join(a, "\n") != strings.Join(b, "\n") {
			t.Errorf("folder %q -> %q: %d messages restored, want %d (or bytes, flags or dates differ)", folder, tf, len(b), len(a))
		}
	}
}

// TestDovecotRestoreRoundTrip: alice's corpus, backed up, restored to bob
// on the same server: every folder holds the same bytes, flags and dates.
// A second restore adds nothing; a restore killed half-way and run again
// leaves every message there once.
func TestDovecotRestoreRoundTrip(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 9, Messages: 400, Large: 2})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)

	bob := []string{"imaps://bob@" + srv.IMAPSAddr, "--ca-file", srv.CAFile}
	report := filepath.Join(t.TempDir(), "report.json")
	r := mustRun(t, append([]string{"restore", vault}, append(bob, "--report", report)...)...)
	t.Logf("restore: %s", strings.TrimSpace(r.stdout))
	cb := login(t, srv, "bob")
	sameMail(t, want, imaptest.ReadServer(t, cb), nil)
	var rep struct {
		Stored  int `json:"appended"`
		Folders []struct {
			Target  string `json:"target"`
			Mapping string `json:"mapping"`
		} `json:"folders"`
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || rep.Stored == 0 {
		t.Fatalf("report %s: %v", data, err)
	}

	// Again: nothing appended.
	r = mustRun(t, append([]string{"restore", vault}, bob...)...)
	if !strings.Contains(r.stdout, " 0 appended") {
		t.Errorf("second restore: %s, want nothing appended", r.stdout)
	}
}

// TestDovecotRestoreResume kills a restore with SIGKILL and runs it again.
func TestDovecotRestoreResume(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 13, Messages: 300})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	args := []string{"restore", vault, "imaps://bob@" + srv.IMAPSAddr, "--ca-file", srv.CAFile}
	for _, fp := range []string{"message-restored:50", "message-restored:180"} {
		r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
		if !r.signaled {
			t.Fatalf("failpoint %s did not kill the restore: exit %d %s", fp, r.code, r.stderr)
		}
	}
	mustRun(t, args...)
	sameMail(t, want, imaptest.ReadServer(t, login(t, srv, "bob")), nil)
}

// TestDovecotRestoreMapping restores onto servers whose special folders
// have other names: by SPECIAL-USE, and by name when the server has none.
func TestDovecotRestoreMapping(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 17, Messages: 120})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)

	german := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"dora": "pw"},
		SpecialUse: map[string]string{"Gesendete Elemente": `\Sent`, "Entwürfe": `\Drafts`, "Papierkorb": `\Trash`, "Spam": `\Junk`, "Archiv": `\Archive`}})
	cd := login(t, german, "dora")
	for _, f := range []string{"Gesendete Elemente", "Entwürfe", "Papierkorb", "Spam", "Archiv"} {
		imaptest.Create(t, cd, f)
	}
	target := []string{"restore", vault, "imaps://dora@" + german.IMAPSAddr, "--ca-file", german.CAFile}
	r := mustRun(t, append(target, "--dry-run")...)
	for _, line := range []string{"Gesendete Elemente", "special-use"} {
		if !strings.Contains(r.stdout, line) {
			t.Errorf("dry-run plan does not show %q:\n%s", line, r.stdout)
		}
	}
	if got := imaptest.ReadServer(t, cd); len(got["Gesendete Elemente"]) != 0 || len(got["INBOX"]) != 0 {
		t.Fatalf("dry run changed the target")
	}
	mustRun(t, target...)
	rename := map[string]string{"Sent": "Gesendete Elemente", "Drafts": "Entwürfe", "Trash": "Papierkorb", "Junk": "Spam", "Archive": "Archiv"}
	sameMail(t, want, imaptest.ReadServer(t, cd), rename)

	// No SPECIAL-USE on the target: names in the target's language are found.
	spanish := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"eva": "pw"}, SpecialUse: map[string]string{}})
	ce := login(t, spanish, "eva")
	for _, f := range []string{"Elementos enviados", "Borradores", "Papelera"} {
		imaptest.Create(t, ce, f)
	}
	mustRun(t, "restore", vault, "imaps://eva@"+spanish.IMAPSAddr, "--ca-file", spanish.CAFile)
	sameMail(t, want, imaptest.ReadServer(t, ce), map[string]string{"Sent": "Elementos enviados", "Drafts": "Borradores", "Trash": "Papelera"})
}

// TestDovecotRestoreQuota restores into an account too small: the restore
// stops with exit code 8 and says how far it got and how to resume. The
// number it says, and the report's, is the number of messages the server
// holds (appends in flight on every connection when the server said over
// quota are waited for and counted).
func TestDovecotRestoreQuota(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 19, Messages: 150})
	srv, _ := dovecot(t, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	for i, quota := range []string{"*:storage=200K", "*:storage=1M"} {
		user := fmt.Sprintf("fred%d", i)
		small := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{user: "pw"}, Quota: map[string]string{user: quota}})
		report := filepath.Join(t.TempDir(), "report.json")
		r := mv(t, bin, nil, "restore", vault, "imaps://"+user+"@"+small.IMAPSAddr, "--ca-file", small.CAFile, "--report", report)
		if r.code != 8 || !strings.Contains(r.stderr, "over quota after") || !strings.Contains(r.stderr, "run the same command again to resume") {
			t.Fatalf("restore over quota: exit %d, stderr %q; want 8 and how to resume", r.code, r.stderr)
		}
		if n := strings.Count(strings.TrimSpace(r.stderr), "\n"); n != 0 {
			t.Errorf("error is %d lines, want one: %q", n+1, r.stderr)
		}
		var said int
		if _, err := fmt.Sscanf(r.stderr[strings.Index(r.stderr, "over quota after"):], "over quota after %d messages", &said); err != nil {
			t.Fatalf("stderr %q: %v", r.stderr, err)
		}
		held := 0
		for _, f := range readAs(t, small, user, "pw") {
			held += len(f)
		}
		var rep struct {
			Stored int    `json:"appended"`
			Status string `json:"status"`
		}
		data, _ := os.ReadFile(report)
		if err := json.Unmarshal(data, &rep); err != nil {
			t.Fatalf("report %s: %v", data, err)
		}
		t.Logf("quota %s: says %d restored, report %d, server holds %d", quota, said, rep.Stored, held)
		if said != held || rep.Stored != held || rep.Status != "stopped" {
			t.Errorf("quota %s: error says %d restored, report %d (%s), the server holds %d", quota, said, rep.Stored, rep.Status, held)
		}
		if !strings.Contains(r.stdout, fmt.Sprintf("%d appended", held)) {
			t.Errorf("summary %q does not say %d appended", r.stdout, held)
		}
	}
}

// TestRestoreLocal restores to a Maildir that a stock Dovecot then
// serves (LAYOUT=fs, folder names in modified UTF-7), to one that a
// Dovecot with the UTF-8 option serves (maildir:DIR?utf8), and to mbox
// and .eml trees; a second run adds nothing.
func TestRestoreLocal(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 23, Messages: 150, Large: 1})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)

	// The default: a stock Dovecot's mail_location.
	stock := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"carl": "pw"},
		MailLocation: map[string]string{"carl": "maildir:~/Maildir:LAYOUT=fs"}})
	dir := filepath.Join(stock.Home("carl"), "Maildir")
	mustRun(t, "restore", vault, "maildir:"+dir)
	if _, err := os.Stat(filepath.Join(dir, "Ünïcödé & Co")); err == nil {
		t.Errorf("a folder directory in UTF-8: a stock Dovecot does not find it")
	}
	chownMail(t, stock.Home("carl"))
	sameMail(t, want, readAs(t, stock, "carl", "pw"), nil)

	// Maildir with UTF-8 names, written straight into the mail directory
	// of a user who has none yet, then served by a Dovecot with :UTF-8.
	dir = filepath.Join(srv.MailRoot, "bob")
	mustRun(t, "restore", vault, "maildir:"+dir+"?utf8")
	r := mustRun(t, "restore", vault, "maildir:"+dir+"?utf8")
	if !strings.Contains(r.stdout, " 0 appended") {
		t.Errorf("second maildir restore: %s", r.stdout)
	}
	chownMail(t, dir)
	sameMail(t, want, imaptest.ReadServer(t, login(t, srv, "bob")), nil)

	for _, kind := range []string{"mbox", "eml"} {
		out := filepath.Join(t.TempDir(), kind)
		r := mustRun(t, "restore", vault, kind+":"+out)
		if !strings.Contains(r.stdout, "appended") {
			t.Errorf("%s restore: %s", kind, r.stdout)
		}
		r = mustRun(t, "restore", vault, kind+":"+out)
		if !strings.Contains(r.stdout, " 0 appended") {
			t.Errorf("second %s restore: %s", kind, r.stdout)
		}
	}
}

// TestRestoreLocalKilled kills restores to maildir:, mbox: and eml: with
// SIGKILL while a message is half written (its temporary file complete,
// not yet named; an mbox record written, not yet committed), then runs
// the restore to completion: no temporary file, no lock file, and every
// message there exactly once.
func TestRestoreLocalKilled(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 41, Messages: 120})
	srv, _ := dovecot(t, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	_, st := archivetest.Latest(t, vault)
	total := 0
	archived := map[string]int{} // SHA-256 -> copies in the archive
	for _, f := range st.Folders {
		for _, m := range f.Present() {
			archived[m.SHA256]++
			total++
		}
	}
	for _, kind := range []string{"maildir", "eml", "mbox"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), kind)
			target := kind + ":" + dir
			point := "target-temp-written"
			if kind == "mbox" {
				point = "target-record-written"
			}
			for _, n := range []string{"7", "40", "95"} {
				r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + point + ":" + n}, "restore", vault, target)
				if !r.signaled {
					t.Fatalf("failpoint %s:%s did not kill the restore: exit %d %s %s", point, n, r.code, r.stdout, r.stderr)
				}
			}
			if kind != "mbox" && len(tempFiles(t, dir)) == 0 {
				t.Fatalf("the killed restores left no temporary file: the test does not test anything")
			}
			r := mustRun(t, "restore", vault, target)
			t.Logf("after the kills: %s", strings.TrimSpace(r.stdout))
			if left := tempFiles(t, dir); len(left) > 0 {
				t.Errorf("left over after a complete restore: %q", left)
			}
			m := regexp.MustCompile(`: (\d+) appended \([^)]*\), (\d+) already present`).FindStringSubmatch(r.stdout)
			if m == nil {
				t.Fatalf("summary %q", r.stdout)
			}
			stored, _ := strconv.Atoi(m[1])
			present, _ := strconv.Atoi(m[2])
			if stored+present != total {
				t.Errorf("complete restore: %d appended + %d present, want %d", stored, present, total)
			}
			switch kind {
			case "mbox":
				if n := pythonMboxCount(t, dir); n != total {
					t.Errorf("the mbox files hold %d messages, want %d", n, total)
				}
			default:
				held := map[string]int{}
				for _, sum := range messageFiles(t, kind, dir) {
					held[sum]++
				}
				for sum, n := range archived {
					if held[sum] != n {
						t.Errorf("message %.12s is there %d times, want %d", sum, held[sum], n)
					}
				}
				if len(held) != len(archived) {
					t.Errorf("%d distinct messages on the target, %d in the archive", len(held), len(archived))
				}
			}
		})
	}
}

// tempFiles lists what a restore may leave behind: temporary files and
// the lock file.
func tempFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !d.IsDir() && (strings.HasPrefix(d.Name(), ".mailvault-") || filepath.Base(filepath.Dir(p)) == "tmp") {
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// messageFiles returns the SHA-256 of every message file of a maildir:
// (cur/ and new/) or eml: tree.
func messageFiles(t *testing.T, kind, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		parent := filepath.Base(filepath.Dir(p))
		if kind == "maildir" && parent != "cur" && parent != "new" || kind == "eml" && !strings.HasSuffix(p, ".eml") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		out = append(out, hex.EncodeToString(sum[:]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// pythonMboxCount counts the messages of the mbox files below root with
// Python's mailbox module.
func pythonMboxCount(t *testing.T, root string) int {
	t.Helper()
	out, err := exec.Command("python3", "-c", `
import mailbox, os, sys
n = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".mbox"):
            n += len(mailbox.mbox(os.path.join(d, f), create=False))
print(n)
`, root).CombinedOutput()
	if err != nil {
		t.Fatalf("python3: %v %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// chownMail gives a Maildir written by the test to the user Dovecot's mail
// processes run as (Debian's mail user when the tests run as root).
func chownMail(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 8, 8)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestMigrate moves alice's mailbox to another server's account in one
// command, with a different password for each, and keeps the archive.
func TestMigrate(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 29, Messages: 120})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)
	other := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "other-pw"}})
	vault := filepath.Join(t.TempDir(), "vault")
	args := []string{"migrate", "imaps://alice@" + srv.IMAPSAddr, "imaps://alice@" + other.IMAPSAddr,
		"--archive", vault, "--ca-file", srv.CAFile, "--target-ca-file", other.CAFile}
	r := mv(t, bin, []string{"MAILVAULT_TARGET_PASSWORD=other-pw"}, args...)
	if r.code != 0 {
		t.Fatalf("migrate: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "snapshot") || !strings.Contains(r.stdout, "restored") {
		t.Errorf("migrate output %q, want the backup and restore summaries", r.stdout)
	}
	sameMail(t, want, readAs(t, other, "alice", "other-pw"), nil)
	mustRun(t, "verify", vault)
	// Again: nothing new anywhere.
	r = mv(t, bin, []string{"MAILVAULT_TARGET_PASSWORD=other-pw"}, args...)
	if r.code != 0 || !strings.Contains(r.stdout, " 0 appended") {
		t.Errorf("second migrate: exit %d %s %s", r.code, r.stdout, r.stderr)
	}
}

// TestDryRunLeavesTargetAlone compares the whole target before and after
// a dry run.
func TestDryRunLeavesTargetAlone(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 31, Messages: 80})
	srv, _ := dovecot(t, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	cb := login(t, srv, "bob")
	imaptest.Append(t, cb, "INBOX", nil, msgs[0].InternalDate, []byte("Subject: already there\r\n\r\nhi\r\n"))
	before := imaptest.ReadServer(t, cb)
	r := mustRun(t, "restore", vault, "imaps://bob@"+srv.IMAPSAddr, "--ca-file", srv.CAFile, "--dry-run")
	if !strings.Contains(r.stdout, "nothing was changed") || !strings.Contains(r.stdout, "(new)") {
		t.Errorf("dry-run output: %s", r.stdout)
	}
	after := imaptest.ReadServer(t, cb)
	if len(before) != len(after) {
		t.Fatalf("dry run created folders: %d before, %d after", len(before), len(after))
	}
	sameMail(t, before, after, nil)
}

func readAs(t *testing.T, srv *dovecottest.Server, user, pw string) map[string][]imaptest.ServerMessage {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	return imaptest.ReadServer(t, c)
}
