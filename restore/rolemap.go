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
	// TargetPrefix is the prefix of the target's personal namespace
	// ("INBOX." on Courier and on Cyrus with Debian's settings, "" on
	// Dovecot): every folder but INBOX and what is below it gets it.
	TargetPrefix string
	// Source is the namespace the archived names are in (see
	// ArchiveNamespace): a name below its prefix loses the prefix, so
	// that Courier's "INBOX.Sent" is "Sent" in the user's view and on a
	// target without the prefix. The zero value reads names as they are.
	Source Namespace
	// Target lists the folders that exist on the target.
	Target []TargetFolder
	// Overrides are --map OLD=NEW: archived name -> target name. OLD is
	// the archived name as listed (with the archived delimiter; writing
	// its levels with "/" also matches, and so does the name in the
	// user's view, without the source's namespace prefix: "Sent" for
	// Courier's "INBOX.Sent"). NEW is a folder in the target's namespace
	// written with "/" as the hierarchy separator ("Archive/2024" is
	// "INBOX.Archive.2024" on Courier), or the target's own full name
	// when it starts with the target's prefix ("INBOX.Archive" on
	// Courier); it is absolute (not below Into). Children of OLD follow
	// it: OLD/x goes to NEW/x unless x has its own entry. An entry whose
	// NEW has no non-empty level is ignored.
	Overrides map[string]string
	// NoMap (--no-map): no role mapping, names are kept with only the
	// namespace and the delimiter translated. Overrides still apply.
	NoMap bool
	// Into (--into FOLDER, written like an override's NEW): every folder
	// goes below it, keeping its structure, INBOX included (as a folder
	// named INBOX below it, except below INBOX itself: "--into INBOX"
	// puts the archived INBOX into INBOX and the other folders below it);
	// role mapping is off and only overrides apply. Empty levels ("a//b",
	// a trailing "/") are dropped.
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
// A folder is first read in the user's view, independent of namespaces:
// INBOX and the folders below it, or a path of levels below the source's
// namespace prefix (the prefix removed). Its target name is then INBOX
// followed by its levels, or the target's prefix followed by its levels,
// joined by the target's delimiter: Courier's "INBOX.Sent" is "Sent" on
// Dovecot, and Dovecot's "Archive/2024" is "INBOX.Archive.2024" on
// Courier. (A folder below INBOX on a server without a prefix, Dovecot's
// "INBOX/Work", becomes "INBOX.Work" on Courier: the same name as a
// top-level "Work"; both are restored into it.)
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
//     folder's levels in the target's namespace.
//
// Levels are the archived name split by the archived folder's Delimiter
// (none when it has no delimiter); a first level equal to INBOX in any
// case is INBOX. A level that contains the target delimiter must not
// become two levels, so each delimiter character in it is replaced by a
// look-alike: "/" by "∕" (U+2215 DIVISION SLASH), "." by "․" (U+2024 ONE
// DOT LEADER), "\" by "⧵" (U+29F5), ":" by "∶" (U+2236), "|" by "∣"
// (U+2223), other ASCII punctuation by its full-width form
// (U+FF01…U+FF5E), anything else by "_". Thus "a.b" from a "/" server
// restored onto a "." server stays one folder, "a․b". The same applies to
// the levels of Into and of override targets written with "/" (not to
// the delimiter of a target name written in full with its prefix).
type FolderMapper struct {
	delim       string // target delimiter, "/" when flat
	prefix      string // target namespace prefix
	src         Namespace
	noMap       bool
	into        *fpath              // nil when unset
	overrides   map[string]fpath    // canonical OLD -> target path
	special     map[string][]string // role -> target folders with the attribute, ranked
	named       map[string][]string // role -> target folders known by name, ranked
	archSpecial map[string]string   // archived path key -> role from its SPECIAL-USE
	archRoles   map[string]bool     // roles some archived folder carries as SPECIAL-USE
}

// NewFolderMapper builds a mapper.
func NewFolderMapper(opts MapOptions) *FolderMapper {
	m := &FolderMapper{
		delim:       opts.TargetDelim,
		prefix:      opts.TargetPrefix,
		src:         opts.Source,
		noMap:       opts.NoMap,
		overrides:   map[string]fpath{},
		special:     map[string][]string{},
		named:       map[string][]string{},
		archSpecial: map[string]string{},
		archRoles:   map[string]bool{},
	}
	if m.delim == "" {
		m.delim = "/"
	}
	tns := Namespace{Prefix: m.prefix, Delimiter: m.delim}
	if opts.Into != "" {
		m.into = userPath(opts.Into, tns)
	}
	for old, nw := range opts.Overrides {
		if p := userPath(nw, tns); p != nil {
			m.overrides[canonInbox(old)] = *p
		}
	}
	for _, f := range opts.Archived {
		if r := canonRole(f.SpecialUse); r != "" {
			m.archSpecial[m.archivedPath(f).key()] = r
			m.archRoles[r] = true
		}
	}
	for _, role := range roles {
		var sp, nm []string
		for _, t := range opts.Target {
			switch {
			case t.NoSelect:
			case targetHasRole(t.SpecialUse, role):
				sp = append(sp, t.Name)
			case strings.TrimSpace(t.SpecialUse) == "" && RoleByName(m.unprefixed(t.Name), m.delim) == role:
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

// unprefixed returns a target name without the target's namespace prefix.
func (m *FolderMapper) unprefixed(name string) string {
	if m.prefix != "" && len(name) > len(m.prefix) && hasPrefixFold(name, m.prefix) {
		return name[len(m.prefix):]
	}
	return name
}

// rankTargets sorts and de-duplicates candidate target folders: top level
// or directly below INBOX first, then shorter names, then byte order.
func (m *FolderMapper) rankTargets(names []string) []string {
	depth := func(n string) int {
		lv := strings.Split(m.unprefixed(n), m.delim)
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

// archivedPath reads an archived folder in the user's view.
func (m *FolderMapper) archivedPath(f formats.Folder) fpath {
	return pathOf(f.Name, f.Delimiter, m.src)
}

// Map returns the target folder for an archived folder and how it was
// chosen: "override", "special-use", "name", "same" or "into" (see
// FolderMapper for the rules).
func (m *FolderMapper) Map(f formats.Folder) (target string, how string) {
	p := m.archivedPath(f)
	if t, ok := m.override(f, p); ok {
		return t, MapOverride
	}
	if m.into != nil {
		return m.name(m.into.below(p)), MapInto
	}
	if p.inbox && len(p.levels) == 0 {
		return "INBOX", MapSame
	}
	same := m.name(p)
	if !m.noMap {
		su := f.SpecialUse
		if strings.TrimSpace(su) == "" {
			su = m.archSpecial[p.key()]
		}
		if t, how, ok := m.mapRole(p, su, same); ok {
			return t, how
		}
		for i := len(p.levels) - 1; i >= 1; i-- {
			a := p.prefix(i)
			if t, how, ok := m.mapRole(a, m.archSpecial[a.key()], m.name(a)); ok {
				return t + m.delim + strings.Join(m.escape(p.levels[i:]), m.delim), how
			}
		}
	}
	return same, MapSame
}

// name is the target's name of a path.
func (m *FolderMapper) name(p fpath) string {
	lv := m.escape(p.levels)
	if p.inbox {
		return strings.Join(append([]string{"INBOX"}, lv...), m.delim)
	}
	return m.prefix + strings.Join(lv, m.delim)
}

// roleOf guesses a path's role from its name: a single level at the top
// or below INBOX, [Gmail] or [Google Mail] (see RoleByName).
func roleOf(p fpath) string {
	lv := p.levels
	if !p.inbox && len(lv) == 2 && RoleByName(lv[0]+"/"+lv[1], "/") != "" {
		return RoleByName(lv[0]+"/"+lv[1], "/")
	}
	if len(lv) != 1 {
		return ""
	}
	return RoleByName(lv[0], "")
}

// mapRole maps a folder by its role: the target folder with the
// attribute, else one known by name. same is the folder's translated
// name, preferred among candidates. ok is false when the folder has no
// role or the target no folder for it.
func (m *FolderMapper) mapRole(p fpath, specialUse, same string) (string, string, bool) {
	var role string
	if strings.TrimSpace(specialUse) != "" {
		role = canonRole(strings.TrimSpace(specialUse))
	} else if r := roleOf(p); r != "" && !m.archRoles[r] {
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

// Role returns the role a folder has for the mapping (its SPECIAL-USE, or
// one known by its name unless another archived folder carries that
// role's attribute), "" when none.
func (m *FolderMapper) Role(f formats.Folder) string {
	if r := canonRole(strings.TrimSpace(f.SpecialUse)); r != "" {
		return r
	}
	p := m.archivedPath(f)
	if r := m.archSpecial[p.key()]; r != "" {
		return r
	}
	if r := roleOf(p); r != "" && !m.archRoles[r] {
		return r
	}
	return ""
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
// under the archived name, its levels written with "/", or its name in
// the user's view.
func (m *FolderMapper) override(f formats.Folder, p fpath) (string, bool) {
	if len(m.overrides) == 0 {
		return "", false
	}
	raw := splitLevels(f.Name, f.Delimiter)
	if f.Delimiter == "" && m.src.Delimiter != "" && m.src.Prefix != "" && hasPrefixFold(f.Name, m.src.Prefix) {
		raw = splitLevels(f.Name, m.src.Delimiter)
	}
	skip := max(0, len(raw)-len(p.levels)) // levels of the prefix, or INBOX
	for i := len(p.levels); i >= 0; i-- {
		if i == 0 && !p.inbox {
			break
		}
		a := p.prefix(i)
		keys := []string{a.slash()}
		if n := skip + i; n <= len(raw) {
			keys = append(keys, strings.Join(raw[:n], f.Delimiter), strings.Join(raw[:n], "/"))
		}
		for _, k := range keys {
			if t, ok := m.overrides[canonInbox(k)]; ok {
				return m.name(fpath{inbox: t.inbox, levels: append(append([]string{}, t.levels...), p.levels[i:]...)}), true
			}
		}
	}
	return "", false
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

// escape replaces the target delimiter inside each level by its
// look-alike.
func (m *FolderMapper) escape(levels []string) []string {
	out := make([]string, len(levels))
	for i, l := range levels {
		out[i] = strings.ReplaceAll(l, m.delim, lookalike(m.delim))
	}
	return out
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
