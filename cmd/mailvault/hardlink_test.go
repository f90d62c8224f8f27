//go:build unix

package main

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// TestGmailMaildirHardLinks: a Gmail account backed up into a Maildir
// archive stores each message once: every folder holding it (labels, All
// Mail) has a file of its own for it, and those files are one inode. The
// run and the snapshot count the bytes once; verify passes; Python's
// mailbox module reads every folder of the archive with all its
// messages; a restore to a Maildir recreates every folder byte-exact;
// erasing the message in one label removes every name of its file.
func TestGmailMaildirHardLinks(t *testing.T) {
	g := gmailAccount(t, 0)
	want := g.Labels()
	vault := filepath.Join(t.TempDir(), "vault")
	env := map[string]string{"MAILVAULT_PASSWORD": "app-password"}
	code, out, errs := runCLI(t, env, "backup", "imap://alice%40gmail.test@"+g.Addr, vault, "--insecure-plaintext", "--log-format", "json",
		"--format", "maildir", "--compress", "none")
	if code != 0 {
		t.Fatalf("backup exit %d: %s %s", code, out, errs)
	}
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	// The files of each message, by SHA-256, and each folder's messages.
	type file struct {
		folder, path string
		fi           fs.FileInfo
	}
	bySum := map[string][]file{}
	held := map[string][]string{} // folder directory -> SHA-256s
	sizes := map[string]int64{}
	var present int
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		for _, m := range f.Present() {
			present++
			if path.Dir(m.Seg) != "folders/"+f.Dir+"/cur" {
				t.Errorf("%s %s recorded at %s, not a file of its folder", name, m.MessageID, m.Seg)
			}
			p := filepath.Join(vault, filepath.FromSlash(m.Seg))
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			bySum[m.SHA256] = append(bySum[m.SHA256], file{name, p, fi})
			held[f.Dir] = append(held[f.Dir], m.SHA256)
			sizes[m.SHA256] = m.Size
		}
	}
	if len(bySum) != len(want) {
		t.Fatalf("%d distinct messages archived, want %d", len(bySum), len(want))
	}
	var distinctBytes int64
	for sum, fs := range bySum {
		distinctBytes += sizes[sum]
		for _, f := range fs[1:] {
			if !os.SameFile(fs[0].fi, f.fi) {
				t.Errorf("%s in %s and %s: two files, want one inode", sum[:12], fs[0].folder, f.folder)
			}
		}
		if n := fs[0].fi.Sys().(*syscall.Stat_t).Nlink; uint64(n) != uint64(len(fs)) {
			t.Errorf("%s: %d links, want %d (its folders)", sum[:12], n, len(fs))
		}
	}
	var sum backupSummary
	if err := json.Unmarshal([]byte(lastJSONLine(out)), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if sum.Stored != len(want) || sum.Bytes != distinctBytes || sum.Added != present {
		t.Errorf("summary: stored %d (%d bytes), added %d; want %d (%d bytes), %d", sum.Stored, sum.Bytes, sum.Added, len(want), distinctBytes, present)
	}
	code, out, errs = runCLI(t, nil, "snapshots", vault, "--json")
	var line struct{ Bytes int64 }
	if code != 0 || json.Unmarshal([]byte(lastJSONLine(out)), &line) != nil || line.Bytes != distinctBytes {
		t.Errorf("snapshots: exit %d, %q %s; want %d bytes stored", code, out, errs, distinctBytes)
	}
	if code, out, errs := runCLI(t, nil, "verify", vault); code != 0 {
		t.Errorf("verify: exit %d %s %s", code, out, errs)
	}

	// Python's mailbox module reads each folder with its messages.
	for dir, sums := range held {
		got := pythonMaildir(t, filepath.Join(vault, "folders", dir))
		sort.Strings(sums)
		if !reflect.DeepEqual(got, sums) {
			t.Errorf("python reads %d messages in %s, want %d: %v, want %v", len(got), dir, len(sums), got, sums)
		}
	}

	// A restore to a Maildir: every folder with its messages, byte-exact.
	target := filepath.Join(t.TempDir(), "md")
	if code, out, errs := runCLI(t, nil, "restore", vault, "maildir:"+target); code != 0 {
		t.Fatalf("restore: exit %d %s %s", code, out, errs)
	}
	restored := map[string][]string{}
	for _, m := range localMessages(t, "maildir", target) {
		restored[m.folder] = append(restored[m.folder], m.sha)
	}
	var gotCounts, wantCounts []int
	var gotAll, wantAll []string
	for _, sums := range restored {
		gotCounts = append(gotCounts, len(sums))
		gotAll = append(gotAll, sums...)
	}
	for _, sums := range held {
		wantCounts = append(wantCounts, len(sums))
		wantAll = append(wantAll, sums...)
	}
	sort.Ints(gotCounts)
	sort.Ints(wantCounts)
	sort.Strings(gotAll)
	sort.Strings(wantAll)
	if !reflect.DeepEqual(gotCounts, wantCounts) || !reflect.DeepEqual(gotAll, wantAll) {
		t.Errorf("restored folders hold %v messages (%d in all), want %v (%d)", gotCounts, len(gotAll), wantCounts, len(wantAll))
	}

	// Erasing message 1 in Work takes its file from every folder.
	code, out, errs = runCLI(t, nil, "erase", vault, "--message-id", "<m1@gmail.test>", "--folder", "Work", "--reason", "test")
	if code != 0 {
		t.Fatalf("erase: exit %d %s %s", code, out, errs)
	}
	filepath.WalkDir(filepath.Join(vault, "folders"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("<m1@gmail.test>")) {
				t.Errorf("%s still holds the erased message", p)
			}
		}
		return nil
	})
	if code, out, errs := runCLI(t, nil, "verify", vault); code != 0 {
		t.Errorf("verify after erase: exit %d %s %s", code, out, errs)
	}
}

// pythonMaildir returns the SHA-256 of every message Python's mailbox
// module reads in a Maildir, sorted.
func pythonMaildir(t *testing.T, dir string) []string {
	t.Helper()
	out, err := exec.Command("python3", "-c", `
import mailbox, sys, hashlib
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
for key in md.keys():
    with md.get_file(key) as f:
        print(hashlib.sha256(f.read()).hexdigest())
`, dir).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 mailbox: %v %s", err, out)
	}
	got := strings.Fields(string(out))
	sort.Strings(got)
	return got
}
