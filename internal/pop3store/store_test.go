package pop3store

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func TestHeaderDate(t *testing.T) {
	tests := []struct{ hdr, want string }{
		{"Received: from a by b; Tue, 3 Feb 2026 10:00:00 +0100\r\nDate: Mon, 2 Feb 2026 00:00:00 +0000\r\n\r\n", "2026-02-03T09:00:00Z"},
		{"Date: Mon, 2 Feb 2026 00:00:00 +0000\r\n\r\n", "2026-02-02T00:00:00Z"},
		{"Received: garbage\r\nDate: Mon, 2 Feb 2026 00:00:00 +0000\r\n\r\n", "2026-02-02T00:00:00Z"},
	}
	for _, tt := range tests {
		if got := headerDate([]byte(tt.hdr)).Format(time.RFC3339); got != tt.want {
			t.Errorf("headerDate(%q) = %s, want %s", tt.hdr, got, tt.want)
		}
	}
	if d := headerDate([]byte("no header at all")); time.Since(d) > time.Minute {
		t.Errorf("headerDate without a date = %v, want now", d)
	}
}

func TestPeekDateKeepsBytes(t *testing.T) {
	body := "Date: Mon, 2 Feb 2026 00:00:00 +0000\r\nSubject: x\r\n\r\n" + strings.Repeat("line\r\n", 20000)
	d, r := peekDate(strings.NewReader(body))
	got, err := io.ReadAll(r)
	if err != nil || string(got) != body || d.Year() != 2026 {
		t.Errorf("peekDate: %d bytes (want %d), %v, date %v", len(got), len(body), err, d)
	}
}

func TestCheckedShortBody(t *testing.T) {
	c := &checked{r: strings.NewReader("half"), want: 10, touch: func() {}}
	if _, err := io.ReadAll(c); !errors.Is(err, errShort) || !c.short {
		t.Errorf("short body: %v, want errShort", err)
	}
	c = &checked{r: strings.NewReader("exactly 10"), want: 10, touch: func() {}}
	if b, err := io.ReadAll(c); err != nil || string(b) != "exactly 10" {
		t.Errorf("full body: %q %v", b, err)
	}
}

// TestCheckedSizes: what a TOP or RETR answer of each size against LIST's
// size becomes.
func TestCheckedSizes(t *testing.T) {
	msg := "Subject: x\r\n\r\nbody line\r\n"
	tests := []struct {
		name   string
		body   string
		want   int64
		top    bool
		refuse bool
		out    string // "", "short", "long", "mismatch"
	}{
		{"exact", msg, int64(len(msg)), true, false, ""},
		{"final CRLF added to a message without one", msg, int64(len(msg) - 2), true, false, ""},
		{"empty line after the header (Mailutils)", "Subject: x\r\n\r\n\r\nbody line\r\n", int64(len(msg)), true, false, "long"},
		{"empty line after the header, RETR allowed", "Subject: x\r\n\r\n\r\nbody line\r\n", int64(len(msg)), true, true, "mismatch"},
		{"much longer", msg + "more\r\nand more\r\n", int64(len(msg)), true, false, "long"},
		{"much longer, RETR allowed", msg + "more\r\nand more\r\n", int64(len(msg)), true, true, "mismatch"},
		{"shorter", msg[:10], int64(len(msg)), true, true, "short"},
		{"RETR longer than LIST", msg + "x\r\n", int64(len(msg)), false, true, ""},
		{"RETR shorter than LIST", msg[:10], int64(len(msg)), false, true, "short"},
		{"no size listed", msg, 0, true, true, ""},
	}
	for _, tt := range tests {
		c := &checked{r: strings.NewReader(tt.body), want: tt.want, top: tt.top, refuse: tt.refuse, touch: func() {}}
		got, err := io.ReadAll(c)
		out := ""
		switch {
		case c.short:
			out = "short"
		case c.mismatch:
			out = "mismatch"
		case c.long:
			out = "long"
		}
		if out != tt.out {
			t.Errorf("%s: outcome %q, want %q", tt.name, out, tt.out)
		}
		if (out == "short" || out == "mismatch") != (err != nil) {
			t.Errorf("%s: read error %v with outcome %q", tt.name, err, out)
		}
		if err == nil && string(got) != tt.body {
			t.Errorf("%s: read %q", tt.name, got)
		}
	}
}
