// Package backup is the backup engine: it compares a Source (an IMAP or
// POP3 account, a local mbox or Maildir) with the archive's latest state,
// fetches only what is new, stores it in segments, and commits one
// snapshot manifest per run. It never imports a protocol library; the
// adapters in internal/ implement Source.
//
// The files, by role:
//   - source.go: the Source contract and its optional interfaces.
//   - run.go: Run, Options and Result; the run's state; recording the
//     snapshot and the result from what was committed.
//   - plan.go: which folders to open, skip, rename or delete, decided from
//     folder metadata alone (makePlan, a pure function).
//   - pool.go: the workers, each with its own connection, and their queue.
//   - folder.go: synchronising one folder (examine, list, fetch, examine
//     again) through its seams: knownMessages, delta and the writer.
//   - store.go: storing one message, deduplication, and writer.commit, the
//     one path by which stored messages reach a folder's delta.
//   - parts.go: big folders fetched in parts over several connections,
//     each part handing its committed writers to the folder's worker.
//   - checkpoint.go: partial snapshots committed during a run.
//   - errors.go: the errors Run returns and how Source errors are
//     classified.
package backup
