"""TRExFitter configs (nextstat.ntuple.trex): NTUP and HIST routes against numpy.

The NTUP config is checked template by template against numpy histograms of the
arrays written to the ntuples (TRExFitter's weight rules: Job MCweight x Region
MCweight x Lumi x Sample MCweight; WeightSufUp multiplies it; a HISTO systematic is
split into a normsys and a normalised histosys). The HIST config is checked against
the histograms written. The report must list what was not used, with line numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import uproot
from click.testing import CliRunner

from nextstat.cli import cli
from nextstat.errors import InvalidConfig
from nextstat.ntuple.trex import parse_trex_config, trex_to_workspace

#: Chunked sums vs np.histogram: same terms, different order.
SUM_RTOL = 1e-12
EDGES = [0.0, 50.0, 100.0, 200.0, 300.0]
LUMI = 2.5


def _events(rng, n, shift=0.0):
    return {
        "mbb": rng.exponential(100.0, n) + shift,
        "njet": rng.integers(0, 9, n).astype(np.int32),
        "pt": rng.uniform(0.0, 100.0, n),
        "w_mc": rng.normal(1.0, 0.2, n),
        "w_pu": rng.normal(1.0, 0.05, n),
        "w_ttbar": rng.normal(1.0, 0.1, n),
        "w_jes_up": rng.normal(1.1, 0.1, n),
        "w_jes_down": rng.normal(0.9, 0.1, n),
    }


def _write(path, tree, ev):
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: v.dtype for k, v in ev.items()})
        f[tree].extend(ev)


NTUP_CONFIG = """\
% A TRExFitter config, NTUP route
Job: "ttH"
  ReadFrom: NTUP
  NtuplePaths: "ntup"
  NtupleName: "nominal"
  MCweight: "w_mc"
  Selection: "njet >= 4"
  Lumi: {lumi}
  POI: "mu"
  Label: "My analysis"
  PlotOptions: YIELDS

Fit: "fit"
  FitType: SPLUSB
  FitRegion: CRSR

Region: "SR"
  Type: SIGNAL
  Variable: "mbb",10,0,300
  Binning: {edges}
  Selection: "pt > 25"
  MCweight: "w_pu"
  VariableTitle: "m_{{bb}}"
  Frobnicate: 3

Region: "VR"
  Type: VALIDATION
  Variable: "pt",10,0,100

Sample: "Data"
  Type: DATA
  NtupleFile: "data"

Sample: "ttH"
  Type: SIGNAL
  NtupleFile: "tth"
  FillColor: 2

Sample: "ttbar"
  Type: BACKGROUND
  NtupleFiles: "ttbar"
  MCweight: "w_ttbar"

NormFactor: "mu"
  Samples: ttH
  Nominal: 1
  Min: -5
  Max: 20

Systematic: "XS_ttbar"
  Type: OVERALL
  OverallUp: 0.06
  OverallDown: -0.04
  Samples: ttbar

Systematic: "JES"
  Type: HISTO
  Samples: ttbar
  WeightSufUp: "w_jes_up"
  WeightSufDown: "w_jes_down"
  Smoothing: 40

Systematic: "JER"
  Type: HISTO
  Samples: ttbar
  NtupleFilesUp: "ttbar_jer_up"
  Symmetrisation: ONESIDED
"""


@pytest.fixture(scope="module")
def ntup(tmp_path_factory):
    d = tmp_path_factory.mktemp("trex")
    (d / "ntup").mkdir()
    rng = np.random.default_rng(99)
    ev = {
        k: _events(rng, n, s)
        for k, n, s in (
            ("data", 4000, 0.0),
            ("tth", 2000, 0.0),
            ("ttbar", 6000, 0.0),
            ("ttbar_jer_up", 6000, 6.0),
        )
    }
    for k, e in ev.items():
        _write(d / "ntup" / f"{k}.root", "nominal", e)
    cfg = d / "fit.config"
    cfg.write_text(NTUP_CONFIG.format(lumi=LUMI, edges=",".join(str(e) for e in EDGES)))
    return d, ev, cfg


def ref(e, w=None):
    m = (e["njet"] >= 4) & (e["pt"] > 25)
    sw, _ = np.histogram(e["mbb"][m], EDGES, weights=None if w is None else w[m])
    sw2, _ = np.histogram(e["mbb"][m], EDGES, weights=None if w is None else (w * w)[m])
    return sw.astype(float), sw2.astype(float)


def _s(ws, name):
    return next(s for s in ws["channels"][0]["samples"] if s["name"] == name)


def _mods(sample, name):
    return {m["type"]: m for m in sample["modifiers"] if m["name"] == name}


def test_ntup_route_matches_numpy(ntup):
    d, ev, cfg = ntup
    ws, report = trex_to_workspace(cfg, step_size=1500)
    assert [c["name"] for c in ws["channels"]] == ["SR"]  # VALIDATION region left out
    assert ws["measurements"][0]["name"] == "ttH"
    assert ws["measurements"][0]["config"]["poi"] == "mu"
    assert ws["measurements"][0]["config"]["parameters"] == [
        {"name": "mu", "inits": [1.0], "bounds": [[-5.0, 20.0]]}
    ]
    tth, tt = ev["tth"], ev["ttbar"]
    w_tth = tth["w_mc"] * tth["w_pu"] * LUMI
    np.testing.assert_allclose(_s(ws, "ttH")["data"], ref(tth, w_tth)[0], rtol=SUM_RTOL)
    w_tt = tt["w_mc"] * tt["w_pu"] * LUMI * tt["w_ttbar"]
    nom, nom2 = ref(tt, w_tt)
    s = _s(ws, "ttbar")
    np.testing.assert_allclose(s["data"], nom, rtol=SUM_RTOL)
    np.testing.assert_allclose(
        _mods(s, "staterror_SR")["staterror"]["data"], np.sqrt(nom2), rtol=SUM_RTOL
    )
    assert _mods(s, "XS_ttbar")["normsys"]["data"] == {"hi": 1.06, "lo": 0.96}
    # JES: WeightSuf multiplies the full nominal weight; split into norm + shape
    up, dn = ref(tt, w_tt * tt["w_jes_up"])[0], ref(tt, w_tt * tt["w_jes_down"])[0]
    jes = _mods(s, "JES")
    hi, lo = up.sum() / nom.sum(), dn.sum() / nom.sum()
    np.testing.assert_allclose(
        [jes["normsys"]["data"]["hi"], jes["normsys"]["data"]["lo"]], [hi, lo], rtol=SUM_RTOL
    )
    np.testing.assert_allclose(jes["histosys"]["data"]["hi_data"], up / hi, rtol=SUM_RTOL)
    np.testing.assert_allclose(jes["histosys"]["data"]["lo_data"], dn / lo, rtol=SUM_RTOL)
    # JER: other file, one-sided -> mirrored
    e = ev["ttbar_jer_up"]
    up = ref(e, e["w_mc"] * e["w_pu"] * LUMI * e["w_ttbar"])[0]
    dn = 2 * nom - up
    jer = _mods(s, "JER")
    hi, lo = up.sum() / nom.sum(), dn.sum() / nom.sum()
    np.testing.assert_allclose(jer["histosys"]["data"]["hi_data"], up / hi, rtol=SUM_RTOL)
    np.testing.assert_allclose(jer["histosys"]["data"]["lo_data"], dn / lo, rtol=SUM_RTOL)
    # data: unweighted, job and region selection
    np.testing.assert_array_equal(ws["observations"][0]["data"], ref(ev["data"])[0])
    assert report["read_from"] == "NTUP"


def test_ntup_workspace_is_valid_pyhf(ntup):
    pyhf = pytest.importorskip("pyhf")
    import nextstat

    _, _, cfg = ntup
    ws, _ = trex_to_workspace(cfg)
    pm = pyhf.Workspace(ws).model()
    m = nextstat.from_pyhf(ws)
    np.testing.assert_allclose(
        m.expected_main(m.suggested_init()),
        pm.expected_actualdata(pm.config.suggested_init()),
        rtol=1e-12,
    )


def test_report_lists_unused_keys_and_blocks_with_lines(ntup):
    _, _, cfg = ntup
    _, report = trex_to_workspace(cfg)
    lines = cfg.read_text().splitlines()
    got = {(i["what"], i["line"]): i["reason"] for i in report["ignored"]}

    def line_of(text, start=0):
        return next(n for n, ln in enumerate(lines, 1) if n > start and text in ln)

    assert got[("Fit block 'fit'", line_of('Fit: "fit"'))].startswith("fit / limit settings")
    assert got[("Region.Frobnicate", line_of("Frobnicate"))] == "not used"
    assert got[("Job.Label", line_of("Label:"))].startswith("cosmetic")
    assert got[("Sample.FillColor", line_of("FillColor"))].startswith("cosmetic")
    assert got[("Systematic.Smoothing", line_of("Smoothing"))] == "not used"
    assert "VALIDATION" in got[("Region block 'VR'", line_of('Region: "VR"'))]
    # the binning came from Binning; the Variable's own n,min,max were not needed but the
    # key was used; used keys never appear
    assert not any(
        i["what"] in ("Job.MCweight", "Region.Binning", "Sample.NtupleFile")
        for i in report["ignored"]
    )
    assert [i["line"] for i in report["ignored"]] == sorted(i["line"] for i in report["ignored"])


def test_hist_route(tmp_path):
    rng = np.random.default_rng(3)
    edges = np.array([0.0, 1.0, 2.0, 4.0])
    h = {k: rng.uniform(5, 50, 3) for k in ("sig", "bkg", "bkg_up", "bkg_down", "data")}
    (tmp_path / "hists").mkdir()
    for k, v in h.items():
        with uproot.recreate(tmp_path / "hists" / f"{k}.root") as f:
            f["SR_mjj"] = (v, edges)
    (tmp_path / "h.config").write_text(
        'Job: "J"\n ReadFrom: HIST\n HistoPath: "hists"\n POI: "mu"\n'
        'Region: "SR"\n HistoName: "SR_mjj"\n'
        'Sample: "Data"\n Type: DATA\n HistoFile: "data"\n'
        'Sample: "sig"\n Type: SIGNAL\n HistoFile: "sig"\n NormFactor: "mu",1,0,10\n'
        'Sample: "bkg"\n HistoFile: "bkg"\n'
        'Systematic: "shape"\n Type: HISTO\n Samples: bkg\n'
        ' HistoFileUp: "bkg_up"\n HistoFileDown: "bkg_down"\n'
        'Systematic: "norm"\n Type: OVERALL\n OverallUp: 0.1\n Samples: bkg\n'
    )
    ws, report = trex_to_workspace(tmp_path / "h.config")
    s = {x["name"]: x for x in ws["channels"][0]["samples"]}
    np.testing.assert_allclose(s["sig"]["data"], h["sig"], rtol=1e-15)
    np.testing.assert_allclose(ws["observations"][0]["data"], h["data"], rtol=1e-15)
    sh = _mods(s["bkg"], "shape")
    hi, lo = h["bkg_up"].sum() / h["bkg"].sum(), h["bkg_down"].sum() / h["bkg"].sum()
    np.testing.assert_allclose(sh["histosys"]["data"]["hi_data"], h["bkg_up"] / hi, rtol=1e-12)
    np.testing.assert_allclose(sh["normsys"]["data"]["lo"], lo, rtol=1e-12)
    assert _mods(s["bkg"], "norm")["normsys"]["data"] == {"hi": 1.1, "lo": 0.9}
    # sumw2 written by uproot for a (values, edges) tuple is the values themselves
    np.testing.assert_allclose(
        _mods(s["bkg"], "staterror_SR")["staterror"]["data"], np.sqrt(h["bkg"]), rtol=1e-12
    )
    assert ws["measurements"][0]["config"]["parameters"] == [
        {"name": "mu", "inits": [1.0], "bounds": [[0.0, 10.0]]}
    ]
    assert report["ignored"] == []

    # wrong binning between nominal and variation
    with uproot.recreate(tmp_path / "hists" / "bkg_up.root") as f:
        f["SR_mjj"] = (h["bkg_up"], np.array([0.0, 1.0, 2.0, 5.0]))
    with pytest.raises(InvalidConfig, match=r"h.config:\d+ \(Systematic 'shape'\).*binning"):
        trex_to_workspace(tmp_path / "h.config")


def test_hist_route_bad_inputs_name_the_line(tmp_path):
    (tmp_path / "hists").mkdir()
    with uproot.recreate(tmp_path / "hists" / "a.root") as f:
        f["h"] = (np.array([1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
        f["h3"] = (np.array([1.0, 2.0, 3.0]), np.array([0.0, 1.0, 2.0, 3.0]))
    head = 'Job: "J"\n ReadFrom: HIST\n HistoPath: "hists"\nRegion: "SR"\n HistoFile: "a"\n'
    cases = [
        (
            'Sample: "s"\n HistoName: "h"\nSample: "t"\n HistoName: "h3"\n',
            r"h.config:8 \(Sample 't'\) in Region 'SR': binning of .*differs",
        ),
        ('Sample: "s"\n HistoName: "h"\n LumiScale: lots\n', r"h.config:8 .*LumiScale must be"),
        (
            'Sample: "s"\n HistoName: "h"\nSystematic: "n"\n Type: OVERALL\n OverallUp: x\n',
            r"h.config:10 \(Systematic 'n'\): OverallUp must be a number",
        ),
        ('Sample: "s"\n HistoName: "hh"\n', r"h.config:6 .*no such object \(did you mean 'h'"),
    ]
    for body, message in cases:
        (tmp_path / "h.config").write_text(head + body)
        with pytest.raises(InvalidConfig, match=message):
            trex_to_workspace(tmp_path / "h.config")


def test_parser_multi_systematic_and_comments():
    blocks = parse_trex_config(
        'ReadFrom: NTUP\n# comment\nSystematic: "A";"B"\n  Type: OVERALL\n  OverallUp: 0.1\n'
    )
    assert [b.type for b in blocks] == ["Job", "Systematic", "Systematic"]
    assert [b.name for b in blocks[1:]] == ["A", "B"]
    assert all(b.get("OverallUp") == "0.1" for b in blocks[1:])
    assert blocks[0].get("readfrom") == "NTUP"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Job: x\n ReadFrom: XML\n", r"c.config:2 \(Job 'x'\): ReadFrom must be NTUP or HIST"),
        ("Job: x\n ReadFrom: NTUP\n", "no Region blocks"),
        (
            "Job: x\n ReadFrom: NTUP\nRegion: R\n Binning: 0,1\nSample: s\n NtupleFile: f\n",
            r"c.config:3 \(Region 'R'\): needs Variable",
        ),
        (
            "Job: x\n ReadFrom: NTUP\nRegion: R\n Variable: x\n Binning: 0,2,1\n"
            "Sample: s\n NtupleFile: f\n",
            r"c.config:5 \(Region 'R'\): edges must increase",
        ),
        ("Job: x\nthis line has no colon\n", r"c.config:2: expected 'Key: value'"),
        (
            "Job: x\n ReadFrom: NTUP\nRegion: R\n Variable: x\n Binning: 0,1\n"
            "Sample: s\n NtupleFile: missing\n",
            "file not found",
        ),
    ],
)
def test_errors(tmp_path, text, message):
    (tmp_path / "c.config").write_text(text)
    with pytest.raises(InvalidConfig, match=message):
        trex_to_workspace(tmp_path / "c.config")


def test_cli_trex_config(ntup, tmp_path):
    _, _, cfg = ntup
    out, rep = tmp_path / "ws.json", tmp_path / "rep.json"
    res = CliRunner().invoke(
        cli, ["trex-config", "--config", str(cfg), "-o", str(out), "--report", str(rep)]
    )
    assert res.exit_code == 0, res.output
    ws = json.loads(out.read_text())
    assert ws == trex_to_workspace(cfg)[0]
    assert json.loads(rep.read_text())["ignored"]
    assert "ignored Fit block 'fit'" in res.output
