package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/localstore"
	"github.com/mailvault/mailvault/restore"
)

func restoreCommand() *cli.Command {
	return &cli.Command{
		Name:      "restore",
		Usage:     "restore an archive, or part of it, to an IMAP account or a local folder",
		ArgsUsage: "ARCHIVE TARGET",
		Description: `Restores the messages of a snapshot (the latest by default) to TARGET:

   imaps://USER@HOST[:PORT], imap://USER@HOST[:PORT]   an IMAP account: folders are
        created as needed, flags and dates kept, special folders (Sent, Drafts,
        Trash, Junk, Archive) mapped by role to the target's own, whatever
        their names and language
   maildir:DIR   a Maildir tree as a stock Dovecot reads it with
                 mail_location = maildir:DIR:LAYOUT=fs (INBOX at DIR, folder A/B
                 at DIR/A/B, names in modified UTF-7: Entwürfe is Entw&APw-rfe)
   maildir:DIR?utf8   the same with UTF-8 folder names (Dovecot's :UTF-8 option)
   mbox:DIR      one mboxrd file per folder, hierarchy as directories
   eml:DIR       one .eml file per message, in the folder tree

A message the target already holds (same Message-ID and size, or the same
SHA-256 when it has no Message-ID) is not added again: running the same
restore twice, or again after an interruption, leaves each message there once.

A message the archive cannot give back (a damaged or missing segment or
file) is skipped and named, a message the target refuses is skipped, a
folder the target cannot hold is skipped; everything else is restored and
the exit code is 3. A selection that matches no folder or no message is an
error (exit 2); --deleted-since with nothing deleted says so and exits 0.

EXAMPLES:
   mailvault restore ./vault imaps://alice@newhost
   mailvault restore ./vault imaps://alice@newhost --dry-run
   mailvault restore ./vault imaps://alice@host --snapshot 1a2b3c4d --folder INBOX
   mailvault restore ./vault imaps://alice@host --as-of 2026-11-20
   mailvault restore ./vault imaps://alice@host --deleted-since 1a2b3c4d --into "Restored 2026-11-21"
   mailvault restore ./vault imaps://alice@host --from bob@example.com --subject invoice --since 2026-01-01 --into Restored
   mailvault restore ./vault maildir:~/Mail
   mailvault restore ./vault mbox:~/export --report restore.json
   mailvault restore --config mailvault.toml --account alice --deleted-since 1a2b3c4d --into Restored

` + exitCodesHelp,
		Flags: append(append(append(selectionFlags(),
			&cli.StringFlag{Name: "into", Usage: "put everything below `FOLDER`, keeping the structure"},
			&cli.StringSliceFlag{Name: "map", Usage: "restore archived folder OLD as NEW (`OLD=NEW`, repeatable)"},
			&cli.BoolFlag{Name: "no-map", Usage: "do not map special folders; keep the archived names"},
			&cli.BoolFlag{Name: "dry-run", Usage: "print the plan; change nothing on the target"},
			&cli.StringFlag{Name: "report", Usage: "write a JSON report to `FILE`"},
			&cli.IntFlag{Name: "window", Value: 16, Usage: "appends in flight at once, per connection"},
			connectionsFlag(),
		), connFlags()...), append(logFlags(), restoreConfigFlags()...)...),
		Action: func(c *cli.Context) error {
			if c.IsSet("config") {
				return restoreConfigAction(c)
			}
			if c.IsSet("account") {
				return usagef("--account goes with --config FILE")
			}
			a, err := args(c, 2, 2, "ARCHIVE TARGET")
			if err != nil {
				return err
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			sel, err := parseSelection(c)
			if err != nil {
				return err
			}
			mo, err := mapOptions(c)
			if err != nil {
				return err
			}
			mo.Into = c.String("into")
			open, err := targetOpener(c, a[1], theAccount, log.Warn)
			if err != nil {
				return err
			}
			conns, err := connections(c)
			if err != nil {
				return err
			}
			return runRestore(c.Context, restoreOptions{
				archive: a[0], sel: sel, mapping: mo, open: open, dryRun: c.Bool("dry-run"),
				report: c.String("report"), window: c.Int("window"), quiet: c.Bool("quiet"),
				connections: targetConnections(a[1], conns), log: log,
			}, envOf(c))
		},
	}
}

// mapOptions reads --map OLD=NEW (repeatable) and --no-map, for restore
// and migrate.
func mapOptions(c *cli.Context) (restore.MapOptions, error) {
	mo := restore.MapOptions{NoMap: c.Bool("no-map"), Overrides: map[string]string{}}
	for _, m := range c.StringSlice("map") {
		old, nw, ok := strings.Cut(m, "=")
		if !ok || old == "" || nw == "" {
			return mo, usagef("--map %q: want OLD=NEW", m)
		}
		mo.Overrides[old] = nw
	}
	return mo, nil
}

// accountFlagNames are the flags of one account (accountFlags), without
// its prefix.
var accountFlagNames = slices.Concat(loginFlagNames, tlsFlagNames, plaintextFlagNames)

// targetOpener parses TARGET with the scheme table, checks the flags of
// acc against it (for restore, acc's prefix is "" and every flag is
// checked; migrate checks the flags both sides share itself), and returns
// how to open the target.
func targetOpener(c *cli.Context, raw string, acc account, warn func(string, ...any)) (func(ctx context.Context) (restore.Target, error), error) {
	if err := checkSecrets(c, acc); err != nil {
		return nil, err
	}
	t, err := parseEndpoint(raw, asTarget)
	if err != nil {
		return nil, err
	}
	var names []string // nil: all
	if acc.prefix != "" {
		names = accountFlagNames
	}
	if err := checkFlags(c, t.scheme, acc.prefix, names); err != nil {
		return nil, err
	}
	if t.scheme.local {
		scheme, dir, utf8 := t.scheme.name, t.path, t.utf8
		hook := failpoint.Hook()
		return func(ctx context.Context) (restore.Target, error) {
			switch scheme {
			case "maildir":
				md, err := localstore.NewMaildir(dir)
				if utf8 {
					md, err = localstore.NewMaildirUTF8(dir)
				}
				if err != nil {
					return nil, err
				}
				md.Hook = hook
				return md, nil
			case "mbox":
				mb, err := localstore.NewMbox(dir)
				if err != nil {
					return nil, err
				}
				mb.Hook = hook
				return mb, nil
			}
			e, err := localstore.NewEML(dir)
			if err != nil {
				return nil, err
			}
			e.Hook = hook
			return e, nil
		}, nil
	}
	u, _ := resolvePreset(t.url, nil)
	cfg, err := accountConfig(c, u, acc, warn)
	if err != nil {
		return nil, err
	}
	quirks := targetQuirks(u.Host)
	return func(ctx context.Context) (restore.Target, error) {
		t, err := imapstore.DialTarget(ctx, cfg)
		if err != nil {
			return nil, err
		}
		t.Quirks, t.Warn = quirks, func(m string) { warn(m) }
		return t, nil
	}, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

type restoreOptions struct {
	archive string
	sel     restore.Selection
	mapping restore.MapOptions
	open    func(ctx context.Context) (restore.Target, error)
	dryRun  bool
	report  string
	window  int
	quiet   bool
	// connections is how many target connections may restore folders at
	// once (IMAP targets; 1 for local ones).
	connections int
	log         *slog.Logger
}

// targetConnections is --connections for a target that takes several
// (IMAP), 1 for a local one (a disk gains nothing from several writers;
// the table refuses --connections for it).
func targetConnections(target string, n int) int {
	if t, err := parseEndpoint(target, asTarget); err == nil && t.scheme.applies("connections") {
		return n
	}
	return 1
}

func runRestore(ctx context.Context, o restoreOptions, e *env) (err error) {
	// With --report the file always tells about this run, failed or not:
	// a job must not read yesterday's report as today's.
	var rep *restore.Report
	if o.report != "" {
		defer func() {
			if rep == nil {
				rep = &restore.Report{DryRun: o.dryRun, Status: restore.StatusComplete}
			}
			if err != nil && rep.Error == "" && !errors.Is(err, restore.ErrPartial) {
				rep.Status, rep.Error = restore.StatusStopped, err.Error()
			}
			if werr := writeReport(o.report, rep); werr != nil && err == nil {
				err = werr
			}
		}()
	}
	a, err := formats.Open(o.archive)
	if err != nil {
		return err
	}
	sel, err := restore.Select(a, o.sel)
	if err != nil {
		return err
	}
	defer sel.Close()
	if sel.NothingDeleted {
		rep = &restore.Report{Snapshot: sel.Snapshot.ID, DryRun: o.dryRun, Status: restore.StatusComplete}
		if !o.quiet {
			fmt.Fprintf(e.stdout, "nothing was deleted on the server between snapshot %s and snapshot %s: nothing to restore\n", o.sel.DeletedSince, sel.Snapshot.ID)
		}
		return nil
	}
	t, err := o.open(ctx)
	if err != nil {
		return err
	}
	var bar *progressLine
	if !o.quiet && !o.dryRun && isTerminal(e.stderr) {
		bar = &progressLine{w: e.stderr, start: time.Now()}
	}
	rep, err = restore.Run(ctx, a, sel, t, restore.Options{
		Map: o.mapping, DryRun: o.dryRun, Window: o.window,
		Progress: bar.update, Hook: failpoint.Hook(),
		Connections: o.connections, Open: o.open, Log: o.log,
	})
	bar.done()
	if cerr := t.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close target: %w", cerr)
	}
	if rep == nil {
		// The target failed before anything was done: the report says
		// what was selected, and that nothing was restored.
		n, b := sel.Count()
		rep = &restore.Report{Snapshot: sel.Snapshot.ID, DryRun: o.dryRun, Messages: n, Bytes: b, NotRestored: n}
		return err
	}
	if o.dryRun {
		printPlan(e.stdout, rep)
	} else if !o.quiet {
		fmt.Fprintln(e.stdout, summary(rep))
	}
	return err
}

// summary is the line a restore ends with. Every number in it is from
// the target's answers: what it accepted, what it already held, what it
// refused, and what the archive could not give.
func summary(rep *restore.Report) string {
	var b strings.Builder
	done := rep.Stored - rep.Missing + rep.Present + rep.ByLabels
	if done == rep.Messages {
		fmt.Fprintf(&b, "restored %d messages", done)
	} else {
		fmt.Fprintf(&b, "restored %d of %d messages", done, rep.Messages)
	}
	fmt.Fprintf(&b, " (%s) from snapshot %s: %d appended (%s), %d already present, %d rejected",
		humanBytes(rep.StoredBytes+rep.PresentBytes), rep.Snapshot, rep.Stored, humanBytes(rep.StoredBytes), rep.Present, rep.Rejected)
	if rep.Missing > 0 {
		fmt.Fprintf(&b, ", %d of them missing on the target afterwards", rep.Missing)
	}
	if rep.ByLabels > 0 {
		fmt.Fprintf(&b, ", %d in All Mail through their labels", rep.ByLabels)
	}
	if rep.Unreadable > 0 {
		fmt.Fprintf(&b, ", %d unreadable in the archive", rep.Unreadable)
	}
	if rep.FailedFolders > 0 {
		fmt.Fprintf(&b, ", %d folders refused by the target", rep.FailedFolders)
	}
	if rep.NotRestored > 0 {
		fmt.Fprintf(&b, ", %d not restored", rep.NotRestored)
	}
	if rep.RenamedFolders > 0 {
		fmt.Fprintf(&b, ", %d folders under shortened names", rep.RenamedFolders)
	}
	fmt.Fprintf(&b, ", %d keywords dropped, in %s", rep.DroppedKeywords, rep.Elapsed.Round(10*time.Millisecond))
	return b.String()
}

func writeReport(path string, rep *restore.Report) error {
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o600)
}

func printPlan(w io.Writer, rep *restore.Report) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ARCHIVED FOLDER\tTARGET FOLDER\tMAPPING\tMESSAGES\tSIZE\tPRESENT\tTO APPEND")
	for _, f := range rep.Folders {
		target := printable(f.Target)
		if f.StoredAs != "" {
			target += " (stored as " + printable(f.StoredAs) + ")"
		}
		switch {
		case f.Structure:
			target += " (new, structure only)"
		case f.Create && f.SpecialUse != "":
			target += " (new, " + f.SpecialUse + ")"
		case f.Create:
			target += " (new)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%d\n", printable(f.Source), target, f.How, f.Messages, humanBytes(f.Bytes), f.Present, f.Messages-f.Present)
	}
	tw.Flush()
	fmt.Fprintf(w, "archive namespace: %s (%s); target namespace: %s\n",
		describeNamespace(rep.ArchiveNamespace), rep.ArchiveNamespaceFrom, describeNamespace(rep.TargetNamespace))
	fmt.Fprintf(w, "dry run: %d messages (%s) in %d folders from snapshot %s; %d already present; nothing was changed\n",
		rep.Messages, humanBytes(rep.Bytes), len(rep.Folders), rep.Snapshot, rep.Present)
}

// describeNamespace writes a personal namespace for the plan.
func describeNamespace(ns restore.Namespace) string {
	if ns.Prefix == "" {
		return fmt.Sprintf("no prefix, delimiter %q", ns.Delimiter)
	}
	return fmt.Sprintf("prefix %q, delimiter %q", ns.Prefix, ns.Delimiter)
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressLine draws one status line on a terminal: messages, bytes, rate
// and ETA. A nil *progressLine draws nothing.
type progressLine struct {
	w     io.Writer
	start time.Time
	last  time.Time
}

func (p *progressLine) update(pr restore.Progress) {
	if p == nil || time.Since(p.last) < 200*time.Millisecond && pr.Done < pr.Total {
		return
	}
	p.last = time.Now()
	el := time.Since(p.start).Seconds()
	rate := float64(pr.DoneBytes) / max(el, 0.001)
	eta := "?"
	if pr.DoneBytes > 0 {
		eta = time.Duration(float64(pr.Bytes-pr.DoneBytes) / rate * float64(time.Second)).Round(time.Second).String()
	}
	failed := ""
	if n := pr.Rejected + pr.Failed; n > 0 {
		failed = fmt.Sprintf(" (%d not restored)", n)
	}
	fmt.Fprintf(p.w, "\r\x1b[K%d/%d messages%s  %s/%s  %s/s  ETA %s  %s", pr.Done, pr.Total, failed,
		humanBytes(pr.DoneBytes), humanBytes(pr.Bytes), humanBytes(int64(rate)), eta, truncate(printable(pr.Folder), 30))
}

func (p *progressLine) done() {
	if p != nil {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}
