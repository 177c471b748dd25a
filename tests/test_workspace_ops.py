"""Workspace tools (combine, prune, rename, sorted, digest, patchsets, simple models) vs pyhf."""

from __future__ import annotations

import copy
import json

import jsonpatch
import numpy as np
import pyhf
import pytest
from zoo import ZOO, pyhf_model, zoo_case

import nextstat
from nextstat.errors import InvalidWorkspace
from nextstat.model import simplemodels, workspace_ops
from nextstat.model.workspace_ops import (
    InvalidPatchSet,
    InvalidWorkspaceOperation,
    PatchSet,
    PatchSetVerificationError,
    apply_json_patch,
    apply_patch,
    combine,
    digest,
    list_patches,
    prune,
    rename,
    sorted_workspace,
)

#: 2*NLL of the same workspace, ours (parity mode) vs pyhf's -2 logpdf: sums of O(10) terms
#: of size O(100), evaluated in different orders; a few ulp of the total.
TWICE_NLL_ATOL = 1e-9


def _pyhf_ws(ws):
    return pyhf.Workspace(copy.deepcopy(ws))


def _plain(ws):
    """A pyhf Workspace (a dict subclass) as a plain dict, for == comparisons."""
    return json.loads(json.dumps(ws))


# --------------------------------------------------------------------------
# prune / rename / sorted
# --------------------------------------------------------------------------

PRUNE_CASES = [
    ("multichannel", {"channels": ["VR"]}),
    ("multichannel", {"channels": ["VR", "CR"], "modifiers": ["staterror_CR"]}),
    ("all_modifiers", {"modifier_types": ["histosys", "shapesys"]}),
    ("all_modifiers", {"modifiers": ["fakes_norm", "sf_wjets"]}),
    ("normsys_histosys_same_name", {"modifiers": ["jes"]}),
    ("realistic", {"samples": ["fakes"], "modifier_types": ["staterror"]}),
    ("two_measurements", {"measurements": ["background_norm"]}),
    ("measurement_overrides", {"modifiers": ["bkg_norm"]}),
]


@pytest.mark.parametrize(("case", "kwargs"), PRUNE_CASES)
def test_prune_matches_pyhf(case, kwargs):
    ws = zoo_case(case)
    before = copy.deepcopy(ws)
    ours = prune(ws, **kwargs)
    theirs = _pyhf_ws(ws).prune(**kwargs)
    assert ours == _plain(theirs)
    assert ws == before  # the input is untouched


def test_prune_accepts_a_single_name_and_removes_observations():
    ws = prune(ZOO["multichannel"], channels="VR")
    assert [c["name"] for c in ws["channels"]] == ["SR", "CR"]
    assert [o["name"] for o in ws["observations"]] == ["SR", "CR"]


@pytest.mark.parametrize(
    ("kwargs", "kind"),
    [
        ({"channels": ["nope"]}, "channel"),
        ({"samples": ["nope"]}, "sample"),
        ({"modifiers": ["nope"]}, "modifier"),
        ({"modifier_types": ["lumi"]}, "modifier type"),
        ({"measurements": ["nope"]}, "measurement"),
    ],
)
def test_prune_unknown_name_is_an_error_like_pyhf(kwargs, kind):
    ws = zoo_case("multichannel")
    with pytest.raises(pyhf.exceptions.InvalidWorkspaceOperation):
        _pyhf_ws(ws).prune(**kwargs)
    with pytest.raises(InvalidWorkspaceOperation, match=f"cannot prune {kind} '"):
        prune(ws, **kwargs)


def test_prune_that_leaves_an_invalid_workspace_names_the_place():
    # pyhf accepts this workspace (schema-valid) and fails only when building the model.
    with pytest.raises(InvalidWorkspaceOperation, match="pruned workspace is not valid") as exc:
        prune(ZOO["normfactor_only"], modifiers=["mu"])
    assert exc.value.path == "measurements[0].config.poi"


RENAME_CASES = [
    ("multichannel", {"channels": {"SR": "signal_region", "VR": "val"}}),
    ("all_modifiers", {"modifiers": {"mu": "xsec", "lumi_wrong": "x"}}),
    ("all_modifiers", {"modifiers": {"mu": "xsec", "jes": "JES"}, "samples": {"signal": "sig"}}),
    ("measurement_overrides", {"modifiers": {"bkg_norm": "b"}, "measurements": {"meas": "m"}}),
    ("normsys_histosys_same_name", {"modifiers": {"jes": "jet_energy_scale"}}),
]


@pytest.mark.parametrize(("case", "kwargs"), RENAME_CASES)
def test_rename_matches_pyhf(case, kwargs):
    ws = zoo_case(case)
    before = copy.deepcopy(ws)
    if "lumi_wrong" in kwargs.get("modifiers", {}):
        with pytest.raises(pyhf.exceptions.InvalidWorkspaceOperation):
            _pyhf_ws(ws).rename(**kwargs)
        with pytest.raises(InvalidWorkspaceOperation, match="cannot rename modifier 'lumi_wrong'"):
            rename(ws, **kwargs)
        return
    ours = rename(ws, **kwargs)
    assert ours == _plain(_pyhf_ws(ws).rename(**kwargs))
    assert ws == before


def test_rename_accepts_pairs_and_renames_the_poi():
    ws = rename(ZOO["normfactor_only"], modifiers=[("mu", "r")])
    assert ws["measurements"][0]["config"]["poi"] == "r"
    model = nextstat.from_pyhf(ws)
    assert model.poi_name == "r"


def test_rename_into_a_clash_is_rejected():
    with pytest.raises(InvalidWorkspaceOperation, match="renamed workspace") as exc:
        rename(ZOO["multichannel"], channels={"SR": "CR"})
    assert exc.value.path.startswith("channels[")


@pytest.mark.parametrize("case", sorted(ZOO))
def test_sorted_and_digest_match_pyhf(case):
    ws = zoo_case(case)
    ours = sorted_workspace(ws)
    theirs = pyhf.Workspace.sorted(_pyhf_ws(ws))
    assert ours == _plain(theirs)
    assert json.dumps(ours) == json.dumps(_plain(theirs))  # same order everywhere
    for alg in ("sha256", "md5", "sha1"):
        assert digest(ws, alg) == pyhf.utils.digest(_pyhf_ws(ws), algorithm=alg)
    assert digest(ws) == pyhf.utils.digest(ws)


def test_digest_sees_every_change_and_no_key_order():
    ws = zoo_case("multichannel")
    reordered = dict(reversed(list(ws.items())))
    assert digest(reordered) == digest(ws)
    ws["observations"][0]["data"][0] += 1.0
    assert digest(ws) != digest(ZOO["multichannel"])


def test_digest_rejects_unknown_algorithms():
    with pytest.raises(InvalidWorkspaceOperation, match="unknown hash algorithm 'sha999'"):
        digest(ZOO["normfactor_only"], "sha999")


# --------------------------------------------------------------------------
# combine
# --------------------------------------------------------------------------


def _moved(case, suffix):
    """A zoo case with channels and measurements renamed (disjoint from the original)."""
    ws = zoo_case(case)
    chans = {c["name"]: c["name"] + suffix for c in ws["channels"]}
    meas = {m["name"]: m["name"] + suffix for m in ws["measurements"]}
    return rename(ws, channels=chans, measurements=meas)


def _with_obs(case, delta):
    ws = zoo_case(case)
    ws["observations"][0]["data"][0] += delta
    return ws


def _with_param(case, entry):
    ws = zoo_case(case)
    ws["measurements"][0]["config"]["parameters"].append(entry)
    return ws


def _with_sample(case, channel_index=0):
    ws = zoo_case(case)
    ch = ws["channels"][channel_index]
    nb = len(ch["samples"][0]["data"])
    ch["samples"].append({"name": "extra", "data": [1.0] * nb, "modifiers": []})
    return ws


COMBINE_CASES = {
    "disjoint-none": (lambda: (zoo_case("multichannel"), _moved("coupled_systematics", "_2")),
                      "none", False),
    "same-none": (lambda: (zoo_case("multichannel"), zoo_case("multichannel")), "none", False),
    "same-name-measurement-none": (lambda: (zoo_case("normsys_only"),
                                            rename(ZOO["normsys_only"], channels={"SR": "B"})),
                                   "none", False),
    "same-outer": (lambda: (zoo_case("multichannel"), zoo_case("multichannel")), "outer", False),
    "obs-conflict-outer": (lambda: (zoo_case("normsys_only"), _with_obs("normsys_only", 1.0)),
                           "outer", False),
    "obs-conflict-left": (lambda: (zoo_case("normsys_only"), _with_obs("normsys_only", 1.0)),
                          "left outer", False),
    "obs-conflict-right": (lambda: (zoo_case("normsys_only"), _with_obs("normsys_only", 1.0)),
                           "right outer", False),
    "measurement-merge-outer": (
        lambda: (zoo_case("normsys_only"),
                 _with_param("normsys_only", {"name": "mu", "bounds": [[0.0, 5.0]]})),
        "outer", False),
    "measurement-param-conflict": (
        lambda: (_with_param("normsys_only", {"name": "mu", "bounds": [[0.0, 4.0]]}),
                 _with_param("normsys_only", {"name": "mu", "bounds": [[0.0, 5.0]]})),
        "outer", False),
    "measurement-poi-conflict": (
        lambda: (zoo_case("two_measurements"),
                 rename(ZOO["two_measurements"], measurements={"signal_strength": "x",
                                                               "background_norm":
                                                               "signal_strength"})),
        "outer", False),
    "channel-conflict-outer": (lambda: (zoo_case("normsys_only"), _with_sample("normsys_only")),
                               "outer", False),
    "merge-channels-outer": (lambda: (zoo_case("normsys_only"), _with_sample("normsys_only")),
                             "outer", True),
    "merge-channels-right": (lambda: (_with_sample("multichannel", 1), zoo_case("multichannel")),
                             "right outer", True),
    "merge-none": (lambda: (zoo_case("normsys_only"), _with_sample("normsys_only")),
                   "none", True),
    "bad-join": (lambda: (zoo_case("normsys_only"), zoo_case("normsys_only")), "inner", False),
    "mixed-outer": (lambda: (zoo_case("coupled_systematics"),
                             combine(_moved("multichannel", "_x"), zoo_case("coupled_systematics"),
                                     "outer")),
                    "outer", False),
}


@pytest.mark.parametrize("name", sorted(COMBINE_CASES))
def test_combine_matches_pyhf(name):
    make, join, merge = COMBINE_CASES[name]
    left, right = make()
    before = copy.deepcopy((left, right))
    try:
        theirs = pyhf.Workspace.combine(_pyhf_ws(left), _pyhf_ws(right), join=join,
                                        merge_channels=merge)
    except (pyhf.exceptions.InvalidWorkspaceOperation, ValueError):
        with pytest.raises(InvalidWorkspaceOperation):
            combine(left, right, join=join, merge_channels=merge)
        return
    ours = combine(left, right, join=join, merge_channels=merge)
    assert ours == _plain(theirs)
    assert (left, right) == before
    # and the combined workspace builds the same likelihood as pyhf's
    model = nextstat.from_pyhf(ours, unknown_parameters="ignore")
    pm, data = pyhf_model(_plain(theirs))
    p = model.suggested_init()
    assert model.twice_nll(p, mode="parity") == pytest.approx(
        float(-2 * pm.logpdf(p, data)[0]), abs=TWICE_NLL_ATOL)


def test_combine_result_is_checked_beyond_pyhfs_schema():
    # pyhf accepts this combination, then cannot build a model for measurement 'meas'
    # (it has no configuration for the lumi parameter the right workspace brings).
    left, right = zoo_case("multichannel"), _moved("all_modifiers", "_2")
    pyhf.Workspace.combine(_pyhf_ws(left), _pyhf_ws(right))
    with pytest.raises(InvalidWorkspaceOperation, match="combined workspace is not valid: "
                       "measurement 'meas' has no parameter config for 'lumi'") as exc:
        combine(left, right)
    assert exc.value.path == "measurements[0].config.parameters"


def test_combine_errors_say_what_clashes():
    with pytest.raises(InvalidWorkspaceOperation, match="channels of the same name.*'SR'"):
        combine(ZOO["normsys_only"], ZOO["normsys_only"])
    with pytest.raises(InvalidWorkspaceOperation, match="join must be one of"):
        combine(ZOO["normsys_only"], ZOO["normsys_only"], join="inner")
    with pytest.raises(InvalidWorkspace, match="right workspace: .*observations"):
        bad = zoo_case("normsys_only")
        del bad["observations"][0]
        combine(ZOO["normsys_only"], bad, join="outer")


# --------------------------------------------------------------------------
# JSON Patch (RFC 6902) against the jsonpatch package pyhf uses
# --------------------------------------------------------------------------

DOC = {"foo": ["bar", "baz"], "a/b": 1, "m~n": 2, "obj": {"x": {"y": 1}}, "n": 1}

PATCH_CASES = [
    [{"op": "add", "path": "/baz", "value": "qux"}],
    [{"op": "add", "path": "/foo/1", "value": "qux"}],
    [{"op": "add", "path": "/foo/-", "value": ["q"]}],
    [{"op": "add", "path": "/foo/2", "value": "end"}],
    [{"op": "add", "path": "/foo/3", "value": "x"}],
    [{"op": "add", "path": "/foo/01", "value": "x"}],
    [{"op": "add", "path": "/a~1b", "value": 5}],
    [{"op": "add", "path": "", "value": {"whole": True}}],
    [{"op": "add", "path": "/missing/x", "value": 1}],
    [{"op": "remove", "path": "/foo/0"}],
    [{"op": "remove", "path": "/m~0n"}],
    [{"op": "remove", "path": "/nope"}],
    [{"op": "remove", "path": "/foo/-"}],
    [{"op": "replace", "path": "/foo/1", "value": 7}],
    [{"op": "replace", "path": "/nope", "value": 7}],
    [{"op": "replace", "path": "", "value": [1]}],
    [{"op": "move", "from": "/obj/x/y", "path": "/obj/z"}],
    [{"op": "move", "from": "/foo/0", "path": "/foo/1"}],
    [{"op": "move", "from": "/obj", "path": "/obj/x/w"}],
    [{"op": "copy", "from": "/obj/x", "path": "/obj/x2"}, {"op": "add", "path": "/obj/x2/q",
                                                          "value": 0}],
    [{"op": "copy", "from": "/nope", "path": "/x"}],
    [{"op": "test", "path": "/foo", "value": ["bar", "baz"]}],
    [{"op": "test", "path": "/n", "value": 1.0}],
    [{"op": "test", "path": "/foo/0", "value": "nope"}],
    [{"op": "test", "path": "/nope", "value": 1}],
    [{"op": "add", "path": "/x", "value": 1}, {"op": "test", "path": "/x", "value": 2}],
    [{"op": "add", "path": "/n/deeper", "value": 1}],
]


@pytest.mark.parametrize("ops", PATCH_CASES, ids=lambda ops: ",".join(
    f"{o['op']}{o['path']}" for o in ops))
def test_json_patch_matches_jsonpatch(ops):
    doc = copy.deepcopy(DOC)
    try:
        expected = jsonpatch.apply_patch(copy.deepcopy(doc), ops)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
        with pytest.raises(InvalidPatchSet) as exc:
            apply_json_patch(doc, ops)
        assert exc.value.path.startswith("patch[")
        assert doc == DOC
        return
    assert apply_json_patch(doc, ops) == expected
    assert doc == DOC


def test_json_patch_error_names_the_operation():
    ops = [{"op": "add", "path": "/a", "value": 1}, {"op": "remove", "path": "/zz"}]
    with pytest.raises(InvalidPatchSet, match=r"^p\[1\]: remove operation failed.*'zz'"):
        apply_json_patch({}, ops, "p")
    with pytest.raises(InvalidPatchSet, match=r"needs a 'value'") as exc:
        apply_json_patch({}, [{"op": "add", "path": "/a"}])
    assert exc.value.path == "patch[0]"
    with pytest.raises(InvalidPatchSet) as exc:
        apply_json_patch({}, [{"op": "frobnicate", "path": "/a"}])
    assert exc.value.path == "patch[0].op"


# --------------------------------------------------------------------------
# patchsets
# --------------------------------------------------------------------------


def _signal_patch(ws, mass, scale):
    """Operations adding a signal sample to every channel (as HEPData patchsets do)."""
    ops = []
    for i, ch in enumerate(ws["channels"]):
        nb = len(ch["samples"][0]["data"])
        ops.append({"op": "add", "path": f"/channels/{i}/samples/0", "value": {
            "name": f"sig_{mass}", "data": [scale * (b + 1) for b in range(nb)],
            "modifiers": [{"name": "mu_sig", "type": "normfactor", "data": None}]}})
    ops.append({"op": "replace", "path": "/measurements/0/config/poi", "value": "mu_sig"})
    return ops


def _patchset(ws, algs=("sha256",), n=3):
    ps = {
        "version": "1.0.0",
        "metadata": {
            "references": {"hepdata": "ins1234567"},
            "digests": {a: pyhf.utils.digest(ws, algorithm=a) for a in algs},
            "labels": ["m_sig", "tag"],
            "description": "signal points",
        },
        "patches": [
            {"metadata": {"name": f"point_{k}", "values": [100 * (k + 1), f"t{k}"]},
             "patch": _signal_patch(ws, 100 * (k + 1), 0.5 * (k + 1))}
            for k in range(n)
        ],
    }
    return ps


@pytest.mark.parametrize("case", ["multichannel", "realistic", "measurement_overrides"])
def test_apply_patch_matches_pyhf(case):
    ws = zoo_case(case)
    ps = _patchset(ws, algs=("sha256", "md5"))
    before = copy.deepcopy((ws, ps))
    for name, key in (("point_1", "point_1"), ("point_2", (300, "t2"))):
        ours = apply_patch(ws, ps, key)
        theirs = pyhf.PatchSet(copy.deepcopy(ps)).apply(_pyhf_ws(ws), name)
        assert ours == _plain(theirs)
        model = nextstat.from_pyhf(ours, unknown_parameters="ignore")
        pm, data = pyhf_model(_plain(theirs))
        assert model.poi_name == "mu_sig"
        p = model.suggested_init() * 1.1
        assert model.twice_nll(p, mode="parity") == pytest.approx(
            float(-2 * pm.logpdf(p, data)[0]), abs=TWICE_NLL_ATOL)
    assert (ws, ps) == before


def test_patchset_lookup_listing_and_properties():
    ws = zoo_case("multichannel")
    ps = PatchSet(_patchset(ws))
    assert len(ps) == 3 and ps.labels == ["m_sig", "tag"]
    assert ps.references == {"hepdata": "ins1234567"}
    assert ps.description == "signal points"
    assert ps[(200, "t1")].name == "point_1"
    assert ps[[200, "t1"]] is ps["point_1"]
    assert list_patches(ps) == [{"name": f"point_{k}", "values": [100 * (k + 1), f"t{k}"]}
                                for k in range(3)]
    assert list_patches(json.dumps(_patchset(ws))) == list_patches(ps)
    with pytest.raises(InvalidPatchSet, match="no patch 'point_9'.*'point_0', 'point_1'"):
        ps["point_9"]


def test_patchset_verification():
    ws = zoo_case("multichannel")
    ps = _patchset(ws)
    other = zoo_case("multichannel")
    other["observations"][2]["data"][0] += 1.0
    with pytest.raises(pyhf.exceptions.PatchSetVerificationError):
        pyhf.PatchSet(copy.deepcopy(ps)).apply(_pyhf_ws(other), "point_0")
    with pytest.raises(PatchSetVerificationError, match="sha256 digest is") as exc:
        apply_patch(other, ps, "point_0")
    assert exc.value.path == "metadata.digests.sha256"
    # without verification the patch is applied as it stands
    patched = apply_patch(other, ps, "point_0", verify=False)
    assert patched["measurements"][0]["config"]["poi"] == "mu_sig"
    upper = copy.deepcopy(ps)
    upper["metadata"]["digests"]["sha256"] = upper["metadata"]["digests"]["sha256"].upper()
    assert apply_patch(ws, upper, "point_0") == apply_patch(ws, ps, "point_0")


def _broken(edit):
    ps = _patchset(zoo_case("normsys_only"))
    edit(ps)
    return ps


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda ps: ps.pop("version"), None),
        (lambda ps: ps.update(extra=1), None),
        (lambda ps: ps.update(version="2.0.0"), "version"),
        (lambda ps: ps["metadata"].pop("labels"), "metadata"),
        (lambda ps: ps["metadata"]["references"].update(hepdata="ins12"),
         "metadata.references.hepdata"),
        (lambda ps: ps["metadata"]["references"].update(arxiv="x"), "metadata.references"),
        (lambda ps: ps["metadata"]["digests"].update(sha256="xyz"), "metadata.digests.sha256"),
        (lambda ps: ps["metadata"].update(digests={}), "metadata.digests"),
        (lambda ps: ps["metadata"]["labels"].append("bad label"), "metadata.labels[2]"),
        (lambda ps: ps.update(patches=[]), "patches"),
        (lambda ps: ps["patches"][1]["metadata"].update(name="a-b"), "patches[1].metadata.name"),
        (lambda ps: ps["patches"][2]["metadata"]["values"].pop(), "patches[2].metadata.values"),
        (lambda ps: ps["patches"][2]["metadata"]["values"].__setitem__(0, None),
         "patches[2].metadata.values[0]"),
        (lambda ps: ps["patches"][1].update(extra=1), "patches[1]"),
        (lambda ps: ps["patches"][2]["metadata"].update(name="point_0"),
         "patches[2].metadata.name"),
        (lambda ps: ps["patches"][2]["metadata"].update(values=[100, "t0"]),
         "patches[2].metadata.values"),
        (lambda ps: ps["patches"][0]["patch"][1].pop("path"), "patches[0].patch[1].path"),
        (lambda ps: ps["patches"][0]["patch"][1].update(op="move"), "patches[0].patch[1]"),
    ],
)
def test_bad_patchsets_name_the_place(edit, path):
    with pytest.raises(InvalidPatchSet) as exc:
        PatchSet(_broken(edit))
    assert exc.value.path == path


def test_duplicate_patch_names_are_rejected_like_pyhf():
    ps = _broken(lambda ps: ps["patches"][2]["metadata"].update(name="point_0"))
    with pytest.raises(pyhf.exceptions.InvalidPatchSet):
        pyhf.PatchSet(ps)
    with pytest.raises(InvalidPatchSet, match="same name 'point_0'"):
        PatchSet(ps)


def test_patch_producing_an_invalid_workspace():
    ws = zoo_case("normsys_only")
    ps = _patchset(ws)
    ps["patches"][0]["patch"] = [{"op": "remove", "path": "/observations/0"}]
    with pytest.raises(InvalidPatchSet, match="produces an invalid workspace") as exc:
        apply_patch(ws, ps, "point_0")
    assert exc.value.path == "patches[0]"
    ps["patches"][0]["patch"] = [{"op": "remove", "path": "/channels/5"}]
    with pytest.raises(InvalidPatchSet, match="out of range") as exc:
        apply_patch(ws, ps, "point_0")
    assert exc.value.path == "patches[0].patch[0]"


def test_patchset_file_errors(tmp_path):
    with pytest.raises(InvalidPatchSet, match="patchset file not found"):
        PatchSet(str(tmp_path / "missing.json"))
    path = tmp_path / "ps.json"
    path.write_text("{broken")
    with pytest.raises(InvalidWorkspace, match="malformed JSON"):
        PatchSet(path)
    path.write_text(json.dumps(_patchset(zoo_case("normsys_only"))))
    assert len(PatchSet(path)) == 3


# --------------------------------------------------------------------------
# simple models
# --------------------------------------------------------------------------

SIMPLE = [
    ("uncorrelated", ([12.0, 11.0, 3.0], [50.0, 52.0, 10.0], [3.0, 7.0, 0.5])),
    ("correlated", ([12.0, 11.0], [50.0, 52.0], [45.0, 57.0], [55.0, 47.0])),
]


@pytest.mark.parametrize(("kind", "args"), SIMPLE)
def test_simplemodels_match_pyhf(kind, args):
    ours_fn = getattr(simplemodels, f"{kind}_background")
    pm = getattr(pyhf.simplemodels, f"{kind}_background")(*args)
    ws = ours_fn(*args)
    assert ws["channels"] == pm.spec["channels"]
    assert ws["observations"][0]["data"] == args[1]  # default: background-only counts
    model = nextstat.from_pyhf(ws)
    assert model.parameter_names() == pm.config.par_names
    np.testing.assert_array_equal(model.suggested_init(), pm.config.suggested_init())
    assert model.suggested_bounds() == [tuple(b) for b in pm.config.suggested_bounds()]
    rng = np.random.default_rng(3)
    obs = [61.0, 55.0, 12.0][: len(args[0])]
    model = nextstat.from_pyhf(ours_fn(*args, observations=obs))
    data = obs + list(pm.config.auxdata)
    for _ in range(4):
        p = model.suggested_init() + rng.uniform(-0.3, 0.3, model.n_params())
        assert model.twice_nll(p, mode="parity") == pytest.approx(
            float(-2 * pm.logpdf(p, data)[0]), abs=TWICE_NLL_ATOL)


def test_simplemodels_reject_bad_input():
    with pytest.raises(InvalidWorkspace, match="bkg has 1 bins, signal has 2"):
        simplemodels.uncorrelated_background([1.0, 2.0], [3.0], [1.0, 1.0])
    with pytest.raises(InvalidWorkspace, match="bkg_down must be finite"):
        simplemodels.correlated_background([1.0], [3.0], [4.0], [float("nan")])
    with pytest.raises(InvalidWorkspace, match="observations has 3 bins"):
        simplemodels.uncorrelated_background([1.0], [3.0], [1.0], observations=[1, 2, 3])
    with pytest.raises(InvalidWorkspace, match=r"bkg_uncertainty|staterror|>= 0"):
        simplemodels.uncorrelated_background([1.0], [3.0], [-1.0])


def test_module_exports():
    for name in workspace_ops.__all__:
        assert hasattr(workspace_ops, name)
