package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestEraseCLI: erase --message-id removes the message from every
// snapshot and its marker from every file of the archive, decompressed;
// every snapshot restores what the server held then, without it; verify
// is clean; the erasure is recorded without the content; a dry run lists
// it and changes nothing; a selection matching nothing is a usage error.
func TestEraseCLI(t *testing.T) {
	for _, format := range [][]string{{"--format", "mbox"}, {"--format", "maildir"}} {
		t.Run(strings.Join(format, " "), func(t *testing.T) {
			m := newMailbox(t, format...)
			for run := 2; run <= 6; run++ {
				m.add(2)
				if run == 4 {
					m.del(3)
				}
				m.backup()
			}
			// msg 3: in snapshots 2 and 3, deleted since; msg 5 still there.
			victims := map[int]string{3: m.bySub["msg 3"], 5: m.bySub["msg 5"]}
			before := treeDigest(t, m.vault)
			code, out, errs := runCLI(t, nil, "erase", m.vault, "--message-id", "<3@test>", "--message-id", "5@test", "--dry-run")
			if code != 0 || strings.Count(out, "would erase  INBOX") != 2 || !strings.Contains(out, "would erase 2 messages") || !strings.Contains(out, "1 of them are still on the server") {
				t.Fatalf("dry run: exit %d:\n%s%s", code, out, errs)
			}
			if treeDigest(t, m.vault) != before {
				t.Fatal("dry run changed the archive")
			}
			code, out, errs = runCLI(t, nil, "erase", m.vault, "--message-id", "<3@test>", "--message-id", "5@test", "--reason", "erasure request 2026-12")
			if code != 0 || !strings.Contains(out, "erased 2 messages") {
				t.Fatalf("erase: exit %d:\n%s%s", code, out, errs)
			}
			text := vaultText(t, m.vault)
			for n := range victims {
				if bytes.Contains(text, []byte(fmt.Sprintf("MARK%04dK", n))) {
					t.Fatalf("the marker of erased msg %d is still in the archive", n)
				}
			}
			for n := 1; n <= m.n; n++ {
				if _, erased := victims[n]; !erased && !bytes.Contains(text, []byte(fmt.Sprintf("MARK%04dK", n))) {
					t.Fatalf("msg %d, not erased, is gone", n)
				}
			}
			for i, dump := range m.dumps {
				var kept []string
				for _, b := range dump {
					if b != victims[3] && b != victims[5] {
						kept = append(kept, b)
					}
				}
				m.dumps[i] = kept
			}
			m.checkRestores()
			entries, err := os.ReadDir(filepath.Join(m.vault, "erasures"))
			if err != nil || len(entries) != 1 {
				t.Fatalf("erasures: %v %v", entries, err)
			}
			data, _ := os.ReadFile(filepath.Join(m.vault, "erasures", entries[0].Name()))
			var rec struct {
				Reason   string `json:"reason"`
				Messages int    `json:"messages"`
			}
			if json.Unmarshal(data, &rec) != nil || rec.Reason != "erasure request 2026-12" || rec.Messages != 2 {
				t.Fatalf("erasure record %s", data)
			}
			// The same erase again (after a kill, say) has nothing left to do.
			if code, out, errs := runCLI(t, nil, "erase", m.vault, "--message-id", "<3@test>", "--message-id", "5@test", "--reason", "again"); code != 0 || !strings.Contains(out, "nothing left to erase") {
				t.Fatalf("the same erase again: exit %d: %s %s", code, out, errs)
			}
			if code, _, errs := runCLI(t, nil, "erase", m.vault, "--message-id", "<3@test>"); code != exitUsage {
				t.Fatalf("erase of nothing: exit %d, want %d: %s", code, exitUsage, errs)
			}
			if code, _, _ := runCLI(t, nil, "erase", m.vault, "--folder", "INBOX"); code != exitUsage {
				t.Fatalf("erase with no message filter: exit %d, want %d", code, exitUsage)
			}
		})
	}
}
