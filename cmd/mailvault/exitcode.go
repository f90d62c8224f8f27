package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/config"
	"github.com/mailvault/mailvault/internal/localstore"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/mailurl"
	"github.com/mailvault/mailvault/internal/secret"
	"github.com/mailvault/mailvault/restore"
)

// Exit codes. Every command's help lists them; README.md documents them.
const (
	exitOK          = 0
	exitError       = 1   // anything not listed below
	exitUsage       = 2   // bad flags, arguments or URL; a password on the command line; another source's archive
	exitPartial     = 3   // snapshot committed, but some folders or messages were not backed up (or a daily limit stopped the run); a fleet run with accounts not complete
	exitAuth        = 4   // the server refused the login
	exitLocked      = 5   // another run holds the archive's lock
	exitArchive     = 6   // archive damaged, unreadable, or written by a newer mailvault; verify found problems
	exitConnect     = 7   // cannot connect: unreachable host, closed before the greeting, TLS failure, no answer in time
	exitStorage     = 8   // cannot write the archive or the restore target: read-only, no permission, disk full, over quota
	exitInUse       = 9   // the POP3 mailbox is in use by another client
	exitInterrupted = 130 // interrupted by SIGINT/SIGTERM; what was fetched is committed as partial
)

const exitCodesHelp = `EXIT CODES:
   0    success
   1    error
   2    usage error (bad flags, arguments or URL; a password on the command line;
        an archive of another mailbox without --allow-source-change)
   3    partial: the snapshot was committed but some folders or messages failed,
        or a daily limit (--max-bytes-per-day, the server's) stopped the run:
        the next run continues; with --config: some accounts are partial or
        failed (see the report)
   4    authentication failed
   5    archive (or local restore target) locked by another run
   6    archive damaged, unreadable or written by a newer mailvault
   7    cannot connect (unreachable host, connection closed before the greeting,
        TLS handshake or verification failure, timeout)
   8    cannot write the archive (read-only, no permission, disk full) or the
        restore target (over quota)
   9    the mailbox is in use by another client (POP3); retry later
   130  interrupted`

// usageError marks command-line mistakes.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitCode maps an error to the process exit code: the one place that does.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, backup.ErrInterrupted), errors.Is(err, context.Canceled):
		return exitInterrupted
	case errors.Is(err, errLocalSource):
		return exitError
	case errors.As(err, &ue), errors.Is(err, mailurl.ErrPasswordInURL), errors.Is(err, mailurl.ErrInvalid), errors.Is(err, errPasswordFlag),
		errors.Is(err, errSourceChanged):
		return exitUsage
	case errors.Is(err, mailconn.ErrInUse):
		return exitInUse
	case errors.Is(err, backup.ErrStorage), errors.Is(err, restore.ErrOverQuota), errors.Is(err, formats.ErrUnwritable):
		return exitStorage
	case errors.Is(err, restore.ErrSelection), errors.Is(err, formats.ErrStorageMismatch), errors.Is(err, localstore.ErrUTF8Tree):
		return exitUsage
	case errors.Is(err, config.ErrInvalid):
		return exitUsage
	case errors.Is(err, backup.ErrPartial), errors.Is(err, restore.ErrPartial), errors.Is(err, backup.ErrDailyLimit), errors.Is(err, errFleetIncomplete), errors.Is(err, errCheckFailed):
		return exitPartial
	case errors.Is(err, mailconn.ErrAuth), errors.Is(err, secret.ErrNoPassword), errors.Is(err, secret.ErrFailed):
		return exitAuth
	case errors.Is(err, formats.ErrLocked), errors.Is(err, localstore.ErrTargetInUse):
		return exitLocked
	case errors.Is(err, formats.ErrCorrupt), errors.Is(err, formats.ErrNewerVersion),
		errors.Is(err, formats.ErrNotArchive), errors.Is(err, errVerifyFailed):
		return exitArchive
	case errors.Is(err, mailconn.ErrUnreachable), errors.Is(err, mailconn.ErrTLS),
		errors.Is(err, mailconn.ErrTimeout), errors.Is(err, mailconn.ErrNoTLS), errors.Is(err, mailconn.ErrTLSHandshake):
		return exitConnect
	}
	return exitError
}

// oneLine renders an error as the single line printed to stderr, without
// the package prefixes of sentinel errors.
func oneLine(err error) string {
	s := err.Error()
	for _, p := range []string{"formats: ", "backup: ", "restore: ", "localstore: "} {
		s = strings.ReplaceAll(s, p, "")
	}
	s = strings.ReplaceAll(s, "\n", " ")
	return "mailvault: " + s
}
