"""The test zoo (tests/zoo.py) is deterministic, valid for pyhf 0.7.6 and for our validator."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest
from zoo import INTERPOLATION_SETTINGS, ZOO, ZOO_DESCRIPTIONS, pyhf_model, zoo_case

import nextstat.model.workspace as W

pyhf = pytest.importorskip("pyhf")

PYHF_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}


def _types(ws):
    return {m["type"] for c in ws["channels"] for s in c["samples"] for m in s["modifiers"]}


def _measurement_names(ws):
    return [m["name"] for m in ws["measurements"]]


@pytest.mark.parametrize("name", list(ZOO))
def test_case_builds_in_pyhf_and_logpdf_is_finite(name):
    ws = zoo_case(name)
    workspace = pyhf.Workspace(ws)
    for meas in _measurement_names(ws):
        model = workspace.model(measurement_name=meas, modifier_settings=PYHF_SETTINGS)
        data = workspace.data(model)
        logpdf = model.logpdf(model.config.suggested_init(), data)
        assert np.all(np.isfinite(logpdf)), (name, meas, logpdf)


@pytest.mark.parametrize("name", list(ZOO))
def test_case_is_valid_for_us(name):
    ws = zoo_case(name)
    W.validate_workspace(ws)
    assert W.load_workspace_spec(json.dumps(ws)) == ws


@pytest.mark.parametrize("name", list(ZOO))
@pytest.mark.parametrize("interpolation", ["pyhf", "root"])
def test_pyhf_model_helper(name, interpolation):
    ws = zoo_case(name)
    for meas in [None, *_measurement_names(ws)]:
        model, data = pyhf_model(ws, interpolation=interpolation, measurement=meas)
        assert len(data) == model.config.nmaindata + model.config.nauxdata
        assert np.all(np.isfinite(model.logpdf(model.config.suggested_init(), data)))
    assert ws == ZOO[name]  # the helper does not touch its input


def test_interpolation_settings_are_applied():
    ws = zoo_case("normsys_only")
    pars = None
    rates = {}
    for interpolation in ("pyhf", "root"):
        model, _ = pyhf_model(ws, interpolation)
        pars = model.config.suggested_init()
        pars[model.config.par_slice("bkg_norm")] = [0.5]
        rates[interpolation] = model.expected_actualdata(pars)
    # background 50 * kappa(0.5) in bin 0: code1 (1.12**0.5) vs the code4 polynomial
    assert rates["root"][0] == pytest.approx(5.0 + 50.0 * 1.12**0.5)
    assert rates["pyhf"][0] != pytest.approx(rates["root"][0], rel=1e-6)
    ws = zoo_case("histosys_only")
    for interpolation, expected in (("root", 5.0 + 50.0 + 0.5 * 5.0),):
        model, _ = pyhf_model(ws, interpolation)
        pars = model.config.suggested_init()
        pars[model.config.par_slice("bkg_shape")] = [0.5]
        assert model.expected_actualdata(pars)[0] == pytest.approx(expected)
    assert set(INTERPOLATION_SETTINGS) == {"pyhf", "root"}
    for value in INTERPOLATION_SETTINGS.values():
        assert set(value) == {"normsys", "histosys"}
    with pytest.raises(ValueError, match="interpolation"):
        pyhf_model(ws, "code2")


def test_pyhf_model_measurement_by_index_and_name():
    ws = zoo_case("two_measurements")
    assert pyhf_model(ws)[0].config.poi_name == "mu_sig"
    assert pyhf_model(ws, measurement=1)[0].config.poi_name == "mu_bkg"
    assert pyhf_model(ws, measurement="background_norm")[0].config.poi_name == "mu_bkg"


def test_zoo_case_is_a_deep_copy():
    a = zoo_case("realistic")
    a["channels"][0]["samples"][0]["data"][0] = -1.0
    assert zoo_case("realistic") != a
    assert ZOO["realistic"] == zoo_case("realistic")
    with pytest.raises(KeyError, match="normfactor_only"):
        zoo_case("no-such-case")


def test_zoo_is_plain_json_and_described():
    assert list(ZOO) == list(ZOO_DESCRIPTIONS)
    assert json.loads(json.dumps(ZOO)) == ZOO
    for ws in ZOO.values():
        for ch in ws["channels"]:
            for s in ch["samples"]:
                assert all(type(x) is float for x in s["data"])


def test_zoo_is_deterministic():
    import importlib

    import zoo

    before = copy.deepcopy(zoo.ZOO)
    importlib.reload(zoo)
    assert zoo.ZOO == before


# ---------------------------------------------------------------------------
# each case covers what its name says
# ---------------------------------------------------------------------------

SINGLE = {
    "normfactor_only": "normfactor",
    "normsys_only": "normsys",
    "histosys_only": "histosys",
    "staterror_only": "staterror",
    "shapesys_only": "shapesys",
    "shapefactor_only": "shapefactor",
    "lumi_only": "lumi",
}


@pytest.mark.parametrize(("name", "mtype"), list(SINGLE.items()))
def test_single_modifier_cases(name, mtype):
    assert _types(ZOO[name]) == {"normfactor", mtype}


def test_combination_cases_use_all_types():
    assert _types(ZOO["all_modifiers"]) == set(W.MODIFIER_TYPES)
    assert _types(ZOO["realistic"]) == set(W.MODIFIER_TYPES)


def test_multichannel_bins():
    model, _ = pyhf_model(ZOO["multichannel"])
    assert model.config.channel_nbins == {"CR": 2, "SR": 1, "VR": 4}


def test_realistic_size():
    model, data = pyhf_model(ZOO["realistic"])
    assert len(model.config.channels) == 5
    assert set(model.config.channel_nbins.values()) == {10}
    assert len(model.config.samples) == 5
    assert model.config.npars > 50


def test_shared_and_partial_staterror():
    def carriers(ws):
        return [
            s["name"]
            for s in ws["channels"][0]["samples"]
            if any(m["type"] == "staterror" for m in s["modifiers"])
        ]

    assert carriers(ZOO["shared_staterror"]) == ["signal", "bkg1", "bkg2"]
    assert carriers(ZOO["partial_staterror"]) == ["bkg1", "bkg2"]


def test_coupled_systematics_span_channels_and_samples():
    seen = {}
    for ch in ZOO["coupled_systematics"]["channels"]:
        for s in ch["samples"]:
            for m in s["modifiers"]:
                seen.setdefault((m["name"], m["type"]), set()).add((ch["name"], s["name"]))
    assert len({c for c, _ in seen[("jes", "histosys")]}) == 2
    assert len({s for _, s in seen[("jes", "histosys")]}) == 3
    assert len({c for c, _ in seen[("xsec_bkg", "normsys")]}) == 2


def test_shared_name_is_one_parameter():
    model, _ = pyhf_model(ZOO["normsys_histosys_same_name"])
    assert model.config.par_order == ["jes", "mu"]


def test_zero_bins_give_fixed_gammas():
    model, _ = pyhf_model(ZOO["zero_bins"])
    fixed = model.config.suggested_fixed()
    names = model.config.par_names
    assert sorted(n for n, f in zip(names, fixed, strict=True) if f) == [
        "bkg_empty_unc[0]",
        "bkg_ss_unc[1]",
        "staterror_SR[0]",
    ]


def test_measurement_overrides():
    model, _ = pyhf_model(ZOO["measurement_overrides"])
    init = dict(zip(model.config.par_names, model.config.suggested_init(), strict=True))
    fixed = dict(zip(model.config.par_names, model.config.suggested_fixed(), strict=True))
    bounds = dict(zip(model.config.par_names, model.config.suggested_bounds(), strict=True))
    assert init["mu"] == 1.5 and tuple(bounds["mu"]) == (0.0, 20.0)
    assert fixed["bkg_norm"] and init["bkg_norm"] == 0.5
    assert tuple(bounds["bkg_shape"]) == (-3.0, 3.0)
    assert init["lumi"] == 1.02
    assert model.config.auxdata[model.config.auxdata_order.index("lumi")] == 1.0


def test_two_measurements_have_different_pois():
    ws = ZOO["two_measurements"]
    pois = [pyhf_model(ws, measurement=m)[0].config.poi_name for m in _measurement_names(ws)]
    assert pois == ["mu_sig", "mu_bkg"]


def test_noninteger_observations():
    obs = ZOO["noninteger_obs"]["observations"][0]["data"]
    assert any(not float(x).is_integer() for x in obs)
    model, data = pyhf_model(ZOO["noninteger_obs"])
    assert math.isfinite(float(model.logpdf(model.config.suggested_init(), data)[0]))
