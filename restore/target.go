package restore

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/mailvault/mailvault/formats"
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
	// exist has an empty index. The index streams into NewIndex's (which
	// goes to disk past IndexMemoryEntries): an adapter holds nothing per
	// message of the folder while it builds it. It returns an error, not
	// the index, when the index's Err is not nil; the caller closes the
	// index it gets.
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
	// NoSelect: the folder holds no messages, only folders (IMAP
	// \Noselect); it is kept as structure and is no target for messages.
	NoSelect bool
}

// Message is what a Target needs to store a message besides its bytes.
type Message struct {
	Flags        []string // system flags and keywords
	InternalDate time.Time
	Size         int64
	SHA256       string
	MessageID    string
	// BodySHA256 is BodyHash of the message, set by the engine only when
	// an Index asks for it (NeedsBodyHash).
	BodySHA256 string
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
	// ErrKeywordsRefused: the target refused a message that carried
	// keywords (GNU Mailutils answers "BAD Unrecognized flag" to any), and
	// drops keywords for that folder from now on: the engine appends the
	// message once more, and counts its keywords as dropped.
	ErrKeywordsRefused = errors.New("restore: target refused the message's keywords")
)

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

// Namespace is a personal namespace (RFC 2342): the prefix of the names of
// the user's folders and their hierarchy delimiter. Dovecot and upstream
// Cyrus have prefix "" and delimiter "/", Courier and Cyrus with Debian's
// settings "INBOX." and ".". INBOX itself is never below the prefix.
type Namespace = formats.Namespace

// Namespacer is implemented by targets whose folders live in a personal
// namespace with a prefix (IMAP NAMESPACE). A target without it has
// prefix "" and the delimiter Delimiter returns.
type Namespacer interface {
	Namespace() Namespace
}

// SpecialUseCreator is implemented by targets that can create a folder
// with a special-use attribute (RFC 6154 CREATE-SPECIAL-USE). The engine
// uses it for a folder with a role (\Sent, …) that the target has no
// folder for.
type SpecialUseCreator interface {
	// CanCreateSpecialUse reports whether the target offers it.
	CanCreateSpecialUse() bool
	// CreateSpecialUse creates a folder with the attribute, like
	// CreateFolder. When the target refuses the attribute, the folder is
	// created without it, and the error says so after the folder exists
	// (ErrSpecialUseRefused).
	CreateSpecialUse(ctx context.Context, name, use string) error
}

// ErrSpecialUseRefused is wrapped when a folder was created without the
// special-use attribute asked for, which the target refused.
var ErrSpecialUseRefused = errors.New("restore: the target refused the special-use attribute")

// StructureCreator is implemented by targets that can hold a folder that
// holds no messages, only other folders (IMAP \Noselect). The engine
// creates an archived \Noselect folder with no restored folder below it
// this way; one with folders below it comes with them.
type StructureCreator interface {
	// CreateStructure creates name as structure only, where the target
	// allows it. An error says it could not; it is reported, and the
	// restore goes on.
	CreateStructure(ctx context.Context, name string) error
}

// AppendChecker is implemented by targets that can tell how many messages
// a folder holds, so that the engine checks a folder after its appends:
// a target that answers OK and keeps fewer (GNU Mailutils into a folder
// the same connection has SELECTed) is caught and reported.
type AppendChecker interface {
	// Held returns how many messages folder holds now. The engine calls
	// it before the folder's first append and after the answer to its
	// last; the target then forgets what it recorded of appends to the
	// folder before.
	Held(ctx context.Context, folder string) (int, error)
	// Missing returns how many of the messages the target accepted into
	// folder since the last Held call are not in it, when the target can
	// tell which (IMAP UIDPLUS: the APPENDUID answers, looked for with UID
	// SEARCH). ok is false when it cannot.
	Missing(ctx context.Context, folder string) (missing int, ok bool, err error)
}
