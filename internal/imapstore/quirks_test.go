package imapstore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/provider"
	"github.com/mailvault/mailvault/restore"
)

func memTarget(t *testing.T, opts imaptest.MemOptions) (*imaptest.MemServer, *Target) {
	t.Helper()
	opts.Users = map[string]string{"bob": "pw"}
	srv := imaptest.StartMem(t, opts)
	tg, err := DialTarget(context.Background(), mailconn.Config{Addr: srv.Addr, Security: mailconn.Plaintext, User: "bob", Password: "pw", Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tg.Close() })
	return srv, tg
}

func providerByID(id string) *provider.Provider {
	for _, p := range provider.All {
		if p.ID == id {
			return p
		}
	}
	return nil
}

func sent(srv *imaptest.MemServer, prefix string) []string {
	var out []string
	for _, c := range srv.Commands() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// TestTargetReservedFolders: a folder name the provider reserves (Gmail's
// system labels, Microsoft's hidden "Files") is refused at once, naming
// --map, without a CREATE; other names are created.
func TestTargetReservedFolders(t *testing.T) {
	for _, tt := range []struct{ id, reserved, ok string }{
		{"gmail", "Trash", "Projects"},
		{"gmail", "[Gmail]/Archive", "Work/Trash"},
		{"microsoft", "Files", "My Files"},
	} {
		p := providerByID(tt.id)
		srv, tg := memTarget(t, imaptest.MemOptions{})
		tg.Quirks = TargetQuirks{Provider: p.Name, Reserved: p.Reserved}
		err := tg.CreateFolder(context.Background(), tt.reserved)
		if !errors.Is(err, restore.ErrFolderRefused) || !strings.Contains(err.Error(), "--map") || !strings.Contains(err.Error(), p.Name) {
			t.Errorf("%s: CreateFolder(%q) = %v, want ErrFolderRefused naming %s and --map", tt.id, tt.reserved, err, p.Name)
		}
		if c := sent(srv, "CREATE"); len(c) != 0 {
			t.Errorf("%s: sent %v for a reserved name", tt.id, c)
		}
		if err := tg.CreateFolder(context.Background(), tt.ok); err != nil {
			t.Errorf("%s: CreateFolder(%q) = %v", tt.id, tt.ok, err)
		}
	}
}

// TestTargetFinalCRLF: for a provider that needs it (Yahoo), a message
// that does not end in CRLF gets one; the target's index then knows it by
// its archived size, so that a second restore does not append it again.
func TestTargetFinalCRLF(t *testing.T) {
	srv, tg := memTarget(t, imaptest.MemOptions{})
	var warned []string
	tg.Quirks, tg.Warn = TargetQuirks{Provider: "Yahoo Mail", FinalCRLF: true}, func(m string) { warned = append(warned, m) }
	ctx := context.Background()
	bodies := map[string]string{
		"<a@x>": "Message-ID: <a@x>\r\n\r\nno line break at the end",
		"<b@x>": "Message-ID: <b@x>\r\n\r\nends with a CR\r",
		"<c@x>": "Message-ID: <c@x>\r\n\r\nends with CRLF\r\n",
		"<d@x>": "Message-ID: <d@x>\r\n\r\n" + strings.Repeat("big ", 400_000) + "end", // spooled to a file
	}
	want := map[string]string{
		"<a@x>": bodies["<a@x>"] + "\r\n", "<b@x>": bodies["<b@x>"] + "\n", "<c@x>": bodies["<c@x>"], "<d@x>": bodies["<d@x>"] + "\r\n",
	}
	msgs := map[string]*restore.Message{}
	for id, b := range bodies {
		sum := sha256.Sum256([]byte(b))
		m := &restore.Message{MessageID: id, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:]), InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)}
		msgs[id] = m
		p, err := tg.Append(ctx, "INBOX", m, strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("append %s: %v", id, err)
		}
	}
	c := srv.Dial(t, "bob", "pw")
	held := imaptest.ReadServer(t, c)["INBOX"]
	if len(held) != 4 {
		t.Fatalf("server holds %d messages, want 4", len(held))
	}
	for _, m := range held {
		ok := false
		for _, w := range want {
			ok = ok || bytes.Equal(m.Body, []byte(w))
		}
		if !ok {
			t.Errorf("server holds %q…, not one of the expected bodies", m.Body[:min(40, len(m.Body))])
		}
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "Yahoo Mail") {
		t.Errorf("warnings %q, want one naming Yahoo Mail", warned)
	}
	idx, err := tg.Index(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for id, m := range msgs {
		if !idx.Take(m) {
			t.Errorf("index does not know %s by its archived size %d", id, m.Size)
		}
	}
}

// TestTargetAppendLimit: a message over the server's APPENDLIMIT (RFC
// 7889; Gmail advertises 35 MiB) is rejected before anything is sent, and
// the target goes on.
func TestTargetAppendLimit(t *testing.T) {
	srv, tg := memTarget(t, imaptest.MemOptions{AppendLimit: 200})
	ctx := context.Background()
	big, bm := message(1, 300)
	p, err := tg.Append(ctx, "INBOX", bm, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); !errors.Is(err, restore.ErrRejected) || !strings.Contains(err.Error(), "APPENDLIMIT") {
		t.Errorf("append over APPENDLIMIT = %v, want ErrRejected naming APPENDLIMIT", err)
	}
	if c := sent(srv, "APPEND"); len(c) != 0 {
		t.Errorf("sent %v for a message over APPENDLIMIT", c)
	}
	small, sm := message(2, 10)
	if p, err = tg.Append(ctx, "INBOX", sm, bytes.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil {
		t.Errorf("append under APPENDLIMIT = %v", err)
	}
}
