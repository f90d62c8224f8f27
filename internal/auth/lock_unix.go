//go:build unix

package auth

import (
	"os"
	"syscall"
)

// lockFile blocks until it holds an exclusive advisory lock on f; the
// kernel drops it when the process dies.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			return err
		}
	}
}
