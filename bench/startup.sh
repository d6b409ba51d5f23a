#!/usr/bin/env bash
# Start-up time of the built command: the median wall time of N runs of `payouts --help` (and of other
# commands that need no database), next to `node -e 0` on the same machine at the same moment, so a loaded
# machine shows as a slower baseline rather than a slower command.
# Usage: bash bench/startup.sh [N] [main.js]      (default 21 runs of dist/src/main.js)
set -euo pipefail
N=${1:-21}
MAIN=${2:-dist/src/main.js}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for spec in "node -e 0|node -e 0" "payouts --help|node $MAIN --help" "payouts run --help|node $MAIN run --help" "payouts validate (50 rows)|node $MAIN validate samples/payroll.csv --user-id M1"; do
  label=${spec%%|*}; cmd=${spec#*|}
  times=$(for _ in $(seq "$N"); do t0=$(date +%s%N); $cmd >/dev/null 2>&1 || true; t1=$(date +%s%N); echo $(( (t1 - t0) / 1000000 )); done | median)
  printf '%-28s %6s ms  (median of %s runs)\n' "$label" "$times" "$N"
done
