package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The three setups the peers bench runs side by side.
const (
	sysRelay    = "cdcrelay"
	sysDebezium = "debezium"
	sysFlinkCDC = "flinkcdc"
	// sysDebeziumMySQL is Debezium 3.6's MySQL connector pointed at
	// MariaDB, which the issue asked for; sysDebezium uses the MariaDB
	// connector there.
	sysDebeziumMySQL = "debezium-mysql"
)

// peerRun is one setup reading one table of one database into one topic;
// start may be called again after a kill to restart the same setup with
// the state it kept.
type peerRun struct {
	system string
	db     string // pg or mariadb
	table  string
	topic  string
	dir    string // state the setup keeps between its restarts
	start  func() (*peerProc, error)
	// state is the bytes the setup keeps to resume, and what they are.
	state func() (int64, string)
	// cleanup drops what the setup left in the database (slots).
	cleanup func()
}

// newPeerRun prepares system to read table of db; id names its topic,
// slot and state.
func (b *bench) newPeerRun(system, db, table, id string) (*peerRun, error) {
	r := &peerRun{system: system, db: db, table: table, dir: filepath.Join(b.workDir, id)}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	schema := "public"
	if db == "mariadb" {
		schema = "bench"
	}
	switch system {
	case sysRelay:
		rc := relayConf{id: id, table: schema + "." + table, mysql: db == "mariadb"}
		r.topic = id + "." + schema + "." + table
		r.start = func() (*peerProc, error) {
			path, err := b.writeRelayConfig(rc, fmt.Sprintf("127.0.0.1:%d", freePort()))
			if err != nil {
				return nil, err
			}
			return b.startPeerProc(id, []string{b.relayBin, "run", "--config", path}, b.relayEnv...)
		}
		r.state = func() (int64, string) {
			pos, _ := b.offsets.get(id)
			return int64(pos.size), "offsets record"
		}
		r.cleanup = func() { b.dropSlot(context.Background(), "cdcrelay_"+id) }
	case sysDebezium, sysDebeziumMySQL:
		r.topic = id + "." + schema + "." + table
		connector := "io.debezium.connector.mysql.MySqlConnector"
		cp := b.dbzCP
		if db == "mariadb" && system == sysDebezium {
			connector, cp = "io.debezium.connector.mariadb.MariaDbConnector", b.dbzMariaCP
		}
		if err := b.writeDebeziumConf(r, id, schema, connector); err != nil {
			return nil, err
		}
		r.start = func() (*peerProc, error) {
			// INFO: Connect and Debezium log each snapshot step there.
			return b.startPeerProc(id, []string{javaBin(), jvmHeap, "-Dorg.apache.logging.log4j.level=INFO", "-cp", cp,
				"org.apache.kafka.connect.cli.ConnectStandalone",
				filepath.Join(r.dir, "worker.properties"), filepath.Join(r.dir, "connector.properties")})
		}
		r.state = func() (int64, string) {
			return fileBytes(filepath.Join(r.dir, "offsets")) + fileBytes(filepath.Join(r.dir, "history")),
				"Connect offsets file + schema history file"
		}
		r.cleanup = func() {
			b.dropSlot(context.Background(), id)
			_ = b.pgExec(context.Background(), "DROP PUBLICATION IF EXISTS "+id)
		}
	case sysFlinkCDC:
		r.topic = id
		sql, err := b.flinkCDCSQL(db, table, id)
		if err != nil {
			return nil, err
		}
		file := filepath.Join(r.dir, "job.sql")
		if err := os.WriteFile(file, []byte(sql), 0o644); err != nil {
			return nil, err
		}
		r.start = func() (*peerProc, error) {
			argv := append([]string{javaBin(), jvmHeap}, flinkJavaOpts...)
			argv = append(argv, "-cp", flinkClassPath(b.flinkCP, db), "io.cdcrelay.flinkcdc.Job",
				"-D", "restart-strategy.type=fixed-delay",
				"-D", "restart-strategy.fixed-delay.attempts=20",
				"-D", "restart-strategy.fixed-delay.delay=2s")
			argv = append(argv, b.flinkCheckpointArgs(r)...)
			return b.startPeerProc(id, append(argv, file))
		}
		r.state = func() (int64, string) {
			if r.checkpointed() {
				return fileBytes(filepath.Join(r.dir, "checkpoints")), "checkpoint directory"
			}
			return 0, "none (checkpoints off)"
		}
		r.cleanup = func() { b.dropSlot(context.Background(), id) }
	default:
		return nil, fmt.Errorf("unknown system %q", system)
	}
	// Created as the relay creates its topics, so that every setup writes
	// into the same kind of topic, and before the setup starts, so that a
	// watcher can take its position before the first record (cdcrelay
	// creates its topics on the first record).
	if err := b.createTopic(context.Background(), r.topic); err != nil {
		return nil, fmt.Errorf("create %s: %w", r.topic, err)
	}
	return r, nil
}

// flinkClassPath drops the CDC connector of the other database from cp:
// both fat jars shade their own Debezium under the same class names.
func flinkClassPath(cp, db string) string {
	other := "flink-sql-connector-postgres-cdc-"
	if db == "pg" {
		other = "flink-sql-connector-mysql-cdc-"
	}
	var keep []string
	for _, j := range filepath.SplitList(cp) {
		if !strings.HasPrefix(filepath.Base(j), other) {
			keep = append(keep, j)
		}
	}
	return strings.Join(keep, string(filepath.ListSeparator))
}

// checkpointed reports whether the Flink CDC job of r runs with
// checkpoints: when its directory holds a checkpoints folder.
func (r *peerRun) checkpointed() bool {
	_, err := os.Stat(filepath.Join(r.dir, "checkpoints"))
	return err == nil
}

// flinkCheckpointArgs turns on RocksDB incremental checkpoints for a run
// whose directory has a checkpoints folder, restoring from the newest
// retained checkpoint when there is one.
func (b *bench) flinkCheckpointArgs(r *peerRun) []string {
	if !r.checkpointed() {
		return nil
	}
	dir := filepath.Join(r.dir, "checkpoints")
	args := []string{
		// Flink reads "60s" or "1 min", not Go's "1m0s".
		"-D", fmt.Sprintf("execution.checkpointing.interval=%dms", b.checkpointEvery.Milliseconds()),
		"-D", "state.backend.type=rocksdb",
		"-D", "state.backend.incremental=true",
		"-D", "state.checkpoints.dir=file://" + dir,
		"-D", "execution.checkpointing.externalized-checkpoint-retention=RETAIN_ON_CANCELLATION",
	}
	if chk := latestCheckpoint(dir); chk != "" {
		args = append(args, "-D", "execution.savepoint.path=file://"+chk)
	}
	return args
}

// latestCheckpoint is the completed chk-N folder with the largest N under
// dir/<job id>/, or "".
func latestCheckpoint(dir string) string {
	metas, _ := filepath.Glob(filepath.Join(dir, "*", "chk-*", "_metadata"))
	best, bestN := "", -1
	for _, m := range metas {
		d := filepath.Dir(m)
		n, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(d), "chk-"))
		if err == nil && n > bestN {
			best, bestN = d, n
		}
	}
	return best
}

// writeDebeziumConf writes the Connect worker's and the connector's
// properties; connector is the class for MariaDB.
func (b *bench) writeDebeziumConf(r *peerRun, id, schema, connector string) error {
	worker := [][2]string{
		{"bootstrap.servers", b.brokerAddr},
		{"key.converter", "org.apache.kafka.connect.json.JsonConverter"},
		{"value.converter", "org.apache.kafka.connect.json.JsonConverter"},
		// cdcrelay's debezium-json carries no schema either.
		{"key.converter.schemas.enable", "false"},
		{"value.converter.schemas.enable", "false"},
		{"offset.storage.file.filename", filepath.Join(r.dir, "offsets")},
		{"listeners", fmt.Sprintf("http://127.0.0.1:%d", freePort())},
	}
	conn := [][2]string{{"name", id}, {"tasks.max", "1"}, {"topic.prefix", id}, {"snapshot.mode", "initial"}}
	if r.db == "pg" {
		cfg, err := pgx.ParseConfig(b.pgDSN)
		if err != nil {
			return err
		}
		conn = append(conn,
			[2]string{"connector.class", "io.debezium.connector.postgresql.PostgresConnector"},
			[2]string{"database.hostname", cfg.Host},
			[2]string{"database.port", strconv.Itoa(int(cfg.Port))},
			[2]string{"database.user", cfg.User},
			[2]string{"database.dbname", cfg.Database},
			[2]string{"plugin.name", "pgoutput"},
			[2]string{"slot.name", id},
			[2]string{"publication.name", id},
			[2]string{"publication.autocreate.mode", "filtered"},
			[2]string{"table.include.list", schema + "." + r.table})
	} else {
		conn = append(conn,
			[2]string{"connector.class", connector},
			[2]string{"database.hostname", b.my.Host},
			[2]string{"database.port", strconv.Itoa(b.my.Port)},
			[2]string{"database.user", "root"},
			[2]string{"database.server.id", strconv.Itoa(100000 + rand.IntN(100000))},
			[2]string{"database.include.list", schema},
			[2]string{"table.include.list", schema + "." + r.table},
			[2]string{"schema.history.internal", "io.debezium.storage.file.history.FileSchemaHistory"},
			[2]string{"schema.history.internal.file.filename", filepath.Join(r.dir, "history")})
	}
	if err := writeProps(filepath.Join(r.dir, "worker.properties"), worker); err != nil {
		return err
	}
	return writeProps(filepath.Join(r.dir, "connector.properties"), conn)
}

// flinkCDCSQL is the Flink SQL job that copies table into the Kafka topic
// id with the debezium-json format, as the setup cdcrelay replaces did.
func (b *bench) flinkCDCSQL(db, table, id string) (string, error) {
	var src string
	if db == "pg" {
		cfg, err := pgx.ParseConfig(b.pgDSN)
		if err != nil {
			return "", err
		}
		// timestamptz arrives as Debezium's ISO-8601 string; STRING keeps it
		// as it is rather than guess a zone.
		src = fmt.Sprintf(`CREATE TABLE src (
  id BIGINT, customer STRING, status STRING, qty INT, amount DECIMAL(12,2),
  created_at STRING, updated_at STRING, note STRING, payload STRING,
  PRIMARY KEY (id) NOT ENFORCED
) WITH (
  'connector' = 'postgres-cdc', 'hostname' = '%s', 'port' = '%d',
  'username' = '%s', 'password' = '', 'database-name' = '%s',
  'schema-name' = 'public', 'table-name' = '%s',
  'slot.name' = '%s', 'decoding.plugin.name' = 'pgoutput'
);
`, cfg.Host, cfg.Port, cfg.User, cfg.Database, table, id)
	} else {
		src = fmt.Sprintf(`CREATE TABLE src (
  id BIGINT, customer STRING, status STRING, qty INT, amount DECIMAL(12,2),
  created_at TIMESTAMP(6), updated_at TIMESTAMP(6), note STRING, payload STRING,
  PRIMARY KEY (id) NOT ENFORCED
) WITH (
  'connector' = 'mysql-cdc', 'hostname' = '%s', 'port' = '%d',
  'username' = 'root', 'password' = '', 'database-name' = 'bench',
  'table-name' = '%s', 'server-id' = '%d', 'server-time-zone' = 'UTC'
);
`, b.my.Host, b.my.Port, table, 200000+rand.IntN(100000))
	}
	sink := fmt.Sprintf(`CREATE TABLE sink (
  id BIGINT, customer STRING, status STRING, qty INT, amount DECIMAL(12,2),
  created_at %[3]s, updated_at %[3]s, note STRING, payload STRING
) WITH (
  'connector' = 'kafka', 'topic' = '%[1]s',
  'properties.bootstrap.servers' = '%[2]s',
  'key.format' = 'json', 'key.fields' = 'id', 'value.format' = 'debezium-json'
);
INSERT INTO sink SELECT * FROM src;
`, id, b.brokerAddr, map[bool]string{true: "STRING", false: "TIMESTAMP(6)"}[db == "pg"])
	return src + sink, nil
}

// markerSQL inserts one row with id $1 whose note is $2
// (resumeMarker-id).
func markerSQL(db, table string) string {
	if db == "pg" {
		return `INSERT INTO public.` + table + ` VALUES ($1, 'marker', 'new', 1, 1.25, now(), now(), $2, 'x')`
	}
	return `INSERT INTO bench.` + table + ` VALUES (?, 'marker', 'new', 1, 1.25, NOW(6), NOW(6), ?, 'x')`
}

// markerUpdateSQL sets the note of row 1 to $1 (resumeMarker-N). A snapshot
// emits row 1 once, with the note it finds; a second marker value in the
// topic was therefore streamed.
func markerUpdateSQL(db, table string) string {
	if db == "pg" {
		return `UPDATE public.` + table + ` SET note = $1 WHERE id = 1`
	}
	return `UPDATE bench.` + table + ` SET note = ? WHERE id = 1`
}

// resumeMarker starts the note of the marker rows; its bytes in a record
// value show a marker arrived, whatever the encoding.
const resumeMarker = "resume-marker-"

// tableReadsOf counts the rows read from table so far: pg_stat_user_tables
// for PostgreSQL, userstat's TABLE_STATISTICS for MariaDB.
func (b *bench) tableReadsOf(ctx context.Context, db, table string) (int64, error) {
	if db == "pg" {
		return b.tableReads(ctx, table)
	}
	c, err := b.myConn()
	if err != nil {
		return 0, err
	}
	defer c.Close()
	res, err := c.Execute("SELECT COALESCE(SUM(ROWS_READ), 0) FROM information_schema.TABLE_STATISTICS WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = ?", table)
	if err != nil {
		return 0, err
	}
	return res.GetInt(0, 0)
}

// dropPeerRun removes what one run of a setup left behind once it is
// measured: its table, its topics (id, id.*, id_sink) unless keepTopics,
// and on MariaDB the binary logs before the current one, which no later run
// reads (each starts on a table of its own, at the current position).
// 1,000,000-row runs leave about 1 GB in each of the database, its log and
// Kafka; kept, the runs of make bench-peers would need some 60 GB of disk.
func (b *bench) dropPeerRun(ctx context.Context, db, id string, keepTopics bool) {
	var errs []error
	if db == "pg" {
		errs = append(errs, b.pgExec(ctx, "DROP TABLE IF EXISTS public."+id))
	} else {
		errs = append(errs, b.myExec("DROP TABLE IF EXISTS bench."+id, "PURGE BINARY LOGS BEFORE NOW()"))
	}
	if !keepTopics {
		errs = append(errs, b.deleteTopicsWhere(ctx, func(t string) bool {
			return t == id || t == id+"_sink" || strings.HasPrefix(t, id+".")
		}))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintf(os.Stderr, "bench: clean up after %s: %v\n", id, err)
	}
}

// fillPeerTable creates table in db with rows 1..n.
func (b *bench) fillPeerTable(ctx context.Context, db, table string, n int) error {
	if db == "pg" {
		if err := b.pgExec(ctx, tableDDL(table)); err != nil {
			return err
		}
		return b.fillTable(ctx, table, n)
	}
	if err := b.myExec(fmt.Sprintf(myTableDDL, table)); err != nil {
		return err
	}
	for lo := 1; lo <= n; lo += 100000 {
		if err := b.myExec(myInsertSQL(table, int64(lo), int64(min(n, lo+99999)))); err != nil {
			return err
		}
	}
	return nil
}

// writeMarkers updates row 1 to a new marker value every 200 ms, values
// from 1 on, until stop is closed; it returns how many it wrote.
func (b *bench) writeMarkers(ctx context.Context, db, table string, stop <-chan struct{}) (int64, error) {
	q := markerUpdateSQL(db, table)
	var n int64
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		n++
		note := fmt.Sprintf("%s%d", resumeMarker, n)
		var err error
		if db == "pg" {
			err = b.pgExec(ctx, q, note)
		} else {
			c, cerr := b.myConn()
			if cerr != nil {
				return n, cerr
			}
			_, err = c.Execute(q, note)
			c.Close()
		}
		if err != nil {
			return n, err
		}
		select {
		case <-stop:
			return n, nil
		case <-ctx.Done():
			return n, ctx.Err()
		case <-tick.C:
		}
	}
}

// peerID names the table, topic, slot and state of one measurement: SQL
// and Kafka names alike, so no hyphen.
func peerID(scenario, system, db string) string {
	return strings.ReplaceAll(scenario+"_"+system+"_"+db, "-", "_")
}
