package main

import (
	"encoding/json"
	"fmt"

	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// gmailAccount starts a Gmail-like server with messages in labels (some in
// several) and one without a label.
func gmailAccount(t *testing.T, bandwidthCap int64) *imaptest.GmailServer {
	t.Helper()
	g := imaptest.StartGmail(t, imaptest.GmailOptions{User: "alice@gmail.test", Password: "app-password", BandwidthCap: bandwidthCap})
	day := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	deliver := func(i int, labels ...string) {
		body := fmt.Sprintf("Message-ID: <m%d@gmail.test>\r\nSubject: message %d\r\n\r\n%s\r\n", i, i, strings.Repeat(fmt.Sprintf("line %d\r\n", i), 20))
		g.Deliver(t, []byte(body), day.Add(time.Duration(i)*time.Hour), labels...)
	}
	deliver(0, "INBOX")
	deliver(1, "INBOX", "Work", "Family")
	deliver(2, "Work")
	deliver(3) // no label: only in All Mail
	deliver(4, "Family", "Work/Projects")
	deliver(5, "INBOX", "Work/Projects")
	return g
}

// storedOnce checks that every distinct message of the archive's latest
// state is stored once (one location per SHA-256), and returns the folders
// each Message-ID is recorded in (All Mail left out) and the number of
// messages All Mail stores in its own directory.
func storedOnce(t *testing.T, vault string) (map[string][]string, int) {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]string{} // SHA-256 -> location
	labels := map[string][]string{}
	allOwn := 0
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		for _, m := range f.Present() {
			loc := fmt.Sprintf("%s@%d", m.Seg, m.Off)
			if w, ok := where[m.SHA256]; ok && w != loc {
				t.Errorf("%s is stored twice: %s and %s", m.MessageID, w, loc)
			}
			where[m.SHA256] = loc
			if name == imaptest.GmailAllMail {
				if path.Dir(m.Seg) == "folders/"+f.Dir {
					allOwn++
				}
				if labels[m.MessageID] == nil {
					labels[m.MessageID] = []string{}
				}
				continue
			}
			labels[m.MessageID] = append(labels[m.MessageID], name)
		}
	}
	for id := range labels {
		sort.Strings(labels[id])
	}
	return labels, allOwn
}

// TestGmailBackupRestore: a Gmail account is backed up with each message
// stored once and every label recorded ([Gmail] never opened, All Mail
// last); restored to another Gmail account, the labels are as they were
// and All Mail holds each message once; restored to Dovecot, every folder
// is there with its messages, All Mail too.
func TestGmailBackupRestore(t *testing.T) {
	g := gmailAccount(t, 0)
	want := g.Labels()
	vault := filepath.Join(t.TempDir(), "vault")
	env := map[string]string{"MAILVAULT_PASSWORD": "app-password"}
	code, out, errs := runCLI(t, env, "backup", "imap://alice%40gmail.test@"+g.Addr, vault, "--insecure-plaintext", "--log-format", "json")
	if code != 0 {
		t.Fatalf("backup exit %d: %s %s", code, out, errs)
	}
	var examined []string
	for _, c := range g.Commands() {
		if name, ok := strings.CutPrefix(c, "EXAMINE "); ok {
			examined = append(examined, strings.Trim(name, `"`))
		}
	}
	if len(examined) == 0 || examined[len(examined)-1] != imaptest.GmailAllMail {
		t.Errorf("examined %v, want All Mail last", examined)
	}
	for _, f := range examined {
		if f == "[Gmail]" {
			t.Errorf("the \\Noselect [Gmail] was examined")
		}
	}
	labels, allOwn := storedOnce(t, vault)
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("archived labels %v, want %v", labels, want)
	}
	if allOwn != 1 {
		t.Errorf("All Mail stores %d messages itself, want 1 (the one without a label)", allOwn)
	}
	var sum backupSummary
	if err := json.Unmarshal([]byte(lastJSONLine(out)), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if added := 3 + 2 + 2 + 2 + len(want); sum.Stored != len(want) || sum.Added != added {
		t.Errorf("summary: stored %d, added %d; want %d stored, %d added", sum.Stored, sum.Added, len(want), added)
	}

	t.Run("to Gmail", func(t *testing.T) {
		g2 := imaptest.StartGmail(t, imaptest.GmailOptions{User: "alice@gmail.test", Password: "app-password"})
		report := filepath.Join(t.TempDir(), "report.json")
		code, out, errs := runCLI(t, env, "restore", vault, "imap://alice%40gmail.test@"+g2.Addr, "--insecure-plaintext", "--report", report)
		if code != 0 {
			t.Fatalf("restore exit %d: %s %s", code, out, errs)
		}
		if got := g2.Labels(); !reflect.DeepEqual(got, want) {
			t.Errorf("restored labels %v, want %v", got, want)
		}
		if !strings.Contains(out, "restored 15 messages") || !strings.Contains(out, "10 appended") || !strings.Contains(out, "5 in All Mail through their labels") {
			t.Errorf("restore summary %q, want 15 restored: 10 appended, 5 in All Mail through their labels", out)
		}
		if n := g2.Messages(imaptest.GmailAllMail); n != len(want) {
			t.Errorf("All Mail holds %d messages, want %d", n, len(want))
		}
		var appendedToAll int
		for _, c := range g2.Commands() {
			if strings.HasPrefix(c, "APPEND ") && strings.Contains(c, "All Mail") {
				appendedToAll++
			}
		}
		if appendedToAll != 1 {
			t.Errorf("%d APPENDs into All Mail, want 1 (the message without a label)", appendedToAll)
		}
		// Run again: nothing is appended.
		n := len(g2.Commands())
		if code, out, errs := runCLI(t, env, "restore", vault, "imap://alice%40gmail.test@"+g2.Addr, "--insecure-plaintext"); code != 0 {
			t.Fatalf("second restore exit %d: %s %s", code, out, errs)
		}
		for _, c := range g2.Commands()[n:] {
			if strings.HasPrefix(c, "APPEND ") {
				t.Errorf("second restore appended: %q", c)
			}
		}
	})

	t.Run("to Dovecot", func(t *testing.T) {
		d := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "secret"}})
		code, out, errs := runCLI(t, map[string]string{"MAILVAULT_PASSWORD": "secret"}, "restore", vault, "imap://alice@"+d.IMAPAddr, "--insecure-plaintext")
		if code != 0 {
			t.Fatalf("restore exit %d: %s %s", code, out, errs)
		}
		c, err := imapclient.DialInsecure(d.IMAPAddr, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if err := c.Login("alice", "secret").Wait(); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for name, msgs := range imaptest.ReadServer(t, c) {
			got[name] = len(msgs)
		}
		wantFolders := map[string]int{"INBOX": 3, "Work": 2, "Family": 2, "Work/Projects": 2, imaptest.GmailAllMail: len(want)}
		if !reflect.DeepEqual(got, wantFolders) {
			t.Errorf("Dovecot holds %v, want %v", got, wantFolders)
		}
	})
}

// TestGmailBandwidthCap: Gmail's BYE at its daily bandwidth cap stops the
// backup cleanly (partial snapshot, exit 3); the next day's run completes
// it, still storing each message once.
func TestGmailBandwidthCap(t *testing.T) {
	g := gmailAccount(t, 600) // about three messages a day
	want := g.Labels()
	vault := filepath.Join(t.TempDir(), "vault")
	env := map[string]string{"MAILVAULT_PASSWORD": "app-password"}
	url := "imap://alice%40gmail.test@" + g.Addr
	code, out, errs := runCLI(t, env, "backup", url, vault, "--insecure-plaintext")
	if code != exitPartial || g.Byes() == 0 {
		t.Fatalf("backup at the cap: exit %d (%d BYEs): %s %s; want exit 3", code, g.Byes(), out, errs)
	}
	if !strings.Contains(errs, "24 hours") {
		t.Errorf("stderr %q does not say when to run again", errs)
	}
	for day := 0; day < 10; day++ {
		g.ResetBandwidth()
		code, out, errs = runCLI(t, env, "backup", url, vault, "--insecure-plaintext")
		if code == 0 {
			break
		}
		if code != exitPartial {
			t.Fatalf("backup on day %d: exit %d: %s %s", day+2, code, out, errs)
		}
	}
	if code != 0 {
		t.Fatalf("the backup never completed: %s %s", out, errs)
	}
	labels, _ := storedOnce(t, vault)
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("archived labels %v, want %v", labels, want)
	}
}

// TestGmailExcludeAllMail: --exclude-folder "[Gmail]/All Mail" backs up
// the labels only: All Mail is never opened (a message without a label is
// then not backed up, as documented); a bad pattern is a usage error.
func TestGmailExcludeAllMail(t *testing.T) {
	g := gmailAccount(t, 0)
	vault := filepath.Join(t.TempDir(), "vault")
	env := map[string]string{"MAILVAULT_PASSWORD": "app-password"}
	url := "imap://alice%40gmail.test@" + g.Addr
	if code, _, errs := runCLI(t, env, "backup", url, vault, "--insecure-plaintext", "--exclude-folder", ""); code != exitUsage || !strings.Contains(errs, "--exclude-folder") {
		t.Errorf("an empty pattern: exit %d %q, want exit 2 naming --exclude-folder", code, errs)
	}
	code, out, errs := runCLI(t, env, "backup", url, vault, "--insecure-plaintext", "--exclude-folder", "[Gmail]/All Mail")
	if code != 0 {
		t.Fatalf("backup exit %d: %s %s", code, out, errs)
	}
	for _, c := range g.Commands() {
		if strings.HasPrefix(c, "EXAMINE") && strings.Contains(c, "All Mail") {
			t.Errorf("All Mail examined: %q", c)
		}
	}
	labels, _ := storedOnce(t, vault)
	want := g.Labels()
	delete(want, "<m3@gmail.test>") // in no label
	if !reflect.DeepEqual(labels, want) {
		t.Errorf("archived labels %v, want %v", labels, want)
	}
}

// lastJSONLine returns the last line of out that is a JSON object.
func lastJSONLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.HasPrefix(lines[i], "{") {
			return lines[i]
		}
	}
	return ""
}
