"""Toy-based (pseudo-experiment) hypothesis tests and toy fits.

Semantics follow pyhf 0.7.6's ``ToyCalculator``:

* s+b toys are drawn from the model at the conditional fit to the observed data at the
  tested ``mu``; b-only toys from the conditional fit at ``mu = 0``.
* Every toy gets the full test statistic (``q_mu`` or ``q~_mu``, not in sqrt space):
  a free fit per toy started at the generating point, then a fixed-``mu`` fit started at
  the toy's free minimum with the POI set to ``mu``.
* ``CLs+b`` / ``CLb`` are the fractions of s+b / b-only toys with ``q >= q_obs``;
  ``CLs = CLs+b / CLb``.
* The expected set holds the percentiles (2.275, 15.866, 50, 84.134, 97.725) of the
  per-toy ``CLs`` evaluated at every b-only toy's test statistic (ascending).

Toys are drawn from the full probability model: main bins from Poisson(nu(theta_gen)),
auxiliary data from the constraint terms (Gaussian Normal(theta_gen, sigma); Poisson
Poisson(gamma_gen tau)). ``fixed_aux=True`` keeps the auxiliary data at the observed
values instead (the policy of the seeds' toolkit).

Reproducibility: toys of hypothesis ``h`` (0: s+b, 1: b-only, 2: :func:`fit_toys`) come
in fixed blocks of :data:`STREAM_BLOCK`; block ``j`` draws from its own counter-based stream
``Philox(key=(seed, h), counter=(0, 0, 0, j))``, so toy ``i``'s numbers are a function of
``(seed, h, i)`` alone: independent of the thread count and of how toys are batched.

A toy whose fit fails (non-finite NLL) is counted in ``n_failed`` and left out; a fit
that ends without meeting the convergence test is kept and counted in ``n_nonconverged``.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .._config import get_threads
from .._ext import toys as _toys
from ..errors import InvalidParameters
from .asymptotics import AsymptoticCalculator
from .mle import ACCEPT_PGTOL, MAX_ITER, MAX_RESTARTS, PGTOL
from .profile import ProfileLikelihood

__all__ = [
    "ToyHypotestResult",
    "ToyFitResult",
    "generate_toys",
    "hypotest_toys",
    "merge_toys",
    "save_toys",
    "load_toys",
    "fit_toys",
    "EXPECTED_PERCENTILES",
]

#: The per-toy arrays of a :class:`ToyHypotestResult` (q: NaN where a fit failed).
SAMPLE_FIELDS = ("q_sb", "q_b", "nonconv_sb", "nonconv_b")
#: pyhf's percentiles of the expected set (-2 ... +2 sigma of a standard normal).
EXPECTED_PERCENTILES = (2.27501319, 15.86552539, 50.0, 84.13447461, 97.72498681)
_CHUNK = 2048
#: Toys per random stream: toy i comes from stream i // STREAM_BLOCK (fixed, so the
#: numbers depend only on (seed, hypothesis, i), not on batching or threads).
STREAM_BLOCK = 256
#: L-BFGS history of toy fits: warm-started toy fits take ~7-11 iterations, and a
#: history of 5 costs ~20% less per fit than 10 with the same iteration count (201-par
#: benchmark model).
TOY_LBFGS_M = 5
_HYP_SB, _HYP_B, _HYP_FIT = 0, 1, 2


def _streams_key(seed: int, hypothesis: int) -> np.ndarray:
    if seed < 0:
        raise InvalidParameters(f"seed must be >= 0, got {seed}")
    return np.array([int(seed) & 0xFFFFFFFFFFFFFFFF, hypothesis], dtype=np.uint64)


def generate_toys(model, params, n_toys: int, seed: int = 0, *, hypothesis: int = _HYP_FIT,
                  fixed_aux: bool = False, start: int = 0, n_threads: int = 1):
    """Pseudo-datasets drawn from ``model`` at ``params``.

    Parameters
    ----------
    model : HistFactoryModel
    params : array_like
        Generating parameter point.
    n_toys : int
    seed : int
    hypothesis : int
        Stream family (part of the key); toys ``start .. start + n_toys - 1`` are drawn.
    fixed_aux : bool
        Keep the auxiliary data at the observed values.
    start : int
        Index of the first toy.
    n_threads : int
        Threads drawing the stream blocks (the numbers do not depend on it).

    Returns
    -------
    mains : ndarray, shape (n_toys, n_bins)
    auxs : ndarray, shape (n_toys, n_aux)
    constants : ndarray, shape (n_toys,)
        The data-dependent NLL constants (``sum lgamma(n + 1)`` + Gaussian normalisations).
    """
    from scipy.special import gammaln

    lay = model.layout
    p = np.asarray(params, dtype=float)
    nu = np.asarray(model.expected_main(p), dtype=float)
    if np.any(~np.isfinite(nu)) or np.any(nu < 0):
        raise InvalidParameters("the generating point has negative or non-finite rates")
    n_aux = model.n_aux()
    aux_kind = np.asarray(lay.aux_kind)
    gauss = np.flatnonzero(aux_kind == 0)
    pois = np.flatnonzero(aux_kind == 1)
    sigma = np.ones(n_aux)
    if gauss.size:
        g_aux = np.asarray(lay.tables["g_aux"])
        sigma[g_aux] = 1.0 / np.asarray(lay.tables["g_inv_sigma"])
    aux_mean = np.asarray(model.expected_aux(p), dtype=float)
    key = _streams_key(seed, hypothesis)
    n_bins = nu.size
    mains = np.empty((n_toys, n_bins))
    auxs = np.empty((n_toys, n_aux))
    obs_aux = np.asarray(lay.aux_data, dtype=float)
    g_mean, g_sig = aux_mean[gauss], sigma[gauss]
    p_mean = aux_mean[pois]
    stop = start + n_toys
    blk = STREAM_BLOCK

    def fill(b):
        # block b holds toys b*blk .. b*blk+blk-1, drawn from one stream in one go
        counter = np.zeros(4, dtype=np.uint64)
        counter[3] = b
        rng = np.random.Generator(np.random.Philox(counter=counter, key=key))
        lo, hi = max(start, b * blk), min(stop, (b + 1) * blk)
        rows = slice(lo - b * blk, hi - b * blk)
        out = slice(lo - start, hi - start)
        mains[out] = rng.poisson(nu, size=(blk, n_bins))[rows]
        if fixed_aux:
            auxs[out] = obs_aux
        else:
            g = rng.normal(g_mean, g_sig, size=(blk, gauss.size))
            pz = rng.poisson(p_mean, size=(blk, pois.size))
            auxs[out][:, gauss] = g[rows]
            auxs[out][:, pois] = pz[rows]

    blocks = range(start // blk, (stop + blk - 1) // blk if n_toys else 0)
    if n_threads > 1 and len(blocks) > 1:
        # NumPy draws without the GIL; blocks write disjoint rows, each from its own stream
        with ThreadPoolExecutor(min(n_threads, len(blocks))) as pool:
            list(pool.map(fill, blocks))
    else:
        for b in blocks:
            fill(b)
    # sum lgamma(n + 1): the counts are integers, so look the terms up in a table
    hi = int(mains.max()) if mains.size else 0
    pois_idx = np.asarray(lay.pois_aux_index)
    if pois_idx.size:
        hi = max(hi, int(auxs[:, pois_idx].max()))
    table = gammaln(np.arange(hi + 1, dtype=float) + 1.0)
    constants = table[mains.astype(np.intp)].sum(axis=1) + lay.gauss_log_norm
    if pois_idx.size:
        pa = auxs[:, pois_idx]
        if np.array_equal(pa, np.floor(pa)):
            constants += table[pa.astype(np.intp)].sum(axis=1)
        else:  # observed (fixed) Poisson aux data need not be integers
            constants += gammaln(pa + 1.0).sum(axis=1)
    return mains, auxs, constants


def _test_stats(prof: ProfileLikelihood, mains, auxs, constants, x_gen, mu, test_stat,
                n_threads):
    """Per-toy q_mu (pyhf's full test statistic; NaN where a fit failed), non-convergence
    flags, optimizer iterations and fits."""
    cm = prof.model.compiled
    poi = prof.poi
    kahan = prof.kahan
    # Variable scales from the Fisher diagonal at each fit's own start point (a shared
    # scale from the generating point cost ~20% more iterations on the benchmark model).
    kw = dict(kahan=kahan, n_threads=n_threads, max_iter=MAX_ITER, pgtol=PGTOL,
              max_restarts=MAX_RESTARTS, accept_pgtol=ACCEPT_PGTOL, m=TOY_LBFGS_M,
              local=prof.model.layout.local_params)
    x_free, nll_free, _, it_f, conv_f = _toys.fit_batch(
        cm, mains, auxs, constants, x_gen, prof.lower, prof.upper, **kw)
    lower = prof.lower.copy()
    upper = prof.upper.copy()
    lower[poi] = upper[poi] = mu
    # The conditional fit starts from the toy's own free minimum with the POI moved to
    # mu: about half the iterations of a start at the generating point.
    # Toys with mu_hat > mu have q = 0 whatever the conditional fit gives: skip it.
    mu_hat = x_free[:, poi]
    need = np.flatnonzero(~(np.isfinite(nll_free) & (mu_hat > mu)))
    start = np.where(np.isfinite(x_free[need]), x_free[need],
                     np.asarray(x_gen, dtype=float)[None, :])
    start[:, poi] = mu
    _, nll_c, _, it_c, conv_c = _toys.fit_batch(
        cm, np.ascontiguousarray(mains[need]), np.ascontiguousarray(auxs[need]),
        np.ascontiguousarray(constants[need]), start, lower, upper, **kw)
    nll_cond = nll_free.copy()
    nll_cond[need] = nll_c
    conv = conv_f.copy()
    conv[need] &= conv_c
    t = np.maximum(2.0 * (nll_cond - nll_free), 0.0)
    q = np.where(mu_hat > mu, 0.0, t)
    failed = ~(np.isfinite(nll_free) & np.isfinite(nll_cond))
    q[failed] = np.nan
    nonconv = ~failed & ~conv
    return q, nonconv, int(it_f.sum() + it_c.sum()), len(mains) + need.size


@dataclass
class ToyHypotestResult:
    """Result of :func:`hypotest_toys` (JSON-serialisable via :meth:`to_dict`).

    ``cls_exp`` / ``clsb_exp`` / ``clb_exp`` hold pyhf's expected set (ascending
    percentiles of the per-toy p-values at the b-only test statistics), empty unless
    asked. Errors are binomial Monte-Carlo standard errors (``cls_err`` propagated from
    the two independent samples).
    """

    mu_test: float
    test_stat: str
    cls: float
    clsb: float
    clb: float
    cls_err: float
    clsb_err: float
    clb_err: float
    q_obs: float
    mu_hat: float
    n_toys: dict
    n_failed: dict
    n_nonconverged: dict
    seed: int
    fixed_aux: bool
    cls_exp: list = field(default_factory=list)
    clsb_exp: list = field(default_factory=list)
    clb_exp: list = field(default_factory=list)
    mean_iterations: float = math.nan
    n_fits: int = 0
    n_iterations: int = 0
    q_asimov: float = math.nan
    cls_asymptotic: float = math.nan
    n_toys_requested: dict = field(default_factory=dict)
    toy_range: dict = field(default_factory=dict)
    shard: list | None = None
    q_sb: np.ndarray | None = None
    q_b: np.ndarray | None = None
    nonconv_sb: np.ndarray | None = None
    nonconv_b: np.ndarray | None = None

    def to_dict(self, include_samples: bool = False) -> dict:
        """Plain Python data (the per-toy arrays only if ``include_samples``)."""
        d = asdict(self)
        for k in SAMPLE_FIELDS:
            if include_samples and d[k] is not None:
                d[k] = d[k].tolist()
            else:
                d.pop(k)
        return d

    def save(self, path) -> None:
        """Write the toy distributions and the metadata to ``.npz`` or ``.parquet``.

        See :func:`save_toys`.
        """
        save_toys(self, path)


def _tail(samples_sorted: np.ndarray, values) -> np.ndarray:
    """Fraction of samples >= each value."""
    n = samples_sorted.size
    return (n - np.searchsorted(samples_sorted, values, side="left")) / n


def _run_toys(prof, x_gen, mu, start, stop, seed, hyp, fixed_aux, test_stat, n_threads,
              progress, done, total):
    """Test statistics of toys ``start .. stop - 1`` of hypothesis ``hyp``."""
    qs, nonconvs = [], []
    n_iter = n_fit = 0
    for s in range(start, stop, _CHUNK):
        b = min(_CHUNK, stop - s)
        mains, auxs, consts = generate_toys(prof.model, x_gen, b, seed, hypothesis=hyp,
                                            fixed_aux=fixed_aux, start=s, n_threads=n_threads)
        q, nc, it, nfit = _test_stats(prof, mains, auxs, consts, x_gen, mu, test_stat,
                                         n_threads)
        qs.append(q)
        nonconvs.append(nc)
        n_iter += it
        n_fit += nfit
        done += b
        if progress is not None:
            progress(done, total)

    def cat(a, dt):
        return np.concatenate(a) if a else np.empty(0, dtype=dt)

    return cat(qs, float), cat(nonconvs, bool), n_iter, n_fit, done


def _shard_range(n: int, shard) -> tuple[int, int]:
    """Toy indices ``[start, stop)`` of shard ``i`` of ``k`` among ``n`` toys."""
    if shard is None:
        return 0, n
    i, k = shard
    return n * i // k, n * (i + 1) // k


def _check_shard(shard):
    if shard is None:
        return None
    try:
        i, k = (int(v) for v in shard)
    except (TypeError, ValueError):
        raise InvalidParameters(f"shard must be a pair (i, n), got {shard!r}") from None
    if k < 1 or not 0 <= i < k:
        raise InvalidParameters(f"shard ({i}, {k}): need n >= 1 and 0 <= i < n")
    return i, k


def _summarise(meta: dict, q_sb, nc_sb, q_b, nc_b, n_iter: int, n_fits: int,
               want_expected: bool) -> ToyHypotestResult:
    """CLs, CLs+b, CLb, their Monte-Carlo errors and the expected set from the toys."""
    q_obs = meta["q_obs"]
    f_sb, f_b = np.isnan(q_sb), np.isnan(q_b)
    sb = np.sort(q_sb[~f_sb])
    bb = np.sort(q_b[~f_b])
    if sb.size == 0 or bb.size == 0:
        nan = math.nan
        clsb = clb = cls = clsb_err = clb_err = cls_err = nan
    else:
        clsb = float(_tail(sb, q_obs))
        clb = float(_tail(bb, q_obs))
        clsb_err = math.sqrt(clsb * (1.0 - clsb) / sb.size)
        clb_err = math.sqrt(clb * (1.0 - clb) / bb.size)
        cls = clsb / clb if clb > 0 else math.nan
        if clb > 0 and clsb > 0:
            cls_err = cls * math.sqrt((clsb_err / clsb) ** 2 + (clb_err / clb) ** 2)
        elif clb > 0:
            cls_err = 0.0
        else:
            cls_err = math.nan
    cls_exp = clsb_exp = clb_exp = []
    if want_expected and sb.size and bb.size:
        p_sb = _tail(sb, bb)
        p_b = _tail(bb, bb)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_s = p_sb / p_b
        band = np.percentile(np.stack([p_sb, p_b, p_s], axis=1),
                             EXPECTED_PERCENTILES, axis=0).T
        clsb_exp, clb_exp, cls_exp = band[0].tolist(), band[1].tolist(), band[2].tolist()
    return ToyHypotestResult(
        **meta, cls=cls, clsb=clsb, clb=clb, cls_err=cls_err, clsb_err=clsb_err,
        clb_err=clb_err,
        n_toys={"sb": int(sb.size), "b": int(bb.size)},
        n_failed={"sb": int(f_sb.sum()), "b": int(f_b.sum())},
        n_nonconverged={"sb": int(nc_sb.sum()), "b": int(nc_b.sum())},
        cls_exp=cls_exp, clsb_exp=clsb_exp, clb_exp=clb_exp,
        mean_iterations=n_iter / n_fits if n_fits else math.nan,
        n_fits=int(n_fits), n_iterations=int(n_iter),
        q_sb=q_sb, q_b=q_b, nonconv_sb=nc_sb, nonconv_b=nc_b,
    )


def hypotest_toys(
    mu,
    model,
    data=None,
    *,
    n_toys: int = 10_000,
    seed: int = 0,
    test_stat: str = "qtilde",
    return_expected_set: bool = False,
    return_tail_probs: bool = False,
    n_threads: int | None = None,
    fixed_aux: bool = False,
    progress=None,
    return_result: bool = False,
    shard=None,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
):
    """Toy-based CLs test of ``mu`` (pyhf's ``hypotest(..., calctype="toybased")``).

    Parameters
    ----------
    mu : float
        Tested POI value.
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    n_toys : int or (int, int)
        Toys per hypothesis (or ``(n_sb, n_b)``).
    seed : int
        Key of the per-toy random streams (see the module docstring).
    test_stat : {"qtilde", "q"}
    return_expected_set, return_tail_probs : bool
        Extra outputs, in pyhf's order.
    n_threads : int, optional
        Threads for the toy fits (default :func:`nextstat.get_threads`); results do not
        depend on it.
    fixed_aux : bool
        Keep auxiliary data at their observed values in the toys.
    progress : callable, optional
        ``progress(done, total)`` after each batch of toys.
    return_result : bool
        Return the full :class:`ToyHypotestResult` (with the per-toy test statistics,
        the asymptotic ``q_asimov`` and CLs for comparison).
    shard : (int, int), optional
        ``(i, n)``: run only shard ``i`` of ``n`` of the toys of each hypothesis (a
        contiguous range of toy indices, the same toys a full run draws there); combine
        the shards with :func:`merge_toys`.
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.

    Returns
    -------
    float or tuple or ToyHypotestResult
        pyhf's order: ``CLs``; ``[CLs+b, CLb]`` if ``return_tail_probs``; the 5 expected
        ``CLs`` if ``return_expected_set``.
    """
    if test_stat not in ("qtilde", "q"):
        raise InvalidParameters(f"toys support test_stat 'qtilde' or 'q', got {test_stat!r}")
    if isinstance(n_toys, (tuple, list)):
        n_sb, n_b = (int(v) for v in n_toys)
    else:
        n_sb = n_b = int(n_toys)
    if n_sb < 1 or n_b < 1:
        raise InvalidParameters("n_toys must be >= 1")
    shard = _check_shard(shard)
    mu = float(mu)
    n_threads = int(n_threads or get_threads())
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    poi = prof.poi
    free = prof.free_fit()
    cond = prof.fixed_poi_fit(mu, x0=free.x)
    mu_hat = float(free.x[poi])
    q_obs = max(2.0 * (cond.nll - free.nll), 0.0)
    if mu_hat > mu:
        q_obs = 0.0
    asy = AsymptoticCalculator(prof, test_stat).hypotest(mu)
    bkg = prof.fixed_poi_fit(0.0, x0=free.x) if mu != 0.0 else cond
    r_sb, r_b = _shard_range(n_sb, shard), _shard_range(n_b, shard)
    total = (r_sb[1] - r_sb[0]) + (r_b[1] - r_b[0])
    q_sb, nc_sb, it_sb, nf_sb, done = _run_toys(prof, cond.x, mu, *r_sb, seed, _HYP_SB,
                                                fixed_aux, test_stat, n_threads, progress,
                                                0, total)
    q_b, nc_b, it_b, nf_b, _ = _run_toys(prof, bkg.x, mu, *r_b, seed, _HYP_B, fixed_aux,
                                         test_stat, n_threads, progress, done, total)
    meta = dict(
        mu_test=mu, test_stat=test_stat, q_obs=float(q_obs), mu_hat=mu_hat, seed=int(seed),
        fixed_aux=bool(fixed_aux), q_asimov=float(asy.q_asimov),
        cls_asymptotic=float(asy.cls), n_toys_requested={"sb": n_sb, "b": n_b},
        toy_range={"sb": list(r_sb), "b": list(r_b)},
        shard=None if shard is None else list(shard),
    )
    res = _summarise(meta, q_sb, nc_sb, q_b, nc_b, it_sb + it_b, nf_sb + nf_b,
                     return_expected_set or return_result)
    if return_result:
        return res
    out = [res.cls]
    if return_tail_probs:
        out.append([res.clsb, res.clb])
    if return_expected_set:
        out.append(list(res.cls_exp))
    return out[0] if len(out) == 1 else tuple(out)


#: Metadata that every shard of one toy run must share (merge_toys checks them).
_RUN_KEYS = ("mu_test", "test_stat", "seed", "fixed_aux", "n_toys_requested")
#: Relative agreement required of the shards' observed test statistics and fits: each
#: shard repeats the same deterministic fits to the observed data, so they agree to the
#: last bits; a larger difference means the shards ran on different inputs.
_SHARD_RTOL = 1e-9


def merge_toys(results) -> ToyHypotestResult:
    """Combine the shards of one toy run (``hypotest_toys(..., shard=(i, n))``).

    The merged result is the one a single run with all the toys gives: the per-toy
    test statistics are put back in toy order and CLs, CLs+b, CLb, their errors and the
    expected set are computed from them.

    Parameters
    ----------
    results : iterable of ToyHypotestResult
        Shards (or files loaded with :func:`load_toys`) with their per-toy arrays, in any
        order. Together they must cover every toy index of both hypotheses exactly once.

    Returns
    -------
    ToyHypotestResult
        ``shard`` is None; the expected set is always filled.

    Raises
    ------
    nextstat.errors.InvalidParameters
        Shards of different runs (mu, test statistic, seed, aux policy, toy counts, or
        observed test statistic differ), shards without their per-toy arrays, and toy
        ranges that overlap or leave gaps (the message lists them).
    """
    parts = list(results)
    if not parts:
        raise InvalidParameters("merge_toys needs at least one result")
    first = parts[0]
    for k, r in enumerate(parts):
        if r.q_sb is None or r.q_b is None:
            raise InvalidParameters(f"result {k} has no per-toy test statistics")
        for key in _RUN_KEYS:
            if getattr(r, key) != getattr(first, key):
                raise InvalidParameters(
                    f"result {k} is from another run: {key} = {getattr(r, key)!r}, "
                    f"result 0 has {getattr(first, key)!r}")
        for key in ("q_obs", "mu_hat"):
            a, b = getattr(r, key), getattr(first, key)
            if not math.isclose(a, b, rel_tol=_SHARD_RTOL, abs_tol=_SHARD_RTOL):
                raise InvalidParameters(
                    f"result {k} has {key} = {a!r}, result 0 has {b!r}: not the same data")
    arrays = {}
    for hyp in ("sb", "b"):
        n = int(first.n_toys_requested[hyp])
        ranges = sorted(((int(r.toy_range[hyp][0]), int(r.toy_range[hyp][1]), k)
                         for k, r in enumerate(parts)))
        pos, problems = 0, []
        for lo, hi, k in ranges:
            if lo > pos:
                problems.append(f"toys {pos}..{lo - 1} missing")
            elif lo < pos:
                problems.append(f"toys {lo}..{min(hi, pos) - 1} twice (result {k})")
            pos = max(pos, hi)
        if pos < n:
            problems.append(f"toys {pos}..{n - 1} missing")
        if problems:
            raise InvalidParameters(f"{hyp} toys of {n}: " + "; ".join(problems))
        order = [k for _, _, k in ranges]
        arrays[hyp] = (np.concatenate([getattr(parts[k], f"q_{hyp}") for k in order]),
                       np.concatenate([_nonconv(parts[k], hyp) for k in order]))
    meta = {key: getattr(first, key) for key in (
        "mu_test", "test_stat", "q_obs", "mu_hat", "seed", "fixed_aux", "q_asimov",
        "cls_asymptotic", "n_toys_requested")}
    meta["toy_range"] = {h: [0, int(first.n_toys_requested[h])] for h in ("sb", "b")}
    meta["shard"] = None
    return _summarise(meta, *arrays["sb"], *arrays["b"],
                      sum(r.n_iterations for r in parts), sum(r.n_fits for r in parts),
                      True)


def _nonconv(r: ToyHypotestResult, hyp: str) -> np.ndarray:
    arr = getattr(r, f"nonconv_{hyp}")
    return np.zeros(getattr(r, f"q_{hyp}").size, dtype=bool) if arr is None else arr


def save_toys(result: ToyHypotestResult, path) -> None:
    """Write a toy run's per-toy test statistics and metadata.

    ``.npz``: arrays ``q_sb``, ``q_b``, ``nonconv_sb``, ``nonconv_b`` and ``meta`` (the
    JSON of :meth:`ToyHypotestResult.to_dict`). ``.parquet`` (needs pyarrow): one row per
    toy with columns ``hypothesis`` ("sb"/"b"), ``toy`` (the toy index of its stream),
    ``q`` (NaN: a failed fit) and ``nonconverged``; the metadata JSON is in the schema
    metadata under ``nextstat``.
    """
    import json
    from pathlib import Path

    path = Path(path)
    if result.q_sb is None or result.q_b is None:
        raise InvalidParameters("this result has no per-toy test statistics to save")
    meta = json.dumps(_json_meta(result))
    if path.suffix == ".npz":
        np.savez_compressed(path, q_sb=result.q_sb, q_b=result.q_b,
                            nonconv_sb=_nonconv(result, "sb"), nonconv_b=_nonconv(result, "b"),
                            meta=np.array(meta))
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        hyp, toy, q, nc = [], [], [], []
        for h in ("sb", "b"):
            arr = getattr(result, f"q_{h}")
            lo = int(result.toy_range[h][0])
            hyp += [h] * arr.size
            toy.append(np.arange(lo, lo + arr.size, dtype=np.int64))
            q.append(arr)
            nc.append(_nonconv(result, h))
        table = pa.table({"hypothesis": pa.array(hyp, pa.string()),
                          "toy": np.concatenate(toy), "q": np.concatenate(q),
                          "nonconverged": np.concatenate(nc)})
        pq.write_table(table.replace_schema_metadata({"nextstat": meta}), path)
    else:
        raise InvalidParameters(f"toy files are .npz or .parquet, not {path.name!r}")


def _json_meta(result: ToyHypotestResult) -> dict:
    from ._json import to_json_data

    return to_json_data(result.to_dict())


def load_toys(path) -> ToyHypotestResult:
    """Read a file written by :func:`save_toys` (``.npz`` or ``.parquet``)."""
    import json
    from pathlib import Path

    from ..errors import InvalidFormat

    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = {k: np.array(z[k]) for k in SAMPLE_FIELDS}
        elif path.suffix == ".parquet":
            import pyarrow.parquet as pq

            table = pq.read_table(path)
            raw = (table.schema.metadata or {}).get(b"nextstat")
            if raw is None:
                raise InvalidFormat("no nextstat toy metadata in the Parquet schema", str(path))
            meta = json.loads(raw)
            hyp = np.asarray(table.column("hypothesis").to_pylist())
            toy = table.column("toy").to_numpy()
            q = table.column("q").to_numpy().astype(float)
            nc = table.column("nonconverged").to_numpy(zero_copy_only=False).astype(bool)
            arrays = {}
            for h in ("sb", "b"):
                sel = np.flatnonzero(hyp == h)
                sel = sel[np.argsort(toy[sel], kind="stable")]
                arrays[f"q_{h}"], arrays[f"nonconv_{h}"] = q[sel], nc[sel]
        else:
            raise InvalidFormat("toy files are .npz or .parquet", str(path))
    except FileNotFoundError:
        raise InvalidFormat("no such file", str(path)) from None
    except (KeyError, ValueError, OSError) as exc:
        if isinstance(exc, InvalidFormat):
            raise
        raise InvalidFormat(f"not a nextstat toy file ({exc})", str(path)) from None
    known = {f.name for f in fields(ToyHypotestResult)}
    kwargs = {k: v for k, v in meta.items() if k in known and k not in SAMPLE_FIELDS}
    for k in ("cls", "clsb", "clb", "cls_err", "clsb_err", "clb_err", "q_asimov",
              "cls_asymptotic", "mean_iterations"):
        if kwargs.get(k) is None:
            kwargs[k] = math.nan
    return ToyHypotestResult(**kwargs, **arrays)


@dataclass
class ToyFitResult:
    """Result of :func:`fit_toys`: per-toy best fits and a pull summary of the POI."""

    bestfit: np.ndarray
    nll: np.ndarray
    converged: np.ndarray
    failed: np.ndarray
    n_iter: np.ndarray
    poi_true: float
    poi_index: int
    summary: dict
    poi_error: np.ndarray | None = None

    def to_dict(self) -> dict:
        """The summary plus per-toy POI values (plain Python data)."""
        return {
            "poi_true": self.poi_true,
            "poi_hat": self.bestfit[:, self.poi_index].tolist(),
            "converged": self.converged.tolist(),
            "summary": self.summary,
        }


def _poi_errors(model, x, mains, auxs, consts, lower, upper, fixed, poi):
    """Hessian-based POI uncertainty of each toy fit (NaN where it does not exist)."""
    from .._ext import fit as _fit

    cm = model.compiled
    free = ~np.asarray(fixed, dtype=bool)
    local = np.asarray(model.layout.local_params, dtype=bool) & free
    free_u8 = free.view(np.uint8) if free.dtype == bool else free.astype(np.uint8)
    local_u8 = local.astype(np.uint8)
    lidx = np.flatnonzero(local)
    gidx = np.flatnonzero(free & ~local)
    pos = int(np.flatnonzero(gidx == poi)[0])
    err = np.full(x.shape[0], np.nan)
    for k in range(x.shape[0]):
        if not np.all(np.isfinite(x[k])):
            continue
        h = _fit.hessian_structured(cm, x[k], lower, upper, free_u8, local_u8, mains[k],
                                    auxs[k], float(consts[k]))
        dl = h[lidx, lidx]
        if not np.all(dl > 0):
            continue
        b = h[np.ix_(gidx, lidx)]
        schur = h[np.ix_(gidx, gidx)] - (b / dl) @ b.T
        try:
            c = np.linalg.inv(schur)
        except np.linalg.LinAlgError:
            continue
        if c[pos, pos] > 0:
            err[k] = float(np.sqrt(c[pos, pos]))
    return err


def fit_toys(model, params=None, n_toys: int = 1000, seed: int = 0, *,
             fixed_aux: bool = False, n_threads: int | None = None,
             uncertainties: bool = False, init=None, fixed=None, bounds=None,
             mode=None) -> ToyFitResult:
    """Free fits of toys drawn at ``params`` (default: the model's initial values).

    Returns a :class:`ToyFitResult` with ``bestfit[B, n_par]``, ``nll[B]``,
    ``converged[B]`` and a summary of the POI estimates: mean and standard deviation of
    ``mu_hat`` and the bias ``mean(mu_hat) - mu_true`` over the successful fits. With
    ``uncertainties=True`` also the Hessian-based POI error of every toy (``poi_error``)
    and the pull ``(mu_hat - mu_true) / error``: its mean, width and the fraction of toys
    with ``|pull| <= 1`` (68% coverage). Pulls are meaningful when the POI bounds are far
    from the estimates (widen them with ``bounds=``).
    """
    prof = ProfileLikelihood(model, None, init=init, fixed=fixed, bounds=bounds, mode=mode)
    x_gen = prof.x0 if params is None else np.asarray(params, dtype=float)
    n_threads = int(n_threads or get_threads())
    mains, auxs, consts = generate_toys(model, x_gen, int(n_toys), seed, hypothesis=_HYP_FIT,
                                        fixed_aux=fixed_aux, n_threads=n_threads)
    x, nll, status, n_iter, conv = _toys.fit_batch(
        model.compiled, mains, auxs, consts, x_gen, prof.lower, prof.upper,
        kahan=prof.kahan, n_threads=n_threads, max_iter=MAX_ITER, pgtol=PGTOL,
        max_restarts=MAX_RESTARTS, accept_pgtol=ACCEPT_PGTOL, m=TOY_LBFGS_M,
        local=model.layout.local_params)
    failed = ~np.isfinite(nll)
    poi = prof.poi
    ok = ~failed
    mu_true = float(x_gen[poi])
    est = x[ok, poi]
    summary = {
        "n_toys": int(n_toys),
        "n_failed": int(failed.sum()),
        "n_nonconverged": int((ok & ~conv).sum()),
        "poi_mean": float(est.mean()) if est.size else math.nan,
        "poi_std": float(est.std(ddof=1)) if est.size > 1 else math.nan,
        "bias": float(est.mean() - mu_true) if est.size else math.nan,
    }
    poi_error = None
    if uncertainties:
        poi_error = _poi_errors(model, x, mains, auxs, consts, prof.lower, prof.upper,
                                prof.fixed, poi)
        good = ok & np.isfinite(poi_error)
        pull = (x[good, poi] - mu_true) / poi_error[good]
        summary.update({
            "n_with_error": int(good.sum()),
            "pull_mean": float(pull.mean()) if pull.size else math.nan,
            "pull_width": float(pull.std(ddof=1)) if pull.size > 1 else math.nan,
            "coverage_68": float(np.mean(np.abs(pull) <= 1.0)) if pull.size else math.nan,
        })
    return ToyFitResult(bestfit=x, nll=nll, converged=conv & ok, failed=failed,
                        n_iter=n_iter, poi_true=mu_true, poi_index=poi, summary=summary,
                        poi_error=poi_error)
