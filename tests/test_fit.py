"""Maximum-likelihood fits against pyhf + Minuit and against finite differences."""

from __future__ import annotations

import json

import numpy as np
import pytest
from zoo import ZOO

import nextstat
from nextstat.errors import InvalidParameters

#: Best-fit agreement with pyhf+Minuit, in units of the parameter's uncertainty (issue #2).
BESTFIT_SIGMA_FRACTION = 0.01
#: Our NLL may not exceed pyhf's by more than this when best-fit values differ.
NLL_SLACK = 1e-7
#: Uncertainties vs the inverse of a finite-difference (second differences of the NLL)
#: Hessian computed in the test: both approximate the same matrix to O(h^2).
UNC_FD_RTOL = 1e-3
#: Uncertainties vs Minuit HESSE, for parameters far from their bounds (HESSE works in
#: bounded internal coordinates, which distorts errors near bounds).
UNC_HESSE_RTOL = 1e-2
#: "Far from bounds": Minuit's sin-transform of a bounded parameter still distorts HESSE by
#: ~2% at 3 sigma from a bound (seen on measurement_overrides: 0.981 vs 0.999).
FAR_FROM_BOUNDS_SIGMAS = 5.0
#: Tolerance of the pyhf Minuit oracle (its EDM target is 0.002 * tolerance).
MINUIT_TOLERANCE = 1e-4

CASES = sorted(ZOO)


def _model(name, **kw):
    return nextstat.from_pyhf(ZOO[name], unknown_parameters="ignore", **kw)


@pytest.fixture(scope="module")
def pyhf_minuit():
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", pyhf.optimize.minuit_optimizer(tolerance=MINUIT_TOLERANCE))
    yield pyhf
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())


def _pyhf_fit(pyhf, name):
    from zoo import pyhf_model

    pm, data = pyhf_model(ZOO[name])
    res = pyhf.infer.mle.fit(data, pm, return_uncertainties=True, return_fitted_val=True)
    (pars_unc, twice_nll) = res
    return pm, np.asarray(pars_unc)[:, 0], np.asarray(pars_unc)[:, 1], float(twice_nll)


@pytest.mark.parametrize("name", CASES)
def test_bestfit_matches_pyhf_minuit(name, pyhf_minuit):
    model = _model(name)
    res = nextstat.fit(model)
    assert res.converged, res.termination_reason
    pm, values, errors, twice_nll = _pyhf_fit(pyhf_minuit, name)
    ours = res.bestfit
    tol = BESTFIT_SIGMA_FRACTION * np.where(errors > 0, errors, 1.0)
    off = np.abs(ours - values) > tol
    if np.any(off):
        # Differences are acceptable only where we found the lower minimum.
        assert res.twice_nll <= twice_nll + NLL_SLACK, (
            f"{[model.parameter_names()[i] for i in np.flatnonzero(off)]} differ and our "
            f"2NLL {res.twice_nll} > pyhf's {twice_nll}"
        )
    assert res.twice_nll == pytest.approx(model.twice_nll(res.bestfit))

    lo, hi = np.array(model.suggested_bounds()).T
    far = (
        (errors > 0)
        & (values - lo > FAR_FROM_BOUNDS_SIGMAS * errors)
        & (hi - values > FAR_FROM_BOUNDS_SIGMAS * errors)
    )
    np.testing.assert_allclose(res.uncertainties[far], errors[far], rtol=UNC_HESSE_RTOL)


def _fd_hessian(model, x, free, h=1e-4):
    """Second differences of the NLL itself (not of our gradient)."""
    idx = np.flatnonzero(free)
    hess = np.zeros((idx.size, idx.size))
    f = model.nll
    for a, i in enumerate(idx):
        for b, j in enumerate(idx[: a + 1]):
            ei = np.zeros_like(x)
            ej = np.zeros_like(x)
            ei[i] = h * max(1.0, abs(x[i]))
            ej[j] = h * max(1.0, abs(x[j]))
            val = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) / (
                4 * ei[i] * ej[j]
            )
            hess[a, b] = hess[b, a] = val
    return idx, hess


@pytest.mark.parametrize("name", ["realistic", "multichannel", "shapesys_only",
                                  "lumi_only", "coupled_systematics"])
def test_uncertainties_match_inverse_fd_hessian(name):
    model = _model(name)
    res = nextstat.fit(model)
    assert res.covariance_status == "ok"
    free = ~np.array(model.suggested_fixed())
    lo, hi = np.array(model.suggested_bounds()).T
    inside = free & (res.bestfit - lo > 1e-3) & (hi - res.bestfit > 1e-3)
    if not np.all(inside[free]):
        pytest.skip("a free parameter sits at a bound; the plain Hessian is not the answer")
    idx, hess = _fd_hessian(model, res.bestfit, free)
    cov = np.linalg.inv(hess)
    np.testing.assert_allclose(res.uncertainties[idx], np.sqrt(np.diag(cov)), rtol=UNC_FD_RTOL)
    np.testing.assert_allclose(res.covariance[np.ix_(idx, idx)], cov,
                               rtol=UNC_FD_RTOL, atol=UNC_FD_RTOL * np.max(np.abs(cov)))


def test_fixed_parameters_stay_and_have_zero_error():
    model = _model("all_modifiers")
    name = next(n for n in model.parameter_names() if n != model.poi_name)
    res = nextstat.fit(model, fixed={name: 0.5} if "[" not in name else {name: 1.1})
    i = model.parameter_index(name)
    assert res.bestfit[i] == (0.5 if "[" not in name else 1.1)
    assert res.uncertainties[i] == 0.0
    assert np.all(res.covariance[i] == 0.0)
    free = nextstat.fit(model)
    assert res.nll >= free.nll - 1e-9


def test_fixed_poi_fit_is_a_conditional_minimum():
    model = _model("multichannel")
    poi = model.poi_index()
    res = nextstat.fit(model, fixed={model.poi_name: 2.0})
    assert res.bestfit[poi] == 2.0
    # The conditional minimum: the projected gradient of the other parameters vanishes.
    g = model.grad_nll(res.bestfit)
    g[poi] = 0.0
    assert np.max(np.abs(g)) < 1e-4


def test_fit_to_other_data_and_parity_mode_agree():
    model = _model("realistic")
    asimov = model.expected_data(model.suggested_init())
    fast = nextstat.fit(model, data=asimov, mode="fast")
    parity = nextstat.fit(model, data=asimov, mode="parity")
    np.testing.assert_allclose(fast.bestfit, parity.bestfit, atol=1e-5)
    # Asimov data at the init: the init is the best fit.
    np.testing.assert_allclose(fast.bestfit, model.suggested_init(), atol=1e-4)


def test_result_serialises_to_json():
    res = nextstat.fit(_model("normsys_only"))
    back = json.loads(res.to_json())
    assert back["parameter_names"] == res.parameter_names
    np.testing.assert_allclose(back["bestfit"], res.bestfit)
    np.testing.assert_allclose(np.array(back["covariance"]), res.covariance)
    assert back["converged"] is True
    assert back["twice_nll"] == pytest.approx(2 * back["nll"])


def test_iteration_limit_is_reported_not_hidden():
    res = nextstat.fit(_model("realistic"), max_iter=1)
    assert not res.converged
    assert res.warnings and "converge" in res.warnings[0]
    assert res.termination_reason


def test_flat_direction_gives_regularized_covariance():
    ws = {
        "channels": [{"name": "c", "samples": [{"name": "s", "data": [10.0, 20.0], "modifiers": [
            {"name": "mu", "type": "normfactor", "data": None},
            {"name": "k", "type": "normfactor", "data": None}]}]}],
        "observations": [{"name": "c", "data": [12.0, 18.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    res = nextstat.fit(nextstat.from_pyhf(ws))
    assert res.converged
    assert res.bestfit[0] * res.bestfit[1] == pytest.approx(30.0 / 30.0, rel=1e-6)
    assert res.covariance_status == "regularized"
    assert any("positive definite" in w for w in res.warnings)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"init": [1.0, 2.0]}, "parameters"),
        ({"init": {"mu": 20.0}}, "outside its bounds"),
        ({"bounds": {"mu": (3.0, 1.0)}}, "low 3.0 > high 1.0"),
        ({"fixed": {"nope": 1.0}}, "no parameter named 'nope'"),
        ({"data": [1.0, 2.0, 3.0]}, "main-bin counts"),
        ({"data": [-1.0, 2.0]}, "finite and >= 0"),
    ],
)
def test_bad_fit_arguments_raise_clear_errors(kwargs, match):
    with pytest.raises(InvalidParameters, match=match):
        nextstat.fit(_model("normfactor_only"), **kwargs)
