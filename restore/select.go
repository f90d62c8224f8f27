package restore

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// Selection says which archived messages to restore. The zero value
// selects every message present at the latest snapshot.
type Selection struct {
	Snapshot     string    // id, unique id prefix, "latest" or ""
	AsOf         time.Time // the last complete snapshot started at or before this time
	Folders      []string  // exact folder names; empty means all
	Include      []string  // glob patterns on folder names ("/" separates levels); a folder must match one
	Exclude      []string  // glob patterns; a matching folder is left out
	Since        time.Time // INTERNALDATE at or after
	Before       time.Time // INTERNALDATE before
	From         string    // case-insensitive substring of the decoded From header
	To           string    // … of the decoded To header
	Subject      string    // … of the decoded Subject
	MessageID    string    // exact Message-ID, angle brackets optional
	DeletedSince string    // only messages present in this snapshot and gone by the chosen one
	All          bool      // also messages and folders gone from the server by the chosen snapshot
}

// ErrSelection is wrapped by errors in a selection (an unknown snapshot,
// a bad pattern).
var ErrSelection = errors.New("restore: bad selection")

// Selected is the result of a selection: the snapshot and the chosen
// messages per archived folder. The messages are not held in memory: they
// are read from the state index at the chosen snapshot (Each), in key
// order, as often as needed. Close releases the index.
type Selected struct {
	Snapshot *formats.Snapshot
	// Archived are every folder of the snapshot (deleted ones too), by
	// name: the folder mapping and the archive's namespace look at them.
	Archived []formats.Folder
	Folders  []*SelectedFolder // sorted by name
	// Structure are the archived folders that hold no messages, only
	// other folders (IMAP \Noselect), chosen by the folder filters of a
	// selection of whole folders: a restore keeps them as structure where
	// the target allows it.
	Structure []formats.Folder
	// NothingDeleted is set for a DeletedSince selection when no message
	// of the chosen folders was deleted in between: an answer, not an
	// error.
	NothingDeleted bool

	ix    *formats.Index
	sel   Selection
	since int // DeletedSince: the sequence number of that snapshot
}

// SelectedFolder is one archived folder and how many of its messages are
// chosen.
type SelectedFolder struct {
	Folder   formats.Folder
	Messages int   // chosen
	Bytes    int64 // their size
	// The folder at the chosen snapshot, whatever is chosen: its present
	// messages and their size, the messages kept as gone, and whether it
	// was deleted on the server.
	Present, PresentBytes, Gone int64
	Deleted                     bool
	id                          uint32 // in the index
}

// Count returns the number of messages and bytes selected.
func (s *Selected) Count() (msgs int, bytes int64) {
	for _, f := range s.Folders {
		msgs += f.Messages
		bytes += f.Bytes
	}
	return
}

// Has reports whether the snapshot has a folder of that name.
func (s *Selected) Has(name string) bool {
	for _, f := range s.Archived {
		if f.Name == name {
			return true
		}
	}
	return false
}

// Close releases the state index the selection reads from.
func (s *Selected) Close() error {
	if s == nil || s.ix == nil {
		return nil
	}
	err := s.ix.Close()
	s.ix = nil
	return err
}

// NewReader returns a reader of the selected messages' bytes; readers of
// one selection may be used on several goroutines, each its own.
func (s *Selected) NewReader(a *formats.Archive) *formats.MessageReader {
	return a.NewIndexMessageReader(s.ix)
}

// Each calls fn with each chosen message of sf, in key order (older
// entries of a key that was added again before it), until fn returns an
// error, which Each returns. fn may keep the message. It is safe to call
// from several goroutines at once.
func (s *Selected) Each(sf *SelectedFolder, fn func(m *formats.MessageState) error) error {
	mi := s.ix.Messages(sf.id, true)
	defer mi.Release()
	for m := mi.Next(); m != nil; m = mi.Next() {
		if !s.chosen(m) {
			continue
		}
		ms := &formats.MessageState{Message: m.Message, Gone: m.Gone()}
		if !messageWanted(ms, s.sel) {
			continue
		}
		if err := fn(ms); err != nil {
			return err
		}
	}
	return mi.Err()
}

// chosen applies the snapshot part of the selection to one entry: present
// at the chosen snapshot (or gone too, with All), or, for DeletedSince,
// present at that snapshot and gone by the chosen one.
func (s *Selected) chosen(m *formats.IndexMessage) bool {
	if s.since > 0 {
		return m.Gone() && m.GoneIn > s.since && m.AddedIn <= s.since
	}
	return !m.Gone() || s.sel.All
}

// ResolveSnapshot returns the id of the snapshot sel chooses.
func ResolveSnapshot(snaps []*formats.Snapshot, sel string, asOf time.Time) (string, error) {
	if len(snaps) == 0 {
		return "", fmt.Errorf("%w: the archive has no snapshots", ErrSelection)
	}
	if !asOf.IsZero() {
		if sel != "" && sel != "latest" {
			return "", fmt.Errorf("%w: --snapshot and --as-of exclude each other", ErrSelection)
		}
		id := ""
		for _, s := range snaps {
			if s.Status == formats.StatusComplete && !s.Started.After(asOf) {
				id = s.ID
			}
		}
		if id == "" {
			return "", fmt.Errorf("%w: no complete snapshot at or before %s", ErrSelection, asOf.Format(time.RFC3339))
		}
		return id, nil
	}
	if sel == "" || sel == "latest" {
		return snaps[len(snaps)-1].ID, nil
	}
	id := ""
	for _, s := range snaps {
		if strings.HasPrefix(s.ID, sel) {
			if id != "" {
				return "", fmt.Errorf("%w: snapshot prefix %q is ambiguous", ErrSelection, sel)
			}
			id = s.ID
		}
	}
	if id == "" {
		return "", fmt.Errorf("%w: no snapshot %q (see 'mailvault snapshots')", ErrSelection, sel)
	}
	return id, nil
}

// slashName is a folder name with its levels joined by "/", for patterns.
func slashName(f formats.Folder) string {
	if f.Delimiter == "" || f.Delimiter == "/" {
		return f.Name
	}
	return strings.ReplaceAll(f.Name, f.Delimiter, "/")
}

// Select applies sel to an archive: it reads the state index at the chosen
// snapshot (the archive's own when it is there, else a temporary one built
// by streaming the manifests) and counts what is chosen, folder by folder,
// without holding any folder's messages. The caller must Close the result.
func Select(a *formats.Archive, sel Selection) (*Selected, error) {
	for _, p := range append(append([]string{}, sel.Include...), sel.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: pattern %q: %v", ErrSelection, p, err)
		}
	}
	heads, err := a.Headers()
	if err != nil {
		return nil, err
	}
	snaps := make([]*formats.Snapshot, len(heads))
	for i, h := range heads {
		snaps[i] = &h.Snapshot
	}
	id, err := ResolveSnapshot(snaps, sel.Snapshot, sel.AsOf)
	if err != nil {
		return nil, err
	}
	var snap *formats.Snapshot
	for _, s := range snaps {
		if s.ID == id {
			snap = s
		}
	}
	since := 0
	if sel.DeletedSince != "" {
		sid, err := ResolveSnapshot(snaps, sel.DeletedSince, time.Time{})
		if err != nil {
			return nil, err
		}
		for _, s := range snaps {
			if s.ID == sid {
				since = s.Seq
			}
		}
		if since > snap.Seq {
			return nil, fmt.Errorf("%w: --deleted-since %s is newer than the chosen snapshot %s", ErrSelection, sid, id)
		}
	}
	ix, err := a.ReadIndex(snap.Seq)
	if err != nil {
		return nil, err
	}
	out := &Selected{Snapshot: snap, ix: ix, sel: sel, since: since}
	if err := out.choose(); err != nil {
		ix.Close()
		return nil, err
	}
	return out, nil
}

// choose fills in the chosen folders and their counts.
func (out *Selected) choose() error {
	sel, was := out.sel, out.since > 0
	all := out.ix.Folders()
	for _, f := range all {
		out.Archived = append(out.Archived, f.Folder)
	}
	// What each --folder and --include matched, to name the ones that
	// matched nothing: a typo must not restore nothing and succeed.
	folderHit := make([]bool, len(sel.Folders))
	includeHit := make([]bool, len(sel.Include))
	var deletedFolders []string
	candidates, deleted := 0, 0
	for _, f := range all {
		if f.Folder.Status == formats.FolderNoSelect && f.Present+f.Gone == 0 {
			if !was && !hasMessageFilter(sel) && (!f.Deleted || sel.All) && folderWanted(f.Folder, sel, nil, nil) {
				out.Structure = append(out.Structure, f.Folder)
			}
			continue
		}
		if !folderWanted(f.Folder, sel, folderHit, includeHit) {
			continue
		}
		if !was && f.Deleted && !sel.All {
			deletedFolders = append(deletedFolders, f.Folder.Name)
			continue
		}
		candidates++
		sf := &SelectedFolder{Folder: f.Folder, id: f.ID, Present: f.Present, PresentBytes: f.Bytes, Gone: f.Gone, Deleted: f.Deleted}
		if !was && !sel.All && !hasMessageFilter(sel) {
			// Every present message: the index counts them.
			sf.Messages, sf.Bytes = int(f.Present), f.Bytes
		} else {
			mi := out.ix.Messages(f.ID, true)
			for m := mi.Next(); m != nil; m = mi.Next() {
				if !out.chosen(m) {
					continue
				}
				if was {
					deleted++
				}
				ms := formats.MessageState{Message: m.Message, Gone: m.Gone()}
				if messageWanted(&ms, sel) {
					sf.Messages++
					sf.Bytes += m.Size
				}
			}
			err := mi.Err()
			mi.Release()
			if err != nil {
				return err
			}
		}
		// Whole folders are restored with their structure, empty ones too.
		if sf.Messages > 0 || (!was && !hasMessageFilter(sel)) {
			out.Folders = append(out.Folders, sf)
		}
	}
	if err := matchedSomething(out.Archived, out.Snapshot.ID, sel, folderHit, includeHit, deletedFolders, candidates); err != nil {
		return err
	}
	if was && deleted == 0 {
		out.NothingDeleted = true
		return nil
	}
	if len(out.Folders) == 0 && hasMessageFilter(sel) {
		var names []string
		for _, f := range all {
			if folderWanted(f.Folder, sel, nil, nil) && (!f.Deleted || sel.All || was) {
				names = append(names, f.Folder.Name)
			}
		}
		return fmt.Errorf("%w: no message in %s of snapshot %s matches %s", ErrSelection, folderList(names), out.Snapshot.ID, describeFilters(sel))
	}
	return nil
}

// matchedSomething returns an error naming each --folder and --include
// that matched no folder of the snapshot, or saying that the folder
// selection as a whole left no folder.
func matchedSomething(folders []formats.Folder, snapID string, sel Selection, folderHit, includeHit []bool, deletedFolders []string, candidates int) error {
	var missing []string
	for i, hit := range folderHit {
		if hit {
			continue
		}
		want := sel.Folders[i]
		msg := fmt.Sprintf("no folder %q", want)
		for _, f := range folders {
			if strings.EqualFold(f.Name, want) || strings.EqualFold(slashName(f), want) {
				msg += fmt.Sprintf(" (did you mean %q?)", f.Name)
				break
			}
		}
		missing = append(missing, msg)
	}
	for i, hit := range includeHit {
		if !hit {
			missing = append(missing, fmt.Sprintf("--include %q matches no folder", sel.Include[i]))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s in snapshot %s (see 'mailvault ls ARCHIVE')", ErrSelection, strings.Join(missing, ", "), snapID)
	}
	if candidates > 0 || len(sel.Folders) == 0 && len(sel.Include) == 0 && len(sel.Exclude) == 0 {
		return nil
	}
	if len(deletedFolders) > 0 {
		return fmt.Errorf("%w: %s deleted on the server by snapshot %s: choose an earlier --snapshot", ErrSelection, folderList(deletedFolders), snapID)
	}
	return fmt.Errorf("%w: no folder of snapshot %s is left by the folder selection (--folder, --include, --exclude)", ErrSelection, snapID)
}

// folderList names a few folders for an error message.
func folderList(names []string) string {
	switch {
	case len(names) == 0:
		return "no folder"
	case len(names) == 1:
		return fmt.Sprintf("folder %q", names[0])
	}
	q := make([]string, 0, 5)
	for _, n := range names[:min(len(names), 5)] {
		q = append(q, strconv.Quote(n))
	}
	s := "folders " + strings.Join(q, ", ")
	if len(names) > 5 {
		s += fmt.Sprintf(" and %d more", len(names)-5)
	}
	return s
}

// describeFilters spells the message filters of sel as flags.
func describeFilters(sel Selection) string {
	var parts []string
	add := func(flag, v string) {
		if v != "" {
			parts = append(parts, fmt.Sprintf("--%s %q", flag, v))
		}
	}
	if !sel.Since.IsZero() {
		add("since", sel.Since.Format(time.RFC3339))
	}
	if !sel.Before.IsZero() {
		add("before", sel.Before.Format(time.RFC3339))
	}
	add("from", sel.From)
	add("to", sel.To)
	add("subject", sel.Subject)
	add("message-id", sel.MessageID)
	return strings.Join(parts, " ")
}

func hasMessageFilter(sel Selection) bool {
	return !sel.Since.IsZero() || !sel.Before.IsZero() || sel.From != "" || sel.To != "" || sel.Subject != "" || sel.MessageID != ""
}

// folderWanted reports whether sel's folder filters keep f, and marks in
// folderHit and includeHit (when not nil) the --folder names and
// --include patterns that match it.
func folderWanted(f formats.Folder, sel Selection, folderHit, includeHit []bool) bool {
	name := slashName(f)
	if len(sel.Folders) > 0 {
		ok := false
		for i, want := range sel.Folders {
			if want == f.Name || want == name || strings.EqualFold(want, "INBOX") && strings.EqualFold(f.Name, "INBOX") {
				ok = true
				if folderHit != nil {
					folderHit[i] = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	if len(sel.Include) > 0 {
		ok := false
		for i, p := range sel.Include {
			if m, _ := path.Match(p, name); m {
				ok = true
				if includeHit != nil {
					includeHit[i] = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	for _, p := range sel.Exclude {
		if m, _ := path.Match(p, name); m {
			return false
		}
	}
	return true
}

func messageWanted(m *formats.MessageState, sel Selection) bool {
	if !sel.Since.IsZero() && m.InternalDate.Before(sel.Since) {
		return false
	}
	if !sel.Before.IsZero() && !m.InternalDate.Before(sel.Before) {
		return false
	}
	if !containsFold(m.From, sel.From) || !containsFold(m.To, sel.To) || !containsFold(m.Subject, sel.Subject) {
		return false
	}
	if sel.MessageID != "" && normalizeMessageID(m.MessageID) != normalizeMessageID(sel.MessageID) {
		return false
	}
	return true
}

func containsFold(s, sub string) bool {
	return sub == "" || strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func normalizeMessageID(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
}

// errStop ends an iteration early.
var errStop = errors.New("stop")
