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
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

// fuzzSnapshots returns realistic, valid snapshots: a first run with three
// folders and a two-frame segment, a partial second run with flag changes,
// expunges, a rename, a deletion and a UIDVALIDITY change, and a minimal
// run with nothing in it.
func fuzzSnapshots() []*Snapshot {
	ist := time.FixedZone("IST", 5*3600+1800)
	started := time.Date(2025, 11, 2, 3, 4, 5, 123456789, ist)
	seg1 := Segment{Path: "folders/INBOX/00000001-1a2b3c4d.mbox.zst", Size: 1400000, SHA256: strings.Repeat("ab", 32),
		USize: 5000000, Records: 3, Frames: [][2]int64{{0, 0}, {1200000, 4194304}}}
	seg2 := Segment{Path: "folders/Sent%20Items/00000001-1a2b3c4d.mbox.zst", Size: 300, SHA256: strings.Repeat("0f", 32),
		USize: 900, Records: 1, Frames: [][2]int64{{0, 0}}}
	msg := func(key, seg string, off, size int64, subject string) Message {
		return Message{Key: key, SHA256: sha([]byte(key + subject)), Size: size, Off: off, Seg: seg,
			InternalDate: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC), Flags: []string{`\Seen`},
			MessageID: "<" + key + "@example.org>", From: "Ann <ann@example.org>", Subject: subject, Date: "Tue, 2 Jan 2024 03:04:05 +0000"}
	}
	s1 := &Snapshot{Version: 1, ID: "1a2b3c4d", Seq: 1, Source: "imaps://ann@imap.example.org", Protocol: "imap",
		Started: started, Finished: started.Add(93 * time.Second), Status: StatusComplete,
		Folders: []Folder{
			{Name: "INBOX", Delimiter: "/", Dir: "INBOX", UIDValidity: 17, UIDNext: 4, HighestModSeq: 1 << 40, Messages: 3, Status: FolderOK},
			{Name: "Sent Items", Delimiter: "/", Attrs: []string{`\Sent`}, SpecialUse: `\Sent`, Dir: FolderDir("Sent Items"), UIDValidity: 9, UIDNext: 2, Messages: 1, Status: FolderOK},
			{Name: "Archive", Delimiter: "/", Attrs: []string{`\Noselect`, `\HasChildren`}, Status: FolderNoSelect},
		},
		Segments: []Segment{seg1, seg2},
		Changes: []Change{
			{Folder: "INBOX", Event: EventCreated, Added: []Message{
				msg("17:1", seg1.Path, 0, 1000, "hello"),
				msg("17:2", seg1.Path, 1100, 4194000, "big"),
				msg("17:3", seg1.Path, 4195200, 700, "Grüße"),
			}},
			{Folder: "Sent Items", Event: EventCreated, Added: []Message{msg("9:1", seg2.Path, 0, 800, "re: hello")}},
			{Folder: "Archive", Event: EventCreated},
		},
	}
	seg3 := Segment{Path: "folders/Projects/00000002-5e6f7a8b.mbox.zst", Size: 120, SHA256: strings.Repeat("c3", 32),
		USize: 200, Records: 1, Frames: [][2]int64{{0, 0}}}
	s2 := &Snapshot{Version: 1, ID: "5e6f7a8b", Seq: 2, Parent: s1.ID, Source: s1.Source, Protocol: "imap",
		Started: time.Date(2025, 11, 3, 0, 0, 0, 0, time.UTC), Finished: time.Date(2025, 11, 3, 0, 1, 0, 0, time.UTC),
		Status: StatusPartial, Errors: []string{`folder "Junk": SELECT: NO [UNAVAILABLE]`},
		Folders: []Folder{
			{Name: "INBOX", Delimiter: "/", Dir: "INBOX", UIDValidity: 18, UIDNext: 2, Messages: 1, Status: FolderOK},
			{Name: "Projects", Delimiter: "/", Dir: "Projects", UIDValidity: 9, UIDNext: 3, Messages: 1, Status: FolderOK},
			{Name: "Junk", Delimiter: "/", Dir: "Junk", Status: FolderFailed, Error: "SELECT: NO [UNAVAILABLE]"},
			{Name: "Drafts", Delimiter: "/", Dir: "Drafts", UIDValidity: 3, UIDNext: 7, Status: FolderUnchanged},
		},
		Segments: []Segment{seg3},
		Changes: []Change{
			{Folder: "INBOX", Event: EventUIDValidity, Gone: []string{"17:1", "17:2"},
				Flags: []FlagChange{{Key: "17:3", Flags: []string{`\Seen`, `\Flagged`, "$Label1"}}, {Key: "17:9", Flags: []string{}}}},
			{Folder: "Projects", Event: EventRenamed, From: "Sent Items", Added: []Message{msg("9:2", seg3.Path, 0, 150, "")}},
			{Folder: "Archive", Event: EventDeleted},
		},
	}
	s3 := &Snapshot{Version: 1, ID: "00ff00ff", Seq: 1, Source: "maildir:/home/ann/Mail", Protocol: "maildir",
		Started: time.Unix(0, 0).UTC(), Finished: time.Unix(1, 0).UTC(), Status: StatusComplete, Folders: []Folder{}}
	return []*Snapshot{s1, s2, s3}
}

// wrapBody returns the file form of a snapshot body, with the checksum
// computed as EncodeSnapshot computes it.
func wrapBody(body []byte) []byte {
	var c bytes.Buffer
	sum := sha256.Sum256(body)
	if json.Compact(&c, body) == nil {
		sum = sha256.Sum256(c.Bytes())
	}
	out := []byte(`{"mailvault_manifest":1,"sha256":"` + hex.EncodeToString(sum[:]) + `","snapshot":`)
	out = append(out, body...)
	return append(out, '}')
}

// withDeadline runs fn and fails the test if it panics or does not return
// within d.
func withDeadline(t *testing.T, d time.Duration, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	var panicked string
	go func() {
		defer close(done)
		defer func() {
			if r := recover(); r != nil {
				panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
			}
		}()
		fn()
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-done:
		if panicked != "" {
			t.Fatalf("%s panicked: %s", what, panicked)
		}
	case <-timer.C:
		t.Fatalf("%s did not return within %v", what, d)
	}
}

// checkDecode decodes data and checks what any manifest decoder must
// guarantee: no panic, no hang, errors of the documented kinds only, and
// on success a snapshot that is valid and survives an encode/decode round
// trip unchanged.
func checkDecode(t *testing.T, data []byte) *Snapshot {
	t.Helper()
	var s *Snapshot
	var err error
	withDeadline(t, 10*time.Second, "DecodeSnapshot", func() { s, err = DecodeSnapshot(data) })
	if err != nil {
		if s != nil {
			t.Fatalf("DecodeSnapshot returned both a snapshot and error %v", err)
		}
		if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerVersion) {
			t.Fatalf("DecodeSnapshot error %v wraps neither ErrCorrupt nor ErrNewerVersion", err)
		}
		return nil
	}
	if s == nil {
		t.Fatal("DecodeSnapshot returned neither a snapshot nor an error")
	}
	if verr := s.validate(); verr != nil {
		t.Fatalf("decoded snapshot fails validation: %v", verr)
	}
	enc, err := EncodeSnapshot(s)
	if err != nil {
		t.Fatalf("EncodeSnapshot of a decoded snapshot: %v", err)
	}
	s2, err := DecodeSnapshot(enc)
	if err != nil {
		t.Fatalf("DecodeSnapshot(EncodeSnapshot(s)): %v\n%s", err, enc)
	}
	// s may differ from s2 only where JSON cannot tell (an empty list
	// versus an omitted one), so compare the encodings of both and then
	// the snapshots of two successive round trips.
	enc2, err := EncodeSnapshot(s2)
	if err != nil {
		t.Fatalf("EncodeSnapshot of a re-decoded snapshot: %v", err)
	}
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("encoding changed after a round trip:\n%s\n%s", enc, enc2)
	}
	s3, err := DecodeSnapshot(enc2)
	if err != nil {
		t.Fatalf("second round trip: %v", err)
	}
	if !reflect.DeepEqual(s2, s3) {
		t.Fatalf("round trip changed the snapshot:\n%+v\n%+v", s2, s3)
	}
	return s
}

func FuzzDecodeSnapshot(f *testing.F) {
	for _, s := range fuzzSnapshots() {
		data, err := EncodeSnapshot(s)
		if err != nil {
			f.Fatal(err)
		}
		if _, err := DecodeSnapshot(data); err != nil {
			f.Fatalf("seed snapshot %s does not decode: %v", s.ID, err)
		}
		f.Add(data)
		// Broken forms of it.
		f.Add(data[:len(data)/2])
		f.Add(data[:len(data)-1])
		bad := bytes.Clone(data)
		i := bytes.Index(bad, []byte(`"sha256":"`)) + len(`"sha256":"`)
		bad[i] ^= 1
		f.Add(bad)
		f.Add(bytes.Replace(data, []byte(`"mailvault_manifest":1`), []byte(`"mailvault_manifest":2`), 1))
		f.Add(bytes.Replace(data, []byte(`"mailvault_manifest":1`), []byte(`"mailvault_manifest":0`), 1))
		// Snapshot version 2 under a correct checksum.
		body, _ := json.Marshal(s)
		f.Add(wrapBody(bytes.Replace(body, []byte(`"version":1`), []byte(`"version":2`), 1)))
		// Indented, as a person editing the file might leave it.
		var ind bytes.Buffer
		json.Indent(&ind, data, "", "  ")
		f.Add(ind.Bytes())
	}
	f.Add([]byte(""))
	f.Add([]byte("null"))
	f.Add([]byte(`{"mailvault_manifest":1,"sha256":"","snapshot":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkDecode(t, data)
	})
}

// fuzzBodies returns snapshot bodies for FuzzDecodeSnapshotBody: the seed
// snapshots and variants that fail one validation rule each.
func fuzzBodies(f *testing.F) [][]byte {
	var out [][]byte
	snaps := fuzzSnapshots()
	for _, s := range snaps {
		body, err := json.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, body)
	}
	s1, _ := json.Marshal(snaps[0])
	s2, _ := json.Marshal(snaps[1])
	for _, r := range [][3]string{
		{"1", `"version":1`, `"version":2`},
		{"1", `"version":1`, `"version":0`},
		{"1", `"id":"1a2b3c4d"`, `"id":"1A2B3C4D"`},
		{"1", `"seq":1`, `"seq":2`},
		{"2", `"parent":"1a2b3c4d",`, ``},
		{"1", `"status":"complete"`, `"status":"done"`},
		{"1", `"name":"Archive"`, `"name":"INBOX"`},
		{"1", `"dir":"INBOX"`, `"dir":".."`},
		{"1", `"dir":"INBOX"`, `"dir":"CON"`},
		{"1", `folders/INBOX/00000001`, `folders/../../00000001`},
		{"1", `folders/INBOX/00000001`, `folders/INBOX/./00000001`},
		{"1", `.mbox.zst"`, `.mbox"`},
		{"1", `[1200000,4194304]`, `[0,4194304]`},
		{"1", `[1200000,4194304]`, `[1200000,9999999]`},
		{"1", `[[0,0],[1200000,4194304]]`, `[]`},
		{"1", `"size":1000`, `"size":-1`},
		{"1", `"off":1100`, `"off":99999999`},
		{"2", `"event":"renamed","from":"Sent Items"`, `"event":"renamed"`},
		{"2", `"from":"Sent Items"`, `"from":"Nowhere"`},
		{"2", `"event":"deleted"`, `"event":"moved"`},
		{"2", `"key":"17:9"`, `"key":""`},
		{"2", `"gone":["17:1"`, `"gone":[""`},
		{"1", `"started":"2025-11-02T03:04:05.123456789+05:30"`, `"started":"2025-11-02 03:04:05"`},
	} {
		src := s1
		if r[0] == "2" {
			src = s2
		}
		if !bytes.Contains(src, []byte(r[1])) {
			f.Fatalf("seed body has no %s", r[1])
		}
		out = append(out, bytes.Replace(src, []byte(r[1]), []byte(r[2]), 1))
	}
	return append(out, []byte(`{}`), []byte(`{"version":1,"id":"00000000","seq":1,"status":"partial","folders":null}`))
}

func FuzzDecodeSnapshotBody(f *testing.F) {
	for _, b := range fuzzBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s := checkDecode(t, wrapBody(body))
		if s == nil {
			return
		}
		for _, fo := range s.Folders {
			if fo.Dir != "" && !ValidDir(fo.Dir) {
				t.Fatalf("folder %q has unsafe directory %q", fo.Name, fo.Dir)
			}
		}
		for _, g := range s.Segments {
			if !ValidSegmentPath(g.Path) {
				t.Fatalf("unsafe segment path %q", g.Path)
			}
		}
		for _, c := range s.Changes {
			for _, m := range c.Added {
				if !ValidSegmentPath(m.Seg) {
					t.Fatalf("message %q has unsafe location %q", m.Key, m.Seg)
				}
			}
		}
		var st *State
		withDeadline(t, 10*time.Second, "Replay", func() { st, _ = Replay([]*Snapshot{s}, "") })
		if s.Parent != "" {
			// Apply a later snapshot onto a stand-in for its parent.
			st = NewState()
			st.Snapshot = &Snapshot{ID: s.Parent}
			if st.Apply(s) != nil {
				st = nil
			}
		}
		if st == nil {
			return
		}
		for name, fs := range st.Folders {
			for _, m := range fs.Archived {
				g := st.Segments[m.Seg]
				if g == nil || m.Off >= g.USize {
					t.Fatalf("folder %q: message %q at %s+%d outside the snapshot's segments", name, m.Key, m.Seg, m.Off)
				}
				if fs.Lookup(m.Key) == nil {
					t.Fatalf("folder %q: message %q cannot be looked up", name, m.Key)
				}
			}
		}
	})
}

// segmentCase is what to write: message bodies in order, the writer each
// goes to (route[i], 0 or 1; all 0 when route is nil), and for some
// indexes (len(bodies) meaning after the last) the bytes of a record that
// is begun on that body's writer and aborted before the body is written.
type segmentCase struct {
	bodies  [][]byte
	route   []int
	aborted map[int][]byte
	chunk   int // bytes per Write call
}

// segUnderTest is one segment being written and what it should hold.
type segUnderTest struct {
	folder string
	w      *SegmentWriter
	bodies [][]byte
	added  []Message
	want   bytes.Buffer // the expected uncompressed segment
	seg    Segment
}

func writeChunks(t *testing.T, w *SegmentWriter, b []byte, chunk int) {
	t.Helper()
	for len(b) > 0 {
		n := min(len(b), chunk)
		k, err := w.Write(b[:n])
		if err != nil || k != n {
			t.Fatalf("Write = %d, %v; want %d", k, err, n)
		}
		b = b[n:]
	}
}

// checkSegmentRoundTrip writes c into a new archive and checks that every
// segment holds exactly its kept records in mboxrd form, that every message
// reads back byte for byte and that Verify finds nothing wrong.
//
// Two segments (INBOX and Sent) are written at the same time, so that they
// must not share buffers; after INBOX is committed, a third one (Archive)
// gets the INBOX messages again through the buffers INBOX released.
func checkSegmentRoundTrip(t *testing.T, c segmentCase) {
	t.Helper()
	root := t.TempDir()
	a, err := Create(root)
	if err != nil {
		t.Fatal(err)
	}
	const id = "abcdef01"
	date := time.Date(2024, 2, 29, 23, 59, 59, 0, time.UTC)
	open := func(folder string) *segUnderTest {
		w, err := a.NewSegment(FolderDir(folder), 1, id)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.Abort)
		return &segUnderTest{folder: folder, w: w}
	}
	record := func(s *segUnderTest, b []byte) {
		if err := s.w.BeginRecord(date); err != nil {
			t.Fatal(err)
		}
		writeChunks(t, s.w, b, c.chunk)
		off, size, err := s.w.EndRecord()
		if err != nil {
			t.Fatalf("%s: EndRecord of record %d: %v", s.folder, len(s.bodies), err)
		}
		if off != int64(s.want.Len()) || size != int64(len(b)) {
			t.Fatalf("%s: record %d: EndRecord = offset %d, size %d; want %d, %d", s.folder, len(s.bodies), off, size, s.want.Len(), len(b))
		}
		s.want.Write(FromLine(date))
		s.want.Write(quote(t, b, 1<<30))
		if len(b) > 0 && b[len(b)-1] != '\n' {
			s.want.WriteByte('\n')
		}
		s.want.WriteByte('\n')
		s.added = append(s.added, Message{Key: fmt.Sprintf("1:%d", len(s.bodies)+1), SHA256: sha(b), Size: size, InternalDate: date, Seg: s.w.Path(), Off: off})
		s.bodies = append(s.bodies, b)
	}
	abort := func(s *segUnderTest, part []byte) {
		if err := s.w.BeginRecord(date.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		writeChunks(t, s.w, part, c.chunk)
		if err := s.w.AbortRecord(); err != nil {
			t.Fatalf("%s: AbortRecord before record %d: %v", s.folder, len(s.bodies), err)
		}
	}
	commit := func(s *segUnderTest) {
		seg, err := s.w.Commit()
		if err != nil {
			t.Fatalf("%s: Commit: %v", s.folder, err)
		}
		s.seg = seg
		if seg.Records != len(s.bodies) || seg.USize != int64(s.want.Len()) {
			t.Fatalf("%s: Commit = %d records, %d bytes; want %d, %d", s.folder, seg.Records, seg.USize, len(s.bodies), s.want.Len())
		}
		for i := range seg.Frames {
			end := seg.USize
			if i+1 < len(seg.Frames) {
				end = seg.Frames[i+1][1]
			}
			if end-seg.Frames[i][1] > FrameSize {
				t.Errorf("%s: frame %d holds %d bytes, more than FrameSize", s.folder, i, end-seg.Frames[i][1])
			}
		}
		// The file decompresses, as one stream, to the kept records only.
		file, err := os.Open(filepath.Join(root, filepath.FromSlash(seg.Path)))
		if err != nil {
			t.Fatal(err)
		}
		defer file.Close()
		dec, err := newDecoder(file)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(dec)
		dec.Close()
		if err != nil {
			t.Fatalf("%s: decompress segment: %v", s.folder, err)
		}
		if want := s.want.Bytes(); !bytes.Equal(got, want) {
			i := 0
			for i < len(got) && i < len(want) && got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: segment holds %d bytes, want %d; first difference at %d: %q, want %q",
				s.folder, len(got), len(want), i, trunc(got[i:]), trunc(want[i:]))
		}
	}

	segs := []*segUnderTest{open("INBOX"), open("Sent")}
	route := func(i int) *segUnderTest {
		if i < len(c.route) {
			return segs[c.route[i]]
		}
		return segs[0]
	}
	for i, b := range c.bodies {
		if part, ok := c.aborted[i]; ok {
			abort(route(i), part)
		}
		record(route(i), b)
	}
	if part, ok := c.aborted[len(c.bodies)]; ok {
		abort(route(len(c.bodies)-1), part)
	}
	commit(segs[0])
	again := open("Archive")
	segs = append(segs, again)
	for _, b := range segs[0].bodies {
		record(again, b)
	}
	commit(again)
	commit(segs[1])

	s := &Snapshot{ID: id, Seq: 1, Source: "imap://fuzz", Protocol: "imap", Status: StatusComplete,
		Started: date, Finished: date.Add(time.Second)}
	for _, sg := range segs {
		s.Folders = append(s.Folders, Folder{Name: sg.folder, Dir: FolderDir(sg.folder), Status: FolderOK, Messages: uint32(len(sg.bodies))})
		s.Segments = append(s.Segments, sg.seg)
		s.Changes = append(s.Changes, Change{Folder: sg.folder, Added: sg.added})
	}
	if err := a.Commit(s); err != nil {
		t.Fatal(err)
	}

	a2, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := a2.Snapshots()
	if err != nil {
		t.Fatal(err)
	}
	st, err := Replay(snaps, "")
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, sg := range segs {
		ms := st.Folders[sg.folder].Archived
		if len(ms) != len(sg.bodies) {
			t.Fatalf("%s: state has %d messages, want %d", sg.folder, len(ms), len(sg.bodies))
		}
		for i, m := range ms {
			r, err := a2.OpenMessage(st, &m.Message)
			if err != nil {
				t.Fatalf("%s: OpenMessage %d: %v", sg.folder, i, err)
			}
			got, err := io.ReadAll(r)
			r.Close()
			if err != nil {
				t.Fatalf("%s: message %d: %v", sg.folder, i, err)
			}
			if !bytes.Equal(got, sg.bodies[i]) {
				t.Fatalf("%s: message %d: read %q, want %q", sg.folder, i, trunc(got), trunc(sg.bodies[i]))
			}
		}
		total += len(ms)
	}
	rep, err := a2.Verify(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Segments != len(segs) || rep.Messages != total || len(rep.Orphans) != 0 {
		t.Fatalf("Verify = %+v", rep)
	}
}

func trunc(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}

// maxFuzzSegment caps the fuzz input so that each run stays fast; bodies
// larger than FrameSize are covered by TestSegmentRoundTripStreaming.
const maxFuzzSegment = 64 << 10

// FuzzSegmentRoundTrip writes messages cut from the input into segments,
// with records aborted half-way where the abort mask says, and checks that
// exactly the kept messages come back (see checkSegmentRoundTrip).
//
// The first input byte separates the bodies in the rest (at most 63 are
// used); bit i of abort aborts a record holding the first half of body i
// before writing it, bit 63 one holding all of the last body after it;
// bit i of route sends body i to the second segment; chunk+1 is the size
// of the Write calls.
func FuzzSegmentRoundTrip(f *testing.F) {
	join := func(sep byte, bodies ...[]byte) []byte {
		return append([]byte{sep}, bytes.Join(bodies, []byte{sep})...)
	}
	f.Add(join(0xff, edgeBodies...), uint64(0), uint64(0), uint8(255))
	f.Add(join(0xff, edgeBodies...), uint64(0b10110101)|1<<63, uint64(0b1100), uint8(2))
	f.Add(join('|', []byte("From a\n"), []byte(">From b"), []byte("Fro"), []byte("From"), []byte("\n\n")), ^uint64(0), uint64(0b01010), uint8(0))
	f.Add(join(0, bigBody(700, 7), bigBody(1200, 8), bigBody(1, 9)), uint64(0b101), ^uint64(0), uint8(100))
	f.Add([]byte{}, uint64(1<<63), uint64(0), uint8(0))
	f.Add([]byte{'\n'}, uint64(3), uint64(1), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, abortMask, routeMask uint64, chunk uint8) {
		if len(data) > maxFuzzSegment {
			data = data[:maxFuzzSegment]
		}
		var bodies [][]byte
		if len(data) > 0 {
			bodies = bytes.Split(data[1:], data[:1])
		}
		if len(bodies) > 63 {
			bodies = bodies[:63]
		}
		c := segmentCase{bodies: bodies, aborted: map[int][]byte{}, chunk: int(chunk) + 1}
		for i, b := range bodies {
			c.route = append(c.route, int(routeMask>>i&1))
			if abortMask&(1<<i) != 0 {
				c.aborted[i] = b[:len(b)/2]
			}
		}
		if abortMask&(1<<63) != 0 && len(bodies) > 0 {
			c.aborted[len(bodies)] = bodies[len(bodies)-1]
		}
		checkSegmentRoundTrip(t, c)
	})
}

// TestSegmentRoundTripStreaming covers, with the checks of
// FuzzSegmentRoundTrip, what the fuzz target cannot reach cheaply: records
// larger than FrameSize, streamed in frames of their own, and records
// aborted after they were streamed or after they forced earlier records
// out into a frame.
func TestSegmentRoundTripStreaming(t *testing.T) {
	if testing.Short() {
		t.Skip("writes several segments of more than FrameSize")
	}
	// A body whose record (From line, body, blank line) is n bytes long,
	// with nothing to quote.
	L := len(FromLine(time.Time{}))
	plain := func(n int) []byte {
		b := bytes.Repeat([]byte("x"), n-L-1)
		b[len(b)-1] = '\n'
		return b
	}
	big := bigBody(FrameSize+5000, 21)
	small := [][]byte{[]byte("From a\n"), []byte(">From b"), bigBody(3000, 22)}
	for name, c := range map[string]segmentCase{
		"big records": {bodies: [][]byte{small[0], big, small[1], bytes.Repeat([]byte("From x\n"), FrameSize/7+1), small[2]}, chunk: 65536},
		"abort streamed record": {bodies: [][]byte{small[0], small[1], small[2]},
			aborted: map[int][]byte{1: big, 3: big}, chunk: 70001},
		"abort after forcing a frame": {bodies: [][]byte{small[2], small[0], small[1]},
			aborted: map[int][]byte{1: big[:FrameSize-100], 2: big[:FrameSize+100]}, chunk: 1 << 20},
		"record of exactly FrameSize":  {bodies: [][]byte{plain(FrameSize), small[0]}, chunk: 4096},
		"record one byte short":        {bodies: [][]byte{plain(FrameSize - 1), small[1], plain(FrameSize + 1)}, chunk: 1 << 22},
		"buffer full at a record end":  {bodies: [][]byte{plain(100), plain(FrameSize - 100), small[0]}, chunk: 65536},
		"abort filling the buffer":     {bodies: [][]byte{small[0]}, aborted: map[int][]byte{0: bytes.Repeat([]byte("y"), FrameSize-L), 1: plain(FrameSize)}, chunk: 1000},
		"abort filling after a record": {bodies: [][]byte{small[0], small[2]}, aborted: map[int][]byte{1: bytes.Repeat([]byte("z"), FrameSize)}, chunk: 1 << 20},
		"two writers streaming at once": {bodies: [][]byte{big, small[0], plain(FrameSize), big, small[1]}, route: []int{0, 1, 1, 1, 0},
			aborted: map[int][]byte{1: big, 3: big[:FrameSize/2], 5: big}, chunk: 300000},
	} {
		t.Run(name, func(t *testing.T) { checkSegmentRoundTrip(t, c) })
	}
}

// FuzzMaildirInfo: the Maildir info letters given to any flag list name
// exactly the storable flags again, and a keywords file written for them
// reads back the same.
func FuzzMaildirInfo(f *testing.F) {
	f.Add("\\Seen \\Answered $Label1 Work", "0 Old\n3 Other\n")
	f.Add("\\Draft \\Flagged \\Deleted $Forwarded junk", "")
	f.Add("a b c d e f g h i j k l m n o p q r s t u v w x y z extra", "garbage\n99 x\n")
	f.Fuzz(func(t *testing.T, flagList, kwFile string) {
		dir := t.TempDir()
		p := filepath.Join(dir, MaildirKeywordsFile)
		os.WriteFile(p, []byte(kwFile), 0o600)
		kw, err := ReadMaildirKeywords(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(kw) > maxMaildirKeywords {
			t.Fatalf("%d keywords read", len(kw))
		}
		flags := strings.Fields(flagList)
		info, _, dropped := kw.Info(flags)
		for i := 0; i < len(info); i++ {
			if !strings.ContainsRune("DFPRST", rune(info[i])) && (info[i] < 'a' || info[i] > 'z') {
				t.Fatalf("info %q has letter %q", info, info[i])
			}
		}
		if !validMaildirName("x,S=1:2," + info) {
			t.Fatalf("info %q makes an invalid file name", info)
		}
		back := kw.Flags(info)
		stored := 0
		for _, fl := range flags {
			if strings.EqualFold(fl, `\Recent`) {
				continue
			}
			found := false
			for _, b := range back {
				if strings.EqualFold(b, fl) {
					found = true
				}
			}
			if found {
				stored++
			}
		}
		if stored+dropped < countDistinctFold(flags) {
			t.Fatalf("flags %q: info %q gives back %q, %d dropped", flags, info, back, dropped)
		}
		os.WriteFile(p, kw.Encode(), 0o600)
		again, err := ReadMaildirKeywords(p)
		if err != nil || string(again.Encode()) != string(kw.Encode()) {
			t.Fatalf("keywords file does not round-trip: %q vs %q", again.Encode(), kw.Encode())
		}
	})
}

func countDistinctFold(flags []string) int {
	seen := map[string]bool{}
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			seen[strings.ToLower(f)] = true
		}
	}
	return len(seen)
}
