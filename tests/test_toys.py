"""Toy-based hypothesis tests and batched toy fits (nextstat.infer.toys)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import nextstat
from nextstat._ext import toys as _toys
from nextstat.infer import toys as toys_mod
from nextstat.infer.toys import fit_toys, generate_toys, hypotest_toys


def _ws(signal, bkg, unc, obs):
    return {
        "channels": [{
            "name": "ch",
            "samples": [
                {"name": "signal", "data": list(signal),
                 "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                {"name": "background", "data": list(bkg),
                 "modifiers": [{"name": "uncorr_bkguncrt", "type": "shapesys",
                                "data": list(unc)}]},
            ],
        }],
        "observations": [{"name": "ch", "data": list(obs)}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }


@pytest.fixture(scope="module")
def small():
    # pyhf.simplemodels.uncorrelated_background(signal=[12, 11], bkg=[50, 52],
    # bkg_uncertainty=[3, 7]) with observations [51, 48]
    return nextstat.from_pyhf(_ws([12.0, 11.0], [50.0, 52.0], [3.0, 7.0], [51, 48]))


def test_threads_do_not_change_results(small):
    r1 = hypotest_toys(1.0, small, n_toys=300, seed=3, n_threads=1, return_result=True)
    r2 = hypotest_toys(1.0, small, n_toys=300, seed=3, n_threads=2, return_result=True)
    np.testing.assert_array_equal(r1.q_sb, r2.q_sb)
    np.testing.assert_array_equal(r1.q_b, r2.q_b)
    assert r1.cls == r2.cls and r1.clb == r2.clb


def test_fit_batch_threads_bitwise(small):
    p = np.asarray(small.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(small, p, 64, seed=5)
    lo = np.array([b[0] for b in small.suggested_bounds()])
    hi = np.array([b[1] for b in small.suggested_bounds()])
    a = _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi, n_threads=1)
    b = _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi, n_threads=2)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    # each row equals a single nextstat.fit of that toy
    for k in (0, 17):
        data = np.concatenate([mains[k], auxs[k]])
        ref = nextstat.fit(small, data=data)
        np.testing.assert_allclose(a[0][k], ref.bestfit, atol=2e-4)
        assert a[1][k] == pytest.approx(ref.nll, abs=1e-8)


#: Newton and L-BFGS-B stop within ~1e-6 sigma of the same minimum: their NLLs agree to
#: ~(1e-6)^2 of the curvature, far below this.
SOLVER_NLL_ATOL = 1e-8


@pytest.mark.parametrize("name", ["god_run_small", "multichannel", "normsys_only", "all_modifiers"])
def test_newton_toy_fits_match_lbfgsb(name, small):
    """The Schur-complement Newton path (``local=``) finds L-BFGS-B's minima, converges on
    every toy, and is bitwise independent of the thread count."""
    if name == "god_run_small":
        model = small
    else:
        from zoo import ZOO

        model = nextstat.from_pyhf(ZOO[name])
    p = np.asarray(model.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(model, p, 200, seed=11)
    lo = np.array([b[0] for b in model.suggested_bounds()])
    hi = np.array([b[1] for b in model.suggested_bounds()])
    local = model.layout.local_params
    ref = _toys.fit_batch(model.compiled, mains, auxs, consts, p, lo, hi)
    new = _toys.fit_batch(model.compiled, mains, auxs, consts, p, lo, hi, local=local)
    two = _toys.fit_batch(model.compiled, mains, auxs, consts, p, lo, hi, local=local,
                          n_threads=2)
    assert new[4].all() and ref[4].all()
    np.testing.assert_allclose(new[1], ref[1], atol=SOLVER_NLL_ATOL)
    assert np.all(new[1] <= ref[1] + SOLVER_NLL_ATOL)
    for u, v in zip(new, two, strict=True):
        np.testing.assert_array_equal(u, v)
    # Newton needs fewer iterations than L-BFGS-B on these models
    assert new[3].mean() < ref[3].mean()


def test_generation_threads_bitwise(small):
    p = np.asarray(small.suggested_init(), dtype=float)
    one = generate_toys(small, p, 1000, seed=2, hypothesis=1, start=300, n_threads=1)
    two = generate_toys(small, p, 1000, seed=2, hypothesis=1, start=300, n_threads=2)
    for u, v in zip(one, two, strict=True):
        np.testing.assert_array_equal(u, v)


def test_seed_reproducible(small):
    a = generate_toys(small, small.suggested_init(), 50, seed=1)
    b = generate_toys(small, small.suggested_init(), 50, seed=1)
    c = generate_toys(small, small.suggested_init(), 50, seed=2)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert not np.array_equal(a[0], c[0])
    # per-toy streams: batching does not matter
    tail = generate_toys(small, small.suggested_init(), 20, seed=1, start=30)
    np.testing.assert_array_equal(tail[0], a[0][30:])
    np.testing.assert_array_equal(tail[1], a[1][30:])
    r1 = hypotest_toys(1.0, small, n_toys=200, seed=7, return_result=True)
    r2 = hypotest_toys(1.0, small, n_toys=200, seed=7, return_result=True)
    r3 = hypotest_toys(1.0, small, n_toys=200, seed=8, return_result=True)
    assert r1.to_dict() == r2.to_dict()
    assert not np.array_equal(r1.q_b, r3.q_b)


def test_toy_data_constants_and_aux(small):
    p = np.asarray(small.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(small, p, 5, seed=0)
    for k in range(5):
        _, _, c = small.dataset(np.concatenate([mains[k], auxs[k]]))
        assert consts[k] == pytest.approx(c, rel=1e-12, abs=1e-10)
    assert not np.array_equal(auxs[0], small.aux_data())
    _, auxs_f, _ = generate_toys(small, p, 5, seed=0, fixed_aux=True)
    np.testing.assert_array_equal(auxs_f, np.broadcast_to(small.aux_data(), auxs_f.shape))
    # Poisson auxiliary data (shapesys) fluctuate around gamma * tau
    _, auxs_m, _ = generate_toys(small, p, 4000, seed=0)
    tau = np.asarray(small.aux_data())
    np.testing.assert_allclose(auxs_m.mean(axis=0), tau, rtol=0.02)


def test_result_shape_and_pyhf_outputs(small):
    cls, tails, exp = hypotest_toys(1.0, small, n_toys=300, seed=0,
                                    return_tail_probs=True, return_expected_set=True)
    assert cls == pytest.approx(tails[0] / tails[1])
    assert len(exp) == 5 and all(a <= b for a, b in zip(exp, exp[1:], strict=False))
    r = hypotest_toys(1.0, small, n_toys=(200, 300), seed=0, return_result=True)
    d = r.to_dict()
    assert d["n_toys"] == {"sb": 200, "b": 300}
    assert d["n_failed"] == {"sb": 0, "b": 0}
    assert d["q_obs"] == pytest.approx(3.93824492, rel=1e-5)  # pyhf's ToyCalculator value
    assert "q_sb" not in d
    assert r.clsb_err == pytest.approx(math.sqrt(r.clsb * (1 - r.clsb) / 200))


def test_approaches_asymptotics():
    # one bin, b = 10000 with a 1% shapesys uncertainty, s = 300, observed = b:
    # q~_mu is close to its asymptotic distribution here.
    model = nextstat.from_pyhf(_ws([300.0], [10000.0], [100.0], [10000]))
    asym = nextstat.hypotest(1.0, model, return_tail_probs=True)
    r = hypotest_toys(1.0, model, n_toys=3000, seed=0, return_result=True)
    # MC error plus 0.01 for the remaining non-asymptotic difference
    assert abs(r.cls - asym[0]) < 3 * r.cls_err + 0.01
    assert abs(r.clb - asym[1][1]) < 3 * r.clb_err + 0.01


def test_failed_toy_is_counted(small, monkeypatch):
    p = np.asarray(small.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(small, p, 8, seed=0)
    mains[3, 0] = np.nan
    lo = np.array([b[0] for b in small.suggested_bounds()])
    hi = np.array([b[1] for b in small.suggested_bounds()])
    x, nll, status, it, conv = _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi)
    assert not np.isfinite(nll[3]) and not conv[3]
    assert np.all(np.isfinite(np.delete(nll, 3)))

    real = toys_mod.generate_toys

    def broken(*args, **kw):
        m, a, c = real(*args, **kw)
        if kw.get("hypothesis") == 1:
            m = m.copy()
            m[2, 0] = np.nan
        return m, a, c

    monkeypatch.setattr(toys_mod, "generate_toys", broken)
    r = hypotest_toys(1.0, small, n_toys=100, seed=0, return_result=True)
    assert r.n_failed == {"sb": 0, "b": 1}
    assert r.n_toys == {"sb": 100, "b": 99}
    assert np.isfinite(r.cls)


def test_fit_toys_pulls(small):
    f = fit_toys(small, None, 400, seed=2)
    assert f.bestfit.shape == (400, small.n_params())
    assert f.summary["n_failed"] == 0
    assert abs(f.summary["bias"]) < 0.15
    assert f.poi_error is None and "pull_mean" not in f.summary


def _god_run():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "models.py"
    spec = importlib.util.spec_from_file_location("_bench_models", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return nextstat.from_pyhf(mod.god_run())


def test_pulls_benchmark_model():
    # issue 4: toy fits of the POI have pull mean 0 +- 0.05, width 1 +- 0.05 and 68%
    # coverage within 0.03 (1000 toys: MC errors 0.032, 0.022, 0.015)
    model = _god_run()
    p = np.asarray(model.suggested_init(), dtype=float)
    p[model.poi_index()] = 1.0
    f = fit_toys(model, p, 1000, seed=0, uncertainties=True, bounds={"mu": (-10.0, 10.0)})
    s = f.summary
    assert s["n_failed"] == 0 and s["n_with_error"] == 1000
    assert abs(s["pull_mean"]) < 0.05
    assert abs(s["pull_width"] - 1.0) < 0.05
    assert abs(s["coverage_68"] - 0.6827) < 0.03


@pytest.mark.slow
def test_against_pyhf_toycalculator(small):
    pyhf = pytest.importorskip("pyhf")
    pyhf.set_backend("numpy")
    np.random.seed(0)  # noqa: NPY002 (pyhf draws toys from NumPy's global RNG)
    pm = pyhf.simplemodels.uncorrelated_background(
        signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0])
    n = 2000  # the issue: CLs and CLb within 3 MC standard errors at 2,000 toys
    calc = pyhf.infer.calculators.ToyCalculator(
        [51, 48] + pm.config.auxdata, pm, ntoys=n, track_progress=False)
    ts = calc.teststatistic(1.0)
    sb, b = calc.distributions(1.0)
    p_clsb, p_clb, p_cls = (float(v) for v in calc.pvalues(ts, sb, b))
    r = hypotest_toys(1.0, small, n_toys=20000, seed=0, return_result=True)
    assert r.q_obs == pytest.approx(float(ts), rel=1e-5)
    e_clb = math.sqrt((r.clb * (1 - r.clb)) / n + r.clb_err**2)
    assert abs(p_clb - r.clb) < 3 * e_clb
    e_clsb = math.sqrt((r.clsb * (1 - r.clsb)) / n + r.clsb_err**2)
    assert abs(p_clsb - r.clsb) < 3 * e_clsb
    e_cls = math.sqrt((r.cls_err * math.sqrt(20000 / n)) ** 2 + r.cls_err**2)
    assert abs(p_cls - r.cls) < 3 * e_cls


def test_cli_hypotest_toys(tmp_path):
    import json

    from click.testing import CliRunner

    from nextstat.cli import cli

    ws = tmp_path / "ws.json"
    ws.write_text(json.dumps(_ws([12.0, 11.0], [50.0, 52.0], [3.0, 7.0], [51, 48])))
    out = tmp_path / "r.json"
    args = ["hypotest-toys", "--input", str(ws), "--mu", "1", "--n-toys", "200", "--seed", "4",
            "--expected-set", "--fixed-aux", "--output", str(out)]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    d = json.loads(out.read_text())
    assert d["fixed_aux"] is True and d["seed"] == 4 and len(d["cls_exp"]) == 5
    model = nextstat.from_pyhf(json.loads(ws.read_text()))
    r = hypotest_toys(1.0, model, n_toys=200, seed=4, fixed_aux=True, return_result=True)
    assert d["cls"] == r.cls and d["n_toys"] == {"sb": 200, "b": 200}


def test_fit_batch_shared_scale(small):
    p = np.asarray(small.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(small, p, 16, seed=9)
    lo = np.array([b[0] for b in small.suggested_bounds()])
    hi = np.array([b[1] for b in small.suggested_bounds()])
    a = _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi)
    sc = _toys.fisher_scale(small.compiled, p, np.asarray(small.aux_data(), dtype=float))
    b = _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi, scale=sc)
    np.testing.assert_allclose(a[1], b[1], rtol=0, atol=1e-8)
    assert b[4].all()
    with pytest.raises(ValueError):
        _toys.fit_batch(small.compiled, mains, auxs, consts, p, lo, hi, scale=-sc)


#: The closed-form profile of the per-bin gammas is exact up to rounding: with every other
#: parameter fixed, the Newton path must already be at the minimum L-BFGS-B finds.
PROFILE_NLL_ATOL = 1e-9


@pytest.mark.parametrize("name", ["staterror_only", "shapesys_only", "shapefactor_only"])
def test_local_gammas_are_profiled_exactly(name):
    """Gaussian (staterror), Poisson (shapesys) and unconstrained (shapefactor) gammas, each
    touching one bin, are set to their conditional minimum in closed form: with the POI
    fixed, the Newton path needs no iteration and matches L-BFGS-B's minimum."""
    from zoo import ZOO

    model = nextstat.from_pyhf(ZOO[name])
    p = np.asarray(model.suggested_init(), dtype=float)
    mains, auxs, consts = generate_toys(model, p, 100, seed=4)
    lo = np.array([b[0] for b in model.suggested_bounds()])
    hi = np.array([b[1] for b in model.suggested_bounds()])
    poi = model.poi_index()
    lo[poi] = hi[poi] = 1.3
    p[poi] = 1.3
    local = model.layout.local_params
    assert local.sum() == model.n_params() - 1
    ref = _toys.fit_batch(model.compiled, mains, auxs, consts, p, lo, hi)
    new = _toys.fit_batch(model.compiled, mains, auxs, consts, p, lo, hi, local=local)
    assert ref[4].all() and new[4].all()
    assert np.all(new[3] == 0)
    np.testing.assert_allclose(new[1], ref[1], atol=PROFILE_NLL_ATOL)
    assert np.all(new[1] <= ref[1] + PROFILE_NLL_ATOL)
