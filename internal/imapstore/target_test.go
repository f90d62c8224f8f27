package imapstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/dovecottest"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/restore"
)

func message(i int, size int) ([]byte, *restore.Message) {
	body := []byte(fmt.Sprintf("Message-ID: <%d@x>\r\nSubject: m%d\r\n\r\n%s\r\n", i, i, strings.Repeat("y", size)))
	sum := sha256.Sum256(body)
	return body, &restore.Message{InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Size: int64(len(body)),
		SHA256: hex.EncodeToString(sum[:]), MessageID: fmt.Sprintf("<%d@x>", i)}
}

// TestTargetUnreadableBody: when the message body cannot be read in the
// middle of an APPEND (a damaged archive), the target drops the
// connection instead of ending the command with a short literal (which
// would make the server read the next command as the rest of the
// message, or wait for an answer that never comes until --timeout),
// stores nothing of it, and goes on at once over a new connection.
func TestTargetUnreadableBody(t *testing.T) {
	srv := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"bob": "pw"}})
	ctx := context.Background()
	tg, err := DialTarget(ctx, mailconn.Config{Addr: srv.IMAPAddr, Security: mailconn.Plaintext, User: "bob", Password: "pw", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	start := time.Now()
	for _, size := range []int{100, 20000} { // a literal under 4 KiB, and a larger one
		good, gm := message(size, size)
		bad, bm := message(size+1, size)
		p, err := tg.Append(ctx, "INBOX", gm, bytes.NewReader(good))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
		broken := io.MultiReader(bytes.NewReader(bad[:len(bad)/2]), iotest.ErrReader(errors.New("CRC check failed")))
		if p, err := tg.Append(ctx, "INBOX", bm, broken); err == nil {
			t.Fatalf("Append of an unreadable body: %v, %v; want an error", p, err)
		}
		next, nm := message(size+2, 10)
		p, err = tg.Append(ctx, "INBOX", nm, bytes.NewReader(next))
		if err != nil {
			t.Fatalf("Append after an unreadable body: %v", err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("Append after an unreadable body: %v", err)
		}
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the appends took %v: the target waited for an answer to a command it left unfinished", d)
	}
	c, err := imapclient.DialInsecure(srv.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	held := imaptest.ReadServer(t, c)["INBOX"]
	var subjects []string
	for _, m := range held {
		subjects = append(subjects, strings.SplitN(string(m.Body), "\r\n", 3)[1])
	}
	if want := "Subject: m100 Subject: m102 Subject: m20000 Subject: m20002"; strings.Join(subjects, " ") != want {
		t.Errorf("INBOX holds %q, want %q", subjects, want)
	}
}
