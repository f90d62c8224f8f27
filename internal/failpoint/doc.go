// Package failpoint lets crash tests kill the process at named points of
// the write path. Without the build tag "failpoint" Hook returns nil and
// nothing is compiled in; with it, MAILVAULT_FAILPOINT=NAME[:N] makes the
// process SIGKILL itself at the Nth time point NAME is reached, and
// MAILVAULT_FAILPOINT=sigint-at:N sends it SIGINT at the Nth stored message,
// and MAILVAULT_FAILPOINT=sigint-after=NAME[:N] at the Nth time point NAME
// is reached.
package failpoint
