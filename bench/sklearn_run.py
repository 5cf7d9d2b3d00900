#!/usr/bin/env python3
"""One scikit-learn RandomForest run for the fedids comparison benchmark.

Usage:
    sklearn_run.py TRAIN_CSV TEST_CSV FORMAT TASK SEED N_JOBS [--trees N] [--predict-runs N]
                   [--warmup-seconds S] [--save-model PATH | --predict-only PATH]

FORMAT is nsl-kdd (no header, 43 columns: 41 features, attack name, difficulty) or kdd99 (header
line, 42 columns: 41 features, label). TASK is binary (normal vs attack) or multiclass (normal,
DoS, Probe, R2L, U2R).

Encoding mirrors fedids-data: the three symbolic columns (protocol_type, service, flag) become
ordinal codes over their categories sorted alphabetically, learned on the training file; a test
value not seen in training gets the code len(categories). All features are float32.

Timing: fit_seconds covers `clf.fit(X_train, y_train)` only; predict_seconds covers
`clf.predict(X_test)` only (batch prediction on the already-loaded matrix): the median of
--predict-runs runs (each in predict_runs_seconds), which must all give the same predictions.
Before them, with --warmup-seconds S > 0, untimed predictions run until S seconds have passed
(at least one; their count is warmup_runs). CSV loading and encoding are timed separately as
load_seconds.

--save-model PATH pickles the fitted forest and the category dictionaries after the timed
predictions. --predict-only PATH loads such a file instead of reading TRAIN_CSV and fitting, and
times predictions on TEST_CSV the same way (for alternating prediction rounds with fedids); its
JSON object has mode "predict-only" and no fit or training fields.

Prints exactly one JSON object on one line on stdout. Anything else goes to stderr.
"""

import argparse
import json
import pickle
import sys
import time

import numpy as np
import pandas as pd
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

FEATURES = [
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land",
    "wrong_fragment", "urgent", "hot", "num_failed_logins", "logged_in", "num_compromised",
    "root_shell", "su_attempted", "num_root", "num_file_creations", "num_shells",
    "num_access_files", "num_outbound_cmds", "is_host_login", "is_guest_login", "count",
    "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count",
    "dst_host_srv_count", "dst_host_same_srv_rate", "dst_host_diff_srv_rate",
    "dst_host_same_src_port_rate", "dst_host_srv_diff_host_rate", "dst_host_serror_rate",
    "dst_host_srv_serror_rate", "dst_host_rerror_rate", "dst_host_srv_rerror_rate",
]
assert len(FEATURES) == 41
CATEGORICAL = ["protocol_type", "service", "flag"]

# Attack name -> category, from ../shared/datasets/README.md (includes the names that occur
# only in KDDTest+). An unknown name is an error, never silently mapped.
CATEGORY_OF = {"normal": "normal"}
for _cat, _names in {
    "DoS": "back land neptune pod smurf teardrop mailbomb apache2 udpstorm processtable",
    "Probe": "satan ipsweep nmap portsweep mscan saint",
    "R2L": "guess_passwd ftp_write imap phf multihop warezmaster warezclient spy xlock xsnoop "
           "snmpguess snmpgetattack sendmail named worm httptunnel",
    "U2R": "buffer_overflow loadmodule perl rootkit sqlattack xterm ps",
}.items():
    for _n in _names.split():
        CATEGORY_OF[_n] = _cat
CLASSES_MULTICLASS = ["normal", "DoS", "Probe", "R2L", "U2R"]
CLASSES_BINARY = ["normal", "attack"]


def read_table(path, fmt):
    """Read a file as (features DataFrame with canonical names, raw label Series).

    Numeric columns use pandas' own type inference (int64/float64, cast to float32 later); the
    symbolic columns and the label are read as strings.
    """
    if fmt == "nsl-kdd":
        header, names = None, FEATURES + ["label", "difficulty"]
    elif fmt == "kdd99":
        header, names = 0, FEATURES + ["label"]
    else:
        raise SystemExit(f"unknown format {fmt!r}")
    with open(path, encoding="utf-8") as f:
        n_cols = len(f.readline().split(","))
    if n_cols != len(names):
        raise SystemExit(f"{path}: expected {len(names)} columns for {fmt}, found {n_cols}")
    df = pd.read_csv(path, header=header, names=names, index_col=False, na_filter=False,
                     dtype={c: str for c in CATEGORICAL + ["label"]})
    return df[FEATURES], df["label"].str.strip()


def encode_labels(raw, task, path):
    unknown = sorted(set(raw.unique()) - set(CATEGORY_OF))
    if unknown:
        raise SystemExit(f"{path}: unknown attack names {unknown}")
    cat = raw.map(CATEGORY_OF)
    if task == "binary":
        return np.where(cat.to_numpy() == "normal", "normal", "attack")
    if task == "multiclass":
        return cat.to_numpy().astype(str)
    raise SystemExit(f"unknown task {task!r}")


def encode_features(feats, dictionaries):
    cols = {}
    for name in FEATURES:
        if name in CATEGORICAL:
            cats = dictionaries[name]
            index = {c: i for i, c in enumerate(cats)}
            unknown = len(cats)
            cols[name] = feats[name].map(lambda v: index.get(v, unknown)).to_numpy(np.float32)
        else:
            col = feats[name]
            if not pd.api.types.is_numeric_dtype(col):
                raise SystemExit(f"column {name} is not numeric (dtype {col.dtype})")
            cols[name] = col.to_numpy(np.float32)
    return np.ascontiguousarray(np.column_stack([cols[n] for n in FEATURES]), dtype=np.float32)


def timed_predictions(clf, X_test, args):
    """Untimed predictions for --warmup-seconds, then --predict-runs timed ones, which must agree:
    (predictions, seconds of each timed run, untimed count)."""
    warmup_runs = 0
    if args.warmup_seconds > 0:
        t0 = time.perf_counter()
        while warmup_runs == 0 or time.perf_counter() - t0 < args.warmup_seconds:
            clf.predict(X_test)
            warmup_runs += 1
    runs = []
    y_pred = None
    for _ in range(args.predict_runs):
        t0 = time.perf_counter()
        again = clf.predict(X_test)
        runs.append(time.perf_counter() - t0)
        if y_pred is None:
            y_pred = again
        elif not np.array_equal(again, y_pred):
            raise SystemExit("predictions differ between timing runs")
    return y_pred, runs, warmup_runs


def prediction_fields(n_test, runs, warmup_runs, y_test, y_pred):
    """The JSON fields on the timed predictions that both modes report."""
    predict_seconds = float(np.median(runs))
    return {
        "predict_seconds": predict_seconds,
        "predict_runs_seconds": runs,
        "warmup_runs": warmup_runs,
        "rows_per_second": n_test / predict_seconds,
        "accuracy": float(accuracy_score(y_test, y_pred)),
    }


def emit(out):
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


def predict_only(args):
    """Times predictions of a forest saved by --save-model on TEST_CSV."""
    try:
        with open(args.predict_only, "rb") as f:
            saved = pickle.load(f)
    except OSError as e:
        raise SystemExit(f"{args.predict_only}: cannot read the saved model: {e.strerror}")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError,
            TypeError, IndexError, KeyError) as e:
        raise SystemExit(f"{args.predict_only}: not a model saved by --save-model ({e})")
    if not (isinstance(saved, dict) and {"clf", "dictionaries", "format", "task"} <= set(saved)):
        raise SystemExit(f"{args.predict_only}: not a model saved by --save-model")
    if (saved["format"], saved["task"]) != (args.format, args.task):
        raise SystemExit(f"{args.predict_only} holds a {saved['format']} {saved['task']} model, "
                         f"not {args.format} {args.task}")
    clf = saved["clf"]
    clf.set_params(n_jobs=args.n_jobs)
    t0 = time.perf_counter()
    test_feats, test_raw = read_table(args.test_csv, args.format)
    X_test = encode_features(test_feats, saved["dictionaries"])
    y_test = encode_labels(test_raw, args.task, args.test_csv)
    load_seconds = time.perf_counter() - t0
    y_pred, runs, warmup_runs = timed_predictions(clf, X_test, args)
    emit({
        "tool": "scikit-learn",
        "mode": "predict-only",
        "sklearn_version": sklearn.__version__,
        "format": args.format,
        "task": args.task,
        "n_jobs": args.n_jobs,
        "n_test": int(X_test.shape[0]),
        "load_seconds": load_seconds,
        **prediction_fields(X_test.shape[0], runs, warmup_runs, y_test, y_pred),
    })


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("train_csv")
    ap.add_argument("test_csv")
    ap.add_argument("format", choices=["nsl-kdd", "kdd99"])
    ap.add_argument("task", choices=["binary", "multiclass"])
    ap.add_argument("seed", type=int)
    ap.add_argument("n_jobs", type=int)
    ap.add_argument("--trees", type=int, default=100)
    ap.add_argument("--predict-runs", type=int, default=1)
    ap.add_argument("--warmup-seconds", type=float, default=0.0)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--save-model", metavar="PATH")
    mode.add_argument("--predict-only", metavar="PATH")
    args = ap.parse_args()
    if args.predict_runs < 1:
        raise SystemExit("--predict-runs must be at least 1")
    if not args.warmup_seconds >= 0.0 or args.warmup_seconds == float("inf"):
        raise SystemExit("--warmup-seconds must be a finite number of seconds, 0 or more")

    if args.predict_only:
        predict_only(args)
        return

    t0 = time.perf_counter()
    train_feats, train_raw = read_table(args.train_csv, args.format)
    test_feats, test_raw = read_table(args.test_csv, args.format)
    dictionaries = {c: sorted(train_feats[c].unique()) for c in CATEGORICAL}
    X_train = encode_features(train_feats, dictionaries)
    X_test = encode_features(test_feats, dictionaries)
    y_train = encode_labels(train_raw, args.task, args.train_csv)
    y_test = encode_labels(test_raw, args.task, args.test_csv)
    del train_feats, test_feats, train_raw, test_raw
    load_seconds = time.perf_counter() - t0

    clf = RandomForestClassifier(
        n_estimators=args.trees,
        max_features="sqrt",
        max_depth=None,
        bootstrap=True,
        n_jobs=args.n_jobs,
        random_state=args.seed,
    )
    t0 = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_seconds = time.perf_counter() - t0

    y_pred, runs, warmup_runs = timed_predictions(clf, X_test, args)
    if args.save_model:
        with open(args.save_model, "wb") as f:
            pickle.dump({"clf": clf, "dictionaries": dictionaries, "format": args.format,
                         "task": args.task}, f, protocol=pickle.HIGHEST_PROTOCOL)

    # Detection rate = attack rows predicted as any attack class; false-alarm rate = normal rows
    # predicted as any attack class (the same definitions for both tasks).
    true_attack = y_test != "normal"
    pred_attack = y_pred != "normal"
    n_attack = int(true_attack.sum())
    n_normal = int((~true_attack).sum())
    classes = CLASSES_BINARY if args.task == "binary" else CLASSES_MULTICLASS
    out = {
        "tool": "scikit-learn",
        "sklearn_version": sklearn.__version__,
        "format": args.format,
        "task": args.task,
        "seed": args.seed,
        "n_jobs": args.n_jobs,
        "n_estimators": args.trees,
        "n_features": int(X_train.shape[1]),
        "max_features_per_split": int(clf.estimators_[0].max_features_),
        "n_train": int(X_train.shape[0]),
        "n_test": int(X_test.shape[0]),
        "load_seconds": load_seconds,
        "fit_seconds": fit_seconds,
        **prediction_fields(X_test.shape[0], runs, warmup_runs, y_test, y_pred),
        # average="macro" over the labels present in y_test or y_pred (sklearn's default).
        "macro_f1": float(f1_score(y_test, y_pred, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(y_test, y_pred, average="weighted", zero_division=0)),
        "detection_rate": float((true_attack & pred_attack).sum() / n_attack) if n_attack else None,
        "false_alarm_rate": float((~true_attack & pred_attack).sum() / n_normal) if n_normal else None,
        "classes": classes,
        "confusion_matrix": confusion_matrix(y_test, y_pred, labels=classes).tolist(),
        "mean_tree_depth": float(np.mean([e.get_depth() for e in clf.estimators_])),
        "mean_tree_leaves": float(np.mean([e.get_n_leaves() for e in clf.estimators_])),
    }
    emit(out)


if __name__ == "__main__":
    main()
