package backup

import (
	"bytes"
)

// maxHeader bounds the header bytes kept to extract metadata.
const maxHeader = 64 << 10

// headerCapture keeps the start of a message up to the end of its header.
type headerCapture struct {
	buf  []byte
	done bool
}

func (h *headerCapture) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	n := min(len(p), maxHeader-len(h.buf))
	h.buf = append(h.buf, p[:n]...)
	if bytes.Contains(h.buf, []byte("\n\n")) || bytes.Contains(h.buf, []byte("\n\r\n")) || len(h.buf) >= maxHeader {
		h.done = true
	}
	return len(p), nil
}
