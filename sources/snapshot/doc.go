// Package snapshot is the chunked, watermark-based table snapshot that both
// database sources run interleaved with their change stream (the DBLog
// algorithm). It is database-neutral: a source supplies a Dialect (write a
// watermark into its own change stream, read one key-ordered chunk) and a
// key comparator per table, and feeds the Snapshotter every watermark and
// every row change it decodes.
//
// Invariant: every key's versions reach Kafka at most once each and in
// increasing order, and a table's existing rows are read once in total,
// whatever the crashes, because chunk progress is committed in the same
// Kafka transaction as the chunk's rows.
//
// # The algorithm
//
// A table being snapshotted has a last key L: every key <= L is covered by a
// finished chunk whose rows are committed in Kafka (L is nil before the first
// chunk). One chunk goes like this:
//
//  1. the source writes a low watermark into its change stream;
//  2. it reads the next chunk, SELECT ... WHERE key > L ORDER BY key LIMIT n+1,
//     so that it knows whether this is the last chunk; the chunk covers the
//     key range (L, H], H being the n-th key, or +inf for the last chunk;
//  3. it writes a high watermark;
//  4. while the stream is between the two watermarks (the window), the keys
//     of the table's changes that fall in (L, H] are recorded;
//  5. at the high watermark the chunk rows whose keys were not recorded are
//     emitted as op=r, L becomes H, and the source sends a checkpoint whose
//     state holds the new progress.
//
// Stream events are filtered by Admit:
//
//   - table not being snapshotted: emit;
//   - key <= L: emit (the key's r row is already in Kafka, this is a later
//     version);
//   - inside the window and key in (L, H]: emit, and record the key so its
//     chunk row is dropped;
//   - otherwise (key > L, outside the window or beyond H): drop; a later
//     chunk, read after this change committed, sees its effect.
//
// # Why no version is repeated or lost
//
// The chunk query runs after the low watermark committed and before the high
// watermark was written, so it sees exactly the transactions that commit
// before it started: all of those before the low watermark, and a prefix of
// those in the window. Logical decoding delivers transactions in commit
// order, so every transaction after the high watermark is invisible to it.
// This needs every transaction before the low watermark in the stream to
// be visible to the chunk query. Where the database makes a commit visible
// only some time after it enters the stream (PostgreSQL), the source checks
// at the low watermark that the chunk's read saw every transaction the
// stream delivered before it; if not, it calls Abandon before any change
// enters the window, and the chunk is read again from the same key.
//
// Take a key k in (L, H].
//
//   - k not changed in the window: the chunk row is k's state at the high
//     watermark. All earlier changes of k were dropped (k > L then), all later
//     ones come after the r row. So k's first event is its r row and every
//     later version follows once, in order.
//   - k changed in the window: its chunk row is dropped, even when the chunk
//     already saw that change (which would otherwise repeat the version). The
//     window changes are emitted in stream order, so k's first event is its
//     first change inside the window, and later versions follow in order.
//     Versions of k from before the window were never emitted, so nothing
//     repeats; the consumer's state for k is exact from that event on.
//   - k > H: nothing is emitted until a later chunk covers it.
//
// A checkpoint is never sent while a window is open: the window's stream
// events and the chunk rows commit to Kafka together with the progress that
// covers them. A crash therefore resumes either before the low watermark
// (the window is replayed with no chunk in flight, so its events on keys > L
// are dropped again, and the chunk is read anew) or after the high
// watermark (L already includes the chunk). A watermark whose id does not
// belong to the chunk in flight, such as one written by a run that has since
// died, is ignored.
//
// A dialect may place both watermarks of a chunk at one stream point P
// when its chunk query reads a view that matches P exactly, as MariaDB's
// consistent read does with its binlog position (MySQL binlog mode). The
// window is then empty and the chunk sees exactly the transactions before
// P, which is the case above with no change of k in the window; nothing is
// written to the database. The source must hand both marks over before
// the first change after P, and drop the chunk when it has already passed
// P.
//
// A key change (an update of the primary key) must be fed as a delete of the
// old key and an insert of the new one, each passing through Admit.
//
// Keys are compared with the table's Compare, which must order keys exactly
// as the chunk query's ORDER BY does; the dialect chooses collations and
// types so that this holds, or refuses the table.
package snapshot
