package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/auth"
)

// write puts text in dir/mailvault.toml with mode, and a secret file
// dir/pw (0600) and dir/open.pw (0644) next to it.
func write(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for name, m := range map[string]os.FileMode{"pw": 0o600, "admin.pw": 0o600, "open.pw": 0o644, "token": 0o600} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("secret-"+name+"\n"), m); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, name), m); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "mailvault.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

const good = `# a fleet
[defaults]
archive_root = "archives"
connections = 2
timeout = "30s"
checkpoint = "1m"
parallel = 3

[[server]]
host = "Mail.Example.com"
max_connections = 5
admin_user = "admin"
admin_password_file = "admin.pw"

[[account]]
name = "alice"
source = "imaps://alice@mail.example.com"
password_file = "pw"

[[account]]
name = "bob"
source = "imap://bob@mail.example.com:1143"
connections = 1
format = "maildir"
compress = "none"

[[account]]
name = "carol"
source = "pop3s://carol@other.example.org"
password_env = "CAROL_PW"
archive = "/srv/carol"

[[account]]
name = "dave"
source = "imaps://dave@outlook.office365.com"
oauth2_token_file = "token"
`

func TestLoadGood(t *testing.T) {
	path := write(t, good, 0o600)
	dir := filepath.Dir(path)
	c, err := Load(path, env(map[string]string{"CAROL_PW": "carol-secret"}))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if c.Parallel != 3 || len(c.Servers) != 1 || c.Servers[0].Host != "mail.example.com" || c.Servers[0].MaxConnections != 5 {
		t.Errorf("Load() parallel %d, servers %+v", c.Parallel, c.Servers)
	}
	want := []struct {
		name, archive string
		method        auth.Method
		conns         int
		server        bool
		storage       string
	}{
		{"alice", filepath.Join(dir, "archives", "alice"), auth.MethodPassword, 2, true, ""},
		{"bob", filepath.Join(dir, "archives", "bob"), auth.MethodAdmin, 1, true, "maildir/none"},
		{"carol", "/srv/carol", auth.MethodPassword, 2, false, ""},
		{"dave", filepath.Join(dir, "archives", "dave"), auth.MethodOAuth2, 2, false, ""},
	}
	if len(c.Accounts) != len(want) {
		t.Fatalf("Load() %d accounts, want %d", len(c.Accounts), len(want))
	}
	for i, w := range want {
		a := c.Accounts[i]
		storage := ""
		if a.Storage.Storage != "" {
			storage = a.Storage.Storage + "/" + a.Storage.Compression
		}
		if a.Name != w.name || a.Archive != w.archive || a.Login.Method != w.method || a.Connections != w.conns || (a.Server != nil) != w.server || storage != w.storage {
			t.Errorf("account %d = %s %s %s conns %d server %v storage %q; want %+v", i, a.Name, a.Archive, a.Login.Method, a.Connections, a.Server != nil, storage, w)
		}
		if a.Timeout != 30*time.Second || !a.CheckpointSet || a.Checkpoint != time.Minute {
			t.Errorf("account %s: timeout %v checkpoint %v (%v)", a.Name, a.Timeout, a.Checkpoint, a.CheckpointSet)
		}
	}
	if got := c.Accounts[1].Login.AdminPassword.File; got != filepath.Join(dir, "admin.pw") {
		t.Errorf("bob's admin password file = %q, want the server's", got)
	}
	if err := c.ResolveSecrets(context.Background(), nil, env(map[string]string{"CAROL_PW": "carol-secret"})); err != nil {
		t.Fatalf("ResolveSecrets() error = %v", err)
	}
	for _, a := range c.Accounts {
		if a.Auth == nil || a.Auth.User() != a.Source.User || a.Auth.Method() != a.Login.Method {
			t.Errorf("account %s: Auth = %v", a.Name, a.Auth)
		}
	}
	if who := c.Accounts[1].Auth.Who(); who != "bob (as admin admin)" {
		t.Errorf("bob logs in as %q", who)
	}
}

// TestLoadErrors: every problem is one error naming the file and the line.
func TestLoadErrors(t *testing.T) {
	acct := "[[account]]\nname = \"alice\"\nsource = \"imaps://alice@h\"\narchive = \"/a\"\n"
	tests := []struct {
		name string
		text string
		mode os.FileMode
		env  map[string]string
		line int
		want string
	}{
		{"unknown key", acct + "pasword_file = \"pw\"\n", 0o600, nil, 5, `unknown key "pasword_file" in [[account]]`},
		{"unknown key in defaults", "[defaults]\narchive_rot = \"/x\"\n" + acct, 0o600, nil, 2, `unknown key "archive_rot" in [defaults]`},
		{"unknown table", "[server]\nhost = \"h\"\n", 0o600, nil, 1, `[server] must be written [[server]]`},
		{"other table", "[[accounts]]\n", 0o600, nil, 1, `unknown table [[accounts]]`},
		{"top-level key", "parallel = 4\n" + acct, 0o600, nil, 1, `outside any table`},
		{"dotted key", acct + "password.file = \"pw\"\n", 0o600, nil, 5, `unknown key "password.file"`},
		{"duplicate key", acct + "password_file = \"pw\"\npassword_file = \"pw\"\n", 0o600, nil, 6, `"password_file" is given twice in this [[account]] (first at line 5)`},
		{"duplicate defaults", "[defaults]\n[defaults]\n", 0o600, nil, 2, `[defaults] is given twice (first at line 1)`},
		{"duplicate name", acct + "password_file = \"pw\"\n[[account]]\nname = \"Alice\"\nsource = \"imaps://x@h\"\narchive = \"/b\"\npassword_file = \"pw\"\n", 0o600, nil, 7, `account name "Alice" is given twice (first at line 2`},
		{"shared archive", "[defaults]\narchive_root = \"/r\"\n[[account]]\nname = \"a\"\nsource = \"imaps://a@h\"\npassword_file = \"pw\"\n[[account]]\nname = \"b\"\nsource = \"imaps://b@h\"\narchive = \"/r/a\"\npassword_file = \"pw\"\n", 0o600, nil, 10, `accounts "a" and "b" would share the archive /r/a`},
		{"nested archive", acct + "password_file = \"pw\"\n[[account]]\nname = \"b\"\nsource = \"imaps://b@h\"\narchive = \"/a/inner\"\npassword_file = \"pw\"\n", 0o600, nil, 9, `would share the archive`},
		{"no login", acct, 0o600, nil, 1, `account "alice" has no password (password_file, password_env or password_command) and no admin login`},
		{"server without admin", "[[server]]\nhost = \"h\"\n" + acct, 0o600, nil, 3, `its [[server]] (line 1) has no admin_user`},
		{"inline password", acct + "password = \"hunter2\"\n", 0o600, nil, 5, `password in [[account]] would keep a secret in the configuration file, which is refused: use password_file`},
		{"inline admin password", "[[server]]\nhost = \"h\"\nadmin_user = \"admin\"\nadmin_password = \"x\"\n", 0o600, nil, 4, `admin_password in [[server]] would keep a secret`},
		{"two secret sources", acct + "password_file = \"pw\"\npassword_env = \"PW\"\n", 0o600, map[string]string{"PW": "x"}, 6, `give one of password_file and password_env, not both`},
		{"unset env", acct + "password_env = \"ALICE_PW\"\n", 0o600, nil, 5, `the environment variable ALICE_PW is not set`},
		{"admin without secret", "[[server]]\nhost = \"h\"\nadmin_user = \"admin\"\n" + acct, 0o600, nil, 3, `admin_user "admin" needs its password`},
		{"admin secret without user", "[[server]]\nhost = \"h\"\nadmin_password_file = \"admin.pw\"\n", 0o600, nil, 3, `admin_password_file without admin_user`},
		{"password and admin", acct + "password_file = \"pw\"\nadmin_user = \"root\"\n", 0o600, nil, 6, `gives its own password (password_file, line 5) and an admin login`},
		{"oauth and password", acct + "oauth2_token_file = \"token\"\npassword_file = \"pw\"\n", 0o600, nil, 6, `logs in with OAuth2 (line 5) and takes no password_file`},
		{"wrong type", acct + "password_file = \"pw\"\nconnections = \"4\"\n", 0o600, nil, 6, `connections must be a whole number`},
		{"wrong type string", "[[account]]\nname = 7\n", 0o600, nil, 2, `name must be a string`},
		{"connections range", acct + "password_file = \"pw\"\nconnections = 40\n", 0o600, nil, 6, `connections must be between 1 and 16, not 40`},
		{"bad timeout", "[defaults]\ntimeout = \"soon\"\n" + acct, 0o600, nil, 2, `timeout must be a positive duration`},
		{"bad format", acct + "password_file = \"pw\"\nformat = \"mh\"\n", 0o600, nil, 6, `unknown archive format "mh"`},
		{"password in URL", "[[account]]\nname = \"a\"\nsource = \"imaps://a:pw@h\"\n", 0o600, nil, 3, `a password in the URL is refused`},
		{"no scheme", "[[account]]\nname = \"a\"\nsource = \"a@h\"\n", 0o600, nil, 3, `must name its protocol`},
		{"bad name", "[[account]]\nname = \"../etc\"\n", 0o600, nil, 2, `account name "../etc" must be letters`},
		{"no name", "[[account]]\nsource = \"imaps://a@h\"\n", 0o600, nil, 1, `[[account]] needs name`},
		{"no archive", "[[account]]\nname = \"a\"\nsource = \"imaps://a@h\"\npassword_file = \"pw\"\n", 0o600, nil, 1, `account "a" has no archive`},
		{"duplicate host", "[[server]]\nhost = \"h\"\n[[server]]\nhost = \"H\"\n", 0o600, nil, 4, `host "H" is given twice (first at line 2)`},
		{"host with port", "[[server]]\nhost = \"h:993\"\n", 0o600, nil, 2, `must be a host name only`},
		{"bad max_connections", "[[server]]\nhost = \"h\"\nmax_connections = 0\n", 0o600, nil, 3, `max_connections must be at least 1`},
		{"bad parallel", "[defaults]\nparallel = 0\n", 0o600, nil, 2, `parallel must be between 1 and 256`},
		{"bad auth_mech", acct + "password_file = \"pw\"\nauth_mech = \"cram\"\n", 0o600, nil, 6, `auth_mech: unknown mechanism "cram"`},
		{"auth_mech for admin", "[[server]]\nhost = \"h\"\nadmin_user = \"admin\"\nadmin_password_file = \"admin.pw\"\n" + acct + "auth_mech = \"login\"\n", 0o600, nil, 9, `auth_mech: mechanism LOGIN does not go with an admin login`},
		{"syntax", acct + "password_file = = \"pw\"\n", 0o600, nil, 5, ``},
		{"no accounts", "[defaults]\n", 0o600, nil, 0, `no [[account]]`},
		{"writable by others", acct + "password_file = \"pw\"\n", 0o666, nil, 0, `may be changed by other users (mode 0666)`},
		{"command, readable by others", acct + "password_command = \"pass show alice\"\n", 0o644, nil, 5, `password_command: the file names a command, whose command line may hold a secret, and other users can read the file (mode 0644): chmod 600`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.text, tt.mode)
			_, err := Load(path, env(tt.env))
			checkErr(t, err, path, tt.line, tt.want)
		})
	}
}

func checkErr(t *testing.T, err error, path string, line int, want string) {
	t.Helper()
	if err == nil {
		t.Fatalf("error = nil, want %q at line %d", want, line)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("error %v does not wrap ErrInvalid", err)
	}
	prefix := path + ": "
	if line > 0 {
		prefix = fmt.Sprintf("%s:%d: ", path, line)
	}
	if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), want) {
		t.Errorf("error = %q\nwant prefix %q and %q", err, prefix, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q is more than one line", err)
	}
}

// TestResolveErrors: a missing or exposed secret names the key's line.
func TestResolveErrors(t *testing.T) {
	acct := "[[account]]\nname = \"alice\"\nsource = \"imaps://alice@h\"\narchive = \"/a\"\n"
	tests := []struct {
		name string
		text string
		line int
		want string
	}{
		{"missing file", acct + "password_file = \"nope.pw\"\n", 5, `password_file: stat `},
		{"readable by others", acct + "password_file = \"open.pw\"\n", 5, `holds a secret and other users can read it (mode 0644): chmod 600 `},
		{"failing command", acct + "password_command = \"echo oops >&2; exit 3\"\n", 5, `password_command: password command failed`},
		{"empty command output", acct + "password_command = \"true\"\n", 5, `empty password`},
		{"admin file readable", "[[server]]\nhost = \"h\"\nadmin_user = \"admin\"\nadmin_password_file = \"open.pw\"\n" + acct, 4, `admin_password_file: `},
		{"token file readable", acct + "oauth2_token_file = \"open.pw\"\n", 5, `oauth2_token_file: `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.text, 0o600)
			c, err := Load(path, env(nil))
			if err != nil {
				t.Fatalf("Load() error = %v", err)
			}
			err = c.ResolveSecrets(context.Background(), nil, env(nil))
			checkErr(t, err, path, tt.line, tt.want)
		})
	}
}

// TestGroupReadableWithoutCommand: a file that only references secret
// files and variables may be readable by others.
func TestGroupReadableWithoutCommand(t *testing.T) {
	path := write(t, good, 0o644)
	if _, err := Load(path, env(map[string]string{"CAROL_PW": "x"})); err != nil {
		t.Errorf("Load(0644 file without commands) error = %v", err)
	}
}

// TestSharedSecretReadOnce: a server's admin password command runs once
// for all its accounts.
func TestSharedSecretReadOnce(t *testing.T) {
	dir := t.TempDir()
	count := filepath.Join(dir, "count")
	var b strings.Builder
	fmt.Fprintf(&b, "[defaults]\narchive_root = %q\n[[server]]\nhost = \"h\"\nadmin_user = \"admin\"\nadmin_password_command = \"echo x >> %s; echo pw\"\n", dir, count)
	for i := range 5 {
		fmt.Fprintf(&b, "[[account]]\nname = \"u%d\"\nsource = \"imaps://u%d@h\"\n", i, i)
	}
	path := write(t, b.String(), 0o600)
	c, err := Load(path, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ResolveSecrets(context.Background(), nil, env(nil)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(count)
	if n := strings.Count(string(data), "x"); n != 1 {
		t.Errorf("admin_password_command ran %d times for 5 accounts, want 1", n)
	}
}

// TestExampleParses: the commented example of docs/CONFIG.md and
// contrib/mailvault.toml is a valid file, and both hold the same text.
func TestExampleParses(t *testing.T) {
	root := filepath.Join("..", "..")
	example, err := os.ReadFile(filepath.Join(root, "contrib", "mailvault.toml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "CONFIG.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(doc), "```toml\n"+string(example)+"```") {
		t.Errorf("docs/CONFIG.md does not hold contrib/mailvault.toml as its example (a ```toml block with the same text)")
	}
	path := write(t, string(example), 0o600)
	c, err := Load(path, env(map[string]string{"MAILVAULT_CAROL_PASSWORD": "x"}))
	if err != nil {
		t.Fatalf("Load(contrib/mailvault.toml) error = %v", err)
	}
	if len(c.Accounts) == 0 || len(c.Servers) == 0 {
		t.Errorf("the example has %d accounts and %d servers", len(c.Accounts), len(c.Servers))
	}
	methods := map[auth.Method]bool{}
	for _, a := range c.Accounts {
		methods[a.Login.Method] = true
	}
	for _, m := range []auth.Method{auth.MethodPassword, auth.MethodAdmin, auth.MethodOAuth2} {
		if !methods[m] {
			t.Errorf("the example shows no %s login", m)
		}
	}
}
