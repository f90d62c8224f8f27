package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
)

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			fi, _ := d.Info()
			n += fi.Size()
		}
		return err
	})
	return n
}

// vaultText is every file of the vault, zstd files decompressed.
func vaultText(t *testing.T, root string) []byte {
	t.Helper()
	var all bytes.Buffer
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if dec, err := zstd.NewReader(bytes.NewReader(data)); err == nil {
			if plain, err := io.ReadAll(dec); err == nil {
				data = plain
			}
			dec.Close()
		}
		all.Write(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.Bytes()
}

// flag sets \Flagged on the message with subject "msg N".
func (m *mailbox) flag(n int) {
	t := m.t
	if _, err := m.c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	found, err := m.c.Search(&imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: fmt.Sprintf("msg %d", n)}}}, nil).Wait()
	if err != nil || len(found.AllSeqNums()) != 1 {
		t.Fatalf("msg %d: %v %v", n, found, err)
	}
	if err := m.c.Store(imap.SeqSetNum(found.AllSeqNums()...), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

// TestForgetPruneThirtySnapshots: 30 backups of a mailbox where mail
// arrives, is flagged and deleted between runs; forget then prune: every
// kept snapshot restores exactly what the server held when it was taken,
// the archive shrinks by what prune says (at least the bytes of the
// messages only forgotten snapshots held, when stored uncompressed), the
// marker of every such message is in no file of the archive, decompressed,
// and the markers of kept ones are. A backup afterwards downloads nothing
// again; a pruned message put back on the server comes back.
func TestForgetPruneThirtySnapshots(t *testing.T) {
	for _, format := range [][]string{{"--format", "mbox"}, {"--format", "maildir"}, {"--format", "maildir", "--compress", "none"}} {
		t.Run(strings.Join(format, " "), func(t *testing.T) {
			m := newMailbox(t, format...)
			for run := 2; run <= 30; run++ {
				m.add(1 + run%3)
				if run%4 == 0 {
					m.flag(m.n - 1)
				}
				if run%2 == 0 {
					// The oldest message still there goes.
					for k := 1; k <= m.n; k++ {
						if m.held[m.bySub[fmt.Sprintf("msg %d", k)]] {
							m.del(k)
							break
						}
					}
				}
				m.backup()
			}
			code, out, errs := runCLI(t, nil, "forget", m.vault, "--keep-last", "5")
			if code != 0 {
				t.Fatalf("forget: exit %d: %s %s", code, out, errs)
			}
			kept := m.checkRestores()
			if len(kept) != 5 {
				t.Fatalf("kept %d snapshots, want 5", len(kept))
			}
			keptBodies := map[string]bool{}
			for _, id := range kept {
				for _, b := range m.dumps[indexOf(m.ids, id)] {
					keptBodies[b] = true
				}
			}
			var deadBytes int
			var dead, live []string
			for _, b := range m.bySub {
				mark := regexp.MustCompile(`MARK\d+K`).FindString(b)
				if keptBodies[b] {
					live = append(live, mark)
				} else {
					dead = append(dead, mark)
					deadBytes += len(b)
				}
			}
			text := vaultText(t, m.vault)
			for _, mark := range dead {
				if !bytes.Contains(text, []byte(mark)) {
					t.Fatalf("%s gone before prune", mark)
				}
			}
			sizeBefore := dirSize(t, filepath.Join(m.vault, "folders"))
			code, out, errs = runCLI(t, nil, "prune", m.vault)
			shrunk := sizeBefore - dirSize(t, filepath.Join(m.vault, "folders"))
			if shrunk <= 0 || format[len(format)-1] == "none" && shrunk < int64(deadBytes) {
				t.Errorf("the archive shrank by %d bytes; the messages only forgotten snapshots held have %d", shrunk, deadBytes)
			}
			if code != 0 {
				t.Fatalf("prune: exit %d: %s %s", code, out, errs)
			}
			t.Logf("%d messages (%d bytes) only in forgotten snapshots; prune: %s", len(dead), deadBytes, strings.TrimSpace(out))
			var removed, copies int
			var freed, after, before string
			if _, err := fmt.Sscanf(out, "removed %d messages (%d stored copies):", &removed, &copies); err != nil || removed != len(dead) {
				t.Fatalf("prune printed %q (%v), want %d messages removed", out, err, len(dead))
			}
			if i := strings.Index(out, "freed "); i >= 0 {
				fmt.Sscanf(out[i:], "freed %s (stored %s was %s", &freed, &after, &before)
			}
			if freed == "" || freed == "0" {
				t.Fatalf("prune printed %q", out)
			}
			m.checkRestores()
			text = vaultText(t, m.vault)
			for _, mark := range dead {
				if bytes.Contains(text, []byte(mark)) {
					t.Fatalf("%s, only in forgotten snapshots, is still in the archive after prune", mark)
				}
			}
			for _, mark := range live {
				if !bytes.Contains(text, []byte(mark)) {
					t.Fatalf("%s, held by a kept snapshot, is gone", mark)
				}
			}

			// A backup now downloads nothing that was pruned.
			code, out, errs = runCLI(t, m.env, "backup", m.url, m.vault, "--insecure-plaintext", "--log-format", "json")
			var sum backupSummary
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); code != 0 || err != nil {
				t.Fatalf("backup: exit %d, %v: %s %s", code, err, out, errs)
			}
			if sum.Added != 0 || sum.Stored != 0 {
				t.Fatalf("backup after prune: %+v, want nothing added", sum)
			}
			// A pruned message put back on the server is stored again.
			back := ""
			for _, b := range m.bySub {
				if !keptBodies[b] {
					back = b
					break
				}
			}
			imaptest.Append(t, m.c, "INBOX", nil, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), []byte(back))
			code, out, errs = runCLI(t, m.env, "backup", m.url, m.vault, "--insecure-plaintext", "--log-format", "json")
			if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); code != 0 || err != nil {
				t.Fatalf("backup: exit %d, %v: %s %s", code, err, out, errs)
			}
			if sum.Added != 1 || sum.Stored != 1 {
				t.Fatalf("backup of a pruned message put back: %+v, want it stored", sum)
			}
		})
	}
}

// TestRetentionHoldsTheLock: while prune (or erase, forget) holds the
// archive lock, a backup fails with the lock message and exit 5, and so
// does a second prune; afterwards the backup runs.
func TestRetentionHoldsTheLock(t *testing.T) {
	m := newMailbox(t)
	m.add(1)
	m.backup()
	a, err := formats.Open(m.vault)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock("prune"); err != nil {
		t.Fatal(err)
	}
	code, _, errs := runCLI(t, m.env, "backup", m.url, m.vault, "--insecure-plaintext", "--quiet")
	if code != exitLocked || !strings.Contains(errs, "locked") {
		t.Fatalf("backup during prune: exit %d, want %d: %s", code, exitLocked, errs)
	}
	for _, args := range [][]string{{"prune", m.vault}, {"erase", m.vault, "--message-id", "1@test"}, {"forget", m.vault, "--keep-last", "1"}} {
		if code, _, errs := runCLI(t, nil, args...); code != exitLocked {
			t.Fatalf("%v during prune: exit %d, want %d: %s", args, code, exitLocked, errs)
		}
	}
	a.Unlock()
	m.backup()
}
