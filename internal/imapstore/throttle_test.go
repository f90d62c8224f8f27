package imapstore

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/connerr"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/restore"
)

func no(code imap.ResponseCode, text string) error {
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
}

func TestThrottleHint(t *testing.T) {
	tests := []struct {
		err  error
		hint hint
		wait time.Duration
	}{
		// Microsoft 365 / Outlook.com, as tagged NO and BAD.
		{no("", "Request is throttled. Suggested Backoff Time: 299609 milliseconds"), hintBackoff, 299609 * time.Millisecond},
		{&imap.Error{Type: imap.StatusResponseTypeBad, Text: "Request is throttled. Suggested Backoff Time: 178755 milliseconds"}, hintBackoff, 178755 * time.Millisecond},
		{fmt.Errorf("fetch: %w", no("", "request is throttled. suggested backoff time: 5 seconds")), hintBackoff, 5 * time.Second},
		// RFC 5530 codes.
		{no(imap.ResponseCodeUnavailable, "Server busy, try later"), hintBackoff, 0},
		{no(imap.ResponseCodeLimit, "Too many commands"), hintBackoff, 0},
		{no("THROTTLED", "slow down"), hintBackoff, 0},
		{no(imap.ResponseCodeLimit, "Message too large"), hintNone, 0},
		{no(imap.ResponseCodeLimit, "Mailbox quota exceeded"), hintNone, 0},
		// Gmail's bandwidth cap, as a NO and as the BYE that closed the
		// connection.
		{no(imap.ResponseCodeOverQuota, "Account exceeded command or bandwidth limits."), hintDaily, 0},
		{fmt.Errorf("fetch: %w", &imapclient.ByeError{Code: imap.ResponseCodeOverQuota, Text: "Account exceeded command or bandwidth limits."}), hintDaily, 0},
		{&imapclient.ByeError{Text: "Account has exceeded the Gmail bandwidth limit"}, hintDaily, 0},
		// A BYE that asks to slow down.
		{&imapclient.ByeError{Code: imap.ResponseCodeUnavailable, Text: "Too many connections"}, hintBackoff, 0},
		// Not throttling.
		{no(imap.ResponseCodeOverQuota, "Quota exceeded"), hintNone, 0},
		{no(imap.ResponseCodeTryCreate, "Mailbox doesn't exist"), hintNone, 0},
		{&imapclient.ByeError{Text: "Connection closed. 14"}, hintNone, 0},
		{&imapclient.ByeError{Text: "Logging out"}, hintNone, 0},
		{io.ErrUnexpectedEOF, hintNone, 0},
		{errors.New("Request is throttled"), hintNone, 0}, // not a server answer
	}
	for _, tt := range tests {
		h, wait, _ := throttleHint(tt.err)
		if h != tt.hint || wait != tt.wait {
			t.Errorf("throttleHint(%v) = %v, %v; want %v, %v", tt.err, h, wait, tt.hint, tt.wait)
		}
	}
}

func testStore() *Store { return &Store{wd: &mailconn.WatchdogConn{}} }

// TestConnErrThrottle: what the engine gets for each kind of answer.
func TestConnErrThrottle(t *testing.T) {
	for _, tt := range []struct {
		err                   error
		throttle, conn, daily bool
		wait                  time.Duration
	}{
		{no("", "Request is throttled. Suggested Backoff Time: 250 milliseconds"), true, false, false, 250 * time.Millisecond},
		{&imapclient.ByeError{Code: imap.ResponseCodeUnavailable, Text: "try later"}, true, true, false, 0},
		{&imapclient.ByeError{Code: imap.ResponseCodeOverQuota, Text: "Account exceeded command or bandwidth limits."}, false, false, true, 0},
		{&imapclient.ByeError{Text: "Connection closed. 14"}, false, true, false, 0},
		{no("", "Mailbox does not exist"), false, false, false, 0},
	} {
		err := testStore().connErr(t.Context(), "fetch", tt.err)
		var te *backup.ThrottleError
		var ce *connerr.Error
		if errors.As(err, &te) != tt.throttle || errors.As(err, &ce) != tt.conn || errors.Is(err, backup.ErrDailyLimit) != tt.daily {
			t.Errorf("connErr(%v) = %v (%T): throttle %v conn %v daily %v, want %v %v %v", tt.err, err, err,
				errors.As(err, &te), errors.As(err, &ce), errors.Is(err, backup.ErrDailyLimit), tt.throttle, tt.conn, tt.daily)
			continue
		}
		if te != nil && te.Wait != tt.wait {
			t.Errorf("connErr(%v): wait %v, want %v", tt.err, te.Wait, tt.wait)
		}
	}
}

// TestClassifyAppendThrottle: APPEND answers asking to slow down carry
// the wait the server suggested to the restore engine.
func TestClassifyAppendThrottle(t *testing.T) {
	err := classifyAppend(no("", "Request is throttled. Suggested Backoff Time: 299609 milliseconds"))
	var ra interface{ RetryAfter() time.Duration }
	if !errors.Is(err, restore.ErrThrottled) || !errors.As(err, &ra) || ra.RetryAfter() != 299609*time.Millisecond {
		t.Errorf("classifyAppend(throttled) = %v, want ErrThrottled with the suggested wait", err)
	}
	if err := classifyAppend(no(imap.ResponseCodeUnavailable, "later")); !errors.Is(err, restore.ErrThrottled) {
		t.Errorf("classifyAppend(UNAVAILABLE) = %v, want ErrThrottled", err)
	}
	if err := classifyAppend(no(imap.ResponseCodeOverQuota, "Account exceeded command or bandwidth limits.")); !errors.Is(err, backup.ErrDailyLimit) {
		t.Errorf("classifyAppend(bandwidth) = %v, want ErrDailyLimit", err)
	}
	if err := classifyAppend(no(imap.ResponseCodeOverQuota, "Quota exceeded")); !errors.Is(err, restore.ErrOverQuota) {
		t.Errorf("classifyAppend(quota) = %v, want ErrOverQuota", err)
	}
	if err := classifyAppend(no("", "Maximum size of appendable message has been exceeded")); !errors.Is(err, restore.ErrRejected) {
		t.Errorf("classifyAppend(too big) = %v, want ErrRejected", err)
	}
}
