package compattest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Message is a message to put on a server.
type Message struct {
	// Folder in the user's view: levels joined with "/", UTF-8, no
	// namespace prefix (see Server.FolderName). Ignored by Deliver.
	Folder       string
	Flags        []string // system flags and keywords, for Append
	InternalDate time.Time
	Body         []byte // CRLF line endings
}

// SeedFolders are the folders of SeedMessages: nested, non-ASCII, with a
// space (which GNU Mailutils' STATUS answer leaves unquoted), and a nested
// folder whose parent exists only as structure on some servers.
var SeedFolders = []string{"INBOX", "Sent", "Archive/2024", "Año", "My Folder", "Entwürfe/Ältere"}

// SeedMessages returns n messages for user (numbered from first) spread
// round-robin over SeedFolders, with flags (\Seen every 3rd, \Flagged
// every 5th, \Answered every 11th), keywords ($Label1 every 7th,
// project_x when i%4 == 1) and INTERNALDATEs an hour apart from
// 2024-01-01 (the Date: header is 3 days later, so a server that takes the
// date from the header shows). Their bodies exercise what servers change:
// an 8-bit Subject every 6th (i%6 == 2), a body line starting with "From "
// every 5th, no final newline when i%7 == 3.
func SeedMessages(user string, first, n int) []Message {
	var out []Message
	for i := first; i < first+n; i++ {
		var fl []string
		if i%3 == 0 {
			fl = append(fl, `\Seen`)
		}
		if i%5 == 0 {
			fl = append(fl, `\Flagged`)
		}
		if i%11 == 0 {
			fl = append(fl, `\Answered`)
		}
		if i%7 == 0 {
			fl = append(fl, "$Label1")
		}
		if i%4 == 1 {
			fl = append(fl, "project_x")
		}
		date := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
		out = append(out, Message{
			Folder:       SeedFolders[(i-1)%len(SeedFolders)],
			Flags:        fl,
			InternalDate: date,
			Body:         seedBody(user, i, date),
		})
	}
	return out
}

func seedBody(user string, i int, date time.Time) []byte {
	subject := fmt.Sprintf("compat seed message %d", i)
	if i%6 == 2 {
		subject = fmt.Sprintf("Grüße aus Köln %d", i) // raw 8-bit header
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Seeder <seeder@compattest.invalid>\r\n")
	fmt.Fprintf(&b, "To: %s <%s@compattest.invalid>\r\n", user, user)
	fmt.Fprintf(&b, "Subject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: %s\r\n", date.Add(72*time.Hour).Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <seed-%s-%d@compattest.invalid>\r\n", user, i)
	fmt.Fprintf(&b, "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
	for k := 0; k <= i%5; k++ {
		fmt.Fprintf(&b, "line %d of test message %d for %s\r\n", k, i, user)
	}
	if i%5 == 0 {
		b.WriteString("From the desk of the seeder (mbox escaping)\r\n")
	}
	b.WriteString("Schöne Grüße\r\n")
	if i%7 == 3 {
		b.WriteString("no final newline")
	}
	return b.Bytes()
}

// AppendReport says what Append did.
type AppendReport struct {
	// Appended counts the messages appended per folder, by the server's
	// name of the folder.
	Appended map[string]int
	// KeywordsRefused counts messages appended with their system flags
	// only because the server refused their keywords (GNU Mailutils
	// refuses every keyword).
	KeywordsRefused int
}

// Append creates the folders of msgs (the leaf directly: the server makes
// missing parents) and APPENDs the messages with their flags and
// INTERNALDATE over IMAP, as user. It never selects a folder (Mailutils
// loses APPENDs into a folder the same connection has selected).
func (s *Server) Append(t testing.TB, user string, msgs []Message) AppendReport {
	t.Helper()
	c := s.IMAP(t, user)
	rep := AppendReport{Appended: map[string]int{}}
	created := map[string]bool{"INBOX": true}
	for _, m := range msgs {
		name := s.FolderName(m.Folder)
		if !created[name] {
			if err := c.Create(name, nil).Wait(); err != nil && !alreadyExists(err) {
				t.Fatalf("compattest: %s: CREATE %q: %v", s.Kind, name, err)
			}
			created[name] = true
		}
		flags := make([]imap.Flag, len(m.Flags))
		for i, f := range m.Flags {
			flags[i] = imap.Flag(f)
		}
		err := appendOne(c, name, flags, m)
		if err != nil && hasKeyword(m.Flags) {
			var sys []imap.Flag
			for _, f := range flags {
				if strings.HasPrefix(string(f), `\`) {
					sys = append(sys, f)
				}
			}
			if err = appendOne(c, name, sys, m); err == nil {
				rep.KeywordsRefused++
			}
		}
		if err != nil {
			t.Fatalf("compattest: %s: APPEND to %q: %v", s.Kind, name, err)
		}
		rep.Appended[name]++
	}
	return rep
}

func appendOne(c *imapclient.Client, name string, flags []imap.Flag, m Message) error {
	cmd := c.Append(name, int64(len(m.Body)), &imap.AppendOptions{Flags: flags, Time: m.InternalDate})
	if _, err := cmd.Write(m.Body); err != nil {
		cmd.Close()
		return err
	}
	if err := cmd.Close(); err != nil {
		return err
	}
	_, err := cmd.Wait()
	return err
}

func alreadyExists(err error) bool {
	var ie *imap.Error
	return errors.As(err, &ie) && (ie.Code == imap.ResponseCodeAlreadyExists || strings.Contains(strings.ToLower(ie.Text), "exist"))
}

func hasKeyword(flags []string) bool {
	for _, f := range flags {
		if !strings.HasPrefix(f, `\`) {
			return true
		}
	}
	return false
}

// Deliver writes msgs straight into user's mail drop, as a local delivery
// agent would, for servers that cannot receive mail themselves (popa3d,
// Solid POP3; also Mailutils' inbox): an mbox file gets a "From " line per
// message, LF line endings, mboxrd escaping and a blank line after each
// message; a Maildir gets one file per message in new/ (mtime =
// InternalDate). Folders and flags are ignored.
func (s *Server) Deliver(t testing.TB, user string, msgs []Message) {
	t.Helper()
	if s.spool == "" {
		t.Fatalf("compattest: %s has no mail drop Deliver can write", s.Kind)
	}
	own := s.owners[user]
	p := filepath.Join(s.spool, user)
	if s.maildrop == "maildir" {
		for _, m := range msgs {
			s.seeded[user]++
			name := fmt.Sprintf("%d.M%dP%d.compattest", m.InternalDate.Unix(), s.seeded[user], os.Getpid())
			tmp := filepath.Join(p, "tmp", name)
			body := bytes.ReplaceAll(m.Body, []byte("\r\n"), []byte("\n"))
			if !bytes.HasSuffix(body, []byte("\n")) {
				body = append(body, '\n') // as a delivery agent does (Solid POP3 calls a message without one damaged)
			}
			if err := os.WriteFile(tmp, body, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(tmp, own[0], own[1]); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(tmp, m.InternalDate, m.InternalDate); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(p, "new", name)); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	var b bytes.Buffer
	for _, m := range msgs {
		fmt.Fprintf(&b, "From seeder@compattest.invalid %s\n", m.InternalDate.UTC().Format(time.ANSIC))
		body := bytes.ReplaceAll(m.Body, []byte("\r\n"), []byte("\n"))
		for _, line := range bytes.SplitAfter(body, []byte("\n")) {
			if bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From ")) {
				b.WriteByte('>')
			}
			b.Write(line)
		}
		if !bytes.HasSuffix(body, []byte("\n")) {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lk := syscall.Flock_t{Type: syscall.F_WRLCK}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLKW, &lk); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		t.Fatal(err)
	}
}

// DropFlags reads user's mail drop directly and returns, by Message-ID,
// what it records of each message's state: the Status and X-Status
// headers of an mbox, the info flags of a Maildir file ("" in new/). A
// Message-ID seen twice gets "#2" appended. It lets a test check that a
// POP3 client changed no message.
func (s *Server) DropFlags(t testing.TB, user string) map[string]string {
	t.Helper()
	out := map[string]string{}
	add := func(id, state string) {
		key := id
		for n := 2; ; n++ {
			if _, dup := out[key]; !dup {
				break
			}
			key = fmt.Sprintf("%s#%d", id, n)
		}
		out[key] = state
	}
	p := filepath.Join(s.spool, user)
	if s.spool == "" {
		t.Fatalf("compattest: %s has no mail drop", s.Kind)
	}
	if s.maildrop == "maildir" {
		for _, sub := range []string{"new", "cur"} {
			ents, err := os.ReadDir(filepath.Join(p, sub))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				data, err := os.ReadFile(filepath.Join(p, sub, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				info := ""
				if _, after, ok := strings.Cut(e.Name(), ":2,"); ok {
					info = after
				}
				add(header(data, "Message-ID"), info)
			}
		}
		return out
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range splitMbox(data) {
		add(header(m, "Message-ID"), "Status="+header(m, "Status")+" X-Status="+header(m, "X-Status"))
	}
	return out
}

// splitMbox splits an mbox file at its "From " lines.
func splitMbox(data []byte) [][]byte {
	var out [][]byte
	start := -1
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		if end < 0 {
			end = len(data) - i - 1
		}
		if bytes.HasPrefix(data[i:], []byte("From ")) && (i == 0 || data[i-1] == '\n') {
			if start >= 0 {
				out = append(out, data[start:i])
			}
			start = i + end + 1
		}
		i += end + 1
	}
	if start >= 0 && start <= len(data) {
		out = append(out, data[start:])
	}
	return out
}

// header returns the first value of a header field of a message (LF or
// CRLF), "" if absent.
func header(msg []byte, name string) string {
	for _, line := range strings.Split(string(msg), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// SortedKeys returns a map's keys in order (for stable test output).
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
