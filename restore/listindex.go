package restore

import (
	"errors"
	"fmt"
	"path"

	"github.com/mailvault/mailvault/formats"
)

// IndexListing is a Selection applied to a state index for a listing
// (ls): the folders chosen, with the same rules and errors as Select,
// whose messages are streamed (Each) in key order instead of held in
// memory. DeletedSince is not supported (use Select).
type IndexListing struct {
	Index    *formats.Index
	Snapshot string                 // the id of the snapshot the index is at
	Folders  []*formats.IndexFolder // chosen, by name
	sel      Selection
}

// errStop ends an iteration early.
var errStop = errors.New("stop")

// SelectIndex applies sel (without DeletedSince) at ix.
func SelectIndex(ix *formats.Index, sel Selection) (*IndexListing, error) {
	if sel.DeletedSince != "" {
		return nil, errors.New("restore: a listing of deletions needs Select")
	}
	for _, p := range append(append([]string{}, sel.Include...), sel.Exclude...) {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("%w: pattern %q: %v", ErrSelection, p, err)
		}
	}
	out := &IndexListing{Index: ix, Snapshot: ix.ID(), sel: sel}
	all := ix.Folders()
	folderHit := make([]bool, len(sel.Folders))
	includeHit := make([]bool, len(sel.Include))
	var deletedFolders []string
	candidates := 0
	for _, f := range all {
		if f.Folder.Status == formats.FolderNoSelect && f.Present+f.Gone == 0 {
			continue // structure only
		}
		if !folderWanted(f.Folder, sel, folderHit, includeHit) {
			continue
		}
		if f.Deleted && !sel.All {
			deletedFolders = append(deletedFolders, f.Folder.Name)
			continue
		}
		candidates++
		if hasMessageFilter(sel) {
			// Listed only when a message matches.
			found := false
			err := out.Each(f, func(*formats.MessageState) error {
				found = true
				return errStop
			})
			if err != nil && err != errStop {
				return nil, err
			}
			if !found {
				continue
			}
		}
		out.Folders = append(out.Folders, f)
	}
	folders := make([]formats.Folder, 0, len(all))
	for _, f := range all {
		folders = append(folders, f.Folder)
	}
	if err := matchedSomething(folders, out.Snapshot, sel, folderHit, includeHit, deletedFolders, candidates); err != nil {
		return nil, err
	}
	if len(out.Folders) == 0 && hasMessageFilter(sel) {
		var names []string
		for _, f := range all {
			if folderWanted(f.Folder, sel, nil, nil) && (!f.Deleted || sel.All) {
				names = append(names, f.Folder.Name)
			}
		}
		return nil, fmt.Errorf("%w: no message in %s of snapshot %s matches %s", ErrSelection, folderList(names), out.Snapshot, describeFilters(sel))
	}
	return out, nil
}

// Each calls fn with each chosen message of folder f in key order (older
// entries of a key added again before it). The message is valid until fn
// returns.
func (l *IndexListing) Each(f *formats.IndexFolder, fn func(m *formats.MessageState) error) error {
	mi := l.Index.Messages(f.ID, true)
	defer mi.Release()
	var ms formats.MessageState
	for m := mi.Next(); m != nil; m = mi.Next() {
		if m.Gone() && !l.sel.All {
			continue
		}
		ms = formats.MessageState{Message: m.Message, Gone: m.Gone()}
		if !messageWanted(&ms, l.sel) {
			continue
		}
		if err := fn(&ms); err != nil {
			return err
		}
	}
	return mi.Err()
}
