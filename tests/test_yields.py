"""Pre/post-fit yields and their propagated uncertainties against hand computations."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from zoo import ZOO

import nextstat
from nextstat.errors import InvalidParameters
from nextstat.infer.mle import FitResult

#: Propagated errors vs closed forms: the central difference with step 1e-4 sigma has a
#: truncation error ~(1e-4)^2 relative; 1e-7 leaves room for rounding.
ERR_RTOL = 1e-7
#: Yields themselves are the compiled rates (exact up to rounding).
YIELD_RTOL = 1e-12

HI = 1.1


def _ws(samples, observed):
    # The schema needs a POI: the normsys "a" (any scalar parameter will do).
    return {
        "channels": [{"name": "SR", "samples": samples}],
        "observations": [{"name": "SR", "data": observed}],
        "measurements": [{"name": "m", "config": {"poi": "a", "parameters": []}}],
        "version": "1.0.0",
    }


def _normsys(name, hi, lo):
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def one_normsys_model(interpolation="pyhf"):
    """One sample (100, 40) with one normsys, symmetric in log: kappa(alpha) = 1.1^alpha."""
    ws = _ws([{"name": "bkg", "data": [100.0, 40.0],
               "modifiers": [_normsys("a", HI, 1.0 / HI)]}], [105.0, 38.0])
    return nextstat.from_pyhf(ws, interpolation=interpolation)


def hand_fit_result(model, bestfit, sigmas, corr=None):
    """A FitResult with a given best fit and covariance (for hand-computable cases)."""
    sig = np.asarray(sigmas, dtype=float)
    corr = np.eye(sig.size) if corr is None else np.asarray(corr, dtype=float)
    return FitResult(
        parameter_names=model.parameter_names(), bestfit=np.asarray(bestfit, dtype=float),
        uncertainties=sig, covariance=corr * np.outer(sig, sig), correlation=corr, nll=0.0,
        twice_nll=0.0, converged=True, termination_reason="by hand", n_iter=0, n_fev=0,
        n_gev=0, final_grad_norm=0.0, initial_nll=0.0, n_active_bounds=0, poi_index=0,
        covariance_status="ok",
    )


def test_prefit_single_normsys_code1():
    """Code 1 (exponential) at alpha = 0: sigma(y) = y |d kappa / d alpha| = y ln(1.1)."""
    res = nextstat.yields(one_normsys_model("root"))
    (ch,) = res.channels
    (s,) = ch.samples
    assert res.stage == "prefit"
    np.testing.assert_allclose(s.y, [100.0, 40.0], rtol=YIELD_RTOL)
    np.testing.assert_allclose(s.y_err, [100.0 * math.log(HI), 40.0 * math.log(HI)],
                               rtol=ERR_RTOL)
    assert s.integrated_error == pytest.approx(140.0 * math.log(HI), rel=ERR_RTOL)
    assert ch.data == [105.0, 38.0] and ch.data_integrated == 143.0


def test_prefit_secant_is_the_symmetrised_one_sigma_variation():
    res = nextstat.yields(one_normsys_model("pyhf"), method="secant")
    s = res.channels[0].samples[0]
    np.testing.assert_allclose(s.y_err, [100.0 * (HI - 1 / HI) / 2, 40.0 * (HI - 1 / HI) / 2],
                               rtol=1e-12)


def test_postfit_single_normsys_exponential_region():
    """Code 4 at |alpha| > 1 is exactly exponential: sigma(y) = y(alpha) ln(1.1) sigma_alpha."""
    model = one_normsys_model("pyhf")
    alpha, sig = 1.5, 0.3
    res = nextstat.yields(model, hand_fit_result(model, [alpha], [sig]))
    s = res.channels[0].samples[0]
    y = np.array([100.0, 40.0]) * HI**alpha
    np.testing.assert_allclose(s.y, y, rtol=YIELD_RTOL)
    np.testing.assert_allclose(s.y_err, y * math.log(HI) * sig, rtol=ERR_RTOL)
    assert res.stage == "postfit"


def two_sample_model(shared):
    """Two samples, each with a normsys; the same parameter ('a') or two ('a', 'b')."""
    second = "a" if shared else "b"
    ws = _ws(
        [
            {"name": "s1", "data": [100.0, 50.0], "modifiers": [_normsys("a", 1.1, 0.9)]},
            {"name": "s2", "data": [30.0, 60.0], "modifiers": [_normsys(second, 1.2, 0.8)]},
        ],
        [130.0, 110.0],
    )
    return nextstat.from_pyhf(ws, interpolation="root")


def test_totals_fully_correlated_add_linearly():
    model = two_sample_model(shared=True)
    res = nextstat.yields(model, hand_fit_result(model, [0.4], [0.5]))
    ch = res.channels[0]
    s1, s2 = ch.samples
    np.testing.assert_allclose(ch.total, np.add(s1.y, s2.y), rtol=YIELD_RTOL)
    # One parameter drives both samples in the same direction: errors add.
    np.testing.assert_allclose(ch.total_error, np.add(s1.y_err, s2.y_err), rtol=ERR_RTOL)
    # By hand: code 1 at alpha > 0 is hi^alpha: dy/dalpha = y ln(hi).
    y1 = np.array([100.0, 50.0]) * 1.1**0.4
    y2 = np.array([30.0, 60.0]) * 1.2**0.4
    np.testing.assert_allclose(ch.total_error, 0.5 * (y1 * math.log(1.1) + y2 * math.log(1.2)),
                               rtol=ERR_RTOL)
    assert ch.integrated == pytest.approx(y1.sum() + y2.sum(), rel=YIELD_RTOL)
    assert ch.integrated_error == pytest.approx(
        0.5 * (y1.sum() * math.log(1.1) + y2.sum() * math.log(1.2)), rel=ERR_RTOL)


@pytest.mark.parametrize("rho", [0.0, 0.6, -0.9])
def test_totals_with_correlated_parameters(rho):
    model = two_sample_model(shared=False)
    sig = [0.5, 0.7]
    res = nextstat.yields(model, hand_fit_result(model, [0.3, 0.2], sig,
                                                 [[1.0, rho], [rho, 1.0]]))
    ch = res.channels[0]
    s1, s2 = ch.samples
    e1, e2 = np.array(s1.y_err), np.array(s2.y_err)
    np.testing.assert_allclose(e1, np.array(s1.y) * math.log(1.1) * sig[0], rtol=ERR_RTOL)
    np.testing.assert_allclose(e2, np.array(s2.y) * math.log(1.2) * sig[1], rtol=ERR_RTOL)
    np.testing.assert_allclose(ch.total_error, np.sqrt(e1**2 + e2**2 + 2 * rho * e1 * e2),
                               rtol=ERR_RTOL)
    i1, i2 = s1.integrated_error, s2.integrated_error
    assert ch.integrated_error == pytest.approx(math.sqrt(i1**2 + i2**2 + 2 * rho * i1 * i2),
                                                rel=ERR_RTOL)


def test_staterror_prefit_and_unconstrained_parameters():
    """Prefit: staterror gamma has sigma_b; the POI normfactor has no prefit uncertainty."""
    model = nextstat.from_pyhf(ZOO["staterror_only"])
    res = nextstat.yields(model)
    sig, bkg = res.channels[0].sample("signal"), res.channels[0].sample("background")
    assert sig.y_err == [0.0, 0.0, 0.0]
    np.testing.assert_allclose(bkg.y_err, [4.0, 3.5, 2.0], rtol=ERR_RTOL)  # sigma_b * nominal


def test_postfit_matches_model_rates_and_covariance_propagation():
    """Post-fit on a realistic model: yields are the model's; errors equal J C J^T with a
    Jacobian built here from the per-sample rates by central differences."""
    model = nextstat.from_pyhf(ZOO["multichannel"])
    fit = nextstat.fit(model)
    res = nextstat.yields(model, fit)
    rates = model.expected_main_by_channel_sample(fit.bestfit)
    x = fit.bestfit
    cols = np.flatnonzero(fit.uncertainties > 0)
    jac = []
    for j in cols:
        h = 1e-4 * fit.uncertainties[j]
        up, dn = x.copy(), x.copy()
        up[j] += h
        dn[j] -= h
        ru = model.expected_main_by_channel_sample(up)
        rd = model.expected_main_by_channel_sample(dn)
        jac.append(np.concatenate([np.sum([s["y"] for s in c["samples"]], axis=0) for c in ru])
                   - np.concatenate([np.sum([s["y"] for s in c["samples"]], axis=0)
                                     for c in rd]))
        jac[-1] /= 2 * h
    jac = np.array(jac).T
    cov = fit.covariance[np.ix_(cols, cols)]
    ref_err = np.sqrt(np.einsum("ij,jk,ik->i", jac, cov, jac))
    ours = np.concatenate([c.total_error for c in res.channels])
    np.testing.assert_allclose(ours, ref_err, rtol=1e-6)
    for c_ref, c in zip(rates, res.channels, strict=True):
        assert c.name == c_ref["channel_name"]
        for s_ref, s in zip(c_ref["samples"], c.samples, strict=True):
            np.testing.assert_allclose(s.y, s_ref["y"], rtol=YIELD_RTOL)


def test_exports_contain_the_numbers():
    model = two_sample_model(shared=False)
    res = nextstat.yields(model, hand_fit_result(model, [0.3, 0.2], [0.5, 0.7]))
    ch = res.channels[0]
    csv_text = res.to_csv()
    lines = csv_text.splitlines()
    assert lines[0] == "channel,sample,bin,yield,uncertainty"
    s1 = ch.samples[0]
    assert f"SR,s1,0,{s1.y[0]:.10g},{s1.y_err[0]:.10g}" in lines
    assert f"SR,total,total,{ch.integrated:.10g},{ch.integrated_error:.10g}" in lines
    assert "SR,data,1,110," in lines
    tex = res.to_latex(precision=3)
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"\midrule" in tex
    assert f"s1 & ${s1.integrated:.3f} \\pm {s1.integrated_error:.3f}$" in tex
    assert f"Total & ${ch.integrated:.3f} \\pm {ch.integrated_error:.3f}$" in tex
    assert "Data & $240$" in tex
    d = json.loads(json.dumps(res.to_dict()))
    assert d["channels"][0]["samples"][0]["y_err"] == s1.y_err


def test_latex_escapes_names():
    model = nextstat.from_pyhf(ZOO["realistic"], unknown_parameters="ignore")
    tex = nextstat.yields(model).to_latex()
    assert r"SR\_low" in tex and "SR_low" not in tex.replace(r"SR\_low", "")


def test_bad_arguments():
    model = one_normsys_model()
    with pytest.raises(InvalidParameters):
        nextstat.yields(model, method="montecarlo")
    fit = nextstat.fit(model, uncertainties=False)
    with pytest.raises(InvalidParameters):
        nextstat.yields(model, fit)
