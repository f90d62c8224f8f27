package main

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/localstore"
)

// restoreReport is the part of --report the tests read.
type restoreReport struct {
	Status      string `json:"status"`
	Stored      int    `json:"appended"`
	StoredBytes int64  `json:"appended_bytes"`
	Selected    int    `json:"selected_messages"`
	Unreadable  int    `json:"unreadable"`
	Folders     []struct {
		Source     string `json:"source"`
		Stored     int    `json:"appended"`
		Unreadable []struct {
			Key, Location, Reason string
		} `json:"unreadable"`
	} `json:"folders"`
}

func readReport(t *testing.T, path string) restoreReport {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep restoreReport
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report %s: %v", data, err)
	}
	return rep
}

// heldMessage is a message found on a target: its folder and bytes' hash.
type heldMessage struct {
	folder, sha string
	size        int64
}

// localMessages reads every message file of a maildir: or eml: tree.
func localMessages(t *testing.T, kind, root string) []heldMessage {
	t.Helper()
	var out []heldMessage
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		dir, name := filepath.Split(rel)
		switch {
		case kind == "maildir" && filepath.Base(dir) == "cur":
			dir = filepath.Dir(filepath.Dir(rel))
		case kind == "eml" && strings.HasSuffix(name, ".eml"):
			dir = filepath.Dir(rel)
		default:
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(data)
		out = append(out, heldMessage{folder: dir, sha: hex.EncodeToString(s[:]), size: int64(len(data))})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mboxCount counts the messages of every mbox file below root with
// Python's mailbox module, an independent reader.
func mboxCount(t *testing.T, root string) int {
	t.Helper()
	out, err := exec.Command("python3", "-c", `
import mailbox, os, sys
n = 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if f.endswith(".mbox"):
            n += len(mailbox.mbox(os.path.join(d, f), create=False))
print(n)
`, root).CombinedOutput()
	if err != nil {
		t.Fatalf("python3 mailbox: %v %s", err, out)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var summaryRE = regexp.MustCompile(`restored (\d+)(?: of (\d+))? messages \(.*\) from snapshot \w+: (\d+) appended \(([^)]*)\), (\d+) already present, (\d+) rejected(?:, (\d+) unreadable in the archive)?.*, (\d+) keywords dropped, in `)

// TestRestoreDamagedArchive damages one zstd frame of a segment (and,
// in Maildir archives, one message file, compressed or not) and restores
// to IMAP and to maildir:, mbox: and eml: targets: every readable message
// of every folder is restored, each unreadable one is named (folder, key,
// segment and offset or file), counts and bytes in the summary and the
// report are what the target holds, and the exit code is 3.
func TestRestoreDamagedArchive(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw", "t0": "pw", "t1": "pw", "t2": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	users := 0
	for _, f := range []string{"Work", "Other", "Zeta"} {
		imaptest.Create(t, c, f)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	for i := range 60 {
		folder := []string{"INBOX", "Work", "Other", "Zeta"}[i%4]
		text := fmt.Sprintf("short body %d", i)
		if folder == "Work" {
			// Incompressible, 1.6 MiB in all: two zstd frames, so
			// that damage in one frame leaves the other readable.
			raw := make([]byte, 80<<10)
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
			text = base64.StdEncoding.EncodeToString(raw)
		}
		imaptest.Append(t, c, folder, nil, date.Add(time.Duration(i)*time.Hour),
			[]byte(fmt.Sprintf("Message-ID: <%d@x>\r\nSubject: m%d\r\n\r\n%s\r\n", i, i, text)))
	}
	url := "imap://alice@" + srv.Addr
	for _, storage := range [][]string{{"--format", "mbox"}, {"--format", "maildir", "--compress", "none"}, {"--format", "maildir", "--compress", "zstd"}} {
		t.Run(strings.Join(storage, " "), func(t *testing.T) {
			vault := filepath.Join(t.TempDir(), "vault")
			if code, out, errs := runCLI(t, pwEnv, append([]string{"backup", url, vault, "--insecure-plaintext"}, storage...)...); code != 0 {
				t.Fatalf("backup: %d %s %s", code, out, errs)
			}
			a, st := archivetest.Latest(t, vault)
			work := st.Folders["Work"].Present()
			damaged := work[len(work)/2].Seg
			if storage[1] == "mbox" {
				damageFile(t, filepath.Join(a.Root, filepath.FromSlash(damaged)), 0.6)
			} else {
				damageFile(t, filepath.Join(a.Root, filepath.FromSlash(damaged)), 0.5)
				// and one message file of another folder is gone
				if err := os.Remove(filepath.Join(a.Root, filepath.FromSlash(st.Folders["Zeta"].Present()[1].Seg))); err != nil {
					t.Fatal(err)
				}
			}
			archived := map[string]string{} // sha -> folder
			total := 0
			for name, f := range st.Folders {
				for _, m := range f.Present() {
					archived[m.SHA256] = name
					total++
				}
			}
			for _, kind := range []string{"imap", "maildir", "mbox", "eml"} {
				t.Run(kind, func(t *testing.T) {
					target := kind + ":" + filepath.Join(t.TempDir(), kind)
					extra := []string{}
					if kind == "imap" {
						user := fmt.Sprintf("t%d", users)
						users++
						target, extra = "imap://"+user+"@"+srv.Addr, []string{"--insecure-plaintext"}
						defer func() {
							held := imaptest.ReadServer(t, srv.Dial(t, user, "pw"))
							checkHeld(t, flatten(held), archived)
						}()
					}
					report := filepath.Join(t.TempDir(), "r.json")
					code, out, errs := runCLI(t, pwEnv, append([]string{"restore", vault, target, "--report", report}, extra...)...)
					if code != exitPartial {
						t.Fatalf("restore of a damaged archive: exit %d, want %d\n%s\n%s", code, exitPartial, out, errs)
					}
					rep := readReport(t, report)
					m := summaryRE.FindStringSubmatch(out)
					if m == nil {
						t.Fatalf("summary %q", out)
					}
					if m[3] != strconv.Itoa(rep.Stored) || m[7] != strconv.Itoa(rep.Unreadable) || m[1] != m[3] || m[2] != strconv.Itoa(total) {
						t.Errorf("summary %q disagrees with the report (%d appended, %d unreadable, %d selected)", out, rep.Stored, rep.Unreadable, total)
					}
					if rep.Stored+rep.Unreadable != total || rep.Unreadable == 0 || rep.Status != "partial" {
						t.Errorf("report: %d appended + %d unreadable, %d selected, status %q", rep.Stored, rep.Unreadable, total, rep.Status)
					}
					if m[4] != humanBytes(rep.StoredBytes) {
						t.Errorf("summary says %s appended, report %d bytes", m[4], rep.StoredBytes)
					}
					// Named: folder, key, where in the archive.
					for _, f := range rep.Folders {
						for _, u := range f.Unreadable {
							if u.Key == "" || u.Reason == "" || !strings.HasPrefix(u.Location, "folders/") {
								t.Errorf("%s: unreadable %+v", f.Source, u)
							}
							if !strings.Contains(errs, u.Key) || !strings.Contains(errs, u.Location) || !strings.Contains(errs, f.Source) {
								t.Errorf("stderr does not name %s %s in %s:\n%s", u.Key, u.Location, f.Source, errs)
							}
						}
						if f.Source != "Work" && f.Source != "Zeta" && len(f.Unreadable) != 0 {
							t.Errorf("%s: %d unreadable, want none", f.Source, len(f.Unreadable))
						}
					}
					switch kind {
					case "maildir", "eml":
						held := localMessages(t, kind, strings.TrimPrefix(target, kind+":"))
						checkHeld(t, held, archived)
						var bytes int64
						for _, h := range held {
							bytes += h.size
						}
						if len(held) != rep.Stored || bytes != rep.StoredBytes {
							t.Errorf("%s holds %d messages (%d bytes), the report says %d (%d bytes)", kind, len(held), bytes, rep.Stored, rep.StoredBytes)
						}
					case "mbox":
						if n := mboxCount(t, strings.TrimPrefix(target, "mbox:")); n != rep.Stored {
							t.Errorf("mbox files hold %d messages, the report says %d", n, rep.Stored)
						}
					}
				})
			}
		})
	}
}

func flatten(server map[string][]imaptest.ServerMessage) []heldMessage {
	var out []heldMessage
	for f, msgs := range server {
		for _, m := range msgs {
			out = append(out, heldMessage{folder: f, sha: m.SHA256, size: int64(len(m.Body))})
		}
	}
	return out
}

// checkHeld checks that every message a target holds has bytes the
// archive holds (nothing damaged was restored) and that every folder but
// the damaged ones is complete.
func checkHeld(t *testing.T, held []heldMessage, archived map[string]string) {
	t.Helper()
	per := map[string]int{}
	for _, h := range held {
		if _, ok := archived[h.sha]; !ok {
			t.Errorf("%s holds a message whose bytes the archive never had", h.folder)
		}
		per[archived[h.sha]]++
	}
	want := map[string]int{}
	for _, f := range archived {
		want[f]++
	}
	for _, f := range []string{"INBOX", "Other"} {
		if per[f] != want[f] {
			t.Errorf("%s: %d of %d restored", f, per[f], want[f])
		}
	}
	if per["Work"] == 0 || per["Work"] == want["Work"] {
		t.Errorf("Work (damaged): %d of %d restored, want the readable ones", per["Work"], want["Work"])
	}
}

// damageFile flips bytes in a file.
func damageFile(t *testing.T, path string, at float64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := int(float64(len(data)) * at)
	data[i] ^= 0x5a
	data[i+1] ^= 0xa5
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestSelectionMatchingNothing: restore and ls with a selection that
// matches nothing fail with exit 2 naming it; --deleted-since with
// nothing deleted is an answer (exit 0).
func TestSelectionMatchingNothing(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw", "bob": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	imaptest.Create(t, c, "Work")
	imaptest.Append(t, c, "INBOX", nil, time.Now(), []byte("Message-ID: <1@x>\r\nSubject: hello\r\n\r\nhi\r\n"))
	imaptest.Append(t, c, "Work", nil, time.Now(), []byte("Message-ID: <2@x>\r\nSubject: report\r\n\r\nhi\r\n"))
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@"+srv.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	target := "maildir:" + filepath.Join(t.TempDir(), "md")
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"restore", vault, target, "--folder", "Typo"}, exitUsage, `no folder "Typo"`},
		{[]string{"restore", vault, target, "--folder", "work"}, exitUsage, `did you mean "Work"`},
		{[]string{"restore", vault, target, "--include", "Wrk*"}, exitUsage, `--include "Wrk*" matches no folder`},
		{[]string{"restore", vault, target, "--subject", "invoice"}, exitUsage, `--subject "invoice"`},
		{[]string{"restore", vault, target, "--folder", "Work", "--from", "carol"}, exitUsage, `no message in folder "Work"`},
		{[]string{"ls", vault, "--folder", "Typo"}, exitUsage, `no folder "Typo"`},
		{[]string{"ls", vault, "Typo"}, exitUsage, `no folder "Typo"`},
		{[]string{"ls", vault, "--subject", "invoice"}, exitUsage, `--subject "invoice"`},
		{[]string{"restore", vault, target, "--deleted-since", "latest"}, exitOK, ""},
		{[]string{"ls", vault, "--deleted-since", "latest"}, exitOK, ""},
	} {
		code, out, errs := runCLI(t, pwEnv, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%v: exit %d %q, want %d and %q", tt.args, code, errs, tt.code, tt.want)
		}
		if tt.code == exitOK && !strings.Contains(out+errs, "nothing was deleted") {
			t.Errorf("%v: %q %q does not say that nothing was deleted", tt.args, out, errs)
		}
	}
	if _, err := os.Stat(strings.TrimPrefix(target, "maildir:")); err == nil {
		t.Errorf("a selection that matched nothing created the target")
	}
}

// TestRestoreLongFolderNames: a folder whose name is too long for a file
// name is restored under a shortened name, said in the summary and the
// report; a folder whose path the file system refuses is skipped and
// reported (exit 3) while every other folder is restored.
func TestRestoreLongFolderNames(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	long := strings.Repeat("Ü", 150)                                                  // 300 bytes
	deep := strings.TrimSuffix(strings.Repeat(strings.Repeat("d", 250)+"/", 18), "/") // a 4.5 KB path
	for _, f := range []string{"Work", long, deep} {
		imaptest.Create(t, c, f)
	}
	date := time.Date(2024, 2, 3, 4, 5, 6, 0, time.UTC)
	for i, f := range []string{"INBOX", "Work", long, long, deep} {
		imaptest.Append(t, c, f, nil, date, []byte(fmt.Sprintf("Message-ID: <%d@x>\r\nSubject: m%d\r\n\r\nhi\r\n", i, i)))
	}
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@"+srv.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		t.Run(kind, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), kind)
			report := filepath.Join(t.TempDir(), "r.json")
			args := []string{"restore", vault, kind + ":" + dir, "--report", report}
			code, out, errs := runCLI(t, pwEnv, args...)
			if code != exitPartial || !strings.Contains(out, "restored 4 of 5 messages") || !strings.Contains(out, "1 folders under shortened names") ||
				!strings.Contains(out, "1 folders refused by the target") || !strings.Contains(errs, "shortened") {
				t.Fatalf("restore: exit %d\n%s\n%s", code, out, errs)
			}
			var rep struct {
				Folders []struct {
					Source, Error string
					StoredAs      string `json:"stored_as"`
					Stored        int    `json:"appended"`
					NotRestored   int    `json:"not_restored"`
				}
			}
			data, _ := os.ReadFile(report)
			if err := json.Unmarshal(data, &rep); err != nil {
				t.Fatal(err)
			}
			for _, f := range rep.Folders {
				switch f.Source {
				case long:
					if f.Stored != 2 || !strings.Contains(f.StoredAs, "%~") || len(f.StoredAs) > 255 {
						t.Errorf("long folder: %d appended, stored as %q", f.Stored, f.StoredAs)
					}
				case deep:
					if f.Error == "" || f.NotRestored != 1 {
						t.Errorf("deep folder: error %q, %d not restored", f.Error, f.NotRestored)
					}
				default:
					if f.Stored != 1 || f.Error != "" || f.StoredAs != "" {
						t.Errorf("%s: %+v", f.Source, f)
					}
				}
			}
			// The plan of a second run knows the shortened folder exists.
			if _, plan, _ := runCLI(t, pwEnv, append(args, "--dry-run")...); strings.Count(plan, "(new)") != 1 {
				t.Errorf("dry run after the restore: want only the refused folder as new:\n%s", plan)
			}
			// Again: everything there is found again, nothing doubled.
			code, out, _ = runCLI(t, pwEnv, args...)
			if code != exitPartial || !strings.Contains(out, " 0 appended") || !strings.Contains(out, "4 already present") {
				t.Errorf("second restore: exit %d %s", code, out)
			}
		})
	}
}

// TestRestoreDroppedKeywords: keywords a target cannot keep are counted in
// the summary line and the report, for the messages stored.
func TestRestoreDroppedKeywords(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	imaptest.Create(t, c, "Tags")
	for i := range 30 {
		imaptest.Append(t, c, "Tags", []imap.Flag{imap.Flag(fmt.Sprintf("$k%02d", i))}, time.Now(),
			[]byte(fmt.Sprintf("Message-ID: <%d@x>\r\nSubject: m%d\r\n\r\nhi\r\n", i, i)))
	}
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@"+srv.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	dir := filepath.Join(t.TempDir(), "md")
	report := filepath.Join(t.TempDir(), "r.json")
	code, out, errs := runCLI(t, pwEnv, "restore", vault, "maildir:"+dir, "--report", report)
	// A Maildir folder has 26 keyword letters: 4 of the 30 are dropped.
	if code != 0 || !strings.Contains(out, "30 appended") || !strings.Contains(out, ", 4 keywords dropped") {
		t.Errorf("restore: exit %d %q %q; want 4 keywords dropped in the summary", code, out, errs)
	}
	var rep struct {
		Dropped int `json:"dropped_keywords"`
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || rep.Dropped != 4 {
		t.Errorf("report %s: dropped_keywords %d, want 4", data, rep.Dropped)
	}
	// Nothing appended again: nothing dropped again.
	if code, out, _ := runCLI(t, pwEnv, "restore", vault, "maildir:"+dir); code != 0 || !strings.Contains(out, ", 0 keywords dropped") {
		t.Errorf("second restore: exit %d %q", code, out)
	}
}

// TestRestoreLocalTargetExitCodes: a Maildir tree with UTF-8 names is
// not written with modified UTF-7 names unless asked (exit 2, naming the
// way out), and a local target another restore is writing is refused
// (exit 5).
func TestRestoreLocalTargetExitCodes(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	imaptest.Create(t, c, "Entwürfe")
	imaptest.Append(t, c, "Entwürfe", nil, time.Now(), []byte("Message-ID: <1@x>\r\nSubject: draft\r\n\r\nhi\r\n"))
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@"+srv.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	dir := filepath.Join(t.TempDir(), "md")
	if code, out, errs := runCLI(t, pwEnv, "restore", vault, "maildir:"+dir+"?utf8"); code != 0 {
		t.Fatalf("restore ?utf8: %d %s %s", code, out, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "Entwürfe", "cur")); err != nil {
		t.Errorf("?utf8: %v", err)
	}
	report := filepath.Join(t.TempDir(), "r.json")
	if err := os.WriteFile(report, []byte(`{"status":"complete","appended":1}`), 0o600); err != nil { // yesterday's
		t.Fatal(err)
	}
	if code, _, errs := runCLI(t, pwEnv, "restore", vault, "maildir:"+dir, "--report", report); code != exitUsage || !strings.Contains(errs, "?utf8") {
		t.Errorf("default layout into a UTF-8 tree: exit %d %q, want %d naming ?utf8", code, errs, exitUsage)
	}
	// The report is this run's, failed as it is.
	var rep struct {
		Status, Error, Snapshot string
		Stored                  int `json:"appended"`
		NotRestored             int `json:"not_restored"`
	}
	data, _ := os.ReadFile(report)
	if err := json.Unmarshal(data, &rep); err != nil || rep.Status != "stopped" || !strings.Contains(rep.Error, "?utf8") || rep.Snapshot == "" || rep.Stored != 0 || rep.NotRestored != 1 {
		t.Errorf("report of a failed restore: %s", data)
	}
	if code, _, errs := runCLI(t, pwEnv, "restore", vault, "eml:"+dir+"?utf8"); code != exitUsage {
		t.Errorf("eml:DIR?utf8: exit %d %q, want %d", code, errs, exitUsage)
	}
	root := filepath.Join(t.TempDir(), "mbox")
	busy, err := localstore.NewMbox(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := busy.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	if code, _, errs := runCLI(t, pwEnv, "restore", vault, "mbox:"+filepath.Join(t.TempDir(), "other")); code != 0 {
		t.Errorf("restore to another tree: exit %d %q", code, errs)
	}
	code, _, errs := runCLI(t, pwEnv, "restore", vault, "mbox:"+root)
	if code != exitLocked || !strings.Contains(errs, "another mailvault restore") {
		t.Errorf("restore into a tree another restore writes: exit %d %q, want %d", code, errs, exitLocked)
	}
}
