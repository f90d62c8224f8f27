//go:build !unix

package formats

import "os"

// tryLock on systems without flock: the lock file's existence is the
// lock (see Archive.Lock), so there is nothing more to take here.
func tryLock(f *os.File) (bool, error) { return true, nil }
