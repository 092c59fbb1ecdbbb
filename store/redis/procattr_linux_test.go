package redis_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the server die with the test binary, even when it is
// killed before its cleanups run.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
