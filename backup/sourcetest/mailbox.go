package sourcetest

import (
	"bytes"
	"fmt"
	"strings"
	"time"
)

// Message is one message of the suite's mailbox.
type Message struct {
	// Body is the exact message: CRLF line endings, a final CRLF, no NUL
	// and no line starting with ">From " (an mbox reader unquotes those),
	// so that every kind of store can hold it unchanged.
	Body []byte
	// Flags are IMAP system flags and keywords (never \Recent).
	Flags []string
	// InternalDate is in UTC with whole seconds. Every body carries a Date
	// header with the same time, so that a source that has no INTERNALDATE
	// of its own (POP3: the Date header) can report it too.
	InternalDate time.Time
}

// Folder is one folder of the suite's mailbox.
type Folder struct {
	// Name has its levels joined by "/".
	Name     string
	Messages []Message
}

// Mailbox returns the mailbox the suite checks a source against: INBOX
// with messages that test byte-exactness (a "From " line, a line that
// starts with a dot, 8-bit text, a 4 KiB line, two identical messages, a
// 1.5 MiB message last), a nested folder, a folder whose name is not
// ASCII and holds a space and an '&', and an empty folder. With inboxOnly
// (a POP3 source) it is INBOX alone.
//
// Messages are returned in the order a store must receive them, which is
// the order a source lists them in. Every call returns new slices.
func Mailbox(inboxOnly bool) []Folder {
	date := func(i int) time.Time {
		return time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * 97 * time.Minute)
	}
	n := 0
	msg := func(subject, body string, flags ...string) Message {
		n++
		d := date(n)
		b := fmt.Sprintf("Date: %s\r\nFrom: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: %s\r\nMessage-ID: <suite-%d@example.com>\r\n\r\n%s",
			d.Format(time.RFC1123Z), subject, n, body)
		return Message{Body: []byte(b), Flags: flags, InternalDate: d}
	}
	var long bytes.Buffer
	for long.Len() < 1536<<10 {
		fmt.Fprintf(&long, "%07d the quick brown fox jumps over the lazy dog, again and again\r\n", long.Len())
	}
	dup := msg("twice", "This message is in INBOX twice, byte for byte.\r\n", `\Seen`)
	inbox := []Message{
		msg("plain", "Hello Bob,\r\n\r\nshort and plain.\r\n", `\Seen`),
		msg("from line", "From the start of a line:\r\nFrom here it looks like an mbox separator.\r\n\r\nFrom me\r\n", `\Seen`, `\Flagged`),
		msg("dots", ".\r\n..\r\n.hidden line starting with a dot\r\n.\r\nend\r\n", `\Answered`),
		msg("8bit", "Grüße aus Köln, 東京, ☃.\r\n", "$Label1"),
		msg("long line", strings.Repeat("x", 4096)+"\r\n", `\Seen`, "Work"),
		dup,
		{Body: bytes.Clone(dup.Body), Flags: dup.Flags, InternalDate: dup.InternalDate},
		msg("big", long.String()),
	}
	if inboxOnly {
		return []Folder{{Name: "INBOX", Messages: inbox}}
	}
	return []Folder{
		{Name: "INBOX", Messages: inbox},
		{Name: "Work", Messages: []Message{msg("work 1", "Work.\r\n", `\Seen`), msg("work 2", "More work.\r\n")}},
		{Name: "Work/2026", Messages: []Message{msg("nested", "One level down.\r\n", `\Flagged`)}},
		{Name: "Entwürfe & Co", Messages: []Message{msg("entwurf", "Ein Entwurf.\r\n", `\Draft`)}},
		{Name: "Empty"},
	}
}
