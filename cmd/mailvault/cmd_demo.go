package main

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/demo"
	"github.com/mailvault/mailvault/internal/secret"
)

func demoCommand() *cli.Command {
	return &cli.Command{
		Name:      "demo",
		Usage:     "see a whole backup and restore, with no mail server of your own",
		ArgsUsage: "[DIR]",
		Description: `Starts an IMAP server inside this program, on 127.0.0.1, with two accounts:
alice, holding a generated sample mailbox (a few hundred messages in nested
and non-ASCII folders, Sent, Drafts, Trash, Junk and Archive, flags,
keywords, attachments, a message without Message-ID, bodies with "From "
lines), and an empty one, bob. Then it runs and prints, one step at a time,
the real commands: a backup, a second backup that downloads nothing, changes
on the server, a third backup, snapshots, ls --all, verify, a restore of
what was deleted into bob's account, and a Maildir export. It checks each
result byte for byte and stops at the first step that is not what it should
be. Nothing leaves this computer; it takes a few seconds.

The archive and the export are left in DIR, which must be new or empty (a
new temporary directory when DIR is not given); the demo says where.

EXAMPLES:
   mailvault demo
   mailvault demo ./mailvault-demo

EXIT CODES:
   0    every step ran and its result was checked
   1    a step failed or its result was wrong (the message names the step)
   2    usage error (DIR is not empty, too many arguments)
   130  interrupted`,
		Action: func(c *cli.Context) error {
			a, err := args(c, 0, 1, "[DIR]")
			if err != nil {
				return err
			}
			dir := ""
			if len(a) == 1 {
				if dir = expandHome(a[0]); dir == "" {
					return usagef("DIR must not be empty")
				}
			}
			return runDemo(c.Context, demo.Options{Dir: dir}, envOf(c))
		},
	}
}

// runDemo runs the demo in o.Dir, with o's hooks (tests set them). Each
// of its commands goes through run, as if typed, with the account's
// password in MAILVAULT_PASSWORD and nothing else from the environment.
func runDemo(ctx context.Context, o demo.Options, e *env) error {
	o.Program = programName(os.Args[0])
	o.Stdout, o.Stderr = e.stdout, e.stderr
	o.Exec = func(args []string, password string, stdout, stderr io.Writer) int {
		getenv := func(k string) string {
			if k == secret.EnvVar {
				return password
			}
			return ""
		}
		return run(append([]string{"mailvault"}, args...), nil, stdout, stderr, getenv)
	}
	err := demo.Run(ctx, o)
	if errors.Is(err, demo.ErrDirNotEmpty) {
		return usagef("%v", err)
	}
	return err
}

// programName is how the user ran mailvault, for the command lines the
// demo prints: the path typed (bin/mailvault), or "mailvault" under go run
// or go test.
func programName(arg0 string) string {
	if filepath.Base(arg0) != "mailvault" || strings.Contains(arg0, "go-build") {
		return "mailvault"
	}
	return arg0
}
