"""nextstat.viz: every renderer on real results of the bundled example (and their JSON dicts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nextstat
from nextstat.errors import InvalidArgumentType, InvalidParameters
from nextstat.examples import example_path

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import PolyCollection  # noqa: E402
from matplotlib.container import BarContainer, ErrorbarContainer  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

from nextstat import viz  # noqa: E402


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _json(result):
    """What the CLI would write and read back: strict JSON (NaN as null)."""
    return json.loads(json.dumps(result.to_dict()))


@pytest.fixture(scope="module")
def model():
    return nextstat.from_pyhf(example_path())


@pytest.fixture(scope="module")
def curve(model):
    return nextstat.cls_curve(model, np.linspace(0.0, 5.0, 26))


@pytest.fixture(scope="module")
def limit(model):
    return nextstat.upper_limit(model)


@pytest.fixture(scope="module")
def scan(model):
    return nextstat.profile_scan(model, np.linspace(0.0, 3.0, 31))


@pytest.fixture(scope="module")
def fit_result(model):
    return nextstat.fit(model)


@pytest.fixture(scope="module")
def ranking_mod():
    return pytest.importorskip("nextstat.infer.ranking")


@pytest.fixture(scope="module")
def ranking(model, fit_result, ranking_mod):
    return ranking_mod.ranking(model, fit_result=fit_result)


@pytest.fixture(scope="module")
def yields_mod():
    return pytest.importorskip("nextstat.infer.yields")


@pytest.fixture(scope="module")
def postfit(model, fit_result, yields_mod):
    return yields_mod.yields(model, fit_result)


@pytest.fixture(scope="module")
def prefit(model, yields_mod):
    return yields_mod.yields(model)


def _lines(ax, **props):
    out = []
    for line in ax.get_lines():
        if all(getattr(line, f"get_{k}")() == v for k, v in props.items()):
            out.append(line)
    return out


# --------------------------------------------------------------------------------------
# import cost and backend
# --------------------------------------------------------------------------------------


def _run(code, env=None):
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                         text=True, check=True, env=env)
    return out.stdout.strip().splitlines()


def test_import_is_light_and_agg_is_chosen_without_display():
    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    lines = _run("""
        import sys
        import nextstat
        print("matplotlib" in sys.modules, "nextstat.viz" in sys.modules)
        import nextstat.viz as viz
        print("matplotlib" in sys.modules)
        viz.plot_profile({"mu_values": [0, 1, 2], "twice_delta_nll": [1, 0, 1]})
        import matplotlib
        print(matplotlib.get_backend().lower())
    """, env=env)
    assert lines == ["False False", "False", "agg"]


def test_a_chosen_backend_is_kept():
    lines = _run("""
        import matplotlib
        matplotlib.use("svg")
        import nextstat.viz as viz
        viz.plot_profile({"mu_values": [0, 1, 2], "twice_delta_nll": [1, 0, 1]})
        print(matplotlib.get_backend().lower())
    """)
    assert lines == ["svg"]


# --------------------------------------------------------------------------------------
# Brazil plot and limit summaries
# --------------------------------------------------------------------------------------


def _check_brazil(ax, mu, cls_obs, alpha=0.05):
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(bands) == 2
    assert [b.get_label() for b in bands] == ["Expected ±2σ", "Expected ±1σ"]
    observed = _lines(ax, linestyle="-", marker="o")
    assert len(observed) == 1
    np.testing.assert_allclose(observed[0].get_xdata(), mu)
    np.testing.assert_allclose(observed[0].get_ydata(), cls_obs)
    assert observed[0].get_color() == "black"
    assert len(_lines(ax, linestyle="--")) == 1  # expected median
    hlines = [ln for ln in ax.get_lines() if list(ln.get_ydata()) == [alpha, alpha]]
    assert len(hlines) == 1
    assert any("95% CL" in t.get_text() for t in ax.texts)
    assert ax.get_ylabel() == "CLs"
    assert "μ" in ax.get_xlabel()
    assert ax.get_legend() is not None


def test_brazil_on_a_cls_curve_and_its_json(curve):
    ax = viz.plot_brazil(curve)
    _check_brazil(ax, curve.mu_values, curve.cls_obs)
    labels = ax.get_legend_handles_labels()[1]
    assert f"μ < {curve.obs_limit:.3g}" in " ".join(labels)
    assert f"μ < {curve.exp_limits[2]:.3g}" in " ".join(labels)
    ax2 = viz.plot_brazil(_json(curve), logy=True)
    _check_brazil(ax2, curve.mu_values, curve.cls_obs)
    assert ax2.get_yscale() == "log"


def test_brazil_bands_follow_nsigma_order(curve):
    ax = viz.plot_brazil(curve)
    outer, inner = [c for c in ax.collections if isinstance(c, PolyCollection)]
    # cls_exp rows are (2, 1, 0, -1, -2) sigma: ascending CLs; 2-sigma band spans rows 0..4.
    y_outer = outer.get_paths()[0].vertices[:, 1]
    y_inner = inner.get_paths()[0].vertices[:, 1]
    assert y_outer.min() == pytest.approx(np.min(curve.cls_exp[0]))
    assert y_outer.max() == pytest.approx(np.max(curve.cls_exp[4]))
    assert y_inner.max() == pytest.approx(np.max(curve.cls_exp[3]))


def test_brazil_on_an_upper_limit_and_hypotest_results(model, limit):
    ax = viz.plot_brazil(_json(limit))
    pts = limit.points
    _check_brazil(ax, [p["mu"] for p in pts], [p["cls_obs"] for p in pts])
    vlines = [ln.get_xdata()[0] for ln in ax.get_lines() if ln.get_linestyle() == ":"]
    assert vlines == pytest.approx([limit.obs_limit])
    hts = [nextstat.hypotest(m, model, return_result=True) for m in (0.5, 1.5, 2.5)]
    ax = viz.plot_brazil([h.to_dict() for h in hts])
    _check_brazil(ax, [0.5, 1.5, 2.5], [h.cls for h in hts])


def test_brazil_rejects_other_results(fit_result):
    with pytest.raises(InvalidArgumentType, match="ClsCurve"):
        viz.plot_brazil(fit_result)
    with pytest.raises(InvalidArgumentType, match="cls_exp"):
        viz.plot_brazil({"mu_values": [0, 1], "cls_obs": [1, 0.1], "cls_exp": [[1, 0.1]]})


def test_limits_versus_mass_and_per_workspace(limit, curve):
    lims = {300 + 100 * k: {"obs_limit": 1.0 + 0.3 * k, "exp_limits": [0.5, 0.7, 1.0, 1.4, 1.9]}
            for k in range(4)}
    ax = viz.plot_limits(lims, xlabel="m [GeV]")
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2
    (obs,) = _lines(ax, linestyle="-", marker="o")
    np.testing.assert_allclose(obs.get_xdata(), [300, 400, 500, 600])
    np.testing.assert_allclose(obs.get_ydata(), [1.0, 1.3, 1.6, 1.9])
    assert ax.get_xlabel() == "m [GeV]"

    ax = viz.plot_limits([limit, _json(curve)], labels=["root", "grid"])
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 2 and all(len(b) == 2 for b in bars)
    (obs,) = _lines(ax, marker="o")
    np.testing.assert_allclose(obs.get_xdata(), [limit.obs_limit, curve.obs_limit])
    assert [t.get_text() for t in ax.get_yticklabels()] == ["root", "grid"]
    with pytest.raises(InvalidArgumentType):
        viz.plot_limits([limit], labels=["a", "b"])


# --------------------------------------------------------------------------------------
# profile likelihood
# --------------------------------------------------------------------------------------


def test_profile_scan(model, scan):
    ci = nextstat.profile_ci(model)
    ax = viz.plot_profile(scan, ci=ci, show_q_mu=True)
    (main,) = _lines(ax, label="Profile likelihood")
    np.testing.assert_allclose(main.get_ydata(), scan.twice_delta_nll)
    levels = sorted(ln.get_ydata()[0] for ln in ax.get_lines()
                    if len(set(ln.get_ydata())) == 1 and ln.get_linestyle() == "--")
    assert levels == pytest.approx([1.0, 3.84])
    hat = [ln for ln in ax.get_lines() if ln.get_label().startswith("μ̂")]
    assert hat and hat[0].get_xdata()[0] == pytest.approx(scan.mu_hat)
    assert len(_lines(ax, label="q$_\\mu$ (one-sided)")) == 1
    assert any("68.3% CL" in t for t in ax.get_legend_handles_labels()[1])
    assert {t.get_text() for t in ax.texts} >= {"68% CL", "95% CL"}

    ax = viz.plot_profile(_json(scan))
    assert not _lines(ax, label="q$_\\mu$ (one-sided)")
    assert any(t.startswith("68% CL: [0, ") for t in ax.get_legend_handles_labels()[1])


# --------------------------------------------------------------------------------------
# pulls, ranking, correlations
# --------------------------------------------------------------------------------------


def test_pulls(model, fit_result, ranking_mod):
    pulls = ranking_mod.pulls(fit_result, model)
    ax = viz.plot_pulls(pulls)
    (eb,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    n = len(pulls.entries)
    np.testing.assert_allclose(eb.lines[0].get_xdata(), [e.pull for e in pulls.entries])
    assert [t.get_text() for t in ax.get_yticklabels()] == [e.name for e in pulls.entries]
    assert ax.get_xlim() == (-3.0, 3.0)
    assert len(eb.lines[0].get_xdata()) == n
    # JSON; unconstrained entries (NaN pull -> null) are left out.
    with_free = _json(ranking_mod.pulls(fit_result, model, include_unconstrained=True))
    ax = viz.plot_pulls(with_free)
    assert len(ax.get_yticklabels()) == n


def test_ranking_bars_one_per_parameter(ranking):
    n = len(ranking.entries)
    ax = viz.plot_ranking(ranking, top=None)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert len(bars) == 4 and all(len(b) == n for b in bars)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == [e.name for e in ranking.entries][::-1][::-1]  # largest impact on top
    widths = [p.get_width() for p in bars[2]]  # post-fit up
    np.testing.assert_allclose(widths, [e.impact_postfit_up for e in ranking.entries])
    assert ax.xaxis.get_label_position() == "top" and "Δμ" in ax.get_xlabel()
    assert ax.pulls_axes.xaxis.get_label_position() == "bottom"
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)

    ax = viz.plot_ranking(_json(ranking), top=5)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert all(len(b) == 5 for b in bars)
    assert [t.get_text() for t in ax.get_yticklabels()] == [e.name for e in ranking.entries[:5]]
    ax = viz.plot_ranking(ranking.to_columns(), top=3)
    assert [t.get_text() for t in ax.get_yticklabels()] == [e.name for e in ranking.entries[:3]]
    # On the caller's axes: the legend goes on the axes, above the impact axis.
    _, own = plt.subplots()
    assert viz.plot_ranking(ranking, ax=own, top=3) is own
    assert own.get_legend() is not None and len(own.get_legend().get_texts()) == 5


def test_corr_heatmap(fit_result, ranking_mod):
    corr = ranking_mod.correlation_matrix(fit_result)
    ax = viz.plot_corr(corr)
    (im,) = [a for a in ax.get_images() if isinstance(a, AxesImage)]
    assert im.get_clim() == (-1.0, 1.0)
    n = len(corr.parameter_names)
    assert im.get_array().shape == (n, n)
    assert len(ax.texts) == n * n  # values in the cells (small matrix)
    assert "-0.00" not in {t.get_text() for t in ax.texts}
    assert [t.get_text() for t in ax.get_yticklabels()] == corr.parameter_names

    pruned = viz.plot_corr(corr.to_dict(), threshold=0.1, annotate=False)
    kept = len(pruned.get_yticklabels())
    assert 1 < kept < n
    # A FitResult (fixed parameters dropped) and a bare matrix work too.
    ax = viz.plot_corr(_json(fit_result), annotate=False)
    assert not ax.texts and len(ax.get_yticklabels()) == n
    assert len(viz.plot_corr(np.eye(3)).texts) == 9
    with pytest.raises(InvalidParameters, match="threshold"):
        viz.plot_corr(np.eye(3), threshold=0.5)


# --------------------------------------------------------------------------------------
# yields
# --------------------------------------------------------------------------------------


def test_yields_stack_data_and_ratio(postfit, prefit):
    fig = viz.plot_yields(postfit, "SR")
    main, ratio = fig.axes
    sr = postfit.channel("SR")
    # One filled step patch per sample, plus the total outline and the hatched band.
    assert len(main.patches) == len(sr.samples) + 2
    band = main.patches[-1]
    assert band.get_hatch() == "////"
    (data,) = [c for c in main.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(data.lines[0].get_ydata(), sr.data)
    (rdata,) = [c for c in ratio.containers if isinstance(c, ErrorbarContainer)]
    np.testing.assert_allclose(rdata.lines[0].get_ydata(), np.array(sr.data) / sr.total)
    labels = main.get_legend_handles_labels()[1]
    assert {"Data", "Uncertainty", *(s.name for s in sr.samples)} <= set(labels)
    legend = [t.get_text() for t in main.get_legend().get_texts()]
    assert legend[:2] == ["Data", "signal"] and legend[-1] == "Uncertainty"  # signal on top
    assert "SR Post-fit" in {t.get_text() for t in main.texts}
    assert ratio.get_ylabel() == "Data / Model" and main.get_ylabel() == "Events / bin"
    lo, hi = ratio.get_ylim()
    assert lo <= 0.5 and hi >= 1.5

    fig = viz.plot_yields(_json(prefit), "CR", bin_edges=[0, 10, 20, 40], logy=True)
    assert fig.axes[0].get_yscale() == "log"
    assert "CR Pre-fit" in {t.get_text() for t in fig.axes[0].texts}
    pair = {"prefit": prefit, "postfit": _json(postfit)}
    fig = viz.plot_yields(pair, "SR", stage="prefit")
    assert "SR Pre-fit" in {t.get_text() for t in fig.axes[0].texts}
    with pytest.raises(InvalidParameters, match="no channel"):
        viz.plot_yields(postfit, "VR")
    with pytest.raises(InvalidParameters, match="postfit"):
        viz.plot_yields(postfit, stage="prefit")


# --------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix, magic", [(".png", b"\x89PNG"), (".pdf", b"%PDF"),
                                           (".svg", b"<?xml")])
def test_save_formats(tmp_path, suffix, magic):
    ax = viz.plot_profile({"mu_values": [0, 1, 2], "twice_delta_nll": [1, 0, 1]})
    path = viz.save(ax, tmp_path / f"scan{suffix}")
    assert path.read_bytes().startswith(magic)


def test_save_figure_and_bad_suffix(tmp_path, postfit):
    fig = viz.plot_yields(postfit)
    viz.save(fig, str(tmp_path / "yields.PNG"), dpi=72)
    assert (tmp_path / "yields.PNG").stat().st_size > 1000
    with pytest.raises(InvalidParameters, match="format"):
        viz.save(fig, tmp_path / "yields.gif")
