package deploycheck

import (
	"encoding/xml"
	"regexp"
	"strings"
	"testing"
)

// jvmPom is what the checks need of a Maven project under deploy/jvm.
type jvmPom struct {
	Properties struct {
		Entries []struct {
			XMLName xml.Name
			Value   string `xml:",chardata"`
		} `xml:",any"`
	} `xml:"properties"`
	Dependencies []struct {
		GroupID    string `xml:"groupId"`
		ArtifactID string `xml:"artifactId"`
		Version    string `xml:"version"`
	} `xml:"dependencies>dependency"`
}

// pinnedVersion is one exact release: no range, no SNAPSHOT, no
// LATEST/RELEASE.
var pinnedVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)+([.-][A-Za-z0-9.]+)*$`)

// resolvedDeps returns groupId:artifactId -> version of the pom at rel,
// with ${properties} replaced.
func resolvedDeps(t *testing.T, rel string) map[string]string {
	t.Helper()
	var pom jvmPom
	if err := xml.Unmarshal(read(t, rel), &pom); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	props := map[string]string{}
	for _, e := range pom.Properties.Entries {
		props[e.XMLName.Local] = strings.TrimSpace(e.Value)
	}
	deps := map[string]string{}
	for _, d := range pom.Dependencies {
		v := d.Version
		if name, ok := strings.CutPrefix(v, "${"); ok {
			v = props[strings.TrimSuffix(name, "}")]
		}
		deps[d.GroupID+":"+d.ArtifactID] = v
	}
	return deps
}

// TestPeerVersionsPinned: the peers `make bench-peers` runs beside cdcrelay
// (deploy/jvm/debezium, deploy/jvm/flinkcdc) name exact releases, so that
// every run of the bench compares against the same published code, and
// the versions the bench reports in results.json are the ones it ran.
func TestPeerVersionsPinned(t *testing.T) {
	peers := map[string][]string{
		"deploy/jvm/debezium/pom.xml":         {"io.debezium:debezium-connector-postgres", "io.debezium:debezium-connector-mysql", "org.apache.kafka:connect-runtime"},
		"deploy/jvm/debezium-mariadb/pom.xml": {"io.debezium:debezium-connector-mariadb", "org.apache.kafka:connect-runtime"},
		"deploy/jvm/flinkcdc/pom.xml":         {"com.ververica:flink-sql-connector-mysql-cdc", "com.ververica:flink-sql-connector-postgres-cdc", "org.apache.flink:flink-clients", "org.apache.flink:flink-statebackend-rocksdb"},
	}
	broker := resolvedDeps(t, "deploy/jvm/kafka/pom.xml")["org.apache.kafka:kafka_2.13"]
	all := map[string]string{}
	for rel, want := range peers {
		deps := resolvedDeps(t, rel)
		if got := deps["org.apache.kafka:connect-runtime"]; got != "" && got != broker {
			t.Errorf("%s: connect-runtime %s, but the tests' broker (deploy/jvm/kafka) is Kafka %s", rel, got, broker)
		}
		for ga, v := range deps {
			if !pinnedVersion.MatchString(v) {
				t.Errorf("%s: %s has version %q; name one exact release", rel, ga, v)
			}
			all[ga] = v
		}
		for _, ga := range want {
			if _, ok := deps[ga]; !ok {
				t.Errorf("%s: no dependency %s", rel, ga)
			}
		}
	}

	if a, b := all["io.debezium:debezium-connector-postgres"], all["io.debezium:debezium-connector-mysql"]; a != b {
		t.Errorf("deploy/jvm/debezium: the PostgreSQL connector is %s and the MySQL one %s; run one Debezium release", a, b)
	}
	if a, b := all["com.ververica:flink-sql-connector-mysql-cdc"], all["com.ververica:flink-sql-connector-postgres-cdc"]; a != b {
		t.Errorf("deploy/jvm/flinkcdc: mysql-cdc %s and postgres-cdc %s differ", a, b)
	}
	flink := all["org.apache.flink:flink-clients"]
	if conn := all["org.apache.flink:flink-sql-connector-kafka"]; !strings.HasSuffix(conn, "-"+strings.Join(strings.Split(flink, ".")[:2], ".")) {
		t.Errorf("deploy/jvm/flinkcdc: the Kafka connector %s is not built for Flink %s", conn, flink)
	}

	// The bench writes these versions into results.json beside the figures.
	bench := string(read(t, "bench/peers.go"))
	for _, v := range []string{
		all["io.debezium:debezium-connector-postgres"], all["io.debezium:debezium-connector-mariadb"], all["org.apache.kafka:connect-runtime"],
		all["com.ververica:flink-sql-connector-mysql-cdc"], flink, all["org.apache.flink:flink-sql-connector-kafka"],
	} {
		if !strings.Contains(bench, v) {
			t.Errorf("bench/peers.go (peerVersions) does not name %s, which the Maven projects pin", v)
		}
	}
}
