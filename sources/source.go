package sources

import (
	"context"

	"github.com/cdcrelay/cdcrelay/change"
)

// Source is a database source: the change stream the relay drains into
// Kafka (Stream), and what the commands need around it (preflight, setup,
// schemas, on-demand snapshots, and the reader verify compares tables
// through).
//
// Concurrency contract: Stream's methods follow its own contract. The
// other methods may be called from any goroutine, while Run is not running
// or at the same time as it; each opens its own connection when it needs
// one. Close is called once, last, when no other method is running.
type Source interface {
	Stream

	// Check runs the read-only preflight: the server settings, privileges
	// and captured tables the source needs, each graded in the Report. An
	// error means the checks could not run at all (e.g. no connection).
	Check(ctx context.Context) (Report, error)

	// Setup creates what the source needs on the server (a publication and
	// a replication slot, a watermark table) when it is missing, and never
	// leaves anything half-created. resuming says whether a position is
	// stored for this source: then server-side state that a stored position
	// depends on (a replication slot) is not created again, so that its
	// loss is reported by Run instead of papered over.
	Setup(ctx context.Context, resuming bool) error

	// Describe returns the schema of every captured table that exists now.
	Describe(ctx context.Context) ([]change.TableSchema, error)

	// RequestSnapshot asks a running relay of this source to snapshot one
	// captured table (schema.table or database.table) again, in order with
	// the changes streamed around it.
	RequestSnapshot(ctx context.Context, table string) error

	// OpenRowReader opens the reader through which verify reads the
	// captured tables in primary-key order. The caller closes it.
	OpenRowReader(ctx context.Context) (RowReader, error)

	// Close releases what the source holds (its open connections).
	Close() error
}

// Stream is the part of a Source that the relay drives: a database change
// stream drained into Kafka.
//
// Concurrency contract: the relay calls Run from one goroutine and may call
// Ack from another while Run is running. Run is called again, with a newer or
// equal resume state, after the relay restarts its loop (an outcome-unknown
// Kafka error, a lost broker); a source must support any number of Run calls
// in sequence, never two at once.
type Stream interface {
	// Run streams changes that come after resume, the State of the last
	// checkpoint committed to Kafka and the parts committed up to it (nil
	// when nothing was ever committed), and sends them to out in source
	// order until ctx is done or a fatal error occurs. It returns nil only
	// when ctx is done.
	//
	// Every event must be followed, eventually, by a Checkpoint whose State
	// resumes right after it; a checkpoint may only be sent at a source
	// transaction boundary (and a snapshot chunk boundary). Events of one
	// key must be sent in the order the source applied them.
	//
	// Run must not hold more than a bounded amount of memory, whatever the
	// size of a source transaction: it blocks on out instead.
	//
	// An error that a restart cannot fix (the stored position cannot be
	// resumed, a setting is wrong) must be returned wrapped in a *FatalError,
	// so the relay exits instead of retrying.
	Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error

	// Ack reports that every message up to and including cp is committed
	// in Kafka, so the source may let the database discard it (PostgreSQL:
	// the standby status update). It must not block.
	//
	// After Ack the source may also reuse the memory of the events sent
	// before cp (the structs, keys, rows and positions): the relay keeps no
	// reference to them once encoded. The strings of an event's Source are
	// the exception: they must stay as they are, since the encoder compares
	// them with the next events' to reuse the encoded source block. Whoever
	// keeps events longer than the ack copies them (change.Event.Clone).
	Ack(cp *change.Checkpoint)
}

// TableLister is a Stream that can list the tables it captures. The relay
// calls Tables at the start of each session, before Run, and creates their
// missing topics many per request, in the listed order and in the
// background while Run goes on, rather than one request per table at its
// first event; an event waits only for its own topic's batch. A source that
// snapshots its tables in the listed order thus starts at once. Tables may
// be called from the goroutine that calls Run, never at the same time as
// Run.
type TableLister interface {
	Tables(ctx context.Context) ([]change.TableID, error)
}
