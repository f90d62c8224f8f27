package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"github.com/mailvault/mailvault/backup"
)

func TestProgressText(t *testing.T) {
	start := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	ev := func(k backup.EventKind, folder string, n int, b int64) backup.Event {
		return backup.Event{Kind: k, Folder: folder, Folders: n, Messages: n, Bytes: b}
	}
	tests := []struct {
		name   string
		events []backup.Event
		at     time.Duration
		want   string
	}{
		{"nothing yet", nil, time.Second, "folders 0/0  0/0 msgs  0 B  ETA ?"},
		{"planned", []backup.Event{{Kind: backup.EventPlanned, Folders: 3, Messages: 100}}, time.Second,
			"folders 0/3  0/100 msgs  0 B  ETA ?"},
		{"half way", []backup.Event{
			{Kind: backup.EventPlanned, Folders: 2, Messages: 10},
			ev(backup.EventFetching, "INBOX", 8, 0),
			ev(backup.EventFetching, "Sent", 4, 0),
			ev(backup.EventStored, "INBOX", 0, 1<<20), ev(backup.EventStored, "INBOX", 0, 1<<20),
			ev(backup.EventStored, "INBOX", 0, 1<<20), ev(backup.EventStored, "INBOX", 0, 1<<20),
			ev(backup.EventStored, "INBOX", 0, 1<<20), ev(backup.EventStored, "INBOX", 0, 1<<20),
			{Kind: backup.EventFolderDone, Folder: "INBOX"},
		}, 3 * time.Second, "folders 1/2  6/12 msgs  6.0 MiB  2.0 MiB/s  ETA 3s"},
		{"a folder fetched again reports what is left", []backup.Event{
			ev(backup.EventFetching, "INBOX", 4, 0),
			ev(backup.EventStored, "INBOX", 0, 100), ev(backup.EventStored, "INBOX", 0, 100),
			ev(backup.EventFetching, "INBOX", 2, 0),
		}, 2 * time.Second, "folders 0/0  2/4 msgs  200 B  100 B/s  ETA 2s"},
	}
	for _, tt := range tests {
		s := progressState{start: start, target: map[string]int{}, storedIn: map[string]int{}}
		for _, e := range tt.events {
			s.apply(e)
		}
		if got := s.text(start.Add(tt.at)); got != tt.want {
			t.Errorf("%s: text() = %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestProgressUIDraws: the line of a running account shows its name and
// counts, and a nil UI (no terminal, -q, JSON logs) draws nothing and
// passes writes through.
func TestProgressUIDraws(t *testing.T) {
	var out bytes.Buffer
	u := newProgressUI(context.Background(), &out, mpb.WithAutoRefresh())
	a := u.account("alice")
	a.event(backup.Event{Kind: backup.EventPlanned, Folders: 2, Messages: 3})
	a.event(backup.Event{Kind: backup.EventStored, Folder: "INBOX", Bytes: 2048})
	time.Sleep(600 * time.Millisecond)
	a.done()
	u.stop()
	if s := out.String(); !strings.Contains(s, "alice") || !strings.Contains(s, "folders 0/2  1/3 msgs  2.0 KiB") {
		t.Errorf("progress output %q lacks the account's line", s)
	}

	var nilUI *progressUI
	nilUI.account("x").event(backup.Event{Kind: backup.EventStored})
	nilUI.account("x").done()
	nilUI.stop()
	if nilUI.account("x").progress() != nil {
		t.Error("a nil UI gives the engine a progress callback")
	}
	var w bytes.Buffer
	if got := nilUI.writer(&w); got != &w {
		t.Error("a nil UI does not pass writes through")
	}
}
