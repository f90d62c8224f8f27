package restore

import (
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// The personal namespaces of the servers the tests run (docs/SERVERS.md).
var (
	nsDovecot = Namespace{Prefix: "", Delimiter: "/"}       // also Cyrus upstream, GNU Mailutils
	nsCourier = Namespace{Prefix: "INBOX.", Delimiter: "."} // also Cyrus with Debian's settings
)

// TestFolderMapperNamespaces: the archive's folder tree is mapped into
// the target's personal namespace, whatever the source's was: a Courier
// archive restored to Dovecot puts its folders at the top level, a
// Dovecot archive restored to Courier puts them below INBOX., and --into
// and --map name folders in the target's namespace.
func TestFolderMapperNamespaces(t *testing.T) {
	dovecotArchived := func(name string) formats.Folder { return formats.Folder{Name: name, Delimiter: "/"} }
	courierArchived := func(name string) formats.Folder { return formats.Folder{Name: name, Delimiter: "."} }
	mailutilsInbox := formats.Folder{Name: "INBOX"} // Mailutils lists INBOX with delimiter NIL
	courierTarget := []TargetFolder{{Name: "INBOX"}, {Name: "INBOX.Sent"}, {Name: "INBOX.Trash"}}
	tests := []struct {
		desc    string
		src     Namespace // archive
		tgt     Namespace // target
		target  []TargetFolder
		into    string
		over    map[string]string
		noMap   bool
		folder  formats.Folder
		want    string
		wantHow string
	}{
		// Dovecot (or upstream Cyrus, or Mailutils) archive to Courier
		// (or Cyrus with Debian's settings).
		{desc: "top level below the prefix", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("Archive"), want: "INBOX.Archive", wantHow: MapSame},
		{desc: "nested", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("Archive/2024"), want: "INBOX.Archive.2024", wantHow: MapSame},
		{desc: "non-ASCII", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("Entwürfe/Ältere"), want: "INBOX.Entwürfe.Ältere", wantHow: MapSame},
		{desc: "a dot in a level is escaped", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("v1.2"), want: "INBOX.v1\u20242", wantHow: MapSame},
		{desc: "INBOX stays INBOX", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("INBOX"), want: "INBOX", wantHow: MapSame},
		{desc: "Mailutils INBOX without a delimiter", src: nsDovecot, tgt: nsCourier,
			folder: mailutilsInbox, want: "INBOX", wantHow: MapSame},
		{desc: "below INBOX on Dovecot is below INBOX on Courier", src: nsDovecot, tgt: nsCourier,
			folder: dovecotArchived("INBOX/Work"), want: "INBOX.Work", wantHow: MapSame},
		{desc: "role folder by name, found below the prefix", src: nsDovecot, tgt: nsCourier, target: courierTarget,
			folder: dovecotArchived("Sent"), want: "INBOX.Sent", wantHow: MapName},
		{desc: "child of a role folder", src: nsDovecot, tgt: nsCourier, target: courierTarget,
			folder: dovecotArchived("Sent/2024"), want: "INBOX.Sent.2024", wantHow: MapName},
		{desc: "NoMap keeps the name, in the target's namespace", src: nsDovecot, tgt: nsCourier, noMap: true,
			folder: dovecotArchived("Sent"), want: "INBOX.Sent", wantHow: MapSame},

		// Courier archive to Dovecot.
		{desc: "Courier folder to the top level", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("INBOX.Sent"), want: "Sent", wantHow: MapSame},
		{desc: "Courier nested", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("INBOX.Archive.2024"), want: "Archive/2024", wantHow: MapSame},
		{desc: "Courier INBOX", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("INBOX"), want: "INBOX", wantHow: MapSame},
		{desc: "Courier level with a slash", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("INBOX.a/b"), want: "a\u2215b", wantHow: MapSame},
		{desc: "Courier role folder to the target's", src: nsCourier, tgt: nsDovecot,
			target: []TargetFolder{{Name: "INBOX"}, {Name: "Sent", SpecialUse: RoleSent}},
			folder: courierArchived("INBOX.Sent"), want: "Sent", wantHow: MapSpecialUse},
		{desc: "Courier outside the personal namespace kept whole", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("shared.team"), want: "shared/team", wantHow: MapSame},
		{desc: "Courier to Cyrus with Debian's settings: the same names", src: nsCourier, tgt: nsCourier,
			folder: courierArchived("INBOX.Archive.2024"), want: "INBOX.Archive.2024", wantHow: MapSame},
		{desc: "Courier to Mailutils", src: nsCourier, tgt: nsDovecot,
			folder: courierArchived("INBOX.Año"), want: "Año", wantHow: MapSame},

		// --into and --map in the target's namespace.
		{desc: "into on Courier", src: nsDovecot, tgt: nsCourier, into: "Restored",
			folder: dovecotArchived("Archive/2024"), want: "INBOX.Restored.Archive.2024", wantHow: MapInto},
		{desc: "into on Courier, INBOX below it", src: nsDovecot, tgt: nsCourier, into: "Restored",
			folder: dovecotArchived("INBOX"), want: "INBOX.Restored.INBOX", wantHow: MapInto},
		{desc: "into INBOX: never INBOX.INBOX", src: nsDovecot, tgt: nsCourier, into: "INBOX",
			folder: dovecotArchived("INBOX"), want: "INBOX", wantHow: MapInto},
		{desc: "into INBOX: the others below it", src: nsDovecot, tgt: nsCourier, into: "INBOX",
			folder: dovecotArchived("Archive"), want: "INBOX.Archive", wantHow: MapInto},
		{desc: "into INBOX on Dovecot", src: nsDovecot, tgt: nsDovecot, into: "INBOX",
			folder: dovecotArchived("INBOX"), want: "INBOX", wantHow: MapInto},
		{desc: "into written with the target's prefix", src: nsDovecot, tgt: nsCourier, into: "INBOX.Restored",
			folder: dovecotArchived("Work"), want: "INBOX.Restored.Work", wantHow: MapInto},
		{desc: "into from a Courier archive onto Dovecot", src: nsCourier, tgt: nsDovecot, into: "Restored",
			folder: courierArchived("INBOX.Work.2024"), want: "Restored/Work/2024", wantHow: MapInto},
		{desc: "map to the target's full name keeps the dot", src: nsDovecot, tgt: nsCourier,
			over:   map[string]string{"Archive": "INBOX.Archive"},
			folder: dovecotArchived("Archive"), want: "INBOX.Archive", wantHow: MapOverride},
		{desc: "map to a name in the user's view", src: nsDovecot, tgt: nsCourier,
			over:   map[string]string{"Archive": "Old/Archive"},
			folder: dovecotArchived("Archive/2024"), want: "INBOX.Old.Archive.2024", wantHow: MapOverride},
		{desc: "map key in the user's view of a Courier archive", src: nsCourier, tgt: nsDovecot,
			over:   map[string]string{"Sent": "Sent 2020"},
			folder: courierArchived("INBOX.Sent"), want: "Sent 2020", wantHow: MapOverride},
		{desc: "map key as the Courier archive lists it", src: nsCourier, tgt: nsDovecot,
			over:   map[string]string{"INBOX.Sent": "Old"},
			folder: courierArchived("INBOX.Sent.2024"), want: "Old/2024", wantHow: MapOverride},
		{desc: "map of a Courier INBOX leaves the other folders", src: nsCourier, tgt: nsDovecot,
			over:   map[string]string{"INBOX": "Old Inbox"},
			folder: courierArchived("INBOX.Work"), want: "Work", wantHow: MapSame},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			m := NewFolderMapper(MapOptions{
				TargetDelim: tt.tgt.Delimiter, TargetPrefix: tt.tgt.Prefix, Source: tt.src,
				Target: tt.target, Into: tt.into, Overrides: tt.over, NoMap: tt.noMap,
			})
			got, how := m.Map(tt.folder)
			if got != tt.want || how != tt.wantHow {
				t.Errorf("Map(%q) from %+v to %+v = %q, %q; want %q, %q", tt.folder.Name, tt.src, tt.tgt, got, how, tt.want, tt.wantHow)
			}
		})
	}
}

// TestArchiveNamespace: a recorded namespace is used as recorded; an
// archive made before it was recorded gets "INBOX." when every folder but
// INBOX is below it with delimiter ".", and no prefix otherwise.
func TestArchiveNamespace(t *testing.T) {
	folders := func(delim string, names ...string) []formats.Folder {
		var out []formats.Folder
		for _, n := range names {
			out = append(out, formats.Folder{Name: n, Delimiter: delim, Status: formats.FolderOK})
		}
		return out
	}
	tests := []struct {
		desc     string
		recorded *formats.Namespace
		folders  []formats.Folder
		want     Namespace
		wantFrom string
	}{
		{"recorded", &formats.Namespace{Prefix: "INBOX.", Delimiter: "."}, folders(".", "INBOX", "Work"), nsCourier, NamespaceRecorded},
		{"recorded without a prefix", &formats.Namespace{Delimiter: "/"}, folders(".", "INBOX", "INBOX.Sent"), nsDovecot, NamespaceRecorded},
		{"Courier", nil, folders(".", "INBOX", "INBOX.Sent", "INBOX.Archive.2024"), nsCourier, NamespaceDerived},
		{"Dovecot", nil, folders("/", "INBOX", "Sent", "Archive/2024"), nsDovecot, NamespaceDerived},
		{"Dovecot with folders below INBOX only", nil, folders("/", "INBOX", "INBOX/Sent"), nsDovecot, NamespaceDerived},
		{"dot server with a top-level folder", nil, folders(".", "INBOX", "INBOX.Sent", "Public"), Namespace{Delimiter: "."}, NamespaceDerived},
		{"only INBOX", nil, folders(".", "INBOX"), Namespace{Delimiter: "."}, NamespaceDerived},
	}
	for _, tt := range tests {
		snap := &formats.Snapshot{ID: "s1", Seq: 1, Status: formats.StatusComplete, Namespace: tt.recorded, Folders: tt.folders}
		got, from := ArchiveNamespace(snap, tt.folders)
		if got != tt.want || from != tt.wantFrom {
			t.Errorf("%s: ArchiveNamespace = %+v, %s; want %+v, %s", tt.desc, got, from, tt.want, tt.wantFrom)
		}
	}
}
