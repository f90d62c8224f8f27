package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
)

// Retention is what a fleet run does to an account's archive after a
// backup that committed a snapshot: forget with Policy (as 'mailvault
// forget --keep-…'), then, with Prune, prune leaving segments with at
// most MaxUnused percent unneeded (as 'forget --prune --max-unused').
type Retention struct {
	Policy    formats.Policy
	Prune     bool
	MaxUnused float64
}

// Apply reports whether the account has a retention policy: some keep_*
// rule. Without one nothing is forgotten or pruned.
func (r Retention) Apply() bool { return !r.Policy.Empty() }

// String describes r with the file's key names, e.g. "keep_daily 7,
// keep_within 90d, then prune"; "none" without a policy.
func (r Retention) String() string {
	if !r.Apply() {
		return "none"
	}
	var parts []string
	p := r.Policy
	for _, c := range []struct {
		key string
		n   int
	}{{"keep_last", p.Last}, {"keep_hourly", p.Hourly}, {"keep_daily", p.Daily}, {"keep_weekly", p.Weekly}, {"keep_monthly", p.Monthly}, {"keep_yearly", p.Yearly}} {
		switch {
		case c.n == formats.Unlimited:
			parts = append(parts, c.key+" unlimited")
		case c.n > 0:
			parts = append(parts, fmt.Sprintf("%s %d", c.key, c.n))
		}
	}
	if !p.Within.Zero() {
		parts = append(parts, "keep_within "+p.Within.String())
	}
	s := strings.Join(parts, ", ")
	if r.Prune {
		s += ", then prune"
		if r.MaxUnused > 0 {
			s += fmt.Sprintf(" (max_unused %s%%)", strconv.FormatFloat(r.MaxUnused, 'f', -1, 64))
		}
	}
	return s
}

// keeping is which folders an account leaves out and which snapshots it
// keeps. Each key comes from the nearest table that gives it: the
// account, its [[server]], [defaults].
type keeping struct {
	exclude   []string
	retention Retention
}

// keeping applies the keys t gives (decoded in rk) to base.
func (p *parser) keeping(t *table, base keeping, rk rawKeep) (keeping, error) {
	out := base
	if t.has("exclude_folders") {
		if err := backup.CheckPatterns(rk.ExcludeFolders); err != nil {
			return out, p.errf(t.at("exclude_folders"), "exclude_folders: %v", err)
		}
		out.exclude = append([]string{}, rk.ExcludeFolders...)
	}
	pol := &out.retention.Policy
	for _, c := range []struct {
		key string
		v   any
		to  *int
	}{
		{"keep_last", rk.KeepLast, &pol.Last}, {"keep_hourly", rk.KeepHourly, &pol.Hourly}, {"keep_daily", rk.KeepDaily, &pol.Daily},
		{"keep_weekly", rk.KeepWeekly, &pol.Weekly}, {"keep_monthly", rk.KeepMonthly, &pol.Monthly}, {"keep_yearly", rk.KeepYearly, &pol.Yearly},
	} {
		if !t.has(c.key) {
			continue
		}
		n, ok := keepCount(c.v)
		if !ok {
			return out, p.errf(t.at(c.key), "%s must be a whole number (0 or more) or \"unlimited\", not %s", c.key, show(c.v))
		}
		*c.to = n
	}
	if t.has("keep_within") {
		d, err := formats.ParseDuration(rk.KeepWithin)
		if err != nil {
			return out, p.errf(t.at("keep_within"), "keep_within: %v", err)
		}
		pol.Within = d
	}
	if t.has("prune") {
		out.retention.Prune = rk.Prune
	}
	if t.has("max_unused") {
		pct, ok := percent(rk.MaxUnused)
		if !ok {
			return out, p.errf(t.at("max_unused"), "max_unused must be a percentage from 0 to 100, not %s", show(rk.MaxUnused))
		}
		if !out.retention.Prune {
			return out, p.errf(t.at("max_unused"), "max_unused goes with prune = true (here or inherited): it says which segments prune rewrites")
		}
		out.retention.MaxUnused = pct
	}
	return out, nil
}

// keepCount reads a keep_* count: a whole number, or "unlimited".
func keepCount(v any) (int, bool) {
	switch x := v.(type) {
	case int64:
		if x >= 0 && x <= math.MaxInt32 {
			return int(x), true
		}
	case string:
		if x == "unlimited" {
			return formats.Unlimited, true
		}
	}
	return 0, false
}

// percent reads max_unused: a number from 0 to 100.
func percent(v any) (float64, bool) {
	var f float64
	switch x := v.(type) {
	case int64:
		f = float64(x)
	case float64:
		f = x
	default:
		return 0, false
	}
	return f, f >= 0 && f <= 100
}

// show writes a value as the file would.
func show(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
