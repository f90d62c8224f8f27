package connerr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
)

func TestIs(t *testing.T) {
	reset := &Error{Err: io.ErrUnexpectedEOF}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"plain", errors.New("NO [OVERQUOTA]"), false},
		{"cancelled", context.Canceled, false},
		{"conn error", reset, true},
		{"wrapped", fmt.Errorf("fetch: %w", reset), true},
		{"joined", errors.Join(errors.New("other"), reset), true},
	}
	for _, tt := range tests {
		if got := Is(tt.err); got != tt.want {
			t.Errorf("Is(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
	if reset.Error() != io.ErrUnexpectedEOF.Error() || !errors.Is(reset, io.ErrUnexpectedEOF) {
		t.Errorf("Error = %q, Unwrap does not reach the cause", reset.Error())
	}
}
