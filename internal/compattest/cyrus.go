package compattest

import (
	"fmt"
	"os"
	"path/filepath"
)

// cyrus prepares a Cyrus instance: imapd.conf and cyrus.conf of its own,
// databases, SASL users (sasldb) and mail under s.Dir, run by the
// cyrus-common master in the foreground as the Debian "cyrus" user. Cyrus
// logs only to syslog, which this machine does not have: there are no
// Cyrus logs.
func (s *Server) cyrus(root string, ports []int) (launchSpec, error) {
	d := s.Dir
	for _, sub := range []string{"lib", "spool", "run/proc", "run/lock", "run/socket", "sieve"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o750); err != nil {
			return launchSpec{}, err
		}
	}
	cert, key := filepath.Join(d, "ssl", "cert.pem"), filepath.Join(d, "ssl", "key.pem")
	if err := writeCert(cert, key); err != nil {
		return launchSpec{}, err
	}
	s.CAFile = cert
	alt := "yes"
	if s.Kind == CyrusDebian {
		alt = "no"
	}
	conf := fmt.Sprintf(`# compattest: private Cyrus instance
configdirectory: %[1]s/lib
proc_path: %[1]s/run/proc
mboxname_lockpath: %[1]s/run/lock
defaultpartition: default
partition-default: %[1]s/spool
sievedir: %[1]s/sieve
lmtpsocket: %[1]s/run/socket/lmtp
idlesocket: %[1]s/run/socket/idle
notifysocket: %[1]s/run/socket/notify
servername: localhost
admins: cyrus
altnamespace: %[2]s
unixhierarchysep: %[2]s
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/lib/sasldb2
sasl_mech_list: PLAIN LOGIN
autocreate_quota: 0
popminpoll: 0
umask: 077
hashimapspool: false
specialusealways: yes
imapidresponse: yes
tls_server_cert: %[3]s
tls_server_key: %[4]s
tls_sessions_db_path: %[1]s/lib/tls_sessions.db
syslog_prefix: compattest
popuseimapflags: no
`, d, alt, cert, key)
	bin := filepath.Join(root, "usr/lib/cyrus/bin")
	master := fmt.Sprintf(`# compattest
START {
  recover cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C %[1]s/imapd.conf -r"
}
SERVICES {
  imap cmd="%[2]s/imapd -C %[1]s/imapd.conf" listen="127.0.0.1:%[3]d" prefork=0 maxchild=50
  pop3 cmd="%[2]s/pop3d -C %[1]s/imapd.conf" listen="127.0.0.1:%[4]d" prefork=0 maxchild=50
}
EVENTS {
  checkpoint cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C %[1]s/imapd.conf -c" period=30
}
`, d, bin, ports[0], ports[1])
	if err := s.writeFiles(map[string]string{"imapd.conf": conf, "cyrus.conf": master}); err != nil {
		return launchSpec{}, err
	}
	for _, u := range Users {
		if err := run(Password, "/usr/sbin/saslpasswd2", "-p", "-c", "-f", filepath.Join(d, "lib", "sasldb2"), "-u", "localhost", u); err != nil {
			return launchSpec{}, err
		}
	}
	uid, _, err := lookupID("cyrus")
	if err != nil {
		return launchSpec{}, err
	}
	// Debian's cyrus user is in group mail.
	_, gid, err := lookupID("mail")
	if err != nil {
		return launchSpec{}, err
	}
	for _, sub := range []string{"lib", "spool", "run", "sieve", "ssl"} {
		if err := chownR(filepath.Join(d, sub), uid, gid); err != nil {
			return launchSpec{}, err
		}
	}
	s.IMAPAddr, s.POP3Addr = addr(ports[0]), addr(ports[1])
	return launchSpec{procs: []proc{{
		name: "master",
		argv: []string{"/usr/lib/cyrus/bin/master", "-C", filepath.Join(d, "imapd.conf"), "-M", filepath.Join(d, "cyrus.conf"), "-p", filepath.Join(d, "run", "master.pid")},
	}}}, nil
}
