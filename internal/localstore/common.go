package localstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
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

	"github.com/mailvault/mailvault/internal/msghdr"

	"github.com/mailvault/mailvault/restore"
)

const (
	dirPerm  = 0o700
	filePerm = 0o600
	// maxHeader bounds the header bytes read to find a Message-ID, as the
	// backup does.
	maxHeader = 64 << 10
)

// errBadBody is a body that does not match its recorded size or SHA-256.
var errBadBody = errors.New("localstore: message body does not match its size or SHA-256")

// sourceError is a failure to read the message body (the archive), not a
// failure of the target.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "read message: " + e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// bodyCopier copies a message body, hashing and counting it, and reads at
// most one byte more than the recorded size to catch a longer body.
type bodyCopier struct {
	h   hash.Hash
	buf []byte
}

// fillTemp writes a message into the temporary file tmp, syncs and closes
// it, and gives it INTERNALDATE as its modification time: the file is
// then ready to be published under its final name.
func (c *bodyCopier) fillTemp(tmp *os.File, body io.Reader, m *restore.Message) (sum string, err error) {
	w := bufio.NewWriterSize(tmp, 64<<10)
	sum, err = c.copy(w, body, m)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chtimes(tmp.Name(), m.InternalDate, m.InternalDate)
	}
	return sum, err
}

func (c *bodyCopier) copy(dst io.Writer, body io.Reader, m *restore.Message) (sum string, err error) {
	if c.h == nil {
		c.h = sha256.New()
		c.buf = make([]byte, 64<<10)
	}
	c.h.Reset()
	src := &countReader{r: io.LimitReader(body, m.Size+1)}
	_, err = io.CopyBuffer(io.MultiWriter(dst, c.h), struct{ io.Reader }{src}, c.buf)
	if err != nil {
		if src.err != nil {
			return "", &sourceError{src.err}
		}
		return "", err
	}
	sum = hex.EncodeToString(c.h.Sum(nil))
	if src.n != m.Size || m.SHA256 != "" && !strings.EqualFold(sum, m.SHA256) {
		return sum, fmt.Errorf("%w: %d bytes with SHA-256 %s, want %d bytes with %s", errBadBody, src.n, sum, m.Size, m.SHA256)
	}
	return sum, nil
}

// countReader counts bytes and remembers read errors, to tell the source's
// errors from the destination's.
type countReader struct {
	r   io.Reader
	n   int64
	err error
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// answer turns an error met while storing a message into what Append
// returns: a full disk is an over-quota answer, a damaged body a rejection
// (both through the Pending); anything else makes Append fail.
func answer(err error) (restore.Pending, error) {
	var se *sourceError
	switch {
	case err == nil:
		return restore.Done{}, nil
	case errors.As(err, &se):
		return nil, err
	case errors.Is(err, errBadBody):
		return restore.Done{Err: fmt.Errorf("%w: %v", restore.ErrRejected, err)}, nil
	case isNoSpace(err):
		return restore.Done{Err: fmt.Errorf("%w: %v", restore.ErrOverQuota, err)}, nil
	}
	return nil, err
}

// errInTheWay is a file where a folder's directory belongs, or the other
// way round.
var errInTheWay = errors.New("localstore: something else is in the way of a folder")

// refused marks an error about one folder's place in the tree (a name or
// path the file system does not take, a file where a directory belongs)
// as restore.ErrFolderRefused: the restore goes on with the other
// folders.
func refused(err error) error {
	if err != nil && (isNameError(err) || errors.Is(err, errOutside) || errors.Is(err, errInTheWay)) {
		return fmt.Errorf("%w: %w", restore.ErrFolderRefused, err)
	}
	return err
}

// tryCreate is the answer for an Append to a folder that does not exist.
func tryCreate(folder string) (restore.Pending, error) {
	return restore.Done{Err: fmt.Errorf("%w: %q", restore.ErrTryCreate, folder)}, nil
}

// headerEnd reports whether buf holds the blank line ending a header.
func headerEnd(buf []byte) bool {
	return bytes.HasPrefix(buf, []byte("\n")) || bytes.HasPrefix(buf, []byte("\r\n")) ||
		bytes.Contains(buf, []byte("\n\n")) || bytes.Contains(buf, []byte("\n\r\n"))
}

// messageID is the Message-ID of a raw header, read as the backup reads it.
func messageID(raw []byte) string { return msghdr.MessageID(raw) }

// eachDirEntry calls f with each entry of dir, read a batch at a time (a
// folder may hold a million files, which os.ReadDir would hold at once),
// in the directory's order. It stops at the first error of f, or when
// ctx is done.
func eachDirEntry(ctx context.Context, dir string, f func(fs.DirEntry) error) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	for {
		ents, err := d.ReadDir(256)
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(e); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// indexFile adds one message file to idx: its Message-ID and size, and
// its SHA-256 when it has no Message-ID.
func indexFile(idx *restore.Index, path string) error {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil // gone meanwhile (a mail client moved it)
		}
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return nil
	}
	var head []byte
	chunk := make([]byte, 8<<10)
	for len(head) < maxHeader {
		n, err := f.Read(chunk[:min(len(chunk), maxHeader-len(head))])
		head = append(head, chunk[:n]...)
		if headerEnd(head) {
			break
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", path, err)
		}
	}
	if id := messageID(head); id != "" {
		idx.Add(id, st.Size(), "")
		return nil
	}
	h := sha256.New()
	h.Write(head)
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	idx.Add("", int64(len(head))+n, hex.EncodeToString(h.Sum(nil)))
	return nil
}

// createTemp creates a new file (never an existing one) named
// prefix<random>suffix in dir.
func createTemp(dir, prefix, suffix string) (*os.File, error) {
	for range 100 {
		f, err := os.OpenFile(filepath.Join(dir, prefix+randomHex(8)+suffix), os.O_RDWR|os.O_CREATE|os.O_EXCL, filePerm)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return f, err
	}
	return nil, fmt.Errorf("localstore: no free temporary name in %s", dir)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publish gives the file at tmp the name dst without ever replacing an
// existing dst: it hard-links (which fails if dst exists) and removes tmp.
// Where hard links are not supported it falls back to a rename after
// checking that dst does not exist. It returns an error wrapping
// fs.ErrExist when dst exists; tmp is then left in place.
func publish(tmp, dst string) error {
	err := os.Link(tmp, dst)
	if err != nil && !errors.Is(err, fs.ErrExist) && linkUnsupported(err) {
		if _, serr := os.Lstat(dst); serr == nil {
			return &os.LinkError{Op: "publish", Old: tmp, New: dst, Err: fs.ErrExist}
		}
		return os.Rename(tmp, dst)
	}
	if err != nil {
		return err
	}
	return os.Remove(tmp)
}

// syncDir makes a directory's entries (a file created, linked or renamed
// in it) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil && dirSyncUnsupported(err) {
		return nil
	}
	return err
}

// mkdir creates dir (mode 0700) if it does not exist and syncs its parent
// when it did. It reports whether it created dir.
func mkdir(dir string) (bool, error) {
	err := os.Mkdir(dir, dirPerm)
	if errors.Is(err, fs.ErrExist) {
		st, serr := os.Stat(dir)
		if serr != nil {
			return false, serr
		}
		if !st.IsDir() {
			return false, fmt.Errorf("%w: %s", errInTheWay, dir)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, syncDir(filepath.Dir(dir))
}

// isDir reports whether path is an existing directory.
func isDir(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.IsDir()
}

// dirSyncer defers directory fsyncs: a message's file is fsynced before it
// is linked into place, but the directory entry is made durable in batches
// (every syncEvery messages and at Close). A crash may lose the newest
// entries; a re-run of the restore adds them again, never twice.
type dirSyncer struct {
	dirty map[string]bool
	n     int
}

const syncEvery = 256

func (d *dirSyncer) mark(dir string) error {
	if d.dirty == nil {
		d.dirty = map[string]bool{}
	}
	d.dirty[dir] = true
	if d.n++; d.n >= syncEvery {
		return d.flush()
	}
	return nil
}

func (d *dirSyncer) flush() error {
	var first error
	for dir := range d.dirty {
		if err := syncDir(dir); err != nil && first == nil {
			first = err
		}
		delete(d.dirty, dir)
	}
	d.n = 0
	return first
}
