package main

import (
	"bytes"
	"context"
	"go/ast"
	"go/constant"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailvault/mailvault/formats"
	"github.com/mailvault/mailvault/internal/imaptest"
	"github.com/mailvault/mailvault/internal/pop3test"
)

// declaredExitCodes parses exitcode.go for its exit* constants.
func declaredExitCodes(t *testing.T) []int {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "exitcode.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []int
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if !strings.HasPrefix(n.Name, "exit") || i >= len(vs.Values) {
					continue
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.INT {
					continue // exitCodesHelp
				}
				v, _ := constant.Int64Val(constant.MakeFromLiteral(lit.Value, lit.Kind, 0))
				codes = append(codes, int(v))
			}
		}
	}
	sort.Ints(codes)
	return codes
}

// readmeExitCodes reads the codes of the table under "## Exit codes".
func readmeExitCodes(t *testing.T) []int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(data), "\n## Exit codes\n")
	if !ok {
		t.Fatal("README.md has no '## Exit codes' section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	var codes []int
	for _, m := range regexp.MustCompile(`(?m)^\|\s*(\d+)\s*\|`).FindAllStringSubmatch(section, -1) {
		n, _ := strconv.Atoi(m[1])
		codes = append(codes, n)
	}
	sort.Ints(codes)
	return codes
}

// TestExitCodesDocumented: README's table, the help text and exitcode.go
// list the same codes.
func TestExitCodesDocumented(t *testing.T) {
	declared, readme := declaredExitCodes(t), readmeExitCodes(t)
	if !slices.Equal(declared, readme) {
		t.Errorf("README.md exit codes %v, exitcode.go %v", readme, declared)
	}
	var help []int
	for _, m := range regexp.MustCompile(`(?m)^   (\d+)\s`).FindAllStringSubmatch(exitCodesHelp, -1) {
		n, _ := strconv.Atoi(m[1])
		help = append(help, n)
	}
	sort.Ints(help)
	if !slices.Equal(declared, help) {
		t.Errorf("help text exit codes %v, exitcode.go %v", help, declared)
	}
}

// TestExitCodeTable provokes every documented exit code once, through
// the whole command line in-process.
func TestExitCodeTable(t *testing.T) {
	memSrv := imaptest.StartMem(t, imaptest.MemOptions{Users: map[string]string{"alice": "pw"}})
	c := memSrv.Dial(t, "alice", "pw")
	imaptest.Append(t, c, "INBOX", nil, time.Now(), []byte("Subject: hi\r\n\r\nbody\r\n"))
	mem := "imap://alice@" + memSrv.Addr

	// A good archive, a locked one and a damaged one.
	good := filepath.Join(t.TempDir(), "vault")
	if code, out, errs := runCLI(t, pwEnv, "backup", mem, good, "--insecure-plaintext"); code != exitOK {
		t.Fatalf("backup: %d %s %s", code, out, errs)
	}
	damaged := filepath.Join(t.TempDir(), "damaged")
	if code, _, errs := runCLI(t, pwEnv, "backup", mem, damaged, "--insecure-plaintext"); code != exitOK {
		t.Fatalf("backup: %d %s", code, errs)
	}
	manifests, _ := filepath.Glob(filepath.Join(damaged, "snapshots", "*.json"))
	data, _ := os.ReadFile(manifests[0])
	os.WriteFile(manifests[0], bytes.Replace(data, []byte("INBOX"), []byte("INBOy"), 1), 0o600)

	cases := []struct {
		code  int
		name  string
		setup func(t *testing.T) []string
		ctx   func(t *testing.T) context.Context
	}{
		{exitOK, "a backup", func(t *testing.T) []string {
			return []string{"backup", mem, good, "--insecure-plaintext"}
		}, nil},
		{exitError, "a local source that cannot be read", func(t *testing.T) []string {
			return []string{"backup", "mbox:" + filepath.Join(t.TempDir(), "missing.mbox"), filepath.Join(t.TempDir(), "v")}
		}, nil},
		{exitUsage, "a misspelt command", func(t *testing.T) []string {
			return []string{"bakup", mem, good}
		}, nil},
		{exitPartial, "a folder that fails", func(t *testing.T) []string {
			_, url := fakeServer(t, imaptest.FakeOptions{FailFolder: "Work"})
			return []string{"backup", url, filepath.Join(t.TempDir(), "v"), "--insecure-plaintext"}
		}, nil},
		{exitAuth, "a wrong password", func(t *testing.T) []string {
			pw := filepath.Join(t.TempDir(), "pw")
			os.WriteFile(pw, []byte("wrong\n"), 0o600)
			return []string{"backup", mem, good, "--insecure-plaintext", "--password-file", pw}
		}, nil},
		{exitLocked, "a locked archive", func(t *testing.T) []string {
			a, err := formats.Open(good)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.Lock("test"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(a.Unlock)
			return []string{"backup", mem, good, "--insecure-plaintext"}
		}, nil},
		{exitArchive, "a damaged archive", func(t *testing.T) []string {
			return []string{"verify", damaged}
		}, nil},
		{exitConnect, "a closed port", func(t *testing.T) []string {
			return []string{"backup", "imap://alice@" + closedAddr(t), good, "--insecure-plaintext"}
		}, nil},
		{exitStorage, "an archive under /proc", func(t *testing.T) []string {
			return []string{"backup", mem, "/proc/vault", "--insecure-plaintext"}
		}, nil},
		{exitInUse, "a POP3 mailbox in use", func(t *testing.T) []string {
			srv := pop3test.Start(t, pop3test.Options{User: "alice", Password: "pw", Locked: true})
			return []string{"backup", "pop3://alice@" + srv.Addr, filepath.Join(t.TempDir(), "v"), "--insecure-plaintext"}
		}, nil},
		{exitInterrupted, "a run interrupted while fetching", func(t *testing.T) []string {
			_, url := fakeServer(t, imaptest.FakeOptions{HangAt: "fetch"})
			return []string{"backup", url, filepath.Join(t.TempDir(), "v"), "--insecure-plaintext", "--timeout", "1m"}
		}, func(t *testing.T) context.Context {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(time.Second, cancel)
			t.Cleanup(cancel)
			return ctx
		}},
	}
	provoked := map[int]bool{}
	for _, tt := range cases {
		t.Run(strconv.Itoa(tt.code)+" "+tt.name, func(t *testing.T) {
			args := tt.setup(t)
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx(t)
			}
			var out, errb bytes.Buffer
			start := time.Now()
			code := runContext(ctx, append([]string{"mailvault"}, args...), nil, &out, &errb, func(k string) string { return pwEnv[k] })
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stdout %q stderr %q", code, tt.code, out.String(), errb.String())
			}
			if tt.code != exitOK && (strings.Count(errb.String(), "mailvault: ") != 1 || !strings.HasSuffix(errb.String(), "\n")) {
				t.Errorf("stderr %q: want one 'mailvault: ' error line", errb.String())
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			}
			provoked[tt.code] = true
		})
	}
	for _, code := range declaredExitCodes(t) {
		if !provoked[code] {
			t.Errorf("exit code %d is documented but no case provokes it", code)
		}
	}
}
