package localstore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/mutf7"
	"github.com/mailvault/mailvault/restore"
)

// dovecotServes logs in as user and checks that Dovecot lists every
// folder of msgs under the name serverName gives it and serves each of
// its messages byte for byte with flags and INTERNALDATE.
func dovecotServes(t *testing.T, srv *dovecottest.Server, user string, msgs []tmsg, serverName func(string) string) {
	t.Helper()
	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(user, "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, d := range list {
		listed = append(listed, d.Mailbox)
	}
	byFolder := map[string][]tmsg{}
	for _, m := range msgs {
		byFolder[m.folder] = append(byFolder[m.folder], m)
	}
	checked := 0
	for folder, want := range byFolder {
		name := serverName(folder)
		if !slices.Contains(listed, name) {
			t.Errorf("%q (%q) not listed by Dovecot: %q", folder, name, listed)
		}
		if _, err := c.Select(name, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
			t.Errorf("SELECT %q: %v", name, err)
			continue
		}
		msgsGot, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			Flags: true, InternalDate: true, RFC822Size: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatalf("FETCH %q: %v", name, err)
		}
		var got, exp []string
		for _, g := range msgsGot {
			var fl []string
			for _, f := range g.Flags {
				fl = append(fl, string(f))
			}
			var body []byte
			for _, b := range g.BodySection {
				body = b.Bytes
			}
			got = append(got, fmt.Sprintf("%s %d %v %s", sha(body), g.RFC822Size, flagSet(fl), g.InternalDate.UTC().Format(time.RFC3339)))
		}
		for _, m := range want {
			w := wireForm(m.body)
			exp = append(exp, fmt.Sprintf("%s %d %v %s", sha(w), len(w), flagSet(m.flags), m.date.Format(time.RFC3339)))
		}
		slices.Sort(got)
		slices.Sort(exp)
		checked += len(got)
		if !slices.Equal(got, exp) {
			t.Errorf("%s: Dovecot serves\n%s\nwant\n%s", folder, strings.Join(got, "\n"), strings.Join(exp, "\n"))
		}
	}
	if checked != len(msgs) {
		t.Errorf("Dovecot served %d messages, want %d", checked, len(msgs))
	}
	t.Logf("Dovecot served %d messages in %d folders (%q)", checked, len(byFolder), listed)
}

// TestMaildirDovecotDefault restores folders with non-ASCII names with
// the default settings and has a stock Dovecot (LAYOUT=fs, no UTF-8
// option: names on disk in modified UTF-7) serve every message.
func TestMaildirDovecotDefault(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": "pw"},
		MailLocation: map[string]string{"bob": "maildir:~/Maildir:LAYOUT=fs"}})
	root := filepath.Join(srv.Home("bob"), "Maildir")
	msgs := testCorpus()
	msgs = append(msgs,
		tmsg{folder: "Entwürfe", flags: []string{`\Draft`}, date: time.Date(2021, 5, 1, 10, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeUTF8]},
		tmsg{folder: "R&D/Ünïcödé & Co", date: time.Date(2021, 5, 2, 10, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeLatin1]},
		tmsg{folder: "INBOX/Año", date: time.Date(2021, 5, 3, 10, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeRFC2047]},
		tmsg{folder: "Lang/" + strings.Repeat("Ü", 150), date: time.Date(2021, 5, 4, 10, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeCRLF]},
	)
	md, err := NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := restoreAll(t, md, msgs); n != len(msgs) {
		t.Fatalf("appended %d, want %d", n, len(msgs))
	}
	chownTree(t, srv.Home("bob"))
	// Dovecot's name of a folder: its levels as on disk, modified UTF-7
	// decoded (a shortened level keeps its mark and hash).
	dovecotServes(t, srv, "bob", msgs, func(folder string) string {
		l := levels(folder)
		for i := range l {
			if i > 0 || l[i] != inbox {
				name, _ := md.lay.name(l[i])
				l[i] = mutf7.DecodeOrKeep(name)
			}
		}
		return strings.Join(l, "/")
	})
	if _, err := os.Stat(filepath.Join(root, "Entw&APw-rfe", "cur")); err != nil {
		t.Errorf("Entwürfe is not the modified UTF-7 directory Entw&APw-rfe: %v", err)
	}
}

// longFolders are folder names with a level too long for a file name.
var longFolders = []string{
	strings.Repeat("x", 300),
	strings.Repeat("x", 300) + "y", // same prefix, another folder
	strings.Repeat("é", 200),
	"Projects/" + strings.Repeat("日本", 60) + "/2026",
	strings.Repeat("a.mbox", 50),
}

// TestLongFolderNames: a folder level too long for a file name is kept
// under a shortened name, the same every time, distinct from every other
// folder; the other folders are restored too.
func TestLongFolderNames(t *testing.T) {
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		t.Run(kind, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			open := func() restore.Target {
				tg, err := openKind(kind, root)
				if err != nil {
					t.Fatal(err)
				}
				return tg
			}
			body := corpus.EdgeCases()[corpus.EdgeCRLF]
			var msgs []tmsg
			for i, f := range append([]string{"INBOX", "Short"}, longFolders...) {
				msgs = append(msgs, tmsg{folder: f, date: time.Date(2000+i, 1, 1, 0, 0, 0, 0, time.UTC), body: body})
			}
			if n := restoreAll(t, open(), msgs); n != len(msgs) {
				t.Fatalf("appended %d, want %d", n, len(msgs))
			}
			tg := open()
			for i, m := range msgs {
				idx, err := tg.Index(context.Background(), m.folder)
				if err != nil {
					t.Fatal(err)
				}
				if !idx.Take(msgs[i].msg()) || idx.Take(msgs[i].msg()) {
					t.Errorf("%.40q… does not hold exactly one copy of its message", m.folder)
				}
			}
			rerun(t, root, open, msgs)
			filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && len(d.Name()) > 255 {
					t.Errorf("name of %d bytes: %.60s…", len(d.Name()), d.Name())
				}
				return nil
			})
		})
	}
}

func openKind(kind, root string) (restore.Target, error) {
	switch kind {
	case "maildir":
		return NewMaildir(root)
	case "mbox":
		return NewMbox(root)
	}
	return NewEML(root)
}

// leftovers are the temporary files a killed restore leaves: it writes
// each message to one, and a kill before the file is published leaves it.
func plantLeftovers(t *testing.T, kind, dir string) (ours, foreign []string) {
	t.Helper()
	write := func(p string) {
		if err := os.WriteFile(p, []byte("Subject: half\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().Unix()
	host, _ := os.Hostname()
	switch kind {
	case "maildir":
		ours = []string{
			// as mailvault before this change named them
			filepath.Join(dir, "tmp", fmt.Sprintf("%d.M123456P4242Q7R0123456789abcdef.%s", now, maildirHost(host))),
			filepath.Join(dir, "tmp", ".keywords.0123456789abcdef"),
			filepath.Join(dir, "tmp", ".mailvault-0123456789abcdef.tmp"),
		}
		// Dovecot's own delivery in progress.
		foreign = []string{
			filepath.Join(dir, "tmp", fmt.Sprintf("%d.M123456P4242.%s", now, maildirHost(host))),
			// an earlier mailvault's, on another machine sharing the tree
			filepath.Join(dir, "tmp", fmt.Sprintf("%d.M123456P4242Q7R0123456789abcdef.otherhost", now)),
		}
	case "eml":
		ours = []string{
			filepath.Join(dir, fmt.Sprintf(".mailvault-%d-0123456789abcdef.tmp", now)),
			filepath.Join(dir, ".mailvault-0123456789abcdef.tmp"),
		}
		foreign = []string{filepath.Join(dir, ".mine.tmp")}
	}
	for _, p := range append(append([]string{}, ours...), foreign...) {
		write(p)
	}
	return ours, foreign
}

// TestStaleTempFiles: the temporary files a killed restore left are
// removed by the next restore, whatever their age; files that are not
// ours stay.
func TestStaleTempFiles(t *testing.T) {
	for _, kind := range []string{"maildir", "eml"} {
		t.Run(kind, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			body := corpus.EdgeCases()[corpus.EdgeCRLF]
			msgs := []tmsg{{folder: "F", date: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), body: body}}
			tg, err := openKind(kind, root)
			if err != nil {
				t.Fatal(err)
			}
			if n := restoreAll(t, tg, msgs); n != 1 {
				t.Fatalf("appended %d", n)
			}
			ours, foreign := plantLeftovers(t, kind, filepath.Join(root, "F"))
			tg, err = openKind(kind, root)
			if err != nil {
				t.Fatal(err)
			}
			// Everything is there already: the run appends nothing and
			// still cleans up.
			if n := restoreAll(t, tg, msgs); n != 0 {
				t.Fatalf("second run appended %d", n)
			}
			for _, p := range ours {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("left over: %s", filepath.Base(p))
				}
			}
			for _, p := range foreign {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("not ours, but removed: %s", filepath.Base(p))
				}
			}
		})
	}
}

func TestModifiedUTF7(t *testing.T) {
	for in, want := range map[string]string{
		"Entwürfe": "Entw&APw-rfe", "R&D": "R&-D", "日本": "&ZeVnLA-", "Año 2023": "A&APE-o 2023",
		"plain": "plain", "&": "&-", "~peter/mail/台北/日本語": "~peter/mail/&U,BTFw-/&ZeVnLIqe-",
		"😀": "&2D3eAA-", "a%2Eb": "a%2Eb",
	} {
		if got := mutf7.Encode(in); got != want {
			t.Errorf("mutf7.Encode(%q) = %q, want %q", in, got, want)
		}
		if got := mutf7.DecodeOrKeep(want); got != in {
			t.Errorf("mutf7.DecodeOrKeep(%q) = %q, want %q", want, got, in)
		}
	}
	// Not modified UTF-7: kept as it is.
	for _, s := range []string{"R&D", "Año", "&AGE-", "&Jjo", "&Jjo!-", "&2D3-"} {
		if got := mutf7.DecodeOrKeep(s); got != s {
			t.Errorf("mutf7.DecodeOrKeep(%q) = %q, want it unchanged", s, got)
		}
	}
	if got := MaildirLevelName("Entw&APw-rfe %25"); got != "Entwürfe %" {
		t.Errorf("MaildirLevelName = %q", got)
	}
}

func TestLayoutName(t *testing.T) {
	for _, lay := range []layout{{esc: maildirEscaper, utf7: true, max: 255}, {esc: mboxEscaper, max: 250}, {esc: emlEscaper, max: 255}} {
		seen := map[string]string{}
		for _, level := range append(slices.Clone(hostileFolders), strings.Repeat("x", 300), strings.Repeat("x", 299)+"y",
			strings.Repeat("日", 100), strings.Repeat("日", 101), strings.Repeat("%", 120), strings.Repeat(".", 300), strings.Repeat("a ", 200)) {
			for _, level := range strings.Split(level, "/") {
				name, short := lay.name(level)
				again, _ := lay.name(level)
				if name != again || len(name) > lay.max || name == "" || strings.HasPrefix(name, ".") || strings.ContainsAny(name, "/\x00") {
					t.Errorf("name(%.30q…) = %q (%d bytes), again %q", level, name, len(name), again)
				}
				if short != strings.Contains(name, shortMark) {
					t.Errorf("name(%.30q…) = %q, shortened %v", level, name, short)
				}
				if !short && lay.decode(name) != level {
					t.Errorf("decode(name(%q)) = %q", level, lay.decode(name))
				}
				if o, dup := seen[name]; dup && o != level {
					t.Errorf("%.30q… and %.30q… both get %q", o, level, name)
				}
				seen[name] = level
			}
		}
	}
}

// TestFolderPathTooLong: a folder whose path the file system refuses is
// refused alone (restore.ErrFolderRefused); the target stays usable.
func TestFolderPathTooLong(t *testing.T) {
	deep := strings.Repeat(strings.Repeat("d", 250)+"/", 20) + "x"
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		root := filepath.Join(t.TempDir(), "root")
		tg, err := openKind(kind, root)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if err := tg.CreateFolder(ctx, deep); !errors.Is(err, restore.ErrFolderRefused) {
			t.Errorf("%s: CreateFolder of a %d-byte path: %v, want ErrFolderRefused", kind, len(deep), err)
		}
		if err := tg.CreateFolder(ctx, "Fine"); err != nil {
			t.Errorf("%s: after a refused folder: %v", kind, err)
		}
		tg.Close()
	}
}

// TestTargetLock: one restore at a time writes to a local target; the
// temporary files of a running one are not touched; the lock file goes
// away with the restore.
func TestTargetLock(t *testing.T) {
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		t.Run(kind, func(t *testing.T) {
			root := filepath.Join(t.TempDir(), "root")
			ctx := context.Background()
			first, err := openKind(kind, root)
			if err != nil {
				t.Fatal(err)
			}
			if err := first.CreateFolder(ctx, "F"); err != nil {
				t.Fatal(err)
			}
			ours, _ := plantLeftovers(t, kind, filepath.Join(root, "F")) // the running restore's, here
			second, err := openKind(kind, root)
			if err != nil {
				t.Fatal(err)
			}
			if err := second.(restore.Preparer).Prepare(ctx); !errors.Is(err, ErrTargetInUse) || !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
				t.Errorf("second restore while the first runs: %v, want ErrTargetInUse naming the process", err)
			}
			if err := second.CreateFolder(ctx, "G"); !errors.Is(err, ErrTargetInUse) {
				t.Errorf("second restore writes while the first runs: %v", err)
			}
			for _, p := range ours {
				if _, err := os.Stat(p); err != nil {
					t.Errorf("a running restore's temporary file was removed: %s", filepath.Base(p))
				}
			}
			if err := first.Close(); err != nil {
				t.Fatal(err)
			}
			if err := second.(restore.Preparer).Prepare(ctx); err != nil {
				t.Fatalf("after the first is done: %v", err)
			}
			for _, p := range ours {
				if _, err := os.Stat(p); err == nil {
					t.Errorf("left over after the first restore ended: %s", filepath.Base(p))
				}
			}
			second.Close()
			if _, err := os.Lstat(filepath.Join(root, lockName)); err == nil {
				t.Errorf("lock file left after Close")
			}
		})
	}
}

// TestUTF8TreeRefused: writing modified UTF-7 names into a tree with
// UTF-8 names would give those folders a second directory: refused, with
// the way out in the message.
func TestUTF8TreeRefused(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	msgs := []tmsg{{folder: "Entwürfe", date: time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), body: corpus.EdgeCases()[corpus.EdgeCRLF]}}
	md, err := NewMaildirUTF8(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := restoreAll(t, md, msgs); n != 1 {
		t.Fatalf("appended %d", n)
	}
	md, err = NewMaildir(root)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := md.Folders(context.Background()); !errors.Is(err, ErrUTF8Tree) || !strings.Contains(err.Error(), "?utf8") {
		t.Errorf("Folders of a UTF-8 tree with the default layout: %v, want ErrUTF8Tree", err)
	}
	md, err = NewMaildirUTF8(root)
	if err != nil {
		t.Fatal(err)
	}
	if n := restoreAll(t, md, msgs); n != 0 {
		t.Errorf("UTF-8 layout again: appended %d, want 0", n)
	}
}

// TestDryRunWritesNothing: a target that is only read (a dry run: list,
// index) creates nothing, not even its root.
func TestDryRunWritesNothing(t *testing.T) {
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		root := filepath.Join(t.TempDir(), "new", kind)
		tg, err := openKind(kind, root)
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		if _, err := tg.Folders(ctx); err != nil {
			t.Errorf("%s: Folders of a target not yet created: %v", kind, err)
		}
		if _, err := tg.Index(ctx, "INBOX"); err != nil {
			t.Errorf("%s: Index: %v", kind, err)
		}
		if err := tg.Close(); err != nil {
			t.Errorf("%s: Close: %v", kind, err)
		}
		if _, err := os.Stat(filepath.Dir(root)); err == nil {
			t.Errorf("%s: a target only read created %s", kind, filepath.Dir(root))
		}
	}
}
