package main

import (
	"log/slog"
	"testing"

	"github.com/mailvault/mailvault/internal/mailurl"
)

func TestResolvePreset(t *testing.T) {
	tests := []struct {
		in, want, provider string
	}{
		{"imaps://alice@gmail.com", "imaps://alice%40gmail.com@imap.gmail.com:993", "gmail"},
		{"alice@gmail.com", "imaps://alice%40gmail.com@imap.gmail.com:993", "gmail"},
		{"pop3s://alice@gmail.com", "pop3s://alice%40gmail.com@pop.gmail.com:995", "gmail"},
		{"imaps://bob@outlook.com", "imaps://bob%40outlook.com@outlook.office365.com:993", "microsoft"},
		{"bob@hotmail.com", "imaps://bob%40hotmail.com@outlook.office365.com:993", "microsoft"},
		{"imaps://carol@yahoo.com", "imaps://carol%40yahoo.com@imap.mail.yahoo.com:993", "yahoo"},
		{"dave@icloud.com", "imaps://dave@imap.mail.me.com:993", "icloud"},
		{"imap://erin@fastmail.com", "imaps://erin%40fastmail.com@imap.fastmail.com:993", "fastmail"},
		{"imaps://alice%40gmail.com@imap.gmail.com", "imaps://alice%40gmail.com@imap.gmail.com:993", "gmail"},
		{"imaps://admin%40corp.example@outlook.office365.com", "imaps://admin%40corp.example@outlook.office365.com:993", "microsoft"},
		{"imaps://alice@mail.example.com", "imaps://alice@mail.example.com:993", ""},
		{"alice@example.com", "alice@example.com", ""},
	}
	for _, tt := range tests {
		u, err := mailurl.Parse(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		got, p := resolvePreset(u, nil)
		id := ""
		if p != nil {
			id = p.ID
		}
		if got.String() != tt.want || id != tt.provider {
			t.Errorf("resolvePreset(%q) = %q (%q), want %q (%q)", tt.in, got.String(), id, tt.want, tt.provider)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "1234": 1234, "2.5GB": 2_500_000_000, "2.5gb": 2_500_000_000, "2.5G": 2_500_000_000, "500MB": 500_000_000,
		"500 MB": 500_000_000, "1.2KB": 1200, "1KiB": 1024, "2MiB": 2 << 20, "1GiB": 1 << 30, "1TB": 1_000_000_000_000, "7B": 7,
	} {
		if got, err := parseSize(in); err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "GB", "-1GB", "2.5XB", "1e3", "abc", "1..2MB", "99999999999TB"} {
		if got, err := parseSize(in); err == nil {
			t.Errorf("parseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestDailyBudgetDefault(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	for _, tt := range []struct {
		url  string
		set  bool
		flag int64
		want int64
	}{
		{"imaps://alice%40gmail.com@imap.gmail.com", false, 0, 2_500_000_000},
		{"imaps://alice%40gmail.com@imap.gmail.com", true, 0, 0},
		{"imaps://alice%40gmail.com@imap.gmail.com", true, 1000, 1000},
		{"pop3s://alice%40gmail.com@pop.gmail.com", false, 0, 0},
		{"imaps://bob%40outlook.com@outlook.office365.com", false, 0, 0},
		{"imaps://alice@mail.example.com", true, 5000, 5000},
	} {
		u, err := mailurl.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		o := backupOptions{source: u, log: log, maxBytesSet: tt.set, maxBytesPerDay: tt.flag}
		if got := o.dailyBudget(); got != tt.want {
			t.Errorf("dailyBudget(%s, set %v, %d) = %d, want %d", tt.url, tt.set, tt.flag, got, tt.want)
		}
	}
}

func TestTargetQuirksByHost(t *testing.T) {
	if q := targetQuirks("imap.mail.yahoo.com"); !q.FinalCRLF || q.Reserved != nil {
		t.Errorf("Yahoo: %+v, want a final CRLF and no reserved names", q)
	}
	if q := targetQuirks("imap.gmail.com"); q.FinalCRLF || q.Reserved == nil || !q.Reserved("Trash", "/") {
		t.Errorf("Gmail: %+v, want reserved names", q)
	}
	if q := targetQuirks("outlook.office365.com"); q.Reserved == nil || !q.Reserved("Files", "/") {
		t.Errorf("Microsoft: %+v, want Files reserved", q)
	}
	if q := targetQuirks("127.0.0.1"); q.FinalCRLF || q.Reserved != nil {
		t.Errorf("another server: %+v, want no quirks", q)
	}
}
