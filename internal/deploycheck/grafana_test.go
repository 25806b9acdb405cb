package deploycheck

import (
	"bytes"
	"encoding/json"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cdcrelay/cdcrelay/metrics"
)

const dashboardFile = "deploy/grafana/cdcrelay.json"

// relayMetrics are the series the relay exports and the dashboard shows.
var relayMetrics = []string{
	"cdcrelay_events_total",
	"cdcrelay_kafka_transactions_total",
	"cdcrelay_kafka_transaction_seconds",
	"cdcrelay_batch_events",
	"cdcrelay_source_lag_bytes",
	"cdcrelay_source_lag_seconds",
	"cdcrelay_snapshot_rows_done",
	"cdcrelay_snapshot_rows_estimated",
	"cdcrelay_snapshot_chunks_done",
	"cdcrelay_snapshot_rows_per_second",
	"cdcrelay_reconnects_total",
	"cdcrelay_restarts_total",
	"cdcrelay_committed_lsn",
	"cdcrelay_committed_timestamp_seconds",
	"cdcrelay_up",
}

// describeRecorder is a Registerer that keeps the metric names it is given.
type describeRecorder struct{ names []string }

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *describeRecorder) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc, 16)
	go func() { c.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names = append(r.names, m[1])
		}
	}
	return nil
}

func (r *describeRecorder) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = r.Register(c)
	}
}

func (r *describeRecorder) Unregister(prometheus.Collector) bool { return true }

type dashboard struct {
	UID        string           `json:"uid"`
	Panels     []map[string]any `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

var seriesName = regexp.MustCompile(`\bcdcrelay_[a-z_]+`)

func TestDashboard(t *testing.T) {
	raw := read(t, dashboardFile)
	var d dashboard
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" {
		t.Error("the dashboard has no uid")
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars[v.Name] = true
	}
	if !vars["datasource"] {
		t.Error("no datasource variable: the dashboard must not depend on one Grafana's data source uid")
	}

	ids := map[float64]bool{}
	used := map[string]bool{}
	for _, p := range d.Panels {
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v is used twice", id)
		}
		ids[id] = true
		if p["type"] == "row" {
			continue
		}
		if ds, _ := p["datasource"].(map[string]any); ds == nil || ds["uid"] != "${datasource}" {
			t.Errorf("panel %q does not use the ${datasource} variable", p["title"])
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q has no query", p["title"])
		}
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			for _, m := range seriesName.FindAllString(expr, -1) {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(m, suffix); ok && slices.Contains(relayMetrics, base) {
						m = base
					}
				}
				if !slices.Contains(relayMetrics, m) {
					t.Errorf("panel %q queries %s, which the relay does not export", p["title"], m)
				}
				used[m] = true
			}
			if strings.Contains(expr, "cdcrelay_") && !strings.Contains(expr, `instance=~"$instance"`) {
				t.Errorf("panel %q: %s ignores the $instance variable", p["title"], expr)
			}
		}
	}
	for _, m := range relayMetrics {
		if !used[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// TestDashboardMetricsExist: every series of the dashboard is registered by
// the metrics package, so a rename there fails here.
func TestDashboardMetricsExist(t *testing.T) {
	rec := &describeRecorder{}
	metrics.New(rec)
	sort.Strings(rec.names)
	for _, m := range relayMetrics {
		if !slices.Contains(rec.names, m) {
			t.Errorf("the dashboard uses %s, but metrics.New registers only %v", m, rec.names)
		}
	}
}

// TestDashboardShipped: the same dashboard goes into the Helm chart and is
// provisioned into Grafana by the compose file.
func TestDashboardShipped(t *testing.T) {
	if !bytes.Equal(read(t, dashboardFile), read(t, "deploy/helm/cdcrelay/files/cdcrelay.json")) {
		t.Errorf("deploy/helm/cdcrelay/files/cdcrelay.json differs from %s; copy it: cp %s deploy/helm/cdcrelay/files/", dashboardFile, dashboardFile)
	}
	if !strings.Contains(string(read(t, "deploy/helm/cdcrelay/templates/dashboard-configmap.yaml")), `.Files.Get "files/cdcrelay.json"`) {
		t.Error("the chart's dashboard ConfigMap does not ship files/cdcrelay.json")
	}
	c, _ := loadCompose(t)
	found := false
	for _, v := range c.Services["grafana"].Volumes {
		if strings.HasPrefix(v, "./"+dashboardFile+":") {
			found = true
		}
	}
	if !found {
		t.Errorf("the compose grafana service does not mount %s", dashboardFile)
	}
}
