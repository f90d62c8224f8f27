package backup

import (
	"context"

	"github.com/mailvault/mailvault/formats"
)

// EventKind says what an Event reports.
type EventKind int

const (
	// EventPlanned: the folders are listed and compared with the archive.
	// Folders is how many must be examined; Messages estimates how many
	// messages they have that the archive lacks (from the listing's
	// status; 0 when the source gives none).
	EventPlanned EventKind = iota + 1
	// EventFetching: Folder was examined and Messages of its messages are
	// to be fetched now (a folder fetched again after a lost connection
	// reports what is left).
	EventFetching
	// EventStored: one message of Folder, Bytes long, was stored (or found
	// already stored in the folder).
	EventStored
	// EventFolderDone: Folder is finished, successfully or not.
	EventFolderDone
)

// Event is progress reported to Options.Progress.
type Event struct {
	Kind     EventKind
	Folder   string
	Folders  int
	Messages int
	Bytes    int64
}

// progress reports e to Options.Progress. Progress is called from the
// engine's worker goroutines, several at once: it must be safe for
// concurrent use and quick (it runs between messages).
func (o *Options) progress(e Event) {
	if o.Progress != nil {
		o.Progress(e)
	}
}

// QuotaReader is implemented by sources that can tell the mailbox's quota
// (IMAP QUOTA, RFC 9208). The engine asks once per run, on the connection
// that listed the folders, and records the answer in the snapshot. ok is
// false when the source has no quota to tell (no QUOTA capability).
type QuotaReader interface {
	Quota(ctx context.Context) (q []formats.Quota, ok bool, err error)
}
