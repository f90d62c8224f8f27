package backup

import (
	"fmt"
	"strings"
)

// Excluding folders (Options.Exclude): patterns as mbsync writes them (its
// Patterns option, without the "!" that negates there: every pattern here
// excludes). "*" matches any characters, the hierarchy delimiter
// included; "%" matches any characters but the delimiter; every other
// character matches itself, and "INBOX" at the start of a name in any
// case. "[Gmail]/All Mail" leaves out Gmail's All Mail, "Archive/*" the
// folders under Archive (not Archive itself), "Archive*" both.
//
// An excluded folder is not opened and not recorded in the snapshot: what
// the archive holds of it stays as it is (it is not taken for deleted),
// and a later run without the pattern goes on where the archive stopped.

// CheckPatterns reports the first pattern that is not a usable folder
// pattern (an empty one).
func CheckPatterns(patterns []string) error {
	for _, p := range patterns {
		if strings.TrimSpace(p) == "" {
			return fmt.Errorf("an empty folder pattern excludes nothing; name a folder, or use * and %%")
		}
	}
	return nil
}

// excluded reports whether a folder name (hierarchy levels joined with
// delim) matches one of patterns.
func excluded(name, delim string, patterns []string) bool {
	for _, p := range patterns {
		if matchFolder(p, name, delim) {
			return true
		}
	}
	return false
}

// matchFolder matches one pattern against a folder name.
func matchFolder(pattern, name, delim string) bool {
	if hasInboxPrefix(pattern) && hasInboxPrefix(name) {
		pattern, name = "INBOX"+pattern[5:], "INBOX"+name[5:]
	}
	return match(pattern, name, delim)
}

func hasInboxPrefix(s string) bool { return len(s) >= 5 && strings.EqualFold(s[:5], "INBOX") }

// match is glob matching with * (anything) and % (anything without
// delim), by backtracking over the pattern's wildcards.
func match(p, s, delim string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*', '%':
		for i := 0; i <= len(s); i++ {
			if match(p[1:], s[i:], delim) {
				return true
			}
			if i < len(s) && p[0] == '%' && delim != "" && strings.HasPrefix(s[i:], delim) {
				return false
			}
		}
		return false
	}
	return s != "" && s[0] == p[0] && match(p[1:], s[1:], delim)
}

// excludeFolders drops the listed folders and the archived ones that
// patterns exclude, logging each listed one.
func (r *run) excludeFolders(infos []FolderInfo, archived map[string]archivedFolder) []FolderInfo {
	if len(r.opts.Exclude) == 0 {
		return infos
	}
	out := infos[:0:0]
	for _, fi := range infos {
		if excluded(fi.Name, fi.Delimiter, r.opts.Exclude) {
			r.opts.Log.Info("folder excluded (--exclude-folder): not backed up", "folder", fi.Name)
			continue
		}
		out = append(out, fi)
	}
	for name, f := range archived {
		if excluded(name, f.Delimiter, r.opts.Exclude) {
			delete(archived, name) // kept as archived, not taken for deleted
		}
	}
	return out
}
