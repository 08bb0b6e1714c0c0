#!/usr/bin/env bash
# The setup part of `make run`, also used by the embedded-default test
# (tests/exchange/test_embedded_journey.py): starts the embedded PostgreSQL
# and Redis under $VAR_DIR (default var/) for whichever of DATABASE_URL and
# REDIS_URL is unset (exchange/embedded.py), migrates and loads the demo data.
# Prints `export DATABASE_URL=... REDIS_URL=...` on stdout for the caller's eval;
# `.venv/bin/python -m exchange.embedded stop` stops the services again.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}

# Assigned first: a failed start stops here (set -e does not see through eval "$(...)").
exports=$($BIN/python -m exchange.embedded start)
eval "$exports"
$BIN/python manage.py migrate --no-input -v0 >&2
$BIN/python manage.py seed_demo >&2
echo "export DATABASE_URL='$DATABASE_URL' REDIS_URL='$REDIS_URL'"
