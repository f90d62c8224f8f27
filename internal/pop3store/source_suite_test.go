package pop3store_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/pop3store"
	"github.com/mailvault/mailvault/internal/pop3test"
)

// The backup.Source conformance suite (backup/sourcetest) against the
// scripted POP3 server and against Dovecot.

func dialer(addr string) backup.Dialer {
	return func(ctx context.Context) (backup.Source, error) {
		return pop3store.Dial(ctx, mailconn.Config{Addr: addr, User: "alice", Password: "pw", Security: mailconn.Plaintext, Timeout: 20 * time.Second}, nil)
	}
}

func TestSourceSuitePOP3Test(t *testing.T) {
	folders := sourcetest.Mailbox(true)
	var msgs []pop3test.Message
	for i, m := range folders[0].Messages {
		msgs = append(msgs, pop3test.Message{UIDL: fmt.Sprintf("uidl-%d", i+1), Body: m.Body})
	}
	srv := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw", Messages: msgs})
	sourcetest.Run(t, sourcetest.Store{
		Dial:    dialer(srv.Addr),
		Folders: folders,
		NoFlags: true,
		State: func(t *testing.T) string {
			var lines []string
			for _, m := range srv.Messages() {
				s := sha256.Sum256(m.Body)
				lines = append(lines, m.UIDL+" "+hex.EncodeToString(s[:8]))
			}
			for uidl := range srv.Seen() {
				lines = append(lines, "seen "+uidl) // RETRieved: marked read
			}
			sort.Strings(lines)
			return strings.Join(lines, "; ")
		},
	})
}

func TestSourceSuiteDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	folders := sourcetest.Mailbox(true)
	for _, m := range folders[0].Messages {
		var flags []imap.Flag
		for _, f := range m.Flags {
			flags = append(flags, imap.Flag(f))
		}
		imaptest.Append(t, c, "INBOX", flags, m.InternalDate, m.Body)
	}
	sourcetest.Run(t, sourcetest.Store{
		Dial:    dialer(srv.POP3Addr),
		Folders: folders,
		NoFlags: true,
		// Over IMAP: a POP3 session that marked a message \Seen (RETR)
		// changes its flags.
		State: func(t *testing.T) string {
			var lines []string
			for _, m := range imaptest.ReadServer(t, c)["INBOX"] {
				lines = append(lines, fmt.Sprintf("%d %v %s", m.UID, m.Flags, m.SHA256[:16]))
			}
			return strings.Join(lines, "; ")
		},
	})
}
