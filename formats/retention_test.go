package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// history builds an archive snapshot by snapshot the way backups do: mail
// arrives, is flagged and deleted between runs, folders come, go and are
// renamed, some runs are partial. It remembers what each snapshot held.
type history struct {
	t     *testing.T
	a     *Archive
	r     *rand.Rand
	snaps []*Snapshot
	st    *State
	uid   map[string]int
	// views[i] is what snapshot i held: folder -> key -> flags and body hash.
	views  []map[string]map[string]heldMessage
	bodies map[string][]byte // by SHA-256
	// marker[i] is a string only the messages added by snapshot i contain.
	markers []string
	start   time.Time
	// allowOrphans: left-overs of a killed run are expected (the next
	// run removes them).
	allowOrphans bool
}

type heldMessage struct {
	sha   string
	flags string
}

func newHistory(t *testing.T, opts StorageOptions, seed uint64) *history {
	a, _ := create(t, opts)
	if err := a.Lock("test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Unlock)
	return &history{t: t, a: a, r: rand.New(rand.NewPCG(seed, 1)), st: NewState(), uid: map[string]int{}, bodies: map[string][]byte{},
		start: time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC)}
}

// run commits one snapshot with random changes; folder events come at
// fixed runs: Old appears at run 3 and is deleted at run 6, Work is
// renamed to Projects at run 9.
func (h *history) run() *Snapshot {
	t := h.t
	n := len(h.snaps)
	s := &Snapshot{ID: NewSnapshotID(), Seq: n + 1, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Started: h.start.Add(time.Duration(n) * 24 * time.Hour)}
	s.Finished = s.Started.Add(time.Minute)
	if n > 0 {
		s.Parent = h.snaps[n-1].ID
	}
	marker := fmt.Sprintf("MARKER-%d-%s", n, s.ID)
	h.markers = append(h.markers, marker)
	names := []string{"INBOX", "Work"}
	if n >= 9 {
		names[1] = "Projects"
	}
	if n >= 3 && n < 6 {
		names = append(names, "Old")
	}
	for _, name := range names {
		c := Change{Folder: name}
		f := h.st.Folders[name]
		switch {
		case name == "Projects" && n == 9:
			c.Event, c.From = EventRenamed, "Work"
			f = h.st.Folders["Work"]
		case f == nil:
			c.Event = EventCreated
		}
		dir := FolderDir(name)
		if f != nil {
			dir = f.Dir
		}
		if f != nil {
			present := f.Present()
			for _, m := range present {
				switch h.r.IntN(6) {
				case 0:
					c.Gone = append(c.Gone, m.Key)
				case 1:
					fl := []string{`\Seen`}
					if h.r.IntN(2) == 0 {
						fl = append(fl, `\Flagged`)
					}
					c.Flags = append(c.Flags, FlagChange{Key: m.Key, Flags: fl})
				}
			}
		}
		w, err := h.a.NewWriter(dir, s.Seq, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		for k := h.r.IntN(5); k >= 0; k-- {
			h.uid[""]++
			h.uid[name] = h.uid[""]
			body := fmt.Appendf(nil, "Subject: %s %d\r\nMessage-ID: <%d.%s@test>\r\n\r\n%s\r\nFrom the body\r\n%s",
				name, h.uid[name], h.uid[name], name, marker, bigBody(h.r.IntN(3000), h.r.Uint64()))
			date := s.Started.Add(-time.Duration(k) * time.Hour)
			if err := w.BeginRecord(date, nil); err != nil {
				t.Fatal(err)
			}
			w.Write(body)
			loc, off, err := w.EndRecord()
			if err != nil {
				t.Fatal(err)
			}
			sum := sha(body)
			h.bodies[sum] = body
			c.Added = append(c.Added, Message{Key: fmt.Sprintf("7:%d", h.uid[name]), SHA256: sum, Size: int64(len(body)), InternalDate: date,
				MessageID: fmt.Sprintf("<%d.%s@test>", h.uid[name], name), Subject: fmt.Sprintf("%s %d", name, h.uid[name]), Seg: loc, Off: off})
		}
		seg, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		if seg != nil {
			s.Segments = append(s.Segments, *seg)
		}
		s.Changes = append(s.Changes, c)
		s.Folders = append(s.Folders, Folder{Name: name, Dir: dir, Status: FolderOK, UIDValidity: 7, UIDNext: uint32(h.uid[name] + 1)})
	}
	if n == 6 {
		s.Changes = append(s.Changes, Change{Folder: "Old", Event: EventDeleted})
	}
	if h.r.IntN(4) == 0 && n > 0 {
		s.Status, s.Errors = StatusPartial, []string{"Work: connection lost"}
	}
	if err := h.a.Commit(s); err != nil {
		t.Fatal(err)
	}
	if err := h.st.Apply(s); err != nil {
		t.Fatal(err)
	}
	if err := h.a.AfterCommit(h.st, []*Snapshot{s}); err != nil {
		t.Fatal(err)
	}
	h.snaps = append(h.snaps, s)
	h.views = append(h.views, viewOf(t, h.st))
	return s
}

// viewOf is what a restore of the state gives: per present folder, per
// present message, its flags and bytes.
func viewOf(t *testing.T, st *State) map[string]map[string]heldMessage {
	t.Helper()
	out := map[string]map[string]heldMessage{}
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		if f.Deleted {
			continue
		}
		msgs := map[string]heldMessage{}
		for _, m := range f.Present() {
			msgs[m.Key] = heldMessage{sha: m.SHA256, flags: strings.Join(m.Flags, " ")}
		}
		out[name] = msgs
	}
	return out
}

// checkSnapshots checks that every snapshot of the archive (a subset of
// h's, by id) gives the view h recorded, reading every message's bytes
// back, and that the archive verifies without orphans.
func (h *history) checkSnapshots(want []string) {
	t := h.t
	t.Helper()
	snaps, err := h.a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, s := range snaps {
		ids = append(ids, s.ID)
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Fatalf("snapshots %v, want %v", ids, want)
	}
	byID := map[string]int{}
	for i, s := range h.snaps {
		byID[s.ID] = i
	}
	st := NewState()
	for _, s := range snaps {
		if err := st.Apply(s); err != nil {
			t.Fatal(err)
		}
		got, wantView := viewOf(t, st), h.views[byID[s.ID]]
		if fmt.Sprint(got) != fmt.Sprint(wantView) {
			t.Fatalf("snapshot %s (was %d) holds\n%v\nwant\n%v", s.ID, byID[s.ID]+1, got, wantView)
		}
		for _, name := range st.FolderNames() {
			if st.Folders[name].Deleted {
				continue
			}
			for _, m := range st.Folders[name].Present() {
				rc, err := h.a.OpenMessage(st, &m.Message)
				if err != nil {
					t.Fatalf("snapshot %s: open %s/%s: %v", s.ID, name, m.Key, err)
				}
				data, err := io.ReadAll(rc)
				rc.Close()
				if err != nil || sha(data) != m.SHA256 {
					t.Fatalf("snapshot %s: %s/%s reads back wrong (%v)", s.ID, name, m.Key, err)
				}
			}
		}
	}
	h.checkDeltaDirs(snaps)
	rep, err := h.a.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || len(rep.Orphans) > 0 && !h.allowOrphans {
		t.Fatalf("verify: problems %v, orphans %v", rep.Problems, rep.Orphans)
	}
}

// checkDeltaDirs fails unless every directory in snapshots/ holds the
// delta files of a version 2 manifest of snaps: a rewrite takes the delta
// files of the manifests it removes or rewrites (as version 1) with them.
func (h *history) checkDeltaDirs(snaps []*Snapshot) {
	t := h.t
	t.Helper()
	v2 := map[string]bool{}
	for _, s := range snaps {
		if s.Version >= ManifestVersion2 {
			v2[path.Base(deltaDir(s.Seq, s.ID))] = true
		}
	}
	entries, err := os.ReadDir(filepath.Join(h.a.Root, SnapshotsDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if !v2[e.Name()] {
			t.Fatalf("snapshots/%s: delta files no version 2 manifest names are left", e.Name())
		}
	}
}

func (h *history) ids(keep func(i int) bool) []string {
	var out []string
	for i, s := range h.snaps {
		if keep(i) {
			out = append(out, s.ID)
		}
	}
	return out
}

// archiveText returns the decompressed content of every file under the
// archive (zstd files decompressed), for grepping markers.
func archiveText(t *testing.T, root string) []byte {
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

// TestForgetKeepsKeptSnapshots: forgetting any set of snapshots (the
// newest always kept) leaves an archive that verifies, whose kept
// snapshots, renumbered from 1 with their ids, each hold exactly what
// they held before, bytes included; a second forget with the same policy
// changes nothing.
func TestForgetKeepsKeptSnapshots(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		for _, tc := range []struct {
			name   string
			policy Policy
		}{
			{"last 3", Policy{Last: 3}},
			{"last 1", Policy{Last: 1}},
			{"weekly 2", Policy{Weekly: 2}},
			{"within 4d", Policy{Within: Duration{Days: 4}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				h := newHistory(t, opts, 42)
				for range 14 {
					h.run()
				}
				decisions := ApplyPolicy(PolicySnapshots(h.snaps, time.UTC), tc.policy)
				want := h.ids(func(i int) bool { return decisions[i].Keep })
				res, err := h.a.Forget(tc.policy, time.UTC, false)
				if err != nil {
					t.Fatal(err)
				}
				if res.Forgotten != len(h.snaps)-len(want) || res.Forgotten == 0 {
					t.Fatalf("forgot %d, want %d (>0)", res.Forgotten, len(h.snaps)-len(want))
				}
				h.checkSnapshots(want)
				snaps, _ := h.a.Snapshots()
				for i, s := range snaps {
					if s.Seq != i+1 {
						t.Fatalf("snapshot %s has seq %d, want %d", s.ID, s.Seq, i+1)
					}
				}
				// The state cache follows.
				st, err := h.a.LoadState()
				if err != nil || st.Snapshot.ID != want[len(want)-1] {
					t.Fatalf("LoadState after forget: %v, %v", st, err)
				}
				again, err := h.a.Forget(tc.policy, time.UTC, false)
				if err != nil {
					t.Fatal(err)
				}
				if tc.policy.Within.Zero() && again.Forgotten != 0 {
					t.Errorf("second forget removed %d more", again.Forgotten)
				}
			})
		}
	})
}

// TestForgetDryRun: a dry run decides and changes no file.
func TestForgetDryRun(t *testing.T) {
	h := newHistory(t, StorageOptions{}, 7)
	for range 6 {
		h.run()
	}
	before := treeHashes(t, h.a.Root)
	res, err := h.a.Forget(Policy{Last: 2}, time.UTC, true)
	if err != nil {
		t.Fatal(err)
	}
	forgotten := 0
	for _, d := range res.Decisions {
		if !d.Keep {
			forgotten++
		}
		if len(d.Reasons) == 0 {
			t.Errorf("snapshot %s: no reason given", d.ID)
		}
	}
	if forgotten < 4 || res.Forgotten != 0 {
		t.Errorf("dry run: %d would go, %d went", forgotten, res.Forgotten)
	}
	if after := treeHashes(t, h.a.Root); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("dry run changed files")
	}
}

// treeHashes returns every file under root (but the lock) with its hash.
func treeHashes(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == LockFile {
			return err
		}
		data, _ := os.ReadFile(p)
		s := sha256.Sum256(data)
		rel, _ := filepath.Rel(root, p)
		out[rel] = hex.EncodeToString(s[:])
		return nil
	})
	return out
}

// clone returns a copy of h on a copy of its archive (in a new
// directory, locked), so that a test can run a command on the same history
// many times without building it again.
func (h *history) clone(t *testing.T) *history {
	t.Helper()
	dst := t.TempDir()
	if out, err := exec.Command("cp", "-a", h.a.Root+"/.", dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	a, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Lock("test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Unlock)
	c := *h
	c.t, c.a = t, a
	c.views = make([]map[string]map[string]heldMessage, len(h.views))
	for i, v := range h.views {
		c.views[i] = map[string]map[string]heldMessage{}
		for f, msgs := range v {
			c.views[i][f] = maps.Clone(msgs)
		}
	}
	return &c
}

// killIndices runs op once on a clone of base, counting the hook calls,
// and returns the calls to stop at: the first two of each point and the
// last call (a point reached once per file would make the test long).
func killIndices(t *testing.T, base *history, op func(h *history)) []int {
	t.Helper()
	h := base.clone(t)
	var names []string
	h.a.Hook = func(p string) { names = append(names, p) }
	op(h)
	h.a.Hook = nil
	seen := map[string]int{}
	var out []int
	for i, p := range names {
		seen[p]++
		if seen[p] <= 2 || i == len(names)-1 {
			out = append(out, i+1)
		}
	}
	if len(seen) < 4 {
		t.Fatalf("only kill points %v", names)
	}
	return out
}

// killAt runs fn with a hook that stops it (as a kill would) at the n-th
// hook call; it reports whether it was stopped.
func killAt(a *Archive, n int, fn func()) (killed bool, point string) {
	calls := 0
	a.Hook = func(p string) {
		calls++
		if calls == n {
			point = p
			panic(errKilled)
		}
	}
	defer func() {
		a.Hook = nil
		if r := recover(); r != nil {
			if r != errKilled {
				panic(r)
			}
			killed = true
		}
	}()
	fn()
	return false, ""
}

var errKilled = fmt.Errorf("killed")

// reopen opens the archive again as a new process would: the lock of the
// killed one is dropped, the next holder finishes a pending rewrite.
func (h *history) reopen() {
	h.t.Helper()
	h.a.Unlock()
	a, err := Open(h.a.Root)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := a.Lock("test"); err != nil {
		h.t.Fatal(err)
	}
	h.a = a
	h.t.Cleanup(a.Unlock)
}

// TestForgetKilledAnywhere: a forget stopped at any of its steps leaves an
// archive that verifies and holds either every snapshot or exactly the
// kept ones, each as before; the next forget completes the job.
func TestForgetKilledAnywhere(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		base := newHistory(t, opts, 3)
		for range 8 {
			base.run()
		}
		p := Policy{Last: 2}
		forget := func(h *history) {
			if _, err := h.a.Forget(p, time.UTC, false); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range killIndices(t, base, forget) {
			h := base.clone(t)
			decisions := ApplyPolicy(PolicySnapshots(h.snaps, time.UTC), p)
			kept := h.ids(func(i int) bool { return decisions[i].Keep })
			all := h.ids(func(int) bool { return true })
			killed, point := killAt(h.a, n, func() { forget(h) })
			if !killed {
				t.Fatalf("not stopped at hook call %d", n)
			}
			h.reopen()
			h.allowOrphans = true
			snaps, err := h.a.Snapshots()
			if err != nil {
				t.Fatalf("kill at %s: %v", point, err)
			}
			if len(snaps) == len(all) {
				h.checkSnapshots(all)
			} else {
				h.checkSnapshots(kept)
			}
			if _, err := h.a.Forget(p, time.UTC, false); err != nil {
				t.Fatalf("kill at %s: forget again: %v", point, err)
			}
			h.allowOrphans = false
			h.checkSnapshots(kept)
		}
	})
}

// keptSHAs returns the bodies some snapshot of ids holds.
func (h *history) keptSHAs(ids []string) map[string]bool {
	out := map[string]bool{}
	for i, s := range h.snaps {
		if indexOf(ids, s.ID) < 0 {
			continue
		}
		for _, msgs := range h.views[i] {
			for _, m := range msgs {
				out[m.sha] = true
			}
		}
	}
	return out
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// messageIDOf returns the Message-ID line of a test body.
func messageIDOf(body []byte) string {
	i := bytes.Index(body, []byte("Message-ID: "))
	j := bytes.Index(body[i:], []byte("\r\n"))
	return string(body[i+len("Message-ID: ") : i+j])
}

// TestPruneAfterForget: after forget, prune removes from every file of
// the archive the messages no kept snapshot holds (their Message-IDs are
// in no file, decompressed), keeps every kept snapshot exactly, frees
// what it says (measured), and a second prune has nothing to do.
func TestPruneAfterForget(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		h := newHistory(t, opts, 11)
		for range 16 {
			h.run()
		}
		p := Policy{Last: 3, Weekly: 1}
		if _, err := h.a.Forget(p, time.UTC, false); err != nil {
			t.Fatal(err)
		}
		decisions := ApplyPolicy(PolicySnapshots(h.snaps, time.UTC), p)
		kept := h.ids(func(i int) bool { return decisions[i].Keep })
		live := h.keptSHAs(kept)
		var deadBytes int64
		var deadIDs, liveIDs []string
		for sum, b := range h.bodies {
			if live[sum] {
				liveIDs = append(liveIDs, messageIDOf(b))
			} else {
				deadIDs = append(deadIDs, messageIDOf(b))
				deadBytes += int64(len(b))
			}
		}
		if len(deadIDs) == 0 {
			t.Fatal("the test needs messages only forgotten snapshots held")
		}
		dry, err := h.a.Prune(PruneOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		text := archiveText(t, h.a.Root)
		if !bytes.Contains(text, []byte(deadIDs[0])) {
			t.Fatal("dry run removed a message")
		}
		res, err := h.a.Prune(PruneOptions{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("prune: %+v (dry run said %+v); %d messages of %d bytes only in forgotten snapshots", *res, *dry, len(deadIDs), deadBytes)
		if res.Messages != len(deadIDs) || dry.Messages != res.Messages || res.Freed <= 0 || res.StoredBefore-res.StoredAfter != res.Freed {
			t.Errorf("prune result %+v: want %d messages removed and the bytes measured", *res, len(deadIDs))
		}
		if opts.Compression == CompressNone && res.Freed < deadBytes {
			t.Errorf("freed %d bytes, the removed messages had %d", res.Freed, deadBytes)
		}
		h.checkSnapshots(kept)
		text = archiveText(t, h.a.Root)
		for _, id := range deadIDs {
			if bytes.Contains(text, []byte(id)) {
				t.Fatalf("%s is still in the archive after prune", id)
			}
		}
		for _, id := range liveIDs {
			if !bytes.Contains(text, []byte(id)) {
				t.Fatalf("%s, which a kept snapshot holds, is gone", id)
			}
		}
		again, err := h.a.Prune(PruneOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if again.Messages != 0 || again.Records != 0 || again.StoredAfter != res.StoredAfter {
			t.Errorf("second prune: %+v", *again)
		}
	})
}

// TestPruneMaxUnused: segments with a small share of unneeded records are
// left as they are under --max-unused; segments nothing needs go anyway.
func TestPruneMaxUnused(t *testing.T) {
	h := newHistory(t, StorageOptions{}, 11)
	for range 10 {
		h.run()
	}
	p := Policy{Last: 2}
	if _, err := h.a.Forget(p, time.UTC, false); err != nil {
		t.Fatal(err)
	}
	res, err := h.a.Prune(PruneOptions{MaxUnused: 99.9})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewritten != 0 || res.LeftUnused == 0 {
		t.Errorf("max-unused 99.9: %+v, want nothing rewritten, some left", *res)
	}
	decisions := ApplyPolicy(PolicySnapshots(h.snaps, time.UTC), p)
	h.checkSnapshots(h.ids(func(i int) bool { return decisions[i].Keep }))
	res, err = h.a.Prune(PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Rewritten == 0 {
		t.Errorf("max-unused 0 after 99.9: %+v, want segments rewritten", *res)
	}
	h.checkSnapshots(h.ids(func(i int) bool { return decisions[i].Keep }))
}

// TestPruneKilledAnywhere: a prune stopped at any of its steps (segment
// written, journal written, manifests installed, files removed) leaves an
// archive whose snapshots all hold what they held and that verifies; the
// next prune completes the job and the messages no snapshot holds are in
// no file.
func TestPruneKilledAnywhere(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		base := newHistory(t, opts, 5)
		for range 8 {
			base.run()
		}
		p := Policy{Last: 2}
		if _, err := base.a.Forget(p, time.UTC, false); err != nil {
			t.Fatal(err)
		}
		decisions := ApplyPolicy(PolicySnapshots(base.snaps, time.UTC), p)
		kept := base.ids(func(i int) bool { return decisions[i].Keep })
		prune := func(h *history) {
			if _, err := h.a.Prune(PruneOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		for _, n := range killIndices(t, base, prune) {
			h := base.clone(t)
			killed, point := killAt(h.a, n, func() { prune(h) })
			if !killed {
				t.Fatalf("not stopped at hook call %d", n)
			}
			h.reopen()
			h.allowOrphans = true
			h.checkSnapshots(kept)
			if _, err := h.a.Prune(PruneOptions{}); err != nil {
				t.Fatalf("kill at %s: prune again: %v", point, err)
			}
			h.allowOrphans = false
			h.checkSnapshots(kept)
			live := h.keptSHAs(kept)
			text := archiveText(t, h.a.Root)
			for sum, b := range h.bodies {
				if !live[sum] && bytes.Contains(text, []byte(messageIDOf(b))) {
					t.Fatalf("kill at %s: %s still in the archive", point, messageIDOf(b))
				}
			}
		}
	})
}

// eraseVictims returns a message present in the newest snapshot and one
// that left the source before it, with their folders.
func (h *history) eraseVictims() (onSource, gone *MessageState, onFolder, goneFolder string) {
	for _, name := range h.st.FolderNames() {
		f := h.st.Folders[name]
		for _, m := range f.Archived {
			if !m.Gone && onSource == nil && !f.Deleted {
				onSource, onFolder = m, name
			}
			if m.Gone && gone == nil && m.AddedIn != m.GoneIn {
				gone, goneFolder = m, name
			}
		}
	}
	if onSource == nil || gone == nil {
		h.t.Fatal("the test needs a present and a gone message")
	}
	return
}

func subjectLine(m *MessageState) []byte { return []byte("Subject: " + m.Subject + "\r\n") }

// TestErase: erase removes the selected messages from every snapshot and
// their bytes from every file of the archive, decompressed; the other
// messages stay byte for byte; the archive verifies and records the
// erasure without the content; a dry run changes nothing.
func TestErase(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		h := newHistory(t, opts, 21)
		for range 10 {
			h.run()
		}
		onSrc, gone, onFolder, goneFolder := h.eraseVictims()
		byKey := func(folder, key string) func(string, *Message) bool {
			return func(f string, m *Message) bool { return f == folder && m.Key == key }
		}
		before := treeHashes(t, h.a.Root)
		dry, err := h.a.Erase(byKey(onFolder, onSrc.Key), "--folder "+onFolder+" --key "+onSrc.Key, "test", true)
		if err != nil {
			t.Fatal(err)
		}
		if len(dry.Erased) != 1 || dry.Erased[0].Key != onSrc.Key || !dry.Erased[0].OnSource {
			t.Fatalf("dry run would erase %+v", dry.Erased)
		}
		if fmt.Sprint(treeHashes(t, h.a.Root)) != fmt.Sprint(before) {
			t.Fatal("dry run changed files")
		}
		res, err := h.a.Erase(byKey(onFolder, onSrc.Key), "--folder "+onFolder+" --key "+onSrc.Key, "request 1", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Erased) != 1 {
			t.Fatalf("erased %+v", res.Erased)
		}
		wantID := gone.MessageID
		res, err = h.a.Erase(func(_ string, m *Message) bool { return m.MessageID == wantID }, "--message-id "+wantID, "request 2", false)
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Erased) != 1 || res.Erased[0].OnSource {
			t.Fatalf("erased %+v", res.Erased)
		}
		for _, v := range h.views {
			delete(v[onFolder], onSrc.Key)
			delete(v[goneFolder], gone.Key)
		}
		h.checkSnapshots(h.ids(func(int) bool { return true }))
		text := archiveText(t, h.a.Root)
		for _, m := range []*MessageState{onSrc, gone} {
			if bytes.Contains(text, subjectLine(m)) || bytes.Contains(text, []byte(`"subject":"`+m.Subject+`"`)) {
				t.Fatalf("%s (%s) is still in the archive", m.Subject, m.Key)
			}
		}
		others := 0
		for _, name := range h.st.FolderNames() {
			for _, m := range h.st.Folders[name].Archived {
				if m.SHA256 != onSrc.SHA256 && m.SHA256 != gone.SHA256 {
					others++
					if !bytes.Contains(text, subjectLine(m)) {
						t.Fatalf("%s, not erased, is gone", m.Subject)
					}
				}
			}
		}
		recs, err := h.a.Erasures()
		if err != nil || len(recs) != 2 || recs[0].Reason != "request 1" || recs[1].Messages != 1 || recs[1].Records != 1 || recs[0].Time.IsZero() {
			t.Fatalf("erasures recorded: %+v, %v", recs, err)
		}
		t.Logf("erased 2 messages, %d others intact", others)
	})
}

// TestEraseKilledAnywhere: an erase stopped at any of its steps leaves an
// archive that verifies and in which every snapshot holds what it held,
// with or without the erased message; the next erase completes the job
// and the message is in no file.
func TestEraseKilledAnywhere(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		points := map[string]bool{}
		base := newHistory(t, opts, 9)
		for range 6 {
			base.run()
		}
		for n := 1; ; n++ {
			h := base.clone(t)
			victim, _, folder, _ := h.eraseVictims()
			match := func(f string, m *Message) bool { return f == folder && m.Key == victim.Key }
			erase := func() {
				if _, err := h.a.Erase(match, "--key "+victim.Key, "test", false); err != nil {
					t.Fatal(err)
				}
			}
			killed, point := killAt(h.a, n, erase)
			if !killed {
				if len(points) < 4 {
					t.Fatalf("only kill points %v", points)
				}
				t.Logf("%d kill points: %v", n-1, points)
				break
			}
			points[point] = true
			h.reopen()
			h.allowOrphans = true
			all := h.ids(func(int) bool { return true })
			st, err := h.a.LoadState()
			if err != nil {
				t.Fatalf("kill at %s: %v", point, err)
			}
			if st.Folders[folder].Lookup(victim.Key) == nil {
				for _, v := range h.views {
					delete(v[folder], victim.Key)
				}
			}
			h.checkSnapshots(all)
			erase()
			for _, v := range h.views {
				delete(v[folder], victim.Key)
			}
			h.allowOrphans = false
			h.checkSnapshots(all)
			if bytes.Contains(archiveText(t, h.a.Root), subjectLine(victim)) {
				t.Fatalf("kill at %s: the erased message is still in the archive", point)
			}
			if recs, err := h.a.Erasures(); err != nil || len(recs) == 0 {
				t.Fatalf("kill at %s: erasures %v, %v", point, recs, err)
			}
		}
	})
}

// TestRetentionRebuildsIndex: the state index made from the manifests
// before a rewrite is dropped with it, and the next writer's index is
// made from the new manifests (forget renumbers, prune moves records).
func TestRetentionRebuildsIndex(t *testing.T) {
	forEachStorage(t, func(t *testing.T, opts StorageOptions) {
		h := newHistory(t, opts, 5)
		for range 10 {
			h.run()
		}
		check := func(step string) {
			t.Helper()
			snaps, err := h.a.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			st, err := Replay(snaps, "")
			if err != nil {
				t.Fatal(err)
			}
			ix, err := h.a.OpenIndex(IndexOptions{Dedup: true})
			if err != nil {
				t.Fatalf("%s: open the index: %v", step, err)
			}
			defer ix.Close()
			t.Log(step)
			indexSameState(t, ix, st)
			checkByHash(t, ix, st)
		}
		check("before")
		if _, err := h.a.Forget(Policy{Last: 3}, time.UTC, false); err != nil {
			t.Fatal(err)
		}
		if h.a.currentIndex() != "" {
			t.Fatal("forget left the index made from the old manifests")
		}
		check("after forget")
		if _, err := h.a.Prune(PruneOptions{}); err != nil {
			t.Fatal(err)
		}
		if h.a.currentIndex() != "" {
			t.Fatal("prune left the index made from the old manifests")
		}
		check("after prune")
	})
}
