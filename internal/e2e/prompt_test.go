package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/testenv"
)

// ptyScript runs a command on a pseudo-terminal, answers the password
// prompt, and prints everything the terminal showed.
const ptyScript = `
import os, pty, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while b"Password for" not in out:
    out += os.read(fd, 1024)
time.sleep(0.3)  # as a person would: echo is turned off right after the prompt
os.write(fd, b"s3cret-on-tty\n")
while True:
    try:
        chunk = os.read(fd, 1024)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
`

// TestPasswordPrompt checks that on a terminal mailvault asks for the
// password, without echoing it, when no other source gives one.
func TestPasswordPrompt(t *testing.T) {
	t.Parallel()
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"carol": "s3cret-on-tty"}})
	vault := filepath.Join(t.TempDir(), "vault")
	cmd := exec.Command(testenv.RequireTool(t, "python3"), "-c", ptyScript, bin, "backup", "imaps://carol@"+srv.IMAPSAddr, vault, "--ca-file", srv.CAFile)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=dumb"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("backup with a prompted password: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Password for imaps://carol@") || !strings.Contains(string(out), "complete") {
		t.Errorf("terminal showed %q, want a prompt and a complete snapshot", out)
	}
	if strings.Contains(string(out), "s3cret") {
		t.Errorf("the password was echoed: %q", out)
	}
}

// ptyRun runs a command on a pseudo-terminal and prints what it showed.
const ptyRun = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while True:
    try:
        chunk = os.read(fd, 4096)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace"))
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
`

// TestRestoreProgress checks that a restore on a terminal draws a progress
// line (messages, bytes, rate, ETA) and ends with a one-line summary.
func TestRestoreProgress(t *testing.T) {
	t.Parallel()
	srv, _ := dovecot(t, smallOnly(400))
	vault := filepath.Join(t.TempDir(), "vault")
	mustRun(t, append([]string{"backup"}, append(source(srv), vault)...)...)
	cmd := exec.Command(testenv.RequireTool(t, "python3"), "-c", ptyRun, bin, "restore", vault, "maildir:"+t.TempDir())
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TERM=xterm"}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("restore on a terminal: %v\n%s", err, out)
	}
	s := string(out)
	for _, want := range []string{"/400 messages", "ETA", "/s", "restored 400 messages"} {
		if !strings.Contains(s, want) {
			t.Errorf("terminal output lacks %q: %q", want, s)
		}
	}
}
