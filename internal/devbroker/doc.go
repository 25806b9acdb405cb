// Package devbroker runs a one-node, Kafka-compatible broker for demos and
// tests, built on franz-go's kfake library. Transactions and read_committed
// fetches work, which is all the relay needs; replication, quotas and most
// operational features of a real cluster do not exist.
//
// Invariant: a Broker advertises exactly the address clients should dial,
// and with a DataDir it reloads everything it stored before answering its
// first request.
//
// # Not for production
//
// Without a DataDir every record lives in the Go heap until the process
// exits. With a DataDir the record bytes live in segment files, but an index
// entry per record batch stays in memory, every segment is read back in full
// at start. Compaction and retention are off unless Config.CompactInterval
// is set: kfake's compaction, unlike Kafka's, does not stop at the last
// stable offset, so a key written by a transaction that is still open can
// replace the older committed value, which is then lost if that transaction
// aborts. Topics keep cleanup.policy=compact in their config; it is simply
// not applied.
//
// # Durability
//
// With a DataDir, the broker appends each produced batch (transaction
// markers included) to its partition's segment and index files before it
// answers the produce or EndTxn request. Producer ids and transaction ends go
// to pids.log and consumer offset commits to groups.log, also before the
// answer. Topic creation and config changes rewrite topics.json through a
// synced temporary file and a rename.
//
//   - Without SyncWrites these appends reach the operating system's page
//     cache but are not fsynced (segments are synced when they roll and at a
//     clean shutdown). Killing the broker with SIGKILL loses nothing it
//     acknowledged, because the kernel still holds the data. A machine crash
//     or power loss can lose any recent write, in any order across files,
//     including some but not all of a transaction's markers.
//   - With SyncWrites each append is fsynced before the answer, so what the
//     broker acknowledged also survives a machine crash. Directories are not
//     fsynced, so a partition or segment file created just before a power loss
//     can still disappear.
//
// After a SIGKILL the broker rebuilds each partition by replaying its
// segments. Before kfake loads them, Start repairs what the kill left half
// written and ends every transaction the kill left open, as Kafka's
// transaction coordinator does after a restart:
//
//   - A partial batch at the end of a segment is cut off, and a batch whose
//     index entry was never written gets one. Without the entry kfake would
//     load the batch as one outside any transaction and serve an open
//     transaction's records to read_committed readers.
//   - A transaction whose commit had begun is committed in every partition
//     still missing its marker. kfake writes a commit's markers one
//     partition after the other; the broker first writes the decision to
//     txn-decision in the data directory (fsynced with SyncWrites) and
//     clears it once the markers are all written. So a kill between two
//     markers cannot leave a transaction committed in some partitions and
//     aborted in others.
//   - Any other transaction that has records but no marker is aborted: the
//     broker writes its ABORT marker, without which read_committed readers
//     would skip every later record of that producer id, and kfake bumps
//     the producer's epoch. The producer that had the transaction open gets
//     an error (INVALID_TXN_STATE from franz-go's EndTransaction) and must
//     be replaced by a new one with the same transactional id, which
//     initialises and goes on.
//
// Kept only across a clean shutdown (Close, or SIGTERM to the dev-broker
// command): consumer group membership, open transactions, fetch sessions,
// and a log start offset moved by DeleteRecords (after a SIGKILL, records
// deleted from the middle of a batch can reappear).
//
// # Where it differs from Apache Kafka
//
// Apache Kafka is the reference: the relay follows Kafka's documented
// behaviour, and the tests run on Kafka by default (CDCRELAY_TEST_KAFKA). The
// differences the tests have met:
//
//   - Fencing: an EndTxn from a producer whose epoch another instance's
//     InitProducerID has just bumped is answered INVALID_TXN_STATE more
//     often than on Kafka, which mostly answers PRODUCER_FENCED and answers
//     INVALID_TXN_STATE only when the takeover races the EndTxn. The relay
//     takes both as fenced in an undisturbed session.
//   - Transaction timeouts: after the broker aborts a transaction that
//     outlasted its timeout, the next instance with the same transactional
//     id is answered as fenced when it commits; Kafka lets it go on.
//   - Transaction state lives in pids.log, not in a replicated
//     __transaction_state topic, and records are indexed in the heap.
//
// # SASL users
//
// The users in Config are the whole truth on every start: users stored in the
// data directory by an earlier run (including ones changed through
// AlterUserScramCredentials) are dropped at start and the store is removed at
// Close, because kfake writes PLAIN passwords to it in clear text.
package devbroker
