package bench

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/dovecottest"
)

const (
	password    = "pw"
	source      = "alice"
	corpusSeed  = 42
	newMessages = 100 // per incremental round, over IncrementalFolders
)

// Tools and modes, in table order.
const (
	toolMV = "mailvault"
	toolMB = "mbsync"

	modeFull        = "full"
	modeNoChange    = "no-change"
	modeIncremental = "incremental"
	modeRestore     = "restore"
)

var (
	tools = []string{toolMV, toolMB}
	modes = []string{modeFull, modeNoChange, modeIncremental, modeRestore}
)

// run is one measured tool run.
type run struct {
	wall time.Duration
	rss  int64 // bytes, peak RSS of the tool's process
}

// proc is a finished process started through testdata/maxrss.py.
type proc struct {
	run
	code           int
	stdout, stderr string
}

// env holds what every run needs.
type env struct {
	b       *testing.B
	root    string // repository root
	work    string // destinations, configs
	mv      string // mailvault binary
	mbsync  string // mbsync binary
	srv     *dovecottest.Server
	pwFile  string
	mvExtra []string // MAILVAULT_BENCH_ARGS, backup runs only
	envs    []string // more environment of the measured processes
}

// BenchmarkVsMbsync runs mailvault and mbsync side by side against the
// same private Dovecot and prints a comparison table. It does the whole
// comparison once, whatever b.N is:
//
//	internal/bench/run.sh                     # installs what is missing, then:
//	go test ./internal/bench -run '^$' -bench VsMbsync -benchtime 1x -timeout 90m -v
//
// MAILVAULT_BENCH_PROFILE=quick for the small mailbox (see the package
// documentation for the other variables).
func BenchmarkVsMbsync(b *testing.B) {
	name := os.Getenv("MAILVAULT_BENCH_PROFILE")
	if name == "" {
		name = "full"
	}
	prof, ok := Profiles[name]
	if !ok {
		b.Fatalf("MAILVAULT_BENCH_PROFILE=%q: want full or quick", name)
	}
	runs := 3
	if s := os.Getenv("MAILVAULT_BENCH_RUNS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 3 {
			b.Fatalf("MAILVAULT_BENCH_RUNS=%q: want a number of at least 3", s)
		}
		runs = n
	}
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		b.Fatal("mbsync is not installed: apt-get install isync (internal/bench/run.sh does it)")
	}
	_, self, _, _ := runtime.Caller(0)
	e := &env{
		b:       b,
		root:    filepath.Join(filepath.Dir(self), "..", ".."),
		work:    b.TempDir(),
		mbsync:  mbsync,
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
	e.pwFile = filepath.Join(e.work, "password")
	if err := os.WriteFile(e.pwFile, []byte(password+"\n"), 0o600); err != nil {
		b.Fatal(err)
	}

	// One source account and an empty account per restore run.
	users := map[string]string{source: password}
	for k := 1; k <= runs; k++ {
		users[restoreUser(toolMV, k)] = password
		users[restoreUser(toolMB, k)] = password
	}
	e.srv = dovecottest.Start(b, dovecottest.Options{Users: users})
	say("Dovecot on %s (IMAPS %s), mail in %s", e.srv.IMAPAddr, e.srv.IMAPSAddr, e.srv.MailRoot)

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
	say("profile %s: %d messages (%d of 1-10 MiB) in %d folders, %.1f MB, written in %.1f s",
		prof.Name, stats.Messages, stats.Large, len(stats.PerFolder), mb(stats.Bytes), time.Since(start).Seconds())
	start = time.Now()
	if n := e.serverCount(source); n != stats.Messages {
		b.Fatalf("Dovecot sees %d messages in %s's mailbox, wrote %d", n, source, stats.Messages)
	}
	say("indexed by Dovecot (doveadm mailbox status) in %.2f s", time.Since(start).Seconds())

	results := map[string]map[string][]run{}
	add := func(tool, mode string, r run) {
		if results[tool] == nil {
			results[tool] = map[string][]run{}
		}
		results[tool][mode] = append(results[tool][mode], r)
	}
	order := func(k int) []string {
		if k%2 == 1 {
			return []string{toolMV, toolMB}
		}
		return []string{toolMB, toolMV}
	}

	// Warm-up, not counted: one full run of each tool, so that neither
	// pays for Dovecot filling its caches.
	for _, tool := range tools {
		dest := filepath.Join(e.work, tool+"-warmup")
		r := e.backup(tool, dest)
		e.checkFull(tool, dest, stats.Messages)
		say("warm-up %-9s full: %6.2f s, peak RSS %5.1f MiB (not counted)", tool, r.wall.Seconds(), mib(r.rss))
		os.RemoveAll(dest)
	}

	// (a) full backup into an empty destination and (b) a second run of
	// the same destination right after it.
	dests := map[string]string{}
	for k := 1; k <= runs; k++ {
		for _, tool := range order(k) {
			if dests[tool] != "" {
				os.RemoveAll(dests[tool])
			}
			dest := filepath.Join(e.work, fmt.Sprintf("%s-%d", tool, k))
			dests[tool] = dest
			pause()
			r := e.backup(tool, dest)
			add(tool, modeFull, r)
			say("%-9s full        #%d: %7.2f s, peak RSS %5.1f MiB", tool, k, r.wall.Seconds(), mib(r.rss))
			e.checkFull(tool, dest, stats.Messages)
			pause()
			r = e.backup(tool, dest)
			add(tool, modeNoChange, r)
			extra := ""
			if tool == toolMV {
				snap := e.latestSnapshot(dest)
				extra = fmt.Sprintf(", folders not unchanged: %v", changedFolders(snap))
			}
			say("%-9s no-change   #%d: %7.2f s, peak RSS %5.1f MiB%s", tool, k, r.wall.Seconds(), mib(r.rss), extra)
		}
	}

	// (d) restore of the full backup into an empty account of the same
	// Dovecot; the account is removed again afterwards to free tmpfs.
	for k := 1; k <= runs; k++ {
		for _, tool := range order(k) {
			user := restoreUser(tool, k)
			pause()
			r := e.restore(tool, dests[tool], user, k)
			add(tool, modeRestore, r)
			n := countMaildir(b, filepath.Join(e.srv.MailRoot, user))
			say("%-9s restore     #%d: %7.2f s, peak RSS %5.1f MiB, %d messages in %s", tool, k, r.wall.Seconds(), mib(r.rss), n, user)
			if n != stats.Messages {
				b.Fatalf("%s restore #%d: %d messages in account %s, want %d", tool, k, n, user, stats.Messages)
			}
			os.RemoveAll(filepath.Join(e.srv.MailRoot, user))
		}
	}

	// (c) 100 new messages in 3 folders, then an incremental run of each
	// tool on its destination of the last full run.
	total := stats.Messages
	var newBytes int64
	for k := 1; k <= runs; k++ {
		msgs := NewMessages(k, newMessages, IncrementalFolders)
		e.appendMessages(msgs)
		total += len(msgs)
		newBytes = 0
		for _, m := range msgs {
			newBytes += int64(len(m.Body))
		}
		for _, tool := range order(k) {
			pause()
			r := e.backup(tool, dests[tool])
			add(tool, modeIncremental, r)
			extra := ""
			if tool == toolMV {
				changed := changedFolders(e.latestSnapshot(dests[tool]))
				extra = fmt.Sprintf(", folders not unchanged: %v", changed)
				want := slices.Clone(IncrementalFolders)
				sort.Strings(want)
				if !slices.Equal(changed, want) {
					b.Errorf("mailvault incremental #%d: folders not \"unchanged\" in the newest snapshot: %v, want %v", k, changed, want)
				}
				if n := archiveCount(b, dests[tool]); n != total {
					b.Fatalf("mailvault incremental #%d: archive holds %d messages, want %d", k, n, total)
				}
			} else if n := countMaildir(b, dests[tool]); n != total {
				b.Fatalf("mbsync incremental #%d: Maildir holds %d messages, want %d", k, n, total)
			}
			say("%-9s incremental #%d: %7.2f s, peak RSS %5.1f MiB%s", tool, k, r.wall.Seconds(), mib(r.rss), extra)
		}
	}
	b.StopTimer()

	volume := map[string][2]float64{
		modeFull:        {float64(stats.Messages), mb(stats.Bytes)},
		modeNoChange:    {float64(stats.Messages), 0},
		modeIncremental: {newMessages, mb(newBytes)},
		modeRestore:     {float64(stats.Messages), mb(stats.Bytes)},
	}
	fmt.Print(table(prof, runs, results, volume, e.mvExtra))

	med := func(tool, mode string) float64 { return median(results[tool][mode]).Seconds() }
	b.ReportMetric(float64(stats.Messages)/med(toolMV, modeFull), "mv-full-msgs/s")
	b.ReportMetric(float64(stats.Messages)/med(toolMB, modeFull), "mbsync-full-msgs/s")
	b.ReportMetric(med(toolMB, modeFull)/med(toolMV, modeFull), "full-speed-ratio")
	b.ReportMetric(med(toolMV, modeNoChange), "mv-nochange-s")
	b.ReportMetric(med(toolMB, modeNoChange), "mbsync-nochange-s")
	b.ReportMetric(med(toolMV, modeIncremental), "mv-incr-s")
	b.ReportMetric(med(toolMB, modeIncremental), "mbsync-incr-s")
	b.ReportMetric(float64(stats.Messages)/med(toolMV, modeRestore), "mv-restore-msgs/s")
	b.ReportMetric(float64(stats.Messages)/med(toolMB, modeRestore), "mbsync-restore-msgs/s")
	b.ReportMetric(mib(peak(results[toolMV])), "mv-peak-RSS-MiB")
	b.ReportMetric(mib(peak(results[toolMB])), "mbsync-peak-RSS-MiB")
}

// settle is the pause before each measured run. Runs of a real backup
// are minutes apart; without it mbsync would sleep a second in a run right
// after another ("sleeping due to recent directory modification": it
// waits when a Maildir directory changed within the last second).
const settle = 2 * time.Second

func pause() { time.Sleep(settle) }

func restoreUser(tool string, k int) string {
	if tool == toolMV {
		return fmt.Sprintf("restore-mv%d", k)
	}
	return fmt.Sprintf("restore-mb%d", k)
}

// say prints a progress line at once (b.Log would hold it back until the
// benchmark ends).
func say(format string, args ...any) {
	fmt.Printf("%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func mb(n int64) float64                { return float64(n) / 1e6 }
func mib(n int64) float64               { return float64(n) / (1 << 20) }
func imapsURL(user, addr string) string { return "imaps://" + user + "@" + addr }

// exec runs bin with args through testdata/maxrss.py, which forks and
// execs it and reports the peak RSS of that process alone (os/exec starts
// children with vfork, and Linux would carry this test process's resident
// set into the child's ru_maxrss). It fails the benchmark unless the
// process exits 0.
func (e *env) exec(bin string, args ...string) proc {
	e.b.Helper()
	script := filepath.Join(e.root, "testdata", "maxrss.py")
	cmd := exec.Command("python3", append([]string{script, bin}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + e.work, "MAILVAULT_PASSWORD=" + password, "LC_ALL=C.UTF-8"}, e.envs...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	p := proc{run: run{wall: time.Since(start)}, stdout: out.String(), stderr: errb.String()}
	if cmd.ProcessState == nil {
		e.b.Fatalf("run %s: %v", bin, err)
	}
	p.code = cmd.ProcessState.ExitCode()
	i := strings.LastIndex(p.stderr, "MAXRSS_KB=")
	if i >= 0 {
		kb, err := strconv.ParseInt(strings.TrimSpace(p.stderr[i+len("MAXRSS_KB="):]), 10, 64)
		if err != nil {
			e.b.Fatal(err)
		}
		p.rss = kb << 10
		p.stderr = strings.TrimSpace(p.stderr[:i])
	}
	if p.code != 0 || i < 0 {
		e.b.Fatalf("%s %s: exit %d\nstdout: %s\nstderr: %s", filepath.Base(bin), strings.Join(args, " "), p.code, p.stdout, p.stderr)
	}
	return p
}

// backup runs one backup of the source account into dest: mailvault into
// the archive dest, mbsync into the Maildir dest.
func (e *env) backup(tool, dest string) run {
	e.b.Helper()
	if tool == toolMV {
		args := append([]string{"backup", imapsURL(source, e.srv.IMAPSAddr), dest, "--ca-file", e.srv.CAFile, "-q"}, e.mvExtra...)
		return e.exec(e.mv, args...).run
	}
	conf := e.mbsyncConfig(dest, source, "Pull", "Near", "*")
	return e.runMbsync(conf)
}

// runMbsync runs all channels of conf and passes on what mbsync said
// besides its usual notices.
func (e *env) runMbsync(conf string) run {
	e.b.Helper()
	p := e.exec(e.mbsync, "-c", conf, "-a")
	if strings.Contains(p.stdout, "sleeping due to recent directory modification") {
		say("mbsync slept 1 s: a Maildir directory had changed within the last second")
	}
	if s := strings.TrimSpace(p.stderr); s != "" {
		say("mbsync said: %s", firstLines(s, 5))
	}
	return p.run
}

// restore puts the backup in dest into the empty account user.
func (e *env) restore(tool, dest, user string, k int) run {
	e.b.Helper()
	if tool == toolMV {
		return e.exec(e.mv, "restore", dest, imapsURL(user, e.srv.IMAPSAddr), "--ca-file", e.srv.CAFile, "-q").run
	}
	// The pull state lives in the Maildir (SyncState *); the push keeps
	// its own elsewhere, so that it starts from nothing.
	state := filepath.Join(e.work, fmt.Sprintf("mbsync-push-state-%d", k)) + "/"
	if err := os.MkdirAll(state, 0o700); err != nil {
		e.b.Fatal(err)
	}
	conf := e.mbsyncConfig(dest, user, "Push", "Far", state)
	return e.runMbsync(conf)
}

// mbsyncConfig writes an mbsync configuration with one channel between
// the IMAP account user (far) and the Maildir dest (near): INBOX in
// dest/INBOX, the other folders below dest/folders, nested as on the
// server. TLS is verified against the private CA; the password is read by
// PassCmd from a file.
func (e *env) mbsyncConfig(dest, user, sync, create, state string) string {
	e.b.Helper()
	if err := os.MkdirAll(filepath.Join(dest, "folders"), 0o700); err != nil {
		e.b.Fatal(err)
	}
	// mbsync 1.4 checks the host name only against the certificate's DNS
	// names, not its IP addresses: connect as localhost (Dovecot listens
	// on 127.0.0.1 only; mbsync tries each address of the name).
	_, port, _ := strings.Cut(e.srv.IMAPSAddr, ":")
	conf := fmt.Sprintf(`IMAPAccount far
Host %s
Port %s
User %s
PassCmd "cat %s"
SSLType IMAPS
CertificateFile %s

IMAPStore far
Account far

MaildirStore near
Path %s/
Inbox %s
SubFolders Verbatim

Channel bench
Far :far:
Near :near:
Patterns *
Sync %s
Create %s
Expunge None
CopyArrivalDate yes
SyncState %s
`, "localhost", port, user, e.pwFile, e.srv.CAFile, filepath.Join(dest, "folders"), filepath.Join(dest, "INBOX"), sync, create, state)
	path := filepath.Join(e.work, fmt.Sprintf("mbsyncrc-%s-%s", sync, user))
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		e.b.Fatal(err)
	}
	return path
}

// checkFull checks a destination after a full run: mailvault's archive
// verifies and holds every message, mbsync's Maildir holds a file per
// message.
func (e *env) checkFull(tool, dest string, want int) {
	e.b.Helper()
	if tool == toolMV {
		start := time.Now()
		e.exec(e.mv, "verify", dest, "-q")
		n := archiveCount(e.b, dest)
		say("mailvault verify: ok in %.1f s, %d messages in the archive", time.Since(start).Seconds(), n)
		if n != want {
			e.b.Fatalf("mailvault full backup: archive holds %d messages, want %d", n, want)
		}
		return
	}
	if n := countMaildir(e.b, dest); n != want {
		e.b.Fatalf("mbsync full run: Maildir holds %d messages, want %d", n, want)
	}
}

func (e *env) latestSnapshot(vault string) *formats.Snapshot {
	e.b.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		e.b.Fatal(err)
	}
	snaps, err := a.Snapshots()
	if err != nil || len(snaps) == 0 {
		e.b.Fatalf("snapshots of %s: %v (%d)", vault, err, len(snaps))
	}
	return snaps[len(snaps)-1]
}

// changedFolders returns, sorted, the folders of snap whose status is not
// "unchanged" (the folders mailvault selected).
func changedFolders(snap *formats.Snapshot) []string {
	out := []string{}
	for _, f := range snap.Folders {
		if f.Status != formats.FolderUnchanged {
			out = append(out, f.Name)
		}
	}
	sort.Strings(out)
	return out
}

// archiveCount returns the number of messages present at the newest
// snapshot of the archive in vault.
func archiveCount(b *testing.B, vault string) int {
	b.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		b.Fatal(err)
	}
	snaps, err := a.Snapshots()
	if err != nil {
		b.Fatal(err)
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		b.Fatal(err)
	}
	n := 0
	for _, f := range st.Folders {
		n += len(f.Present())
	}
	return n
}

// countMaildir counts the message files (in cur and new) below dir.
func countMaildir(b *testing.B, dir string) int {
	b.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			if p := filepath.Base(filepath.Dir(path)); p == "cur" || p == "new" {
				n++
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

var messagesRE = regexp.MustCompile(`messages=(\d+)`)

// serverCount asks Dovecot (doveadm mailbox status, which also indexes
// every folder) how many messages user's folders hold.
func (e *env) serverCount(user string) int {
	e.b.Helper()
	out := e.srv.Doveadm(e.b, "mailbox", "status", "-u", user, "messages", "*")
	n := 0
	for _, m := range messagesRE.FindAllStringSubmatch(out, -1) {
		k, _ := strconv.Atoi(m[1])
		n += k
	}
	return n
}

// appendMessages APPENDs msgs to the source account over IMAP.
func (e *env) appendMessages(msgs []Message) {
	e.b.Helper()
	c, err := imapclient.DialInsecure(e.srv.IMAPAddr, nil)
	if err != nil {
		e.b.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(source, password).Wait(); err != nil {
		e.b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	for _, m := range msgs {
		opts := &imap.AppendOptions{Time: m.Date}
		for _, f := range m.Flags {
			opts.Flags = append(opts.Flags, imap.Flag(f))
		}
		cmd := c.Append(m.Folder, int64(len(m.Body)), opts)
		if _, err := cmd.Write(m.Body); err != nil {
			e.b.Fatalf("append to %s: %v", m.Folder, err)
		}
		if err := cmd.Close(); err != nil {
			e.b.Fatalf("append to %s: %v", m.Folder, err)
		}
		if _, err := cmd.Wait(); err != nil {
			e.b.Fatalf("append to %s: %v", m.Folder, err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		e.b.Fatal(err)
	}
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = append(lines[:n], fmt.Sprintf("... (%d more lines)", len(lines)-n))
	}
	return strings.Join(lines, "\n    ")
}

func median(rs []run) time.Duration {
	d := make([]time.Duration, len(rs))
	for i, r := range rs {
		d[i] = r.wall
	}
	slices.Sort(d)
	if len(d)%2 == 1 {
		return d[len(d)/2]
	}
	return (d[len(d)/2-1] + d[len(d)/2]) / 2
}

func peak(byMode map[string][]run) int64 {
	var p int64
	for _, rs := range byMode {
		for _, r := range rs {
			p = max(p, r.rss)
		}
	}
	return p
}

// table renders the comparison. volume gives per mode the messages and
// MB a run moves (no-change: messages looked at, nothing moved).
func table(prof Profile, runs int, results map[string]map[string][]run, volume map[string][2]float64, extra []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\nmailvault vs mbsync, profile %s, median of %d runs per tool and mode (tools alternating)", prof.Name, runs)
	if len(extra) > 0 {
		fmt.Fprintf(&b, ", mailvault backup args %q", strings.Join(extra, " "))
	}
	fmt.Fprintf(&b, "\neach run starts %v after the previous process ended\n", settle)
	head := fmt.Sprintf("%-10s %-12s %8s %9s %8s %9s %8s %8s  %-28s %s\n",
		"tool", "mode", "messages", "MB", "wall s", "msgs/s", "MB/s", "RSS MiB", "mailvault/mbsync", "runs s")
	b.WriteString(head)
	b.WriteString(strings.Repeat("-", len(head)-1) + "\n")
	for _, mode := range modes {
		vol := volume[mode]
		for _, tool := range tools {
			rs := results[tool][mode]
			if len(rs) == 0 {
				continue
			}
			secs := median(rs).Seconds()
			var rss int64
			var all []string
			for _, r := range rs {
				rss = max(rss, r.rss)
				all = append(all, fmt.Sprintf("%.2f", r.wall.Seconds()))
			}
			mbCol, rate, mbRate := fmt.Sprintf("%.1f", vol[1]), fmt.Sprintf("%.1f", vol[0]/secs), fmt.Sprintf("%.1f", vol[1]/secs)
			if mode == modeNoChange {
				mbCol, rate, mbRate = "-", "-", "-"
			}
			ratio := ""
			if tool == toolMV && len(results[toolMB][mode]) > 0 {
				mbSecs := median(results[toolMB][mode]).Seconds()
				if mode == modeNoChange {
					ratio = fmt.Sprintf("%.2fx time", secs/mbSecs)
				} else {
					ratio = fmt.Sprintf("%.2fx msgs/s", mbSecs/secs)
				}
			}
			if mode == modeNoChange {
				if full := results[tool][modeFull]; len(full) > 0 {
					pct := fmt.Sprintf("%.1f%% of full", 100*secs/median(full).Seconds())
					if ratio != "" {
						ratio += ", "
					}
					ratio += pct
				}
			}
			fmt.Fprintf(&b, "%-10s %-12s %8.0f %9s %8.2f %9s %8s %8.1f  %-28s %s\n",
				tool, mode, vol[0], mbCol, secs, rate, mbRate, mib(rss), ratio, strings.Join(all, " "))
		}
	}
	b.WriteString("mailvault/mbsync: above 1x msgs/s or below 1x time means mailvault is faster. RSS: peak of the tool's process over the runs.\n")
	return b.String()
}
