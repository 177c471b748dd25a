"""Toy-based CLs: nextstat vs pyhf 0.7.6 (and the seeds' Rust toolkit, if given).

The headline workload of issue #4: the 201-parameter ``god_run`` model, ``mu = 1``,
10,000 s+b + 10,000 b-only toys with ``q~_mu``, on all cores, with the auxiliary data fixed
(the Rust toolkit's only policy) and fluctuated (nextstat's default, pyhf's and ROOT's).
Also: one thread, linear scaling (1k / 10k / 100k toys per hypothesis) and the 2,113-
parameter ``large`` model with 1,000 toys per hypothesis.

Every nextstat measurement runs in a fresh child process (``python -c``) that builds the
model, warms up with a few toys, then times one ``hypotest_toys`` call and reports its wall
time, fits, optimizer iterations and the process's peak RSS (``ru_maxrss``: the whole
interpreter, NumPy and the toys' arrays). Medians over ``--repeats`` runs.

pyhf: the toy distributions of ``pyhf.infer.hypotest(1.0, data, model,
calctype="toybased", ntoys=N, test_stat="qtilde")`` (``ToyCalculator.distributions``) on
``--pyhf-toys`` toys per hypothesis (a few: ~2.4 s each), timed in
the parent process; the time per toy is extrapolated to the full run, and says so.

The Rust toolkit (``--rust-python PATH``): the Python of a separate virtual environment
with the PyPI package ``nextstat`` 0.10.1 (the seeds' toolkit; never imported here: it runs
as its own process, ``HistFactoryModel.from_workspace`` + ``hypotest_toys``, all cores).

Usage::

    python benchmarks/bench_toys.py                           # writes benchmarks/RESULTS.md
    python -m venv /tmp/rustns && /tmp/rustns/bin/pip install nextstat==0.10.1 numpy
    python benchmarks/bench_toys.py --rust-python /tmp/rustns/bin/python
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
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.common import fmt_time, loadavg, machine_info, publish  # noqa: E402
from benchmarks.models import make_model  # noqa: E402

SECTION = "toys"
MU = 1.0
SEED = 0
#: Toys per hypothesis each child runs untimed first (imports, first-touch of memory).
WARMUP_TOYS = 64

_NEXTSTAT_CHILD = r"""
import json, resource, sys, time
import nextstat
ws_path, n, threads, fixed_aux, warm = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), \
    sys.argv[4] == "1", int(sys.argv[5])
nextstat.set_threads(threads)
model = nextstat.from_pyhf(ws_path)
nextstat.hypotest_toys(1.0, model, n_toys=warm, seed=99, fixed_aux=fixed_aux)
t0 = time.perf_counter()
r = nextstat.hypotest_toys(1.0, model, n_toys=n, seed=0, fixed_aux=fixed_aux,
                           return_result=True)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "n_fits": r.n_fits, "mean_iter": r.mean_iterations,
                  "cls": r.cls, "cls_err": r.cls_err, "n_failed": r.n_failed,
                  "n_nonconverged": r.n_nonconverged,
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_RUST_CHILD = r"""
import json, resource, sys, time
import nextstat as ns
ws_path, n = sys.argv[1], int(sys.argv[2])
model = ns.HistFactoryModel.from_workspace(open(ws_path).read())
ns.hypotest_toys(1.0, model, n_toys=64, seed=99)
t0 = time.perf_counter()
r = ns.hypotest_toys(1.0, model, n_toys=n, seed=0, return_meta=True)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "cls": r["cls"],
                  "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


@dataclass
class Run:
    """One measured configuration (medians over its repeats)."""

    label: str
    tool: str
    model: str
    n_toys: int  # per hypothesis
    threads: str
    aux: str
    walls: list[float] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    note: str = ""

    @property
    def wall(self) -> float:
        return statistics.median(self.walls) if self.walls else float("nan")


def _child(python: str, code: str, args: list[str], env: dict | None = None) -> dict:
    proc = subprocess.run([python, "-c", code, *args], capture_output=True, text=True,
                          env=env, check=False, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_nextstat(run: Run, ws_path: Path, repeats: int, log) -> Run:
    threads = int(run.threads)
    for k in range(repeats):
        out = _child(sys.executable, _NEXTSTAT_CHILD,
                     [str(ws_path), str(run.n_toys), str(threads),
                      "1" if run.aux == "fixed" else "0", str(WARMUP_TOYS)])
        run.walls.append(out["wall"])
        run.info = out
        log(f"  {run.label}: run {k + 1}/{repeats} {fmt_time(out['wall'])}")
    return run


def run_rust(run: Run, python: str, ws_path: Path, repeats: int, log) -> Run:
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    for k in range(repeats):
        out = _child(python, _RUST_CHILD, [str(ws_path), str(run.n_toys)], env=env)
        run.walls.append(out["wall"])
        run.info = out
        log(f"  {run.label}: run {k + 1}/{repeats} {fmt_time(out['wall'])}")
    return run


def time_pyhf(ws: dict, n_toys: int, log) -> float:
    """Seconds per toy (one toy = one free + one conditional fit) for pyhf."""
    import pyhf

    pyhf.set_backend("numpy")
    workspace = pyhf.Workspace(ws)
    model = workspace.model()
    data = workspace.data(model)
    t0 = time.perf_counter()
    # The toys of pyhf.infer.hypotest(..., calctype="toybased"): its expected-set step
    # calls np.percentile(interpolation=...), which NumPy 2 no longer has, so the toy
    # distributions (all the fits) are timed through the calculator itself.
    calc = pyhf.infer.calculators.ToyCalculator(data, model, ntoys=n_toys,
                                                test_stat="qtilde", track_progress=False)
    calc.distributions(MU)
    wall = time.perf_counter() - t0
    log(f"  pyhf: {2 * n_toys} toys in {fmt_time(wall)}")
    return wall / (2 * n_toys)


def render(runs: list[Run], pyhf_per_toy: float | None, args, command: str, mach: dict,
           total: float) -> str:
    out = ["## Toy-based CLs: nextstat vs pyhf 0.7.6 and the seeds' Rust toolkit\n"]
    out.append(f"Command: `{command}`  ")
    out.append(f"Machine: {mach['nproc']} CPUs (nproc), {mach['cpu']}; load average "
               f"(1/5/15 min) {mach['load']}  ")
    out.append(f"Date: {mach['date']}; git {mach['commit']}; nextstat OpenMP build: "
               f"{mach['openmp']}  ")
    vers = ", ".join(f"{k} {v}" for k, v in mach["versions"].items())
    out.append(f"Versions: {vers}; Rust toolkit: {args.rust_version or 'not run'}  ")
    out.append(f"Each nextstat / Rust row: median of {args.repeats} fresh processes (wall "
               f"time of the `hypotest_toys` call after a {WARMUP_TOYS}-toy warm-up); "
               f"total benchmark wall time {total / 60:.1f} min\n")
    out.append("`mu = 1`, `q~_mu`, toys per hypothesis as given (s+b and b-only each: "
               "the run has twice as many toys, each with a free and a conditional fit, "
               "the conditional one skipped when mu_hat > mu as q = 0 then).\n")
    out.append("| model | tool | toys/hyp | threads | aux data | wall (median) | toys/s | "
               "fits/s | iter/fit | peak RSS | CLs | vs nextstat |")
    out.append("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    ref = {}  # nextstat's time per toy, preferring the run with the same toy count
    for r in sorted(runs, key=lambda r: r.n_toys):
        if r.tool == "nextstat":
            ref.setdefault((r.model, r.aux, r.threads), {})[r.n_toys] = r.wall / r.n_toys
    for r in runs:
        info = r.info
        toys_s = 2 * r.n_toys / r.wall if r.walls else float("nan")
        fits = info.get("n_fits")
        fits_s = f"{fits / r.wall:,.0f}" if fits else "—"
        it = info.get("mean_iter")
        rss = info.get("maxrss_mib")
        cls = info.get("cls")
        cls_txt = "—" if cls is None else f"{cls:.4f}"
        if info.get("cls_err") is not None:
            cls_txt += f" ± {info['cls_err']:.4f}"
        ratio = "—"
        per_toy = ref.get((r.model, r.aux, r.threads))
        if r.tool != "nextstat" and per_toy:
            base = per_toy.get(r.n_toys, per_toy[max(per_toy)])
            ratio = f"{r.wall / r.n_toys / base:.1f}× slower (per toy)"
        wall_txt = fmt_time(r.wall) + (f" (min {fmt_time(min(r.walls))})"
                                       if len(r.walls) > 1 else "")
        out.append(f"| {r.model} | {r.tool} | {r.n_toys:,} | {r.threads} | {r.aux} | "
                   f"{wall_txt} | {toys_s:,.0f} | {fits_s} | "
                   f"{'—' if it is None else f'{it:.1f}'} | "
                   f"{'—' if rss is None else f'{rss:,.0f} MiB'} | {cls_txt} | {ratio} |"
                   + (f" {r.note}" if r.note else ""))
    if pyhf_per_toy is not None:
        head = next((r for r in runs if r.model == "god_run" and r.n_toys == 10_000
                     and r.tool == "nextstat" and r.aux == "fluctuated"), None)
        est = pyhf_per_toy * 2 * 10_000
        out.append("")
        out.append(f"pyhf 0.7.6 (NumPy backend, SciPy fits, fluctuated aux data, one process) "
                   f"took {fmt_time(pyhf_per_toy)} per toy on `god_run`, timed on "
                   f"{2 * args.pyhf_toys} toys (`ntoys={args.pyhf_toys}`) and extrapolated: "
                   f"≈ {fmt_time(est)} for 10,000 + 10,000 toys"
                   + (f", **≈ {est / head.wall:,.0f}× nextstat's** {fmt_time(head.wall)}"
                      if head else "") + ". The large model was not run with pyhf (one "
                   "of its fits takes minutes).")
    out.append("")
    out.append("Targets (issue #4): god_run 10k + 10k toys with fixed aux data ≤ 4 s on 2 "
               "cores; peak memory < 1 GiB; linear scaling in the number of toys.")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="processes per configuration (3)")
    ap.add_argument("--pyhf-toys", type=int, default=10,
                    help="pyhf toys per hypothesis, timed and extrapolated (10; 0 skips)")
    ap.add_argument("--scaling", default="1000,10000,100000",
                    help="toys per hypothesis for the scaling rows (fixed aux data)")
    ap.add_argument("--large-toys", type=int, default=1000,
                    help="toys per hypothesis on the 2,113-parameter model (1000; 0 skips)")
    ap.add_argument("--rust-large-toys", type=int, default=50,
                    help="toys per hypothesis for the Rust toolkit on the large model (50: "
                    "~1 s per toy there; compared per toy)")
    ap.add_argument("--rust-python", default=None, metavar="PYTHON",
                    help="python of a separate venv with the PyPI 'nextstat' (the seeds' "
                    "Rust toolkit), run as an external baseline")
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print instead of writing")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_start = loadavg()
    t_start = time.perf_counter()
    nproc = str(os.cpu_count() or 1)
    tmp = Path(tempfile.mkdtemp(prefix="nextstat-bench-toys-"))
    paths = {}
    for name in ("god_run", "large"):
        paths[name] = tmp / f"{name}.json"
        paths[name].write_text(json.dumps(make_model(name)))
    args.rust_version = None
    if args.rust_python:
        args.rust_version = subprocess.run(
            [args.rust_python, "-c", "import nextstat; print(nextstat.__version__)"],
            capture_output=True, text=True, check=True, cwd=tmp,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        ).stdout.strip() + f" (PyPI `nextstat`, {args.rust_python})"

    runs: list[Run] = []
    log("headline: god_run, 10,000 toys per hypothesis")
    for aux in ("fixed", "fluctuated"):
        runs.append(run_nextstat(Run(f"nextstat {aux} aux", "nextstat", "god_run", 10_000,
                                     nproc, aux), paths["god_run"], args.repeats, log))
    runs.append(run_nextstat(Run("nextstat 1 thread", "nextstat", "god_run", 10_000, "1",
                                 "fixed"), paths["god_run"], args.repeats, log))
    if args.rust_python:
        runs.append(run_rust(Run("rust", "Rust toolkit 0.10.1", "god_run", 10_000, nproc,
                                 "fixed"), args.rust_python, paths["god_run"], args.repeats,
                             log))
    log("scaling")
    for n in (int(v) for v in args.scaling.split(",") if v):
        if n == 10_000:
            continue  # the headline row
        reps = args.repeats if n <= 10_000 else 1
        runs.append(run_nextstat(Run(f"scaling {n}", "nextstat", "god_run", n, nproc,
                                     "fixed"), paths["god_run"], reps, log))
    if args.large_toys:
        log("large model")
        # one process each: a run is a minute or more
        for aux in ("fluctuated", "fixed"):
            runs.append(run_nextstat(Run(f"large {aux}", "nextstat", "large", args.large_toys,
                                         nproc, aux), paths["large"], 1, log))
        if args.rust_python and args.rust_large_toys:
            runs.append(run_rust(Run("rust large", "Rust toolkit 0.10.1", "large",
                                     args.rust_large_toys, nproc, "fixed"),
                                 args.rust_python, paths["large"], 1, log))
    runs.sort(key=lambda r: (r.model != "god_run", r.n_toys, r.aux, r.tool != "nextstat",
                             r.threads != nproc))
    pyhf_per_toy = None
    if args.pyhf_toys:
        log("pyhf")
        pyhf_per_toy = time_pyhf(make_model("god_run"), args.pyhf_toys, log)

    total = time.perf_counter() - t_start
    mach = machine_info()
    mach["load"] = f"{load_start} at the start, {loadavg()} at the end"
    command = "python benchmarks/bench_toys.py" + (
        " " + " ".join(shlex.quote(a) for a in argv) if argv else
        (" " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else ""))
    text = render(runs, pyhf_per_toy, args, command, mach, total)
    publish(text, args.output, SECTION, args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
