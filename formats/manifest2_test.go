package formats

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
)

// readAllRecords reads every delta's records of a manifest, in order.
func readAllRecords(t testing.TB, m *ManifestReader) [][]DeltaRecord {
	t.Helper()
	out := make([][]DeltaRecord, len(m.Header().Deltas))
	for i := range m.Header().Deltas {
		rr, err := m.Records(i)
		if err != nil {
			t.Fatalf("Records(%d) = %v", i, err)
		}
		for {
			r, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Records(%d).Next() = %v", i, err)
			}
			c := *r
			c.Flags = append([]string(nil), r.Flags...)
			if r.Kind == RecordAdded {
				c.Message.Flags = append([]string(nil), r.Message.Flags...)
			}
			out[i] = append(out[i], c)
		}
		rr.Close()
	}
	return out
}

// recordsOfChange is the records a version 1 change means, in the order
// version 1 applies them.
func recordsOfChange(c Change) []DeltaRecord {
	var out []DeltaRecord
	for _, m := range c.Added {
		out = append(out, DeltaRecord{Kind: RecordAdded, Message: m})
	}
	for _, fc := range c.Flags {
		out = append(out, DeltaRecord{Kind: RecordFlags, Key: fc.Key, Flags: fc.Flags})
	}
	for _, k := range c.Gone {
		out = append(out, DeltaRecord{Kind: RecordGone, Key: k})
	}
	return out
}

func normRecords(rs []DeltaRecord) []DeltaRecord {
	for i := range rs {
		if len(rs[i].Flags) == 0 {
			rs[i].Flags = nil
		}
		if len(rs[i].Message.Flags) == 0 {
			rs[i].Message.Flags = nil
		}
	}
	return rs
}

// writeV1 commits s as a version 1 manifest file of archive a.
func writeV1(t testing.TB, a *Archive, s *Snapshot) SnapshotFile {
	t.Helper()
	data, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	return writeManifestBytes(t, a, s.Seq, s.ID, data)
}

func writeManifestBytes(t testing.TB, a *Archive, seq int, id string, data []byte) SnapshotFile {
	t.Helper()
	p := filepath.Join(a.Root, SnapshotsDir, snapshotFileName(seq, id))
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return SnapshotFile{Seq: seq, ID: id, Path: p}
}

// checkV1Stream checks that the streaming reader gives exactly what
// DecodeSnapshot gives for a version 1 manifest.
func checkV1Stream(t *testing.T, a *Archive, sf SnapshotFile, want *Snapshot) {
	t.Helper()
	m, err := a.OpenManifest(sf)
	if err != nil {
		t.Fatalf("OpenManifest(%s) = %v", sf.ID, err)
	}
	defer m.Close()
	if m.Version() != 1 {
		t.Errorf("Version() = %d, want 1", m.Version())
	}
	h := m.Header()
	head := *want
	head.Changes = nil
	if !reflect.DeepEqual(h.Snapshot, head) {
		t.Errorf("Header().Snapshot =\n%+v\nwant\n%+v", h.Snapshot, head)
	}
	if len(h.Deltas) != len(want.Changes) {
		t.Fatalf("%d deltas, want %d", len(h.Deltas), len(want.Changes))
	}
	got := readAllRecords(t, m)
	for i, c := range want.Changes {
		d := h.Deltas[i]
		if d.Folder != c.Folder || d.Event != c.Event || d.From != c.From || d.Added != len(c.Added) ||
			d.FlagChanges != len(c.Flags) || d.Gone != len(c.Gone) || d.Path != "" {
			t.Errorf("delta %d = %+v, want the head of %q", i, d, c.Folder)
		}
		if w := normRecords(recordsOfChange(c)); !reflect.DeepEqual(normRecords(got[i]), w) {
			t.Errorf("records of %q =\n%+v\nwant\n%+v", c.Folder, got[i], w)
		}
	}
}

func TestManifestReaderV1MatchesDecode(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range append(fuzzSnapshots(), goldenSnapshot()) {
		dec, err := DecodeSnapshot(mustEncode(t, s))
		if err != nil {
			t.Fatal(err)
		}
		checkV1Stream(t, a, writeV1(t, a, s), dec)
	}
	// The golden version 1 file, byte for byte as an old mailvault wrote it.
	data, err := os.ReadFile(filepath.Join("testdata", "golden", "manifest-v1.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := DecodeSnapshot(data)
	if err != nil {
		t.Fatal(err)
	}
	checkV1Stream(t, a, writeManifestBytes(t, a, dec.Seq, dec.ID, data), dec)
}

func mustEncode(t testing.TB, s *Snapshot) []byte {
	t.Helper()
	b, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reorder rewrites a JSON object's members in reverse order, recursively
// for objects, so that a reader relying on the writer's member order
// fails.
func reorder(t testing.TB, raw []byte) []byte {
	t.Helper()
	var v any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeReversed(&b, v)
	return b.Bytes()
}

func writeReversed(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		// Reverse alphabetical: "changes" before "folders", "gone"
		// before "folder" before "added", "snapshot" before "sha256".
		for i := 0; i < len(keys); i++ {
			for j := i + 1; j < len(keys); j++ {
				if keys[j] > keys[i] {
					keys[i], keys[j] = keys[j], keys[i]
				}
			}
		}
		b.WriteString("{\n  ")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(" ,\n ")
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteString(" : ")
			writeReversed(b, x[k])
		}
		b.WriteString("\t}")
	case []any:
		b.WriteString("[ ")
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeReversed(b, e)
		}
		b.WriteString(" ]")
	default:
		e, _ := json.Marshal(x)
		b.Write(e)
	}
}

// TestManifestReaderV1AnyMemberOrder: JSON lets members come in any
// order and with white space; a version 1 manifest so written (by hand,
// or another tool) reads the same.
func TestManifestReaderV1AnyMemberOrder(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range fuzzSnapshots() {
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		body := reorder(t, raw)
		var compact bytes.Buffer
		json.Compact(&compact, body)
		sum := sha256.Sum256(compact.Bytes())
		data := []byte(fmt.Sprintf("{ \"sha256\" : %q,\n \"snapshot\" :\n%s , \"mailvault_manifest\" : 1 }\n", hex.EncodeToString(sum[:]), body))
		if !bytes.Contains(data, []byte(`"changes"`)) && len(s.Changes) > 0 {
			t.Fatal("reorder lost changes")
		}
		dec, err := DecodeSnapshot(data)
		if err != nil {
			t.Fatalf("DecodeSnapshot(reordered) = %v", err)
		}
		checkV1Stream(t, a, writeManifestBytes(t, a, s.Seq, s.ID, data), dec)
	}
}

// TestManifestReaderV1Damage: what DecodeSnapshot refuses, the streaming
// reader refuses with the same class of error, whether at open or at the
// record that is bad.
func TestManifestReaderV1Damage(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := fuzzSnapshots()[1]
	data := mustEncode(t, s)
	body, _ := json.Marshal(s)
	cases := map[string][]byte{
		"truncated":      data[:len(data)-2],
		"checksum":       bytes.Replace(data, []byte(`"sha256":"`), []byte(`"sha256":"0`), 1),
		"trailing data":  append(bytes.Clone(data), 'x'),
		"bad message":    wrapBody(bytes.Replace(body, []byte(`"key":"17:9"`), []byte(`"key":""`), 1)),
		"bad gone":       wrapBody(bytes.Replace(body, []byte(`"gone":["17:1"`), []byte(`"gone":[""`), 1)),
		"gone not array": wrapBody(bytes.Replace(body, []byte(`"gone":["17:1"`), []byte(`"gone":{"x":["17:1"]`), 1)),
		"bad event":      wrapBody(bytes.Replace(body, []byte(`"event":"deleted"`), []byte(`"event":"moved"`), 1)),
		"no snapshot":    []byte(`{"mailvault_manifest":1,"sha256":"00"}`),
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			_, decErr := DecodeSnapshot(bad)
			if !errors.Is(decErr, ErrCorrupt) {
				t.Fatalf("DecodeSnapshot = %v, want ErrCorrupt (the case is wrong)", decErr)
			}
			sf := writeManifestBytes(t, a, s.Seq, s.ID, bad)
			m, err := a.OpenManifest(sf)
			if err == nil {
				err = readAll(m)
				m.Close()
			}
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("streaming read = %v, want ErrCorrupt", err)
			}
		})
	}
	newer := bytes.Replace(data, []byte(`"mailvault_manifest":1`), []byte(`"mailvault_manifest":3`), 1)
	if _, err := a.OpenManifest(writeManifestBytes(t, a, s.Seq, s.ID, newer)); !errors.Is(err, ErrNewerVersion) {
		t.Errorf("OpenManifest(version 3) = %v, want ErrNewerVersion", err)
	}
}

// readAll reads every record, returning the first error.
func readAll(m *ManifestReader) error {
	for i := range m.Header().Deltas {
		rr, err := m.Records(i)
		if err != nil {
			return err
		}
		for {
			_, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				rr.Close()
				return err
			}
		}
		rr.Close()
	}
	return nil
}

// v2Snapshot commits fuzzSnapshots()'s second run as a version 2
// manifest in a: INBOX's records in two delta files (two writers), the
// others in one each; it returns the header and the records per entry.
func v2Snapshot(t testing.TB, a *Archive) (*Header, [][]DeltaRecord) {
	t.Helper()
	s := fuzzSnapshots()[1]
	h := &Header{Snapshot: *s}
	h.Changes = nil
	var want [][]DeltaRecord
	for _, c := range s.Changes {
		recs := recordsOfChange(c)
		split := [][]DeltaRecord{recs}
		if c.Folder == "INBOX" && len(recs) > 1 {
			split = [][]DeltaRecord{recs[:1], recs[1:]}
		}
		for i, part := range split {
			w, err := a.NewDelta(c.Folder)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range part {
				switch r.Kind {
				case RecordAdded:
					err = w.Add(&r.Message, true)
				case RecordFlags:
					err = w.Flags(r.Key, r.Flags)
				case RecordGone:
					err = w.Gone(r.Key)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			d, err := w.Commit(h.Seq, h.ID)
			if err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				d.Event, d.From = c.Event, c.From
			}
			h.Deltas = append(h.Deltas, d)
			want = append(want, part)
		}
	}
	if err := a.CommitHeader(h); err != nil {
		t.Fatal(err)
	}
	return h, want
}

func TestManifestV2RoundTrip(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h, want := v2Snapshot(t, a)
	files, err := a.ListSnapshots()
	if err != nil || len(files) != 1 {
		t.Fatalf("ListSnapshots() = %v, %v; want the one header (delta directories are not manifests)", files, err)
	}
	m, err := a.OpenManifest(files[0])
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Version() != 2 {
		t.Errorf("Version() = %d", m.Version())
	}
	if !reflect.DeepEqual(m.Header(), h) {
		t.Errorf("Header() =\n%+v\nwant\n%+v", m.Header(), h)
	}
	got := readAllRecords(t, m)
	for i := range want {
		if !reflect.DeepEqual(normRecords(got[i]), normRecords(want[i])) {
			t.Errorf("entry %d (%s) = %+v, want %+v", i, h.Deltas[i].Path, got[i], want[i])
		}
	}
	// Two files for INBOX, the second with the ~2 name.
	var inbox []string
	for _, d := range h.Deltas {
		if d.Folder == "INBOX" {
			inbox = append(inbox, d.Path)
		}
	}
	dir := fmt.Sprintf("snapshots/%08d-%s/", h.Seq, h.ID)
	if !reflect.DeepEqual(inbox, []string{dir + "INBOX.jsonl.zst", dir + "INBOX~2.jsonl.zst"}) {
		t.Errorf("INBOX delta files = %v", inbox)
	}
	// An event alone has no file.
	for _, d := range h.Deltas {
		if d.Records == 0 && d.Path != "" {
			t.Errorf("entry %+v has a file without records", d)
		}
	}
	// No temporary file is left.
	left, _ := filepath.Glob(filepath.Join(a.Root, SnapshotsDir, "*.tmp"))
	if len(left) > 0 {
		t.Errorf("left-overs: %v", left)
	}
}

// TestDeltaFileDamage: a delta file that is not what the header says is
// refused before any of its records is used.
func TestDeltaFileDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(t *testing.T, path string)
	}{
		{"byte flipped", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0x40
			os.WriteFile(p, b, 0o600)
		}},
		{"truncated", func(t *testing.T, p string) {
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)-1], 0o600)
		}},
		{"missing", func(t *testing.T, p string) { os.Remove(p) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			h, _ := v2Snapshot(t, a)
			tc.damage(t, filepath.Join(a.Root, filepath.FromSlash(h.Deltas[0].Path)))
			files, _ := a.ListSnapshots()
			m, err := a.OpenManifest(files[0])
			if err != nil {
				t.Fatal(err) // the header itself is fine
			}
			defer m.Close()
			_, err = m.Records(0)
			if !errors.Is(err, ErrCorrupt) {
				t.Errorf("Records(0) = %v, want ErrCorrupt", err)
			}
		})
	}
}

// writeDeltaFile writes raw uncompressed lines as a delta file of h and
// returns a header entry naming it, with the given counts.
func writeDeltaFile(t testing.TB, a *Archive, h *Header, folder string, lines string, d Delta) Delta {
	t.Helper()
	dir := filepath.Join(a.Root, filepath.FromSlash(deltaDir(h.Seq, h.ID)))
	os.MkdirAll(dir, 0o700)
	enc, err := newTestEncoder()
	if err != nil {
		t.Fatal(err)
	}
	comp := enc.EncodeAll([]byte(lines), nil)
	enc.Close()
	d.Folder = folder
	d.Path = deltaDir(h.Seq, h.ID) + "/" + DeltaName(folder, 1)
	d.Size = int64(len(comp))
	sum := sha256.Sum256(comp)
	d.SHA256 = hex.EncodeToString(sum[:])
	if err := os.WriteFile(filepath.Join(a.Root, filepath.FromSlash(d.Path)), comp, 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestDeltaFileContent: files whose checksum matches the header but whose
// content breaks a rule (written by a faulty writer) are refused.
func TestDeltaFileContent(t *testing.T) {
	msg := `{"a":{"key":"1:1","sha256":"` + strings.Repeat("ab", 32) + `","size":3,"internal_date":"2024-01-02T03:04:05Z","seg":"folders/INBOX/00000001-1a2b3c4d.mbox.zst","off":0}}`
	first := `{"mailvault_delta":2,"folder":"INBOX"}` + "\n"
	for _, tc := range []struct {
		name, lines string
		counts      Delta
		ok          bool
	}{
		{"good", first + msg + "\n" + `{"g":"1:2"}` + "\n" + `{"f":{"key":"1:3","flags":["\\Seen"]}}` + "\n", Delta{Records: 3, Added: 1, Gone: 1, FlagChanges: 1}, true},
		{"other folder", `{"mailvault_delta":2,"folder":"Sent"}` + "\n" + `{"g":"1:2"}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"no first line", `{"g":"1:2"}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"fewer than said", first + `{"g":"1:2"}` + "\n", Delta{Records: 2, Gone: 2}, false},
		{"more than said", first + `{"g":"1:2"}` + "\n" + `{"g":"1:3"}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"two kinds in a line", first + `{"g":"1:2","f":{"key":"1:2"}}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"empty key", first + `{"g":""}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"unknown kind", first + `{"x":"1:2"}` + "\n", Delta{Records: 1, Gone: 1}, false},
		{"last line unended", first + `{"g":"1:2"}`, Delta{Records: 1, Gone: 1}, false},
		{"bad location", first + strings.Replace(msg, "folders/INBOX", "folders/..", 1) + "\n", Delta{Records: 1, Added: 1}, false},
		{"not JSON", first + "{\n", Delta{Records: 1, Gone: 1}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := Create(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			h := &Header{Snapshot: Snapshot{Version: 2, ID: "1a2b3c4d", Seq: 1, Status: StatusComplete}}
			h.Deltas = []Delta{writeDeltaFile(t, a, h, "INBOX", tc.lines, tc.counts)}
			if err := a.CommitHeader(h); err != nil {
				t.Fatal(err)
			}
			files, _ := a.ListSnapshots()
			m, err := a.OpenManifest(files[0])
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			err = readAll(m)
			if tc.ok && err != nil {
				t.Errorf("read = %v, want ok", err)
			}
			if !tc.ok && !errors.Is(err, ErrCorrupt) {
				t.Errorf("read = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestCommitHeaderRefuses: a header that breaks a rule is not committed.
func TestCommitHeaderRefuses(t *testing.T) {
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	base := Header{Snapshot: Snapshot{ID: "1a2b3c4d", Seq: 1, Status: StatusComplete}}
	good := Delta{Folder: "INBOX", Path: "snapshots/00000001-1a2b3c4d/INBOX.jsonl.zst", Size: 10, SHA256: strings.Repeat("ab", 32), Records: 1, Gone: 1}
	for name, d := range map[string][]Delta{
		"path of another snapshot": {func() Delta { d := good; d.Path = "snapshots/00000002-1a2b3c4d/INBOX.jsonl.zst"; return d }()},
		"path outside":             {func() Delta { d := good; d.Path = "snapshots/00000001-1a2b3c4d/../x.jsonl.zst"; return d }()},
		"counts do not add up":     {func() Delta { d := good; d.Added = 1; return d }()},
		"stored more than added":   {func() Delta { d := good; d.Stored = 1; return d }()},
		"file without records":     {{Folder: "INBOX", Path: good.Path, Size: 1, SHA256: good.SHA256}},
		"event on a later entry":   {{Folder: "INBOX"}, {Folder: "INBOX", Event: EventCreated}},
		"rename without old name":  {{Folder: "INBOX", Event: EventRenamed}},
		"file named twice":         {good, good},
		"file not there":           {good},
	} {
		h := base
		h.Deltas = d
		if err := a.CommitHeader(&h); err == nil {
			t.Errorf("%s: CommitHeader accepted %+v", name, d)
		}
	}
	if files, _ := a.ListSnapshots(); len(files) != 0 {
		t.Errorf("committed %v", files)
	}
}

// TestManifestReaderBoundedMemory: a version 1 manifest of 100,000 added
// messages (about 30 MB) and a version 2 snapshot of as many records are
// read with a heap that does not grow with them.
func TestManifestReaderBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 60 MB")
	}
	const n = 100000
	a, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	seg := Segment{Path: "folders/INBOX/00000001-1a2b3c4d.mbox.zst", Size: 100, SHA256: strings.Repeat("ab", 32), USize: 1 << 40, Records: n, Frames: [][2]int64{{0, 0}}}
	s := &Snapshot{Version: 1, ID: "1a2b3c4d", Seq: 1, Status: StatusComplete, Segments: []Segment{seg},
		Folders: []Folder{{Name: "INBOX", Dir: "INBOX", Status: FolderOK}}}
	c := Change{Folder: "INBOX", Event: EventCreated}
	for i := 0; i < n; i++ {
		c.Added = append(c.Added, scaleMessage(i, seg.Path))
	}
	s.Changes = []Change{c}
	sf := writeV1(t, a, s)
	c, s = Change{}, nil
	h := &Header{Snapshot: Snapshot{ID: "5e6f7a8b", Seq: 2, Parent: "1a2b3c4d", Status: StatusComplete}}
	w, err := a.NewDelta("INBOX")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		m := scaleMessage(i, seg.Path)
		if err := w.Add(&m, true); err != nil {
			t.Fatal(err)
		}
	}
	d, err := w.Commit(h.Seq, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	h.Deltas = []Delta{d}
	if err := a.CommitHeader(h); err != nil {
		t.Fatal(err)
	}
	files, _ := a.ListSnapshots()
	for _, f := range []SnapshotFile{sf, files[1]} {
		runtime.GC()
		peak := heapPeak(func(sample func()) {
			m, err := a.OpenManifest(f)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			rr, err := m.Records(0)
			if err != nil {
				t.Fatal(err)
			}
			defer rr.Close()
			for i := 0; ; i++ {
				_, err := rr.Next()
				if err == io.EOF {
					if i != n {
						t.Fatalf("%d records, want %d", i, n)
					}
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if i%5000 == 0 {
					sample()
				}
			}
		})
		t.Logf("manifest version from %s: heap peak %.1f MiB", filepath.Base(f.Path), float64(peak)/(1<<20))
		if peak > 24<<20 {
			t.Errorf("%s: heap peak %d MiB reading %d records; the reader holds them", f.Path, peak>>20, n)
		}
	}
}

// heapPeak runs fn, which calls sample now and then, and returns the
// largest heap in use seen at a sample, after a collection.
func heapPeak(fn func(sample func())) uint64 {
	var peak uint64
	fn(func() {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	})
	return peak
}

// scaleMessage is a realistic message entry number i.
func scaleMessage(i int, seg string) Message {
	s := sha256.Sum256([]byte(fmt.Sprint(i)))
	return Message{Key: fmt.Sprintf("1700000000:%d", i+1), SHA256: hex.EncodeToString(s[:]), Size: int64(1000 + i%2000),
		InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC).Add(time.Duration(i) * time.Minute),
		Flags:        []string{`\Seen`}, MessageID: fmt.Sprintf("<%d.%x@mail.example.com>", i, s[:6]),
		From: "Support Desk <support@example.com>", To: "info@example.com",
		Subject: fmt.Sprintf("Re: Ticket #%d: invoice for order %x", i, s[:4]), Date: "Tue, 2 Jan 2024 03:04:05 +0000",
		Seg: seg, Off: int64(i) * 3000}
}

func newTestEncoder() (*zstd.Encoder, error) { return zstd.NewWriter(nil) }
