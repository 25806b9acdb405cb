package main

import "syscall"

// embeddedProcAttr puts the embedded broker in its own process group and
// has the kernel stop it if the relay dies without stopping it (kill -9).
func embeddedProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
