package restore

import (
	"encoding/hex"

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
// SHA-256 of every message the label plans restore (32 bytes each: the
// one per-message set a restore holds, and only for a target whose
// folders are labels).
func (r *runner) leaveToLabels() error {
	lt, ok := r.t.(LabelTarget)
	if !ok || !lt.Labels() {
		return nil
	}
	inLabels := map[[32]byte]struct{}{}
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
				inLabels[sum] = struct{}{}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !hasAll || len(inLabels) == 0 {
		return nil
	}
	r.inLabels, r.onTarget = inLabels, map[[32]byte]struct{}{}
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
	_, in := r.inLabels[sum]
	return in
}

// markOnTarget records that the target holds m (r.mu held).
func (r *runner) markOnTarget(m *formats.MessageState) {
	if r.onTarget == nil {
		return
	}
	if sum, ok := rawSum(m.SHA256); ok {
		r.onTarget[sum] = struct{}{}
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
			_, held := r.onTarget[sum]
			r.mu.Unlock()
			if held {
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.mu.Lock()
		fp.ByLabels = n
		r.mu.Unlock()
	}
	return nil
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
