package main

import (
	"strings"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// TestRetentionLeavesIndex: forget, prune and forget --prune rewrite the
// manifests, which drops the state index made from the old ones; each
// builds it again from the new ones before it ends, so that the next
// backup finds it current instead of building it from every manifest
// (28 s at 1,000,000 messages).
func TestRetentionLeavesIndex(t *testing.T) {
	m := newMailbox(t)
	for run := 0; run < 6; run++ {
		m.add(2)
		m.del(m.n - 2) // added by the run before: gone in this one
		m.backup()
	}
	current := func(step string) {
		t.Helper()
		a, err := formats.Open(m.vault)
		if err != nil {
			t.Fatal(err)
		}
		ix, err := a.ReadIndex(0)
		if err != nil {
			t.Fatal(err)
		}
		defer ix.Close()
		if ix.Temporary() {
			t.Errorf("after %s the archive's state index is not at its newest snapshot", step)
		}
	}
	for _, argv := range [][]string{
		{"forget", m.vault, "--keep-last", "4"},
		{"prune", m.vault},
		{"forget", m.vault, "--keep-last", "2", "--prune"},
	} {
		code, out, errs := runCLI(t, nil, argv...)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s %s", argv, code, out, errs)
		}
		if argv[0] == "prune" && strings.Contains(out, "removed 0 messages") {
			t.Fatalf("prune removed nothing: %s", out)
		}
		current(strings.Join(append(argv[:1:1], argv[2:]...), " "))
	}
	m.checkRestores()
}
