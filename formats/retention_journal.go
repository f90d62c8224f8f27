package formats

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Retention (forget, prune, erase) rewrites committed manifests. One
// rewrite replaces several files, which no file system does at once, so it
// goes through a journal (docs/FORMAT.md, "Rewriting manifests"):
//
//  1. new stored files (segments) are written and fsynced;
//  2. each new manifest is written to snapshots/SEQ-ID.json.new, fsynced;
//  3. the journal snapshots/rewrite-journal is written (temporary file,
//     fsync, rename, directory fsync): the commit point. It lists every
//     snapshot of the archive after the rewrite and the stored files to
//     delete;
//  4. the journal is carried out: each .new file renamed over its final
//     name, the directory fsynced, every manifest the journal does not
//     list removed, then the stored files it names; last the journal.
//
// Before the journal exists the archive is the old one (the .new files
// and new segments are left-overs). Once it exists, ListSnapshots answers
// from it, so every reader sees the new archive, and whoever takes the
// lock next finishes step 4, which can be repeated any number of times.

const (
	// rewriteJournal is the journal of a manifest rewrite, in snapshots/.
	rewriteJournal = "rewrite-journal"
	// newManifestSuffix ends the name of a manifest a rewrite has written
	// but not yet put in place.
	newManifestSuffix = ".json.new"
)

// rewritePlan is the journal's content.
type rewritePlan struct {
	Journal int    `json:"mailvault_rewrite"`
	Command string `json:"command"`
	// Snapshots is every snapshot of the archive after the rewrite, in
	// order; New marks those whose manifest is in a .new file.
	Snapshots []journalSnap `json:"snapshots"`
	// Remove are stored files (relative to the root) no manifest names
	// after the rewrite.
	Remove []string `json:"remove,omitempty"`
	// Erasure, for an erase, is recorded in erasures/ when the rewrite
	// is carried out.
	Erasure *ErasureRecord `json:"erasure,omitempty"`

	removeCount int // paths in Remove, when read streaming (Remove nil)
}

type journalSnap struct {
	Seq int    `json:"seq"`
	ID  string `json:"id"`
	New bool   `json:"new,omitempty"`
}

// ErasureRecord is what the archive keeps of an erase: when, what was
// asked, why and how many messages went, never their content.
type ErasureRecord struct {
	Time      time.Time `json:"time"`
	Selection string    `json:"selection"`
	Reason    string    `json:"reason,omitempty"`
	Messages  int       `json:"messages"`
	Records   int       `json:"records"` // stored copies removed
}

// ErasuresDir holds one file per erase carried out.
const ErasuresDir = "erasures"

func (a *Archive) snapPath(name string) string { return filepath.Join(a.Root, SnapshotsDir, name) }

// readRewritePlan returns the pending journal, or nil when there is none.
// Its Remove list is not held: it is checked and counted here, and
// eachRemove streams it (a prune of a Maildir archive may list a file per
// message).
func (a *Archive) readRewritePlan() (*rewritePlan, error) {
	return a.decodeRewritePlan(nil)
}

// eachRemove calls fn with every path of the pending journal's Remove
// list, in order, reading the journal again.
func (a *Archive) eachRemove(fn func(rel string) error) error {
	_, err := a.decodeRewritePlan(fn)
	return err
}

// decodeRewritePlan reads the journal streaming; remove, when not nil, is
// called with each path of its Remove list.
func (a *Archive) decodeRewritePlan(remove func(rel string) error) (*rewritePlan, error) {
	f, err := os.Open(a.snapPath(rewriteJournal))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the rewrite journal: %w", err)
	}
	defer f.Close()
	var p rewritePlan
	bad := func(err error) error { return fmt.Errorf("%w: rewrite journal: %v", ErrCorrupt, err) }
	dec := json.NewDecoder(bufio.NewReaderSize(f, 64<<10))
	if err := expectDelim(dec, '{'); err != nil {
		return nil, bad(err)
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		name, _ := tok.(string)
		var dst any
		switch name {
		case "mailvault_rewrite":
			dst = &p.Journal
		case "command":
			dst = &p.Command
		case "snapshots":
			dst = &p.Snapshots
		case "erasure":
			dst = &p.Erasure
		case "remove":
			if tok, err := dec.Token(); err != nil {
				return nil, bad(err)
			} else if tok == nil {
				continue // null
			} else if d, ok := tok.(json.Delim); !ok || d != '[' {
				return nil, bad(fmt.Errorf("%v where an array was expected", tok))
			}
			for dec.More() {
				var r string
				if err := dec.Decode(&r); err != nil {
					return nil, bad(err)
				}
				if !validStoredPath(r) {
					return nil, fmt.Errorf("%w: rewrite journal: bad path %q", ErrCorrupt, r)
				}
				p.removeCount++
				if remove != nil {
					if err := remove(r); err != nil {
						return nil, err
					}
				}
			}
			if err := expectDelim(dec, ']'); err != nil {
				return nil, bad(err)
			}
			continue
		default:
			var skip json.RawMessage
			dst = &skip
		}
		if err := dec.Decode(dst); err != nil {
			return nil, bad(err)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, bad(err)
	}
	if p.Journal > 1 {
		return nil, fmt.Errorf("%w: rewrite journal version %d", ErrNewerVersion, p.Journal)
	}
	for _, s := range p.Snapshots {
		if !ValidID(s.ID) || s.Seq < 1 {
			return nil, fmt.Errorf("%w: rewrite journal: bad snapshot %d-%s", ErrCorrupt, s.Seq, s.ID)
		}
	}
	return &p, nil
}

// expectDelim reads one JSON delimiter.
func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%v where %v was expected", tok, want)
	}
	return nil
}

// validStoredPath accepts the paths of stored files a journal may remove:
// segments and Maildir message files (in cur/ or new/).
func validStoredPath(p string) bool {
	if ValidSegmentPath(p) || validMaildirPath(p) {
		return true
	}
	parts := strings.Split(p, "/")
	return len(parts) == 4 && parts[0] == FoldersDir && ValidDir(parts[1]) && parts[2] == "new" &&
		validMaildirName(parts[3]) && path.Clean(p) == p
}

// journalSnapshots is ListSnapshots while a journal is pending: the
// snapshots it lists, each at its .new file until that is renamed.
func (a *Archive) journalSnapshots() ([]SnapshotFile, bool, error) {
	p, err := a.readRewritePlan()
	if err != nil || p == nil {
		return nil, false, err
	}
	out := make([]SnapshotFile, 0, len(p.Snapshots))
	for _, s := range p.Snapshots {
		final := snapshotFileName(s.Seq, s.ID)
		sf := SnapshotFile{Seq: s.Seq, ID: s.ID, Path: a.snapPath(final)}
		if s.New {
			if _, err := os.Stat(a.snapPath(final + ".new")); err == nil {
				sf.Path = a.snapPath(final + ".new")
			}
		}
		out = append(out, sf)
	}
	return out, true, nil
}

// writeNewManifest writes s, a manifest of the archive after a rewrite,
// to snapshots/SEQ-ID.json.new (through a temporary file, fsynced,
// renamed): as a version 1 manifest, one file with its records, which
// body streams (s.Changes must be empty). A version 2 snapshot's delta
// directory goes once the new manifest is installed.
func (a *Archive) writeNewManifest(s *Snapshot, body func(sw *SnapshotStream) error) error {
	side := a.snapPath(snapshotFileName(s.Seq, s.ID) + ".new")
	err := writeAtomic(side, func(w io.Writer) error {
		sw, err := NewSnapshotStream(w, s)
		if err == nil {
			err = body(sw)
		}
		if err == nil {
			err = sw.Close()
		}
		if err != nil && (sw == nil || sw.ioErr == nil) {
			return notWriting{err}
		}
		return err
	}, nil)
	var nw notWriting
	if errors.As(err, &nw) {
		return nw.error
	}
	if err != nil {
		return unwritable("write manifest", side, err)
	}
	return nil
}

// notWriting is an error of a writer's content, not of the file system.
type notWriting struct{ error }

// commitJournal commits a rewrite whose new manifests (writeNewManifest)
// and new stored files are written and synced: it writes the journal
// (the commit point) and carries it out. snaps is every snapshot of the
// archive after the rewrite, in order, New marking those written anew;
// remove, when not nil, calls its argument with each stored file no
// manifest names afterwards.
func (a *Archive) commitJournal(command string, snaps []journalSnap, remove func(fn func(rel string) error) error, erasure *ErasureRecord) error {
	var rerr error // what failed reading the remove list
	a.hook("rewrite-before-journal")
	err := writeAtomic(a.snapPath(rewriteJournal), func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 64<<10)
		cmd, _ := json.Marshal(command)
		list, err := json.Marshal(snaps)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "{\"mailvault_rewrite\":1,\"command\":%s,\n \"snapshots\":%s", cmd, list)
		if remove != nil {
			n := 0
			err := remove(func(rel string) error {
				if !validStoredPath(rel) {
					return fmt.Errorf("formats: refusing to remove %q in a rewrite", rel)
				}
				b, _ := json.Marshal(rel)
				if n == 0 {
					bw.WriteString(",\n \"remove\":[\n  ")
				} else {
					bw.WriteString(",\n  ")
				}
				n++
				_, err := bw.Write(b)
				return err
			})
			if err != nil {
				rerr = err
				return err
			}
			if n > 0 {
				bw.WriteString("]")
			}
		}
		if erasure != nil {
			b, err := json.Marshal(erasure)
			if err != nil {
				return err
			}
			fmt.Fprintf(bw, ",\n \"erasure\":%s", b)
		}
		bw.WriteString("}\n")
		return bw.Flush()
	}, nil)
	if rerr != nil {
		return rerr
	}
	if err != nil {
		return unwritable("write the rewrite journal", rewriteJournal, err)
	}
	a.hook("rewrite-after-journal")
	return a.finishRewrite()
}

// finishRewrite carries out a pending journal, if any (step 4). It is
// idempotent: a run killed in it is finished by the next.
func (a *Archive) finishRewrite() error {
	p, err := a.readRewritePlan()
	if err != nil || p == nil {
		return err
	}
	keep := map[string]bool{}
	keepDeltas := map[string]bool{} // delta directories of manifests kept as they are
	for _, s := range p.Snapshots {
		final := snapshotFileName(s.Seq, s.ID)
		keep[final] = true
		if !s.New {
			keepDeltas[path.Base(deltaDir(s.Seq, s.ID))] = true
			continue
		}
		if err := os.Rename(a.snapPath(final+".new"), a.snapPath(final)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("install manifest %s: %w", final, err)
		}
		a.hook("rewrite-installed")
	}
	dir := filepath.Join(a.Root, SnapshotsDir)
	if err := syncDir(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range entries {
		n := e.Name()
		if (strings.HasSuffix(n, ".json") && !keep[n]) || strings.HasSuffix(n, newManifestSuffix) {
			if err := os.Remove(a.snapPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove manifest %s: %w", n, err)
			}
			a.hook("rewrite-removed-manifest")
		}
	}
	// The delta files of version 2 manifests removed or rewritten (a
	// rewritten manifest is a version 1 file that names none): no
	// manifest reads them any more.
	for _, e := range entries {
		if n := e.Name(); e.IsDir() && !keepDeltas[n] {
			if err := os.RemoveAll(a.snapPath(n)); err != nil {
				return fmt.Errorf("remove the delta files %s: %w", n, err)
			}
			a.hook("rewrite-removed-deltas")
		}
	}
	if err := syncDir(dir); err != nil {
		return err
	}
	dirs := map[string]bool{} // folder directories: few
	err = a.eachRemove(func(r string) error {
		full := filepath.Join(a.Root, filepath.FromSlash(r))
		if err := os.Remove(full); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", r, err)
		}
		dirs[filepath.Dir(full)] = true
		a.hook("rewrite-removed-file")
		return nil
	})
	if err != nil {
		return err
	}
	for d := range dirs {
		if err := syncDir(d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	if p.Erasure != nil {
		if err := a.recordErasure(p.Erasure); err != nil {
			return err
		}
	}
	// The state cache and the index are derived from the old manifests
	// and may hold what was removed (an erased message's headers): they
	// go, and are made again from the new ones.
	if err := os.RemoveAll(filepath.Join(a.Root, CacheDir)); err != nil {
		return fmt.Errorf("remove the state cache: %w", err)
	}
	if err := os.Remove(a.snapPath(rewriteJournal)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove the rewrite journal: %w", err)
	}
	return syncDir(dir)
}

// recordErasure writes e to erasures/TIME.json (the same file when a
// journal is carried out twice).
func (a *Archive) recordErasure(e *ErasureRecord) error {
	dir := filepath.Join(a.Root, ErasuresDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return unwritable("record the erasure in", ErasuresDir, err)
	}
	data, err := json.MarshalIndent(e, "", "  ")
	if err != nil {
		return err
	}
	name := e.Time.UTC().Format("20060102T150405.000000000Z") + ".json"
	if err := writeFileAtomic(filepath.Join(dir, name), append(data, '\n'), nil); err != nil {
		return unwritable("record the erasure in", ErasuresDir, err)
	}
	return nil
}

// Erasures returns the erasures recorded in the archive, oldest first.
func (a *Archive) Erasures() ([]ErasureRecord, error) {
	entries, err := os.ReadDir(filepath.Join(a.Root, ErasuresDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list erasures: %w", err)
	}
	var out []ErasureRecord
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(a.Root, ErasuresDir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("read erasure %s: %w", e.Name(), err)
		}
		var r ErasureRecord
		if err := json.Unmarshal(data, &r); err != nil {
			return nil, fmt.Errorf("%w: erasure %s: %v", ErrCorrupt, e.Name(), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// rewritePending reports whether a journal waits to be carried out.
func (a *Archive) rewritePending() bool {
	_, err := os.Stat(a.snapPath(rewriteJournal))
	return err == nil
}

// removeRewriteLeftovers deletes the manifests a rewrite killed before its
// commit point wrote (snapshots/*.json.new and temporary files). The
// caller holds the lock (which finished any committed rewrite).
func (a *Archive) removeRewriteLeftovers() error {
	if a.rewritePending() {
		return nil
	}
	entries, err := os.ReadDir(filepath.Join(a.Root, SnapshotsDir))
	if err != nil {
		return fmt.Errorf("list snapshots: %w", err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, newManifestSuffix) || strings.HasSuffix(n, ".tmp") {
			if err := os.Remove(a.snapPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove left-over %s: %w", n, err)
			}
		}
	}
	return nil
}
