//go:build !linux

package main

import "syscall"

// embeddedProcAttr leaves the embedded broker in the relay's process
// group: only Linux can tie its life to the relay's.
func embeddedProcAttr() *syscall.SysProcAttr { return nil }
