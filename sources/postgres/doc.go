// Package postgres is the PostgreSQL source: it reads a logical replication
// slot with pgoutput (protocol version 1), turns each row change into a
// change.Event, and takes the initial snapshot in key-ordered chunks
// interleaved with the stream (see package snapshot).
//
// Invariant: the slot is confirmed only up to a position that Kafka has
// committed. Standby status updates report the last acked checkpoint LSN as
// written, flushed and applied, all three set explicitly, never what was
// merely received.
//
// # Checkpoint state
//
// Checkpoint.State is this JSON object:
//
//		{"v":1, "lsn":"0/16B3748", "system_id":"7301...", "timeline":1,
//		 "slot":"cdcrelay_orders",
//		 "snapshot":{"queue":[{"table":"\"public\".\"orders\"","last_key":["41000"],"rows":41000,"chunks":41}],
//		             "done":["\"public\".\"customers\""]}}
//
//	  - v: layout version, 1.
//	  - lsn: end LSN of the commit of the last source transaction whose events
//	    are all before this checkpoint. A resume starts replication there and
//	    drops every transaction whose commit LSN is below it (PostgreSQL
//	    resends some after a reconnect).
//	  - system_id, timeline: IDENTIFY_SYSTEM at the time; a resume on another
//	    cluster is refused, and on another timeline unless that timeline's
//	    history shows the stored lsn before the switch (a promoted standby
//	    with a synchronized failover slot).
//	  - slot: the replication slot the position belongs to.
//	  - snapshot.queue: tables still to snapshot, in order; last_key is the
//	    text of each key column of the last row of the last finished chunk
//	    (absent before the first chunk), rows and chunks count finished work.
//	  - snapshot.done: tables whose snapshot finished. A captured table with a
//	    primary key in neither list is new, and is snapshotted.
//	  - Once queue and done outgrow 512 bytes, the tables go apart for good
//	    (snapshot.apart): each one's place in the queue or finished snapshot
//	    is a part of its own (see snapshot.State), and snapshot keeps only
//	    the table being read, with snapshot.waiting and snapshot.finished
//	    counts. Run gets the parts with the state.
//
// # Choices
//
//   - Identity: with REPLICA IDENTITY FULL, before is the full old row. With
//     DEFAULT, before holds the key columns only (the others are absent),
//     which Flink's debezium-json reads as nulls; Check warns about it.
//   - TOAST: an unchanged TOASTed value is taken from the old row under FULL
//     identity, and is otherwise absent from after (a nil value, omitted by
//     the encoder), never a placeholder.
//   - Key changes: an update that changes the primary key becomes a delete
//     of the old key followed by an insert of the new one.
//   - TRUNCATE follows format.truncate: skip (a warning with the table and
//     LSN, and a count), event (an OpTruncate event, which the encoder
//     writes as a null-valued record Flink's debezium-json skips), or fail
//     (a fatal error before it).
//   - Big transactions stream through: events go to the relay as they are
//     decoded, and the only checkpoint is at the commit, so one source
//     transaction is one Kafka transaction (mind kafka.transaction_timeout).
//   - A lost replication or SQL connection ends Run with a non-fatal error;
//     the relay calls Run again with the last committed state. Connecting
//     retries inside Run with jittered exponential backoff up to 10s while
//     the server is down, the role is at its connection limit, or the slot is
//     still held by the previous session.
//   - Transactions that touch no captured table are checkpointed at most once
//     per heartbeat interval (10s when heartbeats are off), so the slot does
//     not pin WAL; heartbeats (pg_logical_emit_message) make that happen when
//     the database is idle for us but busy otherwise.
//   - Keyless tables (source.keyless) need REPLICA IDENTITY FULL and are keyed
//     by the whole row; they are snapshotted through a unique index on NOT
//     NULL columns (tableMeta.chunk), and refused when a snapshot is wanted
//     and they have none.
//   - source.key_columns chooses the Kafka key (relation.kafka); the snapshot
//     key stays the primary key or unique index (relation.chunk).
package postgres
