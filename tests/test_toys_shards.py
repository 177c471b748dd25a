"""Sharded toy runs, merge_toys, toy files (.npz / .parquet) and the toy plot."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from click.testing import CliRunner

import nextstat
from nextstat.cli import cli
from nextstat.errors import InvalidFormat, InvalidParameters
from nextstat.examples import example_path
from nextstat.infer.toys import load_toys, merge_toys, save_toys
from nextstat.viz.toys import asymptotic_densities

N_SB, N_B = 90, 70
SEED = 4
#: Numerical integration of the asymptotic densities on a fine grid (trapezoid rule with a
#: sqrt-spaced grid near the 1/sqrt(q) singularity): agreement to 1e-4 is the grid's error.
INTEGRATION_TOL = 1e-4


@pytest.fixture(scope="module")
def model():
    return nextstat.from_pyhf(example_path())


@pytest.fixture(scope="module")
def full(model):
    return nextstat.hypotest_toys(1.0, model, n_toys=(N_SB, N_B), seed=SEED, return_result=True)


@pytest.fixture(scope="module")
def shards(model):
    return [nextstat.hypotest_toys(1.0, model, n_toys=(N_SB, N_B), seed=SEED,
                                   return_result=True, shard=(i, 3)) for i in range(3)]


def _same(a, b):
    assert np.array_equal(a.q_sb, b.q_sb, equal_nan=True)
    assert np.array_equal(a.q_b, b.q_b, equal_nan=True)
    assert np.array_equal(a.nonconv_sb, b.nonconv_sb)
    assert np.array_equal(a.nonconv_b, b.nonconv_b)
    for key in ("cls", "clsb", "clb", "cls_err", "q_obs", "n_toys", "n_failed",
                "n_nonconverged", "n_fits", "n_iterations"):
        assert getattr(a, key) == getattr(b, key), key
    np.testing.assert_array_equal(a.cls_exp, b.cls_exp)


def test_shards_cover_the_toys_in_contiguous_ranges(shards):
    assert [s.toy_range["sb"] for s in shards] == [[0, 30], [30, 60], [60, 90]]
    assert [s.toy_range["b"] for s in shards] == [[0, 23], [23, 46], [46, 70]]
    assert [s.q_b.size for s in shards] == [23, 23, 24]


def test_merged_shards_equal_one_run(full, shards):
    merged = merge_toys(reversed(shards))
    _same(merged, full)
    assert merged.shard is None
    assert merged.toy_range == {"sb": [0, N_SB], "b": [0, N_B]}


@pytest.mark.parametrize("suffix", [".npz", ".parquet"])
def test_toy_files_round_trip(tmp_path, shards, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    path = tmp_path / f"toys{suffix}"
    save_toys(shards[1], path)
    back = load_toys(path)
    _same(back, shards[1])
    assert back.toy_range == shards[1].toy_range
    assert back.shard == [1, 3]
    assert back.mu_test == 1.0 and back.seed == SEED


def test_merge_from_files_equals_one_run(tmp_path, full, shards):
    paths = []
    for i, s in enumerate(shards):
        paths.append(tmp_path / f"part{i}{'.npz' if i % 2 else '.parquet'}")
        s.save(paths[-1])
    _same(merge_toys(load_toys(p) for p in paths), full)


def test_merge_rejects_gaps_overlaps_and_other_runs(model, shards):
    with pytest.raises(InvalidParameters, match="toys 60..89 missing"):
        merge_toys(shards[:2])
    with pytest.raises(InvalidParameters, match="twice"):
        merge_toys([shards[0], shards[0], shards[1], shards[2]])
    other = nextstat.hypotest_toys(1.0, model, n_toys=(N_SB, N_B), seed=SEED + 1,
                                   return_result=True, shard=(2, 3))
    with pytest.raises(InvalidParameters, match="seed"):
        merge_toys([shards[0], shards[1], other])
    with pytest.raises(InvalidParameters, match="shard"):
        nextstat.hypotest_toys(1.0, model, n_toys=10, shard=(3, 3))


def test_load_toys_errors_name_the_file(tmp_path):
    bad = tmp_path / "nothing.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InvalidFormat, match="nothing.npz"):
        load_toys(bad)
    with pytest.raises(InvalidFormat, match="missing.npz"):
        load_toys(tmp_path / "missing.npz")
    with pytest.raises(InvalidFormat, match="npz or .parquet"):
        load_toys(tmp_path / "toys.csv")


def test_cli_shards_and_merge_toys(tmp_path, full):
    runner = CliRunner()
    ws = str(example_path())
    for i in range(3):
        res = runner.invoke(cli, ["hypotest-toys", "-i", ws, "--mu", "1", "--n-toys", "80",
                                  "--seed", "9", "--shard", f"{i}/3",
                                  "--save-toys", str(tmp_path / f"p{i}.npz")])
        assert res.exit_code == 0, res.output
    res = runner.invoke(cli, ["merge-toys", *(str(tmp_path / f"p{i}.npz") for i in range(3))])
    assert res.exit_code == 0, res.output
    merged = json.loads(res.output)
    single = json.loads(runner.invoke(cli, ["hypotest-toys", "-i", ws, "--mu", "1",
                                            "--n-toys", "80", "--seed", "9",
                                            "--expected-set"]).output)
    for key in ("cls", "clsb", "clb", "cls_exp", "n_toys", "q_obs"):
        assert merged[key] == single[key], key
    bad = runner.invoke(cli, ["hypotest-toys", "-i", ws, "--mu", "1", "--shard", "3/3"])
    assert bad.exit_code == 2 and "--shard 3/3" in bad.output


def test_asymptotic_densities_integrate_to_the_asymptotic_tail_probabilities(model):
    from nextstat.infer.asymptotics import AsymptoticCalculator
    from nextstat.infer.profile import ProfileLikelihood

    res = AsymptoticCalculator(ProfileLikelihood(model)).hypotest(1.0)
    # sqrt-spaced grid: the densities go like 1/sqrt(q) at 0 (q_mu branch)
    u = np.linspace(math.sqrt(res.q_obs), math.sqrt(200.0), 400_001)
    q = u * u
    pdf_sb, pdf_b, p0_sb, p0_b = asymptotic_densities(q, res.q_asimov, "qtilde")
    tail_sb = np.trapezoid(pdf_sb * 2 * u, u)
    tail_b = np.trapezoid(pdf_b * 2 * u, u)
    assert abs(tail_sb - res.clsb) < INTEGRATION_TOL
    assert abs(tail_b - res.clb) < INTEGRATION_TOL
    u0 = np.linspace(1e-9, math.sqrt(200.0), 400_001)
    all_sb, all_b, _, _ = asymptotic_densities(u0 * u0, res.q_asimov, "qtilde")
    assert abs(np.trapezoid(all_sb * 2 * u0, u0) + p0_sb - 1.0) < INTEGRATION_TOL
    assert abs(np.trapezoid(all_b * 2 * u0, u0) + p0_b - 1.0) < INTEGRATION_TOL


def test_plot_toys_draws_both_distributions_and_the_observed_value(full):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nextstat.viz import plot_toys

    ax = plot_toys(full)
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(lb.startswith("s+b toys") for lb in labels)
    assert any(lb.startswith("b-only toys") for lb in labels)
    assert sum(lb.startswith("asymptotic") for lb in labels) == 2
    obs = [ln for ln in ax.get_lines() if ln.get_label().startswith("observed")]
    assert obs and obs[0].get_xdata()[0] == pytest.approx(full.q_obs)
    # the dict form (JSON with samples) draws the same
    ax2 = plot_toys(full.to_dict(include_samples=True))
    assert len(ax2.patches) == len(ax.patches)
    plt.close("all")
