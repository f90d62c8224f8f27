package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestRestoreInProcess drives restore and ls end to end against the
// in-memory server: mapping flags, --into, --report, ls selections and
// errors.
func TestRestoreInProcess(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{
		Users:      map[string]string{"alice": "pw", "bob": "pw"},
		SpecialUse: map[string]string{"Sent": `\Sent`, "Enviados": `\Sent`},
	})
	c := srv.Dial(t, "alice", "pw")
	imaptest.Create(t, c, "Sent")
	imaptest.Create(t, c, "Work")
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	imaptest.Append(t, c, "INBOX", []imap.Flag{imap.FlagSeen}, date, []byte("Message-ID: <1@x>\r\nFrom: Bob <bob@example.com>\r\nSubject: Invoice 42\r\n\r\npay\r\n"))
	imaptest.Append(t, c, "INBOX", nil, date.AddDate(1, 0, 0), []byte("Message-ID: <2@x>\r\nSubject: hello\r\n\r\nhi\r\n"))
	imaptest.Append(t, c, "Sent", nil, date, []byte("Message-ID: <3@x>\r\nSubject: sent one\r\n\r\nout\r\n"))
	imaptest.Append(t, c, "Work", []imap.Flag{"$Project"}, date, []byte("Message-ID: <4@x>\r\nSubject: work\r\n\r\nwork\r\n"))
	vault := filepath.Join(t.TempDir(), "vault")
	url := "imap://alice@" + srv.Addr
	if code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}

	// ls with the restore selection flags.
	code, out, _ := runCLI(t, pwEnv, "ls", vault, "--subject", "INVOICE", "--from", "bob@")
	if code != 0 || !strings.Contains(out, "Invoice 42") || strings.Contains(out, "hello") {
		t.Errorf("ls --subject --from: %d %q", code, out)
	}
	code, out, _ = runCLI(t, pwEnv, "ls", vault, "--since", "2025-01-01")
	if code != 0 || !strings.Contains(out, "hello") || strings.Contains(out, "Invoice") {
		t.Errorf("ls --since: %d %q", code, out)
	}

	// Restore to bob: Sent goes to bob's \Sent folder "Enviados".
	b := srv.Dial(t, "bob", "pw")
	imaptest.Create(t, b, "Enviados")
	target := "imap://bob@" + srv.Addr
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errs := runCLI(t, pwEnv, "restore", vault, target, "--insecure-plaintext", "--map", "Work=Jobs", "--report", report)
	if code != 0 {
		t.Fatalf("restore: %d %s %s", code, out, errs)
	}
	got := imaptest.ReadServer(t, b)
	if len(got["INBOX"]) != 2 || len(got["Enviados"]) != 1 || len(got["Jobs"]) != 1 || got["Sent"] != nil {
		t.Errorf("restored folders: INBOX %d, Enviados %d, Jobs %d, Sent %v", len(got["INBOX"]), len(got["Enviados"]), len(got["Jobs"]), got["Sent"] != nil)
	}
	if f := got["Jobs"]; len(f) == 1 && strings.Join(f[0].Flags, " ") != "$project" {
		t.Errorf("keyword not restored: %v", f[0].Flags)
	}
	var rep struct {
		Stored  int `json:"appended"`
		Folders []struct{ Source, Target, Mapping string }
	}
	data, _ := os.ReadFile(report)
	if json.Unmarshal(data, &rep) != nil || rep.Stored != 4 {
		t.Errorf("report: %s", data)
	}
	// --no-map and --into.
	code, _, errs = runCLI(t, pwEnv, "restore", vault, target, "--insecure-plaintext", "--no-map", "--folder", "Sent")
	if got := imaptest.ReadServer(t, b); code != 0 || len(got["Sent"]) != 1 {
		t.Errorf("--no-map: exit %d %s, Sent holds %d", code, errs, len(got["Sent"]))
	}
	code, _, errs = runCLI(t, pwEnv, "restore", vault, target, "--insecure-plaintext", "--into", "Restored", "--subject", "invoice")
	if got := imaptest.ReadServer(t, b); code != 0 || len(got["Restored/INBOX"]) != 1 {
		t.Errorf("--into: exit %d %s, folders %v", code, errs, len(got["Restored/INBOX"]))
	}
	// Errors: wrong password, bad selection, bad target.
	for _, tt := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"restore", vault, target, "--insecure-plaintext"}, map[string]string{"MAILVAULT_PASSWORD": "nope"}, exitAuth, "authentication failed"},
		{[]string{"restore", vault, target, "--insecure-plaintext", "--snapshot", "ffffffff"}, pwEnv, exitUsage, "no snapshot"},
		{[]string{"restore", vault, target, "--insecure-plaintext", "--since", "yesterday"}, pwEnv, exitUsage, "want YYYY-MM-DD"},
		{[]string{"restore", vault, "ftp://x"}, pwEnv, exitUsage, "unsupported target"},
		{[]string{"restore", vault, target, "--insecure-plaintext", "--map", "nonsense"}, pwEnv, exitUsage, "want OLD=NEW"},
		{[]string{"migrate", url, target}, pwEnv, exitUsage, "needs --archive"},
	} {
		code, _, errs := runCLI(t, tt.env, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
	}
}
