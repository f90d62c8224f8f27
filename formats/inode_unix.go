//go:build unix

package formats

import (
	"io/fs"
	"syscall"
)

// inodeOf returns what identifies fi's file on its file system and its
// number of names (hard links); ok is false where the system does not
// say (every file then counts as its own).
func inodeOf(fi fs.FileInfo) (id inode, nlink uint64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return inode{}, 1, false
	}
	return inode{dev: uint64(st.Dev), ino: uint64(st.Ino)}, uint64(st.Nlink), true
}
