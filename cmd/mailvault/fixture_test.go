package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/corpus"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// Frozen fixtures: small archives written by a released archive format,
// committed under testdata/archives/vN/ and never rewritten. Every later
// mailvault must read, verify and restore them exactly as the server held
// the mail when they were made; expect.json records that, taken from the
// server (not from the archive).
//
// A format version bump adds testdata/archives/vN+1 (run the writer
// below once with the new version) and keeps every older directory.

const fixtureRoot = "../../testdata/archives"

// fixtureArchives are the storage kinds each fixture set holds, as the
// backup flags that made them.
var fixtureArchives = map[string][]string{
	"mbox-zstd":    nil,
	"maildir-zstd": {"--format", "maildir", "--compress", "zstd"},
	"maildir-none": {"--format", "maildir", "--compress", "none"},
}

// fixtureExpect is expect.json: the server's mail at each backup run.
type fixtureExpect struct {
	Made      string            `json:"made"` // which mailvault wrote it
	Snapshots []fixtureSnapshot `json:"snapshots"`
}

type fixtureSnapshot struct {
	Note    string                      `json:"note"`
	Folders map[string][]fixtureMessage `json:"folders"` // present on the server
}

type fixtureMessage struct {
	Key          string    `json:"key"` // UIDVALIDITY:UID
	SHA256       string    `json:"sha256"`
	Size         int       `json:"size"`
	Flags        []string  `json:"flags"` // lower-cased, sorted
	InternalDate time.Time `json:"internal_date"`
}

// TestWriteFixtures writes a new fixture set. It runs only when asked:
//
//	MAILVAULT_WRITE_FIXTURES=v1 go test ./cmd/mailvault -run TestWriteFixtures
//
// and refuses to overwrite an existing set.
func TestWriteFixtures(t *testing.T) {
	version := os.Getenv("MAILVAULT_WRITE_FIXTURES")
	if version == "" {
		t.Skip("set MAILVAULT_WRITE_FIXTURES=vN to write a new fixture set")
	}
	dir := filepath.Join(fixtureRoot, version)
	if _, err := os.Stat(dir); err == nil {
		t.Fatalf("%s exists: fixtures are frozen, never rewritten", dir)
	}
	srv := imaptest.StartMem(t, imaptest.MemOptions{
		Users:      map[string]string{"alice": "pw"},
		SpecialUse: map[string]string{"Sent": `\Sent`, "Entwürfe": `\Drafts`},
	})
	c := srv.Dial(t, "alice", "pw")
	for _, f := range []string{"Sent", "Entwürfe", "Archive", "Archive/2024", "Año 2023", "Año 2023/Facturas", "日本", "Old"} {
		imaptest.Create(t, c, f)
	}
	edges := corpus.EdgeCases()
	folders := []string{"INBOX", "Sent", "Entwürfe", "Archive/2024", "Año 2023/Facturas", "日本", "Old"}
	date := time.Date(2024, 2, 29, 23, 59, 58, 0, time.FixedZone("", -5*3600))
	flagSets := [][]imap.Flag{nil, {imap.FlagSeen}, {imap.FlagSeen, imap.FlagAnswered}, {imap.FlagFlagged, "$Label1"}, {imap.FlagDraft}, {imap.FlagSeen, "project_x", "$Forwarded"}}
	for i, name := range corpus.EdgeCaseNames() {
		folder := folders[i%len(folders)]
		imaptest.Append(t, c, folder, flagSets[i%len(flagSets)], date.Add(time.Duration(i)*time.Hour), edges[name])
	}
	for i, m := range corpus.Generate(corpus.Options{Seed: 7, Messages: 4}) {
		imaptest.Append(t, c, folders[i%len(folders)], flagSets[(i+1)%len(flagSets)], m.InternalDate, m.Body)
	}

	vaults := t.TempDir()
	url := "imap://alice@" + srv.Addr
	env := map[string]string{"MAILVAULT_PASSWORD": "pw"}
	var exp fixtureExpect
	exp.Made = "mailvault at " + gitHead(t)
	backupAll := func(note string) {
		t.Helper()
		exp.Snapshots = append(exp.Snapshots, fixtureSnapshot{Note: note, Folders: serverFixture(t, c)})
		for name, flags := range fixtureArchives {
			args := append([]string{"backup", "--insecure-plaintext", url, filepath.Join(vaults, name)}, flags...)
			if code, out, errs := runCLI(t, env, args...); code != 0 {
				t.Fatalf("backup %s: exit %d: %s %s", name, code, out, errs)
			}
		}
	}
	backupAll("first run: every folder new")

	// Second run: new mail, a flag change, a deletion, a renamed folder.
	imaptest.Append(t, c, "INBOX", []imap.Flag{"$Label2"}, date.Add(1000*time.Hour), []byte("Subject: arrived later\r\nMessage-ID: <later@fixture.test>\r\n\r\nnew mail\r\n"))
	storeFlags(t, c, "INBOX", 1, imap.StoreFlagsAdd, imap.FlagFlagged)
	storeFlags(t, c, "Sent", 1, imap.StoreFlagsAdd, imap.FlagDeleted)
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("日本", "日本語", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	backupAll("second run: 1 added to INBOX, INBOX uid 1 flagged, Sent uid 1 expunged, 日本 renamed to 日本語")

	// Third run: a folder deleted, the same bytes appended twice (stored once).
	if err := c.Delete("Old").Wait(); err != nil {
		t.Fatal(err)
	}
	dup := []byte("Subject: twice\r\n\r\nsame bytes\r\n")
	imaptest.Append(t, c, "Archive/2024", nil, date, dup)
	imaptest.Append(t, c, "Archive/2024", []imap.Flag{imap.FlagSeen}, date, dup)
	backupAll("third run: folder Old deleted, the same bytes appended twice to Archive/2024")

	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name := range fixtureArchives {
		// Derived and run-time files are not part of a frozen archive.
		os.RemoveAll(filepath.Join(vaults, name, "cache"))
		os.Remove(filepath.Join(vaults, name, "lock"))
		writeTar(t, filepath.Join(vaults, name), filepath.Join(dir, name+".tar"))
	}
	b, err := json.MarshalIndent(&exp, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "expect.json"), append(b, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gitHead(t *testing.T) string {
	if out, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	b, err := os.ReadFile("../../.git/HEAD")
	if err != nil {
		return "unknown commit"
	}
	ref := strings.TrimSpace(strings.TrimPrefix(string(b), "ref: "))
	if h, err := os.ReadFile(filepath.Join("../../.git", ref)); err == nil {
		return strings.TrimSpace(string(h))[:12]
	}
	return ref
}

func storeFlags(t *testing.T, c *imapclient.Client, folder string, seq uint32, op imap.StoreFlagsOp, flags ...imap.Flag) {
	t.Helper()
	if _, err := c.Select(folder, nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(seq), &imap.StoreFlags{Op: op, Flags: flags}, nil).Close(); err != nil {
		t.Fatal(err)
	}
}

// serverFixture reads the server's mail as expect.json records it.
func serverFixture(t *testing.T, c *imapclient.Client) map[string][]fixtureMessage {
	t.Helper()
	out := map[string][]fixtureMessage{}
	for folder, msgs := range imaptest.ReadServer(t, c) {
		st, err := c.Status(folder, &imap.StatusOptions{UIDValidity: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		list := []fixtureMessage{}
		for _, m := range msgs {
			flags := append([]string{}, m.Flags...)
			sort.Strings(flags)
			list = append(list, fixtureMessage{
				Key: fmt.Sprintf("%d:%d", st.UIDValidity, m.UID), SHA256: m.SHA256, Size: len(m.Body),
				Flags: flags, InternalDate: m.InternalDate.UTC(),
			})
		}
		out[folder] = list
	}
	return out
}

// TestFrozenFixtures reads, verifies and restores every committed fixture
// archive and compares each snapshot with what the server held.
func TestFrozenFixtures(t *testing.T) {
	sets, err := os.ReadDir(fixtureRoot)
	if err != nil || len(sets) == 0 {
		t.Fatalf("no fixture sets under %s: %v", fixtureRoot, err)
	}
	for _, set := range sets {
		var exp fixtureExpect
		b, err := os.ReadFile(filepath.Join(fixtureRoot, set.Name(), "expect.json"))
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, &exp); err != nil {
			t.Fatalf("%s/expect.json: %v", set.Name(), err)
		}
		for name := range fixtureArchives {
			t.Run(set.Name()+"/"+name, func(t *testing.T) {
				// A tar keeps what git would not (empty Maildir
				// directories, file times), and commands work on a copy.
				vault := readTar(t, filepath.Join(fixtureRoot, set.Name(), name+".tar"))
				checkFixture(t, vault, &exp)
			})
		}
	}
}

func checkFixture(t *testing.T, vault string, exp *fixtureExpect) {
	if code, out, errs := runCLI(t, nil, "verify", vault); code != 0 {
		t.Fatalf("verify: exit %d: %s %s", code, out, errs)
	}
	ids := fixtureSnapshotIDs(t, vault)
	if len(ids) != len(exp.Snapshots) {
		t.Fatalf("archive has %d snapshots, expect.json %d", len(ids), len(exp.Snapshots))
	}
	seen := map[string]string{} // key -> sha256, every message ever on the server
	for i, want := range exp.Snapshots {
		present := map[string]string{}
		for folder, msgs := range want.Folders {
			got := lsFolder(t, vault, ids[i], folder)
			for _, m := range msgs {
				present[m.Key], seen[m.Key] = m.SHA256, m.SHA256
				g, ok := got[m.Key]
				switch {
				case !ok:
					t.Errorf("snapshot %d (%s): %s %s missing", i+1, want.Note, folder, m.Key)
					continue
				case g.Gone:
					t.Errorf("snapshot %d: %s %s is gone, want present", i+1, folder, m.Key)
				case g.SHA256 != m.SHA256 || g.Size != m.Size:
					t.Errorf("snapshot %d: %s %s: sha256 %s size %d, want %s %d", i+1, folder, m.Key, g.SHA256, g.Size, m.SHA256, m.Size)
				case !g.InternalDate.Equal(m.InternalDate):
					t.Errorf("snapshot %d: %s %s: date %v, want %v", i+1, folder, m.Key, g.InternalDate, m.InternalDate)
				case strings.Join(imaptest.FlagSet(g.Flags), " ") != strings.Join(m.Flags, " "):
					t.Errorf("snapshot %d: %s %s: flags %v, want %v", i+1, folder, m.Key, g.Flags, m.Flags)
				}
			}
			for k, g := range got {
				if !g.Gone && present[k] == "" {
					t.Errorf("snapshot %d: %s %s present in the archive, not on the server", i+1, folder, k)
				}
			}
		}
		// Every message seen before and not present now is kept as gone.
		gone := 0
		for k := range seen {
			if _, ok := present[k]; !ok {
				gone++
			}
		}
		if n := countGone(t, vault, ids[i]); n != gone {
			t.Errorf("snapshot %d: %d messages kept as gone, want %d", i+1, n, gone)
		}
		// The bytes: cat each present message, and a restore of the
		// snapshot to eml: holds exactly those bytes.
		// Copies count: a folder the archive holds the same bytes twice
		// in gets two files.
		want := map[string]int{}
		for folder, msgs := range exp.Snapshots[i].Folders {
			for _, m := range msgs {
				want[m.SHA256]++
				code, out, errs := runCLI(t, nil, "cat", "--snapshot", ids[i], vault, folder, m.Key)
				if code != 0 {
					t.Fatalf("cat %s %s: exit %d: %s", folder, m.Key, code, errs)
				}
				if s := sha256.Sum256([]byte(out)); hex.EncodeToString(s[:]) != m.SHA256 {
					t.Errorf("snapshot %d: cat %s %s: bytes differ", i+1, folder, m.Key)
				}
			}
		}
		dst := filepath.Join(t.TempDir(), "eml")
		if code, out, errs := runCLI(t, nil, "restore", "--snapshot", ids[i], vault, "eml:"+dst); code != 0 {
			t.Fatalf("restore snapshot %d: exit %d: %s %s", i+1, code, out, errs)
		}
		got := map[string]int{}
		filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			if !d.IsDir() && strings.HasSuffix(p, ".eml") {
				b, _ := os.ReadFile(p)
				s := sha256.Sum256(b)
				got[hex.EncodeToString(s[:])]++
			}
			return nil
		})
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("snapshot %d: restored %v, want %v", i+1, got, want)
		}
	}
}

func fixtureSnapshotIDs(t *testing.T, vault string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(vault, "snapshots"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range entries {
		// SEQ-ID.json, sorted by sequence number.
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok && len(n) == 17 {
			ids = append(ids, n[9:])
		}
	}
	return ids
}

type lsMessage struct {
	Key          string    `json:"key"`
	SHA256       string    `json:"sha256"`
	Size         int       `json:"size"`
	Flags        []string  `json:"flags"`
	InternalDate time.Time `json:"internal_date"`
	Gone         bool      `json:"gone"`
}

// lsFolder lists one folder at a snapshot, gone messages included.
func lsFolder(t *testing.T, vault, id, folder string) map[string]lsMessage {
	t.Helper()
	code, out, errs := runCLI(t, nil, "ls", "--json", "--all", "--snapshot", id, vault, folder)
	if code != 0 {
		t.Fatalf("ls %s: exit %d: %s", folder, code, errs)
	}
	got := map[string]lsMessage{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var m lsMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("ls --json line %q: %v", line, err)
		}
		got[m.Key] = m
	}
	return got
}

// countGone counts the messages kept as gone at a snapshot, over every
// folder the archive knows (deleted ones included).
func countGone(t *testing.T, vault, id string) int {
	t.Helper()
	code, out, errs := runCLI(t, nil, "ls", "--json", "--all", "--snapshot", id, vault)
	if code != 0 {
		t.Fatalf("ls: exit %d: %s", code, errs)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var f struct {
			Gone int `json:"gone"`
		}
		if err := json.Unmarshal([]byte(line), &f); err != nil {
			t.Fatalf("ls --json line %q: %v", line, err)
		}
		n += f.Gone
	}
	return n
}

// writeTar writes the tree at src as an uncompressed tar, sorted by path,
// with modes and modification times.
func writeTar(t *testing.T, src, dst string) {
	t.Helper()
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == src {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		hdr, err := tar.FileInfoHeader(info, "")
		if err != nil {
			return err
		}
		hdr.Name, hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = filepath.ToSlash(rel), 0, 0, "", ""
		if d.IsDir() {
			hdr.Name += "/"
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
}

// readTar unpacks a fixture tar into a new temporary directory.
func readTar(t *testing.T, src string) string {
	t.Helper()
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	dst := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), ".tar"))
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dst, filepath.FromSlash(hdr.Name))
		if !strings.HasPrefix(target, dst+string(filepath.Separator)) {
			t.Fatalf("%s: entry %q outside the archive", src, hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			err = os.MkdirAll(target, 0o755)
		case tar.TypeReg:
			var b []byte
			if b, err = io.ReadAll(tr); err == nil {
				err = os.WriteFile(target, b, 0o644)
			}
		default:
			t.Fatalf("%s: unexpected entry %q", src, hdr.Name)
		}
		if err == nil {
			err = os.Chtimes(target, hdr.ModTime, hdr.ModTime)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return dst
}
