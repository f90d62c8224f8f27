package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/restore"
)

func catCommand() *cli.Command {
	return &cli.Command{
		Name:      "cat",
		Usage:     "write one archived message, byte for byte, to stdout",
		ArgsUsage: "ARCHIVE FOLDER KEY",
		Description: `KEY is a message key from 'mailvault ls' (UIDVALIDITY:UID) or a unique prefix
(at least 8 hex digits) of the message's SHA-256. Messages deleted on the
server are found too. Only the part of the archive holding the message is
decompressed; its SHA-256 is checked as it is written.

EXAMPLES:
   mailvault cat ./vault INBOX 1700000000:42 > message.eml
   mailvault cat ./vault Sent 3f9a12bc --snapshot 1a2b3c4d

` + exitCodesHelp,
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "snapshot", Value: "latest", Usage: "snapshot `ID` (or unique prefix), or latest"},
		},
		Action: func(c *cli.Context) error {
			a, err := args(c, 3, 3, "ARCHIVE FOLDER KEY")
			if err != nil {
				return err
			}
			return runCat(a[0], a[1], a[2], c.String("snapshot"), envOf(c))
		},
	}
}

func runCat(root, folder, key, snap string, e *env) error {
	a, err := formats.Open(root)
	if err != nil {
		return err
	}
	heads, err := a.Headers()
	if err != nil {
		return err
	}
	if len(heads) == 0 {
		return fmt.Errorf("archive %s has no snapshots yet", root)
	}
	snaps := make([]*formats.Snapshot, len(heads))
	for i, h := range heads {
		snaps[i] = &h.Snapshot
	}
	id, err := restore.ResolveSnapshot(snaps, snap, time.Time{})
	if err != nil {
		return err
	}
	seq := 0
	for _, s := range snaps {
		if s.ID == id {
			seq = s.Seq
		}
	}
	// The state index at that snapshot: one lookup, or one pass over the
	// folder for a hash prefix; nothing holds the folder.
	ix, err := a.ReadIndex(seq)
	if err != nil {
		return err
	}
	defer ix.Close()
	f := ix.Folder(folder)
	if f == nil {
		return usagef("no folder %q in the archive", folder)
	}
	found, err := ix.Get(f.ID, key)
	if err != nil {
		return err
	}
	var m *formats.Message
	if found != nil {
		m = &found.Message
	} else if len(key) >= 8 && !strings.Contains(key, ":") {
		prefix := strings.ToLower(key)
		mi := ix.Messages(f.ID, true)
		for c := mi.Next(); c != nil; c = mi.Next() {
			if !strings.HasPrefix(c.SHA256, prefix) {
				continue
			}
			if m != nil && m.SHA256 != c.SHA256 {
				mi.Release()
				return usagef("hash prefix %q is ambiguous in %q", key, folder)
			}
			if m == nil {
				c := c.Message
				m = &c
			}
		}
		err := mi.Err()
		mi.Release()
		if err != nil {
			return err
		}
	}
	if m == nil {
		return usagef("no message %q in folder %q (see 'mailvault ls %s %s --all')", key, folder, root, folder)
	}
	mr := a.NewIndexMessageReader(ix)
	defer mr.Close()
	r, err := mr.Open(m)
	if err != nil {
		return err
	}
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(e.stdout, h), r); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return fmt.Errorf("%w: message %s does not match its SHA-256", formats.ErrCorrupt, m.Key)
	}
	return nil
}
