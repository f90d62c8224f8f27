package formats

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/testenv"
)

// The conformance suite: every test here runs against each storage an
// archive can have, and must pass unchanged on all of them.

var storages = Storages()

func forEachStorage(t *testing.T, fn func(t *testing.T, opts StorageOptions)) {
	for _, o := range storages {
		t.Run(o.Storage+"-"+o.Compression, func(t *testing.T) { fn(t, o) })
	}
}

func create(t *testing.T, opts StorageOptions) (*Archive, string) {
	t.Helper()
	root := t.TempDir()
	a, err := CreateWith(root, opts)
	if err != nil {
		t.Fatal(err)
	}
	return a, root
}

func TestArchiveRoundTrip(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, root := create(t, opts)
		bodies := append([][]byte{}, edgeBodies...)
		bodies = append(bodies, bigBody(9<<20, 1), []byte("after big\n"), bigBody(FrameSize-3, 2), bigBody(100, 3))
		for i := 0; i < 300; i++ {
			bodies = append(bodies, bigBody(20000+i, uint64(i+10)))
		}
		s1 := writeSnapshot(t, a, nil, "INBOX", bodies, 7)
		s2 := writeSnapshot(t, a, s1, "INBOX", [][]byte{[]byte("second run\n")}, 0)

		a2, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		if a2.Storage() != opts {
			t.Fatalf("reopened archive storage = %v, want %v", a2.Storage(), opts)
		}
		snaps, err := a2.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		if len(snaps) != 2 || snaps[1].ID != s2.ID {
			t.Fatalf("Snapshots() = %d snapshots, want 2", len(snaps))
		}
		st, err := Replay(snaps, "")
		if err != nil {
			t.Fatal(err)
		}
		f := st.Folders["INBOX"]
		if len(f.Archived) != len(bodies)+1 {
			t.Fatalf("state has %d messages, want %d", len(f.Archived), len(bodies)+1)
		}
		for i, m := range f.Archived[:len(bodies)] {
			r, err := a2.OpenMessage(st, &m.Message)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !bytes.Equal(got, bodies[i]) {
				t.Fatalf("message %d: read %d bytes, want %d (equal prefix %v)", i, len(got), len(bodies[i]), bytes.HasPrefix(bodies[i], got))
			}
		}
		// A MessageReader gives the same bytes in archive order, in reverse
		// order and with messages left half-read.
		mr := a2.NewMessageReader(st)
		for pass, order := range [][]int{seq(len(bodies)), reverse(seq(len(bodies))), seq(len(bodies))} {
			for _, i := range order {
				r, err := mr.Open(&f.Archived[i].Message)
				if err != nil {
					t.Fatalf("pass %d message %d: %v", pass, i, err)
				}
				if pass == 2 && i%3 == 0 {
					io.CopyN(io.Discard, r, int64(len(bodies[i])/2))
					continue
				}
				got, err := io.ReadAll(r)
				if err != nil || !bytes.Equal(got, bodies[i]) {
					t.Fatalf("pass %d message %d: %d bytes, %v; want %d", pass, i, len(got), err, len(bodies[i]))
				}
			}
		}
		mr.Close()
		rep, err := a2.Verify(nil)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK() || rep.Messages != len(bodies)+1 || len(rep.Orphans) != 0 {
			t.Fatalf("Verify = %+v", rep)
		}
		if opts.Storage == StorageMbox {
			if b := a2.StoredBytes(snaps); b[0]+b[1] != segmentBytes(t, root) {
				t.Errorf("StoredBytes = %v, segments on disk hold %d", b, segmentBytes(t, root))
			}
			checkSegmentsExternally(t, root, snaps, st, len(bodies)+1)
		} else {
			checkMaildirExternally(t, root, opts, f, bodies)
		}
	})
}

// segmentBytes is the size of every segment file on disk.
func segmentBytes(t *testing.T, root string) int64 {
	var n int64
	matches, _ := filepath.Glob(filepath.Join(root, FoldersDir, "*", "*.mbox.zst"))
	for _, p := range matches {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// checkSegmentsExternally checks the frame sizes and that the zstd CLI
// reads the concatenated segments as one mboxrd stream.
func checkSegmentsExternally(t *testing.T, root string, snaps []*Snapshot, st *State, n int) {
	for _, g := range st.Segments {
		for i := 1; i < len(g.Frames); i++ {
			if d := g.Frames[i][1] - g.Frames[i-1][1]; d > FrameSize {
				t.Errorf("frame %d of %s holds %d bytes", i-1, g.Path, d)
			}
		}
	}
	zstd := testenv.RequireTool(t, "zstd")
	var segs []string
	for _, s := range snaps {
		for _, g := range s.Segments {
			segs = append(segs, filepath.Join(root, g.Path))
		}
	}
	out, err := exec.Command(zstd, append([]string{"-dc"}, segs...)...).Output()
	if err != nil {
		t.Fatalf("zstd -dc: %v", err)
	}
	if got := bytes.Count(out, []byte("\nFrom MAILER-DAEMON ")) + 1; got != n {
		t.Errorf("zstd -dc output has %d From lines, want %d", got, n)
	}
}

// checkMaildirExternally checks the Maildir layout: one file per message
// in cur/ named <unique>,S=<size>:2,<flags>, modification time =
// INTERNALDATE, content readable by the zstd CLI (or as is), keyword
// letters named in dovecot-keywords, and nothing left in tmp/ or new/.
func checkMaildirExternally(t *testing.T, root string, opts StorageOptions, f *FolderState, bodies [][]byte) {
	dir := filepath.Join(root, FoldersDir, "INBOX")
	kw, err := ReadMaildirKeywords(filepath.Join(dir, MaildirKeywordsFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kw.Encode()), " $Label1\n") || !strings.Contains(string(kw.Encode()), " Work\n") {
		t.Errorf("dovecot-keywords = %q, want $Label1 and Work", kw.Encode())
	}
	zstd := "" // the zstd CLI, looked up when first needed
	for i, m := range f.Archived[:len(bodies)] {
		p := filepath.Join(root, filepath.FromSlash(m.Seg))
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !fi.ModTime().Equal(m.InternalDate) {
			t.Errorf("message %d: mtime %v, want INTERNALDATE %v", i, fi.ModTime(), m.InternalDate)
		}
		name := path.Base(m.Seg)
		_, info, _ := strings.Cut(name, ":2,")
		if !strings.Contains(name, fmt.Sprintf(",S=%d:2,", len(bodies[i]))) {
			t.Errorf("message %d: file name %q lacks ,S=%d:2,", i, name, len(bodies[i]))
		}
		if got, want := fmt.Sprint(kw.Flags(info)), fmt.Sprint(sortedFlags(m.Flags)); got != want && !(len(m.Flags) == 0 && info == "") {
			t.Errorf("message %d: flags from file name %v, want %v", i, got, want)
		}
		var content []byte
		if opts.Compression == CompressNone {
			content, err = os.ReadFile(p)
		} else if i < 20 || len(bodies[i]) > FrameSize {
			if zstd == "" {
				zstd = testenv.RequireTool(t, "zstd")
			}
			content, err = exec.Command(zstd, "-dc", p).Output()
		} else {
			continue
		}
		if err != nil || !bytes.Equal(content, bodies[i]) {
			t.Fatalf("message %d: file content differs from the message (%v)", i, err)
		}
	}
	for _, sub := range []string{"tmp", "new"} {
		if e, _ := os.ReadDir(filepath.Join(dir, sub)); len(e) > 0 {
			t.Errorf("%s/ holds %d files after commit", sub, len(e))
		}
	}
}

// sortedFlags orders flags the way MaildirKeywords.Flags returns them:
// system flags by letter (D F R S T), then keywords.
func sortedFlags(flags []string) []string {
	order := map[string]int{`\Draft`: 0, `\Flagged`: 1, `\Answered`: 2, `\Seen`: 3, `\Deleted`: 4}
	var sys, kws []string
	for _, f := range flags {
		if _, ok := order[f]; ok {
			sys = append(sys, f)
		} else {
			kws = append(kws, f)
		}
	}
	for i := range sys {
		for j := i + 1; j < len(sys); j++ {
			if order[sys[j]] < order[sys[i]] {
				sys[i], sys[j] = sys[j], sys[i]
			}
		}
	}
	return append(sys, kws...)
}

func TestVerifyFindsDamage(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		for _, damage := range []string{"bit flip", "truncated", "missing"} {
			t.Run(damage, func(t *testing.T) {
				a, root := create(t, opts)
				s := writeSnapshot(t, a, nil, "INBOX", edgeBodies, 0)
				p := filepath.Join(root, s.Changes[0].Added[0].Seg)
				data, _ := os.ReadFile(p)
				switch damage {
				case "bit flip":
					data[len(data)/2] ^= 0x40
					os.WriteFile(p, data, 0o600)
				case "truncated":
					os.WriteFile(p, data[:len(data)-3], 0o600)
				case "missing":
					os.Remove(p)
				}
				rep, err := a.Verify(nil)
				if err != nil {
					t.Fatal(err)
				}
				if rep.OK() {
					t.Fatalf("Verify after %s = OK, want a problem", damage)
				}
				snaps, _ := a.Snapshots()
				st, _ := Replay(snaps, "")
				r, err := a.OpenMessage(st, &st.Folders["INBOX"].Archived[0].Message)
				if err == nil {
					got, rerr := io.ReadAll(r)
					r.Close()
					if rerr == nil && damage != "bit flip" {
						t.Fatalf("reading a %s message gave %d bytes and no error", damage, len(got))
					}
				}
			})
		}
	})
}

func TestOrphansRemoved(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, root := create(t, opts)
		writeSnapshot(t, a, nil, "INBOX", edgeBodies[:2], 0)
		// A run killed after its writer committed, before its manifest.
		w, _ := a.NewWriter("INBOX", 2, "deadbeef")
		w.BeginRecord(time.Now(), []string{`\Seen`})
		w.Write([]byte("uncommitted"))
		w.EndRecord()
		if _, err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		// A run killed in the middle of a message.
		w2, _ := a.NewWriter("Other", 2, "deadbeef")
		w2.BeginRecord(time.Now(), nil)
		w2.Write([]byte("half a message"))
		os.WriteFile(filepath.Join(root, SnapshotsDir, "00000002-deadbeef.json.tmp"), []byte("{"), 0o600)
		snaps, _ := a.Snapshots()
		st, _ := Replay(snaps, "")
		removed, err := a.RemoveOrphans(st)
		if err != nil || len(removed) != 3 {
			t.Fatalf("RemoveOrphans = %v, %v; want 3 files", removed, err)
		}
		rep, _ := a.Verify(nil)
		if !rep.OK() || len(rep.Orphans) != 0 || rep.Messages != 2 {
			t.Fatalf("Verify after cleanup = %+v", rep)
		}
	})
}

func TestWriterAbort(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		w, err := a.NewWriter("INBOX", 1, "deadbeef")
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			w.BeginRecord(time.Now(), nil)
			w.Write([]byte("message\n"))
			if _, _, err := w.EndRecord(); err != nil {
				t.Fatal(err)
			}
		}
		w.Abort()
		orphans, err := a.Orphans(NewState())
		if err != nil {
			t.Fatal(err)
		}
		if len(orphans) != 0 {
			t.Fatalf("after Abort, files are left: %v", orphans)
		}
	})
}

func TestStorageMismatchRefused(t *testing.T) {
	for _, have := range storages {
		for _, want := range storages {
			root := t.TempDir()
			if _, err := OpenOrCreateWith(root, &have); err != nil {
				t.Fatal(err)
			}
			_, err := OpenOrCreateWith(root, &want)
			if (have == want) != (err == nil) || err != nil && !errors.Is(err, ErrStorageMismatch) {
				t.Errorf("archive %v opened with %v: error %v", have, want, err)
			}
			if err != nil && !strings.Contains(err.Error(), have.String()) {
				t.Errorf("error %q does not say how the archive was created", err)
			}
			if _, err := OpenOrCreateWith(root, nil); err != nil {
				t.Errorf("opening %v without options: %v", have, err)
			}
		}
	}
	for _, bad := range []StorageOptions{{Storage: "mbox", Compression: "none"}, {Storage: "mh"}, {Storage: "maildir", Compression: "gzip"}} {
		if _, err := CreateWith(t.TempDir(), bad); !errors.Is(err, ErrStorageMismatch) {
			t.Errorf("CreateWith(%+v) error = %v, want ErrStorageMismatch", bad, err)
		}
	}
}

// flagSnapshot commits, after parent, a snapshot that changes the flags of
// the first and third of the messages added (to INBOX).
func flagSnapshot(t *testing.T, a *Archive, parent *Snapshot, added []Message) *Snapshot {
	t.Helper()
	s2 := &Snapshot{ID: NewSnapshotID(), Seq: parent.Seq + 1, Parent: parent.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Folders: parent.Folders,
		Changes: []Change{{Folder: "INBOX", Flags: []FlagChange{
			{Key: added[0].Key, Flags: []string{`\Seen`, "NewKeyword"}},
			{Key: added[2].Key, Flags: nil},
		}}},
	}
	if err := a.Commit(s2); err != nil {
		t.Fatal(err)
	}
	return s2
}

// storedTree returns every file under folders/ with its content's hash.
func storedTree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(filepath.Join(root, FoldersDir), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = sha(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAfterCommit: after a commit that changes flags, AfterCommit shows
// the new flags where the storage keeps flags on disk (the names of a
// Maildir archive's files; segments never change) and saves the state
// cache; the archive reads and verifies as before, and a second call
// changes nothing.
func TestAfterCommit(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, root := create(t, opts)
		s1 := writeSnapshot(t, a, nil, "INBOX", edgeBodies[:4], 0)
		s2 := flagSnapshot(t, a, s1, s1.Changes[0].Added)
		added := s1.Changes[0].Added
		before := storedTree(t, root)
		snaps, _ := a.Snapshots()
		st, err := Replay(snaps, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := a.AfterCommit(st, []*Snapshot{s1, s2}); err != nil {
			t.Fatalf("AfterCommit: %v", err)
		}
		after := storedTree(t, root)

		// What changed on disk: the files whose name no longer is.
		var renamed []string
		for p, sum := range before {
			if _, ok := after[p]; !ok {
				renamed = append(renamed, p)
				for q, sum2 := range after {
					if _, old := before[q]; !old && sum2 == sum && MaildirBase(path.Base(q)) == MaildirBase(path.Base(p)) {
						sum = ""
					}
				}
				if sum != "" {
					t.Errorf("%s disappeared without a renamed copy", p)
				}
			}
		}
		if len(after) != len(before) {
			t.Errorf("AfterCommit changed the number of stored files from %d to %d", len(before), len(after))
		}
		switch opts.Storage {
		case StorageMbox:
			if len(renamed) != 0 {
				t.Errorf("AfterCommit changed segments: %v", renamed)
			}
		case StorageMaildir:
			if len(renamed) != 2 {
				t.Errorf("AfterCommit renamed %v; want the 2 files whose flags changed", renamed)
			}
			kw, _ := ReadMaildirKeywords(filepath.Join(root, FoldersDir, "INBOX", MaildirKeywordsFile))
			byBase := map[string]string{}
			for p := range after {
				byBase[MaildirBase(path.Base(p))] = path.Base(p)
			}
			for i, want := range [][]string{{`\Seen`, "NewKeyword"}, added[1].Flags, nil, added[3].Flags} {
				name := byBase[MaildirBase(path.Base(added[i].Seg))]
				_, info, _ := strings.Cut(name, ":2,")
				if got := kw.Flags(info); fmt.Sprint(got) != fmt.Sprint(sortedFlags(want)) {
					t.Errorf("message %d: file %q has flags %v, want %v", i, name, got, want)
				}
			}
		}

		// The state cache is at the last snapshot.
		a2, err := Open(root)
		if err != nil {
			t.Fatal(err)
		}
		files, _ := a2.ListSnapshots()
		cached := a2.loadCachedState(files)
		if cached == nil || cached.Snapshot.ID != s2.ID {
			t.Fatalf("no state cache at snapshot %s after AfterCommit", s2.ID)
		}
		if m := cached.Folders["INBOX"].Lookup(added[0].Key); m == nil || fmt.Sprint(m.Flags) != fmt.Sprint([]string{`\Seen`, "NewKeyword"}) {
			t.Errorf("cached state has message 0 with %+v", m)
		}

		// A fresh reader finds every message, renamed or not.
		mr := a2.NewMessageReader(st)
		for i, m := range st.Folders["INBOX"].Archived {
			r, err := mr.Open(&m.Message)
			if err != nil {
				t.Fatalf("message %d after AfterCommit: %v", i, err)
			}
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, edgeBodies[i]) {
				t.Fatalf("message %d after AfterCommit: wrong bytes", i)
			}
		}
		mr.Close()
		rep, err := a2.Verify(nil)
		if err != nil || !rep.OK() || len(rep.Orphans) != 0 || rep.Messages != 4 {
			t.Fatalf("Verify after AfterCommit = %+v, %v", rep, err)
		}
		// Renamed files were found by the name their flags give, without
		// reading any folder's names (which would hold one per file).
		if ms, ok := a2.store.(*maildirStorage); ok && len(ms.files.dirs) != 0 {
			t.Errorf("reading and verifying scanned the directories of %d folders", len(ms.files.dirs))
		}

		// Again: nothing left to do.
		if err := a2.AfterCommit(st, []*Snapshot{s2}); err != nil {
			t.Fatalf("second AfterCommit: %v", err)
		}
		if again := storedTree(t, root); fmt.Sprint(again) != fmt.Sprint(after) {
			t.Errorf("a second AfterCommit changed stored files")
		}

		// A second change of message 0's flags: its file is no longer under
		// the name the manifest recorded; it is found and renamed again.
		s3 := &Snapshot{ID: NewSnapshotID(), Seq: s2.Seq + 1, Parent: s2.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
			Folders: s2.Folders, Changes: []Change{{Folder: "INBOX", Flags: []FlagChange{{Key: added[0].Key, Flags: []string{`\Flagged`}}}}}}
		if err := a2.Commit(s3); err != nil {
			t.Fatal(err)
		}
		snaps, _ = a2.Snapshots()
		st3, err := Replay(snaps, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := a2.AfterCommit(st3, []*Snapshot{s3}); err != nil {
			t.Fatalf("third AfterCommit: %v", err)
		}
		if opts.Storage == StorageMaildir {
			kw, _ := ReadMaildirKeywords(filepath.Join(root, FoldersDir, "INBOX", MaildirKeywordsFile))
			found := 0
			for p := range storedTree(t, root) {
				if MaildirBase(path.Base(p)) != MaildirBase(path.Base(added[0].Seg)) {
					continue
				}
				found++
				_, info, _ := strings.Cut(path.Base(p), ":2,")
				if got := kw.Flags(info); fmt.Sprint(got) != fmt.Sprint([]string{`\Flagged`}) {
					t.Errorf("message 0 after a second change: file %q has flags %v, want [\\Flagged]", p, got)
				}
			}
			if found != 1 {
				t.Errorf("message 0 has %d files after a second change, want 1", found)
			}
		}
		if rep, err := a2.Verify(nil); err != nil || !rep.OK() || rep.Messages != 4 {
			t.Fatalf("Verify after a second change = %+v, %v", rep, err)
		}
	})
}

// TestStoredBytes: what StoredBytes says a snapshot added is what is on
// disk, measured apart from the manifests: the size of the segment files
// in an mbox archive; in a Maildir archive the message sizes its files'
// names carry (S=), each file once even when two messages share it.
func TestStoredBytes(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, root := create(t, opts)
		bodies := append(append([][]byte{}, edgeBodies...), bigBody(3<<20, 7))
		s1 := writeSnapshot(t, a, nil, "INBOX", bodies, 0)
		dir := filepath.Join(root, FoldersDir, "INBOX")
		var want int64
		switch opts.Storage {
		case StorageMbox:
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				fi, err := e.Info()
				if err != nil {
					t.Fatal(err)
				}
				want += fi.Size()
			}
		case StorageMaildir:
			entries, _ := os.ReadDir(filepath.Join(dir, "cur"))
			for _, e := range entries {
				var size int64
				_, rest, _ := strings.Cut(e.Name(), ",S=")
				if _, err := fmt.Sscanf(rest, "%d:2,", &size); err != nil {
					t.Fatalf("file name %q: %v", e.Name(), err)
				}
				want += size
			}
		}
		if want == 0 {
			t.Fatal("nothing measured on disk")
		}
		if got := a.StoredBytes([]*Snapshot{s1}); got[0] != want {
			t.Errorf("StoredBytes(first) = %d, want %d (on disk)", got[0], want)
		}
		// A message recorded with the location of a stored copy, as a
		// backup records a duplicate or the reused bytes of a gone
		// message, adds nothing; nor does a flag change.
		dup := s1.Changes[0].Added[1]
		dup.Key = "2:1"
		s2 := &Snapshot{ID: NewSnapshotID(), Seq: 2, Parent: s1.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
			Folders: s1.Folders, Changes: []Change{{Folder: "INBOX", Added: []Message{dup}}}}
		if err := a.Commit(s2); err != nil {
			t.Fatal(err)
		}
		s3 := flagSnapshot(t, a, s2, s1.Changes[0].Added)
		if got := a.StoredBytes([]*Snapshot{s1, s2, s3}); got[0] != want || got[1] != 0 || got[2] != 0 {
			t.Errorf("StoredBytes(stored, duplicate, flag change) = %v, want [%d 0 0]", got, want)
		}
		// One snapshot naming one stored copy twice counts it once.
		dup.Key = "1:99"
		s1.Changes[0].Added = append(s1.Changes[0].Added, dup)
		if got := a.StoredBytes([]*Snapshot{s1}); got[0] != want {
			t.Errorf("StoredBytes with a shared copy = %d, want %d", got[0], want)
		}
	})
}

// TestReuseStored: the dedup policy each storage declares. A segment
// stores the same bytes once per folder; a Maildir keeps one file per
// message on the source and reuses only the files of gone messages.
func TestReuseStored(t *testing.T) {
	want := map[string][2]bool{ // storage: {holder present, holder gone}
		StorageMbox:    {true, true},
		StorageMaildir: {false, true},
	}
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		w := want[opts.Storage]
		if got := [2]bool{a.ReuseStored(true), a.ReuseStored(false)}; got != w {
			t.Errorf("ReuseStored(present, gone) = %v, want %v", got, w)
		}
	})
}

// TestForeignLocation: a manifest naming a location of the other storage
// (a Maildir file in an mbox archive, a segment in a Maildir archive) is
// corrupt: reading it fails with ErrCorrupt and Verify reports it.
func TestForeignLocation(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		a, _ := create(t, opts)
		s1 := writeSnapshot(t, a, nil, "INBOX", edgeBodies[:2], 0)
		m := s1.Changes[0].Added[0]
		m.Key = "2:1"
		s2 := &Snapshot{ID: NewSnapshotID(), Seq: 2, Parent: s1.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete, Folders: s1.Folders}
		if opts.Storage == StorageMaildir {
			w, err := a.NewSegment("INBOX", 2, s2.ID)
			if err != nil {
				t.Fatal(err)
			}
			w.BeginRecord(time.Now())
			w.Write(edgeBodies[0])
			off, _, _ := w.EndRecord()
			g, err := w.Commit()
			if err != nil {
				t.Fatal(err)
			}
			s2.Segments = []Segment{g}
			m.Seg, m.Off = g.Path, off
		} else {
			m.Seg, m.Off = "folders/INBOX/cur/00000001.deadbeef.0.0000001,S=1:2,", 0
		}
		s2.Changes = []Change{{Folder: "INBOX", Added: []Message{m}}}
		if err := a.Commit(s2); err != nil {
			t.Fatal(err)
		}
		snaps, _ := a.Snapshots()
		st, err := Replay(snaps, "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.OpenMessage(st, &st.Folders["INBOX"].Lookup("2:1").Message); !errors.Is(err, ErrCorrupt) {
			t.Errorf("OpenMessage(%s) error = %v, want ErrCorrupt", m.Location(), err)
		}
		if r, err := a.OpenMessage(st, &st.Folders["INBOX"].Lookup(s1.Changes[0].Added[1].Key).Message); err != nil {
			t.Errorf("OpenMessage of a good message: %v", err)
		} else {
			r.Close()
		}
		rep, err := a.Verify(nil)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK() {
			t.Errorf("Verify = OK with a foreign location %s", m.Location())
		}
	})
}

// TestMaildirPythonMailbox has Python's mailbox module, an independent
// Maildir reader, read an uncompressed Maildir archive folder.
func TestMaildirPythonMailbox(t *testing.T) {
	py := testenv.RequireTool(t, "python3")
	a, root := create(t, StorageOptions{Storage: StorageMaildir, Compression: CompressNone})
	s := writeSnapshot(t, a, nil, "INBOX", edgeBodies, 0)
	script := `
import mailbox, sys, hashlib, json
md = mailbox.Maildir(sys.argv[1], factory=None, create=False)
out = []
for key in md.keys():
    with md.get_file(key) as f:
        data = f.read()
    out.append([hashlib.sha256(data).hexdigest(), md.get_message(key).get_flags()])
print(json.dumps(sorted(out)))
`
	out, err := exec.Command(py, "-c", script, filepath.Join(root, FoldersDir, "INBOX")).Output()
	if err != nil {
		t.Fatalf("python mailbox: %v", err)
	}
	var want []string
	for _, m := range s.Changes[0].Added {
		info := ""
		for _, f := range m.Flags {
			switch f {
			case `\Draft`:
				info += "D"
			case `\Flagged`:
				info += "F"
			case `\Answered`:
				info += "R"
			case `\Seen`:
				info += "S"
			case `\Deleted`:
				info += "T"
			}
		}
		sorted := ""
		for _, c := range "DFRST" {
			if strings.ContainsRune(info, c) {
				sorted += string(c)
			}
		}
		want = append(want, fmt.Sprintf("%s:%s", m.SHA256, sorted))
	}
	got := strings.Count(string(out), `", "`)
	if got != len(want) {
		t.Fatalf("python read %d messages, want %d: %s", got, len(want), out)
	}
	for _, w := range want {
		sum, info, _ := strings.Cut(w, ":")
		if !strings.Contains(string(out), fmt.Sprintf(`"%s", "%s`, sum, info)) {
			t.Errorf("python did not read message %s with flags %q: %s", sum[:12], info, out)
		}
	}
}

// TestPartialStorageOptions: a run may name only one of the two options;
// the other is the archive's.
func TestPartialStorageOptions(t *testing.T) {
	root := t.TempDir()
	if _, err := OpenOrCreateWith(root, &StorageOptions{Storage: StorageMaildir, Compression: CompressNone}); err != nil {
		t.Fatal(err)
	}
	for _, o := range []StorageOptions{{Compression: CompressNone}, {Storage: StorageMaildir}, {}} {
		if _, err := OpenOrCreateWith(root, &o); err != nil {
			t.Errorf("%+v on a maildir/none archive: %v", o, err)
		}
	}
	for _, o := range []StorageOptions{{Compression: CompressZstd}, {Storage: StorageMbox}, {Storage: "mh"}} {
		if _, err := OpenOrCreateWith(root, &o); !errors.Is(err, ErrStorageMismatch) {
			t.Errorf("%+v on a maildir/none archive: %v, want ErrStorageMismatch", o, err)
		}
	}
	// A new archive with only --compress none has no valid storage.
	if _, err := OpenOrCreateWith(t.TempDir(), &StorageOptions{Compression: CompressNone}); !errors.Is(err, ErrStorageMismatch) {
		t.Errorf("new archive with compression none only: %v", err)
	}
}

// TestMaildirPublishMark: a writer marks the folders whose cur/ it fills
// before a manifest names the files; RemoveOrphans compares cur/ with the
// manifests only there, and removes the marks. An unmarked folder's cur/
// is not read (a stray file there is Verify's to report).
func TestMaildirPublishMark(t *testing.T) {
	a, root := create(t, StorageOptions{Storage: StorageMaildir, Compression: CompressZstd})
	writeSnapshot(t, a, nil, "INBOX", edgeBodies[:2], 0)
	mark := filepath.Join(root, FoldersDir, "INBOX", publishMark)
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("no mark after a writer published files: %v", err)
	}
	snaps, _ := a.Snapshots()
	st, _ := Replay(snaps, "")
	if removed, err := a.RemoveOrphans(st); err != nil || len(removed) != 0 {
		t.Fatalf("RemoveOrphans = %v, %v; want nothing", removed, err)
	}
	if _, err := os.Stat(mark); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("mark left after RemoveOrphans: %v", err)
	}
	stray := filepath.Join(root, FoldersDir, "INBOX", "cur", "stray:2,")
	os.WriteFile(stray, []byte("x"), 0o600)
	if removed, _ := a.RemoveOrphans(st); len(removed) != 0 {
		t.Errorf("RemoveOrphans read an unmarked cur/: %v", removed)
	}
	if o, _ := a.Orphans(st); len(o) != 1 || !strings.HasSuffix(o[0], "cur/stray:2,") {
		t.Errorf("Orphans = %v, want the stray file", o)
	}
}
