#!/usr/bin/env bash
# Side-by-side benchmark of mailvault against mbsync (isync) on a private
# Dovecot (127.0.0.1 only): full backup, no-change run, incremental run and
# restore, 3 runs each per tool, medians and peak RSS in a table.
#
#   internal/bench/run.sh                # or: make bench-mbsync
#   PROFILE=quick internal/bench/run.sh  # about 100 MB instead of 1 GB
#
# Installs dovecot-imapd and isync with apt-get when missing (sudo unless
# root), builds mailvault and runs BenchmarkVsMbsync. Extra arguments go
# to `go test`. MAILVAULT_BENCH_ARGS (e.g. "--connections 4") is passed to
# mailvault's backup runs; MAILVAULT_BENCH_RUNS sets the runs per mode.
set -euo pipefail
cd "$(dirname "$0")/../.."

profile="${PROFILE:-${MAILVAULT_BENCH_PROFILE:-full}}"
case "$profile" in
full | quick) ;;
*)
  echo "run.sh: PROFILE must be full or quick, not '$profile'" >&2
  exit 2
  ;;
esac

# A non-root PATH often lacks /usr/sbin, where dovecot lives.
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
need=()
have dovecot || need+=(dovecot-imapd)
have doveadm || need+=(dovecot-core)
have mbsync || need+=(isync)
have python3 || need+=(python3)
if [ ${#need[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "installing: ${need[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "$(/usr/sbin/dovecot --version 2>/dev/null || dovecot --version) / $(mbsync --version) / $(go version)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
go build -o "$tmp/mailvault" ./cmd/mailvault

export MAILVAULT_BENCH_PROFILE="$profile" MAILVAULT_BENCH_BIN="$tmp/mailvault"
go test ./internal/bench -run '^$' -bench VsMbsync -benchtime 1x -timeout 90m -v "$@"
