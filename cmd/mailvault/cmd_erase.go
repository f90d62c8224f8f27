package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/failpoint"
)

func eraseCommand() *cli.Command {
	return &cli.Command{
		Name:      "erase",
		Usage:     "remove messages from every snapshot and from disk (an erasure request)",
		ArgsUsage: "ARCHIVE",
		Description: `Removes the selected messages from every snapshot of the archive and their
bytes from disk: the segments that hold them are rewritten without them (the
same bytes recorded for another message, in any folder, go too), Maildir files
are deleted with every hard link to them (and the messages recorded there),
the manifests rewritten. The archive records that an erasure
happened (when, the selection, --reason, how many messages), not what was
erased. 'verify' stays clean. Nothing else is pruned.

A message is selected when it matches every filter given: --message-id
(repeatable), --folder (repeatable; with --key, the message with that key,
e.g. 1700000000:42, as 'ls' shows it), --from, --to, --subject (contain, no
case), --since, --before (received). At least one filter other than
--folder is needed.

A message still on the server (in the newest snapshot) is stored again by
the next backup unless it is deleted there: erase says how many.

EXAMPLES:
   mailvault erase ./vault --message-id '<abc@example.com>' --reason "erasure request 2026-12" --dry-run
   mailvault erase ./vault --folder INBOX --key 1700000000:42 --reason "ticket 1234"

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "message-id", Usage: "the message(s) with this `ID` (repeatable)"},
			&cli.StringSliceFlag{Name: "folder", Usage: "only in this `FOLDER` (repeatable)"},
			&cli.StringSliceFlag{Name: "key", Usage: "the message with this `KEY` in --folder (repeatable)"},
			&cli.StringFlag{Name: "from", Usage: "messages whose From contains `TEXT`"},
			&cli.StringFlag{Name: "to", Usage: "messages whose To contains `TEXT`"},
			&cli.StringFlag{Name: "subject", Usage: "messages whose Subject contains `TEXT`"},
			&cli.StringFlag{Name: "since", Usage: "messages received on or after `DATE`"},
			&cli.StringFlag{Name: "before", Usage: "messages received before `DATE`"},
			&cli.StringFlag{Name: "reason", Usage: "why, recorded with the erasure (`TEXT`)"},
			&cli.BoolFlag{Name: "dry-run", Aliases: []string{"n"}, Usage: "list what would be erased, change nothing"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "ARCHIVE")
			if err != nil {
				return err
			}
			match, desc, err := eraseSelection(c)
			if err != nil {
				return err
			}
			return runErase(a[0], match, desc, c.String("reason"), c.Bool("dry-run"), envOf(c))
		},
	}
}

// eraseSelection reads the filters into a matcher and its description.
func eraseSelection(c *cli.Context) (func(string, *formats.Message) bool, string, error) {
	ids := map[string]bool{}
	for _, id := range c.StringSlice("message-id") {
		ids[normalizeMsgID(id)] = true
	}
	folders := c.StringSlice("folder")
	keys := map[string]bool{}
	for _, k := range c.StringSlice("key") {
		keys[k] = true
	}
	if len(keys) > 0 && len(folders) != 1 {
		return nil, "", usagef("--key needs exactly one --folder (keys are per folder)")
	}
	since, err := parseDate("since", c.String("since"), false)
	if err != nil {
		return nil, "", err
	}
	before, err := parseDate("before", c.String("before"), false)
	if err != nil {
		return nil, "", err
	}
	from, to, subject := c.String("from"), c.String("to"), c.String("subject")
	if len(ids)+len(keys) == 0 && from == "" && to == "" && subject == "" && since.IsZero() && before.IsZero() {
		return nil, "", usagef("erase needs a selection: --message-id, --folder with --key, --from, --to, --subject, --since or --before")
	}
	var desc []string
	for _, name := range []string{"message-id", "folder", "key"} {
		for _, v := range c.StringSlice(name) {
			desc = append(desc, fmt.Sprintf("--%s %q", name, v))
		}
	}
	for _, name := range []string{"from", "to", "subject", "since", "before"} {
		if v := c.String(name); v != "" {
			desc = append(desc, fmt.Sprintf("--%s %q", name, v))
		}
	}
	match := func(folder string, m *formats.Message) bool {
		switch {
		case len(folders) > 0 && !containsString(folders, folder),
			len(keys) > 0 && !keys[m.Key],
			len(ids) > 0 && !ids[normalizeMsgID(m.MessageID)],
			!since.IsZero() && m.InternalDate.Before(since),
			!before.IsZero() && !m.InternalDate.Before(before),
			!containsNoCase(m.From, from), !containsNoCase(m.To, to), !containsNoCase(m.Subject, subject):
			return false
		}
		return true
	}
	return match, strings.Join(desc, " "), nil
}

func normalizeMsgID(s string) string {
	return strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "<"), ">")
}

func containsNoCase(s, sub string) bool {
	return sub == "" || strings.Contains(strings.ToLower(s), strings.ToLower(sub))
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func runErase(root string, match func(string, *formats.Message) bool, desc, reason string, dryRun bool, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	a.Hook = failpoint.Hook()
	if !dryRun {
		if err := a.Lock("erase"); err != nil {
			return err
		}
		defer a.Unlock()
	}
	// The messages are printed as the archive lists them once the erase
	// is committed (or decided, on a dry run), not held: an erase may
	// select a whole mailbox.
	show := func(m formats.ErasedMessage) error {
		verb := "erased"
		if dryRun {
			verb = "would erase"
		}
		_, err := fmt.Fprintf(e.stdout, "%s  %s  %s  %s  %s  %s\n", verb, printable(m.Folder), m.Key, m.Date.Local().Format(time.DateOnly), printable(m.MessageID), printable(m.Subject))
		return err
	}
	opts := formats.EraseOptions{Match: match, Selection: desc, Reason: reason, DryRun: true}
	if dryRun {
		opts.Each = show
	}
	res, err := a.EraseWith(opts)
	if err != nil {
		return err
	}
	if res.ErasedCount == 0 {
		// The same erase done before (or finished when this one took the
		// lock, after a kill): nothing is left to do.
		recs, err := a.Erasures()
		if err != nil {
			return err
		}
		for i := len(recs) - 1; i >= 0; i-- {
			if recs[i].Selection == desc {
				fmt.Fprintf(e.stdout, "nothing left to erase: %s was erased on %s (%d messages)\n", desc, recs[i].Time.Local().Format(time.RFC3339), recs[i].Messages)
				return nil
			}
		}
		return usagef("erase: no message in %s matches %s", root, desc)
	}
	if !dryRun {
		opts.DryRun, opts.Each = false, show
		if res, err = a.EraseWith(opts); err != nil {
			return err
		}
	}
	onSource := res.ErasedOnSource
	if dryRun {
		fmt.Fprintf(e.stdout, "would erase %d messages (%d stored copies), from every snapshot (dry run: nothing changed)\n", res.ErasedCount, res.Records)
	} else {
		fmt.Fprintf(e.stdout, "erased %d messages from every snapshot and from disk; recorded in %s/\n", res.ErasedCount, formats.ErasuresDir)
	}
	if onSource > 0 {
		fmt.Fprintf(e.stdout, "note: %d of them are still on the server as of the newest snapshot: the next backup stores them again unless they are deleted there\n", onSource)
	}
	return nil
}
