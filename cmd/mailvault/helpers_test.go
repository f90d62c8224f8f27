package main

import (
	"bytes"
	"io"
	"testing"
)

// cli runs mailvault in-process with the given environment.
func runCLI(t *testing.T, envv map[string]string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mailvault"}, argv...), nil, &out, &errb, func(k string) string { return envv[k] })
	return code, out.String(), errb.String()
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
