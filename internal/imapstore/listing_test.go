package imapstore

import (
	"strings"
	"testing"
)

func TestDecodeMailbox(t *testing.T) {
	tests := []struct {
		raw, want string
		bad       string // part of the error, "" when valid
	}{
		{raw: "INBOX", want: "INBOX"},
		{raw: "inbox", want: "INBOX"},
		{raw: "A&APE-o", want: "Año"},
		{raw: "Entw&APw-rfe/&AMQ-ltere", want: "Entwürfe/Ältere"},
		{raw: "Tom &- Jerry", want: "Tom & Jerry"},
		{raw: "Año", want: "Año"}, // raw UTF-8, as go-imap accepts
		{raw: "&ZeVnLIqe-", want: "日本語"},
		{raw: "Caf\xe9", bad: "8-bit"},
		{raw: "A\x01B", bad: "control byte 0x01"},
		{raw: "Del\x7f", bad: "control byte 0x7f"},
		{raw: "&AGEAYgBj-", bad: "encodes ASCII"},
		{raw: "&APE", bad: "unterminated"},
		{raw: "&APE-&APE-", bad: "in a row"},
		{raw: "&A-", bad: "base64"},
		{raw: "&APE=-", bad: "base64"},
	}
	for _, tt := range tests {
		got, err := decodeMailbox([]byte(tt.raw))
		switch {
		case tt.bad == "" && (err != nil || got != tt.want):
			t.Errorf("decodeMailbox(%q) = %q, %v, want %q", tt.raw, got, err, tt.want)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("decodeMailbox(%q) = %q, %v, want an error about %q", tt.raw, got, err, tt.bad)
		}
	}
}

func TestEscapeMailbox(t *testing.T) {
	tests := map[string]string{
		"Caf\xe9":       "Caf%E9",
		"A\x01B":        "A%01B",
		"100%":          "100%25",
		"&AGEAYgBj-":    "&AGEAYgBj-",
		"Año\x02":       "Año%02",
		"Line\r\nBreak": "Line%0D%0ABreak",
	}
	for in, want := range tests {
		if got := escapeMailbox([]byte(in)); got != want {
			t.Errorf("escapeMailbox(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseRawList(t *testing.T) {
	tests := []struct {
		text  string
		lits  []string
		attrs string
		delim string
		name  string
		ok    bool
	}{
		{text: `* LIST (\HasNoChildren) "/" "Sent"`, attrs: `\HasNoChildren`, delim: "/", name: "Sent", ok: true},
		{text: `* LIST () "." INBOX`, delim: ".", name: "INBOX", ok: true},
		{text: `* LIST (\Noselect \HasChildren) NIL "a \"b\" \\c"`, attrs: `\Noselect \HasChildren`, name: `a "b" \c`, ok: true},
		{text: `* LIST (\HasNoChildren) "/" My Folder`, attrs: `\HasNoChildren`, delim: "/", name: "My Folder", ok: true},
		{text: "* LIST () \"/\" {5}", lits: []string{"A\r\nB\x00"}, delim: "/", name: "A\r\nB\x00", ok: true},
		{text: "* LIST () \"/\" \"Caf\xe9\"", delim: "/", name: "Caf\xe9", ok: true},
		{text: `* LIST (\Sent) "/" "Sent"`, attrs: `\Sent`, delim: "/", name: "Sent", ok: true},
		{text: `* STATUS "x" (MESSAGES 1)`},
		{text: `* LIST \Broken "/" x`},
		{text: `* LIST () "/" "unterminated`},
		{text: `* LIST () "/" `},
	}
	for _, tt := range tests {
		l := rawLine{text: []byte(tt.text)}
		for _, s := range tt.lits {
			l.lits = append(l.lits, []byte(s))
		}
		e, ok := parseRawList(l)
		if ok != tt.ok {
			t.Errorf("parseRawList(%q) ok = %v, want %v", tt.text, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		if strings.Join(e.attrs, " ") != tt.attrs || e.delim != tt.delim || string(e.name) != tt.name {
			t.Errorf("parseRawList(%q) = %q %q %q, want %q %q %q", tt.text, e.attrs, e.delim, e.name, tt.attrs, tt.delim, tt.name)
		}
	}
}

func TestTrailingLiteral(t *testing.T) {
	for line, want := range map[string]int{"* LIST () \"/\" {12}": 12, "x {3+}": 3, "no literal": -1, "x {a}": -1, "{}": -1} {
		n, ok := trailingLiteral([]byte(line))
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("trailingLiteral(%q) = %d, %v, want %d", line, n, ok, want)
		}
	}
}
