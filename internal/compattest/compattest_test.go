package compattest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestIMAPServers starts each IMAP server, seeds it over IMAP and reads
// every message back: what was appended is there, and what the server
// changed on the way is logged (docs/SERVERS.md records it).
func TestIMAPServers(t *testing.T) {
	for _, kind := range IMAPKinds {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			s := Start(t, kind)
			t.Logf("%s started in %v: IMAP %s, POP3 %s, namespace %q %q", kind, time.Since(start).Round(time.Millisecond), s.IMAPAddr, s.POP3Addr, s.Prefix, s.Delimiter)
			msgs := SeedMessages("alice", 1, 12)
			rep := s.Append(t, "alice", msgs)
			got := imaptest.ReadServer(t, s.IMAP(t, "alice"))
			total := 0
			for name, n := range rep.Appended {
				if len(got[name]) != n {
					t.Errorf("folder %q: %d messages on the server, %d appended", name, len(got[name]), n)
				}
				total += n
			}
			if total != len(msgs) {
				t.Errorf("appended %d of %d", total, len(msgs))
			}
			sent := map[string]Message{}
			for _, m := range msgs {
				sent[header(m.Body, "Message-ID")] = m
			}
			changes := map[string]int{}
			for _, name := range SortedKeys(got) {
				for _, m := range got[name] {
					want, ok := sent[header(m.Body, "Message-ID")]
					if !ok {
						t.Errorf("folder %q uid %d: a message that was not appended", name, m.UID)
						continue
					}
					for _, c := range describeChange(want, m) {
						changes[c]++
					}
				}
			}
			var summary []string
			for _, c := range SortedKeys(changes) {
				summary = append(summary, fmt.Sprintf("%s (%d)", c, changes[c]))
			}
			t.Logf("%s: folders %v; of %d messages appended: %s; keywords refused for %d", kind, SortedKeys(got), total, strings.Join(summary, "; "), rep.KeywordsRefused)
		})
	}
}

// TestPOP3OnlyServers starts popa3d and Solid POP3, delivers mail into
// their drops and reads it back with TOP and RETR.
func TestPOP3OnlyServers(t *testing.T) {
	for _, kind := range []Kind{Popa3d, SolidMaildir, SolidMbox} {
		t.Run(string(kind), func(t *testing.T) {
			t.Parallel()
			s := Start(t, kind)
			msgs := SeedMessages("alice", 1, 6)
			s.Deliver(t, "alice", msgs)
			before := s.DropFlags(t, "alice")
			if len(before) != len(msgs) {
				t.Fatalf("drop holds %d messages, delivered %d", len(before), len(msgs))
			}
			top := s.POP3(t, "alice", "TOP")
			retr := s.POP3(t, "alice", "RETR")
			if len(top) != len(msgs) || len(retr) != len(msgs) {
				t.Fatalf("TOP gave %d messages, RETR %d, delivered %d", len(top), len(retr), len(msgs))
			}
			for i := range top {
				if !bytes.Equal(top[i].Body, retr[i].Body) || int64(len(retr[i].Body)) != retr[i].Size {
					t.Errorf("message %d: TOP %d bytes, RETR %d, LIST %d", i+1, len(top[i].Body), len(retr[i].Body), retr[i].Size)
				}
			}
			t.Logf("%s: drop state after TOP and RETR: %v (before %v)", kind, s.DropFlags(t, "alice"), before)
		})
	}
}

// TestCleanup checks that a stopped server leaves no process and no file.
func TestCleanup(t *testing.T) {
	var dir string
	var pid int
	t.Run("run", func(t *testing.T) {
		s := Start(t, Popa3d)
		dir, pid = s.Dir, s.cmd.Process.Pid
	})
	if dir == "" {
		t.Skip("server not started")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still exists after the test", dir)
	}
	if processAlive(pid) {
		t.Errorf("supervisor pid %d still alive", pid)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, _ := os.ReadFile(p)
		if strings.Contains(string(b), dir) {
			t.Errorf("process %s still runs: %q", p, b)
		}
	}
}

func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

// describeChange says how a server changed an appended message.
func describeChange(sent Message, got imaptest.ServerMessage) []string {
	var out []string
	b, g := sent.Body, got.Body
	switch {
	case bytes.Equal(b, g):
	case bytes.Equal(append(bytes.Clone(b), "\r\n"...), g):
		out = append(out, "CRLF added to a message without a final line break")
	case len(b) == len(g):
		munged := true
		for i := range b {
			if b[i] != g[i] && !(b[i] >= 0x80 && g[i] == 'X') {
				munged = false
			}
		}
		if munged {
			out = append(out, "8-bit header bytes replaced by X")
		} else {
			out = append(out, "bytes changed, same length")
		}
	default:
		var added []string
		for _, line := range strings.Split(string(g[:max(bytes.Index(g, []byte("\r\n\r\n")), 0)]), "\r\n") {
			if k, _, ok := strings.Cut(line, ":"); ok && header(b, k) == "" && !strings.HasPrefix(k, " ") {
				added = append(added, k)
			}
		}
		out = append(out, fmt.Sprintf("%+d bytes, header fields added: %v", len(g)-len(b), added))
	}
	want := FlagSetOf(sent.Flags)
	if strings.Join(want, " ") != strings.Join(got.Flags, " ") {
		out = append(out, fmt.Sprintf("flags %v stored as %v", want, got.Flags))
	}
	if !got.InternalDate.Equal(sent.InternalDate) {
		out = append(out, fmt.Sprintf("INTERNALDATE off by %v", got.InternalDate.Sub(sent.InternalDate)))
	}
	return out
}

// FlagSetOf is imaptest.FlagSet for strings.
func FlagSetOf(fl []string) []string { return imaptest.FlagSet(fl) }
