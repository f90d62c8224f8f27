package compattest

import (
	"fmt"
	"os"
	"path/filepath"
)

// popa3d prepares popa3d, inetd-style: socat listens on 127.0.0.1 and runs
// one popa3d per connection (popa3d's own standalone mode binds 0.0.0.0).
// popa3d's paths are compiled in (spool /var/mail, chroot /var/lib/popa3d)
// and it authenticates through PAM ("other", pam_unix): the namespace gets
// the spool on /var/mail, s.Dir/varlib on /var/lib and the namespaced
// passwd (plus the system user popa3d).
func (s *Server) popa3d(root string, port int) (launchSpec, error) {
	d := s.Dir
	s.maildrop = "mbox"
	if err := s.mkPasswd("popa3d"); err != nil {
		return launchSpec{}, err
	}
	if err := s.mkHomes(); err != nil {
		return launchSpec{}, err
	}
	_, mailGID, err := lookupID("mail")
	if err != nil {
		return launchSpec{}, err
	}
	if err := s.mkSpool(filepath.Join(d, "spool"), 0o2775, mailGID, 0o660); err != nil {
		return launchSpec{}, err
	}
	if err := os.MkdirAll(filepath.Join(d, "varlib", "popa3d"), 0o755); err != nil {
		return launchSpec{}, err
	}
	s.POP3Addr = addr(port)
	return launchSpec{
		mounts: append(s.passwdMounts(), [2]string{filepath.Join(d, "spool"), "/var/mail"}, [2]string{filepath.Join(d, "varlib"), "/var/lib"}),
		procs:  []proc{socat(port, filepath.Join(root, "usr/sbin/popa3d"))},
	}, nil
}

// solid prepares Solid POP3, inetd-style under socat like popa3d, with a
// configuration file of its own (-f): the mail drop is s.Dir/spool/USER, a
// Maildir (SolidMaildir) or an mbox file (SolidMbox). It authenticates
// through PAM against the namespaced passwd (plus the system user spop3d)
// and insists on /var/lib/solid-pop3d/bulletins (s.Dir/varlib on
// /var/lib).
func (s *Server) solid(root string, port int) (launchSpec, error) {
	d := s.Dir
	s.maildrop = "maildir"
	dropType := "maildir"
	if s.Kind == SolidMbox {
		s.maildrop, dropType = "mbox", "mailbox"
	}
	if err := s.mkPasswd("spop3d"); err != nil {
		return launchSpec{}, err
	}
	if err := s.mkHomes(); err != nil {
		return launchSpec{}, err
	}
	_, mailGID, err := lookupID("mail")
	if err != nil {
		return launchSpec{}, err
	}
	if err := s.mkSpool(filepath.Join(d, "spool"), 0o2775, mailGID, 0o660); err != nil {
		return launchSpec{}, err
	}
	if err := os.MkdirAll(filepath.Join(d, "varlib", "solid-pop3d", "bulletins"), 0o755); err != nil {
		return launchSpec{}, err
	}
	conf := fmt.Sprintf("/* compattest */\n<Global>\n\tMailDropName\t\"%s/spool/%%s\"\n\tMailDropType\t%s\n\tUserOverride\tno\n\tAllowAPOP\tno\n\tLogStatistics\tno\n</Global>\n", d, dropType)
	if err := s.writeFiles(map[string]string{"spop3d.conf": conf}); err != nil {
		return launchSpec{}, err
	}
	s.POP3Addr = addr(port)
	return launchSpec{
		mounts: append(s.passwdMounts(), [2]string{filepath.Join(d, "varlib"), "/var/lib"}),
		procs:  []proc{socat(port, filepath.Join(root, "usr/sbin/solid-pop3d")+" -f "+filepath.Join(d, "spop3d.conf"))},
	}, nil
}

// socat runs command once per connection on 127.0.0.1:port, with the
// connection as its standard input and output.
func socat(port int, command string) proc {
	return proc{name: "socat", argv: []string{
		"/usr/bin/socat", "-d", "-lu",
		fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork,backlog=32", port),
		"EXEC:" + command + ",nofork",
	}}
}
