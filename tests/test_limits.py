"""Upper limits and CLs curves against pyhf 0.7.6 (precise SLSQP) and closed forms."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.stats import norm
from zoo import ZOO, pyhf_model

import nextstat
from nextstat.errors import InvalidParameters
from nextstat.infer.asymptotics import NSIGMA_ORDER

#: Observed and expected CLs on a grid vs pyhf (issue: 1e-5 absolute).
CLS_ATOL = 1e-5
#: Grid-scan limits vs pyhf on the same grid (issue: 1e-4 relative).
SCAN_LIMIT_RTOL = 1e-4
#: Root-found limits vs pyhf's toms748 scan (issue: 1e-3 relative; both sides stop at
#: rtol = 1e-4, so the two roots may differ by ~2e-4).
ROOT_LIMIT_RTOL = 1e-3
#: Closed-form checks of a model without nuisance parameters: the only approximation is the
#: 1-parameter fit (|projected gradient| <= 1e-6, i.e. 2NLL off by ~1e-12) and our rtol.
CLOSED_FORM_RTOL = 1e-7
CLOSED_FORM_CLS_ATOL = 1e-9
#: SLSQP tolerance for the pyhf oracle (its default leaves q off by ~1e-5).
PYHF_TOL = 1e-12

GRID = np.linspace(0.5, 4.5, 9)
GRID_CASES = ["normfactor_only", "shapesys_only", "normsys_only"]
ROOT_CASES = ["normfactor_only", "lumi_only", "normsys_only"]


@pytest.fixture(scope="module")
def pyhf_precise():
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer(tolerance=PYHF_TOL))
    yield pyhf
    pyhf.set_backend("numpy", pyhf.optimize.scipy_optimizer())


def _model(name, **kw):
    return nextstat.from_pyhf(ZOO[name], unknown_parameters="ignore", **kw)


# ---------------------------------------------------------------------------
# pyhf
# ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", GRID_CASES)
def test_cls_curve_and_scan_limits_match_pyhf(name, pyhf_precise):
    pm, data = pyhf_model(ZOO[name])
    obs, exp, (_, results) = pyhf_precise.infer.intervals.upper_limits.upper_limit(
        data, pm, GRID, level=0.05, return_results=True
    )
    curve = nextstat.cls_curve(_model(name), GRID)
    np.testing.assert_allclose(curve.cls_obs, [float(r[0]) for r in results], atol=CLS_ATOL)
    their_exp = np.array([[float(v) for v in r[1]] for r in results]).T
    np.testing.assert_allclose(curve.cls_exp, their_exp, atol=CLS_ATOL)
    assert curve.converged and not curve.warnings
    assert curve.obs_limit == pytest.approx(float(obs), rel=SCAN_LIMIT_RTOL)
    np.testing.assert_allclose(curve.exp_limits, np.asarray(exp, float), rtol=SCAN_LIMIT_RTOL)
    # upper_limit(method="scan") is the same computation.
    res = nextstat.upper_limit(_model(name), method="scan", scan=GRID)
    assert res.obs_limit == curve.obs_limit and res.exp_limits == curve.exp_limits
    assert res.n_evaluations == GRID.size and res.converged
    assert [p["mu"] for p in res.points] == GRID.tolist()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("name", ROOT_CASES)
def test_root_limits_match_pyhf_upper_limit(name, pyhf_precise):
    pm, data = pyhf_model(ZOO[name])
    # pyhf 0.7.6 ignores `level` on this path (scikit-hep/pyhf#2563): compare at 0.05 only.
    obs, exp = pyhf_precise.infer.intervals.upper_limits.upper_limit(data, pm, level=0.05)
    res = nextstat.upper_limit(_model(name))
    assert res.converged, res.warnings
    assert res.obs_limit == pytest.approx(float(obs), rel=ROOT_LIMIT_RTOL)
    np.testing.assert_allclose(res.exp_limits, np.asarray(exp, float), rtol=ROOT_LIMIT_RTOL)


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize(("test_stat", "alpha"), [("q", 0.05), ("qtilde", 0.10)])
def test_root_limits_other_settings_match_pyhf_toms748(test_stat, alpha, pyhf_precise):
    # toms748_scan does receive `level`; start above mu = 0 (pyhf's 0/0 there, #2722).
    name = "normfactor_only"
    pm, data = pyhf_model(ZOO[name])
    obs, exp = pyhf_precise.infer.intervals.upper_limits.toms748_scan(
        data, pm, 0.1, 10.0, level=alpha, test_stat=test_stat
    )
    res = nextstat.upper_limit(_model(name), alpha=alpha, test_stat=test_stat)
    assert res.converged and res.test_stat == test_stat and res.alpha == alpha
    assert res.obs_limit == pytest.approx(float(obs), rel=ROOT_LIMIT_RTOL)
    np.testing.assert_allclose(res.exp_limits, np.asarray(exp, float), rtol=ROOT_LIMIT_RTOL)


# ---------------------------------------------------------------------------
# closed form: normfactor_only has no nuisance parameters
# ---------------------------------------------------------------------------


def _closed_form_cls(ws):
    """CLs(mu) (observed, expected[5]) of a normfactor-only counting model, pyhf's
    asymptotic formulae written out: NLL(mu) = sum(mu s + b - n ln(mu s + b))."""
    (chan,) = ws["channels"]
    sig, bkg = (np.array(smp["data"]) for smp in chan["samples"])
    n = np.array(ws["observations"][0]["data"])

    def nll(mu, obs):
        lam = mu * sig + bkg
        return float(np.sum(lam - obs * np.log(lam)))

    def mu_hat(obs):
        score = lambda mu: float(np.sum(sig * (obs / (mu * sig + bkg) - 1.0)))  # noqa: E731
        return 0.0 if score(0.0) <= 0.0 else brentq(score, 0.0, 10.0, xtol=1e-14)

    def q(mu, obs):
        mh = mu_hat(obs)
        return 0.0 if mh > mu else max(2.0 * (nll(mu, obs) - nll(mh, obs)), 0.0)

    def cls(mu):
        sq, sqa = math.sqrt(q(mu, n)), math.sqrt(q(mu, bkg))  # Asimov data at mu = 0: b
        t = (sq * sq - sqa * sqa) / (2 * sqa) if sq > sqa else sq - sqa
        p = lambda tt: norm.cdf(-(tt + sqa)) / norm.cdf(-tt)  # noqa: E731
        return p(t), [p(float(k)) for k in NSIGMA_ORDER]

    return cls


def test_limits_match_closed_form():
    ws = ZOO["normfactor_only"]
    cls = _closed_form_cls(ws)
    model = _model("normfactor_only")
    res = nextstat.upper_limit(model, rtol=1e-10)
    assert res.converged
    want_obs = brentq(lambda m: cls(m)[0] - 0.05, 0.1, 10.0, xtol=1e-14, rtol=1e-14)
    want_exp = [
        brentq(lambda m, k=k: cls(m)[1][k] - 0.05, 0.1, 10.0, xtol=1e-14, rtol=1e-14)
        for k in range(5)
    ]
    assert res.obs_limit == pytest.approx(want_obs, rel=CLOSED_FORM_RTOL)
    np.testing.assert_allclose(res.exp_limits, want_exp, rtol=CLOSED_FORM_RTOL)
    # Ascending: -2 sigma ... +2 sigma.
    assert res.exp_limits == sorted(res.exp_limits)
    # The CLs values on the way are the closed-form ones too.
    for p in res.points:
        c_obs, c_exp = cls(p["mu"])
        assert p["cls_obs"] == pytest.approx(c_obs, abs=CLOSED_FORM_CLS_ATOL)
        np.testing.assert_allclose(p["cls_exp"], c_exp, atol=CLOSED_FORM_CLS_ATOL)


# ---------------------------------------------------------------------------
# root finding: brackets, tolerance, bounds
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["multichannel", "all_modifiers"])
def test_root_limits_bracket_the_crossing(name):
    # The limit is where CLs crosses alpha: just below it CLs > alpha, just above CLs < alpha
    # (checked with fresh hypotests, independent of the root finder's memo).
    rtol = 1e-4
    model = _model(name)
    res = nextstat.upper_limit(model, rtol=rtol)
    assert res.converged and not res.warnings
    mus = [p["mu"] for p in res.points]
    assert mus == sorted(set(mus)) and res.n_evaluations == len(mus)
    for k, limit in enumerate([res.obs_limit, *res.exp_limits]):
        below, above = (
            nextstat.hypotest(limit * f, model, return_expected_set=True)
            for f in (1 - 2 * rtol, 1 + 2 * rtol)
        )
        pick = (lambda r: r[0]) if k == 0 else (lambda r, k=k: r[1][k - 1])  # noqa: E731
        assert pick(below) > 0.05 > pick(above)


def test_poi_bound_below_the_limit_is_widened_internally():
    model = _model("normfactor_only")
    ref = nextstat.upper_limit(model)
    narrow = nextstat.upper_limit(model, bounds={"mu": (0.0, 1.5)})
    assert narrow.converged
    assert any("widened" in w for w in narrow.warnings)
    assert narrow.obs_limit == pytest.approx(ref.obs_limit, rel=ROOT_LIMIT_RTOL / 10)
    np.testing.assert_allclose(narrow.exp_limits, ref.exp_limits, rtol=ROOT_LIMIT_RTOL / 10)


def test_free_fit_at_upper_bound_refuses_to_widen():
    # mu_hat = 0.52 > 0.3: the free fit sits on the bound, widening would change it.
    with pytest.raises(InvalidParameters, match="widen"):
        nextstat.upper_limit(
            _model("normfactor_only"), bounds={"mu": (0.0, 0.3)}, init={"mu": 0.2}
        )


def test_bracket_above_a_limit_is_reported():
    # -2 sigma expected limit 0.74: a search starting at 0.9 is above it.
    res = nextstat.upper_limit(_model("normfactor_only"), bracket=(0.9, 10.0))
    assert not res.converged
    assert res.exp_limits[0] == 0.9
    assert any("below the search range" in w for w in res.warnings)


def test_bracket_argument_and_progress():
    model = _model("normfactor_only")
    calls = []
    res = nextstat.upper_limit(model, bracket=(0.0, 1.0), progress=lambda i, n: calls.append(n))
    ref = nextstat.upper_limit(model)
    assert res.obs_limit == pytest.approx(ref.obs_limit, rel=ROOT_LIMIT_RTOL / 10)
    assert len(calls) == res.n_evaluations and set(calls) == {None}
    grid_calls = []
    nextstat.cls_curve(model, GRID, progress=lambda i, n: grid_calls.append((i, n)))
    assert grid_calls == [(i + 1, GRID.size) for i in range(GRID.size)]


# ---------------------------------------------------------------------------
# scan semantics off the grid, serialisation, errors
# ---------------------------------------------------------------------------


def test_scan_crossing_outside_grid_returns_grid_end_unconverged():
    model = _model("normfactor_only")
    grid = np.linspace(0.2, 1.6, 8)  # obs 1.85 and the +1/+2 sigma limits are above it
    res = nextstat.upper_limit(model, method="scan", scan=grid)
    assert not res.converged
    assert res.obs_limit == grid[-1] and res.exp_limits[-1] == grid[-1]
    assert any("stays above" in w for w in res.warnings)
    low = nextstat.cls_curve(model, np.linspace(3.0, 5.0, 5))  # all limits below 3.0
    assert not low.converged and low.exp_limits[0] == 3.0
    assert any("below alpha" in w for w in low.warnings)


def test_results_serialise_to_json():
    model = _model("lumi_only")
    res = nextstat.upper_limit(model)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    assert d["obs_limit"] == res.obs_limit and len(d["exp_limits"]) == 5
    assert set(d["points"][0]) == {"mu", "cls_obs", "cls_exp"}
    curve = nextstat.cls_curve(model, GRID)
    d = json.loads(json.dumps(curve.to_dict(), allow_nan=False))
    assert np.shape(d["cls_exp"]) == (5, GRID.size)
    assert d["nsigma_order"] == list(NSIGMA_ORDER)
    assert d["mu_values"] == GRID.tolist()
    assert len(curve.points) == GRID.size


def test_bad_arguments():
    model = _model("normfactor_only")
    with pytest.raises(InvalidParameters, match="test_stat"):
        nextstat.upper_limit(model, test_stat="q0")
    with pytest.raises(InvalidParameters, match="method"):
        nextstat.upper_limit(model, method="bisect")
    with pytest.raises(InvalidParameters, match="grid"):
        nextstat.upper_limit(model, method="scan")
    with pytest.raises(InvalidParameters, match="method='scan'"):
        nextstat.upper_limit(model, scan=GRID)
    with pytest.raises(InvalidParameters, match="alpha"):
        nextstat.upper_limit(model, alpha=1.5)
    with pytest.raises(InvalidParameters, match="bounds"):
        nextstat.cls_curve(model, [1.0, 20.0])
    with pytest.raises(InvalidParameters, match="ascending"):
        nextstat.cls_curve(model, [2.0, 1.0])
