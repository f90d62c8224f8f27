package mutf7

import "testing"

func TestRoundTrip(t *testing.T) {
	for _, tc := range []struct{ dec, enc string }{
		{"INBOX", "INBOX"},
		{"Entwürfe", "Entw&APw-rfe"},
		{"A&B", "A&-B"},
		{"日本語", "&ZeVnLIqe-"},
		{"Año 2023/Facturas", "A&APE-o 2023/Facturas"},
		{"a\x01b", "a&AAE-b"},
		{"😀", "&2D3eAA-"},
	} {
		if got := Encode(tc.dec); got != tc.enc {
			t.Errorf("Encode(%q) = %q, want %q", tc.dec, got, tc.enc)
		}
		if got, err := Decode(tc.enc); err != nil || got != tc.dec {
			t.Errorf("Decode(%q) = %q, %v; want %q", tc.enc, got, err, tc.dec)
		}
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, s := range []string{"Caf\xe9", "Entwürfe", "A&B", "&AGEAYgBj-", "&Zm9v", "&2D3-", "a\x01b", "&!!-"} {
		if got, err := Decode(s); err == nil {
			t.Errorf("Decode(%q) = %q, nil; want an error", s, got)
		}
		if got := DecodeOrKeep(s); got != s {
			t.Errorf("DecodeOrKeep(%q) = %q, want it unchanged", s, got)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	for _, s := range []string{"INBOX", "Entwürfe", "A&B", "日本語", "a\x01b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !validUTF8(s) {
			return
		}
		e := Encode(s)
		d, err := Decode(e)
		if err != nil || d != s {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", s, d, err)
		}
	})
}

func validUTF8(s string) bool {
	for _, r := range s {
		if r == '\uFFFD' {
			return false
		}
	}
	return true
}
