package restore

import (
	"strings"

	"github.com/mailvault/mailvault/formats"
)

// How the archive's namespace was learned, as Report.SourceNamespaceFrom
// says.
const (
	NamespaceRecorded = "recorded" // the backup recorded the source's NAMESPACE
	NamespaceDerived  = "derived"  // from the folder names (see ArchiveNamespace)
	NamespaceGiven    = "given"    // set by the caller
)

// ArchiveNamespace returns the personal namespace the archived folder
// names of a snapshot (its folders) are in, and how it was learned. A backup records the
// source's namespace in the snapshot (formats.Snapshot.Namespace). For an
// archive made before it did, the namespace is derived from the names:
// when every folder but INBOX is below "INBOX." with delimiter "." (Courier,
// Cyrus with Debian's settings), the prefix is "INBOX."; otherwise it is
// "" with the folders' delimiter.
func ArchiveNamespace(snap *formats.Snapshot, folders []formats.Folder) (Namespace, string) {
	if snap != nil && snap.Namespace != nil {
		return *snap.Namespace, NamespaceRecorded
	}
	below, other := 0, 0
	delim := ""
	for _, f := range folders {
		if delim == "" && f.Delimiter != "" {
			delim = f.Delimiter
		}
		switch {
		case strings.EqualFold(f.Name, "INBOX"):
		case f.Delimiter == "." && len(f.Name) > 6 && strings.EqualFold(f.Name[:6], "INBOX."):
			below++
		default:
			other++
		}
	}
	if below > 0 && other == 0 {
		return Namespace{Prefix: "INBOX.", Delimiter: "."}, NamespaceDerived
	}
	return Namespace{Delimiter: delim}, NamespaceDerived
}

// fpath is a folder in a user's view, independent of any server's
// namespace: below INBOX (inbox is set; levels may be empty for INBOX
// itself), or at the top of the personal namespace.
type fpath struct {
	inbox  bool
	levels []string
}

// key identifies the path in maps.
func (p fpath) key() string {
	k := "N"
	if p.inbox {
		k = "I"
	}
	return k + "\x00" + strings.Join(p.levels, "\x00")
}

// slash writes the path with "/" between levels, INBOX first when below
// it: how users write folders on the command line.
func (p fpath) slash() string {
	lv := p.levels
	if p.inbox {
		lv = append([]string{"INBOX"}, lv...)
	}
	return strings.Join(lv, "/")
}

// prefix returns the path of the first n levels.
func (p fpath) prefix(n int) fpath {
	return fpath{inbox: p.inbox, levels: p.levels[:n]}
}

// below returns p with more levels below it. A path that is INBOX itself
// takes INBOX's place when put below INBOX: "--into INBOX" puts the
// archived INBOX into INBOX, never INBOX/INBOX.
func (p fpath) below(q fpath) fpath {
	lv := append([]string{}, p.levels...)
	if q.inbox && !(p.inbox && len(p.levels) == 0) {
		lv = append(lv, "INBOX")
	}
	return fpath{inbox: p.inbox, levels: append(lv, q.levels...)}
}

// hasPrefixFold reports whether name starts with prefix, the letters
// compared without case (INBOX. is any case).
func hasPrefixFold(name, prefix string) bool {
	return len(name) >= len(prefix) && strings.EqualFold(name[:len(prefix)], prefix)
}

// splitLevels splits a name by delim, into one level when delim is "".
func splitLevels(name, delim string) []string {
	if delim == "" {
		return []string{name}
	}
	return strings.Split(name, delim)
}

// pathOf reads a folder name of a namespace: INBOX and what is below it,
// else a name below the prefix (the prefix removed), else a name outside
// the personal namespace, kept whole as levels.
func pathOf(name, delim string, ns Namespace) fpath {
	if strings.EqualFold(name, "INBOX") {
		return fpath{inbox: true}
	}
	if delim == "" {
		delim = ns.Delimiter
	}
	if ns.Prefix != "" && len(name) > len(ns.Prefix) && hasPrefixFold(name, ns.Prefix) {
		return fpath{levels: splitLevels(name[len(ns.Prefix):], delim)}
	}
	lv := splitLevels(name, delim)
	if len(lv) > 1 && strings.EqualFold(lv[0], "INBOX") {
		return fpath{inbox: true, levels: lv[1:]}
	}
	return fpath{levels: lv}
}

// userPath reads a folder as a user writes it on the command line for a
// target: levels separated by "/", INBOX first for what is below INBOX; a
// name that starts with the target's namespace prefix ("INBOX.Archive" on
// Courier) is read as the target's own name, its levels separated by the
// target's delimiter (or "/"). Empty levels are dropped; nil when nothing
// is left.
func userPath(s string, ns Namespace) *fpath {
	var raw []string
	inbox := false
	if ns.Prefix != "" && hasPrefixFold(s, ns.Prefix) {
		for _, part := range splitLevels(s[len(ns.Prefix):], ns.Delimiter) {
			raw = append(raw, strings.Split(part, "/")...)
		}
	} else {
		raw = strings.Split(s, "/")
		for len(raw) > 0 && raw[0] == "" {
			raw = raw[1:]
		}
		if len(raw) > 0 && strings.EqualFold(raw[0], "INBOX") {
			inbox, raw = true, raw[1:]
		}
	}
	var lv []string
	for _, l := range raw {
		if l != "" {
			lv = append(lv, l)
		}
	}
	if !inbox && len(lv) == 0 {
		return nil
	}
	return &fpath{inbox: inbox, levels: lv}
}
