package imapclient_test

// Tests of the mailvault patch (see ../../README.md): non-synchronizing
// literals with LITERAL+, unknown FETCH items skipped, Gmail's X-GM-*
// items, and a UID sent after the body literal.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// scripted runs script as the server side of a client connection and
// returns the client; the test fails with the script's error, if any,
// when it ends.
func scripted(t *testing.T, greeting string, script func(r *bufio.Reader, w io.Writer) error) *imapclient.Client {
	t.Helper()
	clientConn, serverConn := net.Pipe()
	done := make(chan error, 1)
	go func() {
		defer serverConn.Close()
		if _, err := io.WriteString(serverConn, greeting+"\r\n"); err != nil {
			done <- err
			return
		}
		done <- script(bufio.NewReader(serverConn), serverConn)
	}()
	client := imapclient.New(clientConn, nil)
	t.Cleanup(func() {
		client.Close()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("server script did not end")
		}
	})
	if err := client.WaitGreeting(); err != nil {
		t.Fatalf("WaitGreeting() = %v", err)
	}
	return client
}

// readAppend reads one APPEND command and returns its literal header
// ("{N}" or "{N+}"); for a synchronizing literal it sends the continuation
// request first. It then reads the literal and the final CRLF.
func readAppend(r *bufio.Reader, w io.Writer) (tag, header string, body []byte, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", "", nil, err
	}
	tag, _, _ = strings.Cut(line, " ")
	i := strings.LastIndexByte(line, '{')
	if i < 0 || !strings.HasSuffix(line, "}\r\n") {
		return "", "", nil, fmt.Errorf("no literal in %q", line)
	}
	header = strings.TrimSuffix(line[i:], "\r\n")
	var n int
	if _, err := fmt.Sscanf(strings.TrimSuffix(header[1:], "}"), "%d", &n); err != nil {
		return "", "", nil, fmt.Errorf("literal size in %q: %v", line, err)
	}
	if !strings.HasSuffix(header, "+}") {
		if _, err := io.WriteString(w, "+ send it\r\n"); err != nil {
			return "", "", nil, err
		}
	}
	body = make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return "", "", nil, err
	}
	if crlf, err := r.ReadString('\n'); err != nil || crlf != "\r\n" {
		return "", "", nil, fmt.Errorf("after the literal: %q, %v", crlf, err)
	}
	return tag, header, body, nil
}

func TestAppendNonSyncLiteral(t *testing.T) {
	tests := []struct {
		caps string
		size int
		want string // literal header the client must send
	}{
		{"IMAP4rev1 LITERAL+", 100, "{100+}"},
		{"IMAP4rev1 LITERAL+", 4096, "{4096+}"},
		{"IMAP4rev1 LITERAL+", 70000, "{70000+}"},
		{"IMAP4rev1 LITERAL-", 4096, "{4096+}"},
		{"IMAP4rev1 LITERAL-", 4097, "{4097}"},
		{"IMAP4rev1", 100, "{100}"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.caps, tt.size), func(t *testing.T) {
			msg := strings.Repeat("x", tt.size)
			got := make(chan string, 1)
			client := scripted(t, "* OK [CAPABILITY "+tt.caps+"] ready", func(r *bufio.Reader, w io.Writer) error {
				tag, header, body, err := readAppend(r, w)
				if err != nil {
					return err
				}
				got <- header
				if string(body) != msg {
					return fmt.Errorf("literal of %d bytes differs", len(body))
				}
				_, err = io.WriteString(w, tag+" OK [APPENDUID 1 7] done\r\n")
				return err
			})
			cmd := client.Append("INBOX", int64(len(msg)), nil)
			errc := make(chan error, 1)
			go func() {
				if _, err := io.WriteString(cmd, msg); err != nil {
					errc <- err
					return
				}
				errc <- cmd.Close()
			}()
			select {
			case h := <-got:
				if h != tt.want {
					t.Errorf("literal sent as %s, want %s", h, tt.want)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the server got no APPEND")
			}
			if err := <-errc; err != nil {
				t.Fatalf("writing the message: %v", err)
			}
			data, err := cmd.Wait()
			if err != nil || data.UID != 7 {
				t.Fatalf("Append().Wait() = %+v, %v; want UID 7", data, err)
			}
		})
	}
}

// TestAppendNonSyncPipelined checks that APPENDs over 4 KiB to a LITERAL+
// server go out back to back: the server sees the second before it
// answered the first.
func TestAppendNonSyncPipelined(t *testing.T) {
	msg := strings.Repeat("y", 20000)
	client := scripted(t, "* OK [CAPABILITY IMAP4rev1 LITERAL+] ready", func(r *bufio.Reader, w io.Writer) error {
		var tags []string
		for i := 0; i < 3; i++ {
			tag, header, _, err := readAppend(r, w)
			if err != nil {
				return err
			}
			if header != "{20000+}" {
				return fmt.Errorf("APPEND %d sent %s", i+1, header)
			}
			tags = append(tags, tag)
		}
		for _, tag := range tags {
			if _, err := io.WriteString(w, tag+" OK done\r\n"); err != nil {
				return err
			}
		}
		return nil
	})
	var cmds []*imapclient.AppendCommand
	for i := 0; i < 3; i++ {
		cmd := client.Append("INBOX", int64(len(msg)), nil)
		if _, err := io.WriteString(cmd, msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for i, cmd := range cmds {
		if _, err := cmd.Wait(); err != nil {
			t.Errorf("APPEND %d: %v", i+1, err)
		}
	}
}

// fetchScript answers the first command (a FETCH) with the given untagged
// responses, then OK, and answers the next one (NOOP) with OK.
func fetchScript(responses ...string) func(r *bufio.Reader, w io.Writer) error {
	return func(r *bufio.Reader, w io.Writer) error {
		for round := 0; round < 2; round++ {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			tag, _, _ := strings.Cut(line, " ")
			if round == 0 {
				for _, resp := range responses {
					if _, err := io.WriteString(w, resp); err != nil {
						return err
					}
				}
			}
			if _, err := io.WriteString(w, tag+" OK done\r\n"); err != nil {
				return err
			}
		}
		return nil
	}
}

type fetched struct {
	uid    imap.UID
	body   string
	msgID  uint64
	thrID  uint64
	labels []string
	flags  []imap.Flag
	modSeq uint64
}

func streamFetch(t *testing.T, cmd *imapclient.FetchCommand) []fetched {
	t.Helper()
	var out []fetched
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		var f fetched
		for item := msg.Next(); item != nil; item = msg.Next() {
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				f.uid = it.UID
			case imapclient.FetchItemDataBodySection:
				b, err := io.ReadAll(it.Literal)
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				f.body = string(b)
			case imapclient.FetchItemDataGmailMsgID:
				f.msgID = it.MsgID
			case imapclient.FetchItemDataGmailThreadID:
				f.thrID = it.ThreadID
			case imapclient.FetchItemDataGmailLabels:
				f.labels = it.Labels
			case imapclient.FetchItemDataFlags:
				f.flags = it.Flags
			case imapclient.FetchItemDataModSeq:
				f.modSeq = it.ModSeq
			}
		}
		if len(f.labels) == 0 {
			f.labels = nil // compared as "none"
		}
		if len(f.flags) == 0 {
			f.flags = nil
		}
		out = append(out, f)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH failed: %v", err)
	}
	return out
}

func TestFetchUnknownItems(t *testing.T) {
	client := scripted(t, "* OK [CAPABILITY IMAP4rev1 X-GM-EXT-1] ready", fetchScript(
		"* 1 FETCH (UID 7 X-GM-MSGID 1278455344230334865 X-GM-THRID 1266894439832287888 "+
			`X-GM-LABELS (\Inbox \Sent Important "Muy Importante" Caf&AOk-) `+
			"PREVIEW {11}\r\nhello world EMAILID (M6d1b) SAVEDATE NIL X-UNKNOWN[1.2]<0> \"x\" "+
			"FLAGS (\\Seen) MODSEQ (42) BODY[] {5}\r\nabcde)\r\n",
		"* 2 FETCH (UID 9 X-GM-LABELS () PREVIEW NIL BODY[] {3}\r\nxyz)\r\n",
	))
	msgs := streamFetch(t, client.Fetch(imap.UIDSetNum(7, 9), &imap.FetchOptions{
		UID: true, Flags: true, GmailMsgID: true, GmailThreadID: true, GmailLabels: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}))
	want := []fetched{
		{uid: 7, body: "abcde", msgID: 1278455344230334865, thrID: 1266894439832287888,
			labels: []string{`\Inbox`, `\Sent`, "Important", "Muy Importante", "Café"},
			flags:  []imap.Flag{imap.FlagSeen}, modSeq: 42},
		{uid: 9, body: "xyz"},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("FETCH delivered\n%+v\nwant\n%+v", msgs, want)
	}
	// The connection is still usable.
	if err := client.Noop().Wait(); err != nil {
		t.Errorf("NOOP after the FETCH: %v", err)
	}
}

func TestFetchGmailItemsRequested(t *testing.T) {
	sent := make(chan string, 1)
	client := scripted(t, "* OK [CAPABILITY IMAP4rev1 X-GM-EXT-1] ready", func(r *bufio.Reader, w io.Writer) error {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		sent <- line
		tag, _, _ := strings.Cut(line, " ")
		_, err = io.WriteString(w, "* 1 FETCH (UID 3 X-GM-LABELS (Work) X-GM-MSGID 5)\r\n"+tag+" OK done\r\n")
		return err
	})
	msgs, err := client.Fetch(imap.UIDSetNum(3), &imap.FetchOptions{GmailMsgID: true, GmailLabels: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	line := <-sent
	for _, item := range []string{"X-GM-MSGID", "X-GM-LABELS"} {
		if !strings.Contains(line, item) {
			t.Errorf("command %q does not ask for %s", line, item)
		}
	}
	if len(msgs) != 1 || msgs[0].GmailMsgID != 5 || !reflect.DeepEqual(msgs[0].GmailLabels, []string{"Work"}) {
		t.Errorf("Collect() = %+v", msgs)
	}
}

// TestFetchUIDAfterLiteral: a server may send the UID after the body
// literal (RFC 3501 does not order the items); the message still belongs
// to the UID FETCH.
func TestFetchUIDAfterLiteral(t *testing.T) {
	client := scripted(t, "* OK [CAPABILITY IMAP4rev1] ready", fetchScript(
		"* 1 FETCH (BODY[] {5}\r\nhello UID 7 FLAGS (\\Seen))\r\n",
		"* 2 FETCH (FLAGS () BODY[] {3}\r\nxyz UID 9)\r\n",
		"* 3 FETCH (FLAGS (\\Deleted))\r\n", // unsolicited, no literal: not the command's
	))
	msgs := streamFetch(t, client.Fetch(imap.UIDSetNum(7, 9), &imap.FetchOptions{
		UID: true, Flags: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}))
	want := []fetched{
		{uid: 7, body: "hello", flags: []imap.Flag{imap.FlagSeen}},
		{uid: 9, body: "xyz"},
	}
	if !reflect.DeepEqual(msgs, want) {
		t.Errorf("UID FETCH delivered\n%+v\nwant\n%+v", msgs, want)
	}
	if err := client.Noop().Wait(); err != nil {
		t.Errorf("NOOP after the FETCH: %v", err)
	}
}

// TestByeReason: the commands pending when the server says BYE and closes
// the connection fail with the BYE (its code and text), not a bare EOF.
func TestByeReason(t *testing.T) {
	client := scripted(t, "* OK [CAPABILITY IMAP4rev1] ready", func(r *bufio.Reader, w io.Writer) error {
		if _, err := r.ReadString('\n'); err != nil {
			return err
		}
		_, err := io.WriteString(w, "* 1 FETCH (UID 7)\r\n* BYE [OVERQUOTA] Account exceeded command or bandwidth limits.\r\n")
		return err
	})
	_, err := client.Fetch(imap.UIDSetNum(7), &imap.FetchOptions{UID: true}).Collect()
	var bye *imapclient.ByeError
	if !errors.As(err, &bye) || bye.Code != imap.ResponseCodeOverQuota || bye.Text != "Account exceeded command or bandwidth limits." {
		t.Fatalf("FETCH after BYE: %v, want the BYE", err)
	}
	// Callers that only know a closed connection still see one.
	var ie *imap.Error
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &ie) {
		t.Errorf("FETCH after BYE: %v, want an io.ErrUnexpectedEOF and no *imap.Error", err)
	}
}
