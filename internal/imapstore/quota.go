package imapstore

import (
	"context"
	"errors"
	"sort"

	"github.com/emersion/go-imap/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
)

var _ backup.QuotaReader = (*Store)(nil)

// Quota asks GETQUOTAROOT "INBOX" (RFC 9208) and returns every resource
// of every quota root, sorted by root and resource. ok is false when the
// server has no QUOTA capability, or answers the command with NO or BAD
// (no quota for this mailbox): neither is an error of the backup.
func (s *Store) Quota(ctx context.Context) ([]formats.Quota, bool, error) {
	if !s.caps.Has(imap.CapQuota) {
		return nil, false, nil
	}
	var out []formats.Quota
	err := s.do(ctx, func() error {
		data, err := s.c.GetQuotaRoot("INBOX").Wait()
		if err != nil {
			return err
		}
		for _, d := range data {
			for res, v := range d.Resources {
				out = append(out, formats.Quota{Root: d.Root, Resource: string(res), Used: v.Usage, Limit: v.Limit})
			}
		}
		return nil
	})
	var ie *imap.Error
	if errors.As(err, &ie) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.connErr(ctx, "getquotaroot", err)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Root != out[j].Root {
			return out[i].Root < out[j].Root
		}
		return out[i].Resource < out[j].Resource
	})
	return out, true, nil
}
