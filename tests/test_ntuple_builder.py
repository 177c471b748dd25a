"""NtupleWorkspaceBuilder and its YAML/JSON config against numpy histograms.

ROOT files with known contents are written with uproot in a temporary directory;
every template the builder fills (nominal, weight and tree variations, data,
staterror) is compared with ``np.histogram`` of the same selection computed from
the arrays that were written.
"""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot
import yaml
from click.testing import CliRunner

from nextstat.cli import cli
from nextstat.errors import ExpressionError, InvalidConfig, InvalidFormat
from nextstat.ntuple.builder import NtupleWorkspaceBuilder
from nextstat.ntuple.config import build_from_config

#: Chunked filling sums the same weights in a different order than np.histogram: the
#: results agree to rounding (sums of ~1e4 terms of O(1)).
SUM_RTOL = 1e-12

EDGES = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0]
SEL = "njet >= 4 && pt > 25"


def _events(rng, n, shift=0.0):
    njet = rng.integers(0, 9, n).astype(np.int32)
    counts = rng.integers(0, 4, n)
    return {
        "mbb": rng.exponential(100.0, n) + shift,
        "njet": njet,
        "pt": rng.uniform(0.0, 100.0, n),
        "weight_mc": rng.normal(1.0, 0.2, n),
        "weight_sf": rng.normal(1.0, 0.05, n),
        "weight_jes_up": rng.normal(1.1, 0.1, n),
        "weight_jes_down": rng.normal(0.9, 0.1, n),
        "jet_pt": ak.unflatten(rng.uniform(20.0, 120.0, int(counts.sum())), counts),
    }


def _write(path, trees):
    with uproot.recreate(path) as f:
        for name, ev in trees.items():
            f.mktree(
                name, {k: (v.type if isinstance(v, ak.Array) else v.dtype) for k, v in ev.items()}
            )
            f[name].extend(ev)


@pytest.fixture(scope="module")
def ntuples(tmp_path_factory):
    d = tmp_path_factory.mktemp("ntuples")
    rng = np.random.default_rng(2024)
    ev = {
        "sig": _events(rng, 3000),
        "bkg": _events(rng, 9000),
        "bkg_up": _events(rng, 9000, 7.0),
        "bkg_down": _events(rng, 9000, -7.0),
        "data": _events(rng, 6000),
    }
    _write(d / "sig.root", {"events": ev["sig"]})
    _write(d / "bkg.root", {"events": ev["bkg"], "JER_up": ev["bkg_up"]})
    _write(d / "bkg_jer_up.root", {"events": ev["bkg_up"]})
    _write(d / "bkg_jer_down.root", {"events": ev["bkg_down"]})
    _write(d / "data.root", {"events": ev["data"]})
    return d, ev


def ref_hist(ev, weight=None, sel=None, edges=EDGES):
    """numpy reference: selection njet >= 4 && pt > 25 unless ``sel`` is given."""
    mask = (ev["njet"] >= 4) & (ev["pt"] > 25) if sel is None else sel
    w = None if weight is None else weight[mask]
    sumw, _ = np.histogram(ev["mbb"][mask], bins=edges, weights=w)
    sumw2, _ = np.histogram(ev["mbb"][mask], bins=edges, weights=None if w is None else w * w)
    return sumw.astype(float), sumw2.astype(float)


def _standard(d, step=None):
    b = NtupleWorkspaceBuilder().ntuple_path(d).tree_name("events").measurement("meas", "mu")
    if step:
        b.step_size(step)
    return b.add_channel(
        "SR",
        lambda ch: (
            ch.variable("mbb")
            .binning(EDGES)
            .selection(SEL)
            .data_file("data.root")
            .add_sample(
                "signal",
                lambda s: s.file("sig.root").weight("weight_mc * weight_sf").normfactor("mu"),
            )
            .add_sample(
                "background",
                lambda s: (
                    s.file("bkg.root")
                    .weight("weight_mc * weight_sf")
                    .normsys("bkg_norm", 0.9, 1.1)
                    .weight_sys("jes", "weight_jes_up", "weight_jes_down")
                    .tree_sys("jer", "bkg_jer_up.root", "bkg_jer_down.root")
                    .staterror()
                ),
            )
        ),
    )


def _sample(ws, channel, name):
    ch = next(c for c in ws["channels"] if c["name"] == channel)
    return next(s for s in ch["samples"] if s["name"] == name)


def _mod(sample, name):
    return next(m for m in sample["modifiers"] if m["name"] == name)


def test_templates_match_numpy(ntuples):
    d, ev = ntuples
    b = _standard(d, step=1234)  # several chunks per file
    ws = b.build()
    sig, bkg = ev["sig"], ev["bkg"]
    for name, e in (("signal", sig), ("background", bkg)):
        w, w2 = ref_hist(e, e["weight_mc"] * e["weight_sf"])
        np.testing.assert_allclose(_sample(ws, "SR", name)["data"], w, rtol=SUM_RTOL)
        h = b.histograms[("SR", name, "nominal")]
        np.testing.assert_allclose(h.sumw2, w2, rtol=SUM_RTOL)
    bk = _sample(ws, "SR", "background")
    # staterror: absolute sigma = sqrt(sumw2) of the nominal
    _, w2 = ref_hist(bkg, bkg["weight_mc"] * bkg["weight_sf"])
    np.testing.assert_allclose(_mod(bk, "staterror_SR")["data"], np.sqrt(w2), rtol=SUM_RTOL)
    # weight systematic: the up/down weights replace the sample weight
    jes = _mod(bk, "jes")
    np.testing.assert_allclose(
        jes["data"]["hi_data"], ref_hist(bkg, bkg["weight_jes_up"])[0], rtol=SUM_RTOL
    )
    np.testing.assert_allclose(
        jes["data"]["lo_data"], ref_hist(bkg, bkg["weight_jes_down"])[0], rtol=SUM_RTOL
    )
    h_up = b.histograms[("SR", "background", "jes_up")]
    np.testing.assert_allclose(h_up.sumw2, ref_hist(bkg, bkg["weight_jes_up"])[1], rtol=SUM_RTOL)
    # tree systematic: other files, nominal weight and selection
    jer = _mod(bk, "jer")
    for side, key in (("hi_data", "bkg_up"), ("lo_data", "bkg_down")):
        e = ev[key]
        np.testing.assert_allclose(
            jer["data"][side], ref_hist(e, e["weight_mc"] * e["weight_sf"])[0], rtol=SUM_RTOL
        )
    assert _mod(bk, "bkg_norm") == {
        "name": "bkg_norm",
        "type": "normsys",
        "data": {"hi": 1.1, "lo": 0.9},
    }
    # data: unweighted counts with the channel selection
    obs = ws["observations"][0]
    assert obs["name"] == "SR"
    np.testing.assert_array_equal(obs["data"], ref_hist(ev["data"])[0])
    # the variations differ from the nominal (the test would notice a copy)
    assert not np.allclose(jer["data"]["hi_data"], bk["data"])
    assert not np.allclose(jes["data"]["lo_data"], bk["data"])


def test_workspace_is_valid_pyhf_and_builds_a_model(ntuples):
    pyhf = pytest.importorskip("pyhf")
    d, _ = ntuples
    b = _standard(d)
    ws = b.build()
    pyhf.Workspace(ws)  # schema validation
    model = b.model()
    pm = pyhf.Workspace(ws).model()
    assert model.poi_name() == "mu" if callable(model.poi_name) else model.poi_name == "mu"
    assert model.n_params() == pm.config.npars
    # same expected yields at the initial point as pyhf's reading of the workspace
    np.testing.assert_allclose(
        model.expected_main(model.suggested_init()),
        pm.expected_actualdata(pm.config.suggested_init()),
        rtol=1e-12,
    )


def test_chunking_does_not_change_results(ntuples):
    d, _ = ntuples
    one = _standard(d, step=10**7).build()
    many = _standard(d, step=500).build()
    a, b = json.dumps(one), json.dumps(many)
    assert a != "" and json.loads(a).keys() == json.loads(b).keys()
    for ch_a, ch_b in zip(one["channels"], many["channels"], strict=True):
        for s_a, s_b in zip(ch_a["samples"], ch_b["samples"], strict=True):
            np.testing.assert_allclose(s_a["data"], s_b["data"], rtol=SUM_RTOL)
    assert one["observations"] == many["observations"]


def test_one_pass_per_file_and_progress(ntuples):
    d, ev = ntuples
    calls = []
    b = _standard(d, step=2000).progress(
        lambda label, done, total: calls.append((label, done, total))
    )
    # a second channel on the same files must not add reads
    b.add_channel(
        "CR",
        lambda ch: (
            ch.variable("pt")
            .binning(10, 0, 100)
            .selection("njet < 4")
            .add_sample("signal", lambda s: s.file("sig.root").weight("weight_mc"))
            .add_sample("background", lambda s: s.file("bkg.root").weight("weight_mc"))
        ),
    )
    b.build()
    total = sum(len(ev[k]["mbb"]) for k in ("sig", "bkg", "bkg_up", "bkg_down", "data"))
    assert calls[-1][1:] == (total, total)
    labels = [c[0] for c in calls]
    assert sorted(set(labels)) == sorted(
        f"{f}:events"
        for f in ("sig.root", "bkg.root", "bkg_jer_up.root", "bkg_jer_down.root", "data.root")
    )
    assert labels.count("bkg.root:events") == int(np.ceil(9000 / 2000))
    cr = b.histograms[("CR", "background", "nominal")]
    bkg = ev["bkg"]
    ref, _ = np.histogram(
        bkg["pt"][bkg["njet"] < 4],
        bins=np.linspace(0, 100, 11),
        weights=bkg["weight_mc"][bkg["njet"] < 4],
    )
    np.testing.assert_allclose(cr.sumw, ref, rtol=SUM_RTOL)


def test_relative_weight_sys_one_sided_and_other_tree(ntuples):
    d, ev = ntuples
    bkg = ev["bkg"]
    ws = (
        NtupleWorkspaceBuilder()
        .ntuple_path(d)
        .add_channel(
            "SR",
            lambda ch: (
                ch.variable("mbb")
                .binning(EDGES)
                .selection(SEL)
                .weight("weight_sf")
                .add_sample(
                    "bkg",
                    lambda s: (
                        s.file("bkg.root")
                        .weight("weight_mc")
                        .normfactor("mu")
                        .weight_sys("rel", "1.05 + 0 * pt", "0.95", relative=True)
                        .weight_sys("one", "weight_jes_up")
                        .tree_sys("jer_tree", tree_up="JER_up")
                    ),
                )
            ),
        )
        .build()
    )
    s = _sample(ws, "SR", "bkg")
    nom_w = bkg["weight_mc"] * bkg["weight_sf"]
    nom = ref_hist(bkg, nom_w)[0]
    np.testing.assert_allclose(s["data"], nom, rtol=SUM_RTOL)
    rel = _mod(s, "rel")["data"]
    np.testing.assert_allclose(rel["hi_data"], ref_hist(bkg, nom_w * 1.05)[0], rtol=SUM_RTOL)
    np.testing.assert_allclose(rel["lo_data"], ref_hist(bkg, nom_w * 0.95)[0], rtol=SUM_RTOL)
    # not relative: the channel weight stays, the sample weight is replaced
    one = _mod(s, "one")["data"]
    up = ref_hist(bkg, bkg["weight_sf"] * bkg["weight_jes_up"])[0]
    np.testing.assert_allclose(one["hi_data"], up, rtol=SUM_RTOL)
    np.testing.assert_allclose(one["lo_data"], 2 * nom - up, rtol=SUM_RTOL)  # mirrored
    e = ev["bkg_up"]
    np.testing.assert_allclose(
        _mod(s, "jer_tree")["data"]["hi_data"],
        ref_hist(e, e["weight_mc"] * e["weight_sf"])[0],
        rtol=SUM_RTOL,
    )
    # no data: Asimov observations = sum of nominal templates
    np.testing.assert_allclose(ws["observations"][0]["data"], nom, rtol=SUM_RTOL)


def test_jagged_selection_and_sample_selection(ntuples):
    d, ev = ntuples
    sig = ev["sig"]
    b = (
        NtupleWorkspaceBuilder()
        .ntuple_path(d)
        .add_channel(
            "J",
            lambda ch: (
                ch.variable("jet_pt[0]")
                .binning(5, 20, 120)
                .selection("njet >= 2")
                .add_sample(
                    "sig",
                    lambda s: (
                        s.file("sig.root")
                        .selection("jet_pt[1] > 50")
                        .weight("weight_mc")
                        .normfactor("mu")
                    ),
                )
            ),
        )
    )
    h = b.fill()[("J", "sig", "nominal")]
    counts = ak.num(sig["jet_pt"]).to_numpy()
    first = ak.to_numpy(ak.fill_none(ak.pad_none(sig["jet_pt"], 2)[:, 0], np.nan))
    second = ak.to_numpy(ak.fill_none(ak.pad_none(sig["jet_pt"], 2)[:, 1], np.nan))
    mask = (sig["njet"] >= 2) & (counts >= 2) & (second > 50)
    ref, _ = np.histogram(first[mask], bins=np.linspace(20, 120, 6), weights=sig["weight_mc"][mask])
    np.testing.assert_allclose(h.sumw, ref, rtol=SUM_RTOL)


def test_flow_policy_and_root_edge_convention(tmp_path):
    x = np.array([-1.0, 0.0, 0.5, 1.0, 1.999, 2.0, 5.0, np.nan])
    _write(tmp_path / "f.root", {"events": {"x": x}})

    def fill(flow):
        b = (
            NtupleWorkspaceBuilder()
            .ntuple_path(tmp_path)
            .add_channel(
                "C",
                lambda ch: (
                    ch.variable("x")
                    .binning([0.0, 1.0, 2.0])
                    .flow(flow)
                    .add_sample("s", lambda s: s.file("f.root"))
                ),
            )
        )
        return b.fill()[("C", "s", "nominal")]

    # [0, 1) gets 0.0 and 0.5; [1, 2) gets 1.0 and 1.999; 2.0 is overflow (ROOT), nan dropped
    drop = fill("drop")
    np.testing.assert_array_equal(drop.sumw, [2.0, 2.0])
    assert drop.extra == {"underflow": 1.0, "overflow": 2.0}
    np.testing.assert_array_equal(fill("merge").sumw, [3.0, 4.0])


def test_rntuple_input(tmp_path):
    rng = np.random.default_rng(5)
    x, w = rng.uniform(0, 10, 500), rng.normal(1, 0.1, 500)
    with uproot.recreate(tmp_path / "r.root") as f:
        f["events"] = {"x": x, "w": w}  # uproot >= 5.7 writes an RNTuple
    h = (
        NtupleWorkspaceBuilder()
        .ntuple_path(tmp_path)
        .add_channel(
            "C",
            lambda ch: (
                ch.variable("x")
                .binning(4, 0, 10)
                .selection("x > 1")
                .add_sample("s", lambda s: s.file("r.root").weight("w"))
            ),
        )
        .fill()[("C", "s", "nominal")]
    )
    ref, _ = np.histogram(x[x > 1], bins=np.linspace(0, 10, 5), weights=w[x > 1])
    np.testing.assert_allclose(h.sumw, ref, rtol=SUM_RTOL)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


def _one(d, *, file="sig.root", tree="events", var="mbb", edges=EDGES, sel=SEL, weight="weight_mc"):
    return (
        NtupleWorkspaceBuilder()
        .ntuple_path(d)
        .tree_name(tree)
        .add_channel(
            "SR",
            lambda ch: (
                ch.variable(var)
                .binning(edges)
                .selection(sel)
                .add_sample("sig", lambda s: s.file(file).weight(weight))
            ),
        )
    )


def test_missing_file(ntuples):
    d, _ = ntuples
    with pytest.raises(InvalidConfig, match=r"channel 'SR', sample 'sig': file not found: .*nope"):
        _one(d, file="nope.root").build()


def test_missing_tree_suggests(ntuples):
    d, _ = ntuples
    with pytest.raises(InvalidConfig, match=r"no tree 'event' .*did you mean 'events'"):
        _one(d, tree="event").build()


def test_missing_branch_suggests(ntuples):
    d, _ = ntuples
    with pytest.raises(InvalidConfig, match=r"branch 'weight_m' .*did you mean 'weight_mc'"):
        _one(d, weight="weight_m").build()
    with pytest.raises(InvalidConfig, match=r"branch 'mbbb' \(used in 'mbbb'\)"):
        _one(d, var="mbbb").build()


@pytest.mark.parametrize(
    ("edges", "message"),
    [
        ([0.0], "needs at least two edges"),
        ([0.0, 2.0, 1.0], "edges must increase strictly; edge 2 \\(1\\) does not exceed edge 1"),
        ([0.0, float("inf")], "edges must be finite"),
        (["a", "b"], "must be a list of numbers"),
    ],
)
def test_bad_binning(ntuples, edges, message):
    d, _ = ntuples
    with pytest.raises(InvalidConfig, match=f"channel 'SR': binning: {message}"):
        _one(d, edges=edges).build()


def test_bad_expression_names_the_place(ntuples):
    d, _ = ntuples
    with pytest.raises(ExpressionError, match="channel 'SR', sample 'sig': selection") as info:
        _one(d, sel="njet >= 4 &&").build()
    assert info.value.column == 13  # the end of 'njet >= 4 &&'


def test_not_a_root_file(tmp_path):
    (tmp_path / "bad.root").write_bytes(b"this is not ROOT")
    with pytest.raises(InvalidFormat, match="bad.root"):
        _one(tmp_path, file="bad.root").build()


def test_truncated_root_file(ntuples, tmp_path):
    d, _ = ntuples
    raw = (d / "sig.root").read_bytes()
    (tmp_path / "cut.root").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(InvalidFormat, match="cut.root: truncated ROOT file"):
        _one(tmp_path, file="cut.root").build()


def test_unindexed_jagged_branch_names_the_place(ntuples):
    d, _ = ntuples
    with pytest.raises(
        ExpressionError, match=r"channel 'SR', sample 'sig': branch 'jet_pt' is an array"
    ):
        _one(d, weight="jet_pt").build()


def test_missing_pieces():
    with pytest.raises(InvalidConfig, match="no channels"):
        NtupleWorkspaceBuilder().build()
    with pytest.raises(InvalidConfig, match="no variable"):
        NtupleWorkspaceBuilder().add_channel("A", lambda c: c.binning([0, 1])).build()
    with pytest.raises(InvalidConfig, match="duplicate sample 'x'"):
        NtupleWorkspaceBuilder().add_channel("A", lambda c: c.add_sample("x").add_sample("x"))


# ---------------------------------------------------------------------------
# YAML / JSON config and the CLI
# ---------------------------------------------------------------------------

CONFIG = {
    "ntuple_path": ".",
    "tree": "events",
    "measurement": {"name": "meas", "poi": "mu"},
    "regions": [
        {"name": "SR", "variable": "mbb", "binning": EDGES, "selection": SEL, "data": "data.root"}
    ],
    "samples": [
        {
            "name": "signal",
            "file": "sig.root",
            "weight": "weight_mc * weight_sf",
            "normfactor": "mu",
        },
        {
            "name": "background",
            "file": "bkg.root",
            "weight": "weight_mc * weight_sf",
            "normsys": {"name": "bkg_norm", "lo": 0.9, "hi": 1.1},
            "staterror": True,
        },
    ],
    "systematics": [
        {
            "name": "jes",
            "type": "weight",
            "samples": ["background"],
            "up": "weight_jes_up",
            "down": "weight_jes_down",
        },
        {
            "name": "jer",
            "type": "tree",
            "samples": ["background"],
            "file_up": "bkg_jer_up.root",
            "file_down": "bkg_jer_down.root",
        },
    ],
}


def test_yaml_config_equals_fluent_builder(ntuples):
    d, _ = ntuples
    (d / "analysis.yaml").write_text(yaml.safe_dump(CONFIG))
    from_config = build_from_config(d / "analysis.yaml")
    fluent = _standard(d).build()
    # same samples, modifiers (order of modifiers may differ) and numbers
    assert from_config["observations"] == fluent["observations"]
    for s_cfg, s_fl in zip(
        from_config["channels"][0]["samples"], fluent["channels"][0]["samples"], strict=True
    ):
        assert s_cfg["data"] == s_fl["data"]
        key = lambda m: m["name"]  # noqa: E731
        assert sorted(s_cfg["modifiers"], key=key) == sorted(s_fl["modifiers"], key=key)


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        (
            {"regions": [{"name": "SR", "variable": "mbb", "binnig": EDGES}]},
            r"cfg.yaml: regions\[0\]: unknown key 'binnig'; did you mean 'binning'",
        ),
        (
            {"regions": [{"name": "SR", "variable": "mbb"}]},
            r"regions\[0\]: missing required key 'binning'",
        ),
        (
            {"systematics": [{"name": "x", "type": "weight", "samples": ["backgrund"], "up": "1"}]},
            r"systematics\[0\].samples: unknown sample 'backgrund'; did you mean 'background'",
        ),
        ({"systematics": [{"name": "x", "type": "shape"}]}, "unknown systematic type 'shape'"),
        ({"samples": []}, "samples: no samples"),
        ({"step_size": "big"}, "cfg.yaml: step_size: must be a positive integer, got 'big'"),
        (
            {"normfactors": [{"name": "k", "init": "one"}]},
            r"normfactors\[0\]: 'init' and 'bounds' must be numbers",
        ),
    ],
)
def test_config_errors(ntuples, patch, message):
    d, _ = ntuples
    (d / "cfg.yaml").write_text(yaml.safe_dump({**CONFIG, **patch}))
    with pytest.raises(InvalidConfig, match=message):
        build_from_config(d / "cfg.yaml")


def test_cli_build(ntuples, tmp_path):
    d, _ = ntuples
    (tmp_path / "a.json").write_text(json.dumps(CONFIG))
    out = tmp_path / "ws.json"
    res = CliRunner().invoke(
        cli, ["build", "--config", str(tmp_path / "a.json"), "--base-dir", str(d), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    ws = json.loads(out.read_text())
    assert ws["observations"][0]["data"] == _standard(d).build()["observations"][0]["data"]
    bad = CliRunner().invoke(cli, ["build", "--config", str(tmp_path / "a.json")])
    assert bad.exit_code == 2
    assert "nextstat: error:" in bad.output and "file not found" in bad.output
