package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestGmailMaildirCrash kills a backup of a Gmail account into a Maildir
// archive (each message stored once, the files of every folder holding it
// hard links to one inode) at points of its write path: while All Mail,
// walked last, links the labels' files (links in tmp/), about to move
// its links into cur/, and with every link in cur/ and the manifest not
// committed. The next run completes it: verify passes, every message of
// every folder is there, each message is one inode whose links are
// exactly the names the manifests give it (the left-over links went, the
// files they shared kept their bytes).
func TestGmailMaildirCrash(t *testing.T) {
	t.Parallel()
	g := imaptest.StartGmail(t, imaptest.GmailOptions{User: "alice@gmail.test", Password: "pw"})
	day := time.Date(2025, 2, 3, 4, 5, 6, 0, time.UTC)
	labels := [][]string{{"INBOX"}, {"INBOX", "Work", "Family"}, {"Work"}, nil, {"Family", "Work/Projects"}, {"INBOX", "Work/Projects"}}
	for i, ls := range labels {
		body := fmt.Sprintf("Message-ID: <m%d@gmail.test>\r\nSubject: message %d\r\n\r\n%s\r\n", i, i, strings.Repeat(fmt.Sprintf("line %d\r\n", i), 200))
		g.Deliver(t, []byte(body), day.Add(time.Duration(i)*time.Hour), ls...)
	}
	// 9 messages in labels, then All Mail's 6 (5 of them links).
	for _, fp := range []string{"message-stored:12", "segment-before-rename:5", "manifest-before-rename"} {
		t.Run(fp, func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			args := []string{"backup", "imap://alice%40gmail.test@" + g.Addr, vault, "--insecure-plaintext", "--format", "maildir", "--compress", "none"}
			r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
			if !r.signaled {
				t.Fatalf("failpoint %s did not kill the run: exit %d %s %s", fp, r.code, r.stdout, r.stderr)
			}
			mustRun(t, args...)
			if v := mustRun(t, "verify", vault); strings.Contains(v.stdout, "left by interrupted runs") {
				t.Errorf("verify after completion still finds leftovers: %s", v.stdout)
			}
			_, st := archivetest.Latest(t, vault)
			inodes := map[uint64][]string{} // inode -> names the manifests give
			nlink := map[uint64]uint64{}
			sums := map[uint64]string{}
			present := 0
			for name, f := range st.Folders {
				for _, m := range f.Present() {
					present++
					fi, err := os.Stat(filepath.Join(vault, filepath.FromSlash(m.Seg)))
					if err != nil {
						t.Fatalf("%s %s: %v", name, m.Key, err)
					}
					sys := fi.Sys().(*syscall.Stat_t)
					inodes[sys.Ino] = append(inodes[sys.Ino], m.Seg)
					nlink[sys.Ino] = uint64(sys.Nlink)
					if s, ok := sums[sys.Ino]; ok && s != m.SHA256 {
						t.Errorf("%s: one file for two messages", m.Seg)
					}
					sums[sys.Ino] = m.SHA256
				}
			}
			if present != 15 || len(inodes) != len(labels) {
				t.Errorf("%d messages present in %d files, want 15 in %d", present, len(inodes), len(labels))
			}
			for ino, names := range inodes {
				if nlink[ino] != uint64(len(names)) {
					t.Errorf("%v: %d links, want %d (the names the manifests give)", names, nlink[ino], len(names))
				}
			}
		})
	}
}
