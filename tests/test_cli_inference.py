"""CLI inference commands: JSON equals the Python API; plots are written; errors are one line."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import nextstat
from nextstat.cli import cli
from nextstat.examples import example_path

WS = str(example_path())


@pytest.fixture(scope="module")
def model():
    return nextstat.from_pyhf(WS)


def _run(args):
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    return res


def test_hypotest_matches_api(model):
    res = _run(["hypotest", "-i", WS, "--mu", "1.0"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    api = nextstat.hypotest(1.0, model, return_result=True)
    assert out["cls"] == pytest.approx(api.cls, rel=1e-12)
    assert out["cls_exp"] == pytest.approx(api.cls_exp, rel=1e-12)
    assert out["nsigma_order"] == [2, 1, 0, -1, -2]


def test_upper_limit_writes_json_and_brazil_plot(model, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "brazil.png"
    out_json = tmp_path / "limit.json"
    res = _run(["upper-limit", "-i", WS, "-o", str(out_json), "--plot", str(png)])
    assert res.exit_code == 0, res.output
    out = json.loads(out_json.read_text())
    api = nextstat.upper_limit(model)
    assert out["obs_limit"] == pytest.approx(api.obs_limit, rel=1e-9)
    assert out["exp_limits"] == pytest.approx(api.exp_limits, rel=1e-9)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_upper_limit_scan_method(model):
    res = _run(["upper-limit", "-i", WS, "--method", "scan", "--scan-stop", "4",
                "--scan-points", "17"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    api = nextstat.upper_limit(model, method="scan", scan=[0.25 * i for i in range(17)])
    assert out["obs_limit"] == pytest.approx(api.obs_limit, rel=1e-12)


def test_scan_matches_api(model):
    res = _run(["scan", "-i", WS, "--stop", "3", "--points", "7"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    api = nextstat.profile_scan(model, [0.5 * i for i in range(7)])
    assert out["twice_delta_nll"] == pytest.approx(list(api.twice_delta_nll), abs=1e-9)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["hypotest", "-i", WS, "--mu", "99"], "outside the POI bounds"),
        (["scan", "-i", WS, "--start", "2", "--stop", "1"], "need stop > start"),
    ],
)
def test_inference_input_errors_are_one_line(args, fragment):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2
    assert fragment in res.stderr
    assert "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "command, keys",
    [
        (["significance"], {"q0", "p0", "z_obs", "z_exp"}),
        (["goodness-of-fit"], {"chi2", "ndof", "p_value"}),
        (["pulls"], {"entries"}),
        (["ranking", "--threads", "1"], {"entries"}),
        (["yields", "--prefit"], {"channels"}),
    ],
)
def test_result_commands_emit_json(command, keys):
    res = _run([*command, "-i", WS])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert keys <= set(out)


def test_yields_latex_and_plot_round_trip(tmp_path):
    pytest.importorskip("matplotlib")
    res = _run(["yields", "-i", WS, "--format", "latex"])
    assert res.exit_code == 0, res.output
    assert "\\begin{tabular}" in res.stdout
    scan_json = tmp_path / "scan.json"
    assert _run(["scan", "-i", WS, "--points", "9", "-o", str(scan_json)]).exit_code == 0
    svg = tmp_path / "scan.svg"
    res = _run(["plot", "profile", "-i", str(scan_json), "-o", str(svg)])
    assert res.exit_code == 0, res.output
    assert svg.read_text().lstrip().startswith("<?xml")


def test_plot_rejects_the_wrong_result(tmp_path):
    pytest.importorskip("matplotlib")
    bogus = tmp_path / "x.json"
    bogus.write_text(json.dumps({"hello": 1}))
    res = CliRunner().invoke(cli, ["plot", "brazil", "-i", str(bogus), "-o",
                                   str(tmp_path / "x.png")])
    assert res.exit_code == 2
    assert "does not hold a 'brazil' result" in res.stderr
