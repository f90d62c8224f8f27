package formats

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestFolderDir(t *testing.T) {
	tests := []struct{ in, want string }{
		{"INBOX", "INBOX"},
		{"Sent Items", "Sent%20Items"},
		{"..", "%2E%2E"},
		{".", "%2E"},
		{"a/b", "a%2Fb"},
		{"a\\b", "a%5Cb"},
		{"x\x00y", "x%00y"},
		{"", "%00empty"},
		{"CON", "%43ON"},
		{"nul", "%6Eul"},
		{"COM1", "%43OM1"},
		{"COM", "COM"},
		{"日本", "%E6%97%A5%E6%9C%AC"},
		{"100%", "100%25"},
	}
	for _, tt := range tests {
		if got := FolderDir(tt.in); got != tt.want {
			t.Errorf("FolderDir(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	long := strings.Repeat("é", 500)
	d := FolderDir(long)
	if len(d) > maxDirName || !ValidDir(d) {
		t.Errorf("FolderDir(long) = %q (%d bytes), want valid and at most %d", d, len(d), maxDirName)
	}
	if FolderDir(long) == FolderDir(long+"x") {
		t.Errorf("long names that differ map to the same directory")
	}
}

// FuzzFolderDir checks that any folder name maps to one safe path
// component inside the archive and that distinct names map apart.
func FuzzFolderDir(f *testing.F) {
	for _, s := range []string{"INBOX", "..", "a/../../etc", "CON", "日本", "\x00", strings.Repeat("/", 300), "%2E"} {
		f.Add(s, s+"x")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		da := FolderDir(a)
		if !ValidDir(da) {
			t.Fatalf("FolderDir(%q) = %q is not a valid directory", a, da)
		}
		root := "/archive/folders"
		p := filepath.Join(root, da)
		if filepath.Dir(p) != root || filepath.Base(p) != da {
			t.Fatalf("FolderDir(%q) = %q escapes %s", a, da, root)
		}
		if a != b && da == FolderDir(b) {
			t.Fatalf("FolderDir(%q) == FolderDir(%q) == %q", a, b, da)
		}
	})
}
