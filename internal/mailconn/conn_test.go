package mailconn

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWatchdogOnlyWhileBusy(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	wd := &WatchdogConn{Conn: client, timeout: 100 * time.Millisecond}
	// Idle: no deadline, a read waits for the server as long as it takes.
	go func() {
		time.Sleep(300 * time.Millisecond)
		server.Write([]byte("late"))
	}()
	buf := make([]byte, 8)
	if n, err := wd.Read(buf); err != nil || string(buf[:n]) != "late" {
		t.Fatalf("idle read = %q, %v; want the late data", buf[:n], err)
	}
	// Busy: no progress for the timeout fails the read, and every read after.
	wd.Begin()
	start := time.Now()
	_, err := wd.Read(buf)
	if !errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Fatalf("busy read = %v after %v, want a deadline error after 100ms", err, time.Since(start))
	}
	if _, err := wd.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) || !wd.TimedOut.Load() {
		t.Errorf("read after a timeout = %v, want it to fail at once", err)
	}
}

func TestWatchdogProgressRearms(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	wd := &WatchdogConn{Conn: client, timeout: 200 * time.Millisecond}
	wd.Begin()
	// A slow but steady server (a byte every 100ms, 1s in all) is not cut.
	go func() {
		for i := 0; i < 10; i++ {
			time.Sleep(100 * time.Millisecond)
			server.Write([]byte{'x'})
		}
	}()
	buf := make([]byte, 1)
	for i := 0; i < 10; i++ {
		if _, err := wd.Read(buf); err != nil {
			t.Fatalf("read %d of a trickling server: %v", i, err)
		}
	}
}

func TestTLSConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	os.WriteFile(bad, []byte("not a certificate"), 0o600)
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Addr: "host:993", CAFile: filepath.Join(dir, "missing.pem")}, "read CA file"},
		{Config{Addr: "host:993", CAFile: bad}, "holds no PEM certificate"},
		{Config{Addr: "no-port"}, "missing port"},
	} {
		if _, err := tt.cfg.TLSConfig(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("TLSConfig(%+v) error = %v, want %q", tt.cfg, err, tt.want)
		}
	}
	c, err := (&Config{Addr: "mail.example.com:993"}).TLSConfig()
	if err != nil || c.ServerName != "mail.example.com" || c.InsecureSkipVerify {
		t.Errorf("TLSConfig = %+v, %v; want verification of mail.example.com", c, err)
	}
}
