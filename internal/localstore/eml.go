package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/restore"
)

const emlExt = ".eml"

// emlEscaper escapes folder levels for the .eml tree, portable to
// Windows. A level ending in ".eml" is reserved so that a folder's
// directory never has a message file's name.
var emlEscaper = localname.Escaper{Windows: true, Reserved: func(s string) bool {
	return strings.HasSuffix(strings.ToLower(s), emlExt)
}}

// EML is a restore target writing one .eml file per message in a
// directory per folder (see the package documentation).
type EML struct {
	root   string
	lay    layout
	copier bodyCopier
	dirs   dirSyncer
	wl     writeLock
	// Hook, if set, is called with "target-temp-written" once a message's
	// temporary file is complete, before it gets its name (crash tests).
	Hook func(point string)
}

var (
	_ restore.Target         = (*EML)(nil)
	_ restore.Preparer       = (*EML)(nil)
	_ restore.FolderNamer    = (*EML)(nil)
	_ restore.AtomicAppender = (*EML)(nil)
)

// NewEML returns an .eml target at root, created when the target first
// writes (never on a dry run).
func NewEML(root string) (*EML, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &EML{root: root, lay: layout{esc: emlEscaper, max: maxName}}, nil
}

// Delimiter implements restore.Target.
func (e *EML) Delimiter() string { return Delimiter }

func (e *EML) dir(folder string) (string, error) {
	l := levels(folder)
	esc := make([]string, len(l))
	for i, s := range l {
		esc[i], _ = e.lay.name(s)
	}
	return join(e.root, esc...)
}

// StoredAs implements restore.FolderNamer: the name Folders lists a
// folder under, which differs from its name when a level was too long
// for a file name.
func (e *EML) StoredAs(folder string) (string, bool) { return storedAs(e.lay, folder) }

// storedAs is StoredAs for a tree where every level is a name of lay.
func storedAs(lay layout, folder string) (string, bool) {
	l := levels(folder)
	changed := false
	for i, s := range l {
		if name, short := lay.name(s); short {
			l[i], changed = lay.decode(name), true
		}
	}
	return strings.Join(l, Delimiter), changed
}

// Prepare implements restore.Preparer: it takes the target's lock and
// removes the temporary files killed restores left in the tree.
func (e *EML) Prepare(ctx context.Context) error {
	return e.wl.prepare(e.root, func() error { return os.MkdirAll(e.root, dirPerm) }, func() {
		walkDirs(e.root, func(n string) bool { return strings.HasPrefix(n, ".") }, func(dir string) {
			removeTemps(dir, isTemp)
		})
	})
}

// Folders implements restore.Target: every directory below root.
func (e *EML) Folders(ctx context.Context) ([]restore.TargetFolder, error) {
	var out []restore.TargetFolder
	var walk func(dir, prefix string) error
	walk = func(dir, prefix string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, ent := range ents {
			n := ent.Name()
			if !ent.IsDir() || strings.HasPrefix(n, ".") {
				continue
			}
			name := prefix + e.lay.decode(n)
			out = append(out, restore.TargetFolder{Name: name})
			if err := walk(filepath.Join(dir, n), name+Delimiter); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(e.root, ""); err != nil && !(errors.Is(err, fs.ErrNotExist) && !isDir(e.root)) {
		return nil, err
	}
	return out, nil
}

// CreateFolder implements restore.Target: the folder's directory and its
// parents.
func (e *EML) CreateFolder(ctx context.Context, name string) error {
	if err := e.Prepare(ctx); err != nil {
		return err
	}
	l := levels(name)
	for i := range l {
		d, err := e.dir(strings.Join(l[:i+1], Delimiter))
		if err != nil {
			return refused(err)
		}
		if _, err := mkdir(d); err != nil {
			return refused(err)
		}
	}
	return nil
}

// Index implements restore.Target: Message-ID and size of every .eml
// file of the folder, and the SHA-256 of those without a Message-ID.
func (e *EML) Index(ctx context.Context, folder string) (*restore.Index, error) {
	d, err := e.dir(folder)
	if err != nil {
		return nil, err
	}
	idx := restore.NewIndex()
	err = eachDirEntry(ctx, d, func(ent fs.DirEntry) error {
		n := ent.Name()
		if ent.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(strings.ToLower(n), emlExt) {
			return nil
		}
		return indexFile(idx, filepath.Join(d, n))
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return idx.Built(err)
}

// emlName is the file name of a message: INTERNALDATE in UTC, the first
// 12 hex digits of its SHA-256 and, when another file holds that name,
// "-2", "-3", ….
func emlName(date time.Time, sum string, n int) string {
	s := date.UTC().Format("20060102-150405") + "-" + sum[:12]
	if n > 1 {
		s += fmt.Sprintf("-%d", n)
	}
	return s + emlExt
}

// Append implements restore.Target: the message is written to a hidden
// temporary file in the folder's directory, synced, given INTERNALDATE as
// its modification time and hard-linked to its name (an existing file is
// never replaced: the next suffix is tried, so that a second copy of a
// message the archive holds twice is a second file).
func (e *EML) Append(ctx context.Context, folder string, m *restore.Message, body io.Reader) (restore.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := e.Prepare(ctx); err != nil {
		return nil, err
	}
	d, err := e.dir(folder)
	if err != nil {
		return nil, err
	}
	if !isDir(d) {
		return tryCreate(folder)
	}
	return answer(e.append(d, m, body))
}

func (e *EML) append(d string, m *restore.Message, body io.Reader) (err error) {
	tmp, err := createTemp(d, tempPrefix, tempSuffix)
	if err != nil {
		return err
	}
	tmpPath := tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
		}
	}()
	sum, err := e.copier.fillTemp(tmp, body, m)
	if err != nil {
		return err
	}
	if e.Hook != nil {
		e.Hook("target-temp-written")
	}
	for n := 1; n <= 1000; n++ {
		dst := filepath.Join(d, emlName(m.InternalDate, sum, n))
		err = publish(tmpPath, dst)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		// Taken, by another message or by a copy of this one: the
		// engine appends only copies the folder does not hold yet
		// (its Index counts them), so this is one more.
	}
	if err != nil {
		return err
	}
	return e.dirs.mark(d)
}

// Close implements restore.Target: it makes the last directory entries
// durable and releases the target's lock.
func (e *EML) Close() error {
	err := e.dirs.flush()
	if lerr := e.wl.release(); err == nil {
		err = lerr
	}
	return err
}

// AppendsAtomically implements restore.AtomicAppender: a message whose
// body cannot be read leaves nothing behind.
func (e *EML) AppendsAtomically() bool { return true }
