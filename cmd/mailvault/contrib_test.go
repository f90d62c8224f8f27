package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const contribDir = "../../contrib/systemd"

var units = []string{"mailvault-backup.service", "mailvault-backup.timer"}

// TestSystemdUnitsVerify runs systemd-analyze verify on the units (with
// ExecStart pointing at an executable that exists here): no error and no
// warning about them.
func TestSystemdUnitsVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed; TestSystemdUnitsParse checks the units without it")
	}
	dir := t.TempDir()
	for _, u := range units {
		data, err := os.ReadFile(filepath.Join(contribDir, u))
		if err != nil {
			t.Fatal(err)
		}
		self, _ := os.Executable()
		text := strings.ReplaceAll(string(data), "/usr/local/bin/mailvault", self)
		if err := os.WriteFile(filepath.Join(dir, u), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(analyze, "verify", "./"+units[0], "./"+units[1])
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		for _, u := range units {
			if strings.Contains(line, u) {
				t.Errorf("systemd-analyze verify: %s", line)
			}
		}
	}
	if err != nil {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// unitFile is a parsed unit: section -> key -> values (a key may repeat).
type unitFile map[string]map[string][]string

func parseUnit(t *testing.T, path string) unitFile {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unitFile{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" || strings.HasSuffix(line, "\\") {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	return u
}

func (u unitFile) get(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// TestSystemdUnitsParse checks the units without systemd: only known
// sections and keys, values of the right form, and the hardening the
// recipe promises.
func TestSystemdUnitsParse(t *testing.T) {
	known := map[string][]string{
		"Unit":    {"Description", "Documentation", "Wants", "After"},
		"Install": {"WantedBy"},
		"Timer":   {"OnCalendar", "RandomizedDelaySec", "Persistent"},
		"Service": {"Type", "ExecStart", "User", "Group", "UMask", "ProtectSystem", "ReadWritePaths", "StateDirectory",
			"ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges", "CapabilityBoundingSet", "AmbientCapabilities",
			"ProtectKernelTunables", "ProtectKernelModules", "ProtectKernelLogs", "ProtectControlGroups", "ProtectClock",
			"ProtectHostname", "RestrictAddressFamilies", "RestrictNamespaces", "RestrictRealtime", "RestrictSUIDSGID",
			"LockPersonality", "MemoryDenyWriteExecute", "SystemCallArchitectures", "SystemCallFilter",
			"Nice", "IOSchedulingClass", "CPUSchedulingPolicy", "TimeoutStartSec"},
	}
	svc := parseUnit(t, filepath.Join(contribDir, units[0]))
	timer := parseUnit(t, filepath.Join(contribDir, units[1]))
	for _, u := range []unitFile{svc, timer} {
		for section, keys := range u {
			for k := range keys {
				found := false
				for _, kk := range known[section] {
					found = found || kk == k
				}
				if !found {
					t.Errorf("unknown key [%s] %s", section, k)
				}
			}
		}
	}
	yes := regexp.MustCompile(`^(yes|no|true|false)$`)
	for _, k := range []string{"ProtectHome", "PrivateTmp", "PrivateDevices", "NoNewPrivileges", "ProtectKernelTunables", "RestrictNamespaces", "LockPersonality", "MemoryDenyWriteExecute"} {
		if v := svc.get("Service", k); v != "" && !yes.MatchString(v) {
			t.Errorf("%s=%q is not a boolean", k, v)
		}
	}
	if v := svc.get("Service", "ProtectSystem"); v != "strict" {
		t.Errorf("ProtectSystem=%q, want strict", v)
	}
	if v := svc.get("Service", "ReadWritePaths"); !strings.HasPrefix(v, "/") {
		t.Errorf("ReadWritePaths=%q, want the archive root", v)
	}
	if svc.get("Service", "User") == "" && svc.get("Service", "DynamicUser") != "yes" {
		t.Error("the service runs as root: set User= or DynamicUser=")
	}
	if n, err := strconv.Atoi(svc.get("Service", "Nice")); err != nil || n < 1 || n > 19 {
		t.Errorf("Nice=%q, want 1..19", svc.get("Service", "Nice"))
	}
	switch svc.get("Service", "IOSchedulingClass") {
	case "idle", "best-effort", "2", "3":
	default:
		t.Errorf("IOSchedulingClass=%q", svc.get("Service", "IOSchedulingClass"))
	}
	if svc.get("Service", "Type") != "oneshot" {
		t.Error("Type is not oneshot")
	}
	if timer.get("Timer", "OnCalendar") == "" || timer.get("Install", "WantedBy") != "timers.target" {
		t.Errorf("timer: OnCalendar %q, WantedBy %q", timer.get("Timer", "OnCalendar"), timer.get("Install", "WantedBy"))
	}
}

// TestScheduledCommandLines: the ExecStart of the service and the cron
// line of docs/CONFIG.md use the full path and flags mailvault has (run
// here against a missing file, they fail on the file, not on a flag).
func TestScheduledCommandLines(t *testing.T) {
	svc := parseUnit(t, filepath.Join(contribDir, units[0]))
	doc, err := os.ReadFile("../../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	cron := regexp.MustCompile(`(?m)^[0-9*]+ [0-9*]+ \* \* \* +(\S+ .*)$`).FindStringSubmatch(string(doc))
	if cron == nil {
		t.Fatal("docs/CONFIG.md has no cron line")
	}
	for _, line := range []string{svc.get("Service", "ExecStart"), cron[1]} {
		args := strings.Fields(line)
		if args[0] != "/usr/local/bin/mailvault" {
			t.Errorf("%q does not start with the full path /usr/local/bin/mailvault", line)
		}
		code, _, stderr := runCLI(t, nil, args[1:]...)
		if code != exitUsage || !strings.Contains(stderr, "/etc/mailvault/mailvault.toml") || strings.Contains(stderr, "flag") {
			t.Errorf("%q: exit %d, %q; want an error about the missing file only", line, code, stderr)
		}
	}
}
