package formats

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"sort"
	"time"
)

// PolicySnapshots returns what the policy looks at of snaps, with times
// in loc (the calendar the hourly, daily, ... rules count in).
func PolicySnapshots(snaps []*Snapshot, loc *time.Location) []PolicySnapshot {
	out := make([]PolicySnapshot, len(snaps))
	for i, s := range snaps {
		t := s.Started
		if t.IsZero() {
			t = s.Finished
		}
		out[i] = PolicySnapshot{ID: s.ID, Time: t.In(loc), Complete: s.Status == StatusComplete}
	}
	return out
}

// ForgetResult is what Forget decided and did.
type ForgetResult struct {
	Snapshots []*Snapshot      // the snapshots before, in order (headers: no changes)
	Decisions []PolicyDecision // one per snapshot, in the same order
	Forgotten int              // snapshots removed (0 on a dry run)
	Rewritten int              // manifests written anew
}

// Forget applies p to the archive's snapshots (times in loc) and removes
// the manifests of those it does not keep; with dryRun it only decides.
// The caller holds the lock.
//
// Manifests are deltas, so the changes of forgotten snapshots are folded
// into the next kept one: its new manifest holds, in order, the segments
// and changes of the forgotten snapshots before it and its own, with
// what the state needs that a forgotten snapshot's folder list carried.
// Kept snapshots keep their ids and are numbered again from 1 (seq is a
// position). Before anything is committed the new chain is replayed and
// checked against the old one: every kept snapshot must give the same
// state (folders, messages, flags, what is gone); if not, nothing
// changes. The rewrite goes through the journal (commitJournal).
//
// Forget removes no stored bytes: messages that only forgotten snapshots
// had stay recorded (as added and gone) until prune removes them.
//
// Memory does not grow with the archive: only the manifests' headers are
// held; records are streamed from the old manifests into the new ones,
// and the check compares fingerprints of what each chain holds at each
// kept snapshot (checkFold).
func (a *Archive) Forget(p Policy, loc *time.Location, dryRun bool) (*ForgetResult, error) {
	ch, err := a.readChain()
	if err != nil {
		return nil, err
	}
	snaps := ch.snapshots()
	if !dryRun {
		if err := a.removeRewriteLeftovers(); err != nil {
			return nil, err
		}
	}
	res := &ForgetResult{Snapshots: snaps, Decisions: ApplyPolicy(PolicySnapshots(snaps, loc), p)}
	keep := make([]bool, len(snaps))
	n := 0
	for i, d := range res.Decisions {
		keep[i] = d.Keep
		if !d.Keep {
			n++
		}
	}
	if dryRun || n == 0 {
		return res, nil
	}
	if res.Rewritten, err = a.forgetKeeping(ch, keep); err != nil {
		return nil, err
	}
	res.Forgotten = n
	// The state index (cache/) went with the rewrite; the next writer
	// rebuilds it from the new manifests.
	return res, nil
}

// forgetKeeping rewrites the chain ch to the snapshots keep marks (the
// last must be kept), checks it and commits it; it returns the number of
// manifests written anew.
func (a *Archive) forgetKeeping(ch *snapChain, keep []bool) (int, error) {
	folds, err := planFold(ch, keep)
	if err != nil {
		return 0, err
	}
	written, err := a.writeFolds(ch, folds)
	if err == nil {
		err = a.checkFold(ch, keep, folds)
	}
	if err != nil {
		// Nothing is committed: the new manifests are left-overs.
		for _, f := range written {
			os.Remove(f)
		}
		return 0, err
	}
	plan := make([]journalSnap, len(folds))
	rewritten := 0
	for i, f := range folds {
		plan[i] = journalSnap{Seq: f.s.Seq, ID: f.s.ID, New: f.changed}
		if f.changed {
			rewritten++
		}
	}
	return rewritten, a.commitJournal("forget", plan, nil, nil)
}

// fold is a kept snapshot of a forget: its new header (no changes) and
// the old snapshots whose changes its manifest holds, in order, after
// the folders to create first.
type fold struct {
	s        *Snapshot
	from, to int      // the old snapshots folded into it: positions from..to (to: the kept one)
	created  []string // folders only a forgotten snapshot's list had: created first
	changed  bool     // its manifest is written anew
}

// planFold returns the chain of the kept snapshots (keep[i] for the
// snapshot at position i; the last is kept) as folds, replaying the
// folders of both chains to find what a folded manifest needs besides
// the records: folders to create first, and the metadata a forgotten
// snapshot's folder list carried that the kept one's does not say again.
func planFold(ch *snapChain, keep []bool) ([]*fold, error) {
	if len(ch.snaps) == 0 || !keep[len(ch.snaps)-1] {
		return nil, fmt.Errorf("formats: forget must keep the newest snapshot")
	}
	oldR, newR := newFolderReplay(), newFolderReplay()
	var out []*fold
	from := 0
	for i, cs := range ch.snaps {
		for _, c := range cs.changes {
			if _, err := oldR.change(cs.h.ID, c.Folder, c.Event, c.From); err != nil {
				return nil, err
			}
		}
		oldR.listings(cs.h.Folders)
		if !keep[i] {
			continue
		}
		ns := cs.h.Snapshot
		ns.Changes = nil
		ns.Seq, ns.Parent = len(out)+1, ""
		if len(out) > 0 {
			ns.Parent = out[len(out)-1].s.ID
		}
		f := &fold{s: &ns, from: from, to: i}
		pend := ch.snaps[from:i]
		if len(pend) > 0 {
			// Folders a forgotten snapshot listed first: changes after
			// it may name them (a deletion, a rename).
			seen := map[string]bool{}
			for _, p := range pend {
				for _, fo := range p.h.Folders {
					if newR.byName[fo.Name] == nil && !seen[fo.Name] {
						seen[fo.Name] = true
						f.created = append(f.created, fo.Name)
					}
				}
			}
			ns.Segments = nil
			for _, p := range ch.snaps[from : i+1] {
				ns.Segments = append(ns.Segments, p.h.Segments...)
			}
			ns.Folders = append([]Folder(nil), cs.h.Folders...)
		}
		for _, name := range f.created {
			if _, err := newR.change(ns.ID, name, EventCreated, ""); err != nil {
				return nil, err
			}
		}
		for _, p := range ch.snaps[from : i+1] {
			for _, c := range p.changes {
				if _, err := newR.change(ns.ID, c.Folder, c.Event, c.From); err != nil {
					return nil, fmt.Errorf("forget: fold into snapshot %s: %w", cs.h.ID, err)
				}
			}
		}
		newR.listings(ns.Folders)
		if len(pend) > 0 {
			// What a forgotten snapshot's folder list said and the kept
			// one's does not say again.
			listed := map[string]bool{}
			for _, fo := range cs.h.Folders {
				listed[fo.Name] = true
			}
			for _, name := range oldR.names() {
				of, nf := oldR.byName[name], newR.byName[name]
				if listed[name] || of.Deleted || nf == nil || reflect.DeepEqual(of.Folder, nf.Folder) && !nf.Deleted {
					continue
				}
				ns.Folders = append(ns.Folders, of.Folder)
				nf.Folder, nf.Deleted = of.Folder, false
			}
		}
		f.changed = len(pend) > 0 || ns.Seq != cs.h.Seq || ns.Parent != cs.h.Parent
		out = append(out, f)
		from = i + 1
	}
	return out, nil
}

// writeFolds writes the manifest of every fold that changes, streaming
// the records of the old manifests into it, and returns the files
// written.
func (a *Archive) writeFolds(ch *snapChain, folds []*fold) ([]string, error) {
	var written []string
	for _, f := range folds {
		if !f.changed {
			continue
		}
		written = append(written, a.snapPath(snapshotFileName(f.s.Seq, f.s.ID)+".new"))
		err := a.writeNewManifest(f.s, func(sw *SnapshotStream) error {
			for _, name := range f.created {
				if err := sw.BeginChange(name, EventCreated, ""); err != nil {
					return err
				}
			}
			for _, cs := range ch.snaps[f.from : f.to+1] {
				if err := copyChanges(a, cs, sw); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// copyChanges writes the changes of cs, with their records, to sw.
func copyChanges(a *Archive, cs *chainSnap, sw *SnapshotStream) error {
	if len(cs.changes) == 0 {
		return nil
	}
	m, err := a.OpenManifest(cs.sf)
	if err != nil {
		return err
	}
	defer m.Close()
	for ci, c := range cs.changes {
		if err := sw.BeginChange(c.Folder, c.Event, c.From); err != nil {
			return err
		}
		if err := cs.records(m, ci, sw.Record); err != nil {
			return err
		}
	}
	return sw.EndChange()
}

// checkFold checks that the new chain (the folds, their manifests as
// written) gives at every kept snapshot the state the old chain gave:
// the same folders (names, deleted or not, metadata of those not
// deleted), the same segments, and the same messages with the same
// flags, present or gone. Both chains are walked; each kept snapshot's
// state is fingerprinted (foldPrint) and the fingerprints compared. The
// walk of the old chain also checks it as a replay does (a damaged
// archive is not rewritten).
func (a *Archive) checkFold(ch *snapChain, keep []bool, folds []*fold) error {
	files := make([]SnapshotFile, len(folds))
	mapped := make([]int, len(ch.snaps)) // old position -> new position
	for i, f := range folds {
		name := snapshotFileName(f.s.Seq, f.s.ID)
		if f.changed {
			name += ".new"
		}
		files[i] = SnapshotFile{Seq: f.s.Seq, ID: f.s.ID, Path: a.snapPath(name)}
		for j := f.from; j <= f.to; j++ {
			mapped[j] = i
		}
	}
	nch, err := a.chainOf(files)
	if err != nil {
		return fmt.Errorf("forget: read the new manifests: %w", err)
	}
	st, err := newWorkStore()
	if err != nil {
		return err
	}
	defer st.close()
	before, err := fingerprints(ch, st, keep, mapped)
	if err != nil {
		return err
	}
	all := make([]bool, len(folds))
	same := make([]int, len(folds))
	for i := range all {
		all[i], same[i] = true, i
	}
	after, err := fingerprints(nch, nil, all, same)
	if err != nil {
		return fmt.Errorf("forget: replay the new manifests: %w", err)
	}
	for i, f := range folds {
		if i >= len(before) || i >= len(after) {
			return fmt.Errorf("forget: %d kept snapshots, the new chain has %d", len(before), len(after))
		}
		if d := before[i].diff(&after[i]); d != "" {
			return fmt.Errorf("forget: snapshot %s would not stay the same (nothing was changed): %s", f.s.ID, d)
		}
	}
	return nil
}

// foldPrint fingerprints the state of a chain at a snapshot: its
// message events so far (every message added, with its entry, every flag
// change and gone key with its folder, every folder deletion, each with
// the kept snapshot it falls in), its folders and its segments.
type foldPrint struct {
	events, folders, segments [sha256.Size]byte
}

func (p *foldPrint) diff(q *foldPrint) string {
	switch {
	case p.folders != q.folders:
		return "the folders differ"
	case p.segments != q.segments:
		return "the segments differ"
	case p.events != q.events:
		return "the messages differ"
	}
	return ""
}

// fingerprints walks ch and returns the fingerprint at each snapshot
// with keep set, events counted in the snapshot mapped gives their
// position. Folders are numbered by their first message event, so that
// two chains that differ only in when empty folders were created number
// them alike. With st, keys are followed (and the chain checked as a
// replay does).
func fingerprints(ch *snapChain, st *workStore, keep []bool, mapped []int) ([]foldPrint, error) {
	h := sha256.New()
	canon := map[uint32]uint64{}
	var buf []byte
	num := func(f *replayFolder) uint64 {
		n, ok := canon[f.id]
		if !ok {
			n = uint64(len(canon) + 1)
			canon[f.id] = n
		}
		return n
	}
	event := func(kind byte, snap int, f *replayFolder) {
		buf = append(buf[:0], kind)
		buf = binary.AppendUvarint(buf, uint64(mapped[snap]))
		buf = binary.AppendUvarint(buf, num(f))
	}
	str := func(s string) {
		buf = binary.AppendUvarint(buf, uint64(len(s)))
		buf = append(buf, s...)
	}
	var w *walker
	var out []foldPrint
	segs := map[string]bool{}
	w = newWalker(ch, st, walkHooks{
		beginSnap: func(i int) error {
			for _, g := range ch.snaps[i].h.Segments {
				segs[g.Path] = true
			}
			return nil
		},
		add: func(snap int, f *replayFolder, _ int64, m *Message) error {
			event('a', snap, f)
			e := encodeMessage(nil, &IndexMessage{Message: *m})
			buf = binary.AppendUvarint(buf, uint64(len(e)))
			h.Write(append(buf, e...))
			return nil
		},
		ref: func(snap int, f *replayFolder, r *DeltaRecord, _ *curEntry, _ bool) error {
			event(byte(r.Kind), snap, f)
			str(r.Key)
			if r.Kind == RecordFlags {
				buf = binary.AppendUvarint(buf, uint64(len(r.Flags)))
				for _, fl := range r.Flags {
					str(fl)
				}
			}
			h.Write(buf)
			return nil
		},
		deleted: func(snap int, f *replayFolder) error {
			event('s', snap, f)
			h.Write(buf)
			return nil
		},
		endSnap: func(i int) error {
			if !keep[i] {
				return nil
			}
			var p foldPrint
			h.Sum(p.events[:0])
			fh := sha256.New()
			for _, name := range w.folders.names() {
				f := w.folders.byName[name]
				buf = buf[:0]
				str(name)
				buf = binary.AppendUvarint(buf, canon[f.id])
				if f.Deleted {
					buf = append(buf, 1)
				} else {
					b, _ := json.Marshal(&f.Folder)
					buf = append(buf, 0)
					str(string(b))
				}
				fh.Write(buf)
			}
			fh.Sum(p.folders[:0])
			paths := make([]string, 0, len(segs))
			for s := range segs {
				paths = append(paths, s)
			}
			sort.Strings(paths)
			gh := sha256.New()
			for _, s := range paths {
				buf = buf[:0]
				str(s)
				gh.Write(buf)
			}
			gh.Sum(p.segments[:0])
			out = append(out, p)
			return nil
		},
	})
	if err := w.run(); err != nil {
		return nil, err
	}
	return out, nil
}
