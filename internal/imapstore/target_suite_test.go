package imapstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/restore"
	"github.com/mailvault/mailvault/restore/targettest"
)

// The restore.Target conformance suite (restore/targettest) against
// go-imap's in-memory server and against Dovecot.

func TestTargetSuiteMem(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	targettest.Run(t, imapSuiteTarget(srv.Addr, srv.Dial(t, "alice", "pw")))
}

func TestTargetSuiteDovecot(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	targettest.Run(t, imapSuiteTarget(srv.IMAPAddr, login(t, srv.IMAPAddr)))
}

// imapSuiteTarget is alice's account at addr as a targettest.Target; c,
// logged in as alice, reads it.
func imapSuiteTarget(addr string, c *imapclient.Client) targettest.Target {
	return targettest.Target{
		Open: func(ctx context.Context) (restore.Target, error) {
			return imapstore.DialTarget(ctx, mailconn.Config{Addr: addr, User: "alice", Password: "pw", Security: mailconn.Plaintext, Timeout: 20 * time.Second})
		},
		Flags: true,
		Contents: func(t *testing.T) map[string][]targettest.Stored {
			out := map[string][]targettest.Stored{}
			// Both servers delimit levels with "/", as the suite does.
			for name, msgs := range imaptest.ReadServer(t, c) {
				ms := []targettest.Stored{}
				for _, m := range msgs {
					ms = append(ms, targettest.Stored{Body: m.Body, Flags: m.Flags, InternalDate: m.InternalDate})
				}
				out[name] = ms
			}
			return out
		},
	}
}
