package formats

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"
)

// PruneOptions control Prune.
type PruneOptions struct {
	// MaxUnused is the share (percent of message bytes) of records no
	// snapshot needs that a segment may keep: one with more is rewritten.
	// 0 rewrites every segment with anything to free. A segment nothing
	// needs is deleted whatever it is. Maildir files are each all or
	// nothing.
	MaxUnused float64
	DryRun    bool
}

// PruneResult is what Prune (or Erase) freed, or would free on a dry run.
type PruneResult struct {
	Messages   int   // message entries removed from the manifests
	Records    int   // stored copies removed (records, message files)
	Rewritten  int   // segments rewritten with their live records
	Deleted    int   // files deleted whole (segments, message files)
	LeftUnused int   // segments left as they are under MaxUnused
	Freed      int64 // bytes of files removed minus bytes of files written (estimated on a dry run)
	// StoredBefore and StoredAfter are the bytes of every file under
	// folders/, measured (0 on a dry run).
	StoredBefore, StoredAfter int64
	// Erased, for Erase, are the messages erased (those selected and
	// those stored in the same place), in chain order.
	Erased []ErasedMessage
}

// ErasedMessage is a message Erase removed (or would remove).
type ErasedMessage struct {
	Folder, Key, MessageID, Subject string
	Date                            time.Time
	Size                            int64
	// OnSource: the newest snapshot has it on the source, so the next
	// backup stores it again unless it is deleted there.
	OnSource bool
}

// Erase removes the messages match selects (by their folder in the
// newest snapshot's names) from every snapshot and their bytes from disk:
// the segments that hold them are rewritten without them (other messages
// stored in the same place, the same bytes, go too), or their Maildir
// files deleted, and the manifests rewritten; the archive records the
// erasure (when, selection, reason, counts) in erasures/. Nothing else is
// pruned. The caller holds the lock.
func (a *Archive) Erase(match func(folder string, m *Message) bool, selection, reason string, dryRun bool) (*PruneResult, error) {
	rec := &ErasureRecord{Time: time.Now().UTC(), Selection: selection, Reason: reason}
	return a.compactArchive("erase", match, -1, dryRun, rec)
}

// Prune removes from the archive the stored messages no snapshot needs: a
// message is needed when some snapshot has it present on the source. After
// forget, those are the messages that only forgotten snapshots had. The
// segments that hold them are rewritten with the records still needed
// (written and fsynced first), the manifests rewritten to name the new
// locations and to drop the messages removed, through the rewrite
// journal; the old segments (or, in a Maildir archive, the message files)
// are deleted last. The caller holds the lock.
func (a *Archive) Prune(opts PruneOptions) (*PruneResult, error) {
	return a.compactArchive("prune", nil, opts.MaxUnused, opts.DryRun, nil)
}

// instance is one message of the snapshot chain: from the change that
// adds it to the end of the chain, through flag changes and its gone.
type instance struct {
	msg      *Message // the manifest's entry
	folder   *walkFolder
	addSnap  int
	goneSnap int // -1 while present
	erase    bool
	drop     bool
}

type walkFolder struct {
	name  string
	byKey map[string]*instance
	all   []*instance
}

// chainWalk is the snapshot chain replayed as State.Apply does, with the
// message instance each manifest entry refers to.
type chainWalk struct {
	folders map[string]*walkFolder
	all     []*instance
	// ref[i][c] are the instances entry by entry of change c of
	// snapshot i: adds, then flag changes, then gones (nil: no message).
	ref [][][]*instance
}

func walkChain(snaps []*Snapshot) *chainWalk {
	w := &chainWalk{folders: map[string]*walkFolder{}, ref: make([][][]*instance, len(snaps))}
	for i, s := range snaps {
		w.ref[i] = make([][]*instance, len(s.Changes))
		for ci := range s.Changes {
			c := &s.Changes[ci]
			f := w.folders[c.Folder]
			if c.Event == EventRenamed {
				if old := w.folders[c.From]; old != nil {
					delete(w.folders, c.From)
					old.name = c.Folder
					w.folders[c.Folder] = old
					f = old
				}
			}
			if f == nil {
				f = &walkFolder{name: c.Folder, byKey: map[string]*instance{}}
				w.folders[c.Folder] = f
			}
			refs := make([]*instance, 0, len(c.Added)+len(c.Flags)+len(c.Gone))
			for j := range c.Added {
				in := &instance{msg: &c.Added[j], folder: f, addSnap: i, goneSnap: -1}
				f.byKey[in.msg.Key] = in
				f.all = append(f.all, in)
				w.all = append(w.all, in)
				refs = append(refs, in)
			}
			for _, fc := range c.Flags {
				refs = append(refs, f.byKey[fc.Key])
			}
			for _, k := range c.Gone {
				in := f.byKey[k]
				if in != nil && in.goneSnap < 0 {
					in.goneSnap = i
				}
				refs = append(refs, in)
			}
			if c.Event == EventDeleted {
				for _, in := range f.all {
					if in.goneSnap < 0 {
						in.goneSnap = i
					}
				}
			}
			w.ref[i][ci] = refs
		}
	}
	return w
}

// storedRec is one stored copy (a location) and whether it must stay.
type storedRec struct {
	loc    Location
	msg    *Message // one of the messages stored there
	live   bool     // a kept message is stored there
	forced bool     // an erased message is stored there: it goes, live or not
}

// compaction is the work a storage does for Prune and Erase: given the
// stored copies and which must stay, free the others.
type compaction struct {
	idx        index
	recs       map[Location]*storedRec
	maxUnused  float64
	onlyForced bool // erase: only where an erased message is stored
	dryRun     bool
	res        *PruneResult

	// Set by the storage.
	moved   map[Location]Location // live records now elsewhere
	newSegs map[string]*Segment   // a replaced segment's replacement; nil: gone
	removed map[Location]bool     // copies no longer stored
	remove  []string              // files to delete once no manifest names them
}

// compactArchive is Prune (selected nil) and Erase (selected names the
// messages to erase, recorded as erasure).
func (a *Archive) compactArchive(command string, selected func(folder string, m *Message) bool, maxUnused float64, dryRun bool, erasure *ErasureRecord) (*PruneResult, error) {
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, err
	}
	st, err := Replay(snaps, "")
	if err != nil {
		return nil, err
	}
	res := &PruneResult{}
	if !dryRun {
		if err := a.removeRewriteLeftovers(); err != nil {
			return nil, err
		}
		// Segments a killed prune wrote and never committed.
		if _, err := a.RemoveOrphans(st); err != nil {
			return nil, err
		}
		if res.StoredBefore, err = a.storedSize(); err != nil {
			return nil, err
		}
	}
	w := walkChain(snaps)
	c := &compaction{idx: st, recs: map[Location]*storedRec{}, maxUnused: maxUnused, onlyForced: selected != nil, dryRun: dryRun, res: res,
		moved: map[Location]Location{}, newSegs: map[string]*Segment{}, removed: map[Location]bool{}}
	for _, in := range w.all {
		loc := in.msg.Location()
		r := c.recs[loc]
		if r == nil {
			r = &storedRec{loc: loc, msg: in.msg}
			c.recs[loc] = r
		}
		if selected != nil && selected(in.folder.name, in.msg) {
			in.erase, r.forced = true, true
		}
		if in.goneSnap != in.addSnap {
			r.live = true // present at the end of the snapshot that added it
		}
	}
	for _, r := range c.recs {
		if r.forced {
			r.live = false
		}
	}
	if err := a.store.compact(c); err != nil {
		return nil, err
	}
	for _, in := range w.all {
		loc := in.msg.Location()
		if !c.removed[loc] {
			continue
		}
		in.drop = true
		res.Messages++
		if c.recs[loc].forced {
			m := in.msg
			res.Erased = append(res.Erased, ErasedMessage{Folder: in.folder.name, Key: m.Key, MessageID: m.MessageID, Subject: m.Subject,
				Date: m.InternalDate, Size: m.Size, OnSource: in.goneSnap < 0})
		}
	}
	res.Records = len(c.removed)
	if erasure != nil {
		erasure.Messages, erasure.Records = len(res.Erased), 0
		for _, r := range c.recs {
			if r.forced {
				erasure.Records++
			}
		}
		if len(res.Erased) == 0 {
			return res, nil
		}
	}
	chain, changed := rewriteChain(snaps, w, c)
	if dryRun || len(changed) == 0 && len(c.remove) == 0 {
		if !dryRun {
			res.StoredAfter = res.StoredBefore
		}
		return res, nil
	}
	if err := a.commitRewrite(command, chain, changed, c.remove, erasure); err != nil {
		return nil, err
	}
	if res.StoredAfter, err = a.storedSize(); err != nil {
		return nil, err
	}
	// The state index (cache/) went with the rewrite; the next writer
	// rebuilds it from the new manifests.
	return res, nil
}

// rewriteChain returns the snapshots with the dropped messages left out
// and the moved ones at their new locations, and the ids of those that
// changed.
func rewriteChain(snaps []*Snapshot, w *chainWalk, c *compaction) ([]*Snapshot, map[string]bool) {
	changed := map[string]bool{}
	out := make([]*Snapshot, len(snaps))
	for i, s := range snaps {
		ns := *s
		dirty := false
		ns.Segments = nil
		for _, g := range s.Segments {
			if ng, ok := c.newSegs[g.Path]; ok {
				dirty = true
				if ng != nil {
					ns.Segments = append(ns.Segments, *ng)
				}
				continue
			}
			ns.Segments = append(ns.Segments, g)
		}
		ns.Changes = nil
		for ci, ch := range s.Changes {
			refs := w.ref[i][ci]
			nc := ch
			nc.Added, nc.Flags, nc.Gone = nil, nil, nil
			k := 0
			for _, m := range ch.Added {
				in := refs[k]
				k++
				if in.drop {
					dirty = true
					continue
				}
				if to, ok := c.moved[m.Location()]; ok {
					m.Seg, m.Off = to.Seg, to.Off
					dirty = true
				}
				nc.Added = append(nc.Added, m)
			}
			for _, fc := range ch.Flags {
				in := refs[k]
				k++
				if in != nil && in.drop {
					dirty = true
					continue
				}
				nc.Flags = append(nc.Flags, fc)
			}
			for _, key := range ch.Gone {
				in := refs[k]
				k++
				if in != nil && in.drop {
					dirty = true
					continue
				}
				nc.Gone = append(nc.Gone, key)
			}
			if nc.Event == "" && len(nc.Added)+len(nc.Flags)+len(nc.Gone) == 0 && len(ch.Added)+len(ch.Flags)+len(ch.Gone) > 0 {
				continue // nothing left of it
			}
			ns.Changes = append(ns.Changes, nc)
		}
		if dirty {
			changed[s.ID] = true
		}
		out[i] = &ns
	}
	return out, changed
}

// storedSize is the size of every file under folders/ (a file with
// several names once: diskUsage).
func (a *Archive) storedSize() (int64, error) {
	var n diskUsage
	err := filepath.WalkDir(filepath.Join(a.Root, FoldersDir), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err == nil {
				n.add(fi)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measure stored files: %w", err)
	}
	return n.total(), nil
}

// sortedRecs returns recs in location order.
func sortedRecs(recs []*storedRec) []*storedRec {
	sort.Slice(recs, func(i, j int) bool {
		if recs[i].loc.Seg != recs[j].loc.Seg {
			return recs[i].loc.Seg < recs[j].loc.Seg
		}
		return recs[i].loc.Off < recs[j].loc.Off
	})
	return recs
}
