package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list folders, or the messages of a folder, at a snapshot",
		ArgsUsage: "ARCHIVE [FOLDER]",
		Description: `Without FOLDER: every folder at the snapshot with its message count and
size, and how many of its messages are gone from the server but kept.
With FOLDER: its messages (key, date, from, subject, size, flags). Keys are
what 'mailvault cat' takes.

EXAMPLES:
   mailvault ls ./vault
   mailvault ls ./vault INBOX
   mailvault ls ./vault INBOX --all --snapshot 1a2b3c4d     # include messages deleted on the server

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot", Value: "latest", Usage: "snapshot `ID` (or unique prefix), or latest"},
			&cli.BoolFlag{Name: "all", Usage: "include folders and messages deleted on the server"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per line"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 2, "ARCHIVE [FOLDER]")
			if err != nil {
				return err
			}
			folder := ""
			if len(a) == 2 {
				folder = a[1]
			}
			return runLs(a[0], folder, c.String("snapshot"), c.Bool("all"), c.Bool("json"), envOf(c))
		},
	}
}

func runLs(root, folder, snap string, all, asJSON bool, e *env) error {
	_, _, st, err := openState(root, snap)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	enc := json.NewEncoder(e.stdout)
	if folder == "" {
		if !asJSON {
			fmt.Fprintln(tw, "FOLDER\tMESSAGES\tSIZE\tGONE\tROLE\tSTATUS")
		}
		for _, name := range st.FolderNames() {
			f := st.Folders[name]
			if f.Deleted && !all {
				continue
			}
			n, gone, size := 0, 0, int64(0)
			for _, m := range f.Archived {
				if m.Gone {
					gone++
				} else {
					n++
					size += m.Size
				}
			}
			status := f.Status
			if f.Deleted {
				status = "deleted"
			}
			if asJSON {
				enc.Encode(map[string]any{"folder": name, "messages": n, "size": size, "gone": gone, "special_use": f.SpecialUse, "status": status})
				continue
			}
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\n", printable(name), n, humanBytes(size), gone, f.SpecialUse, status)
		}
		return tw.Flush()
	}
	f := st.Folders[folder]
	if f == nil {
		return usagef("no folder %q in the archive (see 'mailvault ls %s')", folder, root)
	}
	if !asJSON {
		fmt.Fprintln(tw, "KEY\tDATE\tFROM\tSUBJECT\tSIZE\tFLAGS")
	}
	for _, m := range f.Archived {
		if m.Gone && !all {
			continue
		}
		if asJSON {
			enc.Encode(struct {
				formats.Message
				Gone bool `json:"gone,omitempty"`
			}{m.Message, m.Gone})
			continue
		}
		flags := strings.Join(m.Flags, " ")
		if m.Gone {
			flags = strings.TrimSpace("(gone) " + flags)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", m.Key, m.InternalDate.Local().Format("2006-01-02 15:04"),
			truncate(printable(m.From), 30), truncate(printable(m.Subject), 50), humanBytes(m.Size), flags)
	}
	return tw.Flush()
}
