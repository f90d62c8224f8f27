package bench

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

var scaleNameRE = regexp.MustCompile(`^(\d+)\.M(\d+)P1\.scale,S=(\d+),W=(\d+):2,[DFRS]*$`)

// scaleTree reads the Maildir tree under root: per file (relative path)
// the SHA-256 of its bytes, checking each file's name against its bytes
// and its mtime.
func scaleTree(t *testing.T, root string) map[string][32]byte {
	t.Helper()
	tree := map[string][32]byte{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		tree[rel] = sha256.Sum256(data)
		m := scaleNameRE.FindStringSubmatch(d.Name())
		if m == nil || filepath.Base(filepath.Dir(path)) != "cur" {
			t.Errorf("%s: not a scale message file in cur/", rel)
			return nil
		}
		s, _ := strconv.Atoi(m[3])
		w, _ := strconv.Atoi(m[4])
		if s != len(data) || w != len(data)+bytes.Count(data, []byte("\n")) || bytes.ContainsRune(data, '\r') {
			t.Errorf("%s: S=%d W=%d, file has %d bytes", rel, s, w, len(data))
		}
		if w < scaleMinSize || w > scaleMaxSize {
			t.Errorf("%s: %d bytes, want 1–3 KB", rel, w)
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if secs, _ := strconv.ParseInt(m[1], 10, 64); fi.ModTime().Unix() != secs {
			t.Errorf("%s: mtime %v, want the date %d of its name", rel, fi.ModTime(), secs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// TestWriteScale checks the scale generator: the same options give the
// same files whatever the number of workers, about 90 % of the messages go
// to the inbox and every other folder gets some, sizes are 1–3 KB with
// right S= and W= and mtimes, ScaleMessage returns the bytes WriteScale
// wrote, a second batch adds new messages without clashing, and writing a
// batch twice is an error.
func TestWriteScale(t *testing.T) {
	const n = 2000
	o := ScaleOptions{Seed: 7, Messages: n}
	var trees [2]map[string][32]byte
	var stats [2]ScaleStats
	roots := [2]string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	for k, workers := range []int{1, 7} {
		o.Workers = workers
		st, err := WriteScale(roots[k], o)
		if err != nil {
			t.Fatalf("WriteScale(workers=%d): %v", workers, err)
		}
		stats[k] = st
		trees[k] = scaleTree(t, roots[k])
	}
	if len(trees[0]) != n || stats[0].Messages != n || stats[1].Messages != n {
		t.Fatalf("%d files, stats %d and %d messages; want %d", len(trees[0]), stats[0].Messages, stats[1].Messages, n)
	}
	for name, sum := range trees[0] {
		if trees[1][name] != sum {
			t.Errorf("%s differs between 1 and 7 workers", name)
		}
	}
	if stats[0].Bytes != stats[1].Bytes {
		t.Errorf("bytes: %d with 1 worker, %d with 7", stats[0].Bytes, stats[1].Bytes)
	}
	if share := float64(stats[0].PerFolder["INBOX"]) / n; math.Abs(share-DefaultInboxShare) > 0.02 {
		t.Errorf("INBOX holds %.3f of the messages, want about %v", share, DefaultInboxShare)
	}
	for _, f := range ScaleFolders {
		if stats[0].PerFolder[f] == 0 {
			t.Errorf("folder %q holds no mail: %v", f, stats[0].PerFolder)
		}
		for _, sub := range []string{"cur", "new", "tmp"} {
			if fi, err := os.Stat(filepath.Join(folderDir(roots[0], f), sub)); err != nil || !fi.IsDir() {
				t.Errorf("folder %q: no %s directory", f, sub)
			}
		}
	}
	if mean := stats[0].Bytes / n; mean < 1800 || mean > 2300 {
		t.Errorf("mean size %d bytes, want about 2 KB", mean)
	}

	// ScaleMessage gives the bytes of the file, with CRLF.
	for _, i := range []int{0, 1, n / 2, n - 1} {
		m, err := ScaleMessage(o, i)
		if err != nil {
			t.Fatal(err)
		}
		lf := bytes.ReplaceAll(m.Body, []byte("\r\n"), []byte("\n"))
		found := false
		for _, sum := range trees[0] {
			if sum == sha256.Sum256(lf) {
				found = true
			}
		}
		if !found || bytes.Contains(lf, []byte("\r")) {
			t.Errorf("ScaleMessage(%d): no written file holds its bytes", i)
		}
		if !bytes.Contains(m.Body, []byte("\r\nMessage-ID: <s7."+strconv.Itoa(i)+"@bench.example.org>\r\n")) {
			t.Errorf("ScaleMessage(%d): no Message-ID with its index", i)
		}
	}

	// A second batch of new messages, all in the inbox.
	more := ScaleOptions{Seed: 7, First: n, Messages: n / 10, Folders: []string{"INBOX"}}
	st, err := WriteScale(roots[0], more)
	if err != nil {
		t.Fatalf("second batch: %v", err)
	}
	if st.Messages != n/10 || st.PerFolder["INBOX"] != n/10 || len(st.PerFolder) != 1 {
		t.Errorf("second batch: %+v, want %d messages in INBOX", st, n/10)
	}
	after := scaleTree(t, roots[0])
	if len(after) != n+n/10 {
		t.Errorf("after the second batch: %d files, want %d", len(after), n+n/10)
	}
	for name, sum := range trees[0] {
		if after[name] != sum {
			t.Errorf("%s changed by the second batch", name)
		}
	}

	// The same batch again finds its files there.
	if _, err := WriteScale(roots[0], more); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second batch written twice: %v, want an error wrapping fs.ErrExist", err)
	}
	for _, bad := range []ScaleOptions{
		{Messages: -1},
		{Messages: 1, InboxShare: 1.5},
		{Messages: 1, Folders: []string{}},
		{Messages: 1, Folders: []string{"a//b"}},
	} {
		if _, err := WriteScale(filepath.Join(t.TempDir(), "x"), bad); err == nil {
			t.Errorf("WriteScale(%+v): no error", bad)
		}
	}
}
