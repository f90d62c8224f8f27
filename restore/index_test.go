package restore

import (
	"strings"
	"testing"
	"time"
)

// TestIndexTake: the identity rules, in order, with copies counted.
func TestIndexTake(t *testing.T) {
	d := time.Date(2024, 1, 2, 10, 0, 0, 0, time.FixedZone("-0500", -5*3600))
	wall := time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC) // Mailutils: the wall clock, zone forced to +0000
	utc := d.UTC()
	msg := func(id string, size int64, sha string, date time.Time) *Message {
		return &Message{MessageID: id, Size: size, SHA256: sha, InternalDate: date}
	}
	tests := []struct {
		desc  string
		held  []IndexEntry
		take  []*Message
		wants []bool
	}{
		{"same bytes", []IndexEntry{{SHA256: "aa", Size: 10}},
			[]*Message{msg("", 10, "aa", d)}, []bool{true}},
		{"same Message-ID and size (Cyrus munge8bit keeps the size)", []IndexEntry{{MessageID: "<a@x>", Size: 100}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{true}},
		{"Message-ID, date and a size a little larger (Mailutils headers)", []IndexEntry{{MessageID: "<a@x>", Size: 166, InternalDate: wall}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{true}},
		{"the same instant in another zone", []IndexEntry{{MessageID: "<a@x>", Size: 102, InternalDate: utc}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{true}},
		{"without a date on the target: exact sizes only", []IndexEntry{{MessageID: "<a@x>", Size: 166}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{false}},
		{"another date", []IndexEntry{{MessageID: "<a@x>", Size: 102, InternalDate: d.Add(time.Hour)}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{false}},
		{"size beyond the tolerance", []IndexEntry{{MessageID: "<a@x>", Size: 100 + SizeTolerance + 1, InternalDate: d}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{false}},
		{"another Message-ID", []IndexEntry{{MessageID: "<b@x>", Size: 100, InternalDate: d}},
			[]*Message{msg("<a@x>", 100, "s", d)}, []bool{false}},
		{"two copies held, three wanted", []IndexEntry{{MessageID: "<a@x>", Size: 100}, {MessageID: "<a@x>", Size: 100}},
			[]*Message{msg("<a@x>", 100, "s", d), msg("<a@x>", 100, "s", d), msg("<a@x>", 100, "s", d)}, []bool{true, true, false}},
		{"exact size before the closest tolerant one", []IndexEntry{{MessageID: "<a@x>", Size: 130, InternalDate: d}, {MessageID: "<a@x>", Size: 100, InternalDate: d}},
			[]*Message{msg("<a@x>", 100, "s", d), msg("<a@x>", 120, "t", d)}, []bool{true, true}},
		{"closest size among rewritten copies", []IndexEntry{{MessageID: "<a@x>", Size: 1180, InternalDate: d}, {MessageID: "<a@x>", Size: 1070, InternalDate: d}},
			[]*Message{msg("<a@x>", 1000, "s", d), msg("<a@x>", 1100, "t", d)}, []bool{true, true}},
		{"no Message-ID, body and date", []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: wall}},
			[]*Message{{SHA256: "s", Size: 40, BodySHA256: "b1", InternalDate: d}}, []bool{true}},
		{"no Message-ID, body but another date", []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d.Add(time.Minute)}},
			[]*Message{{SHA256: "s", Size: 40, BodySHA256: "b1", InternalDate: d}}, []bool{false}},
		{"no Message-ID, no body hash asked", []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d}},
			[]*Message{{SHA256: "s", Size: 40, InternalDate: d}}, []bool{false}},
	}
	for _, tt := range tests {
		x := NewIndex()
		for _, e := range tt.held {
			x.AddEntry(e)
		}
		for i, m := range tt.take {
			if got := x.Take(m); got != tt.wants[i] {
				t.Errorf("%s: Take #%d = %v, want %v", tt.desc, i+1, got, tt.wants[i])
			}
		}
	}
}

// TestIndexNeedsBodyHash: the body of an archived message without a
// Message-ID is read only when a copy held could match it by body.
func TestIndexNeedsBodyHash(t *testing.T) {
	d := time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC)
	x := NewIndex()
	x.AddEntry(IndexEntry{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d})
	x.AddEntry(IndexEntry{SHA256: "aa", Size: 50})
	for _, tt := range []struct {
		m    Message
		want bool
	}{
		{Message{SHA256: "s", InternalDate: d}, true},
		{Message{SHA256: "aa", InternalDate: d}, false},                    // held byte for byte
		{Message{SHA256: "s", InternalDate: d.Add(time.Hour)}, false},      // no copy of that date
		{Message{SHA256: "s", InternalDate: d, MessageID: "<a@x>"}, false}, // known by Message-ID
	} {
		if got := x.NeedsBodyHash(&tt.m); got != tt.want {
			t.Errorf("NeedsBodyHash(%+v) = %v, want %v", tt.m, got, tt.want)
		}
	}
}

func TestBodyHash(t *testing.T) {
	h := func(s string) string {
		t.Helper()
		sum, err := BodyHash(strings.NewReader(s))
		if err != nil {
			t.Fatal(err)
		}
		return sum
	}
	base := h("Subject: a\r\n\r\nline 1\r\nline 2\r\n")
	for _, same := range []string{
		"Subject: a\r\nX-UID: 7\r\nStatus: RO\r\n\r\nline 1\r\nline 2\r\n", // header fields added
		"Subject: a\r\n\r\nline 1\r\nline 2",                               // no final line end
		"Subject: a\r\n\r\nline 1\r\nline 2\r\n\r\n",                       // one more
		"Subject:a\n\nline 1\r\nline 2\n",                                  // LF header end
	} {
		if got := h(same); got != base {
			t.Errorf("BodyHash(%q) differs from the original's", same)
		}
	}
	for _, other := range []string{
		"Subject: a\r\n\r\nline 1\r\nline 3\r\n",
		"Subject: a\r\n\r\nline 1\r\n\r\nline 2\r\n",
		"Subject: a\r\nline 1\r\nline 2\r\n", // no body at all
	} {
		if got := h(other); got == base {
			t.Errorf("BodyHash(%q) equals the original's", other)
		}
	}
	if h("\r\nbody\r\n") != h("X: y\r\n\r\nbody") {
		t.Error("an empty header is not read as one")
	}
}
