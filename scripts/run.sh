#!/usr/bin/env bash
# Brings up the whole exchange: ASGI server (HTTP + WebSockets), Celery worker
# and beat, on the embedded default unless DATABASE_URL/REDIS_URL are set.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
PORT=${PORT:-8000}
# Links in e-mails sent outside a request (Celery jobs) point at this server.
export SITE_URL=${SITE_URL:-http://127.0.0.1:$PORT}

$BIN/python manage.py migrate --no-input -v0
$BIN/python manage.py seed_demo

pids=()
cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; }
trap cleanup INT TERM EXIT

mkdir -p var/log
$BIN/celery -A exchange worker --pool=threads --concurrency=4 --loglevel=INFO >var/log/worker.log 2>&1 & pids+=($!)
$BIN/celery -A exchange beat --loglevel=INFO >var/log/beat.log 2>&1 & pids+=($!)
$BIN/daphne -b 127.0.0.1 -p "$PORT" exchange.asgi:application & pids+=($!)

password=${DEMO_PASSWORD:-rechenboerse-demo}
cat <<MSG

  Rechenbörse läuft auf http://127.0.0.1:$PORT/   (Strg+C beendet alles)
  Logs von Worker und Scheduler: var/log/worker.log, var/log/beat.log

  Demo-Zugänge (Passwort: $password)
    startup@demo.example     Händler, Start-up (Käufer)
    startup2@demo.example    Händler, zweites Start-up (Käufer)
    provider@demo.example    Inhaber, Händler und Anbieter (DE-BY)
    provider2@demo.example   Inhaber, Händler und Anbieter (DE-NW)
    ministry@demo.example    Beobachter (Ministerium)
    operator@demo.example    Betreiber: http://127.0.0.1:$PORT/admin/
    pending@demo.example     KYC eingereicht, noch nicht freigegeben

MSG
wait -n "${pids[@]}"
