// Package provider knows the big mail services: their IMAP and POP3
// hosts, the mail domains whose addresses they serve, how their users log
// in, and the quirks mailvault works around for them. docs/SERVERS.md
// lists each quirk with its public source.
//
// An account given as imaps://alice@gmail.com (or the bare address
// alice@gmail.com) names a mail domain, not a server: Resolve maps it to
// imaps://alice%40gmail.com@imap.gmail.com, the server and login the
// provider documents. Hosts of no known provider are left as they are.
package provider

import "strings"

// Provider is a mail service mailvault recognises.
type Provider struct {
	ID       string // "gmail", "microsoft", "yahoo", "icloud", "fastmail"
	Name     string // for messages
	IMAPHost string
	POP3Host string // "" when the service has no POP3
	// FullAddressLogin: the login is the whole address (alice@gmail.com),
	// not its name part.
	FullAddressLogin bool
	// ImplicitTLSOnly: the service offers no STARTTLS (imap:// on port
	// 143 does not work; imaps:// is used for a mail domain).
	ImplicitTLSOnly bool
	Quirks          Quirks
	domains, hosts  []string // lower case
}

// Quirks are what mailvault does differently for a provider.
type Quirks struct {
	// DailyDownload is how many bytes the service lets IMAP download a
	// day (Gmail: 2.5 GB); a backup stops cleanly there (the next run
	// continues) unless --max-bytes-per-day says otherwise. 0: no limit
	// known.
	DailyDownload int64
	// ReservedFolders are folder names the service refuses to create
	// (system labels, hidden system folders), compared without case with
	// the whole name and with its first level.
	ReservedFolders []string
	// AppendFinalCRLF: a message that does not end in CRLF gets one before
	// APPEND, which the service refuses or mangles otherwise.
	AppendFinalCRLF bool
}

// All are the providers mailvault recognises.
var All = []*Provider{
	{
		ID: "gmail", Name: "Gmail", IMAPHost: "imap.gmail.com", POP3Host: "pop.gmail.com", FullAddressLogin: true,
		domains: []string{"gmail.com", "googlemail.com"},
		hosts:   []string{"imap.gmail.com", "pop.gmail.com", "imap.googlemail.com", "pop.googlemail.com"},
		Quirks: Quirks{
			DailyDownload: 2_500_000_000,
			// The system folders' parent, the system labels of the Gmail
			// API guide, and names IMAP clients saw refused ("Couldn't
			// create folder: Trash", "Label name is not allowed: TODO").
			ReservedFolders: []string{"[Gmail]", "[Google Mail]", "Spam", "Trash", "Sent", "Draft", "Starred", "Important", "Unread",
				"TODO", "CATEGORY_PERSONAL", "CATEGORY_SOCIAL", "CATEGORY_PROMOTIONS", "CATEGORY_UPDATES", "CATEGORY_FORUMS"},
		},
	},
	{
		ID: "microsoft", Name: "Microsoft 365 / Outlook.com", IMAPHost: "outlook.office365.com", POP3Host: "outlook.office365.com", FullAddressLogin: true,
		domains: []string{"outlook.com", "hotmail.com", "live.com", "msn.com", "passport.com",
			"outlook.de", "outlook.fr", "outlook.es", "outlook.it", "outlook.co.uk",
			"hotmail.co.uk", "hotmail.de", "hotmail.fr", "hotmail.es", "hotmail.it", "live.co.uk", "live.de", "live.fr", "live.it", "live.nl"},
		hosts: []string{"outlook.office365.com", "outlook.office.com", "imap-mail.outlook.com", "pop-mail.outlook.com", "imap.outlook.com"},
		Quirks: Quirks{
			// Exchange Online keeps a hidden "Files" folder: CREATE of
			// that name fails.
			ReservedFolders: []string{"Files"},
		},
	},
	{
		ID: "yahoo", Name: "Yahoo Mail", IMAPHost: "imap.mail.yahoo.com", POP3Host: "pop.mail.yahoo.com", FullAddressLogin: true,
		domains: []string{"yahoo.com", "ymail.com", "rocketmail.com", "yahoo.co.uk", "yahoo.fr", "yahoo.de", "yahoo.es", "yahoo.it",
			"yahoo.ca", "yahoo.com.au", "yahoo.co.in", "yahoo.com.br", "yahoo.com.mx"},
		hosts:  []string{"imap.mail.yahoo.com", "pop.mail.yahoo.com"},
		Quirks: Quirks{AppendFinalCRLF: true},
	},
	{
		// iCloud logs in with the name part of the address ("emilyparker,
		// not emilyparker@icloud.com"), as the URL gives it.
		ID: "icloud", Name: "iCloud Mail", IMAPHost: "imap.mail.me.com",
		domains: []string{"icloud.com", "me.com", "mac.com"},
		hosts:   []string{"imap.mail.me.com"},
	},
	{
		ID: "fastmail", Name: "Fastmail", IMAPHost: "imap.fastmail.com", POP3Host: "pop.fastmail.com", FullAddressLogin: true, ImplicitTLSOnly: true,
		domains: []string{"fastmail.com", "fastmail.fm"},
		hosts:   []string{"imap.fastmail.com", "pop.fastmail.com"},
	},
}

func canonHost(host string) string { return strings.TrimSuffix(strings.ToLower(host), ".") }

// ByHost returns the provider whose server (imap.gmail.com) or mail
// domain (gmail.com) host is, or nil.
func ByHost(host string) *Provider {
	h := canonHost(host)
	for _, p := range All {
		for _, x := range append(p.hosts, p.domains...) {
			if h == x {
				return p
			}
		}
	}
	return nil
}

// IsDomain reports whether host is one of p's mail domains (not a
// server).
func (p *Provider) IsDomain(host string) bool {
	h := canonHost(host)
	for _, d := range p.domains {
		if h == d {
			return true
		}
	}
	return false
}

// Account is where and as whom mailvault logs in for an account URL.
type Account struct {
	Provider *Provider // nil: no known provider
	Scheme   string    // "" stays "" for a host of no known provider
	User     string
	Host     string
	// Mapped: the URL named a mail domain, and Host (and maybe User and
	// Scheme) are the provider's.
	Mapped bool
}

// Resolve maps an account URL's scheme ("" for a bare address), user and
// host to the server to connect to. A provider's mail domain becomes its
// IMAP host (its POP3 host for pop3:// and pop3s://), a bare address gets
// imaps (STARTTLS schemes become implicit TLS where the provider has no
// STARTTLS), and the user becomes the full address where the provider
// logs in with one. A provider's server is recognised and left as given;
// any other host comes back unchanged.
func Resolve(scheme, user, host string) Account {
	a := Account{Scheme: scheme, User: user, Host: host}
	p := ByHost(host)
	if p == nil {
		return a
	}
	a.Provider = p
	if !p.IsDomain(host) {
		return a
	}
	a.Mapped = true
	pop := scheme == "pop3" || scheme == "pop3s"
	switch {
	case pop && p.POP3Host != "":
		a.Host = p.POP3Host
	default:
		a.Host = p.IMAPHost
		if pop || scheme == "" {
			a.Scheme = "imaps"
		}
	}
	if p.ImplicitTLSOnly {
		switch a.Scheme {
		case "imap":
			a.Scheme = "imaps"
		case "pop3":
			a.Scheme = "pop3s"
		}
	}
	if p.FullAddressLogin && !strings.Contains(user, "@") {
		a.User = user + "@" + canonHost(host)
	}
	return a
}

// Reserved reports whether p refuses to create a folder of this name
// (delim separates its levels): its whole name or first level is one of
// Quirks.ReservedFolders, without case.
func (p *Provider) Reserved(name, delim string) bool {
	first := name
	if delim != "" {
		first, _, _ = strings.Cut(name, delim)
	}
	for _, r := range p.Quirks.ReservedFolders {
		if strings.EqualFold(name, r) || strings.EqualFold(first, r) {
			return true
		}
	}
	return false
}
