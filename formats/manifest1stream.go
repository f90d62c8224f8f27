package formats

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// SnapshotStream writes a version 1 manifest (the form WriteSnapshot
// writes: one file, records inside) record by record, so that a manifest
// of any size is written in bounded memory: the snapshot's fields first,
// then its changes, each with its added messages, then its flag changes,
// then its gone keys, then the checksum. Retention writes the manifests
// it rewrites with it. Methods are not safe for concurrent use; after an
// error every call returns it.
type SnapshotStream struct {
	bw      *bufio.Writer
	h       hash.Hash
	body    io.Writer // bw and h
	changes int
	folder  string
	open    bool // a change is open
	part    int  // 0: no array of the open change yet; 1 added, 2 flags, 3 gone
	err     error
	ioErr   error // the error of the underlying writer, if that is what failed
}

// NewSnapshotStream starts writing s (whose Changes must be empty: they
// come through the stream) to w. s is checked as a manifest's snapshot.
func NewSnapshotStream(w io.Writer, s *Snapshot) (*SnapshotStream, error) {
	if len(s.Changes) > 0 {
		return nil, errors.New("formats: a streamed snapshot's changes come through the stream")
	}
	head := *s
	head.Version = ManifestVersion1
	if err := head.validate(); err != nil {
		return nil, fmt.Errorf("formats: refusing to write an invalid snapshot %s: %w", s.ID, err)
	}
	b, err := json.Marshal(&head)
	if err != nil {
		return nil, err
	}
	sw := &SnapshotStream{bw: bufio.NewWriterSize(w, 64<<10), h: sha256.New()}
	sw.body = io.MultiWriter(sw.bw, sw.h)
	fmt.Fprintf(sw.bw, `{"mailvault_manifest":%d,"snapshot":`, ManifestVersion1)
	sw.body.Write(b[:len(b)-1]) // without the closing brace: changes may follow
	return sw, nil
}

func (sw *SnapshotStream) write(p []byte) {
	if sw.err == nil {
		if _, err := sw.body.Write(p); err != nil {
			sw.err, sw.ioErr = err, err
		}
	}
}

// BeginChange starts a change of folder with its event (and old name).
func (sw *SnapshotStream) BeginChange(folder, event, from string) error {
	if sw.err != nil {
		return sw.err
	}
	if err := sw.EndChange(); err != nil {
		return err
	}
	if folder == "" {
		sw.err = errors.New("formats: a change without folder")
		return sw.err
	}
	if err := validEvent(folder, event, from); err != nil {
		sw.err = fmt.Errorf("formats: refusing to write an invalid change: %w", err)
		return sw.err
	}
	b, err := json.Marshal(&Change{Folder: folder, Event: event, From: from})
	if err != nil {
		sw.err = err
		return err
	}
	if sw.changes == 0 {
		sw.write([]byte(`,"changes":[`))
	} else {
		sw.write([]byte(","))
	}
	sw.changes++
	sw.write(b[:len(b)-1])
	sw.folder, sw.open, sw.part = folder, true, 0
	return sw.err
}

// element starts the next element of array part (1 added, 2 flags, 3
// gone) of the open change; parts come in that order.
func (sw *SnapshotStream) element(part int, name string, r *DeltaRecord) error {
	if sw.err != nil {
		return sw.err
	}
	if !sw.open || part < sw.part {
		sw.err = errors.New("formats: a change's records come as added, flags, gone")
		return sw.err
	}
	if err := checkRecord(sw.folder, r); err != nil {
		sw.err = fmt.Errorf("formats: refusing to write an invalid record: %w", err)
		return sw.err
	}
	switch {
	case part == sw.part:
		sw.write([]byte(","))
	case sw.part > 0:
		sw.write([]byte(`],"` + name + `":[`))
	default:
		sw.write([]byte(`,"` + name + `":[`))
	}
	sw.part = part
	return sw.err
}

// Add writes an added message of the open change.
func (sw *SnapshotStream) Add(m *Message) error {
	if err := sw.element(1, "added", &DeltaRecord{Kind: RecordAdded, Message: *m}); err != nil {
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		sw.err = err
		return err
	}
	sw.write(b)
	return sw.err
}

// Flags writes a flag change of the open change.
func (sw *SnapshotStream) Flags(key string, flags []string) error {
	if err := sw.element(2, "flags", &DeltaRecord{Kind: RecordFlags, Key: key}); err != nil {
		return err
	}
	b, err := json.Marshal(&FlagChange{Key: key, Flags: flags})
	if err != nil {
		sw.err = err
		return err
	}
	sw.write(b)
	return sw.err
}

// Gone writes a gone key of the open change.
func (sw *SnapshotStream) Gone(key string) error {
	if err := sw.element(3, "gone", &DeltaRecord{Kind: RecordGone, Key: key}); err != nil {
		return err
	}
	b, err := json.Marshal(key)
	if err != nil {
		sw.err = err
		return err
	}
	sw.write(b)
	return sw.err
}

// Record writes a record of any kind of the open change.
func (sw *SnapshotStream) Record(r *DeltaRecord) error {
	switch r.Kind {
	case RecordAdded:
		return sw.Add(&r.Message)
	case RecordFlags:
		return sw.Flags(r.Key, r.Flags)
	case RecordGone:
		return sw.Gone(r.Key)
	}
	return fmt.Errorf("formats: unknown record kind %q", r.Kind)
}

// EndChange ends the open change, if any.
func (sw *SnapshotStream) EndChange() error {
	if sw.err != nil || !sw.open {
		return sw.err
	}
	if sw.part > 0 {
		sw.write([]byte("]"))
	}
	sw.write([]byte("}"))
	sw.open, sw.part = false, 0
	return sw.err
}

// Close ends the manifest: the last change, the snapshot, its checksum.
// It does not close the underlying writer.
func (sw *SnapshotStream) Close() error {
	if err := sw.EndChange(); err != nil {
		return err
	}
	if sw.changes > 0 {
		sw.write([]byte("]"))
	}
	sw.write([]byte("}"))
	if sw.err != nil {
		return sw.err
	}
	fmt.Fprintf(sw.bw, `,"sha256":"%s"}`, hex.EncodeToString(sw.h.Sum(nil)))
	if err := sw.bw.Flush(); err != nil {
		sw.err, sw.ioErr = err, err
	}
	if sw.err == nil {
		sw.err = errors.New("formats: snapshot stream closed")
		return nil
	}
	return sw.err
}
