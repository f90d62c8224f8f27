package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/dovecottest"
)

// fleetProfile is each mailbox of the fleet benchmark: 50 messages of
// 2–60 KB in INBOX, Sent and Work.
var fleetProfile = Profile{Name: "fleet", Messages: 50, Folders: 3}

// BenchmarkFleet backs up 100 and then 1,000 mailboxes of 50 messages on
// one private Dovecot, each in one fleet run (mailvault backup --config,
// the accounts logging in through a Dovecot master user), from empty
// archives, then runs each again with nothing new. It prints wall time,
// mailboxes per minute and the peak RSS of the mailvault process side by
// side: memory must not grow with the number of accounts. It runs once,
// whatever b.N is:
//
//	make bench-fleet
//	go test ./internal/bench -run '^$' -bench Fleet -benchtime 1x -timeout 60m -v
//
// MAILVAULT_BENCH_FLEET sets the sizes ("100,1000" by default);
// MAILVAULT_BENCH_ARGS adds arguments to the backup runs (e.g.
// "--parallel 8"); MAILVAULT_BENCH_BIN uses a built binary.
func BenchmarkFleet(b *testing.B) {
	sizes := []int{100, 1000}
	if s := os.Getenv("MAILVAULT_BENCH_FLEET"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("MAILVAULT_BENCH_FLEET=%q: want sizes like 100,1000", s)
			}
			sizes = append(sizes, n)
		}
	}
	most := 0
	for _, n := range sizes {
		most = max(most, n)
	}
	_, self, _, _ := runtime.Caller(0)
	e := &env{b: b, root: filepath.Join(filepath.Dir(self), "..", ".."), work: b.TempDir(), mvExtra: strings.Fields(os.Getenv("MAILVAULT_BENCH_ARGS")),
		// The garbage collector's trace gives the live heap after each
		// collection: what the process holds, apart from RSS noise.
		envs: []string{"GODEBUG=gctrace=1"}}
	e.mv = os.Getenv("MAILVAULT_BENCH_BIN")
	if e.mv == "" {
		e.mv = filepath.Join(e.work, "mailvault")
		cmd := exec.Command("go", "build", "-o", e.mv, "./cmd/mailvault")
		cmd.Dir = e.root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("build mailvault: %v\n%s", err, out)
		}
	}
	user := func(i int) string { return fmt.Sprintf("user%04d", i) }
	users := map[string]string{}
	for i := range most {
		users[user(i)] = "pw-" + user(i)
	}
	e.srv = dovecottest.Start(b, dovecottest.Options{Users: users, Masters: map[string]string{"admin": "admin-secret"}})

	start := time.Now()
	uid, gid := -1, -1
	if fi, err := os.Stat(e.srv.MailRoot); err == nil && os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		uid, gid = int(st.Uid), int(st.Gid)
	}
	var total Stats
	for i := range most {
		st, err := WriteMaildir(filepath.Join(e.srv.MailRoot, user(i)), fleetProfile, uint64(1000+i), uid, gid)
		if err != nil {
			b.Fatalf("write mailbox %d: %v", i, err)
		}
		total.Messages += st.Messages
		total.Bytes += st.Bytes
	}
	say("%d mailboxes of %d messages (%.1f MB) written in %.1f s", most, fleetProfile.Messages, mb(total.Bytes), time.Since(start).Seconds())
	start = time.Now()
	e.srv.Doveadm(b, "mailbox", "status", "-A", "messages", "*")
	say("indexed by Dovecot (doveadm mailbox status -A) in %.1f s", time.Since(start).Seconds())
	adminPW := filepath.Join(e.work, "admin.pw")
	if err := os.WriteFile(adminPW, []byte("admin-secret\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	type row struct {
		n              int
		full, again    proc
		complete, msgs int
	}
	var rows []row
	for _, n := range sizes {
		dir := filepath.Join(e.work, fmt.Sprintf("fleet-%d", n))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			b.Fatal(err)
		}
		var cfg strings.Builder
		fmt.Fprintf(&cfg, "[defaults]\narchive_root = %q\nca_file = %q\n\n[[server]]\nhost = \"127.0.0.1\"\nmax_connections = 40\nadmin_user = \"admin\"\nadmin_password_file = %q\n",
			filepath.Join(dir, "vaults"), e.srv.CAFile, adminPW)
		for i := range n {
			fmt.Fprintf(&cfg, "\n[[account]]\nname = %q\nsource = \"imaps://%s@%s\"\n", user(i), user(i), e.srv.IMAPSAddr)
		}
		path := filepath.Join(dir, "mailvault.toml")
		if err := os.WriteFile(path, []byte(cfg.String()), 0o600); err != nil {
			b.Fatal(err)
		}
		rep := filepath.Join(dir, "report.json")
		args := append([]string{"backup", "--config", path, "-q", "--report", rep}, e.mvExtra...)
		r := row{n: n}
		pause()
		r.full = e.exec(e.mv, args...)
		r.complete, r.msgs = fleetReport(b, rep)
		if r.complete != n || r.msgs != n*fleetProfile.Messages {
			b.Fatalf("%d accounts: %d complete, %d messages added; want %d and %d", n, r.complete, r.msgs, n, n*fleetProfile.Messages)
		}
		say("%5d accounts, full:      %7.1f s, %6.0f mailboxes/min, peak RSS %5.1f MiB, live heap at most %d MB", n, r.full.wall.Seconds(), float64(n)/r.full.wall.Minutes(), mib(r.full.rss), maxLive(r.full.stderr))
		pause()
		r.again = e.exec(e.mv, args...)
		if c, m := fleetReport(b, rep); c != n || m != 0 {
			b.Fatalf("%d accounts, second run: %d complete, %d added; want %d and 0", n, c, m, n)
		}
		say("%5d accounts, no change: %7.1f s, %6.0f mailboxes/min, peak RSS %5.1f MiB, live heap at most %d MB", n, r.again.wall.Seconds(), float64(n)/r.again.wall.Minutes(), mib(r.again.rss), maxLive(r.again.stderr))
		rows = append(rows, r)
		os.RemoveAll(filepath.Join(dir, "vaults"))
	}

	var t strings.Builder
	fmt.Fprintf(&t, "\nmailvault backup --config: %d-message mailboxes (INBOX, Sent, Work; 2-60 KB each), one Dovecot, IMAPS, master-user login, --parallel %s\n\n", fleetProfile.Messages, parallelArg(e.mvExtra))
	fmt.Fprintf(&t, "| accounts | messages | full run | mailboxes/min | peak RSS | live heap | no-change run | mailboxes/min | peak RSS | live heap |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range rows {
		fmt.Fprintf(&t, "| %d | %d | %.1f s | %.0f | %.1f MiB | %d MB | %.1f s | %.0f | %.1f MiB | %d MB |\n", r.n, r.msgs, r.full.wall.Seconds(), float64(r.n)/r.full.wall.Minutes(), mib(r.full.rss), maxLive(r.full.stderr),
			r.again.wall.Seconds(), float64(r.n)/r.again.wall.Minutes(), mib(r.again.rss), maxLive(r.again.stderr))
	}
	t.WriteString("\nlive heap: the largest heap left after a garbage collection (GODEBUG=gctrace=1), what the process holds at its busiest\n")
	say("%s", t.String())
}

// gcLive matches the heap sizes of a gctrace line: "4->5->2 MB".
var gcLive = regexp.MustCompile(`(\d+)->(\d+)->(\d+) MB`)

// maxLive returns the largest live heap (MB) the gctrace lines in stderr
// report.
func maxLive(stderr string) int {
	most := 0
	for _, m := range gcLive.FindAllStringSubmatch(stderr, -1) {
		n, _ := strconv.Atoi(m[3])
		most = max(most, n)
	}
	return most
}

func parallelArg(extra []string) string {
	for i, a := range extra {
		if a == "--parallel" && i+1 < len(extra) {
			return extra[i+1]
		}
	}
	return "4 (default)"
}

// fleetReport returns how many accounts of the report are complete and
// how many messages they added.
func fleetReport(b *testing.B, path string) (complete, added int) {
	b.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	var r struct {
		Accounts []struct {
			Status string
			Added  int
			Error  string
			Name   string
		}
	}
	if err := json.Unmarshal(data, &r); err != nil {
		b.Fatal(err)
	}
	for _, a := range r.Accounts {
		if a.Status == "complete" {
			complete++
		} else if complete+1 < 5 {
			say("%s: %s %s", a.Name, a.Status, a.Error)
		}
		added += a.Added
	}
	return complete, added
}
