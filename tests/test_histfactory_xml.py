"""HistFactory XML import/export.

References, independent of the code under test:

* the pyhf JSON itself: JSON -> our XML export -> our import must give the NLL of the
  JSON's model (built by ``nextstat.from_pyhf``) at random points;
* pyhf 0.7.6: ``pyhf.readxml.parse`` on our exported XML, and ``pyhf.writexml`` output
  read by us, compared through pyhf's own ``logpdf``;
* hand-written XML + uproot-written histograms with expected workspaces written out by
  hand from ROOT HistFactory's rules (StatErrorConfig, NormalizeByTheory, ShapeSys, ...).
"""

from __future__ import annotations

import json
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pyhf
import pyhf.readxml
import pyhf.writexml
import pytest
import uproot
from click.testing import CliRunner
from uproot.writing.identify import to_TAxis, to_TH1x
from zoo import ZOO, pyhf_model, zoo_case

import nextstat
from nextstat.cli import cli
from nextstat.errors import InvalidFormat
from nextstat.io.histfactory_xml import (
    ROOT_INTERPOLATION,
    HistFactoryXMLWarning,
    from_xml,
    to_xml,
    xml_to_workspace,
)

# Export stores yields as float64 and stat errors as sumw2 (sqrt(d**2) may differ from d
# in the last bit) and ShapeSys as d/nominal (times nominal again on import): a few ulps
# of each input, far below 1e-12 of an NLL of O(10-100).
ROUND_TRIP_RTOL = 1e-12
# pyhf's logpdf (numpy backend) against ours: same formulas, different summation order.
PYHF_RTOL = 1e-10
N_POINTS = 5
# pyhf modifier_settings for the codes ROOT 6.40 builds from XML (from_xml's default,
# ROOT_INTERPOLATION; checked against RooFit in test_histfactory_xml_root.py)
ROOT_CODES = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _random_points(model, rng, n=N_POINTS):
    """Points inside the bounds (clipped to +-3 for alphas), fixed parameters at init."""
    lo, hi = np.array(model.suggested_bounds(), dtype=float).T
    init = np.array(model.suggested_init(), dtype=float)
    fixed = np.array(model.suggested_fixed(), dtype=bool)
    lo, hi = np.maximum(lo, np.minimum(init - 0.5, -3.0)), np.minimum(hi, 3.0)
    for _ in range(n):
        yield np.where(fixed, init, rng.uniform(lo, hi))


def _nll_by_name(model, named: dict[str, float]) -> float:
    return model.nll(np.array([named[n] for n in model.parameter_names()]))


def _pyhf_nll(ws: dict, named: dict[str, float], measurement=None) -> float:
    w = pyhf.Workspace(ws)
    m = w.model(measurement_name=measurement, modifier_settings=ROOT_CODES)
    x = np.array([named[n] for n in _pyhf_par_names(m)])
    return -float(m.logpdf(x, w.data(m))[0])


def _partial_lumi(ws: dict) -> bool:
    """Some samples have ``lumi`` and others not: ROOT 6.40 (and ``compat="root"``) scales
    every sample by Lumi, so only pyhf's reading gives such a workspace back."""
    flags = [any(m["type"] == "lumi" for m in s["modifiers"])
             for ch in ws["channels"] for s in ch["samples"]]
    return any(flags) and not all(flags)


def _export(ws: dict, outdir: Path) -> Path:
    """``to_xml``, expecting its warning on workspaces with lumi on some samples only."""
    if _partial_lumi(ws):
        with pytest.warns(HistFactoryXMLWarning, match="samples without a lumi modifier"):
            return to_xml(ws, outdir)
    return to_xml(ws, outdir)


def _pyhf_par_names(model) -> list[str]:
    """pyhf's parameter names in vector order (``name`` or ``name[i]``, as ours)."""
    return list(model.config.par_names)


def _th1(name, values, sumw2=None, edges=None):
    values = np.asarray(values, dtype=float)
    n = len(values)
    edges = np.arange(n + 1.0) if edges is None else np.asarray(edges, dtype=float)
    w2 = np.array([]) if sumw2 is None else np.concatenate([[0.0], sumw2, [0.0]])
    axis = to_TAxis("xaxis", "", n, float(edges[0]), float(edges[-1]), edges)
    return to_TH1x(name, name, np.concatenate([[0.0], values, [0.0]]), 1.0, 1.0, 1.0,
                   0.0, 0.0, w2, axis)


def _setup(tmp_path: Path, channels: dict[str, str], hists: dict[str, dict],
           measurement: str = '<Measurement Name="meas" Lumi="1.0" LumiRelErr="0.1">'
                              "<POI>mu</POI></Measurement>") -> Path:
    """Write ROOT files ``{file: {path: (values, sumw2) | values}}``, channel XMLs and
    a combination.xml; returns the combination path."""
    for fname, content in hists.items():
        with uproot.recreate(tmp_path / fname) as f:
            for key, spec in content.items():
                values, sumw2, edges = (spec + (None, None))[:3] if isinstance(spec, tuple) \
                    else (spec, None, None)
                f[key] = _th1(key.rsplit("/", 1)[-1], values, sumw2, edges)
    inputs = []
    for cname, body in channels.items():
        (tmp_path / f"{cname}.xml").write_text(textwrap.dedent(body))
        inputs.append(f"<Input>{cname}.xml</Input>")
    comb = tmp_path / "combination.xml"
    comb.write_text(f'<Combination OutputFilePrefix="out">{"".join(inputs)}{measurement}'
                    "</Combination>")
    return comb


BASIC_HISTS = {
    "in.root": {
        "data": [12.0, 9.0, 5.0],
        "sig": ([4.0, 2.0, 1.0], [0.04, 0.01, 0.16]),
        "bkg": ([10.0, 8.0, 4.0], [0.01, 0.64, 0.16]),
    }
}


def _basic_channel(extra_config="", sig_mods="", bkg_mods="", sig_attrs="", bkg_attrs=""):
    return f"""
        <Channel Name="SR" InputFile="in.root">
          <Data HistoName="data"/>
          {extra_config}
          <Sample Name="sig" HistoName="sig" {sig_attrs}>
            <NormFactor Name="mu" Val="1" Low="0" High="10"/>{sig_mods}
          </Sample>
          <Sample Name="bkg" HistoName="bkg" {bkg_attrs}>{bkg_mods}</Sample>
        </Channel>"""


# ---------------------------------------------------------------------------
# round trips over the zoo
# ---------------------------------------------------------------------------

# The pyhf cross-checks run on these cases by default (every modifier type, several
# channels and measurements, zero bins); the rest of the zoo is marked slow.
QUICK_CASES = {"all_modifiers", "multichannel", "zero_bins", "two_measurements",
               "shared_staterror"}


def _sweep(names):
    return [n if n in QUICK_CASES else pytest.param(n, marks=pytest.mark.slow)
            for n in sorted(names)]



@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_json_to_xml_to_model_same_nll(name, tmp_path):
    ws = zoo_case(name)
    comb = _export(ws, tmp_path / "xml")
    compat = "pyhf" if _partial_lumi(ws) else "root"
    for meas in ws["measurements"]:
        ref = nextstat.from_pyhf(ws, measurement=meas["name"], interpolation=ROOT_INTERPOLATION,
                                 unknown_parameters="ignore")
        got = from_xml(comb, measurement=meas["name"], compat=compat)
        assert sorted(got.parameter_names()) == sorted(ref.parameter_names())
        ref_fixed = dict(zip(ref.parameter_names(), ref.suggested_fixed(), strict=True))
        got_fixed = dict(zip(got.parameter_names(), got.suggested_fixed(), strict=True))
        assert got_fixed == ref_fixed
        assert got.poi_name == ref.poi_name
        rng = np.random.default_rng(abs(hash(name)) % 2**32)
        for x in _random_points(ref, rng):
            named = dict(zip(ref.parameter_names(), x, strict=True))
            assert _nll_by_name(got, named) == pytest.approx(ref.nll(x), rel=ROUND_TRIP_RTOL)


@pytest.mark.parametrize("name", _sweep(ZOO))
def test_pyhf_readxml_agrees_with_our_import_of_our_export(name, tmp_path):
    """Second opinion: pyhf's XML reader on the same files, evaluated by pyhf itself."""
    ws = zoo_case(name)
    comb = _export(ws, tmp_path)
    theirs = pyhf.readxml.parse(str(comb), str(tmp_path))
    ours = from_xml(comb, compat="pyhf")
    rng = np.random.default_rng(3)
    for x in _random_points(ours, rng, n=3):
        named = dict(zip(ours.parameter_names(), x, strict=True))
        assert ours.nll(x) == pytest.approx(_pyhf_nll(theirs, named), rel=PYHF_RTOL)


# pyhf.writexml cannot write these: a fixed entry for a parameter no modifier has
# (KeyError in build_measurement).
_WRITEXML_FAILS = {"measurement_overrides"}


@pytest.mark.parametrize("name", _sweep(set(ZOO) - _WRITEXML_FAILS))
def test_we_read_xml_written_by_pyhf_writexml(name, tmp_path):
    ws = zoo_case(name)
    spec_dir, data_dir = tmp_path / "config", tmp_path
    spec_dir.mkdir()
    (spec_dir / "combination.xml").write_bytes(
        pyhf.writexml.writexml(ws, str(spec_dir), str(data_dir), "FitConfig"))
    ours = from_xml(spec_dir / "combination.xml", compat="pyhf")
    rng = np.random.default_rng(5)
    for x in _random_points(ours, rng, n=3):
        named = dict(zip(ours.parameter_names(), x, strict=True))
        assert ours.nll(x) == pytest.approx(_pyhf_nll(ws, named), rel=PYHF_RTOL)


def test_pyhf_model_helper_is_the_same_oracle():
    """The name mapping used above reproduces pyhf's own data/parameter layout."""
    ws = zoo_case("all_modifiers")
    model, data = pyhf_model(ws, interpolation="pyhf")  # code4/code4p, as ROOT_CODES
    x = np.array(model.config.suggested_init()) + 0.05
    named = dict(zip(_pyhf_par_names(model), x, strict=True))
    assert _pyhf_nll(ws, named) == pytest.approx(-float(model.logpdf(x, data)[0]), rel=1e-15)


# ---------------------------------------------------------------------------
# ROOT HistFactory semantics on hand-written XML
# ---------------------------------------------------------------------------

SIG, SIG_W2 = np.array([4.0, 2.0, 1.0]), np.array([0.04, 0.01, 0.16])
BKG, BKG_W2 = np.array([10.0, 8.0, 4.0]), np.array([0.01, 0.64, 0.16])


def _modifier(ws, sample, mtype):
    s = next(s for s in ws["channels"][0]["samples"] if s["name"] == sample)
    return [m for m in s["modifiers"] if m["type"] == mtype]


def test_poisson_staterror_on_one_sample_is_a_shapesys_with_threshold(tmp_path):
    """Default StatErrorConfig (Poisson, 5%): bkg rel errors 0.01, 0.1, 0.1."""
    comb = _setup(tmp_path, {"SR": _basic_channel(bkg_mods='<StatError Activate="True"/>')},
                  BASIC_HISTS)
    ws = xml_to_workspace(comb)
    (mod,) = _modifier(ws, "bkg", "shapesys")
    assert mod["name"] == "staterror_SR"
    np.testing.assert_allclose(mod["data"], [0.0, 0.8, 0.4], rtol=1e-15)
    model = nextstat.from_pyhf(ws)
    fixed = dict(zip(model.parameter_names(), model.suggested_fixed(), strict=True))
    assert [fixed[f"staterror_SR[{i}]"] for i in range(3)] == [True, False, False]


def test_poisson_staterror_shared_falls_back_to_gaussian_with_warning(tmp_path):
    comb = _setup(tmp_path, {"SR": _basic_channel(
        sig_mods='<StatError Activate="True"/>', bkg_mods='<StatError Activate="True"/>')},
        BASIC_HISTS)
    with pytest.warns(HistFactoryXMLWarning, match="Gaussian staterror.*in: SR"):
        ws = xml_to_workspace(comb)
    # combined rel error per bin: sqrt(w2_s + w2_b) / (s + b) = [0.016, 0.081, 0.113]
    rel = np.sqrt(SIG_W2 + BKG_W2) / (SIG + BKG)
    keep = rel >= 0.05
    assert keep.tolist() == [False, True, True]
    np.testing.assert_allclose(_modifier(ws, "sig", "staterror")[0]["data"],
                               np.where(keep, np.sqrt(SIG_W2), 0.0), rtol=1e-15)
    np.testing.assert_allclose(_modifier(ws, "bkg", "staterror")[0]["data"],
                               np.where(keep, np.sqrt(BKG_W2), 0.0), rtol=1e-15)


@pytest.mark.parametrize(("config", "threshold", "mtype"), [
    ('<StatErrorConfig RelErrorThreshold="0.2" ConstraintType="Gaussian"/>', 0.2, "staterror"),
    ('<StatErrorConfig RelErrorThreshold="0" ConstraintType="Gauss"/>', 0.0, "staterror"),
    ('<StatErrorConfig RelErrorThreshold="0.0"/>', 0.0, "shapesys"),
])
def test_stat_error_config(tmp_path, config, threshold, mtype):
    comb = _setup(tmp_path, {"SR": _basic_channel(
        extra_config=config, bkg_mods='<StatError Activate="True"/>')}, BASIC_HISTS)
    (mod,) = _modifier(xml_to_workspace(comb), "bkg", mtype)
    rel = np.sqrt(BKG_W2) / BKG
    np.testing.assert_allclose(mod["data"], np.where(rel < threshold, 0.0, np.sqrt(BKG_W2)))


def test_pyhf_compat_ignores_stat_error_config(tmp_path):
    comb = _setup(tmp_path, {"SR": _basic_channel(
        extra_config='<StatErrorConfig RelErrorThreshold="0.5" ConstraintType="Poisson"/>',
        bkg_mods='<StatError Activate="True"/>')}, BASIC_HISTS)
    ws = xml_to_workspace(comb, compat="pyhf")
    np.testing.assert_allclose(_modifier(ws, "bkg", "staterror")[0]["data"], np.sqrt(BKG_W2))
    assert pyhf.readxml.parse(str(comb), str(tmp_path))["channels"][0]["samples"][1][
        "modifiers"][0]["data"] == pytest.approx(np.sqrt(BKG_W2).tolist(), rel=1e-15)


def test_relative_stat_error_and_shapesys_histograms(tmp_path):
    hists = {"in.root": dict(BASIC_HISTS["in.root"], rel=[0.1, 0.2, 0.5])}
    channel = _basic_channel(
        extra_config='<StatErrorConfig RelErrorThreshold="0" ConstraintType="Gaussian"/>',
        sig_mods='<ShapeSys Name="ss_g" HistoName="rel"/>'
                 '<ShapeSys Name="ss_p" HistoName="rel" ConstraintType="Poisson"/>',
        bkg_mods='<StatError Activate="True" HistoName="rel"/>')
    ws = xml_to_workspace(_setup(tmp_path, {"SR": channel}, hists))
    rel = np.array([0.1, 0.2, 0.5])
    np.testing.assert_allclose(_modifier(ws, "bkg", "staterror")[0]["data"], rel * BKG)
    gauss = [m for m in _modifier(ws, "sig", "staterror") if m["name"] == "ss_g"]
    np.testing.assert_allclose(gauss[0]["data"], rel * SIG)  # ShapeSys default: Gaussian
    np.testing.assert_allclose(_modifier(ws, "sig", "shapesys")[0]["data"], rel * SIG)
    ws_pyhf = xml_to_workspace(tmp_path / "combination.xml", compat="pyhf")
    assert {m["name"] for m in _modifier(ws_pyhf, "sig", "shapesys")} == {"ss_g", "ss_p"}


def test_normalize_by_theory_lumi_and_param_settings(tmp_path):
    measurement = """
      <Measurement Name="meas" Lumi="2.0" LumiRelErr="0.05">
        <POI>mu</POI>
        <ParamSetting Const="True">Lumi alpha_jes</ParamSetting>
        <ParamSetting Val="0.5">alpha_xsec</ParamSetting>
        <ParamSetting Const="True">not_in_model</ParamSetting>
      </Measurement>"""
    channel = _basic_channel(
        sig_mods='<OverallSys Name="xsec" High="1.1" Low="0.9"/>'
                 '<OverallSys Name="jes" High="1.05" Low="0.97"/>',
        bkg_attrs='NormalizeByTheory="False"',
        bkg_mods='<NormFactor Name="k" Val="2" Low="0.5" High="4" Const="True"/>')
    comb = _setup(tmp_path, {"SR": channel}, BASIC_HISTS, measurement)
    with pytest.warns(HistFactoryXMLWarning) as record:
        ws = xml_to_workspace(comb)
    messages = sorted(str(w.message) for w in record)
    assert len(messages) == 2
    assert messages[0].startswith('NormalizeByTheory="False" on SR/bkg:')
    assert "'not_in_model'" in messages[1]
    # ROOT's HistoToWorkspaceFactoryFast multiplies every sample by Lumi; NormalizeByTheory=
    # "False" only resets Lumi's value (checked against RooFit in test_histfactory_xml_root)
    assert _modifier(ws, "sig", "lumi") and _modifier(ws, "bkg", "lumi")
    params = {p["name"]: p for p in ws["measurements"][0]["config"]["parameters"]}
    assert params["lumi"] == {"name": "lumi", "auxdata": [2.0], "sigmas": [0.1],
                              "bounds": [[1.5, 2.5]], "inits": [2.0], "fixed": True}
    assert params["jes"] == {"name": "jes", "fixed": True}
    assert params["xsec"] == {"name": "xsec", "inits": [0.5]}
    assert params["k"] == {"name": "k", "inits": [2.0], "bounds": [[0.5, 4.0]], "fixed": True}
    assert params["mu"] == {"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}
    with pytest.warns(HistFactoryXMLWarning):
        ws_pyhf = xml_to_workspace(comb, compat="pyhf")
    assert not _modifier(ws_pyhf, "sig", "lumi")  # pyhf's default NormalizeByTheory=False


@pytest.mark.parametrize("measurement", [
    '<Measurement Name="meas" Lumi="1.0" LumiRelErr="0"><POI>mu</POI></Measurement>',
    '<Measurement Name="meas" Lumi="1.0" LumiRelErr="0.1"><POI>mu</POI>'
    '<ParamSetting Const="True">Lumi</ParamSetting></Measurement>',
])
def test_lumi_held_at_one_is_no_parameter(tmp_path, measurement):
    """ROOT holds Lumi constant when LumiRelErr=0 or ParamSetting Const names it; at 1 the
    factor on every sample is 1: no lumi modifier, and no warning for NormalizeByTheory."""
    channel = _basic_channel(bkg_attrs='NormalizeByTheory="False"')
    comb = _setup(tmp_path, {"SR": channel}, BASIC_HISTS, measurement)
    ws = xml_to_workspace(comb)
    assert not _modifier(ws, "sig", "lumi") and not _modifier(ws, "bkg", "lumi")
    assert "lumi" not in {p["name"] for p in ws["measurements"][0]["config"]["parameters"]}


def test_lumi_constant_other_than_one_needs_a_width(tmp_path):
    measurement = '<Measurement Name="meas" Lumi="2.0" LumiRelErr="0"><POI>mu</POI></Measurement>'
    comb = _setup(tmp_path, {"SR": _basic_channel()}, BASIC_HISTS, measurement)
    with pytest.raises(InvalidFormat, match="hold Lumi constant at 2 on every sample"):
        xml_to_workspace(comb)


def test_input_file_and_histo_path_inheritance(tmp_path):
    """Channel sets file+path; a Sample overrides both, and its HistoSys inherits them."""
    hists = {
        "main.root": {"chan/data": [5.0, 6.0], "chan/sig": [1.0, 2.0]},
        "other.root": {"syst/bkg": [4.0, 4.0], "syst/bkg_up": [5.0, 4.5],
                       "syst/bkg_dn": [3.0, 3.5], "alt/bkg_up2": [6.0, 6.0]},
    }
    channel = """
        <Channel Name="SR" InputFile="main.root" HistoPath="chan">
          <Data HistoName="data"/>
          <Sample Name="sig" HistoName="sig">
            <NormFactor Name="mu" Val="1" Low="0" High="10"/>
          </Sample>
          <Sample Name="bkg" HistoName="bkg" InputFile="other.root" HistoPath="syst">
            <HistoSys Name="shape" HistoNameHigh="bkg_up" HistoNameLow="bkg_dn"/>
            <HistoSys Name="shape2" HistoPathHigh="alt" HistoNameHigh="bkg_up2"
                      HistoNameLow="bkg_dn"/>
          </Sample>
        </Channel>"""
    ws = xml_to_workspace(_setup(tmp_path, {"SR": channel}, hists))
    assert ws["observations"] == [{"name": "SR", "data": [5.0, 6.0]}]
    (shape, shape2) = _modifier(ws, "bkg", "histosys")
    assert shape["data"] == {"hi_data": [5.0, 4.5], "lo_data": [3.0, 3.5]}
    assert shape2["data"] == {"hi_data": [6.0, 6.0], "lo_data": [3.0, 3.5]}
    assert ws["channels"][0]["samples"][1]["data"] == [4.0, 4.0]


def test_basedir_and_moved_absolute_paths(tmp_path):
    comb = _setup(tmp_path, {"SR": _basic_channel()}, BASIC_HISTS)
    # the channel file is referenced by an absolute path that no longer exists
    text = comb.read_text().replace("<Input>SR.xml", "<Input>/old/machine/SR.xml")
    moved = tmp_path / "config"
    moved.mkdir()
    (moved / "combination.xml").write_text(text)
    ws = xml_to_workspace(moved / "combination.xml", basedir=tmp_path)
    assert ws["channels"][0]["samples"][0]["data"] == SIG.tolist()


def test_load_routes_xml_and_uses_root_interpolation(tmp_path):
    channel = _basic_channel(bkg_mods='<OverallSys Name="n" High="1.2" Low="0.7"/>')
    comb = _setup(tmp_path, {"SR": channel}, BASIC_HISTS)
    model = nextstat.load(comb)
    assert model.interpolation_codes() == ROOT_INTERPOLATION == {"normsys": "4",
                                                                 "histosys": "4p"}
    ws = xml_to_workspace(comb)
    x = np.array(model.suggested_init()) + 0.3
    assert model.nll(x) == nextstat.from_pyhf(ws, interpolation=ROOT_INTERPOLATION).nll(x)
    classic = nextstat.load(comb, interpolation="root")
    assert classic.interpolation_codes() == {"normsys": "1", "histosys": "0"}


# ---------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------


def _expect(comb, match, **kw):
    with pytest.raises(InvalidFormat, match=match):
        xml_to_workspace(comb, **kw)


def test_missing_files(tmp_path):
    _expect(tmp_path / "nope.xml", "XML file not found")
    comb = _setup(tmp_path, {"SR": _basic_channel()}, BASIC_HISTS)
    (tmp_path / "SR.xml").unlink()
    _expect(comb, r"channel XML 'SR.xml' not found \(looked in")
    other = tmp_path / "other"
    other.mkdir()
    comb = _setup(other, {"SR": _basic_channel()}, {"elsewhere.root": {"x": [1.0]}})
    _expect(comb, r"ROOT file 'in.root' not found", basedir=other)


def test_missing_histogram_names_the_sample_and_suggests(tmp_path):
    hists = {"in.root": {"data": [1.0, 2.0, 3.0], "sig": [1.0, 1.0, 1.0],
                         "bkg_nominal": [1.0, 1.0, 1.0]}}
    comb = _setup(tmp_path, {"SR": _basic_channel()}, hists)
    _expect(comb, r"in.root:bkg: no such object \(did you mean 'bkg_nominal'\?\).*"
                  r'needed by SR.xml:<Sample Name="bkg">')


@pytest.mark.parametrize(("up", "edges", "what"), [
    ([1.0, 2.0], None, "2 bins"),
    ([1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 5.0], "edges"),
])
def test_binning_mismatch_between_nominal_and_variation(tmp_path, up, edges, what):
    hists = {"in.root": dict(BASIC_HISTS["in.root"], up=(up, None, edges),
                             dn=[9.0, 7.0, 3.0])}
    channel = _basic_channel(
        bkg_mods='<HistoSys Name="s" HistoNameHigh="up" HistoNameLow="dn"/>')
    comb = _setup(tmp_path, {"SR": channel}, hists)
    _expect(comb, rf"<HistoSys Name=\"s\">: binning of in.root:up .*{what}.* differs from "
                  r"in.root:data")


@pytest.mark.parametrize(("body", "match"), [
    (_basic_channel(bkg_mods='<HistoFactor Name="x"/>'), "HistoFactor is not supported"),
    (_basic_channel(bkg_mods='<OverallSyst Name="x" High="1" Low="1"/>'),
     r'Sample Name="bkg">: unknown element <OverallSyst> inside <Sample>'),
    (_basic_channel(extra_config="<Systematics/>"), "unknown element <Systematics>"),
    (_basic_channel(bkg_attrs='Normalise="True"'), "unknown attribute 'Normalise'"),
    (_basic_channel(bkg_attrs='NormalizeByTheory="yes"'), "expected 'True' or 'False'"),
    (_basic_channel(bkg_mods='<StatError/>'), "needs an 'Activate'"),
    (_basic_channel(bkg_mods='<NormFactor Name="k" Val="1" Low="2" High="1"/>'),
     "Low < High"),
    (_basic_channel(bkg_mods='<OverallSys Name="k" High="x" Low="1"/>'), "not a number"),
    (_basic_channel(bkg_mods='<ShapeSys Name="k" HistoName="sig" ConstraintType="Gamma"/>'),
     "expected 'Gaussian' or 'Poisson'"),
    (_basic_channel().replace('<Data HistoName="data"/>', ""), "has no <Data>"),
    ("<Channel Name='SR'><Sample", "malformed XML"),
    ("<Combination/>", "expected a <Channel> document"),
], ids=["histofactor", "unknown-element", "unknown-channel-child", "unknown-attribute",
        "bad-bool", "no-activate", "bad-bounds", "not-a-number", "bad-constraint", "no-data",
        "malformed", "wrong-root"])
def test_bad_channel_xml(tmp_path, body, match):
    _expect(_setup(tmp_path, {"SR": body}, BASIC_HISTS), match)


@pytest.mark.parametrize(("measurement", "match"), [
    ('<Measurement Name="m"><POI>mu</POI><ConstraintTerm Type="Gamma" '
     'RelativeUncertainty="0.1">alpha_x</ConstraintTerm></Measurement>', "no pyhf equivalent"),
    ('<Measurement Name="m"><POI>mu</POI><ParamSetting Const="True">gamma_stat_SR_bin_0'
     "</ParamSetting></Measurement>", "single gamma"),
    ('<Measurement Name="m"></Measurement>', "has no <POI>"),
    ('<Measurement Name="m"><POI>mu</POI><Fit/></Measurement>', "unknown element <Fit>"),
    ("", "no <Measurement>"),
], ids=["constraint-term", "gamma-setting", "no-poi", "unknown-element", "no-measurement"])
def test_bad_measurement(tmp_path, measurement, match):
    _expect(_setup(tmp_path, {"SR": _basic_channel()}, BASIC_HISTS, measurement), match)


def test_truncated_root_file(tmp_path):
    comb = _setup(tmp_path, {"SR": _basic_channel()}, BASIC_HISTS)
    raw = (tmp_path / "in.root").read_bytes()
    (tmp_path / "in.root").write_bytes(raw[: len(raw) // 2])
    _expect(comb, "truncated ROOT file")


def test_export_refuses_what_xml_cannot_express(tmp_path):
    ws = zoo_case("staterror_only")
    ws["channels"][0]["samples"][0]["modifiers"].append(
        {"name": "other_stat", "type": "staterror", "data": [0.1, 0.1, 0.1]})
    with pytest.raises(InvalidFormat, match="several staterror names"):
        to_xml(ws, tmp_path)
    ws = zoo_case("normsys_only")
    ws["measurements"][0]["config"]["parameters"].append(
        {"name": "bkg_norm", "auxdata": [0.5], "sigmas": [2.0]})
    with pytest.raises(InvalidFormat, match="auxdata/sigmas"):
        to_xml(ws, tmp_path)


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def test_cli_export_then_import_round_trip(tmp_path):
    ws = zoo_case("multichannel")
    (tmp_path / "ws.json").write_text(json.dumps(ws))
    runner = CliRunner()
    res = runner.invoke(cli, ["export", "histfactory", "-i", str(tmp_path / "ws.json"),
                              "--out-dir", str(tmp_path / "xml"), "--prefix", "P"])
    assert res.exit_code == 0, res.output
    assert Path(res.output.strip()) == tmp_path / "xml" / "combination.xml"
    assert (tmp_path / "xml" / "P_data.root").is_file()
    res = runner.invoke(cli, ["import", "histfactory", "--xml", res.output.strip(),
                              "-o", str(tmp_path / "back.json")])
    assert res.exit_code == 0, res.output
    back = json.loads((tmp_path / "back.json").read_text())
    ref, got = (nextstat.from_pyhf(w, interpolation="root") for w in (ws, back))
    x = np.array(ref.suggested_init()) * 1.1
    named = dict(zip(ref.parameter_names(), x, strict=True))
    assert _nll_by_name(got, named) == pytest.approx(ref.nll(x), rel=ROUND_TRIP_RTOL)


def test_cli_errors_are_one_line(tmp_path):
    res = CliRunner().invoke(cli, ["import", "histfactory", "--xml", str(tmp_path / "x.xml")])
    assert res.exit_code == 2
    assert res.output.strip().startswith("nextstat: error:") and "XML file not found" in res.output
    assert len(res.output.strip().splitlines()) == 1


def test_no_warnings_on_clean_round_trip(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_xml(to_xml(zoo_case("multichannel"), tmp_path / "multichannel"))
        from_xml(to_xml(zoo_case("lumi_only"), tmp_path / "lumi_only"))
    # lumi on some samples only: one export warning, and pyhf's reading gives it back quietly
    with pytest.warns(HistFactoryXMLWarning) as record:
        comb = to_xml(zoo_case("realistic"), tmp_path / "realistic")
    assert len(record) == 1 and "samples without a lumi modifier" in str(record[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_xml(comb, compat="pyhf")
