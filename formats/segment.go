package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"
)

// FrameSize is the uncompressed size after which a segment starts a new
// zstd frame. A message is read by decompressing at most the frames it
// spans plus the part of its first frame before it.
const FrameSize = 1 << 20

// maxFromLine bounds the mbox separator line a reader accepts.
const maxFromLine = 1024

// Segment describes one committed segment file.
type Segment struct {
	Path    string     `json:"path"`    // relative to the archive root, slash-separated
	Size    int64      `json:"size"`    // compressed bytes
	SHA256  string     `json:"sha256"`  // of the compressed file
	USize   int64      `json:"usize"`   // uncompressed bytes
	Records int        `json:"records"` // messages stored in it
	Frames  [][2]int64 `json:"frames"`  // per zstd frame: [compressed offset, uncompressed offset]
}

// SegmentWriter appends mboxrd records to a new segment. Records are
// buffered into frames of about FrameSize; a record larger than that is
// streamed through the compressor in frames of its own. A record can be
// abandoned (AbortRecord) until it is ended, leaving no trace in the file.
// A SegmentWriter is not safe for concurrent use.
type SegmentWriter struct {
	rel, abs, tmp string
	f             *os.File
	enc           *zstd.Encoder // streaming a record larger than a frame; nil otherwise
	frameEnc      *zstd.Encoder // shared: frames compressed whole (EncodeAll)
	released      bool
	sum           hash.Hash
	c, u          int64 // compressed bytes in the file; uncompressed bytes emitted
	buf           []byte
	cbuf          []byte
	frames        [][2]int64
	records       int

	inRecord  bool
	recU      int64 // uncompressed offset of the record's From line
	recBuf    int   // index in buf where the record starts
	streaming bool  // the record is being streamed in its own frames
	frameU    int64 // uncompressed bytes in the open streamed frame
	recC      int64 // file size before the record's first streamed frame
	recFrames int
	recSum    []byte
	quote     *QuoteWriter
	err       error
	hook      func(point string)
	pool      *bufferPool
}

// segBuffers are a segment writer's large buffers and compressor, pooled so
// that a run writing many segments reuses them instead of allocating
// several MiB per segment. A segment writer's enc is nil but while it
// streams a record larger than a frame (its frames are compressed whole
// by the pool's shared encoder); a Maildir file writer's always streams.
type segBuffers struct {
	enc  *zstd.Encoder
	buf  []byte
	cbuf []byte
}

// bufferPool keeps released segBuffers for the next writer. Unlike a
// sync.Pool it never drops them at a GC, so a run allocates one set per
// concurrent writer, not one per segment.
type bufferPool struct {
	mu      sync.Mutex
	free    []*segBuffers // with a compressor
	bare    []*segBuffers // without one (segment writers)
	streams []*zstd.Encoder
	frames  *zstd.Encoder // shared by the segment writers, for EncodeAll
}

// get returns buffers with a streaming compressor.
func (p *bufferPool) get() (*segBuffers, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		return b, nil
	}
	enc, err := zstd.NewWriter(nil, encoderOptions...)
	if err != nil {
		return nil, err
	}
	return &segBuffers{enc: enc}, nil
}

// getBare returns buffers without a compressor, and the shared frame
// compressor.
func (p *bufferPool) getBare() (*segBuffers, *zstd.Encoder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frames == nil {
		// EncodeAll is safe for concurrent use: up to frameEncoders
		// frames are compressed at once, and a writer past that waits
		// (a frame takes about 3 ms). Each writer keeping a compressor of
		// its own cost 1.5-2 MiB of live heap per connection, which at
		// 1,000,000 messages made the collector run more often than
		// anything else did.
		enc, err := zstd.NewWriter(nil, append(encoderOptions[:len(encoderOptions):len(encoderOptions)], zstd.WithEncoderConcurrency(frameEncoders))...)
		if err != nil {
			return nil, nil, err
		}
		p.frames = enc
	}
	if n := len(p.bare); n > 0 {
		b := p.bare[n-1]
		p.bare = p.bare[:n-1]
		return b, p.frames, nil
	}
	return &segBuffers{}, p.frames, nil
}

// frameEncoders is how many frames the shared compressor compresses at
// once.
const frameEncoders = 2

// stream returns a streaming compressor (a record larger than a frame).
func (p *bufferPool) stream() (*zstd.Encoder, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.streams); n > 0 {
		e := p.streams[n-1]
		p.streams = p.streams[:n-1]
		return e, nil
	}
	return zstd.NewWriter(nil, encoderOptions...)
}

func (p *bufferPool) putStream(e *zstd.Encoder) {
	e.Reset(io.Discard)
	p.mu.Lock()
	p.streams = append(p.streams, e)
	p.mu.Unlock()
}

func (p *bufferPool) put(b *segBuffers) {
	p.mu.Lock()
	if b.enc != nil {
		p.free = append(p.free, b)
	} else {
		p.bare = append(p.bare, b)
	}
	p.mu.Unlock()
}

// encoderOptions: SpeedFastest, by measurement on the benchmark corpus
// (2 cores): 333 MB/s per core against 275 for SpeedDefault, for archives
// 4 % larger (39.6 % of the mail's size against 38.1 %); a backup over
// four connections went from 59 to 90 MiB/s.
//
// WithLowerEncoderMem: a frame is compressed whole (EncodeAll), so its
// history needs the frame and one block, not twice the window: 1.1 MiB
// instead of 2 per writer, a writer per connection
// (TestSegmentEncoderMemory).
var encoderOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(1),
	zstd.WithWindowSize(FrameSize),
	zstd.WithEncoderCRC(true),
	zstd.WithLowerEncoderMem(true),
}

// newSegmentWriter creates the segment rel (relative to root) in a
// temporary file next to its final place.
func newSegmentWriter(root, rel string, pool *bufferPool, hook func(string)) (*SegmentWriter, error) {
	abs := filepath.Join(root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
		return nil, fmt.Errorf("create segment directory: %w", err)
	}
	tmp := abs + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create segment: %w", err)
	}
	bufs, frames, err := pool.getBare()
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, err
	}
	w := &SegmentWriter{rel: rel, abs: abs, tmp: tmp, f: f, frameEnc: frames, buf: bufs.buf[:0], cbuf: bufs.cbuf[:0], sum: sha256.New(), hook: hook, pool: pool}
	w.quote = NewQuoteWriter(emitter{w})
	return w, nil
}

// Path is the segment's path relative to the archive root.
func (w *SegmentWriter) Path() string { return w.rel }

// Records is the number of records ended so far.
func (w *SegmentWriter) Records() int { return w.records }

// Size is the number of uncompressed bytes written so far.
func (w *SegmentWriter) Size() int64 { return w.u }

type emitter struct{ w *SegmentWriter }

func (e emitter) Write(p []byte) (int, error) {
	if err := e.w.emit(p); err != nil {
		return 0, err
	}
	return len(p), nil
}

// fileWrite writes compressed bytes to the file.
func (w *SegmentWriter) fileWrite(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.c += int64(n)
	w.sum.Write(p[:n])
	return n, err
}

type fileWriter struct{ w *SegmentWriter }

func (fw fileWriter) Write(p []byte) (int, error) { return fw.w.fileWrite(p) }

// flushFrame compresses p as one frame starting at uncompressed offset u.
func (w *SegmentWriter) flushFrame(p []byte, u int64) error {
	if len(p) == 0 {
		return nil
	}
	w.frames = append(w.frames, [2]int64{w.c, u})
	w.cbuf = w.frameEnc.EncodeAll(p, w.cbuf[:0])
	_, err := w.fileWrite(w.cbuf)
	return err
}

func (w *SegmentWriter) emit(p []byte) error {
	if w.err != nil {
		return w.err
	}
	if err := w.emit1(p); err != nil {
		w.err = err
		return err
	}
	return nil
}

func (w *SegmentWriter) emit1(p []byte) error {
	for len(p) > 0 && !w.streaming {
		n := min(len(p), FrameSize-len(w.buf))
		w.buf = append(w.buf, p[:n]...)
		w.u += int64(n)
		p = p[n:]
		if len(w.buf) < FrameSize {
			return nil
		}
		// The buffer is full: complete records before this one form a frame.
		if w.recBuf > 0 {
			bufU := w.u - int64(len(w.buf))
			if err := w.flushFrame(w.buf[:w.recBuf], bufU); err != nil {
				return err
			}
			k := copy(w.buf, w.buf[w.recBuf:])
			w.buf = w.buf[:k]
			w.recBuf = 0
			continue
		}
		// The record alone fills a frame: stream it from here on.
		if err := w.startStreaming(); err != nil {
			return err
		}
	}
	for len(p) > 0 {
		if w.frameU >= FrameSize {
			if err := w.enc.Close(); err != nil {
				return err
			}
			w.frames = append(w.frames, [2]int64{w.c, w.u})
			w.enc.Reset(fileWriter{w})
			w.frameU = 0
		}
		n := min(int64(len(p)), FrameSize-w.frameU)
		if _, err := w.enc.Write(p[:n]); err != nil {
			return err
		}
		w.frameU += n
		w.u += n
		p = p[n:]
	}
	return nil
}

// startStreaming moves the current record, which fills the buffer alone,
// into a frame of its own that is compressed as it is written. It saves
// what AbortRecord needs to cut the record off again.
func (w *SegmentWriter) startStreaming() error {
	state, err := w.sum.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return err
	}
	w.recSum, w.recC, w.recFrames = state, w.c, len(w.frames)
	w.streaming = true
	w.frames = append(w.frames, [2]int64{w.c, w.u - int64(len(w.buf))})
	if w.enc == nil {
		if w.enc, err = w.pool.stream(); err != nil {
			return err
		}
	}
	w.enc.Reset(fileWriter{w})
	if _, err := w.enc.Write(w.buf); err != nil {
		return err
	}
	w.frameU = int64(len(w.buf))
	w.buf = w.buf[:0]
	return nil
}

// Record is where a message was stored, and what was stored.
type Record struct {
	Off    int64  // uncompressed offset of the record's From line in the segment
	Size   int64  // message bytes
	SHA256 string // of the message bytes
}

// BeginRecord starts a record for a message with the given INTERNALDATE.
// The message bytes are then written with Write, and the record finished
// with EndRecord or abandoned with AbortRecord.
func (w *SegmentWriter) BeginRecord(date time.Time) error {
	if w.inRecord {
		return errors.New("formats: BeginRecord inside a record")
	}
	w.inRecord = true
	w.recU = w.u
	w.recBuf = len(w.buf)
	w.quote.Reset(emitter{w})
	return w.emit(FromLine(date))
}

// Write writes message bytes into the current record.
func (w *SegmentWriter) Write(p []byte) (int, error) {
	if !w.inRecord {
		return 0, errors.New("formats: Write outside a record")
	}
	return w.quote.Write(p)
}

// EndRecord finishes the current record and returns its offset and size.
// The caller supplies the message's SHA-256, computed as the bytes went by.
func (w *SegmentWriter) EndRecord() (off, size int64, err error) {
	if !w.inRecord {
		return 0, 0, errors.New("formats: EndRecord outside a record")
	}
	if err := w.quote.Flush(); err != nil {
		return 0, 0, err
	}
	sep := []byte("\n")
	if !w.quote.EndsWithNewline() {
		sep = []byte("\n\n")
	}
	if err := w.emit(sep); err != nil {
		return 0, 0, err
	}
	if w.streaming {
		if err := w.enc.Close(); err != nil {
			w.err = err
			return 0, 0, err
		}
		w.streaming = false
	}
	w.inRecord = false
	w.records++
	return w.recU, w.quote.Written(), nil
}

// AbortRecord abandons the current record: nothing of it remains in the
// segment. It is a no-op outside a record. After a write error the segment
// stays unusable (Commit fails); AbortRecord returns that error.
func (w *SegmentWriter) AbortRecord() error {
	if !w.inRecord {
		return nil
	}
	w.inRecord = false
	if w.streaming {
		w.streaming = false
		w.enc.Reset(io.Discard)
		if err := w.f.Truncate(w.recC); err != nil {
			w.err = err
			return err
		}
		if _, err := w.f.Seek(w.recC, io.SeekStart); err != nil {
			w.err = err
			return err
		}
		if err := w.sum.(encoding.BinaryUnmarshaler).UnmarshalBinary(w.recSum); err != nil {
			w.err = err
			return err
		}
		w.c = w.recC
		w.frames = w.frames[:w.recFrames]
		w.buf = w.buf[:0]
	} else {
		w.buf = w.buf[:w.recBuf]
	}
	w.u = w.recU
	return w.err // a write error earlier is sticky: the segment is unusable
}

// Commit writes the last frame, fsyncs the file, renames it into place and
// fsyncs its directory. The returned Segment is what a manifest records.
func (w *SegmentWriter) Commit() (Segment, error) {
	if w.inRecord {
		return Segment{}, errors.New("formats: Commit inside a record")
	}
	if w.err != nil {
		return Segment{}, w.err
	}
	if err := w.flushFrame(w.buf, w.u-int64(len(w.buf))); err != nil {
		return Segment{}, fmt.Errorf("write segment: %w", err)
	}
	w.buf = w.buf[:0]
	if err := w.f.Sync(); err != nil {
		return Segment{}, fmt.Errorf("sync segment: %w", err)
	}
	if err := w.f.Close(); err != nil {
		return Segment{}, fmt.Errorf("close segment: %w", err)
	}
	w.f = nil
	w.release()
	w.hook("segment-before-rename")
	if err := os.Rename(w.tmp, w.abs); err != nil {
		return Segment{}, fmt.Errorf("rename segment: %w", err)
	}
	if err := syncDir(filepath.Dir(w.abs)); err != nil {
		return Segment{}, err
	}
	return Segment{
		Path:    w.rel,
		Size:    w.c,
		SHA256:  hex.EncodeToString(w.sum.Sum(nil)),
		USize:   w.u,
		Records: w.records,
		Frames:  w.frames,
	}, nil
}

// Abort removes the segment being written. It is safe after Commit (then
// it does nothing).
func (w *SegmentWriter) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
		os.Remove(w.tmp)
	}
	w.release()
}

// release returns the writer's buffers to the pool; the writer cannot be
// used for records afterwards.
func (w *SegmentWriter) release() {
	if w.released {
		return
	}
	w.released = true
	if w.enc != nil {
		w.pool.putStream(w.enc)
	}
	w.pool.put(&segBuffers{buf: w.buf[:0], cbuf: w.cbuf[:0]})
	w.enc, w.frameEnc, w.buf, w.cbuf = nil, nil, nil, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

func newDecoder(r io.Reader) (*zstd.Decoder, error) {
	return zstd.NewReader(r,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxWindow(64<<20),
		zstd.WithDecoderMaxMemory(1<<30))
}

// frameAt returns the index of the frame holding uncompressed offset off.
func (s *Segment) frameAt(off int64) int {
	i := sort.Search(len(s.Frames), func(i int) bool { return s.Frames[i][1] > off })
	return i - 1
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r *bufio.Reader
	n int64
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Peek, Discard and Buffered let an UnquoteReader copy whole lines.
func (c *countingReader) Peek(n int) ([]byte, error) { return c.r.Peek(n) }
func (c *countingReader) Buffered() int              { return c.r.Buffered() }
func (c *countingReader) Discard(n int) (int, error) {
	k, err := c.r.Discard(n)
	c.n += int64(k)
	return k, err
}

// recordReader reads records from an uncompressed segment stream.
type recordReader struct {
	in  *countingReader
	unq *UnquoteReader
}

func newRecordReader(r io.Reader, startOff int64) *recordReader {
	var br *bufio.Reader
	return newRecordReaderBuf(r, startOff, &br)
}

// newRecordReaderBuf is newRecordReader with its read buffer kept in
// *br, reused by the next reader given the same br.
func newRecordReaderBuf(r io.Reader, startOff int64, br **bufio.Reader) *recordReader {
	if *br == nil {
		*br = bufio.NewReaderSize(r, 64<<10)
	} else {
		(*br).Reset(r)
	}
	in := &countingReader{r: *br, n: startOff}
	return &recordReader{in: in, unq: NewUnquoteReader(in)}
}

// fromLine reads and checks a record's separator line.
func (rr *recordReader) fromLine() error {
	var line []byte
	var b [1]byte
	for {
		if _, err := io.ReadFull(rr.unq, b[:]); err != nil {
			return fmt.Errorf("%w: reading From line: %v", ErrCorrupt, err)
		}
		line = append(line, b[0])
		if b[0] == '\n' {
			break
		}
		if len(line) > maxFromLine {
			return fmt.Errorf("%w: From line too long", ErrCorrupt)
		}
	}
	if len(line) < len(fromPrefix) || string(line[:len(fromPrefix)]) != fromPrefix {
		return fmt.Errorf("%w: record does not start with a From line", ErrCorrupt)
	}
	return nil
}

// body returns a reader of exactly size message bytes.
func (rr *recordReader) body(size int64) io.Reader {
	return &exactReader{r: io.LimitReader(rr.unq, size), left: size}
}

// separator reads the blank line after a message; lastLF tells whether the
// message ended in LF (else an extra LF ends its last line).
func (rr *recordReader) separator(lastLF bool) error {
	want := 1
	if !lastLF {
		want = 2
	}
	var b [1]byte
	for i := 0; i < want; i++ {
		if _, err := io.ReadFull(rr.unq, b[:]); err != nil || b[0] != '\n' {
			return fmt.Errorf("%w: missing blank line after message", ErrCorrupt)
		}
	}
	return nil
}

// exactReader fails with errShortRecord if r ends before left bytes.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("%w: %w", ErrCorrupt, errShortRecord)
	}
	if e.left == 0 && err == nil {
		err = io.EOF
	}
	return n, err
}

// recordCloser is a message reader with what Close releases.
type recordCloser struct {
	io.Reader
	close func() error
}

func (r *recordCloser) Close() error { return r.close() }

// frameStream decodes a segment frame by frame, checking that each frame
// decodes to exactly the length the frame table says.
type frameStream struct {
	f    *os.File
	seg  *Segment
	dec  *zstd.Decoder
	i    int
	left int64
	cur  io.Reader
}

func (fs *frameStream) Read(p []byte) (int, error) {
	for {
		if fs.cur != nil {
			n, err := fs.cur.Read(p)
			fs.left -= int64(n)
			if fs.left < 0 {
				return n, fmt.Errorf("%w: frame %d of %s is longer than recorded", ErrCorrupt, fs.i-1, fs.seg.Path)
			}
			if err == io.EOF {
				if fs.left != 0 {
					return n, fmt.Errorf("%w: frame %d of %s is shorter than recorded", ErrCorrupt, fs.i-1, fs.seg.Path)
				}
				fs.cur = nil
				if n > 0 {
					return n, nil
				}
				continue
			}
			if err != nil {
				return n, fmt.Errorf("%w: frame %d of %s: %v", ErrCorrupt, fs.i-1, fs.seg.Path, err)
			}
			return n, nil
		}
		if fs.i >= len(fs.seg.Frames) {
			return 0, io.EOF
		}
		c, u := fs.seg.Frames[fs.i][0], fs.seg.Frames[fs.i][1]
		endC, endU := fs.seg.Size, fs.seg.USize
		if fs.i+1 < len(fs.seg.Frames) {
			endC, endU = fs.seg.Frames[fs.i+1][0], fs.seg.Frames[fs.i+1][1]
		}
		if endC < c || endU < u {
			return 0, fmt.Errorf("%w: frame table of %s out of order", ErrCorrupt, fs.seg.Path)
		}
		if err := fs.dec.Reset(io.NewSectionReader(fs.f, c, endC-c)); err != nil {
			return 0, err
		}
		fs.cur, fs.left = fs.dec, endU-u
		fs.i++
	}
}
