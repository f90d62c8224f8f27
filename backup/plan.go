package backup

import (
	"sort"
	"strings"

	"github.com/mailvault/mailvault/formats"
)

// Planning: which listed folders a run opens, which it skips, which were
// renamed or deleted. makePlan decides from folder metadata alone (the
// archive's folder records and the source's listing), never from
// messages, and does no I/O.

// archivedFolder is what the planner knows of a folder from the archive's
// latest state: its last record, not its messages.
type archivedFolder struct {
	formats.Folder
	Deleted bool // recorded as deleted on the source
}

// archivedFolders returns the folder records of the state index, without
// reading any folder's messages.
func archivedFolders(ix *formats.Index) map[string]archivedFolder {
	folders := ix.Folders()
	out := make(map[string]archivedFolder, len(folders))
	for _, f := range folders {
		out[f.Folder.Name] = archivedFolder{Folder: f.Folder, Deleted: f.Deleted}
	}
	return out
}

// action is what a run does with a listed folder.
type action int

const (
	actSync     action = iota + 1 // examine it and synchronise its messages
	actSkip                       // unchanged since the archive's record: not opened
	actNoSelect                   // structure only: recorded, holds no messages
	actFailed                     // listed with an error: recorded as failed
)

func (a action) String() string {
	switch a {
	case actSync:
		return "sync"
	case actSkip:
		return "skip"
	case actNoSelect:
		return "noselect"
	case actFailed:
		return "failed"
	}
	return "action?"
}

// folderPlan is one listed folder in a plan.
type folderPlan struct {
	info   FolderInfo
	action action
	// prev names the archived folder whose messages this one carries on:
	// the same name, the old name of a renamed folder, or "" for a new one.
	prev string
	// change is the folder's event (created, renamed) for the snapshot.
	change formats.Change
	// folder is the record the snapshot gets; a folder that is synchronised
	// completes it (status, UIDVALIDITY, UIDNEXT, …).
	folder formats.Folder
}

// listedTwice is a folder the source listed twice; the listing kept and
// the other.
type listedTwice struct{ kept, also string }

// plan is what a run does with the source's folders.
type plan struct {
	folders []folderPlan  // every listed folder once, in name order
	deleted []string      // archived folders no longer listed (and not renamed), in name order
	twice   []listedTwice // folders listed more than once (backed up once)
}

// makePlan decides what a run does with each listed folder, given the
// archive's folder records:
//   - a folder listed twice (the same name, or INBOX in another case) is
//     planned once;
//   - a folder listed with an error fails alone; a \Noselect folder is
//     recorded and not opened;
//   - a folder whose UIDVALIDITY, UIDNEXT, MESSAGES and HIGHESTMODSEQ are
//     what the archive recorded after a successful run is skipped (never
//     without HIGHESTMODSEQ: flag changes are then invisible);
//   - a new folder with the UIDVALIDITY of an archived folder that is no
//     longer listed is taken for that folder renamed (one new folder per
//     vanished one, the first by name) and always synchronised: its
//     content must confirm it (see confirmRename) before the messages carry
//     over;
//   - every other folder is synchronised;
//   - archived folders no longer listed and not renamed are deleted.
func makePlan(archived map[string]archivedFolder, listed []FolderInfo) plan {
	var p plan
	infos := uniqueFolders(listed, &p)
	sort.Slice(infos, func(i, j int) bool { return infos[i].Name < infos[j].Name })
	isListed := make(map[string]bool, len(infos))
	for _, fi := range infos {
		isListed[fi.Name] = true
	}
	// Folders the archive knows that the source no longer lists; by
	// UIDVALIDITY, the first by name.
	var vanishedNames []string
	for name, f := range archived {
		if !f.Deleted && !isListed[name] {
			vanishedNames = append(vanishedNames, name)
		}
	}
	sort.Strings(vanishedNames)
	vanished := map[uint32]string{}
	for _, name := range vanishedNames {
		if uv := archived[name].UIDValidity; uv != 0 {
			if _, ok := vanished[uv]; !ok {
				vanished[uv] = name
			}
		}
	}
	renamed := map[string]bool{}
	p.folders = make([]folderPlan, 0, len(infos))
	for _, fi := range infos {
		fp := folderPlan{info: fi, change: formats.Change{Folder: fi.Name}}
		prev, known := archived[fi.Name]
		if known && !prev.Deleted {
			fp.prev = fi.Name
		} else {
			fp.change.Event = formats.EventCreated
			// A folder that appears while one with the same UIDVALIDITY
			// vanished was renamed: its messages carry over.
			if fi.Status != nil && fi.Status.UIDValidity != 0 {
				if old, ok := vanished[fi.Status.UIDValidity]; ok && !renamed[old] {
					renamed[old] = true
					fp.change.Event, fp.change.From = formats.EventRenamed, old
					fp.prev, prev = old, archived[old]
				}
			}
		}
		fp.folder = formats.Folder{
			Name:       fi.Name,
			Delimiter:  fi.Delimiter,
			Attrs:      fi.Attrs,
			SpecialUse: fi.SpecialUse,
			Dir:        formats.FolderDir(fi.Name),
		}
		switch {
		case fi.Err != nil:
			fp.action = actFailed
			fp.folder.Status, fp.folder.Error = formats.FolderFailed, fi.Err.Error()
			if fp.prev != "" {
				fp.folder.UIDValidity = prev.UIDValidity
			}
		case fi.NoSelect:
			fp.action = actNoSelect
			fp.folder.Status = formats.FolderNoSelect
		case fp.prev != "" && fp.change.Event != formats.EventRenamed && unchanged(prev, fi.Status):
			fp.action = actSkip
			fp.folder.UIDValidity, fp.folder.UIDNext = prev.UIDValidity, prev.UIDNext
			fp.folder.HighestModSeq, fp.folder.Messages = prev.HighestModSeq, prev.Messages
			fp.folder.Status = formats.FolderUnchanged
		default:
			fp.action = actSync
		}
		p.folders = append(p.folders, fp)
	}
	for _, name := range vanishedNames {
		if !renamed[name] {
			p.deleted = append(p.deleted, name)
		}
	}
	return p
}

// uniqueFolders returns infos without the folders listed twice: the same
// name again, or INBOX again in another case (INBOX is case-insensitive,
// RFC 3501 5.1; go-imap spells every variant "INBOX"). The first listing
// is kept, with the status or special use of a later one where it has
// none; the others are noted in p.twice. infos is not changed.
func uniqueFolders(infos []FolderInfo, p *plan) []FolderInfo {
	out := make([]FolderInfo, 0, len(infos))
	at := map[string]int{}
	for _, fi := range infos {
		id := fi.Name
		if strings.EqualFold(id, "INBOX") {
			id = "INBOX"
		}
		i, seen := at[id]
		if !seen {
			at[id] = len(out)
			out = append(out, fi)
			continue
		}
		p.twice = append(p.twice, listedTwice{kept: out[i].Name, also: fi.Name})
		if out[i].Status == nil && !fi.NoSelect {
			out[i].Status, out[i].NoSelect = fi.Status, false
		}
		if out[i].SpecialUse == "" {
			out[i].SpecialUse = fi.SpecialUse
		}
	}
	return out
}

// unchanged reports whether a folder can be skipped without selecting it.
// Without HIGHESTMODSEQ, flag changes are invisible in the status, so the
// folder is always examined.
func unchanged(prev archivedFolder, s *FolderStatus) bool {
	if s == nil || prev.Deleted || (prev.Status != formats.FolderOK && prev.Status != formats.FolderUnchanged) {
		return false
	}
	return s.HighestModSeq != 0 && s.UIDValidity == prev.UIDValidity && s.UIDNext == prev.UIDNext &&
		s.Messages == prev.Messages && s.HighestModSeq == prev.HighestModSeq
}
