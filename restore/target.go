package restore

import (
	"context"
	"errors"
	"io"
	"strconv"
	"time"
)

// Target is where messages are restored to. The engine uses it from one
// goroutine.
type Target interface {
	// Delimiter is the target's hierarchy delimiter, e.g. "/" or ".".
	Delimiter() string
	// Folders lists the folders that exist, with their special-use
	// attribute (`\Sent`, …) where the target reports one.
	Folders(ctx context.Context) ([]TargetFolder, error)
	// CreateFolder creates a folder, and any missing parent. Creating a
	// folder that exists is not an error.
	CreateFolder(ctx context.Context, name string) error
	// Index returns what a folder already holds, to skip messages a
	// previous or interrupted restore put there. A folder that does not
	// exist has an empty index.
	Index(ctx context.Context, folder string) (*Index, error)
	// Append stores one message. body yields exactly m.Size bytes and must
	// be consumed before Append returns. The returned Pending reports the
	// target's answer; a target may keep several Appends in flight. An
	// error from Append itself means the target is unusable.
	Append(ctx context.Context, folder string, m *Message, body io.Reader) (Pending, error)
	// Close waits for what is in flight and ends the session.
	Close() error
}

// Pending is an Append in flight.
type Pending interface {
	// Wait returns the target's answer: nil when the message is stored.
	// Errors wrap ErrOverQuota, ErrTryCreate or ErrRejected when the
	// target said so.
	Wait() error
}

// Done is a Pending that has completed.
type Done struct{ Err error }

// Wait implements Pending.
func (d Done) Wait() error { return d.Err }

// TargetFolder is an existing folder on the target.
type TargetFolder struct {
	Name       string
	SpecialUse string
}

// Message is what a Target needs to store a message besides its bytes.
type Message struct {
	Flags        []string // system flags and keywords
	InternalDate time.Time
	Size         int64
	SHA256       string
	MessageID    string
}

// Errors targets return, so the engine can act on them.
var (
	// ErrOverQuota: the target is full. The restore stops; re-running it
	// after making room resumes.
	ErrOverQuota = errors.New("restore: target is over quota")
	// ErrTryCreate: the folder does not exist; the engine creates it and
	// retries.
	ErrTryCreate = errors.New("restore: target folder does not exist")
	// ErrRejected: the target refused this message; it is reported and
	// skipped.
	ErrRejected = errors.New("restore: target refused the message")
	// ErrThrottled: the target asks to slow down; the engine backs off and
	// retries.
	ErrThrottled = errors.New("restore: target asks to slow down")
	// ErrConnectionLost: the connection broke before the target answered;
	// the message may or may not be stored. The engine reads the folder
	// again and appends the message only if it is not there.
	ErrConnectionLost = errors.New("restore: connection to the target lost")
)

// Index is the identity of the messages a folder holds: Message-ID with
// size, and SHA-256 for messages without a Message-ID. It counts copies, so
// that a folder holding the same message twice is restored with both.
type Index struct {
	byID  map[string]int
	bySHA map[string]int
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{byID: map[string]int{}, bySHA: map[string]int{}} }

func idKey(messageID string, size int64) string {
	return messageID + "\x00" + strconv.FormatInt(size, 10)
}

// Add records a message the folder holds. sha may be "" when the target
// did not read the message (it has a Message-ID).
func (x *Index) Add(messageID string, size int64, sha string) {
	if messageID != "" {
		x.byID[idKey(messageID, size)]++
	}
	if sha != "" {
		x.bySHA[sha]++
	}
}

// Take reports whether the folder holds a copy of m not yet matched, and
// marks that copy as matched.
func (x *Index) Take(m *Message) bool {
	if m.MessageID != "" {
		k := idKey(m.MessageID, m.Size)
		if x.byID[k] > 0 {
			x.byID[k]--
			return true
		}
		return false
	}
	if x.bySHA[m.SHA256] > 0 {
		x.bySHA[m.SHA256]--
		return true
	}
	return false
}

// Has reports whether the folder holds a copy of m, without marking it.
func (x *Index) Has(m *Message) bool {
	if m.MessageID != "" {
		return x.byID[idKey(m.MessageID, m.Size)] > 0
	}
	return x.bySHA[m.SHA256] > 0
}
