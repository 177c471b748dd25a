"""Saturated-model goodness of fit (cabinetry 0.6 ``fit._goodness_of_fit`` semantics).

The saturated model has one free rate per main bin, so its Poisson terms sit at
``nu_b = n_b``; its constraint terms are the fit's, evaluated at the best fit (cabinetry
does exactly this: ``model.constraint_logpdf(auxdata, bestfit)``). Then

``chi2 = 2 (NLL_fit - NLL_saturated) = 2 sum_b [nu_b - n_b + n_b ln(n_b / nu_b)]``

(the Poisson deviance of the best-fit rates; a bin with ``n_b = 0`` contributes
``2 nu_b``), because the constraint terms cancel. It is referred to a chi-square
distribution with

``ndof = n_main_bins - n_free_unconstrained``

degrees of freedom, where ``n_free_unconstrained`` counts the components of the
normfactor and shapefactor parameters that are not fixed (cabinetry's
``model_utils.unconstrained_parameter_count``). Constrained nuisance parameters do not
reduce ``ndof``: each brings one auxiliary measurement along with it.

The deviance is computed term by term rather than as a difference of two NLLs, so it
keeps full precision when the fit is good (chi2 << NLL).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from .mle import fit, resolve_fit_setup

__all__ = ["GofResult", "goodness_of_fit", "poisson_deviance"]

_UNCONSTRAINED = ("normfactor", "shapefactor")


@dataclass
class GofResult:
    """Saturated-model goodness of fit.

    Attributes
    ----------
    chi2 : float
        ``2 (NLL_fit - NLL_saturated)``.
    ndof : int
        ``n_bins - n_free_unconstrained`` (may be <= 0; then ``p_value`` is NaN).
    p_value : float
        ``chi2.sf(chi2, ndof)``.
    chi2_per_ndof : float
    nll_fit, nll_saturated : float
        NLLs with all constants (pyhf's ``-logpdf``) of the fit and the saturated model.
    n_bins, n_free_unconstrained : int
    converged : bool
        The fit converged.
    warnings : list of str
    """

    chi2: float
    ndof: int
    p_value: float
    chi2_per_ndof: float
    nll_fit: float
    nll_saturated: float
    n_bins: int
    n_free_unconstrained: int
    converged: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable; NaN becomes None)."""
        out = asdict(self)
        for key, val in out.items():
            if isinstance(val, float) and not math.isfinite(val):
                out[key] = None
        return out


def poisson_deviance(n, nu) -> float:
    """``2 sum [nu - n + n ln(n / nu)]`` (the ``n = 0`` terms are ``2 nu``)."""
    n = np.asarray(n, dtype=float)
    nu = np.asarray(nu, dtype=float)
    pos = n > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(pos, n * np.log(np.where(pos, n, 1.0) / nu), 0.0)
    return float(2.0 * np.sum(nu - n + log_term))


def goodness_of_fit(
    model,
    data=None,
    fit_result=None,
    *,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
) -> GofResult:
    """Saturated-model goodness of fit of ``model`` to ``data`` (see the module docstring).

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    fit_result : FitResult, optional
        A fit of ``model`` to ``data``; fitted here when not given.
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`; ``fixed`` also decides which unconstrained parameters
        count as free (pass the same ``fixed`` as the fit that produced ``fit_result``).
        A parameter whose fitted uncertainty is exactly 0 counts as fixed as well.

    Returns
    -------
    GofResult
    """
    if fit_result is None:
        fit_result = fit(model, data, init=init, fixed=fixed, bounds=bounds,
                         uncertainties=False, mode=mode)
    main, _, _ = model.dataset(data)
    x = np.asarray(fit_result.bestfit, dtype=float)
    chi2 = poisson_deviance(main, model.expected_main(x))

    _, _, _, mask = resolve_fit_setup(model, init, fixed, bounds)
    errs = np.asarray(fit_result.uncertainties, dtype=float)
    mask = mask | (errs == 0.0)
    n_free_unc = 0
    for ps in model.layout.param_sets:
        if ps.kind in _UNCONSTRAINED:
            n_free_unc += int(np.sum(~mask[ps.offset:ps.offset + ps.n]))
    n_bins = int(main.size)
    ndof = n_bins - n_free_unc
    warnings: list[str] = []
    if ndof > 0:
        from scipy.stats import chi2 as _chi2

        p_value = float(_chi2.sf(chi2, ndof))
        per = chi2 / ndof
    else:
        p_value = per = math.nan
        warnings.append(
            f"ndof = {ndof} (n_bins {n_bins} - free unconstrained parameters {n_free_unc}) "
            "<= 0: no p-value"
        )
    if not fit_result.converged:
        warnings.append("the fit did not converge; chi2 is not a minimum's")
    return GofResult(
        chi2=chi2,
        ndof=ndof,
        p_value=p_value,
        chi2_per_ndof=per,
        nll_fit=float(fit_result.nll),
        nll_saturated=float(fit_result.nll) - 0.5 * chi2,
        n_bins=n_bins,
        n_free_unconstrained=n_free_unc,
        converged=bool(fit_result.converged),
        warnings=warnings,
    )
