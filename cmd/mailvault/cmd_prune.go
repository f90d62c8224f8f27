package main

import (
	"fmt"
	"strconv"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
)

func maxUnusedFlag() cli.Flag {
	return &cli.StringFlag{Name: "max-unused", Value: "0", Usage: "leave a segment as it is while at most `PCT` percent of its message bytes are unneeded"}
}

func pruneCommand() *cli.Command {
	return &cli.Command{
		Name:      "prune",
		Usage:     "free the space of messages no snapshot holds (after forget)",
		ArgsUsage: "ARCHIVE",
		Description: `Removes from the archive every stored message that no snapshot has on the
server: after 'mailvault forget', the messages only forgotten snapshots
had. A segment holding some is copied, with the records still needed, into a
new segment (written and fsynced first), the manifests are rewritten to
name the new places, and the old segment is deleted last; in a Maildir
archive the message files are deleted. --max-unused PCT leaves segments
whose unneeded share is at most PCT percent. Prints what it frees. Takes
the archive lock; a killed prune is finished by the next command that takes
it, and a backup meanwhile fails with the lock message (exit 5).

EXAMPLES:
   mailvault prune ./vault
   mailvault prune ./vault --max-unused 10 --dry-run

` + exitCodesHelp,
		Flags: []cli.Flag{
			maxUnusedFlag(),
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be freed, change nothing"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "ARCHIVE")
			if err != nil {
				return err
			}
			opts, err := pruneOptions(c)
			if err != nil {
				return err
			}
			return runPrune(a[0], opts, envOf(c))
		},
	}
}

func pruneOptions(c *cli.Context) (formats.PruneOptions, error) {
	pct, err := strconv.ParseFloat(c.String("max-unused"), 64)
	if err != nil || pct < 0 || pct > 100 {
		return formats.PruneOptions{}, usagef("--max-unused %q: want a percentage from 0 to 100", c.String("max-unused"))
	}
	return formats.PruneOptions{MaxUnused: pct, DryRun: c.Bool("dry-run")}, nil
}

func runPrune(root string, opts formats.PruneOptions, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	a.Hook = failpoint.Hook()
	if !opts.DryRun {
		if err := a.Lock("prune"); err != nil {
			return err
		}
		defer a.Unlock()
	}
	if err := prune(a, opts, e); err != nil {
		return err
	}
	if !opts.DryRun {
		rebuildIndex(a)
	}
	return nil
}

// prune runs Prune on a (locked unless a dry run) and prints the result.
func prune(a *formats.Archive, opts formats.PruneOptions, e *env) error {
	res, err := a.Prune(opts)
	if err != nil {
		return err
	}
	printPrune(e, res, opts.DryRun)
	return nil
}

func printPrune(e *env, res *formats.PruneResult, dryRun bool) {
	if dryRun {
		fmt.Fprintf(e.stdout, "would remove %d messages (%d stored copies): %d segments rewritten, %d files deleted, %d left under --max-unused; about %s freed (dry run: nothing changed)\n",
			res.Messages, res.Records, res.Rewritten, res.Deleted, res.LeftUnused, humanBytes(res.Freed))
		return
	}
	fmt.Fprintf(e.stdout, "removed %d messages (%d stored copies): %d segments rewritten, %d files deleted, %d left under --max-unused; freed %s (stored %s, was %s)\n",
		res.Messages, res.Records, res.Rewritten, res.Deleted, res.LeftUnused, humanBytes(res.StoredBefore-res.StoredAfter), humanBytes(res.StoredAfter), humanBytes(res.StoredBefore))
}
