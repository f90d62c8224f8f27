// Package pop3test provides a scripted, hand-written POP3 server for the
// tests of other packages. It listens on 127.0.0.1 only and is shut down by
// t.Cleanup.
//
// It implements RFC 1939 (USER/PASS, STAT, LIST, UIDL, RETR, TOP, DELE, RSET,
// NOOP, QUIT), RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 2595 STLS with a
// generated self-signed certificate, and an unadvertised AUTH PLAIN. It
// misbehaves on request (see Options): no UIDL, no TOP, a message whose RETR
// fails, a message whose RETR is cut in the middle of the body, a locked
// mailbox, TLS required before login.
//
// Semantics a test can rely on:
//
//   - Message numbers are per session: the mailbox is snapshotted at login
//     and numbered 1..N. Add and Remove between sessions shift the numbers of
//     the next session; messages added during a session are not visible in it.
//   - DELE only marks; the marks are committed when the session ends with
//     QUIT. A session that ends any other way (the client closes or drops the
//     connection, a cut, Server shutdown) commits nothing.
//   - RETR of a message marks its UIDL in Seen once the whole body has been
//     sent (Dovecot sets \Seen on RETR); TOP never does.
//   - RETR or TOP of a message that Remove took away after the session
//     snapshot answer -ERR.
//   - Sizes (LIST, STAT) are len(Body), the size before dot-stuffing. Bodies
//     are sent as stored, dot-stuffed, with CRLF added after a final line
//     that lacks a line ending.
//   - Every command line received is recorded (Commands), PASS and AUTH
//     secrets redacted.
package pop3test
