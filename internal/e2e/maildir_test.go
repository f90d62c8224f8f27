package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/testenv"
)

// TestMaildirArchive: Maildir archives (zstd-compressed and plain) of a
// real Dovecot hold the server's bytes, flags and dates, are incremental,
// keep flags current in file names, verify, restore, and refuse a run that
// asks for another format.
func TestMaildirArchive(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 31, Messages: 250, Large: 1})
	srv, c := dovecot(t, msgs)
	bob := "imaps://bob@" + srv.IMAPSAddr
	for i, comp := range []string{"zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			want := imaptest.ReadServer(t, c)
			vault := filepath.Join(t.TempDir(), "vault")
			mustRun(t, append(append([]string{"backup"}, source(srv)...), vault, "--format", "maildir", "--compress", comp)...)
			archivetest.MatchesServer(t, vault, want)
			a, _ := archivetest.Latest(t, vault)
			if a.Config.Storage != "maildir" || a.Config.Compression != comp {
				t.Fatalf("mailvault.json says %s/%s", a.Config.Storage, a.Config.Compression)
			}
			if segs, _ := filepath.Glob(filepath.Join(vault, "folders", "*", "*.mbox.zst")); len(segs) > 0 {
				t.Fatalf("maildir archive holds mbox segments: %v", segs)
			}
			mustRun(t, "verify", vault)
			// ls and cat read the Maildir archive.
			sm := want["INBOX"][0]
			key := fmt.Sprintf("%d:%d", a2UIDValidity(t, vault), sm.UID)
			if r := mustRun(t, "cat", vault, "INBOX", key); r.stdout != string(sm.Body) {
				t.Errorf("cat %s: %d bytes, want the server's %d", key, len(r.stdout), len(sm.Body))
			}
			if r := mustRun(t, "ls", vault, "INBOX"); strings.Count(r.stdout, "\n") < len(want["INBOX"]) {
				t.Errorf("ls INBOX lists %d lines for %d messages", strings.Count(r.stdout, "\n"), len(want["INBOX"]))
			}

			// Unchanged server: nothing stored.
			r := mustRun(t, append(append([]string{"backup"}, source(srv)...), vault)...)
			if !strings.Contains(r.stdout, " 0 messages added") {
				t.Errorf("no-change run: %s", r.stdout)
			}
			// Another format is refused, with the reason, exit 2.
			r = mv(t, bin, nil, append(append([]string{"backup"}, source(srv)...), vault, "--format", "mbox")...)
			if r.code != 2 || !strings.Contains(r.stderr, "created with --format maildir --compress "+comp) || strings.Count(strings.TrimSpace(r.stderr), "\n") > 0 {
				t.Errorf("backup --format mbox into a maildir archive: exit %d, %q", r.code, r.stderr)
			}

			// A flag change on the server renames the message's file.
			if _, err := c.Select("INBOX", nil).Wait(); err != nil {
				t.Fatal(err)
			}
			op := imap.StoreFlagsAdd
			if i == 1 {
				op = imap.StoreFlagsDel
			}
			mustIMAP(t, c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: op, Flags: []imap.Flag{imap.FlagFlagged, "Project-X"}}, nil).Close())
			mustIMAP(t, c.Unselect().Wait())
			want = imaptest.ReadServer(t, c)
			r = mustRun(t, append(append([]string{"backup"}, source(srv)...), vault)...)
			if !strings.Contains(r.stdout, "1 flag changes") {
				t.Errorf("flag change run: %s", r.stdout)
			}
			archivetest.MatchesServer(t, vault, want)
			_, st := archivetest.Latest(t, vault)
			inbox := st.Folders["INBOX"]
			var first *formats.MessageState
			for _, m := range inbox.Present() {
				if first == nil || m.Key < first.Key && len(m.Key) <= len(first.Key) {
					first = m
				}
			}
			base, _, _ := strings.Cut(path.Base(first.Seg), ",")
			names, _ := filepath.Glob(filepath.Join(vault, "folders", "INBOX", "cur", base+",*"))
			if len(names) != 1 {
				t.Fatalf("message file %s*: %d files", base, len(names))
			}
			_, info, _ := strings.Cut(filepath.Base(names[0]), ":2,")
			if hasF := strings.Contains(info, "F"); hasF != (op == imap.StoreFlagsAdd) {
				t.Errorf("after the flag change the file is named %s", filepath.Base(names[0]))
			}
			r = mustRun(t, "verify", vault)
			if strings.Contains(r.stdout, "left") || strings.Contains(r.stderr, "orphan") {
				t.Errorf("verify after flag rename: %s %s", r.stdout, r.stderr)
			}

			// Restore to bob: the first archive fills the account, the
			// second (same mail) adds nothing.
			r = mustRun(t, "restore", vault, bob, "--ca-file", srv.CAFile)
			if i == 1 && !strings.Contains(r.stdout, " 0 appended") {
				t.Errorf("restore of the second archive into a full account: %s", r.stdout)
			}
			got := imaptest.ReadServer(t, login(t, srv, "bob"))
			// bob keeps the flags the first restore gave, so compare bytes
			// and dates only on the second pass.
			if i == 0 {
				sameMail(t, want, got, nil)
			} else {
				for folder, ms := range want {
					if len(got[folder]) != len(ms) {
						t.Errorf("bob's %q has %d messages, want %d", folder, len(got[folder]), len(ms))
					}
				}
			}
		})
	}
}

// TestMaildirArchiveServedByDovecot: a Dovecot with the zlib plugin
// serves a zstd-compressed Maildir archive directly; every message it
// FETCHes is byte-identical to the source server's, with the same flags
// and INTERNALDATE. The archive still verifies afterwards (Dovecot's own
// files in it are not taken for damage or leftovers).
func TestMaildirArchiveServedByDovecot(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 37, Messages: 200, Large: 1})
	srv, c := dovecot(t, msgs)
	want := imaptest.ReadServer(t, c)

	reader := dovecottest.Start(t, dovecottest.Options{
		Users:        map[string]string{"arch": "pw"},
		Zlib:         true,
		MailLocation: map[string]string{"arch": "maildir:~/vault/folders:LAYOUT=fs:INBOX=~/vault/folders/INBOX:INDEX=~/index"},
	})
	home := reader.Home("arch")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	vault := filepath.Join(home, "vault")
	mustRun(t, append(append([]string{"backup"}, source(srv)...), vault, "--format", "maildir", "--compress", "zstd")...)
	chownMail(t, home)

	_, st := archivetest.Latest(t, vault)
	rename := map[string]string{}
	for name, f := range st.Folders {
		if name != "INBOX" && f.Dir != "" {
			rename[name] = f.Dir
		}
	}
	got := imaptest.ReadServer(t, login(t, reader, "arch"))
	n := 0
	for _, ms := range got {
		n += len(ms)
	}
	total := 0
	for _, ms := range want {
		total += len(ms)
	}
	if n < total {
		for f, ms := range want {
			g := f
			if r, ok := rename[f]; ok {
				g = r
			}
			t.Logf("%q (%q): source %d, served %d", f, g, len(ms), len(got[g]))
		}
		t.Fatalf("Dovecot serves %d messages from the archive, the source has %d", n, total)
	}
	sameMail(t, want, got, rename)

	r := mustRun(t, "verify", vault)
	if !strings.HasPrefix(r.stdout, "ok:") {
		t.Errorf("verify after Dovecot read the archive: %s", r.stdout)
	}
	r = mustRun(t, append(append([]string{"backup"}, source(srv)...), vault)...)
	if !strings.Contains(r.stdout, " 0 messages added") {
		t.Errorf("backup after Dovecot read the archive: %s", r.stdout)
	}
	archivetest.MatchesServer(t, vault, want)
}

// TestMaildirArchiveCrash kills a backup into a Maildir archive at points
// of its write path; the next run completes it: verify passes, no file is
// left over, every server message is there once, and each file in cur/
// is named by the manifests and decompresses (zstd CLI) to its bytes.
func TestMaildirArchiveCrash(t *testing.T) {
	t.Parallel()
	msgs := corpus.Generate(corpus.Options{Seed: 41, Messages: 300, Large: 2, LargeSize: 3 << 20})
	srv, c := dovecot(t, msgs)
	server := imaptest.ReadServer(t, c)
	for _, fp := range []string{"message-stored:40", "body-chunk:300", "segment-before-rename", "manifest-before-rename", "manifest-after-rename"} {
		t.Run(fp, func(t *testing.T) {
			t.Parallel() // each in its own vault; the server is only read
			vault := filepath.Join(t.TempDir(), "vault")
			args := append(append([]string{"backup"}, source(srv)...), vault, "--format", "maildir")
			r := mv(t, binFail, []string{"MAILVAULT_FAILPOINT=" + fp}, args...)
			if !r.signaled {
				t.Fatalf("failpoint %s did not kill the run: exit %d %s %s", fp, r.code, r.stdout, r.stderr)
			}
			mustRun(t, args...)
			v := mustRun(t, "verify", vault)
			if strings.Contains(v.stdout, "left by interrupted runs") {
				t.Errorf("verify after completion still finds leftovers: %s", v.stdout)
			}
			archivetest.MatchesServer(t, vault, server)
			checkMaildirFiles(t, vault, server)
		})
	}
}

// checkMaildirFiles checks a Maildir archive against the manifests: each
// folder's cur/ holds exactly the files the manifests name, tmp/ and new/
// are empty, no key is archived twice, and the zstd CLI decompresses every
// file to the recorded SHA-256.
func checkMaildirFiles(t *testing.T, vault string, server map[string][]imaptest.ServerMessage) {
	t.Helper()
	zstd := testenv.RequireTool(t, "zstd")
	_, st := archivetest.Latest(t, vault)
	total := 0
	// Every file is decompressed by one zstd process at the end (a
	// process per file costs seconds on a loaded machine): each is
	// hard-linked into in/ as <n>.zst and decompressed into out/<n>.
	tmp := t.TempDir()
	in, out := filepath.Join(tmp, "in"), filepath.Join(tmp, "out")
	for _, d := range []string{in, out} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	type file struct{ folder, name, sum string }
	var files []file
	for name, f := range st.Folders {
		named := map[string]string{}
		keys := map[string]bool{}
		for _, m := range f.Archived {
			if keys[m.Key] {
				t.Errorf("%s: key %s archived twice", name, m.Key)
			}
			keys[m.Key] = true
			named[path.Base(m.Seg)] = m.SHA256
		}
		total += len(f.Present())
		if f.Dir == "" {
			continue
		}
		dir := filepath.Join(vault, "folders", f.Dir)
		for _, sub := range []string{"tmp", "new"} {
			if e, _ := os.ReadDir(filepath.Join(dir, sub)); len(e) > 0 {
				t.Errorf("%s: %d files in %s/", name, len(e), sub)
			}
		}
		cur, _ := os.ReadDir(filepath.Join(dir, "cur"))
		if len(cur) != len(named) {
			t.Errorf("%s: %d files in cur/, manifests name %d", name, len(cur), len(named))
		}
		for _, e := range cur {
			sum, ok := named[e.Name()]
			if !ok {
				t.Errorf("%s: cur/%s is not named by any manifest", name, e.Name())
				continue
			}
			link := filepath.Join(in, fmt.Sprintf("%d.zst", len(files)))
			if err := os.Link(filepath.Join(dir, "cur", e.Name()), link); err != nil {
				t.Fatal(err)
			}
			files = append(files, file{name, e.Name(), sum})
		}
	}
	if len(files) > 0 {
		args := []string{"-dq", "--output-dir-flat", out}
		for i := range files {
			args = append(args, filepath.Join(in, fmt.Sprintf("%d.zst", i)))
		}
		if o, err := exec.Command(zstd, args...).CombinedOutput(); err != nil {
			t.Fatalf("zstd -d of %d message files: %v\n%s", len(files), err, o)
		}
	}
	for i, f := range files {
		data, err := os.ReadFile(filepath.Join(out, strconv.Itoa(i)))
		if h := sha256.Sum256(data); err != nil || hex.EncodeToString(h[:]) != f.sum {
			t.Errorf("%s: zstd -d cur/%s: %v, or bytes differ", f.folder, f.name, err)
		}
	}
	want := 0
	for _, ms := range server {
		want += len(ms)
	}
	if total != want {
		t.Errorf("archive holds %d messages, server %d", total, want)
	}
}

func a2UIDValidity(t *testing.T, vault string) uint32 {
	_, st := archivetest.Latest(t, vault)
	return st.Folders["INBOX"].UIDValidity
}
