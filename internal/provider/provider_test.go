package provider

import "testing"

func TestResolve(t *testing.T) {
	tests := []struct {
		scheme, user, host string
		want               Account
		id                 string
	}{
		// Mail domains become the provider's server and login.
		{"imaps", "alice", "gmail.com", Account{Scheme: "imaps", User: "alice@gmail.com", Host: "imap.gmail.com", Mapped: true}, "gmail"},
		{"imaps", "alice", "GoogleMail.COM.", Account{Scheme: "imaps", User: "alice@googlemail.com", Host: "imap.gmail.com", Mapped: true}, "gmail"},
		{"", "alice", "gmail.com", Account{Scheme: "imaps", User: "alice@gmail.com", Host: "imap.gmail.com", Mapped: true}, "gmail"},
		{"pop3s", "alice", "gmail.com", Account{Scheme: "pop3s", User: "alice@gmail.com", Host: "pop.gmail.com", Mapped: true}, "gmail"},
		{"imaps", "bob", "outlook.com", Account{Scheme: "imaps", User: "bob@outlook.com", Host: "outlook.office365.com", Mapped: true}, "microsoft"},
		{"imaps", "bob", "hotmail.co.uk", Account{Scheme: "imaps", User: "bob@hotmail.co.uk", Host: "outlook.office365.com", Mapped: true}, "microsoft"},
		{"", "carol", "yahoo.com", Account{Scheme: "imaps", User: "carol@yahoo.com", Host: "imap.mail.yahoo.com", Mapped: true}, "yahoo"},
		{"imaps", "dave", "icloud.com", Account{Scheme: "imaps", User: "dave", Host: "imap.mail.me.com", Mapped: true}, "icloud"},
		{"imaps", "dave", "me.com", Account{Scheme: "imaps", User: "dave", Host: "imap.mail.me.com", Mapped: true}, "icloud"},
		// iCloud has no POP3: its IMAP server, over TLS.
		{"pop3s", "dave", "mac.com", Account{Scheme: "imaps", User: "dave", Host: "imap.mail.me.com", Mapped: true}, "icloud"},
		// Fastmail has no STARTTLS.
		{"imap", "erin", "fastmail.com", Account{Scheme: "imaps", User: "erin@fastmail.com", Host: "imap.fastmail.com", Mapped: true}, "fastmail"},
		{"pop3", "erin", "fastmail.fm", Account{Scheme: "pop3s", User: "erin@fastmail.fm", Host: "pop.fastmail.com", Mapped: true}, "fastmail"},
		// A full address as user stays.
		{"imaps", "alice@gmail.com", "gmail.com", Account{Scheme: "imaps", User: "alice@gmail.com", Host: "imap.gmail.com", Mapped: true}, "gmail"},
		// Servers are recognised and left as given.
		{"imaps", "alice@gmail.com", "imap.gmail.com", Account{Scheme: "imaps", User: "alice@gmail.com", Host: "imap.gmail.com"}, "gmail"},
		{"imaps", "admin@corp.example", "outlook.office365.com", Account{Scheme: "imaps", User: "admin@corp.example", Host: "outlook.office365.com"}, "microsoft"},
		{"imaps", "carol@yahoo.com", "IMAP.mail.yahoo.com", Account{Scheme: "imaps", User: "carol@yahoo.com", Host: "IMAP.mail.yahoo.com"}, "yahoo"},
		{"imaps", "dave", "imap.mail.me.com", Account{Scheme: "imaps", User: "dave", Host: "imap.mail.me.com"}, "icloud"},
		{"imaps", "erin@fastmail.com", "imap.fastmail.com", Account{Scheme: "imaps", User: "erin@fastmail.com", Host: "imap.fastmail.com"}, "fastmail"},
		// Anything else is left alone.
		{"imaps", "alice", "mail.example.com", Account{Scheme: "imaps", User: "alice", Host: "mail.example.com"}, ""},
		{"", "alice", "example.com", Account{Scheme: "", User: "alice", Host: "example.com"}, ""},
		{"imaps", "alice", "notgmail.com", Account{Scheme: "imaps", User: "alice", Host: "notgmail.com"}, ""},
		{"imaps", "alice", "gmail.com.evil.example", Account{Scheme: "imaps", User: "alice", Host: "gmail.com.evil.example"}, ""},
	}
	for _, tt := range tests {
		got := Resolve(tt.scheme, tt.user, tt.host)
		id := ""
		if got.Provider != nil {
			id = got.Provider.ID
		}
		got.Provider = nil
		if got != tt.want || id != tt.id {
			t.Errorf("Resolve(%q, %q, %q) = %+v (%q), want %+v (%q)", tt.scheme, tt.user, tt.host, got, id, tt.want, tt.id)
		}
	}
}

func TestQuirks(t *testing.T) {
	byID := map[string]*Provider{}
	for _, p := range All {
		byID[p.ID] = p
	}
	tests := []struct {
		id, folder, delim string
		reserved          bool
	}{
		{"gmail", "Trash", "/", true},
		{"gmail", "trash", "/", true},
		{"gmail", "[Gmail]/Foo", "/", true},
		{"gmail", "TODO", "/", true},
		{"gmail", "Work/Trash", "/", false},
		{"gmail", "Trash bin", "/", false},
		{"gmail", "Projects", "/", false},
		{"microsoft", "Files", "/", true},
		{"microsoft", "files", "/", true},
		{"microsoft", "Files/Old", "/", true},
		{"microsoft", "My Files", "/", false},
		{"microsoft", "Trash", "/", false},
		{"yahoo", "Files", "/", false},
		{"fastmail", "Trash", "/", false},
	}
	for _, tt := range tests {
		if got := byID[tt.id].Reserved(tt.folder, tt.delim); got != tt.reserved {
			t.Errorf("%s.Reserved(%q) = %v, want %v", tt.id, tt.folder, got, tt.reserved)
		}
	}
	for id, want := range map[string]Quirks{
		"gmail":     {DailyDownload: 2_500_000_000},
		"yahoo":     {AppendFinalCRLF: true},
		"microsoft": {},
		"icloud":    {},
		"fastmail":  {},
	} {
		q := byID[id].Quirks
		if q.DailyDownload != want.DailyDownload || q.AppendFinalCRLF != want.AppendFinalCRLF {
			t.Errorf("%s: daily %d, final CRLF %v; want %d, %v", id, q.DailyDownload, q.AppendFinalCRLF, want.DailyDownload, want.AppendFinalCRLF)
		}
	}
}

func TestByHost(t *testing.T) {
	for host, want := range map[string]string{
		"imap.gmail.com": "gmail", "gmail.com": "gmail", "outlook.office365.com": "microsoft", "imap-mail.outlook.com": "microsoft",
		"live.com": "microsoft", "imap.mail.yahoo.com": "yahoo", "ymail.com": "yahoo", "imap.mail.me.com": "icloud",
		"icloud.com": "icloud", "imap.fastmail.com": "fastmail", "example.com": "", "": "", "127.0.0.1": "",
	} {
		got := ""
		if p := ByHost(host); p != nil {
			got = p.ID
		}
		if got != want {
			t.Errorf("ByHost(%q) = %q, want %q", host, got, want)
		}
	}
}
