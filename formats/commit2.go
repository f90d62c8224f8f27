package formats

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Committing and reading version 2 manifests as whole snapshots: the
// bridge between Snapshot (records in memory) and the streamed form.

// CommitDeltas commits s as a version 2 manifest. Its records come from
// two places: streamed, delta writers the caller filled while the run went
// on (their records are not in memory), and s.Changes (records in memory,
// written to delta files here). For each change, in order, the folder's
// streamed writers come first, then the change's own records (added, then
// flag changes, then gone keys, as version 1 applies them); the folder's
// event is on its first entry. Streamed writers of folders without a
// change come last. Every delta file is fsynced and in place before the
// header names it; every segment must have been committed before.
//
// On an error the streamed writers may have been used up (their files
// placed under this snapshot's directory, an orphan once no header names
// it): the caller must not commit their records again elsewhere.
// It returns the header committed, whose entries count the records.
func (a *Archive) CommitDeltas(s *Snapshot, streamed []*DeltaWriter) (_ *Header, err error) {
	s.Version = ManifestVersion2
	s.settleStatus()
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("formats: refusing to commit an invalid snapshot: %w", err)
	}
	final := filepath.Join(a.Root, SnapshotsDir, snapshotFileName(s.Seq, s.ID))
	if _, err := os.Stat(final); err == nil {
		return nil, fmt.Errorf("formats: snapshot %s already exists", s.ID)
	}
	used := make([]bool, len(streamed))
	defer func() {
		if err != nil {
			for i, w := range streamed {
				if !used[i] {
					w.Abort()
				}
			}
		}
	}()
	h := &Header{Snapshot: *s}
	h.Changes = nil
	commit := func(w *DeltaWriter, first bool, c *Change) error {
		d, err := w.Commit(s.Seq, s.ID)
		if err != nil {
			return err
		}
		if d.Records == 0 && !first {
			return nil
		}
		if first {
			d.Event, d.From = c.Event, c.From
		}
		h.Deltas = append(h.Deltas, d)
		return nil
	}
	for ci := range s.Changes {
		c := &s.Changes[ci]
		first := true
		for i, w := range streamed {
			if used[i] || w.Folder() != c.Folder {
				continue
			}
			used[i] = true
			if w.Records() == 0 {
				w.Abort()
				continue
			}
			if err := commit(w, first, c); err != nil {
				return nil, err
			}
			first = false
		}
		if len(c.Added)+len(c.Flags)+len(c.Gone) == 0 {
			if first {
				h.Deltas = append(h.Deltas, Delta{Folder: c.Folder, Event: c.Event, From: c.From})
			}
			continue
		}
		w, err := a.NewDelta(c.Folder)
		if err != nil {
			return nil, err
		}
		if err := writeChangeRecords(w, c); err != nil {
			w.Abort()
			return nil, err
		}
		if err := commit(w, first, c); err != nil {
			return nil, err
		}
	}
	for i, w := range streamed {
		if used[i] {
			continue
		}
		used[i] = true
		if w.Records() == 0 {
			w.Abort()
			continue
		}
		if err := commit(w, false, nil); err != nil {
			return nil, err
		}
	}
	if a.Config.Version < FormatVersion {
		// The archive now holds a manifest an older mailvault cannot read:
		// it must refuse the archive as a whole.
		if err := a.setVersion(FormatVersion); err != nil {
			return nil, err
		}
	}
	if err := a.CommitHeader(h); err != nil {
		return nil, err
	}
	return h, nil
}

// writeChangeRecords writes a change's records to w: added, flag
// changes, gone keys.
func writeChangeRecords(w *DeltaWriter, c *Change) error {
	for i := range c.Added {
		if err := w.Add(&c.Added[i], true); err != nil {
			return err
		}
	}
	for _, fc := range c.Flags {
		if err := w.Flags(fc.Key, fc.Flags); err != nil {
			return err
		}
	}
	for _, k := range c.Gone {
		if err := w.Gone(k); err != nil {
			return err
		}
	}
	return nil
}

// setVersion records the archive's format version in mailvault.json.
func (a *Archive) setVersion(v int) error {
	cfg := a.Config
	cfg.Version = v
	if err := a.writeConfig(cfg); err != nil {
		return unwritable("record the format version in", ConfigFile, err)
	}
	a.Config = cfg
	return nil
}

// readSnapshot2 reads a version 2 manifest with its records as a
// Snapshot: the compatible form for readers that hold a snapshot whole.
// Consecutive entries of one folder become one change (added, then flag
// changes, then gone keys: the entries a writer makes keep that order).
func (a *Archive) readSnapshot2(sf SnapshotFile) (*Snapshot, error) {
	m, err := a.OpenManifest(sf)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	h := m.Header()
	s := h.Snapshot
	s.Changes = nil
	for i, d := range h.Deltas {
		if n := len(s.Changes); n == 0 || s.Changes[n-1].Folder != d.Folder || d.Event != "" {
			s.Changes = append(s.Changes, Change{Folder: d.Folder, Event: d.Event, From: d.From})
		}
		c := &s.Changes[len(s.Changes)-1]
		rr, err := m.Records(i)
		if err != nil {
			return nil, err
		}
		for {
			r, err := rr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				rr.Close()
				return nil, err
			}
			switch r.Kind {
			case RecordAdded:
				c.Added = append(c.Added, r.Message)
			case RecordFlags:
				c.Flags = append(c.Flags, FlagChange{Key: r.Key, Flags: r.Flags})
			case RecordGone:
				c.Gone = append(c.Gone, r.Key)
			}
		}
		rr.Close()
	}
	return &s, nil
}

// deltaOrphans lists the delta files and directories under snapshots/
// that no committed manifest names: the directory of a snapshot whose
// header was never written (files first, then the directory).
func (a *Archive) deltaOrphans(entries []os.DirEntry) ([]string, error) {
	headers := map[string]bool{}
	for _, e := range entries {
		if base, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			headers[base] = true
		}
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() || headers[e.Name()] {
			continue
		}
		files, err := os.ReadDir(filepath.Join(a.Root, SnapshotsDir, e.Name()))
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			out = append(out, SnapshotsDir+"/"+e.Name()+"/"+f.Name())
		}
		out = append(out, SnapshotsDir+"/"+e.Name())
	}
	return out, nil
}

// Headers reads every committed manifest's header (no records), in
// order, and checks the chain of parents: what a listing of snapshots
// needs, whatever their size. Each header's Deltas count its records.
func (a *Archive) Headers() ([]*Header, error) {
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	out := make([]*Header, 0, len(files))
	for i, sf := range files {
		m, err := a.OpenManifest(sf)
		if err != nil {
			return nil, err
		}
		h := m.Header()
		m.Close()
		if i == 0 && h.Seq != 1 || i > 0 && (h.Seq != out[i-1].Seq+1 || h.Parent != out[i-1].ID) {
			return nil, fmt.Errorf("%w: snapshot %s does not follow the one before it", ErrCorrupt, h.ID)
		}
		out = append(out, h)
	}
	return out, nil
}

// HeaderStoredBytes is StoredBytes for the headers Headers returned: the
// size of each snapshot's segments in an mbox archive; in a Maildir
// archive the bytes of the files it stored, as its entries count them
// (a version 1 manifest's records are read, streaming, to find them).
func (a *Archive) HeaderStoredBytes(hs []*Header) ([]int64, error) {
	out := make([]int64, len(hs))
	if _, ok := a.store.(*maildirStorage); !ok {
		for i, h := range hs {
			for _, g := range h.Segments {
				out[i] += g.Size
			}
		}
		return out, nil
	}
	files, err := a.ListSnapshots()
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{} // files named by version 1 manifests
	for i, h := range hs {
		if h.Version >= ManifestVersion2 {
			for _, d := range h.Deltas {
				out[i] += d.Bytes
			}
			continue
		}
		if i >= len(files) || files[i].ID != h.ID {
			return nil, fmt.Errorf("%w: snapshot %s changed while it was read", ErrCorrupt, h.ID)
		}
		s, err := a.ReadSnapshot(files[i])
		if err != nil {
			return nil, err
		}
		for _, c := range s.Changes {
			for _, m := range c.Added {
				if m.Location().isFile() && !seen[m.Seg] {
					seen[m.Seg] = true
					out[i] += m.Size
				}
			}
		}
	}
	return out, nil
}
