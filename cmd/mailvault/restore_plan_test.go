package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/restore"
)

// TestRestoreSummaryMissing: messages the target acknowledged and does not
// hold are not counted as restored.
func TestRestoreSummaryMissing(t *testing.T) {
	rep := &restore.Report{Snapshot: "s1", Messages: 26, Stored: 26, StoredBytes: 2600, Missing: 25}
	got := summary(rep)
	for _, want := range []string{"restored 1 of 26 messages", "26 appended", "25 of them missing on the target afterwards"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary = %q, want it to say %q", got, want)
		}
	}
}

// TestRestorePlanNamespaces: --dry-run shows the namespaces the names are
// mapped between, and which folders are created as structure or with a
// special-use attribute.
func TestRestorePlanNamespaces(t *testing.T) {
	rep := &restore.Report{Snapshot: "s1", DryRun: true,
		ArchiveNamespace: restore.Namespace{Prefix: "INBOX.", Delimiter: "."}, ArchiveNamespaceFrom: restore.NamespaceDerived,
		TargetNamespace: restore.Namespace{Delimiter: "/"},
		Folders: []*restore.FolderPlan{
			{Source: "INBOX.Sent", Target: "Sent", How: restore.MapSame, Create: true, SpecialUse: restore.RoleSent, Messages: 1},
			{Source: "INBOX.Projects", Target: "Projects", How: restore.MapSame, Create: true, Structure: true},
		}}
	var b bytes.Buffer
	printPlan(&b, rep)
	for _, want := range []string{
		`archive namespace: prefix "INBOX.", delimiter "." (derived); target namespace: no prefix, delimiter "/"`,
		`Sent (new, \Sent)`, "Projects (new, structure only)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan:\n%s\nwant it to say %q", b.String(), want)
		}
	}
}
