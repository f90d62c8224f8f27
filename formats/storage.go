package formats

import (
	"fmt"
	"path"
	"strings"
	"time"
)

// Storage formats of an archive's messages (Config.Storage).
const (
	StorageMbox    = "mbox"    // zstd-compressed mboxrd segments
	StorageMaildir = "maildir" // a Maildir per folder, one file per message
)

// Compression of stored messages (Config.Compression).
const (
	CompressZstd = "zstd"
	CompressNone = "none"
)

// StorageOptions choose how a new archive stores messages. The zero value
// is the default: mbox segments compressed with zstd.
type StorageOptions struct {
	Storage     string // StorageMbox or StorageMaildir; "" for mbox
	Compression string // CompressZstd or CompressNone; "" for zstd
}

func (o StorageOptions) normalized() StorageOptions {
	if o.Storage == "" {
		o.Storage = StorageMbox
	}
	if o.Compression == "" {
		o.Compression = CompressZstd
	}
	return o
}

// Check reports whether the combination is one this package writes.
func (o StorageOptions) Check() error {
	o = o.normalized()
	switch {
	case o.Storage == StorageMbox && o.Compression == CompressZstd:
	case o.Storage == StorageMaildir && (o.Compression == CompressZstd || o.Compression == CompressNone):
	case o.Storage == StorageMbox && o.Compression == CompressNone:
		return fmt.Errorf("mbox archives are always compressed with zstd (use --format maildir for uncompressed files)")
	case o.Storage != StorageMbox && o.Storage != StorageMaildir:
		return fmt.Errorf("unknown archive format %q (want mbox or maildir)", o.Storage)
	default:
		return fmt.Errorf("unknown compression %q (want zstd or none)", o.Compression)
	}
	return nil
}

// CheckFields reports whether each field given is a known value; unlike
// Check it accepts a partial set (empty fields are the archive's, or the
// default) and a combination only an existing archive can settle.
func (o StorageOptions) CheckFields() error {
	switch o.Storage {
	case "", StorageMbox, StorageMaildir:
	default:
		return fmt.Errorf("unknown archive format %q (want mbox or maildir)", o.Storage)
	}
	switch o.Compression {
	case "", CompressZstd, CompressNone:
	default:
		return fmt.Errorf("unknown compression %q (want zstd or none)", o.Compression)
	}
	if o.Storage == StorageMbox && o.Compression == CompressNone {
		return o.Check()
	}
	return nil
}

// String names the combination the way the command line does.
func (o StorageOptions) String() string {
	o = o.normalized()
	return fmt.Sprintf("--format %s --compress %s", o.Storage, o.Compression)
}

// Storage returns the archive's storage options.
func (a *Archive) Storage() StorageOptions {
	return StorageOptions{Storage: a.Config.Storage, Compression: a.Config.Compression}
}

// RecordWriter stores one folder's new messages in one run. A message is
// written between BeginRecord and EndRecord, or abandoned with
// AbortRecord, leaving no trace. Nothing is durable, and no manifest may
// name a record, before Commit returns. Abort discards what was not
// committed.
type RecordWriter interface {
	// BeginRecord starts a message with its INTERNALDATE and flags.
	BeginRecord(date time.Time, flags []string) error
	// Write writes message bytes.
	Write(p []byte) (int, error)
	// EndRecord finishes the message and returns where it was stored, as
	// Message.Seg and Message.Off record it.
	EndRecord() (loc string, off int64, err error)
	// AbortRecord abandons the message being written.
	AbortRecord() error
	// Records is the number of messages ended so far.
	Records() int
	// Owns reports whether loc is a location this writer handed out.
	Owns(loc string) bool
	// Commit makes every ended message durable. It returns the segment
	// the manifest must list, or nil when the storage has none.
	Commit() (*Segment, error)
	// Abort removes what was not committed; it is safe after Commit.
	Abort()
}

// NewWriter starts storing messages of the folder kept in dir, for the
// snapshot seq/id, in the archive's storage format.
func (a *Archive) NewWriter(dir string, seq int, id string) (RecordWriter, error) {
	return a.NewWriterPart(dir, seq, id, 0)
}

// NewWriterPart is NewWriter for one of several writers storing messages
// of the same folder in the same run (a folder fetched over several
// connections at once); part 0 is the one NewWriter returns. Their
// locations never collide.
func (a *Archive) NewWriterPart(dir string, seq int, id string, part int) (RecordWriter, error) {
	if part < 0 {
		return nil, fmt.Errorf("formats: bad part %d", part)
	}
	if a.Config.Storage == StorageMaildir {
		return a.newMaildirWriter(dir, seq, id, part)
	}
	if part == 0 {
		w, err := a.NewSegment(dir, seq, id)
		if err != nil {
			return nil, err
		}
		return segmentRecords{w}, nil
	}
	if !ValidDir(dir) {
		return nil, fmt.Errorf("formats: bad folder directory %q", dir)
	}
	rel := FoldersDir + "/" + dir + "/" + fmt.Sprintf("%08d-%s-p%d.mbox.zst", seq, id, part)
	w, err := newSegmentWriter(a.Root, rel, &a.bufs, a.hook)
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

// ValidMaildirPath reports whether p has the form folders/DIR/cur/NAME of
// a message file in a Maildir archive, with safe components.
func ValidMaildirPath(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) == 4 && parts[0] == FoldersDir && ValidDir(parts[1]) && parts[2] == "cur" &&
		validMaildirName(parts[3]) && path.Clean(p) == p
}

// validMaildirName accepts the file names a Maildir archive writes:
// <unique>,S=<size>:2,<info> over a small alphabet.
func validMaildirName(n string) bool {
	if n == "" || n == "." || n == ".." || len(n) > 200 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !isSafeDirByte(c) && !strings.ContainsRune(".,=:", rune(c)) {
			return false
		}
	}
	return true
}

// ValidLocation reports whether p is a message location: a segment or a
// Maildir file.
func ValidLocation(p string) bool { return ValidSegmentPath(p) || ValidMaildirPath(p) }

// MaildirBase is the unique part of a Maildir file name: before ':' (the
// info) and ',' (the S= and W= fields).
func MaildirBase(n string) string {
	if i := strings.IndexAny(n, ":,"); i >= 0 {
		return n[:i]
	}
	return n
}
