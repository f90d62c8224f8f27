package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestV1ArchiveContinued: a frozen version 1 archive is continued by a
// backup of this version. The run reads the version 1 manifests (into the
// state index), commits a version 2 manifest, raises mailvault.json's
// version to 2 first, and the archive verifies, lists and restores at
// every snapshot, old and new.
func TestV1ArchiveContinued(t *testing.T) {
	for name := range fixtureArchives {
		t.Run(name, func(t *testing.T) {
			vault := readTar(t, filepath.Join(fixtureRoot, "v1", name+".tar"))
			before := fixtureSnapshotIDs(t, vault)
			oldInbox := lsFolder(t, vault, before[len(before)-1], "INBOX")

			// Another UIDVALIDITY than the archive's INBOX (the fake's is
			// 1000 and up): its old messages are gone, the new one added.
			srv := imaptest.StartFake(t, imaptest.FakeOptions{User: "alice", Password: "pw", Folders: map[string][]imaptest.FakeMessage{
				"INBOX": {{InternalDate: time.Date(2026, 12, 6, 1, 2, 3, 0, time.UTC), Body: []byte("Subject: after the upgrade\r\n\r\nversion 2\r\n")}},
			}})
			env := map[string]string{"MAILVAULT_PASSWORD": "pw"}
			if code, out, errs := runCLI(t, env, "backup", "--insecure-plaintext", "imap://alice@"+srv.Addr, vault); code != 0 {
				t.Fatalf("backup into the version 1 archive: exit %d: %s %s", code, out, errs)
			}
			a, err := formats.Open(vault)
			if err != nil {
				t.Fatal(err)
			}
			if a.Config.Version != formats.FormatVersion {
				t.Errorf("mailvault.json version %d after a version 2 commit, want %d", a.Config.Version, formats.FormatVersion)
			}
			after := fixtureSnapshotIDs(t, vault)
			if len(after) != len(before)+1 {
				t.Fatalf("%d snapshots after the run, want %d", len(after), len(before)+1)
			}
			files, _ := a.ListSnapshots()
			for i, sf := range files {
				b, _ := os.ReadFile(sf.Path)
				want := `{"mailvault_manifest":1,`
				if i == len(files)-1 {
					want = `{"mailvault_manifest":2,`
				}
				if !bytes.HasPrefix(b, []byte(want)) {
					t.Errorf("manifest %d starts %.30q, want %q", i+1, b, want)
				}
			}
			if code, out, errs := runCLI(t, nil, "verify", vault); code != 0 {
				t.Fatalf("verify: exit %d: %s %s", code, out, errs)
			}
			// The old snapshot reads as before; the new one has the new
			// message present and the old INBOX gone (a new UIDVALIDITY).
			got := lsFolder(t, vault, before[len(before)-1], "INBOX")
			if len(got) != len(oldInbox) {
				t.Errorf("old snapshot's INBOX: %d messages, %d before the run", len(got), len(oldInbox))
			}
			latest := lsFolder(t, vault, after[len(after)-1], "INBOX")
			present := 0
			for k, m := range latest {
				if !m.Gone {
					present++
				} else if _, ok := oldInbox[k]; !ok {
					t.Errorf("latest INBOX: %s gone, not in the archive before", k)
				}
			}
			if present != 1 || len(latest) != len(oldInbox)+1 {
				t.Errorf("latest INBOX: %d present of %d, want 1 of %d", present, len(latest), len(oldInbox)+1)
			}
			dst := filepath.Join(t.TempDir(), "eml")
			if code, out, errs := runCLI(t, nil, "restore", vault, "eml:"+dst); code != 0 {
				t.Fatalf("restore: exit %d: %s %s", code, out, errs)
			}
			var restored []string
			filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
					b, _ := os.ReadFile(p)
					restored = append(restored, string(b))
				}
				return nil
			})
			if len(restored) != 1 || !strings.Contains(restored[0], "after the upgrade") {
				t.Errorf("restore of the latest snapshot gave %d messages, want the one on the server", len(restored))
			}
		})
	}
}
