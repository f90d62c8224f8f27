package e2e

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestDovecotCrash kills the backup with SIGKILL at points of the write
// path and checks that the next run completes the archive with every
// message exactly once.
func TestDovecotCrash(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 11, Messages: 500, Large: 3, LargeSize: 6 << 20})
	srv, c := dovecot(t, msgs)
	server := imaptest.ReadServer(t, c)
	points := []string{
		"message-stored:40",      // while fetching, between messages
		"body-chunk:400",         // in the middle of writing a message into a segment
		"segment-before-rename",  // a segment written and fsynced, not yet in place
		"manifest-before-rename", // every segment in place, the manifest not yet
		"manifest-after-rename",  // the manifest committed, the directory not yet fsynced
		"message-stored:450",     // late in the run
	}
	for _, fp := range points {
		t.Run(fp, func(t *testing.T) {
			t.Parallel() // each in its own vault; the server is only read
			vault := filepath.Join(t.TempDir(), "vault")
			args := append([]string{"backup"}, append(source(srv), vault)...)
			r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
			if !r.signaled {
				t.Fatalf("failpoint %s did not kill the run: exit %d %s %s", fp, r.code, r.stdout, r.stderr)
			}
			completeAndCheck(t, vault, args, server)
		})
	}
	// With checkpoints, a killed run's work is kept: the next run fetches
	// only what the checkpoints do not hold.
	for _, fp := range []string{"checkpoint-committed:3", "message-stored:450"} {
		t.Run("checkpoints/"+fp, func(t *testing.T) {
			t.Parallel()
			vault := filepath.Join(t.TempDir(), "vault")
			args := append([]string{"backup", "--checkpoint", "1ms", "--connections", "2"}, append(source(srv), vault)...)
			r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
			if !r.signaled {
				t.Fatalf("failpoint %s did not kill the run: exit %d %s %s", fp, r.code, r.stdout, r.stderr)
			}
			if n := len(snapshots(t, vault)); n < 3 {
				t.Fatalf("%d checkpoints committed before the kill, want at least 3", n)
			}
			held := 0
			for _, n := range archivetest.Present(t, vault) {
				held += n
			}
			r = mustRun(t, args...)
			var added, stored int
			if _, err := fmt.Sscanf(r.stdout[strings.Index(r.stdout, "folders ("):], "folders (%d examined), %d messages added (%d stored", new(int), &added, &stored); err != nil {
				t.Fatalf("summary %q: %v", r.stdout, err)
			}
			total := 0
			for _, ms := range server {
				total += len(ms)
			}
			t.Logf("run after the kill: %s", strings.TrimSpace(r.stdout))
			if held == 0 || added != total-held || stored > added {
				t.Errorf("the checkpoints held %d of %d messages and the run after the kill added %d (stored %d); want the %d they do not hold", held, total, added, stored, total-held)
			}
			completeAndCheck(t, vault, args, server)
		})
	}
	t.Run("SIGINT", func(t *testing.T) {
		t.Parallel()
		vault := filepath.Join(t.TempDir(), "vault")
		args := append([]string{"backup"}, append(source(srv), vault)...)
		// Stop the run after the first 100 messages are stored: SIGINT then
		// commits what was fetched as a partial snapshot and exits 130.
		cmd := exec.Command(binFail, args...)
		cmd.Env = []string{"MAILVAULT_PASSWORD=pw", "MAILVAULT_FAILPOINT=sigint-at:100"}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Run(); cmd.ProcessState.ExitCode() != 130 {
			t.Fatalf("interrupted run: %v, exit %d, stderr %q; want exit 130", err, cmd.ProcessState.ExitCode(), stderr.String())
		}
		if !strings.Contains(stderr.String(), "interrupted") {
			t.Errorf("stderr %q does not say the run was interrupted", stderr.String())
		}
		snaps := snapshots(t, vault)
		if len(snaps) != 1 || snaps[0].Status != "partial" {
			t.Fatalf("after SIGINT: %d snapshots, want one partial", len(snaps))
		}
		stored := 0
		for _, ch := range snaps[0].Changes {
			stored += len(ch.Added)
		}
		if stored < 100 {
			t.Errorf("partial snapshot holds %d messages, want the 100 fetched before SIGINT", stored)
		}
		completeAndCheck(t, vault, args, server)
	})
	t.Run("random kills", func(t *testing.T) {
		t.Parallel()
		vault := filepath.Join(t.TempDir(), "vault")
		args := append([]string{"backup"}, append(source(srv), vault)...)
		rng := rand.New(rand.NewPCG(1, 2))
		for i := 0; i < 4; i++ {
			cmd := exec.Command(bin, args...)
			cmd.Env = []string{"MAILVAULT_PASSWORD=pw"}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Duration(30+rng.IntN(300)) * time.Millisecond)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
		}
		completeAndCheck(t, vault, args, server)
	})
}

// completeAndCheck runs the backup to completion and checks the archive:
// verify passes, nothing is left over, every server message is there once.
func completeAndCheck(t *testing.T, vault string, args []string, server map[string][]imaptest.ServerMessage) {
	t.Helper()
	r := mustRun(t, args...)
	t.Logf("completing run: %s", strings.TrimSpace(r.stdout))
	v := mustRun(t, "verify", vault)
	if strings.Contains(v.stdout, "left by interrupted runs") {
		t.Errorf("verify after completion still finds leftovers: %s", v.stdout)
	}
	archivetest.MatchesServer(t, vault, server)
	// Exactly once: no folder stores the same bytes twice, no key twice.
	_, st := archivetest.Latest(t, vault)
	total := 0
	for name, f := range st.Folders {
		records := map[string]string{}
		keys := map[string]bool{}
		for _, m := range f.Archived {
			if keys[m.Key] {
				t.Errorf("%s: key %s archived twice", name, m.Key)
			}
			keys[m.Key] = true
			loc := m.Seg + "@" + itoa(uint32(m.Off))
			if other, ok := records[m.SHA256]; ok && other != loc {
				t.Errorf("%s: message %s stored twice (%s and %s)", name, m.Key, other, loc)
			}
			records[m.SHA256] = loc
		}
		total += len(f.Present())
	}
	want := 0
	for _, ms := range server {
		want += len(ms)
	}
	if total != want {
		t.Errorf("archive holds %d messages, server %d", total, want)
	}
	checkIndependentReaders(t, vault)
}
