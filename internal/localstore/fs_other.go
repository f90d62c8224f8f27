//go:build !unix

package localstore

import "os"

func isNoSpace(err error) bool { return false }

func linkUnsupported(err error) bool { return true }

func dirSyncUnsupported(err error) bool { return true }

func tryLock(f *os.File) (bool, error) { return true, nil }

func isNameError(err error) bool { return false }
