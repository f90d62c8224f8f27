package formats

import (
	"slices"
	"testing"
)

func TestNormalizeFlags(t *testing.T) {
	tests := []struct{ in, want []string }{
		{nil, nil},
		{[]string{}, nil},
		{[]string{`\Recent`, ""}, nil},
		{[]string{`\seen`, `\Recent`, `\SEEN`, "$Label1"}, []string{"$Label1", `\Seen`}},
		{[]string{`\Flagged`, "Work", `\answered`, `\draft`, `\deleted`}, []string{"Work", `\Answered`, `\Deleted`, `\Draft`, `\Flagged`}},
		// Keywords keep their case: only system flags are canonical.
		{[]string{"Work", "work", "$Junk"}, []string{"$Junk", "Work", "work"}},
	}
	for _, tt := range tests {
		if got := NormalizeFlags(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("NormalizeFlags(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
