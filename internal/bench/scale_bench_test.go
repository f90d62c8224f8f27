package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/dovecottest"
)

// The scale benchmark (issue 13): one account of N messages of 1–3 KB,
// 90 % of them in INBOX, generated straight into a private Dovecot's
// Maildir, and every command a user runs on it timed under a peak-RSS
// measurement. It drives the built mailvault binary only (command line,
// exit codes, `ls --json`, `snapshots --json`), never the packages, so the
// same benchmark measures later versions of the archive and engines.
//
//	make bench-scale                       # SIZES=20000,200000,1000000
//	make bench-scale SIZES=20000           # a quick run, about a minute
//
// Environment (the Makefile sets the first from SIZES):
//
//	MAILVAULT_SCALE_SIZES         account sizes, comma-separated (default
//	                              20000,200000,1000000)
//	MAILVAULT_SCALE_STEP_TIMEOUT  a command still running after this long is
//	                              killed, its row says so and the rest of
//	                              that size is skipped (default 30m)
//	MAILVAULT_SCALE_IMAP_TIMEOUT  the same for the restores to IMAP alone (a
//	                              restore's rate and memory show in minutes;
//	                              900,000 appends to Dovecot take hours)
//	MAILVAULT_SCALE_OUT           the results file (default
//	                              bench-scale-results.txt at the repository root)
//	MAILVAULT_BENCH_BIN           a mailvault binary instead of building one
//	MAILVAULT_SCALE_ENV           extra environment for the measured mailvault
//	                              runs, space-separated (e.g. GOMEMLIMIT=off)

const (
	scaleSeed       = 13
	scaleUser       = "alice"
	scaleRestore    = "restore" // the empty account restores go to
	scaleExpungeBat = 1000      // UIDs per doveadm expunge call
	// Dovecot's default vsz_limit of 256 MB kills the imap process that
	// resyncs a Maildir folder of 900,000 messages ("Out of memory" in
	// maildir_uidlist_sync_next_uid): measured at 1,000,000 messages.
	scaleIMAPVSZ = "2G"
)

var defaultScaleSizes = []int{20000, 200000, 1000000}

// scaleRow is one line of the table.
type scaleRow struct {
	size     int // messages in the account at the start
	command  string
	messages int // messages the command handles
	wall     time.Duration
	rss      int64         // bytes
	cpu      time.Duration // user+system CPU time of the mailvault process
	srvCPU   time.Duration // CPU time of Dovecot's processes that ended during the command; -1: unknown
	load     float64       // 1-minute load average when the command started
	note     string
}

// scaleSuite is the state of the whole benchmark across sizes.
type scaleSuite struct {
	root, mv    string
	launcher    string // internal/bench/maxrss, built
	outPath     string
	stepTimeout time.Duration
	imapTimeout time.Duration // MAILVAULT_SCALE_IMAP_TIMEOUT: restores to IMAP
	extraEnv    []string      // MAILVAULT_SCALE_ENV
	started     time.Time

	mu     sync.Mutex
	header []string
	rows   []scaleRow
	notes  map[int][]string // per size: how the account was made
}

// BenchmarkScale runs the scale benchmark once per size, whatever b.N
// is; it is not part of `go test ./...` (benchmarks run only with -bench)
// and takes minutes to hours. Use `make bench-scale` (see above).
func BenchmarkScale(b *testing.B) {
	sizes := defaultScaleSizes
	if s := os.Getenv("MAILVAULT_SCALE_SIZES"); s != "" {
		var err error
		if sizes, err = parseSizes(s); err != nil {
			b.Fatal(err)
		}
	}
	timeout := 30 * time.Minute
	if s := os.Getenv("MAILVAULT_SCALE_STEP_TIMEOUT"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			b.Fatalf("MAILVAULT_SCALE_STEP_TIMEOUT=%q: want a duration such as 30m", s)
		}
		timeout = d
	}
	imapTimeout := time.Duration(0)
	if v := os.Getenv("MAILVAULT_SCALE_IMAP_TIMEOUT"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			b.Fatalf("MAILVAULT_SCALE_IMAP_TIMEOUT=%q: want a duration such as 5m", v)
		}
		imapTimeout = d
	}
	_, self, _, _ := runtime.Caller(0)
	s := &scaleSuite{
		imapTimeout: imapTimeout,
		root:        filepath.Clean(filepath.Join(filepath.Dir(self), "..", "..")),
		stepTimeout: timeout,
		started:     time.Now(),
		notes:       map[int][]string{},
		extraEnv:    strings.Fields(os.Getenv("MAILVAULT_SCALE_ENV")),
	}
	s.outPath = os.Getenv("MAILVAULT_SCALE_OUT")
	if s.outPath == "" {
		s.outPath = filepath.Join(s.root, "bench-scale-results.txt")
	}
	version := ""
	s.mv, version = buildMailvault(b, s.root)
	s.launcher = filepath.Join(b.TempDir(), "maxrss")
	goBuild(b, s.root, s.launcher, "./internal/bench/maxrss")
	s.header = s.describe(version, sizes)
	for _, l := range s.header {
		say("%s", l)
	}
	defer func() {
		// Also when a size failed: the rows measured so far are kept.
		s.mu.Lock()
		defer s.mu.Unlock()
		table := s.render(true)
		fmt.Print("\n" + table)
		if err := os.WriteFile(s.outPath, []byte(table), 0o644); err != nil {
			b.Errorf("write %s: %v", s.outPath, err)
		} else {
			say("table written to %s", s.outPath)
		}
	}()
	for _, n := range sizes {
		b.Run(fmt.Sprintf("messages=%d", n), func(b *testing.B) {
			if b.N > 1 {
				b.Skip("the scale benchmark runs once per size (use -benchtime 1x)")
			}
			s.runSize(b, n)
		})
	}
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(strings.ReplaceAll(f, "_", "")))
		if err != nil || n < 100 {
			return nil, fmt.Errorf("MAILVAULT_SCALE_SIZES=%q: want comma-separated message counts of at least 100", s)
		}
		out = append(out, n)
	}
	return out, nil
}

// buildMailvault returns the binary to measure and a line saying which
// version it is.
func buildMailvault(b *testing.B, root string) (string, string) {
	if bin := os.Getenv("MAILVAULT_BENCH_BIN"); bin != "" {
		return bin, "mailvault binary " + bin + " (MAILVAULT_BENCH_BIN)"
	}
	bin := filepath.Join(b.TempDir(), "mailvault")
	goBuild(b, root, bin, "./cmd/mailvault")
	rev := "unknown commit"
	if out, err := exec.Command("git", "-C", root, "log", "-1", "--format=%h %s").Output(); err == nil {
		rev = strings.TrimSpace(string(out))
		if st, err := exec.Command("git", "-C", root, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
			rev += " (with uncommitted changes)"
		}
	}
	return bin, "mailvault built from " + root + " at " + rev
}

func goBuild(b *testing.B, root, out, pkg string) {
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = root
	if msg, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
}

// describe returns the header lines: what was measured, where and how.
func (s *scaleSuite) describe(version string, sizes []int) []string {
	dovecot := "dovecot ?"
	if out, err := exec.Command("/usr/sbin/dovecot", "--version").Output(); err == nil {
		dovecot = "Dovecot " + strings.TrimSpace(string(out))
	}
	floor := s.launcherFloor()
	env := "measured runs get no extra environment"
	if len(s.extraEnv) > 0 {
		env = "measured runs get the extra environment " + strings.Join(s.extraEnv, " ") + " (MAILVAULT_SCALE_ENV)"
	}
	return []string{
		"mailvault scale benchmark (issue 13), started " + s.started.Format("2006-01-02 15:04:05 MST"),
		version,
		fmt.Sprintf("%s, %s, %d CPUs, %s RAM, load average %s at start", runtime.Version(), dovecot, runtime.NumCPU(), memTotal(), loadAvgString()),
		fmt.Sprintf("sizes %v; each command runs once per size; a command running longer than %v is killed", sizes, s.stepTimeout),
		"accounts: messages of 1-3 KB (about 2 KB), 90 % in INBOX, the rest in 5 other folders (nested and non-ASCII among them)",
		"backups: IMAPS to a private Dovecot on 127.0.0.1 (imap vsz_limit " + scaleIMAPVSZ + "), --connections 4; restores to an empty account on the same Dovecot, or to local files; " + env,
		"peak RSS: ru_maxrss of the mailvault process, started by internal/bench/maxrss (a small Go launcher: its own resident set is the floor); " + floor,
		"SECONDS: wall time of the mailvault process (measured by the launcher); MSGS/S: MESSAGES (what the command handles) over SECONDS;",
		"CPU s: user+system CPU of the mailvault process; DOVECOT s: CPU of the Dovecot processes that ended during the command (its IMAP sessions); LOAD: 1-minute load average before the command",
	}
}

// launcherFloor measures what the launcher itself adds: the peak RSS and
// time it reports for /bin/true.
func (s *scaleSuite) launcherFloor() string {
	cmd := exec.Command(s.launcher, "true")
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil {
		return "launcher floor unknown: " + err.Error()
	}
	l := parseLauncher(errb.String())
	return fmt.Sprintf("it reports %.1f MiB and %.1f ms for /bin/true", mib(l.rss), l.wall.Seconds()*1000)
}

func memTotal() string {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "MemTotal:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return "?"
}

func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

func loadAvgString() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}

// fsKind names the file system holding path.
func fsKind(path string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return "unknown file system"
	}
	switch st.Type {
	case 0x01021994:
		return "tmpfs"
	case 0xef53:
		return "ext4"
	case 0x9123683e:
		return "btrfs"
	case 0x58465342:
		return "xfs"
	case 0x794c7630:
		return "overlayfs"
	}
	return fmt.Sprintf("file system 0x%x", st.Type)
}

// localDir returns a directory for local restore targets: on tmpfs when
// /dev/shm is one (writing a million files on this VM's ext4 takes
// minutes of file creation), else in the benchmark's temp dir.
func localDir(b *testing.B) string {
	if fsKind("/dev/shm") == "tmpfs" {
		dir, err := os.MkdirTemp("/dev/shm", "mvscale")
		if err == nil {
			b.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return b.TempDir()
}

// scaleSize is the state of one size's run.
type scaleSize struct {
	*scaleSuite
	b     *testing.B
	n     int
	srv   *dovecottest.Server
	vault string
	local string
	owner ScaleOptions // Chown, UID, GID
}

func (s *scaleSuite) runSize(b *testing.B, n int) {
	z := &scaleSize{scaleSuite: s, b: b, n: n}
	z.srv = dovecottest.Start(b, dovecottest.Options{
		Users:        map[string]string{scaleUser: password, scaleRestore: password},
		IMAPVSZLimit: scaleIMAPVSZ,
	})
	if fi, err := os.Stat(z.srv.MailRoot); err == nil && os.Geteuid() == 0 {
		st := fi.Sys().(*syscall.Stat_t)
		z.owner = ScaleOptions{Chown: true, UID: int(st.Uid), GID: int(st.Gid)}
	}
	work := b.TempDir()
	z.vault = filepath.Join(work, "vault")
	z.local = localDir(b)
	z.note("Dovecot mail on %s (%s); archive on %s (%s); local restore targets on %s (%s)",
		z.srv.MailRoot, fsKind(z.srv.MailRoot), z.vault, fsKind(work), z.local, fsKind(z.local))

	// The account.
	o := z.owner
	o.Seed, o.Messages = scaleSeed, n
	st, err := WriteScale(filepath.Join(z.srv.MailRoot, scaleUser), o)
	if err != nil {
		b.Fatalf("generate %d messages: %v", n, err)
	}
	z.note("generated %d messages (%.1f MB) in %.1f s: %.0f msgs/s, %d writers", st.Messages, mb(st.Bytes), st.Elapsed.Seconds(), float64(st.Messages)/st.Elapsed.Seconds(), st.Workers)
	start := time.Now()
	server := z.serverCounts(scaleUser)
	z.note("Dovecot indexed them (doveadm mailbox status) in %.1f s; folders %v", time.Since(start).Seconds(), server)
	z.mustEqual("Dovecot after generating", server, st.PerFolder)
	inbox0 := server["INBOX"]

	backup := []string{"backup", imapsURL(scaleUser, z.srv.IMAPSAddr), z.vault, "--ca-file", z.srv.CAFile, "--connections", "4", "-q"}

	// 1. First backup.
	if !z.backupStep("backup, first (--connections 4)", n, backup...) {
		return
	}
	z.mustEqual("archive after the first backup", z.archiveCounts(), server)
	snaps := z.snapshots()
	first := snaps[len(snaps)-1]
	if first.Status != "complete" {
		b.Fatalf("the first backup's last snapshot %s is %s, want complete", first.ID, first.Status)
	}

	// 2. No change.
	if !z.backupStep("backup, no change", n, backup...) {
		return
	}
	z.mustEqual("archive after the no-change backup", z.archiveCounts(), server)
	if s := z.snapshots(); len(s) != len(snaps)+1 || s[len(s)-1].Added != 0 || s[len(s)-1].Status != "complete" {
		b.Fatalf("no-change backup: snapshots %+v, want one more, complete, nothing added", s)
	}

	// 3. 10 % more in INBOX, then an incremental backup.
	more := n / 10
	o.First, o.Messages, o.Folders = n, more, []string{"INBOX"}
	st, err = WriteScale(filepath.Join(z.srv.MailRoot, scaleUser), o)
	if err != nil {
		b.Fatalf("generate %d more messages: %v", more, err)
	}
	start = time.Now()
	server = z.serverCounts(scaleUser)
	z.note("added %d messages to INBOX in %.1f s, indexed in %.1f s", st.Messages, st.Elapsed.Seconds(), time.Since(start).Seconds())
	if server["INBOX"] != inbox0+more {
		b.Fatalf("Dovecot INBOX holds %d messages after adding %d to %d", server["INBOX"], more, inbox0)
	}
	if !z.backupStep("backup, +10% in INBOX", more, backup...) {
		return
	}
	z.mustEqual("archive after the incremental backup", z.archiveCounts(), server)
	total := n + more
	inbox := server["INBOX"]

	// From here on a command killed after the step timeout skips only its
	// own check, unless later steps depend on what it did (backups).

	// 4. verify.
	if out, ok := z.stepOut("verify", total, "verify", z.vault); ok {
		if m := regexp.MustCompile(`(\d+) messages`).FindStringSubmatch(out); m == nil {
			z.note("verify printed no message count: %q", strings.TrimSpace(out))
		} else if k, _ := strconv.Atoi(m[1]); k != total {
			b.Fatalf("verify checked %d messages, the archive holds %d: %s", k, total, out)
		}
	}

	// 5. ls of the big folder, streamed into a line counter.
	lines := &lineCounter{}
	if z.step("ls ARCHIVE INBOX (streamed)", inbox, lines, "ls", z.vault, "INBOX") && lines.n-1 != int64(inbox) {
		b.Fatalf("ls ARCHIVE INBOX printed %d lines, want a header and %d messages", lines.n, inbox)
	}

	// 6. snapshots.
	if z.step("snapshots", total, io.Discard, "snapshots", z.vault) {
		added := 0
		for _, sn := range z.snapshots() {
			added += sn.Added
		}
		if added != total {
			b.Fatalf("snapshots add up to %d messages, want %d", added, total)
		}
	}

	// 7. INBOX to an empty IMAP account.
	if z.step("restore --folder INBOX to imaps (empty account)", inbox, nil,
		"restore", z.vault, imapsURL(scaleRestore, z.srv.IMAPSAddr), "--folder", "INBOX", "--ca-file", z.srv.CAFile, "-q") {
		z.mustEqual("the restore account", z.serverCounts(scaleRestore), map[string]int{"INBOX": inbox})
	} else {
		z.killedAt("restore --folder INBOX to imaps", z.serverCounts(scaleRestore)["INBOX"], inbox)
	}
	z.removeAll(filepath.Join(z.srv.MailRoot, scaleRestore))

	// 8. INBOX to an mbox file and to a Maildir.
	dir := filepath.Join(z.local, "mbox")
	if z.step("restore --folder INBOX to mbox:DIR", inbox, nil, "restore", z.vault, "mbox:"+dir, "--folder", "INBOX", "-q") {
		z.mustEqual("the mbox target", z.mboxCounts(dir), map[string]int{"INBOX.mbox": inbox})
	} else {
		z.killedAt("restore --folder INBOX to mbox:DIR", z.mboxCounts(dir)["INBOX.mbox"], inbox)
	}
	z.removeAll(dir)
	dir = filepath.Join(z.local, "maildir")
	if z.step("restore --folder INBOX to maildir:DIR", inbox, nil, "restore", z.vault, "maildir:"+dir, "--folder", "INBOX", "-q") {
		z.mustEqual("the Maildir target", z.maildirCounts(dir), map[string]int{".": inbox})
	} else {
		z.killedAt("restore --folder INBOX to maildir:DIR", z.maildirCounts(dir)["."], inbox)
	}
	z.removeAll(dir)

	// 9. 1 % of INBOX expunged on the server, among the messages the first
	// backup saw, then a backup; what was deleted since the first
	// snapshot, and the archive as of the first snapshot.
	gone := inbox / 100
	z.expungeEvery(scaleUser, "INBOX", inbox0/gone, gone)
	server = z.serverCounts(scaleUser)
	if server["INBOX"] != inbox-gone {
		b.Fatalf("Dovecot INBOX holds %d messages after expunging %d of %d", server["INBOX"], gone, inbox)
	}
	z.note("expunged %d messages of INBOX (every %dth UID up to %d)", gone, inbox0/gone, inbox0)
	if !z.backupStep("backup, 1% of INBOX expunged", gone, backup...) {
		return
	}
	z.mustEqual("archive after the expunge backup", z.archiveCounts(), server)

	dir = filepath.Join(z.local, "deleted")
	if z.step("restore --deleted-since FIRST to maildir:DIR", gone, nil, "restore", z.vault, "maildir:"+dir, "--deleted-since", first.ID, "-q") {
		z.mustEqual("the --deleted-since target", z.maildirCounts(dir), map[string]int{".": gone})
	}
	z.removeAll(dir)

	dir = filepath.Join(z.local, "asof")
	if z.step("restore --as-of FIRST to mbox:DIR (all folders)", n, nil, "restore", z.vault, "mbox:"+dir, "--as-of", first.Finished, "-q") {
		got, sum := z.mboxCounts(dir), 0
		for _, k := range got {
			sum += k
		}
		if sum != n || got["INBOX.mbox"] != inbox0 {
			b.Fatalf("--as-of the first snapshot: %d messages in the mbox files %v, want %d (INBOX %d)", sum, got, n, inbox0)
		}
	}
	z.removeAll(dir)

	// 10. Retention: forget every snapshot but the newest (the others are
	// folded into it: the messages expunged in step 9 are then added and
	// gone within one manifest), prune (every segment holding one of them
	// is rewritten; it builds the state index the rewrite dropped again),
	// then a backup with nothing new.
	if z.step("forget --keep-last 1", total, nil, "forget", z.vault, "--keep-last", "1", "-q") {
		if s := z.snapshots(); len(s) != 1 {
			b.Fatalf("forget --keep-last 1 left %d snapshots", len(s))
		}
	}
	if out, ok := z.stepOut("prune", gone, "prune", z.vault); ok {
		z.note("prune: %s", strings.TrimSpace(out))
		z.mustEqual("archive after forget and prune", z.archiveCounts(), server)
	}
	if !z.backupStep("backup, no change after forget and prune", n, backup...) {
		return
	}
	z.mustEqual("archive after the backup after prune", z.archiveCounts(), server)
}

// killedAt notes how far a command killed after the step timeout got.
func (z *scaleSize) killedAt(what string, done, want int) {
	timeout := z.stepTimeout
	if z.imapTimeout > 0 && strings.Contains(what, "to imaps") {
		timeout = z.imapTimeout
	}
	z.note("%s was killed after %v with %d of %d messages in the target (%.0f msgs/s)", what, timeout, done, want, float64(done)/timeout.Seconds())
}

// note records and prints a line about how this size's account was made.
func (z *scaleSize) note(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	say("%d: %s", z.n, line)
	z.mu.Lock()
	z.notes[z.n] = append(z.notes[z.n], line)
	z.mu.Unlock()
}

// step runs one measured mailvault command; stdout nil means "keep it for
// the error message". It reports false when the command was killed after
// the step timeout (the row says so), and fails the benchmark when the
// command exits non-zero.
func (z *scaleSize) step(name string, msgs int, stdout io.Writer, args ...string) bool {
	z.b.Helper()
	return z.measure(name, msgs, stdout, false, args...).ok()
}

// stepOut is step keeping stdout and returning it.
func (z *scaleSize) stepOut(name string, msgs int, args ...string) (string, bool) {
	z.b.Helper()
	r := z.measure(name, msgs, nil, false, args...)
	return r.stdout, r.ok()
}

// backupStep runs a measured backup. A backup that ends partial (exit 3:
// some folders failed, the next run retries them) is noted with the end
// of the Dovecot log and run again, as the next night's cron run would,
// in a row of its own; a second partial run fails the benchmark.
func (z *scaleSize) backupStep(name string, msgs int, args ...string) bool {
	z.b.Helper()
	r := z.measure(name, msgs, nil, true, args...)
	if r.code != 3 {
		return r.ok()
	}
	z.note("%s ended partial (exit 3): %s", name, strings.TrimSpace(r.stderr))
	z.note("the Dovecot log then ended with:\n    %s", firstLines(z.dovecotLogTail(15), 15))
	return z.measure(name+" (again after exit 3)", msgs, nil, false, args...).ok()
}

// measured is how a measured command ended.
type measured struct {
	stdout, stderr string
	code           int // exit code; -1 when killed after the step timeout
}

func (m measured) ok() bool { return m.code == 0 }

// measure runs mailvault under the launcher, adds its row and returns how
// it ended. A non-zero exit fails the benchmark, except exit 3 when
// partialOK is set.
func (z *scaleSize) measure(name string, msgs int, stdout io.Writer, partialOK bool, args ...string) measured {
	z.b.Helper()
	row := scaleRow{size: z.n, command: name, messages: msgs, load: loadAvg()}
	var out bytes.Buffer
	if stdout == nil {
		stdout = &out
	}
	cmd := exec.Command(z.launcher, append([]string{z.mv}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + z.b.TempDir(), "MAILVAULT_PASSWORD=" + password, "LC_ALL=C.UTF-8"}, z.extraEnv...)
	cmd.Stdout = stdout
	var errb bytes.Buffer
	cmd.Stderr = &errb
	// A process group of its own: a timeout kills mailvault with its
	// launcher.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	say("%d: %s ...", z.n, name)
	srv0 := z.dovecotCPU(0)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		z.b.Fatalf("start %s: %v", name, err)
	}
	var timedOut atomic.Bool
	exited := make(chan struct{})
	timeout := z.stepTimeout
	if z.imapTimeout > 0 && strings.Contains(name, "to imaps") {
		timeout = z.imapTimeout
	}
	timer := time.AfterFunc(timeout, func() {
		timedOut.Store(true)
		// Kill mailvault, so that the launcher still reports its peak
		// RSS and CPU time; then, if need be, the whole group.
		if kids, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)); err == nil {
			for _, k := range strings.Fields(string(kids)) {
				if pid, err := strconv.Atoi(k); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		}
	})
	err := cmd.Wait()
	close(exited)
	timer.Stop()
	row.wall = time.Since(start)
	l := parseLauncher(errb.String())
	if timedOut.Load() {
		if l.rss >= 0 {
			row.rss, row.cpu = l.rss, l.cpu
		}
		row.srvCPU = z.dovecotCPU(srv0)
		row.note = fmt.Sprintf("KILLED after %v", timeout)
		z.addRow(row)
		return measured{stdout: out.String(), stderr: l.stderr, code: -1}
	}
	row.rss, row.cpu = l.rss, l.cpu
	if l.wall > 0 {
		row.wall = l.wall
	}
	row.srvCPU = z.dovecotCPU(srv0)
	code := cmd.ProcessState.ExitCode()
	switch {
	case err == nil && l.rss >= 0:
	case code == 3 && partialOK && l.rss >= 0:
		row.note = "PARTIAL (exit 3)"
	default:
		row.note = "FAILED"
		z.addRow(row)
		z.b.Fatalf("%s: mailvault %s: %v\nstdout: %s\nstderr: %s\nDovecot log:\n%s", name, strings.Join(args, " "), err,
			firstLines(out.String(), 20), firstLines(l.stderr, 20), z.dovecotLogTail(15))
	}
	z.addRow(row)
	say("%d: %s: %.2f s, %.0f msgs/s, peak RSS %.1f MiB, CPU %.1f s, Dovecot CPU %.1f s %s", z.n, name, row.wall.Seconds(), float64(msgs)/row.wall.Seconds(), mib(l.rss), row.cpu.Seconds(), row.srvCPU.Seconds(), row.note)
	return measured{stdout: out.String(), stderr: l.stderr, code: code}
}

// dovecotLogTail returns the last n lines of the Dovecot log.
func (z *scaleSize) dovecotLogTail(n int) string {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(z.srv.Config), "dovecot.log"))
	if err != nil {
		return "(no Dovecot log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var launcherRE = regexp.MustCompile(`\n?MAXRSS_KB=(\d+) WALL_NS=(\d+) CPU_NS=(\d+)\n$`)

// launched is what the launcher reported about a command.
type launched struct {
	rss       int64 // bytes; -1 when the launcher's line is missing
	wall, cpu time.Duration
	stderr    string // the command's own
}

// parseLauncher takes the launcher's last line off stderr.
func parseLauncher(stderr string) launched {
	m := launcherRE.FindStringSubmatchIndex(stderr)
	if m == nil {
		return launched{rss: -1, stderr: stderr}
	}
	num := func(k int) int64 {
		v, _ := strconv.ParseInt(stderr[m[2*k]:m[2*k+1]], 10, 64)
		return v
	}
	return launched{rss: num(1) << 10, wall: time.Duration(num(2)), cpu: time.Duration(num(3)), stderr: stderr[:m[0]]}
}

func (s *scaleSuite) addRow(r scaleRow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, r)
	// The file always holds what was measured so far.
	_ = os.WriteFile(s.outPath, []byte(s.render(false)), 0o644)
}

// render returns the header, per size how its account was made, and the
// table.
func (s *scaleSuite) render(done bool) string {
	var b strings.Builder
	for _, l := range s.header {
		b.WriteString(l + "\n")
	}
	sizes := slices.Sorted(maps.Keys(s.notes))
	for _, n := range sizes {
		fmt.Fprintf(&b, "\n%d messages:\n", n)
		for _, l := range s.notes[n] {
			b.WriteString("  " + l + "\n")
		}
	}
	head := fmt.Sprintf("%-9s  %-48s  %9s  %9s  %9s  %12s  %7s  %9s  %5s  %s", "ACCOUNT", "COMMAND", "MESSAGES", "SECONDS", "MSGS/S", "PEAK RSS MiB", "CPU s", "DOVECOT s", "LOAD", "NOTE")
	b.WriteString("\n" + strings.TrimRight(head, " ") + "\n")
	last := -1
	for _, r := range s.rows {
		if last != -1 && r.size != last {
			b.WriteString("\n")
		}
		last = r.size
		rss := "-"
		if r.rss > 0 {
			rss = fmt.Sprintf("%.1f", mib(r.rss))
		}
		cpu, srv := "-", "-"
		if r.cpu > 0 {
			cpu = fmt.Sprintf("%.2f", r.cpu.Seconds())
		}
		if r.srvCPU >= 0 {
			srv = fmt.Sprintf("%.2f", r.srvCPU.Seconds())
		}
		rate := fmt.Sprintf("%.0f", float64(r.messages)/r.wall.Seconds())
		if r.note != "" && !strings.HasPrefix(r.note, "PARTIAL") {
			rate = "-" // killed or failed: it did not handle them all
		}
		line := fmt.Sprintf("%-9d  %-48s  %9d  %9.2f  %9s  %12s  %7s  %9s  %5.2f  %s",
			r.size, r.command, r.messages, r.wall.Seconds(), rate, rss, cpu, srv, r.load, r.note)
		b.WriteString(strings.TrimRight(line, " ") + "\n")
	}
	b.WriteString(s.pivot())
	if done {
		fmt.Fprintf(&b, "\nwhole benchmark: %s\n", time.Since(s.started).Round(time.Second))
	} else {
		fmt.Fprintf(&b, "\n(still running: %s so far)\n", time.Since(s.started).Round(time.Second))
	}
	return b.String()
}

// mustEqual fails the benchmark unless the two per-folder counts agree
// (folders with no messages are left out of both).
func (z *scaleSize) mustEqual(what string, got, want map[string]int) {
	z.b.Helper()
	g, w := nonZero(got), nonZero(want)
	if !maps.Equal(g, w) {
		z.b.Fatalf("%s: messages per folder %v, want %v", what, g, w)
	}
}

func nonZero(m map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range m {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}

// serverCounts asks Dovecot how many messages each folder of user holds
// (which also makes it index new mail).
func (z *scaleSize) serverCounts(user string) map[string]int {
	z.b.Helper()
	out := z.srv.Doveadm(z.b, "-f", "tab", "mailbox", "status", "-u", user, "messages", "*")
	counts := map[string]int{}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) == 0 || lines[0] != "mailbox\tmessages" {
		z.b.Fatalf("doveadm mailbox status -u %s: unexpected output %q", user, firstLines(out, 5))
	}
	for _, l := range lines[1:] {
		name, num, ok := strings.Cut(l, "\t")
		n, err := strconv.Atoi(num)
		if !ok || err != nil {
			z.b.Fatalf("doveadm mailbox status -u %s: unexpected line %q", user, l)
		}
		counts[name] = n
	}
	return counts
}

// expungeEvery expunges UIDs step, 2·step, … (count of them) from folder.
func (z *scaleSize) expungeEvery(user, folder string, step, count int) {
	z.b.Helper()
	if step < 1 {
		z.b.Fatalf("expunge every %dth message", step)
	}
	for k := 1; k <= count; k += scaleExpungeBat {
		var set []string
		for j := k; j < k+scaleExpungeBat && j <= count; j++ {
			set = append(set, strconv.Itoa(j*step))
		}
		z.srv.Doveadm(z.b, "expunge", "-u", user, "mailbox", folder, "uid", strings.Join(set, ","))
	}
}

// mailvault runs an unmeasured mailvault command (a check) and returns
// its standard output.
func (z *scaleSize) mailvault(args ...string) []byte {
	z.b.Helper()
	cmd := exec.Command(z.mv, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + z.b.TempDir(), "LC_ALL=C.UTF-8"}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		z.b.Fatalf("mailvault %s: %v\n%s", strings.Join(args, " "), err, firstLines(errb.String(), 20))
	}
	return out
}

// archiveCounts returns the messages per folder at the archive's latest
// snapshot, from `mailvault ls ARCHIVE --json`.
func (z *scaleSize) archiveCounts() map[string]int {
	z.b.Helper()
	counts := map[string]int{}
	dec := json.NewDecoder(bytes.NewReader(z.mailvault("ls", z.vault, "--json")))
	for {
		var f struct {
			Folder   string `json:"folder"`
			Messages *int   `json:"messages"`
		}
		if err := dec.Decode(&f); errors.Is(err, io.EOF) {
			break
		} else if err != nil || f.Folder == "" || f.Messages == nil {
			z.b.Fatalf("mailvault ls --json: unexpected output (%v)", err)
		}
		counts[f.Folder] = *f.Messages
	}
	return counts
}

// scaleSnapshot is a line of `mailvault snapshots --json`.
type scaleSnapshot struct {
	ID       string `json:"id"`
	Finished string `json:"finished"`
	Status   string `json:"status"`
	Added    int    `json:"added"`
	Gone     int    `json:"gone"`
}

func (z *scaleSize) snapshots() []scaleSnapshot {
	z.b.Helper()
	var out []scaleSnapshot
	dec := json.NewDecoder(bytes.NewReader(z.mailvault("snapshots", z.vault, "--json")))
	for {
		var s scaleSnapshot
		if err := dec.Decode(&s); errors.Is(err, io.EOF) {
			break
		} else if err != nil || s.ID == "" {
			z.b.Fatalf("mailvault snapshots --json: unexpected output (%v)", err)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		z.b.Fatal("mailvault snapshots --json: no snapshots")
	}
	return out
}

// mboxCounts counts the messages of every .mbox file under dir (mboxrd:
// a message starts with a line "From ", a body line that would start so
// is quoted), by path relative to dir.
func (z *scaleSize) mboxCounts(dir string) map[string]int {
	z.b.Helper()
	counts := map[string]int{}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return counts // nothing restored
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".mbox") {
			return err
		}
		n, err := countFromLines(path)
		rel, _ := filepath.Rel(dir, path)
		counts[rel] = n
		return err
	})
	if err != nil {
		z.b.Fatalf("count the mbox files in %s: %v", dir, err)
	}
	return counts
}

func countFromLines(path string) (int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	n, atStart := 0, true
	for {
		line, err := r.ReadSlice('\n')
		if atStart && bytes.HasPrefix(line, []byte("From ")) {
			n++
		}
		atStart = err == nil
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// maildirCounts counts the message files in cur/ and new/ of every Maildir
// under dir, by the Maildir's path relative to dir ("." for dir itself),
// reading directories in chunks (a million entries at once would be a
// large slice).
func (z *scaleSize) maildirCounts(dir string) map[string]int {
	z.b.Helper()
	counts := map[string]int{}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return counts // nothing restored
	}
	var walk func(d string) error
	walk = func(d string) error {
		f, err := os.Open(d)
		if err != nil {
			return err
		}
		defer f.Close()
		var subdirs []string
		for {
			ents, err := f.ReadDir(4096)
			for _, e := range ents {
				switch {
				case e.Type().IsRegular() && (filepath.Base(d) == "cur" || filepath.Base(d) == "new"):
					rel, _ := filepath.Rel(dir, filepath.Dir(d))
					counts[rel]++
				case e.IsDir():
					subdirs = append(subdirs, filepath.Join(d, e.Name()))
				}
			}
			if errors.Is(err, io.EOF) || len(ents) == 0 {
				break
			}
			if err != nil {
				return err
			}
		}
		for _, s := range subdirs {
			if err := walk(s); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		z.b.Fatalf("count the Maildir files in %s: %v", dir, err)
	}
	return counts
}

func (z *scaleSize) removeAll(dir string) {
	z.b.Helper()
	if err := os.RemoveAll(dir); err != nil {
		z.b.Fatalf("remove %s: %v", dir, err)
	}
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n int64 }

func (c *lineCounter) Write(p []byte) (int, error) {
	c.n += int64(bytes.Count(p, []byte{'\n'}))
	return len(p), nil
}

// dovecotCPU returns the CPU time Dovecot's master process has used
// itself and collected from its ended children (the imap and login
// processes of finished sessions), minus since; -1 when it cannot be
// read. It first waits, up to 5 s, for the imap processes of sessions
// that were logged out to end.
func (z *scaleSize) dovecotCPU(since time.Duration) time.Duration {
	data, err := os.ReadFile(filepath.Join(filepath.Dir(z.srv.Config), "run", "master.pid"))
	if err != nil {
		return -1
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return -1
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline) && imapChildren(pid) > 0; {
		time.Sleep(50 * time.Millisecond)
	}
	f := procStat(pid)
	if len(f) < 15 {
		return -1
	}
	var ticks int64
	for _, k := range []int{11, 12, 13, 14} { // utime, stime, cutime, cstime
		v, _ := strconv.ParseInt(f[k], 10, 64)
		ticks += v
	}
	// USER_HZ is 100 on every Linux architecture Go supports.
	return time.Duration(ticks)*10*time.Millisecond - since
}

// procStat returns the fields of /proc/PID/stat after the command name
// (f[0] is the state, f[1] the parent pid, f[11] utime, …).
func procStat(pid int) []string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(data[i+1:]))
}

// imapChildren counts the imap session processes whose parent is pid.
func imapChildren(pid int) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	want := strconv.Itoa(pid)
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child))
		if err != nil || strings.TrimSpace(string(comm)) != "imap" {
			continue
		}
		if f := procStat(child); len(f) > 1 && f[1] == want {
			n++
		}
	}
	return n
}

// pivot renders, when more than one size was measured, one line per
// command with its seconds and peak RSS at each size, so that growth with
// size reads across.
func (s *scaleSuite) pivot() string {
	var sizes []int
	var commands []string
	cell := map[string]map[int]scaleRow{}
	for _, r := range s.rows {
		if !slices.Contains(sizes, r.size) {
			sizes = append(sizes, r.size)
		}
		if cell[r.command] == nil {
			commands = append(commands, r.command)
			cell[r.command] = map[int]scaleRow{}
		}
		cell[r.command][r.size] = r
	}
	if len(sizes) < 2 {
		return ""
	}
	var b strings.Builder
	b.WriteString("\nby size: seconds / peak RSS MiB\n")
	fmt.Fprintf(&b, "%-48s", "COMMAND")
	for _, n := range sizes {
		fmt.Fprintf(&b, "  %18d", n)
	}
	b.WriteString("\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "%-48s", c)
		for _, n := range sizes {
			r, ok := cell[c][n]
			switch {
			case !ok:
				fmt.Fprintf(&b, "  %18s", "-")
			case r.rss <= 0:
				fmt.Fprintf(&b, "  %18s", fmt.Sprintf("%.1f / -", r.wall.Seconds()))
			default:
				fmt.Fprintf(&b, "  %18s", fmt.Sprintf("%.1f / %.1f", r.wall.Seconds(), mib(r.rss)))
			}
		}
		b.WriteString("\n")
	}
	return b.String()
}
