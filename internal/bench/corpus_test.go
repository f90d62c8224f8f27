package bench

import (
	"bytes"
	"crypto/sha256"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestWriteMaildir checks the generator on a small mailbox: the same seed
// gives the same files, every folder has its cur/new/tmp and holds mail,
// and the sizes in the file names are right.
func TestWriteMaildir(t *testing.T) {
	p := Profile{Name: "tiny", Messages: 60, Folders: 12, Large: 1}
	trees := make([]map[string][32]byte, 2)
	var st Stats
	for k := range trees {
		root := filepath.Join(t.TempDir(), "alice")
		var err error
		st, err = WriteMaildir(root, p, 7, -1, -1)
		if err != nil {
			t.Fatal(err)
		}
		trees[k] = map[string][32]byte{}
		err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, path)
			trees[k][rel] = sha256.Sum256(data)
			checkFile(t, rel, data)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range AllFolders[:p.Folders] {
			for _, sub := range []string{"cur", "new", "tmp"} {
				if fi, err := os.Stat(filepath.Join(folderDir(root, f), sub)); err != nil || !fi.IsDir() {
					t.Errorf("folder %q: no %s directory", f, sub)
				}
			}
			if st.PerFolder[f] == 0 {
				t.Errorf("folder %q holds no mail", f)
			}
		}
	}
	if len(trees[0]) != p.Messages || st.Messages != p.Messages || st.Large != 1 {
		t.Fatalf("%d files, stats %+v; want %d messages, 1 large", len(trees[0]), st, p.Messages)
	}
	for name, sum := range trees[0] {
		if trees[1][name] != sum {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}

	msgs := NewMessages(1, 9, IncrementalFolders)
	per := map[string]int{}
	for _, m := range msgs {
		per[m.Folder]++
		if bytes.Contains(bytes.ReplaceAll(m.Body, []byte("\r\n"), nil), []byte("\n")) {
			t.Errorf("new message in %q has a bare LF", m.Folder)
		}
	}
	if len(per) != 3 || per["INBOX"] != 3 {
		t.Errorf("new messages per folder: %v", per)
	}
	if bytes.Equal(NewMessages(2, 1, IncrementalFolders)[0].Body, msgs[0].Body) {
		t.Error("two rounds gave the same new message")
	}
}

var sizeRE = regexp.MustCompile(`,S=(\d+),W=(\d+):2,[DFRS]*$`)

func checkFile(t *testing.T, rel string, data []byte) {
	t.Helper()
	m := sizeRE.FindStringSubmatch(rel)
	if m == nil {
		t.Errorf("%s: unexpected file name", rel)
		return
	}
	s, _ := strconv.Atoi(m[1])
	w, _ := strconv.Atoi(m[2])
	if s != len(data) || w != len(data)+bytes.Count(data, []byte("\n")) || bytes.ContainsRune(data, '\r') {
		t.Errorf("%s: S=%d W=%d, file has %d bytes", rel, s, w, len(data))
	}
	if w < minSize || w > maxLargeSize+maxLargeSize/20 || (w > maxSize+maxSize/10 && w < minLargeSize) {
		t.Errorf("%s: size %d out of range", rel, w)
	}
}
