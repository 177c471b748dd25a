"""Asymptotic CLs upper limits and CLs curves (pyhf 0.7.6 semantics, faster).

Two ways to find the POI value where CLs crosses ``alpha``:

``method="root"``
    Root finding (:func:`scipy.optimize.brentq`) on every one of the 6 curves (observed and
    the 5 expected) separately, to a relative tolerance ``rtol`` on ``mu``: each limit is
    bracketed to ``|b - a| < ATOL + rtol * |limit|`` (scipy's criterion), so its error is
    below ``rtol`` relative. One :class:`~nextstat.infer.asymptotics.AsymptoticCalculator`
    serves all of it: the mu-independent fits are done once, every tested ``mu`` costs two
    conditional fits (warm-started from the nearest ``mu`` already tested) and is memoised,
    and every evaluation feeds all 6 curves (a point tested for the observed limit brackets
    the expected ones, and the other way round). The root finder works on monotone
    reparametrisations of ``CLs(mu) - alpha`` that are nearly linear in ``mu``, with the
    same zero:

    * expected curve ``n``: ``CLs_exp = Phi(-(n + sqrt(q_A))) / Phi(-n)`` depends on ``mu``
      only through ``sqrt(q_A(mu))``; it equals ``alpha`` exactly where
      ``sqrt(q_A) = s_n = -n - Phi^-1(alpha Phi(-n))``, so the function is ``s_n - sqrt(q_A)``;
    * observed: ``sqrt(-2 ln alpha) - sqrt(-2 ln CLs)`` with ``ln CLs`` from log-CDFs (no
      underflow far above the limit).

    Bracketing: the search starts on ``(lo, hi)`` with ``lo`` = max(0, POI lower bound) and
    ``hi`` = the POI upper bound (or ``bracket``). For ``q`` and ``qtilde`` the Asimov data
    are generated at ``mu = 0``, so ``CLs(0) = 1`` on every curve and ``mu = 0`` is not
    evaluated. If a curve is still above ``alpha`` at ``hi``, ``hi`` is doubled. Beyond the
    POI upper bound this is done *internally* (the conditional fits at such ``mu`` are
    allowed; the cached free fits are unchanged because they lie strictly inside the bound)
    and a warning is added to the result; if the free fit sits *at* the upper bound the
    limit cannot be computed safely and :class:`~nextstat.errors.InvalidParameters` asks to
    widen the bounds. With an explicit ``bracket`` starting above 0, a curve already below
    ``alpha`` there gets the limit ``lo``, ``converged=False`` and a warning. (A POI lower
    bound above 0 is not possible: the Asimov fit at ``mu = 0`` needs it.)

``method="scan"``
    pyhf's ``upper_limit(data, model, scan)``: a hypotest at every grid point and, per curve,
    ``np.interp(alpha, cls[::-1], scan[::-1])`` (assumes CLs decreasing in ``mu``). When the
    crossing is not inside the grid, ``np.interp`` returns the grid end (as pyhf does); the
    result then has ``converged=False`` and a warning.

Expected limits are ordered like the expected CLs values of
:data:`~nextstat.infer.asymptotics.NSIGMA_ORDER` (``t = +2, +1, 0, -1, -2``), which is
*ascending* limit: ``exp_limits = [-2 sigma, -1 sigma, median, +1 sigma, +2 sigma]`` of the
expected-limit distribution (pyhf's order).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import FitError, InvalidParameters
from ._json import to_json_data as _clean
from .asymptotics import NSIGMA_ORDER, AsymptoticCalculator
from .profile import ProfileLikelihood

__all__ = ["ClsCurve", "UpperLimitResult", "cls_curve", "upper_limit"]

#: Absolute part of the root-finding tolerance (scipy's ``xtol``; pyhf uses the same).
ATOL = 2e-12
#: Most doublings of the upper end of the bracket before giving up.
MAX_DOUBLINGS = 40
#: Iteration limit of each root finding.
MAX_ROOT_ITER = 100


@dataclass
class UpperLimitResult:
    """An upper limit on the POI at CLs = ``alpha`` (see the module docs).

    Attributes
    ----------
    obs_limit : float
        Observed limit.
    exp_limits : list of float
        5 expected limits, ascending: ``-2, -1, 0, +1, +2`` sigma (the curves of the expected
        CLs values in :data:`~nextstat.infer.asymptotics.NSIGMA_ORDER`).
    alpha : float
    method : {"root", "scan"}
    test_stat : {"qtilde", "q"}
    n_evaluations : int
        Tested ``mu`` values (each: two conditional fits).
    converged : bool
        Every limit was found inside the search range to the tolerance, and the fits it
        rests on converged.
    points : list of dict
        The evaluated CLs curve points, ascending in ``mu``:
        ``{"mu", "cls_obs", "cls_exp": [5]}``.
    poi_name : str
    rtol : float or None
        Relative tolerance on the limits (root method).
    warnings : list of str
    """

    obs_limit: float
    exp_limits: list[float]
    alpha: float
    method: str
    test_stat: str
    n_evaluations: int
    converged: bool
    points: list[dict]
    poi_name: str = ""
    rtol: float | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-serialisable plain data (NaN becomes None)."""
        return _clean(asdict(self))


@dataclass
class ClsCurve:
    """CLs as a function of the POI on a grid: the data of a Brazil plot.

    Attributes
    ----------
    mu_values : ndarray, shape (n,)
    cls_obs, clsb_obs, clb_obs : ndarray, shape (n,)
        Observed CLs, CLs+b and CLb.
    cls_exp : ndarray, shape (5, n)
        Expected CLs, rows in ``nsigma_order`` (``t = +2 ... -2``: ascending CLs; row 2 is
        the median, rows 1-3 the 1 sigma band, rows 0-4 the 2 sigma band).
    obs_limit : float
    exp_limits : list of float
        As :attr:`UpperLimitResult.exp_limits`, interpolated on the grid.
    alpha : float
    nsigma_order : list of int
    test_stat : str
    poi_name : str
    fits_converged : ndarray of bool, shape (n,)
    converged : bool
        Every limit's crossing lies inside the grid and every fit converged.
    warnings : list of str
    """

    mu_values: np.ndarray
    cls_obs: np.ndarray
    cls_exp: np.ndarray
    clsb_obs: np.ndarray
    clb_obs: np.ndarray
    obs_limit: float
    exp_limits: list[float]
    alpha: float
    nsigma_order: list[int]
    test_stat: str
    poi_name: str
    fits_converged: np.ndarray
    converged: bool
    warnings: list[str] = field(default_factory=list)

    @property
    def points(self) -> list[dict]:
        """``[{"mu", "cls_obs", "cls_exp": [5]}]`` per grid point."""
        return [
            {"mu": float(m), "cls_obs": float(c), "cls_exp": self.cls_exp[:, i].tolist()}
            for i, (m, c) in enumerate(zip(self.mu_values, self.cls_obs, strict=True))
        ]

    def to_dict(self) -> dict:
        """JSON-serialisable plain data (NaN becomes None)."""
        return _clean(asdict(self))


# ---------------------------------------------------------------------------
# setup
# ---------------------------------------------------------------------------


def _calculator(model, data, test_stat, alpha, init, fixed, bounds, mode):
    if test_stat not in ("qtilde", "q"):
        raise InvalidParameters(f"upper limits need test_stat 'qtilde' or 'q', got {test_stat!r}")
    if not 0.0 < alpha < 1.0:
        raise InvalidParameters(f"alpha must lie in (0, 1), got {alpha}")
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    return AsymptoticCalculator(prof, test_stat)


# ---------------------------------------------------------------------------
# scan
# ---------------------------------------------------------------------------


def _interp_limits(mu, cls_obs, cls_exp, alpha, warnings):
    """pyhf's ``np.interp(alpha, cls[::-1], scan[::-1])`` per curve; flags crossings off-grid."""
    limits = []
    ok = True
    names = ["observed"] + [f"expected ({-n:+d} sigma)" for n in NSIGMA_ORDER]
    for name, cls in zip(names, [cls_obs, *cls_exp], strict=True):
        limits.append(float(np.interp(alpha, cls[::-1], mu[::-1])))
        if not np.all(np.isfinite(cls)):
            ok = False
            warnings.append(f"{name} CLs is NaN at some grid points; its limit is unreliable")
        elif cls[-1] > alpha:
            ok = False
            warnings.append(
                f"{name} CLs stays above alpha={alpha} on the grid; the limit is the grid end "
                f"{mu[-1]} (extend the scan)"
            )
        elif cls[0] < alpha:
            ok = False
            warnings.append(
                f"{name} CLs is below alpha={alpha} already at the grid start; the limit is "
                f"the grid start {mu[0]} (extend the scan downwards)"
            )
    return limits[0], limits[1:], ok


def _curve(calc, scan, alpha, progress) -> ClsCurve:
    mu = np.asarray(scan, dtype=float).ravel()
    if mu.size == 0:
        raise InvalidParameters("the scan grid is empty")
    if np.any(np.diff(mu) < 0.0):
        raise InvalidParameters("the scan grid must be ascending (pyhf's interpolation needs it)")
    n = mu.size
    cls_obs = np.empty(n)
    clsb = np.empty(n)
    clb = np.empty(n)
    cls_exp = np.empty((5, n))
    conv = np.empty(n, dtype=bool)
    for i in range(n):
        r = calc.hypotest(mu[i])
        cls_obs[i], clsb[i], clb[i] = r.cls, r.clsb, r.clb
        cls_exp[:, i] = r.cls_exp
        conv[i] = r.converged
        if progress is not None:
            progress(i + 1, n)
    warnings: list[str] = []
    obs, exp, ok = _interp_limits(mu, cls_obs, cls_exp, alpha, warnings)
    if not conv.all():
        warnings.append(f"fits did not converge at mu = {mu[~conv].tolist()}")
    return ClsCurve(
        mu_values=mu,
        cls_obs=cls_obs,
        cls_exp=cls_exp,
        clsb_obs=clsb,
        clb_obs=clb,
        obs_limit=obs,
        exp_limits=exp,
        alpha=float(alpha),
        nsigma_order=list(NSIGMA_ORDER),
        test_stat=calc.test_stat,
        poi_name=calc.prof.model.poi_name,
        fits_converged=conv,
        converged=bool(ok and conv.all()),
        warnings=warnings,
    )


def cls_curve(
    model,
    scan,
    data=None,
    *,
    alpha: float = 0.05,
    test_stat: str = "qtilde",
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
    progress=None,
) -> ClsCurve:
    """Observed and expected CLs on a grid of POI values, with the interpolated limits.

    Parameters
    ----------
    model : HistFactoryModel
    scan : array_like
        POI values, ascending (as for pyhf's ``upper_limit(data, model, scan)``); they must
        lie within the POI bounds.
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    alpha : float
        CLs level of the limits (0.05: 95% CL).
    test_stat : {"qtilde", "q"}
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.
    progress : callable, optional
        ``progress(done, total)`` after each grid point.

    Returns
    -------
    ClsCurve
    """
    calc = _calculator(model, data, test_stat, alpha, init, fixed, bounds, mode)
    return _curve(calc, scan, alpha, progress)


# ---------------------------------------------------------------------------
# root finding
# ---------------------------------------------------------------------------


class _Curves:
    """Memoised evaluations of the 6 signed distances to the CLs = alpha crossing.

    ``g[0]`` (observed) and ``g[1 + k]`` (expected, ``NSIGMA_ORDER[k]``) are positive while
    the CLs of that curve is above ``alpha`` and zero exactly at the crossing.
    """

    def __init__(self, calc, alpha, progress):
        from scipy.special import log_ndtr, ndtr, ndtri

        self._log_ndtr = log_ndtr
        self.calc = calc
        self.progress = progress
        self.z_alpha = math.sqrt(-2.0 * math.log(alpha))
        self.s_star = np.array([-n - float(ndtri(alpha * ndtr(-n))) for n in NSIGMA_ORDER])
        self.memo: dict[float, tuple[np.ndarray, object]] = {}

    def known(self, mu: float, g: np.ndarray) -> None:
        """Record values known without fits (``mu = 0`` for q/qtilde)."""
        self.memo[mu] = (g, None)

    def g(self, mu: float) -> np.ndarray:
        hit = self.memo.get(mu)
        if hit is not None:
            return hit[0]
        r = self.calc.hypotest(mu)
        sq_a = math.sqrt(r.q_asimov)
        t = r.teststat
        log_cls = float(self._log_ndtr(-(t + sq_a)) - self._log_ndtr(-t))
        if not (math.isfinite(log_cls) or log_cls == -math.inf) or not math.isfinite(sq_a):
            raise FitError(
                f"CLs is not defined at mu = {mu} (q = {r.q_obs}, q_A = {r.q_asimov}): the "
                f"fits failed there"
            )
        g = np.empty(6)
        g[0] = self.z_alpha - math.sqrt(-2.0 * log_cls) if log_cls < 0.0 else self.z_alpha
        g[1:] = self.s_star - sq_a
        self.memo[mu] = (g, r)
        if self.progress is not None:
            self.progress(self.n_evaluations, None)
        return g

    @property
    def n_evaluations(self) -> int:
        return sum(r is not None for _, r in self.memo.values())

    def bracket(self, k: int):
        """Tightest ``(a, b)`` in the memo with ``g_k(a) > 0 > g_k(b)``, or a root."""
        mus = np.fromiter(self.memo, dtype=float)
        vals = np.array([v[0][k] for v in self.memo.values()])
        zero = mus[vals == 0.0]
        if zero.size:
            return float(zero[0]), float(zero[0])
        neg = mus[vals < 0.0]
        b = float(neg.min())
        pos = mus[(vals > 0.0) & (mus < b)]
        return float(pos.max()), b

    def points(self) -> list[dict]:
        out = []
        for mu in sorted(self.memo):
            r = self.memo[mu][1]
            if r is not None:
                out.append({"mu": mu, "cls_obs": r.cls, "cls_exp": list(r.cls_exp)})
        return out

    def converged_at(self, mu: float) -> bool:
        r = self.memo[mu][1]
        return True if r is None else bool(r.converged)


def _widen_poi(calc: AsymptoticCalculator, hi: float) -> None:
    """Let conditional fits go up to ``hi`` (the cached free fits stay valid)."""
    poi = calc.prof.poi
    for prof in (calc.prof, calc.prof_asimov):
        upper = prof.upper.copy()
        upper[poi] = hi
        prof.upper = upper


def _root(calc, alpha, rtol, bracket, progress):
    from scipy.optimize import brentq

    prof = calc.prof
    poi_lo, poi_hi = prof.poi_bounds
    warnings: list[str] = []
    curves = _Curves(calc, alpha, progress)
    if bracket is None:
        lo, hi = max(0.0, poi_lo), poi_hi
    else:
        lo, hi = (float(v) for v in bracket)
        if not poi_lo <= lo < hi:
            raise InvalidParameters(
                f"bracket must satisfy POI lower bound {poi_lo} <= lo < hi, got {bracket}"
            )
    if not hi > lo:
        raise InvalidParameters(
            f"the POI bounds ({poi_lo}, {poi_hi}) leave no room for an upper limit above {lo}"
        )
    if lo == 0.0:
        # Asimov data at mu = 0: q_A(0) = 0 and CLs = 1 on every curve.
        curves.known(0.0, np.concatenate(([curves.z_alpha], curves.s_star)))
    g_lo = curves.g(lo)

    widened_to = None

    def allow(mu):
        nonlocal widened_to
        if mu > poi_hi:
            _check_widen(calc, poi_hi)
            _widen_poi(calc, mu)
            widened_to = mu

    # Upper end: double until every curve is below alpha.
    allow(hi)
    g_hi = curves.g(hi)
    n_double = 0
    while np.any(g_hi > 0.0):
        if n_double >= MAX_DOUBLINGS:
            raise InvalidParameters(
                f"CLs stays above alpha={alpha} up to mu = {hi}; no upper limit found"
            )
        hi *= 2.0
        allow(hi)
        g_hi = curves.g(hi)
        n_double += 1
    if widened_to is not None:
        warnings.append(
            f"CLs stays above alpha at the POI upper bound {poi_hi}: the bound was widened "
            f"internally to {widened_to} for the search (the free fits lie inside the bound "
            f"and are unchanged)"
        )

    limits = np.empty(6)
    converged = True
    # Observed first, then the expected curves from the median outwards: each root finding
    # starts from the tightest bracket left in the memo by the previous ones.
    for k in (0, 3, 2, 4, 1, 5):
        if g_lo[k] < 0.0:
            limits[k] = lo
            converged = False
            warnings.append(
                f"{_curve_name(k)} CLs is below alpha={alpha} already at mu = {lo}; the limit "
                f"lies below the search range (lower the POI bound or the bracket)"
            )
            continue
        a, b = curves.bracket(k)
        if a == b:
            limits[k] = a
            continue
        try:
            limits[k] = brentq(
                lambda mu, k=k: curves.g(mu)[k],
                a,
                b,
                xtol=ATOL,
                rtol=rtol,
                maxiter=MAX_ROOT_ITER,
            )
        except RuntimeError as exc:  # iteration limit
            converged = False
            warnings.append(f"{_curve_name(k)} limit: {exc}")
            a, b = curves.bracket(k)
            limits[k] = 0.5 * (a + b)
        a, b = curves.bracket(k)
        if not (curves.converged_at(a) and curves.converged_at(b)):
            converged = False
            warnings.append(f"{_curve_name(k)} limit rests on fits that did not converge")
    return limits, converged, curves, warnings


def _check_widen(calc, poi_hi):
    """Raise unless the cached free fits lie strictly inside the POI upper bound."""
    poi = calc.prof.poi
    mu_hat = max(float(calc.free.x[poi]), float(calc.free_asimov.x[poi]))
    if mu_hat >= poi_hi - 1e-6 * max(1.0, abs(poi_hi)):
        raise InvalidParameters(
            f"the upper limit lies above the POI upper bound {poi_hi} and the free fit sits "
            f"at that bound; widen it with bounds={{{calc.prof.model.poi_name!r}: (lo, hi)}}"
        )


def _curve_name(k: int) -> str:
    return "observed" if k == 0 else f"expected ({-NSIGMA_ORDER[k - 1]:+d} sigma)"


def upper_limit(
    model,
    data=None,
    *,
    alpha: float = 0.05,
    method: str = "root",
    scan=None,
    test_stat: str = "qtilde",
    rtol: float = 1e-4,
    bracket=None,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
    progress=None,
) -> UpperLimitResult:
    """Observed and expected upper limits on the POI at CLs = ``alpha`` (asymptotic).

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    alpha : float
        CLs level (0.05: 95% CL).
    method : {"root", "scan"}
        Root finding to ``rtol`` or pyhf's grid scan + interpolation (see module docs).
    scan : array_like, optional
        The grid of ``method="scan"`` (required there, not accepted by ``"root"``).
    test_stat : {"qtilde", "q"}
    rtol : float
        Relative tolerance on each limit (``method="root"``): the crossing is bracketed to
        ``ATOL + rtol * |limit|``.
    bracket : (lo, hi), optional
        Initial search interval of ``method="root"`` (default: max(0, POI lower bound) and the
        POI upper bound); ``hi`` is doubled if needed.
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.
    progress : callable, optional
        ``progress(done, total)`` after each tested ``mu``; ``total`` is None for the root
        method (not known in advance).

    Returns
    -------
    UpperLimitResult

    Raises
    ------
    InvalidParameters
        Bad arguments; the limit lies above the POI upper bound while the free fit sits on
        that bound (widen the bounds).
    """
    if method not in ("root", "scan"):
        raise InvalidParameters(f"method must be 'root' or 'scan', got {method!r}")
    if method == "scan" and scan is None:
        raise InvalidParameters("method='scan' needs a grid: scan=[mu values]")
    if method == "root" and scan is not None:
        raise InvalidParameters("scan= is used by method='scan' only; pass method='scan'")
    if not rtol >= 4 * np.finfo(float).eps:
        raise InvalidParameters(f"rtol must be >= {4 * np.finfo(float).eps}, got {rtol}")
    calc = _calculator(model, data, test_stat, alpha, init, fixed, bounds, mode)
    if method == "scan":
        curve = _curve(calc, scan, alpha, progress)
        return UpperLimitResult(
            obs_limit=curve.obs_limit,
            exp_limits=curve.exp_limits,
            alpha=float(alpha),
            method="scan",
            test_stat=test_stat,
            n_evaluations=int(curve.mu_values.size),
            converged=curve.converged,
            points=curve.points,
            poi_name=model.poi_name,
            rtol=None,
            warnings=curve.warnings,
        )
    limits, converged, curves, warnings = _root(calc, alpha, rtol, bracket, progress)
    return UpperLimitResult(
        obs_limit=float(limits[0]),
        exp_limits=[float(v) for v in limits[1:]],
        alpha=float(alpha),
        method="root",
        test_stat=test_stat,
        n_evaluations=curves.n_evaluations,
        converged=converged,
        points=curves.points(),
        poi_name=model.poi_name,
        rtol=float(rtol),
        warnings=warnings,
    )
