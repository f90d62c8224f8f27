package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/config"
	"github.com/mailvault/mailvault/internal/failpoint"
	"github.com/mailvault/mailvault/internal/mailconn"
	"github.com/mailvault/mailvault/internal/pop3store"
	"github.com/mailvault/mailvault/internal/report"
)

// defaultParallel is how many accounts a fleet run backs up at once.
const defaultParallel = 4

// fleetFlags are backup's flags for a run over a configuration file.
func fleetFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "config", Usage: "back up the accounts of the configuration `FILE` (docs/CONFIG.md) instead of SOURCE ARCHIVE"},
		&cli.StringSliceFlag{Name: "account", Usage: "with --config: back up only the account `NAME` (repeatable)"},
		&cli.IntFlag{Name: "parallel", Value: defaultParallel, DefaultText: fmt.Sprintf("[defaults] parallel, else %d", defaultParallel), Usage: fmt.Sprintf("with --config: back up up to `N` accounts at once (1-%d)", config.MaxParallel)},
		&cli.StringFlag{Name: "report", Usage: "with --config: write a JSON report to `FILE`, rewritten as accounts finish"},
		&cli.StringFlag{Name: "metrics", Usage: "with --config: write Prometheus textfile-collector metrics to `FILE` at the end"},
	}
}

// fleetOnlyFlags go with --config only.
var fleetOnlyFlags = []string{"account", "parallel", "report", "metrics"}

// checkNoFleetFlags refuses --account, --parallel, --report and --metrics
// without --config.
func checkNoFleetFlags(c *cli.Context) error {
	for _, f := range fleetOnlyFlags {
		if c.IsSet(f) {
			return usagef("--%s goes with --config FILE", f)
		}
	}
	return nil
}

// checkOnlyFleetFlags refuses, with --config, the flags whose settings
// come from the file, and positional arguments.
func checkOnlyFleetFlags(c *cli.Context, keep ...string) error {
	if c.Args().Present() {
		return usagef("with --config the accounts come from the file: no SOURCE or ARCHIVE arguments (got %q)", printable(c.Args().First()))
	}
	allowed := map[string]bool{"config": true, "verbose": true, "quiet": true, "log-format": true}
	for _, k := range append(fleetOnlyFlags, keep...) {
		allowed[k] = true
	}
	for _, f := range c.Command.Flags {
		name := f.Names()[0]
		if !allowed[name] && c.IsSet(name) {
			return usagef("--%s does not go with --config: set it in the file ([defaults], [[server]] or [[account]]; see docs/CONFIG.md)", name)
		}
	}
	return nil
}

// loadConfig reads the configuration file and the accounts --account
// names (all when none), and resolves their secrets: every mistake is a
// usage error (exit 2) before anything connects.
func loadConfig(c *cli.Context, path string) (*config.Config, []*config.Account, error) {
	e := envOf(c)
	cfg, err := config.Load(expandHome(path), e.getenv)
	if err != nil {
		return nil, nil, err
	}
	var selected []*config.Account
	seen := map[string]bool{}
	for _, name := range c.StringSlice("account") {
		a := cfg.Account(name)
		if a == nil {
			return nil, nil, usagef("--account %q: no such account in %s", printable(name), cfg.Path)
		}
		if !seen[name] {
			seen[name] = true
			selected = append(selected, a)
		}
	}
	if len(selected) == 0 {
		selected = cfg.Accounts
	}
	if err := cfg.ResolveSecrets(c.Context, selected, e.getenv); err != nil {
		return nil, nil, err
	}
	return cfg, selected, nil
}

// fleetMemoryLimit is the heap's soft limit for a fleet run of k accounts
// at once, given the current one: memoryLimit is per account (the bound
// of one run), so k runs get k times it; under one run's limit, k big
// accounts would make the collector run without pause. A limit set
// otherwise (GOMEMLIMIT, or none) stays.
func fleetMemoryLimit(cur int64, k int) int64 {
	if cur != memoryLimit || k <= 1 {
		return cur
	}
	return int64(k) * memoryLimit
}

// parallel returns --parallel, else the file's, else the default.
func parallel(c *cli.Context, cfg *config.Config) (int, error) {
	n := defaultParallel
	switch {
	case c.IsSet("parallel"):
		n = c.Int("parallel")
	case cfg.Parallel > 0:
		n = cfg.Parallel
	}
	if n < 1 || n > config.MaxParallel {
		return 0, usagef("--parallel must be between 1 and %d", config.MaxParallel)
	}
	return n, nil
}

// fleetBackupAction is "mailvault backup --config FILE".
func fleetBackupAction(c *cli.Context) error {
	if err := checkOnlyFleetFlags(c); err != nil {
		return err
	}
	e := envOf(c)
	if c.String("log-format") != "text" && c.String("log-format") != "json" {
		return usagef("--log-format must be text or json")
	}
	cfg, accounts, err := loadConfig(c, c.String("config"))
	if err != nil {
		return err
	}
	n, err := parallel(c, cfg)
	if err != nil {
		return err
	}
	debug.SetMemoryLimit(fleetMemoryLimit(debug.SetMemoryLimit(-1), min(n, len(accounts))))
	var ui *progressUI
	if progressWanted(c) {
		ui = newProgressUI(c.Context, e.stderr)
		defer ui.stop()
	}
	log, err := newLoggerTo(c, ui.writer(e.stderr))
	if err != nil {
		return err
	}
	return runFleet(c.Context, fleetOptions{
		cfg: cfg, accounts: accounts, parallel: n,
		report: expandHome(c.String("report")), metrics: expandHome(c.String("metrics")),
		quiet: c.Bool("quiet"), log: log, ui: ui,
	}, e)
}

type fleetOptions struct {
	cfg      *config.Config
	accounts []*config.Account
	parallel int
	report   string // "" for none
	metrics  string // "" for none
	quiet    bool
	log      *slog.Logger
	ui       *progressUI
	// now is the clock (tests); nil is time.Now.
	now func() time.Time
}

// errFleetIncomplete: some accounts of a fleet run are partial or failed.
var errFleetIncomplete = errors.New("not every account was backed up completely")

// fleet is one run over many accounts.
type fleet struct {
	o      fleetOptions
	e      *env
	limits limits
	out    io.Writer  // summary lines
	outMu  sync.Mutex // one account's line at a time on out
	// perHost counts the accounts of the run on each host, to share its
	// connections fairly.
	perHost map[string]int

	mu      sync.Mutex // guards rep, done, dirty
	rep     report.Report
	done    []bool // by index in o.accounts
	results []report.Account
	dirty   bool
}

// runFleet backs up every account of o, o.parallel at once, each under
// its own archive lock and within its server's connection limit. One
// account failing never stops the others. The error wraps
// errFleetIncomplete when an account is partial or failed, and
// backup.ErrInterrupted when the run was interrupted.
func runFleet(ctx context.Context, o fleetOptions, e *env) error {
	if o.now == nil {
		o.now = time.Now
	}
	f := &fleet{o: o, e: e, out: o.ui.writer(e.stdout), perHost: map[string]int{}}
	f.rep.Started = o.now().UTC()
	f.done = make([]bool, len(o.accounts))
	f.results = make([]report.Account, len(o.accounts))
	for _, a := range o.accounts {
		f.perHost[strings.ToLower(a.Source.Host)]++
	}
	if o.report != "" {
		// An unwritable report path is found before any account runs.
		if err := report.WriteJSON(o.report, f.snapshotReport(false)); err != nil {
			return usagef("--report: %v", err)
		}
	}
	stopFlush := f.flushLoop()

	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(o.parallel, len(o.accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := f.backupAccount(ctx, o.accounts[i])
				f.finish(i, r)
			}
		}()
	}
	interrupted := false
	for i := range o.accounts {
		if ctx.Err() == nil {
			select {
			case jobs <- i:
				continue
			case <-ctx.Done():
			}
		}
		interrupted = true
		f.finish(i, f.notStarted(o.accounts[i]))
	}
	close(jobs)
	wg.Wait()
	stopFlush()
	o.ui.stop()

	finished := o.now().UTC()
	f.rep.Finished = &finished
	final := f.snapshotReport(true)
	var werr []error
	if o.report != "" {
		if err := report.WriteJSON(o.report, final); err != nil {
			werr = append(werr, err)
		}
	}
	if o.metrics != "" {
		if err := report.WriteMetrics(o.metrics, final); err != nil {
			werr = append(werr, err)
		}
	}
	counts := final.Counts()
	if !o.quiet {
		f.printTotal(final, counts)
	}
	for h, s := range f.limits.hosts {
		o.log.Info("connections to server", "host", h, "max_connections", s.max, "peak", s.peak.Load())
	}
	if interrupted || ctx.Err() != nil {
		return fmt.Errorf("%w: %d of %d accounts complete", backup.ErrInterrupted, counts[report.StatusComplete], len(final.Accounts))
	}
	if err := errors.Join(werr...); err != nil {
		return err
	}
	if bad := counts[report.StatusPartial] + counts[report.StatusFailed]; bad > 0 {
		return fmt.Errorf("%w: %d of %d accounts: %s", errFleetIncomplete, bad, len(final.Accounts), failedList(final, 5))
	}
	return nil
}

// failedList names up to n accounts that are not complete, with why.
func failedList(r *report.Report, n int) string {
	var parts []string
	more := 0
	for _, a := range r.Accounts {
		if a.Status == report.StatusComplete {
			continue
		}
		if len(parts) == n {
			more++
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %s (%s)", a.Name, a.Status, a.Error))
	}
	s := strings.Join(parts, "; ")
	if more > 0 {
		s += fmt.Sprintf("; and %d more (see --report)", more)
	}
	return s
}

// backupAccount backs up one account and says how it went. It holds
// nothing of the run after it returns but the report line: the engine's
// result, the snapshot and the archive's state are dropped here, so
// memory does not grow with the number of accounts.
func (f *fleet) backupAccount(ctx context.Context, a *config.Account) (r report.Account) {
	start := f.o.now()
	r = report.Account{Name: a.Name, Source: a.Source.String(), Archive: a.Archive, Status: report.StatusFailed}
	defer func() {
		end := f.o.now()
		r.Finished = end.UTC()
		r.DurationS = end.Sub(start).Round(time.Millisecond).Seconds()
	}()
	log := f.o.log.With("account", a.Name)
	res, err := f.run(ctx, a, log)
	committed := res != nil && res.Snapshot != nil
	if committed {
		s := res.Snapshot
		r.Status, r.Snapshot = s.Status, s.ID
		if err != nil && r.Status == report.StatusComplete {
			r.Status = report.StatusPartial
		}
		r.Added, r.Gone, r.FlagChanges, r.BytesStored = res.Added, res.Gone, res.FlagChanges, res.Bytes
		r.Quota = append([]formats.Quota(nil), s.Quota...)
	}
	var why []string
	if err != nil {
		why = append(why, strings.TrimPrefix(oneLine(err), "mailvault: "))
	}
	// Retention follows a backup that committed a snapshot, complete or
	// partial: forget keeps the newest snapshot and counts complete ones
	// only, so a partial run never costs a complete snapshot its place. A
	// run that committed nothing changes nothing forget would decide.
	if committed && a.Retention.Apply() && ctx.Err() == nil {
		retain(a, &r, log)
		if r.RetentionError != "" {
			r.Status = report.StatusFailed
			why = append(why, "retention: "+r.RetentionError)
		}
	}
	if len(why) > 0 {
		r.Error = strings.Join(why, "; ")
		// Its line on stdout and the run's error say it; -v logs it too.
		log.Info("account not complete", "status", r.Status, "err", r.Error)
	}
	return r
}

// retain applies the account's retention to its archive after a backup,
// as 'mailvault forget --prune' would (the archive's lock held, taken
// again after the backup released it), and records in r what it did or
// why it failed.
func retain(a *config.Account, r *report.Account, log *slog.Logger) {
	var po *formats.PruneOptions
	if a.Retention.Prune {
		po = &formats.PruneOptions{MaxUnused: a.Retention.MaxUnused}
	}
	fr, pr, err := forgetArchive(a.Archive, a.Retention.Policy, false, po, nil)
	if fr != nil {
		r.SnapshotsForgotten = fr.Forgotten
	}
	if pr != nil {
		r.BytesFreed = pr.StoredBefore - pr.StoredAfter
	}
	if err != nil {
		step := "forget"
		if fr != nil {
			step = "prune"
		}
		r.RetentionError = step + ": " + strings.TrimPrefix(oneLine(err), "mailvault: ")
		return
	}
	log.Info("retention", "policy", a.Retention.String(), "forgotten", r.SnapshotsForgotten, "bytes_freed", r.BytesFreed)
}

// run is one account's backup: its share of its server's connections,
// its archive (checked before connecting), the engine.
func (f *fleet) run(ctx context.Context, a *config.Account, log *slog.Logger) (*backup.Result, error) {
	host := strings.ToLower(a.Source.Host)
	limit := 0
	if a.Server != nil {
		limit = a.Server.MaxConnections
	}
	slots := f.limits.of(host, limit)
	conns := a.Connections
	if conns == 0 {
		conns = defaultConnections
	}
	if strings.HasPrefix(a.Source.Scheme, "pop3") {
		// POP3 has one folder, and servers allow one session at a time.
		conns = 1
	}
	// A fair share: the server's slots over the accounts on it that may
	// run at once.
	fair := conns
	if limit > 0 {
		fair = limit / min(f.o.parallel, f.perHost[host])
	}
	lease, err := slots.lease(ctx, conns, fair)
	if err != nil {
		return nil, err
	}
	defer lease.release()

	storage, id := accountStorage(a), accountIdentity(a)
	arch, err := prepareArchive(a.Archive, storage, id, false)
	if err != nil {
		return nil, err
	}
	checkpoint := defaultCheckpoint
	if a.CheckpointSet {
		checkpoint = a.Checkpoint
	}
	protocol, dial := sourceDialer(a.Source.Scheme, accountConn(a, lease), log, &pop3store.Policy{})
	bar := f.o.ui.account(a.Name)
	defer bar.done()
	return backupRun(ctx, arch, a.Archive, storage, id, dial, backup.Options{
		Source:      a.Source.String(),
		Protocol:    protocol,
		Log:         log,
		Hook:        failpoint.Hook(),
		Connections: lease.n,
		Checkpoint:  checkpoint,
		Progress:    bar.progress(),
		Exclude:     a.Exclude,
		// The provider's daily download limit (Gmail), as a single backup.
		MaxBytesPerDay: providerBudget(a.Source, log),
	})
}

// accountConn is how to connect to an account's server, within lease.
func accountConn(a *config.Account, l *lease) mailconn.Config {
	timeout := a.Timeout
	if timeout == 0 {
		timeout = timeoutFlag().(*cli.DurationFlag).Value
	}
	security := mailconn.StartTLS // imap://, pop3://: STARTTLS/STLS required
	if a.Source.Scheme == "imaps" || a.Source.Scheme == "pop3s" {
		security = mailconn.ImplicitTLS
	}
	return mailconn.Config{
		Addr: a.Source.Addr(), Security: security, User: a.Source.User,
		CAFile: a.CAFile, Timeout: timeout, Auth: a.Auth,
		DialContext: l.dialer(timeout),
	}
}

// accountStorage is the storage an account's new archive gets: nil for
// the default.
func accountStorage(a *config.Account) *formats.StorageOptions {
	if a.Storage == (formats.StorageOptions{}) {
		return nil
	}
	s := a.Storage
	return &s
}

// accountIdentity is the mailbox an account's archive belongs to.
func accountIdentity(a *config.Account) formats.SourceIdentity {
	return formats.SourceIdentity{Scheme: a.Source.Scheme, Host: a.Source.Host, User: a.Source.User}
}

// notStarted is the report line of an account an interrupted run did not
// reach.
func (f *fleet) notStarted(a *config.Account) report.Account {
	return report.Account{Name: a.Name, Source: a.Source.String(), Archive: a.Archive, Status: report.StatusFailed,
		Error: "not started: the run was interrupted", Finished: f.o.now().UTC()}
}

// finish records an account's outcome and prints its line.
func (f *fleet) finish(i int, r report.Account) {
	f.mu.Lock()
	f.results[i], f.done[i], f.dirty = r, true, true
	f.mu.Unlock()
	if !f.o.quiet {
		f.outMu.Lock()
		f.printAccount(r)
		f.outMu.Unlock()
	}
}

// snapshotReport returns the report of the accounts finished so far, in
// the file's order.
func (f *fleet) snapshotReport(final bool) *report.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &report.Report{Started: f.rep.Started, Accounts: []report.Account{}}
	if final {
		r.Finished = f.rep.Finished
	}
	for i, ok := range f.done {
		if ok {
			r.Accounts = append(r.Accounts, f.results[i])
		}
	}
	f.dirty = false
	return r
}

// reportEvery is how often the report is rewritten while accounts finish.
const reportEvery = time.Second

// flushLoop rewrites the report at most every reportEvery while accounts
// finish, so that monitoring sees each account soon after it ends without
// a rewrite per account of a big fleet. It returns the function that stops
// it.
func (f *fleet) flushLoop() func() {
	if f.o.report == "" {
		return func() {}
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(reportEvery)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				f.mu.Lock()
				dirty := f.dirty
				f.mu.Unlock()
				if dirty {
					if err := report.WriteJSON(f.o.report, f.snapshotReport(false)); err != nil {
						f.o.log.Warn("could not write the report", "err", err)
					}
				}
			}
		}
	}()
	return func() { close(stop); <-done }
}

// printAccount prints the one-line summary of an account.
func (f *fleet) printAccount(r report.Account) {
	if f.e.json {
		b, _ := json.Marshal(r)
		fmt.Fprintf(f.out, "%s\n", b)
		return
	}
	name := printable(r.Name)
	if r.Status == report.StatusFailed && r.Snapshot == "" {
		fmt.Fprintf(f.out, "%s: failed: %s\n", name, r.Error)
		return
	}
	line := fmt.Sprintf("%s: %s, snapshot %s, %d added (%s), %d gone, %d flag changes, %s",
		name, r.Status, r.Snapshot, r.Added, humanBytes(r.BytesStored), r.Gone, r.FlagChanges,
		(time.Duration(r.DurationS * float64(time.Second))).Round(10*time.Millisecond))
	for _, q := range r.Quota {
		if q.Resource == "STORAGE" && q.Limit > 0 {
			line += fmt.Sprintf(", quota %s of %s", humanBytes(q.Used<<10), humanBytes(q.Limit<<10))
		}
	}
	if r.SnapshotsForgotten > 0 || r.BytesFreed != 0 {
		line += fmt.Sprintf(", forgot %d snapshots", r.SnapshotsForgotten)
		if r.BytesFreed != 0 {
			line += ", freed " + humanBytes(r.BytesFreed)
		}
	}
	if r.Error != "" {
		line += ": " + r.Error
	}
	fmt.Fprintln(f.out, line)
}

// printTotal prints the run's last line.
func (f *fleet) printTotal(r *report.Report, counts map[string]int) {
	el := r.Finished.Sub(r.Started).Round(10 * time.Millisecond)
	if f.e.json {
		b, _ := json.Marshal(map[string]any{
			"accounts": len(r.Accounts), report.StatusComplete: counts[report.StatusComplete],
			report.StatusPartial: counts[report.StatusPartial], report.StatusFailed: counts[report.StatusFailed],
			"duration_s": el.Seconds(),
		})
		fmt.Fprintf(f.out, "%s\n", b)
		return
	}
	fmt.Fprintf(f.out, "%d accounts: %d complete, %d partial, %d failed, in %s\n", len(r.Accounts),
		counts[report.StatusComplete], counts[report.StatusPartial], counts[report.StatusFailed], el)
}
