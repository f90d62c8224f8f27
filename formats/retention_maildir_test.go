package formats

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestMaildirPruneReadsNoFolderNames: prune of a Maildir archive finds a
// removed message's file by its recorded name or the name its flags give,
// and a file renamed since (a later flag change) by one pass over its
// folder's directory, without a map of every name of the folder (about
// 100 MB at 1,000,000 files); both kinds are removed, the others stay.
func TestMaildirPruneReadsNoFolderNames(t *testing.T) {
	l := newLinkArchive(t, CompressNone)
	var ss []stored
	for i := 0; i < 4; i++ {
		s, err := l.write("A", "aaaaaaaa", i, []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i)), linkDate, []string{`\Seen`}, nil)
		if err != nil {
			t.Fatal(err)
		}
		ss = append(ss, s)
	}
	first := &Snapshot{ID: "aaaaaaaa", Seq: 1, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Folders: []Folder{{Name: "A", Dir: FolderDir("A"), Status: FolderOK}}, Changes: []Change{{Folder: "A"}}}
	for _, x := range ss {
		if _, err := x.w.Commit(); err != nil {
			t.Fatal(err)
		}
		first.Changes[0].Added = append(first.Changes[0].Added, x.msg)
	}
	if err := l.a.Commit(first); err != nil {
		t.Fatal(err)
	}
	l.last = first
	// Message 1's file renamed as a flag change renames it (its manifest
	// entry keeps the old name and flags).
	old, _ := l.file(ss[1].msg.Seg)
	renamed := strings.TrimSuffix(old, path.Ext(old)) + ":2,FS"
	if i := strings.LastIndex(old, ":2,"); i >= 0 {
		renamed = old[:i] + ":2,FS"
	}
	if err := os.Rename(old, renamed); err != nil {
		t.Fatal(err)
	}
	// Messages 0 and 1 gone, and forgotten with the snapshot that had them.
	s := &Snapshot{ID: "bbbbbbbb", Seq: l.last.Seq + 1, Parent: l.last.ID, Source: "imap://test", Protocol: "imap", Status: StatusComplete,
		Changes: []Change{{Folder: "A", Gone: []string{ss[0].msg.Key, ss[1].msg.Key}}}}
	if err := l.a.Commit(s); err != nil {
		t.Fatal(err)
	}
	if _, err := l.a.Forget(Policy{Last: 1}, time.UTC, false); err != nil {
		t.Fatal(err)
	}
	a2, err := Open(l.a.Root)
	if err != nil {
		t.Fatal(err)
	}
	res, err := a2.Prune(PruneOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Deleted != 2 {
		t.Errorf("prune deleted %d files, want 2 (one by its recorded name, one renamed since)", res.Deleted)
	}
	for i, want := range []bool{false, false, true, true} {
		matches, _ := filepath.Glob(filepath.Join(a2.Root, filepath.FromSlash(path.Dir(ss[i].msg.Seg)), MaildirBase(path.Base(ss[i].msg.Seg))+"*"))
		if (len(matches) == 1) != want {
			t.Errorf("message %d: files %v after prune, want kept %v", i, matches, want)
		}
	}
	if ms, ok := a2.store.(*maildirStorage); ok && len(ms.files.dirs) != 0 {
		t.Errorf("prune held the names of every file of %d folders", len(ms.files.dirs))
	}
}
