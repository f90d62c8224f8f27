package main

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/restore"
)

func lsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list folders, or the messages of a folder, at a snapshot",
		ArgsUsage: "ARCHIVE [FOLDER]",
		Description: `Without FOLDER: every folder at the snapshot with its message count and
size, and how many of its messages are gone from the server but kept.
With FOLDER, or with any message filter (the same selection flags as
'mailvault restore'): the messages (key, date, from, subject, size, flags),
so you can look before you restore. Keys are what 'mailvault cat' takes.

EXAMPLES:
   mailvault ls ./vault
   mailvault ls ./vault INBOX
   mailvault ls ./vault INBOX --all --snapshot 1a2b3c4d     # include messages deleted on the server
   mailvault ls ./vault --deleted-since 1a2b3c4d            # what was deleted since that run
   mailvault ls ./vault --from bob@example.com --subject invoice --since 2026-01-01

` + exitCodesHelp,
		Flags: append(selectionFlags(),
			&cli.BoolFlag{Name: "all", Usage: "include folders and messages deleted on the server"},
			&cli.BoolFlag{Name: "json", Usage: "one JSON object per line"},
		),
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 2, "ARCHIVE [FOLDER]")
			if err != nil {
				return err
			}
			sel, err := parseSelection(c)
			if err != nil {
				return err
			}
			sel.All = c.Bool("all")
			messages := len(a) == 2 || sel.Since != (time.Time{}) || sel.Before != (time.Time{}) || sel.From != "" ||
				sel.To != "" || sel.Subject != "" || sel.MessageID != "" || sel.DeletedSince != ""
			if len(a) == 2 {
				sel.Folders = append(sel.Folders, a[1])
			}
			return runLs(a[0], sel, messages, c.Bool("json"), envOf(c))
		},
	}
}

// runLs lists from a state index at the chosen snapshot (the archive's
// own when it is there, else a temporary one built from the manifests):
// folders from its counts, messages streamed in key order; nothing holds
// a folder's messages.
func runLs(root string, sel restore.Selection, messages, asJSON bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	selected, err := restore.Select(a, sel)
	if err != nil {
		return err
	}
	defer selected.Close()
	if selected.NothingDeleted {
		e.notice("nothing was deleted on the server between snapshot " + sel.DeletedSince + " and snapshot " + selected.Snapshot.ID)
	}
	if len(sel.Folders) == 1 && len(selected.Folders) == 0 && messages && !selected.Has(sel.Folders[0]) {
		return usagef("no folder %q in the archive (see 'mailvault ls %s')", sel.Folders[0], root)
	}
	var tw table
	enc := json.NewEncoder(e.stdout)
	if !messages {
		if !asJSON {
			tw.add("FOLDER", "MESSAGES", "SIZE", "GONE", "ROLE", "STATUS")
		}
		for _, f := range selected.Folders {
			status := f.Folder.Status
			if f.Deleted {
				status = "deleted"
			}
			if asJSON {
				enc.Encode(map[string]any{"folder": f.Folder.Name, "messages": f.Present, "size": f.PresentBytes, "gone": f.Gone, "special_use": f.Folder.SpecialUse, "status": status})
				continue
			}
			tw.add(printable(f.Folder.Name), strconv.FormatInt(f.Present, 10), humanBytes(f.PresentBytes), strconv.FormatInt(f.Gone, 10), f.Folder.SpecialUse, status)
		}
		return tw.write(e.stdout)
	}
	many := len(selected.Folders) > 1
	if !asJSON {
		head := []string{"KEY", "DATE", "FROM", "SUBJECT", "SIZE", "FLAGS"}
		if many {
			head = append([]string{"FOLDER"}, head...)
		}
		tw.add(head...)
	}
	for _, f := range selected.Folders {
		err := selected.Each(f, func(m *formats.MessageState) error {
			if asJSON {
				return enc.Encode(struct {
					Folder string `json:"folder"`
					formats.Message
					Gone bool `json:"gone,omitempty"`
				}{f.Folder.Name, m.Message, m.Gone})
			}
			flags := strings.Join(m.Flags, " ")
			if m.Gone {
				flags = strings.TrimSpace("(gone) " + flags)
			}
			row := []string{m.Key, m.InternalDate.Local().Format("2006-01-02 15:04"),
				truncate(printable(m.From), 30), truncate(printable(m.Subject), 50), humanBytes(m.Size), flags}
			if many {
				row = append([]string{truncate(printable(f.Folder.Name), 30)}, row...)
			}
			tw.add(row...)
			if tw.len() >= lsFlushRows {
				return tw.flush(e.stdout)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return tw.write(e.stdout)
}
