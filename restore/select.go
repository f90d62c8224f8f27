package restore

import (
	"errors"
	"fmt"
	"path"
	"sort"
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
// messages per archived folder.
type Selected struct {
	Snapshot *formats.Snapshot
	State    *formats.State
	Folders  []*SelectedFolder // sorted by name
}

// SelectedFolder is one archived folder and its chosen messages.
type SelectedFolder struct {
	Folder   formats.Folder
	Messages []*formats.MessageState
	Bytes    int64
}

// Count returns the number of messages and bytes selected.
func (s *Selected) Count() (msgs int, bytes int64) {
	for _, f := range s.Folders {
		msgs += len(f.Messages)
		bytes += f.Bytes
	}
	return
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

// Select applies sel to an archive's snapshots.
func Select(snaps []*formats.Snapshot, sel Selection) (*Selected, error) {
	for _, p := range append(append([]string{}, sel.Include...), sel.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: pattern %q: %v", ErrSelection, p, err)
		}
	}
	id, err := ResolveSnapshot(snaps, sel.Snapshot, sel.AsOf)
	if err != nil {
		return nil, err
	}
	st, err := formats.Replay(snaps, id)
	if err != nil {
		return nil, err
	}
	// For --deleted-since: what was present in that snapshot.
	var was map[string]map[string]bool
	if sel.DeletedSince != "" {
		since, err := ResolveSnapshot(snaps, sel.DeletedSince, time.Time{})
		if err != nil {
			return nil, err
		}
		old, err := formats.Replay(snaps, since)
		if err != nil {
			return nil, err
		}
		if old.Snapshot.Seq > st.Snapshot.Seq {
			return nil, fmt.Errorf("%w: --deleted-since %s is newer than the chosen snapshot %s", ErrSelection, since, id)
		}
		was = map[string]map[string]bool{}
		for name, f := range old.Folders {
			keys := map[string]bool{}
			for _, m := range f.Present() {
				keys[m.Key] = true
			}
			was[name] = keys
		}
	}
	out := &Selected{Snapshot: st.Snapshot, State: st}
	for _, name := range st.FolderNames() {
		f := st.Folders[name]
		if f.Status == formats.FolderNoSelect && len(f.Archived) == 0 {
			continue
		}
		if !folderWanted(f.Folder, sel) {
			continue
		}
		if was == nil && f.Deleted && !sel.All {
			continue
		}
		sf := &SelectedFolder{Folder: f.Folder}
		for _, m := range f.Archived {
			if was != nil {
				if !m.Gone || !was[name][m.Key] {
					continue
				}
			} else if m.Gone && !sel.All {
				continue
			}
			if !messageWanted(m, sel) {
				continue
			}
			sf.Messages = append(sf.Messages, m)
			sf.Bytes += m.Size
		}
		// Whole folders are restored with their structure, empty ones too.
		if len(sf.Messages) > 0 || (was == nil && !hasMessageFilter(sel)) {
			out.Folders = append(out.Folders, sf)
		}
	}
	sort.Slice(out.Folders, func(i, j int) bool { return out.Folders[i].Folder.Name < out.Folders[j].Folder.Name })
	return out, nil
}

func hasMessageFilter(sel Selection) bool {
	return !sel.Since.IsZero() || !sel.Before.IsZero() || sel.From != "" || sel.To != "" || sel.Subject != "" || sel.MessageID != ""
}

func folderWanted(f formats.Folder, sel Selection) bool {
	name := slashName(f)
	if len(sel.Folders) > 0 {
		ok := false
		for _, want := range sel.Folders {
			if want == f.Name || want == name || strings.EqualFold(want, "INBOX") && strings.EqualFold(f.Name, "INBOX") {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	if len(sel.Include) > 0 {
		ok := false
		for _, p := range sel.Include {
			if m, _ := path.Match(p, name); m {
				ok = true
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
