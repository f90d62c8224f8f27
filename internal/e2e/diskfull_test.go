package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/testenv"
)

// TestDiskFull backs up onto a file system that fills up: the run stops
// with a one-line error and exit code 8, the archive stays valid, no
// snapshot of it is called complete (printed, listed, written or picked by
// --as-of), and once there is room the next run completes it.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	testenv.RequireRoot(t, "the disk-full test mounts a small tmpfs and")
	msgs := corpus.Generate(corpus.Options{Seed: 21, Messages: 200, Large: 3, LargeSize: 2 << 20})
	srv, c := dovecot(t, msgs)
	server := imaptest.ReadServer(t, c)

	mnt := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt).CombinedOutput(); err != nil {
		testenv.Unavailable(t, "cannot mount a tmpfs here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	vault := filepath.Join(mnt, "vault")
	args := append([]string{"backup"}, append(source(srv), vault)...)

	r := mvTimeout(t, 60*time.Second, args...)
	if r.code != 8 {
		t.Fatalf("backup onto a full disk: exit %d, stderr %q; want 8", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "no space left on device") || !strings.HasPrefix(lines[0], "mailvault: cannot write the archive") {
		t.Errorf("stderr %q, want one line saying the archive cannot be written: no space left", r.stderr)
	}
	if _, err := os.Stat(filepath.Join(vault, "mailvault.json")); err == nil {
		// Whatever was committed verifies, and nothing calls it complete
		// (issue 10.1).
		if v := mv(t, bin, nil, "verify", vault); v.code != 0 {
			t.Errorf("verify after a full disk: exit %d %s %s", v.code, v.stdout, v.stderr)
		}
		checkNoFalseComplete(t, vault, r.stdout)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=256m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, out)
	}
	if r := mustRun(t, args...); !strings.Contains(r.stdout, " complete: ") {
		t.Errorf("the run with room printed %q, want a complete snapshot", r.stdout)
	}
	mustRun(t, "verify", vault)
	archivetest.MatchesServer(t, vault, server)
	// Now there is a complete backup for --as-of.
	mustRun(t, "ls", vault, "--as-of", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
}
