package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time, for builds outside a Git checkout or to override what
// the Go toolchain records:
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.commit=$(git rev-parse HEAD)" ./cmd/mailvault
var version, commit string

func buildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// versionLine is what --version prints: the version (-ldflags, else the
// main module's version, "(devel)" for a build from a checkout), the
// commit (-ldflags, else vcs.revision and vcs.modified recorded by go
// build) and the Go version that built it.
func versionLine(bi *debug.BuildInfo, ldVersion, ldCommit string) string {
	v, rev, modified, goVersion := ldVersion, ldCommit, false, runtime.Version()
	if bi != nil {
		if v == "" {
			v = bi.Main.Version
		}
		if bi.GoVersion != "" {
			goVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && ldCommit == "":
				rev = s.Value
			case s.Key == "vcs.modified" && ldCommit == "":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev == "" {
		rev = "unknown"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "mailvault %s (commit %s", v, rev)
	if modified {
		b.WriteString(", modified")
	}
	fmt.Fprintf(&b, ") %s", goVersion)
	return b.String()
}
