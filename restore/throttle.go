package restore

import (
	"errors"
	"time"
)

// retryAfter is implemented by target errors that carry the wait the
// server suggested (Microsoft's "Suggested Backoff Time: N milliseconds").
type retryAfter interface{ RetryAfter() time.Duration }

// throttleDelay is the wait before the n-th retry (from 1) after the
// target asked to slow down: what it suggested, else 2^n seconds.
func throttleDelay(err error, n int) time.Duration {
	var ra retryAfter
	if errors.As(err, &ra) && ra.RetryAfter() > 0 {
		return ra.RetryAfter()
	}
	return time.Duration(1<<n) * time.Second
}

// throttledLoss reports whether a lost connection came with a request to
// slow down (a server that closes the connection after throttling).
func throttledLoss(err error) bool {
	var ra retryAfter
	return errors.Is(err, ErrConnectionLost) && errors.As(err, &ra)
}
