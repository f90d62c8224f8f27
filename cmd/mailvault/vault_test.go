package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/pop3test"
)

// readOnlyDir makes dir read-only for this process for the rest of the
// test, the way it works here: a read-only bind mount (root with mount
// rights), else the immutable attribute (root on ext4 and the like), else
// permissions (anyone else). It says which, and fails the test when none
// works: tests run as root in CI, where permissions alone do not stop
// writes.
func readOnlyDir(t *testing.T, dir string) string {
	t.Helper()
	writable := func() bool {
		f, err := os.CreateTemp(dir, "probe")
		if err != nil {
			return false
		}
		f.Close()
		os.Remove(f.Name())
		return true
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); err == nil {
		if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY, ""); err == nil && !writable() {
			t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
			return "read-only bind mount"
		}
		unix.Unmount(dir, unix.MNT_DETACH)
	}
	if out, err := exec.Command("chattr", "-R", "+i", dir).CombinedOutput(); err == nil {
		t.Cleanup(func() { exec.Command("chattr", "-R", "-i", dir).Run() })
		if !writable() {
			return "immutable (chattr +i)"
		}
	} else {
		t.Logf("chattr +i: %v %s", err, out)
	}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			os.Chmod(p, 0o555)
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil {
				os.Chmod(p, 0o700)
			}
			return nil
		})
	})
	if !writable() {
		return "chmod 0555"
	}
	t.Fatalf("cannot make %s read-only here (no bind mount, no chattr, running as uid %d)", dir, os.Getuid())
	return ""
}

// TestUnwritableArchive: an archive that cannot be written is exit 8, the
// code for "cannot write the archive", whether it is new or existing.
func TestUnwritableArchive(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{})
	roParent := t.TempDir()
	how := readOnlyDir(t, roParent)
	t.Logf("read-only directory by %s", how)
	existing := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", url, existing, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	t.Logf("existing archive read-only by %s", readOnlyDir(t, existing))
	for _, tt := range []struct{ name, vault, want string }{
		{"under /proc", "/proc/vault", "/proc/vault"},
		{"in a read-only directory", filepath.Join(roParent, "vault"), "vault"},
		{"a read-only archive", existing, "cannot write the archive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, pwEnv, "backup", url, tt.vault, "--insecure-plaintext")
			if code != exitStorage || !strings.Contains(errs, tt.want) || strings.Count(errs, "\n") != 1 {
				t.Errorf("exit %d, stderr %q, stdout %q; want %d, one line naming %q", code, errs, out, exitStorage, tt.want)
			}
		})
	}
}

// TestFailedFirstRunLeavesNoArchive: a first run that cannot reach or log
// in to the source creates nothing; a failed run on an existing archive
// leaves it byte for byte as it was.
func TestFailedFirstRunLeavesNoArchive(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{})
	tlsSrv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}, TLS: true, RequireTLS: true, ImplicitTLS: true})
	pop := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw"})
	closed := closedAddr(t)
	failures := []struct {
		name string
		args []string
		env  map[string]string
		code int
	}{
		{"wrong password", []string{url, "--insecure-plaintext"}, map[string]string{"MAILVAULT_PASSWORD": "nope"}, exitAuth},
		{"wrong POP3 password", []string{"pop3://alice@" + pop.Addr, "--insecure-plaintext"}, map[string]string{"MAILVAULT_PASSWORD": "nope"}, exitAuth},
		{"port closed", []string{"imap://alice@" + closed, "--insecure-plaintext"}, pwEnv, exitConnect},
		{"unknown host", []string{"imaps://alice@nonexistent.invalid", "--timeout", "5s"}, pwEnv, exitConnect},
		{"untrusted certificate", []string{"imaps://alice@" + tlsSrv.TLSAddr}, pwEnv, exitConnect},
		{"bare user@host, nothing answers", []string{"alice@" + closed, "--timeout", "5s"}, pwEnv, exitConnect},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			parent := t.TempDir()
			vault := filepath.Join(parent, "sub", "vault")
			code, out, errs := runCLI(t, tt.env, append([]string{"backup", tt.args[0], vault}, tt.args[1:]...)...)
			if code != tt.code {
				t.Fatalf("exit %d, stderr %q stdout %q; want %d", code, errs, out, tt.code)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Errorf("a failed first run left %v in %s", entries, parent)
			}
			// An empty directory given by the user stays empty.
			empty := filepath.Join(parent, "empty")
			os.Mkdir(empty, 0o700)
			if code, _, _ := runCLI(t, tt.env, append([]string{"backup", tt.args[0], empty}, tt.args[1:]...)...); code != tt.code {
				t.Errorf("into an empty directory: exit %d, want %d", code, tt.code)
			}
			if entries, _ := os.ReadDir(empty); len(entries) != 0 {
				t.Errorf("a failed first run left %v in the empty directory", entries)
			}
		})
	}

	// An existing archive is left as it was.
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	before := treeDigest(t, vault)
	for _, tt := range failures {
		if strings.HasPrefix(tt.name, "bare") || strings.Contains(tt.name, "POP3") {
			continue // another identity, refused before anything is tried
		}
		code, out, errs := runCLI(t, tt.env, append([]string{"backup", tt.args[0], vault, "--allow-source-change"}, tt.args[1:]...)...)
		if code != tt.code {
			t.Errorf("%s on an existing archive: exit %d %s %s, want %d", tt.name, code, out, errs, tt.code)
		}
		if after := treeDigest(t, vault); after != before {
			t.Errorf("%s changed the existing archive:\n%s\nwas\n%s", tt.name, after, before)
		}
	}
}

// treeDigest lists every file under root with its size and SHA-256.
func treeDigest(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			fmt.Fprintf(&b, "%s/\n", rel)
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		fmt.Fprintf(&b, "%s %d %s\n", rel, len(data), hex.EncodeToString(sum[:8]))
		return nil
	})
	return b.String()
}

func configSource(t *testing.T, vault string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(vault, formats.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Source map[string]string `json:"source"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.Source
}

// TestArchiveBoundToSource: an archive records whose mailbox it holds and
// refuses another unless told that the mailbox moved.
func TestArchiveBoundToSource(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw", "bob": "pw"}})
	for _, u := range []string{"alice", "bob"} {
		c := srv.Dial(t, u, "pw")
		imaptest.Append(t, c, "INBOX", nil, time.Now(), []byte("Subject: mail of "+u+"\r\n\r\nbody\r\n"))
	}
	alice, bob := "imap://alice@"+srv.Addr, "imap://bob@"+srv.Addr
	vault := filepath.Join(t.TempDir(), "vault")
	backup := func(src string, extra ...string) (int, string, string) {
		return runCLI(t, pwEnv, append([]string{"backup", src, vault, "--insecure-plaintext"}, extra...)...)
	}
	if code, out, errs := backup(alice); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	host, _, _ := net.SplitHostPort(srv.Addr)
	if got := configSource(t, vault); got["scheme"] != "imap" || got["host"] != host || got["user"] != "alice" || len(got) != 3 {
		t.Errorf("mailvault.json source = %v, want scheme imap, host %s, user alice and nothing else", got, host)
	}
	if data, _ := os.ReadFile(filepath.Join(vault, formats.ConfigFile)); strings.Contains(string(data), "pw") {
		t.Errorf("mailvault.json holds the password: %s", data)
	}
	before := treeDigest(t, vault)
	code, out, errs := backup(bob)
	if code != exitUsage || !strings.Contains(errs, "alice") || !strings.Contains(errs, "bob") || !strings.Contains(errs, "--allow-source-change") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("bob into alice's archive: exit %d %q %q; want %d, one line naming both and --allow-source-change", code, out, errs, exitUsage)
	}
	if treeDigest(t, vault) != before {
		t.Errorf("a refused run changed the archive")
	}
	for _, c := range srv.Commands() {
		if strings.Contains(c, "bob") {
			t.Errorf("the refused run logged in as bob: %q", c)
		}
	}
	// The same mailbox by another port or protocol is the same mailbox.
	if code, out, errs := runCLI(t, pwEnv, "backup", "alice@"+srv.Addr, vault, "--insecure-plaintext", "--protocol", "imap"); code != 0 {
		t.Errorf("alice again, as a bare user@host: %d %s %s", code, out, errs)
	}
	// A server move of the same mailbox, said so: accepted and recorded.
	if code, out, errs := backup(bob, "--allow-source-change"); code != 0 {
		t.Fatalf("--allow-source-change: %d %s %s", code, out, errs)
	}
	if got := configSource(t, vault); got["user"] != "bob" {
		t.Errorf("after --allow-source-change the archive records %v, want bob", got)
	}
	if code, _, _ := backup(alice); code != exitUsage {
		t.Errorf("alice into what is now bob's archive: exit %d, want %d", code, exitUsage)
	}

	// An archive written before identities were recorded: the identity of
	// its last snapshot is checked, and the next run records it.
	cfgPath := filepath.Join(vault, formats.ConfigFile)
	var cfg map[string]any
	data, _ := os.ReadFile(cfgPath)
	json.Unmarshal(data, &cfg)
	delete(cfg, "source")
	data, _ = json.MarshalIndent(cfg, "", "  ")
	os.WriteFile(cfgPath, data, 0o600)
	if code, _, errs := backup(alice); code != exitUsage || !strings.Contains(errs, "bob") {
		t.Errorf("alice into an old archive of bob: exit %d %q, want %d", code, errs, exitUsage)
	}
	if code, out, errs := backup(bob); code != 0 {
		t.Fatalf("bob into his old archive: %d %s %s", code, out, errs)
	}
	if got := configSource(t, vault); got["user"] != "bob" {
		t.Errorf("an old archive's next run recorded %v, want bob", got)
	}

	// POP3 of the same user on the same host is the same mailbox.
	pop := pop3test.Start(t, pop3test.Options{User: "bob", Password: "pw", Messages: popMessages(1)})
	if code, out, errs := runCLI(t, pwEnv, "backup", "pop3://bob@"+pop.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Errorf("bob over POP3 into bob's IMAP archive: %d %s %s", code, out, errs)
	}

	// Local sources are identified by their absolute path.
	dir := t.TempDir()
	for _, n := range []string{"a.mbox", "b.mbox"} {
		os.WriteFile(filepath.Join(dir, n), []byte("From x@y Mon Jan  2 15:04:05 2006\nSubject: "+n+"\n\nbody\n"), 0o600)
	}
	local := filepath.Join(t.TempDir(), "local")
	if code, out, errs := runCLI(t, nil, "backup", "mbox:"+filepath.Join(dir, "a.mbox"), local); code != 0 {
		t.Fatalf("local backup: %d %s %s", code, out, errs)
	}
	if got := configSource(t, local); got["scheme"] != "mbox" || got["path"] != filepath.Join(dir, "a.mbox") {
		t.Errorf("local source recorded as %v", got)
	}
	if code, _, errs := runCLI(t, nil, "backup", "mbox:"+filepath.Join(dir, "b.mbox"), local); code != exitUsage || !strings.Contains(errs, "a.mbox") {
		t.Errorf("another mbox into the archive: exit %d %q, want %d", code, errs, exitUsage)
	}
	if code, _, errs := runCLI(t, pwEnv, "backup", alice, local, "--insecure-plaintext"); code != exitUsage {
		t.Errorf("an IMAP account into a local archive: exit %d %q, want %d", code, errs, exitUsage)
	}
	if code, out, errs := runCLI(t, nil, "backup", "mbox:"+filepath.Join(dir, "b.mbox"), local, "--allow-source-change"); code != 0 {
		t.Errorf("--allow-source-change for a local source: %d %s %s", code, out, errs)
	}
}

func TestSameMailbox(t *testing.T) {
	id := func(scheme, host, user, path string) formats.SourceIdentity {
		return formats.SourceIdentity{Scheme: scheme, Host: host, User: user, Path: path}
	}
	tests := []struct {
		a, b formats.SourceIdentity
		same bool
	}{
		{id("imaps", "mail.example.com", "alice", ""), id("imaps", "mail.example.com", "alice", ""), true},
		{id("imaps", "mail.example.com", "alice", ""), id("imap", "MAIL.example.com.", "alice", ""), true},
		{id("imaps", "mail.example.com", "alice", ""), id("pop3s", "mail.example.com", "alice", ""), true},
		{id("imaps", "mail.example.com", "alice", ""), id("imaps", "mail.example.com", "bob", ""), false},
		{id("imaps", "mail.example.com", "alice", ""), id("imaps", "new.example.com", "alice", ""), false},
		{id("mbox", "", "", "/a"), id("mbox", "", "", "/a"), true},
		{id("mbox", "", "", "/a"), id("maildir", "", "", "/a"), false},
		{id("mbox", "", "", "/a"), id("mbox", "", "", "/b"), false},
		{id("mbox", "", "", "/a"), id("imaps", "a", "a", ""), false},
	}
	for _, tt := range tests {
		if got := sameMailbox(tt.a, tt.b); got != tt.same {
			t.Errorf("sameMailbox(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.same)
		}
	}
	if code := exitCode(fmt.Errorf("backup: %w", errSourceChanged)); code != exitUsage {
		t.Errorf("exitCode(source changed) = %d, want %d", code, exitUsage)
	}
}
