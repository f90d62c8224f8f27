package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// suggested is a target error carrying the wait the server suggested.
type suggested struct{ wait time.Duration }

func (s suggested) Error() string {
	return fmt.Sprintf("Suggested Backoff Time: %d milliseconds", s.wait.Milliseconds())
}
func (s suggested) RetryAfter() time.Duration { return s.wait }

// slowTarget answers its first appends with a request to slow down that
// names a wait (as Microsoft 365 does), then behaves; lost makes the
// answer a lost connection instead (the server closed it after saying
// so).
type slowTarget struct {
	*memTarget
	mu    sync.Mutex
	left  int
	wait  time.Duration
	lost  bool
	slept []time.Duration
}

func (s *slowTarget) Append(ctx context.Context, folder string, msg *Message, body io.Reader) (Pending, error) {
	s.mu.Lock()
	throttle := s.left > 0
	if throttle {
		s.left--
	}
	s.mu.Unlock()
	if !throttle {
		return s.memTarget.Append(ctx, folder, msg, body)
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return nil, err
	}
	if s.lost {
		return Done{Err: fmt.Errorf("%w: %w", ErrConnectionLost, suggested{s.wait})}, nil
	}
	return Done{Err: fmt.Errorf("%w: %w", ErrThrottled, suggested{s.wait})}, nil
}

// TestRestoreThrottleSuggested: the wait a server suggests is the one
// waited, for an answer and for a connection closed after one, and every
// message ends up there once.
func TestRestoreThrottleSuggested(t *testing.T) {
	for _, lost := range []bool{false, true} {
		t.Run(fmt.Sprintf("lost=%v", lost), func(t *testing.T) {
			b := newBuilder(t)
			var msgs []msgSpec
			for i := 0; i < 5; i++ {
				msgs = append(msgs, msgSpec{"INBOX", body(i, ""), nil, day})
			}
			b.snapshot(day, msgs, nil, nil)
			tg := &slowTarget{memTarget: newMemTarget(), left: 1, wait: 7 * time.Second, lost: lost}
			selected, err := selectT(t, b.a, Selection{})
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Run(context.Background(), b.a, selected, tg, Options{Sleep: func(_ context.Context, d time.Duration) error { tg.slept = append(tg.slept, d); return nil }})
			if err != nil || rep.Stored != 5 || len(tg.folders["INBOX"]) != 5 {
				t.Fatalf("Run: %v, stored %d, target holds %d; want 5, 5", err, rep.Stored, len(tg.folders["INBOX"]))
			}
			if len(tg.slept) != 1 || tg.slept[0] != 7*time.Second {
				t.Errorf("waited %v, want the 7s the server suggested", tg.slept)
			}
		})
	}
}

// TestRestoreThrottleSuggestedInterrupted: Ctrl-C during the hour a server
// asked to wait ends the restore at once.
func TestRestoreThrottleSuggestedInterrupted(t *testing.T) {
	b := newBuilder(t)
	b.snapshot(day, []msgSpec{{"INBOX", body(1, ""), nil, day}, {"INBOX", body(2, ""), nil, day}}, nil, nil)
	tg := &slowTarget{memTarget: newMemTarget(), left: 1, wait: time.Hour}
	selected, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(200*time.Millisecond, cancel)
	start := time.Now()
	rep, err := Run(ctx, b.a, selected, tg, Options{})
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Run took %v after the interruption", d)
	}
	if !errors.Is(err, context.Canceled) || rep.Status != StatusStopped {
		t.Fatalf("Run = %v (%s), want context.Canceled, stopped", err, rep.Status)
	}
}
