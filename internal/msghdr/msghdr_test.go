package msghdr

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	raw := "From: =?ISO-8859-1?Q?J=FCrgen?= <j@x>\r\nSubject: =?UTF-8?B?w6ljaGVj?=\r\n  continued\r\nMessage-ID:  <id@x> \r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nX-Bad\x00: \xff\r\n\r\nbody"
	m := Parse([]byte(raw))
	if m.From != "Jürgen <j@x>" || !strings.HasPrefix(m.Subject, "échec") || m.MessageID != "<id@x>" || m.Date != "Mon, 1 Jan 2024 00:00:00 +0000" {
		t.Errorf("parseMeta = %+v", m)
	}
	if got := Parse([]byte("garbage without colon\r\n\r\n")); got != (Meta{}) {
		t.Logf("Parse(garbage) = %+v (tolerated)", got)
	}
	if got := Clean(strings.Repeat("é", 1000)); len(got) > MaxField {
		t.Errorf("clean kept %d bytes", len(got))
	}
}
