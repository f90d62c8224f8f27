package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/restore"
)

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// printable replaces control characters so that hostile folder names and
// headers cannot drive the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return '?'
		}
		return r
	}, s)
}

// openState opens an archive read-only and replays it to the snapshot
// named by sel: "" or "latest" for the last one, else an id or a unique
// prefix of one.
func openState(root, sel string) (*formats.Archive, []*formats.Snapshot, *formats.State, error) {
	a, err := formats.Open(root)
	if err != nil {
		return nil, nil, nil, err
	}
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, nil, nil, err
	}
	if len(snaps) == 0 {
		return nil, nil, nil, fmt.Errorf("archive %s has no snapshots yet", root)
	}
	id, err := restore.ResolveSnapshot(snaps, sel, time.Time{})
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := formats.Replay(snaps, id)
	if err != nil {
		return nil, nil, nil, err
	}
	return a, snaps, st, nil
}
