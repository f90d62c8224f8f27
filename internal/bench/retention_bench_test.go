package bench

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// BenchmarkRetentionScale (issue 15): an archive of N messages (default
// 200,000; MAILVAULT_RETENTION_SIZE) over 30 snapshots, 70 % stored by the
// first and the rest arriving over 29 more while mail is deleted and
// flagged, written straight through the formats package; then the built
// mailvault's forget --keep-last 10 and prune are timed under a peak-RSS
// measurement (testdata/maxrss.py). MAILVAULT_RETENTION_PROFILE=DIR writes
// their CPU profiles to DIR.
//
//	go test ./internal/bench -run '^$' -bench '^BenchmarkRetentionScale$' -benchtime 1x -v
func BenchmarkRetentionScale(b *testing.B) {
	size := 200000
	if v := os.Getenv("MAILVAULT_RETENTION_SIZE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	_, self, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(self), "..", "..")
	bin := filepath.Join(b.TempDir(), "mailvault")
	build := exec.Command("go", "build", "-o", bin, "./cmd/mailvault")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	launcher := filepath.Join(b.TempDir(), "maxrss")
	build = exec.Command("go", "build", "-o", launcher, "./internal/bench/maxrss")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("build: %v %s", err, out)
	}
	for _, opts := range []formats.StorageOptions{{}} {
		vault := filepath.Join(b.TempDir(), "vault")
		start := time.Now()
		deleted := writeRetentionArchive(b, vault, opts, size)
		say("retention scale: %d messages, 30 snapshots, %d deleted on the way, written in %v (%.1f MB stored)",
			size, deleted, time.Since(start).Round(time.Second), mb(dirBytes(b, filepath.Join(vault, "folders"))))
		for _, step := range [][]string{{"forget", vault, "--keep-last", "10", "--quiet"}, {"prune", vault}, {"verify", vault, "--quiet"}} {
			args := step
			if dir := os.Getenv("MAILVAULT_RETENTION_PROFILE"); dir != "" {
				// CPU profiles of each command, for go tool pprof.
				args = append([]string{"--cpuprofile", filepath.Join(dir, step[0]+".pprof")}, args...)
			}
			cmd := exec.Command(launcher, append([]string{bin}, args...)...)
			var out, errb strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &errb
			if err := cmd.Run(); err != nil {
				b.Fatalf("%v: %v\n%s%s", args, err, out.String(), errb.String())
			}
			l := parseLauncher(errb.String())
			var load float64
			if data, err := os.ReadFile("/proc/loadavg"); err == nil {
				fmt.Sscan(string(data), &load)
			}
			say("%-7s wall %8v  CPU %8v  peak RSS %.0f MiB  (load %.1f)  %s", step[0], l.wall.Round(10*time.Millisecond), l.cpu.Round(10*time.Millisecond),
				mib(l.rss), load, strings.TrimSpace(out.String()))
		}
	}
}

func dirBytes(b *testing.B, dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return err
	})
	return n
}

// writeRetentionArchive writes the archive and returns how many messages
// were deleted on the way.
func writeRetentionArchive(b *testing.B, vault string, opts formats.StorageOptions, size int) int {
	a, err := formats.CreateWith(vault, opts)
	if err != nil {
		b.Fatal(err)
	}
	if err := a.Lock("bench"); err != nil {
		b.Fatal(err)
	}
	defer a.Unlock()
	r := rand.New(rand.NewPCG(15, 15))
	folders := []string{"INBOX", "Sent", "Archive", "Lists", "Work"}
	present := map[string][]string{}
	uid := 0
	deleted := 0
	words := strings.Fields("the of and to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part")
	var parent *formats.Snapshot
	for run := 0; run < 30; run++ {
		s := &formats.Snapshot{ID: formats.NewSnapshotID(), Seq: run + 1, Source: "imap://bench", Protocol: "imap", Status: formats.StatusComplete,
			Started: time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC).AddDate(0, 0, run)}
		s.Finished = s.Started.Add(time.Minute)
		if parent != nil {
			s.Parent = parent.ID
		}
		add := size * 7 / 10
		if run > 0 {
			add = (size - size*7/10) / 29
		}
		for fi, name := range folders {
			c := formats.Change{Folder: name}
			if run == 0 {
				c.Event = formats.EventCreated
			} else {
				keys := present[name]
				for k := 0; k < len(keys)/100; k++ {
					j := r.IntN(len(keys))
					c.Gone = append(c.Gone, keys[j])
					keys[j] = keys[len(keys)-1]
					keys = keys[:len(keys)-1]
					deleted++
				}
				for k := 0; k < len(keys)/300; k++ {
					c.Flags = append(c.Flags, formats.FlagChange{Key: keys[r.IntN(len(keys))], Flags: []string{`\Seen`}})
				}
				present[name] = keys
			}
			n := add / len(folders)
			if fi == 0 {
				n += add % len(folders)
			}
			dir := formats.FolderDir(name)
			w, err := a.NewWriter(dir, s.Seq, s.ID)
			if err != nil {
				b.Fatal(err)
			}
			var body []byte
			for k := 0; k < n; k++ {
				uid++
				body = fmt.Appendf(body[:0], "From: user%d@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@bench>\r\n\r\n", r.IntN(500), uid, uid)
				for len(body) < 1000+r.IntN(2000) {
					body = append(body, words[r.IntN(len(words))]...)
					body = append(body, ' ')
					if r.IntN(12) == 0 {
						body = append(body, '\r', '\n')
					}
				}
				date := s.Started.Add(-time.Duration(k) * time.Second)
				if err := w.BeginRecord(date, nil); err != nil {
					b.Fatal(err)
				}
				w.Write(body)
				loc, off, err := w.EndRecord()
				if err != nil {
					b.Fatal(err)
				}
				key := fmt.Sprintf("1:%d", uid)
				c.Added = append(c.Added, formats.Message{Key: key, SHA256: shaHex(body), Size: int64(len(body)), InternalDate: date,
					MessageID: fmt.Sprintf("<%d@bench>", uid), Subject: fmt.Sprintf("message %d", uid), Seg: loc, Off: off})
				present[name] = append(present[name], key)
			}
			g, err := w.Commit()
			if err != nil {
				b.Fatal(err)
			}
			if g != nil {
				s.Segments = append(s.Segments, *g)
			}
			s.Changes = append(s.Changes, c)
			s.Folders = append(s.Folders, formats.Folder{Name: name, Dir: dir, Status: formats.FolderOK, UIDValidity: 1, UIDNext: uint32(uid + 1), Messages: uint32(len(present[name]))})
		}
		if err := a.Commit(s); err != nil {
			b.Fatal(err)
		}
		parent = s
	}
	return deleted
}

func shaHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
