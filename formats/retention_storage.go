package formats

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// compact, for segments: a segment no kept message needs is deleted; one
// whose unneeded records exceed the allowed share (or, for erase, that
// holds an erased record) is copied, live records only, into a new
// segment of the same folder, which is committed (fsynced, renamed) before
// the manifests name it; the old one is deleted after the manifests
// stopped naming it. A segment's records are gone through twice (what is
// live, then what to do with each), never held.
func (s *segmentStorage) compact(c *compaction) error {
	rd := s.newReader(c.idx)
	defer rd.close()
	return c.segments(func(p string, recs recIter) error {
		g := c.idx.segment(p)
		if g == nil {
			return nil // not a segment (verify reports such a location)
		}
		var live, dead int64
		n, nlive, forced := 0, 0, false
		err := recs(func(r *storedRec) error {
			n++
			if r.live {
				live += r.msg.Size
				nlive++
			} else {
				dead += r.msg.Size
			}
			forced = forced || r.forced
			return nil
		})
		if err != nil {
			return err
		}
		if nlive == n || c.onlyForced && !forced {
			return nil
		}
		if nlive == 0 {
			c.newSegs[p] = nil
			c.remove = append(c.remove, p)
			c.res.Deleted++
			c.res.Freed += g.Size
			return recs(c.removed)
		}
		if !c.onlyForced && float64(dead)*100 <= c.maxUnused*float64(live+dead) {
			c.res.LeftUnused++
			return nil
		}
		err = recs(func(r *storedRec) error {
			if !r.live {
				return c.removed(r)
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.res.Rewritten++
		if c.dryRun {
			c.res.Freed += g.Size * dead / (live + dead)
			return nil
		}
		ng, err := s.copyLive(g, recs, rd, c.moved)
		if err != nil {
			return err
		}
		c.newSegs[p] = ng
		c.remove = append(c.remove, p)
		c.res.Freed += g.Size - ng.Size
		return nil
	})
}

// copyLive writes the live records of g into a new segment next to it and
// commits it; moved gets their new locations.
func (s *segmentStorage) copyLive(g *Segment, recs recIter, rd storageReader, moved func(r *storedRec, to Location) error) (*Segment, error) {
	w, err := newSegmentWriter(s.root, rewrittenName(g.Path), s.bufs, s.hook)
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	buf := make([]byte, 64<<10)
	err = recs(func(r *storedRec) error {
		if !r.live {
			return nil
		}
		body, err := rd.open(r.msg)
		if err != nil {
			return fmt.Errorf("prune: read %s: %w", r.loc, err)
		}
		if err := w.BeginRecord(r.msg.InternalDate); err != nil {
			return err
		}
		if _, err := io.CopyBuffer(w, body, buf); err != nil {
			return fmt.Errorf("prune: copy %s: %w", r.loc, err)
		}
		off, _, err := w.EndRecord()
		if err != nil {
			return err
		}
		return moved(r, Location{Seg: w.Path(), Off: off})
	})
	if err != nil {
		return nil, err
	}
	ng, err := w.Commit()
	if err != nil {
		return nil, fmt.Errorf("prune: commit %s: %w", w.Path(), err)
	}
	return &ng, nil
}

// rewrittenName names the segment that replaces p: its name (without an
// earlier rewrite's suffix) with -rRAND.
func rewrittenName(p string) string {
	dir, base := path.Split(p)
	base = strings.TrimSuffix(base, ".mbox.zst")
	if i := strings.LastIndex(base, "-r"); i >= 0 && len(base)-i == 10 && ValidID(base[i+2:]) {
		base = base[:i]
	}
	return dir + base + "-r" + NewSnapshotID() + ".mbox.zst"
}

// compact, for Maildir: each message file no kept message needs (for
// erase: holding an erased message, or another name of the file holding
// one: forceLinks) is deleted, by its current name. A file with several
// names (hard links) frees its bytes when its last name goes: only then
// are they counted.
func (s *maildirStorage) compact(c *compaction) error {
	if c.onlyForced {
		if err := s.forceLinks(c); err != nil {
			return err
		}
	}
	removing := map[inode]uint64{} // names going, of files with several
	remove := func(file string) error {
		fi, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(file)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		c.remove = append(c.remove, file)
		c.res.Deleted++
		if id, n, ok := inodeOf(fi); ok && n > 1 {
			if removing[id]++; removing[id] < n {
				return nil // other names keep the bytes
			}
		}
		c.res.Freed += fi.Size()
		return nil
	}
	// A file is found by the name recorded or the one its recorded flags
	// give; a file renamed by a later flag change waits for one pass over
	// its folder's directory, with the others of that folder: what is held
	// grows with those files, not with the folder (a map of every name of
	// a folder of 1,000,000 files was about 100 MB).
	renamed := map[string]map[string]bool{} // folders/DIR -> unique bases
	err := c.each(func(r *storedRec) error {
		if r.live || c.onlyForced && !r.forced {
			return nil
		}
		if err := c.removed(r); err != nil {
			return err
		}
		for _, name := range []string{r.loc.Seg, s.flagName(r.msg)} {
			if name == "" {
				continue
			}
			if _, err := os.Lstat(filepath.Join(s.root, filepath.FromSlash(name))); err == nil {
				return remove(name)
			}
		}
		dir := path.Dir(path.Dir(r.loc.Seg))
		if renamed[dir] == nil {
			renamed[dir] = map[string]bool{}
		}
		renamed[dir][MaildirBase(path.Base(r.loc.Seg))] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, dir := range slices.Sorted(maps.Keys(renamed)) {
		bases := renamed[dir]
		err := s.eachName(dir, func(rel string) error {
			if base := MaildirBase(path.Base(rel)); bases[base] {
				delete(bases, base)
				return remove(dir + "/" + rel)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		// What is left is gone already (a journal carried out before).
	}
	return nil
}

// eachName calls fn with "new/NAME" and "cur/NAME" for each file of the
// Maildir folders/DIR, reading the directories in batches.
func (s *maildirStorage) eachName(dir string, fn func(rel string) error) error {
	for _, sub := range []string{"new", "cur"} {
		err := eachDirEntry(filepath.Join(s.root, filepath.FromSlash(dir), sub), func(e fs.DirEntry) (bool, error) {
			return true, fn(sub + "/" + e.Name())
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// forceLinks, for erase: the other names (hard links) of a file holding
// an erased message go too, with the messages recorded there, so that
// the bytes leave the disk, as the other messages recorded at an erased
// segment record go with it. Only the messages with the same bytes are
// looked at (their files found as openFile finds them).
func (s *maildirStorage) forceLinks(c *compaction) error {
	linked := map[string][]inode{} // SHA-256 -> erased files with other names
	err := c.each(func(r *storedRec) error {
		if !r.forced {
			return nil
		}
		if id, ok, err := s.recInode(r); err != nil {
			return err
		} else if ok {
			linked[r.msg.SHA256] = append(linked[r.msg.SHA256], id)
		}
		return nil
	})
	if err != nil || len(linked) == 0 {
		return err
	}
	return c.each(func(r *storedRec) error {
		ids := linked[r.msg.SHA256]
		if r.forced || ids == nil {
			return nil
		}
		if id, ok, err := s.recInode(r); err != nil {
			return err
		} else if ok && slices.Contains(ids, id) {
			return c.force(r)
		}
		return nil
	})
}

// recInode returns the inode of the file of a stored copy when the file
// has several names; a file gone is none.
func (s *maildirStorage) recInode(r *storedRec) (inode, bool, error) {
	if !r.loc.isFile() {
		return inode{}, false, nil
	}
	f, err := s.openFile(&Message{Seg: r.loc.Seg, Size: r.msg.Size, Flags: r.msg.Flags})
	if errors.Is(err, fs.ErrNotExist) {
		return inode{}, false, nil
	}
	if err != nil {
		return inode{}, false, fmt.Errorf("erase: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return inode{}, false, fmt.Errorf("erase: %w", err)
	}
	id, n, ok := inodeOf(fi)
	return id, ok && n > 1, nil
}

// diskUsage adds up the sizes of files, a file with several names (hard
// links) once: each name counts its share, size/links, the sizes summed
// per link count so that the shares of a file whose every name is added
// make its size exactly. It holds one sum per link count seen, nothing
// per file. (A file with names outside the archive counts the archive's
// share.)
type diskUsage struct {
	whole  int64
	shared map[uint64]int64 // link count -> sizes of the names with it
}

func (u *diskUsage) add(fi fs.FileInfo) {
	_, n, ok := inodeOf(fi)
	if !ok || n <= 1 {
		u.whole += fi.Size()
		return
	}
	if u.shared == nil {
		u.shared = map[uint64]int64{}
	}
	u.shared[n] += fi.Size()
}

func (u *diskUsage) total() int64 {
	t := u.whole
	for n, b := range u.shared {
		t += b / int64(n)
	}
	return t
}
