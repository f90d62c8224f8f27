//go:build unix

package backup

import (
	"io/fs"
	"syscall"
)

// inodeOf returns the file's device and inode and its link count; ok is
// false where the system does not say.
func inodeOf(fi fs.FileInfo) (id [2]uint64, nlink uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return id, 1, false
	}
	return [2]uint64{uint64(st.Dev), uint64(st.Ino)}, uint64(st.Nlink), true
}
