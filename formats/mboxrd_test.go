package formats

import (
	"bufio"
	"bytes"
	"io"
	"testing"
	"testing/iotest"
	"time"
)

func quote(t testing.TB, in []byte, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	q := NewQuoteWriter(&out)
	for len(in) > 0 {
		n := min(chunk, len(in))
		if _, err := q.Write(in[:n]); err != nil {
			t.Fatal(err)
		}
		in = in[n:]
	}
	if err := q.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// unquote unquotes in three ways that must agree: byte by byte from a
// plain reader, and by whole lines from a small bufio buffer (lines cross
// buffer ends) read in small and large pieces.
func unquote(t testing.TB, in []byte) []byte {
	t.Helper()
	out, err := io.ReadAll(iotest.OneByteReader(NewUnquoteReader(bytes.NewReader(in))))
	if err != nil {
		t.Fatal(err)
	}
	for _, piece := range []int{3, 4096} {
		u := NewUnquoteReader(bufio.NewReaderSize(bytes.NewReader(in), 16))
		if u.pr == nil {
			t.Fatal("a bufio.Reader does not take the whole-line path")
		}
		var got []byte
		buf := make([]byte, piece)
		for {
			n, err := u.Read(buf)
			got = append(got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, out) {
			t.Fatalf("unquote by lines (pieces of %d) = %q, byte by byte %q", piece, got, out)
		}
	}
	return out
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"From x", ">From x"},
		{"From ", ">From "},
		{"From", "From"},
		{"Fro", "Fro"},
		{"a\nFrom b\n", "a\n>From b\n"},
		{">From b", ">>From b"},
		{">>From b\n>>>From c", ">>>From b\n>>>>From c"},
		{"From: a\n", "From: a\n"},
		{" From a", " From a"},
		{"F>From a", "F>From a"},
		{">F>From a", ">F>From a"},
		{"x>From a", "x>From a"},
		{"\r\nFrom a\r\n", "\r\n>From a\r\n"},
		{"\rFrom a", "\rFrom a"},
		{"\n\n>\n>From", "\n\n>\n>From"}, {"\n\n>\n>From \n", "\n\n>\n>>From \n"},
		{"\x00From \x00\nFrom \x00", "\x00From \x00\n>From \x00"},
		{"FroFrom x", "FroFrom x"},
		{"From From x\nFrom", ">From From x\nFrom"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 2, 3, 7, 1 << 20} {
			got := quote(t, []byte(tt.in), chunk)
			if string(got) != tt.want {
				t.Errorf("quote(%q, chunk %d) = %q, want %q", tt.in, chunk, got, tt.want)
			}
			back := unquote(t, got)
			if string(back) != tt.in {
				t.Errorf("unquote(%q) = %q, want %q", got, back, tt.in)
			}
		}
	}
}

func TestQuoteEndsWithNewline(t *testing.T) {
	for in, want := range map[string]bool{"": true, "a\n": true, "a": false, "From": false, "a\r\n": true, "a\r": false, ">": false} {
		q := NewQuoteWriter(io.Discard)
		q.Write([]byte(in))
		if got := q.EndsWithNewline(); got != want {
			t.Errorf("EndsWithNewline after %q = %v, want %v", in, got, want)
		}
	}
}

func TestFromLine(t *testing.T) {
	d := time.Date(2026, 3, 5, 7, 8, 9, 0, time.FixedZone("x", 3600))
	if got, want := string(FromLine(d)), "From MAILER-DAEMON Thu Mar  5 06:08:09 2026\n"; got != want {
		t.Errorf("FromLine = %q, want %q", got, want)
	}
}

// FuzzQuoteRoundTrip checks that unquote(quote(x)) == x for any bytes and
// any split of the input, and that the quoted form never has a line that
// starts with "From ".
func FuzzQuoteRoundTrip(f *testing.F) {
	for _, s := range []string{"From x\n", ">From x", "a\r\n>>From y\r\n", "\x00\xff From", "F", "\n>", ">>>>>>>>>>"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, chunk uint8) {
		q := quote(t, in, int(chunk)+1)
		if bytes.HasPrefix(q, []byte("From ")) || bytes.Contains(q, []byte("\nFrom ")) {
			t.Fatalf("quoted %q contains an unquoted From line: %q", in, q)
		}
		if back := unquote(t, q); !bytes.Equal(back, in) {
			t.Fatalf("round trip of %q = %q", in, back)
		}
	})
}
