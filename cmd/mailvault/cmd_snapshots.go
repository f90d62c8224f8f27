package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
)

func snapshotsCommand() *cli.Command {
	return &cli.Command{
		Name:      "snapshots",
		Usage:     "list the runs stored in an archive",
		ArgsUsage: "ARCHIVE",
		Description: `One line per run: id, start time, status, folders, messages added and
gone, and bytes added.

EXAMPLES:
   mailvault snapshots ./vault
   mailvault snapshots ./vault --json | jq .

` + exitCodesHelp,
		Flags: []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "one JSON object per snapshot"}},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "ARCHIVE")
			if err != nil {
				return err
			}
			return runSnapshots(a[0], c.Bool("json"), envOf(c))
		},
	}
}

type snapshotLine struct {
	ID       string    `json:"id"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   string    `json:"status"`
	Source   string    `json:"source"`
	Folders  int       `json:"folders"`
	Added    int       `json:"added"`
	Gone     int       `json:"gone"`
	Bytes    int64     `json:"bytes"`
	Errors   []string  `json:"errors,omitempty"`
}

// summarize is the line of snapshot s, which stored the given bytes.
func summarize(s *formats.Snapshot, stored int64) snapshotLine {
	l := snapshotLine{ID: s.ID, Started: s.Started, Finished: s.Finished, Status: s.Status, Source: s.Source, Folders: len(s.Folders), Errors: s.Errors, Bytes: stored}
	for _, c := range s.Changes {
		l.Added += len(c.Added)
		l.Gone += len(c.Gone)
	}
	return l
}

func runSnapshots(root string, asJSON bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return err
	}
	stored := a.StoredBytes(snaps)
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		for i, s := range snaps {
			if err := enc.Encode(summarize(s, stored[i])); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tSTATUS\tFOLDERS\tADDED\tGONE\tSTORED")
	for i, s := range snaps {
		l := summarize(s, stored[i])
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\t%s\n", l.ID, l.Started.Local().Format("2006-01-02 15:04:05"), l.Status, l.Folders, l.Added, l.Gone, humanBytes(l.Bytes))
	}
	return tw.Flush()
}
