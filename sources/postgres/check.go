package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/cdcrelay/cdcrelay/sources"
)

// minVersionNum is the oldest server_version_num the source runs on: 14,
// whose pgoutput has the messages option.
const minVersionNum = 140000

// Check is the read-only preflight: one finding per setting, privilege and
// table. It returns an error only when it cannot ask the server at all.
func (s *Source) Check(ctx context.Context) (sources.Report, error) {
	conn, err := s.connectSQLRetry(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	var rep sources.Report
	add := func(l sources.Level, subject, format string, args ...any) {
		rep = append(rep, sources.Finding{Level: l, Subject: subject, Detail: fmt.Sprintf(format, args...)})
	}

	var walLevel, keep, user, db, version string
	var maxSlots, maxSenders, usedSlots, senders, versionNum int
	var super, repl, standby bool
	err = conn.QueryRow(ctx, `SELECT current_setting('wal_level'), current_setting('max_slot_wal_keep_size'),
  current_setting('server_version'), current_setting('server_version_num')::int, pg_catalog.pg_is_in_recovery(),
  current_user, current_database(),
  current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int,
  (SELECT count(*) FROM pg_catalog.pg_replication_slots)::int,
  (SELECT count(*) FROM pg_catalog.pg_stat_replication)::int,
  r.rolsuper, r.rolreplication
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user`).Scan(&walLevel, &keep, &version, &versionNum, &standby, &user, &db,
		&maxSlots, &maxSenders, &usedSlots, &senders, &super, &repl)
	if err != nil {
		return nil, fmt.Errorf("postgres: check: %w", err)
	}
	switch {
	case versionNum < minVersionNum:
		add(sources.Block, "server version", "PostgreSQL %s is older than 14: its pgoutput cannot send the logical decoding messages that the relay's snapshot watermarks and heartbeats are (pgoutput's messages option came with 14); upgrade to PostgreSQL 14 or later", version)
	case standby:
		add(sources.Block, "server version", "PostgreSQL %s is a standby (pg_is_in_recovery): the relay needs a writable server for its publication, snapshot watermarks and heartbeats (pg_logical_emit_message), so it does not decode on standbys, not even on 16 and later; point source.dsn at the primary (on 17, source.failover_slot keeps the slot across a failover)", version)
	default:
		add(sources.OK, "server version", "PostgreSQL %s, primary", version)
	}
	if walLevel == "logical" {
		add(sources.OK, "wal_level", "logical")
	} else {
		add(sources.Block, "wal_level", "is %s; set wal_level = logical in postgresql.conf and restart PostgreSQL", walLevel)
	}
	if super || repl {
		add(sources.OK, "replication privilege", "role %s may replicate", user)
	} else {
		add(sources.Block, "replication privilege", "role %s lacks REPLICATION; run ALTER ROLE %s REPLICATION", user, pgx.Identifier{user}.Sanitize())
	}
	if keep == "-1" {
		add(sources.Warn, "max_slot_wal_keep_size", "is -1 (unbounded): a stopped relay keeps WAL forever and can fill the disk; set a limit such as 50GB")
	} else {
		add(sources.OK, "max_slot_wal_keep_size", "%s", keep)
	}

	slot, err := readSlot(ctx, conn, s.slot)
	if err != nil {
		return nil, err
	}
	s.checkReplication(ctx, conn, replicationState{slot: slot, db: db, version: version, versionNum: versionNum,
		usedSlots: usedSlots, maxSlots: maxSlots, senders: senders, maxSenders: maxSenders}, add)

	tables, err := s.listTables(ctx, conn, catalogTypes(ctx, conn))
	if err != nil {
		return nil, err
	}
	for _, p := range s.tables {
		found := false
		for _, t := range tables {
			if p.match(t.schema, t.name) {
				found = true
				break
			}
		}
		if !found && !p.all {
			add(sources.Block, "table "+p.String(), "not found; create it or remove it from source.tables")
		} else if !found {
			add(sources.Warn, "tables "+p.String(), "no table matches yet")
		}
	}
	pubTables, pubExists, err := publicationTables(ctx, conn, s.publication)
	if err != nil {
		return nil, err
	}
	var missing []string
	for _, t := range tables {
		s.checkTable(ctx, conn, t, add)
		if pubExists && !pubTables[t.ident] {
			missing = append(missing, t.ident)
		}
	}
	switch {
	case !pubExists:
		add(sources.OK, "publication "+s.publication, "missing; run creates it")
	case len(missing) > 0:
		add(sources.Warn, "publication "+s.publication, "does not cover %s; run adds them", strings.Join(missing, ", "))
	default:
		add(sources.OK, "publication "+s.publication, "covers all %d captured tables", len(tables))
	}
	return rep, nil
}

// replicationState is what the preflight read about slots and senders.
type replicationState struct {
	slot                slotInfo
	db, version         string
	versionNum          int
	usedSlots, maxSlots int
	senders, maxSenders int
}

// checkReplication adds the findings about the replication slot, failover
// slots and WAL senders.
func (s *Source) checkReplication(ctx context.Context, conn *pgx.Conn, r replicationState, add func(sources.Level, string, string, ...any)) {
	switch {
	case !r.slot.exists && r.usedSlots >= r.maxSlots:
		add(sources.Block, "slot "+s.slot, "missing, and all %d replication slots are used; raise max_replication_slots or drop an unused slot", r.maxSlots)
	case !r.slot.exists:
		add(sources.OK, "slot "+s.slot, "missing; run creates it (%d of %d slots free)", r.maxSlots-r.usedSlots, r.maxSlots)
	case r.slot.kind != "logical" || r.slot.plugin != "pgoutput":
		add(sources.Block, "slot "+s.slot, "exists with plugin %q; drop it or configure another source.slot", r.slot.plugin)
	case r.slot.database != r.db:
		add(sources.Block, "slot "+s.slot, "belongs to database %s; configure another source.slot", r.slot.database)
	case r.slot.walStatus == "lost":
		add(sources.Block, "slot "+s.slot, "wal_status=lost: its WAL was removed; %s", ResyncHint)
	case r.slot.active:
		add(sources.Warn, "slot "+s.slot, "is in use by another connection (another relay running?)")
	case r.versionNum >= failoverVersionNum:
		add(sources.OK, "slot "+s.slot, "exists (pgoutput, wal_status=%s, confirmed_flush_lsn=%s, failover=%t, synced=%t)", r.slot.walStatus, r.slot.confirmed, r.slot.failover, r.slot.synced)
	default:
		add(sources.OK, "slot "+s.slot, "exists (pgoutput, wal_status=%s, confirmed_flush_lsn=%s)", r.slot.walStatus, r.slot.confirmed)
	}
	s.checkFailover(ctx, conn, r.versionNum, r.version, r.slot, add)
	if r.senders >= r.maxSenders {
		add(sources.Block, "max_wal_senders", "all %d WAL senders are busy; raise max_wal_senders", r.maxSenders)
	} else {
		add(sources.OK, "max_wal_senders", "%d of %d free", r.maxSenders-r.senders, r.maxSenders)
	}
}

func (s *Source) checkTable(ctx context.Context, conn *pgx.Conn, t *tableMeta, add func(sources.Level, string, string, ...any)) {
	subj := "table " + t.ident
	var canSelect bool
	if err := conn.QueryRow(ctx, "SELECT has_table_privilege($1::oid, 'SELECT')", t.oid).Scan(&canSelect); err == nil && !canSelect {
		add(sources.Block, subj, "no SELECT privilege; GRANT SELECT ON %s TO the relay's role", t.ident)
	}
	switch {
	case len(t.key) == 0 && !t.keyless:
		add(sources.Block, subj, "has no primary key; add one or list it in source.keyless")
		return
	case len(t.key) == 0 && t.identity != 'f':
		add(sources.Block, subj, "is keyless and needs ALTER TABLE %s REPLICA IDENTITY FULL", t.ident)
		return
	}
	if err := t.checkKafkaKey(); err != nil {
		add(sources.Block, subj, "%v", err)
		return
	}
	if len(t.key) == 0 {
		keyed := "by the whole row"
		if t.kafka != nil {
			keyed = "by " + strings.Join(t.kafka, ", ") + " (source.key_columns)"
		}
		switch {
		case !s.snapshot:
			add(sources.OK, subj, "keyless: events are keyed %s; not snapshotted (source.snapshot: never)", keyed)
		case t.ctidMode():
			add(sources.OK, subj, "keyless: events are keyed %s; no unique index on NOT NULL columns, so it is snapshotted whole by ctid ranges under one exported snapshot, in one Kafka transaction (mind kafka.transaction_timeout; needs a free replication slot)", keyed)
		case len(t.chunk) == 0:
			add(sources.Block, subj, "%v", t.snapshotRefusal())
		default:
			if _, err := t.keyCompare(); err != nil {
				add(sources.Block, subj, "%v; set source.snapshot: never or change the index", err)
				return
			}
			add(sources.OK, subj, "keyless: events are keyed %s; snapshotted by unique index %s (%s)", keyed, t.chunkIndex, strings.Join(t.chunk, ", "))
		}
		return
	}
	if s.snapshot {
		if _, err := t.keyCompare(); err != nil {
			add(sources.Block, subj, "%v; set source.snapshot: never or change the key", err)
			return
		}
	}
	s.checkIdentity(t, add)
}

// publicationTables returns the tables a publication covers, by quoted name.
func publicationTables(ctx context.Context, conn *pgx.Conn, pub string) (map[string]bool, bool, error) {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = $1)", pub).Scan(&exists); err != nil {
		return nil, false, fmt.Errorf("postgres: read publication %s: %w", pub, err)
	}
	if !exists {
		return nil, false, nil
	}
	rows, err := conn.Query(ctx, "SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables WHERE pubname = $1", pub)
	if err != nil {
		return nil, true, fmt.Errorf("postgres: read publication %s: %w", pub, err)
	}
	out := map[string]bool{}
	for rows.Next() {
		var sc, tb string
		if err := rows.Scan(&sc, &tb); err != nil {
			rows.Close()
			return nil, true, err
		}
		out[pgx.Identifier{sc, tb}.Sanitize()] = true
	}
	rows.Close()
	return out, true, rows.Err()
}

// Setup creates the publication and then the slot, each only if missing, and
// adds captured tables a FOR TABLE publication lacks. The publication comes
// first because pgoutput reads it through the catalog as of each change:
// changes decoded from before it existed would not be published. If the slot
// cannot be created, a publication made by this call is dropped again, so a
// failed Setup leaves nothing half-created. Setup never recreates a slot over
// a stored position: with resuming set (a position is stored for this
// source), a missing slot is not created, and Run then fails loudly that the
// slot is gone, as it refuses a slot that is ahead of the stored position.
func (s *Source) Setup(ctx context.Context, resuming bool) error {
	conn, err := s.connectSQLRetry(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	tables, err := s.listTables(ctx, conn, nil)
	if err != nil {
		return err
	}
	pubTables, pubExists, err := publicationTables(ctx, conn, s.publication)
	if err != nil {
		return err
	}
	pubIdent := pgx.Identifier{s.publication}.Sanitize()
	created := false
	if !pubExists {
		if _, err := conn.Exec(ctx, "CREATE PUBLICATION "+pubIdent+" "+s.publicationTarget(tables)); err != nil {
			return fmt.Errorf("postgres: create publication %s: %w", s.publication, err)
		}
		created = true
		s.log.Info("postgres: publication created", "publication", s.publication)
	} else {
		var allTables bool
		if err := conn.QueryRow(ctx, "SELECT puballtables FROM pg_catalog.pg_publication WHERE pubname = $1", s.publication).Scan(&allTables); err != nil {
			return fmt.Errorf("postgres: read publication %s: %w", s.publication, err)
		}
		var add []string
		for _, t := range tables {
			if !allTables && !pubTables[t.ident] {
				add = append(add, t.ident)
			}
		}
		if len(add) > 0 {
			if _, err := conn.Exec(ctx, "ALTER PUBLICATION "+pubIdent+" ADD TABLE "+strings.Join(add, ", ")); err != nil {
				return fmt.Errorf("postgres: add tables to publication %s: %w", s.publication, err)
			}
			s.log.Info("postgres: tables added to publication", "publication", s.publication, "tables", add)
		}
	}
	slot, err := readSlot(ctx, conn, s.slot)
	if err == nil && !slot.exists && resuming {
		s.log.Warn("postgres: replication slot is missing although a position is stored; not creating it", "slot", s.slot)
		return nil
	}
	if err == nil && !slot.exists {
		// Returns once the slot has reached its consistent point.
		_, err = conn.Exec(ctx, s.createSlotSQL(), s.slot)
		if err == nil {
			s.slotCreated.Store(true)
			s.log.Info("postgres: replication slot created", "slot", s.slot, "failover", s.cfg.FailoverSlot)
		} else {
			err = fmt.Errorf("postgres: create replication slot %s: %w", s.slot, err)
		}
	}
	if err == nil && slot.exists && s.cfg.FailoverSlot && !slot.failover {
		err = s.setFailover(ctx)
	}
	if err != nil && created {
		if _, derr := conn.Exec(context.Background(), "DROP PUBLICATION IF EXISTS "+pubIdent); derr != nil {
			err = errors.Join(err, fmt.Errorf("postgres: drop publication %s again: %w", s.publication, derr))
		}
	}
	return err
}

// publicationTarget is the FOR clause: schema.* patterns become TABLES IN
// SCHEMA (so tables created later are published too), the others FOR TABLE.
func (s *Source) publicationTarget(tables []*tableMeta) string {
	var parts []string
	schemas := map[string]bool{}
	for _, p := range s.tables {
		if p.all && !schemas[p.schema] {
			schemas[p.schema] = true
			parts = append(parts, "TABLES IN SCHEMA "+pgx.Identifier{p.schema}.Sanitize())
		}
	}
	var named []string
	for _, t := range tables {
		if !schemas[t.schema] {
			named = append(named, t.ident)
		}
	}
	sort.Strings(named)
	if len(named) > 0 {
		parts = append(parts, "TABLE "+strings.Join(named, ", "))
	}
	if len(parts) == 0 {
		return "" // no table yet: an empty publication, filled by a later Setup
	}
	return "FOR " + strings.Join(parts, ", ")
}
