package compattest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// RootDir is where the conflicting server packages are downloaded and
// unpacked: $MAILVAULT_COMPAT_ROOT, or /tmp/mailvault-compat. It can be
// kept between runs (a CI cache); a wiped one costs a download.
func RootDir() string {
	if d := os.Getenv("MAILVAULT_COMPAT_ROOT"); d != "" {
		return d
	}
	return "/tmp/mailvault-compat"
}

// packageRoot makes sure that pkgs are unpacked under RootDir()/root and
// returns that directory. Test processes of several packages may run at
// once: a lock file serialises them.
func packageRoot(pkgs []string) (string, error) {
	base := RootDir()
	root := filepath.Join(base, "root")
	debs := filepath.Join(base, "debs")
	stamps := filepath.Join(base, "stamps")
	for _, d := range []string{root, debs, stamps} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", fmt.Errorf("package root: %w", err)
		}
	}
	// The servers run as their own users and must reach their binaries.
	if err := os.Chmod(base, 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(filepath.Join(base, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", fmt.Errorf("package root: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("package root: lock: %w", err)
	}
	for _, p := range pkgs {
		stamp := filepath.Join(stamps, p)
		if _, err := os.Stat(stamp); err == nil {
			continue
		}
		deb, err := download(debs, p)
		if err != nil {
			return "", err
		}
		if err := run("", "dpkg-deb", "-x", deb, root); err != nil {
			return "", err
		}
		if err := os.WriteFile(stamp, []byte(filepath.Base(deb)+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	return root, nil
}

// download returns the .deb of pkg in dir, fetching it with apt-get
// download when it is not there yet.
func download(dir, pkg string) (string, error) {
	find := func() string {
		m, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
		if len(m) > 0 {
			return m[0]
		}
		return ""
	}
	if f := find(); f != "" {
		return f, nil
	}
	tmp, err := os.MkdirTemp(dir, "dl")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	// apt-get downloads as the _apt user when it can reach the directory.
	_ = os.Chmod(tmp, 0o777)
	cmd := exec.Command("apt-get", "download", "-q", pkg)
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("apt-get download %s: %w: %s (run apt-get update first?)", pkg, err, lastLine(string(out)))
	}
	m, _ := filepath.Glob(filepath.Join(tmp, pkg+"_*.deb"))
	if len(m) == 0 {
		return "", fmt.Errorf("apt-get download %s: no .deb file: %s", pkg, lastLine(string(out)))
	}
	dst := filepath.Join(dir, filepath.Base(m[0]))
	if err := os.Rename(m[0], dst); err != nil {
		return "", err
	}
	return dst, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
