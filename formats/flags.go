package formats

import (
	"slices"
	"sort"
	"strings"
)

// systemFlags maps lower-cased system flags to their canonical spelling.
var systemFlags = map[string]string{
	`\seen`: `\Seen`, `\answered`: `\Answered`, `\flagged`: `\Flagged`,
	`\deleted`: `\Deleted`, `\draft`: `\Draft`,
}

// NormalizeFlags returns flags as the archive records them (Message.Flags,
// FlagChange.Flags): system flags in canonical case, \Recent (a session
// flag) and empty names dropped, duplicates removed, sorted; nil when none
// is left. Keywords keep their case.
func NormalizeFlags(flags []string) []string {
	out := make([]string, 0, len(flags))
	for _, f := range flags {
		lf := strings.ToLower(f)
		if lf == `\recent` || f == "" {
			continue
		}
		if c, ok := systemFlags[lf]; ok {
			f = c
		}
		if !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	sort.Strings(out)
	if len(out) == 0 {
		return nil
	}
	return out
}
