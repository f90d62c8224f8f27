// Package backup is the backup engine: it compares a Source (an IMAP
// account, later POP3 or local mail) with the archive's latest state,
// fetches only what is new, stores it in segments, and commits one
// snapshot manifest per run. It never imports a protocol library; the
// adapters in internal/ implement Source.
package backup
