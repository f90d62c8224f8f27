package imapstore

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
)

// Throttling and quota answers, as providers send them (docs/SERVERS.md
// has the sources):
//
//	T5 NO Request is throttled. Suggested Backoff Time: 299609 milliseconds   Microsoft 365, Outlook.com
//	T5 BAD Request is throttled. Suggested Backoff Time: 178755 milliseconds  (then * BYE Connection closed.)
//	T5 NO [UNAVAILABLE] …                                                      RFC 5530: try again later
//	T5 NO [LIMIT] …                                                            RFC 5530: a limit was hit
//	T5 OK Success [THROTTLED]                                                  Gmail (the command worked)
//	* BYE [OVERQUOTA] Account exceeded command or bandwidth limits.           Gmail's daily bandwidth cap
//	T5 NO [OVERQUOTA] Account exceeded command or bandwidth limits.

// suggestedBackoff matches Microsoft's hint.
var suggestedBackoff = regexp.MustCompile(`(?i)suggested\s+backoff\s+time:?\s*(\d+)\s*(milliseconds|ms|seconds|s)\b`)

// hint is what a server's answer asks of the client.
type hint int

const (
	hintNone    hint = iota
	hintBackoff      // slow down: wait, then go on
	hintDaily        // stop for today (a bandwidth or command cap)
)

// throttleHint reads a server answer (a tagged NO or BAD, or the BYE that
// closed the connection) for a request to slow down or to stop for the
// day, and the wait it suggests (0: none named).
func throttleHint(err error) (hint, time.Duration, string) {
	var code imap.ResponseCode
	var text string
	var ie *imap.Error
	var bye *imapclient.ByeError
	switch {
	case errors.As(err, &ie):
		code, text = ie.Code, ie.Text
	case errors.As(err, &bye):
		code, text = bye.Code, bye.Text
	default:
		return hintNone, 0, ""
	}
	lower := strings.ToLower(text)
	if strings.Contains(lower, "bandwidth limit") || strings.Contains(lower, "exceeded command or bandwidth") {
		return hintDaily, 0, text
	}
	if m := suggestedBackoff.FindStringSubmatch(text); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		unit := time.Millisecond
		if u := strings.ToLower(m[2]); u == "seconds" || u == "s" {
			unit = time.Second
		}
		return hintBackoff, time.Duration(min(n, int64(24*time.Hour/unit))) * unit, text
	}
	switch code {
	case imap.ResponseCodeUnavailable, "THROTTLED":
		return hintBackoff, 0, text
	case imap.ResponseCodeLimit:
		if !strings.Contains(lower, "quota") && !strings.Contains(lower, "size") && !strings.Contains(lower, "too big") && !strings.Contains(lower, "too large") {
			return hintBackoff, 0, text
		}
	}
	if strings.Contains(lower, "throttl") || strings.Contains(lower, "too many requests") {
		return hintBackoff, 0, text
	}
	return hintNone, 0, ""
}

// throttleErr turns a server's request to slow down into a
// backup.ThrottleError wrapping cause (the error of the operation what),
// and its daily cap into an error wrapping backup.ErrDailyLimit; nil when
// err is neither.
func throttleErr(what string, err, cause error) error {
	switch h, wait, text := throttleHint(err); h {
	case hintDaily:
		return fmt.Errorf("%s: %w: the server says %q; run again in 24 hours to continue", what, backup.ErrDailyLimit, strings.TrimSpace(text))
	case hintBackoff:
		return &backup.ThrottleError{Wait: wait, Err: cause}
	}
	return nil
}
