#!/usr/bin/env bash
# kafka-init: create every topic of deploy/kafka/topics.txt (topics + their .dlq), idempotently.
# Runs in the apache/kafka image (kafka-topics.sh). Settings (see docker-compose.yml):
#   KAFKA_BOOTSTRAP_SERVERS    broker to talk to                     (kafka:9092)
#   KAFKA_TOPIC_PREFIX         prefix for every name                 (empty)
#   KAFKA_TOPIC_PARTITIONS     partitions per topic                  (12; bounds useful replicas per consumer group)
#   KAFKA_REPLICATION_FACTOR   copies of each partition              (1 on one node; 3 in production)
#   KAFKA_MIN_INSYNC_REPLICAS  replicas that must ack (acks=all)     (1 on one node; 2 in production)
# Existing topics are left alone (--if-not-exists): raise partitions with
#   kafka-topics.sh --alter --topic T --partitions N   (never lower them; keys re-hash).
set -euo pipefail

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
PREFIX="${KAFKA_TOPIC_PREFIX:-}"
PARTITIONS="${KAFKA_TOPIC_PARTITIONS:-12}"
REPLICATION="${KAFKA_REPLICATION_FACTOR:-1}"
MIN_ISR="${KAFKA_MIN_INSYNC_REPLICAS:-1}"
TOPICS_FILE="${TOPICS_FILE:-$(dirname "$0")/topics.txt}"
KAFKA_TOPICS="${KAFKA_TOPICS_BIN:-/opt/kafka/bin/kafka-topics.sh}"

for attempt in $(seq 1 30); do
  if "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; then break; fi
  echo "kafka-init: waiting for $BOOTSTRAP (attempt $attempt)"
  sleep 2
done

created=0
while IFS= read -r line; do
  topic="${line%%#*}"
  topic="$(echo "$topic" | tr -d '[:space:]')"
  [ -z "$topic" ] && continue
  echo "kafka-init: ${PREFIX}${topic} (partitions=$PARTITIONS replication=$REPLICATION min.insync.replicas=$MIN_ISR)"
  "$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
    --topic "${PREFIX}${topic}" \
    --partitions "$PARTITIONS" \
    --replication-factor "$REPLICATION" \
    --config "min.insync.replicas=$MIN_ISR"
  created=$((created + 1))
done <"$TOPICS_FILE"

echo "kafka-init: $created topics present"
"$KAFKA_TOPICS" --bootstrap-server "$BOOTSTRAP" --describe --topic "${PREFIX}switchboard\..*" | grep -E '^Topic:' || true
