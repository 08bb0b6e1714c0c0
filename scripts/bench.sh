#!/usr/bin/env bash
# Runs every benchmark in bench/; each prints its figures beside its reference
# and goals (docs/benchmarks.md). The HTTP benchmark drives the server with wrk
# (a client written in C): installed here with apt-get when missing.
set -uo pipefail
cd "$(dirname "$0")/.."
if ! command -v wrk >/dev/null; then
  echo "installing wrk with apt-get"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null \
    || { echo "wrk could not be installed"; exit 1; }
fi
status=0
for script in bench/bench_*.py; do
  [ -e "$script" ] || { echo "no benchmarks yet"; exit 0; }
  echo "== $script"
  .venv/bin/python "$script" || status=1
done
exit $status
