package restore

import (
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailvault/mailvault/formats"
)

// Roles mailvault maps: the RFC 6154 special-use attributes.
const (
	RoleSent    = `\Sent`
	RoleDrafts  = `\Drafts`
	RoleTrash   = `\Trash`
	RoleJunk    = `\Junk`
	RoleArchive = `\Archive`
)

// How a folder's target was chosen, as returned by FolderMapper.Map.
const (
	MapOverride   = "override"    // an --map entry for the folder or an ancestor
	MapSpecialUse = "special-use" // the target folder with the role's SPECIAL-USE attribute
	MapName       = "name"        // a target folder whose name is known for the role
	MapSame       = "same"        // the archived name, delimiter translated
	MapInto       = "into"        // below --into, structure kept
)

var roles = []string{RoleSent, RoleDrafts, RoleTrash, RoleJunk, RoleArchive}

// roleNames lists, per role, the names clients and servers give the
// folder in English, Spanish, German, French, Italian, Portuguese (PT and
// BR), Dutch and Polish. They are matched after foldName.
var roleNames = map[string][]string{
	RoleSent: {
		"Sent", "Sent Items", "Sent Messages", "Sent Mail", "Sent Email",
		"Enviados", "Elementos enviados", "Mensajes enviados", "Correo enviado",
		"Gesendet", "Gesendete Elemente", "Gesendete Objekte", "Gesendete Nachrichten",
		"Envoyés", "Éléments envoyés", "Messages envoyés", "Courrier envoyé",
		"Posta inviata", "Inviata", "Inviati", "Elementi inviati", "Messaggi inviati",
		"Itens Enviados", "Enviadas", "Enviado", "Mensagens Enviadas",
		"Verzonden", "Verzonden items", "Verzonden berichten",
		"Wysłane", "Elementy wysłane",
	},
	RoleDrafts: {
		"Drafts", "Draft",
		"Borradores", "Borrador",
		"Entwürfe",
		"Brouillons",
		"Bozze",
		"Rascunhos",
		"Concepten",
		"Kopie robocze", "Szkice",
	},
	RoleTrash: {
		"Trash", "Deleted", "Deleted Items", "Deleted Messages", "Bin",
		"Papelera", "Elementos eliminados",
		"Papierkorb", "Gelöschte Elemente", "Gelöschte Objekte",
		"Corbeille", "Éléments supprimés", "Messages supprimés",
		"Cestino", "Posta eliminata", "Elementi eliminati",
		"Lixeira", "Lixo", "Itens Excluídos", "Itens Eliminados",
		"Prullenbak", "Verwijderde items", "Verwijderde berichten",
		"Kosz", "Elementy usunięte",
	},
	RoleJunk: {
		"Junk", "Spam", "Junk Mail", "Junk E-mail", "Junk Email", "Bulk Mail",
		"Correo no deseado",
		"Junk-E-Mail", "Unerwünscht",
		"Courrier indésirable", "Indésirables", "Pourriel",
		"Posta indesiderata",
		"Lixo Eletrônico", "Lixo Electrónico",
		"Ongewenste e-mail", "Ongewenst",
		"Wiadomości-śmieci", "Niechciane",
	},
	RoleArchive: {
		"Archive", "Archives",
		"Archivo", "Archivos",
		"Archiv",
		"Archivio", "Archivi",
		"Arquivo", "Arquivos",
		"Archief",
		"Archiwum",
	},
}

// nameRoles is roleNames indexed by folded name. A name listed for two
// roles is a bug in the table.
var nameRoles = func() map[string]string {
	m := map[string]string{}
	for _, role := range roles {
		for _, n := range roleNames[role] {
			k := foldName(n)
			if r, ok := m[k]; ok && r != role {
				panic("restore: folder name " + n + " listed for " + r + " and " + role)
			}
			m[k] = role
		}
	}
	return m
}()

// foldTable maps lower-case accented letters to their base letters.
var foldTable = func() map[rune]string {
	m := map[rune]string{}
	for _, p := range [][2]string{
		{"àáâãäåāăą", "a"}, {"çćĉċč", "c"}, {"ďđð", "d"},
		{"èéêëēĕėęě", "e"}, {"ĝğġģ", "g"}, {"ĥħ", "h"},
		{"ìíîïĩīĭįı", "i"}, {"ĵ", "j"}, {"ķ", "k"}, {"ĺļľŀł", "l"},
		{"ñńņňŉ", "n"}, {"òóôõöøōŏő", "o"}, {"ŕŗř", "r"},
		{"śŝşšș", "s"}, {"ţťŧț", "t"}, {"ùúûüũūŭůűų", "u"},
		{"ŵ", "w"}, {"ýÿŷ", "y"}, {"źżž", "z"},
		{"ß", "ss"}, {"æ", "ae"}, {"œ", "oe"}, {"þ", "th"},
	} {
		for _, r := range p[0] {
			m[r] = p[1]
		}
	}
	return m
}()

// foldName is the form folder names are compared in: lower case, accents
// removed (precomposed letters and combining marks), hyphens and
// underscores counted as spaces, runs of white space collapsed and
// surrounding space trimmed.
func foldName(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		r = unicode.ToLower(r)
		switch {
		case unicode.Is(unicode.Mn, r):
			continue
		case unicode.IsSpace(r) || r == '-' || r == '_' || r == '\u2010' || r == '\u2011' || r == '\u2013':
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		if f, ok := foldTable[r]; ok {
			b.WriteString(f)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// rolePrefixes are the parents a role folder is commonly found below.
var rolePrefixes = []string{"INBOX", "[Gmail]", "[Google Mail]"}

// stripRolePrefix removes one leading "INBOX", "[Gmail]" or "[Google
// Mail]" level (any case), followed by delim, "/" or ".".
func stripRolePrefix(name, delim string) string {
	for _, p := range rolePrefixes {
		if len(name) <= len(p) || !strings.EqualFold(name[:len(p)], p) {
			continue
		}
		rest := name[len(p):]
		for _, sep := range []string{delim, "/", "."} {
			if sep != "" && strings.HasPrefix(rest, sep) {
				return rest[len(sep):]
			}
		}
	}
	return name
}

// RoleByName guesses a folder's role from its name, "" when none. The
// name must be a single hierarchy level, or a single level directly below
// INBOX, [Gmail] or [Google Mail] (written with delim, "/" or "."): a
// "Sent" folder deeper in the hierarchy ("Clients/Acme/Sent") is the
// user's own folder, not the mailbox's sent folder. The level is compared
// with the known names case-insensitively, ignoring accents, surrounding
// space and the difference between spaces, hyphens and underscores.
// delim is the hierarchy delimiter of the name, "" when flat.
func RoleByName(name, delim string) string {
	rest := stripRolePrefix(name, delim)
	if delim != "" && strings.Contains(rest, delim) {
		return ""
	}
	return nameRoles[foldName(rest)]
}

// canonRole returns the role a SPECIAL-USE attribute stands for (the
// attribute is case-insensitive), "" when mailvault does not map it.
func canonRole(attr string) string {
	for _, r := range roles {
		if strings.EqualFold(attr, r) {
			return r
		}
	}
	return ""
}

// targetHasRole reports whether a target folder's special-use (one
// attribute or several separated by spaces) includes role.
func targetHasRole(specialUse, role string) bool {
	for _, a := range strings.Fields(specialUse) {
		if strings.EqualFold(a, role) {
			return true
		}
	}
	return false
}

// MapOptions configure a FolderMapper.
type MapOptions struct {
	// TargetDelim is the target's hierarchy delimiter. "" (a flat target)
	// is treated as "/": names are built, split and escaped as on a "/"
	// target, so the target then sees "a/b" as one name.
	TargetDelim string
	// Target lists the folders that exist on the target.
	Target []TargetFolder
	// Overrides are --map OLD=NEW: archived name -> target name. OLD is
	// the archived name as listed (with the archived delimiter; writing
	// its levels with "/" also matches). NEW is written with "/" as the
	// hierarchy separator and is absolute (not below Into). Children of
	// OLD follow it: OLD/x goes to NEW/x unless x has its own entry. An
	// entry whose NEW has no non-empty level is ignored.
	Overrides map[string]string
	// NoMap (--no-map): no role mapping, names are kept with only the
	// delimiter translated. Overrides still apply.
	NoMap bool
	// Into (--into FOLDER, written with "/"): every folder goes below it,
	// keeping its structure, INBOX included; role mapping is off and only
	// overrides apply. Empty levels ("a//b", a trailing "/") are dropped.
	Into string
	// Archived, optional, are the folders of the snapshot being restored.
	// With them, a child follows a parent whose role comes from its
	// SPECIAL-USE attribute, and a folder without the attribute is not
	// given a role by its name when another archived folder carries that
	// role's attribute (the source said which folder it is; a second
	// "Sent Items" is then an ordinary folder and keeps its name).
	Archived []formats.Folder
}

// FolderMapper maps archived folder names to target folder names. It is
// pure: Map depends only on the options and its argument, never on the
// order of calls. Build one with NewFolderMapper.
//
// Rules, first that applies wins:
//
//  1. Overrides: an entry for the folder, else for its nearest ancestor
//     (children follow the overridden parent).
//  2. Into: Into/levels of the archived name.
//  3. INBOX (any case) goes to INBOX.
//  4. Unless NoMap: the folder's role (its SPECIAL-USE, or RoleByName when
//     it has none) goes to the target folder carrying that SPECIAL-USE
//     ("special-use"); when no target folder carries it, to a target
//     folder known by name for the role ("name"). Candidates are ranked:
//     a folder named exactly like the translated archived name first,
//     then folders at the top level or directly below INBOX, then the
//     shortest name, then the byte order of names.
//  5. Unless NoMap: children of a mapped role folder follow their parent
//     (the nearest ancestor that maps by rule 4): "Sent/2024" goes to
//     "Gesendete Elemente/2024", with the parent's "how".
//  6. Otherwise ("same", also for a role the target has no folder for) the
//     archived name with its levels joined by the target delimiter.
//
// Levels are the archived name split by the archived folder's Delimiter
// (none when it has no delimiter); a first level equal to INBOX in any
// case is written "INBOX". A level that contains the target delimiter
// must not become two levels, so each delimiter character in it is
// replaced by a look-alike: "/" by "∕" (U+2215 DIVISION SLASH), "." by
// "․" (U+2024 ONE DOT LEADER), "\" by "⧵" (U+29F5), ":" by "∶" (U+2236),
// "|" by "∣" (U+2223), other ASCII punctuation by its full-width form
// (U+FF01…U+FF5E), anything else by "_". Thus "a.b" from a "/" server
// restored onto a "." server stays one folder, "a․b". The same applies to
// the levels of Into and of override targets.
type FolderMapper struct {
	delim       string // target delimiter, "/" when flat
	noMap       bool
	into        []string            // escaped levels of Into; nil when unset
	overrides   map[string][]string // canonical OLD -> escaped levels of NEW
	special     map[string][]string // role -> target folders with the attribute, ranked
	named       map[string][]string // role -> target folders known by name, ranked
	archSpecial map[string]string   // archived name -> role from its SPECIAL-USE
	archRoles   map[string]bool     // roles some archived folder carries as SPECIAL-USE
}

// NewFolderMapper builds a mapper.
func NewFolderMapper(opts MapOptions) *FolderMapper {
	m := &FolderMapper{
		delim:       opts.TargetDelim,
		noMap:       opts.NoMap,
		overrides:   map[string][]string{},
		special:     map[string][]string{},
		named:       map[string][]string{},
		archSpecial: map[string]string{},
		archRoles:   map[string]bool{},
	}
	if m.delim == "" {
		m.delim = "/"
	}
	if opts.Into != "" {
		if lv := m.slashLevels(opts.Into); len(lv) > 0 {
			m.into = lv
		}
	}
	for old, nw := range opts.Overrides {
		if lv := m.slashLevels(nw); len(lv) > 0 {
			m.overrides[canonInbox(old)] = lv
		}
	}
	for _, f := range opts.Archived {
		if r := canonRole(f.SpecialUse); r != "" {
			m.archSpecial[f.Name] = r
			m.archRoles[r] = true
		}
	}
	for _, role := range roles {
		var sp, nm []string
		for _, t := range opts.Target {
			switch {
			case targetHasRole(t.SpecialUse, role):
				sp = append(sp, t.Name)
			case strings.TrimSpace(t.SpecialUse) == "" && RoleByName(t.Name, m.delim) == role:
				// A folder with another attribute (\All, a different
				// role) is not a candidate by name.
				nm = append(nm, t.Name)
			}
		}
		m.special[role] = m.rankTargets(sp)
		m.named[role] = m.rankTargets(nm)
	}
	return m
}

// rankTargets sorts and de-duplicates candidate target folders: top level
// or directly below INBOX first, then shorter names, then byte order.
func (m *FolderMapper) rankTargets(names []string) []string {
	depth := func(n string) int {
		lv := strings.Split(n, m.delim)
		if len(lv) == 1 || len(lv) == 2 && strings.EqualFold(lv[0], "INBOX") {
			return 0
		}
		return 1
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := names[i], names[j]
		if da, db := depth(a), depth(b); da != db {
			return da < db
		}
		if la, lb := utf8.RuneCountInString(a), utf8.RuneCountInString(b); la != lb {
			return la < lb
		}
		return a < b
	})
	out := names[:0]
	for i, n := range names {
		if i == 0 || n != names[i-1] {
			out = append(out, n)
		}
	}
	return out
}

// Map returns the target folder for an archived folder and how it was
// chosen: "override", "special-use", "name", "same" or "into" (see
// FolderMapper for the rules).
func (m *FolderMapper) Map(f formats.Folder) (target string, how string) {
	levels := archivedLevels(f.Name, f.Delimiter)
	if t, ok := m.override(levels, f.Delimiter); ok {
		return t, MapOverride
	}
	if m.into != nil {
		return m.join(m.into, m.escape(levels)), MapInto
	}
	if len(levels) == 1 && levels[0] == "INBOX" {
		return "INBOX", MapSame
	}
	same := m.join(m.escape(levels))
	if !m.noMap {
		su := f.SpecialUse
		if strings.TrimSpace(su) == "" {
			su = m.archSpecial[f.Name]
		}
		if t, how, ok := m.mapRole(f.Name, f.Delimiter, su, same); ok {
			return t, how
		}
		for i := len(levels) - 1; i >= 1; i-- {
			name := strings.Join(levels[:i], f.Delimiter)
			if t, how, ok := m.mapRole(name, f.Delimiter, m.archSpecial[name], m.join(m.escape(levels[:i]))); ok {
				return m.join([]string{t}, m.escape(levels[i:])), how
			}
		}
	}
	return same, MapSame
}

// mapRole maps a folder by its role: the target folder with the
// attribute, else one known by name. same is the folder's translated
// name, preferred among candidates. ok is false when the folder has no
// role or the target no folder for it.
func (m *FolderMapper) mapRole(name, delim, specialUse, same string) (string, string, bool) {
	var role string
	if strings.TrimSpace(specialUse) != "" {
		role = canonRole(strings.TrimSpace(specialUse))
	} else if r := RoleByName(name, delim); r != "" && !m.archRoles[r] {
		role = r
	}
	if role == "" {
		return "", "", false
	}
	if t := pick(m.special[role], same); t != "" {
		return t, MapSpecialUse, true
	}
	if t := pick(m.named[role], same); t != "" {
		return t, MapName, true
	}
	return "", "", false
}

// pick returns same when it is a candidate, else the best candidate.
func pick(cands []string, same string) string {
	for _, c := range cands {
		if c == same {
			return c
		}
	}
	if len(cands) > 0 {
		return cands[0]
	}
	return ""
}

// override looks for an entry for the folder or its nearest ancestor,
// under the archived name or its levels written with "/".
func (m *FolderMapper) override(levels []string, delim string) (string, bool) {
	if len(m.overrides) == 0 {
		return "", false
	}
	for i := len(levels); i >= 1; i-- {
		keys := []string{strings.Join(levels[:i], delim)}
		if delim != "/" {
			keys = append(keys, strings.Join(levels[:i], "/"))
		}
		for _, k := range keys {
			if t, ok := m.overrides[canonInbox(k)]; ok {
				return m.join(t, m.escape(levels[i:])), true
			}
		}
	}
	return "", false
}

// archivedLevels splits an archived name into its levels, the first
// written "INBOX" when it is INBOX in any case.
func archivedLevels(name, delim string) []string {
	var lv []string
	if delim == "" {
		lv = []string{name}
	} else {
		lv = strings.Split(name, delim)
	}
	if strings.EqualFold(lv[0], "INBOX") {
		lv[0] = "INBOX"
	}
	return lv
}

// canonInbox writes a leading INBOX level (any case, followed by the end
// or a non-alphanumeric character) as "INBOX".
func canonInbox(s string) string {
	if len(s) < 5 || !strings.EqualFold(s[:5], "INBOX") {
		return s
	}
	if len(s) > 5 {
		r, _ := utf8.DecodeRuneInString(s[5:])
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return s
		}
	}
	return "INBOX" + s[5:]
}

// slashLevels splits a name written with "/" into escaped levels,
// dropping empty ones.
func (m *FolderMapper) slashLevels(s string) []string {
	var lv []string
	for _, l := range strings.Split(s, "/") {
		if l != "" {
			lv = append(lv, l)
		}
	}
	return m.escape(lv)
}

// escape replaces the target delimiter inside each level by its
// look-alike.
func (m *FolderMapper) escape(levels []string) []string {
	out := make([]string, len(levels))
	for i, l := range levels {
		out[i] = strings.ReplaceAll(l, m.delim, lookalike(m.delim))
	}
	return out
}

// join joins level lists with the target delimiter.
func (m *FolderMapper) join(parts ...[]string) string {
	var all []string
	for _, p := range parts {
		all = append(all, p...)
	}
	return strings.Join(all, m.delim)
}

// lookalike returns what replaces delim inside a level.
func lookalike(delim string) string {
	var b strings.Builder
	for _, r := range delim {
		switch {
		case r == '/':
			b.WriteRune('\u2215')
		case r == '.':
			b.WriteRune('\u2024')
		case r == '\\':
			b.WriteRune('\u29f5')
		case r == ':':
			b.WriteRune('\u2236')
		case r == '|':
			b.WriteRune('\u2223')
		case r > ' ' && r < 0x7f:
			b.WriteRune(r + 0xfee0)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
