// Package corpus generates a deterministic test mailbox and loads it into
// an IMAP server.
//
// Generate returns the same messages, byte for byte, for the same Options:
// ordinary messages of 2–20 KB with realistic headers spread over the
// folders of Folders (Archive stays empty), every body of EdgeCases (the
// inputs that break naive mbox writers and byte-exact round trips), a mix of
// system flags and keywords, and optional multi-megabyte messages with a
// base64 attachment. Load creates the folders over IMAP and APPENDs the
// messages, pipelined, with their flags and INTERNALDATE.
//
// Some edge cases are not valid RFC 5322 on the wire (bare LF, a lone CR,
// NUL). IMAP servers may rewrite them on APPEND; WireForm describes what an
// RFC 3501 server such as Dovecot returns for them.
package corpus
