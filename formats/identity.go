package formats

// SourceIdentity names the mailbox an archive backs up, never with a
// secret: a server account (Scheme imaps, imap, pop3s or pop3, with Host
// and User) or local mail (Scheme mbox or maildir, with the absolute
// Path). It is recorded in mailvault.json so that a run can refuse to mix
// another mailbox into the archive.
type SourceIdentity struct {
	Scheme string `json:"scheme"`
	Host   string `json:"host,omitempty"`
	User   string `json:"user,omitempty"`
	Path   string `json:"path,omitempty"`
}

// IsLocal reports whether the source is local mail (a path).
func (s SourceIdentity) IsLocal() bool { return s.Scheme == "mbox" || s.Scheme == "maildir" }

// String is the identity the way the command line takes it.
func (s SourceIdentity) String() string {
	if s.IsLocal() {
		return s.Scheme + ":" + s.Path
	}
	if s.Scheme == "" {
		return s.User + "@" + s.Host
	}
	return s.Scheme + "://" + s.User + "@" + s.Host
}
