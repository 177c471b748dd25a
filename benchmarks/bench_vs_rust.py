"""Asymptotic inference: nextstat vs the seeds' Rust toolkit, same machine, same run.

The Rust toolkit (PyPI ``nextstat`` 0.10.1, the project this package re-creates) runs as an
external baseline only: in its own virtual environment and its own process, never imported
here. A child script (``_RUST_CHILD``) builds its model with
``HistFactoryModel.from_workspace`` and times each quantity; nextstat is timed in this
process. Both: one untimed call, then the median (min) of ``--repeats`` calls.

Quantities (``mu = 1``, q~_mu, pyhf interpolation codes on both sides):

* ``fit``: maximum-likelihood fit (nextstat without covariance; the Rust Python API
  returns none either);
* ``hypotest``: observed CLs only (the Rust Python API has no expected set);
* ``limit_root``: observed + expected upper limits by root finding;
* ``limit_scan``: observed + expected limits from a 21-point CLs scan on [0, 5];
* ``profile_scan``: 21-point profile likelihood scan on [0, 5];
* ``ranking``: impacts of all constrained NPs (Rust: pre-fit +-1 sigma only, 2 refits per
  NP; nextstat: pre- and post-fit, 4 refits per NP; so the row understates nextstat).

Usage::

    python -m venv /tmp/rustns && /tmp/rustns/bin/pip install nextstat==0.10.1 numpy
    python benchmarks/bench_vs_rust.py --rust-python /tmp/rustns/bin/python
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.common import fmt_time, loadavg, machine_info, publish  # noqa: E402
from benchmarks.models import MODELS, make_model  # noqa: E402

SECTION = "vs-rust"
SCAN = [5.0 * i / 20 for i in range(21)]
QUANTITIES = ("fit", "hypotest", "limit_root", "limit_scan", "profile_scan", "ranking")
#: Quantities the Rust toolkit is not asked for, and why.
RUST_SKIP = {
    ("large", "ranking"): "2,112 NPs × 2 refits, and one Rust fit of this model takes ~38 s",
}

_RUST_CHILD = r"""
import json, statistics, sys, time
import nextstat as ns
ws_path, repeats, budget = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
quantities = sys.argv[4].split(",")
model = ns.HistFactoryModel.from_workspace(open(ws_path).read())
scan = [5.0 * i / 20 for i in range(21)]
calls = {
    "fit": lambda: ns.fit(model).nll,
    "hypotest": lambda: ns.hypotest(1.0, model),
    "limit_root": lambda: ns.upper_limit(model, method="root")[0],
    "limit_scan": lambda: ns.upper_limits(model, scan)[0],
    "profile_scan": lambda: ns.profile_scan(model, scan)["mu_hat"],
    "ranking": lambda: len(ns.ranking(model)),
}
out = {}
for q in quantities:
    value = calls[q]()
    times, spent = [], 0.0
    while len(times) < repeats and (spent < budget or len(times) < 1):
        t0 = time.perf_counter()
        calls[q]()
        times.append(time.perf_counter() - t0)
        spent += times[-1]
    out[q] = {"median": statistics.median(times), "min": min(times), "n": len(times),
              "value": value}
print(json.dumps(out))
"""


def _ours(model):
    import nextstat

    return {
        "fit": lambda: nextstat.fit(model, uncertainties=False).nll,
        "hypotest": lambda: nextstat.hypotest(1.0, model),
        "limit_root": lambda: nextstat.upper_limit(model).obs_limit,
        "limit_scan": lambda: nextstat.upper_limit(model, method="scan", scan=SCAN).obs_limit,
        "profile_scan": lambda: float(nextstat.profile_scan(model, SCAN).mu_hat),
        "ranking": lambda: len(nextstat.ranking(model).entries),
    }


def time_ours(model, quantities, repeats: int, budget: float) -> dict:
    calls = _ours(model)
    out = {}
    for q in quantities:
        value = calls[q]()
        times, spent = [], 0.0
        while len(times) < repeats and (spent < budget or not times):
            t0 = time.perf_counter()
            calls[q]()
            times.append(time.perf_counter() - t0)
            spent += times[-1]
        out[q] = {"median": statistics.median(times), "min": min(times), "n": len(times),
                  "value": value}
    return out


def time_rust(python: str, ws_path: Path, quantities, repeats: int, budget: float) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([python, "-c", _RUST_CHILD, str(ws_path), str(repeats), str(budget),
                           ",".join(quantities)], capture_output=True, text=True, env=env,
                          cwd=tempfile.gettempdir(), check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"the Rust toolkit's process failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:.5g}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rust-python", required=True, metavar="PYTHON",
                    help="python of a separate venv with the PyPI 'nextstat' 0.10.1")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--budget", type=float, default=20.0,
                    help="seconds per quantity after which no new timed call starts (20)")
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    import nextstat

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    rust_version = subprocess.run(
        [args.rust_python, "-c", "import nextstat; print(nextstat.__version__)"],
        capture_output=True, text=True, check=True, env=env, cwd=tempfile.gettempdir(),
    ).stdout.strip()
    load_start = loadavg()
    t_start = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="nextstat-bench-rust-"))
    rows = []
    for name in args.models:
        ws = make_model(name)
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(ws))
        model = nextstat.from_pyhf(ws)
        print(f"[{name}] nextstat", file=sys.stderr, flush=True)
        ours = time_ours(model, QUANTITIES, args.repeats, args.budget)
        print(f"[{name}] Rust toolkit", file=sys.stderr, flush=True)
        rust_q = [q for q in QUANTITIES if (name, q) not in RUST_SKIP]
        theirs = time_rust(args.rust_python, path, rust_q, args.repeats, args.budget)
        for q in QUANTITIES:
            o, t = ours[q], theirs.get(q)
            if t is None:
                print(f"  {q}: nextstat {fmt_time(o['median'])}, Rust not run",
                      file=sys.stderr, flush=True)
                rows.append((name, model.n_params(), q, o, None))
                continue
            print(f"  {q}: nextstat {fmt_time(o['median'])}, Rust {fmt_time(t['median'])}",
                  file=sys.stderr, flush=True)
            rows.append((name, model.n_params(), q, o, t))

    mach = machine_info()
    mach["load"] = f"{load_start} at the start, {loadavg()} at the end"
    given = argv if argv is not None else sys.argv[1:]
    command = "python benchmarks/bench_vs_rust.py " + " ".join(shlex.quote(a) for a in given)
    out = ["## Asymptotic inference: nextstat vs the seeds' Rust toolkit (same run)\n"]
    out.append(f"Command: `{command}`  ")
    out.append(f"Machine: {mach['nproc']} CPUs (nproc), {mach['cpu']}; load average "
               f"(1/5/15 min) {mach['load']}  ")
    out.append(f"Date: {mach['date']}; git {mach['commit']}; Rust toolkit: PyPI `nextstat` "
               f"{rust_version} in its own venv and process; total "
               f"{(time.perf_counter() - t_start) / 60:.1f} min  ")
    out.append(f"Median (min, n) of up to {args.repeats} calls after a warm-up (no new call "
               f"once a quantity has used {args.budget:g} s). Values: fit NLL, observed CLs, "
               "observed limit, profile-scan mu_hat, number of ranked NPs.\n")
    out.append("| model | params | quantity | nextstat | Rust toolkit | Rust / nextstat | "
               "value (nextstat / Rust) |")
    out.append("|---|---:|---|---:|---:|---:|---|")
    for name, npar, q, o, t in rows:
        if t is None:
            out.append(f"| {name} | {npar:,} | {q} | {fmt_time(o['median'])} (min "
                       f"{fmt_time(o['min'])}, n={o['n']}) | not run: {RUST_SKIP[name, q]} "
                       f"| — | {_fmt_value(o['value'])} / — |")
            continue
        ratio = t["median"] / o["median"]
        out.append(f"| {name} | {npar:,} | {q} | {fmt_time(o['median'])} (min "
                   f"{fmt_time(o['min'])}, n={o['n']}) | {fmt_time(t['median'])} (min "
                   f"{fmt_time(t['min'])}, n={t['n']}) | {ratio:,.1f}× | "
                   f"{_fmt_value(o['value'])} / {_fmt_value(t['value'])} |")
    out.append("")
    out.append("The values agree (fit NLL, CLs, limits to the root finders' "
               "tolerance), so both solve the same problems. Rust's ranking makes 2 refits per "
               "NP (pre-fit ±1σ), nextstat's 4 (pre- and post-fit).")
    text = "\n".join(out) + "\n"
    publish(text, args.output, SECTION, args.no_write)
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
