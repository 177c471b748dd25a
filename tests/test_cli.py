"""Tests of the ``nextstat`` command-line interface (nextstat/cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

import nextstat
from nextstat.cli import _jsonable, cli
from nextstat.examples import example_path

WS_PATH = example_path()


def _runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click 8.1 and 8.2+)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


@pytest.fixture(scope="module")
def spec() -> dict:
    return json.loads(WS_PATH.read_text())


@pytest.fixture(scope="module")
def api_fit():
    """The reference: the Python API on the same workspace."""
    return nextstat.fit(nextstat.from_pyhf(str(WS_PATH)))


def _invoke(args, **kwargs):
    return _runner().invoke(cli, args, catch_exceptions=False, **kwargs)


def _assert_user_error(result) -> str:
    """Exit status 2, nothing on stdout, exactly one 'nextstat: error:' line on stderr."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("nextstat: error: ")
    assert len(lines[0]) > len("nextstat: error: ")
    assert "Traceback" not in result.stderr
    return lines[0]


# --------------------------------------------------------------------------- version / help


def test_version():
    result = _invoke(["version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"nextstat {nextstat.__version__}"


def test_help_lists_commands():
    result = _invoke(["--help"])
    assert result.exit_code == 0
    for command in ("version", "fit", "inspect"):
        assert command in result.stdout


# --------------------------------------------------------------------------- fit


def test_fit_json_matches_api(api_fit):
    result = _invoke(["fit", "--input", str(WS_PATH)])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    expected = json.loads(json.dumps(_jsonable(api_fit.to_dict())))
    assert set(out) == set(expected)
    assert out["parameter_names"] == list(api_fit.parameter_names)
    assert out["poi_index"] == api_fit.poi_index
    np.testing.assert_allclose(out["bestfit"], np.asarray(api_fit.bestfit), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(out["nll"], api_fit.nll, rtol=1e-12)
    assert out["converged"] is bool(api_fit.converged)


def test_fit_output_is_pretty_json():
    result = _invoke(["fit", "-i", str(WS_PATH)])
    assert result.exit_code == 0
    assert result.stdout.startswith("{\n  ")
    assert result.stdout.endswith("}\n")


def test_fit_reads_stdin(api_fit):
    result = _invoke(["fit", "-i", "-"], input=WS_PATH.read_text())
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    np.testing.assert_allclose(out["bestfit"], np.asarray(api_fit.bestfit), rtol=1e-10, atol=1e-12)


def test_fit_output_file(tmp_path, api_fit):
    target = tmp_path / "fit.json"
    result = _invoke(["fit", "-i", str(WS_PATH), "--output", str(target)])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    out = json.loads(target.read_text())
    np.testing.assert_allclose(out["bestfit"], np.asarray(api_fit.bestfit), rtol=1e-10, atol=1e-12)


def test_fit_measurement_and_interpolation(spec):
    # FixedLumi fixes lumi at its init, so the fitted lumi is exactly that value.
    result = _invoke(
        ["fit", "-i", str(WS_PATH), "--measurement", "FixedLumi", "--interpolation", "root"]
    )
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    model = nextstat.from_pyhf(spec, measurement="FixedLumi", interpolation="root")
    i = out["parameter_names"].index("lumi")
    assert out["bestfit"][i] == pytest.approx(model.suggested_init()[i], abs=1e-12)
    ref = nextstat.fit(model)
    np.testing.assert_allclose(out["bestfit"], np.asarray(ref.bestfit), rtol=1e-10, atol=1e-12)


def test_fit_parity_mode():
    before = nextstat.get_eval_mode()
    result = _invoke(["fit", "-i", str(WS_PATH), "--parity"])
    assert result.exit_code == 0, result.stderr
    assert nextstat.get_eval_mode() == before  # the process-wide mode is left alone
    ref = nextstat.fit(nextstat.from_pyhf(str(WS_PATH)), mode="parity")
    out = json.loads(result.stdout)
    np.testing.assert_allclose(out["bestfit"], np.asarray(ref.bestfit), rtol=1e-12, atol=1e-14)
    assert out["twice_nll"] == pytest.approx(ref.twice_nll, rel=1e-14)


def test_jsonable_writes_non_finite_as_null():
    assert _jsonable({"a": float("nan"), "b": [np.float64(np.inf), 1.5], "c": np.arange(2)}) == {
        "a": None,
        "b": [None, 1.5],
        "c": [0, 1],
    }


# --------------------------------------------------------------------------- inspect


def test_inspect_lists_every_channel(spec):
    result = _invoke(["inspect", "-i", str(WS_PATH)])
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    for channel in spec["channels"]:
        assert channel["name"] in text
        assert f"{len(channel['samples'][0]['data'])} bins" in text
        for sample in channel["samples"]:
            assert sample["name"] in text
    for measurement in spec["measurements"]:
        assert measurement["name"] in text
    assert "mu (POI)" in text


def test_inspect_json(spec):
    result = _invoke(["inspect", "-i", str(WS_PATH), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    model = nextstat.from_pyhf(spec)
    assert {c["name"] for c in out["channels"]} == {c["name"] for c in spec["channels"]}
    for ch in spec["channels"]:
        (entry,) = [c for c in out["channels"] if c["name"] == ch["name"]]
        assert entry["n_bins"] == len(ch["samples"][0]["data"])
        assert sorted(entry["samples"]) == sorted(s["name"] for s in ch["samples"])
    assert out["n_bins"] == 7
    assert out["poi"] == "mu"
    assert [p["name"] for p in out["parameters"]] == list(model.parameter_names())
    assert out["n_params"] == model.n_params()
    mods = {m["name"] for ch in spec["channels"] for s in ch["samples"] for m in s["modifiers"]}
    assert {m for names in out["modifiers"].values() for m in names} == mods
    assert [m["name"] for m in out["measurements"]] == ["NominalMeasurement", "FixedLumi"]
    assert [m["in_use"] for m in out["measurements"]] == [True, False]


def test_inspect_measurement_marks_fixed():
    result = _invoke(["inspect", "-i", str(WS_PATH), "--json", "--measurement", "FixedLumi"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["measurement"] == "FixedLumi"
    (lumi,) = [p for p in out["parameters"] if p["name"] == "lumi"]
    assert lumi["fixed"] is True
    assert [m["in_use"] for m in out["measurements"]] == [False, True]


# --------------------------------------------------------------------------- errors


def _schema_violation(spec: dict) -> str:
    bad = json.loads(json.dumps(spec))
    bad["channels"][0]["samples"][0]["data"] = "not a list"
    return json.dumps(bad)


def _wrong_bin_count(spec: dict) -> str:
    bad = json.loads(json.dumps(spec))
    bad["channels"][0]["samples"][1]["data"].append(1.0)
    return json.dumps(bad)


@pytest.mark.parametrize("command", ["fit", "inspect"])
@pytest.mark.parametrize(
    "content",
    [
        pytest.param('{"channels": [', id="malformed-json"),
        pytest.param("", id="empty"),
        pytest.param("[1, 2, 3]", id="not-an-object"),
        pytest.param(_schema_violation, id="schema-violation"),
        pytest.param(_wrong_bin_count, id="wrong-bin-count"),
    ],
)
def test_bad_input_file(tmp_path, spec, command, content):
    text = content(spec) if callable(content) else content
    path = tmp_path / "bad.json"
    path.write_text(text)
    _assert_user_error(_invoke([command, "-i", str(path)]))


def test_bad_input_stdin():
    line = _assert_user_error(_invoke(["fit", "-i", "-"], input="{not json"))
    assert "malformed JSON on stdin" in line


def test_missing_file(tmp_path):
    missing = tmp_path / "does-not-exist.json"
    line = _assert_user_error(_invoke(["fit", "-i", str(missing)]))
    assert "does-not-exist.json" in line


def test_directory_as_input(tmp_path):
    _assert_user_error(_invoke(["inspect", "-i", str(tmp_path)]))


def test_unknown_measurement():
    line = _assert_user_error(_invoke(["fit", "-i", str(WS_PATH), "--measurement", "NoSuchOne"]))
    assert "NoSuchOne" in line


def test_unwritable_output(tmp_path):
    target = tmp_path / "no-such-dir" / "fit.json"
    _assert_user_error(_invoke(["fit", "-i", str(WS_PATH), "-o", str(target)]))


def test_usage_error_exit_status():
    result = _invoke(["fit", "--interpolation", "nonsense", "-i", str(WS_PATH)])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- real processes


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nextstat.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_subprocess_fit(api_fit):
    proc = _run("fit", "--input", str(WS_PATH))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = json.loads(proc.stdout)
    np.testing.assert_allclose(out["bestfit"], np.asarray(api_fit.bestfit), rtol=1e-10, atol=1e-12)


def test_subprocess_bad_input():
    proc = _run("fit", "--input", "-", stdin='{"channels": [}')
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nextstat: error: "), proc.stderr


def test_cli_import_is_lazy():
    """Importing the CLI adds nothing heavy on top of ``import nextstat``."""
    code = (
        "import sys, nextstat; before = set(sys.modules); import nextstat.cli; "
        "new = set(sys.modules) - before; "
        "heavy = {m for m in new if m.split('.')[0] in "
        "{'numpy', 'scipy', 'pyhf', 'matplotlib', 'cupy', 'uproot', 'pyarrow', 'yaml'} "
        "or (m.startswith('nextstat.') and m not in {'nextstat.cli', 'nextstat.errors'} "
        "and not m.startswith('nextstat._cli'))}; "
        "print(sorted(heavy))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert proc.stdout.strip() == "[]"
