package main

import (
	"os"
	"runtime/debug"
)

// memoryLimit is the Go heap's soft limit unless GOMEMLIMIT says
// otherwise: the garbage collector works harder near it instead of letting
// the heap double, which keeps a backup over several connections under
// 64 MB of RSS. It is soft: a run that needs more gets more.
const memoryLimit = 40 << 20

func main() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(memoryLimit)
	}
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr, os.Getenv))
}
