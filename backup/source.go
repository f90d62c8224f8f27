package backup

import (
	"context"
	"io"
	"time"
)

// Source is one connection to a mail store. The engine uses a Source from
// one goroutine at a time. Every method must honour ctx: when it is done
// the call returns promptly with ctx.Err() (the adapter may have to close
// its connection to achieve that).
type Source interface {
	// Folders lists every folder. Status is filled in for every selectable
	// folder the server reports it for without selecting (LIST-STATUS or
	// STATUS).
	Folders(ctx context.Context) ([]FolderInfo, error)
	// Examine opens the named folder read-only, replacing any folder opened
	// before, and returns its status.
	Examine(ctx context.Context, name string) (FolderStatus, error)
	// List calls fn with the key and flags of every message of the
	// examined folder, in the source's order. A key identifies a message
	// within the folder for as long as the folder's UIDVALIDITY stays the
	// same: "UIDVALIDITY:UID" for IMAP, the UIDL for POP3.
	List(ctx context.Context, fn func(key string, flags []string) error) error
	// Fetch streams the messages with the given keys from the examined
	// folder, calling fn once for each message the source delivers, in the
	// calling goroutine. m.Body is valid only until fn returns; fn must read
	// it to the end or return an error. Keys the source no longer has are
	// not delivered, and neither is a body the source could not serve whole
	// (Dovecot answers for a message expunged meanwhile with an empty one).
	// The source must never change the messages (no \Seen).
	Fetch(ctx context.Context, keys []string, fn func(m *Message) error) error
	// Close ends the session.
	Close() error
}

// Dialer opens a new Source connection; the engine calls it at the start
// and again after a connection is lost.
type Dialer func(ctx context.Context) (Source, error)

// FolderInfo is a folder as listed by the source.
type FolderInfo struct {
	Name       string   // UTF-8, hierarchy levels joined with Delimiter
	Delimiter  string   // "" when the server has no hierarchy
	Attrs      []string // as listed, e.g. `\HasChildren`, `\Noselect`, `\Sent`
	SpecialUse string   // `\Sent`, `\Drafts`, `\Trash`, `\Junk`, `\Archive`, `\All`, `\Flagged` or ""
	NoSelect   bool     // structure only: cannot hold messages
	Status     *FolderStatus
	// Err, when set, says why the source listed the folder but cannot back
	// it up (a name it cannot open, say): the engine records the folder as
	// failed, which makes the snapshot partial, and backs up the others.
	Err error
}

// FolderStatus is what identifies a folder's content version.
type FolderStatus struct {
	UIDValidity   uint32
	UIDNext       uint32
	Messages      uint32
	HighestModSeq uint64 // 0 when the server has no CONDSTORE
}

// Message is one message being fetched.
type Message struct {
	Key          string
	Flags        []string
	InternalDate time.Time
	Size         int64 // as the server announced it (RFC822.SIZE); a hint
	Body         io.Reader
}

// ChangeLister is implemented by sources that can list a folder's keys
// and only the flags changed since a mod-sequence (IMAP CONDSTORE). The
// engine uses it in place of List when the archive knows the folder's
// HIGHESTMODSEQ.
type ChangeLister interface {
	// ListChanged calls fn with every key of the examined folder, in the
	// source's order; changed tells whether the message's flags changed
	// after modseq, and flags are then its flags (else nil). ok is false
	// when the source cannot do it now; List must be used instead.
	ListChanged(ctx context.Context, modseq uint64, fn func(key string, flags []string, changed bool) error) (ok bool, err error)
}

// SinceLister is a source that can list only what changed in the examined
// folder since a run that saw it with status prev and archived present of
// its messages: the messages added since (UIDs from prev.UIDNext on), and
// the older ones whose flags changed after prev.HighestModSeq. It can when
// none of the older messages left: the folder holds present of them (a
// message archived before has a UID below prev.UIDNext; one the archive
// lacks makes the count differ too). Then a run over a folder of
// 1,000,000 messages with ten new ones reads ten keys instead of a
// million, and the server searches ten UIDs. ok is false when it cannot
// tell (no CONDSTORE, another count): ListChanged or List is used.
type SinceLister interface {
	ListSince(ctx context.Context, prev FolderStatus, present int64, fn func(key string, flags []string, changed bool) error) (ok bool, err error)
}

// ExpungeChecker is implemented by sources that can tell which messages
// left the examined folder after it was listed (expunged by another client
// while the run fetched it). The engine asks about the keys a Fetch did not
// deliver: those no longer in the folder are not failures.
type ExpungeChecker interface {
	// Expunged returns those of keys that are no longer in the examined
	// folder.
	Expunged(ctx context.Context, keys []string) ([]string, error)
}

// Deleter is implemented by sources that can remove messages (POP3). The
// engine calls Delete only after the snapshot that holds the messages is
// committed, then Close, which makes the deletions final (POP3 QUIT); a
// session that ends any other way deletes nothing. Delete returns how many
// messages it marked.
type Deleter interface {
	Delete(ctx context.Context, keys []string) (int, error)
}

// Namespacer is implemented by sources whose folder names live in a
// personal namespace (IMAP NAMESPACE, RFC 2342). The engine records it in
// the snapshot, so that a restore can map the names into another
// server's namespace: Courier's "INBOX.Sent" is "Sent" on Dovecot.
type Namespacer interface {
	// PersonalNamespace returns the prefix of the user's folder names
	// ("INBOX." on Courier, "" on Dovecot) and their delimiter.
	PersonalNamespace(ctx context.Context) (prefix, delim string, err error)
}
