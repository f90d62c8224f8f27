// Package imapstore adapts an IMAP server to the backup engine's Source:
// it connects (implicit TLS, STARTTLS or, for loopback tests, plaintext),
// lists folders with their status, and streams messages strictly
// read-only (EXAMINE and BODY.PEEK). It is the only package that imports
// go-imap, and it works around that library's hazards: a watchdog on the
// connection because the library has no timeout waiting for a response,
// and a sequence-number re-fetch for servers that send UID after the body
// (kept as a fallback: the patched go-imap in third_party matches such
// answers itself). It reads servers' throttling answers and daily caps
// (throttle.go) and applies providers' quirks to restore targets
// (quirks.go).
package imapstore
