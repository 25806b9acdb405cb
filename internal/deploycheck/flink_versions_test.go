package deploycheck

import (
	"encoding/xml"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// runnerPom is what the checks need of deploy/jvm/flink/pom.xml.
type runnerPom struct {
	Properties struct {
		Flink          string `xml:"flink.version"`
		KafkaConnector string `xml:"flink.kafka.connector.version"`
	} `xml:"properties"`
}

// TestFlinkVersionsAgree: docker-compose.yml, deploy/flink/Dockerfile and
// the runner the tests use (deploy/jvm/flink) name the same Flink and the
// same Kafka connector, so that CI runs what the compose demo ships.
func TestFlinkVersionsAgree(t *testing.T) {
	var pom runnerPom
	if err := xml.Unmarshal(read(t, "deploy/jvm/flink/pom.xml"), &pom); err != nil {
		t.Fatalf("deploy/jvm/flink/pom.xml: %v", err)
	}
	flink, connector := pom.Properties.Flink, pom.Properties.KafkaConnector
	if flink == "" || connector == "" {
		t.Fatalf("deploy/jvm/flink/pom.xml: flink.version %q, flink.kafka.connector.version %q", flink, connector)
	}
	if !strings.HasSuffix(connector, "-"+strings.Join(strings.Split(flink, ".")[:2], ".")) {
		t.Errorf("the Kafka connector %s is not built for Flink %s", connector, flink)
	}

	docker := string(read(t, "deploy/flink/Dockerfile"))
	m := regexp.MustCompile(`(?m)^FROM flink:(\S+?)-scala`).FindStringSubmatch(docker)
	if m == nil || m[1] != flink {
		t.Errorf("deploy/flink/Dockerfile: the final stage is not FROM flink:%s-scala_...", flink)
	}
	m = regexp.MustCompile(`(?m)^ARG KAFKA_CONNECTOR_VERSION=(\S+)$`).FindStringSubmatch(docker)
	if m == nil || m[1] != connector {
		t.Errorf("deploy/flink/Dockerfile: KAFKA_CONNECTOR_VERSION is %v; the runner's pom has %s", m, connector)
	}
	if !strings.Contains(docker, "flink-sql-connector-kafka-"+connector+".jar") {
		t.Errorf("deploy/flink/Dockerfile: the SHA-512 comment does not name flink-sql-connector-kafka-%s.jar", connector)
	}

	c, _ := loadCompose(t)
	images := 0
	for name, s := range c.Services {
		if _, ok := s.Environment["FLINK_PROPERTIES"]; !ok {
			continue
		}
		images++
		if want := "cdcrelay-demo-flink:" + flink; s.Image != want {
			t.Errorf("docker-compose.yml: %s runs %s, want %s", name, s.Image, want)
		}
	}
	if images == 0 {
		t.Error("docker-compose.yml: no Flink service")
	}
}

// TestNoMavenURL: no tracked file downloads a jar from a written-down
// repository URL; Maven resolves them (deploy/jvm).
func TestNoMavenURL(t *testing.T) {
	out, err := exec.Command("git", "-C", repoRoot(t), "grep", "-l", "-I", "-E",
		`repo1\.maven\.org|repo\.maven\.apache\.org|maven2/org/apache`).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 1 {
			return // no match
		}
		t.Skipf("git grep: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if f == "internal/deploycheck/flink_versions_test.go" {
			continue
		}
		t.Errorf("%s names a Maven repository URL; resolve through a Maven project under deploy/jvm", f)
	}
}

// TestKafkaVersionsAgree: the Apache Kafka the tests run (deploy/jvm/kafka)
// is the one docker-compose.yml runs.
func TestKafkaVersionsAgree(t *testing.T) {
	var pom struct {
		Properties struct {
			Kafka string `xml:"kafka.version"`
		} `xml:"properties"`
	}
	if err := xml.Unmarshal(read(t, "deploy/jvm/kafka/pom.xml"), &pom); err != nil || pom.Properties.Kafka == "" {
		t.Fatalf("deploy/jvm/kafka/pom.xml: kafka.version %q (%v)", pom.Properties.Kafka, err)
	}
	c, _ := loadCompose(t)
	s, ok := c.Services["kafka"]
	if !ok {
		t.Fatal("docker-compose.yml: no kafka service")
	}
	if want := "apache/kafka:" + pom.Properties.Kafka; s.Image != want {
		t.Errorf("docker-compose.yml: kafka runs %s; the tests run %s (deploy/jvm/kafka/pom.xml)", s.Image, want)
	}
}
