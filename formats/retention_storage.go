package formats

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
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
// erase: holding an erased message) is deleted, by its current name.
func (s *maildirStorage) compact(c *compaction) error {
	scanned := map[string]bool{}
	return c.each(func(r *storedRec) error {
		if r.live || c.onlyForced && !r.forced {
			return nil
		}
		dir := path.Dir(path.Dir(r.loc.Seg))
		// Once per folder afresh: flags rename files.
		names, err := s.names(dir, !scanned[dir])
		scanned[dir] = true
		if err != nil {
			return err
		}
		if err := c.removed(r); err != nil {
			return err
		}
		rel, ok := names[MaildirBase(path.Base(r.loc.Seg))]
		if !ok {
			return nil // already gone (a journal carried out before)
		}
		file := dir + "/" + rel
		fi, err := os.Stat(filepath.Join(s.root, filepath.FromSlash(file)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("prune: %w", err)
		}
		c.remove = append(c.remove, file)
		c.res.Deleted++
		c.res.Freed += fi.Size()
		return nil
	})
}
