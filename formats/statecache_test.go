package formats

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// scWorld builds snapshots the way a backup run would: real messages in
// the archive's storage, folders listed by a pretend server, and changes.
type scWorld struct {
	t       *testing.T
	a       *Archive
	snaps   []*Snapshot
	listed  map[string]Folder
	writers map[string]RecordWriter
	changes []*Change
	pending string // id of the snapshot being built
	n       int
}

func newSCWorld(t *testing.T, a *Archive) *scWorld {
	return &scWorld{t: t, a: a, listed: map[string]Folder{}}
}

// seqParent returns the sequence number and parent of the next snapshot.
func (w *scWorld) seqParent() (int, string) {
	if len(w.snaps) == 0 {
		return 1, ""
	}
	p := w.snaps[len(w.snaps)-1]
	return p.Seq + 1, p.ID
}

func (w *scWorld) change(folder string) *Change {
	for _, c := range w.changes {
		if c.Folder == folder {
			return c
		}
	}
	c := &Change{Folder: folder}
	w.changes = append(w.changes, c)
	return c
}

func (w *scWorld) create(folder string) {
	w.listed[folder] = Folder{Name: folder, Delimiter: "/", Dir: FolderDir(folder), UIDValidity: 1, UIDNext: 1, Status: FolderOK}
	w.change(folder).Event = EventCreated
}

func (w *scWorld) createNoSelect(folder string) {
	w.listed[folder] = Folder{Name: folder, Delimiter: "/", Attrs: []string{`\Noselect`}, Status: FolderNoSelect}
	w.change(folder).Event = EventCreated
}

// add stores a new message under key in folder and returns its entry.
func (w *scWorld) add(folder, key string, flags ...string) Message {
	w.t.Helper()
	if w.writers == nil {
		w.writers = map[string]RecordWriter{}
	}
	wr := w.writers[folder]
	if wr == nil {
		seq, _ := w.seqParent()
		var err error
		if wr, err = w.a.NewWriter(FolderDir(folder), seq, w.nextID()); err != nil {
			w.t.Fatal(err)
		}
		w.writers[folder] = wr
	}
	w.n++
	body := []byte(fmt.Sprintf("Subject: message %d\r\nMessage-ID: <%d@test>\r\n\r\nbody of %s %s\r\n", w.n, w.n, folder, key))
	// Dates with and without a zone offset: both must come back the same.
	date := time.Date(2024, 5, 6, 7, 8, w.n%60, w.n*1000, time.UTC)
	if w.n%3 == 0 {
		date = date.In(time.FixedZone("IST", 5*3600+1800))
	}
	if err := wr.BeginRecord(date, flags); err != nil {
		w.t.Fatal(err)
	}
	wr.Write(body)
	loc, off, err := wr.EndRecord()
	if err != nil {
		w.t.Fatal(err)
	}
	m := Message{Key: key, SHA256: sha(body), Size: int64(len(body)), InternalDate: date, Flags: flags,
		MessageID: fmt.Sprintf("<%d@test>", w.n), From: "Ann <ann@example.org>", Subject: fmt.Sprintf("message %d ü", w.n),
		Seg: loc, Off: off}
	w.readd(folder, m)
	return m
}

// readd adds m as it is: a message stored before (deduplicated by hash).
func (w *scWorld) readd(folder string, m Message) {
	c := w.change(folder)
	c.Added = append(c.Added, m)
}

func (w *scWorld) flags(folder, key string, flags []string) {
	c := w.change(folder)
	c.Flags = append(c.Flags, FlagChange{Key: key, Flags: flags})
}

func (w *scWorld) gone(folder string, keys ...string) {
	c := w.change(folder)
	c.Gone = append(c.Gone, keys...)
}

func (w *scWorld) rename(from, to string) {
	f := w.listed[from]
	delete(w.listed, from)
	f.Name, f.Dir = to, FolderDir(to)
	w.listed[to] = f
	c := w.change(to)
	c.Event, c.From = EventRenamed, from
}

func (w *scWorld) remove(folder string) {
	delete(w.listed, folder)
	w.change(folder).Event = EventDeleted
}

// nextID returns the id of the snapshot being built.
func (w *scWorld) nextID() string {
	if w.pending == "" {
		w.pending = NewSnapshotID()
	}
	return w.pending
}

// build returns the snapshot of what was recorded since the last one,
// with its writers committed, without committing the manifest.
func (w *scWorld) build() *Snapshot {
	w.t.Helper()
	seq, parent := w.seqParent()
	id := w.nextID()
	w.pending = ""
	s := &Snapshot{ID: id, Seq: seq, Parent: parent, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Started: time.Date(2025, 1, seq, 1, 0, 0, 0, time.UTC), Finished: time.Date(2025, 1, seq, 1, 5, 0, 0, time.UTC)}
	names := make([]string, 0, len(w.writers))
	for n := range w.writers {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g, err := w.writers[n].Commit()
		if err != nil {
			w.t.Fatal(err)
		}
		if g != nil {
			s.Segments = append(s.Segments, *g)
		}
	}
	for _, n := range sortedKeys(w.listed) {
		s.Folders = append(s.Folders, w.listed[n])
	}
	for _, c := range w.changes {
		s.Changes = append(s.Changes, *c)
	}
	w.writers, w.changes = nil, nil
	return s
}

// commit builds and commits the next snapshot.
func (w *scWorld) commit() *Snapshot {
	w.t.Helper()
	s := w.build()
	if err := w.a.Commit(s); err != nil {
		w.t.Fatal(err)
	}
	w.snaps = append(w.snaps, s)
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// scSteps is a history with every kind of change: adds, flag changes (to
// an empty set too), gone, a rename, deletions, a folder created again,
// a UIDVALIDITY change whose messages are added again by hash, a key
// added again after it was gone, and runs that change nothing.
var scSteps = []func(w *scWorld){
	func(w *scWorld) {
		w.create("INBOX")
		for i := 1; i <= 5; i++ {
			w.add("INBOX", fmt.Sprintf("1:%d", i), testFlags[i%len(testFlags)]...)
		}
		w.create("Sent")
		w.add("Sent", "7:1", `\Seen`)
		w.add("Sent", "7:2")
		w.createNoSelect("Archive")
		w.create("Work")
		for i := 1; i <= 3; i++ {
			w.add("Work", fmt.Sprintf("3:%d", i), "$Label1")
		}
		w.create("Empty")
	},
	func(w *scWorld) {},
	func(w *scWorld) {
		w.add("INBOX", "1:6")
		w.add("INBOX", "1:7", `\Seen`)
		w.flags("INBOX", "1:1", []string{`\Flagged`, `\Seen`})
		w.flags("INBOX", "1:3", []string{})
		w.flags("INBOX", "1:99", []string{`\Seen`}) // unknown key: ignored
		w.gone("INBOX", "1:2")
		w.flags("Work", "3:2", []string{"$Label1", "Work"})
	},
	func(w *scWorld) {
		w.rename("Work", "Projects")
		w.add("Projects", "3:4")
		w.remove("Sent")
	},
	func(w *scWorld) {
		// UIDVALIDITY 1 → 2: every old key gone, the messages added again.
		c := w.change("INBOX")
		c.Event = EventUIDValidity
		f := w.listed["INBOX"]
		f.UIDValidity = 2
		w.listed["INBOX"] = f
		w.gone("INBOX", "1:1", "1:3", "1:4", "1:5", "1:6", "1:7")
		for i, s := range w.snaps[0].Changes[0].Added[2:] {
			m := s
			m.Key = fmt.Sprintf("2:%d", i+1)
			w.readd("INBOX", m)
		}
		w.create("Sent") // again, after its deletion
		w.add("Sent", "8:1")
	},
	func(w *scWorld) {
		f := w.listed["INBOX"]
		f.UIDNext, f.HighestModSeq = 9, 77
		w.listed["INBOX"] = f
	},
	func(w *scWorld) {
		w.flags("INBOX", "2:1", []string{`\Answered`})
		w.gone("INBOX", "2:3")
		w.add("Projects", "3:5")
		w.add("INBOX", "1:2") // a gone key added again: Lookup finds the new one
	},
	func(w *scWorld) { w.remove("Projects") },
	func(w *scWorld) {
		w.remove("Archive")
		w.add("INBOX", "2:9", `\Seen`)
	},
	func(w *scWorld) {},
}

// dumpState renders everything a State holds, indexes included, in a
// canonical form (times as JSON, so with their zone offsets).
func dumpState(t *testing.T, st *State) string {
	t.Helper()
	if err := st.LoadAll(); err != nil {
		t.Fatalf("LoadAll: %v", err)
	}
	var b strings.Builder
	js := func(v any) string {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	if s := st.Snapshot; s != nil {
		fmt.Fprintf(&b, "snapshot %s %d parent=%q status=%s started=%s finished=%s folders=%s\n",
			s.ID, s.Seq, s.Parent, s.Status, js(s.Started), js(s.Finished), js(s.Folders))
	}
	for _, p := range sortedKeys(st.Segments) {
		fmt.Fprintf(&b, "segment %s framesnil=%v\n", js(st.Segments[p]), st.Segments[p].Frames == nil)
	}
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		fmt.Fprintf(&b, "folder %q deleted=%v %s\n", name, f.Deleted, js(f.Folder))
		pos := map[*MessageState]int{}
		for i, m := range f.Archived {
			pos[m] = i
			fmt.Fprintf(&b, "  %d %s flagsnil=%v\n", i, js(m), m.Flags == nil)
		}
		for _, m := range f.Archived {
			fmt.Fprintf(&b, "  key %s -> %d\n", m.Key, pos[f.Lookup(m.Key)])
			fmt.Fprintf(&b, "  hash %s -> %d\n", m.SHA256[:12], pos[f.ByHash(m.SHA256)])
		}
		var present []int
		for _, m := range f.Present() {
			present = append(present, pos[m])
		}
		fmt.Fprintf(&b, "  present %v\n", present)
	}
	return b.String()
}

func replayAll(t *testing.T, a *Archive) *State {
	t.Helper()
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func sameState(t *testing.T, what string, got, want *State) {
	t.Helper()
	g, w := dumpState(t, got), dumpState(t, want)
	if g == w {
		return
	}
	gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
	for i := 0; i < len(gl) || i < len(wl); i++ {
		var x, y string
		if i < len(gl) {
			x = gl[i]
		}
		if i < len(wl) {
			y = wl[i]
		}
		if x != y {
			t.Fatalf("%s: state differs from the replay at line %d:\n got  %s\n want %s", what, i+1, x, y)
		}
	}
}

func loadState(t *testing.T, a *Archive) *State {
	t.Helper()
	st, err := a.LoadState()
	if err != nil {
		t.Fatalf("LoadState: %v", err)
	}
	if err := st.Err(); err != nil {
		t.Fatalf("LoadState: Err() = %v", err)
	}
	return st
}

func saveCache(t *testing.T, a *Archive, st *State) {
	t.Helper()
	if err := a.SaveStateCache(st); err != nil {
		t.Fatalf("SaveStateCache: %v", err)
	}
}

func readIndex(t *testing.T, a *Archive) *cacheIndex {
	t.Helper()
	idx, err := a.readCacheIndex()
	if err != nil {
		t.Fatalf("read cache index: %v", err)
	}
	return idx
}

// buildHistory commits every step, running each the way the backup
// engine does: state from LoadState, commit, Apply, SaveStateCache.
func buildHistory(t *testing.T, a *Archive, check bool) *scWorld {
	t.Helper()
	w := newSCWorld(t, a)
	for i, step := range scSteps {
		st := loadState(t, a)
		if i > 0 && st.loader == nil {
			t.Fatalf("step %d: LoadState did not use the cache", i+1)
		}
		step(w)
		s := w.commit()
		if err := st.Apply(s); err != nil {
			t.Fatalf("step %d: Apply: %v", i+1, err)
		}
		saveCache(t, a, st)
		if check {
			full := replayAll(t, a)
			sameState(t, fmt.Sprintf("step %d, applied", i+1), st, full)
			sameState(t, fmt.Sprintf("step %d, reloaded", i+1), loadState(t, a), full)
			idx := readIndex(t, a)
			if idx.Seq != s.Seq || idx.ID != s.ID {
				t.Fatalf("step %d: cache at %d-%s, want %d-%s", i+1, idx.Seq, idx.ID, s.Seq, s.ID)
			}
			if n := len(full.Segments); len(idx.Segments) > bits.Len(uint(n))+1 {
				t.Fatalf("step %d: %d segment files for %d segments", i+1, len(idx.Segments), n)
			}
		}
	}
	return w
}

func TestStateCacheMatchesReplay(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		w := buildHistory(t, a, true)
		full := replayAll(t, a)

		// A cache at every snapshot K, with K+1…N applied on load.
		for k := 1; k <= len(w.snaps); k++ {
			stK, err := Replay(w.snaps[:k], "")
			if err != nil {
				t.Fatal(err)
			}
			saveCache(t, a, stK)
			st := loadState(t, a)
			if st.loader == nil {
				t.Fatalf("cache at %d: not used", k)
			}
			sameState(t, fmt.Sprintf("cache at %d of %d", k, len(w.snaps)), st, full)
		}

		// The cache is not a left-over, and Verify does not mind it.
		st := loadState(t, a)
		if o, err := a.Orphans(st); err != nil || len(o) != 0 {
			t.Fatalf("Orphans with a cache = %v, %v", o, err)
		}
		rep, err := a.Verify(nil)
		if err != nil || !rep.OK() || len(rep.Orphans) != 0 {
			t.Fatalf("Verify with a cache = %+v, %v", rep, err)
		}
		if _, err := os.Stat(filepath.Join(a.Root, CacheDir, CacheIndexFile)); err != nil {
			t.Fatal(err)
		}
	})
}

// rewriteIndex changes the index with edit and writes it back with a
// valid checksum, as another archive's or an older cache would be.
func rewriteIndex(t *testing.T, a *Archive, edit func(idx *cacheIndex)) {
	t.Helper()
	idx := readIndex(t, a)
	edit(idx)
	body, _ := json.Marshal(idx)
	data := fmt.Sprintf(`{"mailvault_state_cache":1,"index":%s,"sha256":"%s"}`, body, sha256Hex(body))
	if err := os.WriteFile(filepath.Join(a.Root, CacheDir, CacheIndexFile), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func flipByte(t *testing.T, path string, at func(n int) int) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[at(len(data))] ^= 0x20
	os.WriteFile(path, data, 0o600)
}

func TestStateCacheFallback(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, root := create(t, opts)
		buildHistory(t, a, false)
		full := replayAll(t, a)
		cache := filepath.Join(root, CacheDir)
		pristine := t.TempDir()
		copyDir(t, cache, pristine)
		idx := readIndex(t, a)
		var folderFile string
		for _, cf := range idx.Folders {
			if cf.Folder.Name == "INBOX" {
				folderFile = filepath.Join(cache, cf.File.Name)
			}
		}

		// Another archive's cache, at snapshots this one does not have.
		other, _ := create(t, opts)
		buildHistory(t, other, false)
		otherCache := filepath.Join(other.Root, CacheDir)

		for _, c := range []struct {
			name      string
			damage    func(t *testing.T)
			fromCache bool // the cache is still used (only a folder is replayed)
		}{
			{"missing cache", func(t *testing.T) { os.RemoveAll(cache) }, false},
			{"empty index", func(t *testing.T) { os.WriteFile(filepath.Join(cache, CacheIndexFile), nil, 0o600) }, false},
			{"truncated index", func(t *testing.T) {
				data, _ := os.ReadFile(filepath.Join(cache, CacheIndexFile))
				os.WriteFile(filepath.Join(cache, CacheIndexFile), data[:len(data)/2], 0o600)
			}, false},
			{"damaged index", func(t *testing.T) {
				flipByte(t, filepath.Join(cache, CacheIndexFile), func(n int) int { return n / 2 })
			}, false},
			{"newer index", func(t *testing.T) {
				data, _ := os.ReadFile(filepath.Join(cache, CacheIndexFile))
				os.WriteFile(filepath.Join(cache, CacheIndexFile), bytes.Replace(data, []byte(`"mailvault_state_cache":1`), []byte(`"mailvault_state_cache":2`), 1), 0o600)
			}, false},
			{"foreign cache", func(t *testing.T) {
				os.RemoveAll(cache)
				copyDir(t, otherCache, cache)
			}, false},
			{"other archive id", func(t *testing.T) { rewriteIndex(t, a, func(idx *cacheIndex) { idx.Archive = "0123456789abcdef" }) }, false},
			{"other snapshot id", func(t *testing.T) {
				rewriteIndex(t, a, func(idx *cacheIndex) { idx.ID = "00000000"; idx.Snapshot.ID = "00000000" })
			}, false},
			{"snapshot not in the archive", func(t *testing.T) {
				rewriteIndex(t, a, func(idx *cacheIndex) { idx.Seq++; idx.Snapshot.Seq++ })
			}, false},
			{"missing folder file", func(t *testing.T) { os.Remove(folderFile) }, false},
			{"truncated folder file", func(t *testing.T) {
				data, _ := os.ReadFile(folderFile)
				os.WriteFile(folderFile, data[:len(data)-1], 0o600)
			}, false},
			{"damaged folder file", func(t *testing.T) { flipByte(t, folderFile, func(n int) int { return n / 2 }) }, true},
			{"damaged segments file", func(t *testing.T) {
				if len(idx.Segments) == 0 {
					t.Skip("no segments in this storage")
				}
				flipByte(t, filepath.Join(cache, idx.Segments[0].Name), func(n int) int { return n / 2 })
			}, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				os.RemoveAll(cache)
				copyDir(t, pristine, cache)
				c.damage(t)
				st := loadState(t, a)
				if got := st.loader != nil; got != c.fromCache {
					t.Errorf("cache used = %v, want %v", got, c.fromCache)
				}
				sameState(t, c.name, st, full)
				if err := st.Err(); err != nil {
					t.Fatalf("Err() = %v", err)
				}
				// Saving repairs the cache.
				saveCache(t, a, st)
				st2 := loadState(t, a)
				if st2.loader == nil {
					t.Fatal("the saved cache is not used")
				}
				sameState(t, c.name+", saved again", st2, full)
			})
		}
	})
}

func copyDir(t *testing.T, from, to string) {
	t.Helper()
	os.MkdirAll(to, 0o700)
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(to, e.Name()), data, 0o600)
	}
}

// A folder that can be loaded neither from the cache nor from the
// manifests gives errors, never an empty folder taken for real.
func TestStateCacheUnloadable(t *testing.T) {
	a, root := create(t, StorageOptions{})
	w := buildHistory(t, a, false)
	st := loadState(t, a)
	idx := readIndex(t, a)
	for _, cf := range idx.Folders {
		if cf.Folder.Name == "INBOX" {
			flipByte(t, filepath.Join(root, CacheDir, cf.File.Name), func(n int) int { return n - 3 })
		}
	}
	files, _ := a.ListSnapshots()
	flipByte(t, files[0].Path, func(n int) int { return n - 40 })

	inbox := st.Folders["INBOX"]
	if inbox.Lookup("2:1") != nil || inbox.Present() != nil || inbox.ByHash(w.snaps[0].Changes[0].Added[0].SHA256) != nil {
		t.Fatal("an unloadable folder answered")
	}
	if err := st.Err(); err == nil {
		t.Fatal("Err() = nil after a failed load")
	}
	if err := inbox.Load(); err == nil || st.LoadAll() == nil {
		t.Fatal("Load/LoadAll = nil after a failed load")
	}
	w.add("INBOX", "2:10")
	if err := st.Apply(w.build()); err == nil {
		t.Fatal("Apply to an unloadable folder succeeded")
	}
	if err := a.SaveStateCache(st); err == nil {
		t.Fatal("SaveStateCache of a state with a failed load succeeded")
	}
	// Other folders are fine.
	if len(st.Folders["Sent"].Present()) != 1 {
		t.Fatal("Sent is not loaded")
	}
}

func cacheFiles(t *testing.T, a *Archive) map[string]os.FileInfo {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(a.Root, CacheDir))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]os.FileInfo{}
	for _, e := range entries {
		fi, err := os.Stat(filepath.Join(a.Root, CacheDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = fi
	}
	return out
}

func TestStateCacheWritesWhatChanged(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		w := buildHistory(t, a, false)
		before := cacheFiles(t, a)
		oldIdx := readIndex(t, a)

		// A run that changes nothing: only the index is written.
		reads, writes := cacheFolderReads.Load(), cacheFolderWrites.Load()
		st := loadState(t, a)
		s := w.commit()
		if err := st.Apply(s); err != nil {
			t.Fatal(err)
		}
		saveCache(t, a, st)
		if r, wr := cacheFolderReads.Load()-reads, cacheFolderWrites.Load()-writes; r != 0 || wr != 0 {
			t.Fatalf("no-change run read %d and wrote %d folder files", r, wr)
		}
		after := cacheFiles(t, a)
		if len(after) != len(before) {
			t.Fatalf("cache files %d → %d", len(before), len(after))
		}
		for name, fi := range before {
			if name == CacheIndexFile {
				continue
			}
			if a := after[name]; a == nil || !os.SameFile(a, fi) || !a.ModTime().Equal(fi.ModTime()) {
				t.Errorf("%s was rewritten or removed", name)
			}
		}
		if idx := readIndex(t, a); idx.ID != s.ID || idx.Seq != oldIdx.Seq+1 {
			t.Fatalf("index at %d-%s, want %d-%s", idx.Seq, idx.ID, s.Seq, s.ID)
		}

		// A run that adds to one folder: that folder's file (and one
		// with the new segment) is written, the old one removed.
		reads, writes = cacheFolderReads.Load(), cacheFolderWrites.Load()
		st = loadState(t, a)
		w.add("INBOX", "2:20")
		s = w.commit()
		if err := st.Apply(s); err != nil {
			t.Fatal(err)
		}
		saveCache(t, a, st)
		if r, wr := cacheFolderReads.Load()-reads, cacheFolderWrites.Load()-writes; r != 1 || wr != 1 {
			t.Fatalf("run changing one folder read %d and wrote %d folder files, want 1 and 1", r, wr)
		}
		idx := readIndex(t, a)
		now := cacheFiles(t, a)
		for _, cf := range idx.Folders {
			if cf.File == nil {
				continue
			}
			_, existed := after[cf.File.Name]
			if existed == (cf.Folder.Name == "INBOX") {
				t.Errorf("folder %s: file %s existed before: %v", cf.Folder.Name, cf.File.Name, existed)
			}
		}
		named := 1 + len(idx.Segments)
		for _, cf := range idx.Folders {
			if cf.File != nil {
				named++
			}
		}
		if len(now) != named {
			t.Fatalf("%d files in cache/, the index names %d", len(now), named)
		}
		sameState(t, "after one change", loadState(t, a), replayAll(t, a))
	})
}

func TestStateCacheLazy(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		w := buildHistory(t, a, false)
		lazy := 0
		reads := cacheFolderReads.Load()
		st := loadState(t, a)
		for _, name := range st.FolderNames() {
			f := st.Folders[name]
			_ = f.Name + f.Dir + f.Status // metadata needs no load
			if f.lazy != nil {
				lazy++
				if f.Archived != nil {
					t.Fatalf("%s: messages before Load", name)
				}
			}
		}
		if lazy < 3 {
			t.Fatalf("%d lazy folders, want at least 3", lazy)
		}
		step := func(what string, want int64) {
			t.Helper()
			if got := cacheFolderReads.Load() - reads; got != want {
				t.Fatalf("%s: %d folder files read, want %d", what, got, want)
			}
		}
		step("LoadState", 0)
		st.Folders["INBOX"].Present()
		step("Present", 1)
		st.Folders["INBOX"].Lookup("2:1")
		st.Folders["INBOX"].ByHash("x")
		step("Lookup of a loaded folder", 1)
		st.Folders["Sent"].Lookup("8:1")
		step("Lookup", 2)
		st.Folders["Projects"].ByHash("x")
		step("ByHash", 3)

		// Apply: a rename needs no messages, an add does.
		st = loadState(t, a)
		reads = cacheFolderReads.Load()
		w.rename("Sent", "Sent Items")
		s1 := w.commit()
		if err := st.Apply(s1); err != nil {
			t.Fatal(err)
		}
		step("Apply of a rename", 0)
		w.add("INBOX", "2:30")
		s2 := w.commit()
		if err := st.Apply(s2); err != nil {
			t.Fatal(err)
		}
		step("Apply of an add", 1)
		saveCache(t, a, st) // the renamed folder keeps its file
		step("SaveStateCache", 1)
		sameState(t, "lazy after rename and add", st, replayAll(t, a))

		// Concurrent first use loads each folder once.
		st = loadState(t, a)
		reads = cacheFolderReads.Load()
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, name := range st.FolderNames() {
					st.Folders[name].Present()
				}
			}()
		}
		wg.Wait()
		n := int64(0)
		for _, f := range st.Folders {
			if f.lazy != nil {
				n++
			}
		}
		step("concurrent Present", n)
	})
}

// benchArchive commits nFolders folders of nMsgs messages in all, over
// runs snapshots, as manifests only (the segments they name are not
// written: LoadState does not read them).
func benchArchive(b *testing.B, nMsgs, nFolders, runs int) *Archive {
	a, err := Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var parent *Snapshot
	uid := make([]int, nFolders)
	folders := make([]Folder, nFolders)
	for i := range folders {
		name := fmt.Sprintf("Folder %02d", i)
		folders[i] = Folder{Name: name, Delimiter: "/", Dir: FolderDir(name), UIDValidity: 1, UIDNext: 1, HighestModSeq: 1, Status: FolderOK}
	}
	perRun := nMsgs / runs / nFolders
	for r := 1; r <= runs; r++ {
		s := &Snapshot{ID: NewSnapshotID(), Seq: r, Source: "imap://bench", Protocol: "imap", Status: StatusComplete,
			Started: time.Now().UTC(), Finished: time.Now().UTC()}
		if parent != nil {
			s.Parent = parent.ID
		}
		for i := range folders {
			seg := Segment{Path: fmt.Sprintf("%s/%s/%08d-%s.mbox.zst", FoldersDir, folders[i].Dir, r, s.ID),
				Size: 1 << 20, SHA256: strings.Repeat("ab", 32), USize: 1 << 30, Records: perRun, Frames: [][2]int64{{0, 0}}}
			s.Segments = append(s.Segments, seg)
			c := Change{Folder: folders[i].Name}
			if r == 1 {
				c.Event = EventCreated
			}
			for j := 0; j < perRun; j++ {
				uid[i]++
				key := fmt.Sprintf("1:%d", uid[i])
				c.Added = append(c.Added, Message{Key: key, SHA256: sha([]byte(folders[i].Name + key)), Size: 4000 + int64(j),
					InternalDate: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(uid[i]) * time.Minute),
					Flags:        []string{`\Seen`}, MessageID: fmt.Sprintf("<%d.%d@bench.example>", i, uid[i]),
					From: "Someone <someone@example.org>", To: "Ann <ann@example.org>", Subject: fmt.Sprintf("Message %d of folder %d", uid[i], i),
					Date: "Mon, 1 Jan 2024 00:00:00 +0000", Seg: seg.Path, Off: int64(j) * 5000})
			}
			if r > 1 {
				c.Flags = []FlagChange{{Key: "1:1", Flags: []string{`\Answered`, `\Seen`}}}
				c.Gone = []string{fmt.Sprintf("1:%d", r)}
			}
			s.Changes = append(s.Changes, c)
			folders[i].UIDNext = uint32(uid[i] + 1)
			folders[i].Messages = uint32(uid[i])
		}
		s.Folders = append([]Folder(nil), folders...)
		if err := a.Commit(s); err != nil {
			b.Fatal(err)
		}
		parent = s
	}
	return a
}

// noChange commits and returns a run that changed nothing after st.
func noChange(b *testing.B, a *Archive, st *State) *Snapshot {
	s := &Snapshot{ID: NewSnapshotID(), Seq: st.Snapshot.Seq + 1, Parent: st.Snapshot.ID, Source: "imap://bench", Protocol: "imap",
		Status: StatusComplete, Started: time.Now().UTC(), Finished: time.Now().UTC()}
	for _, name := range st.FolderNames() {
		f := st.Folders[name].Folder
		f.Status = FolderUnchanged
		s.Folders = append(s.Folders, f)
	}
	if err := a.Commit(s); err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkLoadState100k is a no-change run over an archive of 100,000
// messages in 50 folders: the state as the run starts, the run's empty
// snapshot committed and applied, and (with the cache) the cache saved.
// "replay" is the same without the cache; "cache-loadall" also reads
// every folder's messages (a run that must look into every folder).
func BenchmarkLoadState100k(b *testing.B) {
	for _, mode := range []string{"cache", "cache-loadall", "replay"} {
		b.Run(mode, func(b *testing.B) {
			a := benchArchive(b, 100000, 50, 10)
			if mode != "replay" {
				st, err := a.LoadState()
				if err != nil {
					b.Fatal(err)
				}
				if err := a.SaveStateCache(st); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				var st *State
				var err error
				if mode == "replay" {
					snaps, err := a.Snapshots()
					if err != nil {
						b.Fatal(err)
					}
					st, err = Replay(snaps, "")
					if err != nil {
						b.Fatal(err)
					}
				} else if st, err = a.LoadState(); err != nil || st.loader == nil {
					b.Fatalf("LoadState: %v (cache used: %v)", err, st != nil && st.loader != nil)
				}
				if mode == "cache-loadall" {
					if err := st.LoadAll(); err != nil {
						b.Fatal(err)
					}
				}
				if err := st.Apply(noChange(b, a, st)); err != nil {
					b.Fatal(err)
				}
				if mode != "replay" {
					if err := a.SaveStateCache(st); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
