#!/usr/bin/env bash
# Added latency of the ledger per federation round (issue 5): the 10-site loopback round of
# bench/federation_loopback.sh without a ledger (the single-coordinator reference) and with the
# round recorded on a 3-node Raft ledger, in the same script. The ledger's cost sits in the merge
# step: the sites' signed contributions and the signed aggregation are committed before the
# global model is served.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reps="${1:-3}"
for mode in 0 1; do
    for r in $(seq 1 "$reps"); do
        FEDIDS_BENCH_LEDGER=$mode "$here/federation_loopback.sh" 10 50 2>/dev/null |
            awk -v m="$mode" '/round at the coordinator/ { for (i = 1; i <= NF; i++) if ($i == "merge") print m, $(i+1) }'
    done
done | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
base = [float(v) for m, v in rows if m == "0"]
led = [float(v) for m, v in rows if m == "1"]
mean = lambda xs: sum(xs) / len(xs)
print(f"merge step, single coordinator: {mean(base)*1e3:.1f} ms (runs: {[round(x*1e3,1) for x in base]})")
print(f"merge step, recorded on the ledger: {mean(led)*1e3:.1f} ms (runs: {[round(x*1e3,1) for x in led]})")
print(f"added latency per round: {(mean(led)-mean(base))*1e3:.1f} ms; ratio {mean(led)/mean(base):.1f}x")
'
