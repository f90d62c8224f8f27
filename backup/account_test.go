package backup

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sync"
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
	var mu sync.Mutex
	var err error
	res, err = Run(context.Background(), a, Options{Source: "mem://gmail", Protocol: "imap", Connections: conns, Checkpoint: checkpoint,
		Dial: func(context.Context) (Source, error) {
			mu.Lock()
			dials++
			mu.Unlock()
			s := *src
			s.examined = nil
			return &examineLog{memSource: &s, mu: &mu, order: &order}, nil
		}})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res, order, dials
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
// connections defer to each other, see below); every folder's manifest
// records it, pointing at a stored copy; All Mail is examined last and the [Gmail] parent never; the copies
// in All Mail's own segments are the messages without a label. With one
// connection and with several, with and without checkpoints.
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
			// Labels fetched at once defer to each other (claims), except
			// when two would each wait for the other (rare: each read
			// first a message the other holds): one of them then stores
			// its message too (m1 is in three labels, m2 in two). All
			// Mail, walked after them, never stores a labelled message.
			if maxStored := len(msgs) + 3*min(tc.conns-1, 1); res.Stored < len(msgs) || res.Stored > maxStored {
				t.Errorf("stored %d messages, want %d (each once) to %d", res.Stored, len(msgs), maxStored)
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

// TestDedupAcrossFoldersPolicy: each storage keeps its policy
// (formats.Archive.ReuseStored): the segment storage stores the bytes once
// for the account; a Maildir archive keeps a file per message on the
// source in each folder, for Maildir readers.
func TestDedupAcrossFoldersPolicy(t *testing.T) {
	forEachStorage(t, func(t *testing.T, a *formats.Archive) {
		src, msgs := gmailSource(0)
		res, _, _ := runGmail(t, a, src, 2, 0)
		want := len(msgs)
		if !a.ReuseStored(true) {
			want = res.Added
		}
		if res.Stored != want {
			t.Errorf("stored %d of %d added, want %d", res.Stored, res.Added, want)
		}
		checkArchive(t, a, src)
	})
}

// TestGmailKilledAfterCheckpoints: a run killed right after any of its
// checkpoints leaves an archive that verifies (every location a manifest
// names is in a segment it or an earlier one commits, every record of a
// committed segment is named), and the next run completes it with each
// message present in every folder. Several connections, a checkpoint at
// every message.
func TestGmailKilledAfterCheckpoints(t *testing.T) {
	for _, kill := range []int{1, 4, 9, 20, 35} {
		t.Run(fmt.Sprintf("kill=%d", kill), func(t *testing.T) {
			a := newArchive(t)
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
		})
	}
}

// TestAccountDedupRule: with checkpoints, a copy committed for a folder
// still in progress is not handed out (a checkpoint holding the folder
// that names it might not hold its segment); once the folder is done it
// is. Without checkpoints it is at once (one snapshot holds every folder
// the run started).
func TestAccountDedupRule(t *testing.T) {
	x := &folderJob{folderPlan: folderPlan{info: FolderInfo{Name: "X"}}}
	all := &folderJob{folderPlan: folderPlan{info: FolderInfo{Name: "All", SpecialUse: `\All`}}}
	loc := location{"folders/X/1-a.mbox.zst", 10, "1:1"}
	for _, anytime := range []bool{false, true} {
		d := newAccountDedup(anytime)
		d.inRun = true
		d.left[tierFolders], d.left[tierAll] = 1, 1
		close(d.tierDone[tierFlagged])
		d.committed(x, map[string]location{"sum": loc})
		if _, ok, _ := d.find("sum"); ok != anytime {
			t.Errorf("anytime=%v: found before the folder is done: %v", anytime, ok)
		}
		waited := make(chan struct{})
		go func() { d.waitEarlier(context.Background(), all); close(waited) }()
		select {
		case <-waited:
			t.Errorf("anytime=%v: All Mail did not wait for the other folder", anytime)
		case <-time.After(20 * time.Millisecond):
		}
		d.finished(x)
		<-waited
		l, ok, err := d.find("sum")
		if err != nil || !ok || l.seg != loc.seg || l.off != loc.off || l.key != "" {
			t.Errorf("anytime=%v: after the folder is done: %+v, %v, %v; want its location without its key", anytime, l, ok, err)
		}
		d.finished(all)
		select {
		case <-d.tierDone[tierAll]:
		default:
			t.Errorf("anytime=%v: All Mail's tier not done after it finished", anytime)
		}
	}
}

// TestAccountDedupClaims: the first folder to read some bytes stores
// them; another defers to it, unless that would close a cycle of waits
// (then it stores them too); a folder never waits for itself.
func TestAccountDedupClaims(t *testing.T) {
	d := newAccountDedup(false)
	d.inRun = true
	x := &folderJob{folderPlan: folderPlan{info: FolderInfo{Name: "X"}}}
	y := &folderJob{folderPlan: folderPlan{info: FolderInfo{Name: "Y"}}}
	steps := []struct {
		sum     string
		j       *folderJob
		canWait bool
		want    *folderJob
	}{
		{"a", x, true, nil},  // x stores a
		{"a", x, true, nil},  // x again: its own
		{"a", y, false, nil}, // a part of y cannot wait: stores
		{"a", y, true, x},    // y waits for x
		{"b", y, true, nil},  // y stores b
		{"b", x, true, nil},  // x waiting for y would close a cycle: stores
	}
	for i, st := range steps {
		got, ok := d.claim(st.sum, st.j, st.canWait)
		if got != st.want || ok != (st.want != nil) {
			t.Errorf("step %d: claim(%s, %s) = %v, %v; want %v", i, st.sum, st.j.info.Name, got, ok, st.want)
		}
	}
	d.done[x] = make(chan struct{})
	d.finished(x)
	if _, ok := d.claimed["a"]; ok {
		t.Error("x's claims outlive it")
	}
	if got, ok := d.claim("b", x, true); ok {
		t.Errorf("claim after x finished = %v", got)
	}
	var none accountDedup // a run without All Mail or Starred
	if got, ok := none.claim("a", y, true); ok {
		t.Errorf("claims without inRun: %v", got)
	}
}
