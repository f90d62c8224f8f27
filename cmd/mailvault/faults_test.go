package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

func fakeMessages(n int, prefix string) []imaptest.FakeMessage {
	var out []imaptest.FakeMessage
	for i := 1; i <= n; i++ {
		body := fmt.Sprintf("Subject: %s %d\r\nMessage-ID: <%s%d@x>\r\n\r\nFrom the body %d\r\n%s\r\n", prefix, i, prefix, i, i, strings.Repeat("x", i*100))
		out = append(out, imaptest.FakeMessage{UID: imap.UID(i * 2), Flags: []string{`\Seen`}, Body: []byte(body)})
	}
	return out
}

func fakeServer(t *testing.T, o imaptest.FakeOptions) (*imaptest.Fake, string) {
	t.Helper()
	o.User, o.Password = "alice", "pw"
	if o.Folders == nil {
		o.Folders = map[string][]imaptest.FakeMessage{
			"INBOX":   fakeMessages(5, "inbox"),
			"Archive": fakeMessages(3, "archive"),
			"Work":    fakeMessages(4, "work"),
		}
	}
	f := imaptest.StartFake(t, o)
	return f, "imap://alice@" + f.Addr
}

var pwEnv = map[string]string{"MAILVAULT_PASSWORD": "pw"}

// readFake reads the fake server's mailbox with a well-behaved session.
func readFake(t *testing.T, f *imaptest.Fake) map[string][]imaptest.ServerMessage {
	t.Helper()
	c, err := imapclient.DialInsecure(f.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	return imaptest.ReadServer(t, c)
}

func TestFaults(t *testing.T) {
	tests := []struct {
		name     string
		opts     imaptest.FakeOptions
		env      map[string]string
		extra    []string
		wantCode int
		wantErr  string
		check    func(t *testing.T, vault string, f *imaptest.Fake)
	}{
		{
			name: "wrong password", env: map[string]string{"MAILVAULT_PASSWORD": "nope"},
			wantCode: exitAuth, wantErr: "authentication failed for alice",
		},
		{
			name: "no password", env: map[string]string{},
			wantCode: exitAuth, wantErr: "no password",
		},
		{
			name: "password file missing", env: map[string]string{}, extra: []string{"--password-file", "/nonexistent/mailvault.pw"},
			wantCode: exitAuth, wantErr: "password file: stat /nonexistent/mailvault.pw",
		},
		{
			name: "password command fails", env: map[string]string{}, extra: []string{"--password-command", "exit 3"},
			wantCode: exitAuth, wantErr: "password command failed",
		},
		{
			name: "greeting never comes", opts: imaptest.FakeOptions{HangAt: "greeting"}, extra: []string{"--timeout", "1s"},
			wantCode: exitConnect, wantErr: "server did not answer in time",
		},
		{
			name: "server hangs at LIST", opts: imaptest.FakeOptions{HangAt: "list"}, extra: []string{"--timeout", "1s"},
			wantCode: exitConnect, wantErr: "no answer for 1s during list folders",
		},
		{
			name: "server hangs mid-body every time", opts: imaptest.FakeOptions{HangAt: "fetch"}, extra: []string{"--timeout", "1s"},
			wantCode: exitPartial, wantErr: "no answer for 1s",
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				// Nothing half-stored; the archive verifies.
				if code, out, _ := runCLI(t, pwEnv, "verify", vault); code != 0 {
					t.Errorf("verify after a hang: %d %s", code, out)
				}
			},
		},
		{
			name: "server hangs once mid-body, reconnect resumes", opts: imaptest.FakeOptions{HangAt: "fetch", HangOnce: true}, extra: []string{"--timeout", "1s"},
			wantCode: exitOK,
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				archivetest.MatchesServer(t, vault, readFake(t, f))
			},
		},
		{
			name: "connection cut mid-body every time", opts: imaptest.FakeOptions{CutAt: "fetch"},
			wantCode: exitPartial, wantErr: "server closed the connection",
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				// The cut message is not stored, not even in part; what was
				// stored is byte-exact.
				if got := archivetest.Present(t, vault); got["INBOX"] != 0 {
					t.Errorf("archived %v, want nothing from INBOX", got)
				}
				if code, out, _ := runCLI(t, pwEnv, "verify", vault); code != 0 {
					t.Errorf("verify: %d %s", code, out)
				}
			},
		},
		{
			name: "connection cut mid-body once", opts: imaptest.FakeOptions{CutAt: "fetch", HangOnce: true},
			wantCode: exitOK,
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				archivetest.MatchesServer(t, vault, readFake(t, f))
				if code, out, _ := runCLI(t, pwEnv, "verify", vault); code != 0 {
					t.Errorf("verify: %d %s", code, out)
				}
			},
		},
		{
			name: "one folder fails", opts: imaptest.FakeOptions{FailFolder: "Archive"},
			wantCode: exitPartial, wantErr: `folder "Archive"`,
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				got := archivetest.Present(t, vault)
				if got["INBOX"] != 5 || got["Work"] != 4 || got["Archive"] != 0 {
					t.Errorf("archived %v, want INBOX and Work complete, Archive empty", got)
				}
				code, out, _ := runCLI(t, pwEnv, "snapshots", vault)
				if code != 0 || !strings.Contains(out, "partial") {
					t.Errorf("snapshots = %q, want a partial snapshot", out)
				}
			},
		},
		{
			name: "UID after the body literal", opts: imaptest.FakeOptions{UIDAfterLiteral: true},
			wantCode: exitOK,
			check: func(t *testing.T, vault string, f *imaptest.Fake) {
				archivetest.MatchesServer(t, vault, readFake(t, f))
				if code, out, _ := runCLI(t, pwEnv, "verify", vault); code != 0 {
					t.Errorf("verify: %d %s", code, out)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := fakeServer(t, tt.opts)
			before := map[string]map[imap.UID][]string{}
			for _, folder := range []string{"INBOX", "Archive", "Work"} {
				before[folder] = f.Flags(folder)
			}
			vault := filepath.Join(t.TempDir(), "vault")
			env := tt.env
			if env == nil {
				env = pwEnv
			}
			start := time.Now()
			code, out, errs := runCLI(t, env, append([]string{"backup", url, vault, "--insecure-plaintext"}, tt.extra...)...)
			if code != tt.wantCode {
				t.Fatalf("exit code %d, want %d; stdout %q stderr %q", code, tt.wantCode, out, errs)
			}
			if time.Since(start) > 20*time.Second {
				t.Errorf("took %v: the watchdog did not fire", time.Since(start))
			}
			lastLine := strings.TrimSpace(errs[strings.LastIndex(strings.TrimRight(errs, "\n"), "\n")+1:])
			if tt.wantErr != "" && !strings.Contains(lastLine, tt.wantErr) {
				t.Errorf("error line %q, want it to contain %q", lastLine, tt.wantErr)
			}
			if strings.Contains(errs, "pw\n") || strings.Contains(out+errs, "nope") {
				t.Errorf("output repeats the password: %q", errs)
			}
			for folder, fl := range before {
				if fmt.Sprint(f.Flags(folder)) != fmt.Sprint(fl) {
					t.Errorf("folder %s: flags changed by the backup: %v -> %v", folder, fl, f.Flags(folder))
				}
			}
			if tt.check != nil {
				tt.check(t, vault, f)
			}
		})
	}
}

func TestUsageAndArchiveErrors(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{})
	dir := t.TempDir()
	vault := filepath.Join(dir, "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	closed := func() string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := l.Addr().String()
		l.Close()
		return addr
	}()
	manifests, _ := filepath.Glob(filepath.Join(vault, "snapshots", "*.json"))
	notEmpty := filepath.Join(dir, "notempty")
	os.MkdirAll(notEmpty, 0o700)
	os.WriteFile(filepath.Join(notEmpty, "x"), []byte("x"), 0o600)

	tests := []struct {
		name    string
		setup   func(t *testing.T)
		args    []string
		code    int
		wantErr string
	}{
		{"password in URL", nil, []string{"backup", "imaps://alice:hunter2@example.com", vault}, exitUsage, "password in the URL is refused"},
		{"password flag", nil, []string{"backup", url, vault, "--password", "hunter2"}, exitUsage, "--password is refused"},
		{"missing argument", nil, []string{"backup", url}, exitUsage, "usage: mailvault backup SOURCE ARCHIVE"},
		{"unknown flag", nil, []string{"backup", url, vault, "--frobnicate"}, exitUsage, "frobnicate"},
		{"bad connections", nil, []string{"backup", url, vault, "--connections", "0"}, exitUsage, "--connections must be between 1 and 16"},
		{"bad format", nil, []string{"backup", url, vault, "--format", "mh"}, exitUsage, `unknown archive format "mh"`},
		{"compression change", nil, []string{"backup", url, vault, "--compress", "none"}, exitUsage, "was created with --format mbox --compress zstd; a run cannot change it"},
		{"bad scheme", nil, []string{"backup", "ftp://alice@host", vault}, exitUsage, "unsupported URL scheme"},
		{"unreachable host", nil, []string{"backup", "imap://alice@" + closed, vault, "--insecure-plaintext", "--timeout", "2s"}, exitConnect, "cannot connect to " + closed},
		{"not an archive", nil, []string{"backup", url, notEmpty, "--insecure-plaintext"}, exitArchive, "not a mailvault archive"},
		{"locked archive", func(t *testing.T) {
			a, _ := formats.Open(vault)
			if err := a.Lock("test"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Unlock)
		}, []string{"backup", url, vault, "--insecure-plaintext"}, exitLocked, "archive is locked by another run (pid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup(t)
			}
			code, out, errs := runCLI(t, pwEnv, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.wantErr) {
				t.Errorf("exit %d, stderr %q (stdout %q); want %d and %q", code, errs, out, tt.code, tt.wantErr)
			}
			if strings.Count(errs, "mailvault: ") != 1 || strings.Contains(errs, "level=") {
				t.Errorf("error output is not one line: %q", errs)
			}
			if strings.Contains(errs, "hunter2") {
				t.Errorf("error output repeats the password: %q", errs)
			}
		})
	}

	// Damaged archives: a reader refuses them with exit 6.
	orig, _ := os.ReadFile(manifests[0])
	damage := []struct {
		name, want string
		data       []byte
	}{
		{"truncated manifest", "corrupt", orig[:len(orig)/2]},
		{"newer manifest", "newer mailvault", []byte(strings.Replace(string(orig), fmt.Sprintf(`"mailvault_manifest":%d`, formats.ManifestVersion2), `"mailvault_manifest":9`, 1))},
	}
	for _, d := range damage {
		os.WriteFile(manifests[0], d.data, 0o600)
		for _, cmd := range [][]string{{"backup", url, vault, "--insecure-plaintext"}, {"ls", vault}, {"verify", vault}, {"snapshots", vault}} {
			code, _, errs := runCLI(t, pwEnv, cmd...)
			if code != exitArchive || !strings.Contains(errs, d.want) {
				t.Errorf("%s: %s exit %d, stderr %q; want %d mentioning %q", d.name, cmd[0], code, errs, exitArchive, d.want)
			}
		}
	}
	os.WriteFile(manifests[0], orig, 0o600)
	cfg := filepath.Join(vault, formats.ConfigFile)
	data, _ := os.ReadFile(cfg)
	os.WriteFile(cfg, []byte(strings.Replace(string(data), fmt.Sprintf(`"version": %d`, formats.FormatVersion), `"version": 7`, 1)), 0o600)
	if code, _, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext"); code != exitArchive || !strings.Contains(errs, "upgrade mailvault") {
		t.Errorf("newer archive format: exit %d %q, want %d and advice to upgrade", code, errs, exitArchive)
	}
}

func TestTLS(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}, TLS: true, RequireTLS: true, ImplicitTLS: true})
	vault := filepath.Join(t.TempDir(), "vault")
	for _, tt := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"implicit TLS, untrusted", []string{"backup", "imaps://alice@" + srv.TLSAddr, vault}, exitConnect, "TLS verification failed"},
		{"STARTTLS, untrusted", []string{"backup", "imap://alice@" + srv.Addr, vault}, exitConnect, "TLS verification failed"},
		{"implicit TLS with --ca-file", []string{"backup", "imaps://alice@" + srv.TLSAddr, vault, "--ca-file", srv.CAFile}, exitOK, ""},
		{"STARTTLS with --ca-file", []string{"backup", "imap://alice@" + srv.Addr, vault, "--ca-file", srv.CAFile}, exitOK, ""},
		{"skip verify warns", []string{"backup", "imaps://alice@" + srv.TLSAddr, vault, "--tls-skip-verify"}, exitOK, "--tls-skip-verify"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, pwEnv, tt.args...)
			if code != tt.code || !strings.Contains(errs, tt.want) {
				t.Errorf("exit %d stderr %q stdout %q; want %d and %q", code, errs, out, tt.code, tt.want)
			}
		})
	}
}

func TestReorderArgs(t *testing.T) {
	app := newApp(nil, nil)
	tests := []struct{ in, want string }{
		{"mailvault backup URL DIR --timeout 5s -q", "mailvault backup --timeout 5s -q -- URL DIR"},
		{"mailvault backup --timeout=5s URL DIR", "mailvault backup --timeout=5s -- URL DIR"},
		{"mailvault ls DIR INBOX --all", "mailvault ls --all -- DIR INBOX"},
		{"mailvault cat DIR -- --odd-folder KEY", "mailvault cat -- DIR --odd-folder KEY"},
		{"mailvault --help", "mailvault --help"},
		{"mailvault --cpuprofile /tmp/p backup URL DIR -q", "mailvault --cpuprofile /tmp/p backup -q -- URL DIR"},
	}
	for _, tt := range tests {
		got := strings.Join(reorderArgs(app, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("reorderArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
