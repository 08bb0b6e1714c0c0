#!/usr/bin/env bash
# Runs every benchmark in bench/; each prints its figure beside its reference.
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
for script in bench/bench_*.py; do
  [ -e "$script" ] || { echo "no benchmarks yet"; exit 0; }
  echo "== $script"
  .venv/bin/python "$script" || status=1
done
exit $status
