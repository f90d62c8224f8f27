package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
			if strings.HasPrefix(scheme, "pop3") {
				s, err := pop3store.Dial(ctx, cc, nil)
				if err == nil {
					s.Close()
				}
				return err
			}
			s, err := imapstore.Dial(ctx, cc)
			if err == nil {
				s.Close()
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
