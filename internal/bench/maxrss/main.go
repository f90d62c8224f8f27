// Command maxrss runs a command and reports its peak RSS and wall time on
// stderr, as the last line:
//
//	MAXRSS_KB=<ru_maxrss of the command> WALL_NS=<nanoseconds from start to exit> CPU_NS=<user+system CPU time>
//
// It exits with the command's exit code (128+N when a signal N ended it).
//
// Why a launcher at all: Go's os/exec starts children with vfork, and
// Linux carries the resident set of the address space a process execs
// from into its ru_maxrss, so a command started straight from a large
// test process would report that process's peak. Started from this small
// program, the floor is this program's own resident set (about 2.3 MiB,
// against 7–10 MiB for testdata/maxrss.py), and it starts in milliseconds
// where the Python launcher took up to 2 s on a loaded machine (the pyenv
// shim). The wall time is measured here too, so it leaves out the
// launcher's own start.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: maxrss COMMAND [ARG...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		fmt.Fprintf(os.Stderr, "maxrss: %v\n", err)
		os.Exit(127)
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru == nil {
		fmt.Fprintln(os.Stderr, "maxrss: no resource usage for the command")
		os.Exit(127)
	}
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Fprintf(os.Stderr, "\nMAXRSS_KB=%d WALL_NS=%d CPU_NS=%d\n", ru.Maxrss, wall.Nanoseconds(), cpu.Nanoseconds())
	ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		os.Exit(128 + int(ws.Signal()))
	}
	os.Exit(ws.ExitStatus())
}
