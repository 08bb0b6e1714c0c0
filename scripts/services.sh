#!/usr/bin/env bash
# Prints `export DATABASE_URL=... REDIS_URL=...` for the test suite:
# the environment's when set, else the local services when they answer,
# else throwaway ones started here (stopped by scripts/services-stop.sh).
# Use: eval "$(scripts/services.sh)"
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
RUN_DIR=${RUN_DIR:-var/test-services}
mkdir -p "$RUN_DIR"

log() { echo "services: $*" >&2; }

pg_answers() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=3).close()
PYEOF
}

redis_answers() {
  "$PY" - "$1" <<'PYEOF' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_connect_timeout=3).ping()
PYEOF
}

apt_install() {
  log "installing $* with apt-get"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >&2
}

database_url=${DATABASE_URL:-}
if [ -z "$database_url" ]; then
  local_url="postgres://postgres@127.0.0.1:5432/postgres"
  if pg_answers "$local_url"; then
    database_url="postgres://postgres@127.0.0.1:5432/rechenboerse"
    log "using local PostgreSQL on 127.0.0.1:5432"
  else
    initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
    if [ -z "$initdb" ]; then apt_install postgresql; initdb=$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1); fi
    bindir=$(dirname "$initdb")
    datadir=$(mktemp -d /tmp/rb-pg.XXXXXX)
    chown postgres "$datadir" 2>/dev/null || true
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    as_pg "$bindir/initdb" -D "$datadir" -A trust -U postgres >/dev/null
    as_pg "$bindir/pg_ctl" -D "$datadir" -o "-p 54329 -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off" -w start -l "$datadir/log" >/dev/null
    echo "$bindir/pg_ctl -D $datadir stop -m immediate" > "$RUN_DIR/stop-postgres"
    database_url="postgres://postgres@127.0.0.1:54329/rechenboerse"
    log "started throwaway PostgreSQL on 127.0.0.1:54329"
  fi
fi

redis_url=${REDIS_URL:-}
if [ -z "$redis_url" ]; then
  if redis_answers "redis://127.0.0.1:6379/0"; then
    redis_url="redis://127.0.0.1:6379/9"
    log "using local Redis on 127.0.0.1:6379 (database 9)"
  else
    command -v redis-server >/dev/null || apt_install redis-server
    redis-server --port 63799 --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
      --pidfile "$PWD/$RUN_DIR/redis.pid" --logfile "$PWD/$RUN_DIR/redis.log" >/dev/null
    echo "kill \$(cat $PWD/$RUN_DIR/redis.pid)" > "$RUN_DIR/stop-redis"
    redis_url="redis://127.0.0.1:63799/9"
    log "started throwaway Redis on 127.0.0.1:63799"
  fi
fi

echo "export DATABASE_URL='$database_url' REDIS_URL='$redis_url'"
