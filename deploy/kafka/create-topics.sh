#!/bin/bash
# Creates the topics the example Flink jobs write to. The relays create their
# own topics; these belong to Flink. Compacted, because each holds the latest
# row per key (upsert-kafka writes a null value on delete, which compaction
# eventually drops). Safe to run again.
set -euo pipefail

bootstrap=${BOOTSTRAP_SERVERS:-kafka:9092}
for topic in shop.flink.orders_normalized inv.flink.product_stock; do
  /opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" \
    --create --if-not-exists --topic "$topic" \
    --partitions 3 --replication-factor 1 \
    --config cleanup.policy=compact
done
/opt/kafka/bin/kafka-topics.sh --bootstrap-server "$bootstrap" --list
