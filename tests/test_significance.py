"""Discovery significance (q0) against closed forms and pyhf 0.7.6."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from zoo import ZOO, pyhf_model

import nextstat
from nextstat.errors import InvalidParameters

#: Closed forms vs our fits: the fitted mu_hat is converged to pgtol 1e-6 (Fisher-scaled),
#: which moves q0 by O(pgtol^2); 1e-6 in Z leaves ample room.
CLOSED_FORM_ATOL = 1e-6
#: Against pyhf with scipy's SLSQP at tolerance 1e-12: both minima agree to ~1e-7 in the
#: parameters, so p-values and Z agree to ~1e-7.
PYHF_ATOL = 1e-5

PYHF_CASES = ["normsys_only", "histosys_only", "shapesys_only", "staterror_only", "lumi_only",
              "multichannel", "coupled_systematics"]


def counting_model(s, b, n):
    ws = {
        "channels": [{"name": "SR", "samples": [
            {"name": "signal", "data": [s],
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": [b], "modifiers": []},
        ]}],
        "observations": [{"name": "SR", "data": [n]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    return nextstat.from_pyhf(ws)


def z_counting(n, b):
    """Observed Z of a counting experiment, Cowan et al. eq. 97: sqrt(2(n ln(n/b) - (n-b)))."""
    return math.sqrt(2.0 * (n * math.log(n / b) - (n - b)))


def z_asimov(s, b):
    """Median discovery Z for s + b expected: sqrt(2((s+b) ln(1+s/b) - s))."""
    return math.sqrt(2.0 * ((s + b) * math.log(1.0 + s / b) - s))


@pytest.mark.parametrize("s,b,n", [(10.0, 50.0, 75.0), (5.0, 3.0, 9.0), (30.0, 100.0, 104.0),
                                   (12.0, 20.0, 60.0)])
def test_counting_experiment_closed_form(s, b, n):
    res = nextstat.significance(counting_model(s, b, n))
    assert res.converged
    assert res.z_obs == pytest.approx(z_counting(n, b), abs=CLOSED_FORM_ATOL)
    assert res.z_exp == pytest.approx(z_asimov(s, b), abs=CLOSED_FORM_ATOL)
    assert res.mu_hat == pytest.approx((n - b) / s, abs=1e-5)
    assert res.q0 == pytest.approx(res.z_obs**2, rel=1e-12)
    # p0 = Phi(-Z); the expected set is Z_exp + n sigma.
    assert res.p0 == pytest.approx(0.5 * math.erfc(z_counting(n, b) / math.sqrt(2.0)),
                                   rel=1e-5)
    assert res.z_exp_set == pytest.approx([res.z_exp + k for k in (2, 1, 0, -1, -2)])
    assert res.p0_exp == res.p0_exp_set[2]


def test_excess_is_not_reported_as_zero():
    """The seeds' toolkit reported Z = 0 for any excess (it used q_mu at mu = 0)."""
    res = nextstat.significance(counting_model(10.0, 50.0, 75.0))
    assert res.z_obs > 3.0
    assert res.p0 < 1e-3


def test_deficit_gives_zero_significance():
    res = nextstat.significance(counting_model(10.0, 50.0, 40.0))
    assert res.mu_hat == pytest.approx(0.0, abs=1e-9)
    assert res.q0 == 0.0 and res.z_obs == 0.0 and res.p0 == 0.5
    assert res.z_exp == pytest.approx(z_asimov(10.0, 50.0), abs=CLOSED_FORM_ATOL)


def test_result_is_json_serialisable():
    d = nextstat.significance(counting_model(10.0, 50.0, 75.0)).to_dict()
    back = json.loads(json.dumps(d))
    assert set(back) >= {"q0", "p0", "z_obs", "z_exp", "mu_hat", "converged"}


def test_poi_bounds_must_include_zero():
    with pytest.raises(InvalidParameters):
        nextstat.significance(counting_model(10.0, 50.0, 75.0), bounds={"mu": (0.5, 5.0)})


@pytest.fixture(scope="module")
def pyhf_precise():
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=1e-12))
    yield pyhf
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())


@pytest.mark.parametrize("name", PYHF_CASES)
def test_matches_pyhf_q0(name, pyhf_precise):
    ws = ZOO[name]
    model = nextstat.from_pyhf(ws, unknown_parameters="ignore")
    pm, data = pyhf_model(ws)
    p0, p0_exp = pyhf_precise.infer.hypotest(0.0, data, pm, test_stat="q0",
                                             return_expected=True)
    res = nextstat.significance(model)
    assert res.converged
    assert res.p0 == pytest.approx(float(p0), abs=PYHF_ATOL)
    assert res.p0_exp == pytest.approx(float(p0_exp), abs=PYHF_ATOL)
    # Z = Phi^-1(1 - p): compare in Z where p is not tiny.
    from scipy.stats import norm

    if float(p0) > 1e-10:
        assert res.z_obs == pytest.approx(float(norm.isf(float(p0))), abs=PYHF_ATOL)
    assert res.z_exp == pytest.approx(float(norm.isf(float(p0_exp))), abs=PYHF_ATOL)
    assert np.isfinite(res.q0_asimov)
