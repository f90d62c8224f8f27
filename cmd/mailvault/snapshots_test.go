package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
)

// TestSnapshotsBytesAreWhatWasStored: the bytes `snapshots` lists for a
// run are what the run stored. A run that stores nothing (a folder
// re-created with a new UIDVALIDITY and the same messages: their bytes are
// already in the archive) lists 0, whatever the archive's format, as its
// backup summary said.
func TestSnapshotsBytesAreWhatWasStored(t *testing.T) {
	for _, format := range [][]string{{"--format", "mbox"}, {"--format", "maildir"}, {"--format", "maildir", "--compress", "none"}} {
		t.Run(strings.Join(format, " "), func(t *testing.T) {
			srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
			c := srv.Dial(t, "alice", "pw")
			date := time.Date(2023, 4, 5, 6, 7, 8, 0, time.UTC)
			bodies := []string{"Subject: one\r\n\r\nfirst message\r\n", "Subject: two\r\n\r\nsecond message\r\n"}
			fill := func() {
				imaptest.Create(t, c, "Work")
				for _, b := range bodies {
					imaptest.Append(t, c, "Work", nil, date, []byte(b))
				}
			}
			fill()
			vault := filepath.Join(t.TempDir(), "vault")
			env := map[string]string{"MAILVAULT_PASSWORD": "pw"}
			url := "imap://alice@" + srv.Addr
			var sums []backupSummary
			backupRun := func(extra ...string) {
				t.Helper()
				args := append([]string{"backup", url, vault, "--insecure-plaintext", "--log-format", "json"}, extra...)
				code, out, errs := runCLI(t, env, args...)
				var sum backupSummary
				if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); code != 0 || err != nil {
					t.Fatalf("backup: exit %d, %v: %s %s", code, err, out, errs)
				}
				sums = append(sums, sum)
			}
			backupRun(format...)
			first := uidValidity(t, vault, "Work")
			if err := c.Delete("Work").Wait(); err != nil {
				t.Fatal(err)
			}
			fill()
			backupRun()
			if uidValidity(t, vault, "Work") == first {
				t.Fatal("the re-created folder kept its UIDVALIDITY; the test needs a new one")
			}
			if sums[0].Bytes == 0 || sums[1].Added != 2 || sums[1].Stored != 0 || sums[1].Bytes != 0 {
				t.Fatalf("backups stored %+v then %+v; want bytes, then 2 added and nothing stored", sums[0], sums[1])
			}

			code, out, errs := runCLI(t, nil, "snapshots", vault, "--json")
			if code != 0 {
				t.Fatalf("snapshots: exit %d: %s", code, errs)
			}
			var lines []snapshotLine
			for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
				var sl snapshotLine
				if err := json.Unmarshal([]byte(l), &sl); err != nil {
					t.Fatalf("snapshots line %q: %v", l, err)
				}
				lines = append(lines, sl)
			}
			if len(lines) != 2 || lines[0].ID != sums[0].Snapshot || lines[1].ID != sums[1].Snapshot {
				t.Fatalf("snapshots = %+v, want the two runs %s %s", lines, sums[0].Snapshot, sums[1].Snapshot)
			}
			if lines[0].Bytes == 0 || lines[1].Bytes != 0 {
				t.Errorf("snapshots lists %d then %d bytes; want some, then 0 (the second run stored nothing)", lines[0].Bytes, lines[1].Bytes)
			}
		})
	}
}
