package report

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

func sample() *Report {
	start := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	end := start.Add(90 * time.Second)
	return &Report{
		Started: start, Finished: &end,
		Accounts: []Account{
			{Name: "alice", Source: "imaps://alice@mail.example.com:993", Archive: "/b/alice", Status: StatusComplete, Snapshot: "1a2b3c4d",
				Added: 12, Gone: 1, FlagChanges: 3, BytesStored: 34567, DurationS: 12.5, Finished: start.Add(20 * time.Second),
				SnapshotsForgotten: 2, BytesFreed: 4096,
				Quota: []formats.Quota{{Root: "User quota", Resource: "STORAGE", Used: 120, Limit: 10240}}},
			{Name: "bob", Source: "imaps://bob@mail.example.com:993", Archive: "/b/bob", Status: StatusFailed,
				Error: "authentication failed for bob", DurationS: 0.2, Finished: start.Add(time.Second)},
			{Name: `we"ird\name`, Source: "pop3s://x@h:995", Archive: "/b/w", Status: StatusPartial, Snapshot: "5e6f7a8b", Finished: start.Add(80 * time.Second)},
			{Name: "dave", Source: "imaps://dave@h:993", Archive: "/b/dave", Status: StatusFailed, Snapshot: "9c0d1e2f", Added: 1,
				Error: "retention: forget: lock archive: denied", RetentionError: "forget: lock archive: denied", Finished: start.Add(85 * time.Second)},
		},
	}
}

// TestJSONFields: the report's keys are the ones monitoring relies on
// (issue 14), present for every account.
func TestJSONFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "report.json")
	if err := WriteJSON(path, sample()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"started", "finished", "accounts"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("report has no %q", k)
		}
	}
	want := []string{"archive", "added", "bytes_freed", "bytes_stored", "duration_s", "error", "flag_changes", "gone", "name", "quota", "retention_error", "snapshot", "snapshots_forgotten", "source", "status"}
	sort.Strings(want)
	for _, a := range doc["accounts"].([]any) {
		var keys []string
		for k := range a.(map[string]any) {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if strings.Join(keys, " ") != strings.Join(want, " ") {
			t.Errorf("account keys %v, want %v", keys, want)
		}
	}
	q := doc["accounts"].([]any)[0].(map[string]any)["quota"].([]any)[0].(map[string]any)
	if q["resource"] != "STORAGE" || q["used"] != 120.0 || q["limit"] != 10240.0 || q["root"] != "User quota" {
		t.Errorf("quota = %v", q)
	}
	if doc["accounts"].([]any)[1].(map[string]any)["quota"] != nil {
		t.Errorf("an account without quota has %v, want null", doc["accounts"].([]any)[1].(map[string]any)["quota"])
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("the directory holds %d files after an atomic write, want 1", len(entries))
	}
}

// sampleLine is one sample of the text exposition format.
var sampleLine = regexp.MustCompile(`^([a-z_]+)(\{[a-z_]+="(?:[^"\\]|\\.)*"(?:,[a-z_]+="(?:[^"\\]|\\.)*")*\})? (-?[0-9.e+]+)$`)

// checkExposition checks the text format: HELP and TYPE before each
// family's samples, each series once.
func checkExposition(t *testing.T, text string) {
	t.Helper()
	typed := map[string]bool{}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			typed[strings.Fields(f)[0]] = true
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("not a sample line: %q", line)
			continue
		}
		if !typed[m[1]] {
			t.Errorf("sample before its TYPE: %q", line)
		}
		if seen[m[1]+m[2]] {
			t.Errorf("series twice: %q", line)
		}
		seen[m[1]+m[2]] = true
	}
}

func TestMetrics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailvault.prom")
	// An earlier run: bob succeeded then, carol is not in this run.
	old := "# TYPE mailvault_last_success_timestamp_seconds gauge\n" +
		"mailvault_last_success_timestamp_seconds{account=\"bob\"} 1.7e+09\n" +
		"mailvault_last_success_timestamp_seconds{account=\"carol\"} 1.6e+09\n" +
		"mailvault_last_success_timestamp_seconds{account=\"alice\"} 1.5e+09\n"
	if err := os.WriteFile(path, []byte(old), 0o644); err != nil {
		t.Fatal(err)
	}
	r := sample()
	if err := WriteMetrics(path, r); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	text := string(data)
	checkExposition(t, text)
	for _, want := range []string{
		"mailvault_last_success_timestamp_seconds{account=\"alice\"} 1796094020\n", // this run's end for alice
		"mailvault_last_success_timestamp_seconds{account=\"bob\"} 1700000000\n",   // kept: bob failed now
		"mailvault_last_success_timestamp_seconds{account=\"carol\"} 1600000000\n", // kept: not in this run
		"mailvault_last_run_status{account=\"bob\",status=\"failed\"} 1\n",
		"mailvault_last_run_status{account=\"bob\",status=\"complete\"} 0\n",
		"mailvault_last_run_status{account=\"we\\\"ird\\\\name\",status=\"partial\"} 1\n",
		"mailvault_last_run_bytes_stored{account=\"alice\"} 34567\n",
		"mailvault_last_run_duration_seconds{account=\"alice\"} 12.5\n",
		"mailvault_quota_used{account=\"alice\",root=\"User quota\",resource=\"STORAGE\"} 120\n",
		"mailvault_quota_limit{account=\"alice\",root=\"User quota\",resource=\"STORAGE\"} 10240\n",
		"mailvault_last_run_snapshots_forgotten{account=\"alice\"} 2\n",
		"mailvault_last_run_bytes_freed{account=\"alice\"} 4096\n",
		"mailvault_last_run_retention_failed{account=\"alice\"} 0\n",
		"mailvault_last_run_retention_failed{account=\"dave\"} 1\n",
		"mailvault_last_run_status{account=\"dave\",status=\"failed\"} 1\n",
		"mailvault_fleet_accounts{status=\"failed\"} 2\n",
		"mailvault_fleet_last_run_duration_seconds 90\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q:\n%s", want, text)
		}
	}
	// The escaped name reads back as itself.
	if got := previousSuccess(path); len(got) != 3 {
		t.Errorf("previousSuccess() = %v", got)
	}
	r.Accounts[2].Status = StatusComplete
	if err := WriteMetrics(path, r); err != nil {
		t.Fatal(err)
	}
	if got := previousSuccess(path); got[`we"ird\name`] == 0 {
		t.Errorf("previousSuccess() = %v, want the escaped name back", got)
	}
}
