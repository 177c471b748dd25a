"""Profile-likelihood scans of the POI and profile-likelihood intervals of any parameter.

:func:`profile_scan`
    The conditional minimum ``NLL(mu, theta_hat_hat(mu))`` on a grid of POI values, with
    ``-2 Delta ln L`` (two-sided) and ``q_mu`` (one-sided) relative to the free fit. The grid
    is visited from the point nearest ``mu_hat`` outwards in both directions, each fit
    warm-started from its neighbour's minimum.
:func:`profile_ci`
    The interval where ``2 [NLL(theta_hat_hat(p)) - NLL_hat] <= threshold`` for one
    parameter ``p`` (POI by default), ``threshold = chi2.ppf(level, 1)`` (1 for 68.27%,
    3.841 for 95%). Each end is found by root finding (:func:`scipy.optimize.brentq`) on
    conditional fits with ``p`` fixed; a parameter bound reached before the threshold
    truncates the interval there (``lower_at_bound`` / ``upper_at_bound``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .._config import use_kahan
from ..errors import InvalidParameters
from ._json import to_json_data as _clean
from .mle import resolve_fit_setup
from .profile import ProfileLikelihood

__all__ = ["ProfileCI", "ProfileScanResult", "profile_ci", "profile_scan", "ONE_SIGMA"]

#: Two-sided coverage of +-1 sigma, ``erf(1/sqrt(2))`` = 0.6827; its chi2(1) quantile is 1.
ONE_SIGMA = math.erf(1.0 / math.sqrt(2.0))
#: Absolute tolerance (on the parameter) of the interval ends, next to ``rtol``.
CI_ATOL = 1e-10
#: Most steps outwards while looking for the threshold crossing on one side.
MAX_BRACKET_STEPS = 60


# ---------------------------------------------------------------------------
# profile scan
# ---------------------------------------------------------------------------


@dataclass
class ProfileScanResult:
    """Profile likelihood of the POI on a grid (arrays in the order of ``mu_values``).

    Attributes
    ----------
    poi_name : str
    poi_index : int
    mu_hat, nll_hat : float
        Free fit: best POI value and NLL.
    mu_values : ndarray, shape (n,)
    nll : ndarray, shape (n,)
        Conditional minimum NLL at each ``mu``.
    twice_delta_nll : ndarray, shape (n,)
        ``2 (nll - nll_hat)`` clipped at 0 (two-sided ``-2 Delta ln L``, pyhf's ``t_mu``).
    q_mu : ndarray, shape (n,)
        One-sided: ``twice_delta_nll`` where ``mu >= mu_hat``, else 0 (pyhf's ``q_mu``).
    converged : ndarray of bool, shape (n,)
    free_converged : bool
    params : ndarray, shape (n, n_params), or None
        Conditional best-fit parameters (``return_params=True``).
    parameter_names : list of str or None
        With ``params``.
    """

    poi_name: str
    poi_index: int
    mu_hat: float
    nll_hat: float
    mu_values: np.ndarray
    nll: np.ndarray
    twice_delta_nll: np.ndarray
    q_mu: np.ndarray
    converged: np.ndarray
    free_converged: bool
    params: np.ndarray | None = None
    parameter_names: list[str] | None = None

    def to_dict(self) -> dict:
        """JSON-serialisable plain data (NaN becomes None)."""
        return _clean(asdict(self))


def _outward_order(values: np.ndarray, center: float) -> list[tuple[int, int]]:
    """Visit order ``(index, index of the warm-start neighbour or -1)``: nearest to
    ``center`` first, then outwards along the sorted values in both directions."""
    order = np.argsort(values, kind="stable")
    start = int(np.argmin(np.abs(values[order] - center)))
    visits = [(int(order[start]), -1)]
    for j in range(start + 1, order.size):
        visits.append((int(order[j]), int(order[j - 1])))
    for j in range(start - 1, -1, -1):
        visits.append((int(order[j]), int(order[j + 1])))
    return visits


def _retry_cold(minimize, r, x_free, i, v, lower, upper):
    """A warm-started fit that did not converge (e.g. a line search stalled near the minimum
    of a large model): refit from the free fit and keep the better of the two."""
    x = x_free.copy()
    x[i] = v
    r2 = minimize(x, lower, upper)
    if r2.converged or not math.isfinite(r.nll) or r2.nll < r.nll:
        return r2
    return r


def profile_scan(
    model,
    mu_values,
    data=None,
    *,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
    return_params: bool = False,
    progress=None,
) -> ProfileScanResult:
    """Profile likelihood of the POI at each of ``mu_values``.

    A warm-started fit that does not converge is redone from the free fit (the better of
    the two is kept).

    Parameters
    ----------
    model : HistFactoryModel
    mu_values : array_like
        POI values (any order; within the POI bounds).
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.
    return_params : bool
        Keep the conditional best-fit parameters of every point.
    progress : callable, optional
        ``progress(done, total)`` after each conditional fit.

    Returns
    -------
    ProfileScanResult
    """
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    mu = np.array(mu_values, dtype=float).ravel()
    n = mu.size
    if n == 0:
        raise InvalidParameters("mu_values is empty")
    lo, hi = prof.poi_bounds
    if n and not (lo <= mu.min() and mu.max() <= hi):
        raise InvalidParameters(
            f"mu_values must lie within the POI bounds ({lo}, {hi}); widen them with "
            f"bounds={{{model.poi_name!r}: (lo, hi)}}"
        )
    poi = prof.poi
    free = prof.free_fit()
    mu_hat = float(free.x[poi])
    nll = np.empty(n)
    conv = np.empty(n, dtype=bool)
    xs = np.empty((n, model.n_params()))
    lower = prof.lower.copy()
    upper = prof.upper.copy()
    minimize = prof._minimize
    for done, (i, j) in enumerate(_outward_order(mu, mu_hat), start=1):
        x = (free.x if j < 0 else xs[j]).copy()
        x[poi] = lower[poi] = upper[poi] = mu[i]
        r = minimize(x, lower, upper)
        if not r.converged and j >= 0:
            r = _retry_cold(minimize, r, free.x, poi, mu[i], lower, upper)
        xs[i] = r.x
        nll[i] = r.nll
        conv[i] = r.converged
        if progress is not None:
            progress(done, n)
    tdn = np.maximum(2.0 * (nll - free.nll), 0.0)
    return ProfileScanResult(
        poi_name=model.poi_name,
        poi_index=int(poi),
        mu_hat=mu_hat,
        nll_hat=float(free.nll),
        mu_values=mu,
        nll=nll,
        twice_delta_nll=tdn,
        q_mu=np.where(mu >= mu_hat, tdn, 0.0),
        converged=conv,
        free_converged=bool(free.converged),
        params=xs if return_params else None,
        parameter_names=model.parameter_names() if return_params else None,
    )


# ---------------------------------------------------------------------------
# profile-likelihood interval
# ---------------------------------------------------------------------------


@dataclass
class ProfileCI:
    """A profile-likelihood confidence interval of one parameter.

    Attributes
    ----------
    name : str
    index : int
    bestfit : float
    lower, upper : float
        Interval ends (a parameter bound where ``*_at_bound``).
    level : float or None
        Two-sided confidence level (None when a ``threshold`` was given).
    threshold : float
        ``2 Delta NLL`` at the ends.
    lower_at_bound, upper_at_bound : bool
        ``2 Delta NLL`` stays below the threshold up to the parameter bound.
    n_fits : int
        Fits made (free fit included).
    converged : bool
        Both ends found to the tolerance and all fits they rest on converged.
    warnings : list of str
    """

    name: str
    index: int
    bestfit: float
    lower: float
    upper: float
    level: float | None
    threshold: float
    lower_at_bound: bool
    upper_at_bound: bool
    n_fits: int
    converged: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def interval(self) -> tuple[float, float]:
        """``(lower, upper)``."""
        return self.lower, self.upper

    def to_dict(self) -> dict:
        """JSON-serialisable plain data (NaN becomes None)."""
        return _clean(asdict(self))


class _ParamProfile(ProfileLikelihood):
    """:class:`ProfileLikelihood` with parameter ``index`` in the role of the POI."""

    def __init__(self, model, index, data=None, init=None, fixed=None, bounds=None, mode=None):
        self.model = model
        self.poi = index
        self.x0, self.lower, self.upper, self.fixed = resolve_fit_setup(model, init, fixed, bounds)
        if self.fixed[index]:
            name = model.parameter_names()[index]
            raise InvalidParameters(f"parameter {name!r} is fixed; it has no interval")
        self.kahan = use_kahan(mode)
        self.data = model.dataset(data)


def _param_index(model, param) -> int:
    if param is None:
        poi = model.poi_index()
        if poi is None:
            raise InvalidParameters("this model has no POI; name the parameter: param='...'")
        return int(poi)
    if isinstance(param, str):
        return int(model.parameter_index(param))
    idx = int(param)
    if not 0 <= idx < model.n_params():
        raise InvalidParameters(f"parameter index {idx} out of range (0..{model.n_params() - 1})")
    return idx


class _Profile1D:
    """Memoised ``sqrt(2 Delta NLL)`` along one parameter, warm-started from neighbours."""

    def __init__(self, prof: _ParamProfile, free):
        self.prof = prof
        self.free = free
        self.idx = prof.poi
        self.lower = prof.lower.copy()
        self.upper = prof.upper.copy()
        self.memo: dict[float, tuple[float, np.ndarray, bool]] = {
            float(free.x[self.idx]): (0.0, free.x, bool(free.converged))
        }
        self.n_fits = 1

    def __call__(self, v: float) -> float:
        hit = self.memo.get(v)
        if hit is not None:
            return hit[0]
        near = min(self.memo, key=lambda m: abs(m - v))
        x = self.memo[near][1].copy()
        i = self.idx
        x[i] = self.lower[i] = self.upper[i] = v
        r = self.prof._minimize(x, self.lower, self.upper)
        self.n_fits += 1
        if not r.converged and near != float(self.free.x[i]):
            r = _retry_cold(self.prof._minimize, r, self.free.x, i, v, self.lower, self.upper)
            self.n_fits += 1
        val = math.sqrt(max(2.0 * (r.nll - self.free.nll), 0.0))
        self.memo[v] = (val, r.x, bool(r.converged))
        return val

    def converged_at(self, v: float) -> bool:
        return self.memo[v][2]


def _side(f: _Profile1D, bestfit, bound, step, root_t, rtol, brentq):
    """One end of the interval: ``(value, at_bound, converged, warning)``."""
    direction = 1.0 if bound > bestfit else -1.0
    if direction * (bound - bestfit) <= 0.0:
        return bound, True, True, None
    inner = bestfit
    dist = min(step, abs(bound - bestfit))
    for _ in range(MAX_BRACKET_STEPS):
        v = bestfit + direction * dist
        if direction * (v - bound) >= 0.0:
            v = bound
        val = f(v)
        if val >= root_t:
            break
        inner = v
        if v == bound:
            return bound, True, f.converged_at(v), None
        # Next guess: where sqrt(2 Delta NLL), ~linear in the distance, reaches the root.
        guess = dist * root_t / val * 1.1 if val > 0.0 else 4.0 * dist
        dist = min(max(guess, 1.5 * dist), 8.0 * dist)
    else:
        return v, False, False, "no threshold crossing found"
    a, b = (inner, v) if direction > 0 else (v, inner)
    try:
        end = brentq(lambda t: f(t) - root_t, a, b, xtol=CI_ATOL, rtol=rtol, maxiter=100)
    except RuntimeError as exc:
        return 0.5 * (a + b), False, False, str(exc)
    return end, False, f.converged_at(end), None


def profile_ci(
    model,
    param=None,
    *,
    level: float = ONE_SIGMA,
    threshold: float | None = None,
    data=None,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
    rtol: float = 1e-6,
) -> ProfileCI:
    """Profile-likelihood confidence interval of one parameter.

    Parameters
    ----------
    model : HistFactoryModel
    param : str or int, optional
        Parameter name or index (default: the POI).
    level : float
        Two-sided confidence level; the threshold is ``chi2.ppf(level, 1)`` (default
        ``erf(1/sqrt(2)) = 0.6827``: threshold 1).
    threshold : float, optional
        ``2 Delta NLL`` at the ends, overriding ``level`` (e.g. 3.841).
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.
    rtol : float
        Relative tolerance on each end (root finding on ``sqrt(2 Delta NLL)``, plus an
        absolute ``CI_ATOL``).

    Returns
    -------
    ProfileCI
    """
    from scipy.optimize import brentq
    from scipy.stats import chi2

    if threshold is None:
        if not 0.0 < level < 1.0:
            raise InvalidParameters(f"level must lie in (0, 1), got {level}")
        threshold = float(chi2.ppf(level, 1))
        out_level = float(level)
    else:
        threshold = float(threshold)
        if not threshold > 0.0:
            raise InvalidParameters(f"threshold must be positive, got {threshold}")
        out_level = None
    idx = _param_index(model, param)
    prof = _ParamProfile(model, idx, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    free = prof.free_fit()
    f = _Profile1D(prof, free)
    bestfit = float(free.x[idx])
    lo, hi = float(prof.lower[idx]), float(prof.upper[idx])
    # First step: the scale of the parameter's range, at most 1 (the unit of a constrained
    # nuisance parameter); the bracketing adapts it from the first profile value.
    step = min(1.0, 0.1 * (hi - lo)) if math.isfinite(hi - lo) else 1.0
    step = step if step > 0.0 else 1.0
    root_t = math.sqrt(threshold)
    warnings = [] if free.converged else ["the free fit did not converge"]
    lower, lo_at, lo_ok, w1 = _side(f, bestfit, lo, step, root_t, rtol, brentq)
    upper, hi_at, hi_ok, w2 = _side(f, bestfit, hi, step, root_t, rtol, brentq)
    warnings += [f"lower end: {w1}"] * bool(w1) + [f"upper end: {w2}"] * bool(w2)
    return ProfileCI(
        name=model.parameter_names()[idx],
        index=idx,
        bestfit=bestfit,
        lower=float(lower),
        upper=float(upper),
        level=out_level,
        threshold=threshold,
        lower_at_bound=lo_at,
        upper_at_bound=hi_at,
        n_fits=f.n_fits,
        converged=bool(lo_ok and hi_ok and free.converged and not (w1 or w2)),
        warnings=warnings,
    )
