package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/connerr"
)

// scriptedSource is a memSource whose Fetch fails as scripted: the i-th
// Fetch call (from 1) fails with failAt[i] after delivering afterN[i]
// messages.
type scriptedSource struct {
	*memSource
	mu     sync.Mutex
	calls  int
	failAt map[int]error
	afterN map[int]int
}

func (s *scriptedSource) Fetch(ctx context.Context, keys []string, fn func(*Message) error) error {
	s.mu.Lock()
	s.calls++
	err, n := s.failAt[s.calls], s.afterN[s.calls]
	s.mu.Unlock()
	if err == nil {
		return s.memSource.Fetch(ctx, keys, fn)
	}
	delivered := 0
	ferr := s.memSource.Fetch(ctx, keys, func(m *Message) error {
		if delivered >= n {
			return errStop
		}
		delivered++
		return fn(m)
	})
	if ferr != nil && !errors.Is(ferr, errStop) {
		return ferr
	}
	return err
}

var errStop = errors.New("stop")

// sleeps records the waits a run asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func throttleSource() *memSource {
	src := newMemSource()
	in := src.folder("INBOX", 7)
	for i := 0; i < 6; i++ {
		in.add(fmt.Sprintf("Subject: %d\r\n\r\n%s\r\n", i, strings.Repeat("x", 1000)))
	}
	w := src.folder("Work", 8)
	for i := 0; i < 3; i++ {
		w.add(fmt.Sprintf("Subject: w%d\r\n\r\n%s\r\n", i, strings.Repeat("y", 1000)))
	}
	return src
}

func runWith(ctx context.Context, a *formats.Archive, src Source, opts Options) (*Result, error) {
	opts.Source, opts.Protocol = "mem://test", "imap"
	opts.Dial = func(context.Context) (Source, error) { return src, nil }
	return Run(ctx, a, opts)
}

// TestThrottleBackoffHonoured: a fetch the server throttles (Microsoft's
// "Suggested Backoff Time") is resumed after the wait it asked for, and the
// run completes with every message once.
func TestThrottleBackoffHonoured(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	src := &scriptedSource{memSource: mem,
		failAt: map[int]error{1: &ThrottleError{Wait: 2500 * time.Millisecond, Err: &connerr.Error{Err: errors.New("BAD Request is throttled. Suggested Backoff Time: 2500 milliseconds")}}},
		afterN: map[int]int{1: 2}}
	var sl sleeps
	res, err := runWith(context.Background(), a, src, Options{Sleep: sl.sleep})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(sl.d) != 1 || sl.d[0] != 2500*time.Millisecond {
		t.Errorf("waited %v, want the 2.5 s the server asked for", sl.d)
	}
	if res.Throttled != 1 || res.Added != 9 || res.Snapshot.Status != formats.StatusComplete {
		t.Errorf("Result: throttled %d, added %d, status %s; want 1, 9, complete", res.Throttled, res.Added, res.Snapshot.Status)
	}
	checkArchive(t, a, mem)
}

// TestThrottleDefaultWait: a throttling answer without a time waits
// DefaultBackoff.
func TestThrottleDefaultWait(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	src := &scriptedSource{memSource: mem, failAt: map[int]error{1: &ThrottleError{Err: errors.New("NO [UNAVAILABLE] try later")}}}
	var sl sleeps
	if _, err := runWith(context.Background(), a, src, Options{Sleep: sl.sleep}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(sl.d) != 1 || sl.d[0] != DefaultBackoff {
		t.Errorf("waited %v, want %v", sl.d, DefaultBackoff)
	}
	checkArchive(t, a, mem)
}

// TestThrottleWaitBound: a wait longer than ThrottleWait allows is not
// done: the folder fails (partial snapshot), the others are backed up.
func TestThrottleWaitBound(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	src := &scriptedSource{memSource: mem, failAt: map[int]error{1: &ThrottleError{Wait: time.Hour, Err: errors.New("throttled")}}}
	var sl sleeps
	res, err := runWith(context.Background(), a, src, Options{Sleep: sl.sleep, ThrottleWait: 10 * time.Minute})
	if !errors.Is(err, ErrPartial) || !strings.Contains(err.Error(), "throttle-wait") {
		t.Fatalf("Run = %v, want a partial run naming --throttle-wait", err)
	}
	if len(sl.d) != 0 {
		t.Errorf("waited %v, want no wait", sl.d)
	}
	if len(res.Failed) != 1 || res.Added != 3 {
		t.Errorf("failed %v, added %d; want one folder failed and the other's 3 messages", res.Failed, res.Added)
	}
}

// TestThrottleInterrupted: Ctrl-C during a backoff ends the run at once.
func TestThrottleInterrupted(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	src := &scriptedSource{memSource: mem, failAt: map[int]error{1: &ThrottleError{Wait: 10 * time.Minute, Err: errors.New("throttled")}}, afterN: map[int]int{1: 1}}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	res, err := runWith(ctx, a, src, Options{ThrottleWait: time.Hour})
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v after the interruption", d)
	}
	if !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Run = %v, want ErrInterrupted", err)
	}
	if res.Snapshot == nil || res.Snapshot.Status != formats.StatusPartial {
		t.Errorf("snapshot %+v, want a partial one", res.Snapshot)
	}
}

// TestDailyBudget: --max-bytes-per-day stops the run cleanly (partial
// snapshot, ErrDailyLimit), a run the same day fetches nothing, and the
// run of the next night continues where it stopped, each message once.
func TestDailyBudget(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	size := int64(len(mem.folders["INBOX"].msgs[0].body))
	now := time.Date(2026, 12, 1, 3, 0, 0, 0, time.UTC)
	opts := Options{MaxBytesPerDay: 5*size + size/2, Connections: 1, Now: func() time.Time { return now }}

	res, err := runWith(context.Background(), a, mem, opts)
	if !errors.Is(err, ErrPartial) || !errors.Is(err, ErrDailyLimit) || !strings.Contains(err.Error(), "next run continues") {
		t.Fatalf("first run = %v, want a partial run stopped by the daily limit", err)
	}
	if res.Added != 5 || res.Snapshot.Status != formats.StatusPartial {
		t.Fatalf("first run added %d (%s), want 5 (partial)", res.Added, res.Snapshot.Status)
	}

	// 12 hours later what is left of the budget is less than a message.
	now = now.Add(12 * time.Hour)
	res, err = runWith(context.Background(), a, mem, opts)
	if !errors.Is(err, ErrDailyLimit) || res.Added != 0 {
		t.Fatalf("run 12 hours later = %v (added %d); want it to stop before fetching", err, res.Added)
	}
	// With the whole budget spent, a run does not even start.
	if res, err := runWith(context.Background(), a, mem, Options{MaxBytesPerDay: 5 * size, Now: opts.Now}); !errors.Is(err, ErrDailyLimit) || res != nil {
		t.Fatalf("run with the budget spent = %v, %v; want ErrDailyLimit and no snapshot", res, err)
	}

	now = now.Add(13 * time.Hour) // 25 hours after the first run
	res, err = runWith(context.Background(), a, mem, opts)
	if err != nil {
		t.Fatalf("next night: %v", err)
	}
	if res.Added != 4 {
		t.Errorf("next night added %d, want the 4 left", res.Added)
	}
	checkArchive(t, a, mem)
}

// TestDailyLimitFromServer: the server's own daily cap (Gmail's BYE
// [OVERQUOTA]) stops the run cleanly too; folders not reached keep their
// archived state.
func TestDailyLimitFromServer(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	mustRun(t, a, mem)
	mem.folders["INBOX"].add("Subject: new\r\n\r\nnew\r\n")
	mem.folders["Work"].add("Subject: new w\r\n\r\nnew\r\n")
	src := &scriptedSource{memSource: mem, failAt: map[int]error{1: fmt.Errorf("fetch: %w: the server says \"Account exceeded command or bandwidth limits.\"", ErrDailyLimit)}}
	res, err := runWith(context.Background(), a, src, Options{Connections: 1})
	if !errors.Is(err, ErrPartial) || !errors.Is(err, ErrDailyLimit) {
		t.Fatalf("Run = %v, want partial, daily limit", err)
	}
	if res.Added != 0 || len(res.Failed) != 2 {
		t.Errorf("added %d, failed %v; want nothing added, both folders failed or not reached", res.Added, res.Failed)
	}
	if _, err := runWith(context.Background(), a, mem, Options{}); err != nil {
		t.Fatalf("next run: %v", err)
	}
	checkArchive(t, a, mem)
}

// TestThrottledStart: a server that throttles the login or the folder
// list is waited for, not given up on.
func TestThrottledStart(t *testing.T) {
	a := newArchive(t)
	mem := throttleSource()
	dials := 0
	var sl sleeps
	opts := Options{Source: "mem://test", Protocol: "imap", Sleep: sl.sleep, Dial: func(context.Context) (Source, error) {
		dials++
		if dials == 1 {
			return nil, &ThrottleError{Wait: time.Second, Err: errors.New("login: NO [UNAVAILABLE] Suggested Backoff Time: 1000 milliseconds")}
		}
		return mem, nil
	}}
	if _, err := Run(context.Background(), a, opts); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if len(sl.d) != 1 || sl.d[0] != time.Second {
		t.Errorf("waited %v, want 1s", sl.d)
	}
	checkArchive(t, a, mem)
}
