"""Core benchmarks: nextstat vs pyhf (NumPy backend), side by side in one process.

For each synthetic model of :mod:`benchmarks.models` this times

* the NLL alone per call (``m.nll`` vs pyhf ``model.logpdf``);
* NLL + gradient per call: nextstat through the Python wrapper (``m.nll_and_grad``) and
  inside C (the Hessian trick: ``nextstat._ext.fit.hessian`` makes ``2 n_free`` fused
  NLL+gradient evaluations in one C loop, so ``time / (2 n_free)`` is the kernel cost);
  pyhf has no analytic gradient on NumPy, so its column is an *estimate*: ``(n + 1)``
  logpdf calls, the forward finite differences its SciPy fit uses;
* one full fit: ``nextstat.fit(uncertainties=False)`` vs ``pyhf.infer.mle.fit`` (SciPy
  SLSQP, pyhf's default), and ``nextstat.fit(uncertainties=True)`` vs pyhf with Minuit
  (``return_uncertainties=True``);

and prints a markdown report (also written into ``benchmarks/RESULTS.md`` between the
``<!-- core:start -->`` / ``<!-- core:end -->`` markers). Each time is the median over
``--repeats`` measurements (min shown too); a measurement of a fast call is a loop of many
calls divided by their number. pyhf fits are slow, so their repeats stop once a quantity
has used ``--pyhf-budget`` seconds (at least one run); the table says how many ran.

Run from the repository root::

    python benchmarks/bench_core.py --skip-pyhf-large      # ~5-6 min on 2 cores
    python benchmarks/bench_core.py --quick --no-write     # ~1 min, rough
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from benchmarks.common import (  # noqa: E402
    Timing,
    fmt_time,
    loadavg,
    machine_info,
    write_section,
)
from benchmarks.models import MODELS, make_model  # noqa: E402

#: the clock of every measurement; ``--clock cpu`` switches it to process CPU time
CLOCK: dict[str, Callable[[], float]] = {"now": time.perf_counter}

SECTION = "core"
NLL_TOL = 1e-6


# ---------------------------------------------------------------------------------------
# timing helpers
# ---------------------------------------------------------------------------------------
def time_per_call(fn: Callable[[], object], repeats: int, target: float) -> Timing:
    """Median-able per-call times of ``fn``: ``repeats`` loops of ``inner`` calls each.

    ``inner`` is chosen (after a warm-up call) so that one loop takes about ``target``
    seconds; slow calls get ``inner = 1``.
    """
    t0 = CLOCK["now"]()
    fn()  # warm-up
    one = CLOCK["now"]() - t0
    if one < target:  # time a second call, the first may pay one-off costs
        t0 = CLOCK["now"]()
        fn()
        one = CLOCK["now"]() - t0
    inner = max(1, int(target / max(one, 1e-9)))
    # second calibration on a short loop (the single call above is noisy for us-calls)
    if inner > 1:
        k = min(inner, 100)
        t0 = CLOCK["now"]()
        for _ in range(k):
            fn()
        inner = max(1, int(target / max((CLOCK["now"]() - t0) / k, 1e-9)))
    out = Timing(inner=inner)
    for _ in range(repeats):
        t0 = CLOCK["now"]()
        for _ in range(inner):
            fn()
        out.samples.append((CLOCK["now"]() - t0) / inner)
    return out


def time_budgeted(fn: Callable[[], object], repeats: int, budget: float) -> tuple[Timing, object]:
    """Time single calls of a slow ``fn`` (no warm-up): at most ``repeats`` of them, and
    no new one once ``budget`` seconds have been spent (at least one). Returns the timing
    and the last result."""
    out = Timing()
    spent = 0.0
    res = None
    while out.n < repeats and (out.n == 0 or spent < budget):
        t0 = CLOCK["now"]()
        res = fn()
        dt = CLOCK["now"]() - t0
        spent += dt
        out.samples.append(dt)
    return out, res


# ---------------------------------------------------------------------------------------
# work count
# ---------------------------------------------------------------------------------------
def work_count(model) -> dict:
    """Rough operation / traffic count of one fused NLL+gradient evaluation.

    Counted from the compiled tables (see ``nextstat/_ext/nll.pyx``): the forward pass
    touches every sample-bin entry, its histosys entries (code4p polynomial) and gamma
    entries; the Poisson terms take one log per main bin and per Poisson constraint;
    code4 normsys factors take two logs and (outside |alpha| < 1) one exp per block;
    the backward pass revisits every entry. Flops: about 10 per sample-bin entry
    (forward product + accumulation, Poisson derivative, backward accumulation), 20 per
    histosys entry, 5 per gamma entry, 5 per bin, 5 per Gaussian / 6 per Poisson
    constraint, 10 per factor entry. Bytes: every float64 table entry and scratch value
    read or written once (tables are re-read on every call; all of this fits in L2 for
    the small models and in L3 for ``large``).
    """
    t = model.layout.tables
    n_bins = int(t["n_bins"])
    n_sb = int(t["nominal"].shape[0])
    n_hs = int(t["hs_lo"].shape[0])
    n_gam = int(t["gam_param"].shape[0])
    n_fac = int(t["fac_param"].shape[0])
    n_fac_interp = int(np.count_nonzero(np.asarray(t["fac_code"]) >= 0))
    n_gauss = int(t["g_param"].shape[0])
    n_pois = int(t["p_param"].shape[0])
    n_par = int(t["n_par"])
    logs = n_bins + n_pois + 2 * n_fac_interp
    flops = (
        10 * n_sb + 20 * n_hs + 5 * n_gam + 5 * n_bins + 5 * n_gauss + 6 * n_pois + 10 * n_fac
    )
    bytes_ = (
        8 * (5 * n_sb + 4 * n_hs + 4 * n_fac + 4 * n_bins + 2 * n_par + 3 * (n_gauss + n_pois))
        + 4 * (2 * n_gam + 2 * n_sb + 2 * n_hs + 2 * n_fac)
    )
    return {
        "bins": n_bins,
        "sample_bins": n_sb,
        "histosys_entries": n_hs,
        "gamma_entries": n_gam,
        "factor_entries": n_fac,
        "constraints": n_gauss + n_pois,
        "logs": logs,
        "flops": flops,
        "bytes": bytes_,
        "entries": n_sb + n_hs + n_gam,
    }


# ---------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------
def fmt_timing(t: Timing | None, est: bool = False) -> str:
    if t is None or not t.samples:
        return "—"
    s = fmt_time(t.median)
    if est:
        return f"≈ {s} (est.)"
    extra = f"min {fmt_time(t.min)}" if t.n > 1 else "1 run"
    if t.n > 1:
        extra += f", n={t.n}"
    return f"{s} ({extra})"


def fmt_ratio(ours: Timing | None, theirs: Timing | None) -> str:
    if ours is None or theirs is None or not ours.samples or not theirs.samples:
        return "—"
    r = theirs.median / ours.median
    return f"{r:,.0f}×" if r >= 100 else f"{r:.1f}×"


# ---------------------------------------------------------------------------------------
# benchmark of one model
# ---------------------------------------------------------------------------------------
@dataclass
class Row:
    model: str
    params: int
    quantity: str
    ours: Timing | None
    theirs: Timing | None
    theirs_est: bool = False
    theirs_text: str | None = None


def _hessian_kernel(model):
    """Callable running the compiled Hessian (2 n_free NLL+grad in C) and n_free; or None."""
    try:
        from nextstat._ext import fit as _fit
    except ImportError:
        return None, 0
    main, aux, const = model.dataset()
    x = np.ascontiguousarray(model.suggested_init(), dtype=float)
    bounds = np.asarray(model.suggested_bounds(), dtype=float)
    lo = np.ascontiguousarray(bounds[:, 0])
    hi = np.ascontiguousarray(bounds[:, 1])
    free = np.ascontiguousarray(~np.asarray(model.suggested_fixed(), dtype=bool), dtype=np.uint8)
    cm = model.compiled
    return (lambda: _fit.hessian(cm, x, lo, hi, free, main, aux, const)), int(free.sum())


def bench_model(name: str, args, log) -> tuple[list[Row], dict]:
    import nextstat

    ws = make_model(name)
    model = nextstat.from_pyhf(ws)
    n = model.n_params()
    p = model.suggested_init()
    rows: list[Row] = []
    info: dict = {"name": name, "params": n, "work": work_count(model)}
    target = args.target

    log(f"[{name}] {n} params, {model.n_main_bins()} bins")
    # ---- nextstat per-call -----------------------------------------------------------
    t_nll = time_per_call(lambda: model.nll(p), args.repeats, target)
    t_ng = time_per_call(lambda: model.nll_and_grad(p), args.repeats, target)
    hess, n_free = _hessian_kernel(model)
    if hess is not None:
        th = time_per_call(hess, args.repeats, target)
        t_c = Timing([s / (2 * n_free) for s in th.samples], inner=th.inner)
        c_label = "NLL+grad per eval, in C (hessian / 2n)"
    else:  # fallback: tightest Python loop over the compiled object
        main, aux, const = model.dataset()
        cm = model.compiled
        t_c = time_per_call(
            lambda: cm.nll_grad(p, main, aux, const, False), args.repeats, target
        )
        c_label = "NLL+grad per call, compiled.nll_grad"
    info["kernel"] = t_c

    # ---- pyhf per-call -----------------------------------------------------------------
    pyhf_on = not (name == "large" and args.skip_pyhf_large) and not args.no_pyhf
    pm = data = None
    t_lp = t_fd = None
    if pyhf_on:
        import pyhf

        pyhf.set_backend("numpy")
        pws = pyhf.Workspace(ws)
        pm = pws.model()
        data = pws.data(pm)
        pp = pyhf.tensorlib.astensor(pm.config.suggested_init())
        if pm.config.par_names != model.parameter_names():
            raise RuntimeError(f"{name}: parameter order differs between pyhf and nextstat")
        nll_ours, nll_pyhf = model.nll(p), -float(pm.logpdf(pp, data)[0])
        if abs(nll_ours - nll_pyhf) > 1e-6 * max(1.0, abs(nll_pyhf)):
            raise RuntimeError(f"{name}: NLL mismatch at init: {nll_ours} vs pyhf {nll_pyhf}")
        t_lp = time_per_call(lambda: pm.logpdf(pp, data), args.repeats, target)
        t_fd = Timing([s * (n + 1) for s in t_lp.samples])

    rows.append(Row(name, n, "NLL only, per call", t_nll, t_lp))
    rows.append(
        Row(name, n, "NLL+grad per call (nextstat: m.nll_and_grad; pyhf: (n+1)×logpdf FD)",
            t_ng, t_fd, theirs_est=True)
    )
    rows.append(Row(name, n, c_label, t_c, t_fd, theirs_est=True))

    # ---- fits --------------------------------------------------------------------------
    if not hasattr(nextstat, "fit"):
        log(f"[{name}] nextstat.fit not available yet; fit rows skipped")
        return rows, info
    last: dict = {}

    def ns_fit(unc: bool):
        last[unc] = nextstat.fit(model, uncertainties=unc)

    t_fit = time_per_call(lambda: ns_fit(False), args.repeats, target)
    t_fit_err = time_per_call(lambda: ns_fit(True), args.repeats, target)
    res_noerr, res_err = last[False], last[True]
    info.update(
        n_iter=res_noerr.n_iter,
        n_fev=res_noerr.n_fev,
        n_gev=getattr(res_noerr, "n_gev", None),
        converged=res_noerr.converged,
        nll=res_noerr.nll,
        nll_err=res_err.nll,
        mu=res_err.value("mu"),
        mu_err=res_err.error("mu"),
        cov_status=getattr(res_err, "covariance_status", ""),
    )
    t_slsqp = t_minuit = None
    slsqp_text = minuit_text = None
    if pyhf_on:
        import pyhf

        big = name == "large"
        # SLSQP (pyhf default optimizer)
        if big and not args.pyhf_large_slsqp:
            slsqp_text = (
                f"not run (≈ {fmt_time(t_fd.median)} per FD gradient; "
                "`--pyhf-large-slsqp`)"
            )
        else:
            pyhf.set_backend("numpy")
            reps = 1 if big else args.repeats
            log(f"[{name}] pyhf SLSQP fit (up to {reps} runs, budget {args.pyhf_budget:.0f} s)")
            t_slsqp, (bf, twice) = time_budgeted(
                lambda: pyhf.infer.mle.fit(data, pm, return_fitted_val=True),
                reps, args.pyhf_budget,
            )
            info["slsqp_nll"] = float(twice) / 2.0
            info["slsqp_mu"] = float(np.asarray(bf)[pm.config.poi_index])
        # Minuit with uncertainties
        if args.skip_minuit or (big and not args.pyhf_large_minuit):
            minuit_text = (
                "not run (`--pyhf-large-minuit`; Hesse alone ≈ 2n² logpdf calls)"
                if big else "not run (--quick / --skip-minuit)"
            )
        else:
            pyhf.set_backend("numpy", "minuit")
            reps = 1 if big else args.repeats
            log(f"[{name}] pyhf Minuit fit (up to {reps} runs, budget {args.pyhf_budget:.0f} s)")
            t_minuit, (bf, twice) = time_budgeted(
                lambda: pyhf.infer.mle.fit(
                    data, pm, return_fitted_val=True, return_uncertainties=True
                ),
                reps, args.pyhf_budget,
            )
            bf = np.asarray(bf)
            info["minuit_nll"] = float(twice) / 2.0
            info["minuit_mu"] = float(bf[pm.config.poi_index, 0])
            info["minuit_mu_err"] = float(bf[pm.config.poi_index, 1])
            pyhf.set_backend("numpy")
    rows.append(Row(name, n, "fit, no uncertainties (pyhf: SLSQP)", t_fit, t_slsqp,
                    theirs_text=slsqp_text))
    rows.append(Row(name, n, "fit + uncertainties (pyhf: Minuit + Hesse)", t_fit_err,
                    t_minuit, theirs_text=minuit_text))
    return rows, info


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def render(rows: list[Row], infos: list[dict], args, command: str, mach: dict,
           wall: float) -> str:
    out = []
    out.append("## Core benchmarks: nextstat vs pyhf (NumPy backend)\n")
    out.append(f"Command: `{command}`  ")
    vers = ", ".join(f"{k} {v}" for k, v in mach["versions"].items())
    out.append(
        f"Machine: {mach['nproc']} CPUs (nproc), {mach['cpu']}; load average (1/5/15 min) "
        f"{mach['load']}  "
    )
    out.append(f"Date: {mach['date']}; git {mach['commit']}; nextstat OpenMP build: "
               f"{mach['openmp']}  ")
    out.append(f"Versions: {vers}  ")
    clock = "time.perf_counter (wall)" if args.clock == "wall" else "time.process_time (CPU)"
    out.append(f"Clock: {clock}. Repeats: {args.repeats} (median, min in parentheses); "
               "pyhf fits stop "
               f"repeating after {args.pyhf_budget:.0f} s per quantity; wall time "
               f"{wall / 60:.1f} min\n")
    out.append("| model | params | quantity | nextstat median | pyhf median | "
               "ratio (pyhf/nextstat) |")
    out.append("|---|---:|---|---:|---:|---:|")
    for r in rows:
        theirs = r.theirs_text if r.theirs_text else fmt_timing(r.theirs, est=r.theirs_est)
        out.append(
            f"| {r.model} | {r.params} | {r.quantity} | {fmt_timing(r.ours)} | {theirs} | "
            f"{fmt_ratio(r.ours, r.theirs)} |"
        )
    out.append("")
    out.append("pyhf's NLL+grad column is an estimate, (n+1) × its measured logpdf time: "
               "pyhf has no analytic gradient on the NumPy backend and its SciPy fit "
               "differentiates by forward finite differences.\n")

    fit_infos = [i for i in infos if "n_iter" in i]
    if fit_infos:
        out.append("### Fits\n")
        out.append("| model | nextstat n_iter | n_fev | converged | NLL (nextstat) | "
                   "mu ± err (nextstat) | ΔNLL vs pyhf SLSQP | ΔNLL vs pyhf Minuit | "
                   "mu ± err (pyhf Minuit) |")
        out.append("|---|---:|---:|---|---:|---|---:|---:|---|")
        for i in fit_infos:
            def delta(key, i=i):
                if key not in i:
                    return "—"
                d = i["nll"] - i[key]
                flag = "ok" if d <= NLL_TOL else "**WORSE**"
                return f"{d:+.2e} ({flag})"

            mm = (f"{i['minuit_mu']:.4f} ± {i['minuit_mu_err']:.4f}"
                  if "minuit_mu" in i else "—")
            out.append(
                f"| {i['name']} | {i['n_iter']} | {i['n_fev']} | {i['converged']} | "
                f"{i['nll']:.6f} | {i['mu']:.4f} ± {i['mu_err']:.4f} | "
                f"{delta('slsqp_nll')} | {delta('minuit_nll')} | {mm} |"
            )
        out.append("")
        out.append(f"ΔNLL = NLL(nextstat fit) − NLL(pyhf fit); \"ok\" means ≤ +{NLL_TOL:g} "
                   "(nextstat found an equal or lower minimum).\n")

    out.append("### Work per NLL+grad evaluation (estimate) vs measured kernel time\n")
    out.append("| model | bins | sample-bin entries | histosys entries | gamma entries | "
               "factor entries | constraints | logs/eval | ≈ flops/eval | ≈ bytes/eval | "
               "kernel time | ns / sample-bin | ns / entry | ≈ GFLOP/s |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for i in infos:
        w = i["work"]
        k = i["kernel"].median
        out.append(
            f"| {i['name']} | {w['bins']} | {w['sample_bins']} | {w['histosys_entries']} | "
            f"{w['gamma_entries']} | {w['factor_entries']} | {w['constraints']} | "
            f"{w['logs']} | {w['flops']:,} | {w['bytes'] / 1024:,.0f} KiB | {fmt_time(k)} | "
            f"{k * 1e9 / w['sample_bins']:.1f} | {k * 1e9 / w['entries']:.1f} | "
            f"{w['flops'] / k / 1e9:.2f} |"
        )
    out.append("")
    out.append("entries = sample-bin + histosys + gamma entries; the flop and byte counts are "
               "rough (see `work_count` in bench_core.py).")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="nextstat vs pyhf core benchmarks")
    ap.add_argument("--repeats", type=int, default=7, help="measurements per quantity")
    ap.add_argument("--quick", action="store_true",
                    help="3 repeats, short loops, one pyhf fit each, no Minuit, no large pyhf")
    ap.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    ap.add_argument("--skip-pyhf-large", action="store_true",
                    help="no pyhf measurement at all on the large model")
    ap.add_argument("--pyhf-large-slsqp", action="store_true",
                    help="run pyhf's SLSQP fit on large once (about an hour)")
    ap.add_argument("--pyhf-large-minuit", action="store_true",
                    help="run pyhf's Minuit fit + Hesse on large once (many hours)")
    ap.add_argument("--skip-minuit", action="store_true", help="no pyhf Minuit fits")
    ap.add_argument("--no-pyhf", action="store_true", help="nextstat only")
    ap.add_argument("--pyhf-budget", type=float, default=60.0,
                    help="seconds after which a pyhf fit is not repeated (default 60)")
    ap.add_argument("--target", type=float, default=0.2,
                    help="seconds per timed loop of fast calls (default 0.2)")
    ap.add_argument("--clock", choices=["wall", "cpu"], default="wall",
                    help="wall: time.perf_counter (default); cpu: time.process_time, less "
                    "sensitive to other load on a shared machine (counts all threads)")
    ap.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--no-write", action="store_true", help="print only")
    args = ap.parse_args(argv)
    CLOCK["now"] = time.perf_counter if args.clock == "wall" else time.process_time
    if args.quick:
        args.repeats = min(args.repeats, 3)
        args.target = min(args.target, 0.05)
        args.pyhf_budget = 0.0
        args.skip_minuit = True
        args.skip_pyhf_large = True

    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="pyhf")
    command = "python benchmarks/bench_core.py" + (
        " " + " ".join(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
        if (sys.argv[1:] if argv is None else argv) else ""
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    load_start = loadavg()
    t0 = time.perf_counter()
    rows: list[Row] = []
    infos: list[dict] = []
    for name in args.models:
        r, i = bench_model(name, args, log)
        rows += r
        infos.append(i)
    wall = time.perf_counter() - t0
    mach = machine_info(("numpy", "scipy", "pyhf", "iminuit"))
    mach["load"] = f"{load_start} at the start, {mach['load']} at the end"
    text = render(rows, infos, args, command, mach, wall)
    print(text)
    if not args.no_write:
        write_section(args.output, text, SECTION)
        log(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
