package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// bigFolder returns a source with one folder of n messages, each session
// with a connection of its own (its own examined folder), and a clock that
// each message delivered moves on by a second.
func bigFolder(n int) (*memSource, func(context.Context) (Source, error), func() time.Time) {
	src := newMemSource()
	in := src.folder("INBOX", 9)
	for k := 0; k < n; k++ {
		in.add(fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", k, k))
	}
	var clock atomic.Int64
	clock.Store(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	src.onBody = func(*memSource) { clock.Add(int64(time.Second)) }
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var mu sync.Mutex
	return src, func(context.Context) (Source, error) {
		mu.Lock()
		defer mu.Unlock()
		s := *src
		s.examined = nil
		return &s, nil
	}, now
}

// TestPartsWithCheckpoints: the parts of a big folder hand their
// committed writers to the folder's worker, which commits checkpoints with
// them while the parts go on; a run stopped after some of those
// checkpoints is finished by the next run, which fetches only what the
// checkpoints do not hold, and the result counts what was committed.
func TestPartsWithCheckpoints(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		n := splitMin + 200
		src, dial, now := bigFolder(n)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		checkpoints := 0
		opts := Options{Source: "mem://test", Protocol: "imap", Connections: 3, BatchSize: 100,
			Checkpoint: 300 * time.Second, Now: now,
			Hook: func(p string) {
				if p == "checkpoint-committed" {
					if checkpoints++; checkpoints == 3 {
						cancel()
					}
				}
			},
			Dial: dial}
		if _, err := Run(ctx, a, opts); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("Run = %v, want ErrInterrupted after 3 checkpoints", err)
		}
		// Killed: the stopped run's own last snapshot is never written.
		files, _ := a.ListSnapshots()
		if len(files) != 4 {
			t.Fatalf("%d snapshots, want 3 checkpoints and the stopped run's", len(files))
		}
		os.Remove(files[len(files)-1].Path)
		os.RemoveAll(filepath.Join(a.Root, formats.CacheDir))
		held := runTotals(t, a, 0)
		if held.added == 0 || held.added >= n {
			t.Fatalf("the checkpoints hold %d of %d messages, want some", held.added, n)
		}
		if a.ReuseStored(true) { // segments: parts write one segment each
			snaps, _ := a.Snapshots()
			segs := map[string]bool{}
			for _, s := range snaps {
				for _, c := range s.Changes {
					for _, m := range c.Added {
						segs[m.Seg] = true
					}
				}
			}
			if len(segs) < 2 {
				t.Errorf("the checkpoints hold messages of %d segment, want the writers of several parts", len(segs))
			}
		}
		before := len(files) - 1
		opts.Hook = nil
		res, err := Run(context.Background(), a, opts)
		if err != nil {
			t.Fatal(err)
		}
		if res.Added != n-held.added {
			t.Errorf("resumed run added %d, want the %d the checkpoints do not hold", res.Added, n-held.added)
		}
		checkCounts(t, res, runTotals(t, a, before))
		checkArchive(t, a, src)
	})
}

// TestStorageErrorInPart: a part's writer that cannot be committed stops
// the run with ErrStorage; the snapshot committed is partial and the
// result counts what the snapshots committed (the checkpoints' messages,
// not those of the writer that failed).
func TestStorageErrorInPart(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		_, dial, now := bigFolder(splitMin + 200)
		commits := 0
		var mu sync.Mutex
		hook := func(p string) {
			if p == "segment-before-rename" {
				mu.Lock()
				defer mu.Unlock()
				if commits++; commits == 3 {
					os.RemoveAll(filepath.Join(a.Root, formats.FoldersDir, formats.FolderDir("INBOX")))
				}
			}
		}
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Connections: 3, BatchSize: 100,
			Checkpoint: 300 * time.Second, Now: now, Hook: hook, Dial: dial})
		if !errors.Is(err, ErrStorage) || res == nil || res.Snapshot == nil {
			t.Fatalf("Run = %v, want ErrStorage with a snapshot", err)
		}
		if res.Snapshot.Status != formats.StatusPartial || lastSnapshot(t, a).Status != formats.StatusPartial {
			t.Errorf("status %s, want partial", res.Snapshot.Status)
		}
		checkCounts(t, res, runTotals(t, a, 0))
	})
}
