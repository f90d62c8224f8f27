package main

import (
	"context"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/restore"
)

// restoreConfigFlags are restore's flags for an account of a
// configuration file.
func restoreConfigFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "restore the archive of an account of the configuration `FILE` (with --account; ARCHIVE is then not given)"},
		&cli.StringSliceFlag{Name: "account", Usage: "with --config: the account `NAME` whose archive is restored, to its own mailbox unless a TARGET is given"},
	}
}

// restoreConfigAction is "mailvault restore --config FILE --account NAME
// [TARGET]": the account's archive, restored to TARGET, or, without one,
// to the account's own mailbox with the account's login (an admin login
// restores a customer's mail without the customer's password).
func restoreConfigAction(c *cli.Context) error {
	names := c.StringSlice("account")
	if len(names) != 1 {
		return usagef("restore --config needs exactly one --account NAME")
	}
	pos := c.Args().Slice()
	if len(pos) > 1 {
		return usagef("usage: mailvault restore --config FILE --account NAME [TARGET] (the archive is the account's)")
	}
	if len(pos) == 0 {
		// The account's own login is used: the target's login flags have
		// nothing to say.
		for _, f := range accountFlags(theAccount) {
			if name := f.Names()[0]; c.IsSet(name) {
				return usagef("--%s goes with an explicit TARGET; without one the account's login from the file is used", name)
			}
		}
	}
	log, err := newLogger(c)
	if err != nil {
		return err
	}
	cfg, accounts, err := loadConfig(c, c.String("config"))
	if err != nil {
		return err
	}
	a := accounts[0]
	sel, err := parseSelection(c)
	if err != nil {
		return err
	}
	mo := restore.MapOptions{Into: c.String("into"), NoMap: c.Bool("no-map"), Overrides: map[string]string{}}
	for _, m := range c.StringSlice("map") {
		old, nw, ok := strings.Cut(m, "=")
		if !ok || old == "" || nw == "" {
			return usagef("--map %q: want OLD=NEW", m)
		}
		mo.Overrides[old] = nw
	}
	conns, err := connections(c)
	if err != nil {
		return err
	}
	var open func(context.Context) (restore.Target, error)
	target := ""
	if len(pos) == 1 {
		target = pos[0]
		if open, err = targetOpener(c, target, theAccount, log.Warn); err != nil {
			return err
		}
		conns = targetConnections(target, conns)
	} else {
		if s := a.Source.Scheme; s != "imaps" && s != "imap" {
			return usagef("account %q is backed up over %s: it cannot be restored to its own mailbox; give a TARGET (imaps://…, maildir:DIR, …)", a.Name, strings.ToUpper(s))
		}
		limit := 0
		if a.Server != nil {
			limit = a.Server.MaxConnections
		}
		var ls limits
		lease, err := ls.of(strings.ToLower(a.Source.Host), limit).lease(c.Context, conns, conns)
		if err != nil {
			return err
		}
		defer lease.release()
		conn := accountConn(a, lease)
		conns = lease.n
		open = func(ctx context.Context) (restore.Target, error) { return imapstore.DialTarget(ctx, conn) }
	}
	log.Info("restoring an account of the configuration", "file", cfg.Path, "account", a.Name, "archive", a.Archive)
	return runRestore(c.Context, restoreOptions{
		archive: a.Archive, sel: sel, mapping: mo, open: open, dryRun: c.Bool("dry-run"),
		report: c.String("report"), window: c.Int("window"), quiet: c.Bool("quiet"),
		connections: conns, log: log,
	}, envOf(c))
}
