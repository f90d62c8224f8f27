package restore

import (
	"encoding/hex"
	"errors"

	"github.com/mailvault/mailvault/formats"
)

// Labels: on Gmail a folder is a label of messages, and All Mail (\All)
// shows every message of the account once. A message appended into a
// label is shown in All Mail too, and appending into another label a
// message the account holds (the same Message-ID) adds that label instead
// of a copy. A restore to such a target therefore uploads each message
// once per label folder, and into All Mail only the messages no restored
// label holds (those that had no label): not a second copy of every
// labelled message.

// LabelTarget is a target whose folders are labels sharing messages
// (Gmail: X-GM-EXT-1).
type LabelTarget interface {
	// Labels reports whether the target's folders are labels.
	Labels() bool
}

// leaveToLabels marks the plans of \All folders whose messages a plan of
// another folder restores (the same bytes) as left to the labels: the
// target shows them in All Mail once they are in a label. It keeps the
// SHA-256 of every message the label plans restore, and of those the
// target holds, in sets that go to disk past sumSetMem (a Gmail account of
// 1,000,000 labelled messages would otherwise hold 64 MB of sums).
func (r *runner) leaveToLabels() error {
	lt, ok := r.t.(LabelTarget)
	if !ok || !lt.Labels() {
		return nil
	}
	inLabels := newSumSet()
	hasAll := false
	for _, fp := range r.rep.Folders {
		if fp.sf == nil {
			continue
		}
		if fp.role == `\All` {
			hasAll = true
			continue
		}
		err := r.sel.Each(fp.sf, func(m *formats.MessageState) error {
			if sum, ok := rawSum(m.SHA256); ok {
				inLabels.add(sum)
			}
			return nil
		})
		if err != nil {
			inLabels.Close()
			return err
		}
	}
	inLabels.seal()
	if err := inLabels.Err(); err != nil {
		inLabels.Close()
		return err
	}
	if !hasAll || inLabels.len() == 0 {
		inLabels.Close()
		return nil
	}
	r.inLabels, r.onTarget = inLabels, newSumSet()
	for _, fp := range r.rep.Folders {
		if fp.sf == nil || fp.role != `\All` {
			continue
		}
		fp.toLabels = true
		n := 0
		err := r.sel.Each(fp.sf, func(m *formats.MessageState) error {
			if r.leftToLabels(fp, m) {
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := r.inLabels.Err(); err != nil {
			return err
		}
		if n > 0 {
			r.opts.Log.Info("the target's folders are labels: messages a restored label holds are shown in All Mail without being uploaded again",
				"folder", fp.Target, "messages", n)
		}
	}
	return nil
}

// leftToLabels reports whether m of fp's folder is left to the labels.
func (r *runner) leftToLabels(fp *FolderPlan, m *formats.MessageState) bool {
	if !fp.toLabels {
		return false
	}
	sum, ok := rawSum(m.SHA256)
	if !ok {
		return false
	}
	return r.inLabels.has(sum)
}

// markOnTarget records that the target holds m (r.mu held).
func (r *runner) markOnTarget(m *formats.MessageState) {
	if r.onTarget == nil {
		return
	}
	if sum, ok := rawSum(m.SHA256); ok {
		r.onTarget.add(sum)
	}
}

// shownByLabels sets ByLabels: the messages left to the labels that a
// label on the target holds (acknowledged or already there). The others
// count as not restored.
func (r *runner) shownByLabels() error {
	if r.onTarget == nil {
		return nil
	}
	for _, fp := range r.rep.Folders {
		if !fp.toLabels {
			continue
		}
		n := 0
		err := r.sel.Each(fp.sf, func(m *formats.MessageState) error {
			if !r.leftToLabels(fp, m) {
				return nil
			}
			sum, _ := rawSum(m.SHA256)
			r.mu.Lock()
			held := r.onTarget.has(sum)
			r.mu.Unlock()
			if held {
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		if err := errors.Join(r.inLabels.Err(), r.onTarget.Err()); err != nil {
			return err
		}
		r.mu.Lock()
		fp.ByLabels = n
		r.mu.Unlock()
	}
	return nil
}

// closeLabelSets removes the label sets' stores.
func (r *runner) closeLabelSets() {
	for _, s := range []*sumSet{r.inLabels, r.onTarget} {
		if s != nil {
			s.Close()
		}
	}
}

// rawSum decodes a hex SHA-256.
func rawSum(s string) ([32]byte, bool) {
	var sum [32]byte
	if len(s) != 64 {
		return sum, false
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, false
	}
	return sum, true
}
