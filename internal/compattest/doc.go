// Package compattest starts private, throw-away instances of the IMAP and
// POP3 servers Debian ships besides Dovecot, for compatibility tests:
// Cyrus IMAP/POP3 3.6 (upstream and Debian namespace), Courier-IMAP 5.0 and
// Courier POP3, GNU Mailutils 3.15 imap4d and pop3d, popa3d 1.0 and Solid
// POP3 0.15 (Maildir or mbox drop).
//
// Each Start writes its own configuration, users and mail store under a
// short temporary directory, runs the server on random 127.0.0.1 ports and
// stops it when the test ends. Every server runs inside its own PID and
// mount namespace (unshare --fork --pid --kill-child --mount): killing the
// namespace's first process ends every server process, per-connection
// children included, and servers with compiled-in paths (Courier's
// authdaemon in /etc/courier and /run/courier, passwd users of Mailutils,
// popa3d and Solid POP3, /var/mail, /var/lib) see files of the test's
// directory bind-mounted over those paths. Nothing global is changed.
//
// The Cyrus, Courier, popa3d and Solid POP3 server packages conflict with
// dovecot-imapd and dovecot-pop3d (they all provide imap-server or
// pop3-server), so they are never installed: they are fetched with
// "apt-get download" and unpacked with "dpkg-deb -x" into a private root,
// $MAILVAULT_COMPAT_ROOT or /tmp/mailvault-compat, once; later runs reuse
// it. The packages they depend on do not conflict and must be installed
// with apt-get (see AptPackages).
//
// Tests need root (servers switch users, and namespaces need it). When a
// requirement is missing, Start skips the test with the reason, unless
// CI=true, in which case the test fails (internal/testenv decides).
package compattest
