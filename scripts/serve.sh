#!/usr/bin/env bash
# Production processes of the exchange (docs/architecture.md, "Serving and
# connections"). Behind one reverse proxy (TLS, one host name):
#   /ws/    -> the ASGI server (WebSockets only)       $WS_BIND,   default 127.0.0.1:8002
#   the rest -> gunicorn, WSGI worker processes (HTTP) $HTTP_BIND, default 127.0.0.1:8001
#
#   scripts/serve.sh            all of it: http, ws, worker and beat
#   scripts/serve.sh http|ws|worker|beat   one role (e.g. one per systemd unit)
#
# Needs the production environment (PRODUCTION=1, SECRET_KEY, ALLOWED_HOSTS, SITE_URL,
# DATABASE_URL, REDIS_URL, BEHIND_TLS_PROXY=1 ...), migrations applied and
# static files collected (manage.py migrate; manage.py collectstatic).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
HTTP_BIND=${HTTP_BIND:-127.0.0.1:8001}
WS_BIND=${WS_BIND:-127.0.0.1:8002}
# Order entry is CPU-bound Python plus short waits on PostgreSQL: about two
# worker processes per core keeps the cores busy while one waits.
HTTP_WORKERS=${HTTP_WORKERS:-$(( 2 * $(nproc) ))}

role=${1:-all}
case "$role" in
  http)
    # gthread with one thread: one request at a time per process (no GIL
    # contention), but keep-alive connections are kept, unlike the sync worker.
    exec "$BIN/gunicorn" exchange.wsgi:application --bind "$HTTP_BIND" --workers "$HTTP_WORKERS" \
      --worker-class gthread --threads 1 --keep-alive 30 --max-requests 100000 --max-requests-jitter 1000 \
      --graceful-timeout 20 --timeout 60 --log-level "${GUNICORN_LOG_LEVEL:-warning}" ;;
  ws)
    host=${WS_BIND%:*}; port=${WS_BIND##*:}
    exec "$BIN/daphne" -b "$host" -p "$port" --proxy-headers exchange.asgi:application ;;
  worker)
    exec "$BIN/celery" -A exchange worker --pool=threads --concurrency="${CELERY_CONCURRENCY:-4}" --loglevel=INFO ;;
  beat)
    exec "$BIN/celery" -A exchange beat --loglevel=INFO ;;
  all)
    pids=()
    cleanup() { trap - INT TERM EXIT; kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; }
    trap cleanup INT TERM EXIT
    for one in http ws worker beat; do "$0" "$one" & pids+=($!); done
    wait -n "${pids[@]}" ;;
  *)
    echo "usage: $0 [http|ws|worker|beat|all]" >&2; exit 2 ;;
esac
