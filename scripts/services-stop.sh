#!/usr/bin/env bash
# Stops the throwaway services that scripts/services.sh started, if any.
cd "$(dirname "$0")/.." || exit 0
for f in var/test-services/stop-*; do [ -f "$f" ] && { bash "$f" >/dev/null 2>&1 || true; rm -f "$f"; }; done
exit 0
