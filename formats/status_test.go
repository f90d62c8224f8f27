package formats

import (
	"path/filepath"
	"testing"
	"time"
)

// TestSnapshotStatusFollowsFolders (issue 10.1): a snapshot is complete
// only when it names no error and no failed folder. Commit never writes
// one that says otherwise, and a manifest that does (4f9b7f8 wrote them
// after a storage error) reads as partial.
func TestSnapshotStatusFollowsFolders(t *testing.T) {
	now := time.Now().UTC()
	tests := []struct {
		name    string
		folders []Folder
		errs    []string
		want    string
	}{
		{"all ok", []Folder{{Name: "A", Status: FolderOK}, {Name: "B", Status: FolderUnchanged}, {Name: "C", Status: FolderNoSelect}}, nil, StatusComplete},
		{"failed folder", []Folder{{Name: "A", Status: FolderOK}, {Name: "B", Status: FolderFailed, Error: "disk full"}}, nil, StatusPartial},
		{"in progress", []Folder{{Name: "A", Status: FolderFailed, Error: "in progress at a checkpoint"}}, nil, StatusPartial},
		{"error", []Folder{{Name: "A", Status: FolderOK}}, []string{"folder \"B\": gone"}, StatusPartial},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Snapshot{Version: ManifestVersion1, ID: NewSnapshotID(), Seq: 1, Source: "mem://test", Protocol: "imap",
				Started: now, Finished: now, Status: StatusComplete, Folders: tt.folders, Errors: tt.errs}
			// As an old mailvault wrote it: bytes that say complete.
			data, err := EncodeSnapshot(s)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeSnapshot(data)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status != tt.want {
				t.Errorf("decoded status %s, want %s", got.Status, tt.want)
			}
			a, err := Create(filepath.Join(t.TempDir(), "vault"))
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Commit(s); err != nil {
				t.Fatal(err)
			}
			snaps, err := a.Snapshots()
			if err != nil || len(snaps) != 1 {
				t.Fatalf("Snapshots = %d, %v", len(snaps), err)
			}
			if s.Status != tt.want || snaps[0].Status != tt.want {
				t.Errorf("committed status %s (read back %s), want %s", s.Status, snaps[0].Status, tt.want)
			}
		})
	}
}
