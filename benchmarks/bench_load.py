"""Loading large workspaces: JSON file -> validated, compiled model, nextstat vs pyhf.

Issue #5 asks for the largest workspaces (>= 2 MB of JSON) to load in under 0.2 s. Each
measurement reads the file, parses, validates and builds the model ready to evaluate:
``nextstat.load(path)`` (the compiled tables included) against
``pyhf.Workspace(json.load(f)).model()`` (pyhf 0.7.6, NumPy backend, schema validation
on, as by default). Fresh model every call; median of ``--repeats`` calls in this process
after one untimed call.

Workspaces: the benchmark model ``large`` (2,113 parameters, 0.7 MiB of compact JSON) and
``xlarge`` (the same construction with 420 channels: 8,400 bins, 8,413 parameters,
2.8 MiB), written to a temporary folder.

Usage::

    python benchmarks/bench_load.py              # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.common import fmt_time, loadavg, machine_info, publish  # noqa: E402
from benchmarks.models import make_model, structured  # noqa: E402

SECTION = "load"
#: Issue #5: a >= 2 MB workspace loads in under this many seconds.
TARGET_S = 0.2


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """Median and min of ``repeats`` timed calls after one untimed call. The result of a
    call is freed after its timer stops: loading, not freeing the previous model, is timed."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        del result
    return statistics.median(times), min(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--no-pyhf", action="store_true")
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args(argv)
    import nextstat

    load_start = loadavg()
    tmp = Path(tempfile.mkdtemp(prefix="nextstat-bench-load-"))
    workspaces = {
        "large": make_model("large"),
        "xlarge": structured(420, 20, n_normsys=8, n_histosys=4),
    }
    rows = []
    for name, ws in workspaces.items():
        path = tmp / f"{name}.json"
        path.write_text(json.dumps(ws))
        mib = path.stat().st_size / 2**20
        model = nextstat.load(path)
        ours = _median_time(lambda p=path: nextstat.load(p), args.repeats)
        theirs = None
        if not args.no_pyhf:
            import pyhf

            pyhf.set_backend("numpy")

            def pyhf_load(p=path):
                with open(p) as fh:
                    return pyhf.Workspace(json.load(fh)).model()

            theirs = _median_time(pyhf_load, max(3, args.repeats // 2))
        print(f"{name}: {mib:.2f} MiB, nextstat {fmt_time(ours[0])}"
              + (f", pyhf {fmt_time(theirs[0])}" if theirs else ""), file=sys.stderr)
        rows.append((name, mib, model.n_params(), model.n_main_bins(), ours, theirs))

    mach = machine_info()
    mach["load"] = f"{load_start} at the start, {loadavg()} at the end"
    command = "python benchmarks/bench_load.py" + (
        " " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
        if (argv if argv is not None else sys.argv[1:]) else "")
    out = ["## Loading large workspaces: JSON -> compiled model\n"]
    out.append(f"Command: `{command}`  ")
    out.append(f"Machine: {mach['nproc']} CPUs (nproc), {mach['cpu']}; load average "
               f"(1/5/15 min) {mach['load']}  ")
    out.append(f"Date: {mach['date']}; git {mach['commit']}  ")
    out.append(f"nextstat: `nextstat.load(path)` (parse, validate, compile); pyhf: "
               f"`pyhf.Workspace(json.load(f)).model()`; median (min) of {args.repeats} "
               f"calls after a warm-up.\n")
    out.append("| workspace | JSON size | params | bins | nextstat | pyhf | ratio | "
               f"target ≤ {TARGET_S} s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for name, mib, npar, nbins, ours, theirs in rows:
        ratio = f"{theirs[0] / ours[0]:.1f}×" if theirs else "—"
        pyhf_txt = f"{fmt_time(theirs[0])} (min {fmt_time(theirs[1])})" if theirs else "—"
        met = "**met**" if ours[0] <= TARGET_S else "**not met**"
        out.append(f"| {name} | {mib:.2f} MiB | {npar:,} | {nbins:,} | "
                   f"{fmt_time(ours[0])} (min {fmt_time(ours[1])}) | {pyhf_txt} | {ratio} | "
                   f"{met if mib >= 2.0 else '(< 2 MB)'} |")
    text = "\n".join(out) + "\n"
    publish(text, args.output, SECTION, args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
