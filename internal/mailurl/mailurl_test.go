package mailurl

import (
	"errors"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in, want string // want: String() or error substring prefixed by "!"
	}{
		{"imaps://alice@mail.example.com", "imaps://alice@mail.example.com:993"},
		{"imap://alice@127.0.0.1:1143", "imap://alice@127.0.0.1:1143"},
		{"IMAPS://bob%40example.com@host", "imaps://bob%40example.com@host:993"},
		{"imaps://[::1]:993", "!no user name"},
		{"imaps://alice:secret@host", "!password in the URL is refused"},
		{"imaps://alice:@host", "!password in the URL is refused"},
		{"pop3s://alice@host", "pop3s://alice@host:995"},
		{"pop3://alice@host:1110", "pop3://alice@host:1110"},
		{"alice@mail.example.com", "alice@mail.example.com"},
		{"alice@127.0.0.1:1143", "alice@127.0.0.1:1143"},
		{"alice:pw@host", "!password in the URL is refused"},
		{"imaps://alice@host:99999", "!bad port"},
		{"imaps://alice@host/INBOX", "!paths"},
		{"ftp://alice@host", "!unsupported URL scheme"},
	}
	for _, tt := range tests {
		u, err := Parse(tt.in)
		if strings.HasPrefix(tt.want, "!") {
			if err == nil || !strings.Contains(err.Error(), tt.want[1:]) {
				t.Errorf("Parse(%q) error = %v, want %q", tt.in, err, tt.want[1:])
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("Parse(%q) error repeats the password: %v", tt.in, err)
			}
			continue
		}
		if err != nil || u.String() != tt.want {
			t.Errorf("Parse(%q) = %v, %v; want %q", tt.in, u, err, tt.want)
		}
	}
	if _, err := Parse("imaps://a:b@h"); !errors.Is(err, ErrPasswordInURL) {
		t.Errorf("Parse with password: error = %v, want ErrPasswordInURL", err)
	}
}
