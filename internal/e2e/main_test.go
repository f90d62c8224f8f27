package e2e

import (
	"bytes"
	"context"
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

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/testenv"
)

var (
	bin     string // mailvault
	binFail string // mailvault built with failpoints
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "mailvault-e2e")
	if err != nil {
		panic(err)
	}
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	bin = filepath.Join(dir, "mailvault")
	binFail = filepath.Join(dir, "mailvault-failpoint")
	for _, b := range []struct {
		out  string
		tags []string
	}{{bin, nil}, {binFail, []string{"-tags", "failpoint"}}} {
		args := append([]string{"build", "-o", b.out}, b.tags...)
		cmd := exec.Command("go", append(args, "./cmd/mailvault")...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "build mailvault: %v\n%s", err, out)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one finished mailvault process.
type result struct {
	code           int
	stdout, stderr string
	signaled       bool
	maxRSS         int64 // bytes; only meaningful from peakRSS (see testdata/maxrss.py)
	wall           time.Duration
}

// mv runs a mailvault binary with MAILVAULT_PASSWORD set and extra
// environment variables.
func mv(t testing.TB, binary string, env []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append([]string{"MAILVAULT_PASSWORD=pw", "PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	r := result{stdout: out.String(), stderr: errb.String(), wall: time.Since(start)}
	if cmd.ProcessState == nil {
		t.Fatalf("run %s: %v", binary, err)
	}
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	r.code, r.signaled = ws.ExitStatus(), ws.Signaled()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024
	}
	return r
}

// mvTimeout runs mailvault and, if it has not finished after d, makes it
// dump its goroutines (SIGQUIT) and fails the test with the dump.
func mvTimeout(t testing.TB, d time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"MAILVAULT_PASSWORD=pw", "PATH=" + os.Getenv("PATH")}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(d, func() { cmd.Process.Signal(syscall.SIGQUIT) })
	cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("mailvault %v hung for %v:\n%s", args, d, errb.String())
	}
	return result{code: cmd.ProcessState.ExitCode(), stdout: out.String(), stderr: errb.String()}
}

// peakRSS runs mailvault through testdata/maxrss.py, which measures the
// peak RSS of the mailvault process alone, and fails unless it exits 0.
func peakRSS(t testing.TB, args ...string) result {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	script := filepath.Join(filepath.Dir(self), "..", "..", "testdata", "maxrss.py")
	r := mv(t, testenv.RequireTool(t, "python3"), nil, append([]string{script, bin}, args...)...)
	if r.code != 0 {
		t.Fatalf("mailvault %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	i := strings.LastIndex(r.stderr, "MAXRSS_KB=")
	if i < 0 {
		t.Fatalf("no MAXRSS_KB in %q", r.stderr)
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(r.stderr[i+len("MAXRSS_KB="):]), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	r.maxRSS = kb << 10
	return r
}

// mustRun runs mailvault and fails the test unless it exits 0.
func mustRun(t testing.TB, args ...string) result {
	t.Helper()
	r := mv(t, bin, nil, args...)
	if r.code != 0 {
		t.Fatalf("mailvault %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// dovecot starts a Dovecot with users alice and bob (password "pw") and
// loads msgs into alice. It returns the server and a client logged in as
// alice.
func dovecot(t testing.TB, msgs []corpus.Message) (*dovecottest.Server, *imapclient.Client) {
	t.Helper()
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw", "bob": "pw"}})
	c := login(t, srv, "alice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := corpus.Load(ctx, c, msgs); err != nil {
		t.Fatalf("load corpus: %v", err)
	}
	return srv, c
}

func login(t testing.TB, srv *dovecottest.Server, user string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login(user, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// source returns the verified-TLS URL and flags for alice on srv.
func source(srv *dovecottest.Server) []string {
	return []string{"imaps://alice@" + srv.IMAPSAddr, "--ca-file", srv.CAFile}
}
