package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/mailurl"
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

SOURCE is imaps://USER@HOST[:PORT] (implicit TLS, port 993) or
imap://USER@HOST[:PORT] (STARTTLS required, port 143).
The password comes from --password-file, $MAILVAULT_PASSWORD,
--password-command, or a prompt when stdin is a terminal; never from the
URL or a flag value.

EXAMPLES:
   MAILVAULT_PASSWORD=... mailvault backup imaps://alice@mail.example.com ./vault
   mailvault backup imaps://alice@mail.example.com ./vault --password-file ~/.mailvault-pw
   mailvault backup --password-command 'pass show mail/alice' imap://alice@host ./vault -q

` + exitCodesHelp,
		Flags: append(connFlags(), logFlags()...),
		Action: func(c *cli.Context) error {
			a, err := args(c, 2, 2, "SOURCE ARCHIVE")
			if err != nil {
				return err
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			cfg, src, err := imapConfig(c, a[0], theAccount, log.Warn)
			if err != nil {
				return err
			}
			return runBackup(c.Context, backupOptions{
				archive: a[1], source: src, imap: cfg, quiet: c.Bool("quiet"), log: log,
			}, envOf(c))
		},
	}
}

// imapConfig turns the source URL and flags into a connection config,
// asking for the password last.
func imapConfig(c *cli.Context, raw string, acc account, warn func(string, ...any)) (mailconn.Config, *mailurl.URL, error) {
	p := acc.prefix
	if c.IsSet(p + "password") {
		return mailconn.Config{}, nil, errPasswordFlag
	}
	u, err := mailurl.Parse(raw)
	if err != nil {
		return mailconn.Config{}, nil, err
	}
	cfg := mailconn.Config{
		Addr:       u.Addr(),
		User:       u.User,
		CAFile:     c.String(p + "ca-file"),
		SkipVerify: c.Bool(p + "tls-skip-verify"),
		Timeout:    c.Duration("timeout"),
	}
	switch {
	case u.Scheme == "imaps":
		cfg.Security = mailconn.ImplicitTLS
	case c.Bool(p + "insecure-plaintext"):
		cfg.Security = mailconn.Plaintext
		if !isLoopback(u.Host) {
			warn("--insecure-plaintext: the password and all mail cross the network unencrypted")
		}
	default:
		cfg.Security = mailconn.StartTLS
	}
	if u.Scheme == "imaps" && c.Bool(p+"insecure-plaintext") {
		return cfg, nil, usagef("--insecure-plaintext goes with imap://, not imaps://")
	}
	if cfg.SkipVerify {
		warn("--tls-skip-verify: the server's certificate is not checked; anyone on the path can read the password")
	}
	if cfg.Timeout <= 0 {
		return cfg, nil, usagef("--timeout must be positive")
	}
	e := envOf(c)
	pw, err := secret.Sources{
		File: c.String(p + "password-file"), Command: c.String(p + "password-command"), EnvVar: acc.env,
		Getenv: e.getenv, Stdin: e.stdin, Prompt: e.stderr,
		Warn: func(s string) { warn(s) },
	}.Get(c.Context, u.String())
	if err != nil {
		return cfg, nil, err
	}
	cfg.Password = pw
	return cfg, u, nil
}

type backupOptions struct {
	archive string
	source  *mailurl.URL
	imap    mailconn.Config
	quiet   bool
	log     *slog.Logger
}

func runBackup(ctx context.Context, o backupOptions, e *env) error {
	a, err := formats.OpenOrCreate(o.archive)
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := backup.Run(ctx, a, backup.Options{
		Source:   o.source.String(),
		Protocol: "imap",
		Log:      o.log,
		Hook:     failpoint.Hook(),
		Dial: func(ctx context.Context) (backup.Source, error) {
			s, err := imapstore.Dial(ctx, o.imap)
			if err != nil {
				return nil, err
			}
			s.Warn = func(m string) { o.log.Warn(m) }
			return s, nil
		},
	})
	if res != nil && res.Snapshot != nil && !o.quiet {
		s := res.Snapshot
		fmt.Fprintf(e.stdout, "snapshot %s %s: %d folders (%d examined), %d messages added (%d stored, %s), %d gone, %d flag changes, %s\n",
			s.ID, s.Status, res.Folders, res.Selected, res.Added, res.Stored, humanBytes(res.Bytes),
			res.Gone, res.FlagChanges, time.Since(start).Round(10*time.Millisecond))
	}
	return err
}

// isLoopback reports whether host names this machine.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
