"""Ntuple -> histogram filling: NtupleWorkspaceBuilder vs plain uproot + numpy.

One region (variable ``mbb``, 5 variable-width bins, selection
``njet >= 4 && pt > 25``), one sample with weight ``weight_mc * weight_sf`` and two
weight systematics (``jes`` and ``pu``, up and down): 5 histograms with sum of weights
and sum of squared weights, from a 10-million-event TTree (9 branches: 8 float32, 1
int32) written with uproot into ``--dir`` (reused when present).

* **nextstat**: ``NtupleWorkspaceBuilder(...).fill()``: streams the tree in chunks of
  ``--step-size`` entries, evaluates the selection once, bins ``mbb`` once, two
  ``bincount`` per histogram.
* **baseline**: the obvious uproot + numpy code: ``tree.arrays(branches, library="np")``
  (the whole tree in memory), a boolean mask, ``np.histogram`` for each of the five
  weights and again for their squares.

Each measurement runs in a fresh subprocess (so peak RSS, from ``os.wait4``, is that
of one method alone); time is measured inside the child around the fill only (numpy,
uproot and nextstat are imported before the clock starts). The two methods alternate,
``--repeats`` times each; the report gives the median (and min) time and the peak RSS,
and checks that both give the same numbers. A copy of the tree with a tenth of the
events shows that nextstat's peak memory does not grow with the file.

Run from the repository root::

    python benchmarks/bench_ntuple.py --dir /tmp/nextstat-bench-ntuple --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

EDGES = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0]
SELECTION = "njet >= 4 && pt > 25"
WEIGHT = "weight_mc * weight_sf"
SYSTS = {"jes": ("weight_jes_up", "weight_jes_down"), "pu": ("weight_pu_up", "weight_pu_down")}
BRANCHES = [
    "mbb",
    "njet",
    "pt",
    "weight_mc",
    "weight_sf",
    "weight_jes_up",
    "weight_jes_down",
    "weight_pu_up",
    "weight_pu_down",
]
#: Both methods sum ~3e6 float32-derived weights in different orders.
AGREE_RTOL = 1e-9


def generate(path: str, n: int, chunk: int = 1_000_000) -> None:
    """Write ``n`` events to ``path`` (tree ``events``), in chunks (flat memory)."""
    import numpy as np
    import uproot

    rng = np.random.default_rng(12345)
    tmp = path + ".part"
    with uproot.recreate(tmp) as f:
        f.mktree("events", {b: (np.int32 if b == "njet" else np.float32) for b in BRANCHES})
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            f["events"].extend(
                {
                    "mbb": rng.exponential(100.0, m).astype(np.float32),
                    "njet": rng.integers(0, 10, m).astype(np.int32),
                    "pt": rng.uniform(0.0, 200.0, m).astype(np.float32),
                    "weight_mc": rng.normal(1.0, 0.2, m).astype(np.float32),
                    "weight_sf": rng.normal(1.0, 0.05, m).astype(np.float32),
                    "weight_jes_up": rng.normal(1.05, 0.05, m).astype(np.float32),
                    "weight_jes_down": rng.normal(0.95, 0.05, m).astype(np.float32),
                    "weight_pu_up": rng.normal(1.02, 0.05, m).astype(np.float32),
                    "weight_pu_down": rng.normal(0.98, 0.05, m).astype(np.float32),
                }
            )
    os.replace(tmp, path)


def run_nextstat(path: str, step_size: int) -> dict:
    import uproot  # noqa: F401  (imported before the clock starts, as in the baseline)

    from nextstat.ntuple.builder import NtupleWorkspaceBuilder

    def sample(s):
        s.file(os.path.basename(path)).weight(WEIGHT)
        for name, (up, down) in SYSTS.items():
            s.weight_sys(name, f"weight_mc * {up}", f"weight_mc * {down}")
        return s

    b = (
        NtupleWorkspaceBuilder()
        .ntuple_path(os.path.dirname(path))
        .step_size(step_size)
        .add_channel(
            "SR",
            lambda ch: (
                ch.variable("mbb").binning(EDGES).selection(SELECTION).add_sample("bkg", sample)
            ),
        )
    )
    t0 = time.perf_counter()
    hists = b.fill()
    elapsed = time.perf_counter() - t0
    out = {k[2]: [h.sumw.tolist(), h.sumw2.tolist()] for k, h in hists.items()}
    return {"seconds": elapsed, "hists": out}


def run_baseline(path: str) -> dict:
    import numpy as np
    import uproot

    t0 = time.perf_counter()
    a = uproot.open(path)["events"].arrays(BRANCHES, library="np")
    sel = (a["njet"] >= 4) & (a["pt"] > 25)
    x = a["mbb"][sel]
    weights = {"nominal": a["weight_mc"][sel] * a["weight_sf"][sel]}
    for name, (up, down) in SYSTS.items():
        weights[f"{name}_up"] = a["weight_mc"][sel] * a[up][sel]
        weights[f"{name}_down"] = a["weight_mc"][sel] * a[down][sel]
    out = {}
    for key, w in weights.items():
        w = w.astype(np.float64)
        sumw, _ = np.histogram(x, bins=EDGES, weights=w)
        sumw2, _ = np.histogram(x, bins=EDGES, weights=w * w)
        out[key] = [sumw.tolist(), sumw2.tolist()]
    elapsed = time.perf_counter() - t0
    return {"seconds": elapsed, "hists": out}


def measure(method: str, path: str, step_size: int) -> dict:
    """Run one method in a child process; add its peak RSS (MiB)."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        method,
        "--file",
        path,
        "--step-size",
        str(step_size),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, cwd=os.getcwd())
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"{method} failed with status {status}")
    res = json.loads(out)
    res["peak_rss_mib"] = usage.ru_maxrss / 1024.0
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default="/tmp/nextstat-bench-ntuple")
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--step-size", type=int, default=1_000_000)
    ap.add_argument("--child", choices=["nextstat", "baseline"])
    ap.add_argument("--file")
    args = ap.parse_args()

    if args.child:
        res = (
            run_nextstat(args.file, args.step_size)
            if args.child == "nextstat"
            else run_baseline(args.file)
        )
        json.dump(res, sys.stdout)
        return

    import numpy as np

    os.makedirs(args.dir, exist_ok=True)
    big = os.path.join(args.dir, f"events_{args.events}.root")
    small = os.path.join(args.dir, f"events_{args.events // 10}.root")
    for path, n in ((big, args.events), (small, args.events // 10)):
        if not os.path.exists(path):
            t0 = time.perf_counter()
            generate(path, n)
            print(
                f"generated {path} ({n} events) in {time.perf_counter() - t0:.1f} s",
                file=sys.stderr,
            )

    runs: dict[str, list[dict]] = {"nextstat": [], "baseline": []}
    for i in range(args.repeats):
        for method in ("nextstat", "baseline") if i % 2 == 0 else ("baseline", "nextstat"):
            r = measure(method, big, args.step_size)
            runs[method].append(r)
            print(
                f"run {i + 1} {method}: {r['seconds']:.2f} s, {r['peak_rss_mib']:.0f} MiB",
                file=sys.stderr,
            )
    small_run = measure("nextstat", small, args.step_size)

    ref, got = runs["baseline"][0]["hists"], runs["nextstat"][0]["hists"]
    worst = 0.0
    for key, (sumw, sumw2) in ref.items():
        for a, b in ((sumw, got[key][0]), (sumw2, got[key][1])):
            np.testing.assert_allclose(b, a, rtol=AGREE_RTOL)
            worst = max(worst, float(np.max(np.abs(np.subtract(a, b)) / np.abs(a))))

    def row(name: str, rs: list[dict]) -> str:
        t = [r["seconds"] for r in rs]
        rss = max(r["peak_rss_mib"] for r in rs)
        return f"| {name} | {statistics.median(t):.2f} | {min(t):.2f} | {rss:.0f} |"

    size_mib = os.path.getsize(big) / 2**20
    med_ns = statistics.median(r["seconds"] for r in runs["nextstat"])
    med_bl = statistics.median(r["seconds"] for r in runs["baseline"])
    lines = [
        f"{args.events:,} events, {len(BRANCHES)} branches, file {size_mib:.0f} MiB "
        f"(uproot default compression); 5 histograms (nominal + 2 weight systematics up/down), "
        f"sumw and sumw2; {args.repeats} runs each, alternating, fresh process per run; "
        f"nextstat step size {args.step_size:,} entries.",
        "",
        "| method | median s | min s | peak RSS MiB |",
        "|---|---:|---:|---:|",
        row("nextstat `NtupleWorkspaceBuilder.fill()`", runs["nextstat"]),
        row("uproot `arrays()` + `np.histogram`", runs["baseline"]),
        f"| nextstat on the {args.events // 10:,}-event file | {small_run['seconds']:.2f} | "
        f"| {small_run['peak_rss_mib']:.0f} |",
        "",
        f"Speed-up (median): {med_bl / med_ns:.2f}x. Largest relative difference between the "
        f"two methods' bin contents: {worst:.1e}.",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}.",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
