// Package restore is the restore engine: it turns a selection (a snapshot,
// folders, dates, header searches, "deleted since") into a plan of target
// folders and messages, and feeds a Target (an IMAP server or a local
// Maildir, mbox or .eml tree), skipping what the target already holds so
// that a restore can be re-run or resumed without duplicates. It never
// imports a protocol library; adapters in internal/ implement Target.
package restore
