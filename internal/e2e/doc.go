// Package e2e holds end-to-end tests and benchmarks that run the mailvault
// binary against a private Dovecot started by the tests (see
// internal/dovecottest). With CI=true a missing Dovecot fails the tests
// instead of skipping them.
package e2e
