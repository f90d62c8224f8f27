package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/mailurl"
	"github.com/mailvault/mailvault/internal/pop3store"
)

// detectOrder is the order protocols are tried for a bare USER@HOST.
var detectOrder = []string{"imaps", "imap", "pop3s", "pop3"}

// detectTimeout bounds each attempt.
const detectTimeout = 10 * time.Second

// candidate is one protocol to try.
type candidate struct {
	scheme string
	try    func(ctx context.Context) error // connects and logs in
}

// detect finds the protocol of a bare USER@HOST: it tries IMAPS, IMAP
// with STARTTLS, POP3S and POP3 with STLS, and says which it uses.
func detect(c *cli.Context, u *mailurl.URL, cfg mailconn.Config, e *env) (*mailurl.URL, mailconn.Config, error) {
	portGiven := u.Port != 0
	g := &greeter{seen: map[string]string{}}
	var cands []candidate
	cfgs := map[string]mailconn.Config{}
	urls := map[string]*mailurl.URL{}
	for _, scheme := range detectOrder {
		cu := u.WithScheme(scheme, portGiven)
		cc := cfg
		cc.Addr = cu.Addr()
		cc.Security = security(c, scheme, theAccount)
		if cc.Timeout > detectTimeout {
			cc.Timeout = detectTimeout
		}
		cfgs[scheme], urls[scheme] = cc, cu
		cands = append(cands, candidate{scheme: scheme, try: func(ctx context.Context) error {
			proto := strings.TrimSuffix(scheme, "s")
			if scheme == proto {
				// A plaintext greeting tells the protocol: no IMAP
				// command goes to a POP3 server, nor the reverse.
				if k := g.kind(ctx, cc.Addr); k != "" && k != proto {
					return fmt.Errorf("%s greets as %s server", cc.Addr, article(k))
				}
			}
			err := dialOnce(ctx, scheme, cc)
			if err != nil && scheme != proto && strings.Contains(err.Error(), "does not look like a TLS handshake") {
				if k := g.kind(ctx, cc.Addr); k != "" {
					return fmt.Errorf("%s greets in plaintext as %s server (no implicit TLS)", cc.Addr, article(k))
				}
			}
			return err
		}})
	}
	scheme, tried, err := tryCandidates(c.Context, cands)
	if err != nil {
		return nil, cfg, err
	}
	if !c.Bool("quiet") {
		msg := fmt.Sprintf("using %s", urls[scheme])
		if len(tried) > 0 {
			msg += " (" + strings.Join(tried, "; ") + ")"
		}
		e.notice(msg)
	}
	final := cfgs[scheme]
	final.Timeout = cfg.Timeout
	return urls[scheme], final, nil
}

// dialOnce connects and logs in with scheme, then leaves.
func dialOnce(ctx context.Context, scheme string, cfg mailconn.Config) error {
	if strings.HasPrefix(scheme, "pop3") {
		s, err := pop3store.Dial(ctx, cfg, nil)
		if err == nil {
			s.Close()
		}
		return err
	}
	s, err := imapstore.Dial(ctx, cfg)
	if err == nil {
		s.Close()
	}
	return err
}

// greeter learns, once per address, which protocol a port's plaintext
// greeting belongs to.
type greeter struct {
	mu   sync.Mutex
	seen map[string]string
}

// greetTimeout bounds the wait for a plaintext greeting; a port that
// expects TLS first says nothing.
const greetTimeout = 2 * time.Second

// kind returns "imap" or "pop3" from the first line addr sends, or ""
// when it sends none in time or cannot be reached.
func (g *greeter) kind(ctx context.Context, addr string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if k, ok := g.seen[addr]; ok {
		return k
	}
	k := ""
	d := net.Dialer{Timeout: greetTimeout}
	if conn, err := d.DialContext(ctx, "tcp", addr); err == nil {
		conn.SetDeadline(time.Now().Add(greetTimeout))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		k = greetingKind(line)
		switch k {
		case "pop3":
			io.WriteString(conn, "QUIT\r\n")
		case "imap":
			io.WriteString(conn, "a LOGOUT\r\n")
		}
		conn.Close()
	}
	g.seen[addr] = k
	return k
}

// greetingKind tells an IMAP greeting from a POP3 one.
func greetingKind(line string) string {
	u := strings.ToUpper(line)
	switch {
	case strings.HasPrefix(u, "+OK"):
		return "pop3"
	case strings.HasPrefix(u, "* OK"), strings.HasPrefix(u, "* PREAUTH"), strings.HasPrefix(u, "* BYE"):
		return "imap"
	}
	return ""
}

func article(kind string) string {
	if kind == "imap" {
		return "an IMAP"
	}
	return "a POP3"
}

// tryCandidates returns the first candidate that connects and logs in. A
// protocol that cannot be reached is skipped; a refused login or a bad
// certificate stops the search, since another protocol would not fix it.
func tryCandidates(ctx context.Context, cands []candidate) (string, []string, error) {
	var tried []string
	for _, cand := range cands {
		err := cand.try(ctx)
		if err == nil {
			return cand.scheme, tried, nil
		}
		if ctx.Err() != nil {
			return "", tried, ctx.Err()
		}
		if errors.Is(err, mailconn.ErrAuth) || errors.Is(err, mailconn.ErrTLS) || errors.Is(err, mailconn.ErrInUse) {
			return "", tried, fmt.Errorf("%s: %w", cand.scheme, err)
		}
		tried = append(tried, fmt.Sprintf("%s: %v", cand.scheme, err))
	}
	return "", tried, fmt.Errorf("%w: no IMAP or POP3 service answered (%s)", mailconn.ErrUnreachable, strings.Join(tried, "; "))
}
