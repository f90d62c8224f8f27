package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// heapPeak runs fn and returns the peak of the live heap (runtime/metrics
// /gc/heap/live:bytes, the heap marked live by each GC) while it ran,
// above what was live before: what fn retained at its worst, without the
// garbage a GC had not collected yet. GC runs often (GOGC 20) so that the
// peak is sampled finely.
func heapPeak(t *testing.T, fn func()) uint64 {
	t.Helper()
	old := debug.SetGCPercent(20)
	defer debug.SetGCPercent(old)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	live := func() uint64 {
		metrics.Read(sample)
		return sample[0].Value.Uint64()
	}
	runtime.GC()
	base := live()
	var peak uint64
	stop, done := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				mu.Lock()
				peak = max(peak, live())
				mu.Unlock()
			}
		}
	}()
	fn()
	close(stop)
	<-done
	if peak < base {
		return 0
	}
	return peak - base
}

// cpuTime is the CPU time the process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestMemoryBounded is the CI guard of issue 13: a folder of 50,000
// messages backed up from the in-process IMAP server (imaptest.Fake),
// backed up again with nothing new, then listed and verified, must not
// hold per-message state for the folder. The bounds come from
// measurements on this machine (2 cores under load, Go 1.26; live heap
// peak above the baseline, MiB; MAILVAULT_MEMTEST_MESSAGES sets the size):
//
//	messages              25,000   50,000   100,000
//	first backup, main     46.9     68.5     114.0    (c509e98: ~0.9 KB per message added)
//	first backup, state13  27.9     32.6      37.1    (~0.1 KB per message: caches, GC float)
//	no-change, main        20.1     38.8      78.1
//	no-change, state13     10.5     13.6      13.4
//	snapshots, main           -     39.9         -
//	snapshots, state13      0.0      0.0       0.0    (headers only)
//	ls INBOX, main            -     35.0         -
//	ls INBOX, state13       6.1      6.3       7.2    (streamed from an index)
//	verify, main              -    101.4         -
//	verify, state13        13.4     29.0      24.0    (temporary index, one segment at a time)
//
// What remains is mostly per connection (a zstd encoder per open segment
// writer, four connections) and the index's caches and compactions. Each
// bound is well above the new measurement (noise of a loaded machine) and
// well under the old one, so that a return to per-message state fails.
func TestMemoryBounded(t *testing.T) {
	n := 50000
	if v := os.Getenv("MAILVAULT_MEMTEST_MESSAGES"); v != "" { // for measurements at other sizes
		fmt.Sscan(v, &n)
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
	msgs = nil // the server holds copies: the baseline is as small as it can be
	vault := filepath.Join(t.TempDir(), "vault")
	env := func(k string) string {
		if k == "MAILVAULT_PASSWORD" {
			return "pw"
		}
		return ""
	}
	url := "imap://alice@" + srv.Addr
	const mib = 1 << 20
	for _, step := range []struct {
		name  string
		argv  []string
		bound uint64
	}{
		{"first backup", []string{"backup", url, vault, "--insecure-plaintext"}, 48 * mib},
		{"no-change backup", []string{"backup", url, vault, "--insecure-plaintext"}, 18 * mib},
		{"snapshots", []string{"snapshots", vault}, 8 * mib},
		{"ls INBOX", []string{"ls", vault, "INBOX"}, 16 * mib},
		{"verify", []string{"verify", vault}, 40 * mib},
	} {
		var errb bytes.Buffer
		code := 0
		start, cpu0 := time.Now(), cpuTime()
		peak := heapPeak(t, func() {
			code = run(append([]string{"mailvault"}, step.argv...), nil, io.Discard, &errb, env)
		})
		t.Logf("%s: %.1f MiB live heap peak above the baseline, %.1f s (%.1f s of CPU, the server's included)",
			step.name, float64(peak)/(1<<20), time.Since(start).Seconds(), (cpuTime() - cpu0).Seconds())
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", step.name, code, errb.String())
		}
		if peak > step.bound {
			t.Errorf("%s: live heap peak %.1f MiB above the baseline, want at most %.1f MiB (per-message state held in memory?)",
				step.name, float64(peak)/mib, float64(step.bound)/mib)
		}
	}
}
