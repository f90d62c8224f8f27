// Package sourcetest is the conformance suite of backup.Source, which
// every adapter runs from its own tests (internal/imapstore against the
// in-memory server and Dovecot, internal/pop3store against
// internal/pop3test and Dovecot, internal/localsrc on mbox files and
// Maildirs), like restic's backend test suite: one contract, checked the
// same way for all.
//
// The adapter's test fills a new store with the suite's Mailbox and hands
// Run a Dialer of sources reading it. Run then checks, each in a subtest:
// the folder listing; EXAMINE's status, a folder that does not exist, and
// that a second Examine replaces the first; listing keys and flags (unique,
// stable across calls and sessions, in the order the messages were
// stored); fetching byte-exact bodies with their INTERNALDATE, of all keys,
// of a subset in another order and of keys the folder does not have; the
// Body rules (fn runs in the calling goroutine, an error from fn ends the
// Fetch with that error and the source can be closed); a context cancelled
// before each call and during a Fetch; Close, twice; the optional
// interfaces (ChangeLister, ExpungeChecker) where the source has them; and
// finally that the store is unchanged (the source is read-only).
package sourcetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/backup"
)

// Store is a store filled with the suite's mailbox, as an adapter's test
// hands it to Run.
type Store struct {
	// Dial opens a new source reading the store. Run dials many times,
	// one source at a time, and closes each.
	Dial backup.Dialer
	// Folders is the mailbox as the store holds it: the folders given to
	// the adapter's seed function, with the messages changed where the
	// store keeps flags inside them (an mbox file's Status header). Run
	// checks that the source serves exactly these bytes.
	Folders []Folder
	// State returns a digest of everything the store holds (bytes, flags,
	// dates). Run calls it before and after its checks: a source must not
	// change the store.
	State func(t *testing.T) string
	// NoFlags says the source reports no flags (POP3): List must report
	// none.
	NoFlags bool
	// NoSizes says Message.Size is not the exact size (it is only a hint
	// in the contract); otherwise a Size other than 0 must be exact.
	NoSizes bool
}

// callTimeout bounds every call of the suite: a source that hangs fails.
const callTimeout = time.Minute

// Run checks the source of s against the contract of backup.Source.
func Run(t *testing.T, s Store) {
	t.Helper()
	if s.Dial == nil || s.State == nil || len(s.Folders) == 0 {
		t.Fatal("sourcetest: Store needs Dial, State and Folders")
	}
	before := s.State(t)
	r := &runner{s: s}
	t.Run("Folders", r.folders)
	t.Run("Examine", r.examine)
	t.Run("ExamineReplaces", r.examineReplaces)
	t.Run("List", r.list)
	t.Run("Fetch", r.fetch)
	t.Run("FetchSubset", r.fetchSubset)
	t.Run("FetchUnknownKeys", r.fetchUnknown)
	t.Run("FetchError", r.fetchError)
	t.Run("CancelBefore", r.cancelBefore)
	t.Run("CancelDuringFetch", r.cancelDuringFetch)
	t.Run("Close", r.close)
	t.Run("ChangeLister", r.changeLister)
	t.Run("SinceLister", r.sinceLister)
	t.Run("ExpungeChecker", r.expungeChecker)
	t.Run("ReadOnly", func(t *testing.T) {
		if after := s.State(t); after != before {
			t.Errorf("the store changed while sources read it:\nbefore: %s\nafter:  %s", before, after)
		}
	})
}

type runner struct{ s Store }

// ctx returns a context for one subtest's calls.
func (r *runner) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// open dials a source that t's cleanup closes.
func (r *runner) open(t *testing.T, ctx context.Context) backup.Source {
	t.Helper()
	src, err := r.s.Dial(ctx)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { src.Close() })
	return src
}

// nonEmpty returns the seeded folders that hold messages.
func (r *runner) nonEmpty() []Folder {
	var out []Folder
	for _, f := range r.s.Folders {
		if len(f.Messages) > 0 {
			out = append(out, f)
		}
	}
	return out
}

// slash turns a listed name into the suite's form, levels joined by "/".
func slash(fi backup.FolderInfo) string {
	if fi.Delimiter == "" || fi.Delimiter == "/" {
		return fi.Name
	}
	return strings.ReplaceAll(fi.Name, fi.Delimiter, "/")
}

// sourceName returns the name the source lists for the seeded folder name.
func sourceName(t *testing.T, ctx context.Context, src backup.Source, name string) string {
	t.Helper()
	infos, err := src.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	for _, fi := range infos {
		if slash(fi) == name {
			return fi.Name
		}
	}
	t.Fatalf("Folders did not list %q", name)
	return ""
}

func (r *runner) folders(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	infos, err := src.Folders(ctx)
	if err != nil {
		t.Fatalf("Folders: %v", err)
	}
	seen := map[string]backup.FolderInfo{}
	for _, fi := range infos {
		n := slash(fi)
		if _, dup := seen[n]; dup {
			t.Errorf("Folders lists %q twice", fi.Name)
		}
		seen[n] = fi
	}
	want := map[string]int{}
	for _, f := range r.s.Folders {
		want[f.Name] = len(f.Messages)
		fi, ok := seen[f.Name]
		switch {
		case !ok:
			t.Errorf("Folders did not list %q (listed: %v)", f.Name, names(infos))
		case fi.NoSelect || fi.Err != nil:
			t.Errorf("folder %q listed as not selectable (NoSelect %v, Err %v)", f.Name, fi.NoSelect, fi.Err)
		case fi.Status != nil && fi.Status.Messages != uint32(len(f.Messages)):
			t.Errorf("folder %q: listed status says %d messages, it holds %d", f.Name, fi.Status.Messages, len(f.Messages))
		}
	}
	for n, fi := range seen {
		if _, ok := want[n]; !ok && !fi.NoSelect {
			// A store may have folders of its own, but never with messages
			// the suite did not put there.
			if fi.Status != nil && fi.Status.Messages > 0 {
				t.Errorf("Folders lists %q with %d messages, which the store was not given", fi.Name, fi.Status.Messages)
			}
		}
	}
}

func names(infos []backup.FolderInfo) []string {
	var out []string
	for _, fi := range infos {
		out = append(out, fi.Name)
	}
	return out
}

func (r *runner) examine(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	for _, f := range r.s.Folders {
		name := sourceName(t, ctx, src, f.Name)
		st, err := src.Examine(ctx, name)
		if err != nil {
			t.Fatalf("Examine(%q): %v", name, err)
		}
		if st.Messages != uint32(len(f.Messages)) {
			t.Errorf("Examine(%q).Messages = %d, want %d", name, st.Messages, len(f.Messages))
		}
		again, err := src.Examine(ctx, name)
		if err != nil {
			t.Fatalf("Examine(%q) again: %v", name, err)
		}
		if again.UIDValidity != st.UIDValidity || again.Messages != st.Messages {
			t.Errorf("Examine(%q) twice = %+v, then %+v; want the same", name, st, again)
		}
		if st.UIDValidity != 0 && len(f.Messages) > 0 && st.UIDNext <= uint32(len(f.Messages)) {
			t.Errorf("Examine(%q).UIDNext = %d with %d messages", name, st.UIDNext, len(f.Messages))
		}
	}
	// A folder that does not exist is an error, and the source goes on.
	if _, err := src.Examine(ctx, "No Such Folder 7f3a"); err == nil {
		t.Error("Examine of a folder that does not exist: no error")
	}
	inbox := r.s.Folders[0]
	st, err := src.Examine(ctx, sourceName(t, ctx, src, inbox.Name))
	if err != nil || st.Messages != uint32(len(inbox.Messages)) {
		t.Errorf("Examine(%q) after a failed Examine = %+v, %v; want %d messages", inbox.Name, st, err, len(inbox.Messages))
	}
}

// examineReplaces: List and Fetch work on the folder examined last.
func (r *runner) examineReplaces(t *testing.T) {
	full := r.nonEmpty()
	if len(full) < 2 {
		t.Skip("the mailbox has one folder with messages")
	}
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	a, b := full[0], full[1]
	if _, err := src.Examine(ctx, sourceName(t, ctx, src, a.Name)); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Examine(ctx, sourceName(t, ctx, src, b.Name)); err != nil {
		t.Fatal(err)
	}
	keys, _ := listAll(t, ctx, src)
	if len(keys) != len(b.Messages) {
		t.Fatalf("after Examine(%q) then Examine(%q), List gave %d keys; want %q's %d", a.Name, b.Name, len(keys), b.Name, len(b.Messages))
	}
	got := fetchAll(t, ctx, src, keys)
	checkBodies(t, b, keys, got, r.s.NoSizes)
}

// listAll lists the examined folder.
func listAll(t *testing.T, ctx context.Context, src backup.Source) (keys []string, flags [][]string) {
	t.Helper()
	err := src.List(ctx, func(key string, fl []string) error {
		keys = append(keys, key)
		flags = append(flags, slices.Clone(fl))
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return keys, flags
}

// fetched is one message a Fetch delivered.
type fetched struct {
	key  string
	body []byte
	date time.Time
	size int64
}

// fetchAll fetches keys, reading each body to its end, and checks that fn
// runs in the calling goroutine and that each key comes once.
func fetchAll(t *testing.T, ctx context.Context, src backup.Source, keys []string) []fetched {
	t.Helper()
	var out []fetched
	caller := goid()
	seen := map[string]bool{}
	err := src.Fetch(ctx, keys, func(m *backup.Message) error {
		if g := goid(); g != caller {
			t.Errorf("Fetch called fn in goroutine %s, not in the caller's %s", g, caller)
		}
		if seen[m.Key] {
			t.Errorf("Fetch delivered %s twice", m.Key)
		}
		seen[m.Key] = true
		body, err := io.ReadAll(m.Body)
		if err != nil {
			return fmt.Errorf("read body of %s: %w", m.Key, err)
		}
		if n, err := m.Body.Read(make([]byte, 8)); n != 0 || err != io.EOF {
			t.Errorf("%s: Read after the end = %d, %v; want 0, io.EOF", m.Key, n, err)
		}
		out = append(out, fetched{key: m.Key, body: body, date: m.InternalDate, size: m.Size})
		return nil
	})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return out
}

// goid returns the id of the calling goroutine, from its stack header
// ("goroutine 42 [running]:").
func goid() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	f := strings.Fields(string(buf))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:8])
}

// checkBodies checks that got holds, for each of keys, one of f's
// messages, byte for byte with its INTERNALDATE, and every message of f
// once (identical messages count as many times as they are there).
func checkBodies(t *testing.T, f Folder, keys []string, got []fetched, noSizes bool) map[string]Message {
	t.Helper()
	if len(got) != len(keys) {
		t.Errorf("folder %q: Fetch delivered %d of %d keys", f.Name, len(got), len(keys))
	}
	asked := map[string]bool{}
	for _, k := range keys {
		asked[k] = true
	}
	left := map[string][]Message{}
	for _, m := range f.Messages {
		left[string(m.Body)] = append(left[string(m.Body)], m)
	}
	byKey := map[string]Message{}
	for _, g := range got {
		if !asked[g.key] {
			t.Errorf("folder %q: Fetch delivered key %q, which was not asked for", f.Name, g.key)
		}
		ms := left[string(g.body)]
		if len(ms) == 0 {
			t.Errorf("folder %q: key %s: %d bytes (sha %s) that are not one of the folder's messages, or one delivered once too often", f.Name, g.key, len(g.body), digest(g.body))
			continue
		}
		m := ms[0]
		left[string(g.body)] = ms[1:]
		byKey[g.key] = m
		if !g.date.Equal(m.InternalDate) {
			t.Errorf("folder %q: key %s: InternalDate %v, want %v", f.Name, g.key, g.date.UTC(), m.InternalDate)
		}
		if !noSizes && g.size != 0 && g.size != int64(len(g.body)) {
			t.Errorf("folder %q: key %s: Size %d, body has %d bytes", f.Name, g.key, g.size, len(g.body))
		}
	}
	return byKey
}

func (r *runner) list(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	first := map[string][]string{}
	for _, f := range r.s.Folders {
		name := sourceName(t, ctx, src, f.Name)
		if _, err := src.Examine(ctx, name); err != nil {
			t.Fatalf("Examine(%q): %v", name, err)
		}
		keys, flags := listAll(t, ctx, src)
		first[f.Name] = keys
		if len(keys) != len(f.Messages) {
			t.Errorf("folder %q: List gave %d keys, the folder holds %d", f.Name, len(keys), len(f.Messages))
		}
		uniq := map[string]bool{}
		for _, k := range keys {
			if k == "" || uniq[k] {
				t.Errorf("folder %q: List gave key %q twice or empty", f.Name, k)
			}
			uniq[k] = true
		}
		again, _ := listAll(t, ctx, src)
		if !slices.Equal(keys, again) {
			t.Errorf("folder %q: List gave %v, then %v; want the same keys in the same order", f.Name, keys, again)
		}
		if len(keys) == 0 {
			continue
		}
		got := fetchAll(t, ctx, src, keys)
		byKey := checkBodies(t, f, keys, got, r.s.NoSizes)
		// Order: the order the messages were stored in.
		for i, k := range keys {
			if m, ok := byKey[k]; ok && i < len(f.Messages) && !bytes.Equal(m.Body, f.Messages[i].Body) {
				t.Errorf("folder %q: List's message %d (key %s) is the store's message %q, want %q: not in the order stored", f.Name, i, k, subject(m.Body), subject(f.Messages[i].Body))
				break
			}
		}
		for i, k := range keys {
			m, ok := byKey[k]
			if !ok {
				continue
			}
			if r.s.NoFlags {
				if len(flags[i]) != 0 {
					t.Errorf("folder %q: key %s: List reported flags %v from a source that has none", f.Name, k, flags[i])
				}
				continue
			}
			if g, w := flagSet(flags[i]), flagSet(m.Flags); g != w {
				t.Errorf("folder %q: key %s (%q): List flags %s, want %s", f.Name, k, subject(m.Body), g, w)
			}
		}
	}
	// The same keys in a new session.
	src2 := r.open(t, ctx)
	for _, f := range r.s.Folders {
		if _, err := src2.Examine(ctx, sourceName(t, ctx, src2, f.Name)); err != nil {
			t.Fatal(err)
		}
		keys, _ := listAll(t, ctx, src2)
		if !slices.Equal(keys, first[f.Name]) {
			t.Errorf("folder %q: a new session lists %v, the first listed %v", f.Name, keys, first[f.Name])
		}
	}
}

// subject returns a message's Subject, to name it in failures.
func subject(body []byte) string {
	for _, l := range strings.Split(string(body), "\r\n") {
		if s, ok := strings.CutPrefix(l, "Subject: "); ok {
			return s
		}
		if l == "" {
			break
		}
	}
	return digest(body)
}

// flagSet renders flags as a sorted, lower-cased set without \Recent:
// servers differ in case (go-imap's memory server lower-cases keywords)
// and order, and \Recent is the session's, not the message's.
func flagSet(flags []string) string {
	var out []string
	for _, f := range flags {
		if strings.EqualFold(f, `\Recent`) {
			continue
		}
		out = append(out, strings.ToLower(f))
	}
	slices.Sort(out)
	return "[" + strings.Join(slices.Compact(out), " ") + "]"
}

// examineList examines the seeded folder f and lists its keys.
func examineList(t *testing.T, ctx context.Context, src backup.Source, f Folder) []string {
	t.Helper()
	if _, err := src.Examine(ctx, sourceName(t, ctx, src, f.Name)); err != nil {
		t.Fatalf("Examine(%q): %v", f.Name, err)
	}
	keys, _ := listAll(t, ctx, src)
	if len(keys) != len(f.Messages) {
		t.Fatalf("folder %q: List gave %d keys, want %d", f.Name, len(keys), len(f.Messages))
	}
	return keys
}

func (r *runner) fetch(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	for _, f := range r.nonEmpty() {
		keys := examineList(t, ctx, src, f)
		got := fetchAll(t, ctx, src, keys)
		checkBodies(t, f, keys, got, r.s.NoSizes)
	}
	// Fetch of no keys delivers nothing.
	err := src.Fetch(ctx, nil, func(m *backup.Message) error {
		t.Errorf("Fetch(no keys) delivered %s", m.Key)
		return nil
	})
	if err != nil {
		t.Errorf("Fetch(no keys): %v", err)
	}
}

// fetchSubset: every other key, in reverse order.
func (r *runner) fetchSubset(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	f := r.s.Folders[0]
	keys := examineList(t, ctx, src, f)
	var subset []string
	for i := len(keys) - 1; i >= 0; i -= 2 {
		subset = append(subset, keys[i])
	}
	got := fetchAll(t, ctx, src, subset)
	want := Folder{Name: f.Name}
	all := checkBodies(t, f, keys, fetchAll(t, ctx, src, keys), r.s.NoSizes)
	for _, k := range subset {
		want.Messages = append(want.Messages, all[k])
	}
	byKey := checkBodies(t, want, subset, got, r.s.NoSizes)
	for k, m := range byKey {
		if !bytes.Equal(m.Body, all[k].Body) {
			t.Errorf("key %s: a subset Fetch delivered %q, a full Fetch %q", k, subject(m.Body), subject(all[k].Body))
		}
	}
}

// fetchUnknown: keys the folder does not have are not delivered, and
// are no error.
func (r *runner) fetchUnknown(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	f := r.s.Folders[0]
	keys := examineList(t, ctx, src, f)
	bogus := []string{"no-such-key", "0:0", "4294967295:4294967295", keys[0] + "x", "sha256:0000", ""}
	err := src.Fetch(ctx, bogus, func(m *backup.Message) error {
		t.Errorf("Fetch of keys the folder does not have delivered %q", m.Key)
		io.Copy(io.Discard, m.Body)
		return nil
	})
	if err != nil {
		t.Errorf("Fetch of keys the folder does not have: %v", err)
	}
	// Known and unknown keys mixed: the known ones come.
	got := fetchAll(t, ctx, src, append([]string{"no-such-key"}, keys[0], "0:0"))
	if len(got) != 1 || got[0].key != keys[0] {
		t.Errorf("Fetch of one known key among unknown ones delivered %d messages", len(got))
	}
}

var errStop = errors.New("sourcetest: fn stops")

// fetchError: an error from fn, half-way through a body, ends the Fetch
// with that error; fn is not called again; the source closes; the store
// still serves a new source.
func (r *runner) fetchError(t *testing.T) {
	ctx := r.ctx(t)
	f := r.s.Folders[0]
	for _, at := range []int{0, len(f.Messages) - 1} {
		t.Run(fmt.Sprintf("at message %d", at), func(t *testing.T) {
			src, err := r.s.Dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			keys := examineList(t, ctx, src, f)
			calls := 0
			err = src.Fetch(ctx, keys, func(m *backup.Message) error {
				calls++
				if calls == at+1 {
					io.CopyN(io.Discard, m.Body, 10)
					return errStop
				}
				if calls > at+1 {
					t.Errorf("fn called again (%s) after it returned an error", m.Key)
				}
				_, err := io.Copy(io.Discard, m.Body)
				return err
			})
			if !errors.Is(err, errStop) {
				t.Errorf("Fetch = %v, want fn's error", err)
			}
			closed := make(chan struct{})
			go func() {
				src.Close()
				close(closed)
			}()
			select {
			case <-closed:
			case <-time.After(30 * time.Second):
				t.Fatal("Close after a Fetch that fn ended did not return")
			}
			src2 := r.open(t, ctx)
			keys2 := examineList(t, ctx, src2, f)
			checkBodies(t, f, keys2, fetchAll(t, ctx, src2, keys2), r.s.NoSizes)
		})
	}
}

// cancelBefore: every method called with a context already done returns
// promptly with an error that wraps the context's.
func (r *runner) cancelBefore(t *testing.T) {
	f := r.s.Folders[0]
	for _, c := range []struct {
		name string
		done func() context.Context
		want error
	}{
		{"cancelled", func() context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx
		}, context.Canceled},
		{"deadline", func() context.Context {
			ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
			t.Cleanup(cancel)
			return ctx
		}, context.DeadlineExceeded},
	} {
		for _, call := range []string{"Folders", "Examine", "List", "Fetch"} {
			t.Run(c.name+"/"+call, func(t *testing.T) {
				ctx := r.ctx(t)
				src := r.open(t, ctx)
				keys := examineList(t, ctx, src, f)
				name := sourceName(t, ctx, src, f.Name)
				done := c.done()
				start := time.Now()
				var err error
				switch call {
				case "Folders":
					_, err = src.Folders(done)
				case "Examine":
					_, err = src.Examine(done, name)
				case "List":
					err = src.List(done, func(string, []string) error { return nil })
				case "Fetch":
					err = src.Fetch(done, keys, func(m *backup.Message) error {
						_, err := io.Copy(io.Discard, m.Body)
						return err
					})
				}
				if !errors.Is(err, c.want) {
					t.Errorf("%s with a context %s = %v, want an error wrapping %v", call, c.name, err, c.want)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("%s with a context %s took %v", call, c.name, d)
				}
			})
		}
	}
}

// cancelDuringFetch: the context is cancelled while fn handles the first
// message; Fetch returns promptly with the context's error.
func (r *runner) cancelDuringFetch(t *testing.T) {
	f := r.s.Folders[0]
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	keys := examineList(t, ctx, src, f)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	n := 0
	start := time.Now()
	err := src.Fetch(cctx, keys, func(m *backup.Message) error {
		n++
		if n == 1 {
			cancel()
		}
		_, err := io.Copy(io.Discard, m.Body)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Fetch cancelled during its first message = %v after %d of %d messages, want an error wrapping context.Canceled", err, n, len(keys))
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Fetch took %v to return after it was cancelled", d)
	}
}

// close: Close returns promptly, also a second time, and ends nothing
// but the session (a new source works).
func (r *runner) close(t *testing.T) {
	ctx := r.ctx(t)
	src, err := r.s.Dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	examineList(t, ctx, src, r.s.Folders[0])
	for i := 1; i <= 2; i++ {
		done := make(chan error, 1)
		go func() { done <- src.Close() }()
		select {
		case err := <-done:
			if i == 1 && err != nil {
				t.Errorf("Close: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Close number %d did not return", i)
		}
	}
	src2 := r.open(t, ctx)
	examineList(t, ctx, src2, r.s.Folders[0])
}

// changeLister checks a source that implements backup.ChangeLister: where
// it can (ok), it lists the same keys as List, and the flags of the
// messages it says changed are List's.
func (r *runner) changeLister(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	cl, ok := src.(backup.ChangeLister)
	if !ok {
		t.Skip("the source has no ChangeLister")
	}
	for _, f := range r.nonEmpty() {
		st, err := src.Examine(ctx, sourceName(t, ctx, src, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		keys, flags := listAll(t, ctx, src)
		if ok, err := cl.ListChanged(ctx, 0, func(string, []string, bool) error { return nil }); ok || err != nil {
			t.Errorf("folder %q: ListChanged(modseq 0) = %v, %v; want false: nothing to compare with", f.Name, ok, err)
		}
		for _, modseq := range []uint64{1, st.HighestModSeq} {
			if modseq == 0 {
				continue
			}
			var got []string
			changed := 0
			ok, err := cl.ListChanged(ctx, modseq, func(key string, fl []string, ch bool) error {
				got = append(got, key)
				if ch {
					changed++
					if i := slices.Index(keys, key); i >= 0 && flagSet(fl) != flagSet(flags[i]) {
						t.Errorf("folder %q: ListChanged(%d) gives %s flags %v, List %v", f.Name, modseq, key, fl, flags[i])
					}
				}
				return nil
			})
			if err != nil {
				t.Fatalf("folder %q: ListChanged(%d): %v", f.Name, modseq, err)
			}
			if !ok {
				continue // cannot now: List is used
			}
			if !slices.Equal(got, keys) {
				t.Errorf("folder %q: ListChanged(%d) keys %v, List's %v", f.Name, modseq, got, keys)
			}
			if modseq == st.HighestModSeq && changed != 0 {
				t.Errorf("folder %q: ListChanged(HIGHESTMODSEQ %d) says %d messages changed since; want none", f.Name, modseq, changed)
			}
		}
	}
}

// sinceLister checks a source that implements backup.SinceLister: with
// the folder's own status and count it lists nothing (nothing new, no
// flag changed); with a count one short it cannot say (an archived
// message left); from UID 1 with none archived it lists every key, as
// List does, all new.
func (r *runner) sinceLister(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	sl, ok := src.(backup.SinceLister)
	if !ok {
		t.Skip("the source has no SinceLister")
	}
	for _, f := range r.nonEmpty() {
		st, err := src.Examine(ctx, sourceName(t, ctx, src, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		keys, _ := listAll(t, ctx, src)
		if st.HighestModSeq == 0 {
			if ok, err := sl.ListSince(ctx, st, int64(len(keys)), func(string, []string, bool) error { return nil }); ok || err != nil {
				t.Errorf("folder %q: ListSince without HIGHESTMODSEQ = %v, %v; want false", f.Name, ok, err)
			}
			continue
		}
		var got []string
		ok, err := sl.ListSince(ctx, st, int64(len(keys)), func(key string, _ []string, _ bool) error {
			got = append(got, key)
			return nil
		})
		if err != nil || !ok || len(got) != 0 {
			t.Errorf("folder %q: ListSince(its own status, %d) = %v, %v, listed %v; want true and nothing", f.Name, len(keys), ok, err, got)
		}
		if ok, err := sl.ListSince(ctx, st, int64(len(keys))-1, func(string, []string, bool) error { return nil }); ok || err != nil {
			t.Errorf("folder %q: ListSince with one message fewer archived = %v, %v; want false: it cannot tell which left", f.Name, ok, err)
		}
		from := st
		from.UIDNext = 1
		got = got[:0]
		ok, err = sl.ListSince(ctx, from, 0, func(key string, _ []string, _ bool) error {
			got = append(got, key)
			return nil
		})
		if err != nil || !ok {
			t.Fatalf("folder %q: ListSince(UIDNEXT 1, none archived) = %v, %v; want true", f.Name, ok, err)
		}
		if !slices.Equal(got, keys) {
			t.Errorf("folder %q: ListSince(UIDNEXT 1) keys %v, List's %v", f.Name, got, keys)
		}
	}
}

// expungeChecker checks a source that implements backup.ExpungeChecker:
// no key of the folder is expunged; keys it never had are.
func (r *runner) expungeChecker(t *testing.T) {
	ctx := r.ctx(t)
	src := r.open(t, ctx)
	ec, ok := src.(backup.ExpungeChecker)
	if !ok {
		t.Skip("the source has no ExpungeChecker")
	}
	f := r.s.Folders[0]
	keys := examineList(t, ctx, src, f)
	gone, err := ec.Expunged(ctx, keys)
	if err != nil || len(gone) != 0 {
		t.Errorf("Expunged(every key of %q) = %v, %v; want none", f.Name, gone, err)
	}
	bogus := []string{"4294967295:4294967295", "1:4294967295"}
	gone, err = ec.Expunged(ctx, append(slices.Clone(bogus), keys[0]))
	if err != nil {
		t.Fatalf("Expunged: %v", err)
	}
	if slices.Contains(gone, keys[0]) || len(gone) != len(bogus) {
		t.Errorf("Expunged(%v and %s) = %v; want the keys the folder never had", bogus, keys[0], gone)
	}
}
