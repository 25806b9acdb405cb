#!/bin/sh
# Creates the relay's login role. Runs once, from the postgres image's
# /docker-entrypoint-initdb.d, with CDCRELAY_DEMO_PASSWORD taken from the
# container environment (a demo-only value set in docker-compose.yml).
set -eu

: "${CDCRELAY_DEMO_PASSWORD:?set CDCRELAY_DEMO_PASSWORD for the relay role}"

psql -v ON_ERROR_STOP=1 -v relay_pw="$CDCRELAY_DEMO_PASSWORD" \
     --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
-- REPLICATION lets it create and read the logical replication slot.
CREATE ROLE cdcrelay WITH LOGIN REPLICATION PASSWORD :'relay_pw';
-- SELECT serves the one-time snapshot of existing rows.
GRANT USAGE ON SCHEMA public TO cdcrelay;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO cdcrelay;
-- Lets it read pg_stat_statements and the replication views.
GRANT pg_read_all_stats TO cdcrelay;
SQL
