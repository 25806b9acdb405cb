package relay

import (
	"context"

	"github.com/cdcrelay/cdcrelay/change"
)

// Source is a database change stream that the relay drains into Kafka.
//
// Concurrency contract: the relay calls Run from one goroutine and may call
// Ack from another while Run is running. Run is called again, with a newer or
// equal resume state, after the relay restarts its loop (an outcome-unknown
// Kafka error, a lost broker); a source must support any number of Run calls
// in sequence, never two at once.
type Source interface {
	// Run streams changes that come after resume, the State of the last
	// checkpoint committed to Kafka and the parts committed up to it (nil
	// when nothing was ever committed), and sends them to out in source order until ctx is done or a fatal
	// error occurs. It returns nil only when ctx is done.
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

// TableLister is a Source that can list the tables it captures. The relay
// calls Tables at the start of each session, before Run, and creates their
// missing topics many per request, rather than one request per table at its
// first event; the source is not running yet, so a long wait for the
// broker keeps nothing of it waiting. Tables may be called from the
// goroutine that calls Run, never at the same time as Run.
type TableLister interface {
	Tables(ctx context.Context) ([]change.TableID, error)
}

// FatalError is an error after which retrying cannot help: the relay stops
// and the process exits non-zero with its message.
type FatalError struct{ Err error }

func (e *FatalError) Error() string { return e.Err.Error() }
func (e *FatalError) Unwrap() error { return e.Err }

// Fatal wraps err in a *FatalError.
func Fatal(err error) error {
	if err == nil {
		return nil
	}
	return &FatalError{Err: err}
}
