// Package testenv starts throwaway PostgreSQL, MariaDB and dev-broker
// servers for integration tests, each on its own free port in its own
// directory under the system temp dir, and stops and removes them when the
// test ends.
//
// Invariant: every server a test starts is gone when that test's cleanups
// have run, whether the test passed, failed or called t.Fatal; and if the
// test binary itself dies, the kernel kills the servers (parent-death
// signal).
//
// The servers refuse to run as root, so PostgreSQL and MariaDB run as the
// unprivileged user nobody (uid and gid 65534) when the test runs as root, in
// a directory owned by nobody. The dev broker runs as the test's own user.
//
// They are tuned for speed, not durability: PostgreSQL runs with fsync=off
// and MariaDB with innodb_flush_log_at_trx_commit=2 and sync_binlog=0, so a
// SIGKILL of the server loses nothing committed but a machine crash would.
//
// Server directories are named cdcrelay-env-<kind>-<pid>-*, after the test
// process that owns them. A test binary that panics or times out runs no
// cleanups; the next test process to start a server removes the directories
// of such dead processes.
//
// A missing server binary makes the test skip, or fail when the environment
// variable CI is set; see Require. Set CDCRELAY_TESTENV_KEEP=1 to keep the
// directories (data and logs) of failed tests.
//
// The values returned here are not safe for concurrent use: start, stop and
// restart a server from one goroutine. Distinct servers are independent, and
// tests using them may run in parallel.
package testenv
