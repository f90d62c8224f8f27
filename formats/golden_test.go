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
