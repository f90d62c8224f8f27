package backup

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
)

func TestKeySet(t *testing.T) {
	tests := []struct {
		name string
		add  []string
		miss []string
	}{
		{"imap dense", []string{"7:1", "7:2", "7:3", "7:4095", "7:4096", "7:4097"}, []string{"7:5", "8:1", "7:0"}},
		{"imap sparse and extremes", []string{"1:4294967295", "4294967295:0", "3:100000000"}, []string{"1:4294967294", "3:99999999"}},
		{"non-canonical are strings", []string{"7:01", "07:1", "uidl-abc", "7:1"}, []string{"7:2", "uidl-ab"}},
		{"pop3", []string{"a", "b", "c"}, []string{"d", ""}},
		{"repeated", []string{"5:5", "5:5", "x", "x"}, []string{"5:6"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newKeySet()
			want := map[string]bool{}
			for _, k := range tt.add {
				s.add(k)
				want[k] = true
			}
			for k := range want {
				if !s.has(k) {
					t.Errorf("has(%q) = false after add", k)
				}
			}
			for _, k := range tt.miss {
				if s.has(k) {
					t.Errorf("has(%q) = true, never added", k)
				}
			}
			if s.len() != len(want) {
				t.Errorf("len = %d, want %d", s.len(), len(want))
			}
			var got []string
			s.each(func(k string) error { got = append(got, k); return nil })
			if len(got) != len(want) {
				t.Errorf("each gave %v, want the keys of %v", got, want)
			}
			for _, k := range got {
				if !want[k] {
					t.Errorf("each gave %q, never added", k)
				}
			}
		})
	}
}

func TestKeyList(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		runs int // runs kept when every key is an IMAP key
	}{
		{"empty", nil, 0},
		{"one run", []string{"9:1", "9:2", "9:3", "9:4"}, 1},
		{"gaps and validities", []string{"9:1", "9:2", "9:7", "9:8", "3:9", "3:10", "9:3"}, 4},
		{"top uid", []string{"1:4294967294", "1:4294967295", "2:0"}, 2},
		{"strings", []string{"9:1", "9:2", "uidl-x", "9:3"}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var l keyList
			for _, k := range tt.keys {
				l.add(k)
			}
			if l.len() != len(tt.keys) {
				t.Fatalf("len = %d, want %d", l.len(), len(tt.keys))
			}
			if tt.runs >= 0 && len(l.runs) != tt.runs {
				t.Errorf("runs = %d, want %d", len(l.runs), tt.runs)
			}
			for i := 0; i <= len(tt.keys); i++ {
				for j := i; j <= len(tt.keys); j++ {
					if got := l.slice(i, j); !slices.Equal(got, tt.keys[i:j]) && !(len(got) == 0 && j == i) {
						t.Errorf("slice(%d, %d) = %v, want %v", i, j, got, tt.keys[i:j])
					}
					sub := l.sub(i, j)
					if got := sub.slice(0, sub.len()); !slices.Equal(got, tt.keys[i:j]) && !(len(got) == 0 && j == i) {
						t.Errorf("sub(%d, %d) = %v, want %v", i, j, got, tt.keys[i:j])
					}
				}
			}
			var all []string
			l.each(func(k string) error { all = append(all, k); return nil })
			if !reflect.DeepEqual(all, tt.keys) && len(tt.keys) > 0 {
				t.Errorf("each = %v, want %v", all, tt.keys)
			}
		})
	}
}

// TestKeyListSize: a listing of a million consecutive UIDs is one run.
func TestKeyListSize(t *testing.T) {
	var l keyList
	s := newKeySet()
	for u := 1; u <= 1000000; u++ {
		k := fmt.Sprintf("77:%d", u)
		l.add(k)
		s.add(k)
	}
	if len(l.runs) != 1 || l.strs != nil {
		t.Errorf("runs %d, strings %d; want one run", len(l.runs), len(l.strs))
	}
	if len(s.uids) > 1000000/chunkBits+1 || s.other != nil {
		t.Errorf("%d chunks for a million consecutive UIDs", len(s.uids))
	}
	if got := l.slice(499999, 500002); !slices.Equal(got, []string{"77:500000", "77:500001", "77:500002"}) {
		t.Errorf("slice = %v", got)
	}
}
