package main

import (
	"bytes"
	"testing"
)

// cli runs mailvault in-process with the given environment.
func runCLI(t *testing.T, envv map[string]string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mailvault"}, argv...), nil, &out, &errb, func(k string) string { return envv[k] })
	return code, out.String(), errb.String()
}
