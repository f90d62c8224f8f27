// Package targettest is the conformance suite of restore.Target, which
// every adapter runs from its own tests (internal/imapstore against the
// in-memory server and Dovecot, internal/localstore's Maildir, mbox and
// .eml trees), like restic's backend test suite: one contract, checked the
// same way for all.
//
// The adapter's test hands Run a way to open sessions on an empty target
// and a way to read what the target holds without the Target (an IMAP
// client, a Maildir or mbox reader of our own, the files). Run uses the
// target as the restore engine does (Prepare before writing, Index before
// appending to a folder, every Pending waited for) and checks, each in a
// subtest that works in folders of its own: that a session which only
// reads creates nothing; creating folders (nested, non-ASCII, twice);
// appending messages with flags, keywords and INTERNALDATE, byte for byte;
// the idempotence lookup (Index) in a new session, copies counted,
// messages without a Message-ID known by their SHA-256; an Append to a
// folder not created; an Append whose body cannot be read; hostile folder
// names (held exactly or refused with restore.ErrFolderRefused, never
// something else); and Close.
package targettest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/restore"
)

// Stored is a message as the target holds it.
type Stored struct {
	Body         []byte
	Flags        []string
	InternalDate time.Time
}

// Target is a target for Run.
type Target struct {
	// Open opens a new session on the target. The target is empty (no
	// folder but INBOX, no message) when Run starts.
	Open func(ctx context.Context) (restore.Target, error)
	// Contents reads what the target holds, without going through the
	// Target: per folder (levels joined by "/", INBOX as "INBOX"), its
	// messages in any order. Folders that do not exist are left out.
	Contents func(t *testing.T) map[string][]Stored
	// Flags says the target keeps flags and keywords (IMAP, Maildir).
	Flags bool
}

const callTimeout = 2 * time.Minute

// Run checks tg against the contract of restore.Target.
func Run(t *testing.T, tg Target) {
	t.Helper()
	if tg.Open == nil || tg.Contents == nil {
		t.Fatal("targettest: Target needs Open and Contents")
	}
	r := &runner{tg: tg}
	t.Run("ReadOnlySession", r.readOnly)
	t.Run("CreateFolder", r.createFolder)
	t.Run("Append", r.appendMessages)
	t.Run("Index", r.index)
	t.Run("Copies", r.copies)
	t.Run("IndexOnDisk", r.indexOnDisk)
	t.Run("IndexError", r.indexError)
	t.Run("AppendToMissingFolder", r.missingFolder)
	t.Run("UnreadableBody", r.unreadable)
	t.Run("HostileNames", r.hostile)
	t.Run("Close", r.close)
}

type runner struct {
	tg Target
	// appended is what the Append subtest stored, per folder.
	appended map[string][]msg
	// copied is what the Copies subtest stored in its folder.
	copied []msg
}

// msg is a message the suite restores.
type msg struct {
	body  []byte
	flags []string
	date  time.Time
	id    string // Message-ID, "" for none
}

func (m msg) restoreMessage() *restore.Message {
	sum := sha256.Sum256(m.body)
	return &restore.Message{Flags: m.flags, InternalDate: m.date, Size: int64(len(m.body)), SHA256: hex.EncodeToString(sum[:]), MessageID: m.id}
}

var seq int

// newMsg returns a distinct message (CRLF line endings, a final CRLF, no
// ">From " line) with a Message-ID unless noID.
func newMsg(subject string, noID bool, flags ...string) msg {
	seq++
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC).Add(time.Duration(seq) * 61 * time.Minute)
	id := fmt.Sprintf("<targettest-%d-%d@example.com>", seq, time.Now().UnixNano())
	var b strings.Builder
	fmt.Fprintf(&b, "Date: %s\r\nFrom: Alice <alice@example.com>\r\nSubject: %s\r\n", date.Format(time.RFC1123Z), subject)
	if noID {
		id = ""
	} else {
		fmt.Fprintf(&b, "Message-ID: %s\r\n", id)
	}
	fmt.Fprintf(&b, "\r\nBody of %s.\r\nFrom a line that looks like an mbox separator.\r\n.\r\nÄrger, 東京.\r\n", subject)
	return msg{body: []byte(b.String()), flags: flags, date: date, id: id}
}

func (r *runner) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// open opens a session; t's cleanup closes it (Close twice is allowed).
func (r *runner) open(t *testing.T, ctx context.Context) restore.Target {
	t.Helper()
	tg, err := r.tg.Open(ctx)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { tg.Close() })
	return tg
}

// prepare readies a session for writing, as the engine does.
func prepare(t *testing.T, ctx context.Context, tg restore.Target) {
	t.Helper()
	if p, ok := tg.(restore.Preparer); ok {
		if err := p.Prepare(ctx); err != nil {
			t.Fatalf("Prepare: %v", err)
		}
	}
}

// name joins suite levels with the target's delimiter.
func name(tg restore.Target, levels ...string) string {
	return strings.Join(levels, tg.Delimiter())
}

// listed returns the folders the target lists.
func listed(t *testing.T, ctx context.Context, tg restore.Target) []string {
	t.Helper()
	fs, err := tg.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	var out []string
	for _, f := range fs {
		out = append(out, f.Name)
	}
	return out
}

// appendAll indexes folder and appends msgs to it, waiting for every
// answer.
func appendAll(t *testing.T, ctx context.Context, tg restore.Target, folder string, msgs ...msg) {
	t.Helper()
	if _, err := tg.Index(ctx, folder); err != nil {
		t.Fatalf("Index(%q): %v", folder, err)
	}
	var pend []restore.Pending
	for _, m := range msgs {
		p, err := tg.Append(ctx, folder, m.restoreMessage(), strings.NewReader(string(m.body)))
		if err != nil {
			t.Fatalf("Append to %q: %v", folder, err)
		}
		pend = append(pend, p)
	}
	for i, p := range pend {
		if err := p.Wait(); err != nil {
			t.Fatalf("Append of message %d to %q: %v", i, folder, err)
		}
	}
}

func (r *runner) close(t *testing.T) {
	ctx := r.ctx(t)
	tg, err := r.tg.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listed(t, ctx, tg)
	for i := 1; i <= 2; i++ {
		done := make(chan error, 1)
		go func() { done <- tg.Close() }()
		select {
		case err := <-done:
			if i == 1 && err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Close number %d did not return", i)
		}
	}
}

// readOnly: a session that only lists and indexes (a dry run) creates
// nothing, and sees nothing in a folder that does not exist.
func (r *runner) readOnly(t *testing.T) {
	before := r.tg.Contents(t)
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	if d := tg.Delimiter(); d == "" {
		t.Error("Delimiter() is empty")
	}
	listed(t, ctx, tg)
	for _, f := range []string{"INBOX", name(tg, "Never", "Created")} {
		idx, err := tg.Index(ctx, f)
		if err != nil {
			t.Fatalf("Index(%q): %v", f, err)
		}
		if m := newMsg("absent", false); idx.Has(m.restoreMessage()) {
			t.Errorf("Index(%q) has a message never appended", f)
		}
	}
	if err := tg.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	after := r.tg.Contents(t)
	if describe(before) != describe(after) {
		t.Errorf("a session that only read changed the target:\nbefore: %s\nafter:  %s", describe(before), describe(after))
	}
	for f, ms := range after {
		if f != "INBOX" || len(ms) > 0 {
			t.Errorf("the empty target holds folder %q with %d messages", f, len(ms))
		}
	}
}

func describe(c map[string][]Stored) string {
	var out []string
	for f, ms := range c {
		out = append(out, fmt.Sprintf("%s(%d)", f, len(ms)))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// createFolder: nested and non-ASCII folders, created twice, listed in
// this session and the next.
func (r *runner) createFolder(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	want := []string{name(tg, "Projects"), name(tg, "Projects", "2026"), name(tg, "Projects", "2026", "Q1"), "Entwürfe", "Sent Items", "Ärger & Co"}
	for _, f := range want {
		for i := 0; i < 2; i++ {
			if err := tg.CreateFolder(ctx, f); err != nil {
				t.Fatalf("CreateFolder(%q), time %d: %v", f, i+1, err)
			}
		}
	}
	if err := tg.CreateFolder(ctx, name(tg, "Parents", "Made", "Too")); err != nil {
		t.Fatalf("CreateFolder of a folder with missing parents: %v", err)
	}
	want = append(want, name(tg, "Parents", "Made", "Too"))
	check := func(t *testing.T, tg restore.Target) {
		have := listed(t, ctx, tg)
		for _, f := range want {
			if !slices.Contains(have, f) {
				t.Errorf("Folders does not list %q after CreateFolder (lists %q)", f, have)
			}
		}
	}
	check(t, tg)
	if err := tg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check(t, r.open(t, ctx))
}

// appendMessages: messages with flags, keywords and dates, to INBOX and
// a nested folder, byte for byte.
func (r *runner) appendMessages(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	// As the engine does: a folder the target does not list is created
	// (a local tree has no INBOX until then).
	nested := name(tg, "Work", "2026")
	for _, f := range []string{"INBOX", nested} {
		if err := tg.CreateFolder(ctx, f); err != nil {
			t.Fatalf("CreateFolder(%q): %v", f, err)
		}
	}
	r.appended = map[string][]msg{
		"INBOX": {
			newMsg("seen", false, `\Seen`),
			newMsg("flagged answered", false, `\Flagged`, `\Answered`, `\Seen`),
			newMsg("keywords", false, "$Label1", "Work"),
			newMsg("draft", false, `\Draft`),
			newMsg("no flags", false),
		},
		"Work/2026": {newMsg("nested", false, `\Seen`, "Project"), newMsg("nested 2", false)},
	}
	appendAll(t, ctx, tg, "INBOX", r.appended["INBOX"]...)
	appendAll(t, ctx, tg, nested, r.appended["Work/2026"]...)
	dropped := 0
	if d, ok := tg.(restore.KeywordDropper); ok {
		dropped = d.DroppedKeywords()
	}
	if err := tg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if dropped != 0 {
		t.Errorf("the target dropped %d keywords that are valid atoms", dropped)
	}
	have := r.tg.Contents(t)
	for folder, msgs := range r.appended {
		checkStored(t, folder, have[folder], msgs, r.tg.Flags)
	}
}

// checkStored checks that a folder holds exactly msgs: bytes, dates and,
// when the target keeps them, flags.
func checkStored(t *testing.T, folder string, have []Stored, msgs []msg, flags bool) {
	t.Helper()
	if len(have) != len(msgs) {
		t.Errorf("folder %q holds %d messages, want %d", folder, len(have), len(msgs))
	}
	left := slices.Clone(have)
	for _, m := range msgs {
		i := slices.IndexFunc(left, func(s Stored) bool { return string(s.Body) == string(m.body) })
		if i < 0 {
			t.Errorf("folder %q: message %q is not there byte for byte", folder, subject(m.body))
			continue
		}
		s := left[i]
		left = slices.Delete(left, i, i+1)
		if !s.InternalDate.Equal(m.date) {
			t.Errorf("folder %q: message %q: INTERNALDATE %v, want %v", folder, subject(m.body), s.InternalDate.UTC(), m.date)
		}
		if flags && flagSet(s.Flags) != flagSet(m.flags) {
			t.Errorf("folder %q: message %q: flags %s, want %s", folder, subject(m.body), flagSet(s.Flags), flagSet(m.flags))
		}
	}
	for _, s := range left {
		t.Errorf("folder %q holds a message that was not appended: %d bytes, %q", folder, len(s.Body), subject(s.Body))
	}
}

func subject(body []byte) string {
	for _, l := range strings.Split(string(body), "\r\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
		if l == "" {
			break
		}
	}
	return fmt.Sprintf("%d bytes", len(body))
}

// flagSet renders flags as a sorted, lower-cased set without \Recent.
func flagSet(flags []string) string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return "[" + strings.Join(slices.Compact(out), " ") + "]"
}

// index: a new session's Index knows every message appended, once each.
func (r *runner) index(t *testing.T) {
	if r.appended == nil {
		t.Skip("Append failed")
	}
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	for folder, msgs := range r.appended {
		f := strings.ReplaceAll(folder, "/", tg.Delimiter())
		idx, err := tg.Index(ctx, f)
		if err != nil {
			t.Fatalf("Index(%q): %v", f, err)
		}
		defer closeIndex(t, idx)
		for _, m := range msgs {
			rm := m.restoreMessage()
			if !idx.Has(rm) || !idx.Take(rm) {
				t.Errorf("Index(%q) does not know %q", f, subject(m.body))
			}
			if idx.Take(rm) {
				t.Errorf("Index(%q) knows %q twice; it was appended once", f, subject(m.body))
			}
		}
		if m := newMsg("never appended", false); idx.Has(m.restoreMessage()) {
			t.Errorf("Index(%q) has a message never appended", f)
		}
		// Same Message-ID, another size: another message.
		m := msgs[0]
		other := m.restoreMessage()
		other.Size++
		if idx.Has(other) {
			t.Errorf("Index(%q) takes a message of another size for %q", f, subject(m.body))
		}
		if err := idx.Err(); err != nil {
			t.Errorf("Index(%q).Err() = %v", f, err)
		}
	}
}

func closeIndex(t *testing.T, idx *restore.Index) {
	t.Helper()
	if err := idx.Close(); err != nil {
		t.Errorf("Index.Close: %v", err)
	}
}

// copies: the same message appended twice is there twice (a folder the
// archive holds with two copies is restored with both), and Index counts
// what is there; a message without a Message-ID is known by its SHA-256.
func (r *runner) copies(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	f := "Copies"
	if err := tg.CreateFolder(ctx, f); err != nil {
		t.Fatal(err)
	}
	twice, noID := newMsg("twice", false, `\Seen`), newMsg("no message-id", true)
	appendAll(t, ctx, tg, f, twice, twice, noID)
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	r.copied = []msg{twice, twice, noID}
	r.checkCopies(t)
}

// checkCopies checks a new session's Index of the folder Copies.
func (r *runner) checkCopies(t *testing.T) {
	ctx := r.ctx(t)
	f := "Copies"
	tg := r.open(t, ctx)
	idx, err := tg.Index(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	defer closeIndex(t, idx)
	twice, noID := r.copied[0], r.copied[2]
	copies, want := 2, r.copied
	tw := twice.restoreMessage()
	n := 0
	for idx.Take(tw) {
		n++
	}
	if n != copies {
		t.Errorf("Index(%q) counts %d copies of a message appended twice, want %d", f, n, copies)
	}
	ni := noID.restoreMessage()
	if !idx.Take(ni) || idx.Take(ni) {
		t.Errorf("Index(%q) does not know the message without a Message-ID (by its SHA-256) exactly once", f)
	}
	if err := idx.Err(); err != nil {
		t.Errorf("Index(%q).Err() = %v", f, err)
	}
	checkStored(t, f, r.tg.Contents(t)[f], want, r.tg.Flags)
}

// indexOnDisk: Index and Copies again, with every index on disk (as for
// a folder of a million messages): the same answers, and Close removes
// the index's files.
func (r *runner) indexOnDisk(t *testing.T) {
	if r.appended == nil || r.copied == nil {
		t.Skip("Append or Copies failed")
	}
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	old := restore.IndexMemoryEntries
	restore.IndexMemoryEntries = 0
	t.Cleanup(func() { restore.IndexMemoryEntries = old })
	t.Run("Index", r.index)
	t.Run("Copies", r.checkCopies)
	if left, _ := filepath.Glob(filepath.Join(tmp, "mailvault-tindex-*")); len(left) != 0 {
		t.Errorf("index directories left after Close: %v", left)
	}
	// The indexes were on disk: a new one is there until it is closed.
	ctx := r.ctx(t)
	idx, err := r.open(t, ctx).Index(ctx, "Copies")
	if err != nil {
		t.Fatal(err)
	}
	if made, _ := filepath.Glob(filepath.Join(tmp, "mailvault-tindex-*")); len(made) != 1 {
		t.Errorf("index directories of an index on disk: %v, want one", made)
	}
	closeIndex(t, idx)
}

// indexError: when an index cannot go to disk, Index fails; it does not
// return an index that matches nothing (the engine would append every
// message again).
func (r *runner) indexError(t *testing.T) {
	if r.copied == nil {
		t.Skip("Copies failed")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", file) // no directory can be made in it
	old := restore.IndexMemoryEntries
	restore.IndexMemoryEntries = 0
	t.Cleanup(func() { restore.IndexMemoryEntries = old })
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	idx, err := tg.Index(ctx, "Copies")
	if err == nil {
		idx.Close()
		t.Fatal("Index with no room for the index on disk: no error")
	}
	// The session is still usable.
	restore.IndexMemoryEntries = old
	idx, err = tg.Index(ctx, "Copies")
	if err != nil {
		t.Fatalf("Index after a failed one: %v", err)
	}
	if !idx.Take(r.copied[2].restoreMessage()) {
		t.Error("Index after a failed one does not know the message without a Message-ID")
	}
	closeIndex(t, idx)
}

// missingFolder: an Append to a folder never created either stores the
// message (the folder is made) or is refused with ErrTryCreate; after
// CreateFolder it is stored.
func (r *runner) missingFolder(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	f := name(tg, "Not", "Created")
	m := newMsg("to a missing folder", false, `\Seen`)
	if _, err := tg.Index(ctx, f); err != nil {
		t.Fatal(err)
	}
	p, err := tg.Append(ctx, f, m.restoreMessage(), strings.NewReader(string(m.body)))
	if err == nil {
		err = p.Wait()
	}
	if err != nil {
		if !errors.Is(err, restore.ErrTryCreate) {
			t.Fatalf("Append to a folder not created = %v, want success or restore.ErrTryCreate", err)
		}
		if err := tg.CreateFolder(ctx, f); err != nil {
			t.Fatal(err)
		}
		appendAll(t, ctx, tg, f, m)
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	checkStored(t, "Not/Created", r.tg.Contents(t)["Not/Created"], []msg{m}, r.tg.Flags)
}

var errUnreadable = errors.New("targettest: the archive cannot be read here")

// failingReader yields n bytes of body, then fails.
type failingReader struct {
	r io.Reader
	n int
}

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errUnreadable
	}
	if len(p) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= n
	return n, err
}

// unreadable: an Append whose body fails half-way returns an error (from
// Append or its Pending), and the target goes on: the next message is
// stored. A target that appends atomically stores nothing of the failed
// one.
func (r *runner) unreadable(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	f := "Unreadable"
	if err := tg.CreateFolder(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := tg.Index(ctx, f); err != nil {
		t.Fatal(err)
	}
	bad, good := newMsg("cannot be read", false), newMsg("after it", false, `\Seen`)
	p, err := tg.Append(ctx, f, bad.restoreMessage(), &failingReader{r: strings.NewReader(string(bad.body)), n: len(bad.body) / 2})
	if err == nil {
		err = p.Wait()
	}
	if err == nil {
		t.Fatal("Append of a message whose body cannot be read succeeded")
	}
	appendAll(t, ctx, tg, f, good)
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	have := r.tg.Contents(t)[f]
	if a, ok := tg.(restore.AtomicAppender); ok && a.AppendsAtomically() {
		checkStored(t, f, have, []msg{good}, r.tg.Flags)
		return
	}
	// Another target may keep part of the failed message (an IMAP server
	// may store what it received): the good one must be there.
	found := false
	for _, s := range have {
		found = found || string(s.Body) == string(good.body)
	}
	if !found {
		t.Errorf("folder %q: the message appended after the unreadable one is missing", f)
	}
}

// HostileNames are folder names that must not escape the target or
// collide: each is held under its own name (listed as such, or as
// FolderNamer says) or refused with restore.ErrFolderRefused.
var HostileNames = []string{
	"..", ".", ".hidden", "cur", "new", "tmp", "dovecot-keywords", "CON", "x.mbox", "y.eml",
	"a%2Fb", "100%", `back\slash`, "colon:name", `quote"name`, "star*?", "trailing.", "trailing ",
	"tab\tname", "Ærøskøbing & Co", "emoji 📬", strings.Repeat("long", 80),
}

// hostile: every hostile name, alone and as a child of a folder, is held
// exactly (CreateFolder, Folders, Append, Index) or refused with
// ErrFolderRefused.
func (r *runner) hostile(t *testing.T) {
	ctx := r.ctx(t)
	tg := r.open(t, ctx)
	prepare(t, ctx, tg)
	held := 0
	for i, h := range HostileNames {
		for _, f := range []string{h, name(tg, "Hostile", h)} {
			if err := tg.CreateFolder(ctx, f); err != nil {
				if !errors.Is(err, restore.ErrFolderRefused) {
					t.Errorf("CreateFolder(%q) = %v, want success or an error wrapping restore.ErrFolderRefused", f, err)
				}
				continue
			}
			m := newMsg(fmt.Sprintf("hostile %d", i), false, `\Seen`)
			idx, err := tg.Index(ctx, f)
			if err != nil {
				t.Errorf("Index(%q) of a folder just created: %v", f, err)
				continue
			}
			if idx.Has(m.restoreMessage()) {
				t.Errorf("folder %q: new folder holds a message never appended (another folder's?)", f)
			}
			p, err := tg.Append(ctx, f, m.restoreMessage(), strings.NewReader(string(m.body)))
			if err == nil {
				err = p.Wait()
			}
			if err != nil {
				if !errors.Is(err, restore.ErrFolderRefused) {
					t.Errorf("Append to %q = %v, want success or an error wrapping restore.ErrFolderRefused", f, err)
				}
				continue
			}
			held++
			want := f
			if n, ok := tg.(restore.FolderNamer); ok {
				want, _ = n.StoredAs(f)
			}
			if have := listed(t, ctx, tg); !slices.Contains(have, want) {
				t.Errorf("folder %q: Folders does not list %q after a message was stored in it", f, want)
			}
			idx, err = tg.Index(ctx, f)
			if err != nil || !idx.Take(m.restoreMessage()) || idx.Take(m.restoreMessage()) {
				t.Errorf("folder %q: Index after one Append does not hold that message once (err %v)", f, err)
			}
		}
	}
	if err := tg.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d of %d hostile folder names held, the others refused", held, 2*len(HostileNames))
	if held == 0 {
		t.Error("every hostile name was refused: the check checked nothing")
	}
}
