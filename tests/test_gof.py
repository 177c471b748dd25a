"""Saturated-model goodness of fit against an independent computation (SciPy + pyhf)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.stats import chi2 as chi2_dist
from scipy.stats import poisson
from zoo import ZOO, pyhf_model

import nextstat

#: chi2 is a difference of two NLLs of size O(10-100) summed from O(10) terms in different
#: orders (ours: the Poisson deviance term by term; here: pyhf's logpdf minus SciPy's
#: saturated Poisson terms): agreement to a few ulp of the NLLs.
CHI2_ATOL = 1e-9

CASES = ["normfactor_only", "normsys_only", "histosys_only", "staterror_only",
         "shapesys_only", "lumi_only", "multichannel", "coupled_systematics", "zero_bins",
         "realistic"]
#: Free unconstrained parameter components per case (normfactors and shapefactors),
#: counted by hand from tests/zoo.py.
N_FREE_UNCONSTRAINED = {"normfactor_only": 1, "multichannel": 2, "realistic": 12}


@pytest.fixture(scope="module")
def pyhf():
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy")
    return pyhf


def reference_chi2(pm, data, bestfit):
    """2 (NLL_fit - NLL_saturated), cabinetry's definition, from pyhf and SciPy."""
    n_main = pm.config.nmaindata
    main = np.asarray(data[:n_main], dtype=float)
    aux = np.asarray(data[n_main:], dtype=float)
    nll_fit = -float(pm.logpdf(bestfit, data)[0])
    sat_main = float(np.sum(poisson.logpmf(main.astype(int), main)))
    sat_constraint = float(pm.constraint_logpdf(aux, np.asarray(bestfit))) if aux.size else 0.0
    nll_sat = -(sat_main + sat_constraint)
    return 2.0 * (nll_fit - nll_sat), nll_fit, nll_sat


@pytest.mark.parametrize("name", CASES)
def test_against_independent_saturated_likelihood(name, pyhf):
    ws = ZOO[name]
    model = nextstat.from_pyhf(ws, unknown_parameters="ignore")
    pm, data = pyhf_model(ws)
    assert np.all(np.asarray(data[: pm.config.nmaindata]) % 1 == 0)  # integer counts
    fit = nextstat.fit(model)
    res = nextstat.goodness_of_fit(model, fit_result=fit)
    ref, nll_fit, nll_sat = reference_chi2(pm, data, fit.bestfit)
    assert res.chi2 == pytest.approx(ref, abs=CHI2_ATOL)
    assert res.nll_fit == pytest.approx(nll_fit, abs=CHI2_ATOL)
    assert res.nll_saturated == pytest.approx(nll_sat, abs=CHI2_ATOL)
    assert res.n_bins == model.n_main_bins()
    if name in N_FREE_UNCONSTRAINED:
        assert res.n_free_unconstrained == N_FREE_UNCONSTRAINED[name]
    assert res.ndof == res.n_bins - res.n_free_unconstrained
    if res.ndof > 0:
        assert res.p_value == pytest.approx(float(chi2_dist.sf(ref, res.ndof)), rel=1e-8)
    else:
        assert math.isnan(res.p_value) and res.warnings
    assert res.converged
    json.dumps(res.to_dict())


def test_fits_when_no_fit_result_is_given():
    model = nextstat.from_pyhf(ZOO["multichannel"])
    a = nextstat.goodness_of_fit(model)
    b = nextstat.goodness_of_fit(model, fit_result=nextstat.fit(model))
    assert a.chi2 == pytest.approx(b.chi2, abs=1e-7)
    assert a.ndof == b.ndof == 5


def test_perfect_fit_has_zero_chi2_and_no_dof():
    ws = {
        "channels": [{"name": "SR", "samples": [
            {"name": "signal", "data": [10.0],
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": [50.0], "modifiers": []},
        ]}],
        "observations": [{"name": "SR", "data": [75.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    res = nextstat.goodness_of_fit(nextstat.from_pyhf(ws))
    # chi2 is O((nu - n)^2 / n) with |nu - n| ~ optimizer tolerance.
    assert res.chi2 == pytest.approx(0.0, abs=1e-9)
    assert res.ndof == 0 and math.isnan(res.p_value)
    assert res.to_dict()["p_value"] is None


def test_fixed_normfactor_adds_a_degree_of_freedom():
    model = nextstat.from_pyhf(ZOO["multichannel"])
    free = nextstat.goodness_of_fit(model)
    fixed = nextstat.goodness_of_fit(model, fixed={"mu": 1.0})
    assert fixed.ndof == free.ndof + 1
    assert fixed.chi2 >= free.chi2 - 1e-9


def test_deviance_terms():
    from nextstat.infer.gof import poisson_deviance

    n = np.array([0.0, 3.0, 10.0])
    nu = np.array([0.5, 3.0, 12.0])
    expected = 2 * (0.5 + 0.0 + (12.0 - 10.0 + 10.0 * math.log(10.0 / 12.0)))
    assert poisson_deviance(n, nu) == pytest.approx(expected, rel=1e-14)
