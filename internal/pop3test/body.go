package pop3test

import (
	"bytes"
	"math"
	"strconv"
)

// splitLines splits b after every LF; the last line may lack one.
func splitLines(b []byte) [][]byte {
	var lines [][]byte
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			lines = append(lines, b)
			break
		}
		lines = append(lines, b[:i+1])
		b = b[i+1:]
	}
	return lines
}

// wire returns body as sent in a multi-line response, without the
// terminating ".\r\n": every line that starts with "." gets one more, and a
// final line without a line ending gets CRLF.
func wire(body []byte) []byte {
	var out bytes.Buffer
	out.Grow(len(body) + len(body)/64 + 2)
	for _, l := range splitLines(body) {
		if l[0] == '.' {
			out.WriteByte('.')
		}
		out.Write(l)
	}
	if len(body) > 0 && body[len(body)-1] != '\n' {
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// top returns the header of body, the blank line that ends it and the first
// n lines after it (RFC 1939 TOP). A message without a blank line is all
// header and returned whole.
func top(body []byte, n int64) []byte {
	pos := 0
	inHeader := true
	for _, l := range splitLines(body) {
		if inHeader {
			pos += len(l)
			if bytes.Equal(l, []byte("\r\n")) || bytes.Equal(l, []byte("\n")) {
				inHeader = false
			}
			continue
		}
		if n <= 0 {
			break
		}
		n--
		pos += len(l)
	}
	return body[:pos]
}

// parseNumber parses a non-negative decimal argument. Values too large for
// an int64 saturate at math.MaxInt64.
func parseNumber(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return math.MaxInt64, true
	}
	return n, true
}
