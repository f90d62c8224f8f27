package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// BenchmarkScaleFake measures the mailvault binary as a process of its own
// (its own GOMEMLIMIT and GC, its peak RSS and CPU time without the
// server's; MAILVAULT_BENCH_BIN names another build to compare) against the in-process IMAP server with one folder of
// MAILVAULT_BENCH_MESSAGES messages (default 100,000): first backup,
// no-change backup, ls of the folder, verify. It prints one line per
// command: CPU seconds, CPU per 100,000 messages, peak RSS. The Dovecot
// benchmark (make bench-scale) is the reference; this one isolates
// mailvault's own cost from the server's on a machine under load.
//
//	go test ./cmd/mailvault -run '^$' -bench ScaleFake -benchtime 1x
func BenchmarkScaleFake(b *testing.B) {
	n := 100000
	if v := os.Getenv("MAILVAULT_BENCH_MESSAGES"); v != "" {
		fmt.Sscan(v, &n)
	}
	bin := os.Getenv("MAILVAULT_BENCH_BIN") // another build, to compare
	if bin == "" {
		bin = filepath.Join(b.TempDir(), "mailvault")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			b.Fatalf("build: %v\n%s", err, out)
		}
	}
	// Started through internal/bench/maxrss: a child started straight
	// from this (large) process would report its resident set as peak.
	launcher := filepath.Join(b.TempDir(), "maxrss")
	if out, err := exec.Command("go", "build", "-o", launcher, "../../internal/bench/maxrss").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	msgs := make([]imaptest.FakeMessage, n)
	for i := range msgs {
		msgs[i] = imaptest.FakeMessage{
			Flags: []string{`\Seen`},
			Body: []byte(fmt.Sprintf("From: s%d@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@scale>\r\n\r\n%s\r\n",
				i%97, i, i, strings.Repeat("b", i%64))),
		}
	}
	srv := imaptest.StartFake(b, imaptest.FakeOptions{User: "alice", Password: "pw", Folders: map[string][]imaptest.FakeMessage{"INBOX": msgs}})
	msgs = nil
	url := "imap://alice@" + srv.Addr
	for i := 0; i < b.N; i++ {
		vault := filepath.Join(b.TempDir(), "vault")
		for _, step := range []struct {
			name string
			args []string
		}{
			{"first backup", []string{"backup", url, vault, "--insecure-plaintext", "-q"}},
			{"no-change backup", []string{"backup", url, vault, "--insecure-plaintext", "-q"}},
			{"ls INBOX", []string{"ls", vault, "INBOX"}},
			{"verify", []string{"verify", vault, "-q"}},
		} {
			cmd := exec.Command(launcher, append([]string{bin}, step.args...)...)
			cmd.Env = append(os.Environ(), "MAILVAULT_PASSWORD=pw")
			var errb strings.Builder
			cmd.Stderr = &errb
			if out, err := cmd.Output(); err != nil {
				b.Fatalf("%s: %v: %s %s", step.name, err, out, errb.String())
			}
			var rssKB, wallNS, cpuNS int64
			lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
			if _, err := fmt.Sscanf(lines[len(lines)-1], "MAXRSS_KB=%d WALL_NS=%d CPU_NS=%d", &rssKB, &wallNS, &cpuNS); err != nil {
				b.Fatalf("%s: %v: %q", step.name, err, errb.String())
			}
			cpu := time.Duration(cpuNS)
			b.Logf("%-17s %8d msgs  %6.1f s  CPU %6.1f s  (%5.2f s per 100k)  peak RSS %5.1f MiB",
				step.name, n, time.Duration(wallNS).Seconds(), cpu.Seconds(), cpu.Seconds()*100000/float64(n), float64(rssKB)/1024)
		}
	}
}
