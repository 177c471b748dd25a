"""Discovery significance from the profile-likelihood ratio ``q0`` (asymptotic).

``q0 = 2 [NLL(mu = 0, theta_hat_hat) - NLL(mu_hat, theta_hat)]`` when ``mu_hat >= 0`` and 0
otherwise (Cowan, Cranmer, Gross, Vitells, Eur. Phys. J. C 71 (2011) 1554, eq. 12). In the
asymptotic limit ``p0 = Phi(-sqrt(q0))`` and ``Z = sqrt(q0)``.

The expected (median) significance is pyhf's: the Asimov dataset is the expected data
(main *and* auxiliary) at the conditional fit to the observed data with ``mu = 1``, and
``Z_exp = sqrt(q0_A)`` with ``q0_A`` the same statistic on it. This is what
``pyhf.infer.hypotest(0, data, model, test_stat="q0", return_expected=True)`` returns as
its second value (``p0_exp = Phi(-sqrt(q0_A))``), and what cabinetry's ``significance``
reports.

Note: the POI must be allowed to reach 0 (lower bound <= 0). With a lower bound of 0
(pyhf's default for a normfactor) ``mu_hat`` cannot be negative, so a deficit gives
``q0 = 0``, ``p0 = 0.5`` and ``Z = 0``; an excess gives ``Z > 0``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .asymptotics import NSIGMA_ORDER, AsymptoticCalculator
from .profile import ProfileLikelihood

__all__ = ["SignificanceResult", "significance"]


@dataclass
class SignificanceResult:
    """Observed and expected discovery significance.

    Attributes
    ----------
    q0, q0_asimov : float
        The discovery test statistic on the data and on the ``mu = 1`` Asimov dataset.
    p0, z_obs : float
        Observed p-value of the background-only hypothesis and its significance
        ``sqrt(q0)``.
    p0_exp, z_exp : float
        Median expected p-value under signal + background (``mu = 1``) and ``sqrt(q0_A)``.
    p0_exp_set, z_exp_set : list of float
        The expected values for ``t = n`` in ``NSIGMA_ORDER = (2, 1, 0, -1, -2)`` (pyhf's
        ``return_expected_set`` order); ``z_exp_set[k] = sqrt(q0_A) + n_k``.
    mu_hat : float
        Best-fit POI on the data.
    poi_name : str
    converged : bool
        Every fit behind the numbers converged.
    """

    q0: float
    q0_asimov: float
    p0: float
    z_obs: float
    p0_exp: float
    z_exp: float
    p0_exp_set: list[float]
    z_exp_set: list[float]
    mu_hat: float
    poi_name: str
    converged: bool

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable)."""
        return asdict(self)


def significance(model, data=None, *, init=None, fixed=None, bounds=None, mode=None):
    """Observed and expected discovery significance (asymptotic ``q0``).

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.

    Returns
    -------
    SignificanceResult

    Raises
    ------
    InvalidParameters
        The POI is fixed or its bounds exclude 0.
    """
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    res = AsymptoticCalculator(prof, "q0").hypotest(0.0)
    sq_a = math.sqrt(res.q_asimov)
    return SignificanceResult(
        q0=res.q_obs,
        q0_asimov=res.q_asimov,
        p0=res.clsb,
        # sqrt(q0) directly: inverting p0 loses all precision beyond ~8 sigma.
        z_obs=math.sqrt(res.q_obs),
        p0_exp=res.clsb_exp[NSIGMA_ORDER.index(0)],
        z_exp=sq_a,
        p0_exp_set=list(res.clsb_exp),
        z_exp_set=[sq_a + n for n in NSIGMA_ORDER],
        mu_hat=res.mu_hat,
        poi_name=model.poi_name,
        converged=res.converged,
    )
