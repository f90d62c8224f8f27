package main

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// expectFake is what the fake serves for folders given as FakeOptions.
func expectFake(folders map[string][]imaptest.FakeMessage) map[string][]imaptest.ServerMessage {
	out := map[string][]imaptest.ServerMessage{}
	for name, msgs := range folders {
		for _, m := range msgs {
			sum := sha256.Sum256(m.Body)
			out[name] = append(out[name], imaptest.ServerMessage{
				UID: m.UID, Flags: imaptest.FlagSet(m.Flags), SHA256: hex.EncodeToString(sum[:]), Body: m.Body,
				InternalDate: time.Date(2024, time.January, 2, 3, 4, 5, 0, time.UTC),
			})
		}
	}
	return out
}

// TestBackupUnreadableStatus: a server (GNU Mailutils) that answers
// STATUS for a name with a space without quoting it. go-imap cannot read
// the answer and drops the connection; the backup examines that folder
// instead and backs up everything, saying so.
func TestBackupUnreadableStatus(t *testing.T) {
	folders := map[string][]imaptest.FakeMessage{
		"INBOX":     fakeMessages(3, "inbox"),
		"My Folder": fakeMessages(2, "mine"),
		"Work":      fakeMessages(4, "work"),
	}
	f, src := fakeServer(t, imaptest.FakeOptions{Folders: folders, UnquotedStatus: true})
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", src, vault, "--insecure-plaintext")
	if code != exitOK {
		t.Fatalf("backup: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "STATUS reply for folder") || !strings.Contains(errs, "My Folder") {
		t.Errorf("no warning naming the folder: %s", errs)
	}
	archivetest.MatchesServer(t, vault, readFake(t, f))
	if code, out, errs := runCLI(t, pwEnv, "backup", src, vault, "--insecure-plaintext"); code != exitOK || !strings.Contains(out, " 0 messages added") {
		t.Errorf("second backup: exit %d\n%s%s", code, out, errs)
	}
}

// TestBackupInvalidFolderNames: LIST names that are not valid modified
// UTF-7 (raw 8-bit, a control byte, base64 of ASCII) make go-imap fail
// the whole LIST. The backup lists the folders with its own parser, backs
// up every other folder, names the ones it cannot open by an escaped name
// and exits 3 with a partial snapshot.
func TestBackupInvalidFolderNames(t *testing.T) {
	folders := map[string][]imaptest.FakeMessage{
		"INBOX":   fakeMessages(3, "inbox"),
		"Archive": fakeMessages(2, "archive"),
		"bad1":    fakeMessages(1, "bad1"),
		"bad2":    fakeMessages(1, "bad2"),
		"bad3":    fakeMessages(1, "bad3"),
		"bad4":    fakeMessages(1, "bad4"),
	}
	wire := map[string]string{"bad1": "Caf\xe9", "bad2": "A\x01B", "bad3": "&AGEAYgBj-", "bad4": "Line\r\nBreak"}
	_, src := fakeServer(t, imaptest.FakeOptions{Folders: folders, WireNames: wire})
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", src, vault, "--insecure-plaintext")
	if code != exitPartial {
		t.Fatalf("backup: exit %d, want %d (partial)\n%s%s", code, exitPartial, out, errs)
	}
	for _, name := range []string{"Caf%E9", "A%01B", "&AGEAYgBj-", "Line%0D%0ABreak"} {
		if !strings.Contains(errs, `folder "`+name+`"`) {
			t.Errorf("stderr does not name folder %q:\n%s", name, errs)
		}
	}
	archivetest.MatchesServer(t, vault, expectFake(map[string][]imaptest.FakeMessage{"INBOX": folders["INBOX"], "Archive": folders["Archive"]}))
	snaps, _ := mustOpen(t, vault).Snapshots()
	last := snaps[len(snaps)-1]
	if last.Status != formats.StatusPartial {
		t.Errorf("snapshot status %q, want partial", last.Status)
	}
	failed := map[string]bool{}
	for _, fo := range last.Folders {
		if fo.Status == formats.FolderFailed {
			failed[fo.Name] = true
		}
	}
	if len(failed) != 4 || !failed["Caf%E9"] || !failed["&AGEAYgBj-"] {
		t.Errorf("failed folders %v, want the four with invalid names", failed)
	}
}

// TestBackupUnreadableListLine: a LIST line that cannot be read at all
// names no folder; going on would record a folder as deleted on the
// server. The run fails, quoting the line, and commits nothing.
func TestBackupUnreadableListLine(t *testing.T) {
	_, src := fakeServer(t, imaptest.FakeOptions{ListExtra: []string{`* LIST \Broken "/" Lost`}})
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", src, vault, "--insecure-plaintext")
	if code != exitError || !strings.Contains(errs, `cannot read the server's LIST line`) || !strings.Contains(errs, "Lost") {
		t.Fatalf("backup: exit %d, want %d and the line quoted\n%s%s", code, exitError, out, errs)
	}
}

func mustOpen(t *testing.T, vault string) *formats.Archive {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
