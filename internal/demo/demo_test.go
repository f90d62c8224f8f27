package demo

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

func startTestServer(t *testing.T) *Server {
	t.Helper()
	srv, err := StartServer(map[string]string{"u": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// The server lists special-use attributes, serves messages byte for byte
// over verified TLS, and counts reads of bodies and writes apart.
func TestServer(t *testing.T) {
	srv := startTestServer(t)
	if !strings.HasPrefix(srv.Addr, "127.0.0.1:") {
		t.Errorf("Addr = %q, want 127.0.0.1:port", srv.Addr)
	}
	for _, f := range []string{"Sent", "Work", "Work/Projects", "日本"} {
		if err := srv.CreateFolder("u", f, SpecialUse(f)); err != nil {
			t.Fatal(err)
		}
	}
	body := []byte("Subject: hi\r\nMessage-ID: <1@x>\r\n\r\nFrom me\r\n")
	key, err := srv.Append("u", "Work/Projects", []string{`\Seen`, "Later"}, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), body)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keyUID(key); err != nil || !strings.Contains(key, ":") {
		t.Errorf("Append key = %q, want UIDVALIDITY:UID", key)
	}
	if _, err := srv.Dial("u", "wrong"); err == nil {
		t.Error("Dial with a wrong password succeeded")
	}

	c, err := srv.Dial("u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	if !slices.Contains(attrs["Sent"], imap.MailboxAttrSent) {
		t.Errorf("LIST attributes of Sent = %v, want \\Sent", attrs["Sent"])
	}
	if _, ok := attrs["日本"]; !ok || len(attrs) != 5 {
		t.Errorf("LIST = %v, want INBOX and the 4 folders created", attrs)
	}

	got, err := readAccount(context.Background(), srv, "u", "pw")
	if err != nil {
		t.Fatal(err)
	}
	m := got.folders["Work/Projects"][key]
	if m == nil || !bytes.Equal(m.body, body) || !sameFlags(m.flags, []string{`\Seen`, "later"}) {
		t.Fatalf("readAccount = %+v, want the message appended", got.folders["Work/Projects"])
	}
	if st := srv.Stats("u"); st.Writes != 0 || st.BodyFetches != 1 {
		t.Errorf("after a read-only pass Stats = %+v, want 0 writes and 1 body fetch", st)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if st := srv.Stats("u"); st.Writes != 1 {
		t.Errorf("after SELECT Stats = %+v, want 1 write", st)
	}
}

func TestPrepareDir(t *testing.T) {
	base := t.TempDir()
	full := filepath.Join(base, "full")
	if err := os.MkdirAll(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "mine.txt"), []byte("keep"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(base, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir     string
		wantErr error
	}{
		{empty, nil},
		{filepath.Join(base, "new", "deeper"), nil},
		{full, ErrDirNotEmpty},
	} {
		got, err := prepareDir(tc.dir)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("prepareDir(%q) error = %v, want %v", tc.dir, err, tc.wantErr)
			continue
		}
		if err == nil && got != tc.dir {
			t.Errorf("prepareDir(%q) = %q, want the same directory", tc.dir, got)
		}
		if err != nil && !strings.Contains(err.Error(), "mine.txt") {
			t.Errorf("prepareDir(%q) error = %q, want it to name a file found", tc.dir, err)
		}
	}
	t.Setenv("TMPDIR", base)
	tmp, err := prepareDir("")
	if err != nil || filepath.Dir(tmp) != base || !strings.HasPrefix(filepath.Base(tmp), "mailvault-demo-") {
		t.Errorf(`prepareDir("") = %q, %v; want a new mailvault-demo-* directory in %s`, tmp, err, base)
	}
}

func TestShellQuote(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"imaps://alice@127.0.0.1:993", "imaps://alice@127.0.0.1:993"},
		{"/tmp/mailvault-demo-1/vault", "/tmp/mailvault-demo-1/vault"},
		{"日本", "日本"},
		{"--deleted-since", "--deleted-since"},
		{"my dir/vault", "'my dir/vault'"},
		{"it's", `'it'\''s'`},
		{"$HOME", "'$HOME'"},
		{"", "''"},
	} {
		if got := shellQuote(tc.in); got != tc.want {
			t.Errorf("shellQuote(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestIndenter(t *testing.T) {
	for _, tc := range []struct {
		writes []string
		want   string
	}{
		{[]string{"a\nb\n"}, "> a\n> b\n"},
		{[]string{"a", "b\n", "c\n"}, "> ab\n> c\n"},
		{[]string{"no newline"}, "> no newline\n"},
		{[]string{"\n\n"}, "> \n> \n"},
		{nil, ""},
	} {
		var b bytes.Buffer
		in := &indenter{w: &b, prefix: "> "}
		for _, w := range tc.writes {
			if n, err := in.Write([]byte(w)); n != len(w) || err != nil {
				t.Fatalf("Write(%q) = %d, %v", w, n, err)
			}
		}
		in.end()
		if b.String() != tc.want {
			t.Errorf("writes %q gave %q, want %q", tc.writes, b.String(), tc.want)
		}
	}
}

func TestSameFlags(t *testing.T) {
	for _, tc := range []struct {
		a, b []string
		want bool
	}{
		{[]string{`\Seen`, "Work"}, []string{"work", `\seen`}, true},
		{[]string{`\Seen`, `\Recent`}, []string{`\Seen`}, true},
		{[]string{`\Seen`}, []string{`\Seen`, `\Flagged`}, false},
		{nil, []string{}, true},
	} {
		if got := sameFlags(tc.a, tc.b); got != tc.want {
			t.Errorf("sameFlags(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
}
