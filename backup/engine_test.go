package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/connerr"
)

// memSource is an in-memory Source for engine tests. Folders and messages
// can be changed between runs; failures can be injected.
type memSource struct {
	folders  map[string]*memFolder
	cur      *memFolder
	fetched  int // bodies delivered
	examined []string
	// failFetch makes Fetch in the named folder fail after n messages.
	failFetch map[string]int
	// cancelAfter cancels the run's context after n bodies.
	cancelAfter int
	cancel      context.CancelFunc
	// withhold makes Fetch skip the named UIDs (a server that lists but does
	// not deliver).
	withhold map[uint32]bool
	// onBody is called after each body delivered: a test changes the
	// folder from it "while the run fetches".
	onBody func(s *memSource)
	// byeOnRecreate makes Fetch fail with a broken connection once the
	// examined folder was replaced (recreate), as Dovecot may; without it
	// the session goes on serving the old folder.
	byeOnRecreate bool
}

type memFolder struct {
	name     string
	validity uint32
	next     uint32
	modseq   uint64
	attrs    []string
	msgs     []*memMsg
}

type memMsg struct {
	uid      uint32
	flags    []string
	body     []byte
	date     time.Time
	modseq   uint64 // of the last flag change
	expunged bool
}

func newMemSource() *memSource {
	return &memSource{folders: map[string]*memFolder{}, failFetch: map[string]int{}}
}

func (s *memSource) folder(name string, validity uint32) *memFolder {
	f := &memFolder{name: name, validity: validity, next: 1, modseq: 1}
	s.folders[name] = f
	return f
}

func (f *memFolder) add(body string, flags ...string) *memMsg {
	f.modseq++
	m := &memMsg{uid: f.next, flags: flags, body: []byte(body), date: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), modseq: f.modseq}
	f.next++
	f.msgs = append(f.msgs, m)
	return m
}

func (s *memSource) Folders(ctx context.Context) ([]FolderInfo, error) {
	var out []FolderInfo
	for _, f := range s.folders {
		fi := FolderInfo{Name: f.name, Delimiter: "/", Attrs: f.attrs}
		for _, a := range f.attrs {
			switch a {
			case `\Noselect`:
				fi.NoSelect = true
			case `\All`, `\Sent`, `\Trash`, `\Junk`, `\Drafts`, `\Archive`, `\Flagged`:
				fi.SpecialUse = a
			}
		}
		if !fi.NoSelect {
			fi.Status = &FolderStatus{UIDValidity: f.validity, UIDNext: f.next, Messages: uint32(len(f.msgs)), HighestModSeq: f.modseq}
		}
		out = append(out, fi)
	}
	return out, nil
}

func (s *memSource) Examine(ctx context.Context, name string) (FolderStatus, error) {
	f := s.folders[name]
	if f == nil {
		return FolderStatus{}, fmt.Errorf("no folder %q", name)
	}
	s.cur = f
	s.examined = append(s.examined, name)
	return FolderStatus{UIDValidity: f.validity, UIDNext: f.next, Messages: uint32(len(f.msgs)), HighestModSeq: f.modseq}, nil
}

func makeKey(validity, uid uint32) string { return fmt.Sprintf("%d:%d", validity, uid) }

func (s *memSource) List(ctx context.Context, fn func(string, []string) error) error {
	for _, m := range s.cur.msgs {
		if err := fn(makeKey(s.cur.validity, m.uid), m.flags); err != nil {
			return err
		}
	}
	return nil
}

func (s *memSource) Fetch(ctx context.Context, keys []string, fn func(*Message) error) error {
	n := 0
	for _, m := range s.cur.msgs {
		if !contains(keys, makeKey(s.cur.validity, m.uid)) || s.withhold[m.uid] || m.expunged {
			continue
		}
		if s.byeOnRecreate && s.folders[s.cur.name] != s.cur {
			return &connerr.Error{Err: errors.New("selected mailbox was deleted")}
		}
		if lim, ok := s.failFetch[s.cur.name]; ok && n >= lim {
			return &connerr.Error{Err: errors.New("connection reset")}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(&Message{Key: makeKey(s.cur.validity, m.uid), Flags: m.flags, InternalDate: m.date, Size: int64(len(m.body)), Body: bytes.NewReader(m.body)}); err != nil {
			return err
		}
		n++
		s.fetched++
		if s.cancelAfter > 0 && s.fetched == s.cancelAfter {
			s.cancel()
		}
		if s.onBody != nil {
			s.onBody(s)
		}
	}
	return nil
}

func (s *memSource) Close() error { return nil }

func contains(l []string, u string) bool {
	for _, x := range l {
		if x == u {
			return true
		}
	}
	return false
}

func runOnce(t *testing.T, a *formats.Archive, src *memSource) (*Result, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src.cancel = cancel
	src.examined = nil
	return Run(ctx, a, Options{Source: "mem://test", Protocol: "imap", Dial: func(context.Context) (Source, error) { return src, nil }})
}

func mustRun(t *testing.T, a *formats.Archive, src *memSource) *Result {
	t.Helper()
	res, err := runOnce(t, a, src)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

// checkArchive compares the archive's latest state with the source: every
// message present with its exact bytes and flags, and verify clean.
func checkArchive(t *testing.T, a *formats.Archive, src *memSource) *formats.State {
	t.Helper()
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	for name, f := range src.folders {
		fs := st.Folders[name]
		if fs == nil {
			t.Errorf("folder %q not in the archive", name)
			continue
		}
		present := fs.Present()
		if len(present) != len(f.msgs) {
			t.Errorf("folder %q: %d messages archived, source has %d", name, len(present), len(f.msgs))
		}
		for _, m := range f.msgs {
			am := fs.Lookup(makeKey(f.validity, m.uid))
			if am == nil || am.Gone {
				t.Errorf("folder %q uid %d missing", name, m.uid)
				continue
			}
			if got := archivetest.Bytes(t, a, st, am); !bytes.Equal(got, m.body) {
				t.Errorf("folder %q uid %d: archived bytes differ", name, m.uid)
			}
			if strings.Join(am.Flags, " ") != strings.Join(formats.NormalizeFlags(m.flags), " ") {
				t.Errorf("folder %q uid %d: flags %v, want %v", name, m.uid, am.Flags, m.flags)
			}
		}
	}
	rep, err := a.Verify(nil)
	if err != nil || !rep.OK() {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
	return st
}

func newArchive(t *testing.T) *formats.Archive {
	t.Helper()
	return newArchiveWith(t, formats.StorageOptions{})
}

func newArchiveWith(t *testing.T, opts formats.StorageOptions) *formats.Archive {
	t.Helper()
	a, err := formats.CreateWith(filepath.Join(t.TempDir(), "vault"), opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// storages are the archive storages engine tests run against.
var storages = formats.Storages()

func forEachStorage(t *testing.T, fn func(t *testing.T, a *formats.Archive)) {
	for _, o := range storages {
		t.Run(o.Storage+"-"+o.Compression, func(t *testing.T) { fn(t, newArchiveWith(t, o)) })
	}
}

func TestIncremental(t *testing.T) { forEachStorage(t, testIncremental) }

func testIncremental(t *testing.T, a *formats.Archive) {
	src := newMemSource()
	in := src.folder("INBOX", 7)
	in.add("Subject: a\r\n\r\none\r\n", `\Seen`)
	in.add("Subject: b\r\n\r\ntwo\r\n")
	src.folder("Work", 8).add("Subject: w\r\n\r\nwork\r\n", "$Label1")
	res := mustRun(t, a, src)
	if res.Stored != 3 || res.Snapshot.Status != formats.StatusComplete {
		t.Fatalf("first run stored %d, status %s; want 3, complete", res.Stored, res.Snapshot.Status)
	}
	checkArchive(t, a, src)

	// Nothing changed: nothing examined, fetched or written.
	before := src.fetched
	res = mustRun(t, a, src)
	if res.Selected != 0 || src.fetched != before || len(res.Snapshot.Segments) != 0 || len(res.Snapshot.Changes) != 0 {
		t.Fatalf("no-change run: selected %d, fetched %d, segments %d, changes %d; want all 0",
			res.Selected, src.fetched-before, len(res.Snapshot.Segments), len(res.Snapshot.Changes))
	}

	// New mail, a flag change, a deletion: only INBOX is examined, only the new body fetched.
	in.add("Subject: c\r\n\r\nthree\r\n")
	in.msgs[0].flags = []string{`\Seen`, `\Answered`}
	deleted := in.msgs[1]
	in.msgs = append(in.msgs[:1], in.msgs[2:]...)
	in.modseq++
	before = src.fetched
	res = mustRun(t, a, src)
	// (A folder that had new mail is examined again at its end, to see
	// that it was not re-created meanwhile.)
	if src.fetched-before != 1 || res.Added != 1 || res.Gone != 1 || res.FlagChanges != 1 || strings.Join(slices.Compact(src.examined), ",") != "INBOX" {
		t.Fatalf("after changes: fetched %d added %d gone %d flags %d examined %v; want 1,1,1,1,[INBOX]",
			src.fetched-before, res.Added, res.Gone, res.FlagChanges, src.examined)
	}
	st := checkArchive(t, a, src)
	gone := st.Folders["INBOX"].Lookup(makeKey(7, deleted.uid))
	if gone == nil || !gone.Gone {
		t.Fatalf("deleted message not kept as gone")
	}
	if got := archivetest.Bytes(t, a, st, gone); !bytes.Equal(got, deleted.body) {
		t.Errorf("deleted message not readable")
	}
}

func TestDedupAndUIDValidity(t *testing.T) { forEachStorage(t, testDedupAndUIDValidity) }

func testDedupAndUIDValidity(t *testing.T, a *formats.Archive) {
	src := newMemSource()
	in := src.folder("INBOX", 1)
	body := "Subject: same\r\n\r\n" + strings.Repeat("x", 5<<20) + "\r\n" // streamed record, aborted as a duplicate
	in.add(body)
	in.add(body)
	in.add("Subject: other\r\n\r\nother\r\n")
	res := mustRun(t, a, src)
	// Every storage stores the duplicate once (a Maildir archive keeps
	// one file per message on the source, the duplicate's a hard link).
	if res.Added != 3 || res.Stored != 2 {
		t.Fatalf("added %d stored %d; want 3 added, 2 stored", res.Added, res.Stored)
	}
	// A new incarnation of the folder with the same messages stores nothing.
	fresh := src.folder("INBOX", 2)
	for _, m := range in.msgs {
		fresh.add(string(m.body))
	}
	res = mustRun(t, a, src)
	if res.Added != 3 || res.Stored != 0 || res.Gone != 3 {
		t.Fatalf("after UIDVALIDITY change: added %d stored %d gone %d; want 3, 0, 3", res.Added, res.Stored, res.Gone)
	}
	var ev string
	for _, c := range res.Snapshot.Changes {
		ev = c.Event
	}
	if ev != formats.EventUIDValidity {
		t.Errorf("event %q, want %q", ev, formats.EventUIDValidity)
	}
	checkArchive(t, a, src)
	// The segment of the first run holds each distinct message once.
	snaps, _ := a.Snapshots()
	if len(snaps[0].Segments) == 0 { // a storage without segments
		return
	}
	if n := snaps[0].Segments[0].Records; n != 2 {
		t.Errorf("segment holds %d records, want 2", n)
	}
}

func TestRenameAndDelete(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	src.folder("INBOX", 1).add("Subject: i\r\n\r\ni\r\n")
	old := src.folder("Projects", 5)
	old.add("Subject: p\r\n\r\np\r\n")
	src.folder("Trash", 6).add("Subject: t\r\n\r\nt\r\n")
	mustRun(t, a, src)
	delete(src.folders, "Projects")
	old.name = "Projects 2026"
	src.folders[old.name] = old
	delete(src.folders, "Trash")
	before := src.fetched
	res := mustRun(t, a, src)
	if n := src.fetched - before; n != 1 {
		t.Errorf("rename fetched %d bodies, want 1 (the sample that confirms it)", n)
	}
	if res.Added != 0 || res.Stored != 0 {
		t.Errorf("rename added %d and stored %d messages, want none", res.Added, res.Stored)
	}
	events := map[string]string{}
	for _, c := range res.Snapshot.Changes {
		events[c.Folder] = c.Event + ":" + c.From
	}
	if events["Projects 2026"] != "renamed:Projects" || events["Trash"] != "deleted:" {
		t.Fatalf("events %v, want a rename and a deletion", events)
	}
	st := checkArchive(t, a, src)
	if f := st.Folders["Trash"]; f == nil || !f.Deleted || len(f.Archived) != 1 || !f.Archived[0].Gone {
		t.Errorf("deleted folder not kept with its message")
	}
}

// TestNotARename: a folder that has the UIDVALIDITY of one that vanished
// but other messages (a server deriving UIDVALIDITY from the clock) is
// not taken for it: its messages are fetched, and the vanished folder is
// recorded as deleted with its messages kept as gone.
func TestNotARename(t *testing.T) { forEachStorage(t, testNotARename) }

func testNotARename(t *testing.T, a *formats.Archive) {
	src := newMemSource()
	src.folder("INBOX", 1).add("Subject: i\r\n\r\ni\r\n")
	old := src.folder("Old", 5)
	old.add("Subject: A\r\n\r\nthe old folder's message\r\n")
	old.add("Subject: shared\r\n\r\nin both\r\n")
	mustRun(t, a, src)
	delete(src.folders, "Old")
	nf := src.folder("New", 5)
	nf.add("Subject: B\r\n\r\nthe new folder's message\r\n")
	nf.add("Subject: shared\r\n\r\nin both\r\n")
	res := mustRun(t, a, src)
	if res.Added != 2 || res.Gone != 2 {
		t.Errorf("added %d, gone %d; want 2 and 2", res.Added, res.Gone)
	}
	if res.Stored != 1 {
		t.Errorf("stored %d, want 1 (the shared bytes are reused)", res.Stored)
	}
	st := checkArchive(t, a, src)
	if f := st.Folders["Old"]; f == nil || !f.Deleted || len(f.Archived) != 2 || !f.Archived[0].Gone || !f.Archived[1].Gone {
		t.Errorf("the vanished folder is not kept as deleted with its 2 messages gone: %+v", f)
	}
	events := map[string]string{}
	for _, c := range res.Snapshot.Changes {
		events[c.Folder] = c.Event + ":" + c.From
	}
	if events["New"] != "created:" || events["Old"] != "deleted:" {
		t.Errorf("events %v, want New created and Old deleted", events)
	}
	// The next run is quiet.
	if res := mustRun(t, a, src); res.Added+res.Gone+res.Stored != 0 {
		t.Errorf("third run: added %d, gone %d, stored %d; want nothing", res.Added, res.Gone, res.Stored)
	}
	checkArchive(t, a, src)
}

func TestPartialAndResume(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	for _, name := range []string{"A", "B", "C"} {
		f := src.folder(name, 1)
		for i := 0; i < 5; i++ {
			f.add(fmt.Sprintf("Subject: %s%d\r\n\r\nbody\r\n", name, i))
		}
	}
	src.failFetch["B"] = 2 // every connection to B breaks after 2 messages; one reconnect is tried
	res, err := runOnce(t, a, src)
	if !errors.Is(err, ErrPartial) || res.Snapshot.Status != formats.StatusPartial {
		t.Fatalf("Run = %v (status %v), want ErrPartial and a partial snapshot", err, res.Snapshot.Status)
	}
	if len(res.Failed) != 1 || res.Failed[0] != "B" {
		t.Errorf("failed folders %v, want [B]", res.Failed)
	}
	snaps, _ := a.Snapshots()
	st, _ := formats.Replay(snaps, "")
	if n := len(st.Folders["A"].Present()) + len(st.Folders["C"].Present()); n != 10 {
		t.Errorf("other folders hold %d messages, want 10", n)
	}
	if n := len(st.Folders["B"].Present()); n != 4 {
		t.Errorf("failed folder keeps %d messages stored before the failures, want 4 (2 per connection)", n)
	}
	// The next run fetches only the rest.
	delete(src.failFetch, "B")
	before := src.fetched
	mustRun(t, a, src)
	if src.fetched-before != 1 {
		t.Errorf("resume fetched %d bodies, want 1", src.fetched-before)
	}
	checkArchive(t, a, src)
}

func TestInterrupted(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	f := src.folder("INBOX", 1)
	for i := 0; i < 10; i++ {
		f.add(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	src.cancelAfter = 4
	res, err := runOnce(t, a, src)
	if !errors.Is(err, ErrInterrupted) || res == nil || res.Snapshot.Status != formats.StatusPartial {
		t.Fatalf("Run = %v, want ErrInterrupted with a partial snapshot", err)
	}
	src.cancelAfter = 0
	mustRun(t, a, src)
	checkArchive(t, a, src)
}

func TestWithheldMessagesMakePartial(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	f := src.folder("INBOX", 1)
	for i := 0; i < 3; i++ {
		f.add(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))
	}
	src.withhold = map[uint32]bool{2: true}
	if _, err := runOnce(t, a, src); !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "not delivered") {
		t.Fatalf("Run = %v, want ErrPartial naming undelivered messages", err)
	}
	src.withhold = nil
	mustRun(t, a, src)
	checkArchive(t, a, src)
}

// TestHostileFolderNames checks that folder names a server may send cannot
// place files outside the archive and still round-trip.
func TestHostileFolderNames(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	names := []string{"..", ".", "../../etc", "/abs/path", "a/../../b", "x\x00y", "CON", "nul", "COM1", "LPT9",
		strings.Repeat("é", 300), strings.Repeat("/", 200), "tab\tand\nnewline", "trailing.", " space "}
	for i, n := range names {
		src.folder(n, uint32(i+1)).add("Subject: " + fmt.Sprint(i) + "\r\n\r\nbody\r\n")
	}
	mustRun(t, a, src)
	checkArchive(t, a, src)
	root, _ := filepath.Abs(a.Root)
	err := filepath.Walk(filepath.Dir(root), func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if p != filepath.Dir(root) && !strings.HasPrefix(p, root) {
			t.Errorf("file outside the archive: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := os.ReadDir(filepath.Join(root, formats.FoldersDir))
	if len(dirs) != len(names) {
		t.Errorf("%d folder directories for %d folders", len(dirs), len(names))
	}
	for _, d := range dirs {
		if !formats.ValidDir(d.Name()) || len(d.Name()) > 200 {
			t.Errorf("unsafe directory name %q", d.Name())
		}
	}
}

// TestParallelConnections: folders are synchronised over several
// connections at once; the archive is the same as with one, a refused
// extra connection leaves its share to the others, and only changed
// folders are examined on the next run.
func TestParallelConnections(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		for i := 0; i < 12; i++ {
			f := src.folder(fmt.Sprintf("F%02d", i), uint32(100+i))
			for k := 0; k < 15+3*i; k++ {
				f.add(fmt.Sprintf("Subject: %d-%d\r\n\r\nbody %d of folder %d\r\n", i, k, k, i), `\Seen`)
			}
		}
		var mu sync.Mutex
		var sessions []*memSource
		dials := 0
		run := func(conns, refuseAfter int) *Result {
			t.Helper()
			sessions, dials = nil, 0
			res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Connections: conns,
				Dial: func(context.Context) (Source, error) {
					mu.Lock()
					defer mu.Unlock()
					dials++
					if refuseAfter > 0 && dials > refuseAfter {
						return nil, errors.New("too many connections")
					}
					// Each session has its own selected folder.
					s := *src
					s.examined = nil
					sessions = append(sessions, &s)
					return &s, nil
				}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			return res
		}
		res := run(4, 2)
		if res.Selected != 12 || res.Added != 12*15+3*66 {
			t.Fatalf("selected %d added %d; want 12, %d", res.Selected, res.Added, 12*15+3*66)
		}
		if len(sessions) != 2 {
			t.Errorf("%d sessions opened, want 2 (the third and fourth refused)", len(sessions))
		}
		busy := 0
		for _, s := range sessions {
			if len(s.examined) > 0 {
				busy++
			}
		}
		if busy != 2 {
			t.Errorf("%d of 2 sessions examined folders, want both", busy)
		}
		checkArchive(t, a, src)
		snaps, _ := a.Snapshots()
		last := snaps[len(snaps)-1]
		for i := 1; i < len(last.Folders); i++ {
			if last.Folders[i-1].Name >= last.Folders[i].Name {
				t.Fatalf("folders not in name order in the manifest")
			}
		}

		// New mail in three folders: only those are examined.
		for _, name := range []string{"F01", "F05", "F09"} {
			src.folders[name].add("Subject: new\r\n\r\nnew in " + name + "\r\n")
		}
		res = run(4, 0)
		var examined []string
		for _, s := range sessions {
			examined = append(examined, s.examined...)
		}
		sort.Strings(examined)
		examined = slices.Compact(examined) // each examined again at its end
		if res.Selected != 3 || res.Added != 3 || strings.Join(examined, ",") != "F01,F05,F09" {
			t.Fatalf("after 3 new messages: selected %d added %d examined %v", res.Selected, res.Added, examined)
		}
		checkArchive(t, a, src)
	})
}

// clSource is a memSource with CONDSTORE: messages carry the mod-sequence
// of their last flag change, and ListChanged reports only those changed
// after the one asked for.
type clSource struct {
	*memSource
	listed, listedChanged int
	noCondStore           bool
}

func (s *clSource) List(ctx context.Context, fn func(string, []string) error) error {
	s.listed++
	return s.memSource.List(ctx, fn)
}

func (s *clSource) ListChanged(ctx context.Context, modseq uint64, fn func(string, []string, bool) error) (bool, error) {
	if s.noCondStore {
		return false, nil
	}
	s.listedChanged++
	for _, m := range s.cur.msgs {
		changed := m.modseq > modseq
		var flags []string
		if changed {
			flags = m.flags
		}
		if err := fn(makeKey(s.cur.validity, m.uid), flags, changed); err != nil {
			return true, err
		}
	}
	return true, nil
}

func TestChangedSince(t *testing.T) {
	for _, noCondStore := range []bool{false, true} {
		t.Run(fmt.Sprint("noCondStore=", noCondStore), func(t *testing.T) {
			a := newArchive(t)
			mem := newMemSource()
			in := mem.folder("INBOX", 3)
			for i := 0; i < 6; i++ {
				in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i), `\Seen`)
			}
			src := &clSource{memSource: mem, noCondStore: noCondStore}
			run := func() *Result {
				t.Helper()
				res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Dial: func(context.Context) (Source, error) { return src, nil }})
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			run()
			// Two flag changes (one back and forth: same flags again), one new
			// message, one deletion.
			in.modseq++
			in.msgs[1].flags, in.msgs[1].modseq = []string{`\Seen`, `\Flagged`}, in.modseq
			in.modseq++
			in.msgs[3].modseq = in.modseq
			in.msgs = append(in.msgs[:4], in.msgs[5:]...)
			in.add("Subject: new\r\n\r\nnew\r\n")
			src.listed, src.listedChanged = 0, 0
			res := run()
			if res.FlagChanges != 1 || res.Added != 1 || res.Gone != 1 {
				t.Fatalf("flag changes %d added %d gone %d; want 1 1 1", res.FlagChanges, res.Added, res.Gone)
			}
			wantChanged, wantListed := 1, 0
			if noCondStore {
				wantChanged, wantListed = 0, 1
			}
			if src.listedChanged != wantChanged || src.listed != wantListed {
				t.Errorf("ListChanged %d times, List %d times; want %d and %d", src.listedChanged, src.listed, wantChanged, wantListed)
			}
			checkArchive(t, a, mem)
		})
	}
}

// TestBigFolderInParts: a folder with many new messages is fetched in
// parts over several connections, each part into its own writer; a part
// whose connection breaks leaves its rest to the others; every message is
// archived once.
func TestBigFolderInParts(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		in := src.folder("INBOX", 9)
		n := splitMin + 1500
		for k := 0; k < n; k++ {
			in.add(fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", k, k))
		}
		src.folder("Small", 10).add("Subject: s\r\n\r\nsmall\r\n")
		var mu sync.Mutex
		var sessions []*memSource
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Connections: 4, BatchSize: 200,
			Dial: func(context.Context) (Source, error) {
				mu.Lock()
				defer mu.Unlock()
				s := *src
				s.examined = nil
				if len(sessions) == 2 {
					// The third connection breaks after 50 messages.
					s.failFetch = map[string]int{"INBOX": 50}
				}
				sessions = append(sessions, &s)
				return &s, nil
			}})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		if res.Added != n+1 || res.Stored != n+1 {
			t.Fatalf("added %d stored %d; want %d", res.Added, res.Stored, n+1)
		}
		inboxSessions := 0
		for _, s := range sessions {
			if slices.Contains(s.examined, "INBOX") {
				inboxSessions++
			}
		}
		if inboxSessions < 3 {
			t.Errorf("INBOX examined on %d connections, want at least 3", inboxSessions)
		}
		st := checkArchive(t, a, src)
		locs := map[string]bool{}
		for _, m := range st.Folders["INBOX"].Archived {
			locs[m.Seg] = true
		}
		if len(st.Segments) > 0 && len(locs) < 3 {
			t.Errorf("INBOX stored in %d segments, want one per part", len(locs))
		}
		// Nothing changed: nothing fetched.
		res, err = Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Connections: 4,
			Dial: func(context.Context) (Source, error) { s := *src; return &s, nil }})
		if err != nil || res.Added != 0 || res.Selected != 0 {
			t.Fatalf("no-change run: %v, added %d selected %d", err, res.Added, res.Selected)
		}
	})
}

// TestNoChangeRunReadsNoOldManifest: with the state cache, a run reads
// only the manifests committed after the cache, not the archive's history
// (an old manifest's bytes replaced under the same size and time go
// unnoticed; verify is what reads everything), but a manifest whose size
// or time changed makes the run read them all and report the damage; and
// without the cache the run rebuilds the state from all manifests.
func TestNoChangeRunReadsNoOldManifest(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		in := src.folder("INBOX", 4)
		for i := 0; i < 30; i++ {
			in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i), `\Seen`)
		}
		mustRun(t, a, src)
		in.add("Subject: more\r\n\r\nmore\r\n")
		mustRun(t, a, src)
		files, err := a.ListSnapshots()
		if err != nil || len(files) != 2 {
			t.Fatalf("ListSnapshots = %v, %v", files, err)
		}
		orig, _ := os.ReadFile(files[0].Path)
		fi, _ := os.Stat(files[0].Path)
		// Garbage of the same size and modification time: only a reader
		// of the file could notice.
		if err := os.WriteFile(files[0].Path, bytes.Repeat([]byte("x"), len(orig)), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(files[0].Path, fi.ModTime(), fi.ModTime())
		res := mustRun(t, a, src)
		if res.Selected != 0 || res.Added != 0 {
			t.Fatalf("no-change run: selected %d added %d", res.Selected, res.Added)
		}
		// A change in the folder loads its messages from the cache, still
		// without the old manifest.
		in.add("Subject: later\r\n\r\nlater\r\n")
		res = mustRun(t, a, src)
		if res.Added != 1 || res.Stored != 1 {
			t.Fatalf("run after a change: added %d stored %d; want 1, 1", res.Added, res.Stored)
		}
		// A manifest that visibly changed (size or time) is not trusted:
		// the run reads all manifests and reports the damage.
		os.WriteFile(files[0].Path, []byte("not a manifest"), 0o600)
		if _, err := runOnce(t, a, src); !errors.Is(err, formats.ErrCorrupt) {
			t.Fatalf("run over a damaged manifest: %v, want ErrCorrupt", err)
		}
		os.WriteFile(files[0].Path, orig, 0o600)
		// Without the cache: a full replay gives the same result.
		if err := os.RemoveAll(filepath.Join(a.Root, formats.CacheDir)); err != nil {
			t.Fatal(err)
		}
		in.add("Subject: last\r\n\r\nlast\r\n")
		res = mustRun(t, a, src)
		if res.Added != 1 || res.Stored != 1 {
			t.Fatalf("run without cache: added %d stored %d; want 1, 1", res.Added, res.Stored)
		}
		checkArchive(t, a, src)
		if _, err := os.Stat(filepath.Join(a.Root, formats.CacheDir, "INDEX")); err != nil { // the state index
			t.Errorf("the cache was not written again: %v", err)
		}
	})
}

// TestCheckpoints: a run with checkpoints commits partial snapshots as it
// goes, between folders and inside a folder, and its last snapshot holds
// only what came after; the state at the end is the same as without
// checkpoints. A run stopped after some checkpoints (its last snapshot
// never written) is finished by the next run, which fetches only what the
// checkpoints do not hold.
func TestCheckpoints(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		for f := 0; f < 3; f++ {
			fo := src.folder(fmt.Sprintf("F%d", f), uint32(50+f))
			for i := 0; i < 40; i++ {
				fo.add(fmt.Sprintf("Subject: %d-%d\r\n\r\nbody %d %d\r\n", f, i, f, i), `\Seen`)
			}
		}
		// Every check is due: a checkpoint after each batch of 10.
		opts := Options{Source: "mem://test", Protocol: "imap", BatchSize: 10, Checkpoint: time.Nanosecond,
			Dial: func(context.Context) (Source, error) { return src, nil }}
		res, err := Run(context.Background(), a, opts)
		if err != nil {
			t.Fatal(err)
		}
		snaps, _ := a.Snapshots()
		if len(snaps) < 10 {
			t.Fatalf("%d snapshots, want a checkpoint after each batch", len(snaps))
		}
		for _, s := range snaps[:len(snaps)-1] {
			if s.Status != formats.StatusPartial {
				t.Errorf("checkpoint %s is %s, want partial", s.ID, s.Status)
			}
		}
		if last := snaps[len(snaps)-1]; last.ID != res.Snapshot.ID || last.Status != formats.StatusComplete || len(last.Folders) != 3 {
			t.Errorf("last snapshot %s %s with %d folders; want the run's, complete, all 3 folders", last.ID, last.Status, len(last.Folders))
		}
		if res.Added != 120 || res.Stored != 120 {
			t.Fatalf("added %d stored %d; want 120", res.Added, res.Stored)
		}
		checkArchive(t, a, src)
		res = mustRun(t, a, src)
		if res.Selected != 0 || res.Added != 0 {
			t.Fatalf("no-change run after checkpoints: selected %d added %d", res.Selected, res.Added)
		}

		// New mail everywhere; the run stops (as if killed) right after a
		// checkpoint in the middle: its last snapshot is never written.
		for f := 0; f < 3; f++ {
			for i := 0; i < 30; i++ {
				src.folders[fmt.Sprintf("F%d", f)].add(fmt.Sprintf("Subject: new %d-%d\r\n\r\nnew %d %d\r\n", f, i, f, i))
			}
		}
		before, _ := a.ListSnapshots()
		ctx, cancel := context.WithCancel(context.Background())
		checkpoints := 0
		opts.Hook = func(p string) {
			if p == "checkpoint-committed" {
				checkpoints++
				if checkpoints == 4 {
					cancel()
				}
			}
		}
		if _, err = Run(ctx, a, opts); !errors.Is(err, ErrInterrupted) {
			t.Fatalf("stopped run: %v, want ErrInterrupted", err)
		}
		// Drop the stopped run's own last snapshot: a killed process
		// writes none.
		after, _ := a.ListSnapshots()
		if len(after) < len(before)+4 {
			t.Fatalf("%d snapshots after the stopped run, want at least 4 checkpoints", len(after)-len(before))
		}
		os.Remove(after[len(after)-1].Path)
		os.RemoveAll(filepath.Join(a.Root, formats.CacheDir))
		src.fetched = 0
		res = mustRun(t, a, src)
		if res.Added >= 90 || res.Added == 0 || src.fetched != res.Added {
			t.Fatalf("run after the stop: added %d (fetched %d); want only what the checkpoints do not hold (fewer than 90)", res.Added, src.fetched)
		}
		checkArchive(t, a, src)
	})
}

// TestFewMessagesFewConnections: every connection costs a login (a TLS
// handshake, a process on the server), so a run with little to fetch
// (a small mailbox, a nightly increment) opens one per
// connectionMessages messages, not one per changed folder; a big one
// still opens every connection it may.
func TestFewMessagesFewConnections(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src := newMemSource()
		for i := range 3 {
			f := src.folder(fmt.Sprintf("F%d", i), uint32(100+i))
			for k := range 10 {
				f.add(fmt.Sprintf("Subject: %d-%d\r\n\r\nbody\r\n", i, k), `\Seen`)
			}
		}
		var dials atomic.Int64 // workers dial at once
		run := func() *Result {
			t.Helper()
			dials.Store(0)
			res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Connections: 4,
				Dial: func(context.Context) (Source, error) {
					dials.Add(1)
					s := *src
					s.examined = nil
					return &s, nil
				}})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			return res
		}
		if res := run(); res.Added != 30 || dials.Load() != 1 {
			t.Errorf("30 messages in 3 folders: added %d over %d connections, want 30 over 1", res.Added, dials.Load())
		}
		for i := range 3 {
			f := src.folders[fmt.Sprintf("F%d", i)]
			for k := range connectionMessages {
				f.add(fmt.Sprintf("Subject: big %d-%d\r\n\r\nbody\r\n", i, k), `\Seen`)
			}
		}
		if res := run(); res.Added != 3*connectionMessages || dials.Load() != 3 {
			t.Errorf("%d new messages in 3 folders: added %d over %d connections, want 3 connections", 3*connectionMessages, res.Added, dials.Load())
		}
		checkArchive(t, a, src)
	})
}

// TestNewMessagesSought: a run that finds a few new messages in a big
// folder reads the archive's entries of the folder once, for the listing;
// finding where each new message goes is a seek, not a walk from the
// folder's first entry (which read 900,000 entries again, 15 s, for one
// new message at the end of a big folder).
func TestNewMessagesSought(t *testing.T) {
	a := newArchive(t)
	mem := newMemSource()
	in := mem.folder("INBOX", 3)
	const n = 3000
	for i := 0; i < n; i++ {
		in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	src := &clSource{memSource: mem}
	run := func() *Result {
		t.Helper()
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Dial: func(context.Context) (Source, error) { return src, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	run()
	for _, news := range []int{1, 3} {
		for i := 0; i < news; i++ {
			in.add(fmt.Sprintf("Subject: new %d\r\n\r\nnew\r\n", i))
		}
		before := knownSteps.Load()
		res := run()
		steps := knownSteps.Load() - before
		if res.Added != news {
			t.Fatalf("added %d, want %d", res.Added, news)
		}
		t.Logf("%d new messages in a folder of %d: %d entries read", news, len(in.msgs), steps)
		if limit := int64(len(in.msgs)) + 100; steps > limit {
			t.Errorf("%d new messages in a folder of %d: read %d entries of the archive, want at most %d (the listing's walk)", news, len(in.msgs), steps, limit)
		}
	}
	checkArchive(t, a, mem)
}

// sinceSource is a clSource that can list only what changed
// (SinceLister), with the same rules as imapstore's.
type sinceSource struct {
	*clSource
	listedSince, since int
}

func (s *sinceSource) ListSince(ctx context.Context, prev FolderStatus, present int64, fn func(string, []string, bool) error) (bool, error) {
	s.listedSince++
	f := s.cur
	if prev.UIDValidity != f.validity || prev.HighestModSeq == 0 {
		return false, nil
	}
	var news, older []*memMsg
	for _, m := range f.msgs {
		if m.uid >= prev.UIDNext {
			news = append(news, m)
		} else if m.modseq > prev.HighestModSeq {
			older = append(older, m)
		}
	}
	if int64(len(f.msgs)-len(news)) != present {
		return false, nil
	}
	s.since++
	for _, m := range append(older, news...) {
		changed := m.modseq > prev.HighestModSeq
		var flags []string
		if changed {
			flags = m.flags
		}
		if err := fn(makeKey(f.validity, m.uid), flags, changed); err != nil {
			return true, err
		}
	}
	return true, nil
}

// TestListSince: a run over a big folder with a few new messages and a
// flag change lists only those (SinceLister) and reads none of the
// archive's entries of the folder; once an archived message left the
// folder, the whole listing finds which.
func TestListSince(t *testing.T) {
	a := newArchive(t)
	mem := newMemSource()
	in := mem.folder("INBOX", 3)
	const n = 3000
	for i := 0; i < n; i++ {
		in.add(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))
	}
	src := &sinceSource{clSource: &clSource{memSource: mem}}
	run := func() *Result {
		t.Helper()
		src.listed, src.listedChanged, src.listedSince, src.since = 0, 0, 0, 0
		res, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Dial: func(context.Context) (Source, error) { return src, nil }})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	run()

	// Two new messages and a flag change of an old one.
	in.add("Subject: new 1\r\n\r\nnew\r\n")
	in.add("Subject: new 2\r\n\r\nnew\r\n", `\Seen`)
	in.modseq++
	in.msgs[10].flags, in.msgs[10].modseq = []string{`\Flagged`}, in.modseq
	before := knownSteps.Load()
	res := run()
	steps := knownSteps.Load() - before
	if res.Added != 2 || res.FlagChanges != 1 || res.Gone != 0 {
		t.Fatalf("added %d flag changes %d gone %d; want 2 1 0", res.Added, res.FlagChanges, res.Gone)
	}
	if src.since != 1 || src.listedChanged != 0 || src.listed != 0 {
		t.Errorf("ListSince listed %d times, ListChanged %d, List %d; want 1, 0, 0", src.since, src.listedChanged, src.listed)
	}
	if steps > 50 {
		t.Errorf("a run with 2 new messages and a flag change in a folder of %d read %d entries of the archive, want a few", n, steps)
	}
	checkArchive(t, a, mem)

	// An archived message left (and one came): the count tells, and the
	// whole listing finds which.
	in.msgs = append(in.msgs[:5], in.msgs[6:]...)
	in.add("Subject: new 3\r\n\r\nnew\r\n")
	res = run()
	if res.Added != 1 || res.Gone != 1 {
		t.Fatalf("added %d gone %d; want 1 1", res.Added, res.Gone)
	}
	if src.listedSince != 1 || src.since != 0 || src.listedChanged != 1 {
		t.Errorf("ListSince asked %d times (%d listed), ListChanged %d; want 1, 0, 1", src.listedSince, src.since, src.listedChanged)
	}
	checkArchive(t, a, mem)

	// Nothing new but a flag change: still only the change.
	in.modseq++
	in.msgs[20].flags, in.msgs[20].modseq = []string{`\Answered`}, in.modseq
	res = run()
	if res.Added != 0 || res.FlagChanges != 1 || res.Gone != 0 || src.since != 1 {
		t.Fatalf("added %d flag changes %d gone %d, ListSince listed %d times; want 0 1 0 1", res.Added, res.FlagChanges, res.Gone, src.since)
	}
	checkArchive(t, a, mem)
}
