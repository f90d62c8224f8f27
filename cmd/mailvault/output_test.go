package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode"

	"golang.org/x/text/width"

	"github.com/mailvault/mailvault/internal/archivetest"
	"github.com/mailvault/mailvault/internal/imaptest"
)

func TestDisplayWidth(t *testing.T) {
	tests := []struct {
		s string
		w int
	}{
		{"", 0},
		{"abc", 3},
		{"日本語", 6},
		{"ｶﾀｶﾅ", 4},           // halfwidth katakana: one column each
		{"ＡＢ", 4},             // fullwidth Latin
		{"mail 📧", 7},         // emoji presentation: two columns
		{"e\u0301t\u00e9", 3}, // a combining accent takes none
		{"a\u200db", 2},       // zero-width joiner
		{"한국어", 6},
	}
	for _, tt := range tests {
		if got := displayWidth(tt.s); got != tt.w {
			t.Errorf("displayWidth(%q) = %d, want %d", tt.s, got, tt.w)
		}
	}
	trunc := []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"exactly10!", 10, "exactly10!"},
		{"eleven chars", 10, "eleven ch…"},
		{"日本語の件名です", 10, "日本語の…"}, // 8 columns + the ellipsis; a fifth ideograph would make 11
		{"日本語の件名です", 16, "日本語の件名です"},
		{"ab日本", 4, "ab…"},
		{"e\u0301e\u0301e\u0301", 2, "e\u0301…"},
	}
	for _, tt := range trunc {
		got := truncate(tt.s, tt.n)
		if got != tt.want || displayWidth(got) > tt.n {
			t.Errorf("truncate(%q, %d) = %q (width %d), want %q", tt.s, tt.n, got, displayWidth(got), tt.want)
		}
	}
}

func encWord(s string) string {
	return "=?UTF-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
}

// columns is the display width of s, computed apart from the code under
// test: two columns for East Asian Wide and Fullwidth runes, none for
// combining marks and format characters.
func columns(s string) int {
	n := 0
	for _, r := range s {
		switch {
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		case width.LookupRune(r).Kind() == width.EastAsianWide || width.LookupRune(r).Kind() == width.EastAsianFullwidth:
			n += 2
		default:
			n++
		}
	}
	return n
}

// TestLsAlignsWideText: ls columns line up after CJK and emoji subjects,
// and long ones are cut to the column's width, not to a number of runes.
func TestLsAlignsWideText(t *testing.T) {
	srv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := srv.Dial(t, "alice", "pw")
	imaptest.Create(t, c, "日本語フォルダ")
	date := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	subjects := []string{
		"plain subject",
		"日本語の件名",
		"会議の議事録と来週の予定についての確認のお願いと資料の送付と追加の質問と回答",
		"📧 new mail 🎉",
		"Re: café crème",
	}
	for i, s := range subjects {
		body := fmt.Sprintf("From: %s <a@example.jp>\r\nSubject: %s\r\n\r\n%s\r\n", encWord("山田太郎"), encWord(s), strings.Repeat("x", i*300))
		imaptest.Append(t, c, "INBOX", nil, date, []byte(body))
		imaptest.Append(t, c, "日本語フォルダ", nil, date, []byte(body))
	}
	vault := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", "imap://alice@"+srv.Addr, vault, "--insecure-plaintext"); code != 0 {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	_, st := archivetest.Latest(t, vault)
	for _, args := range [][]string{{"ls", vault, "INBOX"}, {"ls", vault, "--since", "2000-01-01"}} {
		code, out, errs := runCLI(t, nil, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errs)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		sizeCol := columns(lines[0][:strings.Index(lines[0], "SIZE")])
		for _, l := range lines[1:] {
			found := false
			for _, f := range st.Folders {
				for _, m := range f.Present() {
					if !strings.Contains(l, m.Key) {
						continue
					}
					i := strings.LastIndex(l, humanBytes(m.Size))
					if got := columns(l[:i]); i < 0 || got != sizeCol {
						t.Errorf("%v: SIZE of %s at column %d, header at %d:\n%s", args, m.Key, got, sizeCol, out)
					}
					found = true
				}
			}
			if !found {
				t.Errorf("%v: line %q names no archived message", args, l)
			}
			if w := columns(l); w > 160 {
				t.Errorf("%v: line %d columns wide: %q", args, w, l)
			}
		}
	}
	code, out, _ := runCLI(t, nil, "ls", vault)
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	msgCol := columns(lines[0][:strings.Index(lines[0], "MESSAGES")])
	for _, l := range lines[1:] {
		if i := strings.Index(l, "5 "); code != 0 || i < 0 || columns(l[:i]) != msgCol {
			t.Errorf("ls: MESSAGES not aligned with the header:\n%s", out)
		}
	}
}

// TestJSONLogFormat: with --log-format json, every line mailvault writes
// is a JSON object: logs, notices and the final error on stderr, the
// summary on stdout.
func TestJSONLogFormat(t *testing.T) {
	f, url := fakeServer(t, imaptest.FakeOptions{FailFolder: "Archive"})
	vault := filepath.Join(t.TempDir(), "vault")
	wrong := filepath.Join(t.TempDir(), "pw")
	os.WriteFile(wrong, []byte("wrong\n"), 0o600)
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"partial backup", []string{"backup", url, vault, "--insecure-plaintext", "--log-format", "json", "-v"}, exitPartial},
		{"bare user@host", []string{"backup", "alice@" + f.Addr, vault, "--insecure-plaintext", "--log-format=json", "--timeout", "5s"}, exitPartial},
		{"usage error", []string{"backup", url, "--log-format", "json"}, exitUsage},
		{"unknown flag", []string{"backup", url, vault, "--log-format", "json", "--frobnicate"}, exitUsage},
		{"auth failure", []string{"backup", url, vault, "--insecure-plaintext", "--log-format", "json", "--password-file", wrong}, exitAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errs := runCLI(t, pwEnv, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out, errs)
			}
			var last map[string]any
			for stream, text := range map[string]string{"stdout": out, "stderr": errs} {
				for _, l := range strings.Split(strings.TrimRight(text, "\n"), "\n") {
					if l == "" {
						continue
					}
					var obj map[string]any
					if err := json.Unmarshal([]byte(l), &obj); err != nil {
						t.Errorf("%s line is not JSON: %q", stream, l)
						continue
					}
					if stream == "stderr" {
						last = obj
					}
				}
			}
			if last == nil || last["level"] != "ERROR" || last["exit_code"] != float64(tt.code) || last["msg"] == "" {
				t.Errorf("last stderr line = %v, want an ERROR with exit_code %d", last, tt.code)
			}
			if tt.code == exitPartial {
				var sum map[string]any
				json.Unmarshal([]byte(strings.TrimSpace(out)), &sum)
				if sum["status"] != "partial" || sum["snapshot"] == "" || sum["folders_failed"] != float64(1) {
					t.Errorf("summary = %v, want a partial snapshot with one failed folder", sum)
				}
			}
		})
	}
}

// TestBackupSummaryIsWhatWasCommitted: the numbers a backup prints are
// those of the snapshots it committed.
func TestBackupSummaryIsWhatWasCommitted(t *testing.T) {
	_, url := fakeServer(t, imaptest.FakeOptions{FailFolder: "Archive"})
	vault := filepath.Join(t.TempDir(), "vault")
	code, out, errs := runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext", "--log-format", "json")
	if code != exitPartial {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	var sum struct {
		Snapshot      string `json:"snapshot"`
		Status        string `json:"status"`
		Folders       int    `json:"folders"`
		FoldersFailed int    `json:"folders_failed"`
		Added         int    `json:"added"`
		Gone          int    `json:"gone"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &sum); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	code, snapsOut, _ := runCLI(t, nil, "snapshots", vault, "--json")
	var line snapshotLine
	if err := json.Unmarshal([]byte(strings.TrimSpace(snapsOut)), &line); code != 0 || err != nil {
		t.Fatalf("snapshots --json %q: %v", snapsOut, err)
	}
	a, _ := archivetest.Latest(t, vault)
	snaps, _ := a.Snapshots()
	failed := 0
	for _, f := range snaps[len(snaps)-1].Folders {
		if f.Status == "failed" {
			failed++
		}
	}
	if sum.Snapshot != line.ID || sum.Status != line.Status || sum.Folders != line.Folders || sum.Added != line.Added || sum.Gone != line.Gone || sum.FoldersFailed != failed {
		t.Errorf("printed %+v, committed %+v with %d failed folders", sum, line, failed)
	}
	// The text summary says the same.
	code, out, _ = runCLI(t, pwEnv, "backup", url, vault, "--insecure-plaintext")
	heads, _ := a.Headers()
	stored, _ := a.HeaderStoredBytes(heads)
	last := summarize(heads[len(heads)-1], stored[len(heads)-1])
	want := fmt.Sprintf("snapshot %s %s: %d folders (", last.ID, last.Status, last.Folders)
	if code != exitPartial || !strings.HasPrefix(out, want) || !strings.Contains(out, "1 failed") {
		t.Errorf("text summary %q, want it to start %q and count 1 failed folder", out, want)
	}
}
