#!/usr/bin/env bash
# Network federation benchmark (issue 4): one coordinator and 10 site processes on 127.0.0.1,
# gRPC over mutual TLS, one round on NSL-KDD KDDTrain+ dealt round-robin to the sites.
#
# Prints the round's wall time broken down into training, transfer (upload and global model
# download as the sites saw them), scoring and merge, and the bytes that crossed the
# coordinator's TCP connections (TLS, HTTP/2 and gRPC framing, handshakes, control messages)
# against the model bytes they had to carry. The reference is the payload itself, measured in
# the same run: overhead = wire bytes / model bytes - 1 (target: under 5%).
#
# With FEDIDS_BENCH_LEDGER=1 the round is also recorded on a 3-node ledger cluster (Raft over
# mutual TLS) before its global model is served; bench/ledger_round.sh compares both modes.
# With FEDIDS_BENCH_REPLICATED=1 there is no coordinator process: the 3 ledger nodes serve the
# federation and their Raft leader coordinates, with the round state (uploads included) in the
# replicated log (wire bytes are not counted in this mode).
#
# Usage: bench/federation_loopback.sh [SITES] [TREES_PER_SITE] [STRATEGY]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
data="${FEDIDS_DATASETS:-$root/../shared/datasets}/nsl-kdd/KDDTrain+.txt"
n_sites="${1:-10}"
trees="${2:-50}"
strategy="${3:-top-per-site:10:wa:wv}"
cargo build --release --manifest-path "$root/Cargo.toml" >/dev/null
fedids="$root/target/release/fedids"
tmp="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT

"$fedids" pki init --dir "$tmp/pki" >/dev/null
"$fedids" pki issue coordinator --dir "$tmp/pki" >/dev/null
sites=()
for i in $(seq 1 "$n_sites"); do
    sites+=("site-$i")
    "$fedids" pki issue "site-$i" --dir "$tmp/pki" >/dev/null
done
awk -v n="$n_sites" -v dir="$tmp" '{ f = dir "/site-" ((NR - 1) % n + 1) ".csv"; print > f }' "$data"

ledger_args=()
replicated="${FEDIDS_BENCH_REPLICATED:-0}"
if [ "${FEDIDS_BENCH_LEDGER:-0}" = 1 ] || [ "$replicated" = 1 ]; then
    ports=()
    for i in 1 2 3; do
        ports+=("$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')")
        "$fedids" pki issue "node-$i" --dir "$tmp/pki" >/dev/null
    done
    peers="1=https://127.0.0.1:${ports[0]},2=https://127.0.0.1:${ports[1]},3=https://127.0.0.1:${ports[2]}"
    urls="https://127.0.0.1:${ports[0]},https://127.0.0.1:${ports[1]},https://127.0.0.1:${ports[2]}"
    site_list=$(IFS=,; echo "${sites[*]}")
    fed_urls=()
    for i in 1 2 3; do
        init=(); [ "$i" = 1 ] && init=(--init)
        role=()
        if [ "$replicated" = 1 ]; then
            fport="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
            fed_urls+=("https://127.0.0.1:$fport")
            role=(--federation-listen "127.0.0.1:$fport" --sites "$site_list"
                  --trees-per-site "$trees" --strategy "$strategy" --fetch-grace 2s)
        fi
        "$fedids" node --pki "$tmp/pki" --name "node-$i" --id "$i" --listen "127.0.0.1:${ports[$((i-1))]}" \
            --peers "$peers" --state "$tmp/node-$i" "${init[@]}" "${role[@]}" 2> "$tmp/node-$i.log" &
        pids+=("$!")
    done
    sleep 2
    if [ "$replicated" = 1 ]; then
        "$fedids" ledger genesis --pki "$tmp/pki" --name coordinator --node "$urls" \
            --sites "$site_list" --authorities node-1,node-2,node-3 >/dev/null
    else
        "$fedids" ledger genesis --pki "$tmp/pki" --name coordinator --node "$urls" \
            --sites "$site_list" --nodes node-1,node-2,node-3 >/dev/null
    fi
    ledger_args=(--ledger-node "$urls")
fi

t0=$(date +%s.%N)
if [ "$replicated" = 1 ]; then
    coordinator_args=(--coordinator "$(IFS=,; echo "${fed_urls[*]}")" --coordinator-name node-1,node-2,node-3)
else
    "$fedids" coordinator --pki "$tmp/pki" --state "$tmp/cstate" --listen 127.0.0.1:0 \
        --sites "$(IFS=,; echo "${sites[*]}")" "${ledger_args[@]}" \
        --ready-file "$tmp/ready.json" --trees-per-site "$trees" --strategy "$strategy" --json \
        > "$tmp/coordinator.json" 2> "$tmp/coordinator.log" &
    coordinator=$!
    pids+=("$coordinator")
    for _ in $(seq 1 300); do [ -s "$tmp/ready.json" ] && break; sleep 0.05; done
    addr=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['grpc'])" "$tmp/ready.json")
    coordinator_args=(--coordinator "https://$addr")
fi
site_pids=()
for s in "${sites[@]}"; do
    "$fedids" site --pki "$tmp/pki" --name "$s" "${coordinator_args[@]}" \
        --data "$tmp/$s.csv" --json > "$tmp/$s.json" 2> "$tmp/$s.log" &
    site_pids+=("$!")
    pids+=("$!")
done
for p in "${site_pids[@]}"; do wait "$p"; done
if [ "$replicated" = 1 ]; then
    # The leader writes the round report once its fetch grace is over.
    for _ in $(seq 1 200); do ls "$tmp"/node-*/round-1.json >/dev/null 2>&1 && break; sleep 0.05; done
    python3 -c "import json,sys,glob; r=json.load(open(glob.glob(sys.argv[1]+'/node-*/round-1.json')[0])); print(json.dumps({'rounds':[r],'wire':None}))" "$tmp" > "$tmp/coordinator.json"
else
    wait "$coordinator"
fi
t1=$(date +%s.%N)

python3 - "$tmp" "$n_sites" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" <<'PY'
import json, sys
tmp, n, wall = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
coord = json.load(open(f"{tmp}/coordinator.json"))
r = coord["rounds"][0]
sites = [json.load(open(f"{tmp}/site-{i}.json"))[0] for i in range(1, n + 1)]
def ms(key):
    v = [s["ms"][key] for s in sites]
    return sum(v) / len(v) / 1e3, max(v) / 1e3
print(f"{n} sites, strategy {r['strategy']}, {r['trees_per_site']} trees per site, "
      f"{sum(s['n_train_rows'] for s in sites):,} training rows in all")
print(f"whole run (processes started to all exited): {wall:.2f} s")
print(f"round at the coordinator: upload phase {r['phase_ms']['upload']/1e3:.2f} s, "
      f"scoring phase {r['phase_ms']['scoring']/1e3:.2f} s, merge {r['phase_ms']['merge']/1e3:.3f} s "
      f"(merge includes recording the round on the ledger when there is one)")
print("per site (mean / max seconds):")
for key, label in [("train", "training"), ("upload", "upload (transfer)"),
                   ("wait_candidates", "waiting for other uploads"), ("scoring", "scoring"),
                   ("wait_global", "waiting for the merge"), ("fetch", "download + verify global")]:
    mean, mx = ms(key)
    print(f"  {label:<28} {mean:7.3f} / {mx:7.3f}")
site_round = [sum(v for k, v in s["ms"].items() if k not in ("wait_round", "evaluate")) for s in sites]
print(f"site round (training to verified global model), mean / max: "
      f"{sum(site_round)/n/1e3:.3f} / {max(site_round)/1e3:.3f} s")
uploads = sum(u["n_bytes"] for u in r["uploads"].values())
global_bytes = r["global"]["n_bytes"] * len(r["global"]["merged_sites"])
candidates = sum(s["candidate_bytes"] for s in sites)
model = uploads + global_bytes + candidates
print(f"model bytes: {uploads:,} uploaded + {candidates:,} candidate trees sent for scoring + "
      f"{global_bytes:,} global downloads = {model:,}")
if coord["wire"] is not None:
    wire = coord["wire"]["received"] + coord["wire"]["sent"]
    print(f"wire bytes at the coordinator: {coord['wire']['received']:,} received + "
          f"{coord['wire']['sent']:,} sent = {wire:,}")
    print(f"ratio wire / model bytes: {wire / model:.4f} (protocol overhead {100 * (wire / model - 1):.2f}%, target under 5%)")
print(f"global model: {r['global']['n_trees']} trees; site accuracy on own validation rows: "
      f"local mean {sum(s['local']['accuracy'] for s in sites)/n:.4f}, "
      f"global mean {sum(s['global']['accuracy'] for s in sites)/n:.4f}")
PY
