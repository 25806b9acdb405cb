package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestColumnRules runs the relay with a column left out, one hashed with a
// salt from a file and one truncated, on a PostgreSQL table: the snapshot
// row and the streamed insert land in Kafka alike, with no trace of the
// left-out column or of the clear values, and flink-ddl declares the table
// as it lands.
func TestColumnRules(t *testing.T) {
	b := testenv.StartBroker(t)
	pg := testenv.StartPostgres(t)
	pgRelayRole(t, pg, true)
	pg.Exec(t, "shop", `SET ROLE relay; CREATE TABLE public.people (id bigint PRIMARY KEY, email text, ssn text, bio text, age int);
ALTER TABLE public.people REPLICA IDENTITY FULL;
INSERT INTO public.people VALUES (1, 'ann@example.com', '111-11-1111', 'A long biography of Ann', 41)`)
	salt := filepath.Join(t.TempDir(), "salt")
	if err := os.WriteFile(salt, []byte("pepper-and-salt\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf(`id: cols
source:
  type: postgres
  dsn: postgres://relay@%s:%d/shop?sslmode=disable
  tables: [public.people]
  column_exclude: [public.people.ssn]
  column_hash: [public.people.email]
  column_hash_salt_file: %s
  column_truncate: ["public.people.bio:6"]
kafka:
  brokers: [%s]
  topic_prefix: cols
metrics:
  listen: "off"
`, pg.Host, pg.Port, salt, b.Addr))
	p := startRelay(t, cfg, pwEnv...)
	eventually(t, time.Minute, "the snapshot", func() bool {
		return strings.Contains(offsetsState(t, cfg), `"done":["\"public\".\"people\""]`)
	})
	pg.Exec(t, "shop", "INSERT INTO public.people VALUES (2, 'bob@example.com', '222-22-2222', 'Bob', NULL)")
	var recs []record
	eventually(t, time.Minute, "two records", func() bool {
		recs = readAll(t, b, "cols.public.people")
		return len(recs) >= 2
	})
	hash := func(v string) string {
		s := sha256.Sum256([]byte("pepper-and-salt" + v))
		return hex.EncodeToString(s[:])
	}
	want := map[string]string{
		`{"id":1}`: `{"id":1,"email":"` + hash(`"ann@example.com"`) + `","bio":"A long","age":41}`,
		`{"id":2}`: `{"id":2,"email":"` + hash(`"bob@example.com"`) + `","bio":"Bob","age":null}`,
	}
	for _, r := range recs {
		for _, secret := range []string{"111-11", "222-22", "ssn", "ann@example.com", "bob@example.com", "biography"} {
			if strings.Contains(string(r.Value), secret) || strings.Contains(r.Key, secret) {
				t.Errorf("record %s holds %q: %s", r.Key, secret, r.Value)
			}
		}
		var env struct{ After json.RawMessage }
		mustJSON(t, r.Value, &env)
		if got := string(env.After); got != want[r.Key] {
			t.Errorf("key %s: after %s, want %s", r.Key, got, want[r.Key])
		}
	}
	if code := p.stop(t); code != 0 {
		t.Fatalf("SIGTERM exit code %d", code)
	}

	cmd := exec.Command(testenv.Binary(t), "flink-ddl", "--config", cfg)
	cmd.Env = append(os.Environ(), pwEnv...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("flink-ddl: %v\n%s", err, out)
	}
	ddl := string(out)
	if strings.Contains(ddl, "ssn") || !strings.Contains(ddl, "`email` STRING") || !strings.Contains(ddl, "`bio` STRING") {
		t.Errorf("flink-ddl does not show the table as it lands:\n%s", ddl)
	}
	if strings.Contains(ddl, "pepper") {
		t.Errorf("flink-ddl prints the salt:\n%s", ddl)
	}
}
