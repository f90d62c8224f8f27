package backup

import (
	"context"
	"testing"
)

func TestMatchFolder(t *testing.T) {
	tests := []struct {
		pattern, name, delim string
		want                 bool
	}{
		{"[Gmail]/All Mail", "[Gmail]/All Mail", "/", true},
		{"[Gmail]/All Mail", "[Gmail]/All Mail/x", "/", false},
		{"[Gmail]/All Mail", "[Gmail]", "/", false},
		{"[Gmail]/*", "[Gmail]/All Mail", "/", true},
		{"[Gmail]/*", "[Gmail]", "/", false},
		{"[Gmail]*", "[Gmail]", "/", true},
		{"*", "a/b/c", "/", true},
		{"%", "a", "/", true},
		{"%", "a/b", "/", false},
		{"a/%", "a/b", "/", true},
		{"a/%", "a/b/c", "/", false},
		{"a/%/c", "a/b/c", "/", true},
		{"%/c", "a/b/c", "/", false},
		{"*/c", "a/b/c", "/", true},
		{"Arch%", "Archive", ".", true},
		{"Arch%", "Archive.2023", ".", false},
		{"inbox", "INBOX", "/", true},
		{"INBOX/*", "Inbox/sub", "/", true},
		{"Inbox2", "INBOX2", "/", true}, // INBOX at the start: any case
		{"spam", "Spam", "/", false},    // otherwise exact
		{"", "x", "/", false},
		{"%", "a/b", "", true}, // no hierarchy: % is *
	}
	for _, tt := range tests {
		if got := matchFolder(tt.pattern, tt.name, tt.delim); got != tt.want {
			t.Errorf("matchFolder(%q, %q, %q) = %v, want %v", tt.pattern, tt.name, tt.delim, got, tt.want)
		}
	}
}

// TestExcludeFolder: an excluded folder is not opened or recorded; one the
// archive holds stays as it was (not deleted, its messages present), and a
// run without the pattern goes on from there.
func TestExcludeFolder(t *testing.T) {
	a := newArchive(t)
	src, _ := gmailSource(0)
	run := func(exclude ...string) *Result {
		t.Helper()
		src.examined = nil
		res, err := Run(context.Background(), a, Options{Source: "mem://gmail", Protocol: "imap", Exclude: exclude,
			Dial: func(context.Context) (Source, error) { return src, nil }})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		return res
	}
	res := run("[Gmail]/All Mail", "Nothing")
	for _, f := range src.examined {
		if f == "[Gmail]/All Mail" || f == "Nothing" {
			t.Errorf("excluded folder %q examined", f)
		}
	}
	if res.Added != 9 {
		t.Errorf("added %d, want 9 (the labels' and Starred's messages)", res.Added)
	}
	for _, f := range res.Snapshot.Folders {
		if f.Name == "[Gmail]/All Mail" || f.Name == "Nothing" {
			t.Errorf("excluded folder %q recorded", f.Name)
		}
	}
	res = run()
	if res.Added != 6 || res.Stored != 1 {
		t.Errorf("without the pattern: added %d, stored %d; want All Mail's 6, 1 of them stored", res.Added, res.Stored)
	}
	src.folders["[Gmail]/All Mail"].add("Subject: new\r\n\r\nnew\r\n")
	res = run("[Gmail]/All Mail")
	if res.Added != 0 {
		t.Errorf("added %d from an excluded folder", res.Added)
	}
	for _, c := range res.Snapshot.Changes {
		if c.Folder == "[Gmail]/All Mail" {
			t.Errorf("excluded folder changed: %+v", c)
		}
	}
	st, err := a.LoadState()
	if err != nil {
		t.Fatal(err)
	}
	if f := st.Folders["[Gmail]/All Mail"]; f == nil || f.Deleted || len(f.Present()) != 6 {
		t.Errorf("the excluded folder's archived state changed: %+v", f)
	}
}
