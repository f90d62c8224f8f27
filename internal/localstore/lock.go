package localstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Temporary files: every temporary file of this package is named
// tempPrefix + random hex + tempSuffix and lives in a folder's directory
// (eml) or in a Maildir's tmp/ (maildir). A restore that writes holds the
// target's lock file, lockName in the root, so when a restore gets the
// lock no other restore of ours is running on the tree, and every
// temporary file of ours in it is a leftover of a killed run.
const (
	tempPrefix = ".mailvault-"
	tempSuffix = ".tmp"
	lockName   = ".mailvault-restore.lock"
)

// ErrTargetInUse is returned when another mailvault restore is writing to
// the same local target.
var ErrTargetInUse = errors.New("localstore: another mailvault restore is writing to this target")

// isTemp reports whether a file name is one of our temporary files.
func isTemp(name string) bool {
	return strings.HasPrefix(name, tempPrefix) && strings.HasSuffix(name, tempSuffix) && len(name) > len(tempPrefix)+len(tempSuffix)
}

// targetLock is the lock a restore that writes holds on a local target.
type targetLock struct {
	f    *os.File
	path string
}

// lockTarget takes the lock of the tree at root without waiting. The lock
// file is removed again when the lock is released; a lock taken on a file
// that its previous holder removed meanwhile is not a lock, so the path
// must still name the file locked.
func lockTarget(root string) (*targetLock, error) {
	p := filepath.Join(root, lockName)
	for range 10 {
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, filePerm)
		if err != nil {
			return nil, fmt.Errorf("lock the target: %w", err)
		}
		ok, err := tryLock(f)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock the target: %w", err)
		}
		if !ok {
			holder := make([]byte, 32)
			n, _ := f.ReadAt(holder, 0)
			f.Close()
			pid := strings.TrimSpace(string(holder[:n]))
			if _, err := strconv.Atoi(pid); err == nil {
				return nil, fmt.Errorf("%w (process %s holds %s)", ErrTargetInUse, pid, p)
			}
			return nil, fmt.Errorf("%w (%s is locked)", ErrTargetInUse, p)
		}
		mine, err1 := f.Stat()
		named, err2 := os.Stat(p)
		if err1 == nil && err2 == nil && os.SameFile(mine, named) {
			if err := f.Truncate(0); err == nil {
				f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			}
			return &targetLock{f: f, path: p}, nil
		}
		f.Close()
	}
	return nil, fmt.Errorf("lock the target: %s keeps changing", p)
}

// release removes the lock file, then unlocks it.
func (l *targetLock) release() error {
	if l == nil {
		return nil
	}
	err := os.Remove(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeTemps removes, in dir, the regular files for which ours is true.
// A file that cannot be removed stays; it is not a reason to fail.
func removeTemps(dir string, ours func(name string) bool) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.Type().IsRegular() && ours(e.Name()) {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

// walkDirs calls f for dir and every directory below it, without
// following symbolic links and without entering the directories skip
// reports.
func walkDirs(dir string, skip func(name string) bool, f func(dir string)) {
	f(dir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if e.IsDir() && !skip(e.Name()) {
			walkDirs(filepath.Join(dir, e.Name()), skip, f)
		}
	}
}

// writeLock is the lock and clean-up state every target of this package
// keeps: prepare takes the lock once and removes our leftovers.
type writeLock struct {
	lock     *targetLock
	prepared bool
}

// prepare creates the tree (create), takes its lock and removes our
// leftovers (clean), once.
func (w *writeLock) prepare(root string, create func() error, clean func()) error {
	if w.prepared {
		return nil
	}
	if err := create(); err != nil {
		return err
	}
	l, err := lockTarget(root)
	if err != nil {
		return err
	}
	w.lock, w.prepared = l, true
	clean()
	return nil
}

func (w *writeLock) release() error {
	l := w.lock
	w.lock, w.prepared = nil, false
	return l.release()
}
