package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// Tests that what a backup prints, what `snapshots` lists, what the
// manifests say and what --as-of picks agree (issue 10).

// checkNoFalseComplete checks the archive a failed run left: the summary
// line it printed (if any), `snapshots`, every manifest as written, and
// --as-of ("the last complete backup") all say partial; none calls a
// snapshot complete that names a failed folder or an error.
func checkNoFalseComplete(t *testing.T, vault, stdout string) {
	t.Helper()
	if strings.Contains(stdout, " complete: ") {
		t.Errorf("a run that failed printed a complete snapshot: %q", stdout)
	}
	files, _ := filepath.Glob(filepath.Join(vault, formats.SnapshotsDir, "*.json"))
	if len(files) == 0 {
		t.Logf("no snapshot committed")
		return
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Snapshot struct {
				Status  string   `json:"status"`
				Errors  []string `json:"errors"`
				Folders []struct {
					Name, Status string
				} `json:"folders"`
			} `json:"snapshot"`
		}
		if err := json.Unmarshal(data, &env); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		s := env.Snapshot
		failed := 0
		for _, fo := range s.Folders {
			if fo.Status == formats.FolderFailed {
				failed++
			}
		}
		t.Logf("%s: status %s, %d folders, %d failed, %d errors", filepath.Base(f), s.Status, len(s.Folders), failed, len(s.Errors))
		if s.Status != formats.StatusPartial {
			t.Errorf("manifest %s says %q after a failed run (%d folders failed)", filepath.Base(f), s.Status, failed)
		}
	}
	r := mv(t, bin, nil, "snapshots", vault)
	if r.code != 0 || strings.Contains(r.stdout, "complete") {
		t.Errorf("snapshots = exit %d %q, want only partial snapshots", r.code, r.stdout)
	}
	r = mv(t, bin, nil, "ls", vault, "--as-of", time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	if r.code != 2 || !strings.Contains(r.stderr, "no complete snapshot") {
		t.Errorf("ls --as-of after a failed run: exit %d %q %q, want 2: no complete snapshot", r.code, r.stdout, r.stderr)
	}
}

// TestSignalAfterLastCommit (issue 10.15): SIGINT that arrives once the
// last snapshot is committed does not turn the run into an interrupted
// one: it printed a complete snapshot, and it exits 0 without an error.
func TestSignalAfterLastCommit(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 31, Messages: 30})
	srv, _ := dovecot(t, msgs)
	vault := filepath.Join(t.TempDir(), "vault")
	args := append([]string{"backup", "--checkpoint", "0"}, append(source(srv), vault)...)
	r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=sigint-after=manifest-after-rename:1"}, args...)
	if r.code != 0 || r.stderr != "" {
		t.Errorf("backup signalled after its last commit: exit %d, stderr %q; want 0 and nothing", r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, " complete: ") {
		t.Errorf("stdout %q, want the complete snapshot", r.stdout)
	}
	snaps := snapshots(t, vault)
	if len(snaps) != 1 || snaps[0].Status != formats.StatusComplete {
		t.Fatalf("%d snapshots, want one complete", len(snaps))
	}
}

// TestInboxListedTwiceCLI (issue 10.17): a server that lists INBOX twice
// (INBOX and Inbox) is backed up with exit 0, INBOX once.
func TestInboxListedTwiceCLI(t *testing.T) {
	t.Parallel()
	var msgs []imaptest.FakeMessage
	for i := 1; i <= 4; i++ {
		msgs = append(msgs, imaptest.FakeMessage{Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
	}
	f := imaptest.StartFake(t, imaptest.FakeOptions{User: "alice", Password: "pw", ListAlso: []string{"Inbox"},
		Folders: map[string][]imaptest.FakeMessage{"INBOX": msgs, "Work": msgs[:1]}})
	vault := filepath.Join(t.TempDir(), "vault")
	r := mv(t, bin, nil, "backup", "imap://alice@"+f.Addr, vault, "--insecure-plaintext")
	if r.code != 0 {
		t.Fatalf("backup: exit %d, stdout %q, stderr %q; want 0", r.code, r.stdout, r.stderr)
	}
	if got := archivetest.Present(t, vault); got["INBOX"] != 4 || got["Work"] != 1 || len(got) != 2 {
		t.Errorf("archived %v, want INBOX 4 and Work 1", got)
	}
}

// TestCheckpointsUnderKills (issue 17.2): through a slow link, a folder of
// large messages takes longer than a run lives; with --checkpoint 1s each
// run, killed (SIGKILL) soon after it started fetching, still commits part
// of the folder, so every run adds to what the archive holds, and a last
// run completes it. A run lives until its first checkpoint commit plus
// life: its start (process, TLS, login, listing) takes seconds on a
// loaded machine, and a fixed life from the start made the test flaky
// there. It runs alone (not t.Parallel, unlike the other tests here).
func TestCheckpointsUnderKills(t *testing.T) {
	const n, size, rate = 48, 96 << 10, 256 << 10 // 4.5 MiB at 256 KiB/s: 18 s for the folder
	const life = 1500 * time.Millisecond          // each killed run's, after its first checkpoint
	const startLimit = 60 * time.Second           // for a run to commit its first checkpoint
	var msgs []corpus.Message
	for i := 0; i < n; i++ {
		body := fmt.Sprintf("Subject: big %d\r\nMessage-ID: <big%d@test>\r\n\r\n", i, i)
		line := fmt.Sprintf("%04d %s\r\n", i, strings.Repeat("abcdefghij", 7))
		body += strings.Repeat(line, size/len(line))
		msgs = append(msgs, corpus.Message{Folder: "Sent", Body: []byte(body), InternalDate: time.Date(2025, 5, 6, 7, 8, i%60, 0, time.UTC)})
	}
	srv, c := dovecot(t, msgs)
	server := imaptest.ReadServer(t, c)
	slow := imaptest.Throttle(t, srv.IMAPSAddr, rate)
	vault := filepath.Join(t.TempDir(), "vault")
	args := []string{"backup", "imaps://alice@" + slow, "--ca-file", srv.CAFile, vault, "--checkpoint", "1s", "--connections", "1"}
	const kills = 5
	var counts []int
	prev := 0
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"MAILVAULT_PASSWORD=pw"}
		before := snapshotFiles(vault)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() {
			cmd.Wait()
			close(exited)
		}()
		// A new snapshot file is a checkpoint this run committed.
		deadline := time.Now().Add(startLimit)
		for snapshotFiles(vault) == before && time.Now().Before(deadline) {
			select {
			case <-exited:
			case <-time.After(50 * time.Millisecond):
				continue
			}
			break
		}
		select {
		case <-exited:
		case <-time.After(life):
		}
		cmd.Process.Signal(syscall.SIGKILL)
		<-exited
		if !cmd.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("run %d ended before the kill (exit %d; committed before: %v): the link is not slow enough for this test", i+1, cmd.ProcessState.ExitCode(), counts)
		}
		got := 0
		if _, err := os.Stat(filepath.Join(vault, "mailvault.json")); err == nil && len(snapshots(t, vault)) > 0 {
			got = archivetest.Present(t, vault)["Sent"]
		}
		counts = append(counts, got)
		if got <= prev {
			t.Errorf("run %d, killed %v after its first checkpoint (or %v after it started), committed nothing new: %d messages archived, %d before", i+1, life, startLimit, got, prev)
		}
		prev = got
	}
	t.Logf("%d runs killed %v after their first checkpoint; messages committed after each: %v of %d", kills, life, counts, n)
	completeAndCheck(t, vault, args, server)
}

// snapshotFiles counts the snapshot manifests of vault (0 before it
// exists): a new one is a committed snapshot, checkpoint or not. A
// manifest is written under another name and renamed to *.json.
func snapshotFiles(vault string) int {
	ents, _ := os.ReadDir(filepath.Join(vault, "snapshots"))
	n := 0
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".json") {
			n++
		}
	}
	return n
}
