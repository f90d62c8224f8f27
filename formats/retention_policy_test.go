package formats

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// resticDates are the snapshot times of restic's policy test
// (internal/restic/snapshot_policy_test.go, testExpireSnapshots), in its
// order; all in UTC.
var resticDates = []string{
	"2014-09-01 10:20:30", "2014-09-02 10:20:30", "2014-09-05 10:20:30", "2014-09-06 10:20:30",
	"2014-09-08 10:20:30", "2014-09-09 10:20:30", "2014-09-10 10:20:30", "2014-09-11 10:20:30",
	"2014-09-20 10:20:30", "2014-09-22 10:20:30", "2014-08-08 10:20:30", "2014-08-10 10:20:30",
	"2014-08-12 10:20:30", "2014-08-13 10:20:30", "2014-08-13 10:20:30.1", "2014-08-15 10:20:30",
	"2014-08-18 10:20:30", "2014-08-20 10:20:30", "2014-08-21 10:20:30", "2014-08-22 10:20:30",
	"2014-10-01 10:20:30", "2014-10-02 10:20:30", "2014-10-05 10:20:30", "2014-10-06 10:20:30",
	"2014-10-08 10:20:30", "2014-10-09 10:20:30", "2014-10-10 10:20:30", "2014-10-11 10:20:30",
	"2014-10-20 10:20:30", "2014-10-22 10:20:30", "2014-11-08 10:20:30", "2014-11-10 10:20:30",
	"2014-11-12 10:20:30", "2014-11-13 10:20:30", "2014-11-13 10:20:30.1", "2014-11-15 10:20:30",
	"2014-11-18 10:20:30", "2014-11-20 10:20:30", "2014-11-21 10:20:30", "2014-11-22 10:20:30",
	"2015-09-01 10:20:30", "2015-09-02 10:20:30", "2015-09-05 10:20:30", "2015-09-06 10:20:30",
	"2015-09-08 10:20:30", "2015-09-09 10:20:30", "2015-09-10 10:20:30", "2015-09-11 10:20:30",
	"2015-09-20 10:20:30", "2015-09-22 10:20:30", "2015-08-08 10:20:30", "2015-08-10 10:20:30",
	"2015-08-12 10:20:30", "2015-08-13 10:20:30", "2015-08-13 10:20:30.1", "2015-08-15 10:20:30",
	"2015-08-18 10:20:30", "2015-08-20 10:20:30", "2015-08-21 10:20:30", "2015-08-22 10:20:30",
	"2015-10-01 10:20:30", "2015-10-02 10:20:30", "2015-10-05 10:20:30", "2015-10-06 10:20:30",
	"2015-10-08 10:20:30", "2015-10-09 10:20:30", "2015-10-10 10:20:30", "2015-10-11 10:20:30",
	"2015-10-20 10:20:30", "2015-10-22 10:20:30", "2015-11-08 10:20:30", "2015-11-10 10:20:30",
	"2015-11-12 10:20:30", "2015-11-13 10:20:30", "2015-11-13 10:20:30.1", "2015-11-15 10:20:30",
	"2015-11-18 10:20:30", "2015-11-20 10:20:30", "2015-11-21 10:20:30", "2015-11-22 10:20:30",
	"2016-01-01 01:02:03", "2016-01-01 01:03:03", "2016-01-01 07:08:03", "2016-01-03 07:02:03",
	"2016-01-04 10:23:03", "2016-01-04 11:23:03", "2016-01-04 12:23:03", "2016-01-04 12:24:03",
	"2016-01-04 12:28:03", "2016-01-04 12:30:03", "2016-01-04 16:23:03", "2016-01-05 09:02:03",
	"2016-01-06 08:02:03", "2016-01-07 10:02:03", "2016-01-08 20:02:03", "2016-01-09 21:02:03",
	"2016-01-12 21:02:03", "2016-01-12 21:08:03", "2016-01-18 12:02:03",
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		t.Fatal(err)
	}
	return tm.UTC()
}

func mustDuration(t *testing.T, s string) Duration {
	t.Helper()
	d, err := ParseDuration(s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// keptTimes returns the times of the kept snapshots, newest first, as
// restic's golden files list them.
func keptTimes(ds []PolicyDecision) []string {
	var out []string
	for i := len(ds) - 1; i >= 0; i-- {
		if ds[i].Keep {
			out = append(out, ds[i].Time.Format("2006-01-02 15:04:05.9"))
		}
	}
	return out
}

// TestApplyPolicyRestic: restic's policy test data gives restic's keep
// sets. Expected sets are restic's golden files
// (internal/restic/testdata/policy_keep_snapshots_N) where they apply
// unchanged, and the same plus the oldest snapshot where a count rule
// has counts left at the end (restic since 0.15 keeps it too).
func TestApplyPolicyRestic(t *testing.T) {
	// In a restic list the times are not in order; mailvault's are (seq
	// order is commit order), so sort them as they would be committed.
	var snaps []PolicySnapshot
	for i, s := range resticDates {
		snaps = append(snaps, PolicySnapshot{ID: fmt.Sprintf("%08x", i), Time: mustTime(t, s), Complete: true})
	}
	sortByTime(snaps)
	tests := []struct {
		name   string
		policy Policy
		want   []string
	}{
		{"last 10", Policy{Last: 10}, []string{
			"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-12 21:02:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03",
			"2016-01-07 10:02:03", "2016-01-06 08:02:03", "2016-01-05 09:02:03", "2016-01-04 16:23:03", "2016-01-04 12:30:03"}},
		// policy_keep_snapshots_6 (--keep-daily 3).
		{"daily 3", Policy{Daily: 3}, []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03"}},
		// policy_keep_snapshots_13 (--keep-daily 3 --keep-weekly 4).
		{"daily 3 weekly 4", Policy{Daily: 3, Weekly: 4}, []string{
			"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-03 07:02:03"}},
		// policy_keep_snapshots_14 (--keep-monthly 6).
		{"monthly 6", Policy{Monthly: 6}, []string{
			"2016-01-18 12:02:03", "2015-11-22 10:20:30", "2015-10-22 10:20:30", "2015-09-22 10:20:30", "2015-08-22 10:20:30", "2014-11-22 10:20:30"}},
		// policy_keep_snapshots_17 (--keep-daily 7 --keep-weekly 2
		// --keep-monthly 3 --keep-yearly 10), and the oldest: 7 yearly
		// counts are left.
		{"daily 7 weekly 2 monthly 3 yearly 10", Policy{Daily: 7, Weekly: 2, Monthly: 3, Yearly: 10}, []string{
			"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03", "2016-01-07 10:02:03",
			"2016-01-06 08:02:03", "2016-01-05 09:02:03", "2015-11-22 10:20:30", "2015-10-22 10:20:30", "2014-11-22 10:20:30",
			"2014-08-08 10:20:30"}},
		// policy_keep_snapshots_23 (--keep-within 7d): within 7 days of
		// the newest snapshot, not of now.
		{"within 7d", Policy{Within: mustDuration(t, "7d")}, []string{"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-12 21:02:03"}},
		{"within 13d23h", Policy{Within: mustDuration(t, "13d23h")}, []string{
			"2016-01-18 12:02:03", "2016-01-12 21:08:03", "2016-01-12 21:02:03", "2016-01-09 21:02:03", "2016-01-08 20:02:03",
			"2016-01-07 10:02:03", "2016-01-06 08:02:03", "2016-01-05 09:02:03", "2016-01-04 16:23:03"}},
		{"unlimited yearly", Policy{Yearly: Unlimited}, []string{"2016-01-18 12:02:03", "2015-11-22 10:20:30", "2014-11-22 10:20:30", "2014-08-08 10:20:30"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keptTimes(ApplyPolicy(snaps, tc.policy))
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("kept\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(tc.want, "\n  "))
			}
		})
	}
}

func sortByTime(s []PolicySnapshot) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].Time.Before(s[j-1].Time); j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// TestApplyPolicyForumExample: restic's users' example of --keep-daily 4
// (forum.restic.net "Keep vs keep-within"): one snapshot per day, the
// newest of the day, days without a snapshot do not count.
func TestApplyPolicyForumExample(t *testing.T) {
	var snaps []PolicySnapshot
	for i, s := range []string{"2023-05-01 08:00:00", "2023-05-02 08:00:00", "2023-05-02 11:00:00", "2023-05-04 09:00:00", "2023-05-05 10:00:00"} {
		snaps = append(snaps, PolicySnapshot{ID: fmt.Sprintf("a%d", i+1), Time: mustTime(t, s), Complete: true})
	}
	var kept []string
	for _, d := range ApplyPolicy(snaps, Policy{Daily: 4}) {
		if d.Keep {
			kept = append(kept, d.ID)
		}
	}
	if want := []string{"a1", "a3", "a4", "a5"}; !reflect.DeepEqual(kept, want) {
		t.Errorf("kept %v, want %v", kept, want)
	}
}

// TestApplyPolicyPartialAndNewest: partial snapshots are not judged by
// the rules: forgotten once a later complete one exists, kept otherwise;
// the newest snapshot is kept whatever the rules say; each decision names
// its reasons.
func TestApplyPolicyPartialAndNewest(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 11, d, 2, 0, 0, 0, time.UTC) }
	tests := []struct {
		name     string
		complete []bool
		policy   Policy
		want     []bool
		reasons  []string
	}{
		{"partial before complete goes", []bool{true, false, true}, Policy{Last: 10},
			[]bool{true, false, true}, []string{"last", "partial, a later complete snapshot exists", "last, newest snapshot"}},
		{"partial after the last complete stays", []bool{true, true, false, false}, Policy{Last: 1},
			[]bool{false, true, true, true}, []string{"no rule keeps it", "last", "partial, no complete snapshot after it", "newest snapshot"}},
		{"newest kept though no rule does", []bool{true, true, true}, Policy{Within: Duration{Hours: 1}},
			[]bool{false, false, true}, []string{"no rule keeps it", "no rule keeps it", "within 1h, newest snapshot"}},
		{"daily keeps one per day", []bool{true, true, true}, Policy{Daily: 1},
			[]bool{false, false, true}, []string{"no rule keeps it", "no rule keeps it", "daily, newest snapshot"}},
		{"empty policy keeps all", []bool{true, false, true}, Policy{},
			[]bool{true, true, true}, []string{"policy is empty", "policy is empty", "policy is empty"}},
		{"only partials", []bool{false, false}, Policy{Last: 1},
			[]bool{true, true}, []string{"partial, no complete snapshot after it", "newest snapshot"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var snaps []PolicySnapshot
			for i, c := range tc.complete {
				tm := day(3)
				if tc.name != "daily keeps one per day" {
					tm = day(1 + i)
				} else {
					tm = tm.Add(time.Duration(i) * time.Minute)
				}
				snaps = append(snaps, PolicySnapshot{ID: fmt.Sprint(i), Time: tm, Complete: c})
			}
			ds := ApplyPolicy(snaps, tc.policy)
			for i, d := range ds {
				if d.Keep != tc.want[i] || strings.Join(d.Reasons, ", ") != tc.reasons[i] {
					t.Errorf("snapshot %d: keep %v (%s), want %v (%s)", i, d.Keep, strings.Join(d.Reasons, ", "), tc.want[i], tc.reasons[i])
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want Duration
		bad  bool
	}{
		{"90d", Duration{Days: 90}, false},
		{"1y5m7d2h", Duration{1, 5, 7, 2}, false},
		{"2h", Duration{Hours: 2}, false},
		{"", Duration{}, true},
		{"5", Duration{}, true},
		{"d", Duration{}, true},
		{"3w", Duration{}, true},
		{"-3d", Duration{}, true},
	}
	for _, tc := range tests {
		got, err := ParseDuration(tc.in)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, error %v", tc.in, got, err, tc.want, tc.bad)
		}
	}
}
