"""Maximum-likelihood fits: best fit, uncertainties, covariance.

The minimisation runs in compiled code (our L-BFGS-B over the compiled NLL, no GIL, no
Python object per iteration). Uncertainties come from the Hessian of the NLL at the minimum,
obtained by finite differences of the analytic gradient, inverted over the free parameters.

Fallback when that Hessian is not positive definite (a flat direction, a parameter that the
data do not constrain): its eigenvalues are floored at ``1e-9`` times the largest one before
inverting, ``covariance_status`` becomes ``"regularized"`` and a warning is added to the
result. Numbers from such a fit should be read with care; the warning names the parameters
that dominate the offending directions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from .._config import use_kahan
from .._ext import fit as _fit
from .._ext.lbfgsb import Status
from .._ext.linalg import spd_inverse
from ..errors import FitError, InvalidParameters
from ._json import to_json_data

__all__ = ["FitResult", "fit", "resolve_fit_setup"]

#: Optimizer defaults: stop when max |projected gradient| <= PGTOL (in Fisher-scaled
#: variables, so the distance to the minimum is ~PGTOL standard deviations).
PGTOL = 1e-6
#: A line search that cannot decrease f any more (rounding of f: at NLL ~ 1e4 changes below
#: ~1e-12 relative are invisible, which caps the reachable gradient near 1e-5) still counts
#: as converged when the scaled projected gradient is below this.
ACCEPT_PGTOL = 1e-4
MAX_ITER = 2000
MAX_RESTARTS = 3
#: Relative eigenvalue floor of the covariance fallback.
EIGEN_FLOOR = 1e-9

_CONVERGED = {int(Status.CONVERGED_PGTOL), int(Status.CONVERGED_FTOL)}


def is_converged(status: int, proj_grad_norm: float) -> bool:
    """Convergence verdict of one optimizer run (see ``ACCEPT_PGTOL``)."""
    if status in _CONVERGED:
        return True
    return status == int(Status.ABNORMAL_LINE_SEARCH) and proj_grad_norm <= ACCEPT_PGTOL


@dataclass
class FitResult:
    """Result of :func:`fit`; serialises to JSON with :meth:`to_json`.

    Attributes
    ----------
    parameter_names : list of str
    bestfit : ndarray
        Best-fit parameter values.
    uncertainties : ndarray
        sqrt of the covariance diagonal (0 for fixed parameters; NaN when not computed).
    covariance, correlation : ndarray or None
        Over all parameters (fixed rows/columns are 0); None when not computed.
    nll, twice_nll : float
        NLL at the minimum (pyhf's ``-logpdf``) and twice that.
    converged : bool
        The optimizer met its convergence criterion.
    termination_reason : str
        Why the optimizer stopped.
    n_iter, n_fev, n_gev : int
        Iterations, function and gradient evaluations (summed over restarts).
    final_grad_norm : float
        Infinity norm of the projected gradient at the minimum.
    initial_nll : float
    n_active_bounds : int
        Free parameters sitting on a bound at the minimum.
    poi_index : int or None
    covariance_status : str
        ``"ok"``, ``"regularized"`` (see module docs) or ``"not computed"``.
    n_restarts : int
    warnings : list of str
    """

    parameter_names: list[str]
    bestfit: np.ndarray
    uncertainties: np.ndarray
    covariance: np.ndarray | None
    correlation: np.ndarray | None
    nll: float
    twice_nll: float
    converged: bool
    termination_reason: str
    n_iter: int
    n_fev: int
    n_gev: int
    final_grad_norm: float
    initial_nll: float
    n_active_bounds: int
    poi_index: int | None
    covariance_status: str
    n_restarts: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def success(self) -> bool:
        """Alias of :attr:`converged`."""
        return self.converged

    @property
    def parameters(self) -> np.ndarray:
        """Alias of :attr:`bestfit`."""
        return self.bestfit

    def value(self, name: str) -> float:
        """Best-fit value of the parameter called ``name``."""
        return float(self.bestfit[self._index(name)])

    def error(self, name: str) -> float:
        """Uncertainty of the parameter called ``name``."""
        return float(self.uncertainties[self._index(name)])

    def _index(self, name: str) -> int:
        try:
            return self.parameter_names.index(name)
        except ValueError:
            raise InvalidParameters(f"no parameter named {name!r} in this fit") from None

    def to_dict(self) -> dict:
        """Plain-Python representation (lists and floats; NaN becomes None)."""
        return to_json_data(asdict(self))

    def to_json(self, **kwargs) -> str:
        """JSON text of :meth:`to_dict` (``kwargs`` go to :func:`json.dumps`)."""
        return json.dumps(self.to_dict(), **kwargs)


def resolve_fit_setup(model, init=None, fixed=None, bounds=None):
    """Start point, bounds and fixed mask of a fit, validated.

    Parameters
    ----------
    init : array_like or mapping, optional
        Full start vector, or ``{name: value}`` overriding :meth:`suggested_init`.
    fixed : sequence of bool, sequence of str, or mapping, optional
        A bool per parameter replaces the model's fixed set; names or ``{name: value}``
        are fixed *in addition* to the model's (at ``value``, or at their init).
    bounds : sequence of (lo, hi) or mapping, optional
        Full list, or ``{name: (lo, hi)}`` overriding :meth:`suggested_bounds`.

    Returns
    -------
    x0, lower, upper, fixed_mask : ndarray
        ``lower == upper == x0`` for fixed parameters.
    """
    lay = model.layout
    n = model.n_params()
    names = lay.parameter_names
    x0 = lay.init.copy()
    if isinstance(init, Mapping):
        for name, val in init.items():
            x0[model.parameter_index(name)] = float(val)
    elif init is not None:
        x0 = model._params(init, name="init").copy()

    lo_hi = lay.bounds.copy()
    if isinstance(bounds, Mapping):
        for name, (lo, hi) in bounds.items():
            lo_hi[model.parameter_index(name)] = (float(lo), float(hi))
    elif bounds is not None:
        arr = np.asarray(bounds, dtype=float)
        if arr.shape != (n, 2):
            raise InvalidParameters(f"bounds must have shape ({n}, 2), got {arr.shape}")
        lo_hi = arr.copy()

    mask = lay.fixed.copy()
    if isinstance(fixed, Mapping):
        for name, val in fixed.items():
            i = model.parameter_index(name)
            mask[i] = True
            x0[i] = float(val)
    elif fixed is not None:
        items = list(fixed) if isinstance(fixed, Sequence | np.ndarray) else None
        if items is None:
            raise InvalidParameters("fixed must be a sequence of bools, of names, or a mapping")
        if all(isinstance(v, str) for v in items):
            for name in items:
                mask[model.parameter_index(name)] = True
        else:
            arr = np.asarray(items, dtype=bool)
            if arr.shape != (n,):
                raise InvalidParameters(f"fixed has {arr.size} entries, the model has {n}")
            mask = arr.copy()

    bad = ~(lo_hi[:, 0] <= lo_hi[:, 1]) | ~np.isfinite(x0)
    bad |= ~mask & ~((lo_hi[:, 0] <= x0) & (x0 <= lo_hi[:, 1]))
    for i in np.flatnonzero(bad)[:1]:
        lo, hi = lo_hi[i]
        if not lo <= hi:
            raise InvalidParameters(f"bounds of {names[i]}: low {lo} > high {hi}")
        if not np.isfinite(x0[i]):
            raise InvalidParameters(f"init of {names[i]} is {x0[i]!r}")
        raise InvalidParameters(
            f"init of {names[i]} = {x0[i]} is outside its bounds ({lo}, {hi})"
        )
    lower = np.where(mask, x0, lo_hi[:, 0])
    upper = np.where(mask, x0, lo_hi[:, 1])
    return x0, np.ascontiguousarray(lower), np.ascontiguousarray(upper), mask


def fit(
    model,
    data=None,
    init=None,
    fixed=None,
    bounds=None,
    *,
    uncertainties: bool = True,
    mode: str | None = None,
    pgtol: float = PGTOL,
    max_iter: int = MAX_ITER,
) -> FitResult:
    """Maximum-likelihood fit of ``model`` to ``data``.

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins, or main bins + auxiliary data; default the observed data.
    init, fixed, bounds : optional
        See :func:`resolve_fit_setup`.
    uncertainties : bool
        Compute the Hessian, covariance, correlation and uncertainties (default True).
    mode : {"fast", "parity"}, optional
        Evaluation mode of the NLL; default the global mode.
    pgtol : float
        Convergence: infinity norm of the projected gradient.
    max_iter : int
        Iteration limit per optimizer run.

    Returns
    -------
    FitResult

    Notes
    -----
    If the optimizer stops for a reason other than convergence (line search failure,
    iteration limit), it is restarted from the point reached with a fresh quasi-Newton
    memory, up to ``MAX_RESTARTS`` times. A fit that still has not converged returns
    ``converged=False`` and the reason; its numbers are what was reached, not an answer.
    """
    main, aux, const = model.dataset(data)
    x0, lower, upper, mask = resolve_fit_setup(model, init, fixed, bounds)
    kahan = use_kahan(mode)
    cm = model.compiled
    x = x0.copy()
    totals = np.zeros(3, dtype=int)
    initial_nll = None
    restarts = 0
    while True:
        status, f, n_iter, n_fev, n_gev, pgnorm, n_active, f0 = _fit.minimize_nll(
            cm, x, lower, upper, main, aux, const, kahan, max_iter=max_iter, pgtol=pgtol
        )
        totals += (n_iter, n_fev, n_gev)
        if initial_nll is None:
            initial_nll = f0
        converged = is_converged(status, pgnorm)
        if converged or restarts >= MAX_RESTARTS or not np.isfinite(f):
            break
        restarts += 1
    status = Status(status)
    names = model.parameter_names()
    warnings: list[str] = []
    if not converged:
        warnings.append(f"fit did not converge: {status.message}")
    n = len(names)
    cov = corr = None
    errs = np.full(n, np.nan)
    cov_status = "not computed"
    if uncertainties and np.isfinite(f):
        local = model.layout.local_params
        hess = _fit.hessian_structured(cm, x, lower, upper, (~mask).view(np.uint8),
                                       local.view(np.uint8), main, aux, const)
        cov, cov_status, msg = _covariance(hess, ~mask, local, names)
        if msg:
            warnings.append(msg)
        errs = np.sqrt(np.diag(cov))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = cov / np.outer(errs, errs)
        corr[~np.isfinite(corr)] = 0.0
        np.fill_diagonal(corr, np.where(mask, 0.0, 1.0))
    return FitResult(
        parameter_names=names,
        bestfit=x,
        uncertainties=errs,
        covariance=cov,
        correlation=corr,
        nll=float(f),
        twice_nll=2.0 * float(f),
        converged=converged,
        termination_reason=(
            status.message if int(status) in _CONVERGED or not converged
            else f"converged to rounding: {status.message}, |projected gradient| {pgnorm:.1e}"
        ),
        n_iter=int(totals[0]),
        n_fev=int(totals[1]),
        n_gev=int(totals[2]),
        final_grad_norm=float(pgnorm),
        initial_nll=float(initial_nll),
        n_active_bounds=int(n_active),
        poi_index=model.poi_index(),
        covariance_status=cov_status,
        n_restarts=restarts,
        warnings=warnings,
    )


def _covariance(hess: np.ndarray, free: np.ndarray, local: np.ndarray, names: list[str]):
    """Invert the Hessian over the free parameters; eigenvalue floor if not PD.

    With ``local`` parameters (whose mutual Hessian block is diagonal, ``D``) the inverse
    goes through the Schur complement ``S = H_GG - B D^-1 B^T`` of the dense block of the
    other ("global") parameters, ``B = H_GL``:

    ``C_GG = S^-1``, ``C_GL = -C_GG B D^-1``, ``C_LL = D^-1 + D^-1 B^T C_GG B D^-1``,

    which costs O(n_L n_G^2 + n_G^3) instead of O(n^3). ``S`` is inverted by Cholesky after
    scaling by ``1/sqrt(H_kk)``; a pivot ``L_kk^2 / H_kk`` below ``EIGEN_FLOOR`` means a
    direction the data do not determine (finite-difference noise would otherwise pass
    for curvature) and sends the fit to the eigenvalue-floor fallback.
    """
    n = hess.shape[0]
    cov = np.zeros((n, n))
    if not np.any(free):
        return cov, "ok", ""
    if not np.all(np.isfinite(hess)):
        raise FitError("the Hessian at the minimum is not finite; no covariance exists")
    lidx = np.flatnonzero(free & local)
    gidx = np.flatnonzero(free & ~local)
    dl = hess[lidx, lidx]
    hgg_diag = np.diag(hess)[gidx]
    if np.all(dl > 0) and np.all(hgg_diag > 0):
        b = hess[np.ix_(gidx, lidx)]
        b_over_d = b / dl
        schur = hess[np.ix_(gidx, gidx)] - b_over_d @ b.T
        dg = 1.0 / np.sqrt(hgg_diag)
        inv, min_pivot = spd_inverse(np.ascontiguousarray(schur * np.outer(dg, dg)))
        if inv is not None and min_pivot > EIGEN_FLOOR:
            c_gg = inv * np.outer(dg, dg)
            c_gl = -c_gg @ b_over_d
            cov[np.ix_(gidx, gidx)] = c_gg
            cov[np.ix_(gidx, lidx)] = c_gl
            cov[np.ix_(lidx, gidx)] = c_gl.T
            c_ll = b_over_d.T @ c_gg @ b_over_d
            c_ll[np.diag_indices_from(c_ll)] += 1.0 / dl
            cov[np.ix_(lidx, lidx)] = c_ll
            return cov, "ok", ""
    idx = np.flatnonzero(free)
    sub = hess[np.ix_(idx, idx)]
    diag = np.abs(np.diag(sub))
    d = 1.0 / np.sqrt(np.maximum(diag, np.max(diag) * EIGEN_FLOOR))
    w, v = np.linalg.eigh(sub * np.outer(d, d))
    floor = EIGEN_FLOOR * max(float(np.max(np.abs(w))), 1e-300)
    bad = w < floor
    worst = v[:, int(np.argmin(w))]
    culprits = [names[idx[j]] for j in np.argsort(-np.abs(worst))[:3]]
    w = np.where(bad, floor, w)
    cov[np.ix_(idx, idx)] = ((v / w) @ v.T) * np.outer(d, d)
    msg = (
        f"Hessian not positive definite ({int(bad.sum())} eigenvalue(s) floored); "
        f"weakest direction dominated by {', '.join(culprits)}"
    )
    return cov, "regularized", msg
