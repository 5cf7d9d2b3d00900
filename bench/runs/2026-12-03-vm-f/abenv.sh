#!/bin/bash
# abenv.sh BIN MODEL DATA ROUNDS "ENV1" "ENV2" ...
B=$1; M=$2; D=$3; R=$4; shift 4
for r in $(seq $R); do
  for e in "$@"; do
    s=$(env $e $B eval --model $M --data $D --timing-runs 15 --timing-warmup 0.5 --json | python3 -c "import json,sys; d=json.load(sys.stdin); print(d['rows_per_second'])")
    echo "$e $s"
  done
done | python3 -c "
import sys,statistics as st
d={}
for l in sys.stdin:
    b,v=l.rsplit(' ',1); d.setdefault(b,[]).append(float(v))
for b,v in d.items(): print(b, 'median %.0f'%st.median(v), 'min %.0f max %.0f'%(min(v),max(v)), len(v))
"
