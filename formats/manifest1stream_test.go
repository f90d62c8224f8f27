package formats

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// streamed writes s through a SnapshotStream.
func streamed(t *testing.T, s *Snapshot) []byte {
	t.Helper()
	var b bytes.Buffer
	head := *s
	head.Changes = nil
	sw, err := NewSnapshotStream(&b, &head)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range s.Changes {
		if err := sw.BeginChange(c.Folder, c.Event, c.From); err != nil {
			t.Fatal(err)
		}
		for _, r := range recordsOfChange(c) {
			if err := sw.Record(&r); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestSnapshotStreamMatchesWriteSnapshot: a manifest written record by
// record decodes (whole, and streaming) to what WriteSnapshot's does.
func TestSnapshotStreamMatchesWriteSnapshot(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(fuzzSnapshots(), goldenSnapshot()) {
		want, err := DecodeSnapshot(mustEncode(t, s))
		if err != nil {
			t.Fatal(err)
		}
		data := streamed(t, s)
		got, err := DecodeSnapshot(data)
		if err != nil {
			t.Fatalf("DecodeSnapshot(streamed %s) = %v\n%s", s.ID, err, data)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("streamed %s decodes to\n%+v\nwant\n%+v", s.ID, got, want)
		}
		checkV1Stream(t, a, writeManifestBytes(t, a, s.Seq, s.ID, data), want)
	}
}

// TestSnapshotStreamRefuses: records out of order (a message added
// after a gone key), outside a change, or invalid, and a snapshot that is
// not valid, are refused; the stream stays failed.
func TestSnapshotStreamRefuses(t *testing.T) {
	s := goldenSnapshot()
	s.Changes = nil
	var b bytes.Buffer
	bad := *s
	bad.ID = "nothex!!"
	if _, err := NewSnapshotStream(&b, &bad); err == nil {
		t.Error("NewSnapshotStream(bad id) = nil error")
	}
	m := goldenSnapshot().Changes[0].Added[0]
	for _, tc := range []struct {
		name string
		fn   func(sw *SnapshotStream) error
	}{
		{"record outside a change", func(sw *SnapshotStream) error { return sw.Gone("1:1") }},
		{"added after gone", func(sw *SnapshotStream) error {
			sw.BeginChange("INBOX", "", "")
			sw.Gone("1:1")
			return sw.Add(&m)
		}},
		{"empty key", func(sw *SnapshotStream) error {
			sw.BeginChange("INBOX", "", "")
			return sw.Flags("", nil)
		}},
		{"bad event", func(sw *SnapshotStream) error { return sw.BeginChange("INBOX", "exploded", "") }},
		{"rename without old name", func(sw *SnapshotStream) error { return sw.BeginChange("INBOX", EventRenamed, "") }},
	} {
		sw, err := NewSnapshotStream(&b, s)
		if err != nil {
			t.Fatal(err)
		}
		first := tc.fn(sw)
		if first == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if err := sw.Close(); !errors.Is(err, first) {
			t.Errorf("%s: Close() = %v, want the first error %v", tc.name, err, first)
		}
	}
}
