package restore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// archiveBuilder writes snapshots directly with the formats API.
type archiveBuilder struct {
	t     *testing.T
	a     *formats.Archive
	snaps []*formats.Snapshot
	state map[string][]formats.Message // folder -> present messages
	n     int
	delim string // the folders' delimiter, "/" unless set
	// extra are folders every later snapshot lists besides those with
	// messages (\Noselect structure).
	extra []formats.Folder
}

type msgSpec struct {
	folder, body string
	flags        []string
	date         time.Time
}

func newBuilder(t *testing.T) *archiveBuilder {
	a, err := formats.Create(filepath.Join(t.TempDir(), "vault"))
	if err != nil {
		t.Fatal(err)
	}
	return &archiveBuilder{t: t, a: a, state: map[string][]formats.Message{}}
}

// snapshot commits a snapshot that adds msgs and removes the keys in gone.
func (b *archiveBuilder) snapshot(started time.Time, msgs []msgSpec, gone map[string][]string, special map[string]string) *formats.Snapshot {
	t := b.t
	s := &formats.Snapshot{ID: formats.NewSnapshotID(), Seq: len(b.snaps) + 1, Source: "imap://test", Protocol: "imap", Status: formats.StatusComplete, Started: started, Finished: started}
	if len(b.snaps) > 0 {
		s.Parent = b.snaps[len(b.snaps)-1].ID
	}
	changes := map[string]*formats.Change{}
	ch := func(f string) *formats.Change {
		if changes[f] == nil {
			changes[f] = &formats.Change{Folder: f}
		}
		return changes[f]
	}
	segs := map[string]*formats.SegmentWriter{}
	for _, m := range msgs {
		w := segs[m.folder]
		if w == nil {
			var err error
			if w, err = b.a.NewSegment(formats.FolderDir(m.folder), s.Seq, s.ID); err != nil {
				t.Fatal(err)
			}
			segs[m.folder] = w
		}
		w.BeginRecord(m.date)
		w.Write([]byte(m.body))
		off, size, err := w.EndRecord()
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(m.body))
		b.n++
		mid := ""
		if i := strings.Index(m.body, "Message-ID: "); i >= 0 {
			mid = strings.TrimSpace(strings.SplitN(m.body[i+12:], "\r\n", 2)[0])
		}
		subj := ""
		if i := strings.Index(m.body, "Subject: "); i >= 0 {
			subj = strings.TrimSpace(strings.SplitN(m.body[i+9:], "\r\n", 2)[0])
		}
		fm := formats.Message{Key: fmt.Sprintf("1:%d", b.n), SHA256: hex.EncodeToString(sum[:]), Size: size, InternalDate: m.date,
			Flags: m.flags, MessageID: mid, Subject: subj, From: "Bob <bob@example.com>", Seg: w.Path(), Off: off}
		ch(m.folder).Added = append(ch(m.folder).Added, fm)
		b.state[m.folder] = append(b.state[m.folder], fm)
	}
	for f, w := range segs {
		g, err := w.Commit()
		if err != nil {
			t.Fatal(err)
		}
		s.Segments = append(s.Segments, g)
		_ = f
	}
	for f, keys := range gone {
		ch(f).Gone = append(ch(f).Gone, keys...)
		var kept []formats.Message
		for _, m := range b.state[f] {
			drop := false
			for _, k := range keys {
				if m.Key == k {
					drop = true
				}
			}
			if !drop {
				kept = append(kept, m)
			}
		}
		b.state[f] = kept
	}
	names := []string{}
	for f := range b.state {
		names = append(names, f)
	}
	sort.Strings(names)
	for _, f := range names {
		delim := b.delim
		if delim == "" {
			delim = "/"
		}
		s.Folders = append(s.Folders, formats.Folder{Name: f, Delimiter: delim, SpecialUse: special[f], Dir: formats.FolderDir(f), Status: formats.FolderOK})
		if c := changes[f]; c != nil {
			s.Changes = append(s.Changes, *c)
		}
	}
	s.Folders = append(s.Folders, b.extra...)
	if err := b.a.Commit(s); err != nil {
		t.Fatal(err)
	}
	b.snaps = append(b.snaps, s)
	return s
}

// memTarget is an in-memory restore target with injectable answers.
type memTarget struct {
	delim   string
	special map[string]string
	folders map[string][][]byte
	flags   map[string][][]string
	quota   int // messages in all; 0 = unlimited
	// quotaBytes limits the bytes held in all; 0 = unlimited
	quotaBytes int
	reject     string
	throttle   int             // answer ErrThrottled this many times
	forget     string          // a folder the target "loses" once after creation
	refuse     string          // a folder the target cannot create (ErrFolderRefused)
	lose       map[string]bool // bodies containing the key: answer ErrConnectionLost once; "+" prefix: after storing
	appends    int
	creates    []string
	// Like an IMAP server: a namespace prefix ("INBOX." on Courier); with
	// onlyPrefix, a name outside it is refused (Courier: "Invalid
	// mailbox name").
	prefix     string
	onlyPrefix bool
	// discard: bodies containing it are acknowledged and not kept (GNU
	// Mailutils into a SELECTed folder).
	discard string
	// noKeywords: a message with a keyword is refused with
	// ErrKeywordsRefused, and the folder drops keywords from then on.
	noKeywords bool
	kwDropped  map[string]bool
	// rewrite: stored messages get a header field added and their
	// INTERNALDATE's wall clock in UTC (GNU Mailutils).
	rewrite bool
	dates   map[string][]time.Time
	// canUse: CREATE-SPECIAL-USE is offered; created records the
	// attribute each folder was created with.
	canUse     bool
	created    map[string]string
	structures []string
}

func newMemTarget() *memTarget {
	return &memTarget{delim: "/", special: map[string]string{}, folders: map[string][][]byte{"INBOX": nil}, flags: map[string][][]string{},
		dates: map[string][]time.Time{}, kwDropped: map[string]bool{}, created: map[string]string{}}
}

func (m *memTarget) Delimiter() string { return m.delim }
func (m *memTarget) Namespace() Namespace {
	return Namespace{Prefix: m.prefix, Delimiter: m.delim}
}
func (m *memTarget) CanCreateSpecialUse() bool { return m.canUse }
func (m *memTarget) CreateSpecialUse(ctx context.Context, name, use string) error {
	if err := m.CreateFolder(ctx, name); err != nil {
		return err
	}
	m.created[name] = use
	m.special[name] = use
	return nil
}
func (m *memTarget) CreateStructure(_ context.Context, name string) error {
	m.structures = append(m.structures, name)
	return nil
}
func (m *memTarget) Held(_ context.Context, folder string) (int, error) {
	return len(m.folders[folder]), nil
}
func (m *memTarget) Missing(context.Context, string) (int, bool, error) { return 0, false, nil }
func (m *memTarget) Folders(context.Context) ([]TargetFolder, error) {
	var out []TargetFolder
	for f := range m.folders {
		out = append(out, TargetFolder{Name: f, SpecialUse: m.special[f]})
	}
	for _, f := range m.structures {
		out = append(out, TargetFolder{Name: f, NoSelect: true})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
func (m *memTarget) CreateFolder(_ context.Context, name string) error {
	m.creates = append(m.creates, name)
	if name == m.refuse {
		return fmt.Errorf("%w: name too long", ErrFolderRefused)
	}
	if m.onlyPrefix && name != "INBOX" && !strings.HasPrefix(name, m.prefix) {
		return fmt.Errorf("%w: NO Invalid mailbox name", ErrFolderRefused)
	}
	if _, ok := m.folders[name]; !ok {
		m.folders[name] = nil
	}
	return nil
}
func (m *memTarget) Index(_ context.Context, folder string) (*Index, error) {
	idx := NewIndex()
	for i, b := range m.folders[folder] {
		sum := sha256.Sum256(b)
		mid := ""
		if i := bytes.Index(b, []byte("Message-ID: ")); i >= 0 {
			mid = strings.TrimSpace(strings.SplitN(string(b[i+12:]), "\r\n", 2)[0])
		}
		e := IndexEntry{MessageID: mid, Size: int64(len(b)), SHA256: hex.EncodeToString(sum[:])}
		if dates := m.dates[folder]; i < len(dates) {
			e.InternalDate = dates[i]
			if mid == "" {
				e.BodySHA256, _ = BodyHash(bytes.NewReader(b))
			}
		}
		idx.AddEntry(e)
	}
	return idx, nil
}
func (m *memTarget) total() int {
	n := 0
	for _, msgs := range m.folders {
		n += len(msgs)
	}
	return n
}
func (m *memTarget) bytes() int {
	n := 0
	for _, msgs := range m.folders {
		for _, b := range msgs {
			n += len(b)
		}
	}
	return n
}
func (m *memTarget) Append(_ context.Context, folder string, msg *Message, body io.Reader) (Pending, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return nil, err
	}
	if int64(len(data)) != msg.Size {
		return nil, fmt.Errorf("body of %d bytes, message says %d", len(data), msg.Size)
	}
	m.appends++
	if folder == m.forget {
		m.forget = ""
		delete(m.folders, folder)
		delete(m.dates, folder)
		delete(m.flags, folder)
	}
	for k := range m.lose {
		if bytes.Contains(data, []byte(strings.TrimPrefix(k, "+"))) {
			delete(m.lose, k)
			if strings.HasPrefix(k, "+") {
				m.folders[folder] = append(m.folders[folder], data)
				m.flags[folder] = append(m.flags[folder], msg.Flags)
				m.dates[folder] = append(m.dates[folder], msg.InternalDate)
			}
			return Done{Err: fmt.Errorf("%w: connection reset", ErrConnectionLost)}, nil
		}
	}
	switch {
	case m.throttle > 0:
		m.throttle--
		return Done{Err: fmt.Errorf("%w: slow down", ErrThrottled)}, nil
	case m.quota > 0 && m.total() >= m.quota:
		return Done{Err: fmt.Errorf("%w: Quota exceeded", ErrOverQuota)}, nil
	case m.quotaBytes > 0 && m.bytes()+len(data) > m.quotaBytes:
		return Done{Err: fmt.Errorf("%w: Quota exceeded", ErrOverQuota)}, nil
	case m.reject != "" && bytes.Contains(data, []byte(m.reject)):
		return Done{Err: fmt.Errorf("%w: message too ugly", ErrRejected)}, nil
	}
	if _, ok := m.folders[folder]; !ok {
		return Done{Err: fmt.Errorf("%w: no folder", ErrTryCreate)}, nil
	}
	flags := msg.Flags
	if m.noKeywords {
		flags = nil
		for _, f := range msg.Flags {
			if strings.HasPrefix(f, `\`) {
				flags = append(flags, f)
			} else if !m.kwDropped[folder] {
				m.kwDropped[folder] = true
				return Done{Err: fmt.Errorf("%w: %w: BAD APPEND Unrecognized flag", ErrKeywordsRefused, ErrRejected)}, nil
			}
		}
	}
	if m.discard != "" && bytes.Contains(data, []byte(m.discard)) {
		return Done{}, nil // acknowledged, not kept
	}
	date := msg.InternalDate
	if m.rewrite {
		data = append([]byte(fmt.Sprintf("X-UID: %d\r\nStatus: RO\r\n", m.appends)), data...)
		date = time.Date(date.Year(), date.Month(), date.Day(), date.Hour(), date.Minute(), date.Second(), 0, time.UTC)
	}
	m.folders[folder] = append(m.folders[folder], data)
	m.flags[folder] = append(m.flags[folder], flags)
	m.dates[folder] = append(m.dates[folder], date)
	return Done{}, nil
}
func (m *memTarget) Close() error { return nil }

func restoreAll(t *testing.T, b *archiveBuilder, sel Selection, tg *memTarget, opts Options) (*Report, error) {
	t.Helper()
	selected, err := selectT(t, b.a, sel)
	if err != nil {
		t.Fatal(err)
	}
	opts.Sleep = noSleep
	return Run(context.Background(), b.a, selected, tg, opts)
}

var day = time.Date(2026, 11, 20, 3, 0, 0, 0, time.UTC)

func body(i int, extra string) string {
	return fmt.Sprintf("Message-ID: <m%d@x>\r\nSubject: message %d %s\r\n\r\nFrom the body %d\r\n", i, i, extra, i)
}

func TestRestoreIdempotentAndMapped(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 6; i++ {
		msgs = append(msgs, msgSpec{"INBOX", body(i, ""), []string{`\Seen`, "$Label1"}, day})
	}
	msgs = append(msgs, msgSpec{"Sent", body(10, ""), nil, day}, msgSpec{"Sent/2024", body(11, ""), nil, day})
	dup := "Subject: no id\r\n\r\nsame bytes twice\r\n"
	msgs = append(msgs, msgSpec{"Work", dup, nil, day}, msgSpec{"Work", dup, nil, day})
	b.snapshot(day, msgs, nil, map[string]string{"Sent": `\Sent`})

	tg := newMemTarget()
	tg.folders["Gesendete Elemente"] = nil
	tg.special["Gesendete Elemente"] = `\Sent`
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stored != 10 || len(tg.folders["INBOX"]) != 6 || len(tg.folders["Gesendete Elemente"]) != 1 || len(tg.folders["Work"]) != 2 {
		t.Fatalf("first restore: stored %d, folders %v", rep.Stored, keys(tg.folders))
	}
	if len(tg.folders["Gesendete Elemente/2024"]) != 1 {
		t.Errorf("child of the mapped Sent folder not below it: %v", keys(tg.folders))
	}
	if strings.Join(tg.flags["INBOX"][0], " ") != `\Seen $Label1` {
		t.Errorf("flags %v not kept", tg.flags["INBOX"][0])
	}
	// The same restore again adds nothing, duplicates included.
	rep, err = restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 0 || rep.Present != 10 {
		t.Fatalf("second restore: stored %d present %d err %v; want 0, 10", rep.Stored, rep.Present, err)
	}
}

func TestRestoreQuotaResume(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 20; i++ {
		msgs = append(msgs, msgSpec{"INBOX", body(i, ""), nil, day})
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	tg.quota = 7
	_, err := restoreAll(t, b, Selection{}, tg, Options{Window: 3})
	if !errors.Is(err, ErrOverQuota) || !strings.Contains(err.Error(), "7 messages were restored") || !strings.Contains(err.Error(), "run the same command again") {
		t.Fatalf("over quota: %v", err)
	}
	tg.quota = 0
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 13 || rep.Present != 7 || len(tg.folders["INBOX"]) != 20 {
		t.Fatalf("resume: stored %d present %d total %d err %v; want 13, 7, 20", rep.Stored, rep.Present, len(tg.folders["INBOX"]), err)
	}
}

func TestRestoreAnswers(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 5; i++ {
		msgs = append(msgs, msgSpec{"Projects", body(i, map[bool]string{true: "UGLY"}[i == 2]), nil, day})
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	tg.reject, tg.throttle, tg.forget = "UGLY", 2, "Projects"
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if !errors.Is(err, ErrPartial) || rep.Rejected != 1 || rep.Stored != 4 || len(rep.Folders[0].Rejected) != 1 {
		t.Fatalf("answers: err %v, rejected %d stored %d", err, rep.Rejected, rep.Stored)
	}
	if len(tg.creates) < 2 {
		t.Errorf("TRYCREATE did not create the folder again: creates %v", tg.creates)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	b := newBuilder(t)
	b.snapshot(day, []msgSpec{{"INBOX", body(1, ""), nil, day}, {"New/Folder", body(2, ""), nil, day}}, nil, nil)
	tg := newMemTarget()
	tg.folders["INBOX"] = [][]byte{[]byte(body(1, ""))}
	rep, err := restoreAll(t, b, Selection{}, tg, Options{DryRun: true})
	if err != nil || tg.appends != 0 || len(tg.creates) != 0 || rep.Present != 1 || rep.Messages != 2 {
		t.Fatalf("dry run: err %v appends %d creates %v present %d messages %d", err, tg.appends, tg.creates, rep.Present, rep.Messages)
	}
	if !rep.Folders[1].Create || rep.Folders[1].Target != "New/Folder" {
		t.Errorf("plan does not show the folder to create: %+v", rep.Folders[1])
	}
}

func TestSelection(t *testing.T) {
	b := newBuilder(t)
	s1 := b.snapshot(day, []msgSpec{
		{"INBOX", body(1, "invoice"), nil, day.AddDate(0, -2, 0)},
		{"INBOX", body(2, "hello"), nil, day},
		{"Work", body(3, "INVOICE 2"), nil, day},
	}, nil, nil)
	b.snapshot(day.AddDate(0, 0, 1), []msgSpec{{"INBOX", body(4, "later"), nil, day.AddDate(0, 0, 1)}}, map[string][]string{"INBOX": {"1:1"}, "Work": {"1:3"}}, nil)
	count := func(sel Selection) int {
		s, err := selectT(t, b.a, sel)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := s.Count()
		return n
	}
	tests := []struct {
		name string
		sel  Selection
		want int
	}{
		{"latest", Selection{}, 2},
		{"first snapshot", Selection{Snapshot: s1.ID[:4]}, 3},
		{"as of the first day", Selection{AsOf: day.Add(time.Hour)}, 3},
		{"deleted since the first", Selection{DeletedSince: s1.ID}, 2},
		{"subject, any case", Selection{Snapshot: s1.ID, Subject: "invoice"}, 2},
		{"folder", Selection{Snapshot: s1.ID, Folders: []string{"Work"}}, 1},
		{"exclude", Selection{Snapshot: s1.ID, Exclude: []string{"W*"}}, 2},
		{"since", Selection{Snapshot: s1.ID, Since: day.AddDate(0, 0, -1)}, 2},
		{"before", Selection{Snapshot: s1.ID, Before: day.AddDate(0, 0, -1)}, 1},
		{"from", Selection{Snapshot: s1.ID, From: "BOB@"}, 3},
		{"message-id without brackets", Selection{Snapshot: s1.ID, MessageID: "m2@x"}, 1},
	}
	for _, tt := range tests {
		if got := count(tt.sel); got != tt.want {
			t.Errorf("%s: %d messages, want %d", tt.name, got, tt.want)
		}
	}
	if _, err := selectT(t, b.a, Selection{Snapshot: "ffffffff"}); !errors.Is(err, ErrSelection) {
		t.Errorf("unknown snapshot: %v", err)
	}
	if _, err := selectT(t, b.a, Selection{AsOf: day.AddDate(-1, 0, 0)}); !errors.Is(err, ErrSelection) {
		t.Errorf("--as-of before any snapshot: %v", err)
	}
	// --into keeps the structure below the new folder.
	tg := newMemTarget()
	if _, err := restoreAll(t, b, Selection{DeletedSince: s1.ID}, tg, Options{Map: MapOptions{Into: "Restored 2026-11-21"}}); err != nil {
		t.Fatal(err)
	}
	if len(tg.folders["Restored 2026-11-21/INBOX"]) != 1 || len(tg.folders["Restored 2026-11-21/Work"]) != 1 {
		t.Errorf("--into: folders %v", keys(tg.folders))
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestRestoreConnectionLost(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for i := 0; i < 6; i++ {
		msgs = append(msgs, msgSpec{"INBOX", body(i, fmt.Sprintf("tag%d", i)), nil, day})
	}
	b.snapshot(day, msgs, nil, nil)
	tg := newMemTarget()
	// The answer to tag1 is lost before the message was stored, the one to
	// tag3 after: both end up stored exactly once.
	tg.lose = map[string]bool{"tag1": true, "+tag3": true}
	rep, err := restoreAll(t, b, Selection{}, tg, Options{})
	if err != nil || rep.Stored != 6 || len(tg.folders["INBOX"]) != 6 {
		t.Fatalf("lost answers: err %v stored %d, target holds %d; want 6 and 6", err, rep.Stored, len(tg.folders["INBOX"]))
	}
}

// lockedTarget is one "connection" to a shared memTarget.
type lockedTarget struct {
	mu *sync.Mutex
	m  *memTarget
}

func (l *lockedTarget) Delimiter() string { return l.m.delim }
func (l *lockedTarget) Folders(ctx context.Context) ([]TargetFolder, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Folders(ctx)
}
func (l *lockedTarget) CreateFolder(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.CreateFolder(ctx, name)
}
func (l *lockedTarget) Index(ctx context.Context, folder string) (*Index, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Index(ctx, folder)
}
func (l *lockedTarget) Append(ctx context.Context, folder string, msg *Message, body io.Reader) (Pending, error) {
	data, err := io.ReadAll(body) // read outside the lock, as a connection would
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m.Append(ctx, folder, msg, bytes.NewReader(data))
}
func (l *lockedTarget) Close() error { return nil }

// TestRestoreParallel: folders are restored over several connections at
// once, each folder over one, in archive order; a refused connection
// leaves its share to the others; over quota stops every connection, and
// the same restore again completes without duplicates.
func TestRestoreParallel(t *testing.T) {
	b := newBuilder(t)
	var msgs []msgSpec
	for f := 0; f < 6; f++ {
		for i := 0; i < 10+f; i++ {
			msgs = append(msgs, msgSpec{fmt.Sprintf("F%d", f), body(100*f+i, ""), nil, day})
		}
	}
	b.snapshot(day, msgs, nil, nil)
	selected, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	tg := newMemTarget()
	tg.quota = 30
	var mu, conn sync.Mutex
	opened := 0
	open := func(context.Context) (Target, error) {
		mu.Lock()
		defer mu.Unlock()
		opened++
		if opened > 2 {
			return nil, errors.New("too many connections")
		}
		return &lockedTarget{mu: &conn, m: tg}, nil
	}
	first := &lockedTarget{mu: &conn, m: tg}
	_, err = Run(context.Background(), b.a, selected, first, Options{Connections: 4, Open: open, Sleep: noSleep})
	if !errors.Is(err, ErrOverQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if tg.total() != 30 {
		t.Fatalf("%d messages stored before the quota, want 30", tg.total())
	}
	tg.quota = 0
	opened = 0
	rep, err := Run(context.Background(), b.a, selected, first, Options{Connections: 4, Open: open, Sleep: noSleep})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Stored+rep.Present != 75 || tg.total() != 75 || rep.Present != 30 {
		t.Fatalf("stored %d present %d total %d; want 45, 30, 75", rep.Stored, rep.Present, tg.total())
	}
	for f := 0; f < 6; f++ {
		got := tg.folders[fmt.Sprintf("F%d", f)]
		if len(got) != 10+f {
			t.Errorf("F%d holds %d messages, want %d", f, len(got), 10+f)
		}
		for i := 1; i < len(got); i++ {
			if bytes.Compare(got[i-1], got[i]) >= 0 {
				t.Errorf("F%d: messages not in archive order", f)
				break
			}
		}
	}
}

func noSleep(context.Context, time.Duration) error { return nil }

// selectT is Select with the selection closed when the test ends.
func selectT(t *testing.T, a *formats.Archive, sel Selection) (*Selected, error) {
	t.Helper()
	s, err := Select(a, sel)
	if s != nil {
		t.Cleanup(func() { s.Close() })
	}
	return s, err
}
