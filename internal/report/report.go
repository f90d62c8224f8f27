// Package report writes what a fleet run did, for monitoring: a JSON
// report (--report) and a Prometheus textfile-collector file (--metrics).
// Both are written atomically (a temporary file, fsynced, renamed), so a
// reader sees the old file or the new one, never half of one.
package report

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// Account statuses.
const (
	StatusComplete = "complete" // a complete snapshot was committed
	StatusPartial  = "partial"  // a snapshot was committed, but something was not backed up
	StatusFailed   = "failed"   // nothing was committed, or the retention after the backup failed
)

// Report is the JSON report of a fleet run. Finished is nil while the run
// goes on: the report is rewritten as each account finishes.
type Report struct {
	Started  time.Time  `json:"started"`
	Finished *time.Time `json:"finished"`
	Accounts []Account  `json:"accounts"`
}

// Account is one account's outcome. Every field is always present (zero
// values when they do not apply) so that monitoring reads one shape.
type Account struct {
	Name    string `json:"name"`
	Source  string `json:"source"` // URL without secret
	Archive string `json:"archive"`
	Status  string `json:"status"`
	// Snapshot is the id of the last snapshot the run committed, "" when
	// none.
	Snapshot    string  `json:"snapshot"`
	Added       int     `json:"added"`
	Gone        int     `json:"gone"`
	FlagChanges int     `json:"flag_changes"`
	BytesStored int64   `json:"bytes_stored"`
	DurationS   float64 `json:"duration_s"`
	Error       string  `json:"error"`
	// Quota is GETQUOTAROOT "INBOX" as the server answered it; null when
	// the server has no QUOTA or nothing was read.
	Quota []formats.Quota `json:"quota"`
	// The retention after the backup (the account's keep_* policy, then
	// prune when asked): snapshots forgotten, bytes prune freed (measured
	// on disk), and why it failed ("" when it succeeded or did not run).
	SnapshotsForgotten int    `json:"snapshots_forgotten"`
	BytesFreed         int64  `json:"bytes_freed"`
	RetentionError     string `json:"retention_error"`
	// Finished is when the account's run ended (for the metrics).
	Finished time.Time `json:"-"`
}

// Counts returns how many accounts have each status.
func (r *Report) Counts() map[string]int {
	out := map[string]int{StatusComplete: 0, StatusPartial: 0, StatusFailed: 0}
	for _, a := range r.Accounts {
		out[a.Status]++
	}
	return out
}

// WriteJSON writes r to path atomically.
func WriteJSON(path string, r *Report) error {
	return writeAtomic(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(r)
	})
}

// writeAtomic writes a new file at path through fill: a temporary file in
// the same directory, fsynced, renamed over path, then the directory
// fsynced. The file is readable by others (monitoring runs as another
// user); it holds no secret.
func writeAtomic(path string, fill func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriter(f)
	if err := fill(bw); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Metric names of the textfile output.
const (
	metricLastSuccess = "mailvault_last_success_timestamp_seconds"
)

// WriteMetrics writes r in the Prometheus text exposition format to path
// atomically, for node_exporter's textfile collector. An account's last
// success time is this run's end when it completed, else the time the
// previous file at path gave it (accounts this run did not reach, or did
// not complete, keep theirs), so an alert on its age fires only when
// backups really stopped succeeding.
func WriteMetrics(path string, r *Report) error {
	prev := previousSuccess(path)
	success := map[string]float64{}
	for name, v := range prev {
		success[name] = v
	}
	for _, a := range r.Accounts {
		if a.Status == StatusComplete {
			success[a.Name] = unix(a.Finished)
		}
	}
	return writeAtomic(path, func(w io.Writer) error {
		writeMetrics(w, r, success)
		return nil
	})
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func writeMetrics(w io.Writer, r *Report, success map[string]float64) {
	family := func(name, typ, help string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

	family(metricLastSuccess, "gauge", "Unix time at which the last complete backup of the account ended.")
	names := make([]string, 0, len(success))
	for n := range success {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "%s{account=\"%s\"} %s\n", metricLastSuccess, escape(n), num(success[n]))
	}

	family("mailvault_last_run_status", "gauge", "Status of the account's last run: 1 for the status it had (complete, partial or failed), 0 for the others.")
	for _, a := range r.Accounts {
		for _, s := range []string{StatusComplete, StatusPartial, StatusFailed} {
			v := 0
			if a.Status == s {
				v = 1
			}
			fmt.Fprintf(w, "mailvault_last_run_status{account=\"%s\",status=\"%s\"} %d\n", escape(a.Name), s, v)
		}
	}
	perAccount := []struct {
		name, help string
		value      func(Account) float64
	}{
		{"mailvault_last_run_timestamp_seconds", "Unix time at which the account's last run ended.", func(a Account) float64 { return unix(a.Finished) }},
		{"mailvault_last_run_duration_seconds", "Duration of the account's last run.", func(a Account) float64 { return a.DurationS }},
		{"mailvault_last_run_bytes_stored", "Bytes of message data the account's last run stored.", func(a Account) float64 { return float64(a.BytesStored) }},
		{"mailvault_last_run_messages_added", "Messages the account's last run added to its archive.", func(a Account) float64 { return float64(a.Added) }},
		{"mailvault_last_run_messages_gone", "Messages the account's last run found gone from the server.", func(a Account) float64 { return float64(a.Gone) }},
		{"mailvault_last_run_snapshots_forgotten", "Snapshots the retention after the account's last run forgot.", func(a Account) float64 { return float64(a.SnapshotsForgotten) }},
		{"mailvault_last_run_bytes_freed", "Bytes the retention (prune) after the account's last run freed.", func(a Account) float64 { return float64(a.BytesFreed) }},
		{"mailvault_last_run_retention_failed", "1 when the retention (forget, prune) after the account's last run failed, else 0.", func(a Account) float64 {
			if a.RetentionError != "" {
				return 1
			}
			return 0
		}},
	}
	for _, m := range perAccount {
		family(m.name, "gauge", m.help)
		for _, a := range r.Accounts {
			fmt.Fprintf(w, "%s{account=\"%s\"} %s\n", m.name, escape(a.Name), num(m.value(a)))
		}
	}
	quota := false
	for _, a := range r.Accounts {
		quota = quota || len(a.Quota) > 0
	}
	if quota {
		for _, m := range []struct {
			name, help string
			value      func(formats.Quota) int64
		}{
			{"mailvault_quota_used", "Quota usage the server reported (GETQUOTAROOT INBOX): STORAGE in KiB, MESSAGE in messages.", func(q formats.Quota) int64 { return q.Used }},
			{"mailvault_quota_limit", "Quota limit the server reported (GETQUOTAROOT INBOX): STORAGE in KiB, MESSAGE in messages.", func(q formats.Quota) int64 { return q.Limit }},
		} {
			family(m.name, "gauge", m.help)
			for _, a := range r.Accounts {
				for _, q := range a.Quota {
					fmt.Fprintf(w, "%s{account=\"%s\",root=\"%s\",resource=\"%s\"} %d\n", m.name, escape(a.Name), escape(q.Root), escape(q.Resource), m.value(q))
				}
			}
		}
	}
	family("mailvault_fleet_accounts", "gauge", "Accounts of the last fleet run, by status.")
	counts := r.Counts()
	for _, s := range []string{StatusComplete, StatusPartial, StatusFailed} {
		fmt.Fprintf(w, "mailvault_fleet_accounts{status=\"%s\"} %d\n", s, counts[s])
	}
	if r.Finished != nil {
		family("mailvault_fleet_last_run_timestamp_seconds", "gauge", "Unix time at which the last fleet run ended.")
		fmt.Fprintf(w, "mailvault_fleet_last_run_timestamp_seconds %s\n", num(unix(*r.Finished)))
		family("mailvault_fleet_last_run_duration_seconds", "gauge", "Duration of the last fleet run.")
		fmt.Fprintf(w, "mailvault_fleet_last_run_duration_seconds %s\n", num(r.Finished.Sub(r.Started).Seconds()))
	}
}

// escape escapes a label value (backslash, double quote, line feed).
func escape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`).Replace(s)
}

// previousSuccess reads the last success times of the file at path, if
// any: lines "mailvault_last_success_timestamp_seconds{account="NAME"} V".
func previousSuccess(path string) map[string]float64 {
	out := map[string]float64{}
	data, err := os.ReadFile(path)
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(data), "\n") {
		rest, ok := strings.CutPrefix(line, metricLastSuccess+`{account="`)
		if !ok {
			continue
		}
		i := strings.LastIndex(rest, `"} `)
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(rest[i+3:]), 64)
		if err != nil {
			continue
		}
		out[unescape(rest[:i])] = v
	}
	return out
}

func unescape(s string) string {
	return strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n").Replace(s)
}
