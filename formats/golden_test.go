package formats

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files of the current format version")

// goldenSnapshot uses every field of a version 1 manifest.
func goldenSnapshot() *Snapshot {
	t0 := time.Date(2026, 11, 22, 1, 21, 41, 0, time.UTC)
	return &Snapshot{
		Version: 1, ID: "5e6f7a8b", Seq: 2, Parent: "1a2b3c4d",
		Source: "imaps://alice@mail.example.com:993", Protocol: "imap",
		Started: t0, Finished: t0.Add(3 * time.Second), Status: StatusPartial,
		Errors: []string{`folder "Junk": connection reset`},
		Folders: []Folder{
			{Name: "INBOX", Delimiter: "/", Dir: "INBOX", UIDValidity: 7, UIDNext: 43, HighestModSeq: 9001, Messages: 41, Status: FolderOK},
			{Name: "Año 2023/Facturas", Delimiter: "/", Attrs: []string{`\HasNoChildren`}, Dir: "A%C3%B1o%202023%2FFacturas", UIDValidity: 8, UIDNext: 3, Messages: 2, Status: FolderUnchanged},
			{Name: "Sent", Delimiter: "/", Attrs: []string{`\Sent`}, SpecialUse: `\Sent`, Dir: "Sent", Status: FolderFailed, Error: "connection reset"},
			{Name: "Archive", Delimiter: "/", Attrs: []string{`\Noselect`}, Status: FolderNoSelect},
		},
		Segments: []Segment{{
			Path: "folders/INBOX/00000002-5e6f7a8b.mbox.zst", Size: 1234, USize: 5678, Records: 2,
			SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
			Frames: [][2]int64{{0, 0}, {700, 4000}},
		}},
		Changes: []Change{
			{Folder: "INBOX", Added: []Message{
				{Key: "7:41", SHA256: "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae", Size: 2417,
					InternalDate: t0.Add(-time.Hour), Flags: []string{`\Seen`, "$Label1"}, MessageID: "<a@example.com>",
					From: "Jürgen <j@example.com>", To: "alice@example.com", Subject: "Grüße", Date: "Sun, 22 Nov 2026 00:21:41 +0000",
					Seg: "folders/INBOX/00000002-5e6f7a8b.mbox.zst", Off: 0},
				{Key: "7:42", SHA256: "fcde2b2edba56bf408601fb721fe9b5c338d10ee429ea04fae5511b68fbf8fb9", Size: 3000,
					InternalDate: t0, Seg: "folders/INBOX/00000002-5e6f7a8b.mbox.zst", Off: 2470},
			}, Flags: []FlagChange{{Key: "7:1", Flags: []string{`\Answered`, `\Seen`}}}, Gone: []string{"7:2", "7:3"}},
			{Folder: "Año 2023/Facturas", Event: EventRenamed, From: "Facturas"},
			{Folder: "Old", Event: EventDeleted},
			{Folder: "Drafts", Event: EventUIDValidity, Gone: []string{"3:1"}},
		},
	}
}

// TestGoldenManifest pins the bytes a version 1 manifest is written as
// (EncodeSnapshot, the version 1 encoder), and checks that the golden bytes
// decode to the same snapshot.
func TestGoldenManifest(t *testing.T) {
	path := filepath.Join("testdata", "golden", "manifest-v1.json")
	s := goldenSnapshot()
	got, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("EncodeSnapshot() =\n%s\nwant (%s)\n%s", got, path, want)
	}
	dec, err := DecodeSnapshot(want)
	if err != nil {
		t.Fatalf("DecodeSnapshot(%s) = %v", path, err)
	}
	if !reflect.DeepEqual(dec, s) {
		t.Errorf("DecodeSnapshot(%s) =\n%+v\nwant\n%+v", path, dec, s)
	}
}

// TestGoldenManifestV2 pins the bytes of a version 2 manifest: the header
// and its delta files as CommitDeltas writes them for the golden snapshot,
// and checks that the golden files read back (ReadSnapshot) to the same
// snapshot. Rewrite with -update only for a deliberate format change.
func TestGoldenManifestV2(t *testing.T) {
	dir := filepath.Join("testdata", "golden", "manifest-v2")
	a, err := Create(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.CommitDeltas(goldenSnapshot(), nil); err != nil {
		t.Fatal(err)
	}
	got := treeFiles(t, filepath.Join(a.Root, SnapshotsDir))
	if *update {
		os.RemoveAll(dir)
		for rel, b := range got {
			os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755)
			if err := os.WriteFile(filepath.Join(dir, rel), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := treeFiles(t, dir)
	if len(want) == 0 {
		t.Fatalf("no golden files in %s", dir)
	}
	for rel, b := range want {
		if !bytes.Equal(got[rel], b) {
			t.Errorf("%s: written\n%q\nwant (%s)\n%q", rel, got[rel], dir, b)
		}
	}
	for rel := range got {
		if want[rel] == nil {
			t.Errorf("%s written, not in %s", rel, dir)
		}
	}
	// The golden files read back as the snapshot.
	b, err := Create(filepath.Join(t.TempDir(), "read"))
	if err != nil {
		t.Fatal(err)
	}
	for rel, data := range want {
		p := filepath.Join(b.Root, SnapshotsDir, rel)
		os.MkdirAll(filepath.Dir(p), 0o700)
		os.WriteFile(p, data, 0o600)
	}
	files, err := b.ListSnapshots()
	if err != nil || len(files) != 1 {
		t.Fatalf("ListSnapshots = %v, %v", files, err)
	}
	dec, err := b.ReadSnapshot(files[0])
	if err != nil {
		t.Fatalf("ReadSnapshot(%s) = %v", dir, err)
	}
	s := goldenSnapshot()
	s.Version = ManifestVersion2
	if !reflect.DeepEqual(dec, s) {
		t.Errorf("ReadSnapshot(%s) =\n%+v\nwant\n%+v", dir, dec, s)
	}
}

// treeFiles returns every file under dir by its slash path relative to it.
func treeFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.ToSlash(rel)] = b
		return nil
	})
	return out
}
