package corpus

import (
	"strings"
)

// Names of the bodies returned by EdgeCases.
const (
	EdgeFromLine         = "from-line"              // body line "From me" at line start
	EdgeFromQuoted       = "from-quoted"            // body line ">From x"
	EdgeFromDoubleQuoted = "from-double-quoted"     // body line ">>From y"
	EdgeFromFirstLine    = "from-first-line"        // first body line starts with "From "
	EdgeCRLF             = "crlf-throughout"        // CRLF line endings everywhere
	EdgeBareLF           = "bare-lf"                // LF line endings everywhere, headers included
	EdgeMixedEOL         = "mixed-crlf-lf"          // CRLF and bare LF mixed
	EdgeNoFinalNewline   = "no-final-newline"       // last line has no line ending
	EdgeLoneCR           = "lone-cr"                // a CR that is not followed by LF
	EdgeNUL              = "nul-bytes"              // NUL bytes in the body
	EdgeLatin1           = "latin1-8bit"            // raw ISO-8859-1 bytes in headers and body
	EdgeUTF8             = "utf8-8bit"              // raw UTF-8 bytes in headers and body
	EdgeLongLine         = "long-line"              // one body line of 100 KiB
	EdgeEmptyBody        = "empty-body"             // headers and the blank line, no body
	EdgeRFC2047          = "rfc2047-encoded"        // encoded-words in Subject and From
	EdgeNoMessageID      = "no-message-id"          // no Message-ID header
	EdgeDuplicate        = "duplicate-of-from-line" // exactly the bytes of EdgeFromLine
)

// LongLineLen is the length of the single body line of EdgeLongLine,
// without its CRLF.
const LongLineLen = 100 * 1024

// edgeHeader returns a complete CRLF header block (with the blank line).
func edgeHeader(name string, extra ...string) string {
	var b strings.Builder
	b.WriteString("Return-Path: <edge@example.com>\r\n")
	b.WriteString("From: Edge Case <edge@example.com>\r\n")
	b.WriteString("To: Alex Example <alex@example.org>\r\n")
	b.WriteString("Subject: edge case: " + name + "\r\n")
	b.WriteString("Date: Tue, 05 Mar 2019 10:00:00 +0000\r\n")
	b.WriteString("Message-ID: <edge-" + name + "@example.com>\r\n")
	b.WriteString("MIME-Version: 1.0\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	if len(extra) == 0 {
		b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
		b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	}
	b.WriteString("\r\n")
	return b.String()
}

// EdgeCases returns named message bodies that stress mbox storage and
// byte-exact round trips. Every one is a complete message with headers.
// The names are the Edge* constants. EdgeDuplicate holds exactly the bytes
// of EdgeFromLine, for deduplication tests. A new map is returned on every
// call.
func EdgeCases() map[string][]byte {
	m := make(map[string][]byte)
	add := func(name, s string) { m[name] = []byte(s) }

	fromLine := edgeHeader(EdgeFromLine) +
		"Hi,\r\n\r\nthe next line starts with the mbox separator word:\r\n" +
		"From me, with love.\r\nFrom me\r\n\r\nBye.\r\n"
	add(EdgeFromLine, fromLine)
	add(EdgeDuplicate, fromLine)
	add(EdgeFromQuoted, edgeHeader(EdgeFromQuoted)+
		"Quoted once already:\r\n>From x\r\n>From x and more\r\nend\r\n")
	add(EdgeFromDoubleQuoted, edgeHeader(EdgeFromDoubleQuoted)+
		"Quoted twice:\r\n>>From y\r\n>From x\r\nFrom z\r\nend\r\n")
	add(EdgeFromFirstLine, edgeHeader(EdgeFromFirstLine)+
		"From the desk of the director: please read.\r\nSecond line.\r\n")
	add(EdgeCRLF, edgeHeader(EdgeCRLF)+
		"Line one.\r\nLine two.\r\n\r\nParagraph two, line one.\r\n.\r\n..\r\nLast line.\r\n")
	add(EdgeBareLF, strings.ReplaceAll(edgeHeader(EdgeBareLF), "\r\n", "\n")+
		"Every line of this message ends in a bare LF.\nSecond line.\n\nLast line.\n")
	add(EdgeMixedEOL, edgeHeader(EdgeMixedEOL)+
		"CRLF line.\r\nLF line.\nCRLF again.\r\n\nLF after an empty LF line.\nlast CRLF\r\n")
	add(EdgeNoFinalNewline, edgeHeader(EdgeNoFinalNewline)+
		"First line.\r\nThe last line has no line ending.")
	add(EdgeLoneCR, edgeHeader(EdgeLoneCR)+
		"A lone CR\rin the middle of a line.\r\nAnother at the end\r\r\nEnd.\r\n")
	add(EdgeNUL, edgeHeader(EdgeNUL, "Content-Type: application/octet-stream", "Content-Transfer-Encoding: binary")+
		"NUL here:\x00, two here:\x00\x00.\r\n\x00 at line start.\r\n")
	add(EdgeLatin1, strings.Join([]string{
		"From: Jos\xe9 N\xfa\xf1ez <jose@example.es>",
		"To: Fran\xe7oise <francoise@example.fr>",
		"Subject: Caf\xe9 cr\xe8me \xe0 la fran\xe7aise",
		"Date: Wed, 06 Mar 2019 11:12:13 +0100",
		"Message-ID: <edge-" + EdgeLatin1 + "@example.es>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=iso-8859-1",
		"Content-Transfer-Encoding: 8bit",
		"",
		"Se\xf1or, \xbfqu\xe9 tal? \xc7a va tr\xe8s bien, merci. \xa9 \xb5 \xff",
		"",
	}, "\r\n"))
	add(EdgeUTF8, strings.Join([]string{
		"From: Zoë Brontë <zoe@example.com>",
		"To: 山田太郎 <taro@example.jp>",
		"Subject: Grüße aus Köln — 日本語の件名 ✓",
		"Date: Thu, 07 Mar 2019 12:13:14 +0900",
		"Message-ID: <edge-" + EdgeUTF8 + "@example.jp>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: 8bit",
		"",
		"Raw UTF-8 in the body: ½ € ñ ß ü 中文 русский 🙂",
		"",
	}, "\r\n"))
	add(EdgeLongLine, edgeHeader(EdgeLongLine)+
		"A single 100 KiB line follows.\r\n"+longLine()+"\r\nend\r\n")
	add(EdgeEmptyBody, edgeHeader(EdgeEmptyBody))
	add(EdgeRFC2047, strings.Join([]string{
		"From: =?ISO-8859-1?Q?Jos=E9_N=FA=F1ez?= <jose@example.es>",
		"To: =?UTF-8?Q?Zo=C3=AB?= <zoe@example.com>",
		"Subject: =?UTF-8?B?w4RyZ2VyIMO8YmVyIMOWbCDigJQg5pel5pys6KqeIOKckw==?=",
		"Date: Fri, 08 Mar 2019 13:14:15 -0500",
		"Message-ID: <edge-" + EdgeRFC2047 + "@example.es>",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: quoted-printable",
		"",
		"Gr=C3=BC=C3=9Fe, the subject decodes to \"=C3=84rger =C3=BCber =C3=96l =E2=",
		"=80=94 =E6=97=A5=E6=9C=AC=E8=AA=9E =E2=9C=93\".",
		"",
	}, "\r\n"))
	add(EdgeNoMessageID, strings.Replace(edgeHeader(EdgeNoMessageID),
		"Message-ID: <edge-"+EdgeNoMessageID+"@example.com>\r\n", "", 1)+
		"This message has no Message-ID header.\r\n")
	return m
}

// longLine returns LongLineLen printable ASCII bytes without a line break.
func longLine() string {
	const pattern = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-"
	var b strings.Builder
	b.Grow(LongLineLen)
	for b.Len() < LongLineLen {
		b.WriteString(pattern)
	}
	return b.String()[:LongLineLen]
}

// EdgeCaseNames returns the names of EdgeCases in a fixed order.
func EdgeCaseNames() []string {
	return []string{
		EdgeFromLine, EdgeFromQuoted, EdgeFromDoubleQuoted, EdgeFromFirstLine,
		EdgeCRLF, EdgeBareLF, EdgeMixedEOL, EdgeNoFinalNewline, EdgeLoneCR,
		EdgeNUL, EdgeLatin1, EdgeUTF8, EdgeLongLine, EdgeEmptyBody,
		EdgeRFC2047, EdgeNoMessageID, EdgeDuplicate,
	}
}
