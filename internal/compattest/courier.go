package compattest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// courier prepares Courier-IMAP and Courier POP3: couriertcpd running
// imaplogin/imapd and courierpop3login/courierpop3d, and authdaemond with
// an authlib userdb of its own. authdaemond reads /etc/courier and listens
// in /run/courier (compiled in): s.Dir/etc-courier and s.Dir/run-courier
// are bind-mounted there. Debian's /etc/courier/imapd etc. only become
// environment variables; they are given here directly (Debian's values,
// except IMAP_EMPTYTRASH, which would delete old mail from Trash at
// logout). Maildir++ in s.Dir/home/USER/Maildir, owned by "courier".
func (s *Server) courier(root string, ports []int) (launchSpec, error) {
	d := s.Dir
	cuid, cgid, err := lookupID("courier")
	if err != nil {
		return launchSpec{}, err
	}
	etc, runDir := filepath.Join(d, "etc-courier"), filepath.Join(d, "run-courier")
	for _, sub := range []string{"etc-courier/shared", "run-courier/authdaemon", "run", "home"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o755); err != nil {
			return launchSpec{}, err
		}
	}
	cert, key := filepath.Join(d, "ssl", "cert.pem"), filepath.Join(d, "ssl", "key.pem")
	if err := writeCert(cert, key); err != nil {
		return launchSpec{}, err
	}
	s.CAFile = cert
	both := filepath.Join(d, "ssl", "both.pem")
	if err := concat(both, 0o640, cert, key); err != nil {
		return launchSpec{}, err
	}
	if err := os.Chown(both, 0, cgid); err != nil {
		return launchSpec{}, err
	}
	dh := filepath.Join(etc, "dhparams.pem")
	if err := concat(dh, 0o640, "/etc/courier/dhparams.pem"); err != nil {
		// courier-base generates it at installation; without it
		// couriertls works with ECDHE only, which is enough here.
		_ = os.WriteFile(dh, nil, 0o640)
	}
	authrc := "authmodulelist=\"authuserdb\"\nauthmodulelistorig=\"authuserdb\"\ndaemons=3\nauthdaemonvar=/run/courier/authdaemon\nDEBUG_LOGIN=0\nDEFAULTOPTIONS=\"\"\nLOGGEROPTS=\"\"\n"
	if err := os.WriteFile(filepath.Join(etc, "authdaemonrc"), []byte(authrc), 0o640); err != nil {
		return launchSpec{}, err
	}
	hash, err := cryptSHA512()
	if err != nil {
		return launchSpec{}, err
	}
	var userdb strings.Builder
	for _, u := range Users {
		home := filepath.Join(d, "home", u)
		for _, sub := range []string{"Maildir/cur", "Maildir/new", "Maildir/tmp"} {
			if err := os.MkdirAll(filepath.Join(home, sub), 0o700); err != nil {
				return launchSpec{}, err
			}
		}
		if err := chownR(home, cuid, cgid); err != nil {
			return launchSpec{}, err
		}
		fmt.Fprintf(&userdb, "%s\tuid=%d|gid=%d|home=%s|mail=%s/Maildir|systempw=%s\n", u, cuid, cgid, home, home, hash)
		s.owners[u] = [2]int{cuid, cgid}
	}
	if err := os.WriteFile(filepath.Join(etc, "userdb"), []byte(userdb.String()), 0o600); err != nil {
		return launchSpec{}, err
	}
	if err := run("", "/usr/sbin/makeuserdb", "-f", filepath.Join(etc, "userdb")); err != nil {
		return launchSpec{}, err
	}
	for _, p := range []struct {
		path     string
		uid, gid int
		mode     os.FileMode
	}{
		{etc, 0, cgid, 0o750}, {filepath.Join(etc, "authdaemonrc"), 0, cgid, 0o640}, {dh, 0, cgid, 0o640},
		{runDir, 0, cgid, 0o775}, {filepath.Join(runDir, "authdaemon"), cuid, cgid, 0o750},
	} {
		if err := os.Chown(p.path, p.uid, p.gid); err != nil {
			return launchSpec{}, err
		}
		if err := os.Chmod(p.path, p.mode); err != nil {
			return launchSpec{}, err
		}
	}
	for _, f := range []string{"tlscache-imap", "tlscache-pop3"} {
		p := filepath.Join(d, "run", f)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			return launchSpec{}, err
		}
		if err := os.Chown(p, cuid, cgid); err != nil {
			return launchSpec{}, err
		}
	}
	tls := []string{
		"COURIERTLS=/usr/bin/couriertls",
		"TLS_CERTFILE=" + both,
		"TLS_DHPARAMS=/etc/courier/dhparams.pem",
		"TLS_TRUSTCERTS=/etc/ssl/certs/ca-certificates.crt",
		"TLS_VERIFYPEER=NONE",
		"TLS_CACHESIZE=524288",
		"MAILDIRPATH=Maildir",
	}
	caps := "IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
	imapEnv := append([]string{
		basePath,
		"IMAP_CAPABILITY=" + caps,
		"IMAP_CAPABILITY_TLS=" + caps + " AUTH=PLAIN",
		"IMAP_KEYWORDS=1", "IMAP_ACL=1", "IMAP_PROXY=0", "IMAP_IDLE_TIMEOUT=60",
		"IMAP_MAILBOX_SANITY_CHECK=1", "IMAP_DISABLETHREADSORT=0", "IMAP_CHECK_ALL_FOLDERS=0",
		"IMAP_OBSOLETE_CLIENT=0", "IMAP_UMASK=022", "IMAP_USELOCKS=1",
		"IMAP_SHAREDINDEXFILE=/etc/courier/shared/index", "IMAP_ENHANCEDIDLE=0",
		"IMAP_TRASHFOLDERNAME=Trash", "IMAP_EMPTYTRASH=", "IMAP_MOVE_EXPUNGE_TO_TRASH=0",
		"SENDMAIL=/usr/sbin/sendmail", "HEADERFROM=X-IMAP-Sender",
		"IMAP_STARTTLS=YES", "IMAP_TLS_REQUIRED=0",
		"TLS_CACHEFILE=" + filepath.Join(d, "run", "tlscache-imap"),
	}, tls...)
	popEnv := append([]string{
		basePath,
		"POP3AUTH=", "POP3AUTH_TLS=", "POP3_PROXY=0", "POP3_STARTTLS=YES", "POP3_TLS_REQUIRED=0",
		"TLS_CACHEFILE=" + filepath.Join(d, "run", "tlscache-pop3"),
		"MIME_UNICODE_MESSAGE_TYPE=message/global",
	}, tls...)
	authEnv := []string{basePath}
	for _, line := range strings.Split(strings.TrimSpace(authrc), "\n") {
		k, v, _ := strings.Cut(line, "=")
		authEnv = append(authEnv, k+"="+strings.Trim(v, `"`))
	}
	lib := filepath.Join(root, "usr/lib/courier/courier")
	tcpd := func(port int) []string {
		return []string{"/usr/sbin/couriertcpd", "-address=127.0.0.1", "-maxprocs=40", "-maxperip=40", "-nodnslookup", "-noidentlookup", fmt.Sprint(port)}
	}
	s.IMAPAddr, s.POP3Addr = addr(ports[0]), addr(ports[1])
	return launchSpec{
		mounts: [][2]string{{etc, "/etc/courier"}, {runDir, "/run/courier"}},
		procs: []proc{
			{name: "authdaemond", argv: []string{"/usr/lib/courier/courier-authlib/authdaemond"}, env: authEnv},
			{name: "imapd", argv: append(tcpd(ports[0]), filepath.Join(lib, "imaplogin"), filepath.Join(root, "usr/bin/imapd"), "Maildir"), env: imapEnv},
			{name: "pop3d", argv: append(tcpd(ports[1]), filepath.Join(lib, "courierpop3login"), filepath.Join(lib, "courierpop3d"), "Maildir"), env: popEnv},
		},
	}, nil
}

// concat writes the concatenation of files to dst.
func concat(dst string, mode os.FileMode, files ...string) error {
	var all []byte
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		all = append(all, b...)
	}
	return os.WriteFile(dst, all, mode)
}
