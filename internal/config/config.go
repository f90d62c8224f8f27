package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/auth"
	"github.com/mailvault/mailvault/internal/mailurl"
)

// ErrInvalid is wrapped by every error of Load and ResolveSecrets: the
// file must be fixed (a usage error, exit code 2).
var ErrInvalid = errors.New("invalid configuration")

// Error is a problem of the file, at a line (0 when it concerns the whole
// file).
type Error struct {
	File string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *Error) Unwrap() error { return ErrInvalid }

// Limits of the numbers a file may give.
const (
	// MaxConnections is the most connections one account may use; the
	// command line's --connections has the same bound.
	MaxConnections = 16
	// MaxParallel is the most accounts a run may back up at once.
	MaxParallel = 256
)

// Config is a checked configuration file. Paths in it are absolute:
// relative ones are taken from the file's directory.
type Config struct {
	Path string
	// Parallel is [defaults] parallel: accounts backed up at once (0: not
	// given).
	Parallel int
	Servers  []*Server
	Accounts []*Account
}

// Server is a [[server]] entry.
type Server struct {
	Host string
	// MaxConnections bounds the connections of every account on Host
	// together; 0 means no bound.
	MaxConnections int
	Line           int
}

// Account is an [[account]] entry with the defaults and its server's
// settings applied.
type Account struct {
	Name    string
	Source  *mailurl.URL // with its scheme; holds no secret
	Archive string
	CAFile  string
	// Connections is how many connections the account may use (0: the
	// command's default).
	Connections int
	Timeout     time.Duration // 0: the command's default
	// Checkpoint, when CheckpointSet, replaces the command's default.
	Checkpoint    time.Duration
	CheckpointSet bool
	// Storage is the storage of a new archive; empty fields are the
	// archive's, or the default.
	Storage formats.StorageOptions
	// Exclude are the exclude_folders patterns (backup.Options.Exclude);
	// nil when no table gives the key.
	Exclude []string
	// Retention is what a run does to the archive after a backup.
	Retention Retention
	Server    *Server // nil when no [[server]] names its host
	Login     Login
	Line      int
	// Auth is how the account logs in, set by ResolveSecrets.
	Auth *auth.Auth
}

// Login is how an account logs in: which method, and where each secret
// is. It holds no secret.
type Login struct {
	Method        auth.Method
	Password      SecretRef // MethodPassword
	AdminUser     string    // MethodAdmin
	AdminPassword SecretRef // MethodAdmin
	TokenCommand  string    // MethodOAuth2
	TokenFile     string    // MethodOAuth2
	TokenLine     int
	Mechanism     auth.Mechanism
}

// SecretRef says where a secret is: exactly one of File, Env and
// Command; Key and Line name the key that says so.
type SecretRef struct {
	File, Env, Command string
	Key                string
	Line               int
}

func (r SecretRef) set() bool { return r.File != "" || r.Env != "" || r.Command != "" }

// Account returns the account called name, or nil.
func (c *Config) Account(name string) *Account {
	for _, a := range c.Accounts {
		if a.Name == name {
			return a
		}
	}
	return nil
}

// validName is what an account name may be: it names the archive's
// directory under archive_root and a label in metrics.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$`)

// Load reads and checks the configuration file at path. It reads no
// secret and connects nowhere; getenv is asked only whether the variables
// the file names are set.
func Load(path string, getenv func(string) string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrInvalid, path, errors.Unwrap(err))
	}
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return parse(path, data, fi.Mode().Perm(), getenv)
}

// parse checks data, read from the file path with permission bits mode.
func parse(path string, data []byte, mode os.FileMode, getenv func(string) string) (*Config, error) {
	if mode&0o022 != 0 {
		return nil, errorf(path, 0, "the file may be changed by other users (mode %04o), and it says which commands run and where archives go: chmod 600 %s", mode, path)
	}
	l, err := scan(path, data)
	if err != nil {
		return nil, err
	}
	raw, err := decode(path, data, l)
	if err != nil {
		return nil, err
	}
	p := &parser{file: path, dir: filepath.Dir(path), l: l, getenv: getenv}
	c, err := p.build(raw)
	if err != nil {
		return nil, err
	}
	if mode&0o044 != 0 {
		if key, line := p.commandKey(); key != "" {
			return nil, errorf(path, line, "%s: the file names a command, whose command line may hold a secret, and other users can read the file (mode %04o): chmod 600 %s", key, mode, path)
		}
	}
	return c, nil
}

// serverInfo is a [[server]] entry while accounts are read.
type serverInfo struct {
	s         *Server
	t         *table
	caFile    string
	keep      keeping // [defaults] with the server's keys applied
	adminUser string
	admin     SecretRef
}

type parser struct {
	file, dir string
	l         *layout
	getenv    func(string) string
}

func (p *parser) errf(line int, format string, args ...any) error {
	return errorf(p.file, line, format, args...)
}

// commandKey returns the first key that names a command, and its line.
func (p *parser) commandKey() (string, int) {
	best, bestLine := "", 0
	for _, t := range append(append([]*table{}, p.l.servers...), p.l.accounts...) {
		for k, line := range t.keys {
			if strings.HasSuffix(k, "_command") && (bestLine == 0 || line < bestLine) {
				best, bestLine = k, line
			}
		}
	}
	return best, bestLine
}

// path makes a path from the file absolute: relative to the file's
// directory.
func (p *parser) path(s string) string {
	if s == "" || filepath.IsAbs(s) {
		return filepath.Clean(s)
	}
	abs, err := filepath.Abs(filepath.Join(p.dir, s))
	if err != nil {
		return filepath.Join(p.dir, s)
	}
	return abs
}

// tuning are the settings [defaults] gives and an account may replace.
type tuning struct {
	caFile      string
	connections int
	timeout     time.Duration
	checkpoint  time.Duration
	ckSet       bool
	storage     formats.StorageOptions
}

func (p *parser) tuning(t *table, base tuning, caFile string, conns int64, timeout, checkpoint, format, compress string) (tuning, error) {
	out := base
	if t.has("ca_file") {
		if caFile == "" {
			return out, p.errf(t.at("ca_file"), "ca_file is empty")
		}
		out.caFile = p.path(caFile)
	}
	if t.has("connections") {
		if conns < 1 || conns > MaxConnections {
			return out, p.errf(t.at("connections"), "connections must be between 1 and %d, not %d", MaxConnections, conns)
		}
		out.connections = int(conns)
	}
	if t.has("timeout") {
		d, err := time.ParseDuration(timeout)
		if err != nil || d <= 0 {
			return out, p.errf(t.at("timeout"), "timeout must be a positive duration such as \"2m\" or \"90s\", not %q", timeout)
		}
		out.timeout = d
	}
	if t.has("checkpoint") {
		d, err := time.ParseDuration(checkpoint)
		if err != nil || d < 0 {
			return out, p.errf(t.at("checkpoint"), "checkpoint must be a duration such as \"5m\" (\"0s\": only at the end), not %q", checkpoint)
		}
		out.checkpoint, out.ckSet = d, true
	}
	if t.has("format") {
		out.storage.Storage = format
	}
	if t.has("compress") {
		out.storage.Compression = compress
	}
	if t.has("format") || t.has("compress") {
		if err := out.storage.CheckFields(); err != nil {
			key := "format"
			if !t.has("format") {
				key = "compress"
			}
			return out, p.errf(t.at(key), "%v", err)
		}
	}
	return out, nil
}

func (p *parser) build(raw *rawFile) (*Config, error) {
	c := &Config{Path: p.file}
	d := p.l.defaults
	var base tuning
	var baseKeep keeping
	archiveRoot := ""
	if d != nil {
		var err error
		rd := raw.Defaults
		if base, err = p.tuning(d, base, rd.CAFile, rd.Connections, rd.Timeout, rd.Checkpoint, rd.Format, rd.Compress); err != nil {
			return nil, err
		}
		if baseKeep, err = p.keeping(d, baseKeep, rd.rawKeep); err != nil {
			return nil, err
		}
		if d.has("archive_root") {
			if rd.ArchiveRoot == "" {
				return nil, p.errf(d.at("archive_root"), "archive_root is empty")
			}
			archiveRoot = p.path(rd.ArchiveRoot)
		}
		if d.has("parallel") {
			if rd.Parallel < 1 || rd.Parallel > MaxParallel {
				return nil, p.errf(d.at("parallel"), "parallel must be between 1 and %d, not %d", MaxParallel, rd.Parallel)
			}
			c.Parallel = int(rd.Parallel)
		}
	}

	// Servers: each host once.
	servers := map[string]*serverInfo{}
	for i, rs := range raw.Server {
		t := p.l.servers[i]
		host := strings.ToLower(strings.TrimSpace(rs.Host))
		if host == "" {
			return nil, p.errf(t.at("host"), "[[server]] needs host = \"…\" (the host name of its accounts' source URLs)")
		}
		host = strings.Trim(host, "[]")
		if net.ParseIP(host) == nil && strings.ContainsAny(host, ":/@ \t") {
			return nil, p.errf(t.at("host"), "host %q must be a host name only, without scheme, user or port", rs.Host)
		}
		if prev, ok := servers[host]; ok {
			return nil, p.errf(t.at("host"), "host %q is given twice (first at line %d)", rs.Host, prev.t.at("host"))
		}
		si := &serverInfo{s: &Server{Host: host, Line: t.line}, t: t, adminUser: rs.AdminUser}
		var err error
		if si.keep, err = p.keeping(t, baseKeep, rs.rawKeep); err != nil {
			return nil, err
		}
		if t.has("max_connections") {
			if rs.MaxConnections < 1 {
				return nil, p.errf(t.at("max_connections"), "max_connections must be at least 1, not %d", rs.MaxConnections)
			}
			si.s.MaxConnections = int(rs.MaxConnections)
		}
		if t.has("ca_file") {
			if rs.CAFile == "" {
				return nil, p.errf(t.at("ca_file"), "ca_file is empty")
			}
			si.caFile = p.path(rs.CAFile)
		}
		if si.admin, err = p.secret(t, "admin_password", rs.AdminPasswordFile, rs.AdminPasswordEnv, rs.AdminPasswordCommand); err != nil {
			return nil, err
		}
		if t.has("admin_user") && rs.AdminUser == "" {
			return nil, p.errf(t.at("admin_user"), "admin_user is empty")
		}
		if rs.AdminUser != "" && !si.admin.set() {
			return nil, p.errf(t.at("admin_user"), "admin_user %q needs its password: admin_password_file, admin_password_env or admin_password_command", rs.AdminUser)
		}
		if rs.AdminUser == "" && si.admin.set() {
			return nil, p.errf(si.admin.Line, "%s without admin_user: whose password is it?", si.admin.Key)
		}
		servers[host] = si
		c.Servers = append(c.Servers, si.s)
	}

	names := map[string]int{}
	archives := map[string]*Account{}
	for i, ra := range raw.Account {
		t := p.l.accounts[i]
		a := &Account{Name: ra.Name, Line: t.line}
		switch {
		case !t.has("name"):
			return nil, p.errf(t.line, "[[account]] needs name = \"…\"")
		case !validName.MatchString(ra.Name):
			return nil, p.errf(t.at("name"), "account name %q must be letters, digits and . _ @ + - (it names the archive directory), starting with a letter or digit", ra.Name)
		}
		if first, ok := names[strings.ToLower(ra.Name)]; ok {
			return nil, p.errf(t.at("name"), "account name %q is given twice (first at line %d; names must differ by more than case)", ra.Name, first)
		}
		names[strings.ToLower(ra.Name)] = t.at("name")
		if !t.has("source") || ra.Source == "" {
			return nil, p.errf(t.at("source"), "account %q needs source = \"imaps://USER@HOST\" (or imap://, pop3s://, pop3://)", ra.Name)
		}
		u, err := mailurl.Parse(ra.Source)
		if err != nil {
			return nil, p.errf(t.at("source"), "account %q: %v", ra.Name, err)
		}
		if u.Scheme == "" {
			return nil, p.errf(t.at("source"), "account %q: source %q must name its protocol: imaps://, imap://, pop3s:// or pop3://", ra.Name, ra.Source)
		}
		a.Source = u
		si := servers[strings.ToLower(u.Host)]
		if si != nil {
			a.Server = si.s
		}

		tun := base
		if si != nil && si.caFile != "" {
			tun.caFile = si.caFile
		}
		if tun, err = p.tuning(t, tun, ra.CAFile, ra.Connections, ra.Timeout, ra.Checkpoint, ra.Format, ra.Compress); err != nil {
			return nil, err
		}
		a.CAFile, a.Connections, a.Timeout = tun.caFile, tun.connections, tun.timeout
		a.Checkpoint, a.CheckpointSet, a.Storage = tun.checkpoint, tun.ckSet, tun.storage
		keep := baseKeep
		if si != nil {
			keep = si.keep
		}
		if keep, err = p.keeping(t, keep, ra.rawKeep); err != nil {
			return nil, err
		}
		if t.has("prune") && keep.retention.Prune && !keep.retention.Apply() {
			return nil, p.errf(t.at("prune"), "account %q: prune = true needs a keep_* rule (here, in its [[server]] or in [defaults]): retention runs only with a policy", ra.Name)
		}
		a.Exclude, a.Retention = keep.exclude, keep.retention

		switch {
		case t.has("archive"):
			if ra.Archive == "" {
				return nil, p.errf(t.at("archive"), "archive is empty")
			}
			a.Archive = p.path(ra.Archive)
		case archiveRoot != "":
			a.Archive = filepath.Join(archiveRoot, ra.Name)
		default:
			return nil, p.errf(t.line, "account %q has no archive: set archive = \"…\" here or archive_root in [defaults]", ra.Name)
		}
		for other, b := range archives {
			if other == a.Archive || strings.HasPrefix(a.Archive, other+string(filepath.Separator)) || strings.HasPrefix(other, a.Archive+string(filepath.Separator)) {
				return nil, p.errf(t.at("archive"), "accounts %q and %q would share the archive %s (account %q is at line %d): each account needs its own", b.Name, ra.Name, a.Archive, b.Name, b.Line)
			}
		}
		archives[a.Archive] = a

		if a.Login, err = p.login(t, ra, si); err != nil {
			return nil, err
		}
		c.Accounts = append(c.Accounts, a)
	}
	if len(c.Accounts) == 0 {
		return nil, p.errf(0, "no [[account]]: nothing to back up")
	}
	return c, nil
}

// secret reads the three keys of one secret (prefix_file, _env,
// _command): at most one may be given.
func (p *parser) secret(t *table, prefix, file, env, command string) (SecretRef, error) {
	var ref SecretRef
	var given []string
	for _, k := range []struct {
		key string
		val string
		dst *string
	}{{prefix + "_file", file, &ref.File}, {prefix + "_env", env, &ref.Env}, {prefix + "_command", command, &ref.Command}} {
		if !t.has(k.key) {
			continue
		}
		if k.val == "" {
			return ref, p.errf(t.at(k.key), "%s is empty", k.key)
		}
		given = append(given, k.key)
		*k.dst = k.val
		if ref.Key == "" {
			ref.Key, ref.Line = k.key, t.at(k.key)
		}
	}
	if len(given) > 1 {
		return ref, p.errf(t.at(given[1]), "give one of %s and %s, not both", given[0], given[1])
	}
	if ref.File != "" {
		ref.File = p.path(ref.File)
	}
	if ref.Env != "" && p.getenv(ref.Env) == "" {
		return ref, p.errf(ref.Line, "%s: the environment variable %s is not set (or empty)", ref.Key, ref.Env)
	}
	return ref, nil
}

// login works out how an account logs in:
//   - oauth2_token_command or oauth2_token_file: OAuth2, nothing else;
//   - its own password_*: its password (the server's admin is not used);
//   - else an admin login: admin_user and the admin's password from the
//     account, each falling back to its server's.
func (p *parser) login(t *table, ra rawAccount, si *serverInfo) (Login, error) {
	var lg Login
	mech, err := auth.ParseMechanism(ra.AuthMech)
	if err != nil {
		return lg, p.errf(t.at("auth_mech"), "auth_mech: %s", authMessage(err))
	}
	lg.Mechanism = mech
	pw, err := p.secret(t, "password", ra.PasswordFile, ra.PasswordEnv, ra.PasswordCommand)
	if err != nil {
		return lg, err
	}
	admin, err := p.secret(t, "admin_password", ra.AdminPasswordFile, ra.AdminPasswordEnv, ra.AdminPasswordCommand)
	if err != nil {
		return lg, err
	}
	if t.has("admin_user") && ra.AdminUser == "" {
		return lg, p.errf(t.at("admin_user"), "admin_user is empty")
	}
	oauth := t.has("oauth2_token_command") || t.has("oauth2_token_file")
	switch {
	case oauth:
		if t.has("oauth2_token_command") && t.has("oauth2_token_file") {
			return lg, p.errf(t.at("oauth2_token_file"), "give one of oauth2_token_command and oauth2_token_file, not both")
		}
		oauthLine := max(t.keys["oauth2_token_command"], t.keys["oauth2_token_file"])
		for _, k := range []string{"password_file", "password_env", "password_command", "admin_user", "admin_password_file", "admin_password_env", "admin_password_command"} {
			if t.has(k) {
				return lg, p.errf(t.at(k), "account %q logs in with OAuth2 (line %d) and takes no %s", ra.Name, oauthLine, k)
			}
		}
		lg.Method = auth.MethodOAuth2
		if ra.OAuth2TokenCommand != "" {
			lg.TokenCommand, lg.TokenLine = ra.OAuth2TokenCommand, t.at("oauth2_token_command")
		} else {
			lg.TokenFile, lg.TokenLine = p.path(ra.OAuth2TokenFile), t.at("oauth2_token_file")
		}
		if lg.TokenCommand == "" && lg.TokenFile == "" {
			return lg, p.errf(lg.TokenLine, "the OAuth2 token key is empty")
		}
	case pw.set():
		if t.has("admin_user") || admin.set() {
			k := "admin_user"
			if !t.has(k) {
				k = admin.Key
			}
			return lg, p.errf(t.at(k), "account %q gives its own password (%s, line %d) and an admin login: give one", ra.Name, pw.Key, pw.Line)
		}
		lg.Method, lg.Password = auth.MethodPassword, pw
	default:
		lg.AdminUser, lg.AdminPassword = ra.AdminUser, admin
		if si != nil {
			if lg.AdminUser == "" {
				lg.AdminUser = si.adminUser
			}
			if !lg.AdminPassword.set() {
				lg.AdminPassword = si.admin
			}
		}
		switch {
		case lg.AdminUser == "" && !lg.AdminPassword.set():
			host := "its host"
			if si == nil {
				host = "no [[server]] for host " + strings.ToLower(hostOf(ra.Source))
			} else {
				host = fmt.Sprintf("its [[server]] (line %d) has no admin_user", si.t.line)
			}
			return lg, p.errf(t.line, "account %q has no password (password_file, password_env or password_command) and no admin login (admin_user; %s)", ra.Name, host)
		case lg.AdminUser == "":
			return lg, p.errf(admin.Line, "%s without admin_user (here or in its [[server]]): whose password is it?", admin.Key)
		case !lg.AdminPassword.set():
			return lg, p.errf(t.at("admin_user"), "admin_user %q needs its password: admin_password_file, admin_password_env or admin_password_command, here or in its [[server]]", lg.AdminUser)
		}
		lg.Method = auth.MethodAdmin
	}
	if err := auth.CheckMechanism(lg.Method, mech); err != nil {
		return lg, p.errf(t.at("auth_mech"), "auth_mech: %s", authMessage(err))
	}
	return lg, nil
}

// authMessage is an auth.ErrConfig error without its prefix.
func authMessage(err error) string {
	return strings.TrimPrefix(err.Error(), auth.ErrConfig.Error()+": ")
}

func hostOf(source string) string {
	u, err := mailurl.Parse(source)
	if err != nil {
		return source
	}
	return u.Host
}
