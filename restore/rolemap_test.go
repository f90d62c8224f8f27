package restore

import (
	"slices"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

func TestRoleByNameListed(t *testing.T) {
	// Written out here rather than taken from roleNames, so that the test
	// checks the table.
	listed := map[string][]string{
		RoleSent: {"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Enviados",
			"Elementos enviados", "Mensajes enviados", "Gesendet", "Gesendete Elemente",
			"Gesendete Objekte", "Envoyés", "Éléments envoyés", "Messages envoyés",
			"Posta inviata", "Inviata", "Elementi inviati", "Itens Enviados", "Enviadas",
			"Mensagens Enviadas", "Verzonden", "Verzonden items", "Wysłane", "Elementy wysłane"},
		RoleDrafts: {"Drafts", "Borradores", "Entwürfe", "Brouillons", "Bozze", "Rascunhos",
			"Concepten", "Kopie robocze", "Szkice"},
		RoleTrash: {"Trash", "Deleted Items", "Deleted Messages", "Bin", "Papelera",
			"Elementos eliminados", "Papierkorb", "Gelöschte Elemente", "Corbeille",
			"Éléments supprimés", "Cestino", "Posta eliminata", "Elementi eliminati", "Lixeira",
			"Lixo", "Itens Excluídos", "Itens Eliminados", "Prullenbak", "Verwijderde items",
			"Kosz", "Elementy usunięte"},
		RoleJunk: {"Junk", "Spam", "Junk E-mail", "Junk Email", "Bulk Mail", "Correo no deseado",
			"Junk-E-Mail", "Unerwünscht", "Courrier indésirable", "Indésirables",
			"Posta indesiderata", "Lixo Eletrônico", "Ongewenste e-mail", "Wiadomości-śmieci",
			"Niechciane"},
		RoleArchive: {"Archive", "Archives", "Archivo", "Archivos", "Archiv", "Archivio",
			"Arquivo", "Arquivos", "Archief", "Archiwum"},
	}
	for role, names := range listed {
		for _, n := range names {
			for _, delim := range []string{"/", ".", ""} {
				if got := RoleByName(n, delim); got != role {
					t.Errorf("RoleByName(%q, %q) = %q, want %q", n, delim, got, role)
				}
			}
		}
	}
	// Every entry of the table itself is recognised as its role.
	for role, names := range roleNames {
		for _, n := range names {
			if got := RoleByName(n, "/"); got != role {
				t.Errorf("table: RoleByName(%q) = %q, want %q", n, got, role)
			}
		}
	}
}

func TestRoleByName(t *testing.T) {
	tests := []struct {
		name, delim, want string
	}{
		// Case, accents, spaces, hyphens.
		{"SENT ITEMS", "/", RoleSent},
		{"  sent   items ", "/", RoleSent},
		{"Envoyes", "/", RoleSent},
		{"ENVOYÉS", "/", RoleSent},
		{"Envoye\u0301s", "/", RoleSent}, // decomposed accent
		{"Elementy wyslane", "/", RoleSent},
		{"Entwurfe", "/", RoleDrafts},
		{"Geloschte Elemente", "/", RoleTrash},
		{"Junk_E-Mail", "/", RoleJunk},
		{"wiadomosci smieci", "/", RoleJunk},
		{"Lixo Eletronico", "/", RoleJunk},
		{"Sent\u00a0Items", "/", RoleSent}, // no-break space
		// Prefixes.
		{"INBOX.Sent", ".", RoleSent},
		{"inbox.Trash", ".", RoleTrash},
		{"INBOX/Drafts", "/", RoleDrafts},
		{"INBOX.Sent", "", RoleSent},
		{"INBOX/Junk", "", RoleJunk},
		{"[Gmail]/Sent Mail", "/", RoleSent},
		{"[Gmail]/Spam", "/", RoleJunk},
		{"[Google Mail]/Bin", "/", RoleTrash},
		{"[Gmail]/Papelera", "/", RoleTrash},
		// Not role folders.
		{"Sentinel", "/", ""},
		{"Unsent", "/", ""},
		{"Sent Items Old", "/", ""},
		{"Work/Sent stuff", "/", ""},
		{"Work/Sent", "/", ""}, // a user's folder deeper in the tree
		{"Clients.Acme.Trash", ".", ""},
		{"Sent/2024", "/", ""},
		{"INBOX.Sent.2024", ".", ""},
		{"INBOX.INBOX.Sent", ".", ""},
		{"Work.Sent", "/", ""}, // one level named "Work.Sent"
		{"INBOXSent", "/", ""},
		{"INBOX", "/", ""},
		{"[Gmail]", "/", ""},
		{"[Gmail]/All Mail", "/", ""},
		{"[Gmail]/Starred", "/", ""},
		{"Outbox", "/", ""},
		{"", "/", ""},
	}
	for _, tt := range tests {
		if got := RoleByName(tt.name, tt.delim); got != tt.want {
			t.Errorf("RoleByName(%q, %q) = %q, want %q", tt.name, tt.delim, got, tt.want)
		}
	}
}

func TestFolderMapperMap(t *testing.T) {
	german := []TargetFolder{
		{Name: "INBOX"},
		{Name: "Gesendet"}, // no attribute: loses to the one with it
		{Name: "Gesendete Elemente", SpecialUse: RoleSent},
		{Name: "Entwürfe", SpecialUse: RoleDrafts},
		{Name: "Papierkorb", SpecialUse: RoleTrash},
	}
	plain := []TargetFolder{ // a server without SPECIAL-USE
		{Name: "INBOX"},
		{Name: "Sent Items"},
		{Name: "Drafts"},
		{Name: "Deleted Items"},
		{Name: "Work/Sent"}, // not a role folder
	}
	f := func(name, delim, special string) formats.Folder {
		return formats.Folder{Name: name, Delimiter: delim, SpecialUse: special}
	}
	tests := []struct {
		desc    string
		opts    MapOptions
		folder  formats.Folder
		want    string
		wantHow string
	}{
		{desc: "special-use to special-use",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Sent", "/", RoleSent), want: "Gesendete Elemente", wantHow: MapSpecialUse},
		{desc: "special-use attribute in another case",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Sent", "/", `\sent`), want: "Gesendete Elemente", wantHow: MapSpecialUse},
		{desc: "archived name to target name",
			opts:   MapOptions{TargetDelim: "/", Target: plain},
			folder: f("Enviados", "/", ""), want: "Sent Items", wantHow: MapName},
		{desc: "archived special-use to target name",
			opts:   MapOptions{TargetDelim: "/", Target: plain},
			folder: f("Papelera", "/", RoleTrash), want: "Deleted Items", wantHow: MapName},
		{desc: "archived name to target special-use",
			opts:   MapOptions{TargetDelim: "/", Target: []TargetFolder{{Name: "INBOX"}, {Name: "Sent", SpecialUse: RoleSent}}},
			folder: f("Elementos enviados", "/", ""), want: "Sent", wantHow: MapSpecialUse},
		{desc: "archived name below INBOX",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("INBOX.Drafts", ".", ""), want: "Entwürfe", wantHow: MapSpecialUse},
		{desc: "gmail archive",
			opts:   MapOptions{TargetDelim: ".", Target: []TargetFolder{{Name: "INBOX"}, {Name: "INBOX.Trash", SpecialUse: RoleTrash}}},
			folder: f("[Gmail]/Bin", "/", RoleTrash), want: "INBOX.Trash", wantHow: MapSpecialUse},
		{desc: "deep folder named like a role is not one",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Work/Sent", "/", ""), want: "Work/Sent", wantHow: MapSame},
		{desc: "other special-use is not mapped, not even by name",
			opts:   MapOptions{TargetDelim: "/", Target: []TargetFolder{{Name: "Archiv", SpecialUse: RoleArchive}}},
			folder: f("Archive", "/", `\All`), want: "Archive", wantHow: MapSame},
		{desc: "target folder with another attribute is no name candidate",
			opts:   MapOptions{TargetDelim: "/", Target: []TargetFolder{{Name: "Archives", SpecialUse: `\All`}}},
			folder: f("Archive", "/", RoleArchive), want: "Archive", wantHow: MapSame},

		// A role the target has no folder for keeps the archived name.
		{desc: "role without target folder",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Archive", "/", RoleArchive), want: "Archive", wantHow: MapSame},
		{desc: "role without target folder, by name, delimiter translated",
			opts:   MapOptions{TargetDelim: ".", Target: plain},
			folder: f("INBOX/Junk E-mail", "/", ""), want: "INBOX.Junk E-mail", wantHow: MapSame},
		{desc: "child of role without target folder",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Spam/2020", "/", ""), want: "Spam/2020", wantHow: MapSame},

		// INBOX.
		{desc: "INBOX", opts: MapOptions{TargetDelim: "/", Target: german},
			folder: f("INBOX", "/", ""), want: "INBOX", wantHow: MapSame},
		{desc: "INBOX any case", opts: MapOptions{TargetDelim: ".", Target: german},
			folder: f("Inbox", "/", ""), want: "INBOX", wantHow: MapSame},
		{desc: "INBOX without delimiter", opts: MapOptions{TargetDelim: "/"},
			folder: f("inbox", "", ""), want: "INBOX", wantHow: MapSame},
		{desc: "INBOX children", opts: MapOptions{TargetDelim: "/", Target: german},
			folder: f("inbox.Work.2024", ".", ""), want: "INBOX/Work/2024", wantHow: MapSame},
		{desc: "INBOX with NoMap", opts: MapOptions{TargetDelim: "/", NoMap: true},
			folder: f("Inbox", "/", ""), want: "INBOX", wantHow: MapSame},

		// Overrides.
		{desc: "override wins over special-use",
			opts:   MapOptions{TargetDelim: "/", Target: german, Overrides: map[string]string{"Sent": "Old/Sent"}},
			folder: f("Sent", "/", RoleSent), want: "Old/Sent", wantHow: MapOverride},
		{desc: "override target translated to the target delimiter",
			opts:   MapOptions{TargetDelim: ".", Target: german, Overrides: map[string]string{"Sent": "Old/Sent v1.0"}},
			folder: f("Sent", "/", RoleSent), want: "Old.Sent v1\u20240", wantHow: MapOverride},
		{desc: "override children follow",
			opts:   MapOptions{TargetDelim: ".", Overrides: map[string]string{"Work": "Job"}},
			folder: f("Work/2024/Q1", "/", ""), want: "Job.2024.Q1", wantHow: MapOverride},
		{desc: "nearest override wins",
			opts:   MapOptions{TargetDelim: "/", Overrides: map[string]string{"Work": "Job", "Work/2024": "Y2024"}},
			folder: f("Work/2024/Q1", "/", ""), want: "Y2024/Q1", wantHow: MapOverride},
		{desc: "override key written with / for a . archive",
			opts:   MapOptions{TargetDelim: "/", Overrides: map[string]string{"INBOX/Work": "Work"}},
			folder: f("INBOX.Work", ".", ""), want: "Work", wantHow: MapOverride},
		{desc: "override of INBOX, any case",
			opts:   MapOptions{TargetDelim: "/", Overrides: map[string]string{"inbox": "Old Inbox"}},
			folder: f("INBOX", "/", ""), want: "Old Inbox", wantHow: MapOverride},
		{desc: "override wins over NoMap and Into, and is absolute",
			opts:   MapOptions{TargetDelim: "/", NoMap: true, Into: "Restored", Overrides: map[string]string{"Sent": "Sent Items"}},
			folder: f("Sent", "/", RoleSent), want: "Sent Items", wantHow: MapOverride},
		{desc: "override with empty target ignored",
			opts:   MapOptions{TargetDelim: "/", Overrides: map[string]string{"Work": "/"}},
			folder: f("Work", "/", ""), want: "Work", wantHow: MapSame},
		{desc: "unrelated override",
			opts:   MapOptions{TargetDelim: "/", Target: german, Overrides: map[string]string{"Sen": "X"}},
			folder: f("Sent", "/", RoleSent), want: "Gesendete Elemente", wantHow: MapSpecialUse},

		// NoMap.
		{desc: "NoMap keeps the name",
			opts:   MapOptions{TargetDelim: "/", Target: german, NoMap: true},
			folder: f("Sent", "/", RoleSent), want: "Sent", wantHow: MapSame},
		{desc: "NoMap translates the delimiter",
			opts:   MapOptions{TargetDelim: ".", Target: german, NoMap: true},
			folder: f("Sent/2024/a.b", "/", RoleSent), want: "Sent.2024.a\u2024b", wantHow: MapSame},

		// Into.
		{desc: "Into",
			opts:   MapOptions{TargetDelim: "/", Target: german, Into: "Restored 2026-11-21"},
			folder: f("Sent", "/", RoleSent), want: "Restored 2026-11-21/Sent", wantHow: MapInto},
		{desc: "Into keeps INBOX below it",
			opts:   MapOptions{TargetDelim: "/", Target: german, Into: "Restored 2026-11-21"},
			folder: f("INBOX", "/", ""), want: "Restored 2026-11-21/INBOX", wantHow: MapInto},
		{desc: "Into nested, translated",
			opts:   MapOptions{TargetDelim: ".", Into: "/Restored/2026.11.21/"},
			folder: f("INBOX/Work/v1.2", "/", ""), want: "Restored.2026\u202411\u202421.INBOX.Work.v1\u20242", wantHow: MapInto},

		// Delimiter translation.
		{desc: "/ to . with a level containing .",
			opts:   MapOptions{TargetDelim: "."},
			folder: f("Projects/a.b/c", "/", ""), want: "Projects.a\u2024b.c", wantHow: MapSame},
		{desc: ". to / with a level containing /",
			opts:   MapOptions{TargetDelim: "/"},
			folder: f("Projects.x/y.z", ".", ""), want: "Projects/x\u2215y/z", wantHow: MapSame},
		{desc: "flat archive onto /",
			opts:   MapOptions{TargetDelim: "/"},
			folder: f("a/b.c", "", ""), want: "a\u2215b.c", wantHow: MapSame},
		{desc: "flat target uses / semantics",
			opts:   MapOptions{TargetDelim: ""},
			folder: f("a.b/c", ".", ""), want: "a/b\u2215c", wantHow: MapSame},
		{desc: "backslash delimiter",
			opts:   MapOptions{TargetDelim: `\`},
			folder: f(`a\b/c`, "/", ""), want: "a\u29f5b\\c", wantHow: MapSame},
		{desc: "same delimiter unchanged",
			opts:   MapOptions{TargetDelim: "."},
			folder: f("a.b.c", ".", ""), want: "a.b.c", wantHow: MapSame},

		// Children follow their mapped parent.
		{desc: "child of special-use folder",
			opts:   MapOptions{TargetDelim: "/", Target: german, Archived: []formats.Folder{f("Sent", "/", RoleSent)}},
			folder: f("Sent/2024", "/", ""), want: "Gesendete Elemente/2024", wantHow: MapSpecialUse},
		{desc: "child of folder recognised by name, no Archived",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Sent/2024/Q1", "/", ""), want: "Gesendete Elemente/2024/Q1", wantHow: MapSpecialUse},
		{desc: "child below INBOX, delimiter translated",
			opts:   MapOptions{TargetDelim: "/", Target: plain},
			folder: f("INBOX.Sent.a/b", ".", ""), want: "Sent Items/a\u2215b", wantHow: MapName},
		{desc: "child of a parent whose role is only its attribute",
			opts:   MapOptions{TargetDelim: "/", Target: german, Archived: []formats.Folder{f("Outgoing", "/", RoleSent)}},
			folder: f("Outgoing/2024", "/", ""), want: "Gesendete Elemente/2024", wantHow: MapSpecialUse},
		{desc: "same without Archived: parent not known as a role",
			opts:   MapOptions{TargetDelim: "/", Target: german},
			folder: f("Outgoing/2024", "/", ""), want: "Outgoing/2024", wantHow: MapSame},
		{desc: "role folder below a role folder follows the nearest",
			opts:   MapOptions{TargetDelim: "/", Target: german, Archived: []formats.Folder{f("Trash", "/", RoleTrash), f("Trash/Old Sent", "/", RoleSent)}},
			folder: f("Trash/Old Sent/x", "/", ""), want: "Gesendete Elemente/x", wantHow: MapSpecialUse},
		{desc: "own attribute taken from Archived",
			opts:   MapOptions{TargetDelim: "/", Target: german, Archived: []formats.Folder{f("Outgoing", "/", RoleSent)}},
			folder: f("Outgoing", "/", ""), want: "Gesendete Elemente", wantHow: MapSpecialUse},

		// The source said which folder is Sent: a second one keeps its name.
		{desc: "name guess suppressed by an archived attribute",
			opts: MapOptions{TargetDelim: "/", Target: german,
				Archived: []formats.Folder{f("Sent", "/", RoleSent), f("Sent Items", "/", "")}},
			folder: f("Sent Items", "/", ""), want: "Sent Items", wantHow: MapSame},
		{desc: "name guess kept for other roles",
			opts: MapOptions{TargetDelim: "/", Target: german,
				Archived: []formats.Folder{f("Sent", "/", RoleSent), f("Trash", "/", "")}},
			folder: f("Trash", "/", ""), want: "Papierkorb", wantHow: MapSpecialUse},

		// Ranking of candidates.
		{desc: "top level, then shortest",
			opts: MapOptions{TargetDelim: "/", Target: []TargetFolder{
				{Name: "[Gmail]/Sent"}, {Name: "Sent Messages"}, {Name: "INBOX/Sent Items"}, {Name: "Sent Mail"}, {Name: "Work/Sent"}}},
			folder: f("Enviados", "/", ""), want: "Sent Mail", wantHow: MapName},
		{desc: "below INBOX counts as top level",
			opts: MapOptions{TargetDelim: ".", Target: []TargetFolder{
				{Name: "[Gmail].Bin"}, {Name: "INBOX.Deleted Messages"}}},
			folder: f("Trash", "/", RoleTrash), want: "INBOX.Deleted Messages", wantHow: MapName},
		{desc: "same name preferred",
			opts: MapOptions{TargetDelim: "/", Target: []TargetFolder{
				{Name: "Sent"}, {Name: "Sent Messages"}}},
			folder: f("Sent Messages", "/", RoleSent), want: "Sent Messages", wantHow: MapName},
		{desc: "several with the attribute",
			opts: MapOptions{TargetDelim: "/", Target: []TargetFolder{
				{Name: "Archive/2020", SpecialUse: RoleArchive}, {Name: "Archives", SpecialUse: RoleArchive}, {Name: "Archiv", SpecialUse: RoleArchive}}},
			folder: f("Archivo", "/", ""), want: "Archiv", wantHow: MapSpecialUse},
		{desc: "equal length: byte order",
			opts: MapOptions{TargetDelim: "/", Target: []TargetFolder{
				{Name: "Spam"}, {Name: "Junk"}}},
			folder: f("Bulk Mail", "/", ""), want: "Junk", wantHow: MapName},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			check := func(opts MapOptions) {
				t.Helper()
				got, how := NewFolderMapper(opts).Map(tt.folder)
				if got != tt.want || how != tt.wantHow {
					t.Errorf("Map(%q, %q, %q) = %q, %q; want %q, %q",
						tt.folder.Name, tt.folder.Delimiter, tt.folder.SpecialUse, got, how, tt.want, tt.wantHow)
				}
			}
			check(tt.opts)
			// The order of target and archived folders does not matter.
			rev := tt.opts
			rev.Target = slices.Clone(tt.opts.Target)
			slices.Reverse(rev.Target)
			rev.Archived = slices.Clone(tt.opts.Archived)
			slices.Reverse(rev.Archived)
			check(rev)
		})
	}
}

// Map is pure: mapping the same folders in another order, or twice, gives
// the same answers, and does not alter the options.
func TestFolderMapperDeterministic(t *testing.T) {
	target := []TargetFolder{
		{Name: "INBOX"}, {Name: "Sent Items"}, {Name: "Sent"}, {Name: "Gesendet"},
		{Name: "Trash", SpecialUse: RoleTrash}, {Name: "Deleted Items", SpecialUse: RoleTrash},
	}
	orig := slices.Clone(target)
	folders := []formats.Folder{
		{Name: "INBOX", Delimiter: "/"},
		{Name: "Sent", Delimiter: "/", SpecialUse: RoleSent},
		{Name: "Sent/2024", Delimiter: "/"},
		{Name: "Papierkorb", Delimiter: "/"},
		{Name: "Work/a.b", Delimiter: "/"},
	}
	m := NewFolderMapper(MapOptions{TargetDelim: ".", Target: target})
	if !slices.Equal(target, orig) {
		t.Fatalf("NewFolderMapper changed the target list: %v", target)
	}
	first := map[string]string{}
	for _, f := range folders {
		got, how := m.Map(f)
		first[f.Name] = got + " " + how
	}
	want := map[string]string{
		"INBOX":      "INBOX same",
		"Sent":       "Sent name",
		"Sent/2024":  "Sent.2024 name",
		"Papierkorb": "Trash special-use",
		"Work/a.b":   "Work.a\u2024b same",
	}
	for k, v := range want {
		if first[k] != v {
			t.Errorf("Map(%q) = %q, want %q", k, first[k], v)
		}
	}
	for i := len(folders) - 1; i >= 0; i-- {
		got, how := m.Map(folders[i])
		if s := got + " " + how; s != first[folders[i].Name] {
			t.Errorf("second Map(%q) = %q, first %q", folders[i].Name, s, first[folders[i].Name])
		}
	}
}

func TestLookalike(t *testing.T) {
	for delim, want := range map[string]string{
		"/": "\u2215", ".": "\u2024", `\`: "\u29f5", ":": "\u2236", "|": "\u2223",
		"#": "\uff03", "§": "_",
	} {
		if got := lookalike(delim); got != want {
			t.Errorf("lookalike(%q) = %q, want %q", delim, got, want)
		}
	}
}
