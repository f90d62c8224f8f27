package main

import (
	"bytes"
	"os"
	"os/exec"
	"testing"
)

// asMain, set in the environment, makes the test binary run mailvault's
// main instead of the tests (runProcess).
const asMain = "MAILVAULT_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMain) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// cli runs mailvault in-process with the given environment.
func runCLI(t *testing.T, envv map[string]string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(append([]string{"mailvault"}, argv...), nil, &out, &errb, func(k string) string { return envv[k] })
	return code, out.String(), errb.String()
}

// runProcess runs mailvault as a process of its own (the test binary
// re-executed as main) with only the given environment: for tests of
// several mailvault processes at once, which in-process runs cannot be
// (urfave/cli keeps its help flag in a package variable).
func runProcess(t *testing.T, envv map[string]string, argv ...string) (code int, stdout, stderr string) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, argv...)
	cmd.Args[0] = "mailvault"
	cmd.Env = []string{asMain + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range envv {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	} else if err != nil {
		t.Fatalf("run mailvault: %v", err)
	}
	return 0, out.String(), errb.String()
}
