package imaptest

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// ServerMessage is a message as a server serves it.
type ServerMessage struct {
	UID          imap.UID
	Flags        []string // lower-cased, sorted, without \Recent
	SHA256       string
	Body         []byte
	InternalDate time.Time
}

// ReadServer reads every message of every selectable folder read-only
// (EXAMINE and BODY.PEEK), for comparing a server with an archive. Bodies
// are held in memory: use it on test-sized mailboxes.
func ReadServer(t testing.TB, c *imapclient.Client) map[string][]ServerMessage {
	t.Helper()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]ServerMessage{}
	for _, l := range list {
		skip := false
		for _, a := range l.Attrs {
			if a == imap.MailboxAttrNoSelect || a == imap.MailboxAttrNonExistent {
				skip = true
			}
		}
		if skip {
			continue
		}
		sd, err := c.Select(l.Mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
		if err != nil {
			t.Fatal(err)
		}
		out[l.Mailbox] = []ServerMessage{}
		if sd.NumMessages == 0 {
			continue
		}
		msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
			UID: true, Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			var body []byte
			for _, b := range m.BodySection {
				body = b.Bytes
			}
			sum := sha256.Sum256(body)
			out[l.Mailbox] = append(out[l.Mailbox], ServerMessage{UID: m.UID, Flags: FlagSet(m.Flags), SHA256: hex.EncodeToString(sum[:]), Body: body, InternalDate: m.InternalDate})
		}
	}
	return out
}

// FlagSet returns flags lower-cased and sorted, without \Recent, so that
// flag lists can be compared as sets.
func FlagSet[F ~string](fl []F) []string {
	var out []string
	for _, f := range fl {
		if strings.EqualFold(string(f), `\Recent`) {
			continue
		}
		out = append(out, strings.ToLower(string(f)))
	}
	sort.Strings(out)
	return out
}
