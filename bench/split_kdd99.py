#!/usr/bin/env python3
"""Seeded, stratified 80/20 split of the KDD Cup 99 10% file, done once per benchmark run.

Usage: split_kdd99.py SOURCE_CSV OUT_DIR SEED

Writes OUT_DIR/kdd99_train.csv and OUT_DIR/kdd99_test.csv: the header line followed by the
original lines, byte for byte, in their original relative order. Stratified on the 5-class
category (normal, DoS, Probe, R2L, U2R) of each row's label, test_size=0.2, via
sklearn.model_selection.train_test_split(random_state=SEED). Prints one JSON line describing the
split. Run as a separate process by vs_sklearn.py so that the orchestrator stays small (a child's
ru_maxrss on Linux includes its parent's peak RSS at fork/exec time).
"""

import hashlib
import json
import os
import sys

import numpy as np
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_run import CATEGORY_OF  # noqa: E402


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    src, out_dir, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(src, "rb") as f:
        data = f.read()
    lines = data.splitlines(keepends=True)
    del data
    header, rows = lines[0], lines[1:]
    if not header.startswith(b"duration,"):
        raise SystemExit(f"{src}: expected a header line starting with 'duration,'")
    rows = [r if r.endswith(b"\n") else r + b"\n" for r in rows if r.strip()]
    labels = [r.rstrip(b"\r\n").rsplit(b",", 1)[1].decode() for r in rows]
    unknown = sorted(set(labels) - set(CATEGORY_OF))
    if unknown:
        raise SystemExit(f"{src}: unknown labels {unknown}")
    strata = np.array([CATEGORY_OF[l] for l in labels])
    idx = np.arange(len(rows))
    train_idx, test_idx = train_test_split(idx, test_size=0.2, random_state=seed, stratify=strata)
    os.makedirs(out_dir, exist_ok=True)
    info = {"source": src, "seed": seed, "test_size": 0.2, "stratify": "5-class category",
            "n_rows": len(rows)}
    for name, part in (("train", np.sort(train_idx)), ("test", np.sort(test_idx))):
        path = os.path.join(out_dir, f"kdd99_{name}.csv")
        h = hashlib.sha256()
        with open(path, "wb") as f:
            for chunk in (header, *(rows[i] for i in part)):
                f.write(chunk)
                h.update(chunk)
        counts = {c: int(n) for c, n in zip(*np.unique(strata[part], return_counts=True))}
        info[name] = {"path": path, "n_rows": int(len(part)), "sha256": h.hexdigest(),
                      "category_counts": counts}
    sys.stdout.write(json.dumps(info) + "\n")


if __name__ == "__main__":
    main()
