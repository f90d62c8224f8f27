// Package formats implements the mailvault archive: append-only
// zstd-compressed mboxrd segments, snapshot manifests and the state they
// describe. It knows nothing of IMAP or POP3; docs/FORMAT.md is the
// authority on the bytes it writes.
//
// Write order is the invariant everything else relies on: message data is
// written and fsynced first, then a snapshot manifest naming it is written to
// a temporary file, fsynced, renamed into place and its directory fsynced.
// Readers trust only what a committed manifest names.
package formats
