"""Ranking (impacts) against independent refits; pulls and correlations by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from zoo import ZOO

import nextstat

#: Impacts vs an independent refit (a cold nextstat.fit polished by Newton's method):
#: both are the conditional minimum to ~1e-8 in mu (our refits stop at steps of 1e-6
#: conditional sigma; Newton converges quadratically); seen: <= 6e-9 on the zoo.
IMPACT_ATOL = 1e-7
#: Pulls/constraints recomputed by hand from the same FitResult: exact up to rounding.
PULL_RTOL = 1e-12

#: Newton polish of the reference: 3 steps from a converged fit reach the rounding level;
#: finite-difference step for its Hessian.
NEWTON_STEPS = 3
FD_STEP = 1e-5

CASES = ["normsys_only", "histosys_only", "staterror_only", "shapesys_only", "lumi_only",
         "multichannel", "coupled_systematics"]


def _model(name, **kw):
    return nextstat.from_pyhf(ZOO[name], unknown_parameters="ignore", **kw)


def reference_poi(model, fixed=None, bounds=None):
    """POI at the (conditional) minimum: a cold nextstat.fit, then Newton's method.

    nextstat's L-BFGS-B also stops on a relative NLL decrease of 1e-12, which leaves mu
    up to ~1e-6 from the minimum when its likelihood is flat (a line-search method cannot
    do much better: the NLL's rounding hides the last decreases). Newton steps with a
    Hessian from central differences of the analytic gradient need only the gradient to
    vanish: their fixed point is the minimum whatever the Hessian's finite-difference
    error.
    """
    fixed = fixed or {}
    x = nextstat.fit(model, fixed=fixed, bounds=bounds, uncertainties=False).bestfit.copy()
    lo_hi = np.array(model.suggested_bounds())
    if bounds:
        for name, b in bounds.items():
            lo_hi[model.parameter_index(name)] = b
    mask = np.array(model.suggested_fixed())
    for name in fixed:
        mask[model.parameter_index(name)] = True
    free = np.flatnonzero(~mask)
    for _ in range(NEWTON_STEPS):
        g = model.grad_nll(x)[free]
        hess = np.empty((free.size, free.size))
        for k, i in enumerate(free):
            h = FD_STEP * max(1.0, abs(x[i]))
            xp, xm = x.copy(), x.copy()
            xp[i] += h
            xm[i] -= h
            hess[:, k] = (model.grad_nll(xp)[free] - model.grad_nll(xm)[free]) / (2 * h)
        x[free] -= np.linalg.solve(0.5 * (hess + hess.T), g)
        np.clip(x, lo_hi[:, 0], lo_hi[:, 1], out=x)
    return float(x[model.poi_index()])


def check_against_refits(model, rk, entries, bounds=None):
    mu_hat = reference_poi(model, bounds=bounds)
    assert rk.mu_hat == pytest.approx(mu_hat, abs=IMPACT_ATOL)
    lo_hi = dict(zip(model.parameter_names(), model.suggested_bounds(), strict=True))
    lo_hi.update(bounds or {})
    for e in entries:
        lo, hi = lo_hi[e.name]
        for attr, value in (
            ("impact_prefit_up", e.postfit_value + e.prefit_sigma),
            ("impact_prefit_down", e.postfit_value - e.prefit_sigma),
            ("impact_postfit_up", e.postfit_value + e.postfit_sigma),
            ("impact_postfit_down", e.postfit_value - e.postfit_sigma),
        ):
            value = min(max(value, lo), hi)
            ref = reference_poi(model, fixed={e.name: value}, bounds=bounds) - mu_hat
            assert getattr(e, attr) == pytest.approx(ref, abs=IMPACT_ATOL), (e.name, attr)


@pytest.mark.parametrize("name", CASES)
def test_impacts_match_independent_refits(name):
    model = _model(name)
    rk = nextstat.ranking(model)
    assert rk.converged and rk.entries
    check_against_refits(model, rk, rk.entries)


#: Refits with the POI on its bound are compared with plain L-BFGS-B fits, which stop within
#: ~1e-6 of a width of the minimum (no Newton polish for a bound-constrained reference).
BOUND_IMPACT_ATOL = 1e-5


def test_impacts_with_the_poi_on_its_bound():
    """Data equal to the background put mu_hat on its lower bound 0 (as in the
    201-parameter benchmark model): half the refits push mu against the bound, where
    mu stays at 0 and the other parameters are refitted with it held there."""
    ws = {
        "channels": [{"name": "ch", "samples": [
            {"name": "signal", "data": [5.0, 8.0, 4.0],
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "background", "data": [50.0, 60.0, 40.0],
             "modifiers": [{"name": "bkg_unc", "type": "shapesys", "data": [5.0, 6.0, 8.0]},
                           {"name": "norm", "type": "normsys",
                            "data": {"hi": 1.05, "lo": 0.95}}]},
        ]}],
        "observations": [{"name": "ch", "data": [50.0, 60.0, 40.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    model = nextstat.from_pyhf(ws)
    rk = nextstat.ranking(model)
    assert rk.converged and rk.n_fallback_refits == 0
    assert rk.mu_hat == pytest.approx(0.0, abs=1e-9)
    for e in rk.entries:
        for attr, value in (
            ("impact_prefit_up", e.postfit_value + e.prefit_sigma),
            ("impact_prefit_down", e.postfit_value - e.prefit_sigma),
            ("impact_postfit_up", e.postfit_value + e.postfit_sigma),
            ("impact_postfit_down", e.postfit_value - e.postfit_sigma),
        ):
            ref = nextstat.fit(model, fixed={e.name: value}, uncertainties=False)
            mu_ref = ref.bestfit[model.poi_index()]
            assert getattr(e, attr) == pytest.approx(mu_ref - rk.mu_hat,
                                                     abs=BOUND_IMPACT_ATOL), (e.name, attr)
    assert min(min(e.impact_prefit_up, e.impact_prefit_down) for e in rk.entries) >= 0.0


def test_impacts_on_a_realistic_model():
    """5 channels, 108 nuisance parameters: check the top 3 and a spread of the rest."""
    model = _model("realistic")
    rk = nextstat.ranking(model, n_threads=2)
    assert rk.converged and len(rk.entries) == 108
    check_against_refits(model, rk, rk.entries[:3] + rk.entries[10::25])


def test_values_beyond_a_bound_are_clipped():
    model = _model("normsys_only")
    bounds = {"bkg_norm": (-0.5, 5.0)}
    rk = nextstat.ranking(model, bounds=bounds)
    (e,) = rk.entries
    assert e.postfit_value - e.prefit_sigma < -0.5  # the down variation hits the bound
    check_against_refits(model, rk, rk.entries, bounds=bounds)


def test_results_do_not_depend_on_the_thread_count():
    model = _model("realistic")
    fit = nextstat.fit(model)
    ref = nextstat.ranking(model, fit_result=fit, n_threads=1).to_dict()
    for n in (2, 3):
        assert nextstat.ranking(model, fit_result=fit, n_threads=n).to_dict() == ref


def test_entries_progress_and_serialisation():
    model = _model("multichannel")
    calls = []
    rk = nextstat.ranking(model, progress=lambda i, n: calls.append((i, n)), n_threads=2)
    n = len(rk.entries)
    # One constrained NP per staterror bin (1 + 2 + 4) plus the shared normsys.
    assert n == 8
    assert calls[-1] == (n, n) and [c[0] for c in calls] == sorted(c[0] for c in calls)
    keys = [max(abs(e.impact_postfit_up), abs(e.impact_postfit_down)) for e in rk.entries]
    assert keys == sorted(keys, reverse=True)
    assert rk.n_refits == 4 * n
    back = json.loads(json.dumps(rk.to_dict()))
    assert back["entries"][0]["name"] == rk.entries[0].name
    cols = rk.to_columns()
    assert cols["names"] == rk.names and len(cols["impact_postfit_up"]) == n
    assert rk.top(3).names == rk.names[:3]


def test_pulls_by_hand():
    model = _model("all_modifiers")
    fit = nextstat.fit(model)
    res = nextstat.pulls(fit, model)
    names = [e.name for e in res.entries]
    # POI, normfactors/shapefactors and nothing else is left out by default.
    assert "mu" not in names and not any(n.startswith("sf_wjets") for n in names)
    # Hand-computed prefit widths (tests/zoo.py): lumi sigma 0.017; staterror
    # sigma_b = sqrt(sum delta^2) / sum nominal over ttbar + wjets; shapesys
    # 1/sqrt(tau) = delta / nominal.
    sigma0 = {
        "jes": 1.0, "lumi": 0.017, "fakes_norm": 1.0, "sig_xsec": 1.0,
        "staterror_SR[0]": math.hypot(2.0, 1.5) / 60.0,
        "staterror_SR[1]": math.hypot(1.5, 1.2) / 37.0,
        "staterror_SR[2]": math.hypot(1.0, 0.8) / 16.0,
        "fakes_unc[0]": 2.0 / 8.0, "fakes_unc[1]": 1.5 / 5.0, "fakes_unc[2]": 1.0 / 2.0,
    }
    center = {n: 0.0 if n in ("jes", "fakes_norm", "sig_xsec") else 1.0 for n in sigma0}
    assert sorted(names) == sorted(sigma0)
    for e in res.entries:
        x, s = fit.value(e.name), fit.error(e.name)
        assert e.prefit_sigma == pytest.approx(sigma0[e.name], rel=PULL_RTOL)
        assert e.prefit_center == center[e.name]
        assert e.pull == pytest.approx((x - center[e.name]) / sigma0[e.name], rel=PULL_RTOL)
        assert e.constraint == pytest.approx(s / sigma0[e.name], rel=PULL_RTOL)
        assert (e.postfit_center, e.postfit_sigma) == (x, s)
        assert e.constrained
    with_unc = nextstat.pulls(fit, model, include_unconstrained=True)
    sf = [e for e in with_unc.entries if e.name.startswith("sf_wjets")]
    assert len(sf) == 3 and all(not e.constrained and math.isnan(e.pull) for e in sf)
    d = json.loads(json.dumps(with_unc.to_dict()))
    assert d["entries"][-1]["pull"] is None or isinstance(d["entries"][-1]["pull"], float)


def test_ranking_and_pulls_agree():
    model = _model("multichannel")
    fit = nextstat.fit(model)
    rk = nextstat.ranking(model, fit_result=fit)
    pl = {e.name: e for e in nextstat.pulls(fit, model).entries}
    for e in rk.entries:
        assert e.pull == pl[e.name].pull and e.constraint == pl[e.name].constraint


def test_correlation_matrix_and_pruning():
    model = _model("realistic")
    fit = nextstat.fit(model)
    full = nextstat.correlation_matrix(fit)
    free = [n for n, s in zip(fit.parameter_names, fit.uncertainties, strict=True) if s > 0]
    assert full.parameter_names == free
    idx = [fit.parameter_names.index(n) for n in free]
    np.testing.assert_array_equal(full.matrix, fit.correlation[np.ix_(idx, idx)])
    pruned = nextstat.correlation_matrix(fit, threshold=0.2)
    assert 0 < len(pruned.parameter_names) < len(free)
    off = np.abs(full.matrix - np.eye(len(free)))
    for name, row in zip(free, off, strict=True):
        assert (name in pruned.parameter_names) == (row.max() >= 0.2)
    d = json.loads(json.dumps(pruned.to_dict()))
    assert len(d["corr"]) == len(d["parameter_names"])
