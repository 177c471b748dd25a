"""CLI workspace tools (nextstat/_cli/workspace.py) against the Python API and pyhf."""

from __future__ import annotations

import copy
import gzip
import json

import pyhf
import pytest
from click.testing import CliRunner
from zoo import ZOO

from nextstat.cli import cli
from nextstat.io.arrow import parquet_to_workspace as parquet_to_ws
from nextstat.model import simplemodels
from nextstat.model.workspace_ops import apply_patch, combine, prune, rename, sorted_workspace


def _runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click 8.1 and 8.2+)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click >= 8.2 always separates them
        return CliRunner()


def _invoke(args, **kwargs):
    return _runner().invoke(cli, [str(a) for a in args], catch_exceptions=False, **kwargs)


def _ok(args, **kwargs):
    result = _invoke(args, **kwargs)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def _user_error(args, **kwargs) -> str:
    """Exit status 2, nothing on stdout, one 'nextstat: error:' line on stderr."""
    result = _invoke(args, **kwargs)
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nextstat: error: "), result.stderr
    return lines[0]


@pytest.fixture
def files(tmp_path):
    """The zoo workspaces used here, written to files."""
    out = {}
    for name in ("multichannel", "normsys_only", "coupled_systematics"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(ZOO[name]))
        out[name] = path
    return out


def test_combine_outer_and_output_file(files, tmp_path):
    moved = rename(ZOO["coupled_systematics"], channels={"SR": "SR2", "CR": "CR2"})
    (tmp_path / "moved.json").write_text(json.dumps(moved))
    got = _ok(["combine", files["coupled_systematics"], tmp_path / "moved.json", "-j", "outer"])
    assert got == combine(ZOO["coupled_systematics"], moved, join="outer")
    out = tmp_path / "c.json"
    result = _invoke(["combine", files["coupled_systematics"], tmp_path / "moved.json",
                      "--join", "outer", "-o", out])
    assert result.exit_code == 0 and result.stdout == ""
    assert json.loads(out.read_text()) == got


def test_combine_clash_is_a_user_error(files):
    line = _user_error(["combine", files["normsys_only"], files["normsys_only"]])
    assert "channels of the same name in common: 'SR'" in line
    line = _user_error(["combine", "-", "-"])
    assert "only one of the two workspaces can come from stdin" in line


def test_prune_rename_sort_match_pyhf(files):
    ws = ZOO["multichannel"]
    got = _ok(["prune", "-i", files["multichannel"], "-c", "VR", "-m", "bkg_xsec"])
    assert got == json.loads(json.dumps(pyhf.Workspace(copy.deepcopy(ws)).prune(
        channels=["VR"], modifiers=["bkg_xsec"])))
    got = _ok(["rename", "-i", files["multichannel"], "-c", "SR", "signal", "-m", "mu", "r",
               "--measurement", "meas", "m2"])
    assert got == json.loads(json.dumps(pyhf.Workspace(copy.deepcopy(ws)).rename(
        channels={"SR": "signal"}, modifiers={"mu": "r"}, measurements={"meas": "m2"})))
    got = _ok(["sort", "-i", files["multichannel"]])
    assert got == json.loads(json.dumps(pyhf.Workspace.sorted(pyhf.Workspace(copy.deepcopy(ws)))))


def test_workspace_from_stdin_and_gzip(files):
    text = files["multichannel"].read_text()
    assert _ok(["prune", "-t", "staterror"], input=text) == prune(
        ZOO["multichannel"], modifier_types=["staterror"])
    got = _ok(["digest"], input=gzip.compress(text.encode()))
    assert got == {"sha256": pyhf.utils.digest(ZOO["multichannel"])}


def test_digest_formats(files):
    ws = ZOO["normsys_only"]
    got = _ok(["digest", "-i", files["normsys_only"], "-a", "sha256", "-a", "md5"])
    assert got == {alg: pyhf.utils.digest(ws, algorithm=alg) for alg in ("sha256", "md5")}
    result = _invoke(["digest", "-i", files["normsys_only"], "--plaintext"])
    assert result.stdout == f"sha256:{pyhf.utils.digest(ws)}\n"
    assert "unknown hash algorithm 'nope'" in _user_error(
        ["digest", "-i", files["normsys_only"], "-a", "nope"])


def test_bad_inputs_are_one_line_errors(files, tmp_path):
    assert "cannot prune channel 'XX'" in _user_error(
        ["prune", "-i", files["multichannel"], "-c", "XX"])
    assert "workspace file not found" in _user_error(["sort", "-i", tmp_path / "nope.json"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ZOO["normsys_only"], "observations": []}))
    assert "observations: observations must have at least 1 entry" in _user_error(
        ["sort", "-i", bad])


def _patchset_file(tmp_path, ws):
    ps = {
        "version": "1.0.0",
        "metadata": {"references": {"hepdata": "ins1234567"},
                     "digests": {"sha256": pyhf.utils.digest(ws)},
                     "labels": ["mass"], "description": "demo"},
        "patches": [
            {"metadata": {"name": f"m{m}", "values": [m]},
             "patch": [{"op": "replace", "path": "/channels/0/samples/0/data/0",
                        "value": m / 100.0}]}
            for m in (100, 200)
        ],
    }
    path = tmp_path / "patchset.json"
    path.write_text(json.dumps(ps))
    return path, ps


def test_patchset_list_apply_verify(files, tmp_path):
    ws = ZOO["multichannel"]
    path, ps = _patchset_file(tmp_path, ws)
    listed = _ok(["patchset", "list", path])
    assert listed["patches"] == [{"name": "m100", "values": [100]},
                                 {"name": "m200", "values": [200]}]
    assert listed["labels"] == ["mass"]
    got = _ok(["patchset", "apply", "-i", files["multichannel"], path, "--name", "m200"])
    assert got == apply_patch(ws, ps, "m200")
    theirs = pyhf.PatchSet(copy.deepcopy(ps)).apply(pyhf.Workspace(copy.deepcopy(ws)), "m200")
    assert got == json.loads(json.dumps(theirs))
    assert got["channels"][0]["samples"][0]["data"][0] == 2.0
    assert _ok(["patchset", "verify", "-i", files["multichannel"], path]) == {"verified": True}
    line = _user_error(["patchset", "apply", "-i", files["normsys_only"], path, "--name", "m200"])
    assert "does not match the patchset" in line
    line = _user_error(["patchset", "apply", "-i", files["multichannel"], path, "--name", "m3"])
    assert "no patch 'm3'" in line


def test_simplemodels(tmp_path):
    got = _ok(["simplemodel", "uncorrelated", "--signal", "5,10", "--bkg", "[50, 60]",
               "--bkg-uncertainty", "5,12"])
    assert got == simplemodels.uncorrelated_background([5, 10], [50, 60], [5, 12])
    got = _ok(["simplemodel", "correlated", "--signal", "5", "--bkg", "50", "--bkg-up", "55",
               "--bkg-down", "45", "--observations", "52"])
    assert got == simplemodels.correlated_background([5], [50], [55], [45], [52])
    result = _invoke(["simplemodel", "uncorrelated", "--signal", "5,x", "--bkg", "50",
                      "--bkg-uncertainty", "5"])
    assert result.exit_code == 2 and "--signal" in result.stderr
    assert "bkg has 2 bins, signal has 1" in _user_error(
        ["simplemodel", "uncorrelated", "--signal", "5", "--bkg", "50,1",
         "--bkg-uncertainty", "5"])


def test_parquet_round_trip(files, tmp_path):
    out = tmp_path / "pq"
    written = _ok(["workspace-to-parquet", "-i", files["multichannel"], out])
    assert sorted(written) == ["measurements", "modifiers", "observations", "yields"]
    back = _ok(["parquet-to-workspace", out])
    assert sorted_workspace(back) == sorted_workspace(ZOO["multichannel"])
    assert back == parquet_to_ws(out)
    line = _user_error(["parquet-to-workspace", tmp_path / "none.parquet"])
    assert "yields Parquet file not found" in line


def test_parquet_yields_file_with_poi_option(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "h.parquet"
    pq.write_table(pa.table({"channel": ["A", "A"], "sample": ["s", "b"],
                             "yields": [[1.0], [9.0]]}), path)
    got = _ok(["parquet-to-workspace", path, "--poi", "s", "--measurement-name", "m"])
    assert got["measurements"] == [{"name": "m", "config": {"poi": "s", "parameters": []}}]
    assert got["observations"] == [{"name": "A", "data": [10.0]}]
    assert "no sample carries the POI 'mu'" in _user_error(["parquet-to-workspace", path])
