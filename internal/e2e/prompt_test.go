package e2e

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/internal/dovecottest"
)

// ptyScript runs a command on a pseudo-terminal, answers the password
// prompt, and prints everything the terminal showed.
const ptyScript = `
import os, pty, sys
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
out = b""
while b"Password for" not in out:
    out += os.read(fd, 1024)
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
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"carol": "s3cret-on-tty"}})
	vault := filepath.Join(t.TempDir(), "vault")
	cmd := exec.Command("python3", "-c", ptyScript, bin, "backup", "imaps://carol@"+srv.IMAPSAddr, vault, "--ca-file", srv.CAFile)
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
