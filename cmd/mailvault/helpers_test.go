package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// cli runs mailvault in-process with the given environment.
func runCLI(t *testing.T, envv map[string]string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mailvault"}, argv...), nil, &out, &errb, func(k string) string { return envv[k] })
	return code, out.String(), errb.String()
}

// serverMessage is a message as a server serves it.
type serverMessage struct {
	UID    imap.UID
	Flags  []string
	SHA256 string
	Body   []byte
	Date   int64
}

// snapshotServer reads every message of every selectable folder with
// EXAMINE and BODY.PEEK, for comparing with the archive.
func snapshotServer(t *testing.T, c *imapclient.Client) map[string][]serverMessage {
	t.Helper()
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]serverMessage{}
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
		out[l.Mailbox] = []serverMessage{}
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
			out[l.Mailbox] = append(out[l.Mailbox], serverMessage{UID: m.UID, Flags: flagSet(m.Flags), SHA256: hex.EncodeToString(sum[:]), Body: body, Date: m.InternalDate.Unix()})
		}
	}
	return out
}

func flagSet(fl []imap.Flag) []string {
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

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var _ = context.Background
