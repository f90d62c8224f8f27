package imapstore

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSizedReader(t *testing.T) {
	r := &sizedReader{r: strings.NewReader("short"), left: 10}
	_, err := io.ReadAll(r)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !r.ended {
		t.Errorf("literal cut short: err %v, want ErrUnexpectedEOF", err)
	}
	r = &sizedReader{r: strings.NewReader("exact"), left: 5}
	if b, err := io.ReadAll(r); err != nil || string(b) != "exact" {
		t.Errorf("full literal: %q %v", b, err)
	}
}

func TestKeys(t *testing.T) {
	if k := makeKey(7, 42); k != "7:42" {
		t.Errorf("makeKey = %q", k)
	}
	for key, want := range map[string]uint32{"7:42": 42, "8:42": 0, "7:": 0, "7:x": 0, "42": 0, "7:0": 0} {
		if got, _ := parseKey(key, 7); got != want {
			t.Errorf("parseKey(%q) = %d, want %d", key, got, want)
		}
	}
}
