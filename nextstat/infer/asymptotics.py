"""Profile-likelihood test statistics and asymptotic CLs (pyhf 0.7.6 semantics).

Test statistics (Cowan, Cranmer, Gross, Vitells, Eur. Phys. J. C 71 (2011) 1554):

* ``t_mu = max(2 [NLL(mu, theta_hat_hat) - NLL(mu_hat, theta_hat)], 0)``
* ``q_mu``: ``t_mu`` when ``mu_hat <= mu``, else 0 (one-sided, for upper limits);
  ``"qtilde"`` is the same statistic with the POI bounded below at 0, and differs in its
  asymptotic distribution.
* ``q0``: ``t_0`` when ``mu_hat >= 0``, else 0 (discovery).

The asymptotic calculator follows pyhf: the Asimov dataset is the model's expected data
(main *and* auxiliary) at the conditional fit to the observed data at ``mu = 0`` (``mu = 1``
for ``q0``); ``sqrt(q_A)`` comes from the same statistic on it. With
``t = sqrt(q) - sqrt(q_A)`` (for ``qtilde`` and ``sqrt(q) > sqrt(q_A)``:
``t = (q - q_A) / (2 sqrt(q_A))``; when ``q_A = 0``, e.g. at ``mu = 0``, that branch is
0/0 in pyhf 0.7.6 (NaN, scikit-hep/pyhf#2722) and we keep ``t = sqrt(q)``):

``CLs+b = Phi(-(t + sqrt(q_A)))``, ``CLb = Phi(-t)``, ``CLs = CLs+b / CLb``,

and the expected values for ``n`` in ``(2, 1, 0, -1, -2)`` put ``t = n``. For ``q0`` the
p-value is ``CLs+b = Phi(-sqrt(q0))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InvalidParameters
from .profile import ProfileLikelihood

__all__ = ["AsymptoticCalculator", "HypotestResult", "hypotest", "NSIGMA_ORDER"]

#: Order of the expected values: +2 sigma ... -2 sigma in t, i.e. ascending CLs.
NSIGMA_ORDER = (2, 1, 0, -1, -2)
TEST_STATS = ("qtilde", "q", "q0")


def _phi(x: float) -> float:
    """Standard normal CDF."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


@dataclass
class HypotestResult:
    """Everything an asymptotic hypothesis test computed (JSON-serialisable via ``to_dict``).

    ``cls_exp`` / ``clsb_exp`` / ``clb_exp`` follow :data:`NSIGMA_ORDER`. For ``q0``,
    ``cls`` holds the p-value ``p0`` (as pyhf's ``hypotest`` returns it).
    """

    mu_test: float
    test_stat: str
    cls: float
    clsb: float
    clb: float
    cls_exp: list[float]
    clsb_exp: list[float]
    clb_exp: list[float]
    q_obs: float
    q_asimov: float
    teststat: float
    mu_hat: float
    mu_hat_asimov: float
    converged: bool
    fitted: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain Python data."""
        return asdict(self)


def hypotest(
    mu,
    model,
    data=None,
    *,
    test_stat: str = "qtilde",
    return_expected_set: bool = False,
    return_tail_probs: bool = False,
    return_result: bool = False,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
):
    """Asymptotic CLs hypothesis test of ``mu`` (pyhf's ``hypotest``, asymptotic calculator).

    Parameters
    ----------
    mu : float
        Tested POI value (must be 0 for ``test_stat="q0"``).
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    test_stat : {"qtilde", "q", "q0"}
    return_expected_set, return_tail_probs : bool
        Extra outputs, in pyhf's order.
    return_result : bool
        Return the full :class:`HypotestResult` instead of the pyhf-shaped tuple.
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.

    Returns
    -------
    float or tuple
        pyhf's order: ``CLs`` (``p0`` for q0); then ``[CLs+b, CLb]`` (``[CLb]`` for q0) if
        ``return_tail_probs``; then the 5 expected ``CLs`` (``p0``), ordered
        ``(+2, +1, 0, -1, -2) sigma`` in ``t`` = ascending, if ``return_expected_set``.
    """
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    res = AsymptoticCalculator(prof, test_stat).hypotest(mu)
    if return_result:
        return res
    is_q0 = test_stat == "q0"
    out = [res.clsb if is_q0 else res.cls]
    if return_tail_probs:
        out.append([res.clb] if is_q0 else [res.clsb, res.clb])
    if return_expected_set:
        out.append(list(res.clsb_exp if is_q0 else res.cls_exp))
    return out[0] if len(out) == 1 else tuple(out)


def asimov_dataset(prof: ProfileLikelihood, asimov_mu: float, start=None):
    """pyhf's Asimov data: expected main + aux data at the conditional fit at ``asimov_mu``."""
    cond = prof.fixed_poi_fit(asimov_mu, x0=start)
    return prof.expected_data(cond.x), cond


class AsymptoticCalculator:
    """The asymptotic calculator with the fits that do not depend on ``mu`` cached.

    The free fit to the data, the Asimov dataset and the free fit to it are the same for
    every tested ``mu``; a limit or a CLs scan therefore costs two conditional fits per
    point. Conditional fits start from the nearest ``mu`` already tested (warm start).

    Parameters
    ----------
    prof : ProfileLikelihood
    test_stat : {"qtilde", "q", "q0"}
    """

    def __init__(self, prof: ProfileLikelihood, test_stat: str = "qtilde"):
        if test_stat not in TEST_STATS:
            raise InvalidParameters(f"test_stat must be one of {TEST_STATS}, got {test_stat!r}")
        self.prof = prof
        self.test_stat = test_stat
        self.free = prof.free_fit()
        asimov_mu = 1.0 if test_stat == "q0" else 0.0
        self.asimov_data, self.asimov_fit = asimov_dataset(prof, asimov_mu, start=self.free.x)
        self.prof_asimov = prof.with_data(self.asimov_data)
        # The Asimov free fit starts at the point that generated the data, its minimum.
        self.free_asimov = self.prof_asimov.free_fit(x0=self.asimov_fit.x)
        self._starts: dict[float, tuple[np.ndarray, np.ndarray]] = {}

    def _start(self, mu: float):
        if not self._starts:
            return self.free.x, self.free_asimov.x
        nearest = min(self._starts, key=lambda m: abs(m - mu))
        return self._starts[nearest]

    def hypotest(self, mu: float) -> HypotestResult:
        """Asymptotic test of ``mu`` (see the module docstring)."""
        mu = float(mu)
        test_stat = self.test_stat
        if test_stat == "q0" and mu != 0.0:
            raise InvalidParameters(f"q0 tests mu = 0; got mu = {mu}")
        start_d, start_a = self._start(mu)
        poi = self.prof.poi
        q, cond = self._q(self.prof, self.free, mu, start_d)
        q_a, cond_a = self._q(self.prof_asimov, self.free_asimov, mu, start_a)
        self._starts[mu] = (cond.x, cond_a.x)
        sq, sq_a = math.sqrt(q), math.sqrt(q_a)
        if test_stat == "qtilde" and sq > sq_a > 0.0:
            t = (q - q_a) / (2.0 * sq_a)
        else:
            t = sq - sq_a

        def pvals(tt):
            clsb = _phi(-(tt + sq_a))
            clb = _phi(-tt)
            return clsb, clb, (clsb / clb if clb > 0 else math.nan)

        clsb, clb, cls = pvals(t)
        exp = [pvals(float(n)) for n in NSIGMA_ORDER]
        fits = (self.free, cond, self.asimov_fit, self.free_asimov, cond_a)
        return HypotestResult(
            mu_test=mu,
            test_stat=test_stat,
            cls=cls,
            clsb=clsb,
            clb=clb,
            cls_exp=[e[2] for e in exp],
            clsb_exp=[e[0] for e in exp],
            clb_exp=[e[1] for e in exp],
            q_obs=q,
            q_asimov=q_a,
            teststat=t,
            mu_hat=float(self.free.x[poi]),
            mu_hat_asimov=float(self.free_asimov.x[poi]),
            converged=all(r.converged for r in fits),
            fitted={
                "free_fit_to_data": self.free.x.tolist(),
                "fixed_poi_fit_to_data": cond.x.tolist(),
                "asimov_pars": self.asimov_fit.x.tolist(),
                "free_fit_to_asimov": self.free_asimov.x.tolist(),
                "fixed_poi_fit_to_asimov": cond_a.x.tolist(),
            },
        )

    def _q(self, prof, free, mu, start):
        cond = prof.fixed_poi_fit(mu, x0=start)
        t = max(2.0 * (cond.nll - free.nll), 0.0)
        mu_hat = free.x[prof.poi]
        if self.test_stat == "q0":
            return (0.0 if mu_hat < mu else t), cond
        return (0.0 if mu_hat > mu else t), cond
