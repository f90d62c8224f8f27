package imaptest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestGmailServer: the Gmail-like server lists [Gmail] as \Noselect and
// All Mail as \All, advertises X-GM-EXT-1, keeps a message once however
// many labels show it, and ends a connection with Gmail's BYE at its
// bandwidth cap.
func TestGmailServer(t *testing.T) {
	g := StartGmail(t, GmailOptions{User: "alice", Password: "pw", BandwidthCap: 250})
	day := time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)
	msg := func(i int) []byte {
		return []byte(fmt.Sprintf("Message-ID: <%d@x>\r\nSubject: %d\r\n\r\nbody %d\r\n", i, i, i))
	}
	g.Deliver(t, msg(1), day, "INBOX", "Work")
	g.Deliver(t, msg(2), day, "Work")
	g.Deliver(t, msg(3), day)

	c := g.Dial(t, "alice", "pw")
	if !c.Caps().Has("X-GM-EXT-1") {
		t.Errorf("capabilities %v lack X-GM-EXT-1", c.Caps())
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, l := range list {
		attrs[l.Mailbox] = l.Attrs
	}
	if !has(attrs["[Gmail]"], imap.MailboxAttrNoSelect) || !has(attrs[GmailAllMail], imap.MailboxAttrAll) {
		t.Errorf("LIST attributes %v: want [Gmail] \\Noselect and All Mail \\All", attrs)
	}
	if _, err := c.Select("[Gmail]", &imap.SelectOptions{ReadOnly: true}).Wait(); err == nil {
		t.Error("EXAMINE [Gmail] succeeded")
	}
	// Appending what the account holds: a label more, no new message.
	Create(t, c, "Family")
	Append(t, c, "Family", nil, day, msg(2))
	counts := map[string]int{"INBOX": g.Messages("INBOX"), "Work": g.Messages("Work"), "Family": g.Messages("Family"), GmailAllMail: g.Messages(GmailAllMail)}
	if want := map[string]int{"INBOX": 1, "Work": 2, "Family": 1, GmailAllMail: 3}; !reflect.DeepEqual(counts, want) {
		t.Errorf("messages %v, want %v", counts, want)
	}
	Append(t, c, "Work", nil, day, msg(2))
	Append(t, c, GmailAllMail, nil, day, msg(1))
	if g.Messages("Work") != 2 || g.Messages(GmailAllMail) != 3 {
		t.Errorf("appending a message a folder shows added one: Work %d, All Mail %d", g.Messages("Work"), g.Messages(GmailAllMail))
	}
	want := map[string][]string{"<1@x>": {"INBOX", "Work"}, "<2@x>": {"Family", "Work"}, "<3@x>": {}}
	if got := g.Labels(); !reflect.DeepEqual(got, want) {
		t.Errorf("labels %v, want %v", got, want)
	}

	// The cap: about three messages of about 50 bytes, then BYE.
	if _, err := c.Select(GmailAllMail, &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var byeErr error
	for i := 0; i < 10 && byeErr == nil; i++ {
		_, byeErr = c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	}
	var bye *imapclient.ByeError
	if !errors.As(byeErr, &bye) || bye.Code != "OVERQUOTA" || g.Byes() != 1 {
		t.Errorf("fetching past the cap: %v (%d BYEs), want Gmail's BYE [OVERQUOTA]", byeErr, g.Byes())
	}
}

func has(attrs []imap.MailboxAttr, a imap.MailboxAttr) bool {
	for _, x := range attrs {
		if x == a {
			return true
		}
	}
	return false
}
