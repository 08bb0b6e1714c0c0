#!/usr/bin/env bash
# Brings up the whole exchange: ASGI server (HTTP + WebSockets), Celery worker
# and beat. Unless DATABASE_URL/REDIS_URL are set, on the embedded default:
# PostgreSQL and Redis started here under var/ and stopped again on exit
# (scripts/prepare.sh, exchange/embedded.py); their data stays in var/.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PORT:-8000}
# Links in e-mails sent outside a request (Celery jobs) point at this server.
export SITE_URL=${SITE_URL:-http://127.0.0.1:$PORT}
VAR=${VAR_DIR:-var}
# What the caller named: the embedded services stopped on exit are the others.
given_database_url=${DATABASE_URL:-} given_redis_url=${REDIS_URL:-}

pids=()
cleanup() {
  trap - INT TERM EXIT
  set +e  # stop everything, whatever already ended
  [ ${#pids[@]} -gt 0 ] && kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  DATABASE_URL=$given_database_url REDIS_URL=$given_redis_url $BIN/python -m exchange.embedded stop
}
trap cleanup INT TERM EXIT

exports=$(scripts/prepare.sh)  # assigned first, so that a failure stops here (set -e)
eval "$exports"
export DATABASE_URL REDIS_URL

mkdir -p "$VAR/log"
$BIN/celery -A exchange worker --pool=threads --concurrency=4 --loglevel=INFO >"$VAR/log/worker.log" 2>&1 & pids+=($!)
$BIN/celery -A exchange beat --loglevel=INFO >"$VAR/log/beat.log" 2>&1 & pids+=($!)
$BIN/daphne -b 127.0.0.1 -p "$PORT" exchange.asgi:application & pids+=($!)

password=${DEMO_PASSWORD:-rechenboerse-demo}
cat <<MSG

  Rechenbörse läuft auf http://127.0.0.1:$PORT/   (Strg+C beendet alles)
  Logs von Worker und Scheduler: $VAR/log/worker.log, $VAR/log/beat.log

  Demo-Zugänge (Passwort: $password)
    startup@demo.example     Händler, Start-up (Käufer)
    startup2@demo.example    Händler, zweites Start-up (Käufer)
    provider@demo.example    Inhaber, Händler und Anbieter (DE-BY)
    provider2@demo.example   Inhaber, Händler und Anbieter (DE-NW)
    maker@demo.example       Demo-Market-Maker (stellt Kurse, handelt ab und zu)
    maker2@demo.example      zweiter Demo-Market-Maker
    ministry@demo.example    Beobachter (Ministerium)
    operator@demo.example    Betreiber: http://127.0.0.1:$PORT/admin/
    pending@demo.example     KYC eingereicht, noch nicht freigegeben

MSG
wait -n "${pids[@]}"
