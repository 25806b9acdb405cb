package mysql

import (
	"strings"
	"testing"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
)

// TestTLS streams over TLS verified against a throwaway CA, and fails with
// a clear line for a certificate from another CA or for another name.
func TestTLS(t *testing.T) {
	t.Parallel()
	files := testenv.NewTLSFiles(t)
	other := testenv.NewTLSFiles(t)
	m := startMaria(t, testenv.MariaSSL(files.CAFile, files.CertFile, files.KeyFile))
	m.Exec(t, "ALTER USER 'cdc'@'%' REQUIRE SSL")
	m.Exec(t, "CREATE TABLE shop.items (id INT PRIMARY KEY)")

	t.Run("verified", func(t *testing.T) {
		cfg := testConfig(m)
		cfg.Source.TLS.CAFile = files.CAFile
		src, _ := newSource(t, cfg)
		if err := src.Setup(t.Context(), false); err != nil {
			t.Fatal(err)
		}
		var k sink
		k.start(t, src)
		m.Exec(t, "INSERT INTO shop.items VALUES (1)")
		k.waitFor(t, 30*time.Second, "row over TLS", func(evs []*change.Event) bool { return len(evs) == 1 })
	})
	t.Run("plain refused", func(t *testing.T) {
		src, _ := newSource(t, testConfig(m))
		_, err := src.Check(t.Context())
		if err == nil || !strings.Contains(err.Error(), "Access denied") {
			t.Fatalf("plain connection to a REQUIRE SSL user: %v", err)
		}
	})
	for _, c := range []struct {
		name, ca, serverName, want string
	}{
		{"wrong CA", other.CAFile, "", "the server certificate is not signed by a CA in source.tls.ca_file"},
		{"wrong name", files.CAFile, "db.example.com", `does not match the name "db.example.com"; set source.tls.server_name`},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig(m)
			cfg.Source.TLS.CAFile = c.ca
			cfg.Source.TLS.ServerName = c.serverName
			src, _ := newSource(t, cfg)
			_, err := src.Check(t.Context())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Check = %v, want %q", err, c.want)
			}
			k := &sink{}
			err = k.start(t, src).wait(t, 30*time.Second)
			if !isFatal(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Run = %v, want a fatal %q", err, c.want)
			}
			t.Logf("%v", err)
		})
	}
}
