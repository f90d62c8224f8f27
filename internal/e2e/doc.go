// Package e2e holds end-to-end tests and benchmarks that run the mailvault
// binary against a private Dovecot started by the tests (see
// internal/dovecottest). With CI=true a missing Dovecot fails the tests
// instead of skipping them (internal/testenv).
//
// Every test starts its own servers and writes its own archives, so the
// tests run in parallel (t.Parallel; go test's -parallel, GOMAXPROCS by
// default, bounds how many at once): they wait on servers, fsync and
// child processes more than they compute. A test that kills runs by the
// clock (TestCheckpointsUnderKills) runs alone, before the parallel ones.
package e2e
