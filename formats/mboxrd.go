package formats

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"
)

// fromPrefix is what makes a line an mbox message separator.
const fromPrefix = "From "

// FromLine returns the mbox separator line written before a message:
// "From MAILER-DAEMON " followed by the asctime form of date in UTC and "\n".
func FromLine(date time.Time) []byte {
	return []byte("From MAILER-DAEMON " + date.UTC().Format("Mon Jan _2 15:04:05 2006") + "\n")
}

// QuoteWriter writes a message with mboxrd quoting: every line that matches
// ^>*From gains one leading '>'. Lines are delimited by LF only, so CRLF,
// bare CR, NUL and 8-bit bytes pass through unchanged. The output does not
// depend on how the input is split into Write calls. Call Flush after the
// last Write.
type QuoteWriter struct {
	w       io.Writer
	atStart bool // the current line so far is empty or a run of '>'
	match   int  // bytes of "From " matched (and held back) at line start
	last    byte // last input byte
	n       int64
	buf     []byte
	err     error
}

// NewQuoteWriter returns a QuoteWriter writing to w.
func NewQuoteWriter(w io.Writer) *QuoteWriter {
	return &QuoteWriter{w: w, atStart: true, last: '\n'}
}

// Reset makes q write a new message to w, reusing its buffer.
func (q *QuoteWriter) Reset(w io.Writer) {
	*q = QuoteWriter{w: w, atStart: true, last: '\n', buf: q.buf[:0]}
}

// Written is the number of unquoted bytes accepted so far.
func (q *QuoteWriter) Written() int64 { return q.n }

// EndsWithNewline reports whether the input so far is empty or ends in LF.
func (q *QuoteWriter) EndsWithNewline() bool { return q.last == '\n' }

// Write implements io.Writer.
func (q *QuoteWriter) Write(p []byte) (int, error) {
	if q.err != nil {
		return 0, q.err
	}
	out := q.buf[:0]
	for i := 0; i < len(p); {
		if !q.atStart {
			// Copy up to and including the next LF in one go.
			j := i
			for j < len(p) && p[j] != '\n' {
				j++
			}
			if j < len(p) {
				j++
				q.atStart = true
			}
			out = append(out, p[i:j]...)
			i = j
			continue
		}
		c := p[i]
		i++
		switch {
		case q.match == 0 && c == '>':
			out = append(out, c)
		case c == fromPrefix[q.match]:
			q.match++
			if q.match == len(fromPrefix) {
				out = append(out, '>')
				out = append(out, fromPrefix...)
				q.match = 0
				q.atStart = false
			}
		default:
			out = append(out, fromPrefix[:q.match]...)
			q.match = 0
			out = append(out, c)
			q.atStart = c == '\n'
		}
	}
	if len(p) > 0 {
		q.last = p[len(p)-1]
	}
	q.buf = out
	if len(out) > 0 {
		if _, err := q.w.Write(out); err != nil {
			q.err = err
			return 0, err
		}
	}
	q.n += int64(len(p))
	return len(p), nil
}

// Flush writes any bytes held back while matching "From " at a line start.
func (q *QuoteWriter) Flush() error {
	if q.err != nil {
		return q.err
	}
	if q.match > 0 {
		if _, err := io.WriteString(q.w, fromPrefix[:q.match]); err != nil {
			q.err = err
			return err
		}
		q.match = 0
	}
	return nil
}

// UnquoteReader reverses mboxrd quoting: every line that matches ^>+From
// loses one leading '>'. It reads from r and returns unquoted bytes.
type UnquoteReader struct {
	r       io.ByteReader
	pr      peekReader // r, when it can lend its buffer: lines are then copied whole
	atStart bool
	gt      int // '>' bytes held back at line start
	match   int // bytes of "From " held back after them
	// pending output, drained before more input is read
	pendGt   int
	pendFrom int // emit fromPrefix[pendPos:pendFrom]
	pendPos  int
	pendByte int // -1 when none
	err      error
}

// NewUnquoteReader returns an UnquoteReader reading from r. If r is not an
// io.ByteReader it is wrapped in a bufio.Reader.
func NewUnquoteReader(r io.Reader) *UnquoteReader {
	br, ok := r.(io.ByteReader)
	if !ok {
		br = bufio.NewReader(r)
	}
	pr, _ := br.(peekReader)
	return &UnquoteReader{r: br, pr: pr, atStart: true, pendByte: -1}
}

// peekReader is a buffered reader (bufio.Reader) whose buffer can be
// looked at and skipped.
type peekReader interface {
	io.ByteReader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Buffered() int
}

// Read implements io.Reader.
func (u *UnquoteReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		// Drain pending output first.
		if u.pendGt > 0 {
			u.pendGt--
			p[n] = '>'
			n++
			continue
		}
		if u.pendPos < u.pendFrom {
			p[n] = fromPrefix[u.pendPos]
			u.pendPos++
			n++
			continue
		}
		if u.pendByte >= 0 {
			p[n] = byte(u.pendByte)
			u.pendByte = -1
			n++
			continue
		}
		if u.err != nil {
			break
		}
		if !u.atStart && u.pr != nil {
			// Inside a line nothing is unquoted: copy up to its end
			// straight from the buffer.
			if k := min(u.pr.Buffered(), len(p)-n); k > 0 {
				buf, _ := u.pr.Peek(k)
				if i := bytes.IndexByte(buf, '\n'); i >= 0 {
					buf = buf[:i+1]
					u.atStart = true
				}
				n += copy(p[n:], buf)
				u.pr.Discard(len(buf))
				continue
			}
		}
		c, err := u.r.ReadByte()
		if err != nil {
			u.err = err
			// Release anything held at the end of input.
			u.pendGt, u.gt = u.gt, 0
			u.pendFrom, u.pendPos, u.match = u.match, 0, 0
			continue
		}
		if !u.atStart {
			p[n] = c
			n++
			if c == '\n' {
				u.atStart = true
			}
			continue
		}
		switch {
		case u.match == 0 && c == '>':
			u.gt++
		case u.gt > 0 && c == fromPrefix[u.match]:
			u.match++
			if u.match == len(fromPrefix) {
				u.pendGt, u.gt = u.gt-1, 0
				u.pendFrom, u.pendPos, u.match = len(fromPrefix), 0, 0
				u.atStart = false
			}
		default:
			u.pendGt, u.gt = u.gt, 0
			u.pendFrom, u.pendPos, u.match = u.match, 0, 0
			u.pendByte = int(c)
			u.atStart = c == '\n'
		}
	}
	if n == 0 && u.err != nil {
		return 0, u.err
	}
	return n, nil
}

// errShortRecord reports a record that ends before its recorded size.
var errShortRecord = errors.New("formats: record shorter than its recorded size")
