package formats

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"time"
)

// FormatVersion is the archive format this package writes (in
// mailvault.json; its manifests are version 2, ManifestVersion2). It
// reads every version up to it; archives and manifests with a higher
// version are refused.
const FormatVersion = 2

// ManifestVersion1 is the manifest version with the records inside the
// manifest (mailvault up to format version 1); it is still read, and
// WriteSnapshot still writes it (tests, tools).
const ManifestVersion1 = 1

// Errors callers classify.
var (
	ErrCorrupt      = errors.New("formats: archive data is corrupt")
	ErrNewerVersion = errors.New("formats: archive was written by a newer mailvault")
	ErrLocked       = errors.New("formats: archive is locked by another run")
	ErrNotArchive   = errors.New("formats: not a mailvault archive")
	ErrNotFound     = errors.New("formats: not found")
	// ErrStorageMismatch: the storage options asked for are not the
	// archive's, or not a valid combination.
	ErrStorageMismatch = errors.New("formats: archive format")
)

// Snapshot statuses.
const (
	StatusComplete = "complete"
	StatusPartial  = "partial"
)

// Folder statuses in a snapshot.
const (
	FolderOK        = "ok"        // synchronised in this run
	FolderUnchanged = "unchanged" // the source said nothing changed; not selected
	FolderFailed    = "failed"    // an error stopped it; what was stored is recorded
	FolderNoSelect  = "noselect"  // structure only, holds no messages
)

// Folder events in a Change.
const (
	EventCreated     = "created"
	EventDeleted     = "deleted"
	EventRenamed     = "renamed"
	EventUIDValidity = "uidvalidity"
)

// Snapshot is one run's manifest: the state of every folder the source
// listed and the delta since the parent snapshot.
type Snapshot struct {
	Version  int       `json:"version"`
	ID       string    `json:"id"`
	Seq      int       `json:"seq"`
	Parent   string    `json:"parent,omitempty"`
	Source   string    `json:"source"`
	Protocol string    `json:"protocol"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   string    `json:"status"`
	Errors   []string  `json:"errors,omitempty"`
	// Namespace is the source's personal namespace (IMAP NAMESPACE, or
	// LIST's delimiter with no prefix where the server has no
	// NAMESPACE), recorded so that a restore can map folder names into
	// another server's namespace; nil when the source has none (POP3,
	// local) or the archive was made before it was recorded.
	Namespace *Namespace `json:"namespace,omitempty"`
	Folders   []Folder   `json:"folders"`
	Segments  []Segment  `json:"segments,omitempty"`
	Changes   []Change   `json:"changes,omitempty"`
	// Quota is what the source said of the mailbox's quota during the run
	// (IMAP GETQUOTAROOT "INBOX"), absent when it has no QUOTA extension.
	Quota []Quota `json:"quota,omitempty"`
}

// Quota is the usage and limit of one resource of one quota root, as the
// server reported them (RFC 9208: STORAGE in units of 1024 octets, MESSAGE
// in messages).
type Quota struct {
	Root     string `json:"root"`
	Resource string `json:"resource"`
	Used     int64  `json:"used"`
	Limit    int64  `json:"limit"`
}

// Folder is a folder's state as the source reported it in a run.
type Folder struct {
	Name          string   `json:"name"`
	Delimiter     string   `json:"delimiter,omitempty"`
	Attrs         []string `json:"attrs,omitempty"`
	SpecialUse    string   `json:"special_use,omitempty"`
	Dir           string   `json:"dir,omitempty"`
	UIDValidity   uint32   `json:"uidvalidity,omitempty"`
	UIDNext       uint32   `json:"uidnext,omitempty"`
	HighestModSeq uint64   `json:"highestmodseq,omitempty"`
	Messages      uint32   `json:"messages"`
	Status        string   `json:"status"`
	Error         string   `json:"error,omitempty"`
}

// Namespace is a personal namespace (RFC 2342): the prefix of the names
// of the user's folders ("INBOX." on Courier, "" on Dovecot) and their
// hierarchy delimiter.
type Namespace struct {
	Prefix    string `json:"prefix"`
	Delimiter string `json:"delimiter"`
}

// Change is the delta of one folder since the parent snapshot.
type Change struct {
	Folder string       `json:"folder"`
	Event  string       `json:"event,omitempty"`
	From   string       `json:"from,omitempty"` // old name, for EventRenamed
	Added  []Message    `json:"added,omitempty"`
	Flags  []FlagChange `json:"flags,omitempty"`
	Gone   []string     `json:"gone,omitempty"`
}

// Message is an archived message: its source key, content identity,
// metadata and location.
type Message struct {
	Key          string    `json:"key"`
	SHA256       string    `json:"sha256"`
	Size         int64     `json:"size"`
	InternalDate time.Time `json:"internal_date"`
	Flags        []string  `json:"flags,omitempty"`
	MessageID    string    `json:"message_id,omitempty"`
	From         string    `json:"from,omitempty"`
	To           string    `json:"to,omitempty"`
	Subject      string    `json:"subject,omitempty"`
	Date         string    `json:"date,omitempty"`
	// Seg and Off are where the bytes are stored, which only the
	// archive's storage interprets: use Location.
	Seg string `json:"seg"`
	Off int64  `json:"off"`
}

// FlagChange is a message's new flag set.
type FlagChange struct {
	Key   string   `json:"key"`
	Flags []string `json:"flags"`
}

// envelope is the file form of a manifest: the snapshot's exact bytes and
// their SHA-256, so that any damage is detected.
type envelope struct {
	Manifest int             `json:"mailvault_manifest"`
	SHA256   string          `json:"sha256"`
	Snapshot json.RawMessage `json:"snapshot"`
}

// EncodeSnapshot returns the file form of s.
func EncodeSnapshot(s *Snapshot) ([]byte, error) {
	var b bytes.Buffer
	if err := WriteSnapshot(&b, s); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// WriteSnapshot writes the file form of s to w:
//
//	{"mailvault_manifest":1,"snapshot":BODY,"sha256":"HEX"}
//
// where HEX is the SHA-256 of BODY's bytes. Messages are encoded one at a
// time, so memory does not grow with the size of the manifest.
func WriteSnapshot(w io.Writer, s *Snapshot) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	h := sha256.New()
	body := io.MultiWriter(bw, h)
	fmt.Fprintf(bw, `{"mailvault_manifest":%d,"snapshot":`, ManifestVersion1)
	head := *s
	head.Changes = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return err
	}
	if len(s.Changes) == 0 {
		body.Write(b)
	} else {
		body.Write(b[:len(b)-1]) // without the closing brace
		io.WriteString(body, `,"changes":[`)
		for i := range s.Changes {
			if i > 0 {
				io.WriteString(body, ",")
			}
			if err := writeChange(body, &s.Changes[i]); err != nil {
				return err
			}
		}
		io.WriteString(body, "]}")
	}
	fmt.Fprintf(bw, `,"sha256":"%s"}`, hex.EncodeToString(h.Sum(nil)))
	return bw.Flush()
}

func writeChange(w io.Writer, c *Change) error {
	head := *c
	head.Added = nil
	b, err := json.Marshal(&head)
	if err != nil {
		return err
	}
	if len(c.Added) == 0 {
		_, err = w.Write(b)
		return err
	}
	w.Write(b[:len(b)-1])
	io.WriteString(w, `,"added":[`)
	for i := range c.Added {
		if i > 0 {
			io.WriteString(w, ",")
		}
		m, err := json.Marshal(&c.Added[i])
		if err != nil {
			return err
		}
		w.Write(m)
	}
	_, err = io.WriteString(w, "]}")
	return err
}

// errManifest2 is DecodeSnapshot's answer for a version 2 manifest, whose
// records are in delta files (Archive.ReadSnapshot reads those).
var errManifest2 = fmt.Errorf("%w: a version 2 manifest is read with its delta files (Archive.ReadSnapshot, OpenManifest)", ErrNewerVersion)

// DecodeSnapshot parses and validates a version 1 manifest file. Damage
// gives an error wrapping ErrCorrupt; a newer format gives
// ErrNewerVersion.
func DecodeSnapshot(data []byte) (*Snapshot, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if env.Manifest == ManifestVersion2 {
		return nil, errManifest2
	}
	if env.Manifest > ManifestVersion2 {
		return nil, fmt.Errorf("%w: manifest version %d, this mailvault reads up to %d", ErrNewerVersion, env.Manifest, ManifestVersion2)
	}
	if env.Manifest < 1 || len(env.Snapshot) == 0 {
		return nil, fmt.Errorf("%w: manifest: missing version or snapshot", ErrCorrupt)
	}
	// Indentation re-encodes the raw body; compact it to hash what was signed.
	var compact bytes.Buffer
	if err := json.Compact(&compact, env.Snapshot); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	sum := sha256.Sum256(compact.Bytes())
	if hex.EncodeToString(sum[:]) != env.SHA256 {
		return nil, fmt.Errorf("%w: manifest checksum mismatch", ErrCorrupt)
	}
	var s Snapshot
	if err := json.Unmarshal(compact.Bytes(), &s); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	if s.Version > ManifestVersion1 {
		return nil, fmt.Errorf("%w: snapshot version %d, this mailvault reads up to %d", ErrNewerVersion, s.Version, ManifestVersion2)
	}
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	s.settleStatus()
	return &s, nil
}

// Incomplete reports whether s records an error or a folder that failed
// (a folder a checkpoint took in progress is one): then s is partial,
// whatever else happened.
func (s *Snapshot) Incomplete() bool {
	if len(s.Errors) > 0 {
		return true
	}
	for _, f := range s.Folders {
		if f.Status == FolderFailed {
			return true
		}
	}
	return false
}

// settleStatus makes s partial when it is Incomplete. Commit applies it,
// and DecodeSnapshot too: mailvault up to 4f9b7f8 could write "complete"
// for a snapshot whose folders failed on a storage error, and such a
// snapshot must not be taken for a complete backup (--as-of).
func (s *Snapshot) settleStatus() {
	if s.Status == StatusComplete && s.Incomplete() {
		s.Status = StatusPartial
	}
}

// ValidID reports whether id has the form of a snapshot id.
func ValidID(id string) bool {
	if len(id) != 8 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil && strings.ToLower(id) == id
}

func validSHA(s string) bool {
	if len(s) != 64 {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// ValidSegmentPath reports whether p has the form folders/DIR/NAME with
// safe components, so it cannot point outside the archive.
func ValidSegmentPath(p string) bool {
	parts := strings.Split(p, "/")
	return len(parts) == 3 && parts[0] == "folders" && ValidDir(parts[1]) && ValidDir(parts[2]) &&
		strings.HasSuffix(parts[2], ".mbox.zst") && path.Clean(p) == p
}

func (s *Snapshot) validate() error {
	if s.Version < 1 {
		return errors.New("missing version")
	}
	if !ValidID(s.ID) {
		return fmt.Errorf("bad snapshot id %q", s.ID)
	}
	if s.Parent != "" && !ValidID(s.Parent) {
		return fmt.Errorf("bad parent id %q", s.Parent)
	}
	if s.Seq < 1 || (s.Seq == 1) != (s.Parent == "") {
		return fmt.Errorf("bad sequence number %d", s.Seq)
	}
	if s.Status != StatusComplete && s.Status != StatusPartial {
		return fmt.Errorf("bad status %q", s.Status)
	}
	names := map[string]bool{}
	for _, f := range s.Folders {
		if names[f.Name] {
			return fmt.Errorf("folder %q listed twice", f.Name)
		}
		names[f.Name] = true
		if f.Dir != "" && !ValidDir(f.Dir) {
			return fmt.Errorf("folder %q: bad directory %q", f.Name, f.Dir)
		}
		switch f.Status {
		case FolderOK, FolderUnchanged, FolderFailed, FolderNoSelect:
		default:
			return fmt.Errorf("folder %q: bad status %q", f.Name, f.Status)
		}
	}
	segs := map[string]bool{}
	for _, g := range s.Segments {
		if !ValidSegmentPath(g.Path) || segs[g.Path] {
			return fmt.Errorf("bad or repeated segment path %q", g.Path)
		}
		segs[g.Path] = true
		if !validSHA(g.SHA256) || g.Size < 0 || g.USize < 0 || g.Records < 0 {
			return fmt.Errorf("segment %q: bad size or checksum", g.Path)
		}
		for i, fr := range g.Frames {
			if i == 0 && (fr[0] != 0 || fr[1] != 0) {
				return fmt.Errorf("segment %q: first frame not at 0", g.Path)
			}
			if i > 0 && (fr[0] <= g.Frames[i-1][0] || fr[1] <= g.Frames[i-1][1]) {
				return fmt.Errorf("segment %q: frames out of order", g.Path)
			}
			if fr[0] >= g.Size || fr[1] >= g.USize {
				return fmt.Errorf("segment %q: frame beyond end", g.Path)
			}
		}
		if len(g.Frames) == 0 && g.USize > 0 {
			return fmt.Errorf("segment %q: no frames", g.Path)
		}
	}
	for _, c := range s.Changes {
		switch c.Event {
		case "", EventCreated, EventDeleted, EventUIDValidity:
		case EventRenamed:
			if c.From == "" {
				return fmt.Errorf("folder %q: rename without old name", c.Folder)
			}
		default:
			return fmt.Errorf("folder %q: bad event %q", c.Folder, c.Event)
		}
		for _, m := range c.Added {
			if m.Key == "" || !validSHA(m.SHA256) || m.Size < 0 || !m.Location().Valid() {
				return fmt.Errorf("folder %q: bad message entry %q", c.Folder, m.Key)
			}
		}
		for _, fc := range c.Flags {
			if fc.Key == "" {
				return fmt.Errorf("folder %q: flag change without key", c.Folder)
			}
		}
		for _, k := range c.Gone {
			if k == "" {
				return fmt.Errorf("folder %q: empty key in gone list", c.Folder)
			}
		}
	}
	return nil
}
