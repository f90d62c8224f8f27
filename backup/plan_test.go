package backup

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// archivedOK is a folder the archive's last snapshot recorded as
// synchronised, with the given status.
func archivedOK(name string, uv, next, msgs uint32, modseq uint64) archivedFolder {
	return archivedFolder{Folder: formats.Folder{Name: name, Dir: formats.FolderDir(name), UIDValidity: uv, UIDNext: next,
		Messages: msgs, HighestModSeq: modseq, Status: formats.FolderOK}}
}

// listedAs is a selectable folder as a source lists it.
func listedAs(name string, uv, next, msgs uint32, modseq uint64) FolderInfo {
	return FolderInfo{Name: name, Delimiter: "/", Status: &FolderStatus{UIDValidity: uv, UIDNext: next, Messages: msgs, HighestModSeq: modseq}}
}

// describe is one planned folder in a line: name, action, the archived
// folder it carries on, its event, and the record a folder that is not
// synchronised gets.
func describe(fp folderPlan) string {
	s := fp.info.Name + " " + fp.action.String()
	if fp.prev != "" {
		s += " prev=" + fp.prev
	}
	if fp.change.Event != "" {
		s += " " + fp.change.Event
		if fp.change.From != "" {
			s += "<-" + fp.change.From
		}
	}
	if fp.change.Folder != fp.info.Name || fp.folder.Name != fp.info.Name || fp.folder.Dir != formats.FolderDir(fp.info.Name) {
		s += fmt.Sprintf(" BAD NAMES change=%q folder=%q dir=%q", fp.change.Folder, fp.folder.Name, fp.folder.Dir)
	}
	f := fp.folder
	switch fp.action {
	case actSkip:
		s += fmt.Sprintf(" [%s %d/%d/%d/%d]", f.Status, f.UIDValidity, f.UIDNext, f.Messages, f.HighestModSeq)
	case actFailed:
		s += fmt.Sprintf(" [%s uv=%d %s]", f.Status, f.UIDValidity, f.Error)
	case actNoSelect:
		s += " [" + f.Status + "]"
	case actSync:
		if f.Status != "" || f.UIDNext != 0 {
			s += " BAD RECORD " + f.Status
		}
	}
	return s
}

// TestPlan: the planner's rules, from the archive's folder records and
// the source's listing alone.
func TestPlan(t *testing.T) {
	inbox := archivedOK("INBOX", 7, 10, 9, 30)
	failedBefore := inbox
	failedBefore.Status = formats.FolderFailed
	skippedBefore := inbox
	skippedBefore.Status = formats.FolderUnchanged
	gone := archivedOK("Old", 3, 5, 4, 8)
	gone.Deleted = true
	noModSeq := archivedOK("INBOX", 7, 10, 9, 0)
	noUV := archivedOK("Old", 0, 5, 4, 0)
	noSelect := FolderInfo{Name: "A", Delimiter: "/", NoSelect: true, Attrs: []string{`\Noselect`, `\HasChildren`}}
	bad := FolderInfo{Name: "Bad", Delimiter: "/", Err: errors.New("name is not valid modified UTF-7")}
	noStatus := FolderInfo{Name: "INBOX", Delimiter: "/"}

	tests := []struct {
		name     string
		archived []archivedFolder
		listed   []FolderInfo
		want     []string // describe of each planned folder, in order
		deleted  []string
		twice    []string // "kept|also"
	}{
		{
			name:     "unchanged folder skipped",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 30)},
			want:     []string{"INBOX skip prev=INBOX [unchanged 7/10/9/30]"},
		},
		{
			name:     "skipped last time, unchanged again",
			archived: []archivedFolder{skippedBefore},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 30)},
			want:     []string{"INBOX skip prev=INBOX [unchanged 7/10/9/30]"},
		},
		{
			name:     "changed by UIDNEXT",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 7, 11, 9, 30)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:     "changed by MESSAGES",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 8, 30)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:     "changed by HIGHESTMODSEQ (flags)",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 31)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			// The UIDVALIDITY event is the folder sync's to record, once it
			// has examined the folder.
			name:     "changed by UIDVALIDITY",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 8, 10, 9, 30)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:     "no CONDSTORE: flag changes are invisible, always examined",
			archived: []archivedFolder{noModSeq},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 0)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:     "failed last time: examined again",
			archived: []archivedFolder{failedBefore},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 30)},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:     "no status in the listing: examined",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{noStatus},
			want:     []string{"INBOX sync prev=INBOX"},
		},
		{
			name:   "new folder",
			listed: []FolderInfo{listedAs("Work", 4, 2, 1, 5)},
			want:   []string{"Work sync created"},
		},
		{
			name:     "rename detected by UIDVALIDITY, content changed",
			archived: []archivedFolder{inbox, archivedOK("Projects", 5, 3, 2, 9)},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 30), listedAs("Projects 2026", 5, 4, 3, 10)},
			want:     []string{"INBOX skip prev=INBOX [unchanged 7/10/9/30]", "Projects 2026 sync prev=Projects renamed<-Projects"},
		},
		{
			// UIDVALIDITY alone does not prove a rename: the folder is
			// opened so that its content confirms it.
			name:     "rename detected by UIDVALIDITY, status unchanged: opened to confirm it",
			archived: []archivedFolder{archivedOK("Projects", 5, 3, 2, 9)},
			listed:   []FolderInfo{listedAs("Archive/Projects", 5, 3, 2, 9)},
			want:     []string{"Archive/Projects sync prev=Projects renamed<-Projects"},
		},
		{
			name:     "two new folders with the vanished folder's UIDVALIDITY: the first by name is the rename",
			archived: []archivedFolder{archivedOK("P", 5, 3, 2, 9)},
			listed:   []FolderInfo{listedAs("Q2", 5, 3, 2, 9), listedAs("Q1", 5, 3, 2, 9)},
			want:     []string{"Q1 sync prev=P renamed<-P", "Q2 sync created"},
		},
		{
			name:     "a vanished folder without UIDVALIDITY is never a rename",
			archived: []archivedFolder{noUV},
			listed:   []FolderInfo{listedAs("New", 0, 5, 4, 0)},
			want:     []string{"New sync created"},
			deleted:  []string{"Old"},
		},
		{
			name:     "deleted folder",
			archived: []archivedFolder{inbox, archivedOK("Trash", 6, 2, 1, 3), archivedOK("Junk", 8, 2, 1, 3)},
			listed:   []FolderInfo{listedAs("INBOX", 7, 10, 9, 30)},
			want:     []string{"INBOX skip prev=INBOX [unchanged 7/10/9/30]"},
			deleted:  []string{"Junk", "Trash"},
		},
		{
			name:     "a folder recorded as deleted is not deleted again",
			archived: []archivedFolder{gone},
			listed:   nil,
			want:     nil,
		},
		{
			name:     "a deleted folder created again is new",
			archived: []archivedFolder{gone},
			listed:   []FolderInfo{listedAs("Old", 3, 5, 4, 8)},
			want:     []string{"Old sync created"},
		},
		{
			name:     "noselect parent, new",
			listed:   []FolderInfo{listedAs("A/B", 2, 3, 2, 4), noSelect},
			want:     []string{"A noselect created [noselect]", "A/B sync created"},
			archived: nil,
		},
		{
			name:     "noselect parent, known",
			archived: []archivedFolder{{Folder: formats.Folder{Name: "A", Dir: formats.FolderDir("A"), Status: formats.FolderNoSelect}}},
			listed:   []FolderInfo{noSelect},
			want:     []string{"A noselect prev=A [noselect]"},
		},
		{
			name:     "INBOX listed twice, in another case: one folder, the status of the listing that has one",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{noStatus, listedAs("Inbox", 7, 10, 9, 30)},
			want:     []string{"INBOX skip prev=INBOX [unchanged 7/10/9/30]"},
			twice:    []string{"INBOX|Inbox"},
		},
		{
			name:     "the same name listed twice",
			archived: []archivedFolder{inbox},
			listed:   []FolderInfo{listedAs("INBOX", 7, 11, 10, 31), listedAs("INBOX", 7, 10, 9, 30)},
			want:     []string{"INBOX sync prev=INBOX"},
			twice:    []string{"INBOX|INBOX"},
		},
		{
			name:     "a folder with a listing error fails alone and is not deleted",
			archived: []archivedFolder{inbox, archivedOK("Bad", 12, 3, 2, 1)},
			listed:   []FolderInfo{listedAs("INBOX", 7, 11, 10, 31), bad},
			want:     []string{"Bad failed prev=Bad [failed uv=12 name is not valid modified UTF-7]", "INBOX sync prev=INBOX"},
		},
		{
			name:   "a new folder with a listing error",
			listed: []FolderInfo{bad},
			want:   []string{"Bad failed created [failed uv=0 name is not valid modified UTF-7]"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			archived := map[string]archivedFolder{}
			for _, f := range tt.archived {
				archived[f.Name] = f
			}
			listed := slices.Clone(tt.listed)
			p := makePlan(archived, listed)
			var got []string
			for _, fp := range p.folders {
				got = append(got, describe(fp))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("makePlan folders =\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
			if !slices.Equal(p.deleted, tt.deleted) {
				t.Errorf("makePlan deleted = %q, want %q", p.deleted, tt.deleted)
			}
			var twice []string
			for _, d := range p.twice {
				twice = append(twice, d.kept+"|"+d.also)
			}
			if !slices.Equal(twice, tt.twice) {
				t.Errorf("makePlan twice = %q, want %q", twice, tt.twice)
			}
			// Pure: the listing it was given is left as it was.
			for i := range listed {
				if listed[i].Name != tt.listed[i].Name || listed[i].Status != tt.listed[i].Status {
					t.Errorf("makePlan changed its input: listed[%d] = %+v", i, listed[i])
				}
			}
		})
	}
}
