"""Repeated profile-likelihood fits of one model: free and fixed-POI minima.

:class:`ProfileLikelihood` prepares the data, bounds and fixed set once and then runs
compiled minimisations with as little Python as possible per fit; every statistical
procedure (test statistics, limits, scans, ranking) is built on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._config import use_kahan
from .._ext import fit as _fit
from ..errors import InvalidModel, InvalidParameters
from .mle import MAX_ITER, MAX_RESTARTS, PGTOL, is_converged, resolve_fit_setup

__all__ = ["MinimumResult", "ProfileLikelihood"]


@dataclass
class MinimumResult:
    """A minimum of the NLL: parameters, value, and whether the optimizer converged."""

    x: np.ndarray
    nll: float
    converged: bool
    status: int
    n_iter: int
    n_fev: int

    @property
    def twice_nll(self) -> float:
        """``2 * nll``."""
        return 2.0 * self.nll


class ProfileLikelihood:
    """Free and conditional (fixed-POI) fits of ``model`` to a dataset.

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins, or main + auxiliary data (default: observed).
    init, fixed, bounds : optional
        As in :func:`nextstat.fit`.
    mode : {"fast", "parity"}, optional
        Evaluation mode.

    Raises
    ------
    InvalidModel
        The model has no parameter of interest.
    InvalidParameters
        The POI is fixed.
    """

    def __init__(self, model, data=None, init=None, fixed=None, bounds=None, mode=None):
        poi = model.poi_index()
        if poi is None:
            raise InvalidModel("this model has no parameter of interest (measurement poi)")
        self.model = model
        self.poi = poi
        self.x0, self.lower, self.upper, self.fixed = resolve_fit_setup(model, init, fixed, bounds)
        if self.fixed[poi]:
            raise InvalidParameters(f"the POI {model.poi_name!r} is fixed; it must be free")
        self.kahan = use_kahan(mode)
        self.data = model.dataset(data)

    @property
    def poi_bounds(self) -> tuple[float, float]:
        """Bounds of the POI."""
        return float(self.lower[self.poi]), float(self.upper[self.poi])

    def with_data(self, data) -> ProfileLikelihood:
        """The same setup on another dataset (``(main, aux, constant)`` or a data vector)."""
        clone = object.__new__(ProfileLikelihood)
        clone.__dict__.update(self.__dict__)
        clone.data = data if isinstance(data, tuple) else self.model.dataset(data)
        return clone

    def _minimize(self, x0, lower, upper) -> MinimumResult:
        x = np.array(x0, dtype=float)
        np.clip(x, lower, upper, out=x)
        main, aux, const = self.data
        n_iter = n_fev = 0
        for _ in range(MAX_RESTARTS + 1):
            status, f, it, fev, _, pgnorm, _, _ = _fit.minimize_nll(
                self.model.compiled, x, lower, upper, main, aux, const, self.kahan,
                max_iter=MAX_ITER, pgtol=PGTOL,
            )
            n_iter += it
            n_fev += fev
            converged = is_converged(status, pgnorm)
            if converged or not np.isfinite(f):
                break
        return MinimumResult(x, float(f), converged, int(status), n_iter, n_fev)

    def free_fit(self, x0=None) -> MinimumResult:
        """Unconditional minimum (POI free within its bounds)."""
        return self._minimize(self.x0 if x0 is None else x0, self.lower, self.upper)

    def fixed_poi_fit(self, mu: float, x0=None) -> MinimumResult:
        """Conditional minimum with the POI fixed at ``mu``.

        Raises
        ------
        InvalidParameters
            ``mu`` lies outside the POI bounds.
        """
        lo, hi = self.poi_bounds
        if not lo <= mu <= hi:
            raise InvalidParameters(
                f"POI value {mu} is outside the POI bounds ({lo}, {hi}); widen them with "
                f"bounds={{{self.model.poi_name!r}: (lo, hi)}}"
            )
        lower = self.lower.copy()
        upper = self.upper.copy()
        lower[self.poi] = upper[self.poi] = mu
        start = np.array(self.x0 if x0 is None else x0, dtype=float)
        start[self.poi] = mu
        return self._minimize(start, lower, upper)

    def expected_data(self, x) -> tuple[np.ndarray, np.ndarray, float]:
        """Asimov dataset ``(main, aux, constant)`` at parameters ``x`` (main and aux)."""
        return self.model.dataset(self.model.expected_data(x, include_auxdata=True))
