#!/usr/bin/env bash
# Added latency per federation round without a single coordinator (issue 5): the 10-site
# loopback round of bench/federation_loopback.sh in three modes, in the same script:
#   single      one coordinator process, no ledger (the reference);
#   ledger      one coordinator process recording the round on a 3-node ledger;
#   replicated  no coordinator process: the 3 ledger nodes' Raft leader coordinates, with every
#               upload, score and the global model committed to the replicated log first.
# Prints, per mode, the mean over runs of the sites' round (training to verified global model),
# their upload time, and the coordinator's merge step (which includes the ledger writes).
#
# Usage: bench/replicated_round.sh [RUNS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
reps="${1:-3}"
for mode in single ledger replicated; do
    case "$mode" in
        single) env=(FEDIDS_BENCH_LEDGER=0 FEDIDS_BENCH_REPLICATED=0) ;;
        ledger) env=(FEDIDS_BENCH_LEDGER=1 FEDIDS_BENCH_REPLICATED=0) ;;
        replicated) env=(FEDIDS_BENCH_LEDGER=0 FEDIDS_BENCH_REPLICATED=1) ;;
    esac
    for _ in $(seq 1 "$reps"); do
        env "${env[@]}" "$here/federation_loopback.sh" 10 50 2>/dev/null | awk -v m="$mode" '
            /^site round/ { split($0, a, ": "); split(a[2], b, " "); round = b[1] }
            /upload \(transfer\)/ { upload = $3 }
            /round at the coordinator/ { for (i = 1; i <= NF; i++) if ($i == "merge") merge = $(i+1) }
            END { print m, round, upload, merge }'
    done
done | python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
modes = ["single", "ledger", "replicated"]
mean = lambda xs: sum(xs) / len(xs)
stats = {}
for m in modes:
    r = [list(map(float, x[1:])) for x in rows if x[0] == m]
    stats[m] = [mean([v[i] for v in r]) for i in range(3)]
    print(f"{m:<11} site round {stats[m][0]:.3f} s, upload {stats[m][1]:.3f} s, merge step {stats[m][2]*1e3:.1f} ms ({len(r)} runs)")
base = stats["single"][0]
for m in modes[1:]:
    print(f"{m}: added latency per round {(stats[m][0]-base)*1e3:+.0f} ms, ratio {stats[m][0]/base:.2f}x the single coordinator")
'
