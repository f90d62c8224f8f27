package main

import (
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/restore"
)

// selectionFlags are shared by restore and ls.
func selectionFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "snapshot", Value: "latest", Usage: "snapshot `ID` (or unique prefix), or latest"},
		&cli.StringFlag{Name: "as-of", Usage: "the last complete snapshot at or before `DATE` (YYYY-MM-DD, or RFC 3339)"},
		&cli.StringSliceFlag{Name: "folder", Usage: "only this `FOLDER` (repeatable)"},
		&cli.StringSliceFlag{Name: "include", Usage: "only folders matching `GLOB` (\"/\" separates levels; repeatable)"},
		&cli.StringSliceFlag{Name: "exclude", Usage: "leave out folders matching `GLOB` (repeatable)"},
		&cli.StringFlag{Name: "since", Usage: "only messages received on or after `DATE`"},
		&cli.StringFlag{Name: "before", Usage: "only messages received before `DATE`"},
		&cli.StringFlag{Name: "from", Usage: "only messages whose From contains `TEXT` (case-insensitive)"},
		&cli.StringFlag{Name: "to", Usage: "only messages whose To contains `TEXT`"},
		&cli.StringFlag{Name: "subject", Usage: "only messages whose Subject contains `TEXT`"},
		&cli.StringFlag{Name: "message-id", Usage: "only the message with this `ID`"},
		&cli.StringFlag{Name: "deleted-since", Usage: "only messages present in snapshot `ID` and deleted on the server since"},
	}
}

// parseDate reads YYYY-MM-DD (local midnight; endOfDay moves it to the
// next midnight) or an RFC 3339 time.
func parseDate(flag, s string, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	t, err := time.ParseInLocation("2006-01-02", s, time.Local)
	if err != nil {
		return time.Time{}, usagef("--%s %q: want YYYY-MM-DD or RFC 3339 (2006-01-02T15:04:05Z)", flag, s)
	}
	if endOfDay {
		t = t.AddDate(0, 0, 1).Add(-time.Nanosecond)
	}
	return t, nil
}

func parseSelection(c *cli.Context) (restore.Selection, error) {
	sel := restore.Selection{
		Snapshot:     c.String("snapshot"),
		Folders:      c.StringSlice("folder"),
		Include:      c.StringSlice("include"),
		Exclude:      c.StringSlice("exclude"),
		From:         c.String("from"),
		To:           c.String("to"),
		Subject:      c.String("subject"),
		MessageID:    strings.TrimSpace(c.String("message-id")),
		DeletedSince: c.String("deleted-since"),
	}
	var err error
	if sel.AsOf, err = parseDate("as-of", c.String("as-of"), true); err != nil {
		return sel, err
	}
	if sel.Since, err = parseDate("since", c.String("since"), false); err != nil {
		return sel, err
	}
	if sel.Before, err = parseDate("before", c.String("before"), false); err != nil {
		return sel, err
	}
	if c.IsSet("as-of") && c.IsSet("snapshot") {
		return sel, usagef("--snapshot and --as-of exclude each other")
	}
	if c.IsSet("as-of") {
		sel.Snapshot = ""
	}
	return sel, nil
}
