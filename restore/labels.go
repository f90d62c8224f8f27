package restore

import "log/slog"

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

// leaveToLabels removes, from the plans of \All folders, the messages a
// plan of another folder restores (the same bytes): the target shows them
// in All Mail once they are in a label. It reports whether it removed
// any; shownByLabels counts them once the run is over.
func leaveToLabels(t Target, plans []*FolderPlan, specialUse func(source string) string, log *slog.Logger) bool {
	lt, ok := t.(LabelTarget)
	if !ok || !lt.Labels() {
		return false
	}
	left := false
	inLabels := map[string]bool{}
	for _, fp := range plans {
		if specialUse(fp.Source) == `\All` {
			continue
		}
		for _, m := range fp.msgs {
			inLabels[m.SHA256] = true
		}
	}
	for _, fp := range plans {
		if specialUse(fp.Source) != `\All` {
			continue
		}
		keep := fp.msgs[:0:0]
		for _, m := range fp.msgs {
			if inLabels[m.SHA256] {
				fp.toLabels = append(fp.toLabels, m)
				continue
			}
			keep = append(keep, m)
		}
		fp.msgs = keep
		if len(fp.toLabels) > 0 {
			left = true
			log.Info("the target's folders are labels: messages a restored label holds are shown in All Mail without being uploaded again",
				"folder", fp.Target, "messages", len(fp.toLabels))
		}
	}
	return left
}

// shownByLabels sets ByLabels: the messages left to the labels that a
// label on the target holds (acknowledged or already there). The others
// count as not restored.
func (r *runner) shownByLabels() {
	if r.onTarget == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, fp := range r.rep.Folders {
		for _, m := range fp.toLabels {
			if r.onTarget[m.SHA256] {
				fp.ByLabels++
			}
		}
	}
}
