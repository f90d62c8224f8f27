package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/restore"
)

const (
	emlExt = ".eml"
	// emlTempPrefix starts the temporary files (hidden, never a folder:
	// folder levels never start with '.').
	emlTempPrefix = ".mailvault-"
	emlTempSuffix = ".tmp"
	// emlStaleTemp is the age (from the creation time in its name) after
	// which a temporary file left by a crash is removed.
	emlStaleTemp = time.Hour
)

// emlEscaper escapes folder levels for the .eml tree, portable to
// Windows. A level ending in ".eml" is reserved so that a folder's
// directory never has a message file's name.
var emlEscaper = localname.Escaper{Windows: true, Reserved: func(s string) bool {
	return strings.HasSuffix(strings.ToLower(s), emlExt)
}}

// EML is a restore target writing one .eml file per message in a
// directory per folder (see the package documentation).
type EML struct {
	root    string
	copier  bodyCopier
	cleaned map[string]bool // folder directories cleared of stale temporary files
	dirs    dirSyncer
}

var _ restore.Target = (*EML)(nil)

// NewEML returns an .eml target at root, creating root if needed.
func NewEML(root string) (*EML, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(root, dirPerm); err != nil {
		return nil, err
	}
	return &EML{root: root, cleaned: map[string]bool{}}, nil
}

// Delimiter implements restore.Target.
func (e *EML) Delimiter() string { return Delimiter }

func (e *EML) dir(folder string) (string, error) {
	l := levels(folder)
	esc := make([]string, len(l))
	for i, s := range l {
		esc[i] = emlEscaper.Escape(s)
	}
	return join(e.root, esc...)
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
			name := prefix + localname.Unescape(n)
			out = append(out, restore.TargetFolder{Name: name})
			if err := walk(filepath.Join(dir, n), name+Delimiter); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(e.root, ""); err != nil {
		return nil, err
	}
	return out, nil
}

// CreateFolder implements restore.Target: the folder's directory and its
// parents.
func (e *EML) CreateFolder(ctx context.Context, name string) error {
	l := levels(name)
	for i := range l {
		d, err := e.dir(strings.Join(l[:i+1], Delimiter))
		if err != nil {
			return err
		}
		if _, err := mkdir(d); err != nil {
			return err
		}
	}
	return nil
}

// Index implements restore.Target: Message-ID and size of every .eml
// file of the folder, and the SHA-256 of those without a Message-ID.
func (e *EML) Index(ctx context.Context, folder string) (*restore.Index, error) {
	idx := restore.NewIndex()
	d, err := e.dir(folder)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(d)
	if errors.Is(err, fs.ErrNotExist) {
		return idx, nil
	}
	if err != nil {
		return nil, err
	}
	for _, ent := range ents {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n := ent.Name()
		if ent.IsDir() || strings.HasPrefix(n, ".") || !strings.HasSuffix(strings.ToLower(n), emlExt) {
			continue
		}
		if err := indexFile(idx, filepath.Join(d, n)); err != nil {
			return nil, err
		}
	}
	return idx, nil
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
// never replaced: if it holds the same bytes the message is already
// there, else the next suffix is tried).
func (e *EML) Append(ctx context.Context, folder string, m *restore.Message, body io.Reader) (restore.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d, err := e.dir(folder)
	if err != nil {
		return nil, err
	}
	if !isDir(d) {
		return tryCreate(folder)
	}
	if !e.cleaned[d] {
		e.cleaned[d] = true
		removeStaleTemps(d)
	}
	return answer(e.append(d, m, body))
}

func (e *EML) append(d string, m *restore.Message, body io.Reader) (err error) {
	// The creation time is in the name: the file's own mtime is set to
	// INTERNALDATE before it is published.
	tmp, err := createTemp(d, emlTempPrefix+strconv.FormatInt(time.Now().Unix(), 10)+"-", emlTempSuffix)
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
	for n := 1; n <= 1000; n++ {
		dst := filepath.Join(d, emlName(m.InternalDate, sum, n))
		err = publish(tmpPath, dst)
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		same, serr := sameContent(dst, m.Size, sum)
		if serr != nil {
			return serr
		}
		if same {
			// Already present (a previous run, or an identical
			// message with the same INTERNALDATE).
			return os.Remove(tmpPath)
		}
	}
	if err != nil {
		return err
	}
	return e.dirs.mark(d)
}

// removeStaleTemps removes temporary files a crashed run left in dir.
func removeStaleTemps(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, ent := range ents {
		n := ent.Name()
		if !strings.HasPrefix(n, emlTempPrefix) || !strings.HasSuffix(n, emlTempSuffix) || !ent.Type().IsRegular() {
			continue
		}
		created, _, _ := strings.Cut(strings.TrimPrefix(n, emlTempPrefix), "-")
		if sec, err := strconv.ParseInt(created, 10, 64); err == nil && time.Since(time.Unix(sec, 0)) > emlStaleTemp {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// Close implements restore.Target: it makes the last directory entries
// durable.
func (e *EML) Close() error { return e.dirs.flush() }
