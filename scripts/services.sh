#!/usr/bin/env bash
# Make sure RabbitMQ (with its management and consistent-hash exchange plugins) and Redis answer here.
# Starts the locally installed servers if they are down; installs them from the
# OS packages when run as root on Debian/Ubuntu; otherwise says exactly what is missing.
set -u

say() { printf 'services: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- ; }

wait_port() {  # port seconds
  for _ in $(seq 1 "$2"); do port_open "$1" && return 0; sleep 1; done
  return 1
}

apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing $* from the OS packages"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
  else
    return 1
  fi
}

# --- Redis -------------------------------------------------------------
if ! port_open 6379; then
  command -v redis-server >/dev/null || apt_install redis-server || {
    say "Redis is not running on 127.0.0.1:6379 and redis-server is not installed."
    say "Install it (apt-get install redis-server) or set REDIS_URL to a running Redis."; exit 1; }
  say "starting redis-server"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  wait_port 6379 20 || { say "redis-server did not start"; exit 1; }
fi

# --- RabbitMQ ----------------------------------------------------------
if ! port_open 5672; then
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server || {
    say "RabbitMQ is not running on 127.0.0.1:5672 and rabbitmq-server is not installed."
    say "Install it (apt-get install rabbitmq-server) or set AMQP_URL to a running broker."; exit 1; }
  say "starting rabbitmq-server"
  rabbitmq-server -detached >/dev/null 2>&1
  wait_port 5672 90 || { say "rabbitmq-server did not start within 90 s"; exit 1; }
fi

if ! port_open 15672; then
  if command -v rabbitmq-plugins >/dev/null; then
    say "enabling the RabbitMQ management plugin"
    rabbitmq-plugins enable rabbitmq_management >/dev/null 2>&1 || true
  fi
  wait_port 15672 60 || { say "the RabbitMQ management API (127.0.0.1:15672) is not reachable;"
    say "run: rabbitmq-plugins enable rabbitmq_management"; exit 1; }
fi
# the plugin answers on the port a moment before its API is ready
for _ in $(seq 1 30); do
  curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null 2>&1 && break; sleep 1
done
# partitioned metrics are spread by the consistent-hash exchange (a plugin shipped with RabbitMQ)
if ! curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null | grep -q x-consistent-hash; then
  if command -v rabbitmq-plugins >/dev/null; then
    say "enabling the RabbitMQ consistent-hash exchange plugin"
    rabbitmq-plugins enable rabbitmq_consistent_hash_exchange >/dev/null 2>&1 || true
  fi
  curl -fsS -u guest:guest http://127.0.0.1:15672/api/overview 2>/dev/null | grep -q x-consistent-hash || {
    say "the x-consistent-hash exchange type is missing (partitioned metrics need it);"
    say "run: rabbitmq-plugins enable rabbitmq_consistent_hash_exchange"; exit 1; }
fi
exit 0
