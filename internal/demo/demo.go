package demo

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/msghdr"
)

// Exec runs one mailvault command line (args without the program name)
// exactly as the mailvault program would, with the environment variable
// MAILVAULT_PASSWORD set to password and nothing else from the
// environment, writing to stdout and stderr; it returns the exit code.
type Exec func(args []string, password string, stdout, stderr io.Writer) int

// Options configure Run.
type Options struct {
	// Dir receives the archive, the export and the server's certificate.
	// It must be empty or not exist; "" makes a new temporary directory.
	Dir string
	// Program is how the user runs mailvault, for the command lines the
	// demo prints: "mailvault", "bin/mailvault".
	Program string
	// Stdout gets the steps; Stderr the commands' warnings and errors.
	Stdout, Stderr io.Writer
	// Exec runs the commands.
	Exec Exec
	// BeforeCommand and AfterCommand, when set, are called around every
	// command the demo runs (step is a step's Name). Tests use them to
	// break a step on purpose and see the demo's checks catch it; an
	// error they return ends the demo.
	BeforeCommand, AfterCommand func(step string, f *Fixture) error
}

// Fixture is what a hook may reach.
type Fixture struct {
	// Dir is the demo's directory.
	Dir string
	// Server is the running server.
	Server *Server
	// Passwords are the users' passwords.
	Passwords map[string]string
}

// ErrDirNotEmpty is returned when Options.Dir holds files.
var ErrDirNotEmpty = errors.New("directory is not empty")

// StepError is a step that failed: its command failed or its result was
// not what it should be. It does not unwrap to Err: whatever went wrong
// inside, the demo failed (a command's own exit code is in the message).
type StepError struct {
	N, Of int    // the step's number, and how many there are
	Name  string // the step's short name, e.g. "restore"
	Err   error
}

func (e *StepError) Error() string {
	return fmt.Sprintf("demo step %d of %d (%s) failed: %v", e.N, e.Of, e.Name, e.Err)
}

// Step names, as errors and hooks give them.
const (
	StepBackup1   = "first backup"
	StepBackup2   = "second backup"
	StepChange    = "change on the server"
	StepBackup3   = "third backup"
	StepSnapshots = "snapshots"
	StepLs        = "ls --all"
	StepVerify    = "verify"
	StepRestore   = "restore"
	StepExport    = "maildir export"
	steps         = 9
)

// The folder whose listing shows a deleted message.
const lsFolder = "日本"

// demo is one run.
type demo struct {
	o                      Options
	out                    io.Writer
	dir, vault, export, ca string
	srv                    *Server
	pw                     map[string]string
	sample                 *Sample
	model                  *model
	keys                   []string // source keys of sample.Messages
	newKeys                []string // source keys of sample.NewMail
	snaps                  []string // snapshot ids, one per backup
	n                      int      // current step
	name                   string   // current step's name
	start                  time.Time
}

// Run starts the server, loads the sample and runs the demo's steps,
// printing each command and checking each result. It returns a
// *StepError naming the first step whose command failed or whose result
// was wrong, ErrDirNotEmpty (wrapped) when Options.Dir holds files, or
// ctx.Err() when ctx ends.
func Run(ctx context.Context, o Options) (err error) {
	d := &demo{o: o, out: o.Stdout, start: time.Now()}
	if d.dir, err = prepareDir(o.Dir); err != nil {
		return err
	}
	d.vault = filepath.Join(d.dir, "vault")
	d.export = filepath.Join(d.dir, "export")
	d.ca = filepath.Join(d.dir, "demo-ca.pem")
	if d.sample, err = NewSample(); err != nil {
		return err
	}
	d.pw = map[string]string{Source: randomPassword(), Second: randomPassword()}
	if d.srv, err = StartServer(d.pw); err != nil {
		return fmt.Errorf("start the demo server: %w", err)
	}
	stop := sync.OnceValue(d.srv.Close)
	defer stop()
	if err := os.WriteFile(d.ca, d.srv.CAPEM, 0o644); err != nil {
		return fmt.Errorf("write the server certificate: %w", err)
	}
	if err := d.load(); err != nil {
		return err
	}
	d.intro(o.Dir == "")

	for _, s := range []struct {
		name, title string
		run         func(ctx context.Context) error
	}{
		{StepBackup1, "Back up alice's mailbox: every folder, every message", d.backup1},
		{StepBackup2, "Back up again: nothing new, nothing downloaded", d.backup2},
		{StepChange, "Meanwhile, on the server: new mail, a deletion, a flag", d.change},
		{StepBackup3, "Back up again: only the changes", d.backup3},
		{StepSnapshots, "One snapshot per run", d.snapshots},
		{StepLs, "Mail deleted on the server stays in the archive", d.ls},
		{StepVerify, "Check every manifest and every message hash", d.verify},
		{StepRestore, "Restore what was deleted since the first snapshot into bob's account", d.restore},
		{StepExport, "Export the latest snapshot as a Maildir", d.exportMaildir},
	} {
		d.n, d.name = d.n+1, s.name
		fmt.Fprintf(d.out, "\n%d/%d  %s\n", d.n, steps, s.title)
		if err := s.run(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return &StepError{N: d.n, Of: steps, Name: s.name, Err: err}
		}
	}
	_ = stop() // before saying it stopped; a close error changes nothing
	d.outro()
	return nil
}

// prepareDir creates dir if need be and refuses one that holds files; ""
// makes a new temporary directory.
func prepareDir(dir string) (string, error) {
	if dir == "" {
		d, err := os.MkdirTemp("", "mailvault-demo-")
		if err != nil {
			return "", fmt.Errorf("create a temporary directory: %w", err)
		}
		return d, nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create %s: %w", dir, err)
		}
		return dir, nil
	case err != nil:
		return "", fmt.Errorf("demo directory %s: %w", dir, err)
	case len(entries) > 0:
		return "", fmt.Errorf("demo directory %s: %w (it holds %s); name a new or empty directory, or none for a temporary one", dir, ErrDirNotEmpty, entries[0].Name())
	}
	return dir, nil
}

func randomPassword() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}

// load fills alice's account with the sample, bypassing IMAP.
func (d *demo) load() error {
	for _, f := range d.sample.Folders {
		if f == "INBOX" {
			continue
		}
		if err := d.srv.CreateFolder(Source, f, SpecialUse(f)); err != nil {
			return fmt.Errorf("load the sample: %w", err)
		}
	}
	d.model = newModel()
	for _, m := range d.sample.Messages {
		key, err := d.srv.Append(Source, m.Folder, m.Flags, m.InternalDate, m.Body)
		if err != nil {
			return fmt.Errorf("load the sample: %w", err)
		}
		d.keys = append(d.keys, key)
		d.model.add(m.Folder, key, m.Body, m.Flags)
	}
	for _, f := range d.sample.Folders {
		d.model.folder(f)
	}
	return nil
}

func (d *demo) url(user string) string { return "imaps://" + user + "@" + d.srv.Addr }

func (d *demo) intro(temp bool) {
	where := d.dir
	if temp {
		where += " (a new temporary directory)"
	}
	fmt.Fprintf(d.out, `mailvault demo: a first run against a mail server started inside this program.
Every step below is the real command, run in-process; nothing leaves 127.0.0.1.

  server     %s, IMAP over TLS; certificate %s
  alice      %d messages in %d folders: nested and non-ASCII names, Sent, Drafts,
             Trash, Junk and Archive (SPECIAL-USE), flags and keywords, attachments,
             a message without Message-ID, bodies with "From " lines
  bob        an empty second account
  passwords  random; each command reads its account's from MAILVAULT_PASSWORD,
             as yours would (never on the command line, never printed)
  directory  %s
`, d.srv.Addr, d.ca, len(d.sample.Messages), len(d.sample.Folders), where)
}

// command prints and runs one mailvault command as user, returning what
// it printed on stdout.
func (d *demo) command(user string, args ...string) (string, error) {
	fmt.Fprintf(d.out, "  $ %s\n", shellLine(append([]string{d.o.Program}, args...)))
	f := &Fixture{Dir: d.dir, Server: d.srv, Passwords: d.pw}
	if h := d.o.BeforeCommand; h != nil {
		if err := h(d.name, f); err != nil {
			return "", err
		}
	}
	var buf bytes.Buffer
	out := &indenter{w: d.out, prefix: "    "}
	errw := &indenter{w: d.o.Stderr, prefix: "    "}
	code := d.o.Exec(args, d.pw[user], io.MultiWriter(out, &buf), errw)
	out.end()
	errw.end()
	if code != 0 {
		return buf.String(), fmt.Errorf("mailvault %s exited with code %d", args[0], code)
	}
	if h := d.o.AfterCommand; h != nil {
		if err := h(d.name, f); err != nil {
			return "", err
		}
	}
	return buf.String(), nil
}

// ok prints a check that held.
func (d *demo) ok(format string, args ...any) {
	fmt.Fprintf(d.out, "  ✓ "+format+"\n", args...)
}

func (d *demo) backup() error {
	_, err := d.command(Source, "backup", d.url(Source), d.vault, "--ca-file", d.ca)
	return err
}

func (d *demo) backup1(ctx context.Context) error {
	before := d.srv.Stats(Source)
	if err := d.backup(); err != nil {
		return err
	}
	snap, err := checkArchive(d.vault, 1, d.model)
	if err != nil {
		return err
	}
	d.snaps = append(d.snaps, snap.ID)
	added, gone, flags := delta(snap)
	if added != len(d.sample.Messages) || gone != 0 || flags != 0 {
		return fmt.Errorf("snapshot %s records %d added, %d gone, %d flag changes; want %d, 0, 0", snap.ID, added, gone, flags, len(d.sample.Messages))
	}
	if err := d.readOnly(before); err != nil {
		return err
	}
	d.ok("%d messages in %d folders archived; each one read back from the archive equals, byte for byte, what the server holds", added, len(d.sample.Folders))
	d.ok("the server was only read: EXAMINE and BODY.PEEK, no SELECT, STORE or EXPUNGE")
	return nil
}

func (d *demo) backup2(ctx context.Context) error {
	before := d.srv.Stats(Source)
	if err := d.backup(); err != nil {
		return err
	}
	snap, err := checkArchive(d.vault, 2, d.model)
	if err != nil {
		return err
	}
	d.snaps = append(d.snaps, snap.ID)
	added, gone, flags := delta(snap)
	if added != 0 || gone != 0 || flags != 0 || len(snap.Segments) != 0 {
		return fmt.Errorf("snapshot %s records %d added, %d gone, %d flag changes, %d new segments; want none", snap.ID, added, gone, flags, len(snap.Segments))
	}
	after := d.srv.Stats(Source)
	if n := after.BodyFetches - before.BodyFetches; n != 0 {
		return fmt.Errorf("the backup fetched message bodies %d times; want none", n)
	}
	if err := d.readOnly(before); err != nil {
		return err
	}
	d.ok("no message body downloaded, nothing stored; the snapshot records the same %d messages", d.model.count())
	return nil
}

// readOnly checks that no command since before changed alice's account.
func (d *demo) readOnly(before Stats) error {
	if n := d.srv.Stats(Source).Writes - before.Writes; n != 0 {
		return fmt.Errorf("the backup sent %d commands that change the server; want none", n)
	}
	return nil
}

// change makes the changes of the third step over IMAP, as another mail
// program would.
func (d *demo) change(ctx context.Context) error {
	fmt.Fprintf(d.out, "  (another mail program, logged in as alice over IMAP)\n")
	if h := d.o.BeforeCommand; h != nil {
		if err := h(d.name, &Fixture{Dir: d.dir, Server: d.srv, Passwords: d.pw}); err != nil {
			return err
		}
	}
	c, err := d.srv.Dial(Source, d.pw[Source])
	if err != nil {
		return err
	}
	defer c.Close()
	defer waitClose(ctx, c)()
	for _, m := range d.sample.NewMail {
		key, err := appendMessage(c, m)
		if err != nil {
			return err
		}
		d.newKeys = append(d.newKeys, key)
		d.model.add(m.Folder, key, m.Body, m.Flags)
		fmt.Fprintf(d.out, "    new mail in %s: %q\n", m.Folder, subject(m.Body))
	}
	for _, i := range d.sample.Deleted {
		m := d.sample.Messages[i]
		if err := storeFlags(c, m.Folder, d.keys[i], imap.FlagDeleted, true); err != nil {
			return err
		}
		d.model.remove(m.Folder, d.keys[i])
		fmt.Fprintf(d.out, "    deleted from %s: %q\n", m.Folder, subject(m.Body))
	}
	i := d.sample.Flagged
	m := d.sample.Messages[i]
	if err := storeFlags(c, m.Folder, d.keys[i], imap.FlagFlagged, false); err != nil {
		return err
	}
	d.model.setFlags(m.Folder, d.keys[i], append(append([]string{}, m.Flags...), `\Flagged`))
	fmt.Fprintf(d.out, "    flagged in %s: %q\n", m.Folder, subject(m.Body))
	if err := c.Logout().Wait(); err != nil {
		return fmt.Errorf("log out: %w", err)
	}
	if h := d.o.AfterCommand; h != nil {
		if err := h(d.name, &Fixture{Dir: d.dir, Server: d.srv, Passwords: d.pw}); err != nil {
			return err
		}
	}
	// The server now holds what the model says.
	got, err := readAccount(ctx, d.srv, Source, d.pw[Source])
	if err != nil {
		return err
	}
	if err := d.model.equal(got, "alice's account"); err != nil {
		return err
	}
	d.ok("alice's account now holds %d messages", d.model.count())
	return nil
}

func appendMessage(c *imapclient.Client, m corpus.Message) (string, error) {
	opts := &imap.AppendOptions{Time: m.InternalDate}
	for _, f := range m.Flags {
		opts.Flags = append(opts.Flags, imap.Flag(f))
	}
	cmd := c.Append(m.Folder, int64(len(m.Body)), opts)
	_, werr := cmd.Write(m.Body)
	cerr := cmd.Close()
	data, err := cmd.Wait()
	if err = errors.Join(werr, cerr, err); err != nil {
		return "", fmt.Errorf("append to %s: %w", m.Folder, err)
	}
	if data.UID == 0 {
		return "", fmt.Errorf("append to %s: the server sent no APPENDUID", m.Folder)
	}
	return fmt.Sprintf("%d:%d", data.UIDValidity, data.UID), nil
}

// storeFlags adds flag to the message with the given key in folder and,
// for \Deleted, expunges it.
func storeFlags(c *imapclient.Client, folder, key string, flag imap.Flag, expunge bool) error {
	uid, err := keyUID(key)
	if err != nil {
		return err
	}
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		return fmt.Errorf("select %s: %w", folder, err)
	}
	set := imap.UIDSetNum(uid)
	if err := c.Store(set, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{flag}}, nil).Close(); err != nil {
		return fmt.Errorf("store %s in %s: %w", flag, folder, err)
	}
	if expunge {
		if err := c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("expunge in %s: %w", folder, err)
		}
	}
	return nil
}

func (d *demo) backup3(ctx context.Context) error {
	before := d.srv.Stats(Source)
	if err := d.backup(); err != nil {
		return err
	}
	snap, err := checkArchive(d.vault, 3, d.model)
	if err != nil {
		return err
	}
	d.snaps = append(d.snaps, snap.ID)
	var deleted []string
	for _, i := range d.sample.Deleted {
		deleted = append(deleted, d.sample.Messages[i].Folder+" "+d.keys[i])
	}
	flagged := d.sample.Messages[d.sample.Flagged].Folder + " " + d.keys[d.sample.Flagged]
	var added []string
	for i, m := range d.sample.NewMail {
		added = append(added, m.Folder+" "+d.newKeys[i])
	}
	gotAdded, gotGone, gotFlags := deltaKeys(snap)
	if err := sameStrings("added", gotAdded, added); err != nil {
		return fmt.Errorf("snapshot %s: %w", snap.ID, err)
	}
	if err := sameStrings("gone", gotGone, deleted); err != nil {
		return fmt.Errorf("snapshot %s: %w", snap.ID, err)
	}
	if err := sameStrings("flag changes", gotFlags, []string{flagged}); err != nil {
		return fmt.Errorf("snapshot %s: %w", snap.ID, err)
	}
	if err := d.readOnly(before); err != nil {
		return err
	}
	d.ok("%d messages added, %d recorded as gone, %d flag change; the archive's state equals the server's", len(added), len(deleted), 1)
	return nil
}

func (d *demo) snapshots(ctx context.Context) error {
	out, err := d.command(Source, "snapshots", d.vault)
	if err != nil {
		return err
	}
	if _, err := checkArchive(d.vault, 3, d.model); err != nil {
		return err
	}
	for _, id := range d.snaps {
		if !strings.Contains(out, id) {
			return fmt.Errorf("the listing does not show snapshot %s", id)
		}
	}
	d.ok("3 complete snapshots: %s", strings.Join(d.snaps, ", "))
	return nil
}

func (d *demo) ls(ctx context.Context) error {
	var key string
	for _, i := range d.sample.Deleted {
		if d.sample.Messages[i].Folder == lsFolder {
			key = d.keys[i]
		}
	}
	out, err := d.command(Source, "ls", d.vault, lsFolder, "--all")
	if err != nil {
		return err
	}
	line, n := "", 0
	for _, l := range strings.Split(out, "\n") {
		first, _, _ := strings.Cut(strings.TrimSpace(l), " ")
		if _, err := keyUID(first); err == nil && strings.Contains(first, ":") {
			n++
		}
		if first == key {
			line = l
		}
	}
	if line == "" || !strings.Contains(line, "gone") {
		return fmt.Errorf("the listing does not show message %s as gone", key)
	}
	if want := len(d.model.folders[lsFolder]) + 1; n != want {
		return fmt.Errorf("the listing shows %d messages; want %d (%d on the server and 1 gone)", n, want, want-1)
	}
	d.ok("message %s, deleted on the server, is listed as gone and can still be restored", key)
	return nil
}

func (d *demo) verify(ctx context.Context) error {
	if _, err := d.command(Source, "verify", d.vault); err != nil {
		return err
	}
	d.ok("verify found every manifest and every message intact")
	return nil
}

func (d *demo) restore(ctx context.Context) error {
	beforeAlice := d.srv.Stats(Source)
	if _, err := d.command(Second, "restore", d.vault, d.url(Second), "--ca-file", d.ca,
		"--deleted-since", d.snaps[0], "--into", "Restored"); err != nil {
		return err
	}
	if n := d.srv.Stats(Source).Writes - beforeAlice.Writes; n != 0 {
		return fmt.Errorf("the restore changed alice's account (%d commands)", n)
	}
	want := newModel()
	for _, i := range d.sample.Deleted {
		m := d.sample.Messages[i]
		want.add(path.Join("Restored", m.Folder), d.keys[i], m.Body, m.Flags)
	}
	got, err := readAccount(ctx, d.srv, Second, d.pw[Second])
	if err != nil {
		return err
	}
	if err := want.subsetOf(got, "bob's account"); err != nil {
		return err
	}
	if n, w := got.count(), want.count(); n != w {
		return fmt.Errorf("bob's account holds %d messages; want the %d restored", n, w)
	}
	d.ok("bob's account holds exactly the %d deleted messages, under Restored/, each equal byte for byte to the original, flags kept", want.count())
	return nil
}

func (d *demo) exportMaildir(ctx context.Context) error {
	if _, err := d.command(Source, "restore", d.vault, "maildir:"+d.export); err != nil {
		return err
	}
	n, err := checkMaildir(d.export, d.model)
	if err != nil {
		return err
	}
	d.ok("%d message files in %d Maildir folders, each equal byte for byte to a message on the server, flags in the file names", n, len(d.model.folders))
	return nil
}

func (d *demo) outro() {
	q := func(p string) string { return shellLine([]string{p}) }
	p := d.o.Program
	inbox := filepath.Join(d.vault, "folders", "INBOX")
	if dir, err := segmentDir(d.vault, "INBOX"); err == nil {
		inbox = dir
	}
	fmt.Fprintf(d.out, `
Done in %s: all %d steps ran, and every result was checked byte for byte.
The demo server has stopped; what it made stays in %s:
  vault/        the archive: 3 snapshots, zstd-compressed mboxrd segments per folder
  export/       the Maildir export of the latest snapshot (Dovecot LAYOUT=fs)
  demo-ca.pem   the demo server's certificate
Look at them:
  %s snapshots %s
  %s ls %s
  %s ls %s INBOX --all
  %s cat %s INBOX %s
  zstd -dc %s/*.mbox.zst | less
  ls %s
Next, your own mailbox (see README.md):
  MAILVAULT_PASSWORD=... %s backup imaps://you@mail.example.com ./vault
`, time.Since(d.start).Round(10*time.Millisecond), steps, d.dir,
		q(p), q(d.vault), q(p), q(d.vault), q(p), q(d.vault), q(p), q(d.vault), d.keys[d.sample.Flagged],
		q(inbox), q(filepath.Join(d.export, "cur")), q(p))
}

func subject(body []byte) string { return msghdr.Parse(body).Subject }

// indenter prefixes every line written through it.
type indenter struct {
	w       io.Writer
	prefix  string
	midLine bool
}

func (in *indenter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !in.midLine {
			if _, err := io.WriteString(in.w, in.prefix); err != nil {
				return 0, err
			}
			in.midLine = true
		}
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, in.midLine = p[:i+1], false
		}
		if _, err := in.w.Write(line); err != nil {
			return 0, err
		}
		p = p[len(line):]
	}
	return n, nil
}

// end finishes a last line that had no newline.
func (in *indenter) end() {
	if in.midLine {
		_, _ = io.WriteString(in.w, "\n")
		in.midLine = false
	}
}

// shellLine quotes args for a POSIX shell where needed.
func shellLine(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = shellQuote(a)
	}
	return strings.Join(out, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	for _, r := range s {
		if r < 0x80 && !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_", r) {
			return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
	}
	return s
}
