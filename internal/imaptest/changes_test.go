package imaptest

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// Tests of the fake's changes by "another client": Expunge, Recreate,
// ListAlso; and of Throttle.

func fiveMessages() []FakeMessage {
	var out []FakeMessage
	for i := 1; i <= 5; i++ {
		out = append(out, FakeMessage{UID: imap.UID(10 * i), Body: []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\r\n", i, i))})
	}
	return out
}

// dialFakeWith logs in to f as alice, counting EXPUNGE responses.
func dialFakeWith(t *testing.T, f *Fake, expunges *atomic.Int32) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(f.Addr, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(uint32) { expunges.Add(1) },
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestFakeExpungeAnotherSession: a session keeps its sequence numbers
// until a command that may report expunges (RFC 3501 7.4.1); until then an
// expunged message is answered as Dovecot does (RFC822.SIZE 0, empty
// body), or left out with ExpungedOmit.
func TestFakeExpungeAnotherSession(t *testing.T) {
	for _, omit := range []bool{false, true} {
		t.Run(fmt.Sprint("omit=", omit), func(t *testing.T) {
			f := StartFake(t, FakeOptions{User: "alice", Password: "pw", ExpungedOmit: omit, Folders: map[string][]FakeMessage{"INBOX": fiveMessages()}})
			var expunges atomic.Int32
			c := dialFakeWith(t, f, &expunges)
			if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
				t.Fatal(err)
			}
			if n := f.Expunge("INBOX", 20, 40); n != 2 {
				t.Fatalf("Expunge = %d, want 2", n)
			}
			// Not told yet: sequence number 4 is still UID 40.
			msgs, err := c.Fetch(imap.SeqSetNum(3, 4), &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range msgs {
				var body []byte
				for _, b := range m.BodySection {
					body = b.Bytes
				}
				got = append(got, fmt.Sprintf("%d:%d:%d:%d", m.SeqNum, m.UID, m.RFC822Size, len(body)))
			}
			want := []string{"3:30:22:22", "4:40:0:0"}
			if omit {
				want = want[:1]
			}
			if !slices.Equal(got, want) || expunges.Load() != 0 {
				t.Fatalf("FETCH 3:4 = %v with %d expunges, want %v and none", got, expunges.Load(), want)
			}
			// A UID command tells.
			data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
			if err != nil {
				t.Fatal(err)
			}
			if uids := data.AllUIDs(); !slices.Equal(uids, []imap.UID{10, 30, 50}) || expunges.Load() != 2 {
				t.Fatalf("UID SEARCH ALL = %v with %d expunges, want [10 30 50] and 2", uids, expunges.Load())
			}
			msgs, err = c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{UID: true}).Collect()
			if err != nil || len(msgs) != 1 || msgs[0].UID != 50 {
				t.Fatalf("FETCH 3 after the expunges = %v, %v; want UID 50", msgs, err)
			}
		})
	}
}

// TestFakeOnBodyExpunge: OnBody runs between the messages of one FETCH
// response; a message expunged from it is answered empty.
func TestFakeOnBodyExpunge(t *testing.T) {
	var f *Fake
	f = StartFake(t, FakeOptions{User: "alice", Password: "pw", Folders: map[string][]FakeMessage{"INBOX": fiveMessages()},
		OnBody: func(folder string, uid imap.UID) {
			if uid == 20 {
				f.Expunge(folder, 30)
			}
		}})
	var expunges atomic.Int32
	c := dialFakeWith(t, f, &expunges)
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSet{imap.UIDRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	sizes := map[imap.UID]int{}
	for _, m := range msgs {
		for _, b := range m.BodySection {
			sizes[m.UID] = len(b.Bytes)
		}
	}
	if len(sizes) != 5 || sizes[30] != 0 || sizes[20] == 0 || sizes[40] == 0 || expunges.Load() != 1 {
		t.Fatalf("UID FETCH 1:* sizes %v, %d expunges; want 30 empty, the others whole, 1 expunge", sizes, expunges.Load())
	}
}

// TestFakeRecreate: a re-created folder has a new UIDVALIDITY; a session
// that had the old one selected is disconnected at its next command.
func TestFakeRecreate(t *testing.T) {
	f := StartFake(t, FakeOptions{User: "alice", Password: "pw", Folders: map[string][]FakeMessage{"Box": fiveMessages()}})
	var expunges atomic.Int32
	c := dialFakeWith(t, f, &expunges)
	sd, err := c.Select("Box", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	validity, err := f.Recreate("Box", fiveMessages()[:2])
	if err != nil || validity == sd.UIDValidity || f.UIDValidity("Box") != validity {
		t.Fatalf("Recreate = %d, %v; old %d", validity, err, sd.UIDValidity)
	}
	if _, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true}).Collect(); err == nil {
		t.Fatalf("FETCH on the deleted folder succeeded, want the connection closed")
	}
	c2 := dialFakeWith(t, f, &expunges)
	sd, err = c2.Select("Box", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sd.UIDValidity != validity || sd.NumMessages != 2 {
		t.Fatalf("EXAMINE after Recreate = %+v, %v; want UIDVALIDITY %d, 2 messages", sd, err, validity)
	}
}

// TestFakeListAlso: extra LIST names resolve like the folders they name.
func TestFakeListAlso(t *testing.T) {
	f := StartFake(t, FakeOptions{User: "alice", Password: "pw", ListAlso: []string{"Inbox"}, Folders: map[string][]FakeMessage{"INBOX": fiveMessages()}})
	c, err := imapclient.DialInsecure(f.Addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "*", nil).Collect()
	if err != nil || len(list) != 2 {
		t.Fatalf("LIST = %d folders, %v; want INBOX twice", len(list), err)
	}
	sd, err := c.Select("Inbox", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sd.NumMessages != 5 {
		t.Fatalf("EXAMINE Inbox = %+v, %v", sd, err)
	}
}

// TestThrottle: the proxy forwards byte for byte, at about the rate asked.
func TestThrottle(t *testing.T) {
	ln := listen(t)
	payload := bytes.Repeat([]byte("0123456789abcdef"), 200<<10/16) // 200 KiB
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.Write(payload)
	}()
	addr := Throttle(t, ln.Addr().String(), 400<<10)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	got, err := io.ReadAll(c)
	took := time.Since(start)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read %d bytes (%v), want the %d sent", len(got), err, len(payload))
	}
	if took < 400*time.Millisecond || took > 5*time.Second {
		t.Errorf("200 KiB at 400 KiB/s took %v, want about 0.5 s", took)
	}
}
