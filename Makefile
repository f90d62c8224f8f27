# Development shortcuts. README.md holds the commands a newcomer needs.
.PHONY: build test race lint fuzz bench

build:
	go build -o bin/mailvault ./cmd/mailvault

test:
	go test -count=1 ./...

race:
	go test -count=1 -race ./...

lint:
	gofmt -l . | (! grep .)
	go vet ./...
	staticcheck ./...

fuzz:
	for t in FuzzQuoteRoundTrip FuzzMaildirInfo FuzzFolderDir FuzzDecodeSnapshot FuzzDecodeSnapshotBody FuzzSegmentRoundTrip; do \
		go test ./formats -run '^$$' -fuzz "^$$t$$" -fuzztime 60s -fuzzminimizetime 10x || exit 1; \
	done

# Throughput and peak RSS of backups and restores against a private
# Dovecot, and the cost of a run's manifest work on a 100,000-message
# archive with and without the state cache.
bench: bench-wan
	go test ./internal/e2e -run '^$$' -bench 'Backup|Restore' -benchtime 3x
	go test ./formats -run '^$$' -bench LoadState100k -benchtime 10x

# Backup and restore of a 5,000-message (356 MB) account on a private
# Dovecot, on loopback and through a delay line of 15 ms each way (30 ms
# round trip): wall time, msgs/s, MB/s, peak RSS and the ratio to loopback
# (targets: backup <= 1.3x, restore <= 1.5x). MAILVAULT_BENCH_DELAY,
# MAILVAULT_BENCH_RUNS, MAILVAULT_BENCH_PROFILE=wan-quick (40 MB) and
# MAILVAULT_BENCH_BIN (an older binary) change it; see BenchmarkWAN.
.PHONY: bench-wan
bench-wan:
	go test ./internal/bench -run '^$$' -bench WAN -benchtime 1x -timeout 60m -v

# Side by side with mbsync (isync) on a private Dovecot: full, no-change,
# incremental and restore runs, medians and peak RSS. Installs dovecot-imapd
# and isync when missing. PROFILE=quick for about 100 MB instead of 1 GB.
.PHONY: bench-mbsync
bench-mbsync:
	bash internal/bench/run.sh

# A fleet run of 100 and then 1,000 mailboxes of 50 messages on a private
# Dovecot (mailvault backup --config): wall time, mailboxes per minute and
# peak RSS side by side. MAILVAULT_BENCH_FLEET=100,1000 sets the sizes.
.PHONY: bench-fleet
bench-fleet:
	go test ./internal/bench -run '^$$' -bench Fleet -benchtime 1x -timeout 90m -v
# Time and peak RSS of every command on one account of SIZES messages
# (1-3 KB, 90 % in INBOX) on a private Dovecot: first, no-change and
# incremental backups, verify, ls, snapshots, restores to IMAP, mbox and
# Maildir, --deleted-since and --as-of, forget, prune and the backup
# after them. One table row per command, also written to
# bench-scale-results.txt. The 1,000,000 size needs about 15 GB
# of tmpfs (/dev/shm) and an hour or more; SIZES=20000 takes about a minute.
SIZES ?= 20000,200000,1000000
.PHONY: bench-scale
bench-scale:
	MAILVAULT_SCALE_SIZES=$(SIZES) go test ./internal/bench -run '^$$' -bench '^BenchmarkScale$$' -benchtime 1x -timeout 0 -v
