// Package archivetest holds test helpers that look into archives.
package archivetest

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
)

// Latest opens the archive at vault and replays it to its last snapshot.
func Latest(t testing.TB, vault string) (*formats.Archive, *formats.State) {
	t.Helper()
	a, err := formats.Open(vault)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := a.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := formats.Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	return a, st
}

// Bytes reads one archived message by random access.
func Bytes(t testing.TB, a *formats.Archive, st *formats.State, m *formats.MessageState) []byte {
	t.Helper()
	r, err := a.OpenMessage(st, &m.Message)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read message %s: %v", m.Key, err)
	}
	return got
}

// Present returns how many messages each folder of the latest snapshot
// holds that are still on the source.
func Present(t testing.TB, vault string) map[string]int {
	t.Helper()
	_, st := Latest(t, vault)
	out := map[string]int{}
	for name, f := range st.Folders {
		out[name] = len(f.Present())
	}
	return out
}

// MatchesServer checks that the archive's latest snapshot holds
// exactly the server's messages: same bytes, flags and dates.
func MatchesServer(t testing.TB, vault string, server map[string][]imaptest.ServerMessage) {
	t.Helper()
	a, st := Latest(t, vault)
	for folder, msgs := range server {
		f := st.Folders[folder]
		if f == nil {
			t.Errorf("folder %q missing from the archive", folder)
			continue
		}
		present := f.Present()
		if len(present) != len(msgs) {
			t.Errorf("folder %q: archive has %d messages, server %d", folder, len(present), len(msgs))
			continue
		}
		byKey := map[string]*formats.MessageState{}
		for _, m := range present {
			byKey[m.Key] = m
		}
		for _, sm := range msgs {
			m := byKey[fmt.Sprintf("%d:%d", f.UIDValidity, sm.UID)]
			if m == nil {
				t.Errorf("folder %q uid %d not archived", folder, sm.UID)
				continue
			}
			got := Bytes(t, a, st, m)
			if string(got) != string(sm.Body) || m.SHA256 != sm.SHA256 {
				t.Errorf("folder %q uid %d: archived bytes differ from the server's", folder, sm.UID)
			}
			if fl := imaptest.FlagSet(m.Flags); strings.Join(fl, " ") != strings.Join(sm.Flags, " ") {
				t.Errorf("folder %q uid %d: archived flags %v, server %v", folder, sm.UID, m.Flags, sm.Flags)
			}
			if !m.InternalDate.Equal(sm.InternalDate) {
				t.Errorf("folder %q uid %d: INTERNALDATE %v, server %v", folder, sm.UID, m.InternalDate, sm.InternalDate)
			}
		}
	}
}
