package restore

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// labelTarget is a memTarget whose folders are labels (Gmail).
type labelTarget struct{ *memTarget }

func (labelTarget) Labels() bool { return true }

// TestLeaveToLabels: to a target whose folders are labels, All Mail's
// messages that a restored label holds are not appended into All Mail;
// they count as restored only once the label holds them (a label's
// refusal leaves them not restored). Another target gets every copy.
func TestLeaveToLabels(t *testing.T) {
	for _, limit := range []int{sumSetMem, 1} {
		t.Run(fmt.Sprint("sums in memory ", limit), func(t *testing.T) {
			old := sumSetMem
			sumSetMem = limit
			defer func() { sumSetMem = old }()
			t.Setenv("TMPDIR", t.TempDir())
			testLeaveToLabels(t)
		})
	}
}

func testLeaveToLabels(t *testing.T) {
	b := newBuilder(t)
	m1 := "Message-ID: <1@x>\r\nSubject: in INBOX\r\n\r\none\r\n"
	m2 := "Message-ID: <2@x>\r\nSubject: in Work, refused\r\n\r\ntwo REFUSE\r\n"
	m3 := "Message-ID: <3@x>\r\nSubject: no label\r\n\r\nthree\r\n"
	all := "[Gmail]/All Mail"
	b.snapshot(day, []msgSpec{
		{"INBOX", m1, nil, day}, {"Work", m2, nil, day},
		{all, m1, nil, day}, {all, m2, nil, day}, {all, m3, nil, day},
	}, nil, map[string]string{all: `\All`})
	selected, err := selectT(t, b.a, Selection{})
	if err != nil {
		t.Fatal(err)
	}

	tg := newMemTarget()
	tg.reject = "REFUSE"
	rep, err := Run(context.Background(), b.a, selected, labelTarget{tg}, Options{Sleep: noSleep})
	if !errors.Is(err, ErrPartial) {
		t.Fatalf("Run = %v, want partial (a message refused)", err)
	}
	if n := len(tg.folders[all]); n != 1 {
		t.Errorf("All Mail got %d appends, want 1 (the message without a label)", n)
	}
	var allPlan *FolderPlan
	for _, fp := range rep.Folders {
		if fp.Source == all {
			allPlan = fp
		}
	}
	if allPlan == nil || allPlan.ByLabels != 1 || allPlan.NotRestored != 1 || rep.ByLabels != 1 {
		t.Errorf("All Mail's plan %+v (report: %d by labels); want 1 shown by its label, 1 not restored (its label refused it)", allPlan, rep.ByLabels)
	}

	other := newMemTarget()
	if _, err := Run(context.Background(), b.a, selected, other, Options{Sleep: noSleep}); err != nil {
		t.Fatal(err)
	}
	if n := len(other.folders[all]); n != 3 {
		t.Errorf("a target without labels got %d messages into All Mail, want 3", n)
	}
}
