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
	"strings"
	"testing"
)

// FuzzManifestStream: the streaming reader of manifests never panics, and
// for a version 1 manifest it agrees with DecodeSnapshot, which reads the
// whole file: the same snapshot and records when that accepts the file,
// an error when it refuses it.
func FuzzManifestStream(f *testing.F) {
	for _, s := range append(fuzzSnapshots(), goldenSnapshot()) {
		data, err := EncodeSnapshot(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
		f.Add(data[:len(data)-3])
		var ind bytes.Buffer
		json.Indent(&ind, data, "", "  ")
		f.Add(ind.Bytes())
		body, _ := json.Marshal(s)
		f.Add(wrapBody(bytes.Replace(body, []byte(`"changes":[`), []byte(`"Changes":[null,`), 1)))
	}
	a, err := Create(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	h, _ := v2Snapshot(f, a)
	files, _ := a.ListSnapshots()
	v2, _ := os.ReadFile(files[0].Path)
	f.Add(v2)
	f.Add([]byte(`{"mailvault_manifest":1,"snapshot":{},"sha256":"44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}`))
	_ = h
	f.Fuzz(func(t *testing.T, data []byte) {
		dec, decErr := DecodeSnapshot(data)
		seq, id := 1, "1a2b3c4d"
		if decErr == nil {
			seq, id = dec.Seq, dec.ID
		}
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, SnapshotsDir), 0o700)
		a := &Archive{Root: root}
		p := filepath.Join(root, SnapshotsDir, snapshotFileName(seq, id))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := a.OpenManifest(SnapshotFile{Seq: seq, ID: id, Path: p})
		if err == nil {
			defer m.Close()
		}
		if err == nil && m.Version() == 2 {
			readAll(m) // no panic is all that is asked of a foreign version 2 header here
			return
		}
		var recs [][]DeltaRecord
		if err == nil {
			if err = readAll(m); err == nil {
				recs = readAllRecords(t, m)
			}
		}
		if err != nil && strings.Contains(err.Error(), "file name does not match") {
			return // named after a guess; DecodeSnapshot does not look at names
		}
		if decErr != nil {
			if err == nil {
				t.Fatalf("DecodeSnapshot refuses (%v), the streaming reader accepts", decErr)
			}
			if errors.Is(decErr, ErrNewerVersion) != errors.Is(err, ErrNewerVersion) {
				t.Fatalf("DecodeSnapshot = %v, streaming = %v", decErr, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("DecodeSnapshot accepts, the streaming reader says %v", err)
		}
		head := *dec
		head.Changes = nil
		if !reflect.DeepEqual(m.Header().Snapshot, head) {
			t.Fatalf("header =\n%+v\nDecodeSnapshot =\n%+v", m.Header().Snapshot, head)
		}
		if len(recs) != len(dec.Changes) {
			t.Fatalf("%d deltas, %d changes", len(recs), len(dec.Changes))
		}
		for i, c := range dec.Changes {
			d := m.Header().Deltas[i]
			if d.Folder != c.Folder || d.Event != c.Event || d.From != c.From {
				t.Fatalf("delta %d = %+v, change %+v", i, d, c)
			}
			if !reflect.DeepEqual(normRecords(recs[i]), normRecords(recordsOfChange(c))) {
				t.Fatalf("records of %q differ", c.Folder)
			}
		}
	})
}

// FuzzDeltaFile: any content under a matching checksum is either read as
// records that follow the rules (and that a writer writes back to the
// same records) or refused as corrupt; never a panic.
func FuzzDeltaFile(f *testing.F) {
	msg := `{"a":{"key":"1:1","sha256":"` + strings.Repeat("ab", 32) + `","size":3,"internal_date":"2024-01-02T03:04:05Z","flags":["\\Seen"],"subject":"Grüße","seg":"folders/INBOX/00000001-1a2b3c4d.mbox.zst","off":0}}`
	first := `{"mailvault_delta":2,"folder":"INBOX"}` + "\n"
	f.Add([]byte(first + msg + "\n" + `{"g":"1:2"}` + "\n" + `{"f":{"key":"1:3","flags":["\\Seen","$Label1"]}}` + "\n"))
	f.Add([]byte(first))
	f.Add([]byte(first + `{"g":"1:2","a":null}` + "\n"))
	f.Add([]byte(first + `{"f":{"key":"1:3","flags":null}}` + "\n"))
	f.Add([]byte(first + strings.Replace(msg, `"off":0`, `"off":-1`, 1) + "\n"))
	f.Add([]byte(`{"mailvault_delta":2,"folder":"INBOX","x":1}` + "\n" + `{"g":"\u00e9"}` + "\n"))
	f.Fuzz(func(t *testing.T, content []byte) {
		var d Delta
		for _, line := range bytes.Split(content, []byte("\n")) {
			switch {
			case bytes.HasPrefix(line, []byte(`{"a"`)):
				d.Added++
			case bytes.HasPrefix(line, []byte(`{"f"`)):
				d.FlagChanges++
			case bytes.HasPrefix(line, []byte(`{"g"`)):
				d.Gone++
			}
		}
		d.Records = d.Added + d.FlagChanges + d.Gone
		if d.Records == 0 {
			d.Records, d.Gone = 1, 1 // a header entry names a file only with records
		}
		a := &Archive{Root: t.TempDir()}
		os.MkdirAll(filepath.Join(a.Root, SnapshotsDir), 0o700)
		h := &Header{Snapshot: Snapshot{Version: 2, ID: "1a2b3c4d", Seq: 1, Status: StatusComplete}}
		h.Deltas = []Delta{writeDeltaFile(t, a, h, "INBOX", string(content), d)}
		rr, err := a.openDelta(h, &h.Deltas[0])
		if err != nil {
			t.Fatal(err) // the checksum matches
		}
		defer rr.Close()
		var got []DeltaRecord
		for {
			r, err := rr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("Next() = %v, want ErrCorrupt", err)
				}
				return
			}
			if err := checkRecord("INBOX", r); err != nil {
				t.Fatalf("returned a record that breaks a rule: %v", err)
			}
			c := *r
			got = append(got, c)
		}
		// Written back, the records read the same.
		w, err := a.NewDelta("INBOX")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range got {
			switch r.Kind {
			case RecordAdded:
				err = w.Add(&r.Message, false)
			case RecordFlags:
				err = w.Flags(r.Key, r.Flags)
			case RecordGone:
				err = w.Gone(r.Key)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		h2 := &Header{Snapshot: Snapshot{Version: 2, ID: "5e6f7a8b", Seq: 2, Parent: "1a2b3c4d", Status: StatusComplete}}
		d2, err := w.Commit(h2.Seq, h2.ID)
		if err != nil {
			t.Fatal(err)
		}
		rr2, err := a.openDelta(h2, &d2)
		if err != nil {
			t.Fatal(err)
		}
		defer rr2.Close()
		for i := 0; ; i++ {
			r, err := rr2.Next()
			if err == io.EOF {
				if i != len(got) {
					t.Fatalf("wrote %d records, read back %d", len(got), i)
				}
				break
			}
			if err != nil {
				t.Fatalf("reading back: %v", err)
			}
			if !reflect.DeepEqual(normRecords([]DeltaRecord{*r}), normRecords([]DeltaRecord{got[i]})) {
				t.Fatalf("record %d read back as %+v, was %+v", i, *r, got[i])
			}
		}
	})
}

// FuzzHeaderV2: a version 2 header under a matching checksum is either
// refused as corrupt (or newer) or read as a header that validates and
// that WriteHeader writes back to the same header.
func FuzzHeaderV2(f *testing.F) {
	a, err := Create(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	h, _ := v2Snapshot(f, a)
	body, _ := json.Marshal(h)
	f.Add(body)
	f.Add(bytes.Replace(body, []byte(`"records":`), []byte(`"records":1`), 1))
	f.Add(bytes.Replace(body, []byte(`"version":2`), []byte(`"version":3`), 1))
	f.Add(bytes.Replace(body, []byte(`"deltas":[`), []byte(`"changes":[{"folder":"x"}],"deltas":[`), 1))
	f.Add(bytes.Replace(body, []byte(`snapshots/00000002-5e6f7a8b/`), []byte(`snapshots/00000002-5e6f7a8b/../`), 1))
	f.Add([]byte(`{"version":2,"id":"1a2b3c4d","seq":1,"status":"complete","folders":null,"deltas":[{"folder":"A","event":"renamed"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var compact bytes.Buffer
		if json.Compact(&compact, body) != nil {
			return
		}
		sum := sha256.Sum256(compact.Bytes())
		data := []byte(fmt.Sprintf(`{"mailvault_manifest":2,"snapshot":%s,"sha256":"%s"}`, body, hex.EncodeToString(sum[:])))
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, SnapshotsDir), 0o700)
		a := &Archive{Root: root}
		var probe struct {
			Seq int    `json:"seq"`
			ID  string `json:"id"`
		}
		json.Unmarshal(body, &probe)
		if probe.Seq < 1 || probe.Seq > 99999999 || !ValidID(probe.ID) {
			probe.Seq, probe.ID = 1, "1a2b3c4d"
		}
		p := filepath.Join(root, SnapshotsDir, snapshotFileName(probe.Seq, probe.ID))
		os.WriteFile(p, data, 0o600)
		m, err := a.OpenManifest(SnapshotFile{Seq: probe.Seq, ID: probe.ID, Path: p})
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerVersion) {
				t.Fatalf("OpenManifest = %v, want ErrCorrupt or ErrNewerVersion", err)
			}
			return
		}
		defer m.Close()
		got := m.Header()
		if err := got.validate(); err != nil {
			t.Fatalf("accepted a header that does not validate: %v", err)
		}
		var b bytes.Buffer
		if err := WriteHeader(&b, got); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, b.Bytes(), 0o600)
		m2, err := a.OpenManifest(SnapshotFile{Seq: probe.Seq, ID: probe.ID, Path: p})
		if err != nil {
			t.Fatalf("written back, the header reads as %v", err)
		}
		defer m2.Close()
		if !reflect.DeepEqual(m2.Header(), got) {
			t.Fatalf("written back as\n%+v\nwas\n%+v", m2.Header(), got)
		}
	})
}
