package localsrc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/localstore"
	"github.com/mailvault/mailvault/internal/mutf7"
)

// Maildir is a backup Source reading a Maildir or a tree of them (see the
// package documentation).
type Maildir struct {
	root     string
	plusplus bool              // Maildir++ (.A.B) rather than nested directories
	folders  map[string]string // name -> Maildir directory
	infos    []backup.FolderInfo
	cur      *maildirFolder
}

var _ backup.Source = (*Maildir)(nil)

// maildirFolder is the examined folder.
type maildirFolder struct {
	name     string
	dir      string
	keywords formats.MaildirKeywords
	msgs     []maildirMsg
	byKey    map[string]int
	fresh    bool
}

// maildirMsg is one message file: key is the unique part of its name.
type maildirMsg struct {
	key  string
	sub  string // "cur" or "new"
	file string
}

// NewMaildir returns a Source for the Maildir at path (INBOX) and the
// folders below it, in the Maildir++ layout (.A.B directories) when path
// holds any, else in the nested layout (A/B directories).
func NewMaildir(path string) (*Maildir, error) {
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
	if !st.IsDir() {
		return nil, fmt.Errorf("localsrc: %s is not a directory (a Maildir has cur/, new/ and tmp/)", path)
	}
	md := &Maildir{root: root, folders: map[string]string{}}
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("localsrc: %w", err)
	}
	for _, e := range ents {
		n := e.Name()
		if len(n) > 1 && n[0] == '.' && n != ".." && isMaildir(filepath.Join(root, n)) {
			md.plusplus = true
			break
		}
	}
	if isMaildir(root) {
		md.folders[inbox] = root
	}
	if md.plusplus {
		err = md.walkPlusPlus(ents)
	} else {
		err = md.walkNested(root, "")
	}
	if err != nil {
		return nil, fmt.Errorf("localsrc: %w", err)
	}
	if len(md.folders) == 0 {
		return nil, fmt.Errorf("localsrc: %s is not a Maildir: no cur/ or new/ directory in it or below it", path)
	}
	md.infos = folderList(md.folders)
	return md, nil
}

// isMaildir reports whether dir has a cur/ or new/ directory.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		if st, err := os.Stat(filepath.Join(dir, sub)); err == nil && st.IsDir() {
			return true
		}
	}
	return false
}

// walkPlusPlus lists Maildir++ folders: ".A.B" is folder "A/B", each level
// decoded from modified UTF-7.
func (md *Maildir) walkPlusPlus(ents []os.DirEntry) error {
	for _, e := range ents {
		n := e.Name()
		if len(n) < 2 || n[0] != '.' || n == ".." {
			continue
		}
		dir := filepath.Join(md.root, n)
		if !isMaildir(dir) {
			continue
		}
		levels := strings.Split(n[1:], ".")
		if slices.Contains(levels, "") {
			continue // not a folder name Dovecot or Courier writes
		}
		for i, l := range levels {
			levels[i] = mutf7.DecodeOrKeep(l)
		}
		name := strings.Join(levels, Delimiter)
		if other, taken := md.folders[name]; taken {
			return fmt.Errorf("%s and %s are both folder %q", other, dir, name)
		}
		md.folders[name] = dir
	}
	return nil
}

// walkNested lists the nested layout: directory A/B is folder "A/B"
// (levels decoded from modified UTF-7 where valid, and unescaped as
// internal/localstore escapes them); a top-level
// INBOX directory holds INBOX's children (and is INBOX when the root is
// not a Maildir).
func (md *Maildir) walkNested(dir, parent string) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		n := e.Name()
		if !e.IsDir() || strings.HasPrefix(n, ".") || n == "cur" || n == "new" || n == "tmp" {
			continue
		}
		if ln := strings.ToLower(n); strings.HasPrefix(ln, "courier") || strings.HasPrefix(ln, "dovecot") {
			continue // control directories (courierimapkeywords)
		}
		sub := filepath.Join(dir, n)
		name := localstore.MaildirLevelName(n) // modified UTF-7 as Dovecot and internal/localstore write it
		if parent == "" {
			name = inboxName(name)
		} else {
			name = parent + Delimiter + name
		}
		if isMaildir(sub) {
			if other, taken := md.folders[name]; taken {
				return fmt.Errorf("%s and %s are both folder %q", other, sub, name)
			}
			md.folders[name] = sub
		}
		if err := md.walkNested(sub, name); err != nil {
			return err
		}
	}
	return nil
}

// Folders implements backup.Source. The tree is read by NewMaildir.
func (md *Maildir) Folders(ctx context.Context) ([]backup.FolderInfo, error) {
	return folderInfos(ctx, md.infos)
}

// Examine implements backup.Source: it reads the folder's cur/ and new/
// and its keywords. UIDVALIDITY is 0: keys are file names.
func (md *Maildir) Examine(ctx context.Context, name string) (backup.FolderStatus, error) {
	md.cur = nil
	dir, ok := md.folders[name]
	if !ok {
		return backup.FolderStatus{}, fmt.Errorf("%w: %q", ErrNoFolder, name)
	}
	f := &maildirFolder{name: name, dir: dir}
	if err := f.scan(ctx); err != nil {
		return backup.FolderStatus{}, err
	}
	f.fresh = true
	md.cur = f
	return backup.FolderStatus{Messages: uint32(len(f.msgs))}, nil
}

// scan reads the folder's keywords and message file names: cur/ before
// new/, each sorted by name; a unique part met twice (a message caught
// moving from new/ to cur/) is listed once.
func (f *maildirFolder) scan(ctx context.Context) error {
	kw, err := formats.ReadMaildirKeywords(filepath.Join(f.dir, formats.MaildirKeywordsFile))
	if err != nil {
		return pathError(f.dir, err)
	}
	f.keywords = kw
	f.msgs = f.msgs[:0]
	f.byKey = map[string]int{}
	for _, sub := range []string{"cur", "new"} {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := filepath.Join(f.dir, sub)
		ents, err := os.ReadDir(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if strings.HasPrefix(n, ".") || e.IsDir() {
				continue
			}
			key := uniquePart(n)
			if _, dup := f.byKey[key]; dup {
				continue
			}
			f.byKey[key] = len(f.msgs)
			f.msgs = append(f.msgs, maildirMsg{key: key, sub: sub, file: n})
		}
	}
	return nil
}

// uniquePart is a message file's name before the info (":2,…"): it stays
// the same when the flags change.
func uniquePart(name string) string {
	key, _, _ := strings.Cut(name, ":")
	return key
}

// flags returns the flags of a message file name: the standard letters of
// the ":2," info and the keywords of its lower-case letters.
func (f *maildirFolder) flags(name string) []string {
	_, info, ok := strings.Cut(name, ":")
	if !ok || !strings.HasPrefix(info, "2,") {
		return nil
	}
	return f.keywords.Flags(info[2:])
}

// List implements backup.Source: the keys are the unique parts of the file
// names, in name order (cur/ then new/). The first List after Examine
// reports what Examine read; a later one reads the directories again.
func (md *Maildir) List(ctx context.Context, fn func(key string, flags []string) error) error {
	f := md.cur
	if f == nil {
		return errors.New("localsrc: no folder examined")
	}
	if !f.fresh {
		if err := f.scan(ctx); err != nil {
			return err
		}
	}
	f.fresh = false
	for i, m := range f.msgs {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(m.key, f.flags(m.file)); err != nil {
			return err
		}
	}
	return nil
}

// Fetch implements backup.Source: each file is opened and streamed, with
// its modification time as INTERNALDATE. A file renamed since List (new
// flags, moved to cur/) is found again; a file gone is not delivered.
func (md *Maildir) Fetch(ctx context.Context, keys []string, fn func(m *backup.Message) error) error {
	f := md.cur
	if f == nil {
		return errors.New("localsrc: no folder examined")
	}
	rescanned := false
	br := bufio.NewReaderSize(nil, 64<<10)
	for _, key := range keys {
		if err := ctx.Err(); err != nil {
			return err
		}
		i, ok := f.byKey[key]
		if !ok {
			continue
		}
		file, err := os.Open(filepath.Join(f.dir, f.msgs[i].sub, f.msgs[i].file))
		if errors.Is(err, fs.ErrNotExist) && !rescanned {
			rescanned = true
			if err := f.scan(ctx); err != nil {
				return err
			}
			if i, ok = f.byKey[key]; !ok {
				continue
			}
			file, err = os.Open(filepath.Join(f.dir, f.msgs[i].sub, f.msgs[i].file))
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		err = md.deliver(ctx, f, &f.msgs[i], file, br, fn)
		file.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

func (md *Maildir) deliver(ctx context.Context, f *maildirFolder, m *maildirMsg, file *os.File, br *bufio.Reader, fn func(m *backup.Message) error) error {
	st, err := file.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", file.Name())
	}
	br.Reset(file) // read errors name the file (os.PathError)
	return fn(&backup.Message{
		Key:          m.key,
		Flags:        f.flags(m.file),
		InternalDate: st.ModTime(),
		Size:         st.Size(),
		Body:         ctxReader{ctx: ctx, r: br},
	})
}

// Close implements backup.Source. It holds no file open; the Source can
// be used again.
func (md *Maildir) Close() error {
	md.cur = nil
	return nil
}
