"""``nextstat export hs3`` / ``nextstat import hs3`` and HS3 through ``--input``."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

import nextstat
from nextstat.cli import cli
from nextstat.examples import example_path

#: The NLL of the same model built through two routes: only the order of the sums differs.
NLL_ROUNDTRIP_RTOL = 1e-12


def _run(args):
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def test_export_then_import_hs3_gives_the_same_likelihood(tmp_path):
    hs3 = tmp_path / "model_hs3.json"
    _run(["export", "hs3", "-i", str(example_path()), "--fit", "-o", str(hs3)])
    doc = json.loads(hs3.read_text())
    assert "distributions" in doc
    assert any(p["name"] == "bestfit" for p in doc["parameter_points"])
    ws_path = tmp_path / "ws.json"
    _run(["import", "hs3", "-i", str(hs3), "-o", str(ws_path)])
    original = nextstat.from_pyhf(example_path())
    via_hs3 = nextstat.load(hs3)
    via_ws = nextstat.from_pyhf(ws_path)
    rng = np.random.default_rng(3)
    for _ in range(4):
        x = original.suggested_init() + rng.normal(0.0, 0.3, original.n_params())
        ref = original.nll(x)
        np.testing.assert_allclose(via_hs3.nll(x), ref, rtol=NLL_ROUNDTRIP_RTOL)
        np.testing.assert_allclose(via_ws.nll(x), ref, rtol=NLL_ROUNDTRIP_RTOL)


def test_fit_reads_hs3_input_directly(tmp_path):
    hs3 = tmp_path / "model_hs3.json"
    _run(["export", "hs3", "-i", str(example_path()), "-o", str(hs3)])
    from_hs3 = json.loads(_run(["fit", "-i", str(hs3)]).output)
    from_json = json.loads(_run(["fit", "-i", str(example_path())]).output)
    assert from_hs3["parameter_names"] == from_json["parameter_names"]
    np.testing.assert_allclose(from_hs3["twice_nll"], from_json["twice_nll"], rtol=1e-10)


def test_import_hs3_of_a_pyhf_workspace_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(cli, ["import", "hs3", "-i", str(example_path())])
    assert result.exit_code == 2
    assert "nextstat: error:" in result.output


def test_input_file_names_starting_with_a_brace_are_paths(tmp_path, monkeypatch):
    from nextstat.io.hs3 import to_hs3

    monkeypatch.chdir(tmp_path)
    (tmp_path / "{model}.json").write_text(json.dumps(to_hs3(nextstat.from_pyhf(example_path()))))
    _run(["import", "hs3", "-i", "{model}.json", "-o", "ws_out.json"])
    assert json.loads((tmp_path / "ws_out.json").read_text())["channels"]
    (tmp_path / "{ws}.json").write_text(example_path().read_text())
    xml = _run(["export", "histfactory", "-i", "{ws}.json", "--out-dir", "xml"])
    assert xml.output.strip().endswith("combination.xml")
