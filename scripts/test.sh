#!/usr/bin/env bash
# The whole suite on real PostgreSQL and Redis, browser journeys in Chromium.
set -uo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
  echo "installing chromium with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

eval "$(scripts/services.sh)" || { echo "could not provide PostgreSQL and Redis" >&2; exit 1; }
trap scripts/services-stop.sh EXIT
export REDIS_PREFIX="rbtest-$$"
export VAR_DIR="$PWD/var/test"
mkdir -p test-artifacts
.venv/bin/python -m pytest "$@"
