#!/bin/bash
# Submits every job in /opt/flink/cdcrelay/sql to the session cluster, once:
# a job whose pipeline.name is already running (or restarting) is left alone,
# so running this again, or `docker compose up` again, starts no duplicate.
# Exits 0 once every job is RUNNING.
set -euo pipefail

rest=${FLINK_REST_URL:-http://jobmanager:8081}
sql_dir=${SQL_DIR:-/opt/flink/cdcrelay/sql}

# job_state NAME prints the state of the live job named NAME, if any.
job_state() {
  curl -fsS "$rest/jobs/overview" | jq -r --arg n "$1" '
    [.jobs[] | select(.name == $n)
             | select(.state == "RUNNING" or .state == "CREATED" or .state == "INITIALIZING"
                      or .state == "RESTARTING" or .state == "RECONCILING")
             | .state] | first // empty'
}

names=()
for f in "$sql_dir"/*.sql; do
  name=$(sed -n "s/^SET 'pipeline.name' = '\(.*\)';\$/\1/p" "$f" | head -n 1)
  if [ -z "$name" ]; then
    echo "submit-jobs: $f sets no pipeline.name; refusing to submit it" >&2
    exit 1
  fi
  names+=("$name")
  state=$(job_state "$name")
  if [ -n "$state" ]; then
    echo "submit-jobs: $name is already $state; not submitting $f"
    continue
  fi
  echo "submit-jobs: submitting $name from $f"
  /opt/flink/bin/sql-client.sh -f "$f"
done

for name in "${names[@]}"; do
  for _ in $(seq 1 60); do
    [ "$(job_state "$name")" = RUNNING ] && break
    sleep 2
  done
  state=$(job_state "$name")
  if [ "$state" != RUNNING ]; then
    echo "submit-jobs: $name is not running (state: ${state:-none}); see http://localhost:8081" >&2
    exit 1
  fi
  echo "submit-jobs: $name is RUNNING"
done
