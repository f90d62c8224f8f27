package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/config"
	"github.com/mailvault/mailvault/internal/pop3store"
)

// errCheckFailed: check-config could not log in to some account, or its
// archive cannot be used.
var errCheckFailed = errors.New("some accounts cannot be backed up")

func checkConfigCommand() *cli.Command {
	return &cli.Command{
		Name:      "check-config",
		Usage:     "check a configuration file: parse it, read the secrets, log in to every account; change nothing",
		ArgsUsage: "FILE",
		Description: `Reads FILE as 'mailvault backup --config FILE' would (see docs/CONFIG.md):
every key, every account, every secret (password files, environment
variables, password commands). A mistake is reported with the file and
line and exit code 2, and nothing connects. Then it logs in to each
account's server, within the servers' max_connections, reads the quota
where the server has one, and checks that each archive can be used (an
existing archive of the same mailbox, or a directory it may create). It
changes nothing: no folder is opened, no archive is written.

One line per account says "ok" or why not; the exit code is 0 when every
account is ready, 3 when some are not.

EXAMPLES:
   mailvault check-config /etc/mailvault/mailvault.toml
   mailvault check-config mailvault.toml --account alice --account bob

` + exitCodesHelp,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "account", Usage: "check only the account `NAME` (repeatable)"},
			&cli.IntFlag{Name: "parallel", Value: defaultParallel, Usage: "check up to `N` accounts at once"},
		}, logFlags()...),
		Action: func(c *cli.Context) error {
			a, err := args(c, 1, 1, "FILE")
			if err != nil {
				return err
			}
			log, err := newLogger(c)
			if err != nil {
				return err
			}
			cfg, accounts, err := loadConfig(c, a[0])
			if err != nil {
				return err
			}
			n, err := parallel(c, cfg)
			if err != nil {
				return err
			}
			return runCheckConfig(c.Context, cfg, accounts, n, c.Bool("quiet"), log, envOf(c))
		},
	}
}

// checkResult is one account's line of check-config.
type checkResult struct {
	Account string          `json:"account"`
	OK      bool            `json:"ok"`
	Source  string          `json:"source"`
	Login   string          `json:"login"`
	Archive string          `json:"archive"`
	State   string          `json:"archive_state,omitempty"` // new, or N snapshots
	Quota   []formats.Quota `json:"quota,omitempty"`
	Error   string          `json:"error,omitempty"`
	// Exclude and Retention are the account's exclude_folders and
	// retention policy (keep_*, prune) as the file resolves them.
	Exclude   []string `json:"exclude_folders,omitempty"`
	Retention string   `json:"retention"`
}

func runCheckConfig(ctx context.Context, cfg *config.Config, accounts []*config.Account, parallel int, quiet bool, log *slog.Logger, e *env) error {
	var ls limits
	perHost := map[string]int{}
	for _, a := range accounts {
		perHost[strings.ToLower(a.Source.Host)]++
	}
	results := make([]checkResult, len(accounts))
	var mu sync.Mutex
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range min(parallel, len(accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				r := checkAccount(ctx, &ls, accounts[i])
				mu.Lock() // also one line at a time on stdout
				results[i] = r
				if !quiet || !r.OK {
					printCheck(e, r)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range accounts {
		select {
		case jobs <- i:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if ctx.Err() != nil {
		return fmt.Errorf("%w: check-config", backup.ErrInterrupted)
	}
	var bad []string
	for _, r := range results {
		if !r.OK {
			bad = append(bad, r.Account)
		}
	}
	log.Info("checked", "file", cfg.Path, "accounts", len(accounts), "not ready", len(bad))
	if len(bad) > 0 {
		return fmt.Errorf("%w: %d of %d (%s)", errCheckFailed, len(bad), len(accounts), strings.Join(bad, ", "))
	}
	if !quiet {
		if e.json {
			json.NewEncoder(e.stdout).Encode(map[string]any{"file": cfg.Path, "accounts": len(accounts), "ok": len(accounts)})
		} else {
			fmt.Fprintf(e.stdout, "%s: %d accounts ready\n", cfg.Path, len(accounts))
		}
	}
	return nil
}

// checkAccount logs in to an account's server and checks its archive.
func checkAccount(ctx context.Context, ls *limits, a *config.Account) checkResult {
	r := checkResult{Account: a.Name, Source: a.Source.String(), Login: a.Describe(), Archive: a.Archive,
		Exclude: a.Exclude, Retention: a.Retention.String()}
	fail := func(err error) checkResult {
		r.Error = strings.TrimPrefix(oneLine(err), "mailvault: ")
		return r
	}
	arch, err := prepareArchive(a.Archive, accountStorage(a), accountIdentity(a), false)
	if err != nil {
		return fail(err)
	}
	r.State = "new"
	if arch != nil {
		files, err := arch.ListSnapshots()
		if err != nil {
			return fail(err)
		}
		r.State = fmt.Sprintf("%d snapshots", len(files))
	}
	limit := 0
	if a.Server != nil {
		limit = a.Server.MaxConnections
	}
	lease, err := ls.of(strings.ToLower(a.Source.Host), limit).lease(ctx, 1, 1)
	if err != nil {
		return fail(err)
	}
	defer lease.release()
	_, dial := sourceDialer(a.Source.Scheme, accountConn(a, lease), slog.New(slog.DiscardHandler), &pop3store.Policy{})
	src, err := dial(ctx)
	if err != nil {
		return fail(err)
	}
	defer src.Close()
	if q, ok := src.(backup.QuotaReader); ok {
		if quota, has, err := q.Quota(ctx); err == nil && has {
			r.Quota = quota
		}
	}
	r.OK = true
	return r
}

func printCheck(e *env, r checkResult) {
	if e.json {
		json.NewEncoder(e.stdout).Encode(r)
		return
	}
	if !r.OK {
		fmt.Fprintf(e.stdout, "%s: not ready: %s\n", printable(r.Account), r.Error)
		return
	}
	line := fmt.Sprintf("%s: ok: logged in to %s with %s; archive %s (%s)", printable(r.Account), r.Source, r.Login, r.Archive, r.State)
	for _, q := range r.Quota {
		if q.Resource == "STORAGE" && q.Limit > 0 {
			line += fmt.Sprintf("; quota %s of %s", humanBytes(q.Used<<10), humanBytes(q.Limit<<10))
		}
	}
	if len(r.Exclude) > 0 {
		quoted := make([]string, len(r.Exclude))
		for i, p := range r.Exclude {
			quoted[i] = strconv.Quote(p)
		}
		line += "; excluding " + strings.Join(quoted, ", ")
	}
	if r.Retention != "none" {
		line += "; retention " + r.Retention
	}
	fmt.Fprintln(e.stdout, line)
}
