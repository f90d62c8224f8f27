package msghdr

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message/textproto"
)

// parseTextproto is Parse as it was written before, over go-message's
// textproto.ReadHeader: the reference Parse must agree with, so that
// values recorded by older versions match those read now (a restore
// target is searched by the Message-ID Parse gives).
func parseTextproto(raw []byte) Meta {
	br := bufio.NewReader(io.MultiReader(bytes.NewReader(raw), strings.NewReader("\r\n\r\n")))
	hdr, err := textproto.ReadHeader(br)
	if err != nil && hdr.Len() == 0 {
		return Meta{}
	}
	get := func(k string) string { return strings.TrimSpace(hdr.Get(k)) }
	decode := func(s string) string {
		if d, err := wordDecoder.DecodeHeader(s); err == nil {
			return d
		}
		return s
	}
	return Meta{
		MessageID: Clean(get("Message-Id")),
		From:      Clean(decode(get("From"))),
		To:        Clean(decode(get("To"))),
		Subject:   Clean(decode(get("Subject"))),
		Date:      Clean(get("Date")),
	}
}

var textprotoCases = []string{
	"",
	"\r\n",
	"From: a@b\r\n",
	"From: a@b",
	"From: a@b\r",
	"From: a@b\r\r",
	"From: a@b \r \r",
	"From: a\r\n \r",
	"From: a\r\n b\r",
	"from: first\r\nFROM: second\r\n",
	" From: folded first line\r\nFrom: x\r\n",
	"\tFrom: x\r\n",
	"X: y\r\nnot a field\r\nFrom: after\r\n",
	"X\x01: y\r\nFrom: after\r\n",
	": empty key\r\nFrom: kept\r\n",
	"From : spaced key\r\n",
	"From:\r\n  folded\r\n\t  twice  \r\n",
	"From: a\n b\nSubject: lf only\n",
	"From: a\r\n\r\nSubject: body\r\n",
	"Subject: =?UTF-8?B?w6ljaGVj?=\r\n  continued\r\nMessage-ID:  <id@x> \r\n",
	"Message-Id: <a@b>\r\nmessage-id: <c@d>\r\n",
	"To: x\r\n\r\n",
	"Date: Mon, 1 Jan 2024\r\n \r\n \r\nTo: y",
	"From: a\rb\r\n",
	"From: \xff\xfe\r\n",
	"abc\r\n d:e\r\nFrom: x\r\n",
	"From: " + strings.Repeat("x", 5000) + "\r\n " + strings.Repeat("y", 5000) + "\r\n",
	strings.Repeat("X-Long: "+strings.Repeat("z", 300)+"\r\n", 40) + "Subject: late\r\n",
	"Subject: x\r\n \r\nFrom",
	"From: x\r\n\t",
	"From: x\n\r\nTo: y\r\n",
}

func TestParseSameAsTextproto(t *testing.T) {
	for _, c := range textprotoCases {
		if got, want := Parse([]byte(c)), parseTextproto([]byte(c)); got != want {
			t.Errorf("Parse(%q) = %+v, textproto gives %+v", c, got, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, c := range textprotoCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if got, want := Parse(raw), parseTextproto(raw); got != want {
			t.Errorf("Parse(%q) = %+v, textproto gives %+v", raw, got, want)
		}
	})
}

func BenchmarkParse(b *testing.B) {
	raw := []byte("Return-Path: <a@example.com>\r\nReceived: from mx.example.com (mx.example.com [192.0.2.1])\r\n\tby mail.example.org with ESMTPS id abc\r\n\tfor <b@example.org>; Mon, 1 Jan 2024 00:00:00 +0000\r\n" +
		"From: Alice Example <a@example.com>\r\nTo: Bob <b@example.org>\r\nSubject: =?UTF-8?Q?Caf=C3=A9?= meeting\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <abc.123@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.Run("scan", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			Parse(raw)
		}
	})
	b.Run("textproto", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			parseTextproto(raw)
		}
	})
}
