//go:build !failpoint

package failpoint

// Hook returns nil: failpoints are compiled out.
func Hook() func(point string) { return nil }
