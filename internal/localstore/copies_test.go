package localstore

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/mailvault/mailvault/restore"
)

// TestCopies: a folder the archive holds the same message twice in (two
// keys, the same bytes and date) is restored with both copies on every
// local target, and a second restore adds none.
func TestCopies(t *testing.T) {
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	body := []byte("Message-ID: <twice@x>\r\nSubject: twice\r\n\r\nthe same bytes\r\n")
	noID := []byte("Subject: no id\r\n\r\nthe same bytes, no Message-ID\r\n")
	msgs := []tmsg{
		{folder: "INBOX", date: date, body: body},
		{folder: "INBOX", date: date, body: body},
		{folder: "INBOX", date: date, body: noID},
		{folder: "INBOX", date: date, body: noID},
	}
	for _, kind := range []string{"maildir", "mbox", "eml"} {
		root := filepath.Join(t.TempDir(), kind)
		open := func() restore.Target {
			var tg restore.Target
			var err error
			switch kind {
			case "maildir":
				tg, err = NewMaildir(root)
			case "mbox":
				tg, err = NewMbox(root)
			default:
				tg, err = NewEML(root)
			}
			if err != nil {
				t.Fatal(err)
			}
			return tg
		}
		if n := restoreAll(t, open(), msgs); n != 4 {
			t.Fatalf("%s: first restore appended %d, want 4", kind, n)
		}
		if n := restoreAll(t, open(), msgs); n != 0 {
			t.Errorf("%s: second restore appended %d, want 0: the target kept fewer copies than it was given", kind, n)
		}
	}
}
