"""Package-level behaviour: import cost, build report, eval mode, error hierarchy."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import nextstat
from nextstat import errors
from nextstat.examples import example_path

HEAVY_MODULES = ("matplotlib", "uproot", "cupy", "torch", "scipy", "pyhf", "click",
                 "importlib.metadata", "nextstat.io.hs3", "nextstat.io.histfactory_xml",
                 "nextstat.io.arrow", "nextstat.model.workspace_ops", "nextstat.ntuple.builder")


def test_import_does_not_load_heavy_modules():
    code = (
        "import sys, json, nextstat; "
        f"print(json.dumps([m for m in {HEAVY_MODULES!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == []


def test_every_public_name_resolves():
    """The names imported on first use are there, listed by dir(), and are what their
    modules define."""
    from nextstat.io import hs3
    from nextstat.model import workspace_ops

    for name in nextstat.__all__:
        assert getattr(nextstat, name) is not None, name
        assert name in dir(nextstat)
    assert nextstat.from_hs3 is hs3.from_hs3
    assert nextstat.combine is workspace_ops.combine
    with pytest.raises(AttributeError, match="no attribute 'from_yaml'"):
        nextstat.from_yaml  # noqa: B018


def test_show_versions_reports_the_build(capsys):
    nextstat.show_versions()
    text = capsys.readouterr().out
    assert "nextstat" in text and "openmp" in text
    info = nextstat.sysinfo.versions()
    assert info["openmp"] == nextstat.openmp_enabled()
    assert info["nextstat"] == nextstat.__version__
    if not nextstat.openmp_enabled():
        assert info["openmp_max_threads"] == 1


def test_eval_mode_switch_and_validation():
    model = nextstat.from_pyhf(example_path())
    p = model.suggested_init() + 0.1
    assert nextstat.get_eval_mode() == "fast"
    fast = model.nll(p)
    try:
        nextstat.set_eval_mode("parity")
        assert nextstat.get_eval_mode() == "parity"
        parity = model.nll(p)
    finally:
        nextstat.set_eval_mode("fast")
    assert parity == model.nll(p, mode="parity")
    # Same terms, different summation: agreement to rounding of a sum of O(10) terms.
    assert fast == pytest.approx(parity, rel=1e-13)
    with pytest.raises(errors.InvalidParameters, match="eval mode"):
        nextstat.set_eval_mode("turbo")
    with pytest.raises(errors.InvalidParameters, match="mode"):
        model.nll(p, mode="turbo")


def test_error_hierarchy_subclasses_builtins():
    assert issubclass(errors.InvalidWorkspace, (errors.NextStatError, ValueError))
    assert issubclass(errors.InvalidModel, ValueError)
    assert issubclass(errors.InvalidParameters, ValueError)
    assert issubclass(errors.InvalidArgumentType, TypeError)
    assert issubclass(errors.FitError, RuntimeError)


def test_model_methods_on_bad_params():
    model = nextstat.from_pyhf(example_path())
    n = model.n_params()
    with pytest.raises(errors.InvalidParameters, match=f"the model has {n} parameters"):
        model.nll(np.zeros(n + 1))
    p = model.suggested_init()
    p[2] = np.nan
    with pytest.raises(errors.InvalidParameters, match=r"params\[2\]"):
        model.grad_nll(p)
    with pytest.raises(errors.InvalidParameters, match="sequence of numbers"):
        model.nll(["a"] * n)


def test_per_channel_and_per_sample_yields_add_up():
    model = nextstat.from_pyhf(example_path())
    p = model.suggested_init() + 0.05
    per = model.expected_main_by_channel_sample(p)
    assert [e["channel_name"] for e in per] == model.channel_names()
    total = np.concatenate([e["total"] for e in per])
    np.testing.assert_allclose(total, model.expected_main(p), rtol=1e-14)
    for entry in per:
        stacked = np.sum([s["y"] for s in entry["samples"]], axis=0)
        np.testing.assert_allclose(stacked, entry["total"], rtol=1e-14)
        assert [s["sample_name"] for s in entry["samples"]] == model.sample_names(
            entry["channel_name"])


def test_with_observed_main_replaces_data_only():
    model = nextstat.from_pyhf(example_path())
    asimov = model.expected_main(model.suggested_init())
    other = model.with_observed_main(asimov)
    np.testing.assert_array_equal(other.observed_main(), asimov)
    np.testing.assert_array_equal(other.aux_data(), model.aux_data())
    p = model.suggested_init() + 0.1
    assert other.nll(p) == pytest.approx(model.nll(p, data=asimov), rel=1e-14)
    assert model.nll(p) != other.nll(p)
    with pytest.raises(errors.InvalidParameters):
        model.with_observed_main(asimov[:-1])


def test_thread_setting():
    import os

    try:
        nextstat.set_threads(1)
        assert nextstat.get_threads() == 1
        nextstat.set_threads(0)
        assert nextstat.get_threads() == (os.cpu_count() or 1)
        with pytest.raises(errors.InvalidParameters, match="threads"):
            nextstat.set_threads(-2)
    finally:
        nextstat.set_threads(None)
