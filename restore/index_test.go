package restore

import (
	"os"
	"strings"
	"testing"
	"time"
)

// indexModes are the ways an Index keeps its entries: in memory, on disk
// from the first entry, and in memory until a second entry moves the
// first one to disk.
var indexModes = []struct {
	name      string
	threshold int
}{
	{"memory", 1 << 30},
	{"disk", 0},
	{"spill", 1},
}

// forEachIndexMode runs f once per mode, with the spill threshold set
// for it and the temporary directories under a directory of the test's
// own, which the test checks is left empty.
func forEachIndexMode(t *testing.T, f func(t *testing.T)) {
	for _, mode := range indexModes {
		t.Run(mode.name, func(t *testing.T) {
			setIndexThreshold(t, mode.threshold)
			tmp := t.TempDir()
			t.Setenv("TMPDIR", tmp)
			t.Cleanup(func() { // after the indexes' Close
				if ents, err := os.ReadDir(tmp); err != nil || len(ents) != 0 {
					t.Errorf("temporary directory after Close: %v, %v; want it empty", ents, err)
				}
			})
			f(t)
		})
	}
}

func setIndexThreshold(t *testing.T, n int) {
	old := IndexMemoryEntries
	IndexMemoryEntries = n
	t.Cleanup(func() { IndexMemoryEntries = old })
}

// newTestIndex returns an index of held, closed when the test ends.
func newTestIndex(t *testing.T, held []IndexEntry) *Index {
	x := NewIndex()
	t.Cleanup(func() {
		if err := x.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	for _, e := range held {
		x.AddEntry(e)
	}
	return x
}

// checkIndexMode checks that x is on disk when it holds more entries
// than the threshold, in memory otherwise.
func checkIndexMode(t *testing.T, x *Index) {
	t.Helper()
	if err := x.Err(); err != nil {
		t.Fatalf("Err() = %v", err)
	}
	if got, want := x.dir != "", x.Len() > IndexMemoryEntries; got != want {
		t.Fatalf("index of %d entries on disk = %v, want %v", x.Len(), got, want)
	}
}

var (
	testDate = time.Date(2024, 1, 2, 10, 0, 0, 0, time.FixedZone("-0500", -5*3600))
	testWall = time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC) // Mailutils: the wall clock, zone forced to +0000
)

func testMsg(id string, size int64, sha string, date time.Time) *Message {
	return &Message{MessageID: id, Size: size, SHA256: sha, InternalDate: date}
}

// indexTakeTests are the identity rules, in order, with copies counted.
var indexTakeTests = func() []struct {
	desc  string
	held  []IndexEntry
	take  []*Message
	wants []bool
} {
	d, wall, utc, msg := testDate, testWall, testDate.UTC(), testMsg
	return []struct {
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
		{"same bytes before the Message-ID", []IndexEntry{{MessageID: "<a@x>", Size: 100}, {MessageID: "<b@x>", Size: 100, SHA256: "aa"}},
			[]*Message{msg("<a@x>", 100, "aa", d), msg("<b@x>", 100, "bb", d), msg("<a@x>", 100, "cc", d)}, []bool{true, false, true}},
		{"a copy taken by its bytes is not taken again by its Message-ID", []IndexEntry{{MessageID: "<a@x>", Size: 100, SHA256: "aa", InternalDate: d}},
			[]*Message{msg("", 100, "aa", d), msg("<a@x>", 100, "s", d), msg("<a@x>", 120, "s", d)}, []bool{true, false, false}},
		{"a body copy taken by its body is not taken again by its bytes", []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d}},
			[]*Message{{SHA256: "s", Size: 40, BodySHA256: "b1", InternalDate: d}, msg("", 50, "zz", d)}, []bool{true, false}},
		{"a Message-ID without a match does not fall back to the body", []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d}},
			[]*Message{{MessageID: "<a@x>", SHA256: "s", Size: 40, BodySHA256: "b1", InternalDate: d}}, []bool{false}},
		{"the same Message-ID, sizes on both sides of the archived one", []IndexEntry{{MessageID: "<a@x>", Size: 1030, InternalDate: d}, {MessageID: "<a@x>", Size: 980, InternalDate: d}, {MessageID: "<a@x>", Size: 1020, InternalDate: d}},
			[]*Message{msg("<a@x>", 1000, "s", d), msg("<a@x>", 1000, "s", d), msg("<a@x>", 1000, "s", d), msg("<a@x>", 1000, "s", d)}, []bool{true, true, true, false}},
		{"the smallest size and the greatest at the edges of the tolerance", []IndexEntry{{MessageID: "<a@x>", Size: 0, InternalDate: d}, {MessageID: "<a@x>", Size: 2 * SizeTolerance, InternalDate: d}},
			[]*Message{msg("<a@x>", SizeTolerance, "s", d), msg("<a@x>", SizeTolerance, "s", d), msg("<a@x>", SizeTolerance, "s", d)}, []bool{true, true, false}},
		{"odd bytes in a Message-ID", []IndexEntry{{MessageID: "<a\x00\xff@x>", Size: 10}, {MessageID: "<a\x00", Size: 10}},
			[]*Message{msg("<a\x00\xff@x>", 10, "s", d), msg("<a\x00", 10, "s", d), msg("<a\x00\xff@x>", 10, "s", d)}, []bool{true, true, false}},
	}
}()

func TestIndexTake(t *testing.T) {
	forEachIndexMode(t, func(t *testing.T) {
		for _, tt := range indexTakeTests {
			x := newTestIndex(t, tt.held)
			checkIndexMode(t, x)
			for i, m := range tt.take {
				has := x.Has(m)
				if got := x.Take(m); got != tt.wants[i] || has != got {
					t.Errorf("%s: Has, Take #%d = %v, %v, want %v", tt.desc, i+1, has, got, tt.wants[i])
				}
			}
			if err := x.Err(); err != nil {
				t.Errorf("%s: Err() = %v", tt.desc, err)
			}
			if x.Len() != len(tt.held) {
				t.Errorf("%s: Len() = %d, want %d", tt.desc, x.Len(), len(tt.held))
			}
		}
	})
}

// TestIndexNeedsBodyHash: the body of an archived message without a
// Message-ID is read only when a copy held could match it by body.
func TestIndexNeedsBodyHash(t *testing.T) {
	d := time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC)
	wall := time.Date(2024, 1, 2, 10, 0, 0, 0, time.FixedZone("+0200", 2*3600)) // the same wall clock
	forEachIndexMode(t, func(t *testing.T) {
		x := newTestIndex(t, []IndexEntry{
			{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d},
			{SHA256: "aa", Size: 50},
			{MessageID: "<b@x>", SHA256: "bb", Size: 50, BodySHA256: "b2", InternalDate: d.Add(2 * time.Hour)}, // has a Message-ID: not by body
			{SHA256: "cc", Size: 50, BodySHA256: "b3"},                                                         // no date
		})
		checkIndexMode(t, x)
		for _, tt := range []struct {
			m    Message
			want bool
		}{
			{Message{SHA256: "s", InternalDate: d}, true},
			{Message{SHA256: "s", InternalDate: d.Add(999 * time.Millisecond)}, true}, // the same second
			{Message{SHA256: "s", InternalDate: wall}, true},                          // the same wall clock
			{Message{SHA256: "s", InternalDate: d.In(time.FixedZone("+0200", 2*3600))}, true},
			{Message{SHA256: "aa", InternalDate: d}, false},                    // held byte for byte
			{Message{SHA256: "s", InternalDate: d.Add(time.Hour)}, false},      // no copy of that date
			{Message{SHA256: "s", InternalDate: d.Add(2 * time.Hour)}, false},  // only a copy with a Message-ID
			{Message{SHA256: "s", InternalDate: d, MessageID: "<a@x>"}, false}, // known by Message-ID
			{Message{SHA256: "s", InternalDate: d, BodySHA256: "b1"}, false},   // hashed already
			{Message{SHA256: "s"}, false},                                      // no date
		} {
			if got := x.NeedsBodyHash(&tt.m); got != tt.want {
				t.Errorf("NeedsBodyHash(%+v) = %v, want %v", tt.m, got, tt.want)
			}
		}
		// Once the copy is taken, no message needs its body hashed.
		if !x.Take(&Message{SHA256: "s", InternalDate: d, BodySHA256: "b1"}) {
			t.Fatal("Take of the body copy = false")
		}
		if x.NeedsBodyHash(&Message{SHA256: "s", InternalDate: d}) {
			t.Error("NeedsBodyHash after the copy was taken = true")
		}
		// A copy taken by its bytes is no longer one to hash for.
		y := newTestIndex(t, []IndexEntry{{SHA256: "zz", Size: 50, BodySHA256: "b1", InternalDate: d}, {SHA256: "yy", Size: 50}})
		if !y.Take(&Message{SHA256: "zz", InternalDate: d}) || y.NeedsBodyHash(&Message{SHA256: "s", InternalDate: d}) {
			t.Error("NeedsBodyHash after the body copy was taken by its bytes = true")
		}
	})
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
