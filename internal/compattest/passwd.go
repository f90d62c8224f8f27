package compattest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Namespaced users: uid 61001 and up in group 61000, with the SHA-512
// crypt hash of Password in the passwd field itself (pam_unix and
// Mailutils' "generic" check take it from there), home s.Dir/home/USER.
const (
	nsGID      = 61000
	nsFirstUID = 61001
	nsSysUID   = 61090
)

// mkPasswd writes s.Dir/etc/passwd and s.Dir/etc/group, copies of the real
// ones plus the test users and the system users a daemon insists on, to
// be bind-mounted over /etc/passwd and /etc/group in the server's mount
// namespace. Real entries with the same names or ids are left out of the
// copies.
func (s *Server) mkPasswd(system ...string) error {
	hash, err := cryptSHA512()
	if err != nil {
		return err
	}
	passwd, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return err
	}
	group, err := os.ReadFile("/etc/group")
	if err != nil {
		return err
	}
	taken := map[string]bool{}
	for _, u := range append(append([]string{}, Users...), system...) {
		taken[u] = true
	}
	var pb, gb strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(string(passwd)), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 4 || taken[f[0]] || strings.HasPrefix(f[2], "610") || f[3] == fmt.Sprint(nsGID) {
			continue
		}
		pb.WriteString(line + "\n")
	}
	for _, line := range strings.Split(strings.TrimSpace(string(group)), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 3 || f[2] == fmt.Sprint(nsGID) || f[0] == "mvtest" {
			continue
		}
		gb.WriteString(line + "\n")
	}
	fmt.Fprintf(&gb, "mvtest:x:%d:\n", nsGID)
	s.uids, s.gid = map[string]int{}, nsGID
	for i, u := range Users {
		uid := nsFirstUID + i
		fmt.Fprintf(&pb, "%s:%s:%d:%d:compattest user:%s:/usr/sbin/nologin\n", u, hash, uid, nsGID, filepath.Join(s.Dir, "home", u))
		s.uids[u] = uid
	}
	for i, u := range system {
		fmt.Fprintf(&pb, "%s:x:%d:%d:compattest system user:/nonexistent:/usr/sbin/nologin\n", u, nsSysUID+i, nsGID)
	}
	if err := os.MkdirAll(filepath.Join(s.Dir, "etc"), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "etc", "passwd"), []byte(pb.String()), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(s.Dir, "etc", "group"), []byte(gb.String()), 0o644)
}

// passwdMounts are the bind mounts of the namespaced passwd and group.
func (s *Server) passwdMounts() [][2]string {
	return [][2]string{{filepath.Join(s.Dir, "etc", "passwd"), "/etc/passwd"}, {filepath.Join(s.Dir, "etc", "group"), "/etc/group"}}
}

// mkHomes creates each user's home (mode 0700, owned by the user).
func (s *Server) mkHomes() error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "home"), 0o755); err != nil {
		return err
	}
	for _, u := range Users {
		h := filepath.Join(s.Dir, "home", u)
		if err := os.Mkdir(h, 0o700); err != nil {
			return err
		}
		if err := os.Chown(h, s.uids[u], s.gid); err != nil {
			return err
		}
	}
	return nil
}

// mkSpool creates the mail drop of each user under dir: an empty mbox
// file or a Maildir, owned by the user and group gid.
func (s *Server) mkSpool(dir string, dirMode os.FileMode, gid int, fileMode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := os.Chown(dir, 0, gid); err != nil {
		return err
	}
	if err := os.Chmod(dir, dirMode); err != nil {
		return err
	}
	s.spool = dir
	for _, u := range Users {
		p := filepath.Join(dir, u)
		if s.maildrop == "maildir" {
			for _, sub := range []string{"cur", "new", "tmp"} {
				if err := os.MkdirAll(filepath.Join(p, sub), 0o700); err != nil {
					return err
				}
			}
			if err := chownR(p, s.uids[u], s.gid); err != nil {
				return err
			}
			if err := os.Chmod(p, 0o700); err != nil {
				return err
			}
			s.owners[u] = [2]int{s.uids[u], s.gid}
			continue
		}
		if err := os.WriteFile(p, nil, fileMode); err != nil {
			return err
		}
		if err := os.Chown(p, s.uids[u], gid); err != nil {
			return err
		}
		if err := os.Chmod(p, fileMode); err != nil {
			return err
		}
		s.owners[u] = [2]int{s.uids[u], gid}
	}
	return nil
}
