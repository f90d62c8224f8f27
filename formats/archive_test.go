package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var edgeBodies = [][]byte{
	[]byte("Subject: plain\r\n\r\nhello\r\n"),
	[]byte("Subject: from\n\nFrom here\n>From there\n>>From everywhere\n"),
	[]byte("From the start\nno final newline"),
	[]byte(""),
	[]byte("\x00\x01\xff\xfe 8-bit \xe9\n\rbare CR\r"),
	[]byte(">"),
	[]byte("x\n>Fro"),
	[]byte("a\n\n\n"),
}

// writeSnapshot stores bodies in folder with one new writer and commits a
// snapshot with them; it returns the snapshot. Every abortEvery-th body is
// preceded by a record that is abandoned half-way.
func writeSnapshot(t *testing.T, a *Archive, parent *Snapshot, folder string, bodies [][]byte, abortEvery int) *Snapshot {
	t.Helper()
	seq, parentID := 1, ""
	if parent != nil {
		seq, parentID = parent.Seq+1, parent.ID
	}
	id := NewSnapshotID()
	dir := FolderDir(folder)
	w, err := a.NewWriter(dir, seq, id)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var added []Message
	for i, b := range bodies {
		flags := testFlags[i%len(testFlags)]
		if abortEvery > 0 && i%abortEvery == 0 {
			// A record that fails half-way leaves nothing behind.
			if err := w.BeginRecord(date, flags); err != nil {
				t.Fatal(err)
			}
			w.Write(bytes.Repeat([]byte("junk line\n"), 1+len(b)/5))
			if err := w.AbortRecord(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.BeginRecord(date, flags); err != nil {
			t.Fatal(err)
		}
		for p := b; len(p) > 0; {
			n := min(len(p), 1+rand.IntN(70000))
			if _, err := w.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		loc, off, err := w.EndRecord()
		if err != nil {
			t.Fatal(err)
		}
		if !w.Owns(loc) {
			t.Fatalf("writer does not own the location %q it handed out", loc)
		}
		added = append(added, Message{Key: fmt.Sprintf("%d:%d", seq, i+1), SHA256: sha(b), Size: int64(len(b)), InternalDate: date, Flags: flags, Seg: loc, Off: off})
	}
	seg, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{ID: id, Seq: seq, Parent: parentID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Folders: []Folder{{Name: folder, Dir: dir, Status: FolderOK, Messages: uint32(len(bodies))}},
		Changes: []Change{{Folder: folder, Added: added}},
	}
	if seg != nil {
		s.Segments = []Segment{*seg}
	}
	if err := a.Commit(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// testFlags are the flag sets writeSnapshot gives its messages in turn.
var testFlags = [][]string{nil, {`\Seen`}, {`\Answered`, `\Seen`, "$Label1"}, {`\Deleted`, `\Draft`, `\Flagged`, "Work"}}

func bigBody(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = "From abc\r\n>xyz \x00\xff"[r.IntN(17)]
	}
	return b
}

func TestManifestDamage(t *testing.T) {
	root := t.TempDir()
	a, _ := Create(root)
	writeSnapshot(t, a, nil, "INBOX", edgeBodies[:2], 0)
	files, _ := a.ListSnapshots()
	orig, _ := os.ReadFile(files[0].Path)
	for name, mutate := range map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)/2] },
		"empty":     func(b []byte) []byte { return nil },
		"bit flip":  func(b []byte) []byte { c := bytes.Clone(b); c[len(c)-40] ^= 1; return c },
		"newer": func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"mailvault_manifest":2`), []byte(`"mailvault_manifest":9`), 1)
		},
	} {
		os.WriteFile(files[0].Path, mutate(orig), 0o600)
		_, err := a.Snapshots()
		want := ErrCorrupt
		if name == "newer" {
			want = ErrNewerVersion
		}
		if !errors.Is(err, want) {
			t.Errorf("%s manifest: Snapshots() error = %v, want %v", name, err, want)
		}
	}
}

func TestOpenNewerArchive(t *testing.T) {
	root := t.TempDir()
	os.WriteFile(filepath.Join(root, ConfigFile), []byte(`{"format":"mailvault","version":3,"storage":"mbox","compression":"zstd"}`), 0o600)
	if _, err := Open(root); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("Open(version 3) error = %v, want ErrNewerVersion", err)
	}
	other := t.TempDir()
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o600)
	if _, err := OpenOrCreate(other); !errors.Is(err, ErrNotArchive) {
		t.Fatalf("OpenOrCreate(non-empty dir) error = %v, want ErrNotArchive", err)
	}
}

func TestLock(t *testing.T) {
	root := t.TempDir()
	a, _ := Create(root)
	if err := a.Lock("backup"); err != nil {
		t.Fatal(err)
	}
	b, _ := Open(root)
	err := b.Lock("backup")
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second Lock error = %v, want ErrLocked naming the pid", err)
	}
	a.Unlock()
	if err := b.Lock("backup"); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	b.Unlock()
}

func seq(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

func reverse(s []int) []int {
	out := make([]int, len(s))
	for i, v := range s {
		out[len(s)-1-i] = v
	}
	return out
}

// TestCreateAfterInterruptedCreate: a creation killed between its first
// directory and mailvault.json leaves what the next creation takes over;
// anything else in the directory is refused.
func TestCreateAfterInterruptedCreate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(root string)
		ok    bool
	}{
		{"empty directories", func(root string) {
			os.MkdirAll(filepath.Join(root, SnapshotsDir), 0o700)
			os.MkdirAll(filepath.Join(root, FoldersDir), 0o700)
		}, true},
		{"directories and the temporary config", func(root string) {
			os.MkdirAll(filepath.Join(root, SnapshotsDir), 0o700)
			os.WriteFile(filepath.Join(root, ConfigFile+".tmp"), []byte(`{"format":`), 0o600)
		}, true},
		{"a manifest", func(root string) {
			os.MkdirAll(filepath.Join(root, SnapshotsDir), 0o700)
			os.WriteFile(filepath.Join(root, SnapshotsDir, "00000001-1a2b3c4d.json"), []byte("{}"), 0o600)
		}, false},
		{"a foreign file", func(root string) {
			os.WriteFile(filepath.Join(root, "notes.txt"), []byte("mine"), 0o600)
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "vault")
			os.MkdirAll(root, 0o700)
			tc.setup(root)
			errCheck := CheckCreatable(root)
			a, err := Create(root)
			if tc.ok {
				if errCheck != nil || err != nil {
					t.Fatalf("CheckCreatable = %v, Create = %v; want both to succeed", errCheck, err)
				}
				if _, err := os.Stat(filepath.Join(root, ConfigFile+".tmp")); err == nil {
					t.Errorf("the temporary config is still there")
				}
				if _, err := Open(a.Root); err != nil {
					t.Errorf("Open after Create: %v", err)
				}
				return
			}
			if !errors.Is(errCheck, ErrNotArchive) || !errors.Is(err, ErrNotArchive) {
				t.Errorf("CheckCreatable = %v, Create = %v; want ErrNotArchive", errCheck, err)
			}
		})
	}
}

// TestVerifyAllocatesLittlePerMessage: verify reuses its buffers from one
// message to the next (it allocated a 32 KiB copy buffer per message: the
// garbage collector's work was half of its CPU on a big archive).
func TestVerifyAllocatesLittlePerMessage(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const n = 4000
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", i%300)))
	}
	writeSnapshot(t, a, nil, "INBOX", bodies, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	rep, err := a.Verify(nil)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Messages != n {
		t.Fatalf("verify: %d messages, problems %v", rep.Messages, rep.Problems)
	}
	per := float64(after.TotalAlloc-before.TotalAlloc) / n
	t.Logf("verify allocated %.0f bytes per message", per)
	if per > 8<<10 {
		t.Errorf("verify allocated %.0f bytes per message, want at most 8 KiB", per)
	}
}

// TestSegmentEncoderMemory: what segment writers keep for the next ones
// (buffers pooled per concurrent writer, compressors) stays small, for
// one writer and for four at once (a backup over four connections):
// without WithLowerEncoderMem the compressor's history alone was twice
// the frame size, and with a compressor per writer four writers kept
// 12.3 MiB; they share two now (7.9 MiB; one writer keeps 4.2 instead
// of 3.0: the shared compressor holds two encoders).
func TestSegmentEncoderMemory(t *testing.T) {
	for _, tc := range []struct {
		writers int
		maxMiB  float64
	}{{1, 4.5}, {4, 8.5}} {
		t.Run(fmt.Sprint(tc.writers, " writers"), func(t *testing.T) {
			a, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			body := bigBody(64<<10, 7)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			ws := make([]RecordWriter, tc.writers)
			for i := range ws {
				if ws[i], err = a.NewWriterPart(FolderDir("INBOX"), 1, NewSnapshotID(), i+1); err != nil {
					t.Fatal(err)
				}
			}
			for i := 0; i < 48; i++ { // 3 MiB each: three frames
				for _, w := range ws {
					if err := w.BeginRecord(time.Now(), nil); err != nil {
						t.Fatal(err)
					}
					if _, err := w.Write(body); err != nil {
						t.Fatal(err)
					}
					if _, _, err := w.EndRecord(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, w := range ws {
				if _, err := w.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			kept := float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / (1 << 20)
			t.Logf("%d segment writers keep %.2f MiB for the next ones", tc.writers, kept)
			if kept > tc.maxMiB {
				t.Errorf("%d segment writers keep %.2f MiB for the next ones, want at most %.1f", tc.writers, kept, tc.maxMiB)
			}
			runtime.KeepAlive(a)
		})
	}
}
