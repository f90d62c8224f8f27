// Package connerr classifies the errors after which a mail connection is
// unusable but a new one may succeed (a reset, a timeout, a server that
// closed the connection). The protocol adapters (internal/imapstore,
// internal/pop3store) wrap such errors in an *Error; the engines open a new
// connection and go on: backup resumes the folder, restore retries the
// append. Any other error ends what the connection was doing.
//
// It is its own package so that the engines and every adapter can share
// the type without the engines importing the adapters' dependencies.
package connerr

import "errors"

// Error marks an error after which the connection is unusable and a new
// one may succeed.
type Error struct{ Err error }

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether err is, or wraps, an *Error.
func Is(err error) bool {
	var ce *Error
	return errors.As(err, &ce)
}
