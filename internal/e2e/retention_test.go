package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/corpus"
)

// snapshotViews returns, per snapshot id, what it holds: per folder the
// present messages as "key sha flags message-id", sorted.
func snapshotViews(t *testing.T, vault string) (ids []string, views map[string][]string) {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	views = map[string][]string{}
	st := formats.NewState()
	for _, s := range snaps {
		if err := st.Apply(s); err != nil {
			t.Fatal(err)
		}
		var v []string
		for _, name := range st.FolderNames() {
			f := st.Folders[name]
			if f.Deleted {
				continue
			}
			for _, m := range f.Present() {
				v = append(v, fmt.Sprintf("%s %s %s %v %s", name, m.Key, m.SHA256, m.Flags, m.MessageID))
			}
		}
		sort.Strings(v)
		ids = append(ids, s.ID)
		views[s.ID] = v
	}
	return ids, views
}

// copyTree copies the vault src to dst.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

// retentionVault backs up a Dovecot account 10 times while mail arrives
// and is deleted, then forgets all but the last 3 snapshots.
func retentionVault(t *testing.T) string {
	t.Helper()
	msgs := corpus.Generate(corpus.Options{Seed: 31, Messages: 400})
	srv, c := dovecot(t, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	args := append([]string{"backup"}, append(source(srv), vault)...)
	rng := rand.New(rand.NewPCG(3, 4))
	for run := 1; run <= 10; run++ {
		mustRun(t, append(args, "--quiet")...)
		// Between runs: a tenth of INBOX is deleted, new mail arrives.
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatal(err)
		}
		all, err := c.Search(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			t.Fatal(err)
		}
		var del []uint32
		for _, n := range all.AllSeqNums() {
			if rng.IntN(10) == 0 {
				del = append(del, n)
			}
		}
		if len(del) > 0 {
			mustIMAP(t, c.Store(imap.SeqSetNum(del...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close())
			mustIMAP(t, c.Expunge().Close())
		}
		more := corpus.Generate(corpus.Options{Seed: int64(100 + run), Messages: 30})
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := corpus.Load(ctx, c, more); err != nil {
			cancel()
			t.Fatal(err)
		}
		cancel()
	}
	mustRun(t, "forget", vault, "--keep-last", "3")
	return vault
}

// killCampaign runs cmd (args after the vault) on copies of template,
// killing it with SIGKILL after a random delay, n times; after each kill
// the same command completes the job, the archive verifies with nothing
// left over, and its snapshots hold want.
func killCampaign(t *testing.T, template string, n int, want map[string][]string, wantIDs []string, command ...string) {
	t.Helper()
	// How long an uninterrupted run takes.
	probe := filepath.Join(t.TempDir(), "probe")
	copyTree(t, template, probe)
	r := mustRun(t, append([]string{command[0], probe}, command[1:]...)...)
	full := r.wall
	t.Logf("%s uninterrupted: %v: %s", command[0], full, strings.TrimSpace(r.stdout))
	rng := rand.New(rand.NewPCG(uint64(len(command[0])), 9))
	killedMidway := 0
	for i := range n {
		vault := filepath.Join(t.TempDir(), fmt.Sprintf("v%d", i))
		copyTree(t, template, vault)
		cmd := exec.Command(bin, append([]string{command[0], vault}, command[1:]...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rng.Int64N(int64(full) * 6 / 5)))
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			killedMidway++
		}
		// A backup or a reader meanwhile: the archive is whole.
		mustRun(t, "verify", vault)
		r := mv(t, bin, nil, append([]string{command[0], vault}, command[1:]...)...)
		if r.code != 0 {
			t.Fatalf("run %d: completing %s: exit %d: %s %s", i, command[0], r.code, r.stdout, r.stderr)
		}
		v := mustRun(t, "verify", vault)
		if strings.Contains(v.stdout, "left by interrupted") {
			t.Fatalf("run %d: leftovers after completion: %s", i, v.stdout)
		}
		ids, views := snapshotViews(t, vault)
		if strings.Join(ids, " ") != strings.Join(wantIDs, " ") {
			t.Fatalf("run %d: snapshots %v, want %v", i, ids, wantIDs)
		}
		for _, id := range ids {
			if strings.Join(views[id], "\n") != strings.Join(want[id], "\n") {
				t.Fatalf("run %d: snapshot %s holds %d messages, want %d", i, id, len(views[id]), len(want[id]))
			}
		}
	}
	t.Logf("%d runs of %s, %d killed before they finished", n, command[0], killedMidway)
	if killedMidway < n/3 {
		t.Errorf("only %d of %d runs were killed midway", killedMidway, n)
	}
}

// TestDovecotRetentionKills: SIGKILL at random instants of prune and of
// erase (50 runs each), and at each named point of their write path:
// every time the archive verifies, the next run of the same command
// completes it, and every kept snapshot holds exactly what it held
// (without the erased message).
func TestDovecotRetentionKills(t *testing.T) {
	t.Parallel()
	template := retentionVault(t)
	ids, views := snapshotViews(t, template)
	t.Run("prune", func(t *testing.T) {
		killCampaign(t, template, 50, views, ids, "prune")
	})
	// The victim: a message of the newest snapshot.
	latest := views[ids[len(ids)-1]]
	victim := strings.Fields(latest[len(latest)/2])
	msgID := victim[len(victim)-1]
	erased := map[string][]string{}
	for id, v := range views {
		for _, line := range v {
			if !strings.HasSuffix(line, " "+msgID) {
				erased[id] = append(erased[id], line)
			}
		}
	}
	t.Run("erase", func(t *testing.T) {
		killCampaign(t, template, 50, erased, ids, "erase", "--message-id", msgID, "--reason", "test")
	})
	t.Run("failpoints", func(t *testing.T) {
		for _, fp := range []string{"segment-before-rename", "rewrite-before-journal", "rewrite-after-journal", "rewrite-installed", "rewrite-removed-file"} {
			for _, command := range [][]string{{"prune"}, {"erase", "--message-id", msgID}} {
				vault := filepath.Join(t.TempDir(), "vault")
				copyTree(t, template, vault)
				args := append([]string{command[0], vault}, command[1:]...)
				r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
				if !r.signaled {
					t.Fatalf("%s: failpoint %s did not kill it: exit %d %s %s", command[0], fp, r.code, r.stdout, r.stderr)
				}
				mustRun(t, "verify", vault)
				mustRun(t, args...)
				if v := mustRun(t, "verify", vault); strings.Contains(v.stdout, "left by interrupted") {
					t.Fatalf("%s at %s: leftovers: %s", command[0], fp, v.stdout)
				}
				got, gotViews := snapshotViews(t, vault)
				want := views
				if command[0] == "erase" {
					want = erased
				}
				for _, id := range got {
					if strings.Join(gotViews[id], "\n") != strings.Join(want[id], "\n") {
						t.Fatalf("%s at %s: snapshot %s differs", command[0], fp, id)
					}
				}
			}
		}
	})
}
