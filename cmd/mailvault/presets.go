package main

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mailvault/mailvault/backup"
	"github.com/mailvault/mailvault/internal/imapstore"
	"github.com/mailvault/mailvault/internal/mailurl"
	"github.com/mailvault/mailvault/internal/provider"
)

// resolvePreset maps an account URL that names a provider's mail domain
// (imaps://alice@gmail.com, or the bare alice@gmail.com) to the provider's
// server and login (provider.Resolve), and tells info so. It returns the
// URL to use and the provider recognised, nil when none.
func resolvePreset(u *mailurl.URL, info func(string, ...any)) (*mailurl.URL, *provider.Provider) {
	acc := provider.Resolve(u.Scheme, u.User, u.Host)
	if acc.Provider == nil || !acc.Mapped {
		return u, acc.Provider
	}
	c := *u
	if acc.Scheme != u.Scheme || c.Port == 0 {
		c.Port = mailurl.DefaultPorts[acc.Scheme]
	}
	c.Scheme, c.User, c.Host = acc.Scheme, acc.User, acc.Host
	if info != nil {
		info(fmt.Sprintf("%s is %s: connecting to %s", printable(u.Host), acc.Provider.Name, c.String()))
	}
	return &c, acc.Provider
}

// targetQuirks are the restore target quirks of the provider serving host.
func targetQuirks(host string) imapstore.TargetQuirks {
	p := provider.ByHost(host)
	if p == nil {
		return imapstore.TargetQuirks{}
	}
	q := imapstore.TargetQuirks{Provider: p.Name, FinalCRLF: p.Quirks.AppendFinalCRLF}
	if len(p.Quirks.ReservedFolders) > 0 {
		q.Reserved = p.Reserved
	}
	return q
}

// throttleFlags bound what a backup asks of a server, and which folders
// it reads.
func throttleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringSliceFlag{Name: "exclude-folder", Usage: "do not back up the folders matching `PATTERN` (repeatable; * matches anything, % anything but the hierarchy delimiter, as mbsync's Patterns): \"[Gmail]/All Mail\" leaves out Gmail's copy of every message; what the archive holds of an excluded folder stays as it is"},
		&cli.StringFlag{Name: "max-bytes-per-day", Usage: "stop cleanly once the messages fetched in the last 24 hours (by this run and the runs before) reach `SIZE` (e.g. 2.5GB, 500MB; 0: no limit); the next run continues. Gmail accounts default to 2.5GB, Gmail's daily IMAP download limit"},
		&cli.DurationFlag{Name: "throttle-wait", Value: 15 * time.Minute, Usage: "wait at most this long in all, from the first one, when the server asks to slow down (Microsoft's \"Suggested Backoff Time\", [UNAVAILABLE]); a longer request fails the folder"},
	}
}

// byteBudget returns --max-bytes-per-day: the bytes, and whether it was
// given.
func byteBudget(c *cli.Context) (int64, bool, error) {
	if !c.IsSet("max-bytes-per-day") {
		return 0, false, nil
	}
	n, err := parseSize(c.String("max-bytes-per-day"))
	if err != nil {
		return 0, true, usagef("--max-bytes-per-day: %v", err)
	}
	return n, true, nil
}

// parseSize parses a byte count: a number, optionally with a decimal (KB,
// MB, GB, TB: powers of 1000; K, M, G, T alike) or binary (KiB, MiB, GiB,
// TiB) unit, case-insensitive; "2.5GB" is 2,500,000,000.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size such as 2.5GB or 500MB", s)
	}
	mult := map[string]float64{
		"": 1, "b": 1,
		"k": 1e3, "kb": 1e3, "m": 1e6, "mb": 1e6, "g": 1e9, "gb": 1e9, "t": 1e12, "tb": 1e12,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
	}[unit]
	if mult == 0 {
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)", s, t[i:])
	}
	if v*mult > 1<<62 {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return int64(v * mult), nil
}

// throttling reads --max-bytes-per-day, --throttle-wait and
// --exclude-folder.
func (o *backupOptions) throttling(c *cli.Context) error {
	o.exclude = c.StringSlice("exclude-folder")
	if err := backup.CheckPatterns(o.exclude); err != nil {
		return usagef("--exclude-folder: %v", err)
	}
	var err error
	if o.maxBytesPerDay, o.maxBytesSet, err = byteBudget(c); err != nil {
		return err
	}
	if o.throttleWait = c.Duration("throttle-wait"); o.throttleWait < 0 {
		return usagef("--throttle-wait must not be negative")
	}
	o.throttleWait = max(o.throttleWait, time.Nanosecond) // 0: never wait
	return nil
}

// dailyBudget is the byte budget of a run: --max-bytes-per-day, else the
// daily download limit of the source's provider (Gmail), said once.
func (o *backupOptions) dailyBudget() int64 {
	if o.maxBytesSet {
		return o.maxBytesPerDay
	}
	return providerBudget(o.source, o.log)
}

// providerBudget is the daily download limit of the source's provider
// (Gmail), said once in log; 0 for none.
func providerBudget(source *mailurl.URL, log *slog.Logger) int64 {
	if !strings.HasPrefix(source.Scheme, "imap") {
		return 0
	}
	if p := provider.ByHost(source.Host); p != nil && p.Quirks.DailyDownload > 0 {
		log.Info(fmt.Sprintf("%s lets IMAP download %s a day: the backup stops there and the next run continues (--max-bytes-per-day changes it, 0 removes it)",
			p.Name, humanBytes(p.Quirks.DailyDownload)))
		return p.Quirks.DailyDownload
	}
	return 0
}
