package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// Tests that what a run reports (status, counts, errors) is what it
// committed.

// expunge removes the messages with the given UIDs from f, as another
// client's EXPUNGE would.
func (f *memFolder) expunge(uids ...uint32) {
	var kept []*memMsg
	for _, m := range f.msgs {
		if slices.Contains(uids, m.uid) {
			m.expunged = true
			continue
		}
		kept = append(kept, m)
	}
	f.msgs = kept
}

// recreate deletes the folder and creates it again (a new UIDVALIDITY)
// with the given bodies.
func (s *memSource) recreate(name string, validity uint32, bodies ...string) *memFolder {
	f := &memFolder{name: name, validity: validity, next: 1, modseq: 1}
	for _, b := range bodies {
		f.add(b)
	}
	s.folders[name] = f
	return f
}

// Expunged implements ExpungeChecker: the keys of the examined folder that
// are no longer in it.
func (s *memSource) Expunged(ctx context.Context, keys []string) ([]string, error) {
	var gone []string
	for _, k := range keys {
		found := false
		for _, m := range s.cur.msgs {
			if makeKey(s.cur.validity, m.uid) == k {
				found = true
			}
		}
		if !found {
			gone = append(gone, k)
		}
	}
	return gone, nil
}

// committed is what the archive's snapshots committed by the run that
// made last hold: its checkpoints and itself.
type committed struct {
	added, stored, gone, flags int
	bytes                      int64
}

// runTotals counts what the snapshots from index first on record: the
// messages added, the distinct locations in files the run wrote (stored)
// with their bytes, keys gone and flag changes.
func runTotals(t *testing.T, a *formats.Archive, first int) committed {
	t.Helper()
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var c committed
	old := map[string]bool{} // locations committed before the run
	for _, s := range snaps[:first] {
		for _, ch := range s.Changes {
			for _, m := range ch.Added {
				old[fmt.Sprint(m.Seg, "@", m.Off)] = true
			}
		}
	}
	seen := map[string]bool{}
	for _, s := range snaps[first:] {
		for _, ch := range s.Changes {
			c.added += len(ch.Added)
			c.gone += len(ch.Gone)
			c.flags += len(ch.Flags)
			for _, m := range ch.Added {
				loc := fmt.Sprint(m.Seg, "@", m.Off)
				if !old[loc] && !seen[loc] {
					seen[loc] = true
					c.stored++
					c.bytes += m.Size
				}
			}
		}
	}
	return c
}

func checkCounts(t *testing.T, res *Result, c committed) {
	t.Helper()
	if res.Added != c.added || res.Stored != c.stored || res.Bytes != c.bytes || res.Gone != c.gone || res.FlagChanges != c.flags {
		t.Errorf("result says added %d stored %d (%d bytes) gone %d flag changes %d; the snapshots committed %d, %d (%d bytes), %d, %d",
			res.Added, res.Stored, res.Bytes, res.Gone, res.FlagChanges, c.added, c.stored, c.bytes, c.gone, c.flags)
	}
}

// lastSnapshot returns the archive's last committed snapshot as read back.
func lastSnapshot(t *testing.T, a *formats.Archive) *formats.Snapshot {
	t.Helper()
	snaps, err := a.Snapshots()
	if err != nil || len(snaps) == 0 {
		t.Fatalf("Snapshots = %d, %v", len(snaps), err)
	}
	return snaps[len(snaps)-1]
}

// TestStorageErrorIsPartial (issue 10.1): a run that cannot write one
// folder (its directory vanishes as its writer commits: ENOENT, like a
// full disk) stops with ErrStorage, and the snapshot it commits is partial
// in the result and in the manifest; the result counts only what was
// committed.
func TestStorageErrorIsPartial(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		for _, name := range []string{"A", "B"} {
			f := src.folder(name, 1)
			for i := 0; i < 3; i++ {
				f.add(fmt.Sprintf("Subject: %s%d\r\n\r\nbody %s %d\r\n", name, i, name, i))
			}
		}
		commits := 0
		hook := func(p string) {
			if p == "segment-before-rename" {
				if commits++; commits == 2 {
					os.RemoveAll(filepath.Join(a.Root, formats.FoldersDir, formats.FolderDir("B")))
				}
			}
		}
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Hook: hook,
			Dial: func(context.Context) (Source, error) { return src, nil }})
		if !errors.Is(err, ErrStorage) {
			t.Fatalf("Run = %v, want ErrStorage", err)
		}
		if res == nil || res.Snapshot == nil {
			t.Fatalf("no snapshot committed")
		}
		if res.Snapshot.Status != formats.StatusPartial {
			t.Errorf("result status %s, want partial", res.Snapshot.Status)
		}
		if s := lastSnapshot(t, a); s.Status != formats.StatusPartial {
			t.Errorf("manifest status %s, want partial", s.Status)
		}
		checkCounts(t, res, runTotals(t, a, 0))
		if res.Added != 3 || res.Stored != 3 {
			t.Errorf("added %d stored %d, want 3 and 3 (folder A)", res.Added, res.Stored)
		}
		if !strings.Contains(err.Error(), "partial snapshot") {
			t.Errorf("error %q does not name the partial snapshot", err)
		}
	})
}

// TestStorageErrorAfterCheckpoint: a writer commit fails after
// checkpoints were committed: the result counts the checkpoints' messages,
// not those the failed writer lost.
func TestStorageErrorAfterCheckpoint(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		f := src.folder("A", 1)
		for i := 0; i < 6; i++ {
			f.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
		}
		commits := 0
		hook := func(p string) {
			if p == "segment-before-rename" {
				if commits++; commits == 2 {
					os.RemoveAll(filepath.Join(a.Root, formats.FoldersDir, formats.FolderDir("A")))
				}
			}
		}
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Hook: hook,
			BatchSize: 2, Checkpoint: time.Nanosecond,
			Dial: func(context.Context) (Source, error) { return src, nil }})
		if !errors.Is(err, ErrStorage) || res == nil || res.Snapshot == nil {
			t.Fatalf("Run = %v, want ErrStorage with a snapshot", err)
		}
		c := runTotals(t, a, 0)
		checkCounts(t, res, c)
		if c.added == 0 || c.added >= 6 {
			t.Errorf("the checkpoints hold %d messages, want some (the first writer's)", c.added)
		}
		if s := lastSnapshot(t, a); s.Status != formats.StatusPartial || res.Snapshot.Status != formats.StatusPartial {
			t.Errorf("status %s (manifest %s), want partial", res.Snapshot.Status, s.Status)
		}
	})
}

// TestSignalAfterLastCommit (issue 10.15): a cancellation that arrives
// once the last snapshot is committed changes nothing: the run reports
// the complete snapshot it committed, without an error.
func TestSignalAfterLastCommit(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	src.folder("INBOX", 1).add("Subject: a\r\n\r\na\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hook := func(p string) {
		if p == "manifest-after-rename" {
			cancel()
		}
	}
	res, err := Run(ctx, a, Options{Source: "mem://test", Protocol: "imap", Hook: hook,
		Dial: func(context.Context) (Source, error) { return src, nil }})
	if err != nil {
		t.Fatalf("Run = %v, want no error: the snapshot was committed complete before the signal", err)
	}
	if res.Snapshot.Status != formats.StatusComplete || lastSnapshot(t, a).Status != formats.StatusComplete {
		t.Errorf("status %s, want complete", res.Snapshot.Status)
	}
}

// TestInboxListedTwice (issue 10.17): INBOX is case-insensitive (RFC
// 3501): a source that lists it twice, in the same or another case, gives
// one folder, backed up once.
func TestInboxListedTwice(t *testing.T) {
	for _, alias := range []string{"INBOX", "Inbox", "inbox"} {
		t.Run(alias, func(t *testing.T) {
			forEachStorage(t, func(t *testing.T, a *formats.Archive) {
				mem := newMemSource()
				in := mem.folder("INBOX", 3)
				for i := 0; i < 4; i++ {
					in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
				}
				mem.folder("Work", 4).add("Subject: w\r\n\r\nw\r\n")
				src := &aliasSource{memSource: mem, alias: alias, of: "INBOX"}
				res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap",
					Dial: func(context.Context) (Source, error) { return src, nil }})
				if err != nil {
					t.Fatalf("Run = %v", err)
				}
				var names []string
				for _, f := range res.Snapshot.Folders {
					names = append(names, f.Name)
				}
				if strings.Join(names, ",") != "INBOX,Work" || res.Added != 5 {
					t.Fatalf("folders %v, added %d; want INBOX,Work and 5", names, res.Added)
				}
				checkArchive(t, a, mem)
			})
		})
	}
}

// aliasSource lists folder of once more, under the name alias, and opens
// it under either name.
type aliasSource struct {
	*memSource
	alias, of string
}

func (s *aliasSource) Folders(ctx context.Context) ([]FolderInfo, error) {
	out, err := s.memSource.Folders(ctx)
	for _, fi := range out {
		if fi.Name == s.of {
			fi.Name = s.alias
			out = append(out, fi)
			break
		}
	}
	return out, err
}

func (s *aliasSource) Examine(ctx context.Context, name string) (FolderStatus, error) {
	if name == s.alias {
		name = s.of
	}
	return s.memSource.Examine(ctx, name)
}

// TestExpungedDuringFetch (issue 17.1): messages expunged by another
// client while their folder is fetched are not failures: the run is
// complete, and the archive holds every message still on the source under
// its own key.
func TestExpungedDuringFetch(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		in := src.folder("INBOX", 7)
		for i := 0; i < 30; i++ {
			in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
		}
		src.onBody = func(s *memSource) {
			if s.fetched == 7 {
				in.expunge(9, 10, 11, 12, 20, 30)
			}
		}
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", BatchSize: 5,
			Dial: func(context.Context) (Source, error) { return src, nil }})
		if err != nil || len(res.Failed) > 0 || res.Snapshot.Status != formats.StatusComplete {
			t.Fatalf("Run = %v (failed %v); want a complete snapshot", err, res.Failed)
		}
		checkArchive(t, a, src)
		checkCounts(t, res, runTotals(t, a, 0))
	})
}

// TestUIDValidityChangeDuringFetch (issue 10.11): a folder deleted and
// created again on the server while the run fetches it is fetched again
// as the new folder (once): the archive never records messages of the old
// folder as present under the new UIDVALIDITY. A folder that changes again
// fails alone (partial), and the next run synchronises it.
func TestUIDValidityChangeDuringFetch(t *testing.T) {
	tests := []struct {
		name     string
		bye      bool // the server drops the connection of the deleted folder
		times    int  // how often the folder is re-created during the run
		wantFail bool
	}{
		{"connection dropped", true, 1, false},
		{"old folder still served", false, 1, false},
		{"changes twice", true, 2, true},
		{"changes twice, still served", false, 2, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachStorage(t, func(t *testing.T, a *formats.Archive) {
				src := newMemSource()
				src.byeOnRecreate = tt.bye
				old := src.folder("Box", 10)
				var bodies []string
				for i := 0; i < 20; i++ {
					b := fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)
					bodies = append(bodies, b)
					old.add(b)
				}
				src.folder("Other", 20).add("Subject: o\r\n\r\no\r\n")
				// Box is deleted and created again while the 4th message of
				// its current incarnation is stored: the new folder holds some
				// of the old messages and a new one.
				done := 0
				count := map[*memFolder]int{}
				src.onBody = func(s *memSource) {
					count[s.cur]++
					if s.cur.name != "Box" || s.cur != s.folders["Box"] || count[s.cur] != 4 || done >= tt.times {
						return
					}
					done++
					nb := append(slices.Clone(bodies[5:8]), fmt.Sprintf("Subject: new %d\r\n\r\nnew\r\n", done))
					s.recreate("Box", uint32(10+done), nb...)
				}
				ctx := context.Background()
				opts := Options{Source: "mem://test", Protocol: "imap", BatchSize: 3,
					Dial: func(context.Context) (Source, error) { return src, nil }}
				res, err := Run(ctx, a, opts)
				if tt.wantFail {
					if !errors.Is(err, ErrPartial) || res.Snapshot.Status != formats.StatusPartial || !slices.Equal(res.Failed, []string{"Box"}) {
						t.Fatalf("Run = %v (status %s, failed %v); want ErrPartial, Box failed", err, res.Snapshot.Status, res.Failed)
					}
				} else if err != nil || res.Snapshot.Status != formats.StatusComplete {
					t.Fatalf("Run = %v; want a complete snapshot", err)
				}
				if done != tt.times {
					t.Fatalf("the folder was re-created %d times, want %d", done, tt.times)
				}
				checkCounts(t, res, runTotals(t, a, 0))
				snaps, _ := a.Snapshots()
				st, err := formats.Replay(snaps, "")
				if err != nil {
					t.Fatal(err)
				}
				box := st.Folders["Box"]
				for _, m := range box.Present() {
					if v, _, _ := strings.Cut(m.Key, ":"); v != fmt.Sprint(box.UIDValidity) {
						t.Errorf("message %s present under UIDVALIDITY %d", m.Key, box.UIDValidity)
					}
				}
				if tt.wantFail {
					if box.Status != formats.FolderFailed || box.UIDNext != 0 {
						t.Errorf("failed folder recorded as %s with UIDNEXT %d; want failed, 0", box.Status, box.UIDNext)
					}
					// The next run notices and synchronises the folder.
					before := len(snaps)
					res, err = Run(ctx, a, opts)
					if err != nil || res.Selected == 0 {
						t.Fatalf("next run: %v, selected %d", err, res.Selected)
					}
					checkCounts(t, res, runTotals(t, a, before))
				}
				checkArchive(t, a, src)
			})
		})
	}
}

// TestCheckpointInsideBatch (issue 17.2): --checkpoint bounds the time
// (and Options.CheckpointBytes the bytes) a fetched message waits before
// it is committed, also in the middle of one fetch command; a run stopped
// after some checkpoints is resumed by the next run, which fetches only
// the rest.
func TestCheckpointInsideBatch(t *testing.T) {
	tests := []struct {
		name  string
		every time.Duration
		bytes int64
	}{
		{"time", 3 * time.Second, 0},
		{"bytes", time.Hour, 3 * 1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachStorage(t, func(t *testing.T, a *formats.Archive) {
				src := newMemSource()
				in := src.folder("INBOX", 5)
				for i := 0; i < 20; i++ {
					in.add(fmt.Sprintf("Subject: %02d\r\n\r\n%s\r\n", i, strings.Repeat("x", 1000-17)))
				}
				// A slow link: each message takes a second.
				var clock atomic.Int64
				clock.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
				src.onBody = func(*memSource) { clock.Add(int64(time.Second)) }
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				checkpoints := 0
				opts := Options{Source: "mem://test", Protocol: "imap", Checkpoint: tt.every, CheckpointBytes: tt.bytes,
					Now: func() time.Time { return time.Unix(0, clock.Load()) },
					Hook: func(p string) {
						if p == "checkpoint-committed" {
							if checkpoints++; checkpoints == 3 {
								cancel() // then killed: its last snapshot is dropped below
							}
						}
					},
					Dial: func(context.Context) (Source, error) { return src, nil }}
				if _, err := Run(ctx, a, opts); !errors.Is(err, ErrInterrupted) {
					t.Fatalf("Run = %v, want ErrInterrupted after 3 checkpoints", err)
				}
				files, _ := a.ListSnapshots()
				if len(files) != 4 {
					t.Fatalf("%d snapshots, want 3 checkpoints and the stopped run's", len(files))
				}
				os.Remove(files[3].Path)
				os.RemoveAll(filepath.Join(a.Root, formats.CacheDir))
				held := runTotals(t, a, 0).added
				if held < 6 || held > 12 {
					t.Fatalf("3 checkpoints hold %d messages, want about one per 3 messages fetched", held)
				}
				src.fetched = 0
				opts.Hook = nil
				res, err := Run(context.Background(), a, opts)
				if err != nil {
					t.Fatal(err)
				}
				if res.Added != 20-held || src.fetched != res.Added {
					t.Errorf("resumed run added %d (fetched %d), want the %d the checkpoints do not hold", res.Added, src.fetched, 20-held)
				}
				checkArchive(t, a, src)
			})
		})
	}
}

// TestCountsAfterRetry: flag changes, gone messages and additions are
// counted once when a folder is synchronised again on a new connection.
func TestCountsAfterRetry(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	in := src.folder("INBOX", 1)
	for i := 0; i < 6; i++ {
		in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	mustRun(t, a, src)
	in.msgs[0].flags = []string{`\Seen`}
	in.msgs[1].flags = []string{`\Flagged`}
	in.expunge(in.msgs[2].uid)
	in.modseq++
	for i := 0; i < 4; i++ {
		in.add(fmt.Sprintf("Subject: new %d\r\n\r\nnew %d\r\n", i, i))
	}
	// The first connection breaks after 2 new messages; the second
	// delivers the rest.
	breaks := 1
	dial := func(context.Context) (Source, error) {
		s := *src
		if breaks > 0 {
			breaks--
			s.failFetch = map[string]int{"INBOX": 2}
		} else {
			s.failFetch = map[string]int{}
		}
		return &s, nil
	}
	before, _ := a.ListSnapshots()
	res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 4 || res.Gone != 1 || res.FlagChanges != 2 {
		t.Errorf("added %d gone %d flag changes %d; want 4, 1, 2", res.Added, res.Gone, res.FlagChanges)
	}
	checkCounts(t, res, runTotals(t, a, len(before)))
	checkArchive(t, a, src)
}
