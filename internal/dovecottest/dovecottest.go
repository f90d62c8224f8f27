package dovecottest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/testenv"
)

// Options configures the server started by Start.
type Options struct {
	// Users maps user names to passwords. They are stored in a passwd-file
	// with the {PLAIN} scheme. Names must be lower case without ':', '/',
	// '%' or spaces; passwords must not contain ':' or line breaks.
	Users map[string]string
	// Quota optionally maps user names to a Dovecot quota rule such as
	// "*:storage=20K". The quota plugin (and imap_quota) is enabled only when
	// the map is not empty.
	Quota map[string]string
	// SpecialUse maps folder names to SPECIAL-USE attributes, for example
	// "Sent": `\Sent`. A nil map means DefaultSpecialUse. The folders are
	// declared in the inbox namespace with "auto = no": they are not
	// created, but a folder of that name carries the attribute once a client
	// creates it.
	SpecialUse map[string]string
	// POP3Lock allows one POP3 session per mailbox at a time: a second one
	// is refused with "-ERR [IN-USE]" (pop3_lock_session = yes).
	POP3Lock bool
	// MailLocation optionally maps user names to their own mail_location
	// (for example "maildir:~/folders:LAYOUT=fs"), in place of
	// MailRoot/<user>. "~" is the user's home, Server.Home(user).
	MailLocation map[string]string
	// Zlib loads the zlib plugin, which reads mail files compressed with
	// zstd, gzip, bzip2 or xz.
	Zlib bool
	// Masters maps master user names to passwords, kept in a second
	// passdb with "master = yes" and "pass = yes". A master logs in as
	// any user of Users (never as itself: it has no mailbox) by SASL PLAIN
	// with that user as the authorization identity, or with LOGIN as
	// "user*master" (auth_master_user_separator = *).
	Masters map[string]string
	// OAuth2IntrospectionURL enables SASL XOAUTH2 and OAUTHBEARER through
	// an oauth2 passdb that POSTs each token (form field "token") to this
	// URL, Dovecot's introspection_mode = post. An answer
	// {"active": true, "username": "USER"} makes the token valid for USER;
	// anything else refuses it. Password logins keep working.
	OAuth2IntrospectionURL string
	// IMAPVSZLimit optionally sets the imap service's vsz_limit (for
	// example "2G"; "0" for none). Dovecot's default, 256 MB, is too small
	// for a Maildir folder of about a million messages: a resync reads the
	// whole dovecot-uidlist into memory and the process dies with "Out of
	// memory".
	IMAPVSZLimit string
}

// DefaultSpecialUse is the special-use mapping used when
// Options.SpecialUse is nil.
var DefaultSpecialUse = map[string]string{
	"Sent":    `\Sent`,
	"Drafts":  `\Drafts`,
	"Trash":   `\Trash`,
	"Junk":    `\Junk`,
	"Archive": `\Archive`,
}

// Server is a running private Dovecot instance.
type Server struct {
	// IMAPAddr is the plain IMAP listener ("127.0.0.1:PORT"). STARTTLS is
	// offered and plaintext authentication is allowed.
	IMAPAddr string
	// IMAPSAddr is the implicit-TLS IMAP listener.
	IMAPSAddr string
	// POP3Addr is the plain POP3 listener (STLS offered, plaintext
	// authentication allowed).
	POP3Addr string
	// POP3SAddr is the implicit-TLS POP3 listener.
	POP3SAddr string
	// CAFile is a PEM file holding the self-signed server certificate
	// (subject alternative names 127.0.0.1, ::1 and localhost). It can be
	// used as the only root CA when verifying the server.
	CAFile string
	// Config is the path of the generated dovecot.conf.
	Config string
	// MailRoot is the directory holding each user's Maildir as
	// MailRoot/<user> (LAYOUT=fs: folder "A/B" is the directory A/B,
	// names stored as UTF-8). It lies on tmpfs under /dev/shm when that
	// exists, else under the temporary directory; either way it is removed
	// at cleanup.
	MailRoot string

	base    string
	home    string
	dirs    []string // removed by stop
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// shmDir holds the mail and home directories when it exists: on the
// ext4-backed /tmp of our CI machines Dovecot's APPEND path was 7 times
// slower than on tmpfs (1,000 APPENDs: 4 s instead of 0.55 s).
const shmDir = "/dev/shm"

const (
	startAttempts = 3
	readyTimeout  = 10 * time.Second
	stopTimeout   = 10 * time.Second
	logTailLines  = 40
	debianMailUID = 8
	debianMailGID = 8
	maxUserIPConn = 50
)

// Available reports whether the dovecot binary is installed.
func Available() bool {
	_, err := dovecotBinary()
	return err == nil
}

func dovecotBinary() (string, error) {
	return findBinary("dovecot", "/usr/sbin/dovecot")
}

func doveadmBinary() (string, error) {
	return findBinary("doveadm", "/usr/bin/doveadm")
}

// findBinary looks name up in PATH and falls back to the Debian location
// (a non-root PATH often lacks /usr/sbin).
func findBinary(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if st, err := os.Stat(fallback); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
		return fallback, nil
	}
	return "", fmt.Errorf("%s not found in PATH or at %s", name, fallback)
}

// Start starts a private Dovecot configured by opts and registers a cleanup
// on t that stops it and removes its files. It returns once the IMAP
// listener has sent its greeting.
//
// If Dovecot is not installed the test is skipped, or failed with CI=true
// (internal/testenv decides).
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin, err := dovecotBinary()
	if err != nil {
		testenv.Unavailable(t, "dovecottest: Dovecot is not installed (apt-get install dovecot-imapd dovecot-pop3d): %v", err)
	}
	if err := validate(opts); err != nil {
		t.Fatalf("dovecottest: %v", err)
	}

	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		s, retry, err := start(bin, opts)
		if err == nil {
			t.Cleanup(s.stop)
			return s
		}
		lastErr = err
		if !retry {
			break
		}
		t.Logf("dovecottest: attempt %d failed, retrying: %v", attempt, err)
	}
	t.Fatalf("dovecottest: %v", lastErr)
	return nil
}

// Home is the home directory of user (it may not exist yet). The mail
// processes can reach it: it lies in a directory they own.
func (s *Server) Home(user string) string { return filepath.Join(s.home, user) }

// Doveadm runs "doveadm -c CONFIG args..." against the server and returns
// its combined output. It fails the test if doveadm fails.
func (s *Server) Doveadm(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := doveadmBinary()
	if err != nil {
		t.Fatalf("dovecottest: %v", err)
	}
	cmd := exec.Command(bin, append([]string{"-c", s.Config}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("dovecottest: doveadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var vszRE = regexp.MustCompile(`^[0-9]+[KMGT]?$`)

func validate(opts Options) error {
	bad := func(s string) bool { return s == "" || strings.ContainsAny(s, ":\r\n\x00") }
	for u, p := range opts.Users {
		// Dovecot lower-cases login names (auth_username_format = %Lu)
		// before looking them up.
		if bad(u) || strings.ContainsAny(u, "/% \t") || strings.ToLower(u) != u {
			return fmt.Errorf("invalid user name %q (lower case, no ':', '/', '%%' or spaces)", u)
		}
		if bad(p) {
			return fmt.Errorf("invalid password for user %q", u)
		}
	}
	for u, rule := range opts.Quota {
		if _, ok := opts.Users[u]; !ok {
			return fmt.Errorf("quota for unknown user %q", u)
		}
		// Extra fields of a passwd-file are separated by spaces.
		if rule == "" || strings.ContainsAny(rule, " \t\r\n\x00") {
			return fmt.Errorf("invalid quota rule %q for user %q", rule, u)
		}
	}
	for u, loc := range opts.MailLocation {
		if _, ok := opts.Users[u]; !ok {
			return fmt.Errorf("mail location for unknown user %q", u)
		}
		if loc == "" || strings.ContainsAny(loc, " \t\r\n\x00") {
			return fmt.Errorf("invalid mail location %q for user %q", loc, u)
		}
	}
	for u, p := range opts.Masters {
		if bad(u) || strings.ContainsAny(u, "/%* \t") || strings.ToLower(u) != u || bad(p) {
			return fmt.Errorf("invalid master user %q or its password", u)
		}
		if _, ok := opts.Users[u]; ok {
			return fmt.Errorf("master user %q is also an ordinary user", u)
		}
	}
	if strings.ContainsAny(opts.OAuth2IntrospectionURL, " \t\r\n\x00") {
		return fmt.Errorf("invalid introspection URL %q", opts.OAuth2IntrospectionURL)
	}
	if v := opts.IMAPVSZLimit; v != "" && !vszRE.MatchString(v) {
		return fmt.Errorf("invalid imap vsz_limit %q (a number with an optional K, M, G or T)", v)
	}
	for name, attr := range opts.SpecialUse {
		if name == "" || strings.ContainsAny(name, "\"\\\r\n\x00{}") {
			return fmt.Errorf("invalid special-use folder name %q", name)
		}
		if !strings.HasPrefix(attr, `\`) || strings.ContainsAny(attr, " \"\r\n\x00{}") {
			return fmt.Errorf("invalid special-use attribute %q for %q", attr, name)
		}
	}
	return nil
}

// ids returns the uid and gid the mail processes run as and whether the
// master runs as root.
func ids() (uid, gid int, userName string, root bool, err error) {
	if os.Geteuid() == 0 {
		uid, gid = debianMailUID, debianMailGID
		if u, err := user.Lookup("mail"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		return uid, gid, "mail", true, nil
	}
	u, err := user.Current()
	if err != nil {
		return 0, 0, "", false, fmt.Errorf("current user: %w", err)
	}
	return os.Geteuid(), os.Getegid(), u.Username, false, nil
}

// start makes one attempt. retry reports whether a failure looks like a
// port race worth another attempt with new ports.
func start(bin string, opts Options) (s *Server, retry bool, err error) {
	base, err := os.MkdirTemp("/tmp", "dv")
	if err != nil {
		return nil, false, fmt.Errorf("temp dir: %w", err)
	}
	s = &Server{
		base:    base,
		dirs:    []string{base},
		logPath: filepath.Join(base, "dovecot.log"),
		Config:  filepath.Join(base, "dovecot.conf"),
		CAFile:  filepath.Join(base, "cert.pem"),
		exited:  make(chan struct{}),
	}
	defer func() {
		if err != nil {
			s.stop()
		}
	}()
	// Unprivileged Dovecot processes (auth as dovecot, mail as mail) must
	// be able to reach the passwd file and the mail root.
	if err := os.Chmod(base, 0o755); err != nil {
		return s, false, fmt.Errorf("chmod: %w", err)
	}
	mailParent := base
	if dir, err := os.MkdirTemp(shmDir, "dvmail"); err == nil {
		s.dirs = append(s.dirs, dir)
		if err := os.Chmod(dir, 0o755); err != nil {
			return s, false, fmt.Errorf("chmod: %w", err)
		}
		mailParent = dir
	}
	s.MailRoot = filepath.Join(mailParent, "mail")
	uid, gid, userName, root, err := ids()
	if err != nil {
		return s, false, err
	}
	home := filepath.Join(mailParent, "home")
	s.home = home
	for _, d := range []string{s.MailRoot, home, filepath.Join(base, "state"), filepath.Join(base, "run")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return s, false, fmt.Errorf("mkdir: %w", err)
		}
	}
	if root {
		for _, d := range []string{s.MailRoot, home} {
			if err := os.Chown(d, uid, gid); err != nil {
				return s, false, fmt.Errorf("chown %s: %w", d, err)
			}
		}
	}
	keyFile := filepath.Join(base, "key.pem")
	if err := writeCert(s.CAFile, keyFile); err != nil {
		return s, false, err
	}
	passwd := filepath.Join(base, "passwd")
	if err := os.WriteFile(passwd, passwdFile(opts, uid, gid, home), 0o644); err != nil {
		return s, false, fmt.Errorf("write passwd: %w", err)
	}
	if len(opts.Masters) > 0 {
		if err := os.WriteFile(filepath.Join(base, "masters"), mastersFile(opts.Masters), 0o644); err != nil {
			return s, false, fmt.Errorf("write masters: %w", err)
		}
	}
	if opts.OAuth2IntrospectionURL != "" {
		if err := os.WriteFile(filepath.Join(base, "oauth2.conf"), oauth2Conf(opts.OAuth2IntrospectionURL), 0o644); err != nil {
			return s, false, fmt.Errorf("write oauth2 settings: %w", err)
		}
	}
	ports, err := freePortsFunc(4)
	if err != nil {
		return s, true, err
	}
	s.IMAPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	s.IMAPSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
	s.POP3Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[2]))
	s.POP3SAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[3]))

	conf := config(configParams{
		base: base, mailRoot: s.MailRoot, home: home, passwd: passwd,
		cert: s.CAFile, key: keyFile, log: s.logPath,
		uid: uid, gid: gid, userName: userName, root: root,
		ports: ports, opts: opts,
	})
	if err := os.WriteFile(s.Config, []byte(conf), 0o644); err != nil {
		return s, false, fmt.Errorf("write config: %w", err)
	}

	out, err := os.Create(filepath.Join(base, "master.out"))
	if err != nil {
		return s, false, fmt.Errorf("master output: %w", err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "-F", "-c", s.Config)
	cmd.Stdout = out
	cmd.Stderr = out
	// A process group of its own, so that the master and every child it
	// forked can be killed together if it does not stop in time.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return s, false, fmt.Errorf("start %s: %w", bin, err)
	}
	s.cmd = cmd
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()

	if err := s.waitReady(); err != nil {
		tail := s.logTail()
		retry = strings.Contains(tail, "in use")
		return s, retry, fmt.Errorf("dovecot did not become ready: %w\n--- dovecot log tail (%s) ---\n%s", err, s.logPath, tail)
	}
	return s, false, nil
}

// waitReady waits until the IMAP listener accepts a connection and sends an
// untagged OK greeting.
func (s *Server) waitReady() error {
	deadline := time.Now().Add(readyTimeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("dovecot master exited: %v", s.waitErr)
		default:
		}
		if log, err := os.ReadFile(s.logPath); err == nil && strings.Contains(string(log), " Fatal: ") {
			return errors.New("dovecot logged a fatal error")
		}
		lastErr = greeting(s.IMAPAddr)
		if lastErr == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no IMAP greeting within %v: %w", readyTimeout, lastErr)
}

func greeting(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if !strings.HasPrefix(line, "* OK") {
		return fmt.Errorf("unexpected greeting %q", line)
	}
	_, _ = conn.Write([]byte("a LOGOUT\r\n"))
	return nil
}

// stop terminates the master (SIGTERM, then SIGKILL to the whole process
// group after stopTimeout) and removes the temporary directory.
func (s *Server) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		pid := s.cmd.Process.Pid
		_ = syscall.Kill(-pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(stopTimeout):
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	// Children may still be writing for a moment after the master exits.
	for _, dir := range s.dirs {
		for i := 0; i < 20; i++ {
			if err := os.RemoveAll(dir); err == nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// logTail returns the last lines of the Dovecot log and of the master's
// own output.
func (s *Server) logTail() string {
	var b strings.Builder
	for _, p := range []string{s.logPath, filepath.Join(s.base, "master.out")} {
		data, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		if len(lines) > logTailLines {
			lines = lines[len(lines)-logTailLines:]
		}
		for _, l := range lines {
			if l != "" {
				b.WriteString(l)
				b.WriteByte('\n')
			}
		}
	}
	return b.String()
}

// freePortsFunc is freePorts; tests replace it to provoke bind failures.
var freePortsFunc = freePorts

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment
// ago. Another process may take one before Dovecot binds it; Start retries.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// writeCert writes a self-signed ECDSA P-256 certificate valid for
// 127.0.0.1, ::1 and localhost, usable as its own CA.
func writeCert(certFile, keyFile string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return fmt.Errorf("serial: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost", Organization: []string{"dovecottest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal key: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write certificate: %w", err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	return nil
}

// passwdFile renders the passwd-file used as passdb and userdb.
func passwdFile(opts Options, uid, gid int, home string) []byte {
	users := make([]string, 0, len(opts.Users))
	for u := range opts.Users {
		users = append(users, u)
	}
	sort.Strings(users)
	var b strings.Builder
	for _, u := range users {
		var fields []string
		if rule, ok := opts.Quota[u]; ok {
			fields = append(fields, "userdb_quota_rule="+rule)
		}
		if loc, ok := opts.MailLocation[u]; ok {
			fields = append(fields, "userdb_mail="+loc)
		}
		extra := strings.Join(fields, " ")
		fmt.Fprintf(&b, "%s:{PLAIN}%s:%d:%d::%s::%s\n", u, opts.Users[u], uid, gid, filepath.Join(home, u), extra)
	}
	return []byte(b.String())
}

// mastersFile renders the passwd-file of the master passdb.
func mastersFile(masters map[string]string) []byte {
	names := make([]string, 0, len(masters))
	for u := range masters {
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		fmt.Fprintf(&b, "%s:{PLAIN}%s\n", u, masters[u])
	}
	return []byte(b.String())
}

// oauth2Conf renders the settings file of the oauth2 passdb.
func oauth2Conf(url string) []byte {
	return []byte("introspection_mode = post\n" +
		"introspection_url = " + url + "\n" +
		"username_attribute = username\n" +
		"active_attribute = active\n" +
		"active_value = true\n")
}

type configParams struct {
	base, mailRoot, home, passwd, cert, key, log string
	uid, gid                                     int
	userName                                     string
	root                                         bool
	ports                                        []int
	opts                                         Options
}

// mailLocationOptions are appended to the Maildir path. UTF-8 makes
// Dovecot 2.3 store folder names as UTF-8 on disk instead of modified
// UTF-7.
const mailLocationOptions = ":LAYOUT=fs:UTF-8"

func config(p configParams) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Generated by dovecottest; private test instance.")
	// Not the temporary directory itself: the master puts a symlink named
	// dovecot.conf into base_dir, which would replace our config file.
	w("base_dir = %s", filepath.Join(p.base, "run"))
	w("state_dir = %s", filepath.Join(p.base, "state"))
	w("instance_name = dovecottest-%s", filepath.Base(p.base))
	w("log_path = %s", p.log)
	w("listen = 127.0.0.1")
	w("protocols = imap pop3")
	w("ssl = yes")
	w("ssl_cert = <%s", p.cert)
	w("ssl_key = <%s", p.key)
	w("disable_plaintext_auth = no")
	if p.opts.OAuth2IntrospectionURL != "" {
		w("auth_mechanisms = plain login xoauth2 oauthbearer")
	} else {
		w("auth_mechanisms = plain login")
	}
	if len(p.opts.Masters) > 0 {
		w("auth_master_user_separator = *")
	}
	// Failed logins are part of tests: answer them at once and do not slow
	// down later logins from 127.0.0.1 (auth penalty).
	w("auth_failure_delay = 0")
	w("service anvil {")
	if !p.root {
		w("  chroot =")
	}
	w("  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}")
	w("mail_location = maildir:%s/%%u%s", p.mailRoot, mailLocationOptions)
	w("mail_fsync = never")
	w("first_valid_uid = %d", p.uid)
	w("last_valid_uid = %d", p.uid)
	w("first_valid_gid = %d", p.gid)
	w("last_valid_gid = %d", p.gid)
	w("pop3_uidl_format = %%08Xu%%08Xv")
	if !p.root {
		w("default_internal_user = %s", p.userName)
		w("default_login_user = %s", p.userName)
		// Chroots and user switches need root; the anvil chroot is
		// emptied in its service section below.
		if g, err := user.LookupGroupId(strconv.Itoa(p.gid)); err == nil {
			w("default_internal_group = %s", g.Name)
		}
		for _, svc := range []string{"imap-login", "pop3-login"} {
			w("service %s {\n  chroot =\n}", svc)
		}
		w("service auth-worker {\n  user = $default_internal_user\n}")
	}
	quota := len(p.opts.Quota) > 0
	if quota {
		w("mail_plugins = $mail_plugins quota")
	}
	if p.opts.Zlib {
		w("mail_plugins = $mail_plugins zlib")
	}
	if len(p.opts.Masters) > 0 {
		w("passdb {\n  driver = passwd-file\n  master = yes\n  pass = yes\n  args = scheme=PLAIN username_format=%%u %s\n}", filepath.Join(p.base, "masters"))
	}
	if p.opts.OAuth2IntrospectionURL != "" {
		w("passdb {\n  driver = oauth2\n  mechanisms = xoauth2 oauthbearer\n  args = %s\n}", filepath.Join(p.base, "oauth2.conf"))
		w("passdb {\n  driver = passwd-file\n  mechanisms = plain login\n  args = scheme=PLAIN username_format=%%u %s\n}", p.passwd)
	} else {
		w("passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%%u %s\n}", p.passwd)
	}
	w("userdb {\n  driver = passwd-file\n  args = username_format=%%u %s\n}", p.passwd)

	w("namespace inbox {\n  inbox = yes\n  separator = /\n  prefix =")
	special := p.opts.SpecialUse
	if special == nil {
		special = DefaultSpecialUse
	}
	names := make([]string, 0, len(special))
	for n := range special {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		w("  mailbox \"%s\" {\n    special_use = %s\n    auto = no\n  }", n, special[n])
	}
	w("}")

	w("service imap-login {")
	w("  inet_listener imap {\n    address = 127.0.0.1\n    port = %d\n  }", p.ports[0])
	w("  inet_listener imaps {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }", p.ports[1])
	w("}")
	w("service pop3-login {")
	w("  inet_listener pop3 {\n    address = 127.0.0.1\n    port = %d\n  }", p.ports[2])
	w("  inet_listener pop3s {\n    address = 127.0.0.1\n    port = %d\n    ssl = yes\n  }", p.ports[3])
	w("}")
	if p.opts.IMAPVSZLimit != "" {
		w("service imap {\n  vsz_limit = %s\n}", p.opts.IMAPVSZLimit)
	}
	w("protocol imap {")
	w("  mail_max_userip_connections = %d", maxUserIPConn)
	if quota {
		w("  mail_plugins = $mail_plugins imap_quota")
	}
	w("}")
	w("protocol pop3 {")
	w("  mail_max_userip_connections = %d", maxUserIPConn)
	if p.opts.POP3Lock {
		w("  pop3_lock_session = yes")
	}
	w("}")
	if quota {
		w("plugin {\n  quota = count:User quota\n  quota_vsizes = yes\n}")
	}
	return b.String()
}
