#!/usr/bin/env python3
"""Run a command and report its peak RSS on stderr as MAXRSS_KB=N.

Go's os/exec starts children with vfork, and Linux carries the parent's
resident set over an exec into the child's ru_maxrss, so a large test
process would inflate the figure. This small launcher forks from itself:
the floor is its own few MB.
"""
import os
import sys

pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"\nMAXRSS_KB={usage.ru_maxrss}\n")
sys.exit(os.waitstatus_to_exitcode(status) & 0xFF)
