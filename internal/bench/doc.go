// Package bench holds two benchmarks against a private Dovecot and the
// mail generators they use.
//
// BenchmarkScale (`make bench-scale`, SIZES=20000,200000,1000000) times
// every command a user runs on one big account (first, no-change and
// incremental backups, verify, ls, snapshots, restores to IMAP, mbox and
// Maildir, --deleted-since, --as-of) and measures each process's peak RSS,
// checking every count against the server or the target; see
// scale_bench_test.go. Its account is written by WriteScale: messages of
// 1–3 KB, 90 % in INBOX, straight into the Maildir by parallel writers
// (ScaleMessage gives the same messages one by one, for an in-process
// server). The launcher that measures peak RSS is internal/bench/maxrss.
//
// BenchmarkVsMbsync compares mailvault with mbsync (isync) side by side on a
// private Dovecot: full backup into an empty destination, a run with
// nothing new, an incremental run after 100 new messages in 3 folders, and
// a restore into an empty account. Each mode runs at least 3 times per
// tool, the tools alternating, and the medians, throughput and peak RSS
// are printed as a table.
//
// The benchmark is BenchmarkVsMbsync; `make bench-mbsync` (or
// internal/bench/run.sh) installs Dovecot and isync when missing and runs
// it. Environment:
//
//	MAILVAULT_BENCH_PROFILE  full (default: about 20,000 messages in 40
//	                         folders, about 1 GB) or quick (about 2,000
//	                         messages in 10 folders, about 100 MB)
//	MAILVAULT_BENCH_RUNS     runs per tool and mode (default 3, at least 3)
//	MAILVAULT_BENCH_ARGS     extra mailvault backup arguments, split on
//	                         spaces, e.g. "--connections 4"
//	MAILVAULT_BENCH_BIN      a mailvault binary to use instead of building one
//
// The mailbox is written straight into the Dovecot Maildir (see
// WriteMaildir) and indexed once with doveadm: APPENDing a gigabyte would
// take longer than the benchmark itself.
//
// BenchmarkWAN (`make bench-wan`) measures mailvault alone: backup and
// restore of the "wan" profile (5,000 messages, 356 MB) on loopback and
// through the delay line of package wanproxy (30 ms round trip), and the
// ratio of the two.
package bench
