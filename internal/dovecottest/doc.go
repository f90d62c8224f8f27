// Package dovecottest starts a private, throw-away Dovecot IMAP/POP3 server
// for tests.
//
// Each call to Start writes its own dovecot.conf, passwd file and self-signed
// TLS certificate under a short temporary directory in /tmp, puts the
// Maildir root on tmpfs (/dev/shm) when available (much faster than disk),
// starts the Dovecot master in the foreground on random 127.0.0.1 ports and
// stops it again when the test ends. Nothing of the system's Dovecot
// installation is used besides the binaries: the packaged service may stay
// stopped.
//
// When running as root (as CI does) the login processes run as dovenull, the
// auth process as dovecot and the mail processes as Debian's mail user
// (uid 8, gid 8). When running as an ordinary user every Dovecot process runs
// as that user.
//
// If Dovecot is not installed, Start skips the test with the reason, unless
// CI=true, in which case the test fails (internal/testenv decides).
package dovecottest
