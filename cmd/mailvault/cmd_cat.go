package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/formats"
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
	a, _, st, err := openState(root, snap)
	if err != nil {
		return err
	}
	f := st.Folders[folder]
	if f == nil {
		return usagef("no folder %q in the archive", folder)
	}
	m := f.Lookup(key)
	if m == nil && len(key) >= 8 && !strings.Contains(key, ":") {
		for _, c := range f.Archived {
			if strings.HasPrefix(c.SHA256, strings.ToLower(key)) {
				if m != nil && m.SHA256 != c.SHA256 {
					return usagef("hash prefix %q is ambiguous in %q", key, folder)
				}
				m = c
			}
		}
	}
	if m == nil {
		return usagef("no message %q in folder %q (see 'mailvault ls %s %s --all')", key, folder, root, folder)
	}
	r, err := a.OpenMessage(st, &m.Message)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	if _, err := io.Copy(io.MultiWriter(e.stdout, h), r); err != nil {
		return err
	}
	if hex.EncodeToString(h.Sum(nil)) != m.SHA256 {
		return fmt.Errorf("%w: message %s does not match its SHA-256", formats.ErrCorrupt, m.Key)
	}
	return nil
}
