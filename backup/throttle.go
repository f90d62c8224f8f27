package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// ThrottleError is returned (wrapped) by a Source whose server asked the
// client to slow down: Microsoft's "Request is throttled. Suggested Backoff
// Time: N milliseconds", an [UNAVAILABLE] or [LIMIT] answer. The engine
// waits Wait (DefaultBackoff when the server named no time), opens a new
// connection and resumes the folder where it stopped, for at most
// Options.ThrottleWait after the first such answer of the run.
type ThrottleError struct {
	Wait time.Duration // what the server suggested; 0: it named no time
	Err  error
}

func (e *ThrottleError) Error() string { return e.Err.Error() }
func (e *ThrottleError) Unwrap() error { return e.Err }

// RetryAfter is the wait the server suggested (0: none named).
func (e *ThrottleError) RetryAfter() time.Duration { return e.Wait }

// ErrDailyLimit is wrapped when the run stops because a daily limit is
// reached: the server's (Gmail's "Account exceeded command or bandwidth
// limits") or Options.MaxBytesPerDay. What was fetched is committed as a
// partial snapshot, and the next run continues where this one stopped.
var ErrDailyLimit = errors.New("backup: daily limit reached")

// DefaultBackoff is the wait after a throttling answer that names no time.
const DefaultBackoff = 30 * time.Second

// DefaultThrottleWait is Options.ThrottleWait when not set.
const DefaultThrottleWait = 15 * time.Minute

// Retry calls f until it returns nil or an error that is not a
// ThrottleError, waiting between calls as each throttling answer asks
// (DefaultBackoff when it names no time), for at most bound in all (0:
// DefaultThrottleWait). ctx cuts a wait short. It is for work outside Run
// (the first connection, before the archive is created).
func Retry(ctx context.Context, bound time.Duration, log *slog.Logger, f func() error) error {
	if bound <= 0 {
		bound = DefaultThrottleWait
	}
	deadline := time.Now().Add(bound)
	for {
		err := f()
		var te *ThrottleError
		if err == nil || !errors.As(err, &te) || ctx.Err() != nil {
			return err
		}
		d := te.Wait
		if d <= 0 {
			d = DefaultBackoff
		}
		if time.Now().Add(d).After(deadline) {
			return fmt.Errorf("the server asks to wait %v before going on (%w), longer than --throttle-wait (%v) allows; run again later", d.Round(time.Second), te, bound)
		}
		if log != nil {
			log.Warn("the server asks to slow down; waiting before going on", "seconds", d.Seconds(), "said", te.Err.Error())
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// sleep waits d, or less when ctx ends first (then it returns ctx.Err()).
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// backoff waits as a throttling answer asks before the operation is tried
// again. It returns an error (the folder fails) when the wait would end
// later than Options.ThrottleWait after the run's first throttling answer,
// and ctx.Err() when the run is interrupted while it waits.
func (r *run) backoff(folder string, te *ThrottleError) error {
	d := te.Wait
	if d <= 0 {
		d = DefaultBackoff
	}
	now := r.opts.now()
	r.mu.Lock()
	if r.throttledSince.IsZero() {
		r.throttledSince = now
	}
	deadline := r.throttledSince.Add(r.opts.ThrottleWait)
	r.mu.Unlock()
	if now.Add(d).After(deadline) {
		return fmt.Errorf("the server asks to wait %v before going on (%w), longer than --throttle-wait (%v) allows; run again later", d.Round(time.Second), te, r.opts.ThrottleWait)
	}
	r.opts.Log.Warn("the server asks to slow down; waiting before going on", "folder", folder, "seconds", d.Seconds(), "said", te.Err.Error())
	if err := r.opts.sleep(r.ctx, d); err != nil {
		return err
	}
	r.count(func(res *Result) { res.Throttled++ })
	return nil
}

// throttled handles a server's request to slow down held by *err: the
// connection is dropped, the run waits as asked (backoff) and throttled
// reports true: the caller goes on over a new connection. When it may not
// wait, *err says why and it reports false.
func (w *worker) throttled(folder string, err *error) bool {
	var te *ThrottleError
	if !errors.As(*err, &te) || w.r.ctx.Err() != nil || errors.Is(*err, ErrStorage) {
		return false
	}
	w.closeSource()
	if berr := w.r.backoff(folder, te); berr != nil {
		*err = berr
		return false
	}
	return true
}

// start connects and lists the folders, waiting as the server asks when
// it throttles.
func (r *run) start() ([]FolderInfo, error) {
	for {
		var infos []FolderInfo
		err := r.connect()
		if err == nil {
			r.readNamespace()
			if infos, err = r.src.Folders(r.ctx); err == nil {
				return infos, nil
			}
			err = fmt.Errorf("list folders: %w", err)
		}
		var te *ThrottleError
		if !errors.As(err, &te) || r.ctx.Err() != nil {
			return nil, err
		}
		r.closeSource()
		if berr := r.backoff("", te); berr != nil {
			return nil, berr
		}
	}
}

// readNamespace records the source's personal namespace, for restores (a
// backup does without it).
func (r *run) readNamespace() {
	if ns, ok := r.src.(Namespacer); ok {
		if prefix, delim, err := ns.PersonalNamespace(r.ctx); err == nil {
			r.snap.Namespace = &formats.Namespace{Prefix: prefix, Delimiter: delim}
		} else {
			r.opts.Log.Warn("could not read the server's namespace", "err", err)
		}
	}
}

// storeCharged stores m (see store) and corrects the daily budget's
// charge of m.Size (the server's announced size) to the bytes read.
func (w *worker) storeCharged(f *fetcher, m *Message) error {
	if w.r.opts.MaxBytesPerDay <= 0 {
		return w.store(f, m)
	}
	cr := &countingReader{r: m.Body}
	m.Body = cr
	err := w.store(f, m)
	w.r.settleCharge(m.Size, cr.n)
	return err
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// charge counts a message about to be fetched against the daily byte
// budget (Options.MaxBytesPerDay); it returns an error wrapping
// ErrDailyLimit, and counts nothing, when the message would go over it.
func (r *run) charge(size int64) error {
	if r.opts.MaxBytesPerDay <= 0 {
		return nil
	}
	size = max(size, 0)
	if n := r.fetched.Add(size); r.budgetUsed+n > r.opts.MaxBytesPerDay {
		r.fetched.Add(-size)
		return fmt.Errorf("%w: --max-bytes-per-day %d reached (%d bytes fetched in the last 24 hours)",
			ErrDailyLimit, r.opts.MaxBytesPerDay, r.budgetUsed+r.fetched.Load())
	}
	return nil
}

// settleCharge corrects the charge of a message once its size is known:
// charged is what charge counted, size what was read.
func (r *run) settleCharge(charged, size int64) {
	if r.opts.MaxBytesPerDay > 0 && size != charged {
		r.fetched.Add(size - max(charged, 0))
	}
}

// stopAtLimit records the daily limit that ends the run (the first one
// wins): the workers start nothing new and the run commits what it has.
func (r *run) stopAtLimit(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limit == nil {
		r.limit = err
	}
}

// bytesSince sums the sizes of the messages added by the committed
// snapshots that finished after since (the newest first, stopping at the
// first older one): what earlier runs fetched within the budget's window.
func bytesSince(a *formats.Archive, since time.Time) (int64, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return 0, err
	}
	var n int64
	for i := len(files) - 1; i >= 0; i-- {
		s, err := a.ReadSnapshot(files[i])
		if err != nil {
			return 0, err
		}
		if s.Finished.Before(since) {
			break
		}
		for _, c := range s.Changes {
			for _, m := range c.Added {
				n += m.Size
			}
		}
	}
	return n, nil
}
