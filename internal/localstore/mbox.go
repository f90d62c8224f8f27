package localstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/localname"
	"github.com/mailvault/mailvault/restore"
)

// mboxExt is the extension of every mbox file.
const mboxExt = ".mbox"

// mboxInMemory is the largest message built in memory and written with a
// single write; larger ones are streamed and cut off again on error.
const mboxInMemory = 16 << 20

// mboxEscaper escapes folder levels for the mbox tree, portable to
// Windows. A level ending in ".mbox" is reserved: its children's
// directory would have the name of another folder's file.
var mboxEscaper = localname.Escaper{Windows: true, Reserved: func(s string) bool {
	return strings.HasSuffix(strings.ToLower(s), mboxExt)
}}

// errNotMbox is a file in the tree that is not an mbox file; it is never
// written to.
var errNotMbox = errors.New("localstore: not an mbox file (it does not start with \"From \")")

// Mbox is a restore target writing one mboxrd file per folder (see the
// package documentation).
type Mbox struct {
	root   string
	lay    layout
	copier bodyCopier
	cur    *mboxFile
	rec    bytes.Buffer
	q      *formats.QuoteWriter
	wl     writeLock
	// Hook, if set, is called with "target-record-written" once a record
	// is in the file, before it is committed (crash tests).
	Hook func(point string)
}

var (
	_ restore.Target         = (*Mbox)(nil)
	_ restore.Preparer       = (*Mbox)(nil)
	_ restore.FolderNamer    = (*Mbox)(nil)
	_ restore.AtomicAppender = (*Mbox)(nil)
)

// mboxFile is the file Append writes to: one at a time, locked, at a
// known end offset.
type mboxFile struct {
	folder string
	f      *os.File
	off    int64  // end of the last complete record
	pad    string // written before the next record (a foreign file's end)
}

// NewMbox returns an mbox target at root, created when the target first
// writes (never on a dry run).
func NewMbox(root string) (*Mbox, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &Mbox{root: root, lay: layout{esc: mboxEscaper, max: maxName - len(mboxExt)}, q: formats.NewQuoteWriter(nil)}, nil
}

// Delimiter implements restore.Target.
func (mb *Mbox) Delimiter() string { return Delimiter }

// file returns the path of a folder's mbox file.
func (mb *Mbox) file(folder string) (string, error) {
	l := levels(folder)
	esc := make([]string, len(l))
	for i, s := range l {
		esc[i], _ = mb.lay.name(s)
	}
	esc[len(esc)-1] += mboxExt
	return join(mb.root, esc...)
}

// StoredAs implements restore.FolderNamer: the name Folders lists a
// folder under, which differs from its name when a level was too long
// for a file name.
func (mb *Mbox) StoredAs(folder string) (string, bool) { return storedAs(mb.lay, folder) }

// Prepare implements restore.Preparer: it takes the target's lock. (An
// mbox target has no temporary files: a record cut short by a kill is cut
// off when its file is next opened.)
func (mb *Mbox) Prepare(ctx context.Context) error {
	return mb.wl.prepare(mb.root, func() error { return os.MkdirAll(mb.root, dirPerm) }, func() {})
}

// Folders implements restore.Target: every *.mbox file below root.
func (mb *Mbox) Folders(ctx context.Context) ([]restore.TargetFolder, error) {
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
		for _, e := range ents {
			n := e.Name()
			switch {
			case strings.HasPrefix(n, "."):
			case e.IsDir():
				if err := walk(filepath.Join(dir, n), prefix+mb.lay.decode(n)+Delimiter); err != nil {
					return err
				}
			case e.Type().IsRegular() && strings.HasSuffix(n, mboxExt):
				out = append(out, restore.TargetFolder{Name: prefix + mb.lay.decode(strings.TrimSuffix(n, mboxExt))})
			}
		}
		return nil
	}
	if err := walk(mb.root, ""); err != nil && !(errors.Is(err, fs.ErrNotExist) && !isDir(mb.root)) {
		return nil, err
	}
	return out, nil
}

// CreateFolder implements restore.Target: an empty mbox file for the
// folder and each missing parent, and the directories holding them.
func (mb *Mbox) CreateFolder(ctx context.Context, name string) error {
	if err := mb.Prepare(ctx); err != nil {
		return err
	}
	return refused(mb.createFolder(name))
}

func (mb *Mbox) createFolder(name string) error {
	l := levels(name)
	for i := range l {
		p, err := mb.file(strings.Join(l[:i+1], Delimiter))
		if err != nil {
			return err
		}
		if i > 0 {
			if _, err := mkdir(filepath.Dir(p)); err != nil {
				return err
			}
		}
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
				return fmt.Errorf("%w: %s is not a file", errInTheWay, p)
			}
			continue
		}
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := syncDir(filepath.Dir(p)); err != nil {
			return err
		}
	}
	return nil
}

// Index implements restore.Target. It reads the folder's mbox file up to
// its last complete record (a record cut short by a crash is not
// counted, and Append removes it). A record's bytes, once the mboxrd
// quoting is undone and the blank line that ends it is dropped, are the
// message, or the message plus the newline the writer added after a
// message without a final newline: both identities are recorded.
func (mb *Mbox) Index(ctx context.Context, folder string) (*restore.Index, error) {
	p, err := mb.file(folder)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return restore.NewIndex(), nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	end, _, err := mboxTail(f, st.Size())
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	idx := restore.NewIndex()
	if err := scanMbox(ctx, io.NewSectionReader(f, 0, end), idx); err != nil {
		return idx.Built(fmt.Errorf("%s: %w", p, err))
	}
	return idx.Built(nil)
}

// open makes folder's file the one Append writes to, syncing and closing
// the previous one. It returns nil when the folder does not exist.
func (mb *Mbox) open(folder string) (*mboxFile, error) {
	folder = normalize(folder)
	if mb.cur != nil && mb.cur.folder == folder {
		return mb.cur, nil
	}
	if err := mb.closeCur(); err != nil {
		return nil, err
	}
	p, err := mb.file(folder)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	mf, err := openMbox(f, folder)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	mb.cur = mf
	return mf, nil
}

// openMbox locks an mbox file and cuts off a record left incomplete by a
// crash.
func openMbox(f *os.File, folder string) (*mboxFile, error) {
	ok, err := tryLock(f)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	if !ok {
		return nil, errors.New("localstore: the mbox file is in use by another process")
	}
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("localstore: not a regular file")
	}
	end, pad, err := mboxTail(f, st.Size())
	if err != nil {
		return nil, err
	}
	if end < st.Size() {
		if err := f.Truncate(end); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
	}
	return &mboxFile{folder: folder, f: f, off: end, pad: pad}, nil
}

func (mb *Mbox) closeCur() error {
	if mb.cur == nil {
		return nil
	}
	f := mb.cur.f
	mb.cur = nil
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Append implements restore.Target: one record (From line with the
// INTERNALDATE, the mboxrd-quoted message, a newline if the message does
// not end in one, a blank line) is appended to the folder's file, with a
// single write when the message is at most 16 MiB. If the write fails
// the file is cut back to where the record began.
func (mb *Mbox) Append(ctx context.Context, folder string, m *restore.Message, body io.Reader) (restore.Pending, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := mb.Prepare(ctx); err != nil {
		return nil, err
	}
	mf, err := mb.open(folder)
	if err != nil {
		return nil, err
	}
	if mf == nil {
		return tryCreate(folder)
	}
	var n int64
	if m.Size <= mboxInMemory {
		n, err = mb.appendSmall(mf, m, body)
	} else {
		n, err = mb.appendLarge(mf, m, body)
	}
	if err == nil && mb.Hook != nil {
		mb.Hook("target-record-written")
	}
	if err == nil {
		// Commit: the record was complete in the file before its From
		// line becomes a committed one.
		_, err = mf.f.WriteAt([]byte{fromCommitted}, mf.off+int64(len(mf.pad)+fromMarkAt))
	}
	if err != nil {
		if st, serr := mf.f.Stat(); serr == nil && st.Size() == mf.off {
			return answer(err) // nothing was written
		}
		if terr := mf.f.Truncate(mf.off); terr != nil {
			// The file may end in a partial record: let the next open
			// deal with it, and stop.
			mf.f.Close()
			mb.cur = nil
			return nil, fmt.Errorf("%v; cutting the partial record off failed: %w", err, terr)
		}
		return answer(err)
	}
	mf.off += n
	mf.pad = ""
	return restore.Done{}, nil
}

func (mb *Mbox) appendSmall(mf *mboxFile, m *restore.Message, body io.Reader) (int64, error) {
	mb.rec.Reset()
	if _, err := mb.writeRecord(&mb.rec, mf.pad, m, body); err != nil {
		return 0, err
	}
	n, err := mf.f.WriteAt(mb.rec.Bytes(), mf.off)
	if mb.rec.Cap() > 4<<20 {
		mb.rec = bytes.Buffer{} // do not keep a large buffer for good
	}
	return int64(n), err
}

func (mb *Mbox) appendLarge(mf *mboxFile, m *restore.Message, body io.Reader) (int64, error) {
	w := bufio.NewWriterSize(io.NewOffsetWriter(mf.f, mf.off), 256<<10)
	n, err := mb.writeRecord(w, mf.pad, m, body)
	if err == nil {
		err = w.Flush()
	}
	return n, err
}

// writeRecord writes one record to w: pad, the From line (marked
// pending), the quoted message, a newline if the message does not end in
// one, a blank line.
func (mb *Mbox) writeRecord(w io.Writer, pad string, m *restore.Message, body io.Reader) (int64, error) {
	cw := &countWriter{w: w}
	_, _ = io.WriteString(cw, pad)
	from := formats.FromLine(m.InternalDate)
	from[fromMarkAt] = fromPending
	_, _ = cw.Write(from)
	mb.q.Reset(cw)
	if _, err := mb.copier.copy(mb.q, body, m); err != nil {
		return cw.n, err
	}
	if err := mb.q.Flush(); err != nil {
		return cw.n, err
	}
	if !mb.q.EndsWithNewline() {
		_, _ = io.WriteString(cw, "\n")
	}
	_, err := io.WriteString(cw, "\n")
	return cw.n, err
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

// Close implements restore.Target: it syncs and closes the file being
// written and releases the target's lock.
func (mb *Mbox) Close() error {
	err := mb.closeCur()
	if lerr := mb.wl.release(); err == nil {
		err = lerr
	}
	return err
}

// A record is written with a pending From line, "From MAILER_DAEMON
// <date>", and committed once it is complete in the file by turning the
// '_' into the '-' of formats.FromLine's "From MAILER-DAEMON <date>", with
// a one-byte write. A pending record can only be the last one of a file
// and only after a crash; it is cut off when the file is next opened.
const (
	fromMarkAt    = len("From MAILER")
	fromCommitted = '-'
	fromPending   = '_'
)

// fromLineKind tells a From line (with its LF) written by this package,
// committed or pending, from any other.
func fromLineKind(line []byte) (ours, pending bool) {
	const prefix = "From MAILER-DAEMON "
	const layout = "Mon Jan _2 15:04:05 2006"
	if len(line) != len(prefix)+len(layout)+1 || line[len(line)-1] != '\n' {
		return false, false
	}
	mark := line[fromMarkAt]
	if string(line[:fromMarkAt]) != prefix[:fromMarkAt] || string(line[fromMarkAt+1:len(prefix)]) != prefix[fromMarkAt+1:] ||
		mark != fromCommitted && mark != fromPending {
		return false, false
	}
	if _, err := time.Parse(layout, string(line[len(prefix):len(line)-1])); err != nil {
		return false, false
	}
	return true, mark == fromPending
}

// mboxTail examines the end of an mbox file of the given size. It returns
// the offset up to which the file holds complete records and what to
// write before the next record.
//
// The last record starts at the last line that begins with "From " (in
// mboxrd every other such line is quoted). It is cut off when its From
// line is incomplete, when it is pending (a crash during its write) and
// when it is ours but does not end in the blank line every record of ours
// ends with (a crash of the machine before the data reached the disk). A
// complete last record written by another program is kept, and newlines
// are padded so that the next record starts after a blank line. A file
// that does not start with "From " is not an mbox file and is refused.
func mboxTail(f *os.File, size int64) (end int64, pad string, err error) {
	if size == 0 {
		return 0, "", nil
	}
	head := make([]byte, min(size, 5))
	if _, err := f.ReadAt(head, 0); err != nil {
		return 0, "", err
	}
	if string(head) != "From " {
		if strings.HasPrefix("From ", string(head)) {
			return 0, "", nil // a From line cut short
		}
		return 0, "", errNotMbox
	}
	tail := make([]byte, min(size, 2))
	if _, err := f.ReadAt(tail, size-int64(len(tail))); err != nil {
		return 0, "", err
	}
	// A From line cut within "From " is not found by lastRecordStart.
	last := make([]byte, min(size, 6))
	if _, err := f.ReadAt(last, size-int64(len(last))); err != nil {
		return 0, "", err
	}
	if i := bytes.LastIndexByte(last, '\n'); i >= 0 && i < len(last)-1 && strings.HasPrefix("From ", string(last[i+1:])) &&
		bytes.HasSuffix(last[:i+1], []byte("\n\n")) {
		return size - int64(len(last)-i-1), "", nil
	}
	start, err := lastRecordStart(f, size)
	if err != nil {
		return 0, "", err
	}
	line := make([]byte, min(size-start, 256))
	if _, err := f.ReadAt(line, start); err != nil {
		return 0, "", err
	}
	i := bytes.IndexByte(line, '\n')
	if i < 0 {
		return start, "", nil
	}
	ours, pending := fromLineKind(line[:i+1])
	complete := string(tail) == "\n\n"
	switch {
	case pending || ours && !complete:
		return start, "", nil
	case complete:
		return size, "", nil
	case tail[len(tail)-1] == '\n':
		return size, "\n", nil
	}
	return size, "\n\n", nil
}

// lastRecordStart returns the offset of the last line that starts with
// "From " (0 when there is none after the first line).
func lastRecordStart(f *os.File, size int64) (int64, error) {
	const chunk = 64 << 10
	sep := []byte("\nFrom ")
	buf := make([]byte, chunk+len(sep))
	for end := size; end > 0; {
		start := max(0, end-chunk)
		b := buf[:min(size, end+int64(len(sep))-1)-start]
		if _, err := f.ReadAt(b, start); err != nil && err != io.EOF {
			return 0, err
		}
		if i := bytes.LastIndex(b, sep); i >= 0 {
			return start + int64(i) + 1, nil
		}
		end = start
	}
	return 0, nil
}

// scanMbox adds every record of an mboxrd stream to idx.
func scanMbox(ctx context.Context, r io.Reader, idx *restore.Index) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var rec *mboxRecord
	lineStart, inFrom := true, false
	for n := 0; ; n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			switch {
			case lineStart && bytes.HasPrefix(line, []byte("From ")):
				if rec != nil {
					rec.finish(idx)
				} else {
					rec = &mboxRecord{h: sha256.New()}
				}
				rec.reset()
				inFrom = true
			case inFrom:
			case rec != nil:
				rec.line(line, lineStart)
			}
			lineStart = line[len(line)-1] == '\n'
			if lineStart {
				inFrom = false
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
	}
	if rec != nil {
		rec.finish(idx)
	}
	return nil
}

// mboxRecord accumulates the identity of one record's message: header,
// size and SHA-256 of the unquoted bytes. The last byte written is held
// back so that the hash with and without a final newline can both be
// taken; a blank line is held back until it is known whether it is the
// record's separator.
type mboxRecord struct {
	h         hash.Hash
	head      []byte
	headDone  bool
	size      int64
	last      int // held-back last byte, -1 when none
	heldBlank bool
}

func (r *mboxRecord) reset() {
	r.h.Reset()
	r.head = r.head[:0]
	r.headDone = false
	r.size = 0
	r.last = -1
	r.heldBlank = false
}

func (r *mboxRecord) line(p []byte, lineStart bool) {
	if lineStart && len(p) == 1 && p[0] == '\n' {
		if r.heldBlank {
			r.emit(p)
		}
		r.heldBlank = true
		return
	}
	if r.heldBlank {
		r.emit([]byte("\n"))
		r.heldBlank = false
	}
	if lineStart && len(p) > 0 && p[0] == '>' && bytes.HasPrefix(bytes.TrimLeft(p, ">"), []byte("From ")) {
		p = p[1:]
	}
	r.emit(p)
}

func (r *mboxRecord) emit(p []byte) {
	if len(p) == 0 {
		return
	}
	if !r.headDone {
		r.head = append(r.head, p[:min(len(p), maxHeader-len(r.head))]...)
		r.headDone = len(r.head) >= maxHeader || headerEnd(r.head)
	}
	r.size += int64(len(p))
	if r.last >= 0 {
		r.h.Write([]byte{byte(r.last)})
	}
	r.h.Write(p[:len(p)-1])
	r.last = int(p[len(p)-1])
}

// finish records the message. The held blank line, if any, is the
// separator and is dropped.
func (r *mboxRecord) finish(idx *restore.Index) {
	id := messageID(r.head)
	alt := r.last == '\n'
	var altSum string
	if alt && id == "" {
		altSum = hex.EncodeToString(r.h.Sum(nil))
	}
	if r.last >= 0 {
		r.h.Write([]byte{byte(r.last)})
	}
	var sum string
	if id == "" {
		sum = hex.EncodeToString(r.h.Sum(nil))
	}
	idx.Add(id, r.size, sum)
	if alt {
		idx.Add(id, r.size-1, altSum)
	}
}

// AppendsAtomically implements restore.AtomicAppender: a message whose
// body cannot be read leaves nothing behind.
func (mb *Mbox) AppendsAtomically() bool { return true }
