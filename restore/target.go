package restore

import (
	"context"
	"errors"
	"io"
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
	// error from Append itself means the target is unusable, except when
	// reading body failed (the archive is damaged): then Append returns
	// an error, stores nothing of the message and stays usable (an IMAP
	// target drops its connection, which the APPEND in flight would
	// otherwise leave waiting for the rest of the literal, and reconnects
	// on the next call; the Pendings of that connection then report
	// ErrConnectionLost).
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
	return messageID + "\x00" + itoa(size)
}

func itoa(n int64) string {
	var b [20]byte
	i := len(b)
	if n == 0 {
		return "0"
	}
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
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

// ErrFolderRefused is wrapped by a target's error about one folder only
// (a name the target cannot hold, a path the file system refuses): that
// folder is reported as not restored and the others go on.
var ErrFolderRefused = errors.New("restore: the target cannot hold this folder")

// Preparer is implemented by targets that get ready for writing once
// before a restore that writes (never for a dry run): a local target
// takes its lock and removes the temporary files a killed restore left.
type Preparer interface {
	Prepare(ctx context.Context) error
}

// FolderNamer is implemented by targets that may keep a folder under
// another name than the one asked for (a local target shortens a level
// too long for a file name). StoredAs returns where the folder is kept
// and whether that differs from its name; it changes nothing.
type FolderNamer interface {
	StoredAs(folder string) (string, bool)
}

// AtomicAppender is implemented by targets whose Append stores all of a
// message or nothing of it, also when reading its body fails (a local
// target writes a temporary file first). The engine streams archived
// messages straight to such a target. To any other target it hands a
// message only once all of its bytes were read and checked: an IMAP
// server may keep the part of a message it received before the
// connection dropped (go-imap's imapserver does).
type AtomicAppender interface {
	AppendsAtomically() bool
}
