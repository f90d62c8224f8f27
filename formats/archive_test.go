package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
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

// writeSnapshot stores bodies in one new segment of folder and commits a
// snapshot with them; it returns the snapshot.
func writeSnapshot(t *testing.T, a *Archive, parent *Snapshot, folder string, bodies [][]byte, abortEvery int) *Snapshot {
	t.Helper()
	seq, parentID := 1, ""
	if parent != nil {
		seq, parentID = parent.Seq+1, parent.ID
	}
	id := NewSnapshotID()
	dir := FolderDir(folder)
	w, err := a.NewSegment(dir, seq, id)
	if err != nil {
		t.Fatal(err)
	}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	var added []Message
	for i, b := range bodies {
		if abortEvery > 0 && i%abortEvery == 0 {
			// A record that fails half-way leaves nothing behind.
			if err := w.BeginRecord(date); err != nil {
				t.Fatal(err)
			}
			w.Write(bytes.Repeat([]byte("junk line\n"), 1+len(b)/5))
			if err := w.AbortRecord(); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.BeginRecord(date); err != nil {
			t.Fatal(err)
		}
		for p := b; len(p) > 0; {
			n := min(len(p), 1+rand.IntN(70000))
			if _, err := w.Write(p[:n]); err != nil {
				t.Fatal(err)
			}
			p = p[n:]
		}
		off, size, err := w.EndRecord()
		if err != nil {
			t.Fatal(err)
		}
		if size != int64(len(b)) {
			t.Fatalf("EndRecord size = %d, want %d", size, len(b))
		}
		added = append(added, Message{Key: fmt.Sprintf("%d:%d", seq, i+1), SHA256: sha(b), Size: size, InternalDate: date, Seg: w.Path(), Off: off})
	}
	seg, err := w.Commit()
	if err != nil {
		t.Fatal(err)
	}
	s := &Snapshot{ID: id, Seq: seq, Parent: parentID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Folders:  []Folder{{Name: folder, Dir: dir, Status: FolderOK, Messages: uint32(len(bodies))}},
		Segments: []Segment{seg},
		Changes:  []Change{{Folder: folder, Added: added}},
	}
	if err := a.Commit(s); err != nil {
		t.Fatal(err)
	}
	return s
}

func bigBody(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = "From abc\r\n>xyz \x00\xff"[r.IntN(17)]
	}
	return b
}

func TestArchiveRoundTrip(t *testing.T) {
	root := t.TempDir()
	a, err := Create(root)
	if err != nil {
		t.Fatal(err)
	}
	bodies := append([][]byte{}, edgeBodies...)
	bodies = append(bodies, bigBody(9<<20, 1), []byte("after big\n"), bigBody(FrameSize-3, 2), bigBody(100, 3))
	for i := 0; i < 300; i++ {
		bodies = append(bodies, bigBody(20000+i, uint64(i+10)))
	}
	s1 := writeSnapshot(t, a, nil, "INBOX", bodies, 7)
	s2 := writeSnapshot(t, a, s1, "INBOX", [][]byte{[]byte("second run\n")}, 0)

	a2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := a2.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[1].ID != s2.ID {
		t.Fatalf("Snapshots() = %d snapshots, want 2", len(snaps))
	}
	st, err := Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	f := st.Folders["INBOX"]
	if len(f.Archived) != len(bodies)+1 {
		t.Fatalf("state has %d messages, want %d", len(f.Archived), len(bodies)+1)
	}
	for i, m := range f.Archived[:len(bodies)] {
		r, err := a2.OpenMessage(st, &m.Message)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, bodies[i]) {
			t.Fatalf("message %d: read %d bytes, want %d (equal prefix %v)", i, len(got), len(bodies[i]), bytes.HasPrefix(bodies[i], got))
		}
	}
	// A MessageReader gives the same bytes in archive order, in reverse
	// order and with messages left half-read.
	mr := a2.NewMessageReader(st)
	for pass, order := range [][]int{seq(len(bodies)), reverse(seq(len(bodies))), seq(len(bodies))} {
		for _, i := range order {
			r, err := mr.Open(&f.Archived[i].Message)
			if err != nil {
				t.Fatalf("pass %d message %d: %v", pass, i, err)
			}
			if pass == 2 && i%3 == 0 {
				io.CopyN(io.Discard, r, int64(len(bodies[i])/2))
				continue
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, bodies[i]) {
				t.Fatalf("pass %d message %d: %d bytes, %v; want %d", pass, i, len(got), err, len(bodies[i]))
			}
		}
	}
	mr.Close()
	rep, err := a2.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Messages != len(bodies)+1 || len(rep.Orphans) != 0 {
		t.Fatalf("Verify = %+v", rep)
	}
	// Frames stay a few MiB: random access never decodes much.
	for _, g := range st.Segments {
		for i := 1; i < len(g.Frames); i++ {
			if d := g.Frames[i][1] - g.Frames[i-1][1]; d > FrameSize {
				t.Errorf("frame %d of %s holds %d bytes", i-1, g.Path, d)
			}
		}
	}
	if _, err := exec.LookPath("zstd"); err == nil {
		// The zstd CLI reads the concatenated segments as one mboxrd stream.
		var segs []string
		for _, s := range snaps {
			for _, g := range s.Segments {
				segs = append(segs, filepath.Join(root, g.Path))
			}
		}
		out, err := exec.Command("zstd", append([]string{"-dc"}, segs...)...).Output()
		if err != nil {
			t.Fatalf("zstd -dc: %v", err)
		}
		if n := bytes.Count(out, []byte("\nFrom MAILER-DAEMON ")) + 1; n != len(bodies)+1 {
			t.Errorf("zstd -dc output has %d From lines, want %d", n, len(bodies)+1)
		}
	}
}

func TestVerifyFindsDamage(t *testing.T) {
	root := t.TempDir()
	a, _ := Create(root)
	s := writeSnapshot(t, a, nil, "INBOX", edgeBodies, 0)
	p := filepath.Join(root, s.Segments[0].Path)
	data, _ := os.ReadFile(p)
	data[len(data)/2] ^= 0x40
	os.WriteFile(p, data, 0o600)
	rep, err := a.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("Verify after flipping a bit = OK, want a problem")
	}
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
			return bytes.Replace(b, []byte(`"mailvault_manifest":1`), []byte(`"mailvault_manifest":9`), 1)
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
	os.WriteFile(filepath.Join(root, ConfigFile), []byte(`{"format":"mailvault","version":2,"storage":"mbox","compression":"zstd"}`), 0o600)
	if _, err := Open(root); !errors.Is(err, ErrNewerVersion) {
		t.Fatalf("Open(version 2) error = %v, want ErrNewerVersion", err)
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

func TestOrphansRemoved(t *testing.T) {
	root := t.TempDir()
	a, _ := Create(root)
	writeSnapshot(t, a, nil, "INBOX", edgeBodies[:1], 0)
	w, _ := a.NewSegment("INBOX", 2, "deadbeef")
	w.BeginRecord(time.Now())
	w.Write([]byte("uncommitted"))
	w.EndRecord()
	w.Commit() // committed segment, but no manifest names it
	os.WriteFile(filepath.Join(root, SnapshotsDir, "00000002-deadbeef.json.tmp"), []byte("{"), 0o600)
	snaps, _ := a.Snapshots()
	st, _ := Replay(snaps, "")
	removed, err := a.RemoveOrphans(st)
	if err != nil || len(removed) != 2 {
		t.Fatalf("RemoveOrphans = %v, %v; want 2 files", removed, err)
	}
	rep, _ := a.Verify(nil)
	if !rep.OK() || len(rep.Orphans) != 0 {
		t.Fatalf("Verify after cleanup = %+v", rep)
	}
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
