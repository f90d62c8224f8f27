package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// gmailSource is a memSource shaped like a Gmail account: labels are
// folders showing the same messages, "[Gmail]" is a \Noselect parent and
// "[Gmail]/All Mail" (\All) holds every message, labelled or not.
// Each label also holds filler messages of its own (in All Mail too), so
// that a run takes several connections.
func gmailSource(filler int) (src *memSource, msgs []string) {
	src = newMemSource()
	for i := 0; i < 6; i++ {
		msgs = append(msgs, fmt.Sprintf("Message-ID: <m%d@gmail>\r\nSubject: message %d\r\n\r\nbody %d\r\n", i, i, i))
	}
	labels := map[string][]int{
		"INBOX":   {0, 1, 2},
		"Work":    {1, 3},
		"Family":  {1, 2, 4},
		"Nothing": {},
	}
	validity := uint32(10)
	for _, name := range []string{"INBOX", "Work", "Family", "Nothing"} {
		f := src.folder(name, validity)
		validity++
		for _, i := range labels[name] {
			f.add(msgs[i], `\Seen`)
		}
		for k := 0; k < filler; k++ {
			fill := fmt.Sprintf("Subject: %s %d\r\n\r\nonly in %s and All Mail\r\n", name, k, name)
			f.add(fill)
			msgs = append(msgs, fill)
		}
	}
	src.folder("[Gmail]", 90).attrs = []string{`\Noselect`, `\HasChildren`}
	starred := src.folder("[Gmail]/Starred", 98)
	starred.attrs = []string{`\Flagged`, `\HasNoChildren`}
	starred.add(msgs[1], `\Seen`, `\Flagged`)
	all := src.folder("[Gmail]/All Mail", 99)
	all.attrs = []string{`\All`, `\HasNoChildren`}
	for _, m := range msgs { // message 5 has no label
		all.add(m, `\Seen`)
	}
	return src, msgs
}

// runGmail backs up src over conns connections (a session each).
func runGmail(t *testing.T, a *formats.Archive, src *memSource, conns int, checkpoint time.Duration) (res *Result, order []string, dials int) {
	t.Helper()
	return runGmailSeed(t, a, src, conns, checkpoint, 0)
}

// runGmailSeed is runGmail with, when seed is not 0, sessions that pause
// at random (seeded) between messages, so that folders fetched at the
// same time interleave differently from one seed to the next.
func runGmailSeed(t *testing.T, a *formats.Archive, src *memSource, conns int, checkpoint time.Duration, seed uint64) (res *Result, order []string, dials int) {
	t.Helper()
	var mu sync.Mutex
	var err error
	res, err = Run(context.Background(), a, Options{Source: "mem://gmail", Protocol: "imap", Connections: conns, Checkpoint: checkpoint,
		Dial: func(context.Context) (Source, error) {
			mu.Lock()
			dials++
			n := dials
			mu.Unlock()
			s := *src
			s.examined = nil
			log := &examineLog{memSource: &s, mu: &mu, order: &order}
			if seed == 0 {
				return log, nil
			}
			return &jitterSource{examineLog: log, rnd: rand.New(rand.NewPCG(seed, uint64(n)))}, nil
		}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, order, dials
}

// jitterSource pauses at random before some messages it delivers.
type jitterSource struct {
	*examineLog
	rnd *rand.Rand
}

func (j *jitterSource) Fetch(ctx context.Context, keys []string, fn func(*Message) error) error {
	return j.examineLog.Fetch(ctx, keys, func(m *Message) error {
		switch j.rnd.IntN(6) {
		case 0:
			time.Sleep(time.Duration(j.rnd.IntN(400)) * time.Microsecond)
		case 1:
			runtime.Gosched()
		}
		return fn(m)
	})
}

// examineLog records the folders examined, over all sessions, in order.
type examineLog struct {
	*memSource
	mu    *sync.Mutex
	order *[]string
}

func (e *examineLog) Examine(ctx context.Context, name string) (FolderStatus, error) {
	e.mu.Lock()
	*e.order = append(*e.order, name)
	e.mu.Unlock()
	return e.memSource.Examine(ctx, name)
}

// TestGmailLabelsStoredOnce: a message in several labels and in All Mail
// is stored once (labels fetched at the same time over several
// connections defer to each other); every folder's manifest records it,
// pointing at the one stored copy; All Mail is examined last and the
// [Gmail] parent never; the copies in All Mail's own segments are the
// messages without a label. With one connection and with several, with
// and without checkpoints.
func TestGmailLabelsStoredOnce(t *testing.T) {
	for _, tc := range []struct {
		conns      int
		checkpoint time.Duration
		filler     int
	}{{1, 0, 0}, {4, 0, 150}, {4, time.Nanosecond, 150}} {
		t.Run(fmt.Sprintf("conns=%d,checkpoint=%v", tc.conns, tc.checkpoint), func(t *testing.T) {
			a := newArchive(t)
			src, msgs := gmailSource(tc.filler)
			res, order, dials := runGmail(t, a, src, tc.conns, tc.checkpoint)
			if res.Stored != len(msgs) {
				t.Errorf("stored %d messages, want %d (each once)", res.Stored, len(msgs))
			}
			if want := 3 + 2 + 3 + 1 + 6 + 8*tc.filler; res.Added != want {
				t.Errorf("added %d, want %d (every folder records its messages)", res.Added, want)
			}
			if dials < 2 && tc.conns > 1 {
				t.Errorf("%d connection(s), want several", dials)
			}
			if len(order) == 0 || order[len(order)-1] != "[Gmail]/All Mail" {
				t.Errorf("examined %v, want All Mail last", order)
			}
			for i, f := range order {
				if f == "[Gmail]/Starred" && i > 0 && !slices.Contains(order[i:], "[Gmail]/All Mail") {
					t.Errorf("examined %v, want Starred before All Mail", order)
				}
				if f != "[Gmail]/Starred" && f != "[Gmail]/All Mail" && slices.Contains(order[:i], "[Gmail]/Starred") {
					t.Errorf("examined %v, want Starred after the labels", order)
				}
			}
			for _, f := range order {
				if f == "[Gmail]" {
					t.Errorf("the \\Noselect [Gmail] was examined: %v", order)
				}
			}
			st := checkArchive(t, a, src)
			if n, extra := storedCopies(t, a); n != len(msgs) || extra != 0 {
				t.Errorf("the archive holds %d distinct messages with %d extra copies, want %d and 0", n, extra, len(msgs))
			}
			all := st.Folders["[Gmail]/All Mail"]
			own := 0
			for _, m := range all.Present() {
				if path.Dir(m.Seg) == "folders/"+all.Dir {
					own++
					if m.MessageID != "<m5@gmail>" {
						t.Errorf("All Mail stored %s itself, though a label holds it", m.MessageID)
					}
				}
			}
			if own != 1 {
				t.Errorf("All Mail stores %d messages itself, want 1 (the one without a label)", own)
			}
			// A label added on the server later: recorded, nothing stored.
			fam := src.folders["Family"]
			fam.add(msgs[0], `\Seen`)
			res, _, _ = runGmail(t, a, src, tc.conns, tc.checkpoint)
			if res.Added != 1 || res.Stored != 0 {
				t.Errorf("after labelling a message: added %d, stored %d; want 1, 0", res.Added, res.Stored)
			}
			checkArchive(t, a, src)
		})
	}
}

// TestGmailStoredOnceSeeds: TestGmailLabelsStoredOnce's account over four
// connections, with and without checkpoints, many times, the sessions
// pausing at random (seeded) so that the labels interleave differently
// each time: each message is stored once every time.
func TestGmailStoredOnceSeeds(t *testing.T) {
	seeds := 6
	if testing.Short() {
		seeds = 2
	}
	forDedupStorages(t, func(t *testing.T, o formats.StorageOptions, _ bool) {
		for _, checkpoint := range []time.Duration{0, 20 * time.Millisecond} {
			for seed := uint64(1); seed <= uint64(seeds); seed++ {
				a := newArchiveWith(t, o)
				src, msgs := gmailSource(150)
				res, _, _ := runGmailSeed(t, a, src, 4, checkpoint, seed)
				n, extra := storedCopies(t, a)
				if res.Stored != len(msgs) || n != len(msgs) || extra != 0 {
					t.Errorf("checkpoint=%v seed %d: stored %d, the archive holds %d distinct messages with %d extra copies; want %d, %d, 0",
						checkpoint, seed, res.Stored, n, extra, len(msgs), len(msgs))
				}
				checkArchive(t, a, src)
			}
		}
	})
}

// forDedupStorages runs fn against the storages the tests of the dedup
// across folders run against: the default one (segments: one location
// for the account) and the first that links (Maildir files: hard links,
// one inode), said by links.
func forDedupStorages(t *testing.T, fn func(t *testing.T, o formats.StorageOptions, links bool)) {
	all := formats.Storages()
	t.Run("default", func(t *testing.T) { fn(t, all[0], false) })
	o := linkingStorages(t)[0]
	t.Run("links", func(t *testing.T) { fn(t, o, true) })
}

// TestMovedMessageNotStoredAgain: on any server, a message moved to
// another folder between runs is recorded there with the bytes the
// archive already holds.
func TestMovedMessageNotStoredAgain(t *testing.T) {
	a := newArchive(t)
	src := newMemSource()
	in := src.folder("INBOX", 1)
	in.add("Subject: keep\r\n\r\nkeep\r\n")
	in.add("Subject: move me\r\n\r\nto the archive folder\r\n")
	src.folder("Archive", 2)
	mustRun(t, a, src)
	in.msgs[1].expunged = true
	in.msgs = in.msgs[:1]
	src.folders["Archive"].add("Subject: move me\r\n\r\nto the archive folder\r\n")
	res := mustRun(t, a, src)
	if res.Added != 1 || res.Gone != 1 || res.Stored != 0 {
		t.Errorf("added %d, gone %d, stored %d; want 1, 1, 0", res.Added, res.Gone, res.Stored)
	}
	checkArchive(t, a, src)
}

// TestDedupAcrossFoldersPolicy: every storage stores the bytes once for
// the account: the segment storage records them at one location; a
// Maildir archive keeps a file per message on the source in each folder,
// for Maildir readers, those of the same bytes hard links to one inode.
func TestDedupAcrossFoldersPolicy(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src, msgs := gmailSource(0)
		res, _, _ := runGmail(t, a, src, 2, 0)
		if res.Stored != len(msgs) {
			t.Errorf("stored %d of %d added, want %d", res.Stored, res.Added, len(msgs))
		}
		checkArchive(t, a, src)
		if n, extra := storedCopies(t, a); n != len(msgs) || extra != 0 {
			t.Errorf("the archive holds %d distinct messages with %d extra copies, want %d and 0", n, extra, len(msgs))
		}
	})
}

// TestGmailKilledAfterCheckpoints: a run killed right after any of its
// checkpoints leaves an archive that verifies (every location a manifest
// names is in a segment it or an earlier one commits, every record of a
// committed segment is named), and the next run completes it with each
// message present in every folder. Several connections, a checkpoint at
// every message.
func TestGmailKilledAfterCheckpoints(t *testing.T) {
	forDedupStorages(t, testGmailKilledAfterCheckpoints)
}

func testGmailKilledAfterCheckpoints(t *testing.T, o formats.StorageOptions, links bool) {
	for _, kill := range []int{1, 4, 9, 20, 35} {
		t.Run(fmt.Sprintf("kill=%d", kill), func(t *testing.T) {
			a := newArchiveWith(t, o)
			src, _ := gmailSource(40)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			checkpoints := 0
			opts := Options{Source: "mem://gmail", Protocol: "imap", Connections: 4, Checkpoint: time.Hour, CheckpointBytes: 1,
				Hook: func(p string) {
					if p == "checkpoint-committed" {
						if checkpoints++; checkpoints == kill {
							cancel()
						}
					}
				},
				Dial: func(context.Context) (Source, error) {
					s := *src
					return &s, nil
				}}
			_, err := Run(ctx, a, opts)
			if checkpoints < kill {
				t.Skipf("the run took %d checkpoints (%v)", checkpoints, err)
			}
			// Killed: the snapshot committed after the interruption is
			// dropped, as if the process had died before it.
			files, _ := a.ListSnapshots()
			os.Remove(files[len(files)-1].Path)
			os.RemoveAll(filepath.Join(a.Root, formats.CacheDir))
			if rep, err := a.Verify(nil); err != nil || !rep.OK() {
				t.Fatalf("after a kill at checkpoint %d: Verify = %+v, %v", kill, rep, err)
			}
			opts.Hook = nil
			if _, err := Run(context.Background(), a, opts); err != nil {
				t.Fatal(err)
			}
			checkArchive(t, a, src)
			if links {
				diskLinks(t, a)
			}
		})
	}
}

// testDedup returns an accountDedup of a run keeping its copies, on a
// new archive's state index.
func testDedup(t *testing.T, anytime bool) *accountDedup {
	t.Helper()
	ix, err := openIndex(newArchive(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	d := newAccountDedup(anytime)
	d.ix, d.inRun = ix, true
	return d
}

func testJob(name, use string) *folderJob {
	return &folderJob{folderPlan: folderPlan{info: FolderInfo{Name: name, SpecialUse: use}}}
}

func testSum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestAccountDedupRule: the first writer to read some bytes claims them;
// another writer (of another folder, or another part of the same one)
// defers to it, and never waits while it fetches. Once committed, the
// copy may be named at once without checkpoints; with checkpoints, by its
// own folder at once, by another one once a checkpoint committed the
// segment or the folder is finished (the next checkpoint takes it), unless
// that finished folder depends on a segment no checkpoint would commit.
func TestAccountDedupRule(t *testing.T) {
	for _, anytime := range []bool{false, true} {
		t.Run(fmt.Sprintf("anytime=%v", anytime), func(t *testing.T) {
			d := testDedup(t, anytime)
			x, y, z := testJob("X", ""), testJob("Y", ""), testJob("Z", "")
			fx := &fetcher{job: x, out: &writer{}}
			fx2 := &fetcher{job: x, out: &writer{}} // a part of X
			fy := &fetcher{job: y, out: &writer{}}
			fz := &fetcher{job: z, out: &writer{}}
			s1, s2 := testSum("one"), testSum("two")
			segX, segZ := "folders/X/1-a.mbox.zst", "folders/Z/1-a.mbox.zst"
			lookup := func(sum string, f *fetcher, want copyState, wantSeg string) {
				t.Helper()
				l, st, err := d.lookup(sum, f)
				if err != nil || st != want || l.seg != wantSeg || l.key != "" {
					t.Fatalf("lookup by %s = %+v, %v, %v; want %v at %q", f.job.info.Name, l, st, err, want, wantSeg)
				}
			}
			lookup(s1, fx, copyNone, "")   // X stores s1: claimed
			lookup(s1, fx2, copyLater, "") // another writer of X: defers
			lookup(s1, fy, copyLater, "")  // Y defers
			if err := d.committed(x, writerCommit{w: fx.out, seg: &formats.Segment{Path: segX},
				hashes: map[string]location{s1: {seg: segX, off: 10, key: "1:1"}}}); err != nil {
				t.Fatal(err)
			}
			if len(d.claims) != 0 {
				t.Fatalf("claims left after the commit: %v", d.claims)
			}
			lookup(s1, fx2, copyHere, segX) // its own folder's
			if anytime {
				lookup(s1, fy, copyHere, segX)
				return
			}
			lookup(s1, fy, copyLater, segX) // X in progress: a checkpoint of Y would not hold segX

			// Z stores s2 and finishes naming segX: it depends on it.
			lookup(s2, fz, copyNone, "")
			if err := d.committed(z, writerCommit{w: fz.out, seg: &formats.Segment{Path: segZ},
				hashes: map[string]location{s2: {seg: segZ, key: "1:1"}}}); err != nil {
				t.Fatal(err)
			}
			d.finished(z, []string{segX})
			lookup(s2, fy, copyLater, segZ) // Z waits for X's segment
			in := map[*folderJob]bool{z: true, y: true}
			d.takeable(in, func(j *folderJob) []string { return map[*folderJob][]string{z: {segX}}[j] })
			if in[z] || !in[y] {
				t.Errorf("a checkpoint of Y would take %v; want Y without Z", in)
			}
			in = map[*folderJob]bool{z: true, x: true}
			d.takeable(in, func(j *folderJob) []string { return map[*folderJob][]string{z: {segX}}[j] })
			if !in[z] || !in[x] {
				t.Errorf("a checkpoint of X would take %v; want X and Z", in)
			}
			d.finished(x, nil)
			lookup(s1, fy, copyHere, segX) // X finished: the next checkpoint takes it
			lookup(s2, fy, copyHere, segZ) // and Z with it
			d.checkpointed([]formats.Segment{{Path: segX}, {Path: segZ}}, []*folderJob{x, z})
			lookup(s1, fy, copyHere, segX)
			if len(d.doneDeps) != 0 || len(d.uncommitted) != 0 {
				t.Errorf("after the checkpoint: finished %v, uncommitted %v", d.doneDeps, d.uncommitted)
			}

			// A writer that aborts ends its claims: the bytes are
			// claimed by the next one to read them.
			s3 := testSum("three")
			lookup(s3, fy, copyNone, "")
			fy.out.hashes = map[string]location{s3: {seg: "folders/Y/x", key: "1:1"}}
			lookup(s3, fz, copyLater, "")
			fy.out.abort()
			lookup(s3, fz, copyNone, "")
		})
	}
}

// TestAccountDedupTiers: All Mail waits until the other folders are
// done, then finds their copies.
func TestAccountDedupTiers(t *testing.T) {
	d := testDedup(t, false)
	x, all := testJob("X", ""), testJob("All", `\All`)
	d.left[tierFolders], d.left[tierAll] = 1, 1
	close(d.tierDone[tierFlagged])
	waited := make(chan struct{})
	go func() { d.waitEarlier(context.Background(), all); close(waited) }()
	select {
	case <-waited:
		t.Errorf("All Mail did not wait for the other folder")
	case <-time.After(20 * time.Millisecond):
	}
	d.finished(x, nil)
	<-waited
	d.finished(all, nil)
	select {
	case <-d.tierDone[tierAll]:
	default:
		t.Errorf("All Mail's tier not done after it finished")
	}
	var none accountDedup // a run without All Mail or Starred
	none.archived = nil
	if _, st, _ := none.lookup(testSum("a"), &fetcher{job: x, out: &writer{}}); st != copyNone {
		t.Errorf("lookup without inRun: %v", st)
	}
}

// storedCopies returns, from the archive's latest state, how many
// distinct messages (by SHA-256) its folders hold and how many more
// copies of them are stored (locations; in a Maildir archive, inodes):
// each message should be stored once, so extra should be 0.
func storedCopies(t *testing.T, a *formats.Archive) (distinct, extra int) {
	t.Helper()
	if a.LinkStored() {
		return maildirCopies(t, a)
	}
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]map[string]bool{} // SHA-256 -> locations
	for _, f := range st.Folders {
		for _, m := range f.Present() {
			if where[m.SHA256] == nil {
				where[m.SHA256] = map[string]bool{}
			}
			where[m.SHA256][fmt.Sprintf("%s@%d", m.Seg, m.Off)] = true
		}
	}
	for _, locs := range where {
		extra += len(locs) - 1
	}
	return len(where), extra
}

// crossedSource is a Gmail-like account whose labels X and Y each start
// with a message the other holds too (X: a, b; Y: b, a), and make the
// run read them crosswise: a session that stored the first message of X
// or Y waits until the other label's first message is stored too (or the
// run ends). Then X holds a claim on a and reads b, which Y claims, while
// Y reads a: each label meets bytes the other is storing.
//
// With hold, it also orders what follows (each wait bounded, and ended
// by the run's end): Y, before its third message, waits until X, at its
// end, waits for the bytes of b (Y's writer holds them; the run's hook
// "deferred-wait"), and after it until X is finished (naming Y's copy,
// which no checkpoint holds yet) and a checkpoint was committed since
// (one of Z, which waits before its second message until X is finished):
// that checkpoint cannot take X.
type crossedSource struct {
	*memSource
	gate *crossGate
}

type crossGate struct {
	hold  bool
	first map[string]*sync.Once
	in    map[string]chan struct{}
	met   atomic.Int32 // labels that saw the other one's first message stored
	seen  map[string]*atomic.Int32
	// xWaits, xDone and ckAfterX are closed once X waits at its end, once
	// it is finished, and at the first checkpoint committed after that.
	xWaits, xDone, ckAfterX  chan struct{}
	xWaitsOnce, ckAfterXOnce sync.Once
	held                     atomic.Int32 // waits of hold that ended as ordered
}

func newCrossGate(hold bool) *crossGate {
	return &crossGate{
		hold:   hold,
		first:  map[string]*sync.Once{"X": {}, "Y": {}},
		in:     map[string]chan struct{}{"X": make(chan struct{}), "Y": make(chan struct{})},
		seen:   map[string]*atomic.Int32{"X": {}, "Y": {}, "Z": {}},
		xWaits: make(chan struct{}), xDone: make(chan struct{}), ckAfterX: make(chan struct{}),
	}
}

// hook and progress follow the run for hold.
func (g *crossGate) hook(p string) {
	switch p {
	case "deferred-wait":
		g.xWaitsOnce.Do(func() { close(g.xWaits) })
	case "checkpoint-committed":
		select {
		case <-g.xDone:
			g.ckAfterXOnce.Do(func() { close(g.ckAfterX) })
		default:
		}
	}
}

func (g *crossGate) progress(e Event) {
	if e.Kind == EventFolderDone && e.Folder == "X" {
		close(g.xDone)
	}
}

// wait waits for ch, the run's end or 20 s; it counts the waits that
// ended with ch.
func (g *crossGate) wait(ctx context.Context, ch chan struct{}) {
	select {
	case <-ch:
		g.held.Add(1)
	case <-ctx.Done():
	case <-time.After(20 * time.Second):
	}
}

func (c *crossedSource) Fetch(ctx context.Context, keys []string, fn func(*Message) error) error {
	g := c.gate
	name := c.cur.name
	once, seen := g.first[name], g.seen[name]
	return c.memSource.Fetch(ctx, keys, func(m *Message) error {
		n := 0
		if seen != nil {
			n = int(seen.Add(1))
		}
		switch {
		case g.hold && name == "Y" && n == 3:
			g.wait(ctx, g.xWaits)
		case g.hold && name == "Z" && n == 2:
			g.wait(ctx, g.xDone)
		}
		if err := fn(m); err != nil || once == nil {
			return err
		}
		if g.hold && name == "Y" && n == 3 {
			g.wait(ctx, g.xDone)
			g.wait(ctx, g.ckAfterX)
		}
		once.Do(func() {
			close(g.in[name])
			other := map[string]string{"X": "Y", "Y": "X"}[name]
			select {
			case <-g.in[other]:
				g.met.Add(1)
			case <-ctx.Done():
			case <-time.After(20 * time.Second):
			}
		})
		return nil
	})
}

// crossedAccount builds the account of crossedSource: X and Y share a
// and b, and hold filler messages of their own (fill["X"], fill["Y"]), as
// may a third label Z (fill["Z"], nothing shared); All Mail holds every
// message and c, in no label.
func crossedAccount(fill map[string]int) (src *memSource, distinct, added int) {
	src = newMemSource()
	a := "Message-ID: <a@x>\r\nSubject: a\r\n\r\nin X and Y\r\n"
	b := "Message-ID: <b@x>\r\nSubject: b\r\n\r\nin Y and X\r\n"
	all := []string{a, b}
	for i, name := range []string{"X", "Y", "Z"} {
		if name == "Z" && fill[name] == 0 {
			continue
		}
		f := src.folder(name, uint32(10+i))
		switch name {
		case "X":
			f.add(a, `\Seen`)
			f.add(b)
		case "Y":
			f.add(b)
			f.add(a, `\Seen`)
		}
		for k := 0; k < fill[name]; k++ {
			m := fmt.Sprintf("Subject: %s %d\r\n\r\nonly in %s\r\n", name, k, name)
			f.add(m)
			all = append(all, m)
		}
		added += len(f.msgs)
	}
	all = append(all, "Message-ID: <c@x>\r\nSubject: c\r\n\r\nno label\r\n")
	am := src.folder("[Gmail]/All Mail", 99)
	am.attrs = []string{`\All`, `\HasNoChildren`}
	for _, m := range all {
		am.add(m)
	}
	return src, len(all), added + len(all)
}

// crossedCase is a run of crossedSource's account.
type crossedCase struct {
	name            string
	fill            map[string]int
	conns           int
	checkpoint      time.Duration
	checkpointBytes int64
	hold            bool // crossGate.hold
}

// crossedCases: X and Y alike, with and without checkpoints (one at every
// message); and X ending early, naming a copy of Y that no checkpoint
// holds yet, and a checkpoint of a third label Z that comes then (hold).
var crossedCases = []crossedCase{
	{"alike,conns=2", map[string]int{"X": 60, "Y": 60}, 2, 0, 0, false},
	{"alike,conns=4", map[string]int{"X": 60, "Y": 60}, 4, 0, 0, false},
	{"alike,conns=2,checkpoints", map[string]int{"X": 60, "Y": 60}, 2, time.Nanosecond, 0, false},
	{"alike,conns=4,checkpoints", map[string]int{"X": 60, "Y": 60}, 4, time.Nanosecond, 0, false},
	{"X ends first,Z,checkpoints", map[string]int{"X": 0, "Y": 60, "Z": 60}, 3, time.Hour, 400, true},
}

func (tc crossedCase) options(src *memSource) (Options, *crossGate) {
	gate := newCrossGate(tc.hold)
	return Options{Source: "mem://gmail", Protocol: "imap", Connections: tc.conns, Checkpoint: tc.checkpoint, CheckpointBytes: tc.checkpointBytes,
		Hook: gate.hook, Progress: gate.progress,
		Dial: func(context.Context) (Source, error) {
			s := *src
			return &crossedSource{memSource: &s, gate: gate}, nil
		}}, gate
}

// TestAccountDedupCrossedClaims: two labels fetched at the same time, each
// meeting bytes the other has read and not yet committed, store them once
// (before, one of them stored its own copy so that neither waited for the
// other: a duplicate at each such crossing). With and without
// checkpoints, over several connections.
//
// A Maildir archive's folders never defer (each links the other's file,
// committed or not): the cases ordered around a deferred wait (hold) are
// for segments only.
func TestAccountDedupCrossedClaims(t *testing.T) {
	forDedupStorages(t, testAccountDedupCrossedClaims)
}

func testAccountDedupCrossedClaims(t *testing.T, o formats.StorageOptions, links bool) {
	for _, tc := range crossedCases {
		if tc.hold && links {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			a := newArchiveWith(t, o)
			src, distinct, added := crossedAccount(tc.fill)
			opts, gate := tc.options(src)
			res, err := Run(context.Background(), a, opts)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if gate.met.Load() != 2 {
				t.Fatalf("X and Y were not fetched at the same time (%d of 2 met the other)", gate.met.Load())
			}
			if held := gate.held.Load(); tc.hold && held != 4 {
				t.Fatalf("%d of the 4 waits of hold ended as ordered", held)
			}
			if res.Stored != distinct || res.Added != added {
				t.Errorf("stored %d messages, added %d; want %d (each once), %d", res.Stored, res.Added, distinct, added)
			}
			checkArchive(t, a, src)
			if n, extra := storedCopies(t, a); n != distinct || extra != 0 {
				t.Errorf("the archive holds %d distinct messages with %d extra copies, want %d and 0", n, extra, distinct)
			}
			res = mustRun(t, a, src)
			if res.Stored != 0 {
				t.Errorf("a second run stored %d", res.Stored)
			}
		})
	}
}

// TestAccountDedupKilled: the runs of TestAccountDedupCrossedClaims
// killed at points of their write path (a message stored, a segment or a
// delta file about to be renamed, a manifest about to be or just
// committed): what a kill leaves (the archive's files at that point, the
// state index dropped) verifies, every location a manifest names in a
// segment it or an earlier one commits; the next run completes it with
// every message present and each stored once.
//
// In a Maildir archive "segment-before-rename" is a writer about to move
// its files (hard links among them) into cur/, and the copy of the
// archive keeps its hard links.
func TestAccountDedupKilled(t *testing.T) {
	forDedupStorages(t, testAccountDedupKilled)
}

func testAccountDedupKilled(t *testing.T, o formats.StorageOptions, links bool) {
	points := []string{"message-stored", "segment-before-rename", "delta-before-rename", "manifest-before-rename", "manifest-after-rename"}
	perPoint := 3
	if testing.Short() || links {
		perPoint = 2
	}
	if testing.Short() && raceEnabled {
		perPoint = 1 // the data races are in the runs, not in where they stop
	}
	for _, tc := range crossedCases {
		if tc.conns == 4 || tc.hold && links {
			continue // as conns=2 here; see TestAccountDedupCrossedClaims
		}
		if !tc.hold {
			tc.fill = map[string]int{"X": 25, "Y": 25} // still two connections
		}
		t.Run(tc.name, func(t *testing.T) {
			// A whole run, to count the points.
			counts := map[string]int{}
			var mu sync.Mutex
			src, distinct, _ := crossedAccount(tc.fill)
			opts, _ := tc.options(src)
			gateHook := opts.Hook
			opts.Hook = func(p string) {
				gateHook(p)
				mu.Lock()
				counts[p]++
				mu.Unlock()
			}
			if _, err := Run(context.Background(), newArchiveWith(t, o), opts); err != nil {
				t.Fatal(err)
			}
			for _, point := range points {
				step := max(1, counts[point]/perPoint)
				for k := 1; k <= counts[point]; k += step {
					t.Run(fmt.Sprintf("%s:%d", point, k), func(t *testing.T) {
						killed := killedAt(t, o, tc, src, point, k)
						if killed == nil {
							t.Skipf("the run reached %s fewer than %d times", point, k)
						}
						if rep, err := killed.Verify(nil); err != nil || !rep.OK() {
							t.Fatalf("after a kill at %s #%d: Verify = %+v, %v", point, k, rep, err)
						}
						// Without crossedSource's waits: X may be complete.
						opts := Options{Source: "mem://gmail", Protocol: "imap", Connections: tc.conns, Checkpoint: tc.checkpoint, CheckpointBytes: tc.checkpointBytes,
							Dial: func(context.Context) (Source, error) {
								s := *src
								return &s, nil
							}}
						if _, err := Run(context.Background(), killed, opts); err != nil {
							t.Fatalf("the run after the kill: %v", err)
						}
						checkArchive(t, killed, src)
						if n, extra := storedCopies(t, killed); n != distinct || extra != 0 {
							t.Errorf("the archive holds %d distinct messages with %d extra copies, want %d and 0", n, extra, distinct)
						}
						if links {
							diskLinks(t, killed) // no link left over
						}
					})
				}
			}
		})
	}
}

// killedAt runs tc and returns a copy of its archive as a kill at the
// kth time the run reached point leaves it (nil if it never did): other
// goroutines are held at their next point while the files are copied,
// the manifests first (a manifest committed during the copy is not
// taken). The run is then interrupted and left to end.
func killedAt(t *testing.T, o formats.StorageOptions, tc crossedCase, src *memSource, point string, k int) *formats.Archive {
	t.Helper()
	a := newArchiveWith(t, o)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	n := 0
	var dst string
	var cerr error
	opts, _ := tc.options(src)
	gateHook := opts.Hook
	opts.Hook = func(p string) {
		gateHook(p)
		mu.Lock()
		defer mu.Unlock()
		if dst != "" || p != point {
			return
		}
		if n++; n == k {
			dst = filepath.Join(t.TempDir(), "vault")
			cerr = copyKilled(a.Root, dst)
			cancel()
		}
	}
	Run(ctx, a, opts)
	if dst == "" {
		return nil
	}
	if cerr != nil {
		t.Fatalf("copy the archive: %v", cerr)
	}
	b, err := formats.Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyKilled copies the archive at root to dst as a kill leaves it: the
// committed manifests first, then every other file that is there (files
// vanishing meanwhile are left out), but the state index (a cache). Files
// keep their modification time, and those with several names (a Maildir
// archive's hard links) keep them.
func copyKilled(root, dst string) error {
	linked := map[[2]uint64]string{} // inode -> its first name copied
	copyFile := func(rel string) error {
		if fi, err := os.Stat(filepath.Join(root, rel)); err == nil {
			if id, n, ok := inodeOf(fi); ok && n > 1 {
				if first, ok := linked[id]; ok {
					return os.Link(filepath.Join(dst, first), filepath.Join(dst, rel))
				}
				linked[id] = rel
			}
		}
		data, err := os.ReadFile(filepath.Join(root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, rel), data, 0o644); err != nil {
			return err
		}
		if fi, err := os.Stat(filepath.Join(root, rel)); err == nil {
			// A Maildir file's modification time is its INTERNALDATE.
			return os.Chtimes(filepath.Join(dst, rel), fi.ModTime(), fi.ModTime())
		}
		return nil
	}
	manifests, err := filepath.Glob(filepath.Join(root, formats.SnapshotsDir, "*.json"))
	if err != nil {
		return err
	}
	done := map[string]bool{}
	for _, m := range manifests {
		rel, _ := filepath.Rel(root, m)
		done[rel] = true
		if err := copyFile(rel); err != nil {
			return err
		}
	}
	return filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		switch {
		case d.IsDir() && rel == formats.CacheDir:
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case done[rel] || strings.HasSuffix(rel, ".json") && filepath.Dir(rel) == formats.SnapshotsDir:
			return nil // a manifest committed after the copy began: not taken
		}
		return copyFile(rel)
	})
}

// TestAccountDedupManyDeferred: two labels sharing many messages, read in
// opposite orders at the same time, defer many to each other: past
// deferMessages (made small here) a label records those it may and asks
// the writers holding the others to commit (and, with checkpoints, their
// folders to take one) while it goes on fetching. Each message is stored
// once.
func TestAccountDedupManyDeferred(t *testing.T) {
	old := deferMessages
	deferMessages = 8
	defer func() { deferMessages = old }()
	forDedupStorages(t, testAccountDedupManyDeferred)
}

func testAccountDedupManyDeferred(t *testing.T, o formats.StorageOptions, _ bool) {
	for _, checkpoint := range []time.Duration{0, time.Hour} {
		t.Run(fmt.Sprintf("checkpoint=%v", checkpoint), func(t *testing.T) {
			src := newMemSource()
			var shared []string
			for i := 0; i < 150; i++ {
				shared = append(shared, fmt.Sprintf("Message-ID: <s%d@x>\r\nSubject: shared %d\r\n\r\nin X and Y\r\n", i, i))
			}
			x, y := src.folder("X", 10), src.folder("Y", 11)
			all := src.folder("[Gmail]/All Mail", 99)
			all.attrs = []string{`\All`}
			for i := range shared {
				x.add(shared[i])
				y.add(shared[len(shared)-1-i])
				all.add(shared[i])
			}
			a := newArchiveWith(t, o)
			res, _, _ := runGmailSeed(t, a, src, 2, checkpoint, 7)
			if res.Stored != len(shared) {
				t.Errorf("stored %d messages, want %d (each once)", res.Stored, len(shared))
			}
			checkArchive(t, a, src)
			if n, extra := storedCopies(t, a); n != len(shared) || extra != 0 {
				t.Errorf("the archive holds %d distinct messages with %d extra copies, want %d and 0", n, extra, len(shared))
			}
		})
	}
}
