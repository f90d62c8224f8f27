package localstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/restore"
)

// keywordsFile is Dovecot's file mapping keyword letters to names.
const keywordsFile = formats.MaildirKeywordsFile

// maildirEscaper escapes folder levels for Dovecot's LAYOUT=fs: the
// subdirectories and control files every Maildir folder holds are
// reserved.
var maildirEscaper = localname.Escaper{Reserved: func(s string) bool {
	switch s {
	case "cur", "new", "tmp", "maildirfolder", "subscriptions":
		return true
	}
	ls := strings.ToLower(s)
	return strings.HasPrefix(ls, "dovecot") || strings.HasPrefix(ls, "courier")
}}

// Maildir is a restore target writing a Maildir tree in Dovecot's
// LAYOUT=fs layout (see the package documentation).
type Maildir struct {
	root    string
	lay     layout
	host    string
	pid     int
	seq     int
	dropped int
	copier  bodyCopier
	folders map[string]*maildirFolder
	dirs    dirSyncer
	wl      writeLock
	// unique returns a new unique base name; tests replace it.
	unique func() string
	// Hook, if set, is called with "target-temp-written" once a message's
	// temporary file is complete, before it gets its name (crash tests).
	Hook func(point string)
}

var (
	_ restore.Target         = (*Maildir)(nil)
	_ restore.KeywordDropper = (*Maildir)(nil)
	_ restore.Preparer       = (*Maildir)(nil)
	_ restore.FolderNamer    = (*Maildir)(nil)
	_ restore.AtomicAppender = (*Maildir)(nil)
)

// ErrUTF8Tree is returned by a Maildir target writing modified UTF-7 names
// (the default) when the tree already holds folder directories with UTF-8
// names: writing the other way would give each such folder a second
// directory.
var ErrUTF8Tree = errors.New("localstore: the Maildir tree has folder names in UTF-8 (Dovecot's UTF-8 option)")

// maildirFolder is what Append keeps about a folder it writes to.
type maildirFolder struct {
	dir      string
	keywords formats.MaildirKeywords
	names    map[string]bool // unique base names in cur/ and new/
}

// NewMaildir returns a Maildir target at root. Root (the INBOX) is
// created when the target first writes (never on a dry run). Folder names are written in modified UTF-7, as a Dovecot
// without the UTF-8 option of mail_location expects them.
func NewMaildir(root string) (*Maildir, error) { return newMaildir(root, false) }

// NewMaildirUTF8 is NewMaildir writing folder names in UTF-8, for a
// Dovecot whose mail_location has the UTF-8 option (and for people).
func NewMaildirUTF8(root string) (*Maildir, error) { return newMaildir(root, true) }

func newMaildir(root string, utf8 bool) (*Maildir, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	md := &Maildir{root: root, lay: layout{esc: maildirEscaper, utf7: !utf8, max: maxName},
		host: maildirHost(host), pid: os.Getpid(), folders: map[string]*maildirFolder{}}
	md.unique = md.newUnique
	return md, nil
}

// maildirHost makes a host name safe for a Maildir file name: '/', ':'
// and ',' (and anything unusual) become \ooo octal escapes as the Maildir
// specification suggests.
func maildirHost(h string) string {
	if h == "" {
		h = "localhost"
	}
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, `\%03o`, c)
		}
	}
	return b.String()
}

// newUnique returns a unique name in Dovecot's style:
// <seconds>.M<microseconds>P<pid>Q<sequence>R<random>.<host>.
func (md *Maildir) newUnique() string {
	now := time.Now()
	md.seq++
	return fmt.Sprintf("%d.M%dP%dQ%dR%s.%s", now.Unix(), now.Nanosecond()/1000, md.pid, md.seq, randomHex(8), md.host)
}

// Delimiter implements restore.Target.
func (md *Maildir) Delimiter() string { return Delimiter }

// DroppedKeywords implements restore.KeywordDropper: the keywords not
// stored because a folder already had 26, or because they are not valid
// IMAP atoms, counted once per message.
func (md *Maildir) DroppedKeywords() int { return md.dropped }

// path returns the Maildir directory of a folder.
func (md *Maildir) path(folder string) (string, error) {
	l := levels(folder)
	esc := make([]string, 0, len(l))
	for i, s := range l {
		if i == 0 && s == inbox {
			if len(l) == 1 {
				return md.root, nil
			}
			esc = append(esc, inbox)
			continue
		}
		name, _ := md.lay.name(s)
		esc = append(esc, name)
	}
	return join(md.root, esc...)
}

// StoredAs implements restore.FolderNamer: the name Folders lists a
// folder under, which differs from its name when a level was too long
// for a file name.
func (md *Maildir) StoredAs(folder string) (string, bool) {
	l := levels(folder)
	changed := false
	for i, s := range l {
		if i == 0 && s == inbox {
			continue
		}
		if name, short := md.lay.name(s); short {
			l[i], changed = md.lay.decode(name), true
		}
	}
	return strings.Join(l, Delimiter), changed
}

func makeMaildir(dir string) error {
	for _, sub := range []string{"cur", "new", "tmp"} {
		if _, err := mkdir(filepath.Join(dir, sub)); err != nil {
			return err
		}
	}
	return nil
}

// Folders implements restore.Target: INBOX and every directory below root
// that is a Maildir (has cur/), without special-use attributes.
func (md *Maildir) Folders(ctx context.Context) ([]restore.TargetFolder, error) {
	out := []restore.TargetFolder{{Name: inbox}}
	var walk func(dir, prefix string, top bool) error
	walk = func(dir, prefix string, top bool) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			n := e.Name()
			if !e.IsDir() || strings.HasPrefix(n, ".") || n == "cur" || n == "new" || n == "tmp" {
				continue
			}
			if md.lay.utf7 && !isASCII(n) && utf8.ValidString(n) {
				return fmt.Errorf("%w: %s (restore with the UTF-8 layout, maildir:DIR?utf8, or into another directory)", ErrUTF8Tree, filepath.Join(dir, n))
			}
			name := prefix + md.lay.decode(n)
			sub := filepath.Join(dir, n)
			if top && n == inbox {
				// root/INBOX holds the children of INBOX (INBOX
				// itself is root).
				name = inbox
			} else if isDir(filepath.Join(sub, "cur")) {
				out = append(out, restore.TargetFolder{Name: name})
			}
			if err := walk(sub, name+Delimiter, false); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(md.root, "", true); err != nil && !(errors.Is(err, fs.ErrNotExist) && !isDir(md.root)) {
		return nil, err
	}
	return out, nil
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// Prepare implements restore.Preparer: it takes the target's lock and
// removes the temporary files killed restores left in the tmp/ of every
// Maildir of the tree.
func (md *Maildir) Prepare(ctx context.Context) error {
	return md.wl.prepare(md.root, func() error {
		if err := os.MkdirAll(filepath.Dir(md.root), dirPerm); err != nil {
			return err
		}
		if _, err := mkdir(md.root); err != nil {
			return err
		}
		return makeMaildir(md.root)
	}, func() {
		skip := func(n string) bool { return strings.HasPrefix(n, ".") || n == "cur" || n == "new" || n == "tmp" }
		walkDirs(md.root, skip, func(dir string) {
			if isDir(filepath.Join(dir, "tmp")) {
				removeTemps(filepath.Join(dir, "tmp"), md.isTemp)
			}
		})
	})
}

// legacyTemp matches the temporary files of mailvault before 2026-12 in
// a Maildir's tmp/: the unique name of a message (with its "Q<n>R<16 hex
// digits>" part, which Dovecot's own names lack) or a dovecot-keywords
// being replaced.
var legacyTemp = regexp.MustCompile(`^(\d+\.M\d+P\d+Q\d+R[0-9a-f]{16}\.(.+)|\.keywords\.[0-9a-f]{16})$`)

// isTemp reports whether a file in a tmp/ is a temporary file of ours:
// named so now, or by an earlier mailvault on this host.
func (md *Maildir) isTemp(name string) bool {
	if isTemp(name) {
		return true
	}
	m := legacyTemp.FindStringSubmatch(name)
	return m != nil && (m[2] == "" || m[2] == md.host)
}

// CreateFolder implements restore.Target: every level becomes a Maildir
// (parents included), except the directory holding INBOX's children.
func (md *Maildir) CreateFolder(ctx context.Context, name string) error {
	if err := md.Prepare(ctx); err != nil {
		return err
	}
	return refused(md.createFolder(name))
}

func (md *Maildir) createFolder(name string) error {
	l := levels(name)
	for i := range l {
		sub := strings.Join(l[:i+1], Delimiter)
		dir, err := md.path(sub)
		if err != nil {
			return err
		}
		if i == 0 && l[0] == inbox {
			// INBOX is root; root/INBOX, a plain directory, holds
			// its children.
			if len(l) > 1 {
				if _, err := mkdir(filepath.Join(md.root, inbox)); err != nil {
					return err
				}
			}
			continue
		}
		if _, err := mkdir(dir); err != nil {
			return err
		}
		if err := makeMaildir(dir); err != nil {
			return err
		}
	}
	return nil
}

// Index implements restore.Target: Message-ID and size of every file in
// cur/ and new/, and the SHA-256 of those without a Message-ID.
func (md *Maildir) Index(ctx context.Context, folder string) (*restore.Index, error) {
	dir, err := md.path(folder)
	if err != nil {
		return nil, err
	}
	idx := restore.NewIndex()
	for _, sub := range []string{"cur", "new"} {
		err := eachDirEntry(ctx, filepath.Join(dir, sub), func(e fs.DirEntry) error {
			if strings.HasPrefix(e.Name(), ".") || e.IsDir() {
				return nil
			}
			return indexFile(idx, filepath.Join(dir, sub, e.Name()))
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return idx.Built(err)
		}
	}
	return idx.Built(nil)
}

// folder returns the state of a folder Append writes to, reading its
// keywords and file names once.
func (md *Maildir) folder(folder string) (*maildirFolder, error) {
	key := normalize(folder)
	if f := md.folders[key]; f != nil {
		return f, nil
	}
	dir, err := md.path(folder)
	if err != nil {
		return nil, err
	}
	for _, sub := range []string{"cur", "new", "tmp"} {
		if !isDir(filepath.Join(dir, sub)) {
			return nil, nil
		}
	}
	f := &maildirFolder{dir: dir, names: map[string]bool{}}
	if f.keywords, err = formats.ReadMaildirKeywords(filepath.Join(dir, keywordsFile)); err != nil {
		return nil, err
	}
	if err := f.readNames(); err != nil {
		return nil, err
	}
	md.folders[key] = f
	return f, nil
}

// maxKnownNames bounds the existing file names a folder's state keeps.
// Past it no name is kept: a new name holds the second, the microsecond,
// the pid, a sequence number and 32 random bits (newUnique), and publish
// never replaces a file, so memory stays flat for a folder of any size.
var maxKnownNames = 100000

// readNames reads the unique base names in cur/ and new/, a batch at a
// time, up to maxKnownNames.
func (f *maildirFolder) readNames() error {
	for _, sub := range []string{"cur", "new"} {
		d, err := os.Open(filepath.Join(f.dir, sub))
		if err != nil {
			return err
		}
		for {
			ents, err := d.ReadDir(256)
			for _, e := range ents {
				f.names[formats.MaildirBase(e.Name())] = true
			}
			if len(f.names) > maxKnownNames {
				d.Close()
				f.names = map[string]bool{}
				return nil
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				d.Close()
				return err
			}
		}
		d.Close()
	}
	return nil
}

// letters returns the info flags of a message ("DFPRST" letters, then
// keyword letters) and how many of its keywords have no letter, writing
// dovecot-keywords first when a keyword gets a new letter.
func (md *Maildir) letters(f *maildirFolder, flags []string) (info string, dropped int, err error) {
	old := slices.Clone(f.keywords)
	info, added, dropped := f.keywords.Info(flags)
	if len(added) > 0 {
		if err := writeKeywords(f); err != nil {
			f.keywords = old
			return "", 0, err
		}
	}
	return info, dropped, nil
}

// writeKeywords replaces the folder's dovecot-keywords by one with every
// known keyword (existing letters keep their keyword): written in tmp/,
// synced and renamed, so a reader sees the old or the new file.
func writeKeywords(f *maildirFolder) error {
	tmp, err := createTemp(filepath.Join(f.dir, "tmp"), tempPrefix, tempSuffix)
	if err != nil {
		return err
	}
	_, err = tmp.Write(f.keywords.Encode())
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(f.dir, keywordsFile))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return syncDir(f.dir)
}

// Append implements restore.Target: the message is written to tmp/,
// synced, given INTERNALDATE as its modification time and hard-linked
// into cur/ as <unique>,S=<size>:2,<flags> (a name that exists is never
// replaced), then cur/ is synced.
func (md *Maildir) Append(ctx context.Context, folder string, m *restore.Message, body io.Reader) (restore.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := md.Prepare(ctx); err != nil {
		return nil, err
	}
	f, err := md.folder(folder)
	if err != nil {
		return nil, err
	}
	if f == nil {
		return tryCreate(folder)
	}
	return answer(md.append(f, m, body))
}

func (md *Maildir) append(f *maildirFolder, m *restore.Message, body io.Reader) (err error) {
	tmp, err := createTemp(filepath.Join(f.dir, "tmp"), tempPrefix, tempSuffix)
	if err != nil {
		return err
	}
	tmpPath := tmp.Name()
	defer func() {
		if err != nil {
			os.Remove(tmpPath)
		}
	}()
	if _, err = md.copier.fillTemp(tmp, body, m); err != nil {
		return err
	}
	if md.Hook != nil {
		md.Hook("target-temp-written")
	}
	info, dropped, err := md.letters(f, m.Flags)
	if err != nil {
		return err
	}
	curDir := filepath.Join(f.dir, "cur")
	base := md.unique()
	for range 100 {
		for f.names[base] {
			base = md.unique()
		}
		err = publish(tmpPath, filepath.Join(curDir, fmt.Sprintf("%s,S=%d:2,%s", base, m.Size, info)))
		if !errors.Is(err, fs.ErrExist) {
			break
		}
		// Someone else's file has this name: pick another one.
		f.names[base] = true
	}
	if err != nil {
		return err
	}
	if len(f.names) > 0 && len(f.names) < maxKnownNames {
		f.names[base] = true
	}
	md.dropped += dropped
	return md.dirs.mark(curDir)
}

// Close implements restore.Target: it makes the last directory entries
// durable and releases the target's lock.
func (md *Maildir) Close() error {
	err := md.dirs.flush()
	if lerr := md.wl.release(); err == nil {
		err = lerr
	}
	return err
}

// AppendsAtomically implements restore.AtomicAppender: a message whose
// body cannot be read leaves nothing behind.
func (md *Maildir) AppendsAtomically() bool { return true }
