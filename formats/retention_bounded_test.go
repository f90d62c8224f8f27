package formats

import (
	"fmt"
	"math/rand"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// The bounded retention (streamed manifests, an on-disk replay) is
// checked here against the in-memory algorithm it replaced, kept below as
// a reference (refKeptStateSame, refWalk), over random chains that use
// every rule of replay (index_test.go's chain: renames onto deleted
// names, keys added again, new UIDVALIDITYs, flag changes of gone
// messages, duplicates by content), written as version 1 manifests,
// version 2 (a change's records split over two delta files at random) or
// a mix.

// refKeptStateSame is the check forget made before (on whole States):
// folders, whether deleted, their metadata (but for deleted folders),
// their messages in order with flags and gone, and the segments.
func refKeptStateSame(a, b *State) error {
	an, bn := a.FolderNames(), b.FolderNames()
	if !reflect.DeepEqual(an, bn) {
		return fmt.Errorf("folders %q, want %q", bn, an)
	}
	for _, name := range an {
		fa, fb := a.Folders[name], b.Folders[name]
		if fa.Deleted != fb.Deleted {
			return fmt.Errorf("folder %q: deleted %v, want %v", name, fb.Deleted, fa.Deleted)
		}
		if !fa.Deleted && !reflect.DeepEqual(fa.Folder, fb.Folder) {
			return fmt.Errorf("folder %q: state %+v, want %+v", name, fb.Folder, fa.Folder)
		}
		if len(fa.Archived) != len(fb.Archived) {
			return fmt.Errorf("folder %q: %d messages, want %d", name, len(fb.Archived), len(fa.Archived))
		}
		for i, ma := range fa.Archived {
			mb := fb.Archived[i]
			if ma.Gone != mb.Gone || !reflect.DeepEqual(normMessage(ma.Message), normMessage(mb.Message)) {
				return fmt.Errorf("folder %q: message %s differs", name, ma.Key)
			}
		}
	}
	as, bs := a.segmentPaths(), b.segmentPaths()
	sort.Strings(as)
	sort.Strings(bs)
	if !reflect.DeepEqual(as, bs) {
		return fmt.Errorf("segments differ")
	}
	return nil
}

func normMessage(m Message) Message {
	m.InternalDate = m.InternalDate.UTC()
	if len(m.Flags) == 0 {
		m.Flags = nil
	}
	return m
}

// randomChain commits 14 snapshots of a random chain to a new archive.
func randomChain(t *testing.T, seed int64, mode string) (*Archive, *chain) {
	t.Helper()
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock("test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Unlock)
	c := newChain(seed)
	r := rand.New(rand.NewSource(seed))
	for i := 0; i < 14; i++ {
		commitAs(t, a, c.next(), mode == "v2" || mode == "mixed" && i%3 != 0, r)
	}
	return a, c
}

// TestForgetRandomChains: forgetting any set of snapshots of a random
// chain leaves the kept ones, numbered again, each giving the state it
// gave before by the check forget made on whole States; a second forget
// of another set works on the result.
func TestForgetRandomChains(t *testing.T) {
	for seed := int64(1); seed <= 8; seed++ {
		for _, mode := range []string{"v1", "v2", "mixed"} {
			t.Run(fmt.Sprintf("%s/seed%d", mode, seed), func(t *testing.T) {
				a, c := randomChain(t, seed, mode)
				r := rand.New(rand.NewSource(seed * 7))
				old := c.snaps
				for round := 0; round < 2; round++ {
					keep := make([]bool, len(old))
					for i := range keep {
						keep[i] = i == len(keep)-1 || r.Intn(3) == 0
					}
					ch, err := a.readChain()
					if err != nil {
						t.Fatal(err)
					}
					if _, err := a.forgetKeeping(ch, keep); err != nil {
						t.Fatalf("round %d: forget: %v", round, err)
					}
					snaps, err := a.Snapshots()
					if err != nil {
						t.Fatal(err)
					}
					var want []string
					for i, s := range old {
						if keep[i] {
							want = append(want, s.ID)
						}
					}
					var got []string
					for i, s := range snaps {
						got = append(got, s.ID)
						if s.Seq != i+1 {
							t.Fatalf("snapshot %s has seq %d, want %d", s.ID, s.Seq, i+1)
						}
					}
					if !slices.Equal(got, want) {
						t.Fatalf("round %d: snapshots %v, want %v", round, got, want)
					}
					for _, s := range snaps {
						before, err := Replay(old, s.ID)
						if err != nil {
							t.Fatal(err)
						}
						after, err := Replay(snaps, s.ID)
						if err != nil {
							t.Fatal(err)
						}
						if err := refKeptStateSame(before, after); err != nil {
							t.Fatalf("round %d: snapshot %s: %v", round, s.ID, err)
						}
					}
					old = snaps
				}
			})
		}
	}
}

// tamper replaces the manifest of fold i (written, not committed) by
// edit's version of it.
func tamper(t *testing.T, a *Archive, f *fold, edit func(s *Snapshot)) {
	t.Helper()
	sf := SnapshotFile{Seq: f.s.Seq, ID: f.s.ID, Path: a.snapPath(snapshotFileName(f.s.Seq, f.s.ID) + ".new")}
	s, err := a.ReadSnapshot(sf)
	if err != nil {
		t.Fatal(err)
	}
	edit(s)
	changes := s.Changes
	s.Changes = nil
	err = a.writeNewManifest(s, func(sw *SnapshotStream) error {
		for _, c := range changes {
			if err := sw.BeginChange(c.Folder, c.Event, c.From); err != nil {
				return err
			}
			for _, r := range recordsOfChange(c) {
				if err := sw.Record(&r); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestForgetCheckCatches: forget's check (fingerprints of both chains at
// every kept snapshot) refuses a new chain that differs from the old one
// in any way a reader would see at a kept snapshot: a flag set, a gone
// key, a folder's metadata, a segment, and a flag change moved from one
// kept snapshot to the next (the newest state is the same, the one of
// the earlier kept snapshot, which restore --as-of reads, is not).
func TestForgetCheckCatches(t *testing.T) {
	for _, tc := range []struct {
		name string
		want string
		edit func(t *testing.T, a *Archive, folds []*fold)
	}{
		{"nothing", "", func(*testing.T, *Archive, []*fold) {}},
		{"a flag set", "the messages differ", func(t *testing.T, a *Archive, folds []*fold) {
			tamper(t, a, folds[0], func(s *Snapshot) {
				for i := range s.Changes {
					if len(s.Changes[i].Flags) > 0 {
						s.Changes[i].Flags[0].Flags = append(s.Changes[i].Flags[0].Flags, "$Tampered")
						return
					}
				}
				t.Fatal("no flag change to tamper with")
			})
		}},
		{"a gone key", "the messages differ", func(t *testing.T, a *Archive, folds []*fold) {
			tamper(t, a, folds[0], func(s *Snapshot) {
				for i := range s.Changes {
					if len(s.Changes[i].Gone) > 0 {
						s.Changes[i].Gone = s.Changes[i].Gone[1:]
						return
					}
				}
				t.Fatal("no gone key to tamper with")
			})
		}},
		{"folder metadata", "the folders differ", func(t *testing.T, a *Archive, folds []*fold) {
			tamper(t, a, folds[1], func(s *Snapshot) { s.Folders[0].UIDNext += 7 })
		}},
		{"a segment", "the segments differ", func(t *testing.T, a *Archive, folds []*fold) {
			tamper(t, a, folds[1], func(s *Snapshot) {
				g := s.Segments[0]
				g.Path = strings.TrimSuffix(g.Path, ".mbox.zst") + "-extra.mbox.zst"
				s.Segments = append(s.Segments, g)
			})
		}},
		{"a flag change one kept snapshot late", "the messages differ", func(t *testing.T, a *Archive, folds []*fold) {
			var moved FlagChange
			var folder string
			tamper(t, a, folds[0], func(s *Snapshot) {
				for i := len(s.Changes) - 1; i >= 0; i-- {
					c := &s.Changes[i]
					if n := len(c.Flags); n > 0 && c.Event == "" && len(c.Gone) == 0 {
						moved, folder = c.Flags[n-1], c.Folder
						c.Flags = c.Flags[:n-1]
						return
					}
				}
				t.Fatal("no flag change to move")
			})
			tamper(t, a, folds[1], func(s *Snapshot) {
				s.Changes = append(s.Changes, Change{Folder: folder, Flags: []FlagChange{moved}})
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHistory(t, StorageOptions{}, 13)
			for range 8 {
				h.run()
			}
			ch, err := h.a.readChain()
			if err != nil {
				t.Fatal(err)
			}
			keep := []bool{false, false, false, true, false, false, true, true}
			folds, err := planFold(ch, keep)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.a.writeFolds(ch, folds); err != nil {
				t.Fatal(err)
			}
			tc.edit(t, h.a, folds)
			err = h.a.checkFold(ch, keep, folds)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("checkFold = %v, want no difference", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("checkFold = %v, want %q", err, tc.want)
			}
		})
	}
}

// refInstance and refWalk are prune's former in-memory replay: every
// message of the chain from the change that adds it, with the snapshot
// that recorded it gone.
type refInstance struct {
	msg      *Message
	folder   *refFolder
	addSnap  int
	goneSnap int
}

type refFolder struct {
	name  string
	byKey map[string]*refInstance
	all   []*refInstance
}

func refWalk(snaps []*Snapshot) []*refInstance {
	folders := map[string]*refFolder{}
	var all []*refInstance
	for i, s := range snaps {
		for ci := range s.Changes {
			c := &s.Changes[ci]
			f := folders[c.Folder]
			if c.Event == EventRenamed {
				if old := folders[c.From]; old != nil {
					delete(folders, c.From)
					old.name = c.Folder
					folders[c.Folder] = old
					f = old
				}
			}
			if f == nil {
				f = &refFolder{name: c.Folder, byKey: map[string]*refInstance{}}
				folders[c.Folder] = f
			}
			for j := range c.Added {
				in := &refInstance{msg: &c.Added[j], folder: f, addSnap: i, goneSnap: -1}
				f.byKey[in.msg.Key] = in
				f.all = append(f.all, in)
				all = append(all, in)
			}
			for _, k := range c.Gone {
				if in := f.byKey[k]; in != nil && in.goneSnap < 0 {
					in.goneSnap = i
				}
			}
			if c.Event == EventDeleted {
				for _, in := range f.all {
					if in.goneSnap < 0 {
						in.goneSnap = i
					}
				}
			}
		}
	}
	return all
}

// refCompact is what the former prune (max-unused 0) or erase removed in
// an mbox archive: every location in a segment no live message is stored
// at (for erase: every location of a selected message), and the
// messages stored there (for erase: folder, key, on the source).
func refCompact(snaps []*Snapshot, selected func(string, *Message) bool) (messages, records int, erased []string) {
	all := refWalk(snaps)
	segs := map[string]bool{}
	for _, s := range snaps {
		for _, g := range s.Segments {
			segs[g.Path] = true
		}
	}
	live, forced := map[Location]bool{}, map[Location]bool{}
	for _, in := range all {
		loc := in.msg.Location()
		if in.goneSnap != in.addSnap {
			live[loc] = true
		}
		if selected != nil && selected(in.folder.name, in.msg) {
			forced[loc] = true
		}
	}
	removed := map[Location]bool{}
	for _, in := range all {
		loc := in.msg.Location()
		if segs[loc.Seg] && (selected == nil && !live[loc] || forced[loc]) {
			removed[loc] = true
		}
	}
	for _, in := range all {
		if removed[in.msg.Location()] {
			messages++
			if forced[in.msg.Location()] {
				erased = append(erased, fmt.Sprintf("%s/%s/%v", in.folder.name, in.msg.Key, in.goneSnap < 0))
			}
		}
	}
	return messages, len(removed), erased
}

// TestPruneRandomChainsDryRun: over random chains (and after forgetting
// some of their snapshots, which makes messages added and gone within
// one manifest), prune and erase decide what the former in-memory
// algorithm decided: the messages and stored copies removed, and for
// erase the messages erased, in chain order, with their folder and
// whether the newest snapshot has them.
func TestPruneRandomChainsDryRun(t *testing.T) {
	for seed := int64(1); seed <= 8; seed++ {
		for _, mode := range []string{"v1", "v2", "mixed"} {
			t.Run(fmt.Sprintf("%s/seed%d", mode, seed), func(t *testing.T) {
				a, c := randomChain(t, seed, mode)
				r := rand.New(rand.NewSource(seed * 11))
				keep := make([]bool, len(c.snaps))
				for i := range keep {
					keep[i] = i == len(keep)-1 || r.Intn(3) == 0
				}
				ch, err := a.readChain()
				if err != nil {
					t.Fatal(err)
				}
				if _, err := a.forgetKeeping(ch, keep); err != nil {
					t.Fatal(err)
				}
				snaps, err := a.Snapshots()
				if err != nil {
					t.Fatal(err)
				}
				messages, records, _ := refCompact(snaps, nil)
				res, err := a.Prune(PruneOptions{DryRun: true})
				if err != nil {
					t.Fatal(err)
				}
				if res.Messages != messages || res.Records != records {
					t.Errorf("prune: %d messages, %d records; the former prune: %d, %d", res.Messages, res.Records, messages, records)
				}
				t.Logf("prune: %d messages, %d records", messages, records)
				// Erase the messages whose key ends in 3 (some present, some
				// gone, some sharing bytes with others).
				sel := func(folder string, m *Message) bool { return strings.HasSuffix(m.Key, "3") && folder != "x" }
				_, _, want := refCompact(snaps, sel)
				er, err := a.Erase(sel, "test", "", true)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, m := range er.Erased {
					got = append(got, fmt.Sprintf("%s/%s/%v", m.Folder, m.Key, m.OnSource))
				}
				t.Logf("erase: %d messages", len(want))
				if !slices.Equal(got, want) || er.ErasedCount != len(want) {
					t.Errorf("erase would erase %d: %v\nthe former erase: %v", er.ErasedCount, got, want)
				}
			})
		}
	}
}
