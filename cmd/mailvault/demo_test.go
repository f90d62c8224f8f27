package main

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/internal/demo"
)

// demoLines are lines every successful demo prints.
var demoLines = []*regexp.Regexp{
	regexp.MustCompile(`(?m)^  server     127\.0\.0\.1:\d+, IMAP over TLS`),
	regexp.MustCompile(`(?m)^1/9  Back up alice's mailbox`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault backup imaps://alice@127\.0\.0\.1:\d+ \S+/vault --ca-file \S+/demo-ca\.pem$`),
	regexp.MustCompile(`(?m)^    snapshot [0-9a-f]{8} complete: 16 folders .* 278 messages added`),
	regexp.MustCompile(`(?m)^  ✓ 278 messages in 16 folders archived`),
	regexp.MustCompile(`(?m)^  ✓ no message body downloaded, nothing stored`),
	regexp.MustCompile(`(?m)^  ✓ 2 messages added, 3 recorded as gone, 1 flag change`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault snapshots \S+/vault$`),
	regexp.MustCompile(`(?m)^  ✓ 3 complete snapshots: [0-9a-f]{8}, [0-9a-f]{8}, [0-9a-f]{8}$`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault ls \S+/vault 日本 --all$`),
	regexp.MustCompile(`(?m)^  ✓ message \d+:\d+, deleted on the server, is listed as gone`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault verify \S+/vault$`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault restore \S+/vault imaps://bob@127\.0\.0\.1:\d+ --ca-file \S+ --deleted-since [0-9a-f]{8} --into Restored$`),
	regexp.MustCompile(`(?m)^  ✓ bob's account holds exactly the 3 deleted messages`),
	regexp.MustCompile(`(?m)^  \$ \S*mailvault restore \S+/vault maildir:\S+/export$`),
	regexp.MustCompile(`(?m)^  ✓ 277 message files in 16 Maildir folders`),
	regexp.MustCompile(`(?m)^Done in .*: all 9 steps ran, and every result was checked byte for byte\.$`),
	regexp.MustCompile(`(?m)^  zstd -dc \S+/vault/folders/INBOX/\*\.mbox\.zst \| less$`),
	regexp.MustCompile(`(?m)^  \S*mailvault ls \S+/vault INBOX --all$`),
}

func checkDemoOutput(t *testing.T, out string) {
	t.Helper()
	for _, re := range demoLines {
		if !re.MatchString(out) {
			t.Errorf("demo output lacks a line matching %s", re)
		}
	}
	if n := len(regexp.MustCompile(`(?m)^  ✓ `).FindAllString(out, -1)); n != 10 {
		t.Errorf("demo output has %d checks (✓); want 10", n)
	}
	if t.Failed() {
		t.Logf("demo output:\n%s", out)
	}
}

// The demo through the command line, in-process: exit 0, every step, and
// the archive and the export left in DIR.
func TestDemoCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	start := time.Now()
	code, out, errs := runCLI(t, nil, "demo", dir)
	t.Logf("demo took %s", time.Since(start))
	if code != 0 {
		t.Fatalf("demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	checkDemoOutput(t, out)
	if !strings.Contains(out, "  directory  "+dir+"\n") {
		t.Errorf("demo output does not name its directory %s", dir)
	}
	for _, p := range []string{"vault/mailvault.json", "export/cur", "demo-ca.pem"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("after the demo: %v", err)
		}
	}
	// What the demo points at works.
	if code, out, errs := runCLI(t, nil, "verify", filepath.Join(dir, "vault")); code != 0 {
		t.Errorf("verify of the demo's archive: exit %d %s %s", code, out, errs)
	}
}

// The passwords are never printed, never in a file the demo leaves.
func TestDemoKeepsPasswordsSecret(t *testing.T) {
	dir := t.TempDir()
	var passwords []string
	o := demo.Options{Dir: dir, AfterCommand: func(step string, f *demo.Fixture) error {
		if passwords == nil {
			for _, p := range f.Passwords {
				passwords = append(passwords, p)
			}
		}
		return nil
	}}
	var out, errs bytes.Buffer
	if err := runDemo(context.Background(), o, &env{stdout: &out, stderr: &errs, getenv: os.Getenv}); err != nil {
		t.Fatalf("demo: %v\n%s%s", err, out.String(), errs.String())
	}
	if len(passwords) != 2 {
		t.Fatalf("hooks saw %d passwords; want 2", len(passwords))
	}
	for _, pw := range passwords {
		if len(pw) < 16 {
			t.Errorf("password %d characters long; want a random one", len(pw))
		}
		if strings.Contains(out.String(), pw) || strings.Contains(errs.String(), pw) {
			t.Errorf("a password was printed")
		}
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil || e.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err == nil && bytes.Contains(data, []byte(pw)) {
				t.Errorf("file %s holds a password", p)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// The demo as a built binary, without DIR: it makes a temporary directory
// and says where.
func TestDemoBinary(t *testing.T) {
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin", "mailvault")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "demo")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + tmp, "TMPDIR=" + tmp, "MAILVAULT_PASSWORD=not-this-one"}
	var out, errs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errs
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo binary took %s", time.Since(start))
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errs.String())
	}
	checkDemoOutput(t, out.String())
	m := regexp.MustCompile(`(?m)^  directory  (\S+) \(a new temporary directory\)$`).FindStringSubmatch(out.String())
	if m == nil || filepath.Dir(m[1]) != tmp {
		t.Fatalf("demo output does not name a new directory in %s:\n%s", tmp, out.String())
	}
	if _, err := os.Stat(filepath.Join(m[1], "vault", "mailvault.json")); err != nil {
		t.Errorf("the archive is not where the demo says: %v", err)
	}
	// The printed commands name the program as it was run.
	if !strings.Contains(out.String(), "  $ "+bin+" backup imaps://alice@127.0.0.1:") {
		t.Errorf("the printed commands do not start with %s", bin)
	}
}

func TestDemoUsage(t *testing.T) {
	full := t.TempDir()
	mine := filepath.Join(full, "mine.txt")
	if err := os.WriteFile(mine, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"non-empty DIR", []string{"demo", full}, "is not empty"},
		{"two DIRs", []string{"demo", "a", "b"}, "usage: mailvault demo [DIR]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, nil, tc.args...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
				t.Errorf("stdout %q, stderr %q; want nothing and one line with %q", out, errs, tc.want)
			}
		})
	}
	if data, err := os.ReadFile(mine); err != nil || string(data) != "keep me" {
		t.Errorf("the file in the refused DIR: %q, %v", data, err)
	}
	if entries, _ := os.ReadDir(full); len(entries) != 1 {
		t.Errorf("the refused DIR holds %d entries; want only the file it had", len(entries))
	}
}

// The demo checks itself: with a fault injected at one step, it stops
// there, exits non-zero and names the step.
func TestDemoSelfCheckFails(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before bool // inject before the step's command, else after
		step   string
		fault  func(t *testing.T, f *demo.Fixture) error
		want   string
	}{
		{"server loses a message", true, demo.StepBackup1, expungeOne(demo.Source, "INBOX"),
			"demo step 1 of 9 (first backup) failed: the archive: folder \"INBOX\" lacks message"},
		{"archive damaged", false, demo.StepBackup1, damageSegment,
			"demo step 1 of 9 (first backup) failed: read INBOX"},
		{"another client changes the server", true, demo.StepBackup2, expungeOne(demo.Source, "Sent"),
			"demo step 2 of 9 (second backup) failed"},
		{"a restored message altered", false, demo.StepRestore, alterOne(demo.Second),
			"demo step 8 of 9 (restore) failed: bob's account: folder"},
		{"an exported file altered", false, demo.StepExport, alterExport,
			"demo step 9 of 9 (maildir export) failed: export folder"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hook := func(step string, f *demo.Fixture) error {
				if step != tc.step {
					return nil
				}
				return tc.fault(t, f)
			}
			o := demo.Options{Dir: t.TempDir()}
			if tc.before {
				o.BeforeCommand = hook
			} else {
				o.AfterCommand = hook
			}
			var out, errs bytes.Buffer
			err := runDemo(context.Background(), o, &env{stdout: &out, stderr: &errs, getenv: os.Getenv})
			var se *demo.StepError
			if !errors.As(err, &se) || se.Name != tc.step {
				t.Fatalf("demo error = %v, want a failure of step %q\n%s", err, tc.step, out.String())
			}
			if code := exitCode(err); code != exitError {
				t.Errorf("exit code %d, want %d", code, exitError)
			}
			if msg := oneLine(err); !strings.Contains(msg, tc.want) {
				t.Errorf("error %q, want it to contain %q", msg, tc.want)
			}
			if strings.Contains(out.String(), "Done in") {
				t.Errorf("the demo says it is done after a failed step")
			}
		})
	}
}

// expungeOne removes the first message of a folder, behind the demo's back.
func expungeOne(user, folder string) func(t *testing.T, f *demo.Fixture) error {
	return func(t *testing.T, f *demo.Fixture) error {
		c, err := f.Server.Dial(user, f.Passwords[user])
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.Select(folder, nil).Wait(); err != nil {
			return err
		}
		if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			return err
		}
		return c.Expunge().Close()
	}
}

// alterOne replaces a message below Restored/ with a copy one byte off.
func alterOne(user string) func(t *testing.T, f *demo.Fixture) error {
	return func(t *testing.T, f *demo.Fixture) error {
		c, err := f.Server.Dial(user, f.Passwords[user])
		if err != nil {
			return err
		}
		defer c.Close()
		list, err := c.List("", "Restored/*", nil).Collect()
		if err != nil {
			return err
		}
		for _, l := range list {
			data, err := c.Select(l.Mailbox, nil).Wait()
			if err != nil {
				return err
			}
			if data.NumMessages == 0 {
				continue
			}
			msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil || len(msgs) != 1 || len(msgs[0].BodySection) != 1 {
				t.Fatalf("fetch from %s: %v", l.Mailbox, err)
			}
			body := bytes.Clone(msgs[0].BodySection[0].Bytes)
			body[len(body)-3] ^= 1
			app := c.Append(l.Mailbox, int64(len(body)), &imap.AppendOptions{Flags: msgs[0].Flags})
			if _, err := app.Write(body); err != nil {
				return err
			}
			if err := app.Close(); err != nil {
				return err
			}
			if _, err := app.Wait(); err != nil {
				return err
			}
			if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
				return err
			}
			return c.Expunge().Close()
		}
		t.Fatal("no restored message to alter")
		return nil
	}
}

// damageSegment flips a byte in the middle of an INBOX segment.
func damageSegment(t *testing.T, f *demo.Fixture) error {
	segs, err := filepath.Glob(filepath.Join(f.Dir, "vault", "folders", "INBOX", "*.mbox.zst"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no INBOX segment: %v", err)
	}
	return flipByte(segs[0])
}

// alterExport flips a byte in a message file of the Maildir export.
func alterExport(t *testing.T, f *demo.Fixture) error {
	files, err := filepath.Glob(filepath.Join(f.Dir, "export", "cur", "*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no exported file: %v", err)
	}
	return flipByte(files[0])
}

func flipByte(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	data[len(data)/2] ^= 0x20
	return os.WriteFile(path, data, 0o600)
}

// An interrupt (the end of the context) stops the demo with the
// context's error (exit 130), not as a failed step.
func TestDemoInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	o := demo.Options{Dir: t.TempDir(), AfterCommand: func(step string, f *demo.Fixture) error {
		if step == demo.StepBackup2 {
			cancel()
			return context.Canceled
		}
		return nil
	}}
	var out, errs bytes.Buffer
	err := runDemo(ctx, o, &env{stdout: &out, stderr: &errs, getenv: os.Getenv})
	if !errors.Is(err, context.Canceled) || exitCode(err) != exitInterrupted {
		t.Errorf("demo error = %v (exit %d), want context.Canceled (exit %d)", err, exitCode(err), exitInterrupted)
	}
}
