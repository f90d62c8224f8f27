package localname

import "testing"

func TestEscapeUnescape(t *testing.T) {
	plain := Escaper{}
	windows := Escaper{Windows: true}
	reserved := Escaper{Reserved: func(s string) bool { return s == "cur" }}
	tests := []struct {
		e         Escaper
		level, fs string
	}{
		{plain, "", "%"},
		{plain, ".", "%2E"},
		{plain, "..", "%2E."},
		{plain, ".hidden", "%2Ehidden"},
		{plain, "a%b", "a%25b"},
		{plain, "a/b", "a%2Fb"},
		{plain, "tab\there", "tab%09here"},
		{plain, "bad\xffutf8", "bad%FFutf8"},
		{plain, "Año 2023 日本", "Año 2023 日本"},
		{plain, "a:b", "a:b"},
		{plain, "CON", "CON"},
		{windows, "a:b", "a%3Ab"},
		{windows, "CON", "%43ON"},
		{windows, "com1.txt", "%63om1.txt"},
		{windows, "end.", "end%2E"},
		{windows, "end ", "end%20"},
		{reserved, "cur", "%63ur"},
		{reserved, "cur2", "cur2"},
	}
	for _, tt := range tests {
		if got := tt.e.Escape(tt.level); got != tt.fs {
			t.Errorf("Escape(%q) = %q, want %q", tt.level, got, tt.fs)
		}
		if got := Unescape(tt.fs); got != tt.level {
			t.Errorf("Unescape(%q) = %q, want %q", tt.fs, got, tt.level)
		}
	}
}

// TestUnescapeForeign: names written by other programs decode; a '%' not
// followed by two hex digits stays.
func TestUnescapeForeign(t *testing.T) {
	for in, want := range map[string]string{
		"100%": "100%", "%zz": "%zz", "a%4": "a%4", "%41%42": "AB", "%e9t%C3%A9": "\xe9t\u00e9", "plain": "plain",
	} {
		if got := Unescape(in); got != want {
			t.Errorf("Unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
