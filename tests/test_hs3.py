"""HS3 import/export (nextstat.io.hs3): round trips, ROOT 6.40 fixtures, bad input.

The ROOT fixtures in ``tests/data/hs3/`` were written by ``tools/make_hs3_fixtures.py``:
HistFactory models built with ROOT's C++ API, exported with ``RooJSONFactoryWSTool``, with
RooFit's NLL at random parameter points and its Minuit2 best fit. ROOT is not needed here.
"""

from __future__ import annotations

import copy
import json
import zlib
from pathlib import Path

import numpy as np
import pytest
from zoo import ZOO, pyhf_model, zoo_case

import nextstat
from nextstat.errors import InvalidFormat
from nextstat.io.hs3 import from_hs3, hs3_to_workspace, to_hs3

DATA = Path(__file__).parent / "data" / "hs3"
ROOT_FIXTURES = sorted(p.name[: -len(".roofit.json")] for p in DATA.glob("*.roofit.json"))

#: Round trip through HS3: the same numbers reach the same kernels, except shapesys
#: uncertainties, which travel as relative values (delta/nu * nu may differ in the last bit).
ROUNDTRIP_NLL_TOL = 1e-10
#: ... and the shapesys auxiliary data tau = 1/rel^2 computed from them (a few ulp).
ROUNDTRIP_TAU_RTOL = 1e-13
#: RooFit vs nextstat NLL *differences* between parameter points. The formulas agree to
#: ~1e-13, but ROOT's exporter rounds the per-sample staterror ``errors`` it writes to 7
#: significant digits (when several samples share a staterror it rescales them), so the file
#: describes RooFit's in-memory model only to ~1e-7 relative (observed: 1e-7 on
#: root_multichannel_stat, 1e-13 elsewhere).
ROOT_DNLL_TOL = 1e-6
#: Best-fit parameters vs RooFit's Minuit2 (strategy 2, EDM ~1e-6): values agree to ~1e-5;
#: the bound allows Minuit's EDM stopping rule on sigma ~ 0.05-1 parameters.
ROOT_BESTFIT_TOL = 2e-3
#: Our minimum may only be lower than RooFit's (both minimise the same function) and not by
#: more than Minuit's EDM tolerance.
ROOT_MIN_NLL_TOL = 1e-6
#: pyhf oracle: pyhf's logpdf vs ours, both float64 with all constants.
PYHF_NLL_TOL = 1e-9

N_POINTS = 4


def _random_points(model, rng, n=N_POINTS, spread=0.3):
    lo, hi = np.array(model.suggested_bounds()).T
    init = model.suggested_init()
    free = ~np.array(model.suggested_fixed())
    pts = []
    for _ in range(n):
        p = init + free * rng.uniform(-spread, spread, init.size)
        pts.append(np.clip(p, lo, hi))
    return pts


def _load_fixture(name):
    doc = json.loads((DATA / f"{name}.json").read_text())
    ref = json.loads((DATA / f"{name}.roofit.json").read_text())
    return doc, ref


# ---------------------------------------------------------------------------------------
# round trips on the zoo
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(ZOO))
def test_zoo_roundtrip_same_nll(case):
    model = nextstat.from_pyhf(zoo_case(case), unknown_parameters="ignore")
    doc = json.loads(json.dumps(to_hs3(model)))  # through JSON text, as a file would be
    back = from_hs3(doc)
    assert back.parameter_names() == model.parameter_names()
    assert back.poi_name == model.poi_name
    assert back.suggested_fixed() == model.suggested_fixed()
    np.testing.assert_allclose(back.suggested_bounds(), model.suggested_bounds(), rtol=1e-15)
    np.testing.assert_allclose(back.suggested_init(), model.suggested_init(), rtol=1e-15)
    np.testing.assert_array_equal(back.observed_main(), model.observed_main())
    np.testing.assert_allclose(back.aux_data(), model.aux_data(), rtol=ROUNDTRIP_TAU_RTOL)
    rng = np.random.default_rng(zlib.crc32(case.encode()))
    for p in _random_points(model, rng):
        assert back.nll(p) == pytest.approx(model.nll(p), abs=ROUNDTRIP_NLL_TOL, rel=0)


def test_roundtrip_second_measurement():
    model = nextstat.from_pyhf(zoo_case("two_measurements"), measurement="background_norm")
    back = from_hs3(to_hs3(model))
    assert back.poi_name == "mu_bkg"
    assert back.suggested_fixed() == model.suggested_fixed()
    for p in _random_points(model, np.random.default_rng(3)):
        assert back.nll(p) == pytest.approx(model.nll(p), abs=ROUNDTRIP_NLL_TOL, rel=0)


@pytest.mark.parametrize("case", ["all_modifiers", "coupled_systematics", "zero_bins"])
def test_pyhf_json_to_hs3_matches_pyhf(case):
    """pyhf JSON -> to_hs3 -> from_hs3 against pyhf's own logpdf (independent oracle)."""
    pytest.importorskip("pyhf")
    ws = zoo_case(case)
    pmodel, pdata = pyhf_model(ws)
    back = from_hs3(to_hs3(nextstat.from_pyhf(ws)))
    assert back.parameter_names() == pmodel.config.par_names
    for p in _random_points(back, np.random.default_rng(7)):
        expected = -float(pmodel.logpdf(p, pdata)[0])
        assert back.nll(p) == pytest.approx(expected, abs=PYHF_NLL_TOL, rel=0)


def test_roundtrip_root_codes_and_export_keys():
    model = nextstat.from_pyhf(zoo_case("coupled_systematics"), interpolation="root")
    doc = to_hs3(model)
    mods = [m for d in doc["distributions"] for s in d.get("samples", []) for m in s["modifiers"]]
    assert {m["interpolation"] for m in mods if m["type"] == "normsys"} == {1}
    assert {m["interpolation"] for m in mods if m["type"] == "histosys"} == {0}
    back = from_hs3(doc)
    assert back.interpolation_codes() == {"normsys": "1", "histosys": "0"}
    for p in _random_points(model, np.random.default_rng(5), spread=1.5):
        assert back.nll(p) == pytest.approx(model.nll(p), abs=ROUNDTRIP_NLL_TOL, rel=0)


def test_export_rejects_normsys_code_4p():
    model = nextstat.from_pyhf(zoo_case("normsys_only"), interpolation={"normsys": "4p"})
    with pytest.raises(InvalidFormat, match="4p"):
        to_hs3(model)


def test_bestfit_parameter_point():
    model = nextstat.from_pyhf(zoo_case("all_modifiers"))
    fit = nextstat.fit(model)
    doc = to_hs3(model, bestfit=fit)
    assert [p["name"] for p in doc["parameter_points"]] == ["default_values", "bestfit"]
    at_best = from_hs3(doc, parameter_point="bestfit")
    np.testing.assert_allclose(at_best.suggested_init(), fit.bestfit, rtol=0, atol=1e-15)
    np.testing.assert_allclose(from_hs3(doc).suggested_init(), model.suggested_init())


def test_export_uses_current_observed_data():
    model = nextstat.from_pyhf(zoo_case("normsys_only")).with_observed_main([40.0, 80.0])
    back = from_hs3(to_hs3(model))
    np.testing.assert_array_equal(back.observed_main(), [40.0, 80.0])


# ---------------------------------------------------------------------------------------
# ROOT 6.40 fixtures
# ---------------------------------------------------------------------------------------


def _vector(model, info, values):
    names = model.parameter_names()
    vec = model.suggested_init()
    for hs3_name, v in values.items():
        vec[names.index(info["parameters"][hs3_name])] = v
    return vec


@pytest.mark.parametrize("name", ROOT_FIXTURES)
def test_root_fixture_nll_differences(name):
    doc, ref = _load_fixture(name)
    _, info = hs3_to_workspace(doc)
    assert info["analysis"] == "simPdf_obsData"  # not ROOT's asimovData analysis
    assert info["interpolation"] == {"normsys": "4", "histosys": "4p"}
    model = from_hs3(doc)
    ours = np.array([model.nll(_vector(model, info, p)) for p in ref["points"]])
    roofit = np.array(ref["nll_at_points"])
    np.testing.assert_allclose(ours - ours[0], roofit - roofit[0], rtol=0, atol=ROOT_DNLL_TOL)


@pytest.mark.parametrize("name", ROOT_FIXTURES)
def test_root_fixture_bestfit(name):
    doc, ref = _load_fixture(name)
    assert ref["fit_status"] == 0
    _, info = hs3_to_workspace(doc)
    model = from_hs3(doc)
    fit = nextstat.fit(model)
    roofit_best = _vector(model, info, ref["bestfit"])
    np.testing.assert_allclose(fit.bestfit, roofit_best, rtol=0, atol=ROOT_BESTFIT_TOL)
    # same minimum depth relative to the default point, in both implementations
    start = _vector(model, info, ref["points"][0])
    ours = fit.nll - model.nll(start)
    theirs = ref["nll_bestfit"] - ref["nll_at_points"][0]
    assert ours <= theirs + 1e-9
    assert ours == pytest.approx(theirs, abs=ROOT_MIN_NLL_TOL, rel=0)


def test_root_parameter_map_and_semantics():
    doc, _ = _load_fixture("root_shapesys_shapefactor")
    ws, info = hs3_to_workspace(doc)
    assert info["parameters"]["Lumi"] == "lumi"
    assert info["parameters"]["gamma_sf_w_bin_1"] == "gamma_sf_w[1]"
    kinds = {m["name"]: m["type"] for c in ws["channels"] for s in c["samples"]
             for m in s["modifiers"]}
    # ROOT writes a ShapeFactor as a shapesys with zero uncertainties
    assert kinds["gamma_sf_w"] == "shapefactor"
    assert kinds["gamma_fakes_unc"] == "shapesys"
    lumi = next(p for p in ws["measurements"][0]["config"]["parameters"] if p["name"] == "lumi")
    assert lumi["auxdata"] == [1.0] and lumi["sigmas"] == [0.02]


def test_root_threshold_gamma_is_fixed():
    doc, _ = _load_fixture("root_stat_poisson_threshold")
    ws, info = hs3_to_workspace(doc)
    model = from_hs3(doc)
    fixed = dict(zip(model.parameter_names(), model.suggested_fixed(), strict=True))
    assert fixed["gamma_stat_SR[0]"] and not fixed["gamma_stat_SR[1]"]
    stat = [m for m in ws["channels"][0]["samples"][0]["modifiers"]
            if m["name"] == "gamma_stat_SR"]
    assert stat[0]["type"] == "shapesys"  # Poisson staterror on one sample


def test_root_asimov_analysis_selectable():
    doc, _ = _load_fixture("root_norm_histo_stat")
    asimov = from_hs3(doc, analysis="simPdf_asimovData")
    observed = from_hs3(doc)
    assert not np.array_equal(asimov.observed_main(), observed.observed_main())


# ---------------------------------------------------------------------------------------
# nextstat.load detection and interpolation override
# ---------------------------------------------------------------------------------------


def test_load_detects_hs3_dict_text_and_path():
    path = DATA / "root_norm_histo_stat.json"
    doc = json.loads(path.read_text())
    expected = from_hs3(doc)
    p = expected.suggested_init() + 0.01
    for source in (doc, path.read_text(), path, str(path)):
        model = nextstat.load(source)
        assert model.parameter_names() == expected.parameter_names()
        assert model.nll(p) == expected.nll(p)


def test_load_interpolation_override():
    path = DATA / "root_norm_histo_stat.json"
    model = nextstat.load(path, interpolation="root")
    assert model.interpolation_codes() == {"normsys": "1", "histosys": "0"}
    assert nextstat.load(path, analysis="simPdf_asimovData").measurement == "simPdf_asimovData"


# ---------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------


@pytest.fixture
def root_doc():
    doc, _ = _load_fixture("root_norm_histo_stat")
    return doc


def _model_dist(doc):
    return next(i for i, d in enumerate(doc["distributions"]) if d["name"] == "model_SR")


def _sample_index(doc, name):
    dist = doc["distributions"][_model_dist(doc)]
    return next(j for j, s in enumerate(dist["samples"]) if s["name"] == name)


def _raises(doc, match, where, **kwargs):
    with pytest.raises(InvalidFormat, match=match) as err:
        from_hs3(doc, **kwargs)
    assert err.value.where == where
    return err.value


def test_unknown_modifier_type_named(root_doc):
    d, s = _model_dist(root_doc), _sample_index(root_doc, "signal")
    root_doc["distributions"][d]["samples"][s]["modifiers"][1]["type"] = "morphsys"
    _raises(root_doc, "unknown modifier type 'morphsys'",
            f"distributions[{d}].samples[{s}].modifiers[1]")


def test_unknown_distribution_type_named(root_doc):
    d = _model_dist(root_doc)
    root_doc["distributions"][d]["type"] = "mixture_dist"
    _raises(root_doc, "mixture_dist", f"distributions[{d}]")


def test_missing_constraint_distribution(root_doc):
    d, s = _model_dist(root_doc), _sample_index(root_doc, "background")
    mod = root_doc["distributions"][d]["samples"][s]["modifiers"][0]
    mod["constraint_name"] = "nope"
    _raises(root_doc, "'nope' is not defined", f"distributions[{d}].samples[{s}].modifiers[0]")


def test_histosys_wrong_bin_count(root_doc):
    d, s = _model_dist(root_doc), _sample_index(root_doc, "background")
    mods = root_doc["distributions"][d]["samples"][s]["modifiers"]
    k = next(k for k, m in enumerate(mods) if m["type"] == "histosys")
    mods[k]["data"]["hi"]["contents"].append(1.0)
    _raises(root_doc, "4 bins", f"distributions[{d}].samples[{s}].modifiers[{k}].data.hi.contents")


def test_mixed_interpolation_codes_need_a_choice(root_doc):
    d = _model_dist(root_doc)
    for s in root_doc["distributions"][d]["samples"]:
        for m in s["modifiers"]:
            if m["type"] == "normsys" and s["name"] == "signal":
                m["interpolation"] = 1
    _raises(root_doc, "different interpolation codes", "distributions")
    model = from_hs3(root_doc, interpolation="pyhf")  # an explicit choice resolves it
    assert model.interpolation_codes()["normsys"] == "4"


def test_unsupported_interpolation_code(root_doc):
    d, s = _model_dist(root_doc), _sample_index(root_doc, "signal")
    mods = root_doc["distributions"][d]["samples"][s]["modifiers"]
    k = next(k for k, m in enumerate(mods) if m["type"] == "normsys")
    mods[k]["interpolation"] = 3
    _raises(root_doc, "code 3", f"distributions[{d}].samples[{s}].modifiers[{k}].interpolation")


def test_shared_poisson_staterror_rejected(root_doc):
    d = _model_dist(root_doc)
    dist = root_doc["distributions"][d]
    bkg = next(s for s in dist["samples"] if s["name"] == "background")
    stat = next(m for m in bkg["modifiers"] if m["type"] == "staterror")
    stat["constraint_type"] = "Poisson"
    sig = next(s for s in dist["samples"] if s["name"] == "signal")
    sig["modifiers"].append(copy.deepcopy(stat))
    sig["data"]["errors"] = [0.5, 0.5, 0.5]
    _raises(root_doc, "shared Poisson", f"distributions[{d}]")


def test_staterror_without_errors(root_doc):
    d, s = _model_dist(root_doc), _sample_index(root_doc, "background")
    del root_doc["distributions"][d]["samples"][s]["data"]["errors"]
    _raises(root_doc, "data.errors", f"distributions[{d}].samples[{s}]")


def test_partially_const_shapefactor_rejected():
    doc, _ = _load_fixture("root_shapesys_shapefactor")
    point = doc["parameter_points"][0]
    entry = next(p for p in point["parameters"] if p["name"] == "gamma_sf_w_bin_0")
    entry["const"] = True
    with pytest.raises(InvalidFormat, match="const"):
        from_hs3(doc)


def test_unknown_analysis_and_point(root_doc):
    _raises(root_doc, "no analysis named 'x'", "analyses", analysis="x")
    _raises(root_doc, "no parameter point named 'y'", "parameter_points", parameter_point="y")


def test_missing_data_and_bad_contents(root_doc):
    lik = next(i for i, x in enumerate(root_doc["likelihoods"]) if x["name"] == "simPdf_obsData")
    good = copy.deepcopy(root_doc)
    root_doc["likelihoods"][lik]["data"] = ["absent"]
    _raises(root_doc, "data 'absent' is not defined", f"likelihoods[{lik}].data[0]")
    k = next(i for i, x in enumerate(good["data"]) if x["name"] == "obsData_SR")
    good["data"][k]["contents"] = [1.0, "two", 3.0]
    _raises(good, "list of numbers", f"data[{k}].contents")


def test_not_an_object():
    with pytest.raises(InvalidFormat):
        hs3_to_workspace(["distributions"])


def test_mistyped_lists_and_settings_named(root_doc):
    ana = next(i for i, a in enumerate(root_doc["analyses"]) if "obsData" in a["name"])
    d = _model_dist(root_doc)

    def broken(change):
        doc = copy.deepcopy(root_doc)
        change(doc)
        return doc

    # a bare string POI used to be read as its first letter
    doc = broken(lambda x: x["analyses"][ana].__setitem__("parameters_of_interest", "mu"))
    _raises(doc, "list of names", f"analyses[{ana}].parameters_of_interest")
    doc = broken(lambda x: x["analyses"][ana].__setitem__("domains", [["default_domain"]]))
    _raises(doc, "list of names", f"analyses[{ana}].domains")
    doc = broken(lambda x: x["distributions"][d].__setitem__("staterror", [0.05]))
    _raises(doc, "'staterror' must be a dict", f"distributions[{d}]")
    doc = broken(lambda x: x["distributions"][d].__setitem__("staterror",
                                                     {"relThreshold": "5%"}))
    _raises(doc, "finite number", f"distributions[{d}].staterror.relThreshold")
    doc = broken(lambda x: x["distributions"][d]["axes"][0].__setitem__("nbins", 2.5))
    _raises(doc, "positive integer", f"distributions[{d}].axes[0].nbins")
    s = _sample_index(root_doc, "signal")
    mods = root_doc["distributions"][d]["samples"][s]["modifiers"]
    k = next(k for k, m in enumerate(mods) if m["type"] == "normsys")
    mods[k]["interpolation"] = [4]
    _raises(root_doc, "code", f"distributions[{d}].samples[{s}].modifiers[{k}].interpolation")
