package formats

import (
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/zstd"
)

// segmentStorage keeps messages as zstd mboxrd segments: one file per
// folder per writer per run (folders/DIR/SEQ-ID[-pPART].mbox.zst), never
// rewritten once committed, each listed with its frame table in the
// manifest that commits it. The same bytes are stored once per folder.
type segmentStorage struct {
	root string
	bufs *bufferPool
	hook func(point string)
}

var _ storage = (*segmentStorage)(nil)

func (s *segmentStorage) newWriter(dir string, seq int, id string, part int) (RecordWriter, error) {
	name := fmt.Sprintf("%08d-%s.mbox.zst", seq, id)
	if part > 0 {
		name = fmt.Sprintf("%08d-%s-p%d.mbox.zst", seq, id, part)
	}
	w, err := newSegmentWriter(s.root, FoldersDir+"/"+dir+"/"+name, s.bufs, s.hook)
	if err != nil {
		return nil, err
	}
	return segmentRecords{w}, nil
}

// segmentRecords is a SegmentWriter as a RecordWriter.
type segmentRecords struct{ *SegmentWriter }

func (s segmentRecords) BeginRecord(date time.Time, _ []string) error {
	return s.SegmentWriter.BeginRecord(date)
}

func (s segmentRecords) EndRecord() (string, int64, error) {
	off, _, err := s.SegmentWriter.EndRecord()
	return s.rel, off, err
}

func (s segmentRecords) Owns(loc string) bool { return loc == s.rel }

func (s segmentRecords) Commit() (*Segment, error) {
	g, err := s.SegmentWriter.Commit()
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// reuseStored: a segment holds the same bytes once for every message of
// its folder that has them.
func (s *segmentStorage) reuseStored(bool) bool { return true }

// linkStored: segments are never linked (the same bytes are one record).
func (s *segmentStorage) linkStored() bool { return false }

// storedBytes is the compressed size of the segments each snapshot
// commits (a segment is committed once).
func (s *segmentStorage) storedBytes(snaps []*Snapshot) []int64 {
	out := make([]int64, len(snaps))
	for i, snap := range snaps {
		for _, g := range snap.Segments {
			out[i] += g.Size
		}
	}
	return out
}

// syncFlags: segments keep no flags; manifests hold them.
func (s *segmentStorage) syncFlags(iter.Seq[storedFlags]) (int, error) { return 0, nil }

// orphans lists the files of folder directories that are not committed
// segments: segments of runs that never committed, their temporary files.
func (s *segmentStorage) orphans(idx index, _ bool) (out, marks []string, err error) {
	dirs, err := os.ReadDir(filepath.Join(s.root, FoldersDir))
	if err != nil {
		return nil, nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(s.root, FoldersDir, d.Name()))
		if err != nil {
			return nil, nil, err
		}
		for _, f := range files {
			rel := FoldersDir + "/" + d.Name() + "/" + f.Name()
			if idx.segment(rel) == nil {
				out = append(out, rel)
			}
		}
	}
	return out, nil, nil
}

// verify checks every committed segment (checksum, frame table) and every
// record in it. A message located outside the segments is a problem.
func (s *segmentStorage) verify(idx index, rep *VerifyReport, progress func(string, int, int)) error {
	// Records per segment, by offset.
	recs := map[string]map[int64]*Message{}
	err := idx.eachStored(func(m *Message) error {
		if m.Location().isFile() {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s (message %s): not a segment of this mbox archive", m.Seg, m.Key))
			return nil
		}
		byOff := recs[m.Seg]
		if byOff == nil {
			byOff = map[int64]*Message{}
			recs[m.Seg] = byOff
		}
		if prev := byOff[m.Off]; prev != nil && (prev.SHA256 != m.SHA256 || prev.Size != m.Size) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("%s offset %d: two different messages recorded at one place", m.Seg, m.Off))
			return nil
		}
		byOff[m.Off] = m
		return nil
	})
	if err != nil {
		return err
	}
	paths := idx.segmentPaths()
	sort.Strings(paths)
	vb := &verifyBuffers{}
	defer vb.close()
	for i, p := range paths {
		n, b, probs := s.verifySegment(idx.segment(p), recs[p], vb)
		rep.Segments++
		rep.Messages += n
		rep.Bytes += b
		rep.Problems = append(rep.Problems, probs...)
		if progress != nil {
			progress(p, i+1, len(paths))
		}
	}
	return nil
}

func (s *segmentStorage) newReader(idx index) storageReader {
	return &segmentReader{root: s.root, idx: idx}
}

// segmentReader reads records from segments. Messages read in archive
// order (the order a FolderState lists them) are decompressed in one pass
// over their segment; any other order works too, restarting at the frame
// that holds the message.
type segmentReader struct {
	root string
	idx  index
	f    *os.File
	seg  *Segment
	dec  *zstd.Decoder
	rr   *recordReader
	body *bodyReader // the body handed out last
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

func (r *segmentReader) open(m *Message) (io.Reader, error) {
	g := r.idx.segment(m.Seg)
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
func (r *segmentReader) continueAt(g *Segment, off, frameU int64) bool {
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
func (r *segmentReader) seek(g *Segment, i int) error {
	if r.seg != g {
		r.closeFile()
		f, err := os.Open(filepath.Join(r.root, filepath.FromSlash(g.Path)))
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
func (r *segmentReader) reset() { r.rr, r.body = nil, nil }

func (r *segmentReader) closeFile() {
	if r.f != nil {
		r.f.Close()
	}
	r.f, r.seg, r.rr, r.body = nil, nil, nil, nil
}

func (r *segmentReader) close() {
	r.closeFile()
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
}
