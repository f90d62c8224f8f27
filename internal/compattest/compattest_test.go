package compattest

import (
	"bytes"
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
			changed := 0
			sent := map[string][]byte{}
			for _, m := range msgs {
				sent[header(m.Body, "Message-ID")] = m.Body
			}
			for _, name := range SortedKeys(got) {
				for _, m := range got[name] {
					if want := sent[header(m.Body, "Message-ID")]; !bytes.Equal(m.Body, want) {
						changed++
					}
				}
			}
			t.Logf("%s: folders %v; %d of %d messages served with other bytes than appended; keywords refused for %d", kind, SortedKeys(got), changed, total, rep.KeywordsRefused)
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
