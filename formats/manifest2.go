package formats

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Manifest version 2 (docs/FORMAT.md, "Manifests"): a small header file,
// snapshots/SEQ-ID.json, holding the snapshot without its records, and
// per folder one or more delta files, snapshots/SEQ-ID/NAME.jsonl.zst,
// holding the records as zstd-compressed JSON lines. Both are written
// and read streaming: nothing holds a snapshot's records in memory.

// ManifestVersion2 is the manifest version with delta files.
const ManifestVersion2 = 2

// maxManifestVersion is the newest manifest version this package reads.
const maxManifestVersion = ManifestVersion2

// Delta is a version 2 header's entry for one folder's records: the
// folder's event (on its first entry only) and the delta file holding the
// records, with their counts. A folder may have several entries in one
// snapshot (several writers, or a commit retried); their records apply in
// the order the entries are listed.
type Delta struct {
	Folder string `json:"folder"`
	Event  string `json:"event,omitempty"`
	From   string `json:"from,omitempty"` // old name, for EventRenamed
	// Path is the delta file, snapshots/SEQ-ID/NAME.jsonl.zst; absent
	// when the entry has no records (an event alone).
	Path    string `json:"path,omitempty"`
	Size    int64  `json:"size,omitempty"`   // of the compressed file
	SHA256  string `json:"sha256,omitempty"` // of the compressed file
	Records int    `json:"records,omitempty"`
	// Counts of the records by kind, and of the added messages whose
	// bytes this run stored (not duplicates) with their size.
	Added       int   `json:"added,omitempty"`
	FlagChanges int   `json:"flag_changes,omitempty"`
	Gone        int   `json:"gone,omitempty"`
	Stored      int   `json:"stored,omitempty"`
	Bytes       int64 `json:"bytes,omitempty"`
}

// Header is a snapshot as a reader sees it without its records: for a
// version 2 manifest the header file's snapshot, whose Deltas name the
// delta files; for a version 1 manifest the snapshot with Changes
// replaced by one Delta per change, with counts but no Path (its records
// are read from the manifest itself).
type Header struct {
	Snapshot
	Deltas []Delta `json:"deltas,omitempty"`
}

// DeltaKind says what a delta record is.
type DeltaKind byte

// Record kinds, as a delta file spells them.
const (
	RecordAdded DeltaKind = 'a' // a message added (Record.Message)
	RecordFlags DeltaKind = 'f' // a message's new flags (Record.Key, Record.Flags)
	RecordGone  DeltaKind = 'g' // a message gone from the source (Record.Key)
)

// DeltaRecord is one record of a folder's delta.
type DeltaRecord struct {
	Kind    DeltaKind
	Message Message  // RecordAdded
	Key     string   // RecordFlags, RecordGone
	Flags   []string // RecordFlags
}

// RecordReader streams the records of one Delta in order. Next returns
// io.EOF after the last one; the Record it returns is valid until the
// next call.
type RecordReader interface {
	Next() (*DeltaRecord, error)
	Close() error
}

// DeltaName is the delta file name of folder in a snapshot: FolderDir's
// name with the suffix .jsonl.zst, or, for a folder's n-th file (n > 1)
// in the same snapshot, NAME~n.jsonl.zst.
func DeltaName(folder string, n int) string {
	d := FolderDir(folder)
	if n > 1 {
		d += fmt.Sprintf("~%d", n)
	}
	return d + deltaSuffix
}

const deltaSuffix = ".jsonl.zst"

// deltaDir is the directory of a snapshot's delta files, relative to the
// archive.
func deltaDir(seq int, id string) string {
	return SnapshotsDir + "/" + fmt.Sprintf("%08d-%s", seq, id)
}

// validDeltaPath reports whether p is a delta file path of snapshot
// seq/id: snapshots/SEQ-ID/NAME.jsonl.zst with a safe NAME.
func validDeltaPath(p string, seq int, id string) bool {
	dir, name := path.Split(p)
	return dir == deltaDir(seq, id)+"/" && strings.HasSuffix(name, deltaSuffix) &&
		len(name) > len(deltaSuffix) && ValidDir(name) && path.Clean(p) == p
}

// deltaLine1 is a delta file's first line.
type deltaLine1 struct {
	Version int    `json:"mailvault_delta"`
	Folder  string `json:"folder"`
}

// deltaEncoderOptions: JSON lines compress well at the fastest level; a
// small window keeps each open writer's memory low (several folders are
// written at once).
var deltaEncoderOptions = []zstd.EOption{
	zstd.WithEncoderLevel(zstd.SpeedFastest),
	zstd.WithEncoderConcurrency(1),
	zstd.WithWindowSize(256 << 10),
	zstd.WithEncoderCRC(true),
	zstd.WithLowerEncoderMem(true),
}

// deltaFrame is how many uncompressed bytes go into one zstd frame.
const deltaFrame = 256 << 10

// DeltaWriter streams one folder's records into a delta file. The file
// is written under a temporary name in snapshots/ and gets its final
// name, in the directory of the snapshot that commits it, only when
// Commit is called: records may be written before the writer knows which
// snapshot (a checkpoint or the run's last) will hold them. Methods are
// not safe for concurrent use.
type DeltaWriter struct {
	a      *Archive
	folder string
	tmp    string // absolute
	f      *os.File
	out    *bufio.Writer // the compressed file
	h      hash.Hash     // of the compressed bytes
	size   int64
	enc    *zstd.Encoder
	buf    []byte // uncompressed bytes of the frame being filled
	d      Delta
	err    error
	sealed bool // Seal was called: the file is complete
	placed bool // Commit was called
}

// deltaNames serialises the choice of delta file names.
var deltaNames sync.Mutex

// NewDelta starts a delta file for folder.
func (a *Archive) NewDelta(folder string) (*DeltaWriter, error) {
	dir := filepath.Join(a.Root, SnapshotsDir)
	f, err := os.CreateTemp(dir, "delta-*"+deltaSuffix+".tmp")
	if err != nil {
		return nil, fmt.Errorf("create delta file: %w", err)
	}
	enc, err := zstd.NewWriter(nil, deltaEncoderOptions...)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	w := &DeltaWriter{a: a, folder: folder, tmp: f.Name(), f: f, h: sha256.New(), enc: enc,
		d: Delta{Folder: folder}}
	w.out = bufio.NewWriterSize(writerFunc(w.fileWrite), 64<<10)
	line, _ := json.Marshal(deltaLine1{Version: ManifestVersion2, Folder: folder})
	w.buf = append(append(w.buf, line...), '\n')
	return w, nil
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (w *DeltaWriter) fileWrite(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.size += int64(n)
	return n, err
}

// Records is the number of records written so far.
func (w *DeltaWriter) Records() int { return w.d.Records }

// Folder is the folder the writer was started for.
func (w *DeltaWriter) Folder() string { return w.folder }

func (w *DeltaWriter) line(kind byte, v any) error {
	if w.err != nil {
		return w.err
	}
	b, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return err
	}
	w.buf = append(w.buf, `{"`...)
	w.buf = append(w.buf, kind)
	w.buf = append(w.buf, `":`...)
	w.buf = append(w.buf, b...)
	w.buf = append(w.buf, "}\n"...)
	w.d.Records++
	if len(w.buf) >= deltaFrame {
		return w.flushFrame()
	}
	return nil
}

func (w *DeltaWriter) flushFrame() error {
	if len(w.buf) == 0 || w.err != nil {
		return w.err
	}
	frame := w.enc.EncodeAll(w.buf, nil)
	if _, err := w.out.Write(frame); err != nil {
		w.err = fmt.Errorf("write delta file: %w", err)
		return w.err
	}
	w.buf = w.buf[:0]
	return nil
}

// Add records a message added to the folder; stored says whether this
// run wrote its bytes (false: a duplicate recorded with the location of
// the copy already stored).
func (w *DeltaWriter) Add(m *Message, stored bool) error {
	if w.err != nil {
		return w.err
	}
	n := len(w.buf)
	w.buf = append(w.buf, `{"a":`...)
	var ok bool
	if w.buf, ok = appendMessageJSON(w.buf, m); ok {
		w.buf = append(w.buf, "}\n"...)
		w.d.Records++
		if len(w.buf) >= deltaFrame {
			if err := w.flushFrame(); err != nil {
				return err
			}
		}
	} else {
		w.buf = w.buf[:n]
		if err := w.line('a', m); err != nil {
			return err
		}
	}
	w.d.Added++
	if stored {
		w.d.Stored++
		w.d.Bytes += m.Size
	}
	return nil
}

// Flags records a message's new flag set.
func (w *DeltaWriter) Flags(key string, flags []string) error {
	if err := w.line('f', FlagChange{Key: key, Flags: flags}); err != nil {
		return err
	}
	w.d.FlagChanges++
	return nil
}

// Gone records a message no longer on the source.
func (w *DeltaWriter) Gone(key string) error {
	if err := w.line('g', key); err != nil {
		return err
	}
	w.d.Gone++
	return nil
}

// Seal completes the file and makes it durable under its temporary
// name: the last frame is written, the file fsynced and closed, and the
// writer's buffers and encoder released, so that a writer waiting for
// its snapshot holds no file and little memory. No record can be added
// after it; Commit still places the file. Sealing twice is a no-op.
func (w *DeltaWriter) Seal() error {
	if w.sealed {
		return nil
	}
	if w.f == nil {
		return errors.New("formats: delta writer used after commit")
	}
	if w.d.Records == 0 {
		w.Abort()
		w.sealed = true
		return nil
	}
	if err := w.flushFrame(); err != nil {
		w.Abort()
		return err
	}
	if err := w.out.Flush(); err != nil {
		w.Abort()
		return fmt.Errorf("write delta file: %w", err)
	}
	if err := w.f.Sync(); err != nil {
		w.Abort()
		return fmt.Errorf("sync delta file: %w", err)
	}
	if err := w.f.Close(); err != nil {
		w.f = nil
		os.Remove(w.tmp)
		return fmt.Errorf("close delta file: %w", err)
	}
	w.f = nil
	w.enc.Close()
	w.enc, w.buf, w.out = nil, nil, nil
	w.d.Size, w.d.SHA256 = w.size, hex.EncodeToString(w.h.Sum(nil))
	w.sealed = true
	if w.err == nil {
		w.err = errors.New("formats: delta writer sealed")
	}
	return nil
}

// Commit makes the records durable as a delta file of snapshot seq/id:
// the file is completed, fsynced (Seal), renamed to its final name (the
// first free one of DeltaName(folder, 1), DeltaName(folder, 2), …) and
// its directory fsynced. It returns the header's entry for it (without an
// event; the caller sets Event and From). A writer with no records
// writes no file: the entry has no Path. The writer cannot be used after
// Commit.
func (w *DeltaWriter) Commit(seq int, id string) (Delta, error) {
	if w.placed {
		return Delta{}, errors.New("formats: delta writer used after commit")
	}
	if err := w.Seal(); err != nil {
		return Delta{}, err
	}
	w.placed = true
	if w.d.Records == 0 {
		return Delta{Folder: w.folder}, nil
	}
	rel, err := w.a.placeDelta(w.tmp, w.folder, seq, id)
	if err != nil {
		os.Remove(w.tmp)
		return Delta{}, err
	}
	w.d.Path = rel
	return w.d, nil
}

// Counts returns the writer's records so far by kind, as the header's
// entry will count them.
func (w *DeltaWriter) Counts() Delta { return w.d }

// placeDelta renames a completed delta file into the snapshot's
// directory under the first free name, and fsyncs what it changed.
func (a *Archive) placeDelta(tmp, folder string, seq int, id string) (string, error) {
	deltaNames.Lock()
	defer deltaNames.Unlock()
	dir := deltaDir(seq, id)
	abs := filepath.Join(a.Root, filepath.FromSlash(dir))
	if _, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(abs, 0o700); err != nil {
			return "", fmt.Errorf("create delta directory: %w", err)
		}
		// The directory's entry is durable before any manifest names it.
		if err := syncDir(filepath.Join(a.Root, SnapshotsDir)); err != nil {
			return "", err
		}
	}
	for n := 1; ; n++ {
		name := DeltaName(folder, n)
		final := filepath.Join(abs, name)
		if _, err := os.Lstat(final); err == nil {
			continue
		}
		a.hook("delta-before-rename")
		if err := os.Rename(tmp, final); err != nil {
			return "", fmt.Errorf("commit delta file: %w", err)
		}
		if err := syncDir(abs); err != nil {
			return "", err
		}
		return dir + "/" + name, nil
	}
}

// Abort removes the file; it is safe after Commit.
func (w *DeltaWriter) Abort() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
		os.Remove(w.tmp)
	} else if w.sealed && !w.placed {
		os.Remove(w.tmp)
	}
	if w.enc != nil {
		w.enc.Close()
		w.enc = nil
	}
}

// WriteHeader writes the file form of a version 2 manifest:
//
//	{"mailvault_manifest":2,"snapshot":BODY,"sha256":"HEX"}
//
// where BODY is the header as compact JSON (without changes) and HEX its
// SHA-256.
func WriteHeader(w io.Writer, h *Header) error {
	if len(h.Changes) > 0 {
		return errors.New("formats: a version 2 header holds no changes")
	}
	body, err := json.Marshal(h)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	_, err = fmt.Fprintf(w, `{"mailvault_manifest":%d,"snapshot":%s,"sha256":"%s"}`, ManifestVersion2, body, hex.EncodeToString(sum[:]))
	return err
}

// CommitHeader commits a version 2 manifest: the header is written to a
// temporary file, fsynced, renamed into place and the directory fsynced.
// Every delta file it names must have been committed (DeltaWriter.Commit)
// and every segment too. A snapshot that records an error or a failed
// folder is committed as partial, whatever its Status said.
func (a *Archive) CommitHeader(h *Header) error {
	h.Version = ManifestVersion2
	h.settleStatus()
	if err := h.validate(); err != nil {
		return fmt.Errorf("formats: refusing to commit an invalid snapshot: %w", err)
	}
	for _, d := range h.Deltas {
		if d.Path == "" {
			continue
		}
		fi, err := os.Stat(filepath.Join(a.Root, filepath.FromSlash(d.Path)))
		if err != nil || fi.Size() != d.Size {
			return fmt.Errorf("formats: refusing to commit snapshot %s: delta file %s is not as recorded", h.ID, d.Path)
		}
	}
	final := filepath.Join(a.Root, SnapshotsDir, snapshotFileName(h.Seq, h.ID))
	if _, err := os.Stat(final); err == nil {
		return fmt.Errorf("formats: snapshot %s already exists", h.ID)
	}
	return writeAtomic(final, func(w io.Writer) error { return WriteHeader(w, h) }, a.hook)
}

// validate checks a header: the snapshot's own rules, and its deltas.
func (h *Header) validate() error {
	if len(h.Changes) > 0 {
		return errors.New("changes in a version 2 header")
	}
	if err := h.Snapshot.validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, d := range h.Deltas {
		if err := validEvent(d.Folder, d.Event, d.From); err != nil {
			return err
		}
		if seen[d.Folder] && d.Event != "" {
			return fmt.Errorf("folder %q: event on a later delta entry", d.Folder)
		}
		seen[d.Folder] = true
		if d.Records < 0 || d.Added < 0 || d.FlagChanges < 0 || d.Gone < 0 || d.Stored < 0 || d.Bytes < 0 ||
			d.Stored > d.Added || d.Added+d.FlagChanges+d.Gone != d.Records {
			return fmt.Errorf("folder %q: bad delta counts", d.Folder)
		}
		if d.Records == 0 {
			if d.Path != "" || d.Size != 0 || d.SHA256 != "" {
				return fmt.Errorf("folder %q: delta file without records", d.Folder)
			}
			continue
		}
		if !validDeltaPath(d.Path, h.Seq, h.ID) || !validSHA(d.SHA256) || d.Size <= 0 {
			return fmt.Errorf("folder %q: bad delta file %q", d.Folder, d.Path)
		}
	}
	paths := map[string]bool{}
	for _, d := range h.Deltas {
		if d.Path != "" {
			if paths[d.Path] {
				return fmt.Errorf("delta file %q named twice", d.Path)
			}
			paths[d.Path] = true
		}
	}
	return nil
}

// validEvent checks a change's event.
func validEvent(folder, event, from string) error {
	switch event {
	case "", EventCreated, EventDeleted, EventUIDValidity:
	case EventRenamed:
		if from == "" {
			return fmt.Errorf("folder %q: rename without old name", folder)
		}
	default:
		return fmt.Errorf("folder %q: bad event %q", folder, event)
	}
	return nil
}

// checkRecord applies the rules of a manifest to one record.
func checkRecord(folder string, r *DeltaRecord) error {
	switch r.Kind {
	case RecordAdded:
		m := &r.Message
		if m.Key == "" || !validSHA(m.SHA256) || m.Size < 0 || m.Off < 0 || !m.Location().Valid() {
			return fmt.Errorf("folder %q: bad message entry %q", folder, m.Key)
		}
	case RecordFlags:
		if r.Key == "" {
			return fmt.Errorf("folder %q: flag change without key", folder)
		}
	case RecordGone:
		if r.Key == "" {
			return fmt.Errorf("folder %q: empty key in gone list", folder)
		}
	default:
		return fmt.Errorf("folder %q: unknown record", folder)
	}
	return nil
}

// maxDeltaLine bounds one line of a delta file: a message entry's header
// fields are at most 998 bytes each; flags lists are small.
const maxDeltaLine = 1 << 20

// deltaReader reads one delta file.
type deltaReader struct {
	f       *os.File
	dec     *zstd.Decoder
	br      *bufio.Reader
	d       Delta
	n       Delta // counts so far
	rec     DeltaRecord
	line    []byte
	wire    deltaWire
	msg     Message // the added message of the last line read by hand
	started bool
}

// deltaWire is a record line.
type deltaWire struct {
	A *Message        `json:"a"`
	F *FlagChange     `json:"f"`
	G *string         `json:"g"`
	X json.RawMessage `json:"-"`
}

// openDelta opens the delta file of entry d after checking its size and
// SHA-256 against the header (a first, sequential read of the file), so
// that every record it then returns is what the writer wrote.
func (a *Archive) openDelta(h *Header, d *Delta) (*deltaReader, error) {
	if !validDeltaPath(d.Path, h.Seq, h.ID) {
		return nil, fmt.Errorf("%w: snapshot %s: bad delta file %q", ErrCorrupt, h.ID, d.Path)
	}
	f, err := os.Open(filepath.Join(a.Root, filepath.FromSlash(d.Path)))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: snapshot %s: delta file %s is missing", ErrCorrupt, h.ID, d.Path)
		}
		return nil, fmt.Errorf("read delta file: %w", err)
	}
	hs := sha256.New()
	n, err := io.Copy(hs, f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read delta file %s: %w", d.Path, err)
	}
	if n != d.Size || hex.EncodeToString(hs.Sum(nil)) != d.SHA256 {
		f.Close()
		return nil, fmt.Errorf("%w: snapshot %s: delta file %s does not match its checksum", ErrCorrupt, h.ID, d.Path)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	dec, err := newDecoder(bufio.NewReaderSize(f, 64<<10))
	if err != nil {
		f.Close()
		return nil, err
	}
	return &deltaReader{f: f, dec: dec, br: bufio.NewReaderSize(dec, 64<<10), d: *d}, nil
}

func (r *deltaReader) corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: delta file %s: %s", ErrCorrupt, r.d.Path, fmt.Sprintf(format, args...))
}

// readLine returns the next line without its LF, or io.EOF.
func (r *deltaReader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		r.line = append(r.line, frag...)
		if len(r.line) > maxDeltaLine {
			return nil, r.corrupt("line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			if len(r.line) > 0 {
				return nil, r.corrupt("last line not ended")
			}
			return nil, io.EOF
		}
		if err != nil {
			return nil, r.corrupt("%v", err)
		}
		return r.line[:len(r.line)-1], nil
	}
}

func (r *deltaReader) Next() (*DeltaRecord, error) {
	if !r.started {
		r.started = true
		line, err := r.readLine()
		if err != nil {
			if err == io.EOF {
				return nil, r.corrupt("empty")
			}
			return nil, err
		}
		var l1 deltaLine1
		if err := json.Unmarshal(line, &l1); err != nil || l1.Version != ManifestVersion2 || l1.Folder != r.d.Folder {
			return nil, r.corrupt("first line does not name folder %q", r.d.Folder)
		}
	}
	line, err := r.readLine()
	if err == io.EOF {
		if r.n.Added != r.d.Added || r.n.FlagChanges != r.d.FlagChanges || r.n.Gone != r.d.Gone {
			return nil, r.corrupt("holds %d/%d/%d records, the manifest says %d/%d/%d",
				r.n.Added, r.n.FlagChanges, r.n.Gone, r.d.Added, r.d.FlagChanges, r.d.Gone)
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	w := &r.wire
	w.A, w.F, w.G = nil, nil, nil
	if decodeAddLine(line, &r.msg) {
		w.A = &r.msg
	} else if err := json.Unmarshal(line, w); err != nil {
		return nil, r.corrupt("record %d: %v", r.n.Records+1, err)
	}
	rec := &r.rec
	switch {
	case w.A != nil && w.F == nil && w.G == nil:
		*rec = DeltaRecord{Kind: RecordAdded, Message: *w.A}
		r.n.Added++
	case w.F != nil && w.A == nil && w.G == nil:
		*rec = DeltaRecord{Kind: RecordFlags, Key: w.F.Key, Flags: w.F.Flags}
		r.n.FlagChanges++
	case w.G != nil && w.A == nil && w.F == nil:
		*rec = DeltaRecord{Kind: RecordGone, Key: *w.G}
		r.n.Gone++
	default:
		return nil, r.corrupt("record %d is not one of a, f, g", r.n.Records+1)
	}
	r.n.Records++
	if r.n.Added > r.d.Added || r.n.FlagChanges > r.d.FlagChanges || r.n.Gone > r.d.Gone {
		return nil, r.corrupt("more records than the manifest says")
	}
	if err := checkRecord(r.d.Folder, rec); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return rec, nil
}

func (r *deltaReader) Close() error {
	if r.dec != nil {
		r.dec.Close()
		r.dec = nil
	}
	if r.f != nil {
		err := r.f.Close()
		r.f = nil
		return err
	}
	return nil
}

// emptyRecords is the RecordReader of an entry without records.
type emptyRecords struct{}

func (emptyRecords) Next() (*DeltaRecord, error) { return nil, io.EOF }
func (emptyRecords) Close() error                { return nil }

// ManifestReader reads one committed manifest of either version without
// holding its records: Header is read (and checked) when it is opened,
// the records of each delta entry are streamed by Records.
type ManifestReader struct {
	a       *Archive
	sf      SnapshotFile
	version int
	h       *Header
	f       *os.File // version 1: the manifest, for its records
	scan    *manifestScan
}

// maxHeader bounds what a reader holds of a manifest besides its records
// (folders, segments, deltas).
const maxHeader = 64 << 20

// OpenManifest opens the committed manifest sf. It reads the whole file
// once (to check its SHA-256 and, for version 1, to find its records)
// but keeps only the header: the error wraps ErrCorrupt for a damaged
// manifest, ErrNewerVersion for a newer one. The file name's sequence
// number and id must match the snapshot's.
func (a *Archive) OpenManifest(sf SnapshotFile) (*ManifestReader, error) {
	f, err := os.Open(sf.Path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", sf.ID, err)
	}
	m := &ManifestReader{a: a, sf: sf, f: f}
	if err := m.open(); err != nil {
		f.Close()
		return nil, fmt.Errorf("snapshot %s: %w", sf.ID, err)
	}
	if m.h.ID != sf.ID || m.h.Seq != sf.Seq {
		f.Close()
		return nil, fmt.Errorf("%w: snapshot %s: file name does not match its content", ErrCorrupt, sf.ID)
	}
	if m.version != 1 {
		f.Close()
		m.f = nil
	}
	return m, nil
}

func (m *ManifestReader) open() error {
	fi, err := m.f.Stat()
	if err != nil {
		return err
	}
	if fi.Size() > maxManifest {
		return fmt.Errorf("%w: manifest too large", ErrCorrupt)
	}
	sc, err := scanManifest(m.f, sha256.New())
	if err != nil {
		if errors.Is(err, errSyntax) {
			return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
		}
		return err
	}
	if sc.manifest > maxManifestVersion {
		return fmt.Errorf("%w: manifest version %d, this mailvault reads up to %d", ErrNewerVersion, sc.manifest, maxManifestVersion)
	}
	if sc.manifest < 1 || !sc.snapshotFound {
		return fmt.Errorf("%w: manifest: missing version or snapshot", ErrCorrupt)
	}
	var sum string
	if sc.shaSpan.len() > 0 {
		b, err := m.readSpan(sc.shaSpan, 1024)
		if err != nil {
			return err
		}
		if json.Unmarshal(b, &sum) != nil {
			return fmt.Errorf("%w: manifest: bad sha256", ErrCorrupt)
		}
	}
	if hex.EncodeToString(sc.sum) != sum {
		return fmt.Errorf("%w: manifest checksum mismatch", ErrCorrupt)
	}
	m.version, m.scan = sc.manifest, sc
	// The snapshot without its changes, from its other members.
	var body bytes.Buffer
	body.WriteByte('{')
	var total int64
	for i, sp := range sc.members {
		if total += sp.len(); total > maxHeader {
			return fmt.Errorf("%w: manifest header too large", ErrCorrupt)
		}
		if i > 0 {
			body.WriteByte(',')
		}
		b, err := m.readSpan(sp, maxHeader)
		if err != nil {
			return err
		}
		body.Write(b)
	}
	body.WriteByte('}')
	h := &Header{}
	// A version 1 snapshot has no deltas member: decoded as a Snapshot,
	// one of that name is ignored like any unknown member.
	var dst any = h
	if sc.manifest == 1 {
		dst = &h.Snapshot
	}
	if err := json.Unmarshal(body.Bytes(), dst); err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if h.Version > maxManifestVersion || h.Version > sc.manifest {
		return fmt.Errorf("%w: snapshot version %d, this mailvault reads up to %d", ErrNewerVersion, h.Version, sc.manifest)
	}
	if sc.manifest == 1 {
		if err := m.v1Heads(h); err != nil {
			return err
		}
	} else {
		if h.Version != ManifestVersion2 {
			return fmt.Errorf("%w: manifest: snapshot version %d in a version 2 manifest", ErrCorrupt, h.Version)
		}
		if len(sc.changes) > 0 {
			return fmt.Errorf("%w: manifest: changes in a version 2 manifest", ErrCorrupt)
		}
		if err := h.validate(); err != nil {
			return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
		}
	}
	h.settleStatus()
	m.h = h
	return nil
}

// v1Heads reads each version 1 change's folder, event and old name, and
// makes the header's Deltas from them with the counts the scan found;
// then it validates the snapshot as DecodeSnapshot does (the records are
// checked as they are read).
func (m *ManifestReader) v1Heads(h *Header) error {
	h.Changes = make([]Change, len(m.scan.changes))
	h.Deltas = make([]Delta, len(m.scan.changes))
	for i, cs := range m.scan.changes {
		var c Change
		for _, f := range []struct {
			sp  span
			dst *string
		}{{cs.folder, &c.Folder}, {cs.event, &c.Event}, {cs.from, &c.From}} {
			if f.sp.len() == 0 {
				continue
			}
			b, err := m.readSpan(f.sp, 64<<10)
			if err != nil {
				return err
			}
			if err := json.Unmarshal(b, f.dst); err != nil {
				return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
			}
		}
		h.Changes[i] = c
		h.Deltas[i] = Delta{Folder: c.Folder, Event: c.Event, From: c.From,
			Records: cs.nAdded + cs.nFlags + cs.nGone, Added: cs.nAdded, FlagChanges: cs.nFlags, Gone: cs.nGone}
	}
	err := h.Snapshot.validate()
	h.Changes = nil
	if err != nil {
		return fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	return nil
}

// readSpan reads a byte range of the manifest, at most limit bytes.
func (m *ManifestReader) readSpan(sp span, limit int64) ([]byte, error) {
	if sp.len() > limit || sp.len() < 0 {
		return nil, fmt.Errorf("%w: manifest: value too large", ErrCorrupt)
	}
	b := make([]byte, sp.len())
	if _, err := m.f.ReadAt(b, sp.Start); err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	return b, nil
}

// Version is the manifest version (1 or 2).
func (m *ManifestReader) Version() int { return m.version }

// Header returns the snapshot without its records.
func (m *ManifestReader) Header() *Header { return m.h }

// Records streams the records of Header().Deltas[i]: for version 2 from
// its delta file (checked against its size and SHA-256 first), for
// version 1 from the manifest, added messages first, then flag changes,
// then gone keys, as version 1 applies them.
func (m *ManifestReader) Records(i int) (RecordReader, error) {
	if i < 0 || i >= len(m.h.Deltas) {
		return nil, fmt.Errorf("formats: no delta %d in snapshot %s", i, m.h.ID)
	}
	d := &m.h.Deltas[i]
	if d.Records == 0 {
		return emptyRecords{}, nil
	}
	if m.version == 1 {
		cs := m.scan.changes[i]
		return &v1Records{m: m, folder: d.Folder, spans: [3]span{cs.added, cs.flags, cs.gone}}, nil
	}
	return m.a.openDelta(m.h, d)
}

// Close releases the manifest.
func (m *ManifestReader) Close() error {
	if m.f != nil {
		err := m.f.Close()
		m.f = nil
		return err
	}
	return nil
}

// v1Records streams a version 1 change's added, flags and gone arrays.
type v1Records struct {
	m      *ManifestReader
	folder string
	spans  [3]span
	part   int // index into spans of the array being read
	dec    *json.Decoder
	rec    DeltaRecord
	fc     FlagChange
}

func (r *v1Records) Next() (*DeltaRecord, error) {
	for r.part < 3 {
		if r.dec == nil {
			sp := r.spans[r.part]
			if sp.len() == 0 {
				r.part++
				continue
			}
			r.dec = json.NewDecoder(bufio.NewReaderSize(io.NewSectionReader(r.m.f, sp.Start, sp.len()), 64<<10))
			tok, err := r.dec.Token()
			if err != nil {
				return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
			}
			if tok == nil { // null
				r.dec = nil
				r.part++
				continue
			}
		}
		if !r.dec.More() {
			r.dec = nil
			r.part++
			continue
		}
		rec := &r.rec
		var err error
		switch r.part {
		case 0:
			*rec = DeltaRecord{Kind: RecordAdded}
			err = r.dec.Decode(&rec.Message)
		case 1:
			r.fc = FlagChange{}
			err = r.dec.Decode(&r.fc)
			*rec = DeltaRecord{Kind: RecordFlags, Key: r.fc.Key, Flags: r.fc.Flags}
		case 2:
			*rec = DeltaRecord{Kind: RecordGone}
			err = r.dec.Decode(&rec.Key)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
		}
		if err := checkRecord(r.folder, rec); err != nil {
			return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
		}
		return rec, nil
	}
	return nil, io.EOF
}

func (r *v1Records) Close() error { return nil }
