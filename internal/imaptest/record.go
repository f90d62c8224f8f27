package imaptest

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// maxRecordedLine bounds the memory one recorded command line may use; the
// rest of a longer line is dropped from the record (not from the stream).
const maxRecordedLine = 64 * 1024

// cmdLog is the list of command lines received by a server, shared by all
// of its connections.
type cmdLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *cmdLog) add(line string) {
	l.mu.Lock()
	l.lines = append(l.lines, line)
	l.mu.Unlock()
}

// snapshot returns a copy of the lines recorded so far.
func (l *cmdLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// literalRE matches the literal announcement that ends a command line
// segment: {n}, {n+}, {n-} and their literal8 forms ~{n}.
var literalRE = regexp.MustCompile(`~?\{([0-9]+)[+-]?\}$`)

// lineRecorder is an io.Writer fed with the bytes a client sends on one
// connection. It splits them into command lines, skips literal data (keeping
// the {n} announcements), strips tags and redacts credentials before adding
// each command to a cmdLog.
type lineRecorder struct {
	log *cmdLog
	// onCommand, if set, is called with the tag and the upper-cased command
	// name of every complete command ("UID FETCH" for UID commands).
	onCommand func(tag, name string)

	buf     []byte // current line segment
	cmd     strings.Builder
	literal int64 // literal bytes still to skip
	sasl    bool  // inside an AUTHENTICATE exchange without initial response
}

// Write implements io.Writer. It never fails.
func (r *lineRecorder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if r.literal > 0 {
			k := int64(len(p))
			if k > r.literal {
				k = r.literal
			}
			p = p[k:]
			r.literal -= k
			continue
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			r.appendBuf(p)
			break
		}
		r.appendBuf(p[:i])
		p = p[i+1:]
		seg := strings.TrimSuffix(string(r.buf), "\r")
		r.buf = r.buf[:0]
		if r.cmd.Len() < maxRecordedLine {
			r.cmd.WriteString(seg)
		}
		if m := literalRE.FindStringSubmatch(seg); m != nil {
			size, err := strconv.ParseInt(m[1], 10, 64)
			if err == nil {
				r.literal = size
				continue
			}
		}
		r.finish(r.cmd.String())
		r.cmd.Reset()
	}
	return n, nil
}

func (r *lineRecorder) appendBuf(p []byte) {
	if room := maxRecordedLine - len(r.buf); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		r.buf = append(r.buf, p...)
	}
}

// finish records one complete command.
func (r *lineRecorder) finish(line string) {
	if line == "" {
		return
	}
	tag, rest, hasSpace := strings.Cut(line, " ")
	if !hasSpace {
		// Not a tagged command: IDLE's DONE, a SASL response or garbage.
		if r.sasl {
			r.log.add("<redacted>")
			return
		}
		r.log.add(line)
		return
	}
	r.sasl = false

	fields := strings.Fields(rest)
	name := ""
	if len(fields) > 0 {
		name = strings.ToUpper(fields[0])
	}
	if name == "UID" && len(fields) > 1 {
		name += " " + strings.ToUpper(fields[1])
	}
	switch name {
	case "LOGIN":
		rest = fields[0] + " <redacted>"
	case "AUTHENTICATE":
		switch len(fields) {
		case 1:
		case 2:
			rest = fields[0] + " " + fields[1]
			r.sasl = true
		default:
			rest = fields[0] + " " + fields[1] + " <redacted>"
		}
	}
	r.log.add(rest)
	if r.onCommand != nil {
		r.onCommand(tag, name)
	}
}
