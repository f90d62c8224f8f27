//go:build !linux

package formats

// syncFiles makes the data of n files durable, one fsync each.
func syncFiles(dir string, n int, name func(i int) string) error {
	return syncEach(n, name)
}
