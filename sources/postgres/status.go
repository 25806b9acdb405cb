package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pglogrepl"

	"github.com/cdcrelay/cdcrelay/change"
)

// clock holds when the stream's periodic work is next due: the standby
// status update with the lag poll, the heartbeat, and the checkpoint of a
// stream whose transactions send nothing.
type clock struct {
	nextStatus    time.Time
	nextHeartbeat time.Time // zero without source.heartbeat_interval
	sentAck       uint64    // the LSN the last status update reported
	lastCkpt      time.Time
	idleEvery     time.Duration
	tick          *time.Ticker // wakes send while the relay is busy
}

func newClock(now time.Time, heartbeat time.Duration) clock {
	c := clock{nextStatus: now, lastCkpt: now, idleEvery: heartbeat, tick: time.NewTicker(time.Second)}
	if c.idleEvery <= 0 {
		c.idleEvery = statusInterval
	}
	if heartbeat > 0 {
		c.nextHeartbeat = now.Add(heartbeat)
	}
	return c
}

// statusDue reports whether a standby status update is due at now: the
// relay has acked more than the last one reported, or the interval is up.
func (c *clock) statusDue(now time.Time, acked uint64) bool {
	return acked > c.sentAck || !now.Before(c.nextStatus)
}

// wake returns when the stream stops waiting for the server to do the
// periodic work: at the next status update or heartbeat, and often enough
// to pass acks on promptly.
func (c *clock) wake(now time.Time) time.Time {
	next := c.nextStatus
	if !c.nextHeartbeat.IsZero() && c.nextHeartbeat.Before(next) {
		next = c.nextHeartbeat
	}
	if ackPoll := now.Add(ackPollInterval); ackPoll.Before(next) {
		next = ackPoll
	}
	return next
}

// housekeeping sends status updates, polls the lag and writes heartbeats
// when they are due.
func (r *runner) housekeeping(ctx context.Context, now time.Time) error {
	if r.clock.statusDue(now, r.s.acked.Load()) {
		if err := r.sendStatus(); err != nil {
			return err
		}
	}
	if !now.Before(r.clock.nextStatus) {
		r.clock.nextStatus = now.Add(statusInterval)
		var cur pglogrepl.LSN
		if err := r.sql.QueryRow(ctx, "SELECT pg_current_wal_lsn()").Scan(&cur); err != nil {
			return r.sqlError(ctx, err)
		}
		if a := r.s.acked.Load(); uint64(cur) >= a {
			r.s.m.SourceLagBytes.Set(float64(uint64(cur) - a))
		}
	}
	if !r.clock.nextHeartbeat.IsZero() && !now.Before(r.clock.nextHeartbeat) {
		r.clock.nextHeartbeat = now.Add(r.s.heartbeat)
		if _, err := r.sql.Exec(ctx, "SELECT pg_logical_emit_message(true, $1, $2)", prefixHeartbeat, r.s.slot); err != nil {
			return r.sqlError(ctx, err)
		}
	}
	return nil
}

// sendStatus reports the last acked LSN as written, flushed and applied.
// All three are set explicitly: pglogrepl would copy Write into a zero
// Flush, and nothing beyond what Kafka committed may be confirmed.
func (r *runner) sendStatus() error {
	a := pglogrepl.LSN(r.s.acked.Load())
	err := pglogrepl.SendStandbyStatusUpdate(context.Background(), r.repl, pglogrepl.StandbyStatusUpdate{
		WALWritePosition: a,
		WALFlushPosition: a,
		WALApplyPosition: a,
		ClientTime:       time.Now(),
	})
	if err != nil {
		r.s.m.Reconnects.WithLabelValues("stream_lost").Inc()
		return fmt.Errorf("postgres: send standby status: %w", err)
	}
	r.clock.sentAck = uint64(a)
	return nil
}

// send hands m to the relay, answering the server while it waits.
//
// While the relay is busy (a slow commit, topics still being created) the
// stream is not read, so the server's keepalive requests go unanswered: a
// status update goes out every tick instead, so that no
// wal_sender_timeout, however short, takes the relay for gone.
func (r *runner) send(ctx context.Context, m change.Message) error {
	select {
	case r.out <- m:
		return nil
	default:
	}
	for {
		select {
		case r.out <- m:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-r.clock.tick.C:
			if err := r.sendStatus(); err != nil {
				return err
			}
			if !time.Now().Before(r.clock.nextStatus) {
				r.clock.nextStatus = time.Now().Add(statusInterval)
			}
		}
	}
}
