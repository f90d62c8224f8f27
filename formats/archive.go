package formats

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Names inside an archive directory.
const (
	ConfigFile   = "mailvault.json"
	LockFile     = "lock"
	SnapshotsDir = "snapshots"
	FoldersDir   = "folders"
	CacheDir     = "cache" // the state cache: derived, safe to delete
)

// Config is mailvault.json: what kind of archive this is.
type Config struct {
	Format      string    `json:"format"` // always "mailvault"
	Version     int       `json:"version"`
	Storage     string    `json:"storage"`     // "mbox"
	Compression string    `json:"compression"` // "zstd"
	ID          string    `json:"id"`
	Created     time.Time `json:"created"`
	// Source is the mailbox the archive backs up, recorded when it is
	// created (or, in an archive older than the field, by its next run).
	Source *SourceIdentity `json:"source,omitempty"`
}

// ErrUnwritable is wrapped when the archive directory cannot be created
// or written: a read-only or full file system, no permission, a path
// where no directory can be made.
var ErrUnwritable = errors.New("formats: cannot write the archive")

// unwritable wraps an error of the file system with ErrUnwritable,
// without the operation and path of an *fs.PathError (what says them).
func unwritable(what, path string, err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%w: %s %s: %w", ErrUnwritable, what, path, err)
}

// Archive is an open archive directory.
type Archive struct {
	Root   string
	Config Config
	// Hook, when set, is called at named points of the write path
	// ("segment-before-rename", "manifest-before-rename",
	// "manifest-after-rename"); crash tests use it.
	Hook func(point string)
	// Link, when set, replaces os.Link where a Maildir archive keeps a
	// message as a hard link to the same bytes stored before; tests use
	// it to play a file system without hard links.
	Link  func(oldname, newname string) error
	lock  *os.File
	bufs  bufferPool
	store storage // how message bytes are kept, from Config
}

// newArchive returns the open archive in root with the given config,
// with the storage the config names.
func newArchive(root string, cfg Config) *Archive {
	a := &Archive{Root: root, Config: cfg}
	a.store = newStorage(a, cfg)
	return a
}

func (a *Archive) hook(point string) {
	if a.Hook != nil {
		a.Hook(point)
	}
}

func (a *Archive) link(oldname, newname string) error {
	if a.Link != nil {
		return a.Link(oldname, newname)
	}
	return os.Link(oldname, newname)
}

// Create makes a new archive in root, which must not exist or be empty,
// with the default storage (mbox segments compressed with zstd).
func Create(root string) (*Archive, error) { return CreateWith(root, StorageOptions{}) }

// CreateWith makes a new archive in root, which must not exist or be
// empty, storing messages as opts says.
func CreateWith(root string, opts StorageOptions) (*Archive, error) {
	return CreateFor(root, opts, nil)
}

// CreateFor is CreateWith that also records the source the archive is
// for (nil: none yet).
func CreateFor(root string, opts StorageOptions, src *SourceIdentity) (*Archive, error) {
	if err := opts.Check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStorageMismatch, err)
	}
	opts = opts.normalized()
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, unwritable("create archive", root, err)
	}
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("create archive: %w", err)
	}
	if len(entries) > 0 && !unfinishedCreate(root, entries) {
		return nil, fmt.Errorf("%w: %s is not empty and has no %s", ErrNotArchive, root, ConfigFile)
	}
	// A creation killed before its mailvault.json left at most the empty
	// directories and the temporary file, which this one takes over.
	os.Remove(filepath.Join(root, ConfigFile+".tmp"))
	cfg := Config{Format: "mailvault", Version: FormatVersion, Storage: opts.Storage, Compression: opts.Compression, ID: randomHex(8), Created: time.Now().UTC().Truncate(time.Second), Source: src}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return nil, err
	}
	for _, d := range []string{SnapshotsDir, FoldersDir} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return nil, unwritable("create archive", root, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(root, ConfigFile), append(data, '\n'), nil); err != nil {
		return nil, unwritable("create archive", root, err)
	}
	return newArchive(root, cfg), nil
}

// unfinishedCreate reports whether entries, the contents of root, are
// only what CreateFor makes before it writes mailvault.json: the empty
// directories snapshots/ and folders/ and mailvault.json.tmp. That is an
// archive whose creation was interrupted (a kill, a full disk), not
// someone else's data.
func unfinishedCreate(root string, entries []fs.DirEntry) bool {
	for _, e := range entries {
		switch name := e.Name(); {
		case name == ConfigFile+".tmp" && e.Type().IsRegular():
		case (name == SnapshotsDir || name == FoldersDir) && e.IsDir():
			sub, err := os.ReadDir(filepath.Join(root, name))
			if err != nil || len(sub) > 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// Open opens an existing archive.
func Open(root string) (*Archive, error) {
	data, err := os.ReadFile(filepath.Join(root, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s has no %s", ErrNotArchive, root, ConfigFile)
	}
	if err != nil {
		return nil, fmt.Errorf("open archive: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, ConfigFile, err)
	}
	if cfg.Format != "mailvault" {
		return nil, fmt.Errorf("%w: %s: format %q", ErrNotArchive, ConfigFile, cfg.Format)
	}
	if cfg.Version > FormatVersion {
		return nil, fmt.Errorf("%w: archive format version %d, this mailvault supports up to %d; upgrade mailvault", ErrNewerVersion, cfg.Version, FormatVersion)
	}
	if (StorageOptions{Storage: cfg.Storage, Compression: cfg.Compression}).Check() != nil || cfg.Storage == "" || cfg.Compression == "" {
		return nil, fmt.Errorf("%w: storage %q with compression %q is not supported by this mailvault", ErrNewerVersion, cfg.Storage, cfg.Compression)
	}
	return newArchive(root, cfg), nil
}

// OpenOrCreate opens the archive in root, creating it when root does not
// exist or is an empty directory.
func OpenOrCreate(root string) (*Archive, error) { return OpenOrCreateWith(root, nil) }

// OpenOrCreateWith is OpenOrCreate with storage options: a new archive is
// created with them, and an existing one must have been created with them
// (else the error wraps ErrStorageMismatch). Empty fields (or nil) accept
// what an existing archive has and mean the default for a new one.
func OpenOrCreateWith(root string, opts *StorageOptions) (*Archive, error) {
	a, err := Open(root)
	if errors.Is(err, ErrNotArchive) {
		if _, statErr := os.Stat(filepath.Join(root, ConfigFile)); errors.Is(statErr, fs.ErrNotExist) {
			if opts == nil {
				return Create(root)
			}
			return CreateWith(root, *opts)
		}
	}
	if err != nil {
		return a, err
	}
	if err := a.CheckStorage(opts); err != nil {
		return nil, err
	}
	return a, nil
}

// CheckStorage reports whether a run asking for opts (nil, or empty
// fields: whatever the archive has) may write to the archive: the error
// wraps ErrStorageMismatch when it asks for another storage.
func (a *Archive) CheckStorage(opts *StorageOptions) error {
	if opts == nil {
		return nil
	}
	if err := opts.CheckFields(); err != nil {
		return fmt.Errorf("%w: %v", ErrStorageMismatch, err)
	}
	have, want := a.Storage(), *opts
	if want.Storage == "" {
		want.Storage = have.Storage
	}
	if want.Compression == "" {
		want.Compression = have.Compression
	}
	if have != want {
		return fmt.Errorf("%w: %s was created with %s; a run cannot change it (use a new archive directory for %s)", ErrStorageMismatch, a.Root, have, want)
	}
	return nil
}

// Exists reports whether root holds an archive's mailvault.json (which
// Open may still refuse). An error other than "no such file" counts as
// existing, so that Open reports it.
func Exists(root string) bool {
	_, err := os.Stat(filepath.Join(root, ConfigFile))
	return !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR)
}

// CheckCreatable reports, without creating anything that stays, whether
// an archive can be created in root: root must not exist or be an empty
// directory (else the error wraps ErrNotArchive), and the directory that
// would hold it must be writable (else ErrUnwritable). It creates and
// removes one empty directory to find out: permissions, read-only mounts,
// immutable directories and pseudo file systems all answer that truly.
func CheckCreatable(root string) error {
	fi, err := os.Stat(root)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("%w: %s is a file", ErrNotArchive, root)
	case err == nil:
		entries, err := os.ReadDir(root)
		if err != nil {
			return fmt.Errorf("open archive: %w", err)
		}
		if len(entries) > 0 && !unfinishedCreate(root, entries) {
			return fmt.Errorf("%w: %s is not empty and has no %s", ErrNotArchive, root, ConfigFile)
		}
		return probeWritable(root, root)
	case !errors.Is(err, fs.ErrNotExist):
		return unwritable("cannot create", root, err)
	}
	// The nearest existing ancestor is where the directories would be made.
	dir := filepath.Dir(filepath.Clean(root))
	for {
		fi, err := os.Stat(dir)
		if err == nil {
			if !fi.IsDir() {
				return unwritable("cannot create", root, fmt.Errorf("%s is not a directory", dir))
			}
			return probeWritable(dir, root)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return unwritable("cannot create", root, err)
		}
		up := filepath.Dir(dir)
		if up == dir {
			return unwritable("cannot create", root, err)
		}
		dir = up
	}
}

// probeWritable makes and removes a directory in dir.
func probeWritable(dir, root string) error {
	p, err := os.MkdirTemp(dir, ".mailvault-probe-")
	if err != nil {
		return unwritable("cannot create", root, err)
	}
	if err := os.Remove(p); err != nil {
		return unwritable("cannot create", root, err)
	}
	return nil
}

// SetSource records src as the archive's source in mailvault.json
// (atomically). The caller holds the lock, or the archive is new.
func (a *Archive) SetSource(src SourceIdentity) error {
	cfg := a.Config
	cfg.Source = &src
	if err := a.writeConfig(cfg); err != nil {
		return unwritable("record source in", ConfigFile, err)
	}
	a.Config = cfg
	return nil
}

// writeConfig writes mailvault.json atomically.
func (a *Archive) writeConfig(cfg Config) error {
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(a.Root, ConfigFile), append(data, '\n'), nil)
}

// LockInfo is written into the lock file by its holder.
type LockInfo struct {
	PID      int       `json:"pid"`
	Host     string    `json:"host"`
	Since    time.Time `json:"since"`
	Commands string    `json:"command,omitempty"`
}

// Lock takes the archive's exclusive lock for a writing run. It fails with
// ErrLocked, naming the holder, when another process has it.
func (a *Archive) Lock(command string) error {
	f, err := os.OpenFile(filepath.Join(a.Root, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("lock archive: %w", err)
		}
		return fmt.Errorf("%w: lock archive: %w", ErrUnwritable, err)
	}
	ok, err := tryLock(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("lock archive: %w", err)
	}
	if !ok {
		var info LockInfo
		data, _ := io.ReadAll(io.LimitReader(f, 4096))
		f.Close()
		if json.Unmarshal(data, &info) == nil && info.PID != 0 {
			return fmt.Errorf("%w (pid %d on %s, since %s)", ErrLocked, info.PID, info.Host, info.Since.Format(time.RFC3339))
		}
		return ErrLocked
	}
	host, _ := os.Hostname()
	data, _ := json.Marshal(LockInfo{PID: os.Getpid(), Host: host, Since: time.Now().UTC().Truncate(time.Second), Commands: command})
	if err := f.Truncate(0); err == nil {
		f.WriteAt(data, 0)
	}
	a.lock = f
	// A rewrite of the manifests killed after its commit point is
	// finished by whoever writes next.
	if err := a.finishRewrite(); err != nil {
		a.Unlock()
		return fmt.Errorf("finish the interrupted rewrite of the manifests: %w", err)
	}
	return nil
}

// Unlock releases the lock taken by Lock.
func (a *Archive) Unlock() {
	if a.lock != nil {
		a.lock.Truncate(0)
		a.lock.Close()
		a.lock = nil
	}
}

// NewSnapshotID returns a fresh random snapshot id.
func NewSnapshotID() string { return randomHex(4) }

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported systems
	}
	return hex.EncodeToString(b)
}

func snapshotFileName(seq int, id string) string {
	return fmt.Sprintf("%08d-%s.json", seq, id)
}

// NewSegment starts a segment for the folder stored in dir, named after
// the snapshot that will commit it.
func (a *Archive) NewSegment(dir string, seq int, id string) (*SegmentWriter, error) {
	if !ValidDir(dir) {
		return nil, fmt.Errorf("formats: bad folder directory %q", dir)
	}
	rel := FoldersDir + "/" + dir + "/" + fmt.Sprintf("%08d-%s.mbox.zst", seq, id)
	return newSegmentWriter(a.Root, rel, &a.bufs, a.hook)
}

// Commit writes s as a committed manifest (version 2: its changes go to
// delta files, fsynced, then the header: to a temporary file, fsynced,
// renamed into place, directory fsynced). Every segment it names must have
// been committed before. It is CommitDeltas without streamed records.
//
// A snapshot that records an error or a failed folder is committed as
// partial, whatever its Status said.
func (a *Archive) Commit(s *Snapshot) error {
	_, err := a.CommitDeltas(s, nil)
	return err
}

// CommitV1 writes s as a version 1 manifest (one file holding every
// record), as mailvault up to format version 1 did: for tests and tools
// that make archives of the old format.
func (a *Archive) CommitV1(s *Snapshot) error {
	s.Version = ManifestVersion1
	s.settleStatus()
	if err := s.validate(); err != nil {
		return fmt.Errorf("formats: refusing to commit an invalid snapshot: %w", err)
	}
	final := filepath.Join(a.Root, SnapshotsDir, snapshotFileName(s.Seq, s.ID))
	if _, err := os.Stat(final); err == nil {
		return fmt.Errorf("formats: snapshot %s already exists", s.ID)
	}
	return writeAtomic(final, func(w io.Writer) error { return WriteSnapshot(w, s) }, a.hook)
}

// writeFileAtomic writes data to path through a fsynced temporary file and
// a rename, then fsyncs the directory.
func writeFileAtomic(path string, data []byte, hook func(string)) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, hook)
}

// writeAtomic is writeFileAtomic with the content produced by write.
func writeAtomic(path string, write func(io.Writer) error, hook func(string)) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if hook != nil {
		hook("manifest-before-rename")
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	if hook != nil {
		hook("manifest-after-rename")
	}
	return syncDir(filepath.Dir(path))
}

// SnapshotFile names a committed manifest on disk.
type SnapshotFile struct {
	Seq  int
	ID   string
	Path string
}

// ListSnapshots returns the committed manifests in sequence order, without
// reading them. Temporary files of interrupted commits are ignored.
func (a *Archive) ListSnapshots() ([]SnapshotFile, error) {
	// A rewrite of the manifests (retention) in progress: its journal
	// says what the archive is.
	if files, ok, err := a.journalSnapshots(); ok || err != nil {
		return files, err
	}
	entries, err := os.ReadDir(filepath.Join(a.Root, SnapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	var out []SnapshotFile
	for _, e := range entries {
		name := e.Name()
		base, ok := strings.CutSuffix(name, ".json")
		if !ok {
			continue
		}
		seqStr, id, ok := strings.Cut(base, "-")
		seq, err := strconv.Atoi(seqStr)
		if !ok || err != nil || len(seqStr) != 8 || !ValidID(id) {
			return nil, fmt.Errorf("%w: unexpected file %s in %s", ErrCorrupt, name, SnapshotsDir)
		}
		out = append(out, SnapshotFile{Seq: seq, ID: id, Path: filepath.Join(a.Root, SnapshotsDir, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// maxManifest bounds the size of a manifest file a reader accepts.
const maxManifest = 1 << 30

// ReadSnapshot reads and validates one manifest, checking that it is the
// one its file name says.
func (a *Archive) ReadSnapshot(sf SnapshotFile) (*Snapshot, error) {
	f, err := os.Open(sf.Path)
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", sf.ID, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxManifest+1))
	if err != nil {
		return nil, fmt.Errorf("read snapshot %s: %w", sf.ID, err)
	}
	if len(data) > maxManifest {
		return nil, fmt.Errorf("%w: snapshot %s: manifest too large", ErrCorrupt, sf.ID)
	}
	s, err := DecodeSnapshot(data)
	if err == errManifest2 {
		s, err = a.readSnapshot2(sf)
	}
	if err != nil {
		return nil, fmt.Errorf("snapshot %s: %w", sf.ID, err)
	}
	if s.ID != sf.ID || s.Seq != sf.Seq {
		return nil, fmt.Errorf("%w: snapshot %s: file name does not match its content", ErrCorrupt, sf.ID)
	}
	return s, nil
}

// Snapshots reads every committed manifest in order and checks the chain
// of parents.
func (a *Archive) Snapshots() ([]*Snapshot, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	out := make([]*Snapshot, 0, len(files))
	for i, sf := range files {
		s, err := a.ReadSnapshot(sf)
		if err != nil {
			return nil, err
		}
		if i == 0 && s.Seq != 1 || i > 0 && (s.Seq != out[i-1].Seq+1 || s.Parent != out[i-1].ID) {
			return nil, fmt.Errorf("%w: snapshot %s does not follow the one before it", ErrCorrupt, s.ID)
		}
		out = append(out, s)
	}
	return out, nil
}

// RemoveOrphans deletes what interrupted runs left behind: temporary files,
// and stored files (segments, message files) no committed manifest names.
// In a Maildir archive it reads cur/ and new/ only of the folders a run
// marked as filled. The caller must hold the lock.
// It returns the paths removed, relative to the root.
func (a *Archive) RemoveOrphans(st *State) ([]string, error) {
	return a.removeOrphans(st)
}

// removeOrphans is RemoveOrphans with what the committed manifests name
// from idx.
func (a *Archive) removeOrphans(idx index) ([]string, error) {
	orphans, marks, err := a.orphans(idx, true)
	if err != nil {
		return nil, err
	}
	return orphans, a.removePaths(append(orphans, marks...))
}

// removePaths removes files (and emptied directories) relative to the
// root, in order: marks go last, so a run stopped half-way looks again
// next time.
func (a *Archive) removePaths(rels []string) error {
	for _, rel := range rels {
		if err := os.Remove(filepath.Join(a.Root, filepath.FromSlash(rel))); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", rel, err)
		}
	}
	return nil
}

// Orphans lists files under folders/ and snapshots/ that no committed
// manifest accounts for. The state cache (cache/) is not looked at: it is
// derived data, not a left-over.
func (a *Archive) Orphans(st *State) ([]string, error) {
	out, _, err := a.orphans(st, false)
	return out, err
}

// orphans is Orphans. With marked, the storage may look only where its
// writers left marks (a Maildir archive's folders whose cur/ a run filled
// since the last check); the marks found are returned apart.
func (a *Archive) orphans(st index, marked bool) (out, marks []string, err error) {
	snaps, err := os.ReadDir(filepath.Join(a.Root, SnapshotsDir))
	if err != nil {
		return nil, nil, err
	}
	for _, e := range snaps {
		if strings.HasSuffix(e.Name(), ".tmp") || strings.HasSuffix(e.Name(), newManifestSuffix) && !a.rewritePending() {
			out = append(out, SnapshotsDir+"/"+e.Name())
		}
	}
	deltas, err := a.deltaOrphans(snaps)
	if err != nil {
		return nil, nil, err
	}
	out = append(out, deltas...)
	o, marks, err := a.store.orphans(st, marked)
	if err != nil {
		return nil, nil, err
	}
	return append(out, o...), marks, nil
}
