package formats

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
)

func TestKeyOrder(t *testing.T) {
	// In index order.
	keys := []string{"1:1", "1:2", "1:10", "1:4294967295", "2:1", "4294967295:7",
		"", "01:1", "1:", "1:01", "a", "a\x00", "a\x00b", "ab", "uidl-\xff"}
	for i := range keys {
		for j := range keys {
			got := CompareKeys(keys[i], keys[j])
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got != want {
				t.Errorf("CompareKeys(%q, %q) = %d, want %d", keys[i], keys[j], got, want)
			}
		}
		enc := AppendKey(nil, keys[i])
		back, rest, err := decodeKey(append(enc, 7, 7))
		if err != nil || back != keys[i] || string(rest) != "\x07\x07" {
			t.Errorf("decodeKey(AppendKey(%q)) = %q, %q, %v", keys[i], back, rest, err)
		}
	}
}

func TestMessageValueRoundTrip(t *testing.T) {
	ist := time.FixedZone("", 5*3600+1800)
	for _, m := range []IndexMessage{
		{Message: scaleMessage(7, "folders/INBOX/00000001-1a2b3c4d.mbox.zst"), AddedIn: 3, GoneIn: 9},
		{Message: Message{Key: "uidl\x00x", SHA256: "not hex", InternalDate: time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), Seg: "folders/A/cur/1.2.0.0000001,S=3:2,S"}},
		{Message: Message{Key: "1:1", SHA256: strings.Repeat("0", 64), Size: -1, InternalDate: time.Date(2024, 2, 29, 23, 59, 58, 999999999, ist), Flags: []string{}}},
	} {
		var got IndexMessage
		if err := decodeMessage(encodeMessage(nil, &m), &got); err != nil {
			t.Fatal(err)
		}
		if !got.InternalDate.Equal(m.InternalDate) {
			t.Errorf("date %v, want %v", got.InternalDate, m.InternalDate)
		}
		_, z1 := got.InternalDate.Zone()
		_, z2 := m.InternalDate.Zone()
		if z1 != z2 {
			t.Errorf("zone %d, want %d", z1, z2)
		}
		got.InternalDate, m.InternalDate = time.Time{}, time.Time{}
		if len(m.Flags) == 0 {
			m.Flags = nil
		}
		if !reflect.DeepEqual(got, m) {
			t.Errorf("decode(encode(%+v)) = %+v", m, got)
		}
		// Damage is an error, not a panic.
		b := encodeMessage(nil, &m)
		for i := range b {
			decodeMessage(b[:i], &got)
		}
	}
}

// chain generates a random but valid chain of snapshots exercising every
// rule of replay: additions with duplicates by content, flag changes
// (also of gone messages), expunges, renames (also onto the name of a
// deleted folder), deletions, folders created again, new UIDVALIDITYs and
// keys added again after they were gone.
type chain struct {
	r     *rand.Rand
	snaps []*Snapshot
	live  map[string]*chainFolder // folders on the source
	dead  map[string]bool         // folders deleted (names)
	sums  []string
	seq   int
}

type chainFolder struct {
	validity uint32
	next     uint32
	present  []string
	gone     []string
	locs     map[string][2]string // sha -> location (seg, off) stored in this folder
}

func newChain(seed int64) *chain {
	c := &chain{r: rand.New(rand.NewSource(seed)), live: map[string]*chainFolder{}, dead: map[string]bool{}}
	for i := 0; i < 12; i++ {
		s := sha256.Sum256([]byte(fmt.Sprint(seed, i)))
		c.sums = append(c.sums, hex.EncodeToString(s[:]))
	}
	return c
}

func (c *chain) id() string { return fmt.Sprintf("%08x", c.r.Uint32()) }

func (c *chain) next() *Snapshot {
	c.seq++
	s := &Snapshot{Version: 1, ID: c.id(), Seq: c.seq, Source: "imap://a@b", Protocol: "imap",
		Started: time.Unix(int64(c.seq)*1000, 0).UTC(), Finished: time.Unix(int64(c.seq)*1000+5, 0).UTC(), Status: StatusComplete}
	if len(c.snaps) > 0 {
		s.Parent = c.snaps[len(c.snaps)-1].ID
	}
	r := c.r
	names := func() []string {
		var out []string
		for n := range c.live {
			out = append(out, n)
		}
		sort.Strings(out)
		return out
	}
	// Folder events first.
	if r.Intn(3) == 0 || len(c.live) == 0 {
		name := []string{"INBOX", "Sent", "Año/Facturas", "Old", "x"}[r.Intn(5)]
		if c.live[name] == nil {
			ev := EventCreated
			c.live[name] = &chainFolder{validity: uint32(r.Intn(3) + 1), next: 1, locs: map[string][2]string{}}
			delete(c.dead, name)
			s.Changes = append(s.Changes, Change{Folder: name, Event: ev})
		}
	}
	if n := names(); len(n) > 1 && r.Intn(5) == 0 {
		from := n[r.Intn(len(n))]
		to := "Renamed" + fmt.Sprint(r.Intn(3))
		if r.Intn(2) == 0 {
			for d := range c.dead {
				to = d // onto a deleted folder's name
				break
			}
		}
		if c.live[to] == nil && to != from {
			c.live[to] = c.live[from]
			delete(c.live, from)
			delete(c.dead, to)
			c.dead[from] = false
			delete(c.dead, from)
			s.Changes = append(s.Changes, Change{Folder: to, Event: EventRenamed, From: from})
		}
	}
	if n := names(); len(n) > 1 && r.Intn(6) == 0 {
		name := n[r.Intn(len(n))]
		if !changed(s, name) {
			delete(c.live, name)
			c.dead[name] = true
			s.Changes = append(s.Changes, Change{Folder: name, Event: EventDeleted})
		}
	}
	var segs []Segment
	for _, name := range names() {
		f := c.live[name]
		ch := changeOf(s, name)
		if r.Intn(8) == 0 && len(f.present) > 0 && (ch.Event == "" || ch.Event == EventCreated) {
			// A new incarnation: every key gone, keys of the new validity.
			ch.Event = EventUIDValidity
			ch.Gone = append(ch.Gone, f.present...)
			f.gone = append(f.gone, f.present...)
			f.present = nil
			f.validity += 10
			f.next = 1
		}
		// Flag changes, also of gone messages.
		for i := 0; i < r.Intn(3); i++ {
			pool := append(append([]string{}, f.present...), f.gone...)
			if len(pool) > 0 {
				ch.Flags = append(ch.Flags, FlagChange{Key: pool[r.Intn(len(pool))], Flags: []string{`\Seen`, fmt.Sprintf("$L%d", c.seq)}[:r.Intn(3)]})
			}
		}
		// Expunges.
		for i := 0; i < r.Intn(3) && len(f.present) > 0; i++ {
			j := r.Intn(len(f.present))
			k := f.present[j]
			if slices.Contains(ch.Gone, k) || inAdded(ch, k) {
				continue
			}
			ch.Gone = append(ch.Gone, k)
			f.present = slices.Delete(f.present, j, j+1)
			f.gone = append(f.gone, k)
		}
		// Additions, some of a key that was gone (it comes back).
		dir := FolderDir(name)
		segPath := fmt.Sprintf("folders/%s/%08d-%s.mbox.zst", dir, s.Seq, s.ID)
		var off int64
		for i := 0; i < r.Intn(6); i++ {
			key := fmt.Sprintf("%d:%d", f.validity, f.next)
			if len(f.gone) > 0 && r.Intn(5) == 0 {
				key = f.gone[r.Intn(len(f.gone))]
				if slices.Contains(ch.Gone, key) {
					continue
				}
				f.gone = slices.DeleteFunc(f.gone, func(k string) bool { return k == key })
			} else {
				f.next++
			}
			sum := c.sums[r.Intn(len(c.sums))]
			m := Message{Key: key, SHA256: sum, Size: int64(100 + r.Intn(50)), InternalDate: time.Unix(int64(r.Intn(1e9)), 0).UTC(),
				Flags: []string{`\Seen`}[:r.Intn(2)], Subject: "s" + key, MessageID: "<" + key + ">"}
			if loc, ok := f.locs[sum]; ok && r.Intn(2) == 0 {
				m.Seg = loc[0]
				fmt.Sscan(loc[1], &m.Off)
			} else if r.Intn(6) == 0 {
				m.Seg = fmt.Sprintf("folders/%s/cur/%08d.%s.0.%07d,S=%d:2,", dir, s.Seq, s.ID, c.r.Intn(1e6), m.Size)
				f.locs[sum] = [2]string{m.Seg, "0"}
			} else {
				m.Seg, m.Off = segPath, off
				f.locs[sum] = [2]string{segPath, fmt.Sprint(off)}
				off += m.Size + 60
			}
			ch.Added = append(ch.Added, m)
			f.present = append(f.present, key)
		}
		if off > 0 {
			segs = append(segs, Segment{Path: segPath, Size: off / 2, SHA256: c.sums[0], USize: off, Records: 1, Frames: [][2]int64{{0, 0}}})
		}
		st := FolderOK
		if r.Intn(7) == 0 {
			st = FolderUnchanged
		}
		s.Folders = append(s.Folders, Folder{Name: name, Dir: dir, UIDValidity: f.validity, UIDNext: f.next, Messages: uint32(len(f.present)), Status: st})
	}
	s.Segments = segs
	// Drop empty changes.
	s.Changes = slices.DeleteFunc(s.Changes, func(ch Change) bool {
		return ch.Event == "" && len(ch.Added)+len(ch.Flags)+len(ch.Gone) == 0
	})
	c.snaps = append(c.snaps, s)
	return s
}

func changed(s *Snapshot, name string) bool {
	for _, ch := range s.Changes {
		if ch.Folder == name || ch.From == name {
			return true
		}
	}
	return false
}

func changeOf(s *Snapshot, name string) *Change {
	for i := range s.Changes {
		if s.Changes[i].Folder == name {
			return &s.Changes[i]
		}
	}
	s.Changes = append(s.Changes, Change{Folder: name})
	return &s.Changes[len(s.Changes)-1]
}

func inAdded(ch *Change, key string) bool {
	for _, m := range ch.Added {
		if m.Key == key {
			return true
		}
	}
	return false
}

// commitAs writes s into a as a version 1 manifest, or (v2) as a header
// with delta files, a change's records split over two files at random.
func commitAs(t testing.TB, a *Archive, s *Snapshot, v2 bool, r *rand.Rand) {
	t.Helper()
	if !v2 {
		if err := a.Commit(s); err != nil {
			t.Fatal(err)
		}
		return
	}
	h := &Header{Snapshot: *s}
	h.Changes = nil
	for _, c := range s.Changes {
		recs := recordsOfChange(c)
		parts := [][]DeltaRecord{recs}
		if len(recs) > 1 && r.Intn(2) == 0 {
			k := 1 + r.Intn(len(recs)-1)
			parts = [][]DeltaRecord{recs[:k], recs[k:]}
		}
		for i, part := range parts {
			w, err := a.NewDelta(c.Folder)
			if err != nil {
				t.Fatal(err)
			}
			for _, rec := range part {
				switch rec.Kind {
				case RecordAdded:
					err = w.Add(&rec.Message, true)
				case RecordFlags:
					err = w.Flags(rec.Key, rec.Flags)
				case RecordGone:
					err = w.Gone(rec.Key)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			d, err := w.Commit(h.Seq, h.ID)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				d.Event, d.From = c.Event, c.From
			}
			h.Deltas = append(h.Deltas, d)
		}
	}
	if err := a.CommitHeader(h); err != nil {
		t.Fatal(err)
	}
}

// entry is a message as both a State and an Index can tell it.
type entry struct {
	Key, AddedIn, GoneIn string
	Msg                  string
}

func stateEntries(f *FolderState) []entry {
	var out []entry
	for _, m := range f.Archived {
		out = append(out, entry{m.Key, m.AddedIn, m.GoneIn, msgString(m.Message)})
	}
	sortEntries(out)
	return out
}

func msgString(m Message) string {
	if len(m.Flags) == 0 {
		m.Flags = nil
	}
	m.InternalDate = m.InternalDate.UTC()
	return fmt.Sprintf("%+v", m)
}

func sortEntries(es []entry) {
	sort.Slice(es, func(i, j int) bool {
		if c := CompareKeys(es[i].Key, es[j].Key); c != 0 {
			return c < 0
		}
		return es[i].Msg < es[j].Msg
	})
}

func indexEntries(t testing.TB, ix *Index, f *IndexFolder) []entry {
	t.Helper()
	var out []entry
	mi := ix.Messages(f.ID, true)
	defer mi.Release()
	var last string
	for m := mi.Next(); m != nil; m = mi.Next() {
		if last != "" && CompareKeys(last, m.Key) > 0 {
			t.Fatalf("Messages: %q after %q", m.Key, last)
		}
		last = m.Key
		added, err := ix.SnapshotID(m.AddedIn)
		if err != nil {
			t.Fatal(err)
		}
		gone := ""
		if m.GoneIn != 0 {
			if gone, err = ix.SnapshotID(m.GoneIn); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, entry{m.Key, added, gone, msgString(m.Message)})
	}
	if err := mi.Err(); err != nil {
		t.Fatal(err)
	}
	sortEntries(out)
	return out
}

// indexSameState compares an index with the state a replay gives.
func indexSameState(t testing.TB, ix *Index, st *State) {
	t.Helper()
	if st.Snapshot != nil && (ix.Seq() != st.Snapshot.Seq || ix.ID() != st.Snapshot.ID) {
		t.Fatalf("index at %d %s, state at %d %s", ix.Seq(), ix.ID(), st.Snapshot.Seq, st.Snapshot.ID)
	}
	folders := ix.Folders()
	if len(folders) != len(st.Folders) {
		var names []string
		for _, f := range folders {
			names = append(names, f.Folder.Name)
		}
		t.Fatalf("index folders %v, state %v", names, st.FolderNames())
	}
	for _, f := range folders {
		sf := st.Folders[f.Folder.Name]
		if sf == nil {
			t.Errorf("folder %q in the index, not in the state", f.Folder.Name)
			continue
		}
		if !reflect.DeepEqual(f.Folder, sf.Folder) || f.Deleted != sf.Deleted {
			t.Errorf("folder %q: %+v deleted=%v, state %+v deleted=%v", f.Folder.Name, f.Folder, f.Deleted, sf.Folder, sf.Deleted)
		}
		got, want := indexEntries(t, ix, f), stateEntries(sf)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("folder %q:\nindex %+v\nstate %+v", f.Folder.Name, got, want)
		}
		var present, gone, bytes int64
		for _, m := range sf.Archived {
			if m.Gone {
				gone++
			} else {
				present++
				bytes += m.Size
			}
		}
		if f.Present != present || f.Gone != gone || f.Bytes != bytes {
			t.Errorf("folder %q: counts %d/%d/%d, want %d/%d/%d", f.Folder.Name, f.Present, f.Gone, f.Bytes, present, gone, bytes)
		}
	}
	var segs []string
	ix.Segments(func(g *Segment) error { segs = append(segs, g.Path); return nil })
	var want []string
	for p := range st.Segments {
		want = append(want, p)
	}
	sort.Strings(want)
	if !slices.Equal(segs, want) {
		t.Errorf("segments %v, want %v", segs, want)
	}
}

// TestIndexMatchesReplay: over random chains of snapshots written as
// version 1 manifests, version 2 manifests or a mix of both, the index a
// writer builds and the indexes readers build at every snapshot hold
// what replaying the manifests gives.
func TestIndexMatchesReplay(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		for _, mode := range []string{"v1", "v2", "mixed"} {
			t.Run(fmt.Sprintf("%s/seed%d", mode, seed), func(t *testing.T) {
				a, err := Create(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				c := newChain(seed)
				r := rand.New(rand.NewSource(seed))
				for i := 0; i < 14; i++ {
					s := c.next()
					v2 := mode == "v2" || mode == "mixed" && i >= 5
					commitAs(t, a, s, v2, r)
					if i%5 == 4 {
						// A writer now and then: the index catches up.
						ix, err := a.OpenIndex(IndexOptions{Dedup: true})
						if err != nil {
							t.Fatal(err)
						}
						st, err := Replay(c.snaps, "")
						if err != nil {
							t.Fatal(err)
						}
						indexSameState(t, ix, st)
						checkByHash(t, ix, st)
						ix.Close()
					}
				}
				ix, err := a.OpenIndex(IndexOptions{})
				if err != nil {
					t.Fatal(err)
				}
				st, _ := Replay(c.snaps, "")
				indexSameState(t, ix, st)
				ix.Close()
				lx, err := a.readIndex(0, true)
				if err != nil {
					t.Fatal(err)
				}
				sameLocations(t, lx, c.snaps)
				lx.Close()
				for _, s := range c.snaps {
					rx, err := a.ReadIndex(s.Seq)
					if err != nil {
						t.Fatal(err)
					}
					st, _ := Replay(c.snaps, s.ID)
					indexSameState(t, rx, st)
					if rx.Temporary() != (s.Seq != len(c.snaps)) {
						t.Errorf("ReadIndex(%d): temporary %v, want a temporary index only before the latest", s.Seq, rx.Temporary())
					}
					rx.Close()
				}
			})
		}
	}
}

// checkByHash: the hash index finds, for every content of a folder, the
// message a replay's State.ByHash finds.
func checkByHash(t testing.TB, ix *Index, st *State) {
	t.Helper()
	for name, sf := range st.Folders {
		f := ix.Folder(name)
		for _, m := range sf.Archived {
			got, err := ix.ByHash(f.ID, m.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				// A key added again replaces its entry: the message
				// with the content may be an older entry of such a key.
				if sf.Lookup(m.Key).SHA256 != m.SHA256 {
					continue
				}
				t.Errorf("%s: ByHash(%s) = nil, want a message like %s", name, m.SHA256[:8], m.Key)
				continue
			}
			if got.SHA256 != m.SHA256 {
				t.Errorf("%s: ByHash(%s) = %s of another content", name, m.SHA256[:8], got.Key)
			}
		}
		if none, _ := ix.ByHash(f.ID, strings.Repeat("f", 64)); none != nil {
			t.Errorf("ByHash of an unknown content = %+v", none)
		}
	}
}

// TestIndexResumesCutApplication: an index update cut short after any
// batch (a crash between a manifest's commit and the end of its
// application) is finished by the next writer, with the same result as
// an update that was never cut.
func TestIndexResumesCutApplication(t *testing.T) {
	defer func(n int) { indexBatch = n }(indexBatch)
	indexBatch = 3
	c := newChain(42)
	for i := 0; i < 10; i++ {
		c.next()
	}
	want, _ := Replay(c.snaps, "")
	for cut := 1; ; cut++ {
		a, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewSource(1))
		for _, s := range c.snaps[:4] {
			commitAs(t, a, s, false, r)
		}
		ix, err := a.OpenIndex(IndexOptions{Dedup: true})
		if err != nil {
			t.Fatal(err)
		}
		ix.Close()
		for _, s := range c.snaps[4:] {
			commitAs(t, a, s, true, r)
		}
		writes := 0
		indexWriteHook = func() error {
			if writes++; writes == cut {
				return errors.New("killed")
			}
			return nil
		}
		ix, err = a.OpenIndex(IndexOptions{Dedup: true})
		indexWriteHook = nil
		if err == nil {
			// Cut after the last write: nothing left to test.
			indexSameState(t, ix, want)
			ix.Close()
			if cut < 10 {
				t.Fatalf("the catch-up took only %d writes", cut)
			}
			return
		}
		if !strings.Contains(err.Error(), "killed") {
			t.Fatalf("cut %d: %v", cut, err)
		}
		ix, err = a.OpenIndex(IndexOptions{Dedup: true})
		if err != nil {
			t.Fatalf("cut %d: the next writer: %v", cut, err)
		}
		if ix.dir != filepath.Join(a.Root, CacheDir, a.currentIndex()) {
			t.Fatalf("cut %d: index in %s, not the archive's", cut, ix.dir)
		}
		indexSameState(t, ix, want)
		checkByHash(t, ix, want)
		ix.Close()
		if t.Failed() {
			t.Fatalf("cut after write %d", cut)
		}
	}
}

// TestIndexRebuilt: an index that cannot be used is rebuilt from the
// manifests: deleted, damaged, of another archive, built from a manifest
// that changed since, or held by a reader.
func TestIndexRebuilt(t *testing.T) {
	c := newChain(7)
	for i := 0; i < 6; i++ {
		c.next()
	}
	want, _ := Replay(c.snaps, "")
	setup := func(t *testing.T) *Archive {
		a, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewSource(1))
		for i, s := range c.snaps {
			commitAs(t, a, s, i%2 == 1, r)
		}
		ix, err := a.OpenIndex(IndexOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ix.Close()
		return a
	}
	for name, spoil := range map[string]func(t *testing.T, a *Archive) func(){
		"removed": func(t *testing.T, a *Archive) func() {
			os.RemoveAll(filepath.Join(a.Root, CacheDir))
			return nil
		},
		"pointer damaged": func(t *testing.T, a *Archive) func() {
			os.WriteFile(filepath.Join(a.Root, CacheDir, indexPointer), []byte("../../etc\n"), 0o600)
			return nil
		},
		"store damaged": func(t *testing.T, a *Archive) func() {
			dir := filepath.Join(a.Root, CacheDir, a.currentIndex(), "state")
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), "MANIFEST") || strings.HasSuffix(e.Name(), ".ldb") || strings.HasSuffix(e.Name(), ".log") {
					os.WriteFile(filepath.Join(dir, e.Name()), []byte("garbage"), 0o600)
				}
			}
			return nil
		},
		"other archive": func(t *testing.T, a *Archive) func() {
			a.Config.ID = "0000000000000000"
			return nil
		},
		"manifest replaced": func(t *testing.T, a *Archive) func() {
			files, _ := a.ListSnapshots()
			p := files[2].Path
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, '\n'), 0o600) // same content, another size
			return nil
		},
		"held by a reader": func(t *testing.T, a *Archive) func() {
			rx, err := a.ReadIndex(0)
			if err != nil {
				t.Fatal(err)
			}
			if rx.Temporary() {
				t.Fatal("the reader built its own index")
			}
			return func() { rx.Close() }
		},
	} {
		t.Run(name, func(t *testing.T) {
			a := setup(t)
			before := a.currentIndex()
			if done := spoil(t, a); done != nil {
				defer done()
			}
			ix, err := a.OpenIndex(IndexOptions{Dedup: true})
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			indexSameState(t, ix, want)
			if a.currentIndex() == before {
				t.Errorf("the index in %s was used", before)
			}
		})
	}
	t.Run("used when fine", func(t *testing.T) {
		a := setup(t)
		before := a.currentIndex()
		ix, err := a.OpenIndex(IndexOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		if a.currentIndex() != before {
			t.Errorf("rebuilt a usable index")
		}
		// A reader while the writer has it builds its own.
		rx, err := a.ReadIndex(0)
		if err != nil {
			t.Fatal(err)
		}
		defer rx.Close()
		if !rx.Temporary() {
			t.Error("a reader used the index a writer holds")
		}
		indexSameState(t, rx, want)
	})
}

// TestIndexRefusesBadChains: what a replay refuses, the index refuses.
func TestIndexRefusesBadChains(t *testing.T) {
	base := func() []*Snapshot {
		c := newChain(3)
		for i := 0; i < 3; i++ {
			c.next()
		}
		return c.snaps
	}
	for name, spoil := range map[string]func(s []*Snapshot){
		"rename of unknown folder": func(s []*Snapshot) {
			s[2].Changes = append(s[2].Changes, Change{Folder: "New", Event: EventRenamed, From: "Nowhere"})
		},
		"deletion of unknown folder": func(s []*Snapshot) {
			s[2].Changes = append(s[2].Changes, Change{Folder: "Nowhere", Event: EventDeleted})
		},
		"unknown segment": func(s []*Snapshot) {
			s[2].Changes = append(s[2].Changes, Change{Folder: "Z", Added: []Message{{Key: "1:1", SHA256: strings.Repeat("a", 64), Seg: "folders/Z/00000009-00000000.mbox.zst"}}})
		},
		"added twice": func(s []*Snapshot) {
			for _, c := range s[0].Changes {
				if len(c.Added) > 0 {
					s[2].Changes = append(s[2].Changes, Change{Folder: c.Folder, Added: []Message{c.Added[0]}})
					s[2].Segments = append(s[2].Segments, s[0].Segments...)
					return
				}
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			snaps := base()
			spoil(snaps)
			_, replayErr := Replay(snaps, "")
			if !errors.Is(replayErr, ErrCorrupt) {
				t.Fatalf("Replay = %v: the case is wrong", replayErr)
			}
			for _, v2 := range []bool{false, true} {
				a, err := Create(t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				r := rand.New(rand.NewSource(1))
				for _, s := range snaps {
					commitAs(t, a, s, v2, r)
				}
				ix, err := a.OpenIndex(IndexOptions{})
				if !errors.Is(err, ErrCorrupt) {
					t.Errorf("v2=%v: OpenIndex = %v, want ErrCorrupt", v2, err)
				}
				if err == nil {
					ix.Close()
				}
				if _, err := a.ReadIndex(0); !errors.Is(err, ErrCorrupt) {
					t.Errorf("v2=%v: ReadIndex = %v, want ErrCorrupt", v2, err)
				}
			}
		})
	}
}

// sameLocations compares an index's locations with every message the
// snapshots added (a folder's state replaced by a rename onto its name
// leaves its stored messages, which verify still checks).
func sameLocations(t testing.TB, ix *Index, snaps []*Snapshot) {
	t.Helper()
	type place struct {
		seg string
		off int64
	}
	want := map[place]*IndexLocation{}
	for _, s := range snaps {
		for _, c := range s.Changes {
			for _, m := range c.Added {
				p := place{m.Seg, m.Off}
				if validMaildirPath(m.Seg) {
					p = place{m.Seg[:strings.LastIndexByte(m.Seg, '/')+1] + MaildirBase(m.Seg[strings.LastIndexByte(m.Seg, '/')+1:]), 0}
				}
				if l := want[p]; l != nil {
					if l.SHA256 != m.SHA256 || l.Size != m.Size {
						l.Conflict = true
					}
					continue
				}
				want[p] = &IndexLocation{Seg: p.seg, Off: p.off, SHA256: m.SHA256, Size: m.Size}
			}
		}
	}
	n := 0
	var last *place
	err := ix.Locations(func(l *IndexLocation) error {
		p := place{l.Seg, l.Off}
		if last != nil && (p.seg < last.seg || p.seg == last.seg && p.off <= last.off) {
			t.Errorf("Locations: %v after %v", p, *last)
		}
		last = &p
		n++
		w := want[p]
		if w == nil {
			t.Errorf("Locations: %v not in the state", p)
			return nil
		}
		if w.Conflict != l.Conflict || !w.Conflict && (w.SHA256 != l.SHA256 || w.Size != l.Size) {
			t.Errorf("Locations: %+v, want %+v", *l, *w)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(want) {
		t.Errorf("Locations: %d places, the state has %d", n, len(want))
	}
}

// TestRemoveStaleTempIndexes: a temporary index left by a killed reader
// is removed by the next reader that builds one; one a live reader holds
// open, and a young one, are kept.
func TestRemoveStaleTempIndexes(t *testing.T) {
	c := newChain(3)
	for i := 0; i < 2; i++ {
		c.next()
	}
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewSource(1))
	for _, s := range c.snaps {
		commitAs(t, a, s, true, r)
	}
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	held, err := a.ReadIndex(0) // a live reader's
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	stale := filepath.Join(dir, tempIndexPrefix+"killed")
	if err := os.MkdirAll(filepath.Join(stale, "state"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "state", "LOCK"), nil, 0o644)
	young := filepath.Join(dir, tempIndexPrefix+"young")
	os.MkdirAll(young, 0o700)
	old := time.Now().Add(-2 * time.Hour)
	os.Chtimes(stale, old, old)
	os.Chtimes(held.dir, old, old)
	ix, err := a.ReadIndex(0)
	if err != nil {
		t.Fatal(err)
	}
	ix.Close()
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the killed reader's index is still there: %v", err)
	}
	if _, err := os.Stat(held.dir); err != nil {
		t.Errorf("the live reader's index was removed: %v", err)
	}
	if _, err := os.Stat(young); err != nil {
		t.Errorf("a young index was removed: %v", err)
	}
}

// TestIndexLookupsDoNotCompact: a run looks up a key in the hash index
// for nearly every message it stores, most of them missing; those lookups
// must not make leveldb compact (a seek compaction rewrites a table and
// its overlaps each time a hundred lookups went through it: they tripled
// what a first backup rewrote).
func TestIndexLookupsDoNotCompact(t *testing.T) {
	ix := newDedupIndex(t)
	r := rand.New(rand.NewSource(1))
	sum := func() string { return randomSum(r) }
	// Several tables of the run's hashes, as writers commit (random keys:
	// every table overlaps the others).
	for batch := 0; batch < 25; batch++ {
		locs := map[string]RunLocation{}
		for i := 0; i < 2000; i++ {
			locs[sum()] = RunLocation{Seg: "folders/INBOX/00000001-00000000-0001.mbox.zst", Off: int64(i) << 12, Key: fmt.Sprintf("7:%d", batch*2000+i)}
		}
		if err := ix.PutRunHashes("INBOX", locs); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 20000; i++ {
		if l, err := ix.RunHash("INBOX", sum()); err != nil || l != nil {
			t.Fatalf("RunHash of a new sum = %v, %v", l, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // a triggered compaction runs in the background
	var st leveldb.DBStats
	if err := ix.hdb.Stats(&st); err != nil {
		t.Fatal(err)
	}
	if st.SeekComp != 0 {
		t.Errorf("lookups caused %d seek compactions, want none", st.SeekComp)
	}
}

// TestRunHashFilter: RunHash finds what PutRunHashes recorded (under its
// scope only), and looks up no sum the run did not store: the store is
// not read for those (here it is closed, which a lookup would report).
func TestRunHashFilter(t *testing.T) {
	ix := newDedupIndex(t)
	r := rand.New(rand.NewSource(2))
	sum := func() string { return randomSum(r) }
	locs := map[string]RunLocation{}
	for i := 0; i < 5000; i++ {
		locs[sum()] = RunLocation{Seg: "folders/INBOX/x.mbox.zst", Off: int64(i), Key: fmt.Sprintf("7:%d", i)}
	}
	if err := ix.PutRunHashes("INBOX", locs); err != nil {
		t.Fatal(err)
	}
	for s, want := range locs {
		if got, err := ix.RunHash("INBOX", s); err != nil || got == nil || *got != want {
			t.Fatalf("RunHash(INBOX, %s) = %v, %v; want %v", s, got, err, want)
		}
		if got, err := ix.RunHash("Sent", s); err != nil || got != nil {
			t.Fatalf("RunHash(Sent, %s) = %v, %v; want nothing", s, got, err)
		}
	}
	if err := ix.hdb.Close(); err != nil {
		t.Fatal(err)
	}
	looked := 0
	for i := 0; i < 10000; i++ {
		if _, err := ix.RunHash("INBOX", sum()); err != nil {
			looked++
		}
	}
	// 4 probes in 8 Mi bits holding 5,000 sums: about 1e-8 false positives.
	if looked > 0 {
		t.Errorf("%d of 10,000 sums the run never stored were looked up in the store", looked)
	}
}

// TestIndexAppliesInterleavedAddsWithoutLookups: a big folder fetched in
// parts commits ascending runs of keys that interleave; applying them
// must not look each key up (it looked up three in four: every key below
// the greatest added so far), and a key added twice is still refused.
func TestIndexAppliesInterleavedAddsWithoutLookups(t *testing.T) {
	seg := Segment{Path: FoldersDir + "/INBOX/00000001-00000000.mbox.zst", Size: 10, SHA256: strings.Repeat("0", 64),
		USize: 1 << 30, Records: 4000, Frames: [][2]int64{{0, 0}}}
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	msg := func(uid int) Message {
		s := sha256.Sum256([]byte(fmt.Sprint(uid)))
		return Message{Key: fmt.Sprintf("9:%d", uid), SHA256: hex.EncodeToString(s[:]), Size: 10, InternalDate: date, Seg: seg.Path, Off: int64(uid) * 100}
	}
	// Four parts of 1,000 keys, committed 100 at a time in turns.
	var added []Message
	for chunk := 0; chunk < 10; chunk++ {
		for p := 0; p < 4; p++ {
			for i := 0; i < 100; i++ {
				added = append(added, msg(p*1000+chunk*100+i+1))
			}
		}
	}
	snap := func(added []Message) *Snapshot {
		return &Snapshot{ID: "00000001", Seq: 1, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
			Started: date, Finished: date,
			Folders:  []Folder{{Name: "INBOX", Dir: FolderDir("INBOX"), Status: FolderOK, Messages: uint32(len(added))}},
			Changes:  []Change{{Folder: "INBOX", Added: added}},
			Segments: []Segment{seg}}
	}
	var lookups int
	indexLookupHook = func() { lookups++ }
	defer func() { indexLookupHook = nil }()
	for _, v2 := range []bool{false, true} {
		a, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		commitAs(t, a, snap(added), v2, rand.New(rand.NewSource(1)))
		lookups = 0
		ix, err := a.OpenIndex(IndexOptions{})
		if err != nil {
			t.Fatal(err)
		}
		f := ix.Folder("INBOX")
		if f == nil || f.Present != 4000 {
			t.Fatalf("v2=%v: folder %+v, want 4000 messages present", v2, f)
		}
		mi := ix.Messages(f.ID, false)
		n := 0
		for m := mi.Next(); m != nil; m = mi.Next() {
			n++
			if want := fmt.Sprintf("9:%d", n); m.Key != want {
				t.Fatalf("v2=%v: key %d is %s, want %s", v2, n, m.Key, want)
			}
		}
		mi.Release()
		ix.Close()
		if n != 4000 || lookups != 0 {
			t.Errorf("v2=%v: %d messages in the index, %d keys looked up; want 4000 and none", v2, n, lookups)
		}
		// The same with a key of the first part added again after the
		// others: refused.
		b, err := Create(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		commitAs(t, b, snap(append(slices.Clone(added), msg(150))), v2, rand.New(rand.NewSource(1)))
		if ix, err := b.OpenIndex(IndexOptions{}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("v2=%v: OpenIndex with a key added twice = %v, want ErrCorrupt", v2, err)
			if err == nil {
				ix.Close()
			}
		}
	}
}

func TestAddedKeys(t *testing.T) {
	enc := func(uid uint32) []byte { return AppendKey(nil, fmt.Sprintf("9:%d", uid)) }
	for _, tc := range []struct {
		name   string
		before uint32 // 0: none
		keys   []uint32
		isNew  []bool
	}{
		{"ascending", 0, []uint32{1, 2, 3, 10}, []bool{true, true, true, true}},
		{"not after the folder's last key", 5, []uint32{3, 5, 6}, []bool{false, false, true}},
		{"interleaved runs", 0, []uint32{1, 2, 5001, 5002, 3, 4, 5003}, []bool{true, true, true, true, true, true, true}},
		{"added twice", 0, []uint32{1, 2, 5001, 2}, []bool{true, true, true, false}},
		{"descending", 0, []uint32{3000, 2000, 1000, 2000}, []bool{true, true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := &addedKeys{}
			if tc.before != 0 {
				a.before, a.last = enc(tc.before), enc(tc.before)
			}
			for i, k := range tc.keys {
				if got := a.isNew(enc(k)); got != tc.isNew[i] {
					t.Errorf("key %d: isNew = %v, want %v", k, got, tc.isNew[i])
				}
			}
		})
	}
	t.Run("other keys", func(t *testing.T) {
		a := &addedKeys{}
		for i, tc := range []struct {
			key string
			new bool
		}{{"b", true}, {"c", true}, {"a", false}, {"c", false}, {"d", true}} {
			if got := a.isNew(AppendKey(nil, tc.key)); got != tc.new {
				t.Errorf("%d: isNew(%q) = %v, want %v", i, tc.key, got, tc.new)
			}
		}
	})
	t.Run("full", func(t *testing.T) {
		// Sparse UIDs: a chunk each, until they are too many; then only
		// keys after every key added are new, and a key added twice
		// is never taken for new.
		a := &addedKeys{}
		for k := uint32(1); k <= maxAddedChunks; k++ {
			if !a.isNew(enc(k * addedChunkBits)) {
				t.Fatalf("key %d not new", k*addedChunkBits)
			}
		}
		if a.isNew(enc(1)) || a.isNew(enc(2)) || a.isNew(enc(addedChunkBits)) {
			t.Error("with the chunks full a key before the last is taken for new")
		}
		if !a.isNew(enc((maxAddedChunks + 1) * addedChunkBits)) {
			t.Error("a key after every key added is not new")
		}
		if len(a.chunks) > maxAddedChunks {
			t.Errorf("%d chunks, want at most %d", len(a.chunks), maxAddedChunks)
		}
	})
}

// TestIndexCompactsLevel0Late: level 0 of the index's stores is compacted
// at 8 tables, not leveldb's 4 (random keys: each such compaction rewrites
// most of level 1).
func TestIndexCompactsLevel0Late(t *testing.T) {
	ix := newDedupIndex(t)
	r := rand.New(rand.NewSource(3))
	var st leveldb.DBStats
	for flush := 0; flush < 32; flush++ {
		// About a write buffer (1 MiB) of the run's hashes, then a wait
		// for the store to flush and compact what it must.
		locs := map[string]RunLocation{}
		for i := 0; i < 10000; i++ {
			locs[randomSum(r)] = RunLocation{Seg: "folders/INBOX/00000001-00000000-0001.mbox.zst", Off: int64(i) << 12, Key: fmt.Sprintf("7:%d", flush*10000+i)}
		}
		if err := ix.PutRunHashes("INBOX", locs); err != nil {
			t.Fatal(err)
		}
		for wait := 0; wait < 100; wait++ {
			if err := ix.hdb.Stats(&st); err != nil {
				t.Fatal(err)
			}
			if st.LevelTablesCounts == nil || st.LevelTablesCounts[0] < 8 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := ix.hdb.Stats(&st); err != nil {
		t.Fatal(err)
	}
	// 32 batches of a write buffer or more, each a level-0 table: at 4
	// tables leveldb compacted level 0 14 times here, at 8 7 times.
	t.Logf("%d level-0 compactions for 32 tables", st.Level0Comp)
	if st.Level0Comp > 10 {
		t.Errorf("%d level-0 compactions for 32 tables, want at most 10 (one per 8 tables, and some slack)", st.Level0Comp)
	}
}

// newDedupIndex returns the state index, with its hash index, of a new
// archive, closed when the test ends.
func newDedupIndex(t *testing.T) *Index {
	t.Helper()
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ix, err := a.OpenIndex(IndexOptions{Dedup: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}

// randomSum returns a random hex SHA-256-sized sum.
func randomSum(r *rand.Rand) string {
	var b [32]byte
	r.Read(b[:])
	return hex.EncodeToString(b[:])
}
