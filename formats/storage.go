package formats

import (
	"errors"
	"fmt"
	"io"
	"iter"
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

// Storages returns every storage a new archive can have, the default
// first. Tests that must run against each storage range over it.
func Storages() []StorageOptions {
	return []StorageOptions{
		{Storage: StorageMbox, Compression: CompressZstd},
		{Storage: StorageMaildir, Compression: CompressZstd},
		{Storage: StorageMaildir, Compression: CompressNone},
	}
}

// Location is where a stored message's bytes are, as its manifest entry
// records it in Message.Seg and Message.Off. Only the archive's storage
// gives it a meaning: in an mbox archive a record at uncompressed offset
// Off of the segment Seg; in a Maildir archive the message file Seg, by
// the name it was stored under (Off is 0). To everyone else it is an
// opaque value, equal for the same stored bytes.
type Location struct {
	Seg string
	Off int64
}

// Location returns where m's bytes are stored.
func (m *Message) Location() Location { return Location{Seg: m.Seg, Off: m.Off} }

// String names the location for messages: a segment path with the
// record's offset ("folders/INBOX/00000001-1a2b3c4d.mbox.zst@4096"), or
// the path of a message file.
func (l Location) String() string {
	if !ValidSegmentPath(l.Seg) {
		return l.Seg // a message file
	}
	return fmt.Sprintf("%s@%d", l.Seg, l.Off)
}

// Valid reports whether l has the form of a location in a segment or of
// a message file, with safe path components.
func (l Location) Valid() bool {
	return l.Off >= 0 && (ValidSegmentPath(l.Seg) || validMaildirPath(l.Seg) && l.Off == 0)
}

// isFile reports whether l names a file of its own (a Maildir message
// file) rather than a record in a segment.
func (l Location) isFile() bool { return validMaildirPath(l.Seg) }

// storage keeps an archive's message bytes on disk: zstd mboxrd segments
// (segmentStorage) or Maildir files (maildirStorage). An Archive holds
// one, chosen from mailvault.json when the archive is created or opened;
// everything that depends on how bytes are kept is one of its methods,
// and nothing outside this package asks which storage an archive has.
// Retention (copying live records into new storage, then removing the
// old) and other stores (an object store) are meant to fit here.
//
// A storage deals in bytes on disk and their Locations, never in the
// archive's in-memory state: what the committed manifests name reaches it
// through an index. Its methods other than newWriter and newReader are
// called by one goroutine at a time, holding the archive's lock where they
// change anything.
type storage interface {
	// newWriter starts storing new messages of the folder kept in dir
	// (a valid directory name) for the run that will commit as seq/id.
	// part numbers the writers of one folder in one run, from 0; their
	// locations never collide.
	newWriter(dir string, seq int, id string, part int) (RecordWriter, error)
	// newReader returns a reader of stored messages, for one goroutine.
	newReader(idx index) storageReader
	// verify checks every stored message idx names (size, SHA-256, and
	// the storage's own checksums), adding what it checked and found to
	// rep (Segments, Messages, Bytes, Problems). progress, if not nil,
	// is called as work is done. An error means the check could not run.
	verify(idx index, rep *VerifyReport, progress func(loc string, done, total int)) error
	// orphans lists the files under folders/ that idx does not account
	// for: what interrupted runs left (paths relative to the root,
	// slash-separated). With marked, it may look only where a writer
	// left a mark saying a manifest might not name its files yet; the
	// marks found are returned apart, to be removed after the orphans.
	orphans(idx index, marked bool) (out, marks []string, err error)
	// storedBytes returns how many bytes each of snaps (an archive's
	// snapshots in order, from the first) added to the storage.
	storedBytes(snaps []*Snapshot) []int64
	// reuseStored answers Archive.ReuseStored.
	reuseStored(holderPresent bool) bool
	// linkStored answers Archive.LinkStored: its writers are
	// RecordLinkers.
	linkStored() bool
	// syncFlags shows the current flags of stored messages where the
	// storage keeps flags on disk (Maildir file names), after a commit
	// recorded them; it returns how many files changed. The archive
	// stays valid whatever happens.
	syncFlags(changed iter.Seq[storedFlags]) (int, error)
	// compact frees the stored copies c says no kept message needs
	// (retention: prune, erase; see retention_storage.go). New files it
	// writes are durable when it returns; it deletes nothing itself.
	compact(c *compaction) error
}

// storageReader reads stored messages one after another. It is not safe
// for concurrent use.
type storageReader interface {
	// open returns a reader of m's exact bytes, valid until the next open
	// or close. It fails with ErrCorrupt if the stored record is damaged
	// or shorter than m.Size; it does not check the hash.
	open(m *Message) (io.Reader, error)
	close()
}

// index is what a storage needs to know of the committed manifests: the
// segments and every stored message. A *State is one.
type index interface {
	// segment returns the committed segment with the given path, or nil.
	segment(path string) *Segment
	// segmentPaths returns the paths of every committed segment.
	segmentPaths() []string
	// eachStored calls fn with every message ever stored (present on the
	// source or gone), stopping at the first error.
	eachStored(fn func(m *Message) error) error
}

// storedFlags is a stored message whose flags a commit changed.
type storedFlags struct {
	loc   Location
	size  int64
	flags []string
}

// newStorage returns the storage cfg names (Open has checked it).
func newStorage(a *Archive, cfg Config) storage {
	if cfg.Storage == StorageMaildir {
		return &maildirStorage{root: a.Root, compress: cfg.Compression == CompressZstd, bufs: &a.bufs, hook: a.hook, link: a.link}
	}
	return &segmentStorage{root: a.Root, bufs: &a.bufs, hook: a.hook}
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
	// Message.Seg and Message.Off record it (see Location).
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

// StoredCopy is a stored message whose exact bytes a new message has: a
// committed message of the archive (its manifest entry's location, size
// and current flags), or a record another writer of the same run ended
// (its location and size; flags nil).
type StoredCopy struct {
	Seg   string
	Size  int64
	Flags []string
}

// RecordLinker is a RecordWriter that can keep a message as a hard link
// to a file that holds the same bytes (Archive.LinkStored): the writers
// of a Maildir archive.
type RecordLinker interface {
	// EndRecordLinked is EndRecord for a message whose bytes (the ones
	// just written) src holds already: the message gets its own name in
	// its own folder, as with EndRecord, for the same file as src where
	// it can (a hard link: no bytes stored again). Otherwise the bytes
	// written are kept, a full copy, and linkErr says why (a file system
	// without hard links, src not found, a different modification time);
	// it is nil when the message was linked. err is EndRecord's. src may
	// be a record another writer ended and has not committed: its file is
	// complete, and this writer's Commit makes the link durable whatever
	// that writer does next.
	EndRecordLinked(src StoredCopy) (loc string, linkErr, err error)
}

// NewWriter starts storing messages of the folder kept in dir, for the
// snapshot seq/id, in the archive's storage.
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
	if !ValidDir(dir) {
		return nil, fmt.Errorf("formats: bad folder directory %q", dir)
	}
	return a.store.newWriter(dir, seq, id, part)
}

// ReuseStored reports whether a new message whose exact bytes the archive
// already stores is recorded with the location of that copy instead of
// being stored again. holderPresent says whether a message holding that
// copy is still on the source. An mbox archive stores the same bytes once;
// a Maildir archive keeps one file per message on the source (so that a
// Maildir reader sees every copy, each with its own flags), as a hard link
// to the same bytes (LinkStored), and reuses the files of messages that
// are gone.
func (a *Archive) ReuseStored(holderPresent bool) bool {
	return a.store.reuseStored(holderPresent)
}

// LinkStored reports whether the archive keeps a copy per message on the
// source where ReuseStored says no, as a hard link to the file holding
// the same bytes (a Maildir archive): its writers are RecordLinkers, and
// a message found stored already (in the folder, in another folder of
// the account, or by another writer of the run) costs a name, not its
// bytes.
func (a *Archive) LinkStored() bool { return a.store.linkStored() }

// StoredBytes returns how many bytes each of snaps added to the archive's
// storage: the size of its segments in an mbox archive; in a Maildir
// archive the message bytes of the files it stored, a file with several
// names (hard links) once. snaps must be the archive's snapshots in order
// from the first (as Snapshots returns them): a snapshot that names
// stored bytes again (a message recorded with the location of a copy
// stored before, or a link to it) adds nothing for them.
func (a *Archive) StoredBytes(snaps []*Snapshot) []int64 {
	return a.store.storedBytes(snaps)
}

// AfterCommit does what follows the commit of snaps (one run's snapshots
// in order: its checkpoints and its last), with st the state at the last
// one: it shows changed flags where the storage keeps them on disk
// (Maildir file names; manifests keep naming files by their first name)
// and saves the state cache. The caller holds the lock. It goes on after
// a failure and returns every failure; none of them damages the archive
// (old flags stay in file names, or the next run reads the manifests).
func (a *Archive) AfterCommit(st *State, snaps []*Snapshot) error {
	var errs []error
	if _, err := a.store.syncFlags(flagsChanged(st, snaps)); err != nil {
		errs = append(errs, fmt.Errorf("update flags in message file names: %w", err))
	}
	if err := a.SaveStateCache(st); err != nil {
		errs = append(errs, fmt.Errorf("save the state cache: %w", err))
	}
	return errors.Join(errs...)
}

// flagsChanged yields the stored messages whose flags snaps changed, with
// their flags in st. A message whose flags changed in several snapshots
// comes once per change.
func flagsChanged(st *State, snaps []*Snapshot) iter.Seq[storedFlags] {
	return func(yield func(storedFlags) bool) {
		for _, s := range snaps {
			for _, c := range s.Changes {
				f := st.Folders[c.Folder]
				if f == nil {
					continue
				}
				for _, fc := range c.Flags {
					m := f.Lookup(fc.Key)
					if m == nil {
						continue
					}
					if !yield(storedFlags{loc: m.Location(), size: m.Size, flags: m.Flags}) {
						return
					}
				}
			}
		}
	}
}

// validMaildirPath reports whether p has the form folders/DIR/cur/NAME of
// a message file in a Maildir archive, with safe components.
func validMaildirPath(p string) bool {
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

// MaildirBase is the unique part of a Maildir file name: before ':' (the
// info) and ',' (the S= and W= fields).
func MaildirBase(n string) string {
	if i := strings.IndexAny(n, ":,"); i >= 0 {
		return n[:i]
	}
	return n
}
