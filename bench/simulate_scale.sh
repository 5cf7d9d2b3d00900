#!/usr/bin/env bash
# Scale benchmark for the in-process federation: a 100-site iid simulation on KDD Cup 99 10%
# (issue 3 target: under a minute on this 2-core machine). The reference in the same script is a
# centralized `fedids train` of 100 trees on the same file; the script prints both wall times and
# their ratio.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${FEDIDS_DATASETS:-$root/../shared/datasets}/kdd99/kddcup99_10_percent.csv"
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null
fedids="$root/target/release/fedids"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

t0=$(date +%s.%N)
"$fedids" train --data "$data" --out "$tmp/central.fedids" --trees 100 --quiet >/dev/null
t1=$(date +%s.%N)
"$fedids" simulate --data "$data" --partition iid --sites 100 --trees-per-site 10 --central-trees 100 \
    --strategy all,top-global:100,cross-site:100,weighted:100 --seeds 1 --out "$tmp/report" --quiet > "$tmp/table.md"
t2=$(date +%s.%N)

central=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')
sim=$(awk -v a="$t1" -v b="$t2" 'BEGIN { print b - a }')
cat "$tmp/table.md" | sed -n '/| model/,/^$/p'
printf 'centralized fedids train (100 trees, 494,020 rows): %.1f s\n' "$central"
printf '100-site iid simulation (10 trees per site, 4 strategies, centralized and local-only baselines): %.1f s\n' "$sim"
printf 'ratio simulation / centralized training: %.1fx (target: simulation under 60 s)\n' \
    "$(awk -v s="$sim" -v c="$central" 'BEGIN { print s / c }')"
