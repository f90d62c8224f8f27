//go:build !unix

package auth

import "os"

// lockFile without flock: concurrent refreshes are not serialised (a
// rotated refresh token may then be lost to a race, and the login must be
// run again).
func lockFile(f *os.File) error { return nil }
