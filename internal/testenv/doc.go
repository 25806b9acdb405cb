// Package testenv starts throwaway PostgreSQL, MariaDB and Kafka servers
// for integration tests, each on its own free port in its own directory
// under the system temp dir, and stops and removes them when the test ends.
//
// Kafka is Apache Kafka unless CDCRELAY_TEST_KAFKA=dev picks the embedded
// dev broker (cdcrelay-devbroker, franz-go's kfake); see StartBroker.
// Apache Kafka runs from the jars the Maven project deploy/jvm/kafka names
// (Kafka 4.2.0, as docker-compose.yml, and a log4j2 binding), resolved by mvn once into a cache
// (Jars) and started as `java -cp … kafka.Kafka server.properties` after
// `kafka.tools.StorageTool format`: one JVM per KRaft node, broker and
// controller combined, with a 512 MiB heap and the serial collector. A
// single node or a three-node cluster (StartKafkaCluster: replication
// factor 3, min.insync.replicas=2) is formatted and serving metadata a few
// seconds after the call: on the 2-core test machine, with other tests
// loading it, one node took 3.0 to 6.6 s and three nodes 15 to 29 s
// (`go test -run 'TestBroker/apache|TestKafkaCluster' -v ./internal/testenv`
// logs both).
//
// Invariant: every server a test starts is gone when that test's cleanups
// have run, whether the test passed, failed or called t.Fatal; and if the
// test binary itself dies, the kernel kills the servers (parent-death
// signal).
//
// The servers refuse to run as root, so PostgreSQL and MariaDB run as the
// unprivileged user nobody (uid and gid 65534) when the test runs as root, in
// a directory owned by nobody. Both brokers run as the test's own user.
//
// Each Start function that takes a testing.TB is a thin wrapper over a New
// function that returns an error and takes an Env: a testing.TB, or for a
// program such as the bench command, a *Cleanups that stops everything on
// Close. A missing program is then a *MissingError.
//
// Every kind of server is a server underneath: one process in its own
// process group, a log, a port, and Stop (a clean shutdown), Kill (SIGKILL
// of the whole group), Start and Restart.
//
// They are tuned for speed, not durability: PostgreSQL runs with fsync=off
// and MariaDB with innodb_flush_log_at_trx_commit=2 and sync_binlog=0, so a
// SIGKILL of the server loses nothing committed but a machine crash would.
//
// A PostgreSQL primary can get hot standbys (StartPGStandby): a base backup
// taken with pg_backup_start and pg_backup_stop, streaming through a
// physical slot on the primary; a standby waits for replay (CatchUp) and
// becomes a primary with Promote.
//
// Server directories are named cdcrelay-env-<kind>-<pid>-*, after the test
// process that owns them. A test binary that panics or times out runs no
// cleanups; the next test process to start a server removes the directories
// of such dead processes.
//
// A missing server binary (or java, or mvn) makes the test skip, or fail
// when the environment variable CI is set; see Require. Set CDCRELAY_TESTENV_KEEP=1 to keep the
// directories (data and logs) of failed tests.
//
// The values returned here are not safe for concurrent use: start, stop and
// restart a server from one goroutine. Distinct servers are independent, and
// tests using them may run in parallel.
package testenv
