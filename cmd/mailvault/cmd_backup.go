package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
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
	return append([]cli.Flag{
		&cli.StringFlag{Name: p + "password-file", Usage: "read the " + acc.what + "password from the first line of `FILE` (chmod 600)"},
		&cli.StringFlag{Name: p + "password-command", Usage: "run `CMD` with sh -c and use the first line it prints as the " + acc.what + "password"},
		&cli.StringFlag{Name: p + "password", Hidden: true},
		&cli.StringFlag{Name: p + "ca-file", Usage: "also trust the CA or self-signed certificate in `PEM` for the " + acc.what + "server"},
		&cli.BoolFlag{Name: p + "tls-skip-verify", Usage: "do not verify the " + acc.what + "server certificate (insecure; warns)"},
		&cli.BoolFlag{Name: p + "insecure-plaintext", Usage: "with imap:// or pop3://, log in to the " + acc.what + "server without TLS; refused unless the host is this machine (127.0.0.0/8, ::1, localhost) or --" + p + plaintextAck + " is given too"},
		&cli.BoolFlag{Name: p + plaintextAck, Usage: "allow --" + p + "insecure-plaintext to a host that is not this machine: the password and all mail cross the network unencrypted"},
	}, loginFlags(acc)...)
}

// plaintextAck is the flag that allows --insecure-plaintext off loopback.
const plaintextAck = "i-know-this-sends-my-password-in-clear"

// allowSourceChangeFlag lets a run write to an archive of another mailbox.
func allowSourceChangeFlag() cli.Flag {
	return &cli.BoolFlag{Name: "allow-source-change", Usage: "back up into an archive recorded for another mailbox (the same mailbox moved to a new server or account name); the new source is recorded"}
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
URL or a flag value. An admin can log in with its own password and act as
the URL's user (--admin-user); Microsoft 365 and Outlook.com need OAuth2
(--oauth2-token-command, mailvault auth): see docs/OAUTH.md.
--insecure-plaintext (no TLS) is for a server on this
machine; to another host it is refused unless
--i-know-this-sends-my-password-in-clear is given too.

An archive belongs to one mailbox: its first run records the source
(scheme, host and user, or the path of local mail; never a secret) in
mailvault.json, and a run from another one is refused (exit 2) unless
--allow-source-change says it is the same mailbox on a new server. IMAP and
POP3 of the same user on the same host are the same mailbox. The archive
directory is created only once the source has answered (connected, logged
in, listed its folders): a first run that fails creates nothing.

Many accounts: --config FILE backs up the accounts of a configuration file
(docs/CONFIG.md) instead of SOURCE ARCHIVE, --parallel at once (default 4),
each into its own archive under its own lock, within each server's
max_connections. One account failing does not stop the others; one line
per account and a total are printed (unless -q), --report FILE gets a JSON
report and --metrics FILE Prometheus textfile metrics. The exit code is 0
when every account is complete, 3 when some are partial or failed, 2 when
the file is wrong (nothing connects then).

EXAMPLES:
   MAILVAULT_PASSWORD=... mailvault backup imaps://alice@mail.example.com ./vault
   mailvault backup imaps://alice@mail.example.com ./vault --password-file ~/.mailvault-pw
   mailvault backup --password-command 'pass show mail/alice' imap://alice@host ./vault -q
   mailvault backup pop3s://alice@mail.example.com ./vault --delete-after 30
   mailvault backup alice@mail.example.com ./vault        # detects IMAP or POP3
   mailvault backup imaps://alice@mail.example.com ./vault --format maildir --compress zstd
   mailvault backup mbox:"$HOME/.thunderbird/abc.default/Mail/Local Folders" ./vault
   mailvault backup maildir:~/Maildir ./vault
   mailvault backup --config /etc/mailvault/mailvault.toml --report report.json --metrics mailvault.prom
   mailvault backup --config mailvault.toml --account alice --account bob

` + exitCodesHelp,
		Flags: append(append(connFlags(),
			&cli.StringFlag{Name: "protocol", Usage: "force the protocol of a bare USER@HOST: imaps, imap, pop3s or pop3"},
			&cli.IntFlag{Name: "delete-after", Value: -1, Usage: "POP3 only: delete from the server messages archived at least `DAYS` ago (0: right after the backup)"},
			allowSourceChangeFlag(),
			&cli.BoolFlag{Name: "pop3-allow-retr", Usage: "POP3 only: fetch with RETR where the server has no TOP or its TOP disagrees with LIST (RETR marks messages as read on many servers)"},
		), append(append(append(append(storageFlags(), connectionsFlag(), checkpointFlag()), throttleFlags()...), logFlags()...), fleetFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.IsSet("config") {
				return fleetBackupAction(c)
			}
			if err := checkNoFleetFlags(c); err != nil {
				return err
			}
			a, err := args(c, 2, 2, "SOURCE ARCHIVE")
			if err != nil {
				return err
			}
			if progressWanted(c) {
				envOf(c).ui = newProgressUI(c.Context, envOf(c).stderr)
				defer envOf(c).ui.stop()
			}
			log, err := newLoggerTo(c, envOf(c).ui.writer(envOf(c).stderr))
			if err != nil {
				return err
			}
			if err := checkSecrets(c, theAccount); err != nil {
				return err
			}
			src, err := parseEndpoint(a[0], asSource)
			if err != nil {
				return err
			}
			u := src.url
			if p := c.String("protocol"); p != "" && u != nil {
				if _, ok := mailurl.DefaultPorts[p]; !ok {
					return usagef("--protocol must be imaps, imap, pop3s or pop3")
				}
				if u.Scheme != "" && u.Scheme != p {
					return usagef("--protocol %s contradicts the URL's %s://", p, u.Scheme)
				}
				if u.Scheme == "" {
					u = u.WithScheme(p, u.Port != 0)
					src.scheme = lookupScheme(p)
				}
			}
			if u != nil {
				if pu, _ := resolvePreset(u, log.Info); pu != u {
					u, src.scheme = pu, lookupScheme(pu.Scheme)
				}
			}
			if err := checkFlags(c, src.scheme, "", nil); err != nil {
				return err
			}
			storage, conns, err := backupTuning(c)
			if err != nil {
				return err
			}
			o := backupOptions{archive: a[1], storage: storage, connections: conns, checkpoint: c.Duration("checkpoint"),
				quiet: c.Bool("quiet"), log: log, allowSourceChange: c.Bool("allow-source-change")}
			if err := o.throttling(c); err != nil {
				return err
			}
			if src.scheme.local {
				o.local = src
				return runBackup(c.Context, o, envOf(c))
			}
			if days := c.Int("delete-after"); days >= 0 {
				o.delete, o.deleteAfter = true, time.Duration(days)*24*time.Hour
			}
			cfg, err := accountConfig(c, u, theAccount, log.Warn)
			if err != nil {
				return err
			}
			o.source, o.conn = u, cfg
			o.allowRetr = c.Bool("pop3-allow-retr")
			if u.Scheme == "" {
				o.detect = func() (*mailurl.URL, mailconn.Config, error) { return detect(c, u, cfg, envOf(c)) }
				// Once the protocol is known, the flags that depend on it
				// are checked again.
				o.recheck = func(s *scheme) error {
					return checkFlags(c, s, "", []string{"delete-after", "pop3-allow-retr", "connections"})
				}
			}
			return runBackup(c.Context, o, envOf(c))
		},
	}
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
		HintPrefix: p,
	}
	cfg.Security = security(c, u.Scheme, acc)
	if cfg.Timeout <= 0 {
		return cfg, usagef("--timeout must be positive")
	}
	if cfg.Security == mailconn.Plaintext {
		ctx, cancel := context.WithTimeout(c.Context, min(cfg.Timeout, detectTimeout))
		err := loopbackOnly(ctx, u.Host, net.DefaultResolver.LookupIPAddr)
		cancel()
		if err != nil {
			if !c.Bool(p + plaintextAck) {
				return cfg, usagef("--%sinsecure-plaintext is refused for %s: %v, and the password would cross the network unencrypted (add --%s%s if you must)", p, u.Host, err, p, plaintextAck)
			}
			warn("--" + p + "insecure-plaintext: the password and all mail cross the network unencrypted")
		}
	}
	if cfg.SkipVerify {
		warn("--tls-skip-verify: the server's certificate is not checked; anyone on the path can read the password")
	}
	a, err := accountAuth(c, u, acc, warn)
	if err != nil {
		return cfg, err
	}
	cfg.Auth = a
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
	archive string
	// local is the source when it is local mail (mbox:, maildir:);
	// otherwise source is.
	local  *endpoint
	source *mailurl.URL // scheme "" until detect runs
	// detect, for a bare USER@HOST, finds the protocol; it runs once the
	// archive has been checked. recheck then checks the flags against the
	// protocol found.
	detect            func() (*mailurl.URL, mailconn.Config, error)
	recheck           func(*scheme) error
	conn              mailconn.Config
	storage           *formats.StorageOptions // nil: the archive's, or the default
	connections       int
	checkpoint        time.Duration
	quiet             bool
	log               *slog.Logger
	delete            bool
	deleteAfter       time.Duration
	allowSourceChange bool
	allowRetr         bool // POP3: RETR where TOP is missing or wrong
	// maxBytesPerDay is --max-bytes-per-day when maxBytesSet; else the
	// provider's daily download limit applies, if it has one.
	maxBytesPerDay int64
	maxBytesSet    bool
	throttleWait   time.Duration
	exclude        []string // --exclude-folder patterns
}

// runBackup backs up a server or local mail: the one path of every
// source (the scheme table decided which flags it takes).
func runBackup(ctx context.Context, o backupOptions, e *env) error {
	if o.local != nil {
		abs, err := filepath.Abs(o.local.path)
		if err != nil {
			return err
		}
		id := formats.SourceIdentity{Scheme: o.local.scheme.name, Path: abs}
		a, err := prepareArchive(o.archive, o.storage, id, o.allowSourceChange)
		if err != nil {
			return err
		}
		// Local mail is read by one reader (the table refuses
		// --connections for it).
		return backupInto(ctx, a, o.archive, o.storage, id, localDialer(id.Scheme, abs), backup.Options{
			Source: id.Scheme + ":" + abs, Protocol: id.Scheme, Log: o.log, Hook: failpoint.Hook(),
			Connections: 1, Checkpoint: o.checkpoint, Exclude: o.exclude,
		}, o.quiet, e)
	}
	id := formats.SourceIdentity{Scheme: o.source.Scheme, Host: o.source.Host, User: o.source.User}
	a, err := prepareArchive(o.archive, o.storage, id, o.allowSourceChange)
	if err != nil {
		return err
	}
	if o.detect != nil {
		if o.source, o.conn, err = o.detect(); err != nil {
			return err
		}
		id.Scheme = o.source.Scheme
		if err := o.recheck(lookupScheme(id.Scheme)); err != nil {
			return err
		}
	}
	policy := &pop3store.Policy{AllowRetr: o.allowRetr}
	protocol, dial := sourceDialer(o.source.Scheme, o.conn, o.log, policy)
	if protocol != "imap" {
		// POP3 has one folder, and servers allow one session at a time
		// (the table refuses --connections for it).
		o.connections = 1
	}
	err = backupInto(ctx, a, o.archive, o.storage, id, dial, backup.Options{
		Source:      o.source.String(),
		Protocol:    protocol,
		Log:         o.log,
		Hook:        failpoint.Hook(),
		Delete:      o.delete,
		DeleteAfter: o.deleteAfter,
		Connections: o.connections,
		Checkpoint:  o.checkpoint,

		MaxBytesPerDay: o.dailyBudget(),
		ThrottleWait:   o.throttleWait,
		Exclude:        o.exclude,
	}, o.quiet, e)
	if n := policy.Mismatches(); n > 0 {
		o.log.Warn(fmt.Sprintf("%d messages were archived as the server's TOP returned them, with another size than LIST gives; --pop3-allow-retr fetches such messages with RETR", n))
	}
	return err
}

// prepareArchive checks, before the source is contacted, that a backup of
// id may write to root: an existing archive is opened and must have the
// storage asked for and belong to the same mailbox (unless allow); for a
// new one, root must be creatable (it is created only once the source has
// answered). A nil archive and no error mean "create it".
func prepareArchive(root string, storage *formats.StorageOptions, id formats.SourceIdentity, allow bool) (*formats.Archive, error) {
	if !formats.Exists(root) {
		if storage != nil {
			if err := storage.Check(); err != nil {
				return nil, fmt.Errorf("%w: %v", formats.ErrStorageMismatch, err)
			}
		}
		return nil, formats.CheckCreatable(root)
	}
	a, err := formats.Open(root)
	if err != nil {
		return nil, err
	}
	if err := a.CheckStorage(storage); err != nil {
		return nil, err
	}
	have, err := recordedSource(a)
	if err != nil {
		return nil, err
	}
	if have != nil && !sameMailbox(*have, id) && !allow {
		return nil, fmt.Errorf("%w: %s holds the mail of %s; refusing to back up %s into it (use another archive directory, or --allow-source-change if it is the same mailbox on a new server)",
			errSourceChanged, root, printable(have.String()), printable(id.String()))
	}
	return a, nil
}

// backupInto runs the backup (backupRun), with progress on a terminal
// (e.ui), and prints the summary.
func backupInto(ctx context.Context, a *formats.Archive, root string, storage *formats.StorageOptions, id formats.SourceIdentity, dial backup.Dialer, opts backup.Options, quiet bool, e *env) error {
	start := time.Now()
	opts.Progress = e.ui.account(id.String()).progress()
	res, err := backupRun(ctx, a, root, storage, id, dial, opts)
	e.ui.stop()
	if res != nil && res.Snapshot != nil && !quiet {
		printBackupSummary(e, res, opts.Delete, start)
	}
	return err
}

// backupRun runs the backup once the source has answered: it connects,
// logs in and lists the folders first, creates the archive (a == nil) only
// then, hands that first connection to the engine and records the source
// in the archive. The result is nil when no snapshot was committed.
func backupRun(ctx context.Context, a *formats.Archive, root string, storage *formats.StorageOptions, id formats.SourceIdentity, dial backup.Dialer, opts backup.Options) (*backup.Result, error) {
	var first backup.Source
	err := backup.Retry(ctx, opts.ThrottleWait, opts.Log, func() error {
		var err error
		if first, err = dial(ctx); err != nil {
			return err
		}
		if a != nil {
			// The engine lists the folders, asking the status of those the
			// archive holds first (backup.FolderHinter): a LIST before it
			// would cost a server such as Dovecot a read of every big
			// folder.
			return nil
		}
		if _, err := first.Folders(ctx); err != nil {
			first.Close()
			return fmt.Errorf("list folders: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h := &handOver{first: first, dial: dial}
	defer h.close()
	if a == nil {
		var so formats.StorageOptions
		if storage != nil {
			so = *storage
		}
		if a, err = formats.CreateFor(root, so, &id); err != nil {
			return nil, err
		}
	}
	opts.Dial = h.get
	res, err := backup.Run(ctx, a, opts)
	if res != nil && res.Snapshot != nil {
		if rerr := recordSource(a, id, opts.Log); rerr != nil {
			opts.Log.Warn("could not record the source in the archive", "err", rerr)
		}
	}
	return res, err
}

// handOver gives the connection opened to check the source to the
// engine's first Dial, so that the check costs no extra login (and a POP3
// mailbox, locked by its session, is not asked for twice).
type handOver struct {
	mu    sync.Mutex
	first backup.Source
	dial  backup.Dialer
}

func (h *handOver) get(ctx context.Context) (backup.Source, error) {
	h.mu.Lock()
	s := h.first
	h.first = nil
	h.mu.Unlock()
	if s != nil {
		return s, nil
	}
	return h.dial(ctx)
}

// close closes the first connection if the engine never took it.
func (h *handOver) close() {
	h.mu.Lock()
	s := h.first
	h.first = nil
	h.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

// backupSummary is what a backup prints at the end: counts from the
// engine's result and folder statuses from the snapshot it committed.
type backupSummary struct {
	Snapshot        string  `json:"snapshot"`
	Status          string  `json:"status"`
	Folders         int     `json:"folders"`
	FoldersExamined int     `json:"folders_examined"`
	FoldersFailed   int     `json:"folders_failed"`
	Added           int     `json:"added"`
	Stored          int     `json:"stored"`
	Bytes           int64   `json:"bytes"`
	Gone            int     `json:"gone"`
	FlagChanges     int     `json:"flag_changes"`
	Seconds         float64 `json:"seconds"`
	Deleted         *int    `json:"deleted_from_server,omitempty"`
}

func printBackupSummary(e *env, res *backup.Result, deleted bool, start time.Time) {
	s := res.Snapshot
	sum := backupSummary{
		Snapshot: s.ID, Status: s.Status, Folders: len(s.Folders), FoldersExamined: res.Selected,
		Added: res.Added, Stored: res.Stored, Bytes: res.Bytes, Gone: res.Gone, FlagChanges: res.FlagChanges,
		Seconds: time.Since(start).Round(10 * time.Millisecond).Seconds(),
	}
	for _, f := range s.Folders {
		if f.Status == formats.FolderFailed {
			sum.FoldersFailed++
		}
	}
	if deleted {
		sum.Deleted = &res.Deleted
	}
	if e.json {
		json.NewEncoder(e.stdout).Encode(sum)
		return
	}
	failed := ""
	if sum.FoldersFailed > 0 {
		failed = fmt.Sprintf(", %d failed", sum.FoldersFailed)
	}
	fmt.Fprintf(e.stdout, "snapshot %s %s: %d folders (%d examined%s), %d messages added (%d stored, %s), %d gone, %d flag changes, %s\n",
		s.ID, s.Status, sum.Folders, sum.FoldersExamined, failed, sum.Added, sum.Stored, humanBytes(sum.Bytes),
		sum.Gone, sum.FlagChanges, time.Since(start).Round(10*time.Millisecond))
	if deleted {
		fmt.Fprintf(e.stdout, "deleted %d messages from the server\n", res.Deleted)
	}
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

// localDialer opens local mail at path (absolute): an mbox file or tree,
// or a Maildir tree. A Source reads no file between calls; each is closed
// by whoever dialled it.
func localDialer(kind, path string) backup.Dialer {
	return func(context.Context) (backup.Source, error) {
		var s backup.Source
		var err error
		if kind == "mbox" {
			s, err = localsrc.NewMbox(path)
		} else {
			s, err = localsrc.NewMaildir(path)
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errLocalSource, err)
		}
		return s, nil
	}
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

// loopbackOnly returns nil when host is this machine: "localhost", a
// loopback address (127.0.0.0/8, ::1), or a name whose every address is
// one; else an error saying why not.
func loopbackOnly(ctx context.Context, host string, resolve func(context.Context, string) ([]net.IPAddr, error)) error {
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return errors.New("not a loopback address")
	}
	addrs, err := resolve(ctx, host)
	if err != nil {
		return fmt.Errorf("cannot tell where it is (%v)", err)
	}
	if len(addrs) == 0 {
		return errors.New("it has no address")
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("it resolves to %s", a.IP)
		}
	}
	return nil
}
