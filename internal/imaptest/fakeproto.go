package imaptest

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"unicode/utf16"
)

// maxFakeLiteral bounds the literals the fake accepts from clients.
const maxFakeLiteral = 16 << 20

// tokKind is the kind of a token of a command's arguments.
type tokKind int

const (
	tokAtom   tokKind = iota // atom, number, sequence set, FETCH item...
	tokString                // quoted string or literal
	tokList                  // parenthesized list
)

// tok is one argument of a command, as parsed by the fake.
type tok struct {
	kind tokKind
	s    string // atom text or string value
	list []tok
}

// str returns the token as an astring: the value of a string or the text of
// an atom. ok is false for lists.
func (t tok) str() (string, bool) {
	return t.s, t.kind != tokList
}

// fakeCmd is a command as read by the fake server.
type fakeCmd struct {
	tag  string
	name string // upper case; "UID FETCH" etc. for UID commands
	args []tok
}

// errSyntax is returned for a command that cannot be parsed.
type errSyntax struct{ msg string }

func (e *errSyntax) Error() string { return e.msg }

// readCommand reads one command, with its literals, from r. For
// synchronizing literals it writes a continuation request to w.
func readCommand(r *bufio.Reader, w *bufio.Writer) (*fakeCmd, error) {
	var text []byte // command text; each literal replaced by a NUL byte
	var lits []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line != "" {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		m := literalRE.FindStringSubmatchIndex(line)
		if m == nil {
			text = append(text, line...)
			break
		}
		size, err := strconv.ParseInt(line[m[2]:m[3]], 10, 64)
		if err != nil || size > maxFakeLiteral {
			return nil, &errSyntax{"literal too big"}
		}
		text = append(text, line[:m[0]]...)
		text = append(text, 0)
		if nonSync := strings.HasSuffix(line, "+}") || strings.HasSuffix(line, "-}"); !nonSync {
			if _, err := w.WriteString("+ Ready for literal data\r\n"); err != nil {
				return nil, err
			}
			if err := w.Flush(); err != nil {
				return nil, err
			}
		}
		lit := make([]byte, size)
		if _, err := io.ReadFull(r, lit); err != nil {
			return nil, err
		}
		lits = append(lits, string(lit))
	}

	s := string(text)
	tag, rest, ok := strings.Cut(s, " ")
	if !ok || tag == "" {
		return &fakeCmd{tag: tag}, &errSyntax{"missing command name"}
	}
	name, rest, _ := strings.Cut(rest, " ")
	cmd := &fakeCmd{tag: tag, name: strings.ToUpper(name)}
	if cmd.name == "UID" {
		sub, r2, _ := strings.Cut(rest, " ")
		cmd.name += " " + strings.ToUpper(sub)
		rest = r2
	}
	lx := &lexer{s: rest, lits: lits}
	args, err := lx.tokens(false)
	if err != nil {
		return cmd, err
	}
	cmd.args = args
	return cmd, nil
}

// lexer splits command arguments into tokens. Literals appear in s as NUL
// bytes and are taken, in order, from lits.
type lexer struct {
	s    string
	i    int
	lits []string
}

func (lx *lexer) tokens(inList bool) ([]tok, error) {
	var out []tok
	for {
		for lx.i < len(lx.s) && lx.s[lx.i] == ' ' {
			lx.i++
		}
		if lx.i >= len(lx.s) {
			if inList {
				return nil, &errSyntax{"unterminated list"}
			}
			return out, nil
		}
		switch c := lx.s[lx.i]; c {
		case ')':
			if !inList {
				return nil, &errSyntax{"unexpected )"}
			}
			lx.i++
			return out, nil
		case '(':
			lx.i++
			sub, err := lx.tokens(true)
			if err != nil {
				return nil, err
			}
			out = append(out, tok{kind: tokList, list: sub})
		case '"':
			s, err := lx.quoted()
			if err != nil {
				return nil, err
			}
			out = append(out, tok{kind: tokString, s: s})
		case 0:
			lx.i++
			if len(lx.lits) == 0 {
				return nil, &errSyntax{"bad literal"}
			}
			out = append(out, tok{kind: tokString, s: lx.lits[0]})
			lx.lits = lx.lits[1:]
		default:
			out = append(out, tok{kind: tokAtom, s: lx.atom()})
		}
	}
}

func (lx *lexer) quoted() (string, error) {
	var b strings.Builder
	lx.i++ // opening quote
	for lx.i < len(lx.s) {
		c := lx.s[lx.i]
		lx.i++
		switch c {
		case '"':
			return b.String(), nil
		case '\\':
			if lx.i >= len(lx.s) {
				return "", &errSyntax{"bad quoted string"}
			}
			b.WriteByte(lx.s[lx.i])
			lx.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", &errSyntax{"unterminated quoted string"}
}

// atom reads an atom. A bracketed part (as in BODY.PEEK[HEADER.FIELDS (A)])
// may contain spaces and parentheses.
func (lx *lexer) atom() string {
	start := lx.i
	depth := 0
	for lx.i < len(lx.s) {
		c := lx.s[lx.i]
		switch {
		case c == '[':
			depth++
		case c == ']' && depth > 0:
			depth--
		case depth == 0 && (c == ' ' || c == '(' || c == ')' || c == 0):
			return lx.s[start:lx.i]
		}
		lx.i++
	}
	return lx.s[start:lx.i]
}

// star stands for "*" in a parsed sequence set.
const star = math.MaxUint32

// numRange is one element of a sequence set; star marks "*".
type numRange struct{ lo, hi uint32 }

// parseNumSet parses a sequence set such as 1,3:5,7:*.
func parseNumSet(s string) ([]numRange, error) {
	if s == "" {
		return nil, errors.New("empty set")
	}
	num := func(p string) (uint32, error) {
		if p == "*" {
			return star, nil
		}
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("bad number %q", p)
		}
		return uint32(n), nil
	}
	var out []numRange
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := num(a)
		if err != nil {
			return nil, err
		}
		hi := lo
		if isRange {
			if hi, err = num(b); err != nil {
				return nil, err
			}
		}
		out = append(out, numRange{lo, hi})
	}
	return out, nil
}

// resolve replaces star by max and orders the bounds.
func (r numRange) resolve(max uint32) (lo, hi uint32) {
	lo, hi = r.lo, r.hi
	if lo == star {
		lo = max
	}
	if hi == star {
		hi = max
	}
	if lo > hi {
		lo, hi = hi, lo
	}
	return lo, hi
}

// mUTF-7 (RFC 3501 section 5.1.3), for folder names.
var mutf7 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

// encodeMUTF7 encodes a UTF-8 folder name in modified UTF-7.
func encodeMUTF7(s string) string {
	var b strings.Builder
	var run []rune
	flush := func() {
		if len(run) == 0 {
			return
		}
		u := utf16.Encode(run)
		buf := make([]byte, 0, 2*len(u))
		for _, x := range u {
			buf = append(buf, byte(x>>8), byte(x))
		}
		b.WriteByte('&')
		b.WriteString(mutf7.EncodeToString(buf))
		b.WriteByte('-')
		run = run[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				b.WriteString("&-")
			} else {
				b.WriteRune(r)
			}
			continue
		}
		run = append(run, r)
	}
	flush()
	return b.String()
}

// decodeMUTF7 decodes a modified UTF-7 folder name. Bytes outside the
// shifted sections are kept as they are, so raw UTF-8 passes through.
func decodeMUTF7(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); {
		if s[i] != '&' {
			b.WriteByte(s[i])
			i++
			continue
		}
		j := strings.IndexByte(s[i+1:], '-')
		if j < 0 {
			return "", errors.New("unterminated mUTF-7 section")
		}
		j += i + 1
		if j == i+1 {
			b.WriteByte('&')
			i = j + 1
			continue
		}
		raw, err := mutf7.DecodeString(s[i+1 : j])
		if err != nil || len(raw)%2 != 0 {
			return "", errors.New("bad mUTF-7 section")
		}
		u := make([]uint16, len(raw)/2)
		for k := range u {
			u[k] = uint16(raw[2*k])<<8 | uint16(raw[2*k+1])
		}
		b.WriteString(string(utf16.Decode(u)))
		i = j + 1
	}
	return b.String(), nil
}

// quote returns s as an IMAP quoted string.
func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
