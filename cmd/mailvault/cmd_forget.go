package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
)

func forgetCommand() *cli.Command {
	count := func(name, what string) cli.Flag {
		return &cli.StringFlag{Name: name, Usage: "keep the newest snapshot of each of the last `N` " + what + " that have one (a number, or 'unlimited')"}
	}
	return &cli.Command{
		Name:      "forget",
		Usage:     "remove snapshots by a retention policy (restic's --keep-* rules)",
		ArgsUsage: "ARCHIVE",
		Description: `Decides for every snapshot whether to keep it, with restic's rules:
--keep-last N keeps the newest N; --keep-hourly/daily/weekly/monthly/yearly N
keep the newest snapshot of each of the newest N hours/days/ISO weeks/
months/years that have one (in the local time zone; when a rule has counts
left, the oldest snapshot is kept too); --keep-within DURATION (e.g. 90d,
1y6m, 2d12h) keeps every snapshot younger than DURATION counted back from
the newest snapshot. A snapshot is kept when any rule keeps it. The rules
look at complete snapshots; a partial one is forgotten once a later
complete one exists. The newest snapshot is always kept.

Forgetting removes manifests only: the messages that only forgotten
snapshots held stay stored until 'mailvault prune' (or --prune) frees them.
The kept snapshots keep their ids and are numbered again from 1. Takes the
archive lock; a killed forget is finished by the next command that takes it.

EXAMPLES:
   mailvault forget ./vault --keep-daily 7 --keep-weekly 5 --keep-monthly 12 --dry-run
   mailvault forget ./vault --keep-within 90d --keep-last 10 --prune

` + exitCodesHelp,
		Flags: []cli.Flag{
			count("keep-last", "snapshots"),
			count("keep-hourly", "hours"),
			count("keep-daily", "days"),
			count("keep-weekly", "weeks"),
			count("keep-monthly", "months"),
			count("keep-yearly", "years"),
			&cli.StringFlag{Name: "keep-within", Usage: "keep every snapshot younger than `DURATION` (e.g. 90d, 1y6m) before the newest"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "print what would be kept and forgotten, change nothing"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary"},
			&cli.BoolFlag{Name: "prune", Usage: "then prune: free the space only forgotten snapshots used"},
			maxUnusedFlag(),
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "ARCHIVE")
			if err != nil {
				return err
			}
			p, err := policyFlags(c)
			if err != nil {
				return err
			}
			var po *formats.PruneOptions
			if c.Bool("prune") {
				o, err := pruneOptions(c)
				if err != nil {
					return err
				}
				po = &o
			} else if c.IsSet("max-unused") {
				return usagef("--max-unused goes with --prune")
			}
			return runForget(a[0], p, c.Bool("dry-run"), c.Bool("quiet"), po, envOf(c))
		},
	}
}

// policyFlags reads the --keep-* flags.
func policyFlags(c *cli.Context) (formats.Policy, error) {
	var p formats.Policy
	for _, f := range []struct {
		name string
		to   *int
	}{{"keep-last", &p.Last}, {"keep-hourly", &p.Hourly}, {"keep-daily", &p.Daily}, {"keep-weekly", &p.Weekly}, {"keep-monthly", &p.Monthly}, {"keep-yearly", &p.Yearly}} {
		v := c.String(f.name)
		if v == "" {
			continue
		}
		if v == "unlimited" {
			*f.to = formats.Unlimited
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, usagef("--%s %q: want a count (0 or more) or 'unlimited'", f.name, v)
		}
		*f.to = n
	}
	if v := c.String("keep-within"); v != "" {
		d, err := formats.ParseDuration(v)
		if err != nil {
			return p, usagef("--keep-within: %v", err)
		}
		p.Within = d
	}
	if p.Empty() {
		return p, usagef("no --keep-* rule given: forget would keep every snapshot (see 'mailvault forget --help')")
	}
	return p, nil
}

func runForget(root string, p formats.Policy, dryRun, quiet bool, po *formats.PruneOptions, e *env) error {
	// The decisions are printed before prune starts.
	printed := func(res *formats.ForgetResult) { printForget(root, res, dryRun, quiet, po != nil, e) }
	_, pr, err := forgetArchive(root, p, dryRun, po, printed)
	if err != nil {
		return err
	}
	if pr != nil {
		printPrune(e, pr, po.DryRun)
	}
	return nil
}

// forgetArchive is forget (and, with po, prune) on the archive at root:
// under the archive's lock (none on a dry run), with the failpoint hook,
// the calendar rules in the local time zone. forgot, when not nil, gets
// the forget result before prune starts. The prune result is nil when po
// is nil or on a dry run. 'mailvault forget' and a fleet run's retention
// both go through it.
func forgetArchive(root string, p formats.Policy, dryRun bool, po *formats.PruneOptions, forgot func(*formats.ForgetResult)) (*formats.ForgetResult, *formats.PruneResult, error) {
	a, err := formats.Open(root)
	if err != nil {
		return nil, nil, err
	}
	a.Hook = failpoint.Hook()
	if !dryRun {
		if err := a.Lock("forget"); err != nil {
			return nil, nil, err
		}
		defer a.Unlock()
	}
	res, err := a.Forget(p, time.Local, dryRun)
	if err != nil {
		return nil, nil, err
	}
	if forgot != nil {
		forgot(res)
	}
	if dryRun {
		return res, nil, nil
	}
	var pr *formats.PruneResult
	if po != nil {
		if pr, err = a.Prune(*po); err != nil {
			return res, pr, err
		}
	}
	rebuildIndex(a)
	return res, pr, nil
}

// rebuildIndex builds the state index a rewrite of the manifests dropped
// (or finds it current), once retention is done, so that the next backup
// does not have to. The index is derived data: if this fails, the next
// writer builds it.
func rebuildIndex(a *formats.Archive) {
	_ = a.RebuildIndex()
}

// printForget prints forget's decisions (unless quiet) and its summary.
func printForget(root string, res *formats.ForgetResult, dryRun, quiet, pruning bool, e *env) {
	n := 0
	for i, d := range res.Decisions {
		verb := "keep"
		if !d.Keep {
			verb = "forget"
			n++
		}
		if quiet {
			continue
		}
		s := res.Snapshots[i]
		fmt.Fprintf(e.stdout, "%-6s  %08d-%s  %s  %-8s  %s\n", verb, s.Seq, s.ID, d.Time.Format("2006-01-02 15:04"), s.Status, strings.Join(d.Reasons, ", "))
	}
	total := len(res.Decisions)
	if dryRun {
		fmt.Fprintf(e.stdout, "would forget %d of %d snapshots (dry run: nothing changed)\n", n, total)
		return
	}
	fmt.Fprintf(e.stdout, "forgot %d of %d snapshots, %d manifests rewritten", res.Forgotten, total, res.Rewritten)
	if res.Forgotten > 0 && !pruning {
		fmt.Fprintf(e.stdout, "; 'mailvault prune %s' frees the space only they used", root)
	}
	fmt.Fprintln(e.stdout)
}
