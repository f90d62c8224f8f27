package compattest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/testenv"
)

// Kind names one server (and setting) Start can run.
type Kind string

// The servers.
const (
	// Cyrus is Cyrus IMAP 3.6 with cyrus-pop3d in upstream 3.x's namespace
	// (altnamespace: yes, unixhierarchysep: yes): folders "Sent",
	// "Archive/2024", delimiter "/".
	Cyrus Kind = "cyrus"
	// CyrusDebian is Cyrus with the namespace of Debian's packaged
	// imapd.conf (altnamespace: no, unixhierarchysep: no): every folder
	// below "INBOX.", delimiter ".".
	CyrusDebian Kind = "cyrus-debian"
	// Courier is Courier-IMAP 5.0 and courier-pop 1.0 on Maildir++
	// (personal namespace "INBOX.", delimiter ".").
	Courier Kind = "courier"
	// Mailutils is GNU Mailutils 3.15 imap4d and pop3d on mbox files (the
	// inbox in a spool file shared by IMAP and POP3).
	Mailutils Kind = "mailutils"
	// Popa3d is popa3d 1.0 (POP3 only, no TLS) on an mbox spool file.
	Popa3d Kind = "popa3d"
	// SolidMaildir is Solid POP3 0.15 (POP3 only, no TLS) on a Maildir.
	SolidMaildir Kind = "solid-maildir"
	// SolidMbox is Solid POP3 on an mbox spool file (Debian's default).
	SolidMbox Kind = "solid-mbox"
)

// IMAPKinds are the servers that speak IMAP, POP3Kinds those that speak
// POP3.
var (
	IMAPKinds = []Kind{Cyrus, CyrusDebian, Courier, Mailutils}
	POP3Kinds = []Kind{Cyrus, Courier, Mailutils, Popa3d, SolidMaildir, SolidMbox}
)

// IMAP reports whether the server speaks IMAP.
func (k Kind) IMAP() bool {
	switch k {
	case Cyrus, CyrusDebian, Courier, Mailutils:
		return true
	}
	return false
}

// Users are the accounts every server has; each one's password is
// Password.
var Users = []string{"alice", "bob"}

// Password is the password of every user.
const Password = "pw"

// AptPackages are the packages the servers need that can be installed
// with apt-get next to Dovecot (none of them provides imap-server or
// pop3-server).
var AptPackages = []string{
	"cyrus-common", "sasl2-bin", "db-util",
	"courier-base", "courier-authdaemon", "courier-authlib-userdb",
	"mailutils-imap4d", "mailutils-pop3d",
	"socat", "liblockfile1", "openssl",
}

// debPackages are the conflicting server packages, unpacked into the
// private root.
var debPackages = map[Kind][]string{
	Cyrus:        {"cyrus-imapd", "cyrus-pop3d"},
	CyrusDebian:  {"cyrus-imapd", "cyrus-pop3d"},
	Courier:      {"courier-imap", "courier-pop"},
	Popa3d:       {"popa3d"},
	SolidMaildir: {"solid-pop3d"},
	SolidMbox:    {"solid-pop3d"},
}

// required are the files of installed packages each server needs.
var required = map[Kind][]string{
	Cyrus:        {"/usr/lib/cyrus/bin/master", "/usr/lib/cyrus/bin/ctl_cyrusdb", "/usr/sbin/saslpasswd2"},
	CyrusDebian:  {"/usr/lib/cyrus/bin/master", "/usr/lib/cyrus/bin/ctl_cyrusdb", "/usr/sbin/saslpasswd2"},
	Courier:      {"/usr/sbin/couriertcpd", "/usr/lib/courier/courier-authlib/authdaemond", "/usr/sbin/makeuserdb", "/usr/bin/couriertls", "/usr/bin/openssl"},
	Mailutils:    {"/usr/sbin/imap4d", "/usr/sbin/pop3d", "/usr/bin/openssl"},
	Popa3d:       {"/usr/bin/socat", "/usr/bin/openssl"},
	SolidMaildir: {"/usr/bin/socat", "/usr/bin/openssl"},
	SolidMbox:    {"/usr/bin/socat", "/usr/bin/openssl"},
}

// Server is a running private server.
type Server struct {
	Kind Kind
	// IMAPAddr is the IMAP listener ("127.0.0.1:PORT"), "" for POP3-only
	// servers. Plaintext LOGIN is allowed; STARTTLS is offered.
	IMAPAddr string
	// POP3Addr is the POP3 listener. Plaintext USER/PASS is allowed; STLS
	// is offered by the servers that have TLS (not popa3d, Solid POP3).
	POP3Addr string
	// CAFile is the PEM certificate the server's TLS uses (subject
	// alternative names 127.0.0.1 and localhost), "" without TLS.
	CAFile string
	// Prefix and Delimiter are the personal namespace of the IMAP server
	// as NAMESPACE reports it ("INBOX." and "." on Courier).
	Prefix, Delimiter string
	// Dir holds the server's configuration, users, logs and mail.
	Dir string

	spool    string            // mbox spool directory or Maildir root of POP3-only servers and Mailutils
	maildrop string            // "mbox" or "maildir"
	uids     map[string]int    // namespaced passwd users
	gid      int               // their group
	seeded   map[string]int    // messages seeded per user, for numbering
	owners   map[string][2]int // uid, gid of a user's spool files
	cmd      *exec.Cmd
	exited   chan struct{}
	waitErr  error
}

// Start starts a private server of the given kind with users alice and bob
// (password Password) and registers a cleanup on t that stops it and
// removes its files. It returns once the server answers and both users can
// log in.
//
// If something the server needs is missing (root, an installed package,
// a package that cannot be downloaded), the test is skipped with the
// reason, or failed with CI=true (internal/testenv decides).
func Start(t testing.TB, kind Kind) *Server {
	t.Helper()
	if _, ok := required[kind]; !ok {
		t.Fatalf("compattest: unknown server %q", kind)
	}
	if reason := missing(kind); reason != "" {
		unavailable(t, kind, reason)
	}
	root, err := packageRoot(debPackages[kind])
	if err != nil {
		unavailable(t, kind, err.Error())
	}
	var lastErr error
	for attempt := 1; attempt <= 3; attempt++ {
		s, retry, err := start(kind, root)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		lastErr = err
		if !retry {
			break
		}
		t.Logf("compattest: %s: attempt %d failed, retrying: %v", kind, attempt, err)
	}
	t.Fatalf("compattest: start %s: %v", kind, lastErr)
	return nil
}

// unavailable skips the test, or fails it with CI=true (internal/testenv
// decides).
func unavailable(t testing.TB, kind Kind, reason string) {
	t.Helper()
	testenv.Unavailable(t, "compattest: %s is not available: %s", kind, reason)
}

// Available reports why a server cannot run here, "" when it can (as far
// as can be told without downloading its packages).
func Available(kind Kind) string { return missing(kind) }

// missing reports the first requirement of kind that is missing, "" if
// none.
func missing(kind Kind) string {
	if os.Geteuid() != 0 {
		return "needs root (the servers switch users and run in private namespaces)"
	}
	var absent []string
	for _, f := range append([]string{"/usr/bin/unshare", "/usr/bin/mount", "/bin/bash"}, required[kind]...) {
		if st, err := os.Stat(f); err != nil || st.IsDir() {
			absent = append(absent, f)
		}
	}
	if kind == SolidMaildir || kind == SolidMbox {
		if out, err := exec.Command("/sbin/ldconfig", "-p").Output(); err == nil && !strings.Contains(string(out), "liblockfile.so.1") {
			absent = append(absent, "liblockfile.so.1")
		}
	}
	if len(absent) > 0 {
		return fmt.Sprintf("missing %s (apt-get install -y --no-install-recommends %s)", strings.Join(absent, ", "), strings.Join(AptPackages, " "))
	}
	return ""
}

// start makes one attempt. retry reports whether a failure may be a port
// race worth another attempt.
func start(kind Kind, root string) (s *Server, retry bool, err error) {
	dir, err := shortTempDir("mvc")
	if err != nil {
		return nil, false, err
	}
	s = &Server{Kind: kind, Dir: dir, exited: make(chan struct{}), seeded: map[string]int{}, owners: map[string][2]int{}}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	if err := os.Chmod(dir, 0o755); err != nil {
		return s, false, err
	}
	for _, d := range []string{"log", "ssl"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return s, false, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return s, true, err
	}
	var ls launchSpec
	switch kind {
	case Cyrus, CyrusDebian:
		ls, err = s.cyrus(root, ports)
	case Courier:
		ls, err = s.courier(root, ports)
	case Mailutils:
		ls, err = s.mailutils(ports)
	case Popa3d:
		ls, err = s.popa3d(root, ports[0])
	case SolidMaildir, SolidMbox:
		ls, err = s.solid(root, ports[0])
	}
	if err != nil {
		return s, false, err
	}
	if err := s.launch(ls); err != nil {
		return s, false, err
	}
	var addrs []string
	if s.IMAPAddr != "" {
		addrs = append(addrs, s.IMAPAddr)
	}
	addrs = append(addrs, s.POP3Addr)
	for _, a := range addrs {
		if err := s.waitReady(a); err != nil {
			tail := s.LogTail()
			return s, strings.Contains(tail, "in use"), fmt.Errorf("%w\n--- logs ---\n%s", err, tail)
		}
	}
	if err := s.afterStart(); err != nil {
		return s, false, fmt.Errorf("%w\n--- logs ---\n%s", err, s.LogTail())
	}
	return s, false, nil
}

// shortTempDir makes a directory with a short path (unix socket paths
// are limited to 108 bytes): on tmpfs (/dev/shm) when there is one, which
// is much faster for mail stores than this machine's ext4.
func shortTempDir(prefix string) (string, error) {
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		if d, err := os.MkdirTemp("/dev/shm", prefix); err == nil {
			return d, nil
		}
	}
	d, err := os.MkdirTemp("/tmp", prefix)
	if err != nil {
		return "", fmt.Errorf("temp dir: %w", err)
	}
	return d, nil
}

// launchSpec is what runs in the server's namespaces.
type launchSpec struct {
	mounts [][2]string // bind source, target
	procs  []proc
}

// proc is one long-running server process.
type proc struct {
	name string
	argv []string
	env  []string // the whole environment; nil: PATH only
}

var basePath = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// launch starts a bash script as the first process of new PID and mount
// namespaces: it bind-mounts spec.mounts, starts every process in the
// background and exits (ending the namespaces, and so every process in
// them) as soon as one of them exits. unshare --kill-child makes the
// namespace end with unshare itself.
func (s *Server) launch(spec launchSpec) error {
	var b strings.Builder
	b.WriteString("set -e\n")
	for _, m := range spec.mounts {
		fmt.Fprintf(&b, "mount --bind %s %s\n", shq(m[0]), shq(m[1]))
	}
	b.WriteString("set +e\ncd /\n")
	for _, p := range spec.procs {
		env := p.env
		if env == nil {
			env = []string{basePath}
		}
		var q []string
		for _, e := range env {
			q = append(q, shq(e))
		}
		for _, a := range p.argv {
			q = append(q, shq(a))
		}
		fmt.Fprintf(&b, "env -i %s </dev/null >>%s 2>&1 &\n", strings.Join(q, " "), shq(filepath.Join(s.Dir, "log", p.name+".log")))
		fmt.Fprintf(&b, "echo \"started %s pid $!\"\n", p.name)
	}
	b.WriteString("wait -n\necho \"a server process exited ($?); stopping\"\nexit 1\n")
	script := filepath.Join(s.Dir, "run.sh")
	if err := os.WriteFile(script, []byte(b.String()), 0o700); err != nil {
		return err
	}
	out, err := os.Create(filepath.Join(s.Dir, "log", "supervisor.log"))
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command("/usr/bin/unshare", "--fork", "--pid", "--kill-child", "--mount", "--propagation", "private", "--", "/bin/bash", script)
	cmd.Stdout, cmd.Stderr = out, out
	// Pdeathsig: a test binary killed (a timeout) takes its servers
	// with it, as the namespace ends with unshare.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start unshare: %w", err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return nil
}

// shq quotes s for bash.
func shq(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// waitReady waits until addr sends an OK greeting (IMAP "* OK", POP3
// "+OK").
func (s *Server) waitReady(addr string) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("server exited: %v", s.waitErr)
		default:
		}
		last = greeting(addr)
		if last == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no greeting on %s within 20s: %w", addr, last)
}

func greeting(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") && !strings.HasPrefix(line, "+OK") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	if strings.HasPrefix(line, "*") {
		_, _ = conn.Write([]byte("a LOGOUT\r\n"))
	} else {
		_, _ = conn.Write([]byte("QUIT\r\n"))
	}
	return nil
}

// stop kills the namespace (every server process in it) and removes the
// server's files.
func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
		}
	}
	for i := 0; i < 20; i++ {
		if err := os.RemoveAll(s.Dir); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LogTail returns the last lines of every log file of the server.
func (s *Server) LogTail() string {
	files, _ := filepath.Glob(filepath.Join(s.Dir, "log", "*.log"))
	sort.Strings(files)
	var b strings.Builder
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil || len(data) == 0 {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(&b, "== %s\n%s\n", filepath.Base(f), strings.Join(lines, "\n"))
	}
	return b.String()
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago; Start retries when a server cannot bind one.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func addr(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// writeFiles writes each file (path relative to s.Dir) with mode 0644.
func (s *Server) writeFiles(files map[string]string) error {
	for name, content := range files {
		p := filepath.Join(s.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// chownR changes the owner of everything under path.
func chownR(path string, uid, gid int) error {
	return filepath.Walk(path, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
}

// run runs a command and returns an error holding its output.
func run(stdin string, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// cryptSHA512 returns the SHA-512 crypt(3) hash of Password.
func cryptSHA512() (string, error) {
	out, err := exec.Command("/usr/bin/openssl", "passwd", "-6", Password).Output()
	if err != nil {
		return "", fmt.Errorf("openssl passwd: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// lookupID returns the uid and gid of a system user.
func lookupID(user string) (int, int, error) {
	data, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Split(line, ":")
		if len(f) > 3 && f[0] == user {
			uid, err1 := strconv.Atoi(f[2])
			gid, err2 := strconv.Atoi(f[3])
			if err1 == nil && err2 == nil {
				return uid, gid, nil
			}
		}
	}
	return 0, 0, fmt.Errorf("no system user %q (is its package installed?)", user)
}
