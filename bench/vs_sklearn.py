#!/usr/bin/env python3
"""fedids versus scikit-learn RandomForestClassifier, same configuration, same run.

Normally started by bench/vs_sklearn.sh (which creates the venv and builds fedids). Runs every
selected workload with both tools, each tool run in its own child process, and writes
bench/runs/<YYYY-MM-DD>-<hostname>/{results.csv, comparisons.csv, results.json, table.md, logs/}.

This orchestrator imports only (a small part of) the standard library on purpose: on Linux a
child's ru_maxrss includes the peak RSS of the parent that forked it, so the parent must stay small
(its own peak RSS at each spawn is recorded as rss_floor_mib). Heavy work (the KDD99 split,
sklearn) runs in children; checksums and version look-ups happen after the last measured run.

Exit status: 0 if every run of every selected workload succeeded and passed its sanity checks,
1 otherwise. Missed performance targets are reported, never turned into a failure.
"""

import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
DEFAULT_DATASETS = os.environ.get(
    "FEDIDS_DATASETS",
    os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "datasets")),
)

# sha256 from the datasets README; a mismatch is recorded (and printed) but does not stop the run.
EXPECTED_SHA256 = {
    "nsl-kdd/KDDTrain+.txt": "1b86d2f957b33082081bba410fe129b475efebcc13c9014c3f447c8271aadf95",
    "nsl-kdd/KDDTest+.txt": "fa46b0935342616aa83b7c2578db355b6a7aaabbc492248172c7a1e8b7ab8f84",
    "kdd99/kddcup99_10_percent.csv": "776b67b947d9350cb76266dfb29f44142c03fdf514abc36a1791d2937ff7ebed",
}

WORKLOADS = {
    # name: (format, task, source) ; source "nsl" = KDDTrain+/KDDTest+, "kdd99" = seeded split
    "nsl-binary": ("nsl-kdd", "binary", "nsl"),
    "nsl-5class": ("nsl-kdd", "multiclass", "nsl"),
    "kdd99-binary": ("kdd99", "binary", "kdd99"),
    "kdd99-5class": ("kdd99", "multiclass", "kdd99"),
}

# Targets are printed next to the ratios; they never change the exit status.
TARGET_FIT_SPEEDUP = 5.0
TARGET_PREDICT_RATIO = 10.0
TARGET_MEMORY_RATIO = 1.0
TARGET_ACC_DELTA = {"nsl-binary": -0.5}  # points; every other workload: not worse (>= 0)

THREAD_ENV_VARS = ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                   "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS", "RAYON_NUM_THREADS"]

FEDIDS_TRAIN_KEYS = ["fit_seconds", "load_seconds", "n_rows", "n_trees", "model_bytes", "model_hash"]
FEDIDS_EVAL_KEYS = ["predict_seconds", "rows_per_second", "n_rows", "metrics"]
FEDIDS_METRIC_KEYS = ["accuracy", "macro_f1"]

CSV_COLUMNS = [
    "workload", "tool", "status", "error", "format", "task", "trees", "threads", "seed",
    "n_train", "n_test", "load_seconds", "fit_seconds", "predict_seconds", "rows_per_second",
    "accuracy", "macro_f1", "weighted_f1", "detection_rate", "false_alarm_rate",
    "peak_rss_mib", "train_rss_mib", "eval_rss_mib", "rss_floor_mib", "wall_seconds",
    "cpu_user_seconds", "cpu_sys_seconds", "model_bytes", "model_hash",
]
CMP_COLUMNS = [
    "workload", "fit_speedup", "fit_target_met", "predict_ratio", "predict_target_met",
    "predict_ratio_single_run", "predict_rounds",
    "accuracy_delta_points", "accuracy_target_points", "accuracy_target_met", "memory_ratio",
    "memory_target_met",
]


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def self_peak_rss_kib():
    """This process's peak RSS (VmHWM), the floor under every child's ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def run_child(cmd, env, log_path, timeout):
    """Run cmd to completion; return exit code, output, and the child's own rusage via wait4."""
    floor_kib = self_peak_rss_kib()
    with open(log_path + ".stdout", "wb") as out, open(log_path + ".stderr", "wb") as err:
        t0 = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, env=env)
        except OSError as e:
            return {"rc": None, "stdout": "", "stderr": f"cannot start {cmd[0]}: {e}",
                    "maxrss_kib": None, "floor_kib": floor_kib, "wall": 0.0, "utime": None,
                    "stime": None, "timed_out": False}
        state = {"done": False, "timed_out": False}

        def kill():
            if not state["done"]:
                state["timed_out"] = True
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

        timer = threading.Timer(timeout, kill)
        timer.start()
        while True:
            try:
                _, status, ru = os.wait4(proc.pid, 0)
                break
            except InterruptedError:
                continue
        state["done"] = True
        timer.cancel()
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # keep Popen from waiting again
    with open(log_path + ".stdout", encoding="utf-8", errors="replace") as f:
        stdout = f.read()
    with open(log_path + ".stderr", encoding="utf-8", errors="replace") as f:
        stderr = f.read()
    return {"rc": proc.returncode, "stdout": stdout, "stderr": stderr,
            "maxrss_kib": ru.ru_maxrss, "floor_kib": floor_kib, "wall": wall,
            "utime": ru.ru_utime, "stime": ru.ru_stime, "timed_out": state["timed_out"]}


def parse_json_object(text):
    """The JSON object a tool printed: the whole stdout, or else its last line that is one."""
    text = text.strip()
    try:
        obj = json.loads(text)
        if isinstance(obj, dict):
            return obj
    except ValueError:
        pass
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
                if isinstance(obj, dict):
                    return obj
            except ValueError:
                continue
    return None


def child_failure(what, res):
    if res["rc"] is None:
        return f"{what}: {res['stderr']}"
    if res["timed_out"]:
        return f"{what}: killed after the timeout"
    if res["rc"] != 0:
        return f"{what}: exit status {res['rc']}"
    return None


def report_child_failure(what, res):
    status = "could not start" if res["rc"] is None else f"exit status {res['rc']}"
    log(f"  FAILED {what} ({status}); stderr:")
    tail = res["stderr"].strip()[-4000:] or "(empty)"
    for line in tail.splitlines():
        log(f"    | {line}")
    if res["stdout"].strip():
        log("  stdout:")
        for line in res["stdout"].strip()[-2000:].splitlines():
            log(f"    | {line}")


def mib(kib):
    return None if kib is None else kib / 1024.0


def sha256_file(path):
    import hashlib  # imported late: it (like importlib.metadata) raises this process's peak RSS

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cmd_output(cmd, cwd=None):
    try:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    return (r.stdout.strip() if r.returncode == 0 else None), r.stderr.strip()


def cpu_model():
    """The CPU's model name, with its family/model numbers and the SIMD extensions fedids' kernels
    care about (a VM may report only "AMD EPYC")."""
    info = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if ":" in line:
                    k, v = (x.strip() for x in line.split(":", 1))
                    info.setdefault(k, v)
    except OSError:
        pass
    name = info.get("model name") or platform.processor() or "unknown"
    if "cpu family" in info and "model" in info:
        name += f", family {info['cpu family']} model {info['model']}"
    if "flags" in info:
        flags = set(info["flags"].split())
        simd = [f for f in ("avx2", "avx512f") if f in flags]
        name += f", {'+'.join(simd) if simd else 'no AVX2'}"
    return name


def mem_total_mib():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return None


def loadavg():
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return None


def pkg_version(name):
    import importlib.metadata

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def collect_metadata(args, fedids_bin, datasets):
    commit, _ = cmd_output(["git", "rev-parse", "HEAD"], cwd=ROOT)
    porcelain, _ = cmd_output(["git", "status", "--porcelain"], cwd=ROOT)
    branch, _ = cmd_output(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=ROOT)
    fedids_version, fedids_version_err = (None, "binary not found")
    fedids_sha = None
    if os.path.isfile(fedids_bin):
        fedids_version, fedids_version_err = cmd_output([fedids_bin, "--version"])
        fedids_sha = sha256_file(fedids_bin)
    rustc, _ = cmd_output(["rustc", "--version"], cwd=ROOT)
    cargo, _ = cmd_output(["cargo", "--version"], cwd=ROOT)
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "command": os.environ.get("VS_SKLEARN_COMMAND") or " ".join([sys.executable] + sys.argv),
        "python_command": " ".join([sys.executable] + sys.argv),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "hostname": socket.gethostname(),
        "git_commit": commit or "unknown (no commit yet or not a git checkout)",
        "git_branch": branch,
        "git_dirty_files": None if porcelain is None else len(porcelain.splitlines()),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity_count": affinity,
        "mem_total_mib": mem_total_mib(),
        "kernel": platform.platform(),
        "versions": {
            "python": platform.python_version(),
            "scikit-learn": pkg_version("scikit-learn"),
            "numpy": pkg_version("numpy"),
            "pandas": pkg_version("pandas"),
            "scipy": pkg_version("scipy"),
            "joblib": pkg_version("joblib"),
            "threadpoolctl": pkg_version("threadpoolctl"),
            "fedids": fedids_version or f"unavailable ({(fedids_version_err or '').strip()[:200]})",
            "rustc": rustc,
            "cargo": cargo,
        },
        "fedids_binary": fedids_bin,
        "fedids_binary_sha256": fedids_sha,
        "datasets_dir": datasets,
        "config": {
            "trees": args.trees, "threads": args.threads, "seed": args.seed,
            "predict_runs": args.predict_runs,
            "warmup_seconds": args.warmup_seconds,
            "predict_rounds": args.predict_rounds,
            "split_seed": args.split_seed, "quick": args.quick, "workloads": args.workloads,
            "sklearn": f"RandomForestClassifier(n_estimators={args.trees}, max_features='sqrt', "
                       f"max_depth=None, bootstrap=True, n_jobs={args.threads}, "
                       f"random_state={args.seed})",
            "fedids": f"--trees {args.trees} --max-features sqrt --sample bootstrap "
                      f"--seed {args.seed} --threads {args.threads} (max depth: fedids default, "
                      f"unlimited)",
            "thread_env": {k: str(args.threads) for k in THREAD_ENV_VARS},
        },
    }


def empty_row(workload, tool, args):
    fmt, task, _ = WORKLOADS[workload]
    row = {c: None for c in CSV_COLUMNS}
    row.update(workload=workload, tool=tool, status="failed", error="", format=fmt, task=task,
               trees=args.trees, threads=args.threads, seed=args.seed)
    return row


def sklearn_cmd(workload, train, test, args, *extra):
    """sklearn_run.py on these files, with the benchmark's timing options."""
    fmt, task, _ = WORKLOADS[workload]
    return [sys.executable, os.path.join(BENCH_DIR, "sklearn_run.py"), train, test, fmt, task,
            str(args.seed), str(args.threads), *extra, "--predict-runs", str(args.predict_runs),
            "--warmup-seconds", str(args.warmup_seconds)]


def fedids_eval_cmd(model, test, args):
    """`fedids eval` of a model on a file, with the benchmark's timing options."""
    return [args.fedids, "eval", "--model", model, "--data", test, "--threads",
            str(args.threads), "--timing-runs", str(args.predict_runs),
            "--timing-warmup", str(args.warmup_seconds), "--json", "--quiet"]


def run_sklearn(workload, train, test, args, env, logs_dir, save_model=None):
    row = empty_row(workload, "scikit-learn", args)
    cmd = sklearn_cmd(workload, train, test, args, "--trees", str(args.trees))
    if save_model:
        cmd += ["--save-model", save_model]
    log(f"  scikit-learn: {' '.join(cmd[1:])}")
    res = run_child(cmd, env, os.path.join(logs_dir, f"{workload}.sklearn"), args.timeout)
    row.update(wall_seconds=res["wall"], cpu_user_seconds=res["utime"],
               cpu_sys_seconds=res["stime"], peak_rss_mib=mib(res["maxrss_kib"]),
               rss_floor_mib=mib(res["floor_kib"]))
    fail = child_failure("sklearn_run.py", res)
    out = None if fail else parse_json_object(res["stdout"])
    if fail is None and out is None:
        fail = "sklearn_run.py printed no JSON object"
    if fail:
        report_child_failure("scikit-learn", res)
        row["error"] = fail
        return row, None
    for k in ("n_train", "n_test", "load_seconds", "fit_seconds", "predict_seconds",
              "rows_per_second", "accuracy", "macro_f1", "weighted_f1", "detection_rate",
              "false_alarm_rate"):
        row[k] = out.get(k)
    row["status"] = "ok"
    return row, out


def run_fedids(workload, train, test, args, env, logs_dir, tmp_dir, expect):
    """expect: {"n_train": int, "n_test": int} from the sklearn run of the same files, if any."""
    fmt, task, _ = WORKLOADS[workload]
    row = empty_row(workload, "fedids", args)
    model = os.path.join(tmp_dir, f"{workload}.fedids-model")
    train_cmd = [args.fedids, "train", "--data", train, "--format", fmt, "--task", task,
                 "--out", model, "--trees", str(args.trees), "--max-features", "sqrt",
                 "--sample", "bootstrap", "--seed", str(args.seed), "--threads",
                 str(args.threads), "--json", "--quiet"]
    log(f"  fedids: {' '.join(train_cmd[1:])}")
    tr = run_child(train_cmd, env, os.path.join(logs_dir, f"{workload}.fedids-train"), args.timeout)
    row.update(train_rss_mib=mib(tr["maxrss_kib"]), peak_rss_mib=mib(tr["maxrss_kib"]),
               wall_seconds=tr["wall"], cpu_user_seconds=tr["utime"], cpu_sys_seconds=tr["stime"],
               rss_floor_mib=mib(tr["floor_kib"]))
    fail = child_failure("fedids train", tr)
    tout = None if fail else parse_json_object(tr["stdout"])
    if fail is None and tout is None:
        fail = "fedids train printed no JSON object on stdout"
    if fail:
        report_child_failure("fedids train", tr)
        row["error"] = fail
        return row, None
    missing = [k for k in FEDIDS_TRAIN_KEYS if k not in tout]
    row.update(n_train=tout.get("n_rows"), load_seconds=tout.get("load_seconds"),
               fit_seconds=tout.get("fit_seconds"), model_bytes=tout.get("model_bytes"),
               model_hash=tout.get("model_hash"))

    eval_cmd = fedids_eval_cmd(model, test, args)
    log(f"  fedids: {' '.join(eval_cmd[1:])}")
    ev = run_child(eval_cmd, env, os.path.join(logs_dir, f"{workload}.fedids-eval"), args.timeout)
    row["eval_rss_mib"] = mib(ev["maxrss_kib"])
    row["wall_seconds"] = tr["wall"] + ev["wall"]
    if ev["utime"] is not None:
        row["cpu_user_seconds"] = tr["utime"] + ev["utime"]
        row["cpu_sys_seconds"] = tr["stime"] + ev["stime"]
    if ev["maxrss_kib"] is not None:
        row["peak_rss_mib"] = mib(max(tr["maxrss_kib"], ev["maxrss_kib"]))
        row["rss_floor_mib"] = mib(max(tr["floor_kib"] or 0, ev["floor_kib"] or 0))
    fail = child_failure("fedids eval", ev)
    eout = None if fail else parse_json_object(ev["stdout"])
    if fail is None and eout is None:
        fail = "fedids eval printed no JSON object on stdout"
    if fail:
        report_child_failure("fedids eval", ev)
        row["error"] = fail
        return row, {"train": tout}
    metrics = eout.get("metrics") if isinstance(eout.get("metrics"), dict) else {}
    missing += [k for k in FEDIDS_EVAL_KEYS if k not in eout]
    missing += [f"metrics.{k}" for k in FEDIDS_METRIC_KEYS if k not in metrics]
    row.update(n_test=eout.get("n_rows"), predict_seconds=eout.get("predict_seconds"),
               rows_per_second=eout.get("rows_per_second"))
    for k in ("accuracy", "macro_f1", "weighted_f1", "detection_rate", "false_alarm_rate"):
        row[k] = metrics.get(k)

    # Sanity checks: a row that fails one is reported as invalid, not compared.
    problems = []
    if missing:
        problems.append("missing JSON fields: " + ", ".join(missing))
    if tout.get("n_trees") is not None and tout.get("n_trees") != args.trees:
        problems.append(f"n_trees is {tout.get('n_trees')}, expected {args.trees}")
    for key, got in (("n_train", row["n_train"]), ("n_test", row["n_test"])):
        want = expect.get(key)
        if want is not None and got is not None and got != want:
            problems.append(f"{key} is {got} but scikit-learn read {want} rows from the same file")
    for k in ("accuracy", "macro_f1"):
        v = row[k]
        if v is not None and not (isinstance(v, (int, float)) and 0.0 <= v <= 1.0):
            problems.append(f"metrics.{k} = {v!r} is not a fraction in [0, 1]")
    for k in ("fit_seconds", "predict_seconds", "rows_per_second"):
        v = row[k]
        if v is not None and not (isinstance(v, (int, float)) and v > 0):
            problems.append(f"{k} = {v!r} is not a positive number")
    if problems:
        row["status"] = "invalid"
        row["error"] = "; ".join(problems)
        log("  INVALID fedids result: " + row["error"])
    else:
        row["status"] = "ok"
    return row, {"train": tout, "eval": eout, "model_path": model}


def run_predict_rounds(workload, test, args, env, logs_dir, sk_model, fe_model, sk_row, fe_row):
    """Prediction only, both tools in turn, `args.predict_rounds` times (the first tool
    alternates): each round's ratio compares two measurements minutes apart at most. Every
    round must give the main run's accuracy."""
    rounds, errors = [], []
    round_logs = os.path.join(logs_dir, "predict-rounds")
    os.makedirs(round_logs, exist_ok=True)
    for i in range(args.predict_rounds):
        order = ("scikit-learn", "fedids") if i % 2 == 0 else ("fedids", "scikit-learn")
        rates = {}
        for tool in order:
            if tool == "scikit-learn":
                # TRAIN_CSV ("-") is not read in this mode.
                cmd = sklearn_cmd(workload, "-", test, args) + ["--predict-only", sk_model]
                want = sk_row["accuracy"]
            else:
                cmd = fedids_eval_cmd(fe_model, test, args)
                want = fe_row["accuracy"]
            res = run_child(cmd, env, os.path.join(round_logs, f"{workload}.{i}.{tool}"),
                            args.timeout)
            fail = child_failure(f"{tool} prediction round {i}", res)
            out = None if fail else parse_json_object(res["stdout"])
            if fail is None and out is None:
                fail = f"{tool} prediction round {i} printed no JSON object"
            if fail:
                report_child_failure(f"{tool} prediction round {i}", res)
                errors.append(fail)
                break
            acc = out.get("accuracy", (out.get("metrics") or {}).get("accuracy"))
            if acc != want:
                errors.append(f"{tool} prediction round {i}: accuracy {acc!r}, the main run "
                              f"gave {want!r}")
                break
            rate = out.get("rows_per_second")
            if not (isinstance(rate, (int, float)) and rate > 0):
                errors.append(f"{tool} prediction round {i}: rows_per_second = {rate!r} is not "
                              "a positive number")
                break
            rates[tool] = rate
        if errors:
            break
        ratio = rates["fedids"] / rates["scikit-learn"]
        rounds.append({"round": i, "first": order[0], "scikit-learn": rates["scikit-learn"],
                       "fedids": rates["fedids"], "ratio": ratio})
        log(f"  round {i}: scikit-learn {rates['scikit-learn']:,.0f} rows/s, fedids "
            f"{rates['fedids']:,.0f} rows/s, {ratio:.2f}x")
    return {"workload": workload, "rounds": rounds, "errors": errors,
            "sklearn_median": median([r["scikit-learn"] for r in rounds]),
            "fedids_median": median([r["fedids"] for r in rounds]),
            "ratio_median": None if errors else median([r["ratio"] for r in rounds])}


def median(xs):
    """The median of a list of numbers, None for an empty one (`statistics` is not imported, to
    keep this process's RSS floor low)."""
    xs = sorted(xs)
    n = len(xs)
    return None if n == 0 else (xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2)


def compare(workload, sk, fe, rounds=None):
    c = {k: None for k in CMP_COLUMNS}
    c["workload"] = workload
    c["accuracy_target_points"] = TARGET_ACC_DELTA.get(workload, 0.0)
    if not (sk and fe and sk["status"] == "ok" and fe["status"] == "ok"):
        return c
    c["fit_speedup"] = sk["fit_seconds"] / fe["fit_seconds"]
    c["fit_target_met"] = c["fit_speedup"] >= TARGET_FIT_SPEEDUP
    c["predict_ratio"] = fe["rows_per_second"] / sk["rows_per_second"]
    c["predict_ratio_single_run"] = c["predict_ratio"]
    if rounds and rounds.get("ratio_median") is not None:
        # Both tools timed in the same minutes, in turn, are the fairer comparison on a
        # shared machine than two runs minutes apart.
        c["predict_ratio"] = rounds["ratio_median"]
        c["predict_rounds"] = len(rounds["rounds"])
    c["predict_target_met"] = c["predict_ratio"] >= TARGET_PREDICT_RATIO
    c["accuracy_delta_points"] = (fe["accuracy"] - sk["accuracy"]) * 100.0
    c["accuracy_target_met"] = c["accuracy_delta_points"] >= c["accuracy_target_points"]
    c["memory_ratio"] = fe["peak_rss_mib"] / sk["peak_rss_mib"]
    c["memory_target_met"] = c["memory_ratio"] <= TARGET_MEMORY_RATIO
    return c


def run_accuracy_seeds(workload, train, test, args, env, logs_dir, tmp_dir, sk_main, fe_main):
    """Accuracy of both tools with the main forest seed and `args.accuracy_seeds` more (seed + 1,
    seed + 2, ...), on the same files: one seed's accuracy difference of a few rows is noise."""
    per_seed, failures = [], []
    ok = lambda r: r is not None and r["status"] == "ok"
    n_test = sk_main["n_test"] if ok(sk_main) else None
    if ok(sk_main) and ok(fe_main):
        per_seed.append({"seed": args.seed, "scikit-learn": sk_main["accuracy"],
                         "fedids": fe_main["accuracy"]})
    for k in range(1, args.accuracy_seeds + 1):
        a = argparse.Namespace(**vars(args))
        a.seed = args.seed + k
        a.predict_runs = 1
        a.warmup_seconds = 0.0
        seed_logs = os.path.join(logs_dir, f"seed-{a.seed}")
        os.makedirs(seed_logs, exist_ok=True)
        log(f"  accuracy, seed {a.seed}")
        sk, _ = run_sklearn(workload, train, test, a, env, seed_logs)
        fe, _ = run_fedids(workload, train, test, a, env, seed_logs, tmp_dir,
                           {"n_train": sk["n_train"], "n_test": sk["n_test"]})
        if ok(sk) and ok(fe):
            per_seed.append({"seed": a.seed, "scikit-learn": sk["accuracy"],
                             "fedids": fe["accuracy"]})
            n_test = n_test or sk["n_test"]
        else:
            failures.append({"seed": a.seed, "errors": [r["error"] for r in (sk, fe) if not ok(r)]})
    summary = {"workload": workload, "per_seed": per_seed, "failures": failures,
               "n_test": n_test, "target_points": TARGET_ACC_DELTA.get(workload, 0.0)}
    if per_seed:
        deltas = [(s["fedids"] - s["scikit-learn"]) * 100.0 for s in per_seed]
        mean = sum(deltas) / len(deltas)
        var = sum((d - mean) ** 2 for d in deltas) / (len(deltas) - 1) if len(deltas) > 1 else 0.0
        summary.update(
            sklearn_mean=sum(s["scikit-learn"] for s in per_seed) / len(per_seed),
            fedids_mean=sum(s["fedids"] for s in per_seed) / len(per_seed),
            delta_mean_points=mean, delta_sd_points=var ** 0.5,
            target_met=mean >= summary["target_points"] and not failures)
        log(f"  accuracy over {len(per_seed)} seeds: delta {mean:+.4f} points (sd {var ** 0.5:.4f})")
    return summary


def fmt_num(v, spec):
    return "-" if v is None else format(v, spec)


def fmt_ratio(v):
    return "-" if v is None else f"{v:.2f}x"


def verdict(met):
    return "" if met is None else (" (met)" if met else " (MISSED)")


def render_table(meta, rows, cmps, split_info, seeds, rounds):
    lines = ["# fedids vs scikit-learn RandomForest", ""]
    lines += [
        f"- date: {meta['date']}",
        f"- host: {meta['hostname']}; CPU: {meta['cpu_model']} ({meta['cpu_count']} logical CPUs, "
        f"{meta['cpu_affinity_count']} usable); memory: {meta['mem_total_mib']} MiB",
        f"- load average at start / end: {meta['loadavg_start']} / {meta.get('loadavg_end')}",
        f"- git commit: {meta['git_commit']} (dirty files: {meta['git_dirty_files']})",
        f"- command: `{meta['command']}`",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        f"- configuration: {meta['config']['trees']} trees, sqrt features, unlimited depth, "
        f"bootstrap, {meta['config']['threads']} threads, seed {meta['config']['seed']}",
    ]
    if split_info:
        lines.append(
            f"- KDD99 split: {split_info['n_rows']} rows of {os.path.basename(split_info['source'])}"
            f", stratified by 5-class category, 80/20, seed {split_info['seed']}: "
            f"{split_info['train']['n_rows']} train / {split_info['test']['n_rows']} test")
    lines += ["", "## Per tool", "",
              "| workload | tool | status | fit s | predict rows/s | accuracy | macro-F1 "
              "| peak RSS MiB |",
              "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(
            f"| {r['workload']} | {r['tool']} | {r['status']} | {fmt_num(r['fit_seconds'], '.3f')} "
            f"| {fmt_num(r['rows_per_second'], ',.0f')} | {fmt_num(r['accuracy'], '.4f')} "
            f"| {fmt_num(r['macro_f1'], '.4f')} | {fmt_num(r['peak_rss_mib'], '.1f')} |")
    lines += ["", "## fedids relative to scikit-learn", "",
              f"| workload | fit speedup (target >= {TARGET_FIT_SPEEDUP:g}x) "
              f"| predict ratio (target >= {TARGET_PREDICT_RATIO:g}x) "
              f"| accuracy delta, points (target) "
              f"| memory ratio (target <= {TARGET_MEMORY_RATIO:g}x) |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for c in cmps:
        acc_target = c["accuracy_target_points"]
        acc_target_s = f">= {acc_target:+.1f}" if acc_target else ">= 0 (not worse)"
        lines.append(
            f"| {c['workload']} | {fmt_ratio(c['fit_speedup'])}{verdict(c['fit_target_met'])} "
            f"| {fmt_ratio(c['predict_ratio'])}{verdict(c['predict_target_met'])} "
            f"| {fmt_num(c['accuracy_delta_points'], '+.2f')} ({acc_target_s})"
            f"{verdict(c['accuracy_target_met'])} "
            f"| {fmt_ratio(c['memory_ratio'])}{verdict(c['memory_target_met'])} |")
    floor = meta.get("orchestrator_peak_rss_mib_during_runs")
    lines += ["", f"Orchestrator peak RSS while the tools ran (the floor under every peak RSS "
                  f"above): {fmt_num(floor, '.1f')} MiB."]
    at_floor = [r for r in rows if r["peak_rss_mib"] is not None and r["rss_floor_mib"]
                and r["peak_rss_mib"] <= 1.05 * r["rss_floor_mib"]]
    for r in at_floor:
        lines.append(f"- {r['workload']} / {r['tool']}: peak RSS is at the floor; the tool's own "
                     f"peak may be lower (an upper bound).")
    if rounds:
        lines += ["", "## Prediction in alternating rounds", "",
                  "After both tools trained, each predicted the test file again, in turn, "
                  f"{meta['config']['predict_rounds']} times (the first tool alternates; each "
                  "time as in the main run: warm-up, then the median of the timed runs). The "
                  "predict ratio above is the median of these rounds' ratios; the main runs' "
                  "ratio, from two measurements minutes apart, is predict_ratio_single_run in "
                  "comparisons.csv.", "",
                  "| workload | round | first | scikit-learn rows/s | fedids rows/s | ratio |",
                  "| --- | ---: | --- | ---: | ---: | ---: |"]
        for rd in rounds:
            for r in rd["rounds"]:
                lines.append(f"| {rd['workload']} | {r['round']} | {r['first']} "
                             f"| {r['scikit-learn']:,.0f} | {r['fedids']:,.0f} "
                             f"| {r['ratio']:.2f}x |")
            single = next((c["predict_ratio_single_run"] for c in cmps
                           if c["workload"] == rd["workload"]), None)
            lines.append(f"| {rd['workload']} | median | | {fmt_num(rd['sklearn_median'], ',.0f')} "
                         f"| {fmt_num(rd['fedids_median'], ',.0f')} "
                         f"| {fmt_ratio(rd['ratio_median'])} (main runs: {fmt_ratio(single)}) |")
    failed = [r for r in rows if r["status"] != "ok"]
    bad_rounds = [rd for rd in rounds if rd["errors"]]
    if failed or bad_rounds:
        lines += ["", "## Failed or invalid runs", ""]
        for r in failed:
            lines.append(f"- {r['workload']} / {r['tool']}: {r['status']}: {r['error']}")
        for rd in bad_rounds:
            lines.append(f"- {rd['workload']} / prediction rounds: {'; '.join(rd['errors'])} "
                         "(the predict ratio is the main runs')")
    lines += ["", "## Measurement conventions", "",
              "- fit s: model fitting only, reported by the tool itself (sklearn: `clf.fit` timed "
              "with perf_counter; fedids: `fit_seconds` of `fedids train --json`). CSV loading and "
              "encoding are excluded (kept as load_seconds in results.csv).",
              "- predict rows/s: test rows / the median seconds of "
              f"{meta['config']['predict_runs']} batch predictions over the already-loaded test "
              "matrix, one after another in one process (sklearn: `clf.predict(X_test)`; fedids: "
              "`rows_per_second` of `fedids eval --timing-runs N --json`), after untimed "
              f"predictions for at least {meta['config']['warmup_seconds']:g} s in each tool "
              "(`--warmup-seconds`; sklearn_run.py `--warmup-seconds`, fedids eval "
              "`--timing-warmup`): a cold start is slower while the CPU's clock and caches "
              "settle. Parsing is excluded. Each run's seconds and the untimed count "
              "(warmup_runs) are in results.json.",
              "- accuracy, macro-F1: on the test file. Macro-F1 is the unweighted mean of per-class "
              "F1 over the classes present in the true or predicted labels (sklearn "
              "`f1_score(average='macro', zero_division=0)`); binary uses both classes.",
              "- peak RSS: ru_maxrss from os.wait4 of each child process (KiB, shown in MiB). "
              "scikit-learn loads, fits and predicts in one process: its peak is that process's. "
              "fedids trains and evaluates in two processes: its peak is max(train, eval); both "
              "are in results.csv. Each includes the interpreter/binary, the parsed data and the "
              "model. On Linux a child's ru_maxrss cannot be below the orchestrator's own peak "
              "RSS at spawn time (rss_floor_mib in results.csv); the orchestrator imports only "
              "the standard library to keep that floor low.",
              "- ratios: fit speedup = sklearn fit s / fedids fit s; predict ratio = fedids rows/s "
              "/ sklearn rows/s (with --predict-rounds N > 0, the median of the N alternating "
              "rounds' ratios); accuracy delta = (fedids - sklearn) x 100 points; memory ratio = "
              "fedids peak / sklearn peak. Targets are reported, not enforced.",
              f"- threads: both tools get {meta['config']['threads']} threads; "
              + ", ".join(THREAD_ENV_VARS) + f" = {meta['config']['threads']} in every child.",
              "- one run per tool and workload (plus the prediction rounds), one seed; timings on "
              "a shared machine are noisy "
              "(see the load average above). Accuracy is also measured over more forest seeds "
              "(next section, when run with --accuracy-seeds N > 0).",
              ""]
    if seeds:
        lines += ["## Accuracy over several forest seeds", "",
                  "Both tools, same train and test files, forest seeds "
                  + ", ".join(str(s["seed"]) for s in seeds[0]["per_seed"])
                  + ". Errors = misclassified test rows. The target is judged on the mean "
                    "accuracy delta.", "",
                  "| workload | scikit-learn errors per seed | fedids errors per seed | "
                  "mean accuracy, sklearn / fedids | delta, points: mean (sd) | target |",
                  "| --- | --- | --- | --- | ---: | --- |"]
        for s in seeds:
            if not s["per_seed"]:
                lines.append(f"| {s['workload']} | - | - | - | - | failed |")
                continue
            errs = lambda tool: ", ".join(
                str(round((1.0 - p[tool]) * s["n_test"])) for p in s["per_seed"])
            target = s["target_points"]
            lines.append(
                f"| {s['workload']} | {errs('scikit-learn')} | {errs('fedids')} | "
                f"{s['sklearn_mean']:.5f} / {s['fedids_mean']:.5f} | "
                f"{s['delta_mean_points']:+.4f} ({s['delta_sd_points']:.4f}) | "
                f">= {target:+.1f}{verdict(s['target_met'])} |")
            for f in s["failures"]:
                lines.append(f"|  | seed {f['seed']} failed: {'; '.join(f['errors'])} | | | | |")
        lines.append("")
    return "\n".join(lines)


def write_outputs(out_dir, meta, rows, cmps, split_info, raw, seeds, rounds):
    with open(os.path.join(out_dir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out_dir, "comparisons.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CMP_COLUMNS)
        w.writeheader()
        w.writerows(cmps)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"metadata": meta, "kdd99_split": split_info, "results": rows,
                   "comparisons": cmps, "accuracy_seeds": seeds, "predict_rounds": rounds,
                   "raw_tool_output": raw},
                  f, indent=2)
        f.write("\n")
    table = render_table(meta, rows, cmps, split_info, seeds, rounds)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(table)
    return table


def parse_args(argv):
    ap = argparse.ArgumentParser(description="fedids vs scikit-learn RandomForest benchmark")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 20 trees, NSL-KDD binary only (unless --trees/--workloads)")
    ap.add_argument("--workloads", help="comma-separated subset of " + ",".join(WORKLOADS))
    ap.add_argument("--trees", type=int, help="trees per forest (default 100, 20 with --quick)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predict-runs", type=int, default=5,
                    help="batch predictions timed per tool and workload; the median is reported")
    ap.add_argument("--warmup-seconds", type=float, default=1.0,
                    help="untimed batch predictions before the timed ones, for at least this "
                         "many seconds (at least one), in both tools")
    ap.add_argument("--predict-rounds", type=int, default=3,
                    help="after both tools have trained, time their predictions again in this "
                         "many alternating rounds (each as --predict-runs and --warmup-seconds "
                         "say); the reported predict ratio is the median of the rounds' ratios "
                         "(0: the ratio of the two main runs)")
    ap.add_argument("--seed", type=int, default=42, help="forest seed for both tools")
    ap.add_argument("--split-seed", type=int, default=7, help="seed of the KDD99 80/20 split")
    ap.add_argument("--accuracy-seeds", type=int,
                    help="after the timed runs, train and test both tools with this many more "
                         "forest seeds (seed + 1, ...) and report accuracy over all of them "
                         "(default 4, 0 with --quick)")
    ap.add_argument("--fedids", help="fedids binary (default: <repo>/target/release/fedids, "
                                     "or $CARGO_TARGET_DIR/release/fedids)")
    ap.add_argument("--datasets", default=DEFAULT_DATASETS)
    ap.add_argument("--out-dir", help="run folder (default bench/runs/<YYYY-MM-DD>-<hostname>)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per child process")
    ap.add_argument("--keep-tmp", action="store_true",
                    help="keep the run folder's tmp/ (KDD99 split files, fedids models)")
    args = ap.parse_args(argv)
    if args.trees is None:
        args.trees = 20 if args.quick else 100
    if args.accuracy_seeds is None:
        args.accuracy_seeds = 0 if args.quick else 4
    if not 0.0 <= args.warmup_seconds <= 600.0:
        ap.error("--warmup-seconds must be from 0 to 600")
    if args.accuracy_seeds < 0:
        ap.error("--accuracy-seeds must be 0 or more")
    if args.predict_rounds < 0:
        ap.error("--predict-rounds must be 0 or more")
    if args.workloads is None:
        args.workloads = "nsl-binary" if args.quick else ",".join(WORKLOADS)
    wl = [w.strip() for w in args.workloads.split(",") if w.strip()]
    bad = [w for w in wl if w not in WORKLOADS]
    if bad or not wl:
        ap.error(f"unknown workloads {bad}; choose from {','.join(WORKLOADS)}")
    args.workload_list = wl
    if args.fedids is None:
        target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
        if not os.path.isabs(target):
            target = os.path.join(ROOT, target)
        args.fedids = os.path.join(target, "release", "fedids")
    args.fedids = os.path.abspath(args.fedids)
    return args


def main(argv):
    args = parse_args(argv)
    datasets = os.path.abspath(args.datasets)
    host = socket.gethostname()
    out_dir = os.path.abspath(args.out_dir or os.path.join(
        BENCH_DIR, "runs", f"{datetime.date.today().isoformat()}-{host}"))
    logs_dir = os.path.join(out_dir, "logs")
    tmp_dir = os.path.join(out_dir, "tmp")
    os.makedirs(logs_dir, exist_ok=True)
    os.makedirs(tmp_dir, exist_ok=True)
    log(f"run folder: {out_dir}")

    env = dict(os.environ)
    for k in THREAD_ENV_VARS:
        env[k] = str(args.threads)
    env["PYTHONHASHSEED"] = "0"

    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    load_start = loadavg()
    if not os.path.isfile(args.fedids):
        log(f"warning: fedids binary not found at {args.fedids}; its runs will fail")

    # Inputs and their checksums.
    nsl_train = os.path.join(datasets, "nsl-kdd", "KDDTrain+.txt")
    nsl_test = os.path.join(datasets, "nsl-kdd", "KDDTest+.txt")
    kdd99 = os.path.join(datasets, "kdd99", "kddcup99_10_percent.csv")
    sources = {w: WORKLOADS[w][2] for w in args.workload_list}
    needed = []
    if "nsl" in sources.values():
        needed += ["nsl-kdd/KDDTrain+.txt", "nsl-kdd/KDDTest+.txt"]
    if "kdd99" in sources.values():
        needed.append("kdd99/kddcup99_10_percent.csv")
    split_info = None
    split_error = None
    if "kdd99" in sources.values():
        log(f"splitting {kdd99} (80/20, stratified, seed {args.split_seed}) into {tmp_dir}")
        res = run_child([sys.executable, os.path.join(BENCH_DIR, "split_kdd99.py"), kdd99,
                         tmp_dir, str(args.split_seed)], env,
                        os.path.join(logs_dir, "kdd99-split"), args.timeout)
        split_error = child_failure("split_kdd99.py", res)
        if split_error is None:
            split_info = parse_json_object(res["stdout"])
            if split_info is None:
                split_error = "split_kdd99.py printed no JSON object"
        if split_error:
            report_child_failure("KDD99 split", res)

    rows, cmps, raw, seeds, inputs, rounds = [], [], {}, [], {}, []
    for w in args.workload_list:
        log(f"== {w} ({args.trees} trees, {args.threads} threads, seed {args.seed})")
        if sources[w] == "nsl":
            train, test = nsl_train, nsl_test
        elif split_info:
            train, test = split_info["train"]["path"], split_info["test"]["path"]
        else:
            for tool in ("scikit-learn", "fedids"):
                r = empty_row(w, tool, args)
                r["error"] = f"KDD99 split failed: {split_error}"
                rows.append(r)
            cmps.append(compare(w, None, None))
            continue
        sk_model = os.path.join(tmp_dir, f"{w}.sklearn-model.pickle")
        sk_row, sk_out = run_sklearn(w, train, test, args, env, logs_dir,
                                     sk_model if args.predict_rounds > 0 else None)
        expect = {"n_train": sk_row["n_train"], "n_test": sk_row["n_test"]}
        fe_row, fe_out = run_fedids(w, train, test, args, env, logs_dir, tmp_dir, expect)
        rows += [sk_row, fe_row]
        inputs[w] = (train, test, sk_row, fe_row)
        raw[w] = {"scikit-learn": sk_out, "fedids": fe_out}
        for r in (sk_row, fe_row):
            log(f"  {r['tool']:>12}: {r['status']}  fit {fmt_num(r['fit_seconds'], '.3f')} s  "
                f"predict {fmt_num(r['rows_per_second'], ',.0f')} rows/s  "
                f"acc {fmt_num(r['accuracy'], '.4f')}  macro-F1 {fmt_num(r['macro_f1'], '.4f')}  "
                f"peak {fmt_num(r['peak_rss_mib'], '.1f')} MiB")
        rnd = None
        if args.predict_rounds > 0 and sk_row["status"] == "ok" and fe_row["status"] == "ok":
            log(f"  prediction in {args.predict_rounds} alternating rounds")
            rnd = run_predict_rounds(w, test, args, env, logs_dir, sk_model,
                                     fe_out["model_path"], sk_row, fe_row)
            rounds.append(rnd)
        cmps.append(compare(w, sk_row, fe_row, rnd))

    # Accuracy over more seeds, after every timed run (these runs time nothing that is reported).
    if args.accuracy_seeds > 0:
        for w, (train, test, sk_row, fe_row) in inputs.items():
            log(f"== {w}: accuracy over {args.accuracy_seeds} more seeds")
            seeds.append(run_accuracy_seeds(w, train, test, args, env, logs_dir, tmp_dir,
                                            sk_row, fe_row))

    # Everything below raises this process's RSS, so it comes after the last measured child.
    load_end = loadavg()
    peak_during_runs = mib(self_peak_rss_kib())
    meta = collect_metadata(args, args.fedids, datasets)
    meta.update(date=started, loadavg_start=load_start, loadavg_end=load_end,
                orchestrator_peak_rss_mib_during_runs=peak_during_runs)
    meta["datasets"] = {}
    for rel in needed:
        path = os.path.join(datasets, rel)
        digest = sha256_file(path) if os.path.isfile(path) else None
        ok = digest == EXPECTED_SHA256[rel]
        meta["datasets"][rel] = {"sha256": digest, "matches_readme": ok}
        if not ok:
            log(f"warning: {path}: sha256 {digest} differs from the datasets README")
    table = write_outputs(out_dir, meta, rows, cmps, split_info, raw, seeds, rounds)
    if not args.keep_tmp:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    print(table)
    log(f"wrote {out_dir}/results.csv, comparisons.csv, results.json, table.md, logs/")
    bad = [r for r in rows if r["status"] != "ok"]
    bad_rounds = [rd["workload"] for rd in rounds if rd["errors"]]
    if bad:
        log(f"{len(bad)} run(s) failed or were invalid: "
            + ", ".join(f"{r['workload']}/{r['tool']}" for r in bad))
    if bad_rounds:
        log("prediction rounds failed for " + ", ".join(bad_rounds))
    return 1 if bad or bad_rounds else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
