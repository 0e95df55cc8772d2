#!/bin/sh
# Prometheus reads no environment variables in its configuration: write the scrape credentials
# from the environment into files it reads, and Flower's user name into a copy of the config.
set -eu
mkdir -p /tmp/secrets
printf '%s' "$METRICS_TOKEN" > /tmp/secrets/metrics_token
printf '%s' "${FLOWER_BASIC_AUTH#*:}" > /tmp/secrets/flower_password
sed "s/FLOWER_USER/${FLOWER_BASIC_AUTH%%:*}/" /etc/prometheus/shop.yml > /tmp/prometheus.yml
exec /bin/prometheus --config.file=/tmp/prometheus.yml --storage.tsdb.path=/prometheus --storage.tsdb.retention.time=7d
