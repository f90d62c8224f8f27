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

func runLs(root string, sel restore.Selection, messages, asJSON bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	if sel.DeletedSince == "" {
		return runLsIndex(a, root, sel, messages, asJSON, e)
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return err
	}
	selected, err := restore.Select(snaps, sel)
	if err != nil {
		return err
	}
	if selected.NothingDeleted {
		e.notice("nothing was deleted on the server between snapshot " + sel.DeletedSince + " and snapshot " + selected.Snapshot.ID)
	}
	if len(sel.Folders) == 1 && len(selected.Folders) == 0 && messages {
		if selected.State.Folders[sel.Folders[0]] == nil {
			return usagef("no folder %q in the archive (see 'mailvault ls %s')", sel.Folders[0], root)
		}
	}
	var tw table
	enc := json.NewEncoder(e.stdout)
	if !messages {
		if !asJSON {
			tw.add("FOLDER", "MESSAGES", "SIZE", "GONE", "ROLE", "STATUS")
		}
		for _, sf := range selected.Folders {
			f := selected.State.Folders[sf.Folder.Name]
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
				enc.Encode(map[string]any{"folder": f.Name, "messages": n, "size": size, "gone": gone, "special_use": f.SpecialUse, "status": status})
				continue
			}
			tw.add(printable(f.Name), strconv.Itoa(n), humanBytes(size), strconv.Itoa(gone), f.SpecialUse, status)
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
	for _, sf := range selected.Folders {
		for _, m := range sf.Messages {
			if asJSON {
				enc.Encode(struct {
					Folder string `json:"folder"`
					formats.Message
					Gone bool `json:"gone,omitempty"`
				}{sf.Folder.Name, m.Message, m.Gone})
				continue
			}
			flags := strings.Join(m.Flags, " ")
			if m.Gone {
				flags = strings.TrimSpace("(gone) " + flags)
			}
			row := []string{m.Key, m.InternalDate.Local().Format("2006-01-02 15:04"),
				truncate(printable(m.From), 30), truncate(printable(m.Subject), 50), humanBytes(m.Size), flags}
			if many {
				row = append([]string{truncate(printable(sf.Folder.Name), 30)}, row...)
			}
			tw.add(row...)
		}
	}
	return tw.write(e.stdout)
}

// runLsIndex is ls without --deleted-since: from a state index at the
// chosen snapshot (the archive's own when it is there, else a temporary
// one built from the manifests), folders from its counts, messages
// streamed in key order: nothing holds a folder's messages.
func runLsIndex(a *formats.Archive, root string, sel restore.Selection, messages, asJSON bool, e *env) error {
	heads, err := a.Headers()
	if err != nil {
		return err
	}
	snaps := make([]*formats.Snapshot, len(heads))
	for i, h := range heads {
		snaps[i] = &h.Snapshot
	}
	id, err := restore.ResolveSnapshot(snaps, sel.Snapshot, sel.AsOf)
	if err != nil {
		return err
	}
	seq := 0
	for _, h := range heads {
		if h.ID == id {
			seq = h.Seq
		}
	}
	ix, err := a.ReadIndex(seq)
	if err != nil {
		return err
	}
	defer ix.Close()
	listing, err := restore.SelectIndex(ix, sel)
	if err != nil {
		return err
	}
	if len(sel.Folders) == 1 && len(listing.Folders) == 0 && messages {
		if ix.Folder(sel.Folders[0]) == nil {
			return usagef("no folder %q in the archive (see 'mailvault ls %s')", sel.Folders[0], root)
		}
	}
	var tw table
	enc := json.NewEncoder(e.stdout)
	if !messages {
		if !asJSON {
			tw.add("FOLDER", "MESSAGES", "SIZE", "GONE", "ROLE", "STATUS")
		}
		for _, f := range listing.Folders {
			status := f.Folder.Status
			if f.Deleted {
				status = "deleted"
			}
			if asJSON {
				enc.Encode(map[string]any{"folder": f.Folder.Name, "messages": f.Present, "size": f.Bytes, "gone": f.Gone, "special_use": f.Folder.SpecialUse, "status": status})
				continue
			}
			tw.add(printable(f.Folder.Name), strconv.FormatInt(f.Present, 10), humanBytes(f.Bytes), strconv.FormatInt(f.Gone, 10), f.Folder.SpecialUse, status)
		}
		return tw.write(e.stdout)
	}
	many := len(listing.Folders) > 1
	if !asJSON {
		head := []string{"KEY", "DATE", "FROM", "SUBJECT", "SIZE", "FLAGS"}
		if many {
			head = append([]string{"FOLDER"}, head...)
		}
		tw.add(head...)
	}
	for _, f := range listing.Folders {
		err := listing.Each(f, func(m *formats.MessageState) error {
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
