package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/sources"
)

// TestServerVersions runs the preflight against every major version of the
// matrix (deploy/jvm/postgres). From 14 on it reports the server as fine;
// 13 is refused with one line that says why and what to do, since its
// pgoutput cannot send the logical decoding messages the watermarks and
// heartbeats are. The whole package runs against one version with
// CDCRELAY_TEST_PG (make test-pg-versions runs it against each).
func TestServerVersions(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers")
	}
	for _, v := range testenv.PGVersions {
		t.Run(fmt.Sprint(v), func(t *testing.T) {
			e := startPG(t, testenv.PGVersion(v))
			e.exec(t, `CREATE TABLE items (id int PRIMARY KEY, v text); ALTER TABLE items REPLICA IDENTITY FULL`)
			rep, err := newSource(t, e.config("public.items")).Check(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var line *sources.Finding
			for i, f := range rep {
				if f.Subject == "server version" {
					line = &rep[i]
				}
			}
			if line == nil {
				t.Fatalf("PostgreSQL %d (%s): no server version line", v, e.pg.Version)
			}
			t.Logf("PostgreSQL %s: %s: %s", e.pg.Version, line.Level, line.Detail)
			if v < 14 {
				if line.Level != sources.Block || !strings.Contains(line.Detail, "upgrade to PostgreSQL 14") {
					t.Fatalf("PostgreSQL %d: %s %q, want a blocking line naming the upgrade", v, line.Level, line.Detail)
				}
				return
			}
			if line.Level != sources.OK || len(rep.Blocking()) > 0 {
				t.Fatalf("PostgreSQL %d: %s %q; blocking: %v", v, line.Level, line.Detail, rep.Blocking())
			}
		})
	}
}
