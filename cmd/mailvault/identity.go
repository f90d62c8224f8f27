package main

import (
	"errors"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/mailurl"
)

// errSourceChanged: a backup of one mailbox into the archive of another.
var errSourceChanged = errors.New("the archive belongs to another mailbox")

// sameMailbox reports whether two source identities name the same
// mailbox. Local mail is its kind and absolute path. A server account is
// its user on its host (case-insensitive, without a final dot): the
// protocol and port do not matter, since IMAP and POP3 of one account reach
// the same mailbox (POP3 its inbox), and a bare USER@HOST is detected as
// either.
func sameMailbox(a, b formats.SourceIdentity) bool {
	if a.IsLocal() || b.IsLocal() {
		return a.Scheme == b.Scheme && filepath.Clean(a.Path) == filepath.Clean(b.Path)
	}
	host := func(h string) string { return strings.ToLower(strings.TrimSuffix(h, ".")) }
	return a.User == b.User && host(a.Host) == host(b.Host)
}

// recordedSource is the source the archive belongs to: what mailvault.json
// records, or, for an archive older than that field, the source of its
// last snapshot. nil when neither says.
func recordedSource(a *formats.Archive) (*formats.SourceIdentity, error) {
	if a.Config.Source != nil {
		return a.Config.Source, nil
	}
	files, err := a.ListSnapshots()
	if err != nil || len(files) == 0 {
		return nil, err
	}
	s, err := a.ReadSnapshot(files[len(files)-1])
	if err != nil {
		return nil, err
	}
	return parseSourceIdentity(s.Source), nil
}

// parseSourceIdentity reads the source a manifest records (a URL without
// secret, or KIND:PATH); nil if it is neither.
func parseSourceIdentity(src string) *formats.SourceIdentity {
	for _, k := range []string{"mbox", "maildir"} {
		if p, ok := strings.CutPrefix(src, k+":"); ok && !strings.HasPrefix(p, "//") {
			return &formats.SourceIdentity{Scheme: k, Path: p}
		}
	}
	u, err := mailurl.Parse(src)
	if err != nil {
		return nil
	}
	return &formats.SourceIdentity{Scheme: u.Scheme, Host: u.Host, User: u.User}
}

// recordSource records id in mailvault.json when it is not what is
// recorded (an archive older than the field, another protocol of the same
// mailbox, or a change allowed by --allow-source-change). It takes the
// archive's lock; if another run holds it, the next run records it.
func recordSource(a *formats.Archive, id formats.SourceIdentity, log *slog.Logger) error {
	if have := a.Config.Source; have != nil && *have == id {
		return nil
	}
	if err := a.Lock("record source"); err != nil {
		if errors.Is(err, formats.ErrLocked) {
			return nil
		}
		return err
	}
	defer a.Unlock()
	if have := a.Config.Source; have != nil && !sameMailbox(*have, id) {
		log.Warn("the archive now belongs to another mailbox (--allow-source-change)", "was", have.String(), "now", id.String())
	}
	return a.SetSource(id)
}
