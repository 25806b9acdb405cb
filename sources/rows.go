package sources

import (
	"context"
	"fmt"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources/snapshot"
)

// RowReader reads the captured tables of a source in primary-key order,
// through the code its snapshot reads chunks with, so that each row is
// encoded exactly as the stream encodes it. verify compares tables with
// their topics through it. Its methods are called from one goroutine.
type RowReader interface {
	// Tables returns the captured tables that exist now, with their
	// columns and primary keys.
	Tables(ctx context.Context) ([]change.TableSchema, error)
	// ReadChunk returns up to limit rows of table whose key is greater
	// than after (the Key of the last row of the previous call; nil for the
	// first), in key order, as op=r events with Key and After set. A table
	// that cannot be read this way is refused with a *RefusedError.
	ReadChunk(ctx context.Context, table change.TableID, after snapshot.Key, limit int) ([]snapshot.Row, error)
	// Estimate returns the approximate number of rows of table, for
	// progress lines; 0 when unknown. It refuses a table as ReadChunk does.
	Estimate(ctx context.Context, table change.TableID) (int64, error)
	// ReadKeys returns the current rows of the given keys (event Key
	// bytes); absent keys are left out.
	ReadKeys(ctx context.Context, table change.TableID, keys [][]byte) ([]*change.Event, error)
	// Mark returns the source's current log position and a predicate on
	// position labels (an offsets record's Position, or a record's
	// cdcrelay.position header): true when the label is at or past it.
	Mark(ctx context.Context) (label string, reached func(position string) bool, err error)
	Close() error
}

// RefusedError says why a table cannot be read in key order, e.g. it has
// no primary key or a column of a type that cannot be compared.
type RefusedError struct {
	Table  change.TableID
	Reason string
}

func (e *RefusedError) Error() string { return fmt.Sprintf("%s: %s", e.Table, e.Reason) }
