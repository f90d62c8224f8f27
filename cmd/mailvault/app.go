package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/urfave/cli/v2"
)

// env is what a command needs from its process, so tests can run commands
// in-process.
type env struct {
	stdin          *os.File
	stdout, stderr io.Writer
	getenv         func(string) string
}

type envKey struct{}

func envOf(c *cli.Context) *env { return c.Context.Value(envKey{}).(*env) }

// run is main without os.Exit: it runs the command line and returns the
// exit code, printing errors as one line on stderr.
func run(args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	ctx = context.WithValue(ctx, envKey{}, e)
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, reorderArgs(app, args))
	if err != nil {
		fmt.Fprintln(stderr, oneLine(err))
	}
	return exitCode(err)
}

func newApp(stdout, stderr io.Writer) *cli.App {
	app := &cli.App{
		Name:  "mailvault",
		Usage: "back up mailboxes into a verifiable, incremental archive",
		Description: `mailvault walks every IMAP folder and stores each run as a snapshot in a
compressed mboxrd archive. Only new mail is downloaded; mail deleted on the
server stays in the archive. The server is never modified.

Quick start:
   MAILVAULT_PASSWORD=... mailvault backup imaps://alice@mail.example.com ./vault
   mailvault snapshots ./vault
   mailvault ls ./vault INBOX
   mailvault verify ./vault`,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideVersion:          true,
		EnableBashCompletion: false,
		// urfave/cli must never call os.Exit itself: exitCode maps errors.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usagef("%v (see 'mailvault %s --help')", err, c.Command.Name)
		},
		// Profiling, for developers (see README, Development).
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a CPU profile to `FILE`"},
			&cli.StringFlag{Name: "memprofile", Hidden: true, Usage: "write an allocation profile to `FILE` at exit"},
		},
		Before: startProfiles,
		After:  stopProfiles,
		Commands: []*cli.Command{
			backupCommand(),
			restoreCommand(),
			migrateCommand(),
			snapshotsCommand(),
			lsCommand(),
			catCommand(),
			verifyCommand(),
			authCommand(),
			demoCommand(),
		},
		CommandNotFound: func(c *cli.Context, name string) {
			fmt.Fprintf(stderr, "mailvault: unknown command %q (see 'mailvault --help')\n", name)
		},
	}
	for _, c := range app.Commands {
		c.OnUsageError = app.OnUsageError
		for _, s := range c.Subcommands {
			s.OnUsageError = app.OnUsageError
		}
	}
	return app
}

// reorderArgs moves the flags of a command in front of its positional
// arguments, so that "mailvault backup URL ./vault --timeout 10s" works as
// well as the flags-first form urfave/cli expects. "--" ends flag parsing.
func reorderArgs(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	var cmd *cli.Command
	global := valueFlags(app.Flags)
	i := 1
	for ; i < len(args); i++ {
		if !strings.HasPrefix(args[i], "-") {
			cmd = app.Command(args[i])
			break
		}
		if name := strings.TrimLeft(args[i], "-"); global[name] && !strings.Contains(name, "=") {
			i++ // the global flag's value
		}
	}
	if cmd == nil || len(cmd.Subcommands) > 0 {
		return args // a subcommand parses its own flags
	}
	takesValue := valueFlags(cmd.Flags)
	var flags, pos []string
	rest := args[i+1:]
	for j := 0; j < len(rest); j++ {
		a := rest[j]
		if a == "--" {
			pos = append(pos, rest[j+1:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		if takesValue[name] && j+1 < len(rest) {
			flags = append(flags, rest[j+1])
			j++
		}
	}
	out := append([]string{}, args[:i+1]...)
	out = append(out, flags...)
	if len(pos) > 0 {
		out = append(out, "--")
		out = append(out, pos...)
	}
	return out
}

// valueFlags returns the names of the flags that take a value.
func valueFlags(flags []cli.Flag) map[string]bool {
	out := map[string]bool{}
	for _, f := range flags {
		_, isBool := f.(*cli.BoolFlag)
		for _, n := range f.Names() {
			out[n] = !isBool
		}
	}
	return out
}

// logFlags are shared by the commands that log.
func logFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "log each folder and step"},
		&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only errors (for cron)"},
		&cli.StringFlag{Name: "log-format", Value: "text", Usage: "log format on stderr: text or json"},
	}
}

func newLogger(c *cli.Context) (*slog.Logger, error) {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	if c.Bool("quiet") {
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	w := envOf(c).stderr
	switch c.String("log-format") {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usagef("--log-format must be text or json")
}

// args returns exactly n positional arguments or a usage error.
func args(c *cli.Context, min, max int, names string) ([]string, error) {
	a := c.Args().Slice()
	if len(a) < min || len(a) > max {
		return nil, usagef("usage: mailvault %s %s", c.Command.Name, names)
	}
	return a, nil
}

var errPasswordFlag = errors.New("--password is refused: a password on the command line is visible to every user in ps and stays in shell history; use --password-file, MAILVAULT_PASSWORD or --password-command")
