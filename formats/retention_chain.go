package formats

import (
	"errors"
	"fmt"
	"io"
	"sort"
)

// Retention (forget, prune, erase) reads the chain of snapshots the way a
// replay does, without holding any snapshot's records: every manifest's
// header stays in memory (its folders and segments: small), the records
// are streamed from the manifests, pass after pass. What a pass needs to
// know per message goes to an on-disk store (retention_walk.go).

// chain is an archive's snapshots in order, headers only.
type snapChain struct {
	a     *Archive
	snaps []*chainSnap
}

// chainSnap is one snapshot of a chain: its manifest's header and its
// changes, as readSnapshot2 groups a version 2 manifest's entries
// (consecutive entries of one folder, but for one with an event, are one
// change: its added messages, then its flag changes, then its gone keys).
type chainSnap struct {
	sf      SnapshotFile
	h       *Header
	version int // of the manifest file
	changes []chainChange
}

// chainChange is one change of a snapshot: a folder's event and the
// header entries (h.Deltas) whose records it applies.
type chainChange struct {
	Folder, Event, From string
	parts               []int
}

// readChain reads the headers of the archive's manifests and checks the
// chain of parents.
func (a *Archive) readChain() (*snapChain, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	return a.chainOf(files)
}

// chainOf reads the headers of the manifests in files, which must form a
// chain (numbered from 1, each the parent of the next).
func (a *Archive) chainOf(files []SnapshotFile) (*snapChain, error) {
	ch := &snapChain{a: a, snaps: make([]*chainSnap, 0, len(files))}
	for i, sf := range files {
		m, err := a.OpenManifest(sf)
		if err != nil {
			return nil, err
		}
		h, version := m.Header(), m.Version()
		m.Close()
		if i == 0 && h.Seq != 1 || i > 0 && (h.Seq != ch.snaps[i-1].h.Seq+1 || h.Parent != ch.snaps[i-1].h.ID) {
			return nil, fmt.Errorf("%w: snapshot %s does not follow the one before it", ErrCorrupt, h.ID)
		}
		cs := &chainSnap{sf: sf, h: h, version: version}
		for di, d := range h.Deltas {
			if n := len(cs.changes); version == ManifestVersion1 || n == 0 || cs.changes[n-1].Folder != d.Folder || d.Event != "" {
				cs.changes = append(cs.changes, chainChange{Folder: d.Folder, Event: d.Event, From: d.From})
			}
			c := &cs.changes[len(cs.changes)-1]
			c.parts = append(c.parts, di)
		}
		ch.snaps = append(ch.snaps, cs)
	}
	return ch, nil
}

// snapshots returns the chain's snapshots without their records (the
// headers' snapshots, no changes).
func (ch *snapChain) snapshots() []*Snapshot {
	out := make([]*Snapshot, len(ch.snaps))
	for i, cs := range ch.snaps {
		s := cs.h.Snapshot
		s.Changes = nil
		out[i] = &s
	}
	return out
}

// records streams the records of change ci of cs through m, cs's open
// manifest: its added messages, then its flag changes, then its gone
// keys. The record fn gets is valid until it returns.
func (cs *chainSnap) records(m *ManifestReader, ci int, fn func(r *DeltaRecord) error) error {
	c := &cs.changes[ci]
	if cs.version == ManifestVersion1 {
		// One entry per change, read from the manifest in that order.
		return eachRecord(m, c.parts[0], nil, fn)
	}
	for _, kind := range []DeltaKind{RecordAdded, RecordFlags, RecordGone} {
		for _, p := range c.parts {
			d := &cs.h.Deltas[p]
			n := d.Added
			if kind == RecordFlags {
				n = d.FlagChanges
			} else if kind == RecordGone {
				n = d.Gone
			}
			if n == 0 {
				continue
			}
			k := kind
			if err := eachRecord(m, p, &k, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

// eachRecord calls fn with the records of entry i of m (of one kind only,
// if kind is not nil). Errors reading them name the snapshot, as
// ReadSnapshot's do.
func eachRecord(m *ManifestReader, i int, kind *DeltaKind, fn func(r *DeltaRecord) error) error {
	rr, err := m.Records(i)
	if err != nil {
		return fmt.Errorf("snapshot %s: %w", m.Header().ID, err)
	}
	defer rr.Close()
	for {
		r, err := rr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("snapshot %s: %w", m.Header().ID, err)
		}
		if kind != nil && r.Kind != *kind {
			continue
		}
		if err := fn(r); err != nil {
			return err
		}
	}
}

// counts returns the change's records by kind, as its entries count them.
func (cs *chainSnap) counts(ci int) (added, flags, gone int) {
	for _, p := range cs.changes[ci].parts {
		d := &cs.h.Deltas[p]
		added, flags, gone = added+d.Added, flags+d.FlagChanges, gone+d.Gone
	}
	return
}

// replayFolder is a folder of a replay without its messages: what
// State.Apply keeps of it besides them. id names the folder for its whole
// life (renames keep it; a folder renamed onto its name replaces it).
type replayFolder struct {
	id      uint32
	Folder  Folder
	Deleted bool
}

// folderReplay replays the folder events and folder lists of a chain as
// State.Apply does, with no messages: what retention needs of folders in
// memory (there are few).
type folderReplay struct {
	byName map[string]*replayFolder
	last   map[uint32]string // the name each folder had last (a replaced one keeps its own)
	next   uint32
}

func newFolderReplay() *folderReplay {
	return &folderReplay{byName: map[string]*replayFolder{}, last: map[uint32]string{}, next: 1}
}

func (r *folderReplay) create(fo Folder) *replayFolder {
	f := &replayFolder{id: r.next, Folder: fo}
	r.next++
	r.byName[fo.Name] = f
	r.last[f.id] = fo.Name
	return f
}

// change applies a change's event (of snapshot id) and returns the folder
// its records apply to.
func (r *folderReplay) change(id, folder, event, from string) (*replayFolder, error) {
	f := r.byName[folder]
	switch event {
	case EventRenamed:
		old := r.byName[from]
		if old == nil {
			return nil, fmt.Errorf("%w: snapshot %s: rename of unknown folder %q", ErrCorrupt, id, from)
		}
		delete(r.byName, from)
		old.Folder.Name, old.Deleted = folder, false
		r.byName[folder] = old
		r.last[old.id] = folder
		f = old
	case EventDeleted:
		if f == nil {
			return nil, fmt.Errorf("%w: snapshot %s: deletion of unknown folder %q", ErrCorrupt, id, folder)
		}
		f.Deleted = true
	}
	if f == nil {
		f = r.create(Folder{Name: folder})
	}
	return f, nil
}

// listings applies a snapshot's folder list.
func (r *folderReplay) listings(folders []Folder) {
	for _, fo := range folders {
		f := r.byName[fo.Name]
		if f == nil {
			f = r.create(fo)
		}
		f.Folder, f.Deleted = fo, false
	}
}

// names returns the folder names in order.
func (r *folderReplay) names() []string {
	out := make([]string, 0, len(r.byName))
	for n := range r.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// chainSegments is the storage's view (index) of the segments the chain
// commits: all a compaction or a reader of segments needs.
type chainSegments map[string]*Segment

func (ch *snapChain) segments() chainSegments {
	out := chainSegments{}
	for _, cs := range ch.snaps {
		for i := range cs.h.Segments {
			out[cs.h.Segments[i].Path] = &cs.h.Segments[i]
		}
	}
	return out
}

func (s chainSegments) segment(path string) *Segment { return s[path] }

func (s chainSegments) segmentPaths() []string {
	out := make([]string, 0, len(s))
	for p := range s {
		out = append(out, p)
	}
	return out
}

func (s chainSegments) eachStored(func(m *Message) error) error {
	return errors.New("formats: a chain's segments list no messages")
}
