package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// TestRestoreIntoPrefixedNamespace: an archive of a server without a
// namespace prefix restored to one whose folders must all be below
// "INBOX." (Courier): every folder is created there and restored; the
// report says which namespaces it mapped between.
func TestRestoreIntoPrefixedNamespace(t *testing.T) {
	b := newBuilder(t)
	b.snapshot(day, []msgSpec{
		{"INBOX", body(1, ""), nil, day},
		{"Archive", body(2, ""), nil, day},
		{"Archive/2024", body(3, ""), nil, day},
		{"Año", body(4, ""), nil, day},
	}, nil, nil)
	tg := newMemTarget()
	tg.delim, tg.prefix, tg.onlyPrefix = ".", "INBOX.", true
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil {
		t.Fatalf("restore into INBOX.: %v (folders %v)", err, keys(tg.folders))
	}
	for _, f := range []string{"INBOX", "INBOX.Archive", "INBOX.Archive.2024", "INBOX.Año"} {
		if len(tg.folders[f]) != 1 {
			t.Errorf("folder %q holds %d messages, want 1 (folders %v)", f, len(tg.folders[f]), keys(tg.folders))
		}
	}
	if rep.TargetNamespace != (Namespace{Prefix: "INBOX.", Delimiter: "."}) || rep.ArchiveNamespace != (Namespace{Delimiter: "/"}) || rep.ArchiveNamespaceFrom != NamespaceDerived {
		t.Errorf("report namespaces: archive %+v (%s), target %+v", rep.ArchiveNamespace, rep.ArchiveNamespaceFrom, rep.TargetNamespace)
	}
}

// TestRestoreFromPrefixedNamespace: a Courier archive (every folder below
// "INBOX.") restored to a server without a prefix puts the folders at the
// top level, not below INBOX.
func TestRestoreFromPrefixedNamespace(t *testing.T) {
	b := newBuilder(t)
	b.delim = "."
	b.snapshot(day, []msgSpec{
		{"INBOX", body(1, ""), nil, day},
		{"INBOX.Sent", body(2, ""), nil, day},
		{"INBOX.Archive.2024", body(3, ""), nil, day},
	}, nil, nil)
	tg := newMemTarget()
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"INBOX", "Sent", "Archive/2024"} {
		if len(tg.folders[f]) != 1 {
			t.Errorf("folder %q holds %d messages, want 1 (folders %v)", f, len(tg.folders[f]), keys(tg.folders))
		}
	}
	if rep.ArchiveNamespace != (Namespace{Prefix: "INBOX.", Delimiter: "."}) || rep.ArchiveNamespaceFrom != NamespaceDerived {
		t.Errorf("archive namespace %+v (%s), want INBOX. derived", rep.ArchiveNamespace, rep.ArchiveNamespaceFrom)
	}
}

// TestRestoreVerifiesAppends: a target that acknowledges appends and
// keeps fewer (GNU Mailutils into a SELECTed folder) is caught: the
// folder is named with the number missing, the run is partial, and the
// counts say what the target holds.
func TestRestoreVerifiesAppends(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 6; i++ {
		msgs = append(msgs, msgSpec{"Work", body(i, map[bool]string{true: "LOSTONE"}[i%3 == 1]), nil, day})
		msgs = append(msgs, msgSpec{"INBOX", body(100+i, ""), nil, day})
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	tg.discard = "LOSTONE"
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "2 acknowledged by the target but missing") {
		t.Fatalf("restore to a target that loses appends: %v, want partial naming 2 missing", err)
	}
	if rep.Missing != 2 || rep.Stored != 12 || rep.FailedFolders != 0 || len(tg.folders["Work"]) != 4 || len(tg.folders["INBOX"]) != 6 {
		t.Errorf("missing %d, appended %d, Work holds %d, INBOX %d; want 2, 12, 4, 6", rep.Missing, rep.Stored, len(tg.folders["Work"]), len(tg.folders["INBOX"]))
	}
	for _, fp := range rep.Folders {
		if (fp.Missing != 0) != (fp.Source == "Work") || fp.Source == "Work" && !strings.Contains(fp.Error, "2 of them are not in the folder") {
			t.Errorf("folder %s: missing %d, error %q", fp.Source, fp.Missing, fp.Error)
		}
	}
	// Once the target keeps what it is given, a re-run appends exactly
	// what is missing.
	tg.discard = ""
	rep, err = restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 2 || rep.Present != 10 || len(tg.folders["Work"]) != 6 {
		t.Errorf("re-run: %v, appended %d, present %d, Work holds %d; want 2, 10, 6", err, rep.Stored, rep.Present, len(tg.folders["Work"]))
	}
}

// TestRestoreKeywordsRefused: a target that refuses any keyword (GNU
// Mailutils) gets the message again without them, and the folder keeps
// its other messages' system flags.
func TestRestoreKeywordsRefused(t *testing.T) {
	b := newBuilder(t)
	b.snapshot(day, []msgSpec{
		{"INBOX", body(1, ""), []string{`\Seen`, "$Label1"}, day},
		{"INBOX", body(2, ""), []string{`\Flagged`, "project_x"}, day},
		{"INBOX", body(3, ""), []string{`\Answered`}, day},
	}, nil, nil)
	tg := newMemTarget()
	tg.noKeywords = true
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 3 || rep.Rejected != 0 {
		t.Fatalf("restore to a target refusing keywords: %v, appended %d, rejected %d; want 3 appended", err, rep.Stored, rep.Rejected)
	}
	var got []string
	for _, fl := range tg.flags["INBOX"] {
		got = append(got, strings.Join(fl, " "))
	}
	sort.Strings(got) // the refused one went again after the others
	if strings.Join(got, "|") != `\Answered|\Flagged|\Seen` {
		t.Errorf("flags stored %q", got)
	}
}

// TestRestoreLostAnswerOfSecondCopy: a folder holds one copy of a message
// the archive has twice; the answer to the append of the second copy is
// lost before the target stored it. The engine must not take the copy
// that was already there for it.
func TestRestoreLostAnswerOfSecondCopy(t *testing.T) {
	b := newBuilder(t)
	dup := body(1, "twice")
	b.snapshot(day, []msgSpec{{"INBOX", dup, nil, day}, {"INBOX", dup, nil, day}, {"INBOX", body(2, ""), nil, day}}, nil, nil)
	tg := newMemTarget()
	tg.folders["INBOX"] = [][]byte{[]byte(dup)}
	tg.dates["INBOX"] = []time.Time{day}
	tg.lose = map[string]bool{"twice": true}
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || len(tg.folders["INBOX"]) != 3 || rep.Present != 1 || rep.Stored != 2 {
		t.Fatalf("restore: %v; INBOX holds %d, present %d, appended %d; want 3, 1, 2", err, len(tg.folders["INBOX"]), rep.Present, rep.Stored)
	}
}

// TestRestoreRewritingTargetIdempotent: a target that rewrites what it
// stores (GNU Mailutils adds header fields, changing sizes and hashes,
// and keeps INTERNALDATE's wall clock in +0000) gets nothing again on a
// second restore, copies and messages without a Message-ID included.
func TestRestoreRewritingTargetIdempotent(t *testing.T) {
	b := newBuilder(t)
	zone := time.FixedZone("-0500", -5*3600)
	noID := "Subject: no id\r\n\r\nsame bytes\r\n"
	b.snapshot(day, []msgSpec{
		{"INBOX", body(1, ""), nil, day.In(zone)},
		{"INBOX", body(2, ""), nil, day},
		{"INBOX", body(2, ""), nil, day},
		{"INBOX", noID, nil, day.In(zone)},
		{"INBOX", noID, nil, day.In(zone)},
		{"INBOX", "Subject: other\r\n\r\nno id either", nil, day},
	}, nil, nil)
	tg := newMemTarget()
	tg.rewrite = true
	if rep, err := restoreAll(t, b, Selection{}, tg, Options{}); err != nil || rep.Stored != 6 {
		t.Fatalf("first restore: %v, appended %d", err, rep.Stored)
	}
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 0 || rep.Present != 6 || len(tg.folders["INBOX"]) != 6 {
		t.Fatalf("second restore: %v, appended %d, present %d, INBOX holds %d; want 0, 6, 6", err, rep.Stored, rep.Present, len(tg.folders["INBOX"]))
	}
}

// TestRestoreThrottleInterrupted: an interrupt while the engine waits
// after throttling ends the run at once, not after the wait (up to a
// minute).
func TestRestoreThrottleInterrupted(t *testing.T) {
	b := newBuilder(t)
	b.snapshot(day, []msgSpec{{"INBOX", body(1, ""), nil, day}}, nil, nil)
	tg := newMemTarget()
	tg.throttle = 100
	selected, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err = Run(ctx, b.a, selected, tg, Options{}) // the real wait: 2 s, then 4 s, …
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want interrupted", err)
	}
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Run returned %v after the start, interrupted after 300ms: it waited out the backoff", d)
	}
}

// slowTarget is a memTarget reached over several connections whose
// appends report to stored.
type countingTarget struct {
	lockedTarget
	stored func()
}

func (c *countingTarget) Append(ctx context.Context, folder string, msg *Message, body io.Reader) (Pending, error) {
	p, err := c.lockedTarget.Append(ctx, folder, msg, body)
	if err == nil && p.Wait() == nil {
		c.stored()
	}
	return p, err
}

// TestRestoreSlowProgressDoesNotStall: a Progress callback that takes its
// time (a terminal that blocks) does not hold the workers back: the
// restore completes while the first call still waits.
func TestRestoreSlowProgressDoesNotStall(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for f := 0; f < 2; f++ {
		for i := 0; i < 40; i++ {
			msgs = append(msgs, msgSpec{fmt.Sprintf("F%d", f), body(100*f+i, ""), nil, day})
		}
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	var mu, cmu sync.Mutex
	n := 0
	all := make(chan struct{})
	stored := func() {
		cmu.Lock()
		defer cmu.Unlock()
		if n++; n == len(msgs) {
			close(all)
		}
	}
	open := func(context.Context) (Target, error) {
		return &countingTarget{lockedTarget{mu: &mu, m: tg}, stored}, nil
	}
	first := &countingTarget{lockedTarget{mu: &mu, m: tg}, stored}
	selected, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	var last Progress
	progress := func(p Progress) {
		if calls++; calls == 1 {
			select {
			case <-all:
			case <-time.After(5 * time.Second):
				t.Error("the restore did not go on while Progress was busy")
			}
		}
		last = p
	}
	rep, err := Run(context.Background(), b.a, selected, first, Options{Window: 4, Connections: 2, Open: open, Sleep: noSleep, Progress: progress})
	if err != nil || rep.Stored != len(msgs) {
		t.Fatalf("restore: %v, appended %d", err, rep.Stored)
	}
	if last.Done != len(msgs) || last.Stored != len(msgs) {
		t.Errorf("last progress %+v, want every message done", last)
	}
}

// TestRestoreStructureAndSpecialUse: an archived \Noselect folder with no
// folder restored below it is created as structure; one with folders
// below comes with them; a role folder the target lacks is created with
// its special-use attribute where the target offers
// CREATE-SPECIAL-USE.
func TestRestoreStructureAndSpecialUse(t *testing.T) {
	b := newBuilder(t)
	// Two \Noselect folders: one empty, one the parent of Lists/go.
	for _, name := range []string{"Projects", "Lists"} {
		b.extra = append(b.extra, formats.Folder{Name: name, Delimiter: "/", Dir: formats.FolderDir(name), Status: formats.FolderNoSelect})
	}
	b.snapshot(day, []msgSpec{
		{"INBOX", body(1, ""), nil, day},
		{"Sent", body(2, ""), nil, day},
		{"Lists/go", body(3, ""), nil, day},
	}, nil, map[string]string{"Sent": RoleSent})
	sel, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	tg := newMemTarget()
	tg.canUse = true
	rep, err := Run(context.Background(), b.a, sel, tg, Options{Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(tg.structures, ",") != "Projects" {
		t.Errorf("created as structure: %v, want Projects only", tg.structures)
	}
	if tg.created["Sent"] != RoleSent || len(tg.folders["Sent"]) != 1 {
		t.Errorf("Sent created with %q holding %d messages, want \\Sent and 1", tg.created["Sent"], len(tg.folders["Sent"]))
	}
	structure := 0
	for _, fp := range rep.Folders {
		if fp.Structure {
			structure++
		}
	}
	if structure != 1 || rep.FailedFolders != 0 {
		t.Errorf("plan: %d structure rows, %d failed folders", structure, rep.FailedFolders)
	}
	// Again: the structure is there, nothing is created or appended.
	rep, err = Run(context.Background(), b.a, sel, tg, Options{Sleep: noSleep})
	if err != nil || len(tg.structures) != 1 || rep.Stored != 0 {
		t.Errorf("second restore: %v, structures created %v, appended %d", err, tg.structures, rep.Stored)
	}
}
