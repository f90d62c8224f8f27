package formats

import (
	"fmt"
	"reflect"
	"slices"
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
	Snapshots []*Snapshot      // the snapshots before, in order
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
// position). Before anything is written the new chain is replayed and
// checked against the old one: every kept snapshot must give the same
// state (folders, messages, flags, what is gone); if not, nothing
// changes. The rewrite goes through the journal (commitRewrite).
//
// Forget removes no stored bytes: messages that only forgotten snapshots
// had stay recorded (as added and gone) until prune removes them.
func (a *Archive) Forget(p Policy, loc *time.Location, dryRun bool) (*ForgetResult, error) {
	snaps, err := a.Snapshots()
	if err != nil {
		return nil, err
	}
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
	chain, changed, _, err := foldChain(snaps, keep)
	if err != nil {
		return nil, err
	}
	if err := a.commitRewrite("forget", chain, changed, nil, nil); err != nil {
		return nil, err
	}
	res.Forgotten, res.Rewritten = n, len(changed)
	// The state index (cache/) went with the rewrite; the next writer
	// rebuilds it from the new manifests.
	return res, nil
}

// foldChain returns the chain of the kept snapshots (keep[i] for
// snaps[i]; the last is kept), the ids of those whose manifest changes,
// and the state at the last one. It checks that every kept snapshot
// gives the same state as before.
func foldChain(snaps []*Snapshot, keep []bool) ([]*Snapshot, map[string]bool, *State, error) {
	if len(snaps) == 0 || !keep[len(snaps)-1] {
		return nil, nil, nil, fmt.Errorf("formats: forget must keep the newest snapshot")
	}
	oldSt, newSt := NewState(), NewState()
	changed := map[string]bool{}
	var out []*Snapshot
	var pend []*Snapshot
	for i, s := range snaps {
		if err := oldSt.Apply(s); err != nil {
			return nil, nil, nil, err
		}
		if !keep[i] {
			pend = append(pend, s)
			continue
		}
		ns := *s
		ns.Seq = len(out) + 1
		ns.Parent = ""
		if len(out) > 0 {
			ns.Parent = out[len(out)-1].ID
		}
		if len(pend) > 0 {
			ns.Segments, ns.Changes = nil, nil
			// Folders a forgotten snapshot listed first: changes after
			// it may name them (a deletion, a rename).
			seen := map[string]bool{}
			for _, f := range pend {
				for _, fo := range f.Folders {
					if newSt.Folders[fo.Name] == nil && !seen[fo.Name] {
						seen[fo.Name] = true
						ns.Changes = append(ns.Changes, Change{Folder: fo.Name, Event: EventCreated})
					}
				}
			}
			for _, f := range append(pend, s) {
				ns.Segments = append(ns.Segments, f.Segments...)
				ns.Changes = append(ns.Changes, f.Changes...)
			}
			ns.Folders = append([]Folder(nil), s.Folders...)
		}
		if err := newSt.Apply(&ns); err != nil {
			return nil, nil, nil, fmt.Errorf("forget: fold into snapshot %s: %w", s.ID, err)
		}
		if len(pend) > 0 {
			// What a forgotten snapshot's folder list said and the kept
			// one's does not say again.
			listed := map[string]bool{}
			for _, fo := range s.Folders {
				listed[fo.Name] = true
			}
			for _, name := range oldSt.FolderNames() {
				of, nf := oldSt.Folders[name], newSt.Folders[name]
				if listed[name] || of.Deleted || nf == nil || reflect.DeepEqual(of.Folder, nf.Folder) && !nf.Deleted {
					continue
				}
				ns.Folders = append(ns.Folders, of.Folder)
				nf.Folder, nf.Deleted = of.Folder, false
			}
		}
		// A kept snapshot with nothing folded into it applies the same
		// changes to the same state: only the others need the check.
		if len(pend) > 0 {
			if err := keptStateSame(oldSt, newSt); err != nil {
				return nil, nil, nil, fmt.Errorf("forget: snapshot %s would not stay the same (nothing was changed): %w", s.ID, err)
			}
		}
		if len(pend) > 0 || ns.Seq != s.Seq || ns.Parent != s.Parent {
			changed[s.ID] = true
		}
		out = append(out, &ns)
		pend = nil
	}
	return out, changed, newSt, nil
}

// keptStateSame reports the first difference between two states of the same
// archive that matters to a reader: folders, whether they are deleted,
// their metadata (but for deleted folders), their messages in order with
// flags and gone, and the segments. Which snapshot added or removed a
// message does not count.
func keptStateSame(a, b *State) error {
	an, bn := a.FolderNames(), b.FolderNames()
	if !reflect.DeepEqual(an, bn) {
		return fmt.Errorf("folders %q, want %q", bn, an)
	}
	for _, name := range an {
		fa, fb := a.Folders[name], b.Folders[name]
		if err := fa.Load(); err != nil {
			return err
		}
		if err := fb.Load(); err != nil {
			return err
		}
		if fa.Deleted != fb.Deleted {
			return fmt.Errorf("folder %q: deleted %v, want %v", name, fb.Deleted, fa.Deleted)
		}
		if !fa.Deleted && !reflect.DeepEqual(fa.Folder, fb.Folder) {
			return fmt.Errorf("folder %q: state %+v, want %+v", name, fb.Folder, fa.Folder)
		}
		if len(fa.Archived) != len(fb.Archived) {
			return fmt.Errorf("folder %q: %d messages, want %d", name, len(fb.Archived), len(fa.Archived))
		}
		for i, ma := range fa.Archived {
			mb := fb.Archived[i]
			if ma.Gone != mb.Gone || !sameMessage(&ma.Message, &mb.Message) {
				return fmt.Errorf("folder %q: message %s differs", name, ma.Key)
			}
		}
	}
	as, bs := a.segmentPaths(), b.segmentPaths()
	sort.Strings(as)
	sort.Strings(bs)
	if !reflect.DeepEqual(as, bs) {
		return fmt.Errorf("segments differ")
	}
	return nil
}

// sameMessage compares two manifest entries field by field.
func sameMessage(a, b *Message) bool {
	return a.Key == b.Key && a.SHA256 == b.SHA256 && a.Size == b.Size && a.InternalDate.Equal(b.InternalDate) &&
		slices.Equal(a.Flags, b.Flags) && a.MessageID == b.MessageID && a.From == b.From && a.To == b.To &&
		a.Subject == b.Subject && a.Date == b.Date && a.Seg == b.Seg && a.Off == b.Off
}
