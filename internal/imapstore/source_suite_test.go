package imapstore_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/backup/sourcetest"
	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
)

// The backup.Source conformance suite (backup/sourcetest) against
// go-imap's in-memory server and against Dovecot.

func TestSourceSuiteMem(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	sourcetest.Run(t, imapSuiteStore(t, srv.Addr, c))
}

func TestSourceSuiteDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	sourcetest.Run(t, imapSuiteStore(t, srv.IMAPAddr, login(t, srv.IMAPAddr)))
}

// imapSuiteStore fills the account c is logged in to with the suite's
// mailbox and returns it as a sourcetest.Store of imapstore sources.
func imapSuiteStore(t *testing.T, addr string, c *imapclient.Client) sourcetest.Store {
	t.Helper()
	folders := sourcetest.Mailbox(false)
	for _, f := range folders {
		if f.Name != "INBOX" {
			imaptest.Create(t, c, f.Name)
		}
		for _, m := range f.Messages {
			var flags []imap.Flag
			for _, fl := range m.Flags {
				flags = append(flags, imap.Flag(fl))
			}
			imaptest.Append(t, c, f.Name, flags, m.InternalDate, m.Body)
		}
	}
	return sourcetest.Store{
		Dial: func(ctx context.Context) (backup.Source, error) {
			return imapstore.Dial(ctx, mailconn.Config{Addr: addr, User: "alice", Password: "pw", Security: mailconn.Plaintext, Timeout: 20 * time.Second})
		},
		Folders: folders,
		State:   func(t *testing.T) string { return imapState(t, c) },
	}
}

// imapState renders everything an IMAP account holds: per folder, each
// message's UID, flags, INTERNALDATE and SHA-256.
func imapState(t *testing.T, c *imapclient.Client) string {
	t.Helper()
	var lines []string
	for name, msgs := range imaptest.ReadServer(t, c) {
		for _, m := range msgs {
			lines = append(lines, fmt.Sprintf("%s %d %v %s %s", name, m.UID, m.Flags, m.InternalDate.UTC().Format(time.RFC3339), m.SHA256[:16]))
		}
		if len(msgs) == 0 {
			lines = append(lines, name+" empty")
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "; ")
}
