package main

import (
	"encoding/json"
	"fmt"
	"strings"
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
gone, and bytes added; and the mailbox's quota as the server reported it
(IMAP QUOTA) when a run recorded one.

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
	// Quota is what the server said of the mailbox's quota in that run.
	Quota []formats.Quota `json:"quota,omitempty"`
}

// summarize is the line of snapshot h (a header, without records: its
// entries count them), which stored the given bytes.
func summarize(h *formats.Header, stored int64) snapshotLine {
	l := snapshotLine{ID: h.ID, Started: h.Started, Finished: h.Finished, Status: h.Status, Source: h.Source, Folders: len(h.Folders), Errors: h.Errors, Bytes: stored, Quota: h.Quota}
	for _, d := range h.Deltas {
		l.Added += d.Added
		l.Gone += d.Gone
	}
	return l
}

func runSnapshots(root string, asJSON bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	// Headers only: the records are never read (counts are in them).
	snaps, err := a.Headers()
	if err != nil {
		return err
	}
	stored, err := a.HeaderStoredBytes(snaps)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(e.stdout)
		for i, s := range snaps {
			if err := enc.Encode(summarize(s, stored[i])); err != nil {
				return err
			}
		}
		return nil
	}
	// The QUOTA column is there when a run recorded a quota.
	withQuota := false
	for _, s := range snaps {
		withQuota = withQuota || len(s.Quota) > 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	head := "ID\tTIME\tSTATUS\tFOLDERS\tADDED\tGONE\tSTORED"
	if withQuota {
		head += "\tQUOTA"
	}
	fmt.Fprintln(tw, head)
	for i, s := range snaps {
		l := summarize(s, stored[i])
		line := fmt.Sprintf("%s\t%s\t%s\t%d\t%d\t%d\t%s", l.ID, l.Started.Local().Format("2006-01-02 15:04:05"), l.Status, l.Folders, l.Added, l.Gone, humanBytes(l.Bytes))
		if withQuota {
			line += "\t" + quotaText(l.Quota)
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

// quotaText says a run's quota in a few words: "1.2 MiB of 10.0 MiB"
// for STORAGE (KiB), "120 of 1000 messages" for MESSAGE, "-" for none.
func quotaText(q []formats.Quota) string {
	var parts []string
	for _, r := range q {
		switch r.Resource {
		case "STORAGE":
			parts = append(parts, fmt.Sprintf("%s of %s", humanBytes(r.Used<<10), humanBytes(r.Limit<<10)))
		case "MESSAGE":
			parts = append(parts, fmt.Sprintf("%d of %d messages", r.Used, r.Limit))
		default:
			parts = append(parts, fmt.Sprintf("%s %d of %d", printable(r.Resource), r.Used, r.Limit))
		}
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
