//go:build cdcrelay_testing

package devbroker

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// This file is compiled only with -tags cdcrelay_testing. It reads
// CDCRELAY_TEST_BROKER_CRASH=after-decision:<n>: the broker kills itself
// with SIGKILL after writing its n-th commit decision, before kfake writes
// any marker of that transaction.
func init() {
	point, nStr, _ := strings.Cut(os.Getenv("CDCRELAY_TEST_BROKER_CRASH"), ":")
	n, err := strconv.Atoi(nStr)
	if point != "after-decision" || err != nil || n <= 0 {
		return
	}
	var count atomic.Int64
	testAfterDecide = func() {
		if count.Add(1) == int64(n) {
			_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			select {}
		}
	}
}
