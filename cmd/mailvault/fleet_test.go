package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/report"
)

// countingProxy forwards TCP connections to target and counts how many
// are open at once: what a server sees of a fleet run's connections.
type countingProxy struct {
	ln         net.Listener
	target     string
	open, peak atomic.Int64
	total      atomic.Int64
}

func startProxy(t *testing.T, target string) *countingProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &countingProxy{ln: ln, target: target}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(c)
			}()
		}
	}()
	return p
}

func (p *countingProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	n := p.open.Add(1)
	p.total.Add(1)
	defer p.open.Add(-1)
	for old := p.peak.Load(); n > old && !p.peak.CompareAndSwap(old, n); old = p.peak.Load() {
	}
	done := make(chan struct{}, 2)
	go func() { io.Copy(s, c); s.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { io.Copy(c, s); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	<-done
	<-done
}

func (p *countingProxy) addr() string { return p.ln.Addr().String() }

// seedUser gives user a small mailbox: 3 messages in INBOX, 2 in Work,
// 1 in Work/2026, each with its own bytes.
func seedUser(t *testing.T, addr, user, pw string) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"Work", "Work/2026"} {
		if err := c.Create(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
	}
	for folder, n := range map[string]int{"INBOX": 3, "Work": 2, "Work/2026": 1} {
		for i := range n {
			msg := fmt.Sprintf("From: boss@example.com\r\nTo: %s@example.com\r\nSubject: %s %d\r\nMessage-ID: <%s-%s-%d@example.com>\r\n\r\nHello %s, message %d of %s.\r\n", user, folder, i, user, strings.ReplaceAll(folder, "/", "."), i, user, i, folder)
			imaptest.Append(t, c, folder, []imap.Flag{imap.FlagSeen}, time.Date(2026, 3, 1+i, 10, 0, 0, 0, time.UTC), []byte(msg))
		}
	}
}

func readUser(t *testing.T, addr, user, pw string) map[string][]imaptest.ServerMessage {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, pw).Wait(); err != nil {
		t.Fatal(err)
	}
	return imaptest.ReadServer(t, c)
}

func readFleetReport(t *testing.T, path string) report.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report.Report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("report %s: %v\n%s", path, err, data)
	}
	return r
}

// TestFleetDovecot backs up 50 accounts of one configuration file: 49 on
// a Dovecot with a master passdb (a third each by password_file,
// password_env and the server's admin login), one of them with a wrong
// password, and one on a second Dovecot that was stopped. The 48 others
// are archived, each matching its server; the report and the exit code
// say exactly which two failed and why; the server never sees more than
// max_connections connections; a second run adds nothing.
func TestFleetDovecot(t *testing.T) {
	const users = 49
	pw := func(i int) string { return fmt.Sprintf("secret-%02d", i) }
	name := func(i int) string { return fmt.Sprintf("u%02d", i) }
	accounts := map[string]string{}
	quota := map[string]string{}
	for i := range users {
		accounts[name(i)] = pw(i)
		quota[name(i)] = "*:storage=10M"
	}
	s := dovecottest.Start(t, dovecottest.Options{Users: accounts, Masters: map[string]string{"admin": "admin-secret"}, Quota: quota})
	stopped := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"u49": "secret-49"}})
	for i := range users {
		seedUser(t, s.IMAPAddr, name(i), pw(i))
	}
	stopDovecot(t, stopped)
	proxy := startProxy(t, s.IMAPSAddr)

	dir := t.TempDir()
	write := func(file, text string) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("admin.pw", "admin-secret\n")
	env := map[string]string{}
	const wrong = 13
	var b strings.Builder
	fmt.Fprintf(&b, "[defaults]\narchive_root = \"vaults\"\nca_file = %q\nconnections = 4\ntimeout = \"30s\"\n\n", s.CAFile)
	fmt.Fprintf(&b, "[[server]]\nhost = \"127.0.0.1\"\nmax_connections = 6\nadmin_user = \"admin\"\nadmin_password_file = \"admin.pw\"\n\n")
	for i := range users {
		fmt.Fprintf(&b, "[[account]]\nname = %q\nsource = \"imaps://%s@%s\"\n", name(i), name(i), proxy.addr())
		switch i % 3 {
		case 0:
			write(name(i)+".pw", pw(i)+"\n")
			fmt.Fprintf(&b, "password_file = %q\n", name(i)+".pw")
		case 1:
			v := strings.ToUpper(name(i)) + "_PASSWORD"
			env[v] = pw(i)
			if i == wrong {
				env[v] = "not-the-password"
			}
			fmt.Fprintf(&b, "password_env = %q\n", v)
		case 2:
			// The server's admin login: no password of the user at all.
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "[[account]]\nname = \"u49\"\nsource = \"imaps://u49@localhost:%s\"\npassword_env = \"U49_PASSWORD\"\n", portOf(stopped.IMAPSAddr))
	env["U49_PASSWORD"] = "secret-49"
	cfg := write("mailvault.toml", b.String())
	rep := filepath.Join(dir, "report.json")
	metrics := filepath.Join(dir, "mailvault.prom")

	code, stdout, stderr := runCLI(t, env, "backup", "--config", cfg, "--parallel", "3", "--report", rep, "--metrics", metrics)
	if code != exitPartial {
		t.Fatalf("fleet run: exit %d, want %d (some accounts failed)\nstdout:\n%s\nstderr:\n%s", code, exitPartial, stdout, stderr)
	}
	if strings.Contains(stderr, "\x1b[") {
		t.Errorf("progress drawn without a terminal: %q", stderr)
	}
	if !strings.Contains(stdout, "50 accounts: 48 complete, 0 partial, 2 failed") {
		t.Errorf("no total line in stdout:\n%s", stdout)
	}
	for _, want := range []string{"u13 failed (authentication failed for u13 on 127.0.0.1", "u49 failed (cannot connect to localhost"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr does not name %q:\n%s", want, stderr)
		}
	}
	if got := strings.Count(stdout, ": complete, snapshot "); got != 48 {
		t.Errorf("%d lines of complete accounts, want 48:\n%s", got, stdout)
	}
	if p := proxy.peak.Load(); p > 6 || p < 2 {
		t.Errorf("the server saw %d connections at once, want 2..6 (max_connections 6)", p)
	}
	t.Logf("first run: %d connections, at most %d at once", proxy.total.Load(), proxy.peak.Load())

	r := readFleetReport(t, rep)
	if r.Finished == nil || r.Finished.Before(r.Started) || len(r.Accounts) != 50 {
		t.Fatalf("report: started %v finished %v, %d accounts", r.Started, r.Finished, len(r.Accounts))
	}
	failed := map[string]string{}
	for i, a := range r.Accounts {
		want := name(i)
		if i == 49 {
			want = "u49"
		}
		if a.Name != want {
			t.Errorf("report account %d is %q, want %q (the file's order)", i, a.Name, want)
		}
		if a.Status != report.StatusComplete {
			failed[a.Name] = a.Status + ": " + a.Error
			continue
		}
		if a.Snapshot == "" || a.Added != 6 || a.BytesStored <= 0 || a.Error != "" || a.Gone != 0 {
			t.Errorf("report of %s: %+v", a.Name, a)
		}
		if !strings.Contains(a.Source, "@127.0.0.1:") || strings.Contains(a.Source, "secret") || a.Archive != filepath.Join(dir, "vaults", a.Name) {
			t.Errorf("report of %s: source %q archive %q", a.Name, a.Source, a.Archive)
		}
		if len(a.Quota) == 0 || a.Quota[0].Resource != "STORAGE" || a.Quota[0].Limit != 10240 || a.Quota[0].Used <= 0 {
			t.Errorf("report of %s: quota %+v, want STORAGE used > 0 of 10240", a.Name, a.Quota)
		}
	}
	if len(failed) != 2 || !strings.HasPrefix(failed["u13"], "failed: authentication failed for u13 on 127.0.0.1") ||
		!strings.HasPrefix(failed["u49"], "failed: cannot connect to localhost:") {
		t.Errorf("report of the accounts not complete: %v", failed)
	}
	for i := range users {
		if i == wrong {
			if _, err := os.Stat(filepath.Join(dir, "vaults", name(i))); err == nil {
				t.Errorf("an archive was created for %s, whose login failed", name(i))
			}
			continue
		}
		archivetest.MatchesServer(t, filepath.Join(dir, "vaults", name(i)), readUser(t, s.IMAPAddr, name(i), pw(i)))
	}
	prom, err := os.ReadFile(metrics)
	if err != nil {
		t.Fatal(err)
	}
	for _, re := range []string{
		`(?m)^mailvault_last_success_timestamp_seconds\{account="u00"\} \d`,
		`(?m)^mailvault_last_run_status\{account="u13",status="failed"\} 1$`,
		`(?m)^mailvault_last_run_status\{account="u49",status="failed"\} 1$`,
		`(?m)^mailvault_quota_limit\{account="u02",root="User quota",resource="STORAGE"\} 10240$`,
		`(?m)^mailvault_fleet_accounts\{status="complete"\} 48$`,
	} {
		if !regexp.MustCompile(re).Match(prom) {
			t.Errorf("metrics do not match %s:\n%s", re, prom)
		}
	}
	if regexp.MustCompile(`last_success_timestamp_seconds\{account="u13"`).Match(prom) {
		t.Errorf("metrics give u13, which never succeeded, a last success")
	}

	// The same run again: nothing new anywhere.
	code, stdout, stderr = runCLI(t, env, "backup", "--config", cfg, "--report", rep, "--metrics", metrics)
	if code != exitPartial {
		t.Fatalf("second run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, a := range readFleetReport(t, rep).Accounts {
		if a.Status == report.StatusComplete && (a.Added != 0 || a.Gone != 0 || a.FlagChanges != 0 || a.BytesStored != 0) {
			t.Errorf("second run of %s: %+v, want nothing added", a.Name, a)
		}
	}
	for i := range users {
		if i != wrong {
			archivetest.MatchesServer(t, filepath.Join(dir, "vaults", name(i)), readUser(t, s.IMAPAddr, name(i), pw(i)))
		}
	}

	// check-config logs in to each and says which two cannot be backed up.
	code, stdout, _ = runCLI(t, env, "check-config", cfg)
	if code != exitPartial || strings.Count(stdout, ": ok: logged in to ") != 48 ||
		!strings.Contains(stdout, "u13: not ready: authentication failed") || !strings.Contains(stdout, "u49: not ready: cannot connect") {
		t.Errorf("check-config: exit %d\n%s", code, stdout)
	}
}

// stopDovecot stops a private Dovecot and waits until its port refuses
// connections.
func stopDovecot(t *testing.T, s *dovecottest.Server) {
	t.Helper()
	s.Doveadm(t, "stop")
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		c, err := net.Dial("tcp", s.IMAPSAddr)
		if err != nil {
			return
		}
		c.Close()
	}
	t.Fatal("the stopped Dovecot still accepts connections")
}

func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}

// TestFleetRestoreWithAdminLogin is the hosting case: alice's mailbox is
// backed up and, after she deleted a message, restored into a folder of
// her own mailbox, both with the master user's login from the
// configuration, never alice's password. snapshots shows the quota each
// run recorded.
func TestFleetRestoreWithAdminLogin(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{
		Users:   map[string]string{"alice": "alice-secret"},
		Masters: map[string]string{"admin": "admin-secret"},
		Quota:   map[string]string{"alice": "*:storage=1M"},
	})
	seedUser(t, s.IMAPAddr, "alice", "alice-secret")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "admin.pw"), []byte("admin-secret\n"), 0o600)
	cfg := filepath.Join(dir, "mailvault.toml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`[defaults]
archive_root = "vaults"
ca_file = %q

[[server]]
host = "127.0.0.1"
admin_user = "admin"
admin_password_file = "admin.pw"

[[account]]
name = "alice"
source = "imaps://alice@%s"
`, s.CAFile, s.IMAPSAddr)), 0o600)
	vault := filepath.Join(dir, "vaults", "alice")
	if code, out, errs := runCLI(t, nil, "backup", "--config", cfg); code != exitOK {
		t.Fatalf("backup: exit %d\n%s\n%s", code, out, errs)
	}
	first := latestID(t, vault)

	// Alice deletes "INBOX 1".
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "alice-secret").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "INBOX 1"}}}, nil).Wait()
	if err != nil || len(found.AllSeqNums()) != 1 {
		t.Fatalf("search: %v %v", found, err)
	}
	if err := c.Store(imap.SeqSetNum(found.AllSeqNums()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	c.Unselect().Wait()
	if code, out, errs := runCLI(t, nil, "backup", "--config", cfg); code != exitOK || !strings.Contains(out, "1 gone") {
		t.Fatalf("second backup: exit %d\n%s\n%s", code, out, errs)
	}

	code, out, errs := runCLI(t, nil, "restore", "--config", cfg, "--account", "alice", "--deleted-since", first, "--into", "Restored")
	if code != exitOK || !strings.Contains(out, "restored 1 messages") {
		t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
	}
	got := readUser(t, s.IMAPAddr, "alice", "alice-secret")
	if r := got["Restored/INBOX"]; len(r) != 1 || !strings.Contains(string(r[0].Body), "Subject: INBOX 1\r\n") {
		t.Errorf("Restored/INBOX holds %d messages, want the deleted one", len(r))
	}

	code, out, _ = runCLI(t, nil, "snapshots", vault)
	if code != exitOK || !strings.Contains(out, "QUOTA") || strings.Count(out, " of 1.0 MiB") != 2 {
		t.Errorf("snapshots:\n%s", out)
	}
}

func latestID(t *testing.T, vault string) string {
	t.Helper()
	_, st := archivetest.Latest(t, vault)
	return st.Snapshot.ID
}
