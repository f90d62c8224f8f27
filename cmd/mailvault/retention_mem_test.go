package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestRetentionMemoryBounded is TestMemoryBounded for retention (issue
// 13): a folder of 50,000 messages backed up four times, a fifth of it
// deleted on the server before each of the last three runs, then forget
// (folding snapshots), prune (rewriting every segment: each has records
// only forgotten snapshots held), erase and forget --prune must not hold
// per-message state for the folder. Measured on this machine (2 cores
// under load, Go 1.26; live heap peak above the baseline, MiB;
// MAILVAULT_MEMTEST_MESSAGES sets the size):
//
//	messages                        25,000   50,000   100,000
//	forget --keep-last 2, main        19.8     45.4      98.5   (every manifest's records in memory, twice)
//	forget --keep-last 2, retain13     8.3     10.8      12.2   (headers; records streamed; replay state on disk;
//	                                                              then the state index built again: most of it)
//	prune, main                       31.2     61.3     140.1
//	prune, retain13                    7.8     10.8      13.6   (leveldb buffers, a segment's records at a time)
//	erase, main                       24.2     42.6      82.0
//	erase, retain13                    9.8      9.8       9.2
//	forget --prune, main              31.1     49.4     112.5
//	forget --prune, retain13           9.5     11.7      15.1
//
// The mailvault binary's peak RSS on the 1,000,000-message archive of
// internal/bench's BenchmarkRetentionScale (30 snapshots, forget
// --keep-last 10, then prune): forget 1122 -> 46 MiB, prune 1409 -> 52
// MiB. Each bound is well above the new measurement and well under the
// old one, so that a return to per-message state fails.
func TestRetentionMemoryBounded(t *testing.T) {
	n := 50000
	if v := os.Getenv("MAILVAULT_MEMTEST_MESSAGES"); v != "" { // for measurements at other sizes
		fmt.Sscan(v, &n)
	}
	if os.Getenv("MAILVAULT_MEMTEST_PROFILE") != "" {
		runtime.MemProfileRate = 32 << 10 // finer heap profiles than the default 512 KiB
	}
	msgs := make([]imaptest.FakeMessage, n)
	for i := range msgs {
		msgs[i] = imaptest.FakeMessage{
			Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("From: s%d@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@mem>\r\n\r\n%s\r\n",
				i%97, i, i, strings.Repeat("b", i%64))),
		}
	}
	srv := imaptest.StartFake(t, imaptest.FakeOptions{User: "alice", Password: "pw", Folders: map[string][]imaptest.FakeMessage{"INBOX": msgs}})
	msgs = nil
	vault := filepath.Join(t.TempDir(), "vault")
	env := func(k string) string {
		if k == "MAILVAULT_PASSWORD" {
			return "pw"
		}
		return ""
	}
	url := "imap://alice@" + srv.Addr
	cli := func(argv ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := run(append([]string{"mailvault"}, argv...), nil, &out, &errb, env); code != 0 {
			t.Fatalf("%s: exit %d: %s", argv[0], code, errb.String())
		}
		return out.String()
	}
	// Four snapshots: all, then each time a fifth less (UIDs 1, 2, 3
	// modulo 5 go), so that every segment of the first run ends up with
	// records only forgotten snapshots had.
	cli("backup", url, vault, "--insecure-plaintext")
	for r := 1; r <= 3; r++ {
		var uids []imap.UID
		for u := r; u <= n; u += 5 {
			uids = append(uids, imap.UID(u))
		}
		srv.Expunge("INBOX", uids...)
		cli("backup", url, vault, "--insecure-plaintext")
	}
	const mib = 1 << 20
	erased := fmt.Sprintf("<%d@mem>", n/2+3) // UID n/2+4: never deleted
	for _, step := range []struct {
		name  string
		argv  []string
		bound uint64
		want  string // in the output
	}{
		{"forget --keep-last 2", []string{"forget", vault, "--keep-last", "2"}, 24 * mib, "forgot 2 of 4 snapshots"},
		{"prune", []string{"prune", vault}, 24 * mib, fmt.Sprintf("removed %d messages", 2*n/5)},
		{"erase", []string{"erase", vault, "--message-id", erased, "--reason", "test"}, 24 * mib, "erased 1 messages"},
		{"forget --keep-last 1 --prune", []string{"forget", vault, "--keep-last", "1", "--prune"}, 24 * mib, fmt.Sprintf("removed %d messages", n/5)},
	} {
		var errb bytes.Buffer
		outb := &headWriter{max: 64 << 10}
		code := 0
		start, cpu0 := time.Now(), cpuTime()
		peak := heapPeak(t, step.name, func() {
			code = run(append([]string{"mailvault"}, step.argv...), nil, outb, &errb, env)
		})
		t.Logf("%s: %.1f MiB live heap peak above the baseline, %.1f s (%.1f s of CPU)",
			step.name, float64(peak)/mib, time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds())
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", step.name, code, errb.String())
		}
		if !strings.Contains(outb.String(), step.want) {
			t.Errorf("%s printed %q, want %q in it", step.name, outb.String(), step.want)
		}
		if peak > step.bound {
			t.Errorf("%s: live heap peak %.1f MiB above the baseline, want at most %.1f MiB (per-message state held in memory?)",
				step.name, float64(peak)/mib, float64(step.bound)/mib)
		}
	}
	// What is left verifies and restores: the two fifths still on the
	// server but the erased one.
	cli("verify", vault)
	out := t.TempDir()
	cli("restore", vault, "mbox:"+out, "-q")
	if got, want := countMbox(t, filepath.Join(out, "INBOX.mbox")), n-3*n/5-1; got != want {
		t.Errorf("restored %d messages, want %d", got, want)
	}
}
