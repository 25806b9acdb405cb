package gensource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cdcrelay/cdcrelay/change"
	"github.com/cdcrelay/cdcrelay/sources"
)

// Params shape the generated stream.
type Params struct {
	Txns     int           // transactions to generate; 0 = without end
	PerTxn   int           // events per transaction
	Keys     int           // distinct keys; events cycle through them
	Interval time.Duration // pause between transactions; 0 = as fast as possible
	Payload  int           // bytes of filler in each row
	// Runs sends each transaction's events as runs (Message.Events), as
	// sources send snapshot chunks, instead of one message per event.
	Runs bool
}

// ParseParams reads Params from a DSN such as
// testgen://gen@local/gen?txns=100&per_txn=10&keys=50&interval=1ms&payload=200.
func ParseParams(dsn string) (Params, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return Params{}, err
	}
	p := Params{Txns: 100, PerTxn: 10, Keys: 50}
	q := u.Query()
	for name, dst := range map[string]*int{"txns": &p.Txns, "per_txn": &p.PerTxn, "keys": &p.Keys, "payload": &p.Payload} {
		if v := q.Get(name); v != "" {
			if *dst, err = strconv.Atoi(v); err != nil {
				return Params{}, fmt.Errorf("testgen dsn %s: %w", name, err)
			}
		}
	}
	if v := q.Get("interval"); v != "" {
		if p.Interval, err = time.ParseDuration(v); err != nil {
			return Params{}, fmt.Errorf("testgen dsn interval: %w", err)
		}
	}
	return p, nil
}

// Table is the table every generated event belongs to.
var Table = change.TableID{Namespace: "gen", Name: "items"}

// State is the checkpoint state: the last transaction fully sent.
type State struct {
	Txn int `json:"txn"`
}

var _ sources.Source = (*Source)(nil)

// Source generates the stream. Acked holds the last acked transaction.
type Source struct {
	p     Params
	Acked atomic.Int64
	names []string
}

// New returns a generator.
func New(p Params) *Source {
	return &Source{p: p, names: []string{"id", "txn", "i", "pad"}}
}

// KeyOf returns the key id of event i of transaction n.
func (s *Source) KeyOf(n, i int) int { return ((n-1)*s.p.PerTxn + i) % s.p.Keys }

// Run implements sources.Stream.
func (s *Source) Run(ctx context.Context, resume *change.Resume, out chan<- change.Message) error {
	var st State
	if resume != nil && len(resume.State) > 0 {
		if err := json.Unmarshal(resume.State, &st); err != nil {
			return fmt.Errorf("gensource: bad resume state %s: %w", resume.State, err)
		}
	}
	pad := change.String(strings.Repeat("x", s.p.Payload))
	for n := st.Txn + 1; s.p.Txns == 0 || n <= s.p.Txns; n++ {
		now := time.Now()
		var run []*change.Event
		for i := 0; i < s.p.PerTxn; i++ {
			id := []byte(strconv.Itoa(s.KeyOf(n, i)))
			after := &change.Row{Names: s.names, Values: [][]byte{id, []byte(strconv.Itoa(n)), []byte(strconv.Itoa(i)), pad}}
			ev := &change.Event{
				Table: Table, Op: change.OpUpdate,
				Key:   change.EncodeKey(s.names[:1], [][]byte{id}),
				After: after,
				Source: change.Source{Connector: "postgresql", Name: "gen", DB: "gen", Schema: "gen", Table: "items",
					TsMs: now.UnixMilli(), LSN: uint64(n), TxID: uint32(n)},
			}
			if s.p.Runs {
				run = append(run, ev)
				continue
			}
			select {
			case out <- change.Message{Event: ev}:
			case <-ctx.Done():
				return nil
			}
		}
		err := change.SendRuns(run, func(m change.Message) error {
			select {
			case out <- m:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		if err != nil {
			return nil
		}
		state, _ := json.Marshal(State{Txn: n})
		cp := &change.Checkpoint{State: state, CommitTime: now, Label: "txn " + strconv.Itoa(n), LSN: uint64(n)}
		select {
		case out <- change.Message{Checkpoint: cp}:
		case <-ctx.Done():
			return nil
		}
		if s.p.Interval > 0 {
			select {
			case <-time.After(s.p.Interval):
			case <-ctx.Done():
				return nil
			}
		}
	}
	<-ctx.Done()
	return nil
}

// Ack implements sources.Stream.
func (s *Source) Ack(cp *change.Checkpoint) {
	var st State
	if json.Unmarshal(cp.State, &st) == nil {
		s.Acked.Store(int64(st.Txn))
	}
}

// The generator has no database: its preflight finds nothing, it needs no
// setup, and it declares no table schemas. What only a database can do
// (snapshot a table again, read rows for verify) is refused.

// Check implements sources.Source: nothing to check.
func (s *Source) Check(context.Context) (sources.Report, error) { return nil, nil }

// Setup implements sources.Source: nothing to create.
func (s *Source) Setup(context.Context, bool) error { return nil }

// Describe implements sources.Source: no schemas.
func (s *Source) Describe(context.Context) ([]change.TableSchema, error) { return nil, nil }

// RequestSnapshot implements sources.Source by refusing: a generator has no
// table to read again.
func (s *Source) RequestSnapshot(context.Context, string) error {
	return errors.New("testgen: a generator has no table to snapshot")
}

// OpenRowReader implements sources.Source by refusing: a generator has no
// table for verify to read.
func (s *Source) OpenRowReader(context.Context) (sources.RowReader, error) {
	return nil, errors.New("testgen: verify cannot read a generator")
}

// Close implements sources.Source: nothing to release.
func (s *Source) Close() error { return nil }
