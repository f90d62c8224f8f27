package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/restore"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:      "migrate",
		Usage:     "move an account to another server, keeping an archive as the safety copy",
		ArgsUsage: "SOURCE TARGET --archive DIR",
		Description: `Backs up SOURCE into the archive (as 'mailvault backup' does), then restores
the snapshot just taken to TARGET (as 'mailvault restore' does). The archive
stays as the safety copy; running migrate again copies only what is new.

The source password comes from --password-file, $MAILVAULT_PASSWORD or
--password-command; the target's from --target-password-file,
$MAILVAULT_TARGET_PASSWORD or --target-password-command (or prompts on a
terminal).

An IMAP target is checked before the backup starts (connect, TLS, login,
capabilities): a wrong target password, host or certificate fails at once,
before anything is downloaded. Target TLS options are --target-ca-file,
--target-tls-skip-verify and --target-insecure-plaintext.

EXAMPLES:
   mailvault migrate imaps://alice@old.example.com imaps://alice@new.example.com --archive ./vault
   mailvault migrate imaps://alice@old imaps://alice@new --archive ./vault --dry-run
   mailvault migrate imaps://alice@old maildir:~/Mail --archive ./vault

` + exitCodesHelp,
		Flags: append(append(append(accountFlags(theAccount), accountFlags(targetAccount)...),
			timeoutFlag(),
			&cli.StringFlag{Name: "archive", Usage: "the archive `DIR` (created if missing)"},
			&cli.StringSliceFlag{Name: "map", Usage: "restore archived folder OLD as NEW (`OLD=NEW`, repeatable)"},
			&cli.BoolFlag{Name: "no-map", Usage: "do not map special folders; keep the archived names"},
			&cli.BoolFlag{Name: "dry-run", Usage: "back up, then only print the restore plan"},
			&cli.StringFlag{Name: "report", Usage: "write the restore's JSON report to `FILE`"},
			allowSourceChangeFlag(),
		), append(append(append(storageFlags(), connectionsFlag(), checkpointFlag()), throttleFlags()...), logFlags()...)...),
		Action: func(c *cli.Context) error {
			a, err := args(c, 2, 2, "SOURCE TARGET --archive DIR")
			if err != nil {
				return err
			}
			if c.String("archive") == "" {
				return usagef("migrate needs --archive DIR: the archive is the safety copy")
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			if err := checkSecrets(c, theAccount); err != nil {
				return err
			}
			src, err := parseEndpoint(a[0], asMigrateSource)
			if err != nil {
				return err
			}
			// The source's own flags, then those both sides share: they
			// apply when they apply to either.
			if err := checkFlags(c, src.scheme, "", accountFlagNames); err != nil {
				return err
			}
			if t, err := parseEndpoint(a[1], asTarget); err == nil {
				if err := checkShared(c, src.scheme, t.scheme); err != nil {
					return err
				}
			}
			src.url, _ = resolvePreset(src.url, log.Info)
			cfg, err := accountConfig(c, src.url, theAccount, log.Warn)
			if err != nil {
				return err
			}
			open, err := targetOpener(c, a[1], targetAccount, log.Warn)
			if err != nil {
				return err
			}
			mo, err := mapOptions(c)
			if err != nil {
				return err
			}
			e := envOf(c)
			archive := expandHome(c.String("archive"))
			storage, conns, err := backupTuning(c)
			if err != nil {
				return err
			}
			if strings.HasPrefix(a[1], "imap://") || strings.HasPrefix(a[1], "imaps://") {
				// Check the IMAP target now rather than after the backup.
				if err := checkTarget(c.Context, open); err != nil {
					return fmt.Errorf("target %s: %w", printable(a[1]), err)
				}
			}
			bo := backupOptions{archive: archive, storage: storage, connections: conns, checkpoint: c.Duration("checkpoint"),
				source: src.url, conn: cfg, quiet: c.Bool("quiet"), log: log, allowSourceChange: c.Bool("allow-source-change")}
			if err := bo.throttling(c); err != nil {
				return err
			}
			berr := runBackup(c.Context, bo, e)
			if berr != nil && !errors.Is(berr, backup.ErrPartial) {
				return berr
			}
			// Restore exactly the snapshot this backup committed.
			rerr := runRestore(c.Context, restoreOptions{
				archive: archive, sel: restore.Selection{Snapshot: "latest"}, mapping: mo, open: open,
				dryRun: c.Bool("dry-run"), report: c.String("report"), window: 16, quiet: c.Bool("quiet"),
				connections: targetConnections(a[1], conns), log: log,
			}, e)
			if rerr != nil {
				return rerr
			}
			if berr != nil {
				return fmt.Errorf("migrated what could be backed up: %w", berr)
			}
			return nil
		},
	}
}

// checkShared refuses a flag of migrate that both sides share (--timeout,
// --connections, --checkpoint) when it applies to neither the source nor
// the target.
func checkShared(c *cli.Context, source, target *scheme) error {
	for _, f := range []string{"timeout", "connections", "checkpoint"} {
		if !c.IsSet(f) || source.applies(f) || target.applies(f) {
			continue
		}
		return usagef("--%s does not apply to %s or %s (%s)", f, source.form, target.form, why(source, f))
	}
	return nil
}

// checkTarget connects to the target, negotiates TLS, logs in and reads
// its capabilities and folder delimiter, then disconnects.
func checkTarget(ctx context.Context, open func(context.Context) (restore.Target, error)) error {
	t, err := open(ctx)
	if err != nil {
		return err
	}
	return t.Close()
}
