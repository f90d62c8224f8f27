package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestBackupThrottled: the server's requests to slow down, as Microsoft
// 365 and RFC 5530 servers send them, are waited for and the run
// completes with every message.
func TestBackupThrottled(t *testing.T) {
	tests := []struct {
		name   string
		answer func(conn int, name string, n int) string
		wait   time.Duration
	}{
		{"Microsoft BAD and BYE on UID FETCH", func(_ int, name string, n int) string {
			if name == "UID FETCH" && n == 2 {
				return "BAD Request is throttled. Suggested Backoff Time: 400 milliseconds\r\n* BYE Connection closed. 14"
			}
			return ""
		}, 400 * time.Millisecond},
		{"NO [UNAVAILABLE] on EXAMINE", func(_ int, name string, n int) string {
			if name == "EXAMINE" && n == 1 {
				return "NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 300 milliseconds"
			}
			return ""
		}, 300 * time.Millisecond},
		{"throttled LOGIN", func(_ int, name string, n int) string {
			if name == "LOGIN" && n == 1 {
				return "NO [UNAVAILABLE] Request is throttled. Suggested Backoff Time: 300 milliseconds"
			}
			return ""
		}, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, url := fakeServer(t, imaptest.FakeOptions{Answer: tt.answer})
			vault := filepath.Join(t.TempDir(), "vault")
			start := time.Now()
			code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--connections", "1")
			if code != exitOK {
				t.Fatalf("exit %d, want 0\nstdout %s\nstderr %s", code, out, errs)
			}
			if d := time.Since(start); d < tt.wait {
				t.Errorf("took %v, less than the %v the server asked to wait", d, tt.wait)
			}
			if !strings.Contains(errs, "asks to slow down") {
				t.Errorf("stderr %q does not say the run waited", errs)
			}
			archivetest.MatchesServer(t, vault, readFake(t, f))
		})
	}
}

// TestBackupThrottleTooLong: a wait longer than --throttle-wait is not
// done: the folder is partial (exit 3), at once.
func TestBackupThrottleTooLong(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{Answer: func(_ int, name string, n int) string {
		if name == "EXAMINE" && n == 1 {
			return "NO Request is throttled. Suggested Backoff Time: 299961 milliseconds"
		}
		return ""
	}})
	vault := filepath.Join(t.TempDir(), "vault")
	start := time.Now()
	code, _, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--connections", "1", "--throttle-wait", "1m")
	if code != exitPartial || !strings.Contains(errs, "--throttle-wait") {
		t.Fatalf("exit %d, stderr %q; want 3 naming --throttle-wait", code, errs)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestBackupDailyBudget: --max-bytes-per-day stops the run cleanly (exit
// 3, a partial snapshot, a message saying the next run continues); a run
// without the budget continues where it stopped and stores each message
// once.
func TestBackupDailyBudget(t *testing.T) {
	f, url := fakeServer(t, imaptest.FakeOptions{})
	vault := filepath.Join(t.TempDir(), "vault")
	code, _, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--connections", "1", "--max-bytes-per-day", "1.2KB")
	if code != exitPartial || !strings.Contains(errs, "next run continues") || !strings.Contains(errs, "max-bytes-per-day") {
		t.Fatalf("exit %d, stderr %q; want 3 and a message that the next run continues", code, errs)
	}
	got := archivetest.Present(t, vault)
	total := 0
	for _, n := range got {
		total += n
	}
	if total == 0 || total >= 12 {
		t.Errorf("archived %v after the budget stopped the run, want some but not all 12 messages", got)
	}
	if code, out, _ := runCLI(t, pwEnv, "snapshots", vault); code != 0 || !strings.Contains(out, "partial") {
		t.Errorf("snapshots = %q, want a partial snapshot", out)
	}
	if code, _, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--max-bytes-per-day", "0"); code != exitOK {
		t.Fatalf("run without a budget: exit %d, %s", code, errs)
	}
	archivetest.MatchesServer(t, vault, readFake(t, f))
}

// TestBackupBandwidthCap: Gmail's "BYE [OVERQUOTA] Account exceeded
// command or bandwidth limits" stops the run cleanly: exit 3, and what was
// fetched before is committed.
func TestBackupBandwidthCap(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{BandwidthCap: 1000})
	vault := filepath.Join(t.TempDir(), "vault")
	start := time.Now()
	code, _, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--connections", "1")
	if code != exitPartial || !strings.Contains(errs, "bandwidth limits") || !strings.Contains(errs, "next run continues") {
		t.Fatalf("exit %d, stderr %q; want 3 naming the server's limit", code, errs)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v: the run did not stop at the cap", d)
	}
	got := archivetest.Present(t, vault)
	if total := got["INBOX"] + got["Archive"] + got["Work"]; total == 0 || total == 12 {
		t.Errorf("archived %v, want what was fetched before the cap", got)
	}
}
