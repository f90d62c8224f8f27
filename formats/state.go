package formats

import (
	"fmt"
	"sort"
)

// State is an archive as of one snapshot: every folder ever seen with every
// message ever stored in it, present on the source or gone.
//
// A State from Archive.LoadState may be lazy: its folders' messages are
// read from the state cache on first need (see FolderState.Load).
type State struct {
	Snapshot *Snapshot // the snapshot it is at; nil for an empty archive
	Folders  map[string]*FolderState
	Segments map[string]*Segment // every committed segment up to Snapshot

	segOrder []string     // the paths of Segments in the order committed
	saved    *savedCache  // the cache files that hold parts of this state, if any
	loader   *cacheLoader // reads the messages of lazy folders; nil when none are
}

// FolderState is one folder in a State.
//
// In a lazy State (from Archive.LoadState) Archived is nil until the
// folder is loaded: Lookup, ByHash, Present and State.Apply load it
// themselves; code that reads Archived directly must call Load (or
// State.LoadAll) first.
type FolderState struct {
	Folder                   // as last reported by the source
	Deleted  bool            // gone from the source
	Archived []*MessageState // every message ever stored, in the order archived
	byKey    map[string]*MessageState
	byHash   map[string]*MessageState

	lazy   *lazyFolder   // set, once, for a folder read from the cache
	cached *cacheFileRef // the cache file holding exactly Archived; nil after a change
}

// MessageState is a message in a State.
type MessageState struct {
	Message
	AddedIn string // snapshot id
	Gone    bool   // no longer on the source
	GoneIn  string // snapshot id
}

// Lookup returns the message stored under key, present or gone. In a lazy
// State it loads the folder first; if that fails it returns nil and the
// error is kept in State.Err.
func (f *FolderState) Lookup(key string) *MessageState {
	f.Load()
	return f.byKey[key]
}

// ByHash returns a message of this folder with the given SHA-256. Like
// Lookup, it loads a lazy folder first.
func (f *FolderState) ByHash(sum string) *MessageState {
	f.Load()
	return f.byHash[sum]
}

// Present returns the messages on the source at this state. Like Lookup,
// it loads a lazy folder first.
func (f *FolderState) Present() []*MessageState {
	f.Load()
	var out []*MessageState
	for _, m := range f.Archived {
		if !m.Gone {
			out = append(out, m)
		}
	}
	return out
}

func newFolderState(f Folder) *FolderState {
	return &FolderState{Folder: f, byKey: map[string]*MessageState{}, byHash: map[string]*MessageState{}}
}

// NewState returns the state of an empty archive.
func NewState() *State {
	return &State{Folders: map[string]*FolderState{}, Segments: map[string]*Segment{}}
}

// FolderNames returns the folder names in sorted order.
func (st *State) FolderNames() []string {
	names := make([]string, 0, len(st.Folders))
	for n := range st.Folders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Apply replays one snapshot onto st. Snapshots must be applied in order.
// In a lazy State it loads the folders whose messages the snapshot changes
// (a rename alone does not need them) and fails if one cannot be loaded.
func (st *State) Apply(s *Snapshot) error {
	if st.Snapshot != nil && s.Parent != st.Snapshot.ID || st.Snapshot == nil && s.Parent != "" {
		return fmt.Errorf("%w: snapshot %s does not follow %v", ErrCorrupt, s.ID, st.Snapshot)
	}
	for i := range s.Segments {
		g := &s.Segments[i]
		if st.Segments[g.Path] != nil {
			return fmt.Errorf("%w: snapshot %s: segment %s committed twice", ErrCorrupt, s.ID, g.Path)
		}
		st.Segments[g.Path] = g
		st.segOrder = append(st.segOrder, g.Path)
	}
	for _, c := range s.Changes {
		f := st.Folders[c.Folder]
		switch c.Event {
		case EventRenamed:
			old := st.Folders[c.From]
			if old == nil {
				return fmt.Errorf("%w: snapshot %s: rename of unknown folder %q", ErrCorrupt, s.ID, c.From)
			}
			delete(st.Folders, c.From)
			old.Name = c.Folder
			old.Deleted = false
			st.Folders[c.Folder] = old
			f = old
		case EventDeleted:
			if f == nil {
				return fmt.Errorf("%w: snapshot %s: deletion of unknown folder %q", ErrCorrupt, s.ID, c.Folder)
			}
			f.Deleted = true
		}
		if f == nil {
			f = newFolderState(Folder{Name: c.Folder})
			st.Folders[c.Folder] = f
		}
		if len(c.Added)+len(c.Flags)+len(c.Gone) > 0 || c.Event == EventDeleted {
			// The messages change: read them first (a lazy folder), and
			// the cache file no longer holds them.
			if err := f.Load(); err != nil {
				return fmt.Errorf("snapshot %s: folder %q: %w", s.ID, c.Folder, err)
			}
			f.cached = nil
		}
		for _, m := range c.Added {
			// A record in a segment must be in one the manifests committed.
			if !m.Location().isFile() {
				g := st.Segments[m.Seg]
				if g == nil {
					return fmt.Errorf("%w: snapshot %s: message %s in unknown segment %s", ErrCorrupt, s.ID, m.Key, m.Seg)
				}
				if m.Off >= g.USize {
					return fmt.Errorf("%w: snapshot %s: message %s beyond the end of %s", ErrCorrupt, s.ID, m.Key, m.Seg)
				}
			}
			if old := f.byKey[m.Key]; old != nil && !old.Gone {
				return fmt.Errorf("%w: snapshot %s: message %s added twice to %q", ErrCorrupt, s.ID, m.Key, c.Folder)
			}
			ms := &MessageState{Message: m, AddedIn: s.ID}
			f.Archived = append(f.Archived, ms)
			f.byKey[m.Key] = ms
			if f.byHash[m.SHA256] == nil {
				f.byHash[m.SHA256] = ms
			}
		}
		for _, fc := range c.Flags {
			if ms := f.byKey[fc.Key]; ms != nil {
				ms.Flags = fc.Flags
			}
		}
		for _, k := range c.Gone {
			if ms := f.byKey[k]; ms != nil && !ms.Gone {
				ms.Gone, ms.GoneIn = true, s.ID
			}
		}
		if c.Event == EventDeleted {
			for _, ms := range f.Archived {
				if !ms.Gone {
					ms.Gone, ms.GoneIn = true, s.ID
				}
			}
		}
	}
	for _, fo := range s.Folders {
		f := st.Folders[fo.Name]
		if f == nil {
			f = newFolderState(fo)
			st.Folders[fo.Name] = f
		}
		f.Folder = fo
		f.Deleted = false
	}
	st.Snapshot = s
	return nil
}

// Replay builds the state at the snapshot with the given id (the last one
// when id is "") from the snapshots in order.
func Replay(snaps []*Snapshot, id string) (*State, error) {
	st := NewState()
	for _, s := range snaps {
		if err := st.Apply(s); err != nil {
			return nil, err
		}
		if s.ID == id {
			return st, nil
		}
	}
	if id != "" {
		return nil, fmt.Errorf("%w: snapshot %s", ErrNotFound, id)
	}
	return st, nil
}

// segment returns the committed segment with the given path, or nil (st
// is an index for the archive's storage; a nil State has nothing).
func (st *State) segment(path string) *Segment {
	if st == nil {
		return nil
	}
	return st.Segments[path]
}

// segmentPaths returns the paths of every committed segment.
func (st *State) segmentPaths() []string {
	if st == nil {
		return nil
	}
	out := make([]string, 0, len(st.Segments))
	for p := range st.Segments {
		out = append(out, p)
	}
	return out
}

// eachStored calls fn with every message of st, present or gone, folder by
// folder in name order. A lazy State loads every folder first.
func (st *State) eachStored(fn func(m *Message) error) error {
	if st == nil {
		return nil
	}
	if err := st.LoadAll(); err != nil {
		return err
	}
	for _, name := range st.FolderNames() {
		for _, m := range st.Folders[name].Archived {
			if err := fn(&m.Message); err != nil {
				return err
			}
		}
	}
	return nil
}
