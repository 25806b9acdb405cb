package postgres

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/sources"
)

// Backoff of connection retries.
const (
	retryFirst = 200 * time.Millisecond
	retryMax   = 10 * time.Second
)

// retry calls f until it succeeds, ctx is done, or it fails in a way that
// waiting cannot fix. Each failed attempt logs one line and counts one
// reconnect by cause.
func retry(ctx context.Context, s *Source, f func() error) error {
	wait := retryFirst
	for attempt := 1; ; attempt++ {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		cause, ok := retryable(err)
		if !ok {
			return classify(err)
		}
		d := wait/2 + rand.N(wait)
		s.m.Reconnects.WithLabelValues(cause).Inc()
		s.log.Warn("postgres: connect failed, retrying", "attempt", attempt, "cause", cause, "in", d.Round(time.Millisecond), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
		wait = min(wait*2, retryMax)
	}
}

// retryable tells whether err is worth another attempt, and names its cause.
func retryable(err error) (string, bool) {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "53300":
			return "too_many_connections", true
		case pe.Code == "55006":
			return "slot_in_use", true
		case strings.HasPrefix(pe.Code, "57P"):
			return "server_shutdown", true
		case strings.HasPrefix(pe.Code, "08"):
			return "connection_failure", true
		case pe.Code == "53100" || pe.Code == "53200":
			return "server_resources", true
		}
		return "", false
	}
	if isTLSVerify(err) {
		return "", false
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &ne) || errors.As(err, &oe) || pgconn.SafeToRetry(err) || pgconn.Timeout(err) {
		return "unreachable", true
	}
	if strings.Contains(err.Error(), "connection refused") || strings.Contains(err.Error(), "EOF") {
		return "unreachable", true
	}
	return "", false
}

func isTLSVerify(err error) bool {
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}

// classify wraps errors that no retry can fix in sources.Fatal.
func classify(err error) error {
	if err == nil {
		return nil
	}
	if isTLSVerify(err) {
		return sources.Fatal(err)
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "28"), // authorization
			pe.Code == "42704", // undefined object: slot or publication
			pe.Code == "42501", // insufficient privilege
			pe.Code == "3D000", // database does not exist
			pe.Code == "55000": // object not in prerequisite state (e.g. wal_level)
			return sources.Fatal(err)
		}
	}
	return err
}

// slotInfo is a row of pg_replication_slots.
type slotInfo struct {
	exists    bool
	plugin    string
	kind      string
	database  string
	walStatus string
	active    bool
	confirmed pglogrepl.LSN
	failover  bool // PostgreSQL 17: a failover slot, synchronized to standbys
	synced    bool // PostgreSQL 17: a copy synchronized from a primary
}

func readSlot(ctx context.Context, conn *pgx.Conn, name string) (slotInfo, error) {
	var si slotInfo
	var plugin, db, ws *string
	var confirmed *string
	var failover, synced *bool
	// Through to_jsonb, the columns that came with 17 read as NULL before.
	err := conn.QueryRow(ctx, `SELECT plugin, slot_type, database, wal_status, active, confirmed_flush_lsn::text,
  (to_jsonb(s) ->> 'failover')::bool, (to_jsonb(s) ->> 'synced')::bool
FROM pg_catalog.pg_replication_slots s WHERE slot_name = $1`, name).Scan(&plugin, &si.kind, &db, &ws, &si.active, &confirmed, &failover, &synced)
	if errors.Is(err, pgx.ErrNoRows) {
		return si, nil
	}
	if err != nil {
		return si, fmt.Errorf("postgres: read slot %s: %w", name, err)
	}
	si.exists = true
	if plugin != nil {
		si.plugin = *plugin
	}
	if db != nil {
		si.database = *db
	}
	if ws != nil {
		si.walStatus = *ws
	}
	if confirmed != nil {
		si.confirmed, _ = pglogrepl.ParseLSN(*confirmed)
	}
	si.failover = failover != nil && *failover
	si.synced = synced != nil && *synced
	return si, nil
}

// ResyncHint is the command line that starts over from a fresh snapshot; it
// ends every message about a position that cannot be resumed.
const ResyncHint = "to re-sync from a fresh snapshot, run `cdcrelay offsets reset --config <file> --yes` and start the relay again"

// checkResumable refuses a stored position that the slot cannot continue.
// A change of timeline is judged by runner.resumable, which reads the
// server's timeline history.
func checkResumable(name string, slot slotInfo, stored *state, sys pglogrepl.IdentifySystemResult, db string) error {
	if !slot.exists {
		if stored != nil && stored.SystemID == sys.SystemID && stored.Timeline != sys.Timeline {
			return fmt.Errorf("postgres: replication slot %s is missing but a position (%s) is stored, and the server moved from timeline %d to %d: after a failover a slot stays on the old primary unless it is a failover slot synchronized to the standby (source.failover_slot, PostgreSQL 17), so the changes since are lost to the relay; %s", name, stored.lsn, stored.Timeline, sys.Timeline, ResyncHint)
		}
		if stored != nil {
			return fmt.Errorf("postgres: replication slot %s is missing but a position (%s) is stored: the slot was dropped and the changes since are lost to the relay; %s", name, stored.lsn, ResyncHint)
		}
		return fmt.Errorf("postgres: replication slot %s does not exist; run `cdcrelay run` (which creates it) or create it with pg_create_logical_replication_slot('%s', 'pgoutput')", name, name)
	}
	if slot.kind != "logical" || slot.plugin != "pgoutput" {
		return fmt.Errorf("postgres: replication slot %s uses plugin %q (%s); the relay needs a logical slot with plugin pgoutput", name, slot.plugin, slot.kind)
	}
	if slot.database != db {
		return fmt.Errorf("postgres: replication slot %s belongs to database %q, not %q", name, slot.database, db)
	}
	if slot.walStatus == "lost" {
		return fmt.Errorf("postgres: replication slot %s has wal_status=lost: WAL it needed was removed (max_slot_wal_keep_size); %s", name, ResyncHint)
	}
	if stored == nil {
		return nil
	}
	if stored.Slot != "" && stored.Slot != name {
		return fmt.Errorf("postgres: the stored position belongs to slot %s, the configuration names slot %s; %s", stored.Slot, name, ResyncHint)
	}
	if stored.SystemID != sys.SystemID {
		return fmt.Errorf("postgres: server system identifier is %s, the stored position was taken on %s: this is another database cluster (restored or replaced); %s", sys.SystemID, stored.SystemID, ResyncHint)
	}
	if slot.confirmed > stored.lsn {
		return fmt.Errorf("postgres: replication slot %s has confirmed_flush_lsn %s, past the stored position %s: the slot was recreated or advanced outside the relay, so changes in between are lost; %s", name, slot.confirmed, stored.lsn, ResyncHint)
	}
	return nil
}
