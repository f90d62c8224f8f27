package backup

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// Hard links in Maildir archives: a message that several folders hold is
// stored once, each folder having its own file name for it (its flags in
// the name) and all of them one inode.

// linkingStorages returns the storages whose archives keep the copies
// of a message as hard links (formats.Archive.LinkStored): the Maildir
// ones, compressed or not.
func linkingStorages(t *testing.T) []formats.StorageOptions {
	t.Helper()
	var out []formats.StorageOptions
	for _, o := range formats.Storages() {
		if newArchiveWith(t, o).LinkStored() {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		t.Fatal("no storage keeps hard links")
	}
	return out
}

// maildirFile is the file of a present message of a Maildir archive, as
// found on disk.
type maildirFile struct {
	folder string
	msg    *formats.MessageState
	path   string // absolute
	id     [2]uint64
	nlink  uint64
	size   int64 // on disk
}

// presentFiles finds the file of every present message of a Maildir
// archive's latest state: by its unique part in its folder's cur/ (a flag
// change renames a file).
func presentFiles(t *testing.T, a *formats.Archive) []maildirFile {
	t.Helper()
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	var out []maildirFile
	for name, f := range st.Folders {
		for _, m := range f.Present() {
			cur := filepath.Join(a.Root, filepath.FromSlash(path.Dir(m.Seg)))
			matches, err := filepath.Glob(filepath.Join(cur, formats.MaildirBase(path.Base(m.Seg))+"[,:]*"))
			if err != nil || len(matches) != 1 {
				t.Fatalf("%s %s: file %s found as %v, %v", name, m.Key, m.Seg, matches, err)
			}
			fi, err := os.Stat(matches[0])
			if err != nil {
				t.Fatal(err)
			}
			id, nlink, _ := inodeOf(fi)
			out = append(out, maildirFile{folder: name, msg: m, path: matches[0], id: id, nlink: nlink, size: fi.Size()})
		}
	}
	return out
}

// maildirCopies is storedCopies for a Maildir archive: the stored copies
// of a message are its distinct files (inodes), not its names.
func maildirCopies(t *testing.T, a *formats.Archive) (distinct, extra int) {
	t.Helper()
	inodes := map[string]map[[2]uint64]bool{} // SHA-256 -> inodes
	for _, f := range presentFiles(t, a) {
		if inodes[f.msg.SHA256] == nil {
			inodes[f.msg.SHA256] = map[[2]uint64]bool{}
		}
		inodes[f.msg.SHA256][f.id] = true
	}
	for _, ids := range inodes {
		extra += len(ids) - 1
	}
	return len(inodes), extra
}

// diskLinks reads every file in the cur/ of the archive's folders and
// checks that each inode's link count is the number of names it has
// there (no link elsewhere, none left over); it returns the number of
// inodes and their bytes on disk, each counted once.
func diskLinks(t *testing.T, a *formats.Archive) (inodes int, bytes int64) {
	t.Helper()
	names := map[[2]uint64][]string{}
	nlinks := map[[2]uint64]uint64{}
	files, err := filepath.Glob(filepath.Join(a.Root, formats.FoldersDir, "*", "cur", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range files {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		id, nlink, _ := inodeOf(fi)
		if len(names[id]) == 0 {
			bytes += fi.Size()
		}
		names[id] = append(names[id], p)
		nlinks[id] = nlink
	}
	for id, ns := range names {
		if nlinks[id] != uint64(len(ns)) {
			t.Errorf("inode %v has %d links and %d names in the archive: %v", id, nlinks[id], len(ns), ns)
		}
	}
	return len(names), bytes
}

// checkLinked checks that in a Maildir archive every folder holding a
// message has a file of its own for it, in its own cur/, and that the
// files of the same bytes are one inode with as many links; it returns
// the files by SHA-256.
func checkLinked(t *testing.T, a *formats.Archive) map[string][]maildirFile {
	t.Helper()
	snaps, _ := a.Snapshots()
	st, err := formats.Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	bySum := map[string][]maildirFile{}
	for _, f := range presentFiles(t, a) {
		if want := formats.FoldersDir + "/" + st.Folders[f.folder].Dir + "/cur"; path.Dir(f.msg.Seg) != want {
			t.Errorf("%s %s is recorded at %s, want a file in %s", f.folder, f.msg.Key, f.msg.Seg, want)
		}
		bySum[f.msg.SHA256] = append(bySum[f.msg.SHA256], f)
	}
	for sum, fs := range bySum {
		paths := map[string]bool{}
		for _, f := range fs {
			paths[f.path] = true
			if f.id != fs[0].id {
				t.Errorf("message %s: %s and %s are not one file (inodes %v, %v)", sum[:12], f.path, fs[0].path, f.id, fs[0].id)
			}
		}
		if fs[0].nlink != uint64(len(paths)) {
			t.Errorf("message %s: %d links, want %d (one per folder holding it)", sum[:12], fs[0].nlink, len(paths))
		}
	}
	return bySum
}

// TestMaildirLinksAcrossFolders: in a Maildir archive, a message that
// several folders hold (Gmail's labels and All Mail) is stored once: each
// folder has its own file for it in its own cur/, and those files are one
// inode (hard links). Every folder records the message, the bytes restore
// exactly from each, verify passes, and the bytes stored (the run's, the
// snapshot's) count each message once. A label added later links the
// stored file again and stores nothing.
func TestMaildirLinksAcrossFolders(t *testing.T) {
	for _, o := range linkingStorages(t) {
		for _, tc := range []struct {
			conns      int
			checkpoint time.Duration
		}{{1, 0}, {4, 0}, {4, time.Nanosecond}} {
			t.Run(fmt.Sprintf("%s,conns=%d,checkpoint=%v", o.Compression, tc.conns, tc.checkpoint), func(t *testing.T) {
				a := newArchiveWith(t, o)
				src, msgs := gmailSource(30)
				res, _, _ := runGmail(t, a, src, tc.conns, tc.checkpoint)
				var want int64
				for _, m := range msgs {
					want += int64(len(m))
				}
				if res.Stored != len(msgs) || res.Bytes != want {
					t.Errorf("stored %d messages of %d bytes, want %d of %d (each once)", res.Stored, res.Bytes, len(msgs), want)
				}
				checkArchive(t, a, src)
				bySum := checkLinked(t, a)
				if len(bySum) != len(msgs) {
					t.Errorf("%d distinct messages in the archive, want %d", len(bySum), len(msgs))
				}
				// Message 2 is in INBOX, Family and All Mail.
				if fs := bySum[testSum(msgs[2])]; len(fs) != 3 || fs[0].nlink != 3 || !os.SameFile(statOf(t, fs[0].path), statOf(t, fs[2].path)) {
					t.Errorf("message 2: %d files, %d links; want 3 folders, one inode", len(fs), fs[0].nlink)
				}
				files := 0
				for _, fs := range bySum {
					files += len(fs)
				}
				if files != res.Added {
					t.Errorf("%d message files, want %d (a file per message in each folder)", files, res.Added)
				}
				if inodes, _ := diskLinks(t, a); inodes != len(msgs) {
					t.Errorf("%d inodes on disk, want %d", inodes, len(msgs))
				}
				heads, err := a.Headers()
				if err != nil {
					t.Fatal(err)
				}
				stored, err := a.HeaderStoredBytes(heads)
				if err != nil {
					t.Fatal(err)
				}
				var total int64
				for _, b := range stored {
					total += b
				}
				if total != want {
					t.Errorf("the snapshots stored %d bytes, want %d (each message once)", total, want)
				}

				// A label added on the server later: recorded, linked,
				// nothing stored.
				src.folders["Work"].add(msgs[0], `\Seen`)
				res, _, _ = runGmail(t, a, src, tc.conns, tc.checkpoint)
				if res.Added != 1 || res.Stored != 0 || res.Bytes != 0 {
					t.Errorf("after labelling a message: added %d, stored %d (%d bytes); want 1, 0, 0", res.Added, res.Stored, res.Bytes)
				}
				checkArchive(t, a, src)
				if fs := checkLinked(t, a)[testSum(msgs[0])]; len(fs) != 3 {
					t.Errorf("message 0 has %d files, want 3 (INBOX, Work, All Mail)", len(fs))
				}
				if inodes, _ := diskLinks(t, a); inodes != len(msgs) {
					t.Errorf("%d inodes on disk after the second run, want %d", inodes, len(msgs))
				}
			})
		}
	}
}

func statOf(t *testing.T, p string) fs.FileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi
}

// TestMaildirLinksInFolder: the same bytes twice in one folder (both on
// the source) are two files of a Maildir archive, one inode.
func TestMaildirLinksInFolder(t *testing.T) {
	for _, o := range linkingStorages(t) {
		t.Run(o.Compression, func(t *testing.T) {
			a := newArchiveWith(t, o)
			src := newMemSource()
			in := src.folder("INBOX", 1)
			body := "Subject: twice\r\n\r\nthe same bytes twice\r\n"
			in.add(body, `\Seen`)
			in.add("Subject: other\r\n\r\nother\r\n")
			in.add(body, `\Flagged`)
			res := mustRun(t, a, src)
			if res.Stored != 2 || res.Added != 3 {
				t.Errorf("stored %d, added %d; want 2, 3", res.Stored, res.Added)
			}
			checkArchive(t, a, src)
			fs := checkLinked(t, a)[testSum(body)]
			if len(fs) != 2 || fs[0].path == fs[1].path {
				t.Fatalf("files of the message twice: %+v, want two names", fs)
			}
			// Each name has its own flags.
			names := []string{filepath.Base(fs[0].path), filepath.Base(fs[1].path)}
			sort.Strings(names)
			if names[0][len(names[0])-1] != 'S' || names[1][len(names[1])-1] != 'F' {
				t.Errorf("names %v, want one ending in S (seen), one in F (flagged)", names)
			}
		})
	}
}

// TestAccountDedupLinkLookup: with a storage that links, a folder never
// defers: bytes another writer claimed are found once that writer ended
// the record (lookup waits the moment until then), a copy this run
// committed is found whether a checkpoint holds it or not, and bytes
// whose claim ended without a copy are claimed anew.
func TestAccountDedupLinkLookup(t *testing.T) {
	d := testDedup(t, false)
	d.link = true
	x, y := testJob("X", ""), testJob("Y", "")
	fx := &fetcher{job: x, out: &writer{}}
	fy := &fetcher{job: y, out: &writer{}}
	s1, s2 := testSum("one"), testSum("two")
	if _, st, err := d.lookup(s1, fx); err != nil || st != copyNone {
		t.Fatalf("first lookup: %v, %v; want copyNone (X claims)", st, err)
	}
	got := make(chan location, 1)
	go func() {
		l, st, err := d.lookup(s1, fy)
		if err != nil || st != copyHere {
			t.Errorf("lookup by Y: %v, %v; want copyHere", st, err)
		}
		got <- l
	}()
	select {
	case l := <-got:
		t.Fatalf("Y found %+v before X ended the record", l)
	case <-time.After(20 * time.Millisecond):
	}
	loc := location{seg: "folders/X/cur/00000001.a.0.0000001,S=3:2,", key: "1:1"}
	d.endedAt(fx.out, s1, loc)
	if l := <-got; l.seg != loc.seg {
		t.Errorf("Y links %q, want X's file %q", l.seg, loc.seg)
	}
	// Committed by X, in no checkpoint: Y links it all the same.
	if err := d.committed(x, writerCommit{w: fx.out, hashes: map[string]location{s1: loc}}); err != nil {
		t.Fatal(err)
	}
	if l, st, err := d.lookup(s1, fy); err != nil || st != copyHere || l.seg != loc.seg {
		t.Errorf("lookup of a committed copy: %+v, %v, %v; want copyHere at X's file", l, st, err)
	}
	// A claim that ends without a copy: the bytes are claimed anew.
	if _, st, _ := d.lookup(s2, fx); st != copyNone {
		t.Fatalf("lookup of s2 by X: %v", st)
	}
	go func() { time.Sleep(10 * time.Millisecond); d.releaseOne(fx.out, s2) }()
	if _, st, err := d.lookup(s2, fy); err != nil || st != copyNone || d.claims[s2] != fy.out {
		t.Errorf("after X's claim ended without a copy: %v, %v; want copyNone, claimed by Y", st, err)
	}
}
