package localsrc

import (
	"bytes"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/mailvault/mailvault/formats"
)

// maxHeader bounds the header bytes kept to read flags and the date.
const maxHeader = 64 << 10

// headerFields returns the first value of each wanted field (lower-case
// names) of a message header, unfolded and trimmed. It is tolerant: it
// stops at the blank line, at the end of raw, or at a line that is not a
// field.
func headerFields(raw []byte, want ...string) map[string]string {
	out := map[string]string{}
	var name string
	var val strings.Builder
	flush := func() {
		if name != "" {
			if _, seen := out[name]; !seen {
				out[name] = strings.TrimSpace(val.String())
			}
		}
		name = ""
		val.Reset()
	}
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" {
				val.WriteByte(' ')
				val.Write(bytes.TrimSpace(line))
			}
			continue
		}
		flush()
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			break
		}
		lk := strings.ToLower(string(bytes.TrimSpace(k)))
		for _, w := range want {
			if lk == w {
				name = lk
				val.Write(v)
			}
		}
	}
	flush()
	return out
}

// Thunderbird's message flags in X-Mozilla-Status (nsMsgMessageFlags).
const (
	mozRead      = 0x0001
	mozReplied   = 0x0002
	mozMarked    = 0x0004
	mozExpunged  = 0x0008
	mozForwarded = 0x1000
)

// mboxMeta reads what an mbox message's header says about it: its flags
// (X-Mozilla-Status, X-Mozilla-Keys, Status, X-Status) and its Date.
func mboxMeta(head []byte) (flags []string, date time.Time, hasDate bool) {
	h := headerFields(head, "x-mozilla-status", "x-mozilla-keys", "status", "x-status", "date")
	if v, ok := h["x-mozilla-status"]; ok {
		if n, err := strconv.ParseUint(v, 16, 32); err == nil {
			for _, m := range []struct {
				bit  uint64
				flag string
			}{{mozRead, `\Seen`}, {mozReplied, `\Answered`}, {mozMarked, `\Flagged`}, {mozExpunged, `\Deleted`}, {mozForwarded, "$Forwarded"}} {
				if n&m.bit != 0 {
					flags = addFlag(flags, m.flag)
				}
			}
		}
	}
	for _, k := range strings.Fields(h["x-mozilla-keys"]) {
		if formats.ValidKeyword(k) {
			flags = addFlag(flags, k)
		}
	}
	for _, c := range h["status"] + h["x-status"] {
		switch c {
		case 'R':
			flags = addFlag(flags, `\Seen`)
		case 'A':
			flags = addFlag(flags, `\Answered`)
		case 'F':
			flags = addFlag(flags, `\Flagged`)
		case 'D':
			flags = addFlag(flags, `\Deleted`)
		case 'T':
			flags = addFlag(flags, `\Draft`)
		}
	}
	if v := h["date"]; v != "" {
		if t, err := mail.ParseDate(v); err == nil {
			return flags, t, true
		}
	}
	return flags, time.Time{}, false
}
