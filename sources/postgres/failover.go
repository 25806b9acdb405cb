package postgres

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/sources"
)

// failoverVersionNum is the first server_version_num with failover slots
// (pg_create_logical_replication_slot's failover argument and the
// sync_replication_slots worker on standbys).
const failoverVersionNum = 170000

// resumable refuses a stored position the slot and server cannot continue,
// and returns the state to continue from. A stored position from an
// earlier timeline is continued when it lies in the history the current
// timeline shares with it: that is a promoted standby whose failover slot
// was synchronized from the old primary. The returned state carries the
// current timeline, so later checkpoints name it.
func (r *runner) resumable(ctx context.Context, slot slotInfo, stored *state, sys pglogrepl.IdentifySystemResult) (*state, error) {
	if err := checkResumable(r.s.slot, slot, stored, sys, r.db); err != nil {
		return nil, sources.Fatal(err)
	}
	if stored == nil || stored.Timeline == sys.Timeline {
		return stored, nil
	}
	if stored.Timeline > sys.Timeline {
		return nil, sources.Fatal(fmt.Errorf("postgres: server is on timeline %d, older than the stored position's timeline %d (a restore from before a failover); %s", sys.Timeline, stored.Timeline, ResyncHint))
	}
	hist, err := pglogrepl.TimelineHistory(ctx, r.repl, sys.Timeline)
	if err != nil {
		return nil, fmt.Errorf("postgres: read the history of timeline %d: %w", sys.Timeline, err)
	}
	end, ok := timelineEnd(hist.Content, stored.Timeline)
	if !ok {
		return nil, sources.Fatal(fmt.Errorf("postgres: timeline %d does not descend from the stored position's timeline %d; %s", sys.Timeline, stored.Timeline, ResyncHint))
	}
	if stored.lsn > end {
		return nil, sources.Fatal(fmt.Errorf("postgres: the stored position %s is past %s, where this server left timeline %d: the relay sent changes this server never received (set synchronized_standby_slots on the primary to the standbys' physical slots); %s", stored.lsn, end, stored.Timeline, ResyncHint))
	}
	r.s.log.Info("postgres: resuming on a new timeline after a failover", "slot", r.s.slot,
		"from_timeline", stored.Timeline, "timeline", sys.Timeline, "switch_lsn", end.String(), "position", stored.lsn.String(), "slot_synced", slot.synced)
	next := *stored
	next.Timeline = sys.Timeline
	return &next, nil
}

// timelineEnd finds, in a timeline history file, the LSN at which timeline
// tli ended: the history of a later timeline lists each ancestor as
// "tli<TAB>switch LSN<TAB>reason".
func timelineEnd(history []byte, tli int32) (pglogrepl.LSN, bool) {
	sc := bufio.NewScanner(bytes.NewReader(history))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || strings.HasPrefix(f[0], "#") {
			continue
		}
		n, err := strconv.ParseInt(f[0], 10, 32)
		if err != nil || int32(n) != tli {
			continue
		}
		lsn, err := pglogrepl.ParseLSN(f[1])
		if err != nil {
			return 0, false
		}
		return lsn, true
	}
	return 0, false
}

// createSlotSQL creates the slot, with FAILOVER when configured. The
// preflight has refused failover_slot on servers older than 17.
func (s *Source) createSlotSQL() string {
	if s.cfg.FailoverSlot {
		return "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput', failover => true)"
	}
	return "SELECT pg_catalog.pg_create_logical_replication_slot($1, 'pgoutput')"
}

// setFailover turns FAILOVER on for an existing slot, over a replication
// connection (ALTER_REPLICATION_SLOT has no SQL function).
func (s *Source) setFailover(ctx context.Context) error {
	rc, err := s.connectReplication(ctx)
	if err != nil {
		return err
	}
	defer rc.Close(context.Background())
	if _, err := rc.Exec(ctx, "ALTER_REPLICATION_SLOT "+pgx.Identifier{s.slot}.Sanitize()+" (FAILOVER true)").ReadAll(); err != nil {
		return fmt.Errorf("postgres: set FAILOVER on replication slot %s: %w", s.slot, err)
	}
	s.log.Info("postgres: replication slot is now a failover slot", "slot", s.slot)
	return nil
}

// checkFailover adds the findings about failover slots: source.failover_slot
// needs PostgreSQL 17, and a failover slot is only safe to resume on a
// promoted standby when the primary waits for that standby before sending
// changes (synchronized_standby_slots).
func (s *Source) checkFailover(ctx context.Context, conn *pgx.Conn, versionNum int, version string, slot slotInfo, add func(sources.Level, string, string, ...any)) {
	const subj = "source.failover_slot"
	if versionNum < failoverVersionNum {
		if s.cfg.FailoverSlot {
			add(sources.Block, subj, "PostgreSQL %s has no failover slots (they came with 17); set source.failover_slot: false or upgrade the server", version)
		}
		return
	}
	if !s.cfg.FailoverSlot {
		if slot.exists && slot.failover {
			add(sources.OK, subj, "false, but slot %s is a failover slot already (left as it is)", s.slot)
		}
		return
	}
	var standbySlots string
	if err := conn.QueryRow(ctx, "SELECT current_setting('synchronized_standby_slots')").Scan(&standbySlots); err != nil {
		add(sources.Warn, subj, "cannot read synchronized_standby_slots: %v", err)
		return
	}
	switch {
	case slot.exists && !slot.failover:
		add(sources.Warn, subj, "slot %s is not a failover slot yet; run sets FAILOVER on it", s.slot)
	case standbySlots == "":
		add(sources.Warn, subj, "synchronized_standby_slots is empty: the relay may get changes no standby has yet, and after a failover it would refuse to resume; set it to the standbys' physical slots")
	default:
		add(sources.OK, subj, "the slot fails over; the primary holds changes back until %s has them", standbySlots)
	}
}
