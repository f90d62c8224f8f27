package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/localsrc"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/mailurl"
	"github.com/mailvault/mailvault/internal/pop3store"
	"github.com/mailvault/mailvault/internal/secret"
)

// account names the flags and environment variable of one account: the
// only one of backup and restore, or the source and the target of migrate.
type account struct{ prefix, env, what string }

var (
	theAccount    = account{"", secret.EnvVar, ""}
	targetAccount = account{"target-", "MAILVAULT_TARGET_PASSWORD", "target "}
)

// accountFlags are the flags that say how to log in to a server.
func accountFlags(acc account) []cli.Flag {
	p := acc.prefix
	return []cli.Flag{
		&cli.StringFlag{Name: p + "password-file", Usage: "read the " + acc.what + "password from the first line of `FILE` (chmod 600)"},
		&cli.StringFlag{Name: p + "password-command", Usage: "run `CMD` with sh -c and use the first line it prints as the " + acc.what + "password"},
		&cli.StringFlag{Name: p + "password", Hidden: true},
		&cli.StringFlag{Name: p + "ca-file", Usage: "also trust the CA or self-signed certificate in `PEM` for the " + acc.what + "server"},
		&cli.BoolFlag{Name: p + "tls-skip-verify", Usage: "do not verify the " + acc.what + "server certificate (insecure; warns)"},
		&cli.BoolFlag{Name: p + "insecure-plaintext", Usage: "with imap://, log in to the " + acc.what + "server without TLS (loopback tests only)"},
	}
}

// connFlags are the flags of a command that talks to one server.
func connFlags() []cli.Flag {
	return append(accountFlags(theAccount), timeoutFlag())
}

func timeoutFlag() cli.Flag {
	return &cli.DurationFlag{Name: "timeout", Value: 2 * time.Minute, Usage: "fail a connection that makes no progress for this long"}
}

func backupCommand() *cli.Command {
	return &cli.Command{
		Name:      "backup",
		Usage:     "snapshot every folder of an account into an archive",
		ArgsUsage: "SOURCE ARCHIVE",
		Description: `Backs up every folder of SOURCE into ARCHIVE (created if missing) and commits
one snapshot. Only messages not yet in the archive are downloaded; flag
changes and deletions on the server are recorded; deleted mail stays in the
archive. The server is only read: folders are EXAMINEd and bodies fetched
with BODY.PEEK, so no message is marked as read.

SOURCE is imaps://USER@HOST[:PORT] (implicit TLS, port 993),
imap://USER@HOST[:PORT] (STARTTLS required, port 143), pop3s://USER@HOST
(port 995) or pop3://USER@HOST (STLS required, port 110), or a bare
USER@HOST: then IMAPS, IMAP, POP3S and POP3 are tried in turn and the one
used is said and recorded (--protocol forces one). SOURCE may also be local
mail on this computer: mbox:PATH (an mbox file, or a Thunderbird "Local
Folders" tree: Inbox, Sent, Folder.sbd/Sub; .msf files ignored) or
maildir:PATH (Maildir++ or nested Maildir folders).

A new archive stores mail as zstd-compressed mbox segments, or with
--format maildir as one Maildir per folder (--compress zstd or none); the
format is fixed when the archive is created.

POP3 gives only the inbox, stored as folder INBOX and recognised by UIDL.
mailvault never deletes mail from a POP3 server unless asked with
--delete-after DAYS, and then only messages already committed to the archive
and first archived at least DAYS ago; the deletion takes effect only when
the session ends normally, after the archive is safe.
The password comes from --password-file, $MAILVAULT_PASSWORD,
--password-command, or a prompt when stdin is a terminal; never from the
URL or a flag value.

EXAMPLES:
   MAILVAULT_PASSWORD=... mailvault backup imaps://alice@mail.example.com ./vault
   mailvault backup imaps://alice@mail.example.com ./vault --password-file ~/.mailvault-pw
   mailvault backup --password-command 'pass show mail/alice' imap://alice@host ./vault -q
   mailvault backup pop3s://alice@mail.example.com ./vault --delete-after 30
   mailvault backup alice@mail.example.com ./vault        # detects IMAP or POP3
   mailvault backup imaps://alice@mail.example.com ./vault --format maildir --compress zstd
   mailvault backup mbox:"$HOME/.thunderbird/abc.default/Mail/Local Folders" ./vault
   mailvault backup maildir:~/Maildir ./vault

` + exitCodesHelp,
		Flags: append(append(connFlags(),
			&cli.StringFlag{Name: "protocol", Usage: "force the protocol of a bare USER@HOST: imaps, imap, pop3s or pop3"},
			&cli.IntFlag{Name: "delete-after", Value: -1, Usage: "POP3 only: delete from the server messages archived at least `DAYS` ago (0: right after the backup)"},
			&cli.BoolFlag{Name: "pop3-allow-retr", Usage: "POP3 only: fetch with RETR where the server has no TOP or its TOP disagrees with LIST (RETR marks messages as read on many servers)"},
		), append(append(storageFlags(), connectionsFlag(), checkpointFlag()), logFlags()...)...),
		Action: func(c *cli.Context) error {
			a, err := args(c, 2, 2, "SOURCE ARCHIVE")
			if err != nil {
				return err
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			if kind, path, ok := localSource(a[0]); ok {
				if c.Int("delete-after") >= 0 {
					return usagef("--delete-after is for POP3 accounts")
				}
				storage, err := storageOptions(c)
				if err != nil {
					return err
				}
				return runLocalBackup(c.Context, kind, path, a[1], storage, log, c.Bool("quiet"), envOf(c))
			}
			u, err := mailurl.Parse(a[0])
			if err != nil {
				return err
			}
			if p := c.String("protocol"); p != "" {
				if _, ok := mailurl.DefaultPorts[p]; !ok {
					return usagef("--protocol must be imaps, imap, pop3s or pop3")
				}
				if u.Scheme != "" && u.Scheme != p {
					return usagef("--protocol %s contradicts the URL's %s://", p, u.Scheme)
				}
				if u.Scheme == "" {
					u = u.WithScheme(p, u.Port != 0)
				}
			}
			storage, conns, err := backupTuning(c)
			if err != nil {
				return err
			}
			o := backupOptions{archive: a[1], storage: storage, connections: conns, checkpoint: c.Duration("checkpoint"), quiet: c.Bool("quiet"), log: log}
			if days := c.Int("delete-after"); days >= 0 {
				o.delete, o.deleteAfter = true, time.Duration(days)*24*time.Hour
			}
			cfg, err := accountConfig(c, u, theAccount, log.Warn)
			if err != nil {
				return err
			}
			if u.Scheme == "" {
				if u, cfg, err = detect(c, u, cfg, envOf(c)); err != nil {
					return err
				}
			}
			if o.delete && !strings.HasPrefix(u.Scheme, "pop3") {
				return usagef("--delete-after is for POP3 accounts: an IMAP backup never changes the server")
			}
			if o.allowRetr = c.Bool("pop3-allow-retr"); o.allowRetr && !strings.HasPrefix(u.Scheme, "pop3") {
				return usagef("--pop3-allow-retr is for POP3 accounts")
			}
			o.source, o.conn = u, cfg
			return runBackup(c.Context, o, envOf(c))
		},
	}
}

// imapConfig parses an account URL and builds its connection config,
// asking for the password last.
func imapConfig(c *cli.Context, raw string, acc account, warn func(string, ...any)) (mailconn.Config, *mailurl.URL, error) {
	if c.IsSet(acc.prefix + "password") {
		return mailconn.Config{}, nil, errPasswordFlag
	}
	u, err := mailurl.Parse(raw)
	if err != nil {
		return mailconn.Config{}, nil, err
	}
	if u.Scheme == "" {
		return mailconn.Config{}, nil, usagef("%q: name the protocol (imaps://, imap://, pop3s://, pop3://)", raw)
	}
	cfg, err := accountConfig(c, u, acc, warn)
	return cfg, u, err
}

// accountConfig builds the connection config of an account URL (the
// scheme may still be unknown, for detection) and gets its password.
func accountConfig(c *cli.Context, u *mailurl.URL, acc account, warn func(string, ...any)) (mailconn.Config, error) {
	p := acc.prefix
	if c.IsSet(p + "password") {
		return mailconn.Config{}, errPasswordFlag
	}
	cfg := mailconn.Config{
		Addr:       u.Addr(),
		User:       u.User,
		CAFile:     c.String(p + "ca-file"),
		SkipVerify: c.Bool(p + "tls-skip-verify"),
		Timeout:    c.Duration("timeout"),
	}
	cfg.Security = security(c, u.Scheme, acc)
	if (u.Scheme == "imaps" || u.Scheme == "pop3s") && c.Bool(p+"insecure-plaintext") {
		return cfg, usagef("--insecure-plaintext goes with imap:// or pop3://, not %s://", u.Scheme)
	}
	if cfg.Security == mailconn.Plaintext && !isLoopback(u.Host) {
		warn("--insecure-plaintext: the password and all mail cross the network unencrypted")
	}
	if cfg.SkipVerify {
		warn("--tls-skip-verify: the server's certificate is not checked; anyone on the path can read the password")
	}
	if cfg.Timeout <= 0 {
		return cfg, usagef("--timeout must be positive")
	}
	e := envOf(c)
	pw, err := secret.Sources{
		File: c.String(p + "password-file"), Command: c.String(p + "password-command"), EnvVar: acc.env,
		Getenv: e.getenv, Stdin: e.stdin, Prompt: e.stderr,
		Warn: func(s string) { warn(s) },
	}.Get(c.Context, u.String())
	if err != nil {
		return cfg, err
	}
	cfg.Password = pw
	return cfg, nil
}

// security is how a scheme connects: implicit TLS for imaps and pop3s,
// STARTTLS (required) for imap and pop3 unless --insecure-plaintext.
func security(c *cli.Context, scheme string, acc account) mailconn.Security {
	switch {
	case scheme == "imaps" || scheme == "pop3s":
		return mailconn.ImplicitTLS
	case c.Bool(acc.prefix + "insecure-plaintext"):
		return mailconn.Plaintext
	}
	return mailconn.StartTLS
}

type backupOptions struct {
	archive     string
	source      *mailurl.URL // scheme set (detected if need be)
	conn        mailconn.Config
	storage     *formats.StorageOptions // nil: the archive's, or the default
	connections int
	checkpoint  time.Duration
	quiet       bool
	log         *slog.Logger
	delete      bool
	deleteAfter time.Duration
	allowRetr   bool // POP3: RETR where TOP is missing or wrong
}

func runBackup(ctx context.Context, o backupOptions, e *env) error {
	a, err := formats.OpenOrCreateWith(o.archive, o.storage)
	if err != nil {
		return err
	}
	start := time.Now()
	policy := &pop3store.Policy{AllowRetr: o.allowRetr}
	protocol, dial := sourceDialer(o.source.Scheme, o.conn, o.log, policy)
	if protocol != "imap" {
		// POP3 has one folder, and servers allow one session at a time.
		o.connections = 1
	}
	res, err := backup.Run(ctx, a, backup.Options{
		Source:      o.source.String(),
		Protocol:    protocol,
		Log:         o.log,
		Hook:        failpoint.Hook(),
		Dial:        dial,
		Delete:      o.delete,
		DeleteAfter: o.deleteAfter,
		Connections: o.connections,
		Checkpoint:  o.checkpoint,
	})
	if n := policy.Mismatches(); n > 0 {
		o.log.Warn(fmt.Sprintf("%d messages were archived as the server's TOP returned them, with another size than LIST gives; --pop3-allow-retr fetches such messages with RETR", n))
	}
	if res != nil && res.Snapshot != nil && !o.quiet {
		printBackupSummary(e, res, start)
		if o.delete {
			fmt.Fprintf(e.stdout, "deleted %d messages from the server (archived at least %s ago)\n", res.Deleted, o.deleteAfter)
		}
	}
	return err
}

func printBackupSummary(e *env, res *backup.Result, start time.Time) {
	s := res.Snapshot
	fmt.Fprintf(e.stdout, "snapshot %s %s: %d folders (%d examined), %d messages added (%d stored, %s), %d gone, %d flag changes, %s\n",
		s.ID, s.Status, res.Folders, res.Selected, res.Added, res.Stored, humanBytes(res.Bytes),
		res.Gone, res.FlagChanges, time.Since(start).Round(10*time.Millisecond))
}

// defaultConnections is how many IMAP connections a backup uses when not
// told: chosen by measurement (see the README's benchmark section), and
// well under the per-user limits of common servers (Dovecot 10, Gmail 15).
const defaultConnections = 4

// maxConnections caps --connections.
const maxConnections = 16

// defaultCheckpoint is how often a long backup commits what it has.
const defaultCheckpoint = 5 * time.Minute

func checkpointFlag() cli.Flag {
	return &cli.DurationFlag{Name: "checkpoint", Value: defaultCheckpoint, Usage: "during a long backup, commit what is stored at most this often, so that an interrupted run is resumed by the next one (0: only at the end)"}
}

func connectionsFlag() cli.Flag {
	return &cli.IntFlag{Name: "connections", Value: defaultConnections, Usage: fmt.Sprintf("work on up to `N` folders at once, each over its own IMAP connection (1-%d)", maxConnections)}
}

// connections returns the --connections value, checked.
func connections(c *cli.Context) (int, error) {
	n := c.Int("connections")
	if n < 1 || n > maxConnections {
		return 0, usagef("--connections must be between 1 and %d", maxConnections)
	}
	return n, nil
}

// backupTuning returns the storage options and connection count asked
// for.
func backupTuning(c *cli.Context) (*formats.StorageOptions, int, error) {
	storage, err := storageOptions(c)
	if err != nil {
		return nil, 0, err
	}
	conns, err := connections(c)
	return storage, conns, err
}

// storageFlags choose the storage of a new archive.
func storageFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "format", Usage: "store a new archive's messages as `mbox` (zstd-compressed mboxrd segments, the default) or maildir (a Maildir per folder, one file per message); fixed when the archive is created"},
		&cli.StringFlag{Name: "compress", Usage: "compress a maildir archive's message files with `zstd` (the default; each file one zstd frame) or none"},
	}
}

// storageOptions returns the storage flags given, or nil.
func storageOptions(c *cli.Context) (*formats.StorageOptions, error) {
	if !c.IsSet("format") && !c.IsSet("compress") {
		return nil, nil
	}
	o := &formats.StorageOptions{Storage: c.String("format"), Compression: c.String("compress")}
	if err := o.CheckFields(); err != nil {
		return nil, usagef("%v", err)
	}
	return o, nil
}

// localSource recognises mbox:PATH and maildir:PATH.
func localSource(raw string) (kind, path string, ok bool) {
	for _, k := range []string{"mbox", "maildir"} {
		if rest, found := strings.CutPrefix(raw, k+":"); found && !strings.HasPrefix(rest, "//") {
			return k, expandHome(rest), true
		}
	}
	return "", "", false
}

// runLocalBackup backs up a local mbox file or tree, or a Maildir.
func runLocalBackup(ctx context.Context, kind, path, archive string, storage *formats.StorageOptions, log *slog.Logger, quiet bool, e *env) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	open := func() (backup.Source, error) {
		if kind == "mbox" {
			return localsrc.NewMbox(abs)
		}
		return localsrc.NewMaildir(abs)
	}
	if _, err := open(); err != nil {
		return fmt.Errorf("%w: %w", errLocalSource, err)
	}
	a, err := formats.OpenOrCreateWith(archive, storage)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := backup.Run(ctx, a, backup.Options{
		Source: kind + ":" + abs, Protocol: kind, Log: log, Hook: failpoint.Hook(),
		Dial: func(context.Context) (backup.Source, error) { return open() },
	})
	if res != nil && res.Snapshot != nil && !quiet {
		printBackupSummary(e, res, start)
	}
	return err
}

// errLocalSource marks a local source that cannot be read.
var errLocalSource = errors.New("cannot read the local mail")

// sourceDialer is the scheme table of backup sources.
func sourceDialer(scheme string, cfg mailconn.Config, log *slog.Logger, policy *pop3store.Policy) (string, backup.Dialer) {
	warn := func(m string) { log.Warn(m) }
	if scheme == "pop3" || scheme == "pop3s" {
		return "pop3", func(ctx context.Context) (backup.Source, error) {
			s, err := pop3store.Dial(ctx, cfg, policy)
			if err != nil {
				return nil, err
			}
			s.Warn = warn
			return s, nil
		}
	}
	return "imap", func(ctx context.Context) (backup.Source, error) {
		s, err := imapstore.Dial(ctx, cfg)
		if err != nil {
			return nil, err
		}
		s.Warn = warn
		return s, nil
	}
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
