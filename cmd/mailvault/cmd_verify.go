package main

import (
	"errors"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
)

var errVerifyFailed = errors.New("verify found problems")

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check every manifest and every stored message",
		ArgsUsage: "ARCHIVE",
		Description: `Reads every snapshot manifest (checksums, parent chain), every segment
(file checksum, frame table) and every stored message (size and SHA-256).
Files left by an interrupted run are listed; the next backup, or
'verify --repair', removes them. Exit code 6 when anything is wrong.

EXAMPLES:
   mailvault verify ./vault
   mailvault verify ./vault --repair

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "repair", Usage: "remove files no committed snapshot names (takes the archive lock)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only problems"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "ARCHIVE")
			if err != nil {
				return err
			}
			return runVerify(a[0], c.Bool("repair"), c.Bool("quiet"), envOf(c))
		},
	}
}

func runVerify(root string, repair, quiet bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	if repair {
		if err := a.Lock("verify --repair"); err != nil {
			return err
		}
		defer a.Unlock()
	}
	rep, err := a.Verify(nil)
	if err != nil {
		return err
	}
	for _, p := range rep.Problems {
		fmt.Fprintln(e.stdout, "problem:", printable(p))
	}
	if len(rep.Orphans) > 0 && repair && rep.OK() {
		snaps, err := a.Snapshots()
		if err != nil {
			return err
		}
		st, err := formats.Replay(snaps, "")
		if err != nil {
			return err
		}
		removed, err := a.RemoveOrphans(st)
		if err != nil {
			return err
		}
		if !quiet {
			fmt.Fprintf(e.stdout, "removed %d files left by interrupted runs\n", len(removed))
		}
	} else if len(rep.Orphans) > 0 && !quiet {
		fmt.Fprintf(e.stdout, "%d files left by interrupted runs (not part of any snapshot; the next backup removes them)\n", len(rep.Orphans))
	}
	if !rep.OK() {
		more := ""
		if len(rep.Problems) > 1 {
			more = fmt.Sprintf(" (and %d more, listed above)", len(rep.Problems)-1)
		}
		return fmt.Errorf("%w in %s: %s%s", errVerifyFailed, root, printable(rep.Problems[0]), more)
	}
	if !quiet {
		fmt.Fprintf(e.stdout, "ok: %d snapshots, %d segments, %d messages (%s) verified\n", rep.Snapshots, rep.Segments, rep.Messages, humanBytes(rep.Bytes))
	}
	return nil
}
