package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/mailvault/mailvault/formats"
)

// TestSelectionMatchesNothing: a selection naming a folder, pattern or
// message filter that matches nothing is an error naming what matched
// nothing; "nothing was deleted" is an answer, not an error.
func TestSelectionMatchesNothing(t *testing.T) {
	b := newBuilder(t)
	s1 := b.snapshot(day, []msgSpec{
		{"INBOX", body(1, "invoice"), nil, day},
		{"Work", body(2, "report"), nil, day},
	}, nil, nil)
	s2 := b.snapshot(day.AddDate(0, 0, 1), []msgSpec{{"INBOX", body(3, "later"), nil, day}}, map[string][]string{"INBOX": {"1:1"}}, nil)
	tests := []struct {
		name string
		sel  Selection
		want []string // in the error; nil: no error
	}{
		{"unknown folder", Selection{Folders: []string{"Typo"}}, []string{`"Typo"`, "no folder"}},
		{"one of two folders unknown", Selection{Folders: []string{"INBOX", "Typo"}}, []string{`"Typo"`}},
		{"folder in another case", Selection{Folders: []string{"work"}}, []string{`"work"`, `"Work"`}},
		{"include matching nothing", Selection{Include: []string{"Wrk*"}}, []string{`"Wrk*"`}},
		{"folders excluded away", Selection{Folders: []string{"Work"}, Exclude: []string{"W*"}}, []string{"no folder"}},
		{"subject matching nothing", Selection{Subject: "no such subject"}, []string{"--subject", "no such subject"}},
		{"from in a folder matching nothing", Selection{Folders: []string{"Work"}, From: "alice@"}, []string{"--from", "alice@", "Work"}},
		{"message-id matching nothing", Selection{MessageID: "<nope@x>"}, []string{"--message-id"}},
		{"deleted since, with a filter matching nothing", Selection{DeletedSince: s1.ID, Subject: "zzz"}, []string{"--subject"}},
		{"matching folder and messages", Selection{Folders: []string{"INBOX"}, Subject: "later"}, nil},
		{"empty folder without a filter", Selection{Snapshot: s2.ID, Folders: []string{"Work"}}, nil},
		{"nothing deleted is an answer", Selection{DeletedSince: s2.ID}, nil},
	}
	for _, tt := range tests {
		s, err := selectT(t, b.a, tt.sel)
		if tt.want == nil {
			if err != nil {
				t.Errorf("%s: Select = %v, want no error", tt.name, err)
			}
			continue
		}
		if !errors.Is(err, ErrSelection) {
			t.Errorf("%s: Select = %v, %v; want an error wrapping ErrSelection", tt.name, s, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not name %s", tt.name, err, w)
			}
		}
	}
	s, err := selectT(t, b.a, Selection{DeletedSince: s2.ID})
	if err != nil || !s.NothingDeleted {
		t.Errorf("deleted since the chosen snapshot: %v, NothingDeleted %v; want it set", err, s != nil && s.NothingDeleted)
	}
	s, err = selectT(t, b.a, Selection{DeletedSince: s1.ID})
	if err != nil || s.NothingDeleted {
		t.Errorf("deleted since the first snapshot: %v, NothingDeleted %v; want false (one was deleted)", err, s != nil && s.NothingDeleted)
	}
}

// damage flips a byte in the middle of a file of the archive.
func damage(t *testing.T, path string, at float64) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := int(float64(len(data)) * at)
	data[i] ^= 0x5a
	data[i+1] ^= 0xa5
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// targetSums lists the SHA-256 of every message a memTarget holds, by
// folder, and the number of bytes it holds.
func targetSums(tg *memTarget) (map[string][]string, int64) {
	out := map[string][]string{}
	var n int64
	for f, msgs := range tg.folders {
		for _, m := range msgs {
			s := sha256.Sum256(m)
			out[f] = append(out[f], hex.EncodeToString(s[:]))
			n += int64(len(m))
		}
	}
	return out, n
}

// TestRestoreSkipsUnreadable: a damaged segment and a missing one do not
// stop the restore: every readable message of every folder is restored,
// the others are skipped, none is stored with wrong bytes, and the counts
// are what the target holds.
func TestRestoreSkipsUnreadable(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 60; i++ {
		folder := []string{"INBOX", "Work", "Other"}[i%3]
		extra := fmt.Sprintf("pad%d", i)
		if folder == "Work" {
			// Incompressible, about 3 MiB in all: several zstd frames,
			// so that damage in one leaves the others readable.
			raw := make([]byte, 110<<10)
			for j := range raw {
				raw[j] = byte(rng.Uint32())
			}
			extra = base64.StdEncoding.EncodeToString(raw)
		}
		msgs = append(msgs, msgSpec{folder, body(i, extra), nil, day})
	}
	s1 := b.snapshot(day, msgs, nil, nil)
	s2 := b.snapshot(day.AddDate(0, 0, 1), []msgSpec{{"Later", body(100, ""), nil, day}, {"Later", body(101, ""), nil, day}}, nil, nil)
	var work string
	for _, g := range s1.Segments {
		if strings.Contains(g.Path, formats.FolderDir("Work")) {
			work = g.Path
		}
	}
	damage(t, filepath.Join(b.a.Root, filepath.FromSlash(work)), 0.6)
	if err := os.Remove(filepath.Join(b.a.Root, filepath.FromSlash(s2.Segments[0].Path))); err != nil {
		t.Fatal(err)
	}
	tg := newMemTarget()
	var last Progress
	rep, err := restoreAll(t, b, Selection{}, tg, Options{Window: 4, Progress: func(p Progress) { last = p }})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("restore of a damaged archive: %v, want ErrPartial", err)
	}
	if last.Done != last.Total || last.Total != rep.Messages || last.Stored != rep.Stored || last.Failed != rep.Unreadable || last.DoneBytes != rep.Bytes {
		t.Errorf("last progress %+v; report: %d selected (%d bytes), %d appended, %d unreadable", last, rep.Messages, rep.Bytes, rep.Stored, rep.Unreadable)
	}
	got, _ := targetSums(tg)
	archived := map[string]map[string]bool{}
	for f, ms := range b.state {
		archived[f] = map[string]bool{}
		for _, m := range ms {
			archived[f][m.SHA256] = true
		}
	}
	held := 0
	for f, sums := range got {
		for _, s := range sums {
			held++
			if !archived[f][s] {
				t.Errorf("%s holds a message with bytes the archive never had (damaged bytes restored)", f)
			}
		}
	}
	if len(got["INBOX"]) != len(b.state["INBOX"]) || len(got["Other"]) != len(b.state["Other"]) {
		t.Errorf("undamaged folders: INBOX %d of %d, Other %d of %d restored", len(got["INBOX"]), len(b.state["INBOX"]), len(got["Other"]), len(b.state["Other"]))
	}
	if len(got["Work"]) == 0 || len(got["Work"]) == len(b.state["Work"]) {
		t.Errorf("damaged folder: %d of %d restored, want the readable ones only", len(got["Work"]), len(b.state["Work"]))
	}
	if rep.Stored != held {
		t.Errorf("report says %d appended, the target holds %d", rep.Stored, held)
	}
	_, heldBytes := targetSums(tg)
	if rep.StoredBytes != heldBytes || rep.Bytes == heldBytes {
		t.Errorf("report says %d bytes appended (of %d selected), the target holds %d", rep.StoredBytes, rep.Bytes, heldBytes)
	}
	if rep.Stored+rep.Unreadable != rep.Messages || rep.NotRestored != 0 || rep.Status != StatusPartial {
		t.Errorf("appended %d + unreadable %d != selected %d (not restored %d, status %q)", rep.Stored, rep.Unreadable, rep.Messages, rep.NotRestored, rep.Status)
	}
	if !strings.Contains(err.Error(), fmt.Sprintf("%d unreadable in the archive", rep.Unreadable)) {
		t.Errorf("error %q does not say how many were unreadable", err)
	}
	for _, fp := range rep.Folders {
		if len(fp.Unreadable) != fp.Messages-fp.Stored {
			t.Errorf("%s: %d unreadable listed, %d of %d appended", fp.Source, len(fp.Unreadable), fp.Stored, fp.Messages)
		}
		for _, u := range fp.Unreadable {
			seg := work
			if fp.Source == "Later" {
				seg = s2.Segments[0].Path
			}
			if u.Key == "" || !strings.HasPrefix(u.Location, seg+"@") || u.Reason == "" {
				t.Errorf("%s: unreadable message %+v does not name its key, segment and offset, and why", fp.Source, u)
			}
		}
	}
	if got := len(rep.Folders[1].Unreadable); rep.Folders[1].Source != "Later" || got != 2 {
		t.Errorf("the folder whose segment is missing: %d unreadable listed, want 2", got)
	}
}

// TestVerifier: the bytes a target gets from the archive are checked,
// and a wrong last chunk is never handed over.
func TestVerifier(t *testing.T) {
	good := []byte(strings.Repeat("0123456789", 1000))
	sum := sha256.Sum256(good)
	sha := hex.EncodeToString(sum[:])
	bad := append([]byte{}, good...)
	bad[len(bad)-3] ^= 1
	tests := []struct {
		name  string
		r     io.Reader
		size  int64
		sha   string
		ok    bool
		whole bool // every byte may be handed over
	}{
		{"good", bytes.NewReader(good), int64(len(good)), sha, true, true},
		{"good, no hash recorded", bytes.NewReader(good), int64(len(good)), "", true, true},
		{"one byte changed", bytes.NewReader(bad), int64(len(bad)), sha, false, false},
		{"short", bytes.NewReader(good[:500]), int64(len(good)), sha, false, false},
		{"read error", io.MultiReader(bytes.NewReader(good[:500]), iotest.ErrReader(errors.New("CRC check failed"))), int64(len(good)), sha, false, false},
		{"empty", bytes.NewReader(nil), 0, hex.EncodeToString(func() []byte { s := sha256.Sum256(nil); return s[:] }()), true, true},
		{"empty, wrong hash", bytes.NewReader(nil), 0, sha, false, true},
	}
	for _, tt := range tests {
		v := newVerifier(tt.r, tt.size, tt.sha)
		var got bytes.Buffer
		_, err := io.Copy(&got, iotest.OneByteReader(v))
		if (err == nil) != tt.ok || (v.err == nil) != tt.ok {
			t.Errorf("%s: copy error %v, verifier error %v; want ok=%v", tt.name, err, v.err, tt.ok)
		}
		if !tt.whole && int64(got.Len()) >= tt.size {
			t.Errorf("%s: %d of %d bytes handed over, want fewer", tt.name, got.Len(), tt.size)
		}
		if tt.ok && !bytes.Equal(got.Bytes(), good[:tt.size]) {
			t.Errorf("%s: bytes differ", tt.name)
		}
	}
	// With large reads too: the whole last chunk is withheld.
	v := newVerifier(bytes.NewReader(bad), int64(len(bad)), sha)
	n, err := io.Copy(io.Discard, v)
	if err == nil || n >= int64(len(bad)) {
		t.Errorf("damaged message read in large chunks: %d of %d bytes handed over, err %v; want fewer and an error", n, len(bad), err)
	}
}

// TestRestoreFolderRefused: a folder the target cannot hold is reported
// and the others are restored (exit 3, not a stop).
func TestRestoreFolderRefused(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 9; i++ {
		msgs = append(msgs, msgSpec{[]string{"INBOX", "Bad", "Good"}[i%3], body(i, ""), nil, day})
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	tg.refuse = "Bad"
	var last Progress
	rep, err := restoreAll(t, b, Selection{}, tg, Options{Progress: func(p Progress) { last = p }})
	if !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "1 folders the target refused (3 messages)") {
		t.Fatalf("restore with a refused folder: %v", err)
	}
	if len(tg.folders["INBOX"]) != 3 || len(tg.folders["Good"]) != 3 || rep.Stored != 6 || rep.NotRestored != 3 || rep.FailedFolders != 1 {
		t.Errorf("INBOX %d, Good %d, stored %d, not restored %d, failed folders %d; want 3, 3, 6, 3, 1",
			len(tg.folders["INBOX"]), len(tg.folders["Good"]), rep.Stored, rep.NotRestored, rep.FailedFolders)
	}
	for _, fp := range rep.Folders {
		if (fp.Error != "") != (fp.Source == "Bad") || fp.Source == "Bad" && fp.NotRestored != 3 {
			t.Errorf("%s: error %q, not restored %d", fp.Source, fp.Error, fp.NotRestored)
		}
	}
	if last.Stored != 6 || last.Failed != 3 || last.Done != 9 || last.Done != last.Total || last.DoneBytes != last.Bytes {
		t.Errorf("last progress %+v, want 6 stored, 3 failed, all done", last)
	}
}

// TestRestoreOverQuotaCountsWhatTheTargetTook: appends in flight when the
// target says over quota, on this connection and on the others, are
// waited for and counted: the number in the error is the number of
// messages the target holds.
func TestRestoreOverQuotaCountsWhatTheTargetTook(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for f := 0; f < 4; f++ {
		for i := 0; i < 25; i++ {
			pad := 10
			if i%3 == 0 {
				pad = 3000 // big ones hit the quota first; small ones still fit
			}
			msgs = append(msgs, msgSpec{fmt.Sprintf("F%d", f), body(100*f+i, strings.Repeat("x", pad)), nil, day})
		}
	}
	b.snapshot(day, msgs, nil, nil)
	for _, conns := range []int{1, 3} {
		tg := newMemTarget()
		tg.quotaBytes = 9000
		var mu sync.Mutex
		open := func(context.Context) (Target, error) { return &lockedTarget{mu: &mu, m: tg}, nil }
		selected, err := selectT(t, b.a, Selection{})
		if err != nil {
			t.Fatal(err)
		}
		var last Progress
		var pmu sync.Mutex
		progress := func(p Progress) { pmu.Lock(); last = p; pmu.Unlock() }
		rep, err := Run(context.Background(), b.a, selected, &lockedTarget{mu: &mu, m: tg}, Options{Window: 8, Connections: conns, Open: open, Sleep: noSleep, Progress: progress})
		if !errors.Is(err, ErrOverQuota) {
			t.Fatalf("%d connections: %v, want over quota", conns, err)
		}
		if want := fmt.Sprintf("after %d messages were restored", tg.total()); !strings.Contains(err.Error(), want) {
			t.Errorf("%d connections: %q, want %q (what the target holds)", conns, err, want)
		}
		if rep.Stored != tg.total() || last.Stored != tg.total() || rep.Status != StatusStopped || rep.NotRestored != rep.Messages-tg.total() {
			t.Errorf("%d connections: report says %d appended (%s, %d not restored), progress %d, target holds %d of %d", conns, rep.Stored, rep.Status, rep.NotRestored, last.Stored, tg.total(), rep.Messages)
		}
	}
}

// TestDeletedSinceAcrossRename: messages deleted from a folder renamed
// between the two snapshots are chosen by --deleted-since (the old
// selection compared the two snapshots' folders by name and found none).
func TestDeletedSinceAcrossRename(t *testing.T) {
	b := newBuilder(t)
	s1 := b.snapshot(day, []msgSpec{
		{"Old", body(1, ""), nil, day}, {"Old", body(2, ""), nil, day}, {"Old", body(3, ""), nil, day},
	}, nil, nil)
	// The folder renamed to New on the server, and message 1:2 deleted.
	s2 := &formats.Snapshot{ID: formats.NewSnapshotID(), Seq: 2, Parent: s1.ID, Source: "imap://test", Protocol: "imap",
		Status: formats.StatusComplete, Started: day.AddDate(0, 0, 1), Finished: day.AddDate(0, 0, 1),
		Folders: []formats.Folder{{Name: "New", Delimiter: "/", Dir: formats.FolderDir("Old"), Status: formats.FolderOK}},
		Changes: []formats.Change{{Folder: "New", Event: formats.EventRenamed, From: "Old", Gone: []string{"1:2"}}}}
	if err := b.a.Commit(s2); err != nil {
		t.Fatal(err)
	}
	s, err := selectT(t, b.a, Selection{DeletedSince: s1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if s.NothingDeleted || len(s.Folders) != 1 || s.Folders[0].Folder.Name != "New" || s.Folders[0].Messages != 1 {
		t.Fatalf("selected %+v (nothing deleted: %v), want New with 1 message", s.Folders, s.NothingDeleted)
	}
	var keys []string
	s.Each(s.Folders[0], func(m *formats.MessageState) error {
		keys = append(keys, m.Key)
		return nil
	})
	if strings.Join(keys, ",") != "1:2" {
		t.Errorf("chose %v, want 1:2", keys)
	}
}
