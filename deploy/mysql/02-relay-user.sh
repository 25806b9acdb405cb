#!/bin/bash
# Creates the relay's user. Runs once, from the mysql image's
# /docker-entrypoint-initdb.d while the first-start server listens on its
# socket only, with CDCRELAY_DEMO_PASSWORD taken from the container
# environment (a demo-only value set in docker-compose.yml).
set -euo pipefail

: "${CDCRELAY_DEMO_PASSWORD:?set CDCRELAY_DEMO_PASSWORD for the relay user}"
pw=${CDCRELAY_DEMO_PASSWORD//\'/\'\'}

MYSQL_PWD="$MYSQL_ROOT_PASSWORD" mysql --protocol=socket --user=root <<SQL
CREATE USER 'cdcrelay'@'%' IDENTIFIED BY '${pw}';
-- Binlog streaming and the position and GTID checks.
GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'cdcrelay'@'%';
-- The one-time snapshot of existing rows.
GRANT SELECT ON inventory.* TO 'cdcrelay'@'%';
-- The snapshot's watermark table, which the relay creates in the DSN's
-- database on its first start (MySQL accepts a grant on a table yet to be
-- created when it includes CREATE).
GRANT CREATE, INSERT, UPDATE, SELECT ON inventory.cdcrelay_watermark TO 'cdcrelay'@'%';
SQL
