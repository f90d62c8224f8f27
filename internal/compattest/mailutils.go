package compattest

import (
	"fmt"
	"os"
	"path/filepath"
)

// mailutils prepares GNU Mailutils imap4d and pop3d (installed from
// Debian, they do not conflict with Dovecot) with configuration files of
// their own (--config-file: no site configuration) in daemon mode in the
// foreground. They authenticate against the passwd database, so the
// namespaced /etc/passwd holds the users. Storage is mbox: the inbox is
// s.Dir/spool/USER (shared by IMAP and POP3), other folders are mbox files
// under s.Dir/home/USER.
func (s *Server) mailutils(ports []int) (launchSpec, error) {
	d := s.Dir
	s.maildrop = "mbox"
	if err := s.mkPasswd(); err != nil {
		return launchSpec{}, err
	}
	if err := s.mkHomes(); err != nil {
		return launchSpec{}, err
	}
	// Like /var/mail: users create lock files in the spool directory.
	if err := s.mkSpool(filepath.Join(d, "spool"), 0o1777, nsGID, 0o600); err != nil {
		return launchSpec{}, err
	}
	if err := os.MkdirAll(filepath.Join(d, "run", "lock"), 0o755); err != nil {
		return launchSpec{}, err
	}
	if err := os.Chmod(filepath.Join(d, "run", "lock"), 0o1777); err != nil {
		return launchSpec{}, err
	}
	cert, key := filepath.Join(d, "ssl", "cert.pem"), filepath.Join(d, "ssl", "key.pem")
	if err := writeCert(cert, key); err != nil {
		return launchSpec{}, err
	}
	s.CAFile = cert
	common := fmt.Sprintf(`# compattest: private instance
logging { syslog no; print-severity yes; severity info; };
auth { authorization system; authentication generic; };
mailbox { mail-spool "%[1]s/spool"; mailbox-type mbox; };
tcp-wrappers { enable no; };
tls-file-checks { key-file none; cert-file none; ca-file none; };
tls { ssl-certificate-file "%[2]s"; ssl-key-file "%[3]s"; };
mandatory-locking { lock-directory "%[1]s/run/lock"; };
mode daemon;
foreground yes;
max-children 40;
`, d, cert, key)
	imap := common + fmt.Sprintf(`pidfile "%[1]s/run/imap4d.pid";
login-disabled no;
namespace personal { prefix "" { directory "%[1]s/home/$user"; delimiter "/"; mailbox-type mbox; }; };
server 127.0.0.1:%[2]d { tls-mode stls; };
`, d, ports[0])
	pop := common + fmt.Sprintf(`pidfile "%[1]s/run/pop3d.pid";
server 127.0.0.1:%[2]d { tls-mode stls; };
`, d, ports[1])
	if err := s.writeFiles(map[string]string{"imap4d.conf": imap, "pop3d.conf": pop}); err != nil {
		return launchSpec{}, err
	}
	for _, c := range []struct{ bin, conf string }{{"/usr/sbin/imap4d", "imap4d.conf"}, {"/usr/sbin/pop3d", "pop3d.conf"}} {
		if err := run("", c.bin, "--config-file="+filepath.Join(d, c.conf), "--config-lint"); err != nil {
			return launchSpec{}, err
		}
	}
	s.IMAPAddr, s.POP3Addr = addr(ports[0]), addr(ports[1])
	return launchSpec{
		mounts: s.passwdMounts(),
		procs: []proc{
			{name: "imap4d", argv: []string{"/usr/sbin/imap4d", "--config-file=" + filepath.Join(d, "imap4d.conf")}},
			{name: "pop3d", argv: []string{"/usr/sbin/pop3d", "--config-file=" + filepath.Join(d, "pop3d.conf")}},
		},
	}, nil
}
