package bench

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/bench/wanproxy"
	"github.com/mailvault/mailvault/internal/dovecottest"
)

// Paths of the WAN benchmark.
const (
	pathLoopback = "loopback"
	pathWAN      = "wan"
)

// BenchmarkWAN measures mailvault's backup and restore of one account on a
// private Dovecot reached directly on loopback and through a delay line
// (package wanproxy) that adds MAILVAULT_BENCH_DELAY (default 15ms) each
// way, i.e. a 30 ms round trip, as a server in another city would. It
// prints wall time, messages/s, MB/s and peak RSS per mode and path, and
// the ratio of each mode's time through the delay line to its time on
// loopback (targets: restore at most 1.5x, backup at most 1.3x). It does
// the whole comparison once, whatever b.N is:
//
//	make bench-wan
//	go test ./internal/bench -run '^$' -bench WAN -benchtime 1x -timeout 60m -v
//
// The account is the "wan" profile (5,000 messages, about 350 MB, 20
// folders) unless MAILVAULT_BENCH_PROFILE names another; plaintext IMAP, so
// that TLS costs do not blur the protocol's. MAILVAULT_BENCH_RUNS (default
// 3) sets the runs per mode and path, MAILVAULT_BENCH_BIN a mailvault
// binary to measure instead of building one (to measure an older version
// against the same harness), MAILVAULT_BENCH_ARGS extra arguments for both
// commands (e.g. "--connections 8").
func BenchmarkWAN(b *testing.B) {
	name := os.Getenv("MAILVAULT_BENCH_PROFILE")
	if name == "" {
		name = "wan"
	}
	prof, ok := Profiles[name]
	if !ok {
		b.Fatalf("MAILVAULT_BENCH_PROFILE=%q: no such profile", name)
	}
	runs := 3
	if s := os.Getenv("MAILVAULT_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("MAILVAULT_BENCH_RUNS=%q: want a positive number", s)
		}
		runs = n
	}
	delay := 15 * time.Millisecond
	if s := os.Getenv("MAILVAULT_BENCH_DELAY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("MAILVAULT_BENCH_DELAY=%q: want a positive duration such as 15ms", s)
		}
		delay = d
	}
	_, self, _, _ := runtime.Caller(0)
	e := &env{
		b:       b,
		root:    filepath.Join(filepath.Dir(self), "..", ".."),
		work:    b.TempDir(),
		mvExtra: strings.Fields(os.Getenv("MAILVAULT_BENCH_ARGS")),
	}
	e.mv = os.Getenv("MAILVAULT_BENCH_BIN")
	if e.mv == "" {
		e.mv = filepath.Join(e.work, "mailvault")
		cmd := exec.Command("go", "build", "-o", e.mv, "./cmd/mailvault")
		cmd.Dir = e.root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build mailvault: %v\n%s", err, out)
		}
	}
	users := map[string]string{source: password}
	for k := 1; k <= runs; k++ {
		for _, path := range []string{pathLoopback, pathWAN} {
			users[wanRestoreUser(path, k)] = password
		}
	}
	e.srv = dovecottest.Start(b, dovecottest.Options{Users: users})
	proxy, err := wanproxy.Start(wanproxy.Options{Target: e.srv.IMAPAddr, Delay: delay})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { proxy.Close() })
	addr := map[string]string{pathLoopback: e.srv.IMAPAddr, pathWAN: proxy.Addr}
	say("Dovecot on %s, delay line on %s (%v each way, round trip %v)", e.srv.IMAPAddr, proxy.Addr, delay, 2*delay)

	start := time.Now()
	uid, gid := -1, -1
	if fi, err := os.Stat(e.srv.MailRoot); err == nil && os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid = int(st.Uid), int(st.Gid)
	}
	stats, err := WriteMaildir(filepath.Join(e.srv.MailRoot, source), prof, corpusSeed, uid, gid)
	if err != nil {
		b.Fatalf("write corpus: %v", err)
	}
	if n := e.serverCount(source); n != stats.Messages {
		b.Fatalf("Dovecot sees %d messages in %s's mailbox, wrote %d", n, source, stats.Messages)
	}
	say("profile %s: %d messages (%d of 1-10 MiB) in %d folders, %.1f MB, written and indexed in %.1f s",
		prof.Name, stats.Messages, stats.Large, len(stats.PerFolder), mb(stats.Bytes), time.Since(start).Seconds())

	mvArgs := func(args ...string) []string {
		return append(append(args, "--insecure-plaintext", "-q"), e.mvExtra...)
	}
	backup := func(path, dest string) run {
		return e.exec(e.mv, mvArgs("backup", "imap://"+source+"@"+addr[path], dest)...).run
	}
	results := map[string]map[string][]run{}
	add := func(path, mode string, r run) {
		if results[path] == nil {
			results[path] = map[string][]run{}
		}
		results[path][mode] = append(results[path][mode], r)
	}
	order := func(k int) []string {
		if k%2 == 1 {
			return []string{pathLoopback, pathWAN}
		}
		return []string{pathWAN, pathLoopback}
	}

	// Warm-up, not counted: Dovecot reads the mailbox into its caches.
	warm := filepath.Join(e.work, "warmup")
	r := backup(pathLoopback, warm)
	say("warm-up backup on loopback: %.2f s (not counted)", r.wall.Seconds())

	var archive string // a full backup, restored below
	for k := 1; k <= runs; k++ {
		for _, path := range order(k) {
			dest := filepath.Join(e.work, fmt.Sprintf("%s-%d", path, k))
			pause()
			r := backup(path, dest)
			add(path, modeFull, r)
			if n := archiveCount(b, dest); n != stats.Messages {
				b.Fatalf("backup %s #%d: archive holds %d messages, want %d", path, k, n, stats.Messages)
			}
			say("backup  %-8s #%d: %7.2f s, peak RSS %5.1f MiB", path, k, r.wall.Seconds(), mib(r.rss))
			if archive == "" {
				archive = dest
			} else {
				os.RemoveAll(dest)
			}
		}
	}
	os.RemoveAll(warm)
	for k := 1; k <= runs; k++ {
		for _, path := range order(k) {
			user := wanRestoreUser(path, k)
			pause()
			r := e.exec(e.mv, mvArgs("restore", archive, "imap://"+user+"@"+addr[path])...).run
			add(path, modeRestore, r)
			n := countMaildir(b, filepath.Join(e.srv.MailRoot, user))
			say("restore %-8s #%d: %7.2f s, peak RSS %5.1f MiB, %d messages in %s", path, k, r.wall.Seconds(), mib(r.rss), n, user)
			if n != stats.Messages {
				b.Fatalf("restore %s #%d: %d messages in account %s, want %d", path, k, n, user, stats.Messages)
			}
			os.RemoveAll(filepath.Join(e.srv.MailRoot, user))
		}
	}
	b.StopTimer()
	fmt.Print(wanTable(prof, stats, runs, 2*delay, results, e.mvExtra))
	for _, mode := range []string{modeFull, modeRestore} {
		lo, wan := median(results[pathLoopback][mode]).Seconds(), median(results[pathWAN][mode]).Seconds()
		b.ReportMetric(lo, mode+"-loopback-s")
		b.ReportMetric(wan, mode+"-wan-s")
		b.ReportMetric(wan/lo, mode+"-wan/loopback")
	}
}

func wanRestoreUser(path string, k int) string { return fmt.Sprintf("restore-%s%d", path, k) }

// wanTarget is the longest a mode may take through the delay line, as a
// multiple of its time on loopback.
var wanTarget = map[string]float64{modeFull: 1.3, modeRestore: 1.5}

// wanTable renders the WAN benchmark's results.
func wanTable(prof Profile, stats Stats, runs int, rtt time.Duration, results map[string]map[string][]run, extra []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmailvault on loopback and at %v round trip, profile %s (%d messages, %.1f MB), plaintext IMAP, median of %d runs",
		rtt, prof.Name, stats.Messages, mb(stats.Bytes), runs)
	if len(extra) > 0 {
		fmt.Fprintf(&b, ", args %q", strings.Join(extra, " "))
	}
	head := fmt.Sprintf("\n%-8s %-9s %8s %9s %8s %8s  %-22s %s\n", "mode", "path", "wall s", "msgs/s", "MB/s", "RSS MiB", "wan/loopback (target)", "runs s")
	b.WriteString(head)
	b.WriteString(strings.Repeat("-", len(head)-2) + "\n")
	for _, mode := range []string{modeFull, modeRestore} {
		label := map[string]string{modeFull: "backup", modeRestore: "restore"}[mode]
		for _, path := range []string{pathLoopback, pathWAN} {
			rs := results[path][mode]
			secs := median(rs).Seconds()
			var rss int64
			var all []string
			for _, r := range rs {
				rss = max(rss, r.rss)
				all = append(all, fmt.Sprintf("%.2f", r.wall.Seconds()))
			}
			ratio := ""
			if path == pathWAN {
				lo := median(results[pathLoopback][mode]).Seconds()
				verdict := "met"
				if secs/lo > wanTarget[mode] {
					verdict = "MISSED"
				}
				ratio = fmt.Sprintf("%.2fx (<= %.1fx: %s)", secs/lo, wanTarget[mode], verdict)
			}
			fmt.Fprintf(&b, "%-8s %-9s %8.2f %9.1f %8.1f %8.1f  %-22s %s\n", label, path, secs,
				float64(stats.Messages)/secs, mb(stats.Bytes)/secs, mib(rss), ratio, strings.Join(all, " "))
		}
	}
	return b.String()
}
