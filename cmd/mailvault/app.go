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
	// json: --log-format json; every line on stderr is a JSON object and
	// summaries on stdout are JSON too.
	json bool
	// ui draws a backup's progress on a terminal (nil: none).
	ui *progressUI
}

type envKey struct{}

func envOf(c *cli.Context) *env { return c.Context.Value(envKey{}).(*env) }

// run is main without os.Exit: it runs the command line until it ends or
// SIGINT/SIGTERM arrives, and returns the exit code.
func run(args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runContext(ctx, args, stdin, stdout, stderr, getenv)
}

// runContext runs the command line until it ends or ctx is cancelled and
// returns the exit code, printing an error as one line on stderr (a JSON
// object with --log-format json).
func runContext(ctx context.Context, args []string, stdin *os.File, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, json: jsonLogRequested(args)}
	ctx = context.WithValue(ctx, envKey{}, e)
	app := newApp(stdout, stderr)
	err := app.RunContext(ctx, reorderArgs(app, args))
	code := exitCode(err)
	if err != nil {
		if e.json {
			line := strings.TrimPrefix(oneLine(err), "mailvault: ")
			slog.New(slog.NewJSONHandler(stderr, nil)).Error(line, "exit_code", code)
		} else {
			fmt.Fprintln(stderr, oneLine(err))
		}
	}
	return code
}

// jsonLogRequested reports whether the command line asks for
// --log-format json, before any parsing (so that even a usage error is
// printed as JSON).
func jsonLogRequested(args []string) bool {
	json := false
	for i := 1; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		switch {
		case args[i] == "--":
			return json
		case !strings.HasPrefix(args[i], "-"):
			continue
		case a == "log-format" && i+1 < len(args):
			json = args[i+1] == "json"
			i++
		case strings.HasPrefix(a, "log-format="):
			json = a == "log-format=json"
		}
	}
	return json
}

// notice prints an informational line on stderr: "mailvault: msg", or a
// JSON object with --log-format json. Unlike log messages it is printed
// whatever the log level; -q leaves it out.
func (e *env) notice(msg string, attrs ...any) {
	if e.json {
		slog.New(slog.NewJSONHandler(e.stderr, nil)).Info(msg, attrs...)
		return
	}
	fmt.Fprintln(e.stderr, "mailvault: "+msg)
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
   mailvault verify ./vault

` + exitCodesHelp,
		Writer:               stdout,
		ErrWriter:            stderr,
		HideVersion:          true, // --version is ours: it says the commit too
		HideHelpCommand:      true, // "help" is ours: an unknown topic is an error
		EnableBashCompletion: false,
		// urfave/cli must never call os.Exit itself: exitCode maps errors.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			if !isSubcommand || c.Command.Name == "help" {
				return usagef("%v (see 'mailvault --help')", err)
			}
			return usagef("%v (see 'mailvault %s --help')", err, c.Command.Name)
		},
		// --cpuprofile and --memprofile are for developers (see README,
		// Development).
		Flags: []cli.Flag{
			// Added by urfave/cli only when it adds its help command too.
			cli.HelpFlag,
			&cli.BoolFlag{Name: "version", Usage: "print the version, the commit it was built from and the Go version"},
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
			forgetCommand(),
			pruneCommand(),
			eraseCommand(),
			checkConfigCommand(),
			authCommand(),
			demoCommand(),
			helpCommand(),
		},
		// Runs when no command was named, or an unknown one.
		Action: func(c *cli.Context) error {
			if c.Bool("version") {
				fmt.Fprintln(c.App.Writer, versionLine(buildInfo(), version, commit))
				return nil
			}
			if !c.Args().Present() {
				// Usage goes to stderr: a bare "mailvault" in a script is a mistake.
				w := c.App.Writer
				c.App.Writer = stderr
				cli.ShowAppHelp(c)
				c.App.Writer = w
				return usagef("no command given (see 'mailvault --help')")
			}
			return unknownCommand(c.App, "unknown command", c.Args().First())
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

// helpCommand replaces urfave/cli's, which prints an unknown topic's
// error and exits 0.
func helpCommand() *cli.Command {
	return &cli.Command{
		Name:      "help",
		Aliases:   []string{"h"},
		Usage:     "show the commands, or the help of one command",
		ArgsUsage: "[COMMAND]",
		HideHelp:  true,
		Action: func(c *cli.Context) error {
			root := c.Lineage()[1] // the application's context
			name := c.Args().First()
			switch {
			case name == "":
				return cli.ShowAppHelp(root)
			case c.App.Command(name) != nil && name != "help" && name != "h":
				return cli.ShowCommandHelp(root, name)
			}
			return unknownCommand(c.App, "no help for", name)
		},
	}
}

// unknownCommand is the usage error for a command name that is not one,
// suggesting the closest.
func unknownCommand(app *cli.App, what, name string) error {
	var names []string
	for _, c := range app.Commands {
		if c.Name != "help" {
			names = append(names, c.Name)
		}
	}
	if s := closest(name, names); s != "" {
		return usagef("%s %q (did you mean %q? see 'mailvault --help')", what, printable(name), s)
	}
	return usagef("%s %q (see 'mailvault --help')", what, printable(name))
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
	return newLoggerTo(c, envOf(c).stderr)
}

// newLoggerTo is newLogger writing to w.
func newLoggerTo(c *cli.Context, w io.Writer) (*slog.Logger, error) {
	level := slog.LevelWarn
	if c.Bool("verbose") {
		level = slog.LevelInfo
	}
	if c.Bool("quiet") {
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
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
