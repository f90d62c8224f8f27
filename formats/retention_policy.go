package formats

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Unlimited, as a count of a Policy, keeps every snapshot the rule
// matches (restic's "unlimited").
const Unlimited = -1

// Policy says which snapshots forget keeps, with restic's rules and
// meaning: Last keeps the newest n snapshots; Hourly, Daily, Weekly,
// Monthly and Yearly keep the newest snapshot of each of the newest n
// hours, days, ISO weeks, months and years that have one; Within keeps
// every snapshot younger than the duration, counted back from the newest
// snapshot (not from now). A count of 0 is no rule, Unlimited no limit.
// When a count rule has counts left after the oldest snapshot, the oldest
// snapshot is kept as well (restic since 0.15). The rules are applied to
// complete snapshots only; see ApplyPolicy for partial ones.
type Policy struct {
	Last, Hourly, Daily, Weekly, Monthly, Yearly int
	Within                                       Duration
}

// Duration is restic's calendar duration: years, months, days and hours,
// written like "1y5m7d2h".
type Duration struct {
	Years, Months, Days, Hours int
}

// Zero reports whether d is no duration.
func (d Duration) Zero() bool { return d == Duration{} }

func (d Duration) String() string {
	var b strings.Builder
	for _, p := range []struct {
		n    int
		unit string
	}{{d.Years, "y"}, {d.Months, "m"}, {d.Days, "d"}, {d.Hours, "h"}} {
		if p.n != 0 {
			fmt.Fprintf(&b, "%d%s", p.n, p.unit)
		}
	}
	if b.Len() == 0 {
		return "0h"
	}
	return b.String()
}

// ParseDuration reads a duration like "90d", "1y6m" or "2d12h": numbers
// each followed by y (years), m (months), d (days) or h (hours).
func ParseDuration(s string) (Duration, error) {
	var d Duration
	if s == "" {
		return d, errors.New("empty duration")
	}
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) {
			return Duration{}, fmt.Errorf("bad duration %q (want numbers with units y, m, d, h, e.g. 1y6m or 90d)", s)
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n > 100000 {
			return Duration{}, fmt.Errorf("bad duration %q: number out of range", s)
		}
		switch rest[i] {
		case 'y':
			d.Years += n
		case 'm':
			d.Months += n
		case 'd':
			d.Days += n
		case 'h':
			d.Hours += n
		default:
			return Duration{}, fmt.Errorf("bad duration %q: unknown unit %q (want y, m, d or h)", s, rest[i])
		}
		rest = rest[i+1:]
	}
	return d, nil
}

// Empty reports whether p has no rule at all.
func (p Policy) Empty() bool { return p == Policy{} }

// Check reports a count below Unlimited.
func (p Policy) Check() error {
	for _, c := range []struct {
		name string
		n    int
	}{{"keep-last", p.Last}, {"keep-hourly", p.Hourly}, {"keep-daily", p.Daily}, {"keep-weekly", p.Weekly}, {"keep-monthly", p.Monthly}, {"keep-yearly", p.Yearly}} {
		if c.n < Unlimited {
			return fmt.Errorf("--%s %d: want a count of 0 or more, or unlimited", c.name, c.n)
		}
	}
	if p.Within.Years < 0 || p.Within.Months < 0 || p.Within.Days < 0 || p.Within.Hours < 0 {
		return errors.New("--keep-within: negative duration")
	}
	return nil
}

// PolicySnapshot is what the policy looks at of a snapshot.
type PolicySnapshot struct {
	ID       string
	Time     time.Time // when the run started, in the time zone the calendar rules use
	Complete bool
}

// PolicyDecision is the fate of one snapshot and the rules that decided it.
type PolicyDecision struct {
	PolicySnapshot
	Keep    bool
	Reasons []string // why it is kept, or why it goes
}

// ApplyPolicy decides, for snaps (an archive's snapshots, oldest first),
// which to keep under p, and why; the decisions come in the order of
// snaps. Complete snapshots are judged by p with restic's algorithm
// (newest first); a partial snapshot is forgotten once a later complete
// snapshot exists, and kept otherwise; the newest snapshot is always kept.
// An empty policy keeps everything.
func ApplyPolicy(snaps []PolicySnapshot, p Policy) []PolicyDecision {
	out := make([]PolicyDecision, len(snaps))
	for i, s := range snaps {
		out[i] = PolicyDecision{PolicySnapshot: s}
	}
	if len(snaps) == 0 {
		return out
	}
	if p.Empty() {
		for i := range out {
			out[i].Keep, out[i].Reasons = true, []string{"policy is empty"}
		}
		return out
	}
	// The complete snapshots, newest first (by time, then by position).
	var complete []int
	lastComplete := -1
	for i, s := range snaps {
		if s.Complete {
			complete = append(complete, i)
			lastComplete = i
		}
	}
	sort.SliceStable(complete, func(a, b int) bool {
		ta, tb := snaps[complete[a]].Time, snaps[complete[b]].Time
		if !ta.Equal(tb) {
			return ta.After(tb)
		}
		return complete[a] > complete[b]
	})
	buckets := []struct {
		count  int
		bucket func(t time.Time, nr int) int
		last   int
		reason string
	}{
		{p.Last, func(_ time.Time, nr int) int { return nr }, -1, "last"},
		{p.Hourly, func(t time.Time, _ int) int { return t.Year()*1000000 + int(t.Month())*10000 + t.Day()*100 + t.Hour() }, -1, "hourly"},
		{p.Daily, func(t time.Time, _ int) int { return t.Year()*10000 + int(t.Month())*100 + t.Day() }, -1, "daily"},
		{p.Weekly, func(t time.Time, _ int) int { y, w := t.ISOWeek(); return y*100 + w }, -1, "weekly"},
		{p.Monthly, func(t time.Time, _ int) int { return t.Year()*100 + int(t.Month()) }, -1, "monthly"},
		{p.Yearly, func(t time.Time, _ int) int { return t.Year() }, -1, "yearly"},
	}
	var latest time.Time
	for _, i := range complete {
		if snaps[i].Time.After(latest) {
			latest = snaps[i].Time
		}
	}
	for nr, i := range complete {
		cur := snaps[i]
		d := &out[i]
		if !p.Within.Zero() {
			w := p.Within
			since := latest.AddDate(-w.Years, -w.Months, -w.Days).Add(-time.Duration(w.Hours) * time.Hour)
			if cur.Time.After(since) {
				d.Keep = true
				d.Reasons = append(d.Reasons, "within "+w.String())
			}
		}
		for b := range buckets {
			bk := &buckets[b]
			if bk.count == 0 {
				continue
			}
			val := bk.bucket(cur.Time, nr)
			oldest := nr == len(complete)-1
			if val != bk.last || oldest {
				d.Keep = true
				reason := bk.reason
				if val == bk.last {
					reason = "oldest " + reason
				}
				d.Reasons = append(d.Reasons, reason)
				bk.last = val
				if bk.count > 0 {
					bk.count--
				}
			}
		}
	}
	for i, s := range snaps {
		d := &out[i]
		switch {
		case i == len(snaps)-1:
			if !d.Keep {
				d.Reasons = nil
			}
			d.Keep = true
			d.Reasons = append(d.Reasons, "newest snapshot")
		case !s.Complete && i > lastComplete:
			d.Keep, d.Reasons = true, []string{"partial, no complete snapshot after it"}
		case !s.Complete:
			d.Keep, d.Reasons = false, []string{"partial, a later complete snapshot exists"}
		case !d.Keep:
			d.Reasons = []string{"no rule keeps it"}
		}
	}
	return out
}
