package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// maildirBatch is how many written messages a Maildir writer keeps in
// tmp/ before it syncs them and moves them into cur/, which bounds its
// memory in a folder with millions of new messages.
const maildirBatch = 1024

// maildirStorage keeps messages as the files of a Maildir per folder
// (folders/DIR/{cur,new,tmp}), one file per message, zstd-compressed one
// by one or not; flags are in the file names. A file is named by the
// manifests by the name it was stored under; a flag change renames it,
// and readers find it by its unique base.
type maildirStorage struct {
	root     string
	compress bool
	bufs     *bufferPool
	hook     func(point string)
	link     func(oldname, newname string) error // os.Link, or Archive.Link
	files    maildirFiles
}

var _ storage = (*maildirStorage)(nil)

func (s *maildirStorage) newWriter(dir string, seq int, id string, part int) (RecordWriter, error) {
	return s.newMaildirWriter(dir, seq, id, part)
}

// reuseStored: a Maildir keeps one file per message on the source, so that
// a Maildir reader (or a server serving the archive) sees every copy; the
// files of gone messages (a new UIDVALIDITY) are reused.
func (s *maildirStorage) reuseStored(holderPresent bool) bool { return !holderPresent }

// linkStored: the file of a message on the source whose bytes are stored
// already is a hard link to them (maildirWriter.EndRecordLinked).
func (s *maildirStorage) linkStored() bool { return true }

// storedBytes is the message bytes of the files each snapshot names
// first: a file named again (the reused file of a gone message), or
// another name of a file named before (a hard link), was stored by the
// snapshot that named it first.
func (s *maildirStorage) storedBytes(snaps []*Snapshot) []int64 {
	out := make([]int64, len(snaps))
	seen := map[string]bool{}
	linked := map[inode]bool{}
	for i, snap := range snaps {
		for _, c := range snap.Changes {
			for k := range c.Added {
				m := &c.Added[k]
				if !m.Location().isFile() || seen[m.Seg] {
					continue
				}
				seen[m.Seg] = true
				if id, ok := s.linkedInode(m); ok {
					if linked[id] {
						continue
					}
					linked[id] = true
				}
				out[i] += m.Size
			}
		}
	}
	return out
}

// linkedInode returns the inode of m's file when the file has other
// names (hard links).
func (s *maildirStorage) linkedInode(m *Message) (inode, bool) {
	f, err := s.openFile(m)
	if err != nil {
		return inode{}, false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return inode{}, false
	}
	id, n, ok := inodeOf(fi)
	return id, ok && n > 1
}

// inode identifies a file on a file system, whatever its names.
type inode struct{ dev, ino uint64 }

// maildirWriter stores a folder's messages as files of a Maildir
// (folders/DIR/{tmp,new,cur}). Each message is written to tmp/ (one zstd
// frame when compressed), given INTERNALDATE as its modification time and,
// once synced, renamed into cur/ as <unique>,S=<size>:2,<flags>. Keyword
// letters are kept in the folder's dovecot-keywords, which is written and
// synced before any file name uses a new letter.
type maildirWriter struct {
	s        *maildirStorage
	rel, abs string // folders/DIR, and its path on disk
	prefix   string // unique names of this writer start with it
	compress bool
	n        int
	records  int
	kw       MaildirKeywords
	kwDirty  bool
	marked   bool // publishMark written
	pending  []pendingFile
	bufs     *segBuffers

	// The record being written.
	inRecord bool
	f        *os.File
	bw       *bufio.Writer
	tmp      string
	date     time.Time
	flags    []string
	size     int64
	err      error
}

type pendingFile struct {
	tmp, final string
}

func (s *maildirStorage) newMaildirWriter(dir string, seq int, id string, part int) (*maildirWriter, error) {
	rel := FoldersDir + "/" + dir
	abs := filepath.Join(s.root, FoldersDir, dir)
	if err := os.MkdirAll(filepath.Join(s.root, FoldersDir), 0o700); err != nil {
		return nil, fmt.Errorf("create folder directory: %w", err)
	}
	if err := makeMaildir(abs); err != nil {
		return nil, fmt.Errorf("create folder directory: %w", err)
	}
	kw, err := ReadMaildirKeywords(filepath.Join(abs, MaildirKeywordsFile))
	if err != nil {
		return nil, fmt.Errorf("read keywords: %w", err)
	}
	w := &maildirWriter{s: s, rel: rel, abs: abs, prefix: fmt.Sprintf("%08d.%s.%d.", seq, id, part),
		compress: s.compress, kw: kw}
	if w.compress {
		if w.bufs, err = s.bufs.get(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// makeMaildir creates dir with cur/, new/ and tmp/, syncing what it
// creates.
func makeMaildir(dir string) error {
	created := false
	for _, d := range []string{dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		err := os.Mkdir(d, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			return err
		}
		created = true
	}
	if !created {
		return nil
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	return syncDir(filepath.Dir(dir))
}

func (w *maildirWriter) Records() int { return w.records }

func (w *maildirWriter) Owns(loc string) bool {
	dir, name := path.Split(loc)
	return dir == w.rel+"/cur/" && strings.HasPrefix(name, w.prefix)
}

func (w *maildirWriter) BeginRecord(date time.Time, flags []string) error {
	if w.inRecord {
		return errors.New("formats: BeginRecord inside a record")
	}
	if w.err != nil {
		return w.err
	}
	w.n++
	w.tmp = filepath.Join(w.abs, "tmp", fmt.Sprintf("%s%07d", w.prefix, w.n))
	f, err := os.OpenFile(w.tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		w.err = err
		return err
	}
	w.f, w.date, w.flags, w.size, w.inRecord = f, date, flags, 0, true
	if w.bw == nil {
		w.bw = bufio.NewWriterSize(f, 64<<10)
	} else {
		w.bw.Reset(f)
	}
	if w.compress {
		w.bufs.enc.Reset(w.bw)
	}
	return nil
}

func (w *maildirWriter) Write(p []byte) (int, error) {
	if !w.inRecord {
		return 0, errors.New("formats: Write outside a record")
	}
	if w.err != nil {
		return 0, w.err
	}
	var n int
	var err error
	if w.compress {
		n, err = w.bufs.enc.Write(p)
	} else {
		n, err = w.bw.Write(p)
	}
	w.size += int64(n)
	if err != nil {
		w.err = err
	}
	return n, err
}

func (w *maildirWriter) EndRecord() (string, int64, error) {
	if err := w.finishRecord(); err != nil {
		return "", 0, err
	}
	loc, err := w.addPending()
	return loc, 0, err
}

// EndRecordLinked is EndRecord, keeping the message as a hard link to the
// file of src where it can (RecordLinker).
func (w *maildirWriter) EndRecordLinked(src StoredCopy) (string, error, error) {
	if err := w.finishRecord(); err != nil {
		return "", nil, err
	}
	linkErr := w.s.linkCopy(w.tmp, src, w.size, w.date)
	loc, err := w.addPending()
	return loc, linkErr, err
}

var _ RecordLinker = (*maildirWriter)(nil)

// finishRecord completes the file of the record being written, in tmp/:
// flushed, closed, its modification time the INTERNALDATE.
func (w *maildirWriter) finishRecord() error {
	if !w.inRecord {
		return errors.New("formats: EndRecord outside a record")
	}
	err := w.err
	if err == nil && w.compress {
		err = w.bufs.enc.Close()
	}
	if err == nil {
		err = w.bw.Flush()
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(w.tmp, w.date, w.date)
	}
	w.inRecord, w.f = false, nil
	if err != nil {
		w.err = err
		os.Remove(w.tmp)
		return err
	}
	return nil
}

// addPending names the finished record's file for cur/, where publish
// moves it, and returns its location.
func (w *maildirWriter) addPending() (string, error) {
	info, added, _ := w.kw.Info(w.flags)
	if len(added) > 0 {
		w.kwDirty = true
	}
	final := fmt.Sprintf("%s%07d,S=%d:2,%s", w.prefix, w.n, w.size, info)
	w.pending = append(w.pending, pendingFile{tmp: w.tmp, final: final})
	w.records++
	if len(w.pending) >= maildirBatch {
		if err := w.publish(); err != nil {
			return "", err
		}
	}
	return w.rel + "/cur/" + final, nil
}

// linkCopy replaces tmp, the finished file of a record of size bytes
// dated date and not yet published, with a hard link to the file holding
// src, which is found where it may be: under the name it was stored
// under; in its writer's tmp/, not yet moved into cur/ (a record of this
// run: looked at before and after, as it may move meanwhile); under the
// name its flags give it now (a flag change renamed it). The link is made
// under a name of its own in tmp/ (a left-over there if the process
// dies) and renamed over tmp, so that a failure leaves tmp as it was: a
// full copy. Only a file with the same modification time (INTERNALDATE,
// to the second) is linked, since its names share it. It returns why the
// file was not linked, nil when it was.
func (s *maildirStorage) linkCopy(tmp string, src StoredCopy, size int64, date time.Time) error {
	if !validMaildirPath(src.Seg) {
		return fmt.Errorf("%s is not a message file of this Maildir archive", src.Seg)
	}
	if src.Size != size {
		return fmt.Errorf("%s holds a message of %d bytes, not %d", src.Seg, src.Size, size)
	}
	dir := path.Dir(path.Dir(src.Seg))
	candidates := []string{src.Seg, dir + "/tmp/" + MaildirBase(path.Base(src.Seg)), src.Seg}
	if src.Flags != nil {
		if now := s.flagName(&Message{Seg: src.Seg, Size: src.Size, Flags: src.Flags}); now != "" && now != src.Seg {
			candidates = append(candidates, now)
		}
	}
	side := tmp + ".link"
	var err error
	for _, c := range candidates {
		p := filepath.Join(s.root, filepath.FromSlash(c))
		fi, serr := os.Lstat(p)
		if serr != nil {
			err = serr
			continue
		}
		switch {
		case !fi.Mode().IsRegular():
			return fmt.Errorf("%s is not a regular file", c)
		case !fi.ModTime().Truncate(time.Second).Equal(date.Truncate(time.Second)):
			return fmt.Errorf("%s has another modification time (INTERNALDATE)", c)
		case !s.compress && fi.Size() != size:
			return fmt.Errorf("%s holds %d bytes, not %d", c, fi.Size(), size)
		}
		if lerr := s.link(p, side); lerr != nil {
			if errors.Is(lerr, fs.ErrNotExist) {
				err = lerr // moved meanwhile
				continue
			}
			return fmt.Errorf("link %s: %w", c, lerr)
		}
		if rerr := os.Rename(side, tmp); rerr != nil {
			os.Remove(side)
			return rerr
		}
		return nil
	}
	return fmt.Errorf("find %s: %w", src.Seg, err)
}

func (w *maildirWriter) AbortRecord() error {
	if !w.inRecord {
		return nil
	}
	w.inRecord = false
	if w.compress {
		w.bufs.enc.Reset(io.Discard)
	}
	w.f.Close()
	w.f = nil
	if err := os.Remove(w.tmp); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

// publish makes the pending files durable and moves them into cur/: the
// keywords file first, then the files' data, then the renames and the
// directories.
func (w *maildirWriter) publish() error {
	if len(w.pending) == 0 && !w.kwDirty {
		return nil
	}
	if w.kwDirty {
		if err := writeFileAtomic(filepath.Join(w.abs, MaildirKeywordsFile), w.kw.Encode(), nil); err != nil {
			w.err = fmt.Errorf("write keywords: %w", err)
			return w.err
		}
		w.kwDirty = false
	}
	tmpDir := filepath.Join(w.abs, "tmp")
	if !w.marked && len(w.pending) > 0 {
		// Files are about to reach cur/ before a manifest names them: the
		// mark tells the next run to look for left-overs here.
		if err := touchSynced(filepath.Join(w.abs, publishMark)); err != nil {
			w.err = fmt.Errorf("mark folder: %w", err)
			return w.err
		}
		w.marked = true
	}
	if err := syncFiles(tmpDir, len(w.pending), func(i int) string { return w.pending[i].tmp }); err != nil {
		w.err = fmt.Errorf("sync messages: %w", err)
		return w.err
	}
	curDir := filepath.Join(w.abs, "cur")
	for i, p := range w.pending {
		if err := os.Rename(p.tmp, filepath.Join(curDir, p.final)); err != nil {
			w.pending = w.pending[i:]
			w.err = fmt.Errorf("move message into cur: %w", err)
			return w.err
		}
	}
	w.pending = w.pending[:0]
	if err := syncDir(curDir); err != nil {
		w.err = err
		return err
	}
	if err := syncDir(tmpDir); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *maildirWriter) Commit() (*Segment, error) {
	if w.inRecord {
		return nil, errors.New("formats: Commit inside a record")
	}
	if w.err != nil {
		return nil, w.err
	}
	w.s.hook("segment-before-rename")
	if err := w.publish(); err != nil {
		return nil, err
	}
	w.release()
	return nil, nil
}

func (w *maildirWriter) Abort() {
	if w.inRecord {
		w.AbortRecord()
	}
	for _, p := range w.pending {
		os.Remove(p.tmp)
	}
	w.pending = nil
	w.release()
}

func (w *maildirWriter) release() {
	if w.bufs != nil {
		w.bufs.enc.Reset(io.Discard)
		w.s.bufs.put(w.bufs)
		w.bufs = nil
	}
}

// maildirFiles finds message files of a Maildir archive whose name
// changed since the manifest recorded it (a flag change renames a file):
// per directory, the current name of each unique base.
type maildirFiles struct {
	mu   sync.Mutex
	dirs map[string]map[string]string // folders/DIR → base → "cur/NAME" or "new/NAME"
	// keywords are the folders' dovecot-keywords as first read (a stale
	// one only makes flagName miss).
	keywords map[string]MaildirKeywords
}

// openFile opens the message file of m: the one its location names, the
// one its flags name now (a flag change renames the file, see syncFlags),
// or, failing both, the file with the same unique base in cur/ or new/
// of its folder (which reads the directory's names once).
func (s *maildirStorage) openFile(m *Message) (*os.File, error) {
	loc := m.Seg
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(loc)))
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return f, err
	}
	if now := s.flagName(m); now != "" && now != loc {
		if f, nerr := os.Open(filepath.Join(s.root, filepath.FromSlash(now))); nerr == nil {
			return f, nil
		}
	}
	dir := path.Dir(path.Dir(loc))
	base := MaildirBase(path.Base(loc))
	for attempt := 0; attempt < 2; attempt++ {
		names, serr := s.names(dir, attempt > 0)
		if serr != nil {
			return nil, serr
		}
		if rel, ok := names[base]; ok {
			return os.Open(filepath.Join(s.root, filepath.FromSlash(dir), filepath.FromSlash(rel)))
		}
	}
	return nil, err
}

// flagName is the name syncFlags gives m's file for its flags, "" when
// it cannot tell.
func (s *maildirStorage) flagName(m *Message) string {
	if !m.Location().isFile() {
		return ""
	}
	dir := path.Dir(path.Dir(m.Seg))
	s.files.mu.Lock()
	kw, ok := s.files.keywords[dir]
	s.files.mu.Unlock()
	if !ok {
		k, err := ReadMaildirKeywords(filepath.Join(s.root, filepath.FromSlash(dir), MaildirKeywordsFile))
		if err != nil {
			return ""
		}
		kw = k
		s.files.mu.Lock()
		if s.files.keywords == nil {
			s.files.keywords = map[string]MaildirKeywords{}
		}
		s.files.keywords[dir] = kw
		s.files.mu.Unlock()
	}
	k := slices.Clone(kw)
	info, _, _ := k.Info(m.Flags)
	return fmt.Sprintf("%s/cur/%s,S=%d:2,%s", dir, MaildirBase(path.Base(m.Seg)), m.Size, info)
}

// names returns the unique bases in cur/ and new/ of a folder directory,
// scanning it once (again when rescan is set).
func (s *maildirStorage) names(dir string, rescan bool) (map[string]string, error) {
	s.files.mu.Lock()
	defer s.files.mu.Unlock()
	if m, ok := s.files.dirs[dir]; ok && !rescan {
		return m, nil
	}
	m := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dir), sub))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		for _, e := range entries {
			m[MaildirBase(e.Name())] = sub + "/" + e.Name()
		}
	}
	if s.files.dirs == nil {
		s.files.dirs = map[string]map[string]string{}
	}
	s.files.dirs[dir] = m
	return m, nil
}

// content returns a reader of the message in f: its bytes, or the
// decompressed zstd frame, through dec (created when nil).
func (s *maildirStorage) content(f *os.File, dec **zstd.Decoder) (io.Reader, error) {
	if !s.compress {
		return f, nil
	}
	if *dec == nil {
		d, err := newDecoder(f)
		if err != nil {
			return nil, err
		}
		*dec = d
		return d, nil
	}
	if err := (*dec).Reset(f); err != nil {
		return nil, err
	}
	return *dec, nil
}

// verifyFile checks one stored message file against its manifest entry,
// reading it whole.
func (s *maildirStorage) verifyFile(m *Message, dec **zstd.Decoder) (int64, error) {
	f, err := s.openFile(m)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r, err := s.content(f, dec)
	if err != nil {
		return 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return n, fmt.Errorf("read: %v", err)
	}
	if n != m.Size {
		return n, fmt.Errorf("%d bytes, manifest says %d", n, m.Size)
	}
	if hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return n, errors.New("SHA-256 mismatch")
	}
	return n, nil
}

// verifyIndex is verify with the files read from a state index with
// locations, one at a time in name order: nothing is held per file.
func (s *maildirStorage) verifyIndex(ix *Index, rep *VerifyReport, progress func(string, int, int)) error {
	total := 0
	if err := ix.Locations(func(*IndexLocation) error { total++; return nil }); err != nil {
		return err
	}
	var dec *zstd.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	i := 0
	return ix.Locations(func(l *IndexLocation) error {
		i++
		if progress != nil && (i%256 == 0 || i == total) {
			defer progress(l.Seg, i, total)
		}
		if !validMaildirPath(l.Seg) || l.Off != 0 {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): not a message file of this Maildir archive", l.Seg, l.Key))
			return nil
		}
		if l.Conflict {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: two different messages recorded in one file", l.Seg))
			return nil
		}
		// The file as recorded, with the flags it has now: the entry of
		// the message recorded there, when it is still this file.
		m := &Message{Key: l.Key, SHA256: l.SHA256, Size: l.Size, Seg: l.Seg}
		if e, err := ix.Get(l.FID, l.Key); err != nil {
			return err
		} else if e != nil && e.Location().isFile() && path.Dir(e.Seg) == path.Dir(l.Seg) && MaildirBase(path.Base(e.Seg)) == path.Base(l.Seg) {
			m.Seg, m.Flags = e.Seg, e.Flags
		}
		n, err := s.verifyFile(m, &dec)
		rep.Bytes += n
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): %v", m.Seg, m.Key, err))
		} else {
			rep.Messages++
		}
		return nil
	})
}

// publishMark, in a Maildir archive's folder directory, says that a run
// moved files into its cur/ that a manifest may not name yet. Only marked
// folders have their cur/ and new/ compared with the manifests when a run
// starts (RemoveOrphans); the run then removes the mark. A run that
// stores nothing reads no cur/ at all.
const publishMark = ".mailvault-published"

// folderOrphans lists what interrupted runs left in a Maildir archive's
// folder directory: every file in tmp/, and files in cur/ and new/ whose
// unique base no committed manifest names (named). Other files
// (dovecot-keywords, or index files of a server reading the archive) are
// left alone. The directories are read a batch at a time.
func (s *maildirStorage) folderOrphans(dir string, named func(dir, base string) (bool, error)) ([]string, error) {
	var out []string
	for _, sub := range []string{"tmp", "new", "cur"} {
		err := eachDirEntry(filepath.Join(s.root, FoldersDir, dir, sub), func(e fs.DirEntry) (bool, error) {
			if e.IsDir() {
				return true, nil
			}
			rel := FoldersDir + "/" + dir + "/" + sub + "/" + e.Name()
			if sub == "tmp" {
				out = append(out, rel)
				return true, nil
			}
			ok, err := named(dir, MaildirBase(e.Name()))
			if err != nil {
				return false, err
			}
			if !ok {
				out = append(out, rel)
			}
			return true, nil
		})
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

// orphans lists tmp/ of every folder directory, and what cur/ and new/ of
// every one hold that no manifest names (or, with marked, of those
// carrying publishMark, whose marks are returned).
func (s *maildirStorage) orphans(idx index, marked bool) (out, marks []string, err error) {
	dirs, err := os.ReadDir(filepath.Join(s.root, FoldersDir))
	if err != nil {
		return nil, nil, err
	}
	var named func(dir, base string) (bool, error)
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		mark := FoldersDir + "/" + d.Name() + "/" + publishMark
		scanCur := !marked
		if marked {
			if _, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(mark))); err == nil {
				scanCur = true
				marks = append(marks, mark)
			}
		}
		if !scanCur {
			o, err := s.tmpFiles(d.Name())
			if err != nil {
				return nil, nil, err
			}
			out = append(out, o...)
			continue
		}
		if named == nil {
			if named, err = namedLookup(idx); err != nil {
				return nil, nil, err
			}
		}
		o, err := s.folderOrphans(d.Name(), named)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, o...)
	}
	return out, marks, nil
}

// tmpFiles lists the files in a folder directory's tmp/: all left-overs.
func (s *maildirStorage) tmpFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, FoldersDir, dir, "tmp"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			out = append(out, FoldersDir+"/"+dir+"/tmp/"+e.Name())
		}
	}
	return out, nil
}

// namedLookup returns how to ask whether a message file is named by idx:
// a lookup in a state index with locations (nothing held per file), or,
// for a State, the set of the files it names.
func namedLookup(idx index) (func(dir, base string) (bool, error), error) {
	if v, ok := idx.(*indexView); ok && v.ix.meta.Locations {
		return v.ix.HasFile, nil
	}
	named := map[string]bool{}
	err := idx.eachStored(func(m *Message) error {
		if m.Location().isFile() {
			dir := path.Dir(path.Dir(m.Seg))
			named[dir+"/"+MaildirBase(path.Base(m.Seg))] = true
		}
		return nil
	})
	return func(dir, base string) (bool, error) {
		return named[FoldersDir+"/"+dir+"/"+base], nil
	}, err
}

// syncEach fsyncs n files one by one.
func syncEach(n int, name func(i int) string) error {
	for i := 0; i < n; i++ {
		f, err := os.OpenFile(name(i), os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// syncFlags renames the message files whose flags changed, so that a
// Maildir reader (or a server serving the archive) sees the current flags.
// Manifests keep naming the files by their first name; readers find a
// renamed file by its unique base. A message file shared by two keys (the
// same bytes twice in a folder) takes the flags of the last one. It
// returns the number of files renamed; the archive stays valid whatever
// happens.
func (s *maildirStorage) syncFlags(changed iter.Seq[storedFlags]) (int, error) {
	renamed := 0
	kws := map[string]*MaildirKeywords{}
	touched := map[string]bool{}
	// The files not under their recorded name (renamed by an earlier
	// change), by folder directory: found by reading the directory once,
	// a batch at a time. What is kept grows with the changes, not with
	// the folder.
	pending := map[string]map[string]string{} // folders/DIR → base → wanted "cur/NAME"
	for m := range changed {
		if !m.loc.isFile() {
			continue
		}
		dir := path.Dir(path.Dir(m.loc.Seg))
		absDir := filepath.Join(s.root, filepath.FromSlash(dir))
		kw := kws[dir]
		if kw == nil {
			k, err := ReadMaildirKeywords(filepath.Join(absDir, MaildirKeywordsFile))
			if err != nil {
				return renamed, err
			}
			kw = &k
			kws[dir] = kw
		}
		info, added, _ := kw.Info(m.flags)
		if len(added) > 0 {
			if err := writeFileAtomic(filepath.Join(absDir, MaildirKeywordsFile), kw.Encode(), nil); err != nil {
				return renamed, err
			}
			s.files.mu.Lock()
			delete(s.files.keywords, dir)
			s.files.mu.Unlock()
		}
		base := MaildirBase(path.Base(m.loc.Seg))
		want := fmt.Sprintf("cur/%s,S=%d:2,%s", base, m.size, info)
		recorded := "cur/" + path.Base(m.loc.Seg)
		if recorded == want {
			if _, err := os.Stat(filepath.Join(absDir, filepath.FromSlash(want))); err == nil {
				continue
			}
		} else {
			err := os.Rename(filepath.Join(absDir, filepath.FromSlash(recorded)), filepath.Join(absDir, filepath.FromSlash(want)))
			if err == nil {
				touched[absDir] = true
				renamed++
				continue
			}
			if !errors.Is(err, fs.ErrNotExist) {
				return renamed, err
			}
		}
		if pending[dir] == nil {
			pending[dir] = map[string]string{}
		}
		pending[dir][base] = want
	}
	for dir, wants := range pending {
		absDir := filepath.Join(s.root, filepath.FromSlash(dir))
		n, err := renameTo(absDir, wants)
		renamed += n
		if n > 0 {
			touched[absDir] = true
		}
		if err != nil {
			return renamed, err
		}
	}
	for d := range touched {
		s.files.mu.Lock()
		delete(s.files.dirs, path.Join(FoldersDir, filepath.Base(d)))
		s.files.mu.Unlock()
		if err := syncDir(filepath.Join(d, "cur")); err != nil {
			return renamed, err
		}
	}
	return renamed, nil
}

// renameTo reads cur/ and new/ of a folder directory a batch at a time
// and renames each file whose unique base wants names to that name.
func renameTo(absDir string, wants map[string]string) (int, error) {
	renamed := 0
	for _, sub := range []string{"cur", "new"} {
		if len(wants) == 0 {
			break
		}
		err := eachDirEntry(filepath.Join(absDir, sub), func(e fs.DirEntry) (bool, error) {
			base := MaildirBase(e.Name())
			want, ok := wants[base]
			if !ok {
				return true, nil
			}
			delete(wants, base)
			if cur := sub + "/" + e.Name(); cur != want {
				if err := os.Rename(filepath.Join(absDir, filepath.FromSlash(cur)), filepath.Join(absDir, filepath.FromSlash(want))); err != nil {
					return false, err
				}
				renamed++
			}
			return len(wants) > 0, nil
		})
		if err != nil {
			return renamed, err
		}
	}
	return renamed, nil
}

// eachDirEntry calls fn with the entries of the directory path, read a
// batch at a time, until fn says no more; a directory that does not exist
// has none.
func eachDirEntry(path string, fn func(e fs.DirEntry) (more bool, err error)) error {
	d, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		entries, rerr := d.ReadDir(256)
		for _, e := range entries {
			more, err := fn(e)
			if err != nil || !more {
				return err
			}
		}
		if rerr == io.EOF || len(entries) == 0 {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// touchSynced creates an empty file (or keeps an existing one) and makes
// its directory entry durable.
func touchSynced(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func (s *maildirStorage) newReader(index) storageReader {
	return &maildirReader{s: s}
}

// maildirReader reads message files, one at a time.
type maildirReader struct {
	s   *maildirStorage
	f   *os.File
	dec *zstd.Decoder
}

func (r *maildirReader) open(m *Message) (io.Reader, error) {
	r.closeFile()
	if !m.Location().isFile() {
		return nil, fmt.Errorf("%w: message %s: %s is not a message file of this Maildir archive", ErrCorrupt, m.Key, m.Seg)
	}
	f, err := r.s.openFile(m)
	if err != nil {
		return nil, fmt.Errorf("message %s: %w", m.Key, err)
	}
	r.f = f
	src, err := r.s.content(f, &r.dec)
	if err != nil {
		return nil, err
	}
	return &exactReader{r: io.LimitReader(src, m.Size), left: m.Size}, nil
}

func (r *maildirReader) closeFile() {
	if r.f != nil {
		r.f.Close()
		r.f = nil
	}
}

func (r *maildirReader) close() {
	r.closeFile()
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
}

// verify checks every message file the manifests name: present,
// decompressing (when compressed) to exactly the recorded size and
// SHA-256. Segments, or messages located in one, are problems.
func (s *maildirStorage) verify(idx index, rep *VerifyReport, progress func(string, int, int)) error {
	for _, p := range idx.segmentPaths() {
		rep.Problems = append(rep.Problems, fmt.Sprintf("%s: a segment in a Maildir archive", p))
	}
	if v, ok := idx.(*indexView); ok && v.ix.meta.Locations {
		return s.verifyIndex(v.ix, rep, progress)
	}
	files := map[string]*Message{}
	err := idx.eachStored(func(m *Message) error {
		if !m.Location().isFile() {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): not a message file of this Maildir archive", m.Seg, m.Key))
			return nil
		}
		if prev := files[m.Seg]; prev != nil && (prev.SHA256 != m.SHA256 || prev.Size != m.Size) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s: two different messages recorded in one file", m.Seg))
			return nil
		}
		files[m.Seg] = m
		return nil
	})
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return nil
	}
	locs := make([]string, 0, len(files))
	for loc := range files {
		locs = append(locs, loc)
	}
	sort.Strings(locs)
	var dec *zstd.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	for i, loc := range locs {
		m := files[loc]
		n, err := s.verifyFile(m, &dec)
		rep.Bytes += n
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): %v", loc, m.Key, err))
		} else {
			rep.Messages++
		}
		if progress != nil && (i%256 == 255 || i == len(locs)-1) {
			progress(loc, i+1, len(locs))
		}
	}
	return nil
}
