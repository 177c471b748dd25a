"""Tests of nextstat.model.workspace: loading and validating pyhf workspaces."""

from __future__ import annotations

import copy
import gzip
import json
import pathlib
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zoo import ZOO, zoo_case

import nextstat.model.workspace as W

InvalidWorkspace = W.InvalidWorkspace
InvalidArgumentType = W.InvalidArgumentType
load_workspace_spec = W.load_workspace_spec
validate_workspace = W.validate_workspace
select_measurement = W.select_measurement

pyhf = pytest.importorskip("pyhf")


def pyhf_schema_accepts(ws) -> bool:
    try:
        pyhf.schema.validate(ws, "workspace.json")
    except pyhf.exceptions.InvalidSpecification:
        return False
    return True


def raises_at(ws, path, *fragments):
    """Assert validate_workspace fails at ``path`` with all ``fragments`` in the message."""
    with pytest.raises(InvalidWorkspace) as info:
        validate_workspace(ws)
    err = info.value
    assert err.path == path, str(err)
    if path is not None:
        assert path in str(err)
    for fragment in fragments:
        assert fragment in str(err), f"{fragment!r} not in {str(err)!r}"
    return err


# ---------------------------------------------------------------------------
# a base workspace with every modifier type, two channels and two measurements
# ---------------------------------------------------------------------------


def base():
    return {
        "channels": [
            {
                "name": "SR",
                "samples": [
                    {
                        "name": "sig",
                        "data": [5.0, 4.0, 3.0, 2.0],
                        "modifiers": [
                            {"name": "mu", "type": "normfactor", "data": None},
                            {"name": "lumi", "type": "lumi", "data": None},
                        ],
                    },
                    {
                        "name": "bkg",
                        "data": [50.0, 40.0, 30.0, 20.0],
                        "modifiers": [
                            {
                                "name": "jes",
                                "type": "histosys",
                                "data": {
                                    "hi_data": [52.0, 41.0, 31.0, 21.0],
                                    "lo_data": [48.0, 39.0, 29.0, 19.0],
                                },
                            },
                            {"name": "xsec", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}},
                            {"name": "stat_SR", "type": "staterror", "data": [2.0, 2.0, 1.0, 1.0]},
                            {"name": "lumi", "type": "lumi", "data": None},
                        ],
                    },
                ],
            },
            {
                "name": "CR",
                "samples": [
                    {
                        "name": "bkg",
                        "data": [100.0, 80.0],
                        "modifiers": [
                            {"name": "sf", "type": "shapefactor", "data": None},
                            {"name": "unc", "type": "shapesys", "data": [10.0, 8.0]},
                        ],
                    }
                ],
            },
        ],
        "observations": [
            {"name": "SR", "data": [55.0, 44.0, 33.0, 22.0]},
            {"name": "CR", "data": [101.0, 79.0]},
        ],
        "measurements": [
            {
                "name": "meas",
                "config": {
                    "poi": "mu",
                    "parameters": [
                        {
                            "name": "lumi",
                            "inits": [1.0],
                            "bounds": [[0.9, 1.1]],
                            "auxdata": [1.0],
                            "sigmas": [0.02],
                        },
                        {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                        {"name": "xsec", "fixed": True},
                    ],
                },
            },
            {
                "name": "alt",
                "config": {
                    "poi": "xsec",
                    "parameters": [
                        {
                            "name": "lumi",
                            "inits": [1.0],
                            "bounds": [[0.9, 1.1]],
                            "auxdata": [1.0],
                            "sigmas": [0.02],
                        }
                    ],
                },
            },
        ],
        "version": "1.0.0",
    }


def test_base_is_valid_for_us_and_pyhf():
    ws = base()
    validate_workspace(ws)
    assert pyhf_schema_accepts(ws)
    for name in ("meas", "alt"):
        model = pyhf.Workspace(ws).model(measurement_name=name)
        assert np.isfinite(
            model.logpdf(model.config.suggested_init(), pyhf.Workspace(ws).data(model))
        )


# ---------------------------------------------------------------------------
# one test per validation rule: (mutation, expected path, message fragments)
# ---------------------------------------------------------------------------

S = "channels[0].samples"  # SR samples
M0 = "measurements[0].config"
BKG_MODS = "channels[0].samples[1].modifiers"


def _set(path_tokens, value):
    def mutate(ws):
        node = ws
        for tok in path_tokens[:-1]:
            node = node[tok]
        node[path_tokens[-1]] = value

    return mutate


def _del(path_tokens):
    def mutate(ws):
        node = ws
        for tok in path_tokens[:-1]:
            node = node[tok]
        del node[path_tokens[-1]]

    return mutate


def _append(path_tokens, value):
    def mutate(ws):
        node = ws
        for tok in path_tokens:
            node = node[tok]
        node.append(copy.deepcopy(value))

    return mutate


def _seq(*fns):
    def mutate(ws):
        for fn in fns:
            fn(ws)

    return mutate


NORMFACTOR = {"name": "mu", "type": "normfactor", "data": None}
SR_BKG_MODS = ["channels", 0, "samples", 1, "modifiers"]
P0 = ["measurements", 0, "config", "parameters"]

# (id, mutation, expected path, fragments, pyhf schema also rejects?)
RULES = [
    # -- top level
    ("missing-channels", _del(["channels"]), "channels", ["missing required key 'channels'"], True),
    ("missing-measurements", _del(["measurements"]), "measurements", ["missing"], True),
    ("missing-observations", _del(["observations"]), "observations", ["missing"], True),
    ("missing-version", _del(["version"]), "version", ["missing"], True),
    ("unknown-top-key", _set(["metadata"], {}), "metadata", ["unknown key 'metadata'"], True),
    ("bad-version", _set(["version"], "1.1.0"), "version", ["'1.1.0'", "expected '1.0.0'"], True),
    ("numeric-version", _set(["version"], 1.0), "version", ["unsupported"], True),
    ("channels-not-array", _set(["channels"], {}), "channels", ["array", "got object"], True),
    ("channels-empty", _set(["channels"], []), "channels", ["at least 1"], True),
    # -- channels
    ("channel-not-object", _set(["channels", 1], "CR"), "channels[1]", ["JSON object"], True),
    ("channel-no-name", _del(["channels", 1, "name"]), "channels[1].name", ["missing"], True),
    ("channel-name-type", _set(["channels", 1, "name"], 3), "channels[1].name", ["string"], True),
    (
        "channel-unknown-key",
        _set(["channels", 1, "bins"], 2),
        "channels[1].bins",
        ["unknown key 'bins' in channel 'CR'", "allowed keys are"],
        True,
    ),
    (
        "channel-typo-key",
        _seq(
            _set(["channels", 1, "sample"], []),
            _del(["channels", 1, "samples"]),
        ),
        "channels[1].samples",
        ["missing required key 'samples'", "'sample'"],
        True,
    ),
    (
        "duplicate-channel",
        _set(["channels", 1, "name"], "SR"),
        "channels[1].name",
        ["duplicate channel name 'SR'", "channels[0].name"],
        False,
    ),
    (
        "samples-empty",
        _set(["channels", 1, "samples"], []),
        "channels[1].samples",
        ["at least 1"],
        True,
    ),
    # -- samples
    (
        "sample-no-modifiers",
        _del(["channels", 0, "samples", 0, "modifiers"]),
        f"{S}[0].modifiers",
        ["missing"],
        True,
    ),
    (
        "sample-no-data",
        _del(["channels", 0, "samples", 0, "data"]),
        f"{S}[0].data",
        ["missing"],
        True,
    ),
    (
        "sample-data-empty",
        _set(["channels", 0, "samples", 0, "data"], []),
        f"{S}[0].data",
        ["at least 1"],
        True,
    ),
    (
        "sample-data-string",
        _set(["channels", 0, "samples", 0, "data", 2], "3"),
        f"{S}[0].data[2]",
        ["number", "string"],
        True,
    ),
    (
        "sample-data-null",
        _set(["channels", 0, "samples", 0, "data", 1], None),
        f"{S}[0].data[1]",
        ["number", "null"],
        True,
    ),
    (
        "sample-data-nan",
        _set(["channels", 0, "samples", 0, "data", 1], float("nan")),
        f"{S}[0].data[1]",
        ["finite", "nan"],
        False,
    ),
    (
        "sample-data-inf",
        _set(["channels", 0, "samples", 1, "data", 3], float("inf")),
        f"{S}[1].data[3]",
        ["finite", "inf"],
        False,
    ),
    (
        "sample-data-bool",
        _set(["channels", 0, "samples", 1, "data", 0], True),
        f"{S}[1].data[0]",
        ["number", "boolean"],
        False,
    ),
    (
        "sample-bins",
        _set(["channels", 0, "samples", 1, "data"], [1.0, 2.0, 3.0]),
        f"{S}[1].data",
        ["sample 'bkg' has 3 bins, channel 'SR' has 4", "'sig'"],
        False,
    ),
    (
        "duplicate-sample",
        _set(["channels", 0, "samples", 1, "name"], "sig"),
        f"{S}[1].name",
        ["duplicate sample name 'sig' in channel 'SR'"],
        False,
    ),
    (
        "sample-unknown-key",
        _set(["channels", 0, "samples", 0, "weight"], 1.0),
        f"{S}[0].weight",
        ["unknown key 'weight'"],
        True,
    ),
    (
        "modifiers-not-array",
        _set(["channels", 0, "samples", 0, "modifiers"], None),
        f"{S}[0].modifiers",
        ["array", "null"],
        True,
    ),
    # -- modifiers
    (
        "modifier-unknown-type",
        _set(SR_BKG_MODS + [1, "type"], "normsyst"),
        f"{BKG_MODS}[1].type",
        [
            "unknown modifier type 'normsyst'",
            "did you mean 'normsys'",
            "histosys, lumi, normfactor, normsys, shapefactor, shapesys, staterror",
        ],
        True,
    ),
    (
        "modifier-type-number",
        _set(SR_BKG_MODS + [1, "type"], 7),
        f"{BKG_MODS}[1].type",
        ["unknown modifier type", "valid types"],
        True,
    ),
    (
        "modifier-no-type",
        _del(SR_BKG_MODS + [1, "type"]),
        f"{BKG_MODS}[1].type",
        ["no 'type'"],
        True,
    ),
    (
        "modifier-not-object",
        _set(SR_BKG_MODS + [1], "xsec"),
        f"{BKG_MODS}[1]",
        ["JSON object"],
        True,
    ),
    ("modifier-no-name", _del(SR_BKG_MODS + [1, "name"]), f"{BKG_MODS}[1].name", ["missing"], True),
    (
        "modifier-name-type",
        _set(SR_BKG_MODS + [1, "name"], ["x"]),
        f"{BKG_MODS}[1].name",
        ["string"],
        True,
    ),
    ("modifier-no-data", _del(SR_BKG_MODS + [1, "data"]), f"{BKG_MODS}[1].data", ["missing"], True),
    (
        "modifier-unknown-key",
        _set(SR_BKG_MODS + [1, "extra"], 1),
        f"{BKG_MODS}[1].extra",
        ["unknown key 'extra'"],
        True,
    ),
    (
        "normfactor-data-not-null",
        _set(["channels", 0, "samples", 0, "modifiers", 0, "data"], [1.0]),
        f"{S}[0].modifiers[0].data",
        ["normfactor modifier 'mu' data must be null, got array"],
        True,
    ),
    (
        "shapefactor-data-not-null",
        _set(["channels", 1, "samples", 0, "modifiers", 0, "data"], 1.0),
        "channels[1].samples[0].modifiers[0].data",
        ["null"],
        True,
    ),
    (
        "lumi-data-not-null",
        _set(["channels", 0, "samples", 0, "modifiers", 1, "data"], {}),
        f"{S}[0].modifiers[1].data",
        ["null"],
        True,
    ),
    (
        "lumi-name",
        _set(["channels", 0, "samples", 0, "modifiers", 1, "name"], "Lumi"),
        f"{S}[0].modifiers[1].name",
        ["must be named 'lumi'", "'Lumi'"],
        True,
    ),
    (
        "normsys-data-array",
        _set(SR_BKG_MODS + [1, "data"], [1.1, 0.9]),
        f"{BKG_MODS}[1].data",
        ["JSON object", "array"],
        True,
    ),
    (
        "normsys-no-hi",
        _del(SR_BKG_MODS + [1, "data", "hi"]),
        f"{BKG_MODS}[1].data.hi",
        ["missing required key 'hi'"],
        True,
    ),
    (
        "normsys-extra",
        _set(SR_BKG_MODS + [1, "data", "nom"], 1.0),
        f"{BKG_MODS}[1].data.nom",
        ["unknown key 'nom'"],
        True,
    ),
    (
        "normsys-hi-string",
        _set(SR_BKG_MODS + [1, "data", "hi"], "1.1"),
        f"{BKG_MODS}[1].data.hi",
        ["number"],
        True,
    ),
    (
        "normsys-hi-inf",
        _set(SR_BKG_MODS + [1, "data", "lo"], float("-inf")),
        f"{BKG_MODS}[1].data.lo",
        ["finite"],
        False,
    ),
    (
        "histosys-hi-bins",
        _set(SR_BKG_MODS + [0, "data", "hi_data"], [1.0, 2.0, 3.0]),
        f"{BKG_MODS}[0].data.hi_data",
        ["histosys 'jes' hi_data has 3 bins, channel 'SR' has 4"],
        False,
    ),
    (
        "histosys-lo-bins",
        _set(SR_BKG_MODS + [0, "data", "lo_data"], [1.0] * 5),
        f"{BKG_MODS}[0].data.lo_data",
        ["lo_data has 5 bins"],
        False,
    ),
    (
        "histosys-no-lo",
        _del(SR_BKG_MODS + [0, "data", "lo_data"]),
        f"{BKG_MODS}[0].data.lo_data",
        ["missing"],
        True,
    ),
    (
        "histosys-empty",
        _set(SR_BKG_MODS + [0, "data", "hi_data"], []),
        f"{BKG_MODS}[0].data.hi_data",
        ["at least 1"],
        True,
    ),
    (
        "histosys-nan",
        _set(SR_BKG_MODS + [0, "data", "hi_data", 2], float("nan")),
        f"{BKG_MODS}[0].data.hi_data[2]",
        ["finite"],
        False,
    ),
    (
        "staterror-bins",
        _set(SR_BKG_MODS + [2, "data"], [1.0]),
        f"{BKG_MODS}[2].data",
        ["staterror 'stat_SR' has 1 bins, channel 'SR' has 4"],
        False,
    ),
    (
        "staterror-object",
        _set(SR_BKG_MODS + [2, "data"], {"a": 1}),
        f"{BKG_MODS}[2].data",
        ["array", "object"],
        True,
    ),
    (
        "staterror-negative",
        _set(SR_BKG_MODS + [2, "data", 1], -2.0),
        f"{BKG_MODS}[2].data[1]",
        ["uncertainty in bin 1 is negative", "-2.0"],
        False,
    ),
    (
        "shapesys-bins",
        _set(["channels", 1, "samples", 0, "modifiers", 1, "data"], [1.0, 2.0, 3.0]),
        "channels[1].samples[0].modifiers[1].data",
        ["shapesys 'unc' has 3 bins, channel 'CR' has 2"],
        False,
    ),
    (
        "shapesys-negative",
        _set(["channels", 1, "samples", 0, "modifiers", 1, "data", 0], -1.0),
        "channels[1].samples[0].modifiers[1].data[0]",
        ["negative"],
        False,
    ),
    (
        "duplicate-modifier",
        _append(SR_BKG_MODS, {"name": "xsec", "type": "normsys", "data": {"hi": 1.2, "lo": 0.8}}),
        f"{BKG_MODS}[4]",
        ["duplicate normsys modifier 'xsec' in sample 'bkg'", f"{BKG_MODS}[1]"],
        False,
    ),
    # -- observations
    ("observations-empty", _set(["observations"], []), "observations", ["at least 1"], True),
    (
        "observation-no-data",
        _del(["observations", 1, "data"]),
        "observations[1].data",
        ["missing"],
        True,
    ),
    (
        "observation-data-empty",
        _set(["observations", 1, "data"], []),
        "observations[1].data",
        ["at least 1"],
        True,
    ),
    (
        "observation-extra-key",
        _set(["observations", 1, "bins"], 2),
        "observations[1].bins",
        ["unknown key"],
        True,
    ),
    (
        "observation-nan",
        _set(["observations", 1, "data", 1], float("nan")),
        "observations[1].data[1]",
        ["finite"],
        False,
    ),
    (
        "observation-bins",
        _set(["observations", 1, "data"], [1.0]),
        "observations[1].data",
        ["observation 'CR' has 1 bins, channel 'CR' has 2"],
        False,
    ),
    (
        "observation-missing-channel",
        _del(["observations", 1]),
        "observations",
        ["channel 'CR' (channels[1]) has no observation"],
        False,
    ),
    (
        "observation-unknown-channel",
        _append(["observations"], {"name": "VR", "data": [1.0]}),
        "observations[2].name",
        ["observation 'VR' does not match any channel", "'SR', 'CR'"],
        False,
    ),
    (
        "observation-duplicate",
        _set(["observations", 1, "name"], "SR"),
        "observations[1].name",
        ["duplicate observation name 'SR'"],
        False,
    ),
    # -- measurements
    ("measurements-empty", _set(["measurements"], []), "measurements", ["at least 1"], True),
    (
        "measurement-no-config",
        _del(["measurements", 0, "config"]),
        "measurements[0].config",
        ["missing"],
        True,
    ),
    (
        "measurement-no-name",
        _del(["measurements", 1, "name"]),
        "measurements[1].name",
        ["missing"],
        True,
    ),
    ("config-no-poi", _del(["measurements", 0, "config", "poi"]), f"{M0}.poi", ["missing"], True),
    (
        "config-no-parameters",
        _del(["measurements", 0, "config", "parameters"]),
        f"{M0}.parameters",
        ["missing"],
        True,
    ),
    (
        "config-extra",
        _set(["measurements", 0, "config", "lumi"], 1.0),
        f"{M0}.lumi",
        ["unknown key 'lumi'"],
        True,
    ),
    (
        "poi-not-string",
        _set(["measurements", 0, "config", "poi"], None),
        f"{M0}.poi",
        ["string", "null"],
        True,
    ),
    (
        "poi-unknown",
        _set(["measurements", 0, "config", "poi"], "mu_sig"),
        f"{M0}.poi",
        [
            "poi 'mu_sig' of measurement 'meas' is not a parameter of any modifier",
            "parameters are: 'jes', 'lumi', 'mu'",
        ],
        False,
    ),
    ("parameters-not-array", _set(P0, {}), f"{M0}.parameters", ["array"], True),
    ("parameter-no-name", _del(P0 + [1, "name"]), f"{M0}.parameters[1].name", ["missing"], True),
    (
        "parameter-unknown-key",
        _set(P0 + [1, "init"], [1.0]),
        f"{M0}.parameters[1].init",
        ["unknown key 'init'", "did you mean 'inits'"],
        True,
    ),
    (
        "parameter-inits-empty",
        _set(P0 + [1, "inits"], []),
        f"{M0}.parameters[1].inits",
        ["at least 1"],
        True,
    ),
    (
        "parameter-inits-scalar",
        _set(P0 + [1, "inits"], 1.0),
        f"{M0}.parameters[1].inits",
        ["array", "number"],
        True,
    ),
    (
        "parameter-bounds-flat",
        _set(P0 + [1, "bounds"], [0.0, 10.0]),
        f"{M0}.parameters[1].bounds[0]",
        ["array"],
        True,
    ),
    (
        "parameter-bounds-empty",
        _set(P0 + [1, "bounds"], []),
        f"{M0}.parameters[1].bounds",
        ["at least 1"],
        True,
    ),
    (
        "parameter-bounds-string",
        _set(P0 + [1, "bounds"], [["0", 10.0]]),
        f"{M0}.parameters[1].bounds[0][0]",
        ["number"],
        True,
    ),
    (
        "parameter-bounds-nan",
        _set(P0 + [1, "bounds"], [[0.0, float("nan")]]),
        f"{M0}.parameters[1].bounds[0][1]",
        ["finite"],
        False,
    ),
    (
        "parameter-bounds-order",
        _set(P0 + [1, "bounds"], [[10.0, 0.0]]),
        f"{M0}.parameters[1].bounds[0]",
        ["lo > hi", "'mu'"],
        False,
    ),
    (
        "parameter-bounds-len",
        _set(P0 + [1, "bounds"], [[0.0, 1.0, 2.0]]),
        f"{M0}.parameters[1].bounds[0]",
        ["[lo, hi] pair", "3 number"],
        False,
    ),
    (
        "parameter-sigmas-zero",
        _set(P0 + [0, "sigmas"], [0.0]),
        f"{M0}.parameters[0].sigmas[0]",
        ["must be > 0"],
        False,
    ),
    (
        "parameter-sigmas-negative",
        _set(P0 + [0, "sigmas"], [-0.02]),
        f"{M0}.parameters[0].sigmas[0]",
        ["> 0", "-0.02"],
        False,
    ),
    (
        "parameter-fixed-type",
        _set(P0 + [2, "fixed"], "true"),
        f"{M0}.parameters[2].fixed",
        ["boolean", "string"],
        True,
    ),
    (
        "parameter-fixed-int",
        _set(P0 + [2, "fixed"], 1),
        f"{M0}.parameters[2].fixed",
        ["boolean"],
        True,
    ),
    (
        "parameter-duplicate",
        _append(P0, {"name": "mu", "fixed": True}),
        f"{M0}.parameters[3].name",
        ["duplicate parameter config name 'mu' in measurement 'meas'"],
        False,
    ),
    (
        "measurement-duplicate",
        _set(["measurements", 1, "name"], "meas"),
        "measurements[1].name",
        ["duplicate measurement name 'meas'"],
        False,
    ),
    (
        "lumi-config-missing",
        _del(["measurements", 1, "config", "parameters", 0]),
        "measurements[1].config.parameters",
        ["no parameter config for 'lumi'", "channels[0].samples[0].modifiers[1]"],
        False,
    ),
    (
        "lumi-config-incomplete",
        _seq(_del(P0 + [0, "sigmas"]), _del(P0 + [0, "inits"])),
        f"{M0}.parameters[0]",
        ["lumi parameter config of measurement 'meas' is missing 'inits', 'sigmas'"],
        False,
    ),
]


@pytest.mark.parametrize(
    ("mutate", "path", "fragments", "schema_rejects"),
    [pytest.param(*r[1:], id=r[0]) for r in RULES],
)
def test_rule(mutate, path, fragments, schema_rejects):
    ws = base()
    mutate(ws)
    raises_at(ws, path, *fragments)
    # pyhf's schema agrees where the rule is a schema rule; the other rules go beyond it
    assert pyhf_schema_accepts(ws) is not schema_rejects
    # our schema phase alone agrees exactly with pyhf's schema, except that it also
    # rejects non-finite numbers and booleans used as numbers (pyhf lets them through)
    number_hygiene = not schema_rejects and any(f in ("finite", "boolean") for f in fragments)
    try:
        W._validate_schema(ws)
        schema_ok = True
    except InvalidWorkspace:
        schema_ok = False
    assert schema_ok == (not schema_rejects and not number_hygiene)


def test_not_an_object():
    for value in ([], "x", None, 3):
        with pytest.raises(InvalidWorkspace, match="JSON object"):
            validate_workspace(value)


def test_poiless_measurement_is_valid():
    ws = base()
    ws["measurements"][0]["config"]["poi"] = ""
    validate_workspace(ws)


def test_unknown_parameter_config_is_ignored_like_pyhf():
    ws = base()
    ws["measurements"][0]["config"]["parameters"].append({"name": "mu_BG", "fixed": True})
    validate_workspace(ws)


def test_negative_yields_and_bad_normsys_left_to_model_builder():
    ws = base()
    ws["channels"][0]["samples"][1]["data"][0] = -5.0
    ws["channels"][0]["samples"][1]["modifiers"][1]["data"] = {"hi": 1.1, "lo": -0.5}
    validate_workspace(ws)


def test_numpy_values_accepted():
    ws = base()
    ws["channels"][0]["samples"][0]["data"] = np.array([5.0, 4.0, 3.0, 2.0])
    ws["observations"][1]["data"] = [np.float32(101.0), np.int64(79)]
    validate_workspace(ws)
    assert pyhf_schema_accepts(ws)
    ws["channels"][0]["samples"][0]["data"] = np.array([[5.0, 4.0, 3.0, 2.0]])
    raises_at(ws, "channels[0].samples[0].data[0]", "number")


def test_tuple_is_not_an_array_like_pyhf():
    ws = base()
    ws["channels"][0]["samples"][0]["data"] = (5.0, 4.0, 3.0, 2.0)
    raises_at(ws, "channels[0].samples[0].data", "array", "tuple")
    assert not pyhf_schema_accepts(ws)


def test_error_types_are_valueerrors():
    ws = base()
    ws["version"] = "2"
    with pytest.raises(ValueError):
        validate_workspace(ws)


def test_long_name_lists_are_shortened():
    ws = base()
    mods = ws["channels"][0]["samples"][0]["modifiers"]
    mods.extend({"name": f"np_{i:03d}", "type": "normfactor", "data": None} for i in range(50))
    ws["measurements"][0]["config"]["poi"] = "nope"
    err = raises_at(ws, f"{M0}.poi", "more)")
    assert len(str(err)) < 1000


# ---------------------------------------------------------------------------
# valid workspaces: the zoo, pyhf's simplemodels and pyhf's own test/example files
# ---------------------------------------------------------------------------

# Workspaces copied (compacted) from scikit-hep/pyhf v0.7.6.
PYHF_EXAMPLES = {
    # docs/examples/json/2-bin_1-channel.json
    "2-bin_1-channel": """{"channels":[{"name":"singlechannel","samples":[{"name":"signal","data":
      [5.0,10.0],"modifiers":[{"name":"mu","type":"normfactor","data":null}]},{"name":"background",
      "data":[50.0,60.0],"modifiers":[{"name":"uncorr_bkguncrt","type":"shapesys","data":[5.0,12.0]}
      ]}]}],"observations":[{"name":"singlechannel","data":[50.0,60.0]}],"measurements":[{"name":
      "Measurement","config":{"poi":"mu","parameters":[]}}],"version":"1.0.0"}""",
    # tests/test_export/workspace_no_parameter_bounds.json
    "no_parameter_bounds": """{"channels":[{"name":"ch","samples":[{"data":[1000.0],"modifiers":
      [{"data":null,"name":"mu_sig","type":"normfactor"},{"data":{"hi":1.5,"lo":0.5},"name":"unc",
      "type":"normsys"}],"name":"signal"}]}],"measurements":[{"config":{"parameters":[{"name":
      "mu_sig","inits":[5]}],"poi":"mu_sig"},"name":"meas"}],"observations":[{"data":[1000],"name":
      "ch"}],"version":"1.0.0"}""",
    # tests/test_export/workspace_integer_data.json
    "integer_data": """{"channels":[{"name":"singlechannel","samples":[{"data":[5],"modifiers":[{
      "data":null,"name":"mu","type":"normfactor"}],"name":"signal"},{"data":[50],"modifiers":[{
      "data":[6],"name":"uncorr_bkguncrt","type":"shapesys"}],"name":"background"}]}],
      "measurements":[{"config":{"parameters":[{"bounds":[[0,10]],"fixed":false,"inits":[1],"name":
      "mu"},{"bounds":[[1e-10,10]],"fixed":false,"inits":[1],"name":"uncorr_bkguncrt"}],"poi":"mu"},
      "name":"measurement"}],"observations":[{"data":[50],"name":"singlechannel"}],"version":
      "1.0.0"}""",
    # tests/test_workspace/poiless.json (POI "" = POI-less model)
    "poiless": """{"channels":[{"name":"singlechannel","samples":[{"name":"signal","data":[12,11],
      "modifiers":[{"name":"mu","type":"normfactor","data":null}]},{"name":"background","data":
      [50,52],"modifiers":[{"name":"uncorr_bkguncrt","type":"shapesys","data":[3,7]}]}]}],
      "observations":[{"name":"singlechannel","data":[51,48]}],"measurements":[{"name":
      "Measurement","config":{"poi":"","parameters":[]}}],"version":"1.0.0"}""",
    # tests/test_modifiers/issue1720_greedy_staterror.json (measurement named "")
    "issue1720": """{"channels":[{"name":"channel","samples":[{"data":[5],"modifiers":[],"name":
      "signal"},{"data":[1],"modifiers":[{"data":[1.5],"name":"NP","type":"shapesys"}],"name":
      "bkg"}]}],"measurements":[{"config":{"parameters":[],"poi":"NP"},"name":""}],"observations":
      [{"data":[0],"name":"channel"}],"version":"1.0.0"}""",
    # tests/test_patchset/example_bkgonly.json (four measurements, lumi, staterror with 0 bins)
    "example_bkgonly": """{"channels":[{"name":"channel1","samples":[{"data":[20.0,10.0],
      "modifiers":[{"data":{"hi":1.05,"lo":0.95},"name":"syst1","type":"normsys"},{"data":null,
      "name":"SigXsecOverSM","type":"normfactor"}],"name":"signal"},{"data":[100.0,0.0],"modifiers":
      [{"data":null,"name":"lumi","type":"lumi"},{"data":[5.000000074505806,0.0],"name":
      "staterror_channel1","type":"staterror"},{"data":{"hi":1.05,"lo":0.95},"name":"syst2","type":
      "normsys"}],"name":"background1"},{"data":[0.0,100.0],"modifiers":[{"data":null,"name":"lumi",
      "type":"lumi"},{"data":[0.0,10.0],"name":"staterror_channel1","type":"staterror"},{"data":{
      "hi":1.05,"lo":0.95},"name":"syst3","type":"normsys"}],"name":"background2"}]}],
      "measurements":[
      {"config":{"parameters":[{"auxdata":[1.0],"bounds":[[0.5,1.5]],"fixed":true,"inits":[1.0],
      "name":"lumi","sigmas":[0.1]},{"bounds":[[0.0,3.0]],"inits":[1.0],"name":"SigXsecOverSM"},{
      "fixed":true,"name":"alpha_syst1"}],"poi":"SigXsecOverSM"},"name":"GaussExample"},
      {"config":{"parameters":[{"auxdata":[1.0],"bounds":[[0.5,1.5]],"fixed":true,"inits":[1.0],
      "name":"lumi","sigmas":[0.1]},{"bounds":[[0.0,3.0]],"inits":[1.0],"name":"SigXsecOverSM"},{
      "fixed":true,"name":"alpha_syst1"}],"poi":"SigXsecOverSM"},"name":"GammaExample"},
      {"config":{"parameters":[{"auxdata":[1.0],"bounds":[[0.5,1.5]],"fixed":true,"inits":[1.0],
      "name":"lumi","sigmas":[0.1]},{"bounds":[[0.0,3.0]],"inits":[1.0],"name":"SigXsecOverSM"},{
      "fixed":true,"name":"alpha_syst1"}],"poi":"SigXsecOverSM"},"name":"LogNormExample"},
      {"config":{"parameters":[{"auxdata":[1.0],"bounds":[[0.5,1.5]],"fixed":true,"inits":[1.0],
      "name":"lumi","sigmas":[0.1]},{"bounds":[[0.0,3.0]],"inits":[1.0],"name":"SigXsecOverSM"},{
      "fixed":true,"name":"alpha_syst1"}],"poi":"SigXsecOverSM"},"name":"ConstExample"}],
      "observations":[{"data":[122.0,112.0],"name":"channel1"}],"version":"1.0.0"}""",
}


def _simplemodel_workspaces():
    sm = pyhf.simplemodels
    out = {
        "uncorrelated_background": sm.uncorrelated_background(
            signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_uncertainty=[3.0, 7.0]
        ),
        "correlated_background": sm.correlated_background(
            signal=[12.0, 11.0], bkg=[50.0, 52.0], bkg_up=[45.0, 57.0], bkg_down=[55.0, 47.0]
        ),
        "uncorrelated_background_1bin": sm.uncorrelated_background(
            signal=[5.0], bkg=[10.0], bkg_uncertainty=[3.5]
        ),
    }
    result = {}
    for name, model in out.items():
        data = [x + 1.0 for x in model.expected_actualdata(model.config.suggested_init())]
        result[name] = json.loads(json.dumps(dict(pyhf.Workspace.build(model, data))))
    return result


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_is_valid(name):
    ws = zoo_case(name)
    validate_workspace(ws)
    assert load_workspace_spec(ws) == ws
    assert pyhf_schema_accepts(ws)


@pytest.mark.parametrize("name", list(PYHF_EXAMPLES))
def test_pyhf_examples_are_valid(name):
    ws = load_workspace_spec(PYHF_EXAMPLES[name])
    assert pyhf_schema_accepts(ws)
    model = pyhf.Workspace(ws).model()
    assert model.config.npars >= 1


def test_pyhf_simplemodels_are_valid():
    for name, ws in _simplemodel_workspaces().items():
        validate_workspace(ws)
        assert pyhf_schema_accepts(ws), name


# ---------------------------------------------------------------------------
# load_workspace_spec
# ---------------------------------------------------------------------------


def test_load_from_paths_text_and_dict(tmp_path):
    ws = zoo_case("all_modifiers")
    text = json.dumps(ws, indent=2)
    f = tmp_path / "ws.json"
    f.write_text(text, encoding="utf-8")
    assert load_workspace_spec(str(f)) == ws
    assert load_workspace_spec(f) == ws
    assert load_workspace_spec(text) == ws
    assert load_workspace_spec("\n  \t" + text) == ws
    g = tmp_path / "ws.json.gz"
    g.write_bytes(gzip.compress(text.encode("utf-8")))
    assert load_workspace_spec(g) == ws
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_workspace_spec(bom) == ws


def test_load_dict_is_deep_copied_and_plain():
    ws = zoo_case("staterror_only")
    ws["channels"][0]["samples"][0]["data"] = np.array([4.0, 8.0, 3.0])
    ws["observations"][0]["data"] = [np.float64(45.0), np.int64(37), 14.0]
    snapshot = copy.deepcopy(ws)
    out = load_workspace_spec(ws)
    assert out is not ws
    assert out["channels"][0]["samples"][0]["data"] == [4.0, 8.0, 3.0]
    assert type(out["channels"][0]["samples"][0]["data"]) is list
    assert [type(x) for x in out["observations"][0]["data"]] == [float, int, float]
    json.dumps(out)  # plain JSON types only
    out["channels"][0]["name"] = "changed"
    out["observations"][0]["data"].append(1.0)
    assert ws["channels"][0]["name"] == snapshot["channels"][0]["name"]
    assert ws["observations"][0]["data"] == snapshot["observations"][0]["data"]


def test_load_pyhf_workspace_object():
    ws = pyhf.Workspace(zoo_case("lumi_only"))
    out = load_workspace_spec(ws)
    assert type(out) is dict and out == dict(ws)


def test_load_malformed_json_names_line_and_column(tmp_path):
    text = '{\n  "channels": [\n    {"name": "SR",, }\n  ]\n}'
    with pytest.raises(InvalidWorkspace, match=r"line 3, column 19"):
        load_workspace_spec(text)
    f = tmp_path / "bad.json"
    f.write_text(text)
    with pytest.raises(InvalidWorkspace, match=r"bad\.json.*line 3, column 19"):
        load_workspace_spec(f)


def test_load_missing_file_names_path(tmp_path):
    missing = tmp_path / "nope" / "workspace.json"
    with pytest.raises(InvalidWorkspace, match=re.escape(str(missing))):
        load_workspace_spec(missing)
    with pytest.raises(InvalidWorkspace, match="not found: 'workspace.json'"):
        load_workspace_spec("workspace.json")


def test_load_directory_and_binary_garbage(tmp_path):
    with pytest.raises(InvalidWorkspace, match="cannot read workspace file"):
        load_workspace_spec(tmp_path)
    f = tmp_path / "garbage.json"
    f.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(InvalidWorkspace, match="garbage.json"):
        load_workspace_spec(f)
    g = tmp_path / "broken.json.gz"
    g.write_bytes(gzip.compress(b"{}")[:-6])
    with pytest.raises(InvalidWorkspace, match="broken.json.gz"):
        load_workspace_spec(g)


def test_load_validates(tmp_path):
    ws = zoo_case("histosys_only")
    ws["channels"][0]["samples"][1]["modifiers"][0]["data"]["hi_data"] = [1.0, 2.0, 3.0]
    f = tmp_path / "ws.json"
    f.write_text(json.dumps(ws))
    with pytest.raises(InvalidWorkspace) as info:
        load_workspace_spec(f)
    assert info.value.path == "channels[0].samples[1].modifiers[0].data.hi_data"
    assert "histosys 'bkg_shape' hi_data has 3 bins, channel 'SR' has 2" in str(info.value)


def test_load_nan_in_json_text_is_reported_with_path():
    text = json.dumps(zoo_case("normfactor_only")).replace("53.0", "NaN")
    with pytest.raises(InvalidWorkspace) as info:
        load_workspace_spec(text)
    assert info.value.path == "observations[0].data[0]"


def test_load_json_array_text_is_not_a_workspace():
    with pytest.raises(InvalidWorkspace, match="must be a JSON object, got array"):
        load_workspace_spec("  [1, 2]")


@pytest.mark.parametrize("value", [None, 3, 2.5, b"{}", ["channels"], ("a",), object()])
def test_load_wrong_argument_type(value):
    with pytest.raises(InvalidArgumentType) as info:
        load_workspace_spec(value)
    assert isinstance(info.value, TypeError)
    assert type(value).__name__ in str(info.value)


# ---------------------------------------------------------------------------
# select_measurement
# ---------------------------------------------------------------------------


def test_select_measurement():
    ws = base()
    assert select_measurement(ws)["name"] == "meas"
    assert select_measurement(ws, "alt")["config"]["poi"] == "xsec"
    assert select_measurement(ws, "alt") is ws["measurements"][1]
    with pytest.raises(InvalidWorkspace) as info:
        select_measurement(ws, "mesa")
    assert info.value.path == "measurements"
    assert "no measurement named 'mesa'" in str(info.value)
    assert "'meas', 'alt'" in str(info.value)
    with pytest.raises(InvalidArgumentType):
        select_measurement(ws, 0)
    with pytest.raises(InvalidWorkspace, match="no measurements"):
        select_measurement({"measurements": []})


def test_select_measurement_zoo_two_measurements():
    ws = zoo_case("two_measurements")
    assert select_measurement(ws)["config"]["poi"] == "mu_sig"
    assert select_measurement(ws, "background_norm")["config"]["poi"] == "mu_bkg"


# ---------------------------------------------------------------------------
# hypothesis: random mutations of zoo workspaces against pyhf's schema
# ---------------------------------------------------------------------------

REPLACEMENTS = [
    None,
    0,
    1.5,
    -3.0,
    "",
    "x",
    "lumi",
    "mu",
    "1.0.0",
    "normsys",
    "histosys",
    "staterror",
    [],
    [1.0],
    [1.0, 2.0],
    [[0.0, 1.0]],
    {},
    {"hi": 1.1, "lo": 0.9},
    {"hi_data": [1.0], "lo_data": [1.0]},
    {"name": "x"},
]
NEW_KEYS = [
    "extra",
    "name",
    "data",
    "type",
    "inits",
    "bounds",
    "sigmas",
    "auxdata",
    "factors",
    "fixed",
    "hi",
    "lo",
    "samples",
    "modifiers",
    "config",
    "poi",
    "parameters",
]
SMALL_CASES = [n for n in ZOO if n != "realistic"]


def _nodes(node, prefix=()):
    yield prefix, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _nodes(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _nodes(v, (*prefix, i))


def _get(ws, tokens):
    for tok in tokens:
        ws = ws[tok]
    return ws


@st.composite
def mutated_workspaces(draw):
    ws = zoo_case(draw(st.sampled_from(SMALL_CASES)))
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(ws))
        tokens, node = draw(st.sampled_from(nodes))
        ops = ["replace", "copy_other"] if tokens else []
        if isinstance(node, dict):
            ops += ["del_key", "add_key"] if node else ["add_key"]
        if isinstance(node, list):
            ops += ["pop", "clear", "dup", "append"] if node else ["append"]
        if not ops:
            continue
        op = draw(st.sampled_from(ops))
        if op == "replace":
            _get(ws, tokens[:-1])[tokens[-1]] = copy.deepcopy(draw(st.sampled_from(REPLACEMENTS)))
        elif op == "copy_other":
            _, other = draw(st.sampled_from(nodes))
            _get(ws, tokens[:-1])[tokens[-1]] = copy.deepcopy(other)
        elif op == "del_key":
            del node[draw(st.sampled_from(sorted(node)))]
        elif op == "add_key":
            key = draw(st.sampled_from(NEW_KEYS))
            value = draw(st.booleans()) if key == "fixed" else draw(st.sampled_from(REPLACEMENTS))
            node[key] = copy.deepcopy(value)
        elif op == "pop":
            node.pop(draw(st.integers(0, len(node) - 1)))
        elif op == "clear":
            node.clear()
        elif op == "dup":
            node.append(copy.deepcopy(node[draw(st.integers(0, len(node) - 1))]))
        elif op == "append":
            node.append(copy.deepcopy(draw(st.sampled_from(REPLACEMENTS))))
    return ws


def _path_tokens(path):
    return [
        int(t[1:-1]) if t.startswith("[") else t for t in re.findall(r"\[\d+\]|[^.\[\]]+", path)
    ]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_workspaces())
def test_mutations_agree_with_pyhf_schema(ws):
    pyhf_ok = pyhf_schema_accepts(ws)
    try:
        W._validate_schema(ws)
        schema_ok = True
    except InvalidWorkspace:
        schema_ok = False
    # phase 1 is exactly pyhf's schema (mutations never insert NaN or booleans as numbers)
    assert schema_ok == pyhf_ok
    try:
        validate_workspace(ws)
        ok = True
    except InvalidWorkspace as err:
        ok = False
        # the reported path exists up to its last component
        if err.path is not None:
            assert str(err).startswith(err.path + ": ")
            tokens = _path_tokens(err.path)
            parent = _get(ws, tokens[:-1])
            assert isinstance(parent, (dict, list))
    # everything we accept, pyhf's schema accepts
    if ok:
        assert pyhf_ok


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(list(ZOO)), st.integers(0, 10**6))
def test_zoo_json_roundtrip_and_text_load(name, seed):
    ws = zoo_case(name)
    text = json.dumps(ws, indent=seed % 3 or None)
    assert load_workspace_spec(text) == ws


def test_rules_cover_every_modifier_type():
    ids = " ".join(r[0] for r in RULES)
    for mtype in W.MODIFIER_TYPES:
        assert mtype in ids, mtype


def test_module_is_pure_python():
    src = pathlib.Path(W.__file__).read_text()
    assert not re.search(r"^\s*(import|from)\s+(pyhf|jsonschema)\b", src, flags=re.M)
