package formats

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

var jsonMessages = []Message{
	{},
	{Key: "1:2", SHA256: "ab", Size: 12, InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC), Seg: "folders/INBOX/x.mbox.zst", Off: 99},
	{Key: "1:3", Flags: []string{`\Seen`, "$Label1"}, MessageID: "<a&b@c>", From: `"Jürgen" <j@x>`, To: "a@b, c@d", Subject: "x\"y\\z\n\t\r\b\f\x01\x7f</script>&amp;", Date: "Mon, 1 Jan 2024"},
	{Flags: []string{}, Subject: "\u2028\u2029 línea \xff\xfe bad utf8", InternalDate: time.Date(2023, 5, 6, 7, 8, 9, 0, time.FixedZone("", -7*3600-30*60))},
	{Size: -1, Off: -5, InternalDate: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)},
	{InternalDate: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)},
	{Subject: "日本語 emoji 😀 \x00 nul", Seg: "a\"b"},
}

// TestMessageJSONSameAsEncodingJSON: the hand-written record is byte for
// byte encoding/json's, and reads back as encoding/json reads it.
func TestMessageJSONSameAsEncodingJSON(t *testing.T) {
	for i := range jsonMessages {
		checkMessageJSON(t, &jsonMessages[i])
	}
}

func checkMessageJSON(t *testing.T, m *Message) {
	t.Helper()
	want, werr := json.Marshal(m)
	got, ok := appendMessageJSON(nil, m)
	if ok != (werr == nil) {
		t.Fatalf("appendMessageJSON(%+v) ok %v, json.Marshal error %v", m, ok, werr)
	}
	if !ok {
		return
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("appendMessageJSON(%+v)\n= %s\nwant %s", m, got, want)
	}
	checkAddLine(t, append(append([]byte(`{"a":`), got...), '}'))
}

// checkAddLine: when decodeAddLine reads a line, encoding/json reads it
// the same way.
func checkAddLine(t *testing.T, line []byte) {
	t.Helper()
	var m Message
	if !decodeAddLine(line, &m) {
		return
	}
	var w deltaWire
	if err := json.Unmarshal(line, &w); err != nil || w.A == nil || w.F != nil || w.G != nil {
		t.Fatalf("decodeAddLine read %q, encoding/json: %v %+v", line, err, w)
	}
	if !reflect.DeepEqual(&m, w.A) {
		t.Fatalf("decodeAddLine(%q)\n= %+v\nwant %+v", line, m, *w.A)
	}
}

func TestDecodeAddLineShapes(t *testing.T) {
	m := &jsonMessages[2]
	b, _ := json.Marshal(m)
	good := append(append([]byte(`{"a":`), b...), '}')
	var got Message
	if !decodeAddLine(good, &got) {
		t.Fatalf("decodeAddLine refused encoding/json's own line %s", good)
	}
	for _, line := range []string{
		`{"a":{"key":"k","KEY":"x"}}`,
		`{"a":{"key":"k","key":"x"}}`,
		`{"a":{"key":"k","flags":null}}`,
		`{"a":{"key":"k","size":1.0}}`,
		`{"a":{"key":"k","size":01}}`,
		`{"a":{"key":"k","size":1e3}}`,
		`{"a":{"key":"\ud83d\ude00"}}`,
		`{"a":{"key":"k"},"f":{"key":"k"}}`,
		`{"a":{"key":"k","extra":1}}`,
		`{"a":{}}`,
		`{"a":{"key":"k"}} x`,
		`{"a":{"key":"k"`,
		`{"a":{"key":"k\u00"}}`,
		"{\"a\":{\"key\":\"k\x01\"}}",
		`{"g":"k"}`,
	} {
		if decodeAddLine([]byte(line), &got) {
			checkAddLine(t, []byte(line))
		}
	}
	for _, line := range []string{
		` { "a" : { "key" : "k" , "size" : -3 , "flags" : [ ] } } `,
		`{"a":{"\u006bey":"k\/\u00e9\u003c"}}`,
	} {
		if !decodeAddLine([]byte(line), &got) {
			t.Errorf("decodeAddLine refused %s", line)
		}
		checkAddLine(t, []byte(line))
	}
}

func FuzzMessageJSON(f *testing.F) {
	for _, m := range jsonMessages {
		b, _ := json.Marshal(&m)
		f.Add(m.Key, m.Subject, m.From, int64(m.Size), int64(m.InternalDate.Unix()), append(append([]byte(`{"a":`), b...), '}'))
	}
	f.Fuzz(func(t *testing.T, key, subject, from string, size, unix int64, line []byte) {
		m := &Message{Key: key, Subject: subject, From: from, Size: size, Off: -size, InternalDate: time.Unix(unix, size).UTC(), Flags: []string{subject}}
		checkMessageJSON(t, m)
		checkAddLine(t, line)
	})
}

func BenchmarkMessageJSON(b *testing.B) {
	m := &jsonMessages[2]
	m.InternalDate = time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	line, _ := json.Marshal(m)
	line = append(append([]byte(`{"a":`), line...), '}')
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for range b.N {
			buf, _ = appendMessageJSON(buf[:0], m)
		}
	})
	b.Run("encode-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			json.Marshal(m)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var got Message
		for range b.N {
			decodeAddLine(line, &got)
		}
	})
	b.Run("decode-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			var w deltaWire
			json.Unmarshal(line, &w)
		}
	})
}
