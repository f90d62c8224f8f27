package formats

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckCreatable(t *testing.T) {
	dir := t.TempDir()
	notEmpty := filepath.Join(dir, "full")
	os.Mkdir(notEmpty, 0o700)
	os.WriteFile(filepath.Join(notEmpty, "x"), nil, 0o600)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o600)
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o700)
	tests := []struct {
		root string
		want error
	}{
		{filepath.Join(dir, "new"), nil},
		{filepath.Join(dir, "a", "b", "new"), nil},
		{empty, nil},
		{notEmpty, ErrNotArchive},
		{file, ErrNotArchive},
		{filepath.Join(file, "sub"), ErrUnwritable},
		{"/proc/vault", ErrUnwritable},
	}
	for _, tt := range tests {
		err := CheckCreatable(tt.root)
		if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
			t.Errorf("CheckCreatable(%s) = %v, want %v", tt.root, err, tt.want)
		}
	}
	// Nothing was left behind.
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".mailvault") || e.Name() == "new" || e.Name() == "a" {
			t.Errorf("CheckCreatable left %s", e.Name())
		}
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Errorf("CheckCreatable left %v in an empty directory", entries)
	}
}

func TestCreateUnwritable(t *testing.T) {
	if _, err := Create("/proc/vault"); !errors.Is(err, ErrUnwritable) {
		t.Errorf("Create(/proc/vault) = %v, want ErrUnwritable", err)
	}
	// A lock that cannot be opened for writing (here: a directory where
	// the lock file should be) cannot write the archive.
	a, err := Create(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(a.Root, LockFile), 0o700)
	if err := a.Lock("test"); !errors.Is(err, ErrUnwritable) {
		t.Errorf("Lock with an unusable lock file = %v, want ErrUnwritable", err)
	}
}

func TestSourceIdentity(t *testing.T) {
	root := filepath.Join(t.TempDir(), "vault")
	src := &SourceIdentity{Scheme: "imaps", Host: "mail.example.com", User: "alice"}
	a, err := CreateFor(root, StorageOptions{}, src)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open(root)
	if err != nil || b.Config.Source == nil || *b.Config.Source != *src {
		t.Fatalf("Open after CreateFor: source %v, %v; want %v", b.Config.Source, err, src)
	}
	data, _ := os.ReadFile(filepath.Join(root, ConfigFile))
	var raw map[string]any
	json.Unmarshal(data, &raw)
	if s, _ := raw["source"].(map[string]any); s["scheme"] != "imaps" || s["host"] != "mail.example.com" || s["user"] != "alice" || len(s) != 3 {
		t.Errorf("mailvault.json source = %v", raw["source"])
	}
	moved := SourceIdentity{Scheme: "imap", Host: "new.example.com", User: "alice"}
	if err := a.SetSource(moved); err != nil {
		t.Fatal(err)
	}
	if b, _ := Open(root); *b.Config.Source != moved || b.Config.ID != a.Config.ID || b.Config.Storage != StorageMbox {
		t.Errorf("after SetSource: %+v", b.Config)
	}
	// An archive written before the field opens with no source.
	delete(raw, "source")
	data, _ = json.Marshal(raw)
	os.WriteFile(filepath.Join(root, ConfigFile), data, 0o600)
	if b, err := Open(root); err != nil || b.Config.Source != nil {
		t.Errorf("an archive without source: %v, %v", b.Config.Source, err)
	}
	for _, tt := range []struct {
		id   SourceIdentity
		want string
	}{
		{*src, "imaps://alice@mail.example.com"},
		{SourceIdentity{Scheme: "maildir", Path: "/home/a/Maildir"}, "maildir:/home/a/Maildir"},
		{SourceIdentity{Host: "h", User: "u"}, "u@h"},
	} {
		if got := tt.id.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.id, got, tt.want)
		}
	}
}
