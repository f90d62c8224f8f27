package backup

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// nsSource is a memSource with a personal namespace.
type nsSource struct {
	*memSource
	prefix, delim string
}

func (s nsSource) PersonalNamespace(context.Context) (string, string, error) {
	return s.prefix, s.delim, nil
}

// TestBackupRecordsNamespace: a backup records the source's personal
// namespace in its snapshot (checkpoints included), so that a restore to
// another server can map the names; a source without one records none.
func TestBackupRecordsNamespace(t *testing.T) {
	for _, tt := range []struct {
		name string
		src  Source
		want *formats.Namespace
	}{
		{"courier", nsSource{newMemSource(), "INBOX.", "."}, &formats.Namespace{Prefix: "INBOX.", Delimiter: "."}},
		{"dovecot", nsSource{newMemSource(), "", "/"}, &formats.Namespace{Delimiter: "/"}},
		{"no namespace", newMemSource(), nil},
	} {
		a, err := formats.Create(filepath.Join(t.TempDir(), "vault"))
		if err != nil {
			t.Fatal(err)
		}
		var ms *memSource
		switch s := tt.src.(type) {
		case nsSource:
			ms = s.memSource
		case *memSource:
			ms = s
		}
		ms.folder("INBOX", 7).add("Subject: a\r\n\r\nx\r\n")
		src := tt.src
		if _, err := Run(context.Background(), a, Options{Source: "mem://test", Protocol: "imap", Dial: func(context.Context) (Source, error) { return src, nil }}); err != nil {
			t.Fatal(err)
		}
		snaps, err := a.Snapshots()
		if err != nil {
			t.Fatal(err)
		}
		got := snaps[len(snaps)-1].Namespace
		if (got == nil) != (tt.want == nil) || got != nil && *got != *tt.want {
			t.Errorf("%s: snapshot namespace %+v, want %+v", tt.name, got, tt.want)
		}
	}
}
