package e2e

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// runVerify runs `cdcrelay verify` and returns its output and exit code.
func runVerify(t *testing.T, e *chaosEnv, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, testenv.Binary(t), append([]string{"verify", "--config", e.cfg}, args...)...)
	cmd.Env = append(cmd.Environ(), e.env...)
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// skipUnlessBuilt fails when the binary lacks the source of this kind: both
// are built in, so that would be a broken build, not a reason to skip.
func skipUnlessBuilt(t *testing.T, e *chaosEnv) {
	t.Helper()
	out, _ := exec.Command(testenv.Binary(t), "check", "--config", e.cfg).CombinedOutput()
	if strings.Contains(string(out), "is not built into this binary") {
		t.Fatalf("the binary has no %s source", e.kind)
	}
}

// verify against the real relay: it passes on a live system (the workload
// writing while it runs), then catches a deleted key and a forged value in
// the topic and a row updated while the relay was down.
func TestVerifyAgainstRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test")
	}
	for _, kind := range []string{"postgres", "mysql"} {
		t.Run(kind, func(t *testing.T) {
			e := newChaosEnv(t, kind, false, chaosOptions{seed: 700})
			skipUnlessBuilt(t, e)
			e.startWorkload()
			e.startRelay()
			e.waitSnapshot(3 * time.Minute)
			time.Sleep(2 * time.Second)

			out, code := runVerify(t, e, "--settle", "3m")
			t.Logf("live verify:\n%s", out)
			if code != 0 {
				t.Fatalf("verify on a live, correct system exited %d", code)
			}
			e.settle()

			ns := e.namespace()
			topic := chaosID + "." + ns + ".chaos_a"
			cl := e.b.Client(t, kgo.TransactionalID("verify-corrupter"))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := cl.BeginTransaction(); err != nil {
				t.Fatal(err)
			}
			if err := cl.ProduceSync(ctx,
				&kgo.Record{Topic: topic, Key: []byte(`{"id":500}`)},
				&kgo.Record{Topic: topic, Key: []byte(`{"id":501}`), Value: []byte(`{"before":null,"after":{"id":501,"ver":99,"txid":1,"pad":"forged"},"op":"u"}`)},
			).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
				t.Fatal(err)
			}
			e.exec("UPDATE " + ns + ".chaos_a SET pad = 'changed behind the relay' WHERE id = 502")

			out, code = runVerify(t, e, "--settle", "5s", "--table", ns+".chaos_a")
			t.Logf("verify after the corruption:\n%s", out)
			if code != 1 {
				t.Fatalf("verify exit %d after the corruption, want 1", code)
			}
			for _, want := range []string{"missing 1, extra 0, differing 2", `missing in Kafka: {"id":500}`,
				`differing:        {"id":501}`, `differing:        {"id":502}`} {
				if !strings.Contains(out, want) {
					t.Errorf("verify output lacks %q", want)
				}
			}
		})
	}
}
