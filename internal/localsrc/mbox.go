package localsrc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailvault/mailvault/backup"
)

// mboxExt is the extension internal/localstore gives mbox files.
const mboxExt = ".mbox"

// sbdExt is the extension of Thunderbird's subfolder directories.
const sbdExt = ".sbd"

// Mbox is a backup Source reading an mbox file or a tree of them (see the
// package documentation).
type Mbox struct {
	// Zone is the time zone of From-line dates that carry none; nil means
	// UTC. Thunderbird writes its From lines in the local time of the
	// machine that received the mail: set Zone to that machine's zone
	// (time.Local when backing up on it) for exact INTERNALDATEs.
	Zone *time.Location

	root    string
	folders map[string]string // name -> file
	infos   []backup.FolderInfo
	cur     *mboxFolder
}

var _ backup.Source = (*Mbox)(nil)

// mboxFolder is the examined folder.
type mboxFolder struct {
	name  string
	path  string
	msgs  []mboxMsg
	byKey map[string]int
	fresh bool // scanned by Examine and not listed yet
}

// NewMbox returns a Source for path: one mbox file (one folder, named
// after the file) or a directory tree of mbox files.
func NewMbox(path string) (*Mbox, error) {
	root, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("localsrc: %s does not exist", path)
	}
	if err != nil {
		return nil, fmt.Errorf("localsrc: %w", err)
	}
	mb := &Mbox{root: root, folders: map[string]string{}}
	switch {
	case st.Mode().IsRegular():
		ok, _, err := isMboxFile(root)
		if err != nil {
			return nil, fmt.Errorf("localsrc: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("localsrc: %s: %w", path, errNotMbox)
		}
		n := filepath.Base(root)
		if strings.HasSuffix(n, mboxExt) && len(n) > len(mboxExt) {
			n = unescapeLevel(strings.TrimSuffix(n, mboxExt))
		}
		mb.folders[inboxName(n)] = root
	case st.IsDir():
		if err := mb.walk(root, ""); err != nil {
			return nil, fmt.Errorf("localsrc: %w", err)
		}
		if len(mb.folders) == 0 {
			return nil, fmt.Errorf("localsrc: no mbox files under %s", path)
		}
	default:
		return nil, fmt.Errorf("localsrc: %s is neither a file nor a directory", path)
	}
	mb.infos = folderList(mb.folders)
	return mb, nil
}

// walk adds the mbox files below dir to the folder list, as children of
// the folder parent ("" at the top).
func (mb *Mbox) walk(dir, parent string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	child := func(level string) string {
		if parent == "" {
			return inboxName(level)
		}
		return parent + Delimiter + level
	}
	for _, e := range ents {
		n := e.Name()
		if strings.HasPrefix(n, ".") {
			continue
		}
		p := filepath.Join(dir, n)
		typ := e.Type()
		if typ&fs.ModeSymlink != 0 {
			// A link to a file is followed; links to directories are
			// not (they could make a cycle).
			st, err := os.Stat(p)
			if err != nil || st.IsDir() {
				continue
			}
			typ = st.Mode().Type()
		}
		switch {
		case typ.IsDir():
			name := n
			switch {
			case strings.HasSuffix(n, sbdExt) && len(n) > len(sbdExt):
				name = strings.TrimSuffix(n, sbdExt) // Thunderbird: Folder.sbd
			case strings.HasSuffix(n, ".mozmsgs"):
				continue // Thunderbird's desktop search copies
			default:
				name = unescapeLevel(n) // internal/localstore: A/ next to A.mbox
			}
			if err := mb.walk(p, child(name)); err != nil {
				return err
			}
		case typ.IsRegular():
			if strings.HasSuffix(strings.ToLower(n), ".msf") {
				continue // Thunderbird's index
			}
			ok, empty, err := isMboxFile(p)
			if err != nil && !errors.Is(err, fs.ErrPermission) {
				return err
			}
			// An unreadable file is listed: Examine reports the error,
			// and the other folders are still backed up.
			if err == nil && (!ok || empty && ignoredEmpty(n)) {
				continue
			}
			name := child(n)
			if strings.HasSuffix(n, mboxExt) && len(n) > len(mboxExt) {
				name = child(unescapeLevel(strings.TrimSuffix(n, mboxExt)))
				if _, taken := mb.folders[name]; taken {
					name = child(n) // Thunderbird's A next to an A.mbox
				}
			}
			if other, taken := mb.folders[name]; taken {
				return fmt.Errorf("%s and %s are both folder %q", other, p, name)
			}
			mb.folders[name] = p
		}
	}
	return nil
}

// ignoredEmpty reports empty files of a mail tree that are not empty mbox
// folders: lock files and the like (an empty file is otherwise an empty
// folder; a non-empty one is an mbox file when it starts with "From ").
func ignoredEmpty(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".dat", ".lock", ".json", ".sqlite", ".sqlite-journal", ".sqlite-wal", ".log", ".bak", ".tmp", ".html", ".js", ".txt":
		return true
	}
	return strings.EqualFold(name, "lock")
}

// isMboxFile reports whether the file starts with "From " or is empty.
func isMboxFile(path string) (ok, empty bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return false, false, err
	}
	defer f.Close()
	var head [len(fromPrefix)]byte
	n, err := io.ReadFull(f, head[:])
	if n == 0 && err == io.EOF {
		return true, true, nil
	}
	if err != nil && err != io.ErrUnexpectedEOF {
		return false, false, pathError(path, err)
	}
	return string(head[:n]) == fromPrefix, false, nil
}

// Folders implements backup.Source. The tree is read by NewMbox.
func (mb *Mbox) Folders(ctx context.Context) ([]backup.FolderInfo, error) {
	return folderInfos(ctx, mb.infos)
}

// Examine implements backup.Source: it reads the folder's file once,
// finding, hashing and counting its messages. UIDVALIDITY is 0: the keys
// do not depend on one.
func (mb *Mbox) Examine(ctx context.Context, name string) (backup.FolderStatus, error) {
	mb.cur = nil
	path, ok := mb.folders[name]
	if !ok {
		return backup.FolderStatus{}, fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	f := &mboxFolder{name: name, path: path}
	if err := mb.scan(ctx, f); err != nil {
		return backup.FolderStatus{}, err
	}
	f.fresh = true
	mb.cur = f
	return backup.FolderStatus{Messages: uint32(len(f.msgs))}, nil
}

func (mb *Mbox) scan(ctx context.Context, f *mboxFolder) error {
	file, err := os.Open(f.path)
	if err != nil {
		return pathError(f.path, err)
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return pathError(f.path, err)
	}
	zone := mb.Zone
	if zone == nil {
		zone = time.UTC
	}
	msgs, err := scanMbox(ctx, file, zone, st.ModTime())
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return pathError(f.path, err)
	}
	f.msgs = msgs
	f.byKey = make(map[string]int, len(msgs))
	for i, m := range msgs {
		f.byKey[m.key] = i
	}
	return nil
}

// List implements backup.Source. The first List after Examine reports
// what Examine read; a later one reads the file again.
func (mb *Mbox) List(ctx context.Context, fn func(key string, flags []string) error) error {
	f := mb.cur
	if f == nil {
		return errors.New("localsrc: no folder examined")
	}
	if !f.fresh {
		if err := mb.scan(ctx, f); err != nil {
			return err
		}
	}
	f.fresh = false
	for i := range f.msgs {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(f.msgs[i].key, slices.Clone(f.msgs[i].flags)); err != nil {
			return err
		}
	}
	return nil
}

// Fetch implements backup.Source: each message is read again from its
// place in the file, unquoted on the fly; a message whose bytes are no
// longer the ones listed (the file was rewritten) fails its read.
func (mb *Mbox) Fetch(ctx context.Context, keys []string, fn func(m *backup.Message) error) error {
	f := mb.cur
	if f == nil {
		return errors.New("localsrc: no folder examined")
	}
	file, err := os.Open(f.path)
	if err != nil {
		return pathError(f.path, err)
	}
	defer file.Close()
	br := bufio.NewReaderSize(nil, 64<<10)
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		i, ok := f.byKey[key]
		if !ok {
			continue
		}
		m := &f.msgs[i]
		br.Reset(io.NewSectionReader(file, m.start, m.end-m.start))
		body := &verifier{r: &unquoter{br: br, atStart: true}, h: sha256.New(), want: m, path: f.path}
		err := fn(&backup.Message{
			Key:          m.key,
			Flags:        slices.Clone(m.flags),
			InternalDate: m.date,
			Size:         m.size,
			Body:         ctxReader{ctx: ctx, r: body},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Close implements backup.Source. It holds no file open; the Source can
// be used again.
func (mb *Mbox) Close() error {
	mb.cur = nil
	return nil
}
