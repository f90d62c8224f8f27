package config

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mailvault/mailvault/formats"
)

// TestExcludeAndRetentionInherit: exclude_folders and the retention keys
// are given in [defaults], a [[server]] or an [[account]]; each key of
// the nearest table that gives it wins (an account's list replaces the
// server's, which replaces the defaults'; [] clears it).
func TestExcludeAndRetentionInherit(t *testing.T) {
	const head = `[defaults]
archive_root = "/r"
exclude_folders = ["Trash*"]
keep_daily = 7
keep_weekly = 4
prune = true
max_unused = 10

[[server]]
host = "gmail.example"
exclude_folders = ["[Gmail]/All Mail", "[Gmail]/Trash"]
keep_last = 3
keep_within = "30d"

[[server]]
host = "plain.example"
`
	acct := func(name, host, extra string) string {
		return "[[account]]\nname = \"" + name + "\"\nsource = \"imaps://" + name + "@" + host + "\"\npassword_file = \"pw\"\n" + extra
	}
	text := head +
		acct("def", "other.example", "") +
		acct("srv", "gmail.example", "") +
		acct("own", "gmail.example", "exclude_folders = [\"Spam\"]\nkeep_daily = 0\nkeep_monthly = \"unlimited\"\nprune = false\n") +
		acct("clear", "plain.example", "exclude_folders = []\nkeep_daily = 0\nkeep_weekly = 0\n") +
		acct("half", "plain.example", "max_unused = 25.5\n")
	c, err := Load(write(t, text, 0o600), env(nil))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	tests := []struct {
		name      string
		exclude   []string
		retention Retention
	}{
		{"def", []string{"Trash*"}, Retention{Policy: formats.Policy{Daily: 7, Weekly: 4}, Prune: true, MaxUnused: 10}},
		{"srv", []string{"[Gmail]/All Mail", "[Gmail]/Trash"}, Retention{Policy: formats.Policy{Last: 3, Daily: 7, Weekly: 4, Within: formats.Duration{Days: 30}}, Prune: true, MaxUnused: 10}},
		{"own", []string{"Spam"}, Retention{Policy: formats.Policy{Last: 3, Weekly: 4, Monthly: formats.Unlimited, Within: formats.Duration{Days: 30}}, MaxUnused: 10}},
		{"clear", []string{}, Retention{Prune: true, MaxUnused: 10}},
		{"half", []string{"Trash*"}, Retention{Policy: formats.Policy{Daily: 7, Weekly: 4}, Prune: true, MaxUnused: 25.5}},
	}
	for _, tt := range tests {
		a := c.Account(tt.name)
		if a == nil {
			t.Fatalf("no account %s", tt.name)
		}
		if !reflect.DeepEqual(a.Exclude, tt.exclude) {
			t.Errorf("account %s: Exclude = %q, want %q", tt.name, a.Exclude, tt.exclude)
		}
		if a.Retention != tt.retention {
			t.Errorf("account %s: Retention = %+v, want %+v", tt.name, a.Retention, tt.retention)
		}
	}
	if c.Account("clear").Retention.Apply() {
		t.Errorf("an account whose keep_* rules are all 0 applies retention")
	}
	if !c.Account("def").Retention.Apply() {
		t.Errorf("an account with keep_daily = 7 applies no retention")
	}
}

// TestNoRetentionKeys: a file without the keys excludes nothing and
// applies no retention (the behaviour before they existed).
func TestNoRetentionKeys(t *testing.T) {
	c, err := Load(write(t, good, 0o600), env(map[string]string{"CAROL_PW": "x"}))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range c.Accounts {
		if a.Exclude != nil || a.Retention != (Retention{}) || a.Retention.Apply() {
			t.Errorf("account %s: Exclude %q, Retention %+v; want none", a.Name, a.Exclude, a.Retention)
		}
	}
}

// TestRetentionString: check-config shows the policy with the file's key
// names.
func TestRetentionString(t *testing.T) {
	tests := []struct {
		r    Retention
		want string
	}{
		{Retention{}, "none"},
		{Retention{Prune: true}, "none"},
		{Retention{Policy: formats.Policy{Last: 2}}, "keep_last 2"},
		{Retention{Policy: formats.Policy{Daily: 7, Monthly: formats.Unlimited, Within: formats.Duration{Years: 1, Months: 6}}, Prune: true}, "keep_daily 7, keep_monthly unlimited, keep_within 1y6m, then prune"},
		{Retention{Policy: formats.Policy{Hourly: 24, Weekly: 5, Yearly: 3}, Prune: true, MaxUnused: 12.5}, "keep_hourly 24, keep_weekly 5, keep_yearly 3, then prune (max_unused 12.5%)"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

// TestRetentionErrors: every wrong value is one error at its line.
func TestRetentionErrors(t *testing.T) {
	acct := "[[account]]\nname = \"alice\"\nsource = \"imaps://alice@h\"\narchive = \"/a\"\npassword_file = \"pw\"\n"
	tests := []struct {
		name string
		text string
		line int
		want string
	}{
		{"negative count", acct + "keep_last = -1\n", 6, `keep_last must be a whole number (0 or more) or "unlimited", not -1`},
		{"count word", acct + "keep_daily = \"seven\"\n", 6, `keep_daily must be a whole number (0 or more) or "unlimited", not "seven"`},
		{"count float", acct + "keep_weekly = 1.5\n", 6, `keep_weekly must be a whole number (0 or more) or "unlimited", not 1.5`},
		{"bad within", acct + "keep_within = \"90 days\"\n", 6, `keep_within: bad duration "90 days"`},
		{"within not a string", acct + "keep_within = 90\n", 6, `keep_within must be a string in quotes`},
		{"prune not a bool", acct + "prune = \"yes\"\n", 6, `prune must be true or false`},
		{"max_unused range", acct + "keep_last = 1\nprune = true\nmax_unused = 150\n", 8, `max_unused must be a percentage from 0 to 100, not 150`},
		{"max_unused word", acct + "keep_last = 1\nprune = true\nmax_unused = \"10%\"\n", 8, `max_unused must be a percentage from 0 to 100, not "10%"`},
		{"max_unused without prune", acct + "keep_last = 1\nmax_unused = 10\n", 7, `max_unused goes with prune = true`},
		{"max_unused without prune in defaults", "[defaults]\nmax_unused = 10\n" + acct, 2, `max_unused goes with prune = true`},
		{"prune without a rule", acct + "prune = true\n", 6, `account "alice": prune = true needs a keep_* rule`},
		{"prune without a rule, rules zeroed", "[defaults]\nkeep_last = 3\n" + acct + "keep_last = 0\nprune = true\n", 9, `prune = true needs a keep_* rule`},
		{"unknown retention key", acct + "keep_tag = \"x\"\n", 6, `unknown key "keep_tag" in [[account]]`},
		{"keep in server unknown typo", "[[server]]\nhost = \"h\"\nkeep_lastt = 3\n", 3, `unknown key "keep_lastt" in [[server]]`},
		{"exclude not a list", acct + "exclude_folders = \"Trash\"\n", 6, `exclude_folders must be a list of strings`},
		{"exclude empty pattern", acct + "exclude_folders = [\"Trash\", \" \"]\n", 6, `exclude_folders: an empty folder pattern excludes nothing`},
		{"exclude empty pattern in server", "[[server]]\nhost = \"h\"\nexclude_folders = [\"\"]\n" + acct, 3, `exclude_folders: an empty folder pattern`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := write(t, tt.text, 0o600)
			_, err := Load(path, env(nil))
			checkErr(t, err, path, tt.line, tt.want)
			if err != nil && strings.Contains(err.Error(), "toml: ") {
				t.Errorf("error %q shows the decoder's words", err)
			}
		})
	}
}
