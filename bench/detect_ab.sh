#!/usr/bin/env bash
# Compares two builds of `fedids detect` on one input, runs alternating (old, new, old, new, ...),
# so that the host's slow spells hit both alike. Prints each run (wall, user and system seconds)
# and the medians: wall, CPU, CPU/wall (cores kept busy) and the paired wall ratio new/old.
#
# usage: bench/detect_ab.sh OLD_FEDIDS NEW_FEDIDS MODEL INPUT [PAIRS=20]
set -euo pipefail
old=$1 new=$2 model=$3 input=$4 pairs=${5:-20}
runs=$(mktemp)
trap 'rm -f "$runs"' EXIT
for _ in $(seq 1 "$pairs"); do
  for b in old new; do
    bin=$old; [ "$b" = new ] && bin=$new
    /usr/bin/time -f "$b %e wall %U user %S sys" "$bin" detect -q -m "$model" -i "$input" -o /dev/null 2>&1 | tail -1 | tee -a "$runs"
  done
done
python3 - "$runs" <<'PY'
import statistics as st, sys
wall, cpu = {}, {}
for line in open(sys.argv[1]):
    p = line.split()
    wall.setdefault(p[0], []).append(float(p[1]))
    cpu.setdefault(p[0], []).append(float(p[3]) + float(p[5]))
for b in ("old", "new"):
    busy = st.median(c / w for c, w in zip(cpu[b], wall[b]))
    print(f"{b}: {len(wall[b])} runs, wall median {st.median(wall[b]):.3f} s (min {min(wall[b]):.3f}), "
          f"CPU median {st.median(cpu[b]):.3f} s (min {min(cpu[b]):.3f}), CPU/wall median {busy:.2f}")
ratio = [n / o for n, o in zip(wall["new"], wall["old"])]
print(f"paired wall ratio new/old: median {st.median(ratio):.3f}; new faster in "
      f"{sum(r < 1 for r in ratio)} of {len(ratio)} pairs")
PY
