//go:build failpoint

package failpoint

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

// Hook returns the failpoint function configured by MAILVAULT_FAILPOINT.
func Hook() func(point string) {
	spec := os.Getenv("MAILVAULT_FAILPOINT")
	if spec == "" {
		return nil
	}
	name, nth, _ := strings.Cut(spec, ":")
	n, err := strconv.Atoi(nth)
	if err != nil || n < 1 {
		n = 1
	}
	var hits atomic.Int64
	if point, ok := strings.CutPrefix(name, "sigint-after="); ok {
		// Interrupt (SIGINT) the process at the Nth time point is reached,
		// and give the signal time to arrive before going on.
		return func(p string) {
			if p == point && hits.Add(1) == int64(n) {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
				time.Sleep(200 * time.Millisecond)
			}
		}
	}
	if name == "sigint-at" {
		// Interrupt (SIGINT) the process at the Nth stored message, to test
		// the graceful path.
		return func(point string) {
			if point == "message-stored" && hits.Add(1) == int64(n) {
				syscall.Kill(os.Getpid(), syscall.SIGINT)
			}
		}
	}
	return func(point string) {
		if point == name && hits.Add(1) == int64(n) {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {} // never returns
		}
	}
}
