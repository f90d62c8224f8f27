package localstore_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/localsrc"
	"github.com/mailvault/mailvault/internal/localstore"
	"github.com/mailvault/mailvault/restore"
	"github.com/mailvault/mailvault/restore/targettest"
)

// The restore.Target conformance suite (restore/targettest) on each
// local layout. What a tree holds is read with internal/localsrc (an
// independent Maildir and mbox reader) or, for .eml files, from the files
// themselves. Every tree lives in a directory of its own, and nothing
// may appear beside it (no hostile name escapes the root).

func TestTargetSuiteMaildir(t *testing.T) {
	runLocal(t, func(root string) (restore.Target, error) { return localstore.NewMaildir(root) },
		targettest.Target{Flags: true}, readMaildir)
}

func TestTargetSuiteMaildirUTF8(t *testing.T) {
	runLocal(t, func(root string) (restore.Target, error) { return localstore.NewMaildirUTF8(root) },
		targettest.Target{Flags: true}, readMaildir)
}

func TestTargetSuiteMbox(t *testing.T) {
	runLocal(t, func(root string) (restore.Target, error) { return localstore.NewMbox(root) }, targettest.Target{}, readMbox)
}

// An .eml tree holds a file per copy: a second copy of the same bytes and
// date gets the next free name (eml.go).
func TestTargetSuiteEML(t *testing.T) {
	runLocal(t, func(root string) (restore.Target, error) { return localstore.NewEML(root) },
		targettest.Target{}, readEML)
}

// runLocal runs the suite on a new tree: tg says what the layout keeps,
// open and read get the tree's root.
func runLocal(t *testing.T, open func(root string) (restore.Target, error), tg targettest.Target, read func(t *testing.T, root string) map[string][]targettest.Stored) {
	parent := t.TempDir()
	root := filepath.Join(parent, "target")
	tg.Open = func(context.Context) (restore.Target, error) { return open(root) }
	tg.Contents = func(t *testing.T) map[string][]targettest.Stored { return read(t, root) }
	targettest.Run(t, tg)
	ents, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "target" {
			t.Errorf("%s appeared beside the target's root", e.Name())
		}
	}
}

func readMaildir(t *testing.T, root string) map[string][]targettest.Stored {
	t.Helper()
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return map[string][]targettest.Stored{}
	}
	src, err := localsrc.NewMaildir(root)
	if err != nil {
		t.Fatalf("read the Maildir tree: %v", err)
	}
	return readSource(t, src)
}

func readMbox(t *testing.T, root string) map[string][]targettest.Stored {
	t.Helper()
	if _, err := os.Stat(root); errors.Is(err, fs.ErrNotExist) {
		return map[string][]targettest.Stored{}
	}
	src, err := localsrc.NewMbox(root)
	if err != nil {
		if strings.Contains(err.Error(), "no mbox files") {
			return map[string][]targettest.Stored{}
		}
		t.Fatalf("read the mbox tree: %v", err)
	}
	return readSource(t, src)
}

// readSource reads every selectable folder of src.
func readSource(t *testing.T, src backup.Source) map[string][]targettest.Stored {
	t.Helper()
	ctx := context.Background()
	infos, err := src.Folders(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]targettest.Stored{}
	for _, fi := range infos {
		if fi.NoSelect {
			continue
		}
		if _, err := src.Examine(ctx, fi.Name); err != nil {
			t.Fatalf("examine %q: %v", fi.Name, err)
		}
		var keys []string
		flags := map[string][]string{}
		if err := src.List(ctx, func(k string, fl []string) error {
			keys, flags[k] = append(keys, k), fl
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		ms := []targettest.Stored{}
		err := src.Fetch(ctx, keys, func(m *backup.Message) error {
			b, err := io.ReadAll(m.Body)
			ms = append(ms, targettest.Stored{Body: b, Flags: flags[m.Key], InternalDate: m.InternalDate})
			return err
		})
		if err != nil {
			t.Fatalf("fetch %q: %v", fi.Name, err)
		}
		out[strings.ReplaceAll(fi.Name, fi.Delimiter, "/")] = ms
	}
	return out
}

// readEML reads the .eml files under root: the folder is the directory,
// INTERNALDATE the modification time. A directory holding no .eml file
// is a folder only when the target created it (any directory under root
// is one).
func readEML(t *testing.T, root string) map[string][]targettest.Stored {
	t.Helper()
	out := map[string][]targettest.Stored{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel != "." {
				if _, ok := out[filepath.ToSlash(rel)]; !ok {
					out[filepath.ToSlash(rel)] = []targettest.Stored{}
				}
			}
			return nil
		}
		if !strings.HasSuffix(p, ".eml") {
			return nil
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		folder := filepath.ToSlash(filepath.Dir(rel))
		if folder == "." {
			folder = "INBOX"
		}
		out[folder] = append(out[folder], targettest.Stored{Body: body, InternalDate: info.ModTime()})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
