#!/usr/bin/env bash
# Times `predict` (classes) with each prediction kernel in turn, in rounds, on models and test
# files you give, one thread: the fastest run of each kernel per round (`predict_rate` example).
#
#   bench/predict_rate_kernels.sh ROUNDS RUNS MODEL DATA [MODEL DATA ...]
#
# Kernels: `sets` and `portable` (and `avx512` where the CPU has AVX-512F).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
rounds="$1" runs="$2"
shift 2
cargo build --release -q -p fedids-forest --example predict_rate
kernels=(sets portable)
if grep -q avx512f /proc/cpuinfo 2>/dev/null; then kernels+=(avx512); fi
while (($# >= 2)); do
  model="$1" data="$2"
  shift 2
  echo "== $model on $data"
  for ((r = 0; r < rounds; r++)); do
    for k in "${kernels[@]}"; do
      printf 'round %d %-8s ' "$r" "$k"
      FEDIDS_KERNEL="$k" RAYON_NUM_THREADS=1 target/release/examples/predict_rate "$model" "$data" "$runs"
    done
  done
done
