// Package formats implements the mailvault archive: message storage,
// snapshot manifests and the state they describe. It knows nothing of
// IMAP or POP3; docs/FORMAT.md is the authority on the bytes it writes.
//
// How message bytes are kept is the archive's own business: an Archive
// holds one storage (zstd mboxrd segments, or Maildir files compressed or
// not), chosen from mailvault.json when it is opened, and everything that
// depends on it is a method of the Archive: writing (NewWriter,
// NewWriterPart), reading (MessageReader, OpenMessage: one read path),
// Verify, Orphans and RemoveOrphans, StoredBytes, the dedup policy
// (ReuseStored) and the work after a commit (AfterCommit). A message's
// place is a Location, which only the storage interprets. Callers never
// ask which storage an archive has (a test enforces it).
//
// Write order is the invariant everything else relies on: message data is
// written and fsynced first, then a snapshot manifest naming it is written to
// a temporary file, fsynced, renamed into place and its directory fsynced.
// Readers trust only what a committed manifest names.
package formats
