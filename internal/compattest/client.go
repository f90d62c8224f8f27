package compattest

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/migadu/go-pop3/pop3client"
)

// afterStart checks that every user can log in (Courier's authdaemond may
// need a moment after its listeners), creates the Cyrus inboxes (Cyrus
// makes one at a user's first login) and learns the personal namespace.
func (s *Server) afterStart() error {
	deadline := time.Now().Add(15 * time.Second)
	for _, u := range Users {
		for {
			err := s.tryLogin(u)
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("login as %s: %w", u, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !s.Kind.IMAP() {
		return nil
	}
	c, err := s.dialIMAP(Users[0])
	if err != nil {
		return err
	}
	defer c.Close()
	s.Delimiter = "/"
	if c.Caps().Has(imap.CapNamespace) {
		ns, err := c.Namespace().Wait()
		if err != nil {
			return fmt.Errorf("namespace: %w", err)
		}
		if len(ns.Personal) > 0 {
			s.Prefix = ns.Personal[0].Prefix
			if ns.Personal[0].Delim != 0 {
				s.Delimiter = string(ns.Personal[0].Delim)
			}
		}
	}
	return c.Logout().Wait()
}

func (s *Server) tryLogin(user string) error {
	if s.Kind.IMAP() {
		c, err := s.dialIMAP(user)
		if err != nil {
			return err
		}
		c.Logout().Wait()
		c.Close()
	}
	if s.POP3Addr == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := s.dialPOP3(ctx, user)
	if err != nil {
		return err
	}
	p.Quit(ctx)
	p.Close()
	return nil
}

// dialIMAP connects without TLS and logs in.
func (s *Server) dialIMAP(user string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		return nil, err
	}
	if err := c.Login(user, Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("imap login: %w", err)
	}
	return c, nil
}

// IMAP returns a client of the IMAP server logged in as user (plaintext on
// loopback), closed when the test ends.
func (s *Server) IMAP(t testing.TB, user string) *imapclient.Client {
	t.Helper()
	if !s.Kind.IMAP() {
		t.Fatalf("compattest: %s has no IMAP", s.Kind)
	}
	c, err := s.dialIMAP(user)
	if err != nil {
		t.Fatalf("compattest: %s: %v", s.Kind, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// FolderName is the name on the server of a folder named in the user's
// view ("/" between levels, no namespace prefix): "Archive/2024" is
// "INBOX.Archive.2024" on Courier. INBOX stays INBOX.
func (s *Server) FolderName(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return s.Prefix + strings.ReplaceAll(name, "/", s.Delimiter)
}

func (s *Server) dialPOP3(ctx context.Context, user string) (*pop3client.Client, error) {
	p, err := pop3client.Dial(ctx, s.POP3Addr, pop3client.Options{MaxLineLength: 1 << 20})
	if err != nil {
		return nil, err
	}
	// Like mailvault: RFC 6856 UTF8 where offered, or Courier serves
	// messages with 8-bit headers wrapped in a notice of its own.
	if caps, err := p.Capa(ctx); err == nil {
		for _, c := range caps {
			if strings.EqualFold(strings.Fields(c + " ")[0], "UTF8") {
				if _, err := p.Cmd(ctx, "UTF8"); err != nil {
					p.Close()
					return nil, err
				}
			}
		}
	}
	if err := p.User(ctx, user, Password); err != nil {
		p.Close()
		return nil, fmt.Errorf("pop3 login: %w", err)
	}
	return p, nil
}

// POP3Message is one message as a POP3 server serves it.
type POP3Message struct {
	Num  int
	UIDL string
	Size int64 // LIST's size
	Body []byte
}

// POP3 reads every message of user's mail drop over POP3 with cmd,
// "RETR" or "TOP" (TOP n with a line count larger than any message), then
// QUITs. It enables UTF8 (RFC 6856) where the server offers it, as
// mailvault does. RETR marks messages read on several servers (Courier, Mailutils,
// Dovecot): use it after what it could disturb.
func (s *Server) POP3(t testing.TB, user, cmd string) []POP3Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := s.dialPOP3(ctx, user)
	if err != nil {
		t.Fatalf("compattest: %s: %v", s.Kind, err)
	}
	defer p.Close()
	list, err := p.List(ctx)
	if err != nil {
		t.Fatalf("compattest: %s: LIST: %v", s.Kind, err)
	}
	uidls, err := p.Uidl(ctx)
	if err != nil {
		t.Fatalf("compattest: %s: UIDL: %v", s.Kind, err)
	}
	uidl := map[int]string{}
	for _, u := range uidls {
		uidl[u.Num] = u.UniqueID
	}
	var out []POP3Message
	for _, in := range list {
		var r io.ReadCloser
		switch cmd {
		case "RETR":
			r, err = p.Retr(ctx, in.Num)
		case "TOP":
			r, err = p.Top(ctx, in.Num, 1<<31-1)
		default:
			t.Fatalf("compattest: POP3 command %q", cmd)
		}
		if err != nil {
			t.Fatalf("compattest: %s: %s %d: %v", s.Kind, cmd, in.Num, err)
		}
		body, err := io.ReadAll(r)
		r.Close()
		if err != nil {
			t.Fatalf("compattest: %s: %s %d: %v", s.Kind, cmd, in.Num, err)
		}
		out = append(out, POP3Message{Num: in.Num, UIDL: uidl[in.Num], Size: in.Size, Body: body})
	}
	if err := p.Quit(ctx); err != nil {
		t.Fatalf("compattest: %s: QUIT: %v", s.Kind, err)
	}
	return out
}
