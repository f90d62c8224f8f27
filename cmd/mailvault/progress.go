package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/urfave/cli/v2"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"github.com/mailvault/mailvault/backup"
)

// progressUI draws live progress of backups on a terminal, one line per
// running account (github.com/vbauerster/mpb/v8): folders done and to
// examine, messages and bytes fetched, the rate and an ETA. A nil
// *progressUI draws nothing, so callers need not check.
type progressUI struct {
	p   *mpb.Progress
	out io.Writer // the terminal
	// mu guards bars, the accounts still drawn.
	mu       sync.Mutex
	bars     map[*accountProgress]bool
	stopOnce sync.Once
}

// progressWanted reports whether a backup should draw progress: stderr is
// a terminal, and neither -q nor --log-format json was asked for (a JSON
// log is for machines; bars would corrupt it).
func progressWanted(c *cli.Context) bool {
	e := envOf(c)
	return !c.Bool("quiet") && !e.json && c.String("log-format") != "json" && isTerminal(e.stderr)
}

// newProgressUI starts drawing on w; opts are for tests (a buffer needs
// mpb.WithAutoRefresh).
func newProgressUI(ctx context.Context, w io.Writer, opts ...mpb.ContainerOption) *progressUI {
	opts = append([]mpb.ContainerOption{mpb.WithOutput(w), mpb.WithWidth(120), mpb.WithRefreshRate(250 * time.Millisecond)}, opts...)
	return &progressUI{
		out:  w,
		p:    mpb.NewWithContext(ctx, opts...),
		bars: map[*accountProgress]bool{},
	}
}

// Write prints b above the bars (mpb flushes it at the next refresh), or
// on the terminal once the bars are gone.
func (u *progressUI) Write(b []byte) (int, error) {
	n, err := u.p.Write(b)
	if errors.Is(err, mpb.ErrDone) {
		return u.out.Write(b)
	}
	return n, err
}

// writer returns where lines meant for w go while u draws: through u when
// w is the terminal u draws on, else w.
func (u *progressUI) writer(w io.Writer) io.Writer {
	if u == nil || !isTerminal(w) {
		return w
	}
	return u
}

// account adds the line of one account, called name.
func (u *progressUI) account(name string) *accountProgress {
	if u == nil {
		return nil
	}
	a := &accountProgress{st: progressState{name: name, start: time.Now(), target: map[string]int{}, storedIn: map[string]int{}}}
	a.bar = u.p.New(1, mpb.BarStyle().Lbound("[").Rbound("]"),
		mpb.BarWidth(20),
		mpb.PrependDecorators(decor.Any(func(decor.Statistics) string { return truncate(printable(name), 24) + " " }, decor.WCSyncWidthR)),
		mpb.AppendDecorators(decor.Any(func(decor.Statistics) string {
			a.mu.Lock()
			defer a.mu.Unlock()
			return " " + a.st.text(time.Now())
		})),
	)
	u.mu.Lock()
	u.bars[a] = true
	u.mu.Unlock()
	a.ui = u
	return a
}

// stop removes every line and waits until the terminal is left clean.
func (u *progressUI) stop() {
	if u == nil {
		return
	}
	u.stopOnce.Do(func() {
		u.mu.Lock()
		for a := range u.bars {
			a.bar.Abort(true)
		}
		u.bars = map[*accountProgress]bool{}
		u.mu.Unlock()
		u.p.Wait()
	})
}

// accountProgress is the line of one account.
type accountProgress struct {
	ui  *progressUI
	bar *mpb.Bar
	mu  sync.Mutex
	st  progressState
}

// event records a backup event; it is backup.Options.Progress. A nil
// *accountProgress ignores it.
func (a *accountProgress) event(e backup.Event) {
	if a == nil {
		return
	}
	a.mu.Lock()
	a.st.apply(e)
	total, cur := a.st.total(), a.st.stored
	a.mu.Unlock()
	a.bar.SetTotal(int64(max(total, 1)), false)
	a.bar.SetCurrent(int64(cur))
}

// progress returns the callback for backup.Options.Progress, nil when a
// is nil (the engine then reports nothing).
func (a *accountProgress) progress() func(backup.Event) {
	if a == nil {
		return nil
	}
	return a.event
}

// done removes the account's line.
func (a *accountProgress) done() {
	if a == nil {
		return
	}
	a.bar.Abort(true)
	a.ui.mu.Lock()
	delete(a.ui.bars, a)
	a.ui.mu.Unlock()
}

// progressState is what an account's line says, built from the engine's
// events.
type progressState struct {
	name                      string
	start                     time.Time
	foldersTotal, foldersDone int
	planned                   int            // messages to fetch, as estimated from the folder listing
	target                    map[string]int // per folder: messages stored before its last EventFetching plus those it announced
	storedIn                  map[string]int // per folder: messages stored
	stored                    int
	bytes                     int64
}

func (s *progressState) apply(e backup.Event) {
	switch e.Kind {
	case backup.EventPlanned:
		s.foldersTotal, s.planned = e.Folders, e.Messages
	case backup.EventFetching:
		s.target[e.Folder] = s.storedIn[e.Folder] + e.Messages
	case backup.EventStored:
		s.storedIn[e.Folder]++
		s.stored++
		s.bytes += e.Bytes
	case backup.EventFolderDone:
		s.foldersDone++
	}
}

// total is the best estimate of the messages the run fetches.
func (s *progressState) total() int {
	sum := 0
	for _, n := range s.target {
		sum += n
	}
	return max(sum, s.planned, s.stored)
}

// text is the line after the bar: "folders 3/12  1234/5000 msgs  12.3 MiB
// 2.1 MiB/s  ETA 1m2s".
func (s *progressState) text(now time.Time) string {
	el := now.Sub(s.start).Seconds()
	line := fmt.Sprintf("folders %d/%d  %d/%d msgs  %s", s.foldersDone, s.foldersTotal, s.stored, s.total(), humanBytes(s.bytes))
	if el <= 0 || s.stored == 0 {
		return line + "  ETA ?"
	}
	rate := float64(s.bytes) / el
	left := s.total() - s.stored
	eta := time.Duration(float64(left) / (float64(s.stored) / el) * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%s  %s/s  ETA %s", line, humanBytes(int64(rate)), eta)
}
