package imapstore

import (
	"context"
	"errors"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// personalNamespace returns the server's personal namespace: the first
// personal one of NAMESPACE (RFC 2342), or, on a server without it, the
// delimiter LIST "" "" reports with no prefix. A server that answers
// NAMESPACE with no personal namespace, or with no delimiter, gets LIST's
// delimiter too.
func (s *Store) personalNamespace(ctx context.Context) (prefix, delim string, err error) {
	err = s.do(ctx, func() error {
		if s.caps.Has(imap.CapNamespace) {
			ns, err := s.c.Namespace().Wait()
			var ie *imap.Error
			switch {
			case err == nil && len(ns.Personal) > 0:
				prefix = ns.Personal[0].Prefix
				if ns.Personal[0].Delim != 0 {
					delim = string(ns.Personal[0].Delim)
				}
			case err != nil && !errors.As(err, &ie):
				return s.connErr(ctx, "namespace", err)
			}
		}
		if delim != "" {
			return nil
		}
		list, err := s.c.List("", "", nil).Collect()
		if err != nil {
			return s.connErr(ctx, "list", err)
		}
		if len(list) > 0 && list[0].Delim != 0 {
			delim = string(list[0].Delim)
		}
		return nil
	})
	if delim == "" && strings.HasSuffix(prefix, ".") {
		delim = "."
	}
	return prefix, delim, err
}

// PersonalNamespace implements backup.Namespacer.
func (s *Store) PersonalNamespace(ctx context.Context) (prefix, delim string, err error) {
	return s.personalNamespace(ctx)
}
