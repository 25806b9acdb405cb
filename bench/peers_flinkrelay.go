package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// sysRelayFlink is cdcrelay reading the database into Kafka with a Flink
// SQL job copying the relay's topic into a sink topic, checkpoints off.
const sysRelayFlink = "cdcrelay+flink"

// relayFlinkRestart runs cdcrelay on a fresh table of n rows and a Flink
// SQL job that copies the relay's topic into a sink topic. Once the sink
// holds half the rows, the Flink process gets SIGKILL and starts again
// one second later, while row 1 is updated to a new marker value every
// 200 ms. It measures the rows read from the table beyond one pass, the
// time from Flink's restart until the second marker value reaches the
// sink, and the state kept: the relay's offsets record, no checkpoint.
func (b *bench) relayFlinkRestart(ctx context.Context, db string, n, run int) peerResult {
	r := peerResult{Scenario: "restart after kill -9 mid-snapshot", System: sysRelayFlink, DB: db, Rows: n}
	id := runID(peerID("rf", sysRelay, db), run)
	defer b.dropPeerRun(ctx, db, id, false)
	err := func() error {
		pr, relay, reads0, err := b.startOnFresh(ctx, sysRelay, db, id, n)
		if err != nil {
			return err
		}
		defer pr.cleanup()
		defer relay.kill9()
		job, sink, err := b.newRelayFlinkJob(db, id, pr.topic)
		if err != nil {
			return err
		}
		flink, err := job()
		if err != nil {
			return err
		}
		defer func() { flink.kill9() }()
		if _, err := b.waitTopicHolds(ctx, flink, sink, int64(n/2), 20*time.Minute); err != nil {
			return fmt.Errorf("before the kill: %w", err)
		}
		firstHalf := time.Since(flink.started)
		flink.kill9()
		time.Sleep(time.Second)
		if flink, err = job(); err != nil {
			return err
		}
		seenAt, markers, err := b.waitStreaming(ctx, flink, db, id, sink)
		if err != nil {
			return fmt.Errorf("after the restart: %w", err)
		}
		r.ResumeMs = f64(float64(seenAt.Sub(flink.started).Microseconds()) / 1000)
		b.waitTopicStill(ctx, sink)
		r.PeakRSS = f64(flink.peakRSSMiB())
		flink.stop()
		relay.stop()
		if err := b.countReads(ctx, &r, db, id, reads0, markers); err != nil {
			return err
		}
		st, _ := pr.state()
		r.StateBytes, r.StateWhat = i64(st), "relay offsets record; no Flink checkpoint"
		ts, err := b.readTopic(ctx, sink, 0)
		if err != nil {
			return err
		}
		// Flink writes an update as a delete and an insert.
		twice := int64(ts.records) - int64(n) - 2*markers
		r.Note = fmt.Sprintf("Flink killed %.1fs after its start with %d+ rows in the sink; %d marker updates of row 1 after the restart; the sink holds %d records (read_committed) for %d rows: about %d copied twice from the relay's topic; peak RSS is Flink's", firstHalf.Seconds(), n/2, markers, ts.records, n, twice)
		return nil
	}()
	if err != nil {
		r.Error = firstLines(err.Error(), 12)
		fmt.Fprintf(os.Stderr, "bench: cdcrelay+flink %s: %v\n", db, err)
	}
	return r
}

// newRelayFlinkJob writes the Flink SQL job that copies the relay's topic
// into the sink topic <id>_sink and returns a function that starts it,
// checkpoints off, and the sink topic. Without checkpoints the Kafka
// source commits its position through the consumer's auto-commit, so a
// restarted job goes on from the group's committed offsets.
func (b *bench) newRelayFlinkJob(db, id, relayTopic string) (func() (*peerProc, error), string, error) {
	sink := id + "_sink"
	dir := filepath.Join(b.workDir, id, "flink")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	file := filepath.Join(dir, "job.sql")
	if err := os.WriteFile(file, []byte(relayFlinkSQL(relayTopic, sink, id, b.brokerAddr)), 0o644); err != nil {
		return nil, "", err
	}
	if err := b.createTopic(context.Background(), sink); err != nil {
		return nil, "", fmt.Errorf("create %s: %w", sink, err)
	}
	start := func() (*peerProc, error) {
		argv := append([]string{javaBin(), jvmHeap}, flinkJavaOpts...)
		argv = append(argv, "-cp", flinkClassPath(b.flinkCP, db), "io.cdcrelay.flinkcdc.Job",
			"-D", "restart-strategy.type=fixed-delay",
			"-D", "restart-strategy.fixed-delay.attempts=20",
			"-D", "restart-strategy.fixed-delay.delay=2s", file)
		return b.startPeerProc(id+"_flink", argv)
	}
	return start, sink, nil
}

// relayFlinkSQL reads the relay's debezium-json topic as a changelog and
// writes it into sink in the same format. Times are kept as the strings
// the relay writes, for both databases.
func relayFlinkSQL(relayTopic, sink, group, broker string) string {
	cols := `id BIGINT, customer STRING, status STRING, qty INT, amount DECIMAL(12,2),
  created_at STRING, updated_at STRING, note STRING, payload STRING`
	return fmt.Sprintf(`CREATE TABLE src (
  %[1]s
) WITH (
  'connector' = 'kafka', 'topic' = '%[2]s',
  'properties.bootstrap.servers' = '%[4]s',
  'properties.group.id' = '%[5]s',
  'properties.isolation.level' = 'read_committed',
  'properties.enable.auto.commit' = 'true',
  'properties.auto.offset.reset' = 'earliest',
  'scan.startup.mode' = 'group-offsets',
  'value.format' = 'debezium-json'
);
CREATE TABLE sink (
  %[1]s
) WITH (
  'connector' = 'kafka', 'topic' = '%[3]s',
  'properties.bootstrap.servers' = '%[4]s',
  'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'debezium-json'
);
INSERT INTO sink SELECT * FROM src;
`, cols, relayTopic, sink, broker, group)
}
