"""pyhs3 (PyPI) as a second opinion on nextstat's HS3 reader and writer.

pyhs3's NLL values are in ``tests/data/hs3/<name>.pyhs3.json``, written by
``tools/make_pyhs3_reference.py`` in a separate virtual environment; pyhs3 is not needed
here. The documents are ROOT 6.40's fixtures (``root_*.json``) and HS3 written by
``nextstat.to_hs3`` from zoo models (``ours_*.json``). Each reference has the variant
``as_written`` and, where pyhs3 fails on the document and an exact rewrite exists, the variant
``adapted`` (pyhs3 run on the rewritten document; nextstat always reads the original).

Every variant is either compared (:data:`COMPARED`) or excluded with its reason
(:data:`EXCLUDED`); :func:`test_every_variant_is_accounted_for` keeps the two lists complete,
and each exclusion has a test that shows pyhs3 does what the reason says and who is right
(ROOT's numbers in ``*.roofit.json`` and pyhf are the arbiters). Summary in
``docs/formats-hs3.md`` ("Cross-check with pyhs3").
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from zoo import pyhf_model, zoo_case

from nextstat.io.hs3 import from_hs3, hs3_to_workspace

DATA = Path(__file__).parent / "data" / "hs3"
#: The pyhs3 release the references were made with (the newest on PyPI when written). Another
#: version's references fail the bookkeeping test: re-check every exclusion below first.
PYHS3_VERSION = "0.4.2"
REFERENCES = sorted(p.name.removesuffix(".pyhs3.json") for p in DATA.glob("*.pyhs3.json"))

#: nextstat vs pyhs3 NLL *differences* between points (constants may differ; here they do
#: not, but nothing relies on it). Both evaluate the same float64 formulas in a different
#: order (pyhs3 through pytensor, forming constraint probabilities with exp() and taking the
#: log of their product): observed <= 2.5e-13 on NLLs of 5-40.
DNLL_TOL = 1e-11
#: The same, where pyhs3 evaluates a mis-read shapesys (tau up to 2.5e5, constraint terms of
#: O(100) that pyhs3 passes through exp()/log()): observed 4e-10.
DNLL_TOL_LARGE_TAU = 1e-8
#: A deviation that counts as real disagreement (orders of magnitude above the tolerances).
DISAGREE = 1e-3

# --- how each variant is used ---------------------------------------------------------
#: Compared directly: pyhs3 reads these exactly as nextstat does.
DIRECT = "direct"
#: Compared after adding the lumi constraint pyhs3 leaves out (see LUMI_OMITTED):
#: 0.5 * ((Lumi - nominal) / sigma)^2 from the document's gaussian_dist.
PLUS_LUMI = "plus_lumi"

COMPARED = {
    ("ours_coupled_systematics", "as_written"): DIRECT,  # normfactor, normsys, histosys
    ("ours_coupled_shapefactor", "as_written"): DIRECT,  # shapefactor shared by 2 channels
    ("ours_staterror_only", "adapted"): DIRECT,  # Gaussian staterror
    ("ours_lumi_only", "as_written"): PLUS_LUMI,
    ("ours_measurement_overrides", "as_written"): PLUS_LUMI,  # const normsys, lumi sigma .05
    ("root_norm_histo_stat", "adapted"): PLUS_LUMI,  # Gauss staterror, ROOT codes 5/none
    ("root_stat_poisson_threshold", "adapted"): PLUS_LUMI,  # Poisson staterror, const gamma
}

# --- why a variant is not compared -------------------------------------------------------
#: pyhs3 0.4.2 raises on every staterror written as HS3 (and ROOT) write it: errors in the
#: sample data, no modifier data (pyhs3's default barlow_beeston_method "lite"). Its model
#: builder calls StatErrorModifier.make_constraint for every staterror, which needs the
#: "full"-mode data.uncertainties that "lite" mode forbids.
STATERROR_CRASH = "StatErrorModifier.data is required"
#: pyhs3 refuses a shapesys whose parameters two channels share; ROOT writes a ShapeFactor
#: shared by channels exactly so (shapesys, all vals 0).
SHARED_SHAPESYS = "shapesys is per-channel and may not be shared"
#: The staterror is shared by several samples: pyhs3's "full" form would give each sample its
#: own constraint, a different likelihood, so there is no exact rewrite.
NO_EXACT_ADAPTATION = "no exact rewrite: a staterror shared by several samples"
#: pyhs3 reads shapesys data.vals as absolute uncertainties (tau = (nominal / vals)^2);
#: ROOT writes (and nextstat writes and reads) relative ones (tau = 1 / vals^2).
SHAPESYS_ABSOLUTE = "shapesys vals read as absolute"
#: pyhs3 ignores the modifier's "interpolation" (ROOT's code number, which nextstat writes);
#: it reads only its own data.interpolation and otherwise uses code4 / code4p.
INTERPOLATION_IGNORED = "interpolation key ignored"

EXCLUDED = {
    ("root_norm_histo_stat", "as_written"): STATERROR_CRASH,
    ("root_stat_poisson_threshold", "as_written"): STATERROR_CRASH,
    ("root_multichannel_stat", "as_written"): STATERROR_CRASH,
    ("root_shapesys_shapefactor", "as_written"): SHARED_SHAPESYS,
    ("ours_staterror_only", "as_written"): STATERROR_CRASH,
    ("ours_shared_staterror", "as_written"): STATERROR_CRASH,
    ("ours_all_modifiers", "as_written"): STATERROR_CRASH,
    ("root_shapesys_shapefactor", "adapted"): SHAPESYS_ABSOLUTE,
    ("ours_shapesys_only", "as_written"): SHAPESYS_ABSOLUTE,
    ("ours_coupled_systematics_root_codes", "as_written"): INTERPOLATION_IGNORED,
}
#: Documents where pyhs3 fails and no exact adaptation exists (no "adapted" variant).
NOT_ADAPTED = {
    "root_multichannel_stat": NO_EXACT_ADAPTATION,
    "ours_shared_staterror": NO_EXACT_ADAPTATION,
    "ours_all_modifiers": NO_EXACT_ADAPTATION,
}
#: pyhs3 builds no constraint for a normfactor with ``constraint_name`` (ROOT's ``Lumi``;
#: nextstat writes pyhf's lumi so): the lumi Gaussian is missing from its NLL.
LUMI_OMITTED = {name for (name, _), how in COMPARED.items() if how == PLUS_LUMI}


@cache
def _reference(name):
    return json.loads((DATA / f"{name}.pyhs3.json").read_text())


@cache
def _document(name):
    return json.loads((DATA / f"{name}.json").read_text())


def _nextstat_nll(doc, points, **kwargs):
    """Our NLL at points given in HS3 (= pyhs3) parameter names."""
    model = from_hs3(doc, **kwargs)
    _, info = hs3_to_workspace(doc)
    names = model.parameter_names()
    out = []
    for point in points:
        vec = model.suggested_init()
        for hs3_name, value in point.items():
            vec[names.index(info["parameters"][hs3_name])] = value
        out.append(model.nll(vec))
    return np.array(out)


def _lumi_modifiers(doc):
    return [m for d in doc["distributions"] if d["type"] == "histfactory_dist"
            for s in d["samples"] for m in s["modifiers"]
            if m["type"] == "normfactor" and "constraint_name" in m]


def _has_lumi(doc):
    return bool(_lumi_modifiers(doc))


def _lumi_term(doc, points):
    """The constrained normfactor's Gaussian term, 0.5 * ((x - mean) / sigma)^2."""
    mods = _lumi_modifiers(doc)
    param, cname = mods[0]["parameter"], mods[0]["constraint_name"]
    gauss = next(d for d in doc["distributions"] if d["name"] == cname)
    mean = gauss["mean"]
    if isinstance(mean, str):  # a global observable: its value in the parameter point
        pars = doc["parameter_points"][0]["parameters"]
        mean = next(p["value"] for p in pars if p["name"] == mean)
    x = np.array([p[param] for p in points])
    return 0.5 * ((x - mean) / gauss["sigma"]) ** 2


def _differences(values):
    values = np.asarray(values, dtype=float)
    return values - values[0]


# ---------------------------------------------------------------------------------------
# bookkeeping: nothing is skipped silently
# ---------------------------------------------------------------------------------------


def test_every_variant_is_accounted_for():
    seen = set()
    for name in REFERENCES:
        ref = _reference(name)
        assert ref["pyhs3_version"] == PYHS3_VERSION
        for variant, result in ref["variants"].items():
            key = (name, variant)
            seen.add(key)
            assert (key in COMPARED) != (key in EXCLUDED), key
            if key in COMPARED:
                assert result["status"] == "ok", key
        if "adapted" not in ref["variants"]:
            assert ref["variants"]["as_written"]["status"] == "ok" or name in NOT_ADAPTED
    assert seen == set(COMPARED) | set(EXCLUDED)
    assert {n for n, v in EXCLUDED if v == "as_written"} >= set(NOT_ADAPTED)


# ---------------------------------------------------------------------------------------
# where pyhs3 is trustworthy: NLL differences agree
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "variant"), sorted(COMPARED))
def test_nll_differences_agree_with_pyhs3(name, variant):
    result = _reference(name)["variants"][variant]
    doc = _document(name)  # nextstat reads the document as written, never the adaptation
    points = result["points"]
    assert len(points) >= 5
    theirs = np.array(result["nll"])
    if COMPARED[(name, variant)] == PLUS_LUMI:
        theirs = theirs + _lumi_term(doc, points)
    ours = _nextstat_nll(doc, points)
    np.testing.assert_allclose(_differences(ours), _differences(theirs), rtol=0, atol=DNLL_TOL)


@pytest.mark.parametrize("name", sorted(n for n in LUMI_OMITTED if n.startswith("root_")))
def test_pyhs3_omits_lumi_constraint_root_decides(name):
    """At RooFit's points: pyhs3 misses exactly the lumi Gaussian, nothing else."""
    roofit = json.loads((DATA / f"{name}.roofit.json").read_text())
    result = _reference(name)["variants"]["adapted"]
    lumi = _lumi_term(_document(name), roofit["points"])
    root = _differences(roofit["nll_at_points"])
    pyhs3 = _differences(result["nll_at_roofit_points"])
    assert np.abs(root - pyhs3).max() > DISAGREE
    np.testing.assert_allclose(pyhs3 + _differences(lumi), root, rtol=0, atol=DNLL_TOL)


# ---------------------------------------------------------------------------------------
# where pyhs3 is not: each exclusion shown to be what its reason says
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "variant"),
    sorted(k for k, why in EXCLUDED.items() if why in (STATERROR_CRASH, SHARED_SHAPESYS)),
)
def test_pyhs3_fails_as_recorded(name, variant):
    result = _reference(name)["variants"][variant]
    assert result["status"] == "error"
    assert EXCLUDED[(name, variant)] in result["error"]
    # ... while nextstat reads the document (and matches ROOT on it: tests/test_hs3.py)
    assert np.isfinite(_nextstat_nll(_document(name), [{}])[0])


def _shapesys_as_absolute(doc):
    """The document with shapesys vals turned into what pyhs3 takes them for: vals/nominal
    is the relative uncertainty that gives pyhs3's tau = (nominal / vals)^2."""
    doc = copy.deepcopy(doc)
    for dist in doc["distributions"]:
        for sample in dist.get("samples", []):
            for mod in sample["modifiers"]:
                if mod["type"] == "shapesys" and any(mod["data"]["vals"]):
                    mod["data"]["vals"] = [v / n for v, n in zip(
                        mod["data"]["vals"], sample["data"]["contents"], strict=True)]
    return doc


@pytest.mark.parametrize(("name", "variant"), sorted(
    k for k, why in EXCLUDED.items() if why == SHAPESYS_ABSOLUTE))
def test_pyhs3_reads_shapesys_vals_as_absolute(name, variant):
    doc = _document(name)
    result = _reference(name)["variants"][variant]
    points, theirs = result["points"], np.array(result["nll"])
    if _has_lumi(doc):
        theirs = theirs + _lumi_term(doc, points)
    finite = np.isfinite(theirs)  # pyhs3 underflows to inf where tau is huge
    assert finite[0] and finite.sum() >= 2
    points, theirs = [p for p, f in zip(points, finite, strict=True) if f], theirs[finite]
    # pyhs3 == nextstat reading the vals as absolute ...
    as_absolute = _nextstat_nll(_shapesys_as_absolute(doc), points)
    np.testing.assert_allclose(_differences(as_absolute), _differences(theirs), rtol=0,
                               atol=DNLL_TOL_LARGE_TAU)
    # ... and not the file's meaning
    ours = _nextstat_nll(doc, points)
    assert np.abs(_differences(ours) - _differences(theirs)).max() > DISAGREE


def test_shapesys_relative_root_decides():
    """ROOT built root_shapesys_shapefactor with relative ShapeSys errors 0.2, 0.3 and wrote
    vals [0.2, 0.3]: pyhs3's reading is far from RooFit's NLL, nextstat's is on it."""
    name = "root_shapesys_shapefactor"
    doc = _document(name)
    roofit = json.loads((DATA / f"{name}.roofit.json").read_text())
    root = _differences(roofit["nll_at_points"])
    pyhs3 = _differences(np.array(_reference(name)["variants"]["adapted"]["nll_at_roofit_points"])
                         + _lumi_term(doc, roofit["points"]))
    assert np.abs(pyhs3 - root).max() > 1.0
    ours = _differences(_nextstat_nll(doc, roofit["points"]))
    np.testing.assert_allclose(ours, root, rtol=0, atol=DNLL_TOL)


def test_shapesys_relative_pyhf_decides():
    """ours_shapesys_only is zoo 'shapesys_only' written by to_hs3: pyhf's logpdf of the
    zoo workspace agrees with nextstat's reading of the file, not with pyhs3's."""
    pytest.importorskip("pyhf")
    name = "ours_shapesys_only"
    result = _reference(name)["variants"]["as_written"]
    pmodel, pdata = pyhf_model(zoo_case("shapesys_only"))
    model = from_hs3(_document(name))
    _, info = hs3_to_workspace(_document(name))
    assert model.parameter_names() == pmodel.config.par_names
    pyhf_nll = []
    for point in result["points"]:
        vec = model.suggested_init()
        for hs3_name, value in point.items():
            vec[model.parameter_names().index(info["parameters"][hs3_name])] = value
        pyhf_nll.append(-float(pmodel.logpdf(vec, pdata)[0]))
    ours = _nextstat_nll(_document(name), result["points"])
    np.testing.assert_allclose(_differences(ours), _differences(pyhf_nll), rtol=0, atol=DNLL_TOL)
    theirs = np.array(result["nll"])
    assert not np.all(np.isfinite(theirs))  # pyhs3: inf where its tau ~ 1e5 meets gamma 0.9
    ok = np.isfinite(theirs)
    assert np.abs(_differences(ours[ok]) - _differences(theirs[ok])).max() > DISAGREE


def test_pyhs3_ignores_interpolation_pyhf_decides():
    """ours_coupled_systematics_root_codes: zoo 'coupled_systematics' with normsys code1 and
    histosys code0, written as ROOT codes 1 and 0. pyhs3's numbers are those of code4/code4p;
    pyhf with code1/code0 agrees with nextstat's reading."""
    pytest.importorskip("pyhf")
    name = "ours_coupled_systematics_root_codes"
    doc = _document(name)
    result = _reference(name)["variants"]["as_written"]
    points, theirs = result["points"], _differences(result["nll"])
    as_pyhs3 = _differences(_nextstat_nll(doc, points, interpolation="pyhf"))
    np.testing.assert_allclose(as_pyhs3, theirs, rtol=0, atol=DNLL_TOL)
    ours = _differences(_nextstat_nll(doc, points))
    assert np.abs(ours - theirs).max() > DISAGREE
    pmodel, pdata = pyhf_model(zoo_case("coupled_systematics"), interpolation="root")
    model = from_hs3(doc)
    assert model.parameter_names() == pmodel.config.par_names
    vecs = [np.array([p.get(n, v) for n, v in zip(model.parameter_names(),
                                                  model.suggested_init(), strict=True)])
            for p in points]
    pyhf_nll = _differences([-float(pmodel.logpdf(v, pdata)[0]) for v in vecs])
    np.testing.assert_allclose(ours, pyhf_nll, rtol=0, atol=DNLL_TOL)


# ---------------------------------------------------------------------------------------
# reader fixes prompted by pyhs3's files
# ---------------------------------------------------------------------------------------


def _pyhs3_style(doc, normsys_code, histosys_code):
    """The document as pyhs3 serialises it: codes as data.interpolation, no ROOT key."""
    doc = copy.deepcopy(doc)
    for dist in doc["distributions"]:
        for sample in dist.get("samples", []):
            for mod in sample["modifiers"]:
                if mod["type"] in ("normsys", "histosys"):
                    mod.pop("interpolation", None)
                    code = normsys_code if mod["type"] == "normsys" else histosys_code
                    mod["data"]["interpolation"] = code
    return doc


def test_data_interpolation_read_pyhf_decides():
    """pyhs3 writes codes as data.interpolation ("code1"); nextstat used to ignore them."""
    pytest.importorskip("pyhf")
    doc = _pyhs3_style(_document("ours_coupled_systematics"), "code1", "code0")
    pmodel, pdata = pyhf_model(zoo_case("coupled_systematics"), interpolation="root")
    model = from_hs3(doc)
    assert model.interpolation_codes() == {"normsys": "1", "histosys": "0"}
    rng = np.random.default_rng(11)
    for _ in range(4):
        p = model.suggested_init() + rng.uniform(-1.5, 1.5, model.n_params())
        assert model.nll(p) == pytest.approx(-float(pmodel.logpdf(p, pdata)[0]), abs=1e-9)


def test_data_interpolation_conflicting_with_root_code():
    doc = _pyhs3_style(_document("ours_coupled_systematics"), "code1", "code4p")
    mod = next(m for d in doc["distributions"] for s in d.get("samples", [])
               for m in s["modifiers"] if m["type"] == "normsys")
    mod["interpolation"] = 5  # ROOT's code 5 is code4, not code1
    from nextstat.errors import InvalidFormat

    with pytest.raises(InvalidFormat, match="different codes"):
        from_hs3(doc)
    mod["data"]["interpolation"] = "code7"
    with pytest.raises(InvalidFormat, match="code7") as err:
        from_hs3(doc)
    assert err.value.where.endswith(".data.interpolation")


def test_barlow_beeston_full_refused():
    """pyhs3's barlow_beeston_method 'full' (a constraint per sample) is another likelihood
    than HS3/ROOT/pyhf staterror; nextstat refuses it instead of reading it as 'lite'."""
    from nextstat.errors import InvalidFormat

    doc = copy.deepcopy(_document("ours_shared_staterror"))
    dist = doc["distributions"][0]
    dist["barlow_beeston_method"] = "full"
    with pytest.raises(InvalidFormat, match="barlow_beeston_method") as err:
        from_hs3(doc)
    assert err.value.where == "distributions[0].barlow_beeston_method"
    dist["barlow_beeston_method"] = "lite"  # pyhs3's default, spelled out: accepted
    assert from_hs3(doc).parameter_names() == from_hs3(_document("ours_shared_staterror")) \
        .parameter_names()
