"""The compiled likelihood against pyhf 0.7.6 (numpy backend) on the workspace zoo."""

from __future__ import annotations

import numpy as np
import pytest
from zoo import ZOO, pyhf_model

import nextstat
from nextstat.model.reference import reference_expected_main, reference_nll

#: Expected rates in parity mode: the same products in a near-identical order (issue #2).
EXPECTED_RTOL = 1e-12
#: 2*NLL in parity mode vs pyhf's -2 logpdf: both are sums of O(100) terms of size O(1e3).
TWICE_NLL_ATOL = 1e-8
#: 2*NLL in fast mode (plain summation).
FAST_RTOL = 1e-6
#: Analytic gradient vs central differences with step FD_STEP: truncation O(h^2 f''') and
#: rounding O(eps f / h) are both far below these.
GRAD_ATOL, GRAD_RTOL, FD_STEP = 1e-6, 1e-4, 1e-6
#: The NumPy reference sums in another order than the compiled code: a few ulp of the NLL.
REFERENCE_RTOL = 1e-12

CASES = sorted(ZOO)
INTERPOLATIONS = ["pyhf", "root"]
N_POINTS = 4


def _build(name, interpolation):
    ws = ZOO[name]
    kw = {"unknown_parameters": "ignore"}
    model = nextstat.from_pyhf(ws, interpolation=interpolation, **kw)
    pm, data = pyhf_model(ws, interpolation=interpolation)
    return model, pm, np.asarray(data, dtype=float)


def random_points(model, n, seed):
    """Points scattered around the init, inside the bounds, with per-type scales."""
    rng = np.random.default_rng(seed)
    scales = np.concatenate(
        [
            np.full(ps.n, {"normsys": 1.0, "histosys": 1.0, "normfactor": 0.5}.get(ps.kind, 0.05))
            for ps in model.layout.param_sets
        ]
    )
    lo, hi = np.array(model.suggested_bounds()).T
    init = model.suggested_init()
    fixed = np.array(model.suggested_fixed())
    pts = []
    for _ in range(n):
        p = init + scales * rng.standard_normal(init.size)
        p = np.where(fixed, init, np.clip(p, lo + 1e-3, hi - 1e-3))
        pts.append(p)
    return pts


@pytest.fixture(scope="module", params=[(c, i) for c in CASES for i in INTERPOLATIONS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def pair(request):
    return _build(*request.param)


def test_structure_matches_pyhf(pair):
    model, pm, data = pair
    assert model.parameter_names() == pm.config.par_names
    np.testing.assert_array_equal(model.suggested_init(), pm.config.suggested_init())
    np.testing.assert_array_equal(np.array(model.suggested_bounds()),
                                  np.array(pm.config.suggested_bounds()))
    assert model.suggested_fixed() == list(pm.config.suggested_fixed())
    np.testing.assert_array_equal(model.observed_data(), data)
    assert model.poi_index() == pm.config.poi_index


def test_expected_data_parity(pair):
    model, pm, _ = pair
    for p in random_points(model, N_POINTS, seed=1):
        ours = model.expected_data(p)
        theirs = pm.expected_data(p)
        np.testing.assert_allclose(ours, theirs, rtol=EXPECTED_RTOL, atol=1e-300)


def test_twice_nll_parity_and_fast(pair):
    model, pm, data = pair
    for p in random_points(model, N_POINTS, seed=2):
        theirs = float(-2.0 * pm.logpdf(p, data)[0])
        assert model.twice_nll(p, mode="parity") == pytest.approx(theirs, abs=TWICE_NLL_ATOL)
        assert model.twice_nll(p, mode="fast") == pytest.approx(theirs, rel=FAST_RTOL)


def test_twice_nll_on_other_data(pair):
    """Full data vectors (main + aux) as pyhf takes them, e.g. Asimov data."""
    model, pm, _ = pair
    p0, p1 = random_points(model, 2, seed=3)
    asimov = np.asarray(pm.expected_data(p0))
    theirs = float(-2.0 * pm.logpdf(p1, asimov)[0])
    assert model.twice_nll(p1, data=asimov, mode="parity") == pytest.approx(
        theirs, abs=TWICE_NLL_ATOL
    )


def test_gradient_vs_finite_differences(pair):
    model, _, _ = pair
    for p in random_points(model, 2, seed=4):
        grad = model.grad_nll(p, mode="parity")
        fd = np.empty_like(p)
        for i in range(p.size):
            e = np.zeros_like(p)
            e[i] = FD_STEP
            fd[i] = (model.nll(p + e, mode="parity") - model.nll(p - e, mode="parity")) / (
                2 * FD_STEP
            )
        np.testing.assert_allclose(grad, fd, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def test_fused_call_matches_separate_calls(pair):
    model, _, _ = pair
    (p,) = random_points(model, 1, seed=5)
    f, g = model.nll_and_grad(p)
    assert f == model.nll(p)
    np.testing.assert_array_equal(g, model.grad_nll(p))


def test_numpy_reference(pair):
    model, _, _ = pair
    for p in random_points(model, N_POINTS, seed=6):
        assert model.nll(p, mode="parity") == pytest.approx(reference_nll(model, p),
                                                           rel=REFERENCE_RTOL)
        np.testing.assert_allclose(model.expected_main(p), reference_expected_main(model, p),
                                   rtol=REFERENCE_RTOL, atol=1e-300)


@pytest.mark.parametrize("name", ["all_modifiers", "realistic"])
@pytest.mark.parametrize("codes", [{"normsys": "2", "histosys": "4"},
                                   {"normsys": "0", "histosys": "2"},
                                   {"normsys": "4p", "histosys": "1"}])
def test_other_codes_against_reference(name, codes):
    """Codes pyhf does not offer for a type are checked against the NumPy reference."""
    model = nextstat.from_pyhf(ZOO[name], interpolation=codes, unknown_parameters="ignore")
    assert model.interpolation_codes() == codes
    for p in random_points(model, N_POINTS, seed=7):
        assert model.nll(p, mode="parity") == pytest.approx(reference_nll(model, p),
                                                           rel=REFERENCE_RTOL)
