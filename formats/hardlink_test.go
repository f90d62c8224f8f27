//go:build unix

package formats

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Hard links in Maildir archives (RecordLinker): a message whose bytes the
// archive stores already is a name of its own for the same file.

var linkDate = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// linkArchive is a Maildir archive for the hard link tests, with the
// snapshots committed so far.
type linkArchive struct {
	t    *testing.T
	a    *Archive
	last *Snapshot
}

func newLinkArchive(t *testing.T, compression string) *linkArchive {
	t.Helper()
	a, _ := create(t, StorageOptions{Storage: StorageMaildir, Compression: compression})
	return &linkArchive{t: t, a: a}
}

// stored is a message a writer stored, before its snapshot commits.
type stored struct {
	folder string
	msg    Message
	w      RecordWriter
}

// write starts a writer of folder for the next snapshot (seq, id) and
// stores body with flags in it: in full when src is nil, else as
// EndRecordLinked(src); it returns the message, the writer (not
// committed) and the link error.
func (l *linkArchive) write(folder, id string, part int, body []byte, date time.Time, flags []string, src *StoredCopy) (stored, error) {
	l.t.Helper()
	seq := 1
	if l.last != nil {
		seq = l.last.Seq + 1
	}
	w, err := l.a.NewWriterPart(FolderDir(folder), seq, id, part)
	if err != nil {
		l.t.Fatal(err)
	}
	if err := w.BeginRecord(date, flags); err != nil {
		l.t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		l.t.Fatal(err)
	}
	var loc string
	var linkErr error
	if src == nil {
		loc, _, err = w.EndRecord()
	} else {
		loc, linkErr, err = w.(RecordLinker).EndRecordLinked(*src)
	}
	if err != nil {
		l.t.Fatal(err)
	}
	m := Message{Key: fmt.Sprintf("%d:%d", seq, part+1), SHA256: sha(body), Size: int64(len(body)), InternalDate: date, Flags: flags, Seg: loc}
	return stored{folder: folder, msg: m, w: w}, linkErr
}

// commit commits the writers of ss and a snapshot (id) naming their
// messages, their folders created.
func (l *linkArchive) commit(id string, ss ...stored) *Snapshot {
	l.t.Helper()
	seq, parent := 1, ""
	if l.last != nil {
		seq, parent = l.last.Seq+1, l.last.ID
	}
	s := &Snapshot{ID: id, Seq: seq, Parent: parent, Source: "imap://test", Protocol: "imap", Status: StatusComplete}
	for _, x := range ss {
		if _, err := x.w.Commit(); err != nil {
			l.t.Fatal(err)
		}
		s.Folders = append(s.Folders, Folder{Name: x.folder, Dir: FolderDir(x.folder), Status: FolderOK})
		s.Changes = append(s.Changes, Change{Folder: x.folder, Added: []Message{x.msg}})
	}
	if err := l.a.Commit(s); err != nil {
		l.t.Fatal(err)
	}
	l.last = s
	return s
}

// file returns the path and the FileInfo of the file of a message
// location, found by its unique part in its folder's cur/.
func (l *linkArchive) file(loc string) (string, fs.FileInfo) {
	l.t.Helper()
	matches, _ := filepath.Glob(filepath.Join(l.a.Root, filepath.FromSlash(path.Dir(loc)), MaildirBase(path.Base(loc))+"[,:]*"))
	if len(matches) != 1 {
		l.t.Fatalf("file of %s: %v", loc, matches)
	}
	fi, err := os.Stat(matches[0])
	if err != nil {
		l.t.Fatal(err)
	}
	return matches[0], fi
}

func (l *linkArchive) nlink(loc string) uint64 {
	l.t.Helper()
	_, fi := l.file(loc)
	_, n, _ := inodeOf(fi)
	return n
}

// check verifies the archive and reads every message of the latest state
// back, comparing with want (SHA-256 by folder and key).
func (l *linkArchive) check(want map[string][]byte) {
	l.t.Helper()
	rep, err := l.a.Verify(nil)
	if err != nil || !rep.OK() {
		l.t.Fatalf("Verify = %+v, %v", rep, err)
	}
	snaps, err := l.a.Snapshots()
	if err != nil {
		l.t.Fatal(err)
	}
	st, err := Replay(snaps, "")
	if err != nil {
		l.t.Fatal(err)
	}
	n := 0
	for name, f := range st.Folders {
		for _, m := range f.Present() {
			r, err := l.a.OpenMessage(st, &m.Message)
			if err != nil {
				l.t.Fatalf("%s %s: %v", name, m.Key, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil || !bytes.Equal(got, want[name]) {
				l.t.Errorf("%s %s: read %d bytes (%v), want %d", name, m.Key, len(got), err, len(want[name]))
			}
			n++
		}
	}
	if n != len(want) {
		l.t.Errorf("%d messages present, want %d", n, len(want))
	}
}

var linkBody = []byte("Message-ID: <linked@x>\r\nSubject: in three folders\r\n\r\n" + strings.Repeat("body line\r\n", 400))

// TestMaildirLinkRecord: EndRecordLinked keeps a message as a name of its
// own in its own folder (its flags in the name) for the file holding the
// same bytes: a committed message's (found under the name its flags give
// it now, after a flag change renamed it), or a record another writer
// ended and has not committed, in its tmp/ (which the link outlives when
// that writer aborts). The archive verifies and reads every copy.
func TestMaildirLinkRecord(t *testing.T) {
	for _, comp := range []string{CompressZstd, CompressNone} {
		t.Run(comp, func(t *testing.T) {
			l := newLinkArchive(t, comp)
			a, _ := l.write("A", "aaaaaaaa", 0, linkBody, linkDate, nil, nil)
			l.commit("aaaaaaaa", a)
			// A flag change renamed A's file.
			pa, _ := l.file(a.msg.Seg)
			os.Rename(pa, strings.TrimSuffix(pa, ":2,")+":2,S")
			src := StoredCopy{Seg: a.msg.Seg, Size: a.msg.Size, Flags: []string{`\Seen`}}
			b, linkErr := l.write("B", "bbbbbbbb", 0, linkBody, linkDate, []string{`\Flagged`}, &src)
			if linkErr != nil {
				t.Fatalf("link to a committed file renamed by a flag change: %v", linkErr)
			}
			if !b.w.Owns(b.msg.Seg) || !strings.HasPrefix(b.msg.Seg, "folders/B/cur/") || !strings.HasSuffix(b.msg.Seg, ":2,F") {
				t.Errorf("linked message at %s, want a file of B's own with its flags", b.msg.Seg)
			}
			// C links to D's record, ended, not committed (in D's tmp/);
			// D then aborts.
			d, _ := l.write("D", "bbbbbbbb", 1, linkBody, linkDate, nil, nil)
			c, linkErr := l.write("C", "bbbbbbbb", 2, linkBody, linkDate, nil, &StoredCopy{Seg: d.msg.Seg, Size: d.msg.Size})
			if linkErr != nil {
				t.Fatalf("link to a record in another writer's tmp/: %v", linkErr)
			}
			d.w.Abort()
			l.commit("bbbbbbbb", b, c)
			pb, fb := l.file(b.msg.Seg)
			pc, fc := l.file(c.msg.Seg)
			_, fa := l.file(a.msg.Seg)
			if !os.SameFile(fa, fb) || os.SameFile(fb, fc) {
				t.Errorf("A and B are not one file, or C (linked to D's full copy) is B's")
			}
			if n := l.nlink(a.msg.Seg); n != 2 {
				t.Errorf("A's file has %d links, want 2 (A, B)", n)
			}
			if n := l.nlink(c.msg.Seg); n != 1 {
				t.Errorf("C's file has %d links, want 1 (D aborted)", n)
			}
			if pb == pc {
				t.Errorf("B and C share a name")
			}
			l.check(map[string][]byte{"A": linkBody, "B": linkBody, "C": linkBody})
			if tmp, _ := filepath.Glob(filepath.Join(l.a.Root, FoldersDir, "*", "tmp", "*")); len(tmp) != 0 {
				t.Errorf("left in tmp/: %v", tmp)
			}
		})
	}
}

// TestMaildirLinkFallback: where no hard link can be made (a file system
// without them, another device, the link limit of the file; the copy
// gone; another INTERNALDATE, which the names of a file would share) the
// message is stored in full, and EndRecordLinked says why.
func TestMaildirLinkFallback(t *testing.T) {
	errnos := []syscall.Errno{syscall.EPERM, syscall.EXDEV, syscall.ENOTSUP, syscall.EMLINK}
	for _, comp := range []string{CompressZstd, CompressNone} {
		for _, tc := range []struct {
			name string
			link func(o, n string) error // nil: os.Link
			date time.Time
			seg  func(seg string) string
			want error
		}{
			{name: errnos[0].Error(), link: failLink(errnos[0]), want: errnos[0]},
			{name: errnos[1].Error(), link: failLink(errnos[1]), want: errnos[1]},
			{name: errnos[2].Error(), link: failLink(errnos[2]), want: errnos[2]},
			{name: errnos[3].Error(), link: failLink(errnos[3]), want: errnos[3]},
			{name: "another date", date: linkDate.Add(time.Hour)},
			{name: "copy gone", seg: func(seg string) string { return strings.Replace(seg, ".0000001,", ".0000009,", 1) }, want: fs.ErrNotExist},
		} {
			t.Run(comp+","+tc.name, func(t *testing.T) {
				l := newLinkArchive(t, comp)
				l.a.Link = tc.link
				a, _ := l.write("A", "aaaaaaaa", 0, linkBody, linkDate, nil, nil)
				l.commit("aaaaaaaa", a)
				date := linkDate
				if !tc.date.IsZero() {
					date = tc.date
				}
				src := StoredCopy{Seg: a.msg.Seg, Size: a.msg.Size}
				if tc.seg != nil {
					src.Seg = tc.seg(src.Seg)
				}
				b, linkErr := l.write("B", "bbbbbbbb", 0, linkBody, date, nil, &src)
				if linkErr == nil || tc.want != nil && !errors.Is(linkErr, tc.want) {
					t.Fatalf("EndRecordLinked: link error %v, want %v", linkErr, tc.want)
				}
				l.commit("bbbbbbbb", b)
				_, fa := l.file(a.msg.Seg)
				_, fb := l.file(b.msg.Seg)
				if os.SameFile(fa, fb) || l.nlink(a.msg.Seg) != 1 || l.nlink(b.msg.Seg) != 1 {
					t.Errorf("B is not a full copy of its own")
				}
				l.check(map[string][]byte{"A": linkBody, "B": linkBody})
				if tmp, _ := filepath.Glob(filepath.Join(l.a.Root, FoldersDir, "*", "tmp", "*")); len(tmp) != 0 {
					t.Errorf("left in tmp/: %v", tmp)
				}
			})
		}
	}
}

func failLink(errno syscall.Errno) func(o, n string) error {
	return func(o, n string) error { return &os.LinkError{Op: "link", Old: o, New: n, Err: errno} }
}

// TestMaildirLinkOrphan: a link moved into cur/ by a writer whose
// snapshot never committed (the process killed) is a left-over the next
// run removes, the name only: the file of the committed message keeps
// its bytes. The other way round, a committed link outlives the file it
// was made from when that one's writer never committed. Links still in
// tmp/ go with tmp/.
func TestMaildirLinkOrphan(t *testing.T) {
	l := newLinkArchive(t, CompressZstd)
	a, _ := l.write("A", "aaaaaaaa", 0, linkBody, linkDate, nil, nil)
	l.commit("aaaaaaaa", a)

	// B links A's file and moves the link into cur/; C links it, still
	// in tmp/; then the process dies.
	src := StoredCopy{Seg: a.msg.Seg, Size: a.msg.Size}
	b, linkErr := l.write("B", "bbbbbbbb", 0, linkBody, linkDate, nil, &src)
	if linkErr != nil {
		t.Fatal(linkErr)
	}
	if _, err := b.w.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, linkErr := l.write("C", "bbbbbbbb", 1, linkBody, linkDate, nil, &src); linkErr != nil {
		t.Fatal(linkErr)
	}
	if n := l.nlink(a.msg.Seg); n != 3 {
		t.Fatalf("A's file has %d links before the kill, want 3", n)
	}
	st := l.state()
	removed, err := l.a.RemoveOrphans(st)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 || !strings.HasPrefix(removed[0], "folders/B/cur/") || !strings.HasPrefix(removed[1], "folders/C/tmp/") {
		t.Errorf("RemoveOrphans removed %v, want B's link in cur/ and C's in tmp/", removed)
	}
	if n := l.nlink(a.msg.Seg); n != 1 {
		t.Errorf("A's file has %d links after the left-overs went, want 1", n)
	}
	l.check(map[string][]byte{"A": linkBody})

	// D stores the bytes, E links D's file and commits; D never does.
	d, _ := l.write("D", "cccccccc", 0, linkBody, linkDate, nil, nil)
	if _, err := d.w.Commit(); err != nil {
		t.Fatal(err)
	}
	e, linkErr := l.write("E", "cccccccc", 1, linkBody, linkDate, nil, &StoredCopy{Seg: d.msg.Seg, Size: d.msg.Size})
	if linkErr != nil {
		t.Fatal(linkErr)
	}
	l.commit("cccccccc", e)
	if removed, err := l.a.RemoveOrphans(l.state()); err != nil || len(removed) != 1 || !strings.HasPrefix(removed[0], "folders/D/cur/") {
		t.Errorf("RemoveOrphans = %v, %v; want D's file", removed, err)
	}
	if n := l.nlink(e.msg.Seg); n != 1 {
		t.Errorf("E's file has %d links, want 1", n)
	}
	l.check(map[string][]byte{"A": linkBody, "E": linkBody})
}

func (l *linkArchive) state() *State {
	l.t.Helper()
	snaps, err := l.a.Snapshots()
	if err != nil {
		l.t.Fatal(err)
	}
	st, err := Replay(snaps, "")
	if err != nil {
		l.t.Fatal(err)
	}
	return st
}

// threeLinks commits A, B and C holding linkBody, B and C as links to A's
// file (one snapshot each), and returns their messages.
func threeLinks(t *testing.T, l *linkArchive) []stored {
	t.Helper()
	a, _ := l.write("A", "aaaaaaaa", 0, linkBody, linkDate, nil, nil)
	l.commit("aaaaaaaa", a)
	src := StoredCopy{Seg: a.msg.Seg, Size: a.msg.Size}
	b, err1 := l.write("B", "bbbbbbbb", 0, linkBody, linkDate, nil, &src)
	c, err2 := l.write("C", "bbbbbbbb", 1, linkBody, linkDate, []string{`\Seen`}, &src)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	l.commit("bbbbbbbb", b, c)
	if n := l.nlink(a.msg.Seg); n != 3 {
		t.Fatalf("%d links, want 3", n)
	}
	return []stored{a, b, c}
}

// TestMaildirLinkBytes: the bytes an archive stores count a file with
// several names once: StoredBytes (a link stores nothing) and what prune
// measures on disk (storedSize).
func TestMaildirLinkBytes(t *testing.T) {
	for _, comp := range []string{CompressZstd, CompressNone} {
		t.Run(comp, func(t *testing.T) {
			l := newLinkArchive(t, comp)
			threeLinks(t, l)
			snaps, err := l.a.Snapshots()
			if err != nil {
				t.Fatal(err)
			}
			if got := l.a.StoredBytes(snaps); len(got) != 2 || got[0] != int64(len(linkBody)) || got[1] != 0 {
				t.Errorf("StoredBytes = %v, want [%d 0]", got, len(linkBody))
			}
			var want int64
			filepath.WalkDir(filepath.Join(l.a.Root, FoldersDir), func(p string, d fs.DirEntry, err error) error {
				if err == nil && d.Type().IsRegular() && strings.Contains(p, "/A/cur/") {
					fi, _ := d.Info()
					want += fi.Size()
				}
				if err == nil && d.Type().IsRegular() && !strings.Contains(p, "/cur/") {
					fi, _ := d.Info()
					want += fi.Size() // dovecot-keywords, marks
				}
				return nil
			})
			if got, err := l.a.storedSize(); err != nil || got != want {
				t.Errorf("storedSize = %d, %v; want %d (the file once)", got, err, want)
			}
		})
	}
}

// TestMaildirLinkPrune: prune removing one name of a file leaves the
// others (and the bytes) and frees nothing; the bytes are freed with the
// last name, and counted then.
func TestMaildirLinkPrune(t *testing.T) {
	l := newLinkArchive(t, CompressNone)
	ms := threeLinks(t, l)
	// B's message gone from the source, then forgotten with the
	// snapshots that had it.
	gone := func(id string, folders ...string) {
		s := &Snapshot{ID: id, Seq: l.last.Seq + 1, Parent: l.last.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete}
		for _, f := range folders {
			s.Changes = append(s.Changes, Change{Folder: f, Gone: []string{map[string]string{"A": ms[0].msg.Key, "B": ms[1].msg.Key, "C": ms[2].msg.Key}[f]}})
		}
		if err := l.a.Commit(s); err != nil {
			t.Fatal(err)
		}
		l.last = s
		if _, err := l.a.Forget(Policy{Last: 1}, time.UTC, false); err != nil {
			t.Fatal(err)
		}
		snaps, _ := l.a.Snapshots()
		l.last = snaps[len(snaps)-1]
	}
	gone("cccccccc", "B")
	res, err := l.a.Prune(PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 1 || res.Freed != 0 || res.StoredBefore-res.StoredAfter != 0 {
		t.Errorf("prune of one name of three: %+v; want 1 deleted, 0 bytes freed", *res)
	}
	if n := l.nlink(ms[0].msg.Seg); n != 2 {
		t.Errorf("%d links left, want 2", n)
	}
	l.check(map[string][]byte{"A": linkBody, "C": linkBody})

	gone("dddddddd", "A", "C")
	res, err = l.a.Prune(PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2 || res.Freed != int64(len(linkBody)) || res.StoredBefore-res.StoredAfter != res.Freed {
		t.Errorf("prune of the last two names: %+v; want 2 deleted, %d bytes freed and measured", *res, len(linkBody))
	}
	l.check(map[string][]byte{})
}

// TestMaildirLinkErase: erasing a message erases every name of its file
// (the other folders' messages stored there go too, as with a segment
// record that several messages share): the bytes leave the disk.
func TestMaildirLinkErase(t *testing.T) {
	l := newLinkArchive(t, CompressNone)
	ms := threeLinks(t, l)
	other, _ := l.write("A", "cccccccc", 0, []byte("Subject: other\r\n\r\nstays\r\n"), linkDate, nil, nil)
	l.commit("cccccccc", other)
	res, err := l.a.Erase(func(folder string, m *Message) bool { return folder == "B" && m.SHA256 == ms[1].msg.SHA256 }, "B", "test", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Erased) != 3 || res.Deleted != 3 || res.Freed != int64(len(linkBody)) || res.StoredBefore-res.StoredAfter != res.Freed {
		t.Errorf("erase: %+v; want the 3 names erased, %d bytes freed once", *res, len(linkBody))
	}
	folders := map[string]bool{}
	for _, e := range res.Erased {
		folders[e.Folder] = true
	}
	if !folders["A"] || !folders["B"] || !folders["C"] {
		t.Errorf("erased %+v, want the message in A, B and C", res.Erased)
	}
	filepath.WalkDir(l.a.Root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("<linked@x>")) {
				t.Errorf("%s still holds the erased message", p)
			}
		}
		return nil
	})
	l.check(map[string][]byte{"A": []byte("Subject: other\r\n\r\nstays\r\n")})
}
