package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/mailvault/mailvault/internal/dovecottest"
)

func TestGenerateDeterministic(t *testing.T) {
	opts := Options{Seed: 7, Messages: 300, Large: 1, LargeSize: 512 << 10}
	a, b := Generate(opts), Generate(opts)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two Generate calls with the same options differ")
	}
	opts.Seed = 8
	if reflect.DeepEqual(a, Generate(opts)) {
		t.Fatal("different seeds give the same corpus")
	}
	if n := len(Generate(Options{})); n != DefaultMessages+len(EdgeCases())+len(edgeExtraFolders) {
		t.Fatalf("default corpus has %d messages", n)
	}
}

func isEdge(body []byte) bool {
	for _, e := range EdgeCases() {
		if bytes.Equal(e, body) {
			return true
		}
	}
	return false
}

func TestGenerateShape(t *testing.T) {
	const largeSize = 3<<20 + 12345
	msgs := Generate(Options{Seed: 1, Large: 3, LargeSize: largeSize})
	perFolder := map[string]int{}
	flags := map[string]int{}
	unread, large := 0, 0
	for i, m := range msgs {
		perFolder[m.Folder]++
		if !slices.Contains(Folders(), m.Folder) {
			t.Errorf("message %d: folder %q is not in Folders()", i, m.Folder)
		}
		if !slices.Contains(m.Flags, `\Seen`) {
			unread++
		}
		for _, f := range m.Flags {
			flags[f]++
			if strings.EqualFold(f, `\Recent`) {
				t.Errorf("message %d has \\Recent", i)
			}
		}
		d := m.InternalDate
		if d.Location() != time.UTC || d.Nanosecond() != 0 || d.Year() < 2001 || d.Year() > 2026 {
			t.Errorf("message %d: InternalDate %v not UTC whole seconds in 2001..2026", i, d)
		}
		if isEdge(m.Body) {
			continue
		}
		if len(m.Body) > MaxSize {
			large++
			if len(m.Body) != largeSize {
				t.Errorf("large message %d has %d bytes, want %d", i, len(m.Body), largeSize)
			}
			checkLarge(t, i, m.Body)
			continue
		}
		if len(m.Body) < MinSize {
			t.Errorf("message %d: %d bytes, want at least %d", i, len(m.Body), MinSize)
		}
		checkMIME(t, i, m.Body)
	}
	if large != 3 {
		t.Errorf("%d large messages, want 3", large)
	}
	for _, f := range Folders() {
		if f == EmptyFolder {
			if perFolder[f] != 0 {
				t.Errorf("%s has %d messages, want none", f, perFolder[f])
			}
		} else if perFolder[f] == 0 {
			t.Errorf("folder %q has no messages", f)
		}
	}
	for _, f := range []string{`\Seen`, `\Answered`, `\Flagged`, `\Draft`, `\Deleted`, "$Junk", "$Label1", "Work"} {
		if flags[f] == 0 {
			t.Errorf("no message has flag %s", f)
		}
	}
	if unread == 0 {
		t.Error("no unread message")
	}
	t.Logf("%d messages, %d unread, per folder %v, flags %v", len(msgs), unread, perFolder, flags)
}

// checkMIME parses an ordinary message: the usual headers, CRLF only, and
// every MIME part decodes.
func checkMIME(t *testing.T, i int, body []byte) {
	t.Helper()
	if bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\n")) || bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\r")) {
		t.Errorf("message %d: not CRLF-only", i)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("message %d: %v", i, err)
	}
	for _, h := range []string{"From", "To", "Subject", "Date", "Message-Id", "Mime-Version", "Content-Type"} {
		if msg.Header.Get(h) == "" {
			t.Errorf("message %d: no %s header", i, h)
		}
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("message %d: Date: %v", i, err)
	}
	if _, err := msg.Header.AddressList("From"); err != nil {
		t.Errorf("message %d: From: %v", i, err)
	}
	if _, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		t.Errorf("message %d: Subject: %v", i, err)
	}
	walkMIME(t, i, msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body)
}

func walkMIME(t *testing.T, i int, ctype, cte string, r io.Reader) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		t.Errorf("message %d: Content-Type %q: %v", i, ctype, err)
		return
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(r, params["boundary"])
		parts := 0
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Errorf("message %d: multipart: %v", i, err)
				return
			}
			parts++
			walkMIME(t, i, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		}
		if parts < 2 {
			t.Errorf("message %d: %s with %d parts", i, mt, parts)
		}
		return
	}
	data, err := io.ReadAll(r)
	if err != nil {
		t.Errorf("message %d: read part: %v", i, err)
		return
	}
	if strings.EqualFold(cte, "base64") {
		if _, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(string(data), "\r\n", "")); err != nil {
			t.Errorf("message %d: base64 part: %v", i, err)
		}
	}
}

// checkLarge checks a large message: multipart/mixed with a base64
// attachment in lines of 76 characters making up most of the bytes.
func checkLarge(t *testing.T, i int, body []byte) {
	t.Helper()
	checkMIME(t, i, body)
	start := bytes.Index(body, []byte("Content-Transfer-Encoding: base64\r\n\r\n"))
	if start < 0 {
		t.Fatalf("large message %d: no base64 part", i)
	}
	sc := bufio.NewScanner(bytes.NewReader(body[start+len("Content-Transfer-Encoding: base64\r\n\r\n"):]))
	lines, short, b64bytes := 0, 0, 0
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "--") {
			break
		}
		lines++
		b64bytes += len(line) + 2
		if len(line) != 76 {
			short++
		}
		if len(line) > 76 {
			t.Fatalf("large message %d: base64 line of %d chars", i, len(line))
		}
	}
	if short > 1 {
		t.Errorf("large message %d: %d base64 lines are not 76 chars", i, short)
	}
	if b64bytes < len(body)*9/10 {
		t.Errorf("large message %d: attachment is %d of %d bytes", i, b64bytes, len(body))
	}
}

func TestEdgeCases(t *testing.T) {
	e := EdgeCases()
	if len(e) != len(EdgeCaseNames()) {
		t.Fatalf("EdgeCases has %d entries, EdgeCaseNames %d", len(e), len(EdgeCaseNames()))
	}
	body := func(name string) []byte {
		b, ok := e[name]
		if !ok {
			t.Fatalf("edge case %q missing", name)
		}
		return b
	}
	// The part after the header block.
	bodyPart := func(name string) []byte {
		b := body(name)
		if k := bytes.Index(b, []byte("\r\n\r\n")); k >= 0 {
			return b[k+4:]
		}
		if k := bytes.Index(b, []byte("\n\n")); k >= 0 {
			return b[k+2:]
		}
		t.Fatalf("%s: no header/body separator", name)
		return nil
	}
	checks := map[string]func() bool{
		EdgeFromLine:         func() bool { return bytes.Contains(body(EdgeFromLine), []byte("\r\nFrom me\r\n")) },
		EdgeFromQuoted:       func() bool { return bytes.Contains(body(EdgeFromQuoted), []byte("\r\n>From x\r\n")) },
		EdgeFromDoubleQuoted: func() bool { return bytes.Contains(body(EdgeFromDoubleQuoted), []byte("\r\n>>From y\r\n")) },
		EdgeFromFirstLine:    func() bool { return bytes.HasPrefix(bodyPart(EdgeFromFirstLine), []byte("From ")) },
		EdgeCRLF: func() bool {
			b := body(EdgeCRLF)
			return bytes.Count(b, []byte("\n")) == bytes.Count(b, []byte("\r\n")) && bytes.Count(b, []byte("\r")) == bytes.Count(b, []byte("\r\n"))
		},
		EdgeBareLF: func() bool {
			b := body(EdgeBareLF)
			return !bytes.Contains(b, []byte("\r")) && bytes.Count(b, []byte("\n")) > 10
		},
		EdgeMixedEOL: func() bool {
			b := body(EdgeMixedEOL)
			return bytes.Contains(b, []byte("\r\n")) && bytes.Count(b, []byte("\n")) > bytes.Count(b, []byte("\r\n"))
		},
		EdgeNoFinalNewline: func() bool {
			b := body(EdgeNoFinalNewline)
			return !bytes.HasSuffix(b, []byte("\n")) && !bytes.HasSuffix(b, []byte("\r"))
		},
		EdgeLoneCR: func() bool {
			b := body(EdgeLoneCR)
			return bytes.Count(b, []byte("\r")) > bytes.Count(b, []byte("\r\n"))
		},
		EdgeNUL: func() bool { return bytes.Contains(bodyPart(EdgeNUL), []byte{0}) },
		EdgeLatin1: func() bool {
			b := body(EdgeLatin1)
			k := bytes.Index(b, []byte("\r\n\r\n"))
			return bytes.ContainsAny(b[:k], "\xe9\xe7") && bytes.ContainsAny(b[k:], "\xf1\xe9") && !isUTF8(b)
		},
		EdgeUTF8: func() bool {
			b := body(EdgeUTF8)
			k := bytes.Index(b, []byte("\r\n\r\n"))
			return isUTF8(b) && hasHighBit(b[:k]) && hasHighBit(b[k:])
		},
		EdgeLongLine: func() bool {
			for _, l := range bytes.Split(body(EdgeLongLine), []byte("\r\n")) {
				if len(l) >= LongLineLen {
					return true
				}
			}
			return false
		},
		EdgeEmptyBody: func() bool { return len(bodyPart(EdgeEmptyBody)) == 0 },
		EdgeRFC2047: func() bool {
			b := string(body(EdgeRFC2047))
			msg, err := mail.ReadMessage(strings.NewReader(b))
			if err != nil {
				return false
			}
			dec := new(mime.WordDecoder)
			subj, err1 := dec.DecodeHeader(msg.Header.Get("Subject"))
			from, err2 := msg.Header.AddressList("From")
			return strings.Contains(b, "Subject: =?UTF-8?B?") && strings.Contains(b, "From: =?ISO-8859-1?Q?") &&
				err1 == nil && err2 == nil && subj == "Ärger über Öl — 日本語 ✓" && from[0].Name == "José Núñez"
		},
		EdgeNoMessageID: func() bool {
			msg, err := mail.ReadMessage(bytes.NewReader(body(EdgeNoMessageID)))
			return err == nil && msg.Header.Get("Message-Id") == "" && msg.Header.Get("From") != ""
		},
		EdgeDuplicate: func() bool { return bytes.Equal(body(EdgeDuplicate), body(EdgeFromLine)) },
	}
	for _, name := range EdgeCaseNames() {
		check, ok := checks[name]
		if !ok {
			t.Errorf("no check for edge case %q", name)
			continue
		}
		if !check() {
			t.Errorf("edge case %q lacks its property", name)
		}
		// Every edge case is a complete message with headers.
		if b := body(name); !bytes.Contains(b, []byte("From: ")) || !bytes.Contains(b, []byte("Subject: ")) || !bytes.Contains(b, []byte("Date: ")) {
			t.Errorf("edge case %q lacks From/Subject/Date headers", name)
		}
	}

	// Every edge case is in INBOX of the generated corpus, some also
	// elsewhere.
	where := map[string][]string{}
	for _, m := range Generate(Options{Seed: 3, Messages: 50}) {
		for name, b := range e {
			if bytes.Equal(b, m.Body) {
				where[name] = append(where[name], m.Folder)
			}
		}
	}
	others := map[string]bool{}
	for _, name := range EdgeCaseNames() {
		if !slices.Contains(where[name], "INBOX") {
			t.Errorf("edge case %q not in INBOX (in %v)", name, where[name])
		}
		for _, f := range where[name] {
			if f != "INBOX" {
				others[f] = true
			}
		}
	}
	if len(others) < 2 {
		t.Errorf("edge cases in only %d folders besides INBOX", len(others))
	}
}

func isUTF8(b []byte) bool { return strings.ToValidUTF8(string(b), "\uFFFD") == string(b) }

func hasHighBit(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return true
		}
	}
	return false
}

func TestWireForm(t *testing.T) {
	cases := map[string]string{
		"a\r\nb\r\n":      "a\r\nb\r\n",
		"a\nb\n":          "a\r\nb\r\n",
		"a\r\nb\nc":       "a\r\nb\r\nc",
		"a\rb\r\n":        "a\rb\r\n",
		"a\r\r\nb":        "a\r\nb",
		"a\x00b":          "a\x80b",
		"no final\r":      "no final\r",
		"":                "",
		"\n\n":            "\r\n\r\n",
		"x\r\n\r\n\nbody": "x\r\n\r\n\r\nbody",
	}
	for in, want := range cases {
		if got := string(WireForm([]byte(in))); got != want {
			t.Errorf("WireForm(%q) = %q, want %q", in, got, want)
		}
	}
	changed := map[string]bool{EdgeBareLF: true, EdgeMixedEOL: true, EdgeLoneCR: true, EdgeNUL: true}
	for name, b := range EdgeCases() {
		if got := !bytes.Equal(WireForm(b), b); got != changed[name] {
			t.Errorf("WireForm changes %s: %v, want %v", name, got, changed[name])
		}
	}
}

type fetched struct {
	uid   imap.UID
	flags []string
	date  time.Time
	body  []byte
}

// fetchAll returns every message of folder in UID order, with BODY.PEEK[]
// read fully off the wire.
func fetchAll(t *testing.T, c *imapclient.Client, folder string) []fetched {
	t.Helper()
	sel, err := c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT %q: %v", folder, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	cmd := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	var out []fetched
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var f fetched
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch item := item.(type) {
			case imapclient.FetchItemDataUID:
				f.uid = item.UID
			case imapclient.FetchItemDataFlags:
				for _, fl := range item.Flags {
					f.flags = append(f.flags, string(fl))
				}
			case imapclient.FetchItemDataInternalDate:
				f.date = item.Time
			case imapclient.FetchItemDataBodySection:
				if item.Literal == nil {
					t.Fatalf("%s: BODY[] without a literal", folder)
				}
				if f.body, err = io.ReadAll(item.Literal); err != nil {
					t.Fatalf("%s: read literal: %v", folder, err)
				}
			}
		}
		out = append(out, f)
	}
	if err := cmd.Close(); err != nil {
		t.Fatalf("FETCH %q: %v", folder, err)
	}
	if len(out) != int(sel.NumMessages) {
		t.Fatalf("FETCH %q returned %d messages, SELECT said %d", folder, len(out), sel.NumMessages)
	}
	slices.SortFunc(out, func(a, b fetched) int { return int(a.uid) - int(b.uid) })
	return out
}

// flagSet lower-cases flags and drops \Recent.
func flagSet(flags []string) []string {
	var s []string
	for _, f := range flags {
		f = strings.ToLower(f)
		if f != `\recent` && !slices.Contains(s, f) {
			s = append(s, f)
		}
	}
	slices.Sort(s)
	return s
}

func dial(t *testing.T, s *dovecottest.Server, user, pass string) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(s.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	return c
}

func TestLoadRoundTrip(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{Users: map[string]string{"alice": "pw"}})
	msgs := Generate(Options{Seed: 42, Messages: 1000, Large: 2})
	total := 0
	for _, m := range msgs {
		total += len(m.Body)
	}
	c := dial(t, s, "alice", "pw")
	start := time.Now()
	if err := Load(context.Background(), c, msgs); err != nil {
		t.Fatalf("Load: %v", err)
	}
	el := time.Since(start)
	t.Logf("loaded %d messages, %.1f MiB in %v (%.0f msg/s)", len(msgs), float64(total)/(1<<20), el.Round(time.Millisecond), float64(len(msgs))/el.Seconds())

	byFolder := map[string][]Message{}
	for _, m := range msgs {
		byFolder[m.Folder] = append(byFolder[m.Folder], m)
	}
	// A fresh connection, so nothing is served from the loading session.
	c2 := dial(t, s, "alice", "pw")
	exact, rewritten := 0, 0
	for _, folder := range Folders() {
		got := fetchAll(t, c2, folder)
		want := byFolder[folder]
		if len(got) != len(want) {
			t.Errorf("%s: %d messages on the server, want %d", folder, len(got), len(want))
			continue
		}
		for i, w := range want {
			g := got[i]
			wireBody := WireForm(w.Body)
			if !bytes.Equal(g.body, wireBody) {
				t.Errorf("%s #%d (UID %d): body differs (%d bytes, want %d)", folder, i, g.uid, len(g.body), len(wireBody))
			} else if bytes.Equal(wireBody, w.Body) {
				exact++
			} else {
				rewritten++
			}
			if gf, wf := flagSet(g.flags), flagSet(w.Flags); !slices.Equal(gf, wf) {
				t.Errorf("%s #%d: flags %v, want %v", folder, i, gf, wf)
			}
			if !g.date.Equal(w.InternalDate) {
				t.Errorf("%s #%d: INTERNALDATE %v, want %v", folder, i, g.date, w.InternalDate)
			}
		}
	}
	// Only the four edge cases that are not valid on the IMAP wire (bare
	// LF, mixed line endings, lone CR, NUL) may be rewritten, once in
	// INBOX each.
	if rewritten != 4 || exact != len(msgs)-4 {
		t.Errorf("%d messages byte-exact, %d rewritten by the server; want %d and 4", exact, rewritten, len(msgs)-4)
	}

	// A second Load skips existing folders and creates new parents.
	extra := []Message{{Folder: "New/Sub", Flags: []string{`\Seen`}, InternalDate: time.Date(2020, 2, 29, 12, 0, 0, 0, time.UTC), Body: EdgeCases()[EdgeCRLF]}}
	if err := Load(context.Background(), c, extra); err != nil {
		t.Fatalf("second Load: %v", err)
	}
	if got := fetchAll(t, c2, "New/Sub"); len(got) != 1 || !bytes.Equal(got[0].body, extra[0].Body) {
		t.Errorf("New/Sub after second Load: %d messages", len(got))
	}
	if got := fetchAll(t, c2, "INBOX"); len(got) != len(byFolder["INBOX"]) {
		t.Errorf("second Load changed INBOX: %d messages", len(got))
	}
}

func TestLoadErrors(t *testing.T) {
	s := dovecottest.Start(t, dovecottest.Options{
		Users: map[string]string{"q": "pw"},
		Quota: map[string]string{"q": "*:storage=50K"},
	})
	c := dial(t, s, "q", "pw")

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Load(ctx, c, Generate(Options{Seed: 1, Messages: 5})); !errors.Is(err, context.Canceled) {
		t.Fatalf("Load with a cancelled context: %v", err)
	}

	err := Load(context.Background(), c, Generate(Options{Seed: 1, Messages: 40}))
	var imapErr *imap.Error
	if !errors.As(err, &imapErr) || imapErr.Code != imap.ResponseCodeOverQuota {
		t.Fatalf("Load past the quota: got %v, want NO [OVERQUOTA]", err)
	}
	if !strings.Contains(err.Error(), "append message ") {
		t.Errorf("error does not name the message: %v", err)
	}
	t.Logf("Load past the quota: %v", err)
}

// Every subject template is filled in properly: a template without a
// number or date must not come out with fmt's "%!(EXTRA …)" appended.
func TestGenerateSubjects(t *testing.T) {
	dec := new(mime.WordDecoder)
	seen := map[string]bool{}
	for _, m := range Generate(Options{Seed: 3, Messages: 600}) {
		msg, err := mail.ReadMessage(bytes.NewReader(m.Body))
		if err != nil {
			continue // edge cases with odd headers
		}
		s, err := dec.DecodeHeader(msg.Header.Get("Subject"))
		if err != nil {
			t.Fatalf("decode subject %q: %v", msg.Header.Get("Subject"), err)
		}
		if strings.Contains(s, "%!") {
			t.Errorf("subject %q holds a fmt error", s)
		}
		seen[s] = true
	}
	for _, want := range []string{"Résumé attached", "Reminder: dentist appointment", "Fwd: photos from the trip"} {
		if !seen[want] {
			t.Errorf("no message has the subject %q", want)
		}
	}
}
