#!/usr/bin/env bash
# make demo: a throwaway PostgreSQL, the development broker (cdcrelay-devbroker,
# which the relay starts for kafka.embedded) and the relay on the defaults. It inserts, updates and deletes rows and
# prints the change events as a read_committed consumer (kcat) sees them,
# then restarts the relay to show it resumes without a new snapshot.
set -euo pipefail
cd "$(dirname "$0")/.."

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
missing=()
[ -x "$PGBIN/postgres" ] || missing+=(postgresql-15)
command -v psql >/dev/null || missing+=(postgresql-client-15)
command -v kcat >/dev/null || missing+=(kcat)
if [ ${#missing[@]} -gt 0 ]; then
	echo "demo: missing ${missing[*]}; install with: apt-get install -y ${missing[*]}" >&2
	exit 1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)); }

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# kafka.embedded runs bin/cdcrelay-devbroker, found beside bin/cdcrelay.
go build -o bin/ ./cmd/cdcrelay ./cmd/cdcrelay-devbroker
BIN=$PWD/bin/cdcrelay
WORK=$(mktemp -d /tmp/cdcrelay-demo-XXXXXX)
chmod 755 "$WORK"
PGPORT=$(free_port); KPORT=$(free_port); MPORT=$(free_port)
RELAY_PID=""

# PostgreSQL refuses to run as root: run it as nobody when we are root.
as_db() { if [ "$(id -u)" = 0 ]; then runuser -u nobody -- "$@"; else "$@"; fi; }

cleanup() {
	[ -n "$RELAY_PID" ] && kill "$RELAY_PID" 2>/dev/null && wait "$RELAY_PID" 2>/dev/null || true
	as_db "$PGBIN/pg_ctl" -D "$WORK/pg" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT

step "starting a throwaway PostgreSQL 15 on 127.0.0.1:$PGPORT (wal_level=logical)"
mkdir -p "$WORK/pg" "$WORK/sock"
[ "$(id -u)" = 0 ] && chown nobody "$WORK/pg" "$WORK/sock"
as_db "$PGBIN/initdb" -D "$WORK/pg" -U postgres --auth=trust --no-sync >/dev/null
as_db "$PGBIN/pg_ctl" -D "$WORK/pg" -l "$WORK/pg/log" -w \
	-o "-p $PGPORT -k $WORK/sock -c listen_addresses=127.0.0.1 -c wal_level=logical -c fsync=off" start >/dev/null
PSQL=(psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PGPORT" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE shop"
"${PSQL[@]}" -d shop <<'SQL'
CREATE ROLE cdc LOGIN REPLICATION PASSWORD 'demo-only-password';
CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int NOT NULL, amount numeric(12,2), status text, created_at timestamptz DEFAULT now());
ALTER TABLE customers REPLICA IDENTITY FULL;
ALTER TABLE orders REPLICA IDENTITY FULL;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdc;
GRANT CREATE ON DATABASE shop TO cdc;
ALTER TABLE customers OWNER TO cdc;
ALTER TABLE orders OWNER TO cdc;
INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com'), (2, 'Grace', NULL);
INSERT INTO orders (id, customer_id, amount, status) VALUES (100, 1, 12.50, 'new'), (101, 2, 99.99, 'new');
SQL

cat >"$WORK/cdcrelay.yaml" <<YAML
id: demo
source:
  type: postgres
  dsn: postgres://cdc@127.0.0.1:$PGPORT/shop?sslmode=disable
  tables: [public.customers, public.orders]
  heartbeat_interval: 2s
kafka:
  brokers: [127.0.0.1:$KPORT]
  embedded:
    enabled: true
    data_dir: $WORK/kafka
metrics:
  listen: 127.0.0.1:$MPORT
YAML

start_relay() {
	CDCRELAY_SOURCE_PASSWORD=demo-only-password "$BIN" run --config "$WORK/cdcrelay.yaml" >>"$WORK/relay.log" 2>&1 &
	RELAY_PID=$!
	for _ in $(seq 1 100); do
		if curl -fs "http://127.0.0.1:$MPORT/readyz" >/dev/null 2>&1; then return 0; fi
		if ! kill -0 "$RELAY_PID" 2>/dev/null; then echo "relay exited:"; cat "$WORK/relay.log"; exit 1; fi
		sleep 0.2
	done
	echo "relay not ready after 20s:"; cat "$WORK/relay.log"; exit 1
}

step "config ($WORK/cdcrelay.yaml)"
cat "$WORK/cdcrelay.yaml"
step "cdcrelay check (read-only preflight)"
CDCRELAY_SOURCE_PASSWORD=demo-only-password "$BIN" check --config "$WORK/cdcrelay.yaml" || true

step "cdcrelay run: embedded broker on 127.0.0.1:$KPORT, metrics on 127.0.0.1:$MPORT"
start_relay
sleep 2

step "writing changes: an insert, an update, a delete"
"${PSQL[@]}" -d shop <<'SQL'
INSERT INTO orders (id, customer_id, amount, status) VALUES (102, 1, 5.00, 'new');
UPDATE orders SET status = 'paid' WHERE id = 100;
DELETE FROM orders WHERE id = 101;
UPDATE customers SET email = 'grace@example.com' WHERE id = 2;
SQL
sleep 2

consume() {
	kcat -b "127.0.0.1:$KPORT" -C -t "$1" -e -q -Z -X isolation.level=read_committed \
		-f 'partition %p offset %o  key %k\n  value %s\n' 2>/dev/null || true
}
for topic in demo.public.customers demo.public.orders; do
	step "topic $topic, read with isolation.level=read_committed (snapshot rows are op=r, then c/u/d)"
	consume "$topic"
done

step "stored position (cdcrelay offsets show)"
"$BIN" offsets show --config "$WORK/cdcrelay.yaml"

step "restart: SIGTERM, one more change, start again"
kill -TERM "$RELAY_PID"; wait "$RELAY_PID" || true; RELAY_PID=""
"${PSQL[@]}" -d shop -c "UPDATE orders SET amount = 6.00 WHERE id = 102"
start_relay
sleep 3
echo "orders topic now ends with (no second snapshot: the table was not read again):"
consume demo.public.orders | tail -2
"${PSQL[@]}" -d shop -At -c "SELECT 'full scans of orders so far: ' || seq_scan FROM pg_stat_user_tables WHERE relname = 'orders'"

step "metrics excerpt"
curl -fs "http://127.0.0.1:$MPORT/metrics" | grep -E '^cdcrelay_(events_total|kafka_transactions_total|committed_lsn|source_lag_bytes|snapshot_rows_done)' || true

step "done; everything ran in $WORK and is removed now"
