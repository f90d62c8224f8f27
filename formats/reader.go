package formats

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/klauspost/compress/zstd"
)

// MessageReader reads archived messages one after another. Messages read
// in archive order (the order a FolderState lists them) are decompressed
// in one pass over their segment; any other order works too, restarting at
// the frame that holds the message. It is not safe for concurrent use.
type MessageReader struct {
	a    *Archive
	st   *State
	f    *os.File
	seg  *Segment
	dec  *zstd.Decoder
	rr   *recordReader
	body *bodyReader // the body handed out last
}

// NewMessageReader returns a reader of the messages of st.
func (a *Archive) NewMessageReader(st *State) *MessageReader {
	return &MessageReader{a: a, st: st}
}

// bodyReader is one message's bytes; it remembers the last byte, which
// tells how the record ends.
type bodyReader struct {
	r    *exactReader
	last byte
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.last = p[n-1]
	}
	return n, err
}

// Open returns a reader of m's exact bytes, valid until the next Open or
// Close. It fails with ErrCorrupt if the stored record is damaged or
// shorter than recorded; it does not check the hash.
func (r *MessageReader) Open(m *Message) (io.Reader, error) {
	if ValidMaildirPath(m.Seg) {
		r.closeFile()
		f, err := r.a.openMaildirFile(m.Seg)
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", m.Key, err)
		}
		r.f = f
		src, err := r.a.maildirReader(f, &r.dec)
		if err != nil {
			return nil, err
		}
		return &exactReader{r: io.LimitReader(src, m.Size), left: m.Size}, nil
	}
	g := r.st.Segments[m.Seg]
	if g == nil {
		return nil, fmt.Errorf("%w: message %s: unknown segment %s", ErrCorrupt, m.Key, m.Seg)
	}
	i := g.frameAt(m.Off)
	if i < 0 || m.Off >= g.USize {
		return nil, fmt.Errorf("%w: offset %d outside segment %s", ErrCorrupt, m.Off, g.Path)
	}
	frameU := g.Frames[i][1]
	if !r.continueAt(g, m.Off, frameU) {
		if err := r.seek(g, i); err != nil {
			return nil, err
		}
	}
	if _, err := io.CopyN(io.Discard, r.rr.in, m.Off-r.rr.in.n); err != nil {
		r.reset()
		return nil, fmt.Errorf("%w: seek in segment %s: %v", ErrCorrupt, g.Path, err)
	}
	if err := r.rr.fromLine(); err != nil {
		r.reset()
		return nil, fmt.Errorf("segment %s offset %d: %w", g.Path, m.Off, err)
	}
	body := r.rr.body(m.Size).(*exactReader)
	r.body = &bodyReader{r: body, last: '\n'}
	return r.body, nil
}

// continueAt reports whether the stream can go on to off from where the
// last message ended, which beats restarting at the frame.
func (r *MessageReader) continueAt(g *Segment, off, frameU int64) bool {
	if r.seg != g || r.rr == nil || r.body == nil || r.body.r.left != 0 {
		return false
	}
	if err := r.rr.separator(r.body.last == '\n'); err != nil {
		return false
	}
	r.body = nil
	pos := r.rr.in.n
	return off >= pos && pos >= frameU
}

// seek restarts decompression at frame i of g.
func (r *MessageReader) seek(g *Segment, i int) error {
	if r.seg != g {
		r.closeFile()
		f, err := os.Open(filepath.Join(r.a.Root, filepath.FromSlash(g.Path)))
		if err != nil {
			return fmt.Errorf("open segment: %w", err)
		}
		r.f, r.seg = f, g
	}
	c, u := g.Frames[i][0], g.Frames[i][1]
	src := io.NewSectionReader(r.f, c, g.Size-c)
	if r.dec == nil {
		dec, err := newDecoder(src)
		if err != nil {
			return err
		}
		r.dec = dec
	} else if err := r.dec.Reset(src); err != nil {
		return err
	}
	r.rr = newRecordReader(r.dec, u)
	r.body = nil
	return nil
}

// reset forgets the stream position after an error.
func (r *MessageReader) reset() { r.rr, r.body = nil, nil }

func (r *MessageReader) closeFile() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.seg, r.rr, r.body = nil, nil, nil, nil
}

// Close releases the open segment and the decompressor.
func (r *MessageReader) Close() error {
	r.closeFile()
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	return nil
}
