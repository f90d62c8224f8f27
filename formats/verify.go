package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"

	"github.com/klauspost/compress/zstd"
)

// VerifyReport is what Verify found.
type VerifyReport struct {
	Snapshots int
	Segments  int
	Messages  int   // distinct stored records checked
	Bytes     int64 // message bytes hashed
	Problems  []string
	Orphans   []string // files no committed manifest names (left by interrupted runs)
}

// OK reports whether no problem was found.
func (r *VerifyReport) OK() bool { return len(r.Problems) == 0 }

// Verify checks every manifest, the chain of snapshots, every segment's
// checksum and frame table, and every stored message's size and SHA-256.
// Problems are collected, not returned as errors; an error means the check
// itself could not run. progress, if not nil, is called as the storage is
// checked (after each segment, or every few hundred message files).
func (a *Archive) Verify(progress func(seg string, done, total int)) (*VerifyReport, error) {
	rep := &VerifyReport{}
	files, err := a.ListSnapshots()
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			rep.Problems = append(rep.Problems, err.Error())
			return rep, nil
		}
		return nil, err
	}
	// A temporary index with every message's location, built by streaming
	// every manifest (their checksums, chain and records are checked as
	// they are applied): nothing holds the archive's messages in memory.
	ix, err := a.readIndex(0, true)
	if err != nil {
		if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrNewerVersion) {
			rep.Problems = append(rep.Problems, err.Error())
			return rep, nil
		}
		return nil, err
	}
	defer ix.Close()
	rep.Snapshots = len(files)
	v := &indexView{ix: ix}
	if ss, ok := a.store.(*segmentStorage); ok {
		err = ss.verifyIndex(ix, rep, progress)
	} else {
		err = a.store.verify(v, rep, progress)
	}
	if err == nil {
		rep.Orphans, _, err = a.orphans(v, false)
	}
	if err == nil {
		err = v.err
	}
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// verifyIndex is verify with the records read from an index with
// locations, segment by segment in path order: only one segment's
// records are held at a time.
func (s *segmentStorage) verifyIndex(ix *Index, rep *VerifyReport, progress func(string, int, int)) error {
	var segs []*Segment
	if err := ix.Segments(func(g *Segment) error {
		segs = append(segs, &Segment{Path: g.Path})
		return nil
	}); err != nil {
		return err
	}
	next := 0
	vb := &verifyBuffers{}
	defer vb.close()
	check := func(path string, byOff map[int64]*Message) error {
		g, err := ix.Segment(path)
		if err != nil {
			return err
		}
		n, b, probs := s.verifySegment(g, byOff, vb)
		rep.Segments++
		rep.Messages += n
		rep.Bytes += b
		rep.Problems = append(rep.Problems, probs...)
		if progress != nil {
			progress(path, rep.Segments, len(segs))
		}
		return nil
	}
	// Segments up to path (those before it hold no record).
	upTo := func(path string, byOff map[int64]*Message) error {
		for next < len(segs) && segs[next].Path < path {
			if err := check(segs[next].Path, nil); err != nil {
				return err
			}
			next++
		}
		if next < len(segs) && segs[next].Path == path {
			next++
			return check(path, byOff)
		}
		return nil
	}
	cur := ""
	byOff := map[int64]*Message{}
	err := ix.Locations(func(l *IndexLocation) error {
		if (Location{Seg: l.Seg, Off: l.Off}).isFile() || validMaildirPath(l.Seg) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): not a segment of this mbox archive", l.Seg, l.Key))
			return nil
		}
		if l.Seg != cur {
			if cur != "" {
				if err := upTo(cur, byOff); err != nil {
					return err
				}
			}
			cur, byOff = l.Seg, map[int64]*Message{}
		}
		if l.Conflict {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s offset %d: two different messages recorded at one place", l.Seg, l.Off))
		}
		byOff[l.Off] = &Message{Key: l.Key, SHA256: l.SHA256, Size: l.Size, Seg: l.Seg, Off: l.Off}
		return nil
	})
	if err != nil {
		return err
	}
	if cur != "" {
		if err := upTo(cur, byOff); err != nil {
			return err
		}
	}
	for ; next < len(segs); next++ {
		if err := check(segs[next].Path, nil); err != nil {
			return err
		}
	}
	return nil
}

// verifyBuffers are what verifySegment reuses from one segment and one
// message to the next: a copy buffer, the hashes and the decompressor.
// Allocated per message (io.Copy's 32 KiB buffer) they were most of what
// verify allocated, and the garbage collector's work half of its CPU.
type verifyBuffers struct {
	buf     []byte
	seg, mh hash.Hash
	dec     *zstd.Decoder
	br      *bufio.Reader
}

func (vb *verifyBuffers) close() {
	if vb.dec != nil {
		vb.dec.Close()
		vb.dec = nil
	}
}

// verifySegment checks one committed segment: its checksum, its frame
// table and every record byOff names (by uncompressed offset).
func (s *segmentStorage) verifySegment(g *Segment, byOff map[int64]*Message, vb *verifyBuffers) (n int, bytes int64, probs []string) {
	bad := func(format string, args ...any) {
		probs = append(probs, g.Path+": "+fmt.Sprintf(format, args...))
	}
	f, err := os.Open(filepath.Join(s.root, filepath.FromSlash(g.Path)))
	if err != nil {
		bad("%v", err)
		return
	}
	defer f.Close()
	if vb.buf == nil {
		vb.buf, vb.seg, vb.mh = make([]byte, 64<<10), sha256.New(), sha256.New()
	}
	h := vb.seg
	h.Reset()
	size, err := io.CopyBuffer(onlyWriter{h}, onlyReader{f}, vb.buf)
	if err != nil {
		bad("read: %v", err)
		return
	}
	if size != g.Size {
		bad("size %d, manifest says %d", size, g.Size)
		return
	}
	if hex.EncodeToString(h.Sum(nil)) != g.SHA256 {
		bad("checksum mismatch: the file was damaged")
		return
	}
	if len(byOff) != g.Records {
		bad("%d records referenced, segment holds %d", len(byOff), g.Records)
	}
	offs := make([]int64, 0, len(byOff))
	for off := range byOff {
		offs = append(offs, off)
	}
	sort.Slice(offs, func(i, j int) bool { return offs[i] < offs[j] })
	if vb.dec == nil {
		dec, err := newDecoder(nil)
		if err != nil {
			bad("%v", err)
			return
		}
		vb.dec = dec
	}
	rr := newRecordReaderBuf(&frameStream{f: f, seg: g, dec: vb.dec}, 0, &vb.br)
	var sum [sha256.Size]byte
	for _, off := range offs {
		m := byOff[off]
		if rr.in.n != off {
			bad("record at offset %d expected, stream is at %d", off, rr.in.n)
			return
		}
		if err := rr.fromLine(); err != nil {
			bad("offset %d: %v", off, err)
			return
		}
		mh := vb.mh
		mh.Reset()
		lt := lastByte{w: mh, last: '\n'}
		k, err := io.CopyBuffer(&lt, onlyReader{rr.body(m.Size)}, vb.buf)
		bytes += k
		if err != nil {
			bad("message %s: %v", m.Key, err)
			return
		}
		if !sameHex(mh.Sum(sum[:0]), m.SHA256) {
			bad("message %s: SHA-256 mismatch", m.Key)
		}
		if err := rr.separator(lt.last == '\n'); err != nil {
			bad("message %s: %v", m.Key, err)
			return
		}
		n++
	}
	if rest, err := io.CopyBuffer(io.Discard, onlyReader{rr.in}, vb.buf); err != nil {
		bad("%v", err)
	} else if rest != 0 {
		bad("%d bytes after the last recorded message", rest)
	} else if rr.in.n != g.USize {
		bad("uncompressed size %d, manifest says %d", rr.in.n, g.USize)
	}
	return
}

// onlyReader and onlyWriter hide a ReaderFrom or WriterTo, so that
// io.CopyBuffer uses the buffer given (an *os.File's WriteTo and
// io.Discard's ReadFrom allocate or pool their own).
type onlyReader struct{ io.Reader }

type onlyWriter struct{ io.Writer }

// sameHex reports whether sum spelled in lower-case hex is s.
func sameHex(sum []byte, s string) bool {
	const digits = "0123456789abcdef"
	if len(s) != 2*len(sum) {
		return false
	}
	for i, b := range sum {
		if s[2*i] != digits[b>>4] || s[2*i+1] != digits[b&15] {
			return false
		}
	}
	return true
}

type lastByte struct {
	w    io.Writer
	last byte
}

func (l *lastByte) Write(p []byte) (int, error) {
	if len(p) > 0 {
		l.last = p[len(p)-1]
	}
	return l.w.Write(p)
}
