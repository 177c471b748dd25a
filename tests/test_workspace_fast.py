"""The compiled fast paths of plain-JSON workspaces agree with their pure-Python references.

``nextstat._ext.workspace_fast.channels_fast_accept`` may only say "valid" when the
Python checks (the reference) would pass, and must then return what they compute (bins
per channel, first lumi modifier, modifier names). The Python checks run with the fast
path switched off by monkeypatching it to decline.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nextstat._ext.workspace_fast import NotPlain, channels_fast_accept, float_array, plain_copy
from test_workspace import RULES, base, mutated_workspaces
from zoo import ZOO, zoo_case

import nextstat.model.workspace as W
from nextstat.errors import InvalidWorkspace


def _outcome(ws):
    """``None`` if ``validate_workspace`` accepts ``ws``, else (path, message)."""
    try:
        W.validate_workspace(copy.deepcopy(ws))
    except InvalidWorkspace as err:
        return err.path, str(err)
    return None


def _reference_outcome(ws):
    with pytest.MonkeyPatch.context() as m:
        m.setattr(W, "channels_fast_accept", lambda channels: None)
        return _outcome(ws)


def _check_agreement(ws):
    """Same outcome with and without the fast path; an acceptance is a true one."""
    assert _outcome(ws) == _reference_outcome(ws)
    channels = ws.get("channels") if isinstance(ws, dict) else None
    fast = channels_fast_accept(channels)
    if fast is None:
        return False
    # what the fast path accepts passes the reference's channel checks (both phases) ...
    W._check_channels_schema(channels)
    ref_nbins, ref_lumi, ref_names = W._validate_channels({"channels": channels})
    # ... and it returns what they compute
    nbins_of, lumi_idx, names = fast
    assert nbins_of == ref_nbins
    assert names == ref_names
    if lumi_idx is None:
        assert ref_lumi is None
    else:
        assert ref_lumi == "channels[{}].samples[{}].modifiers[{}]".format(*lumi_idx)
    return True


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_is_accepted_fast(name):
    assert _check_agreement(zoo_case(name))


def test_benchmark_workspace_is_accepted_fast():
    benchmarks = pytest.importorskip("benchmarks.models")
    assert _check_agreement(benchmarks.structured(12, 5, 3, 2))


@pytest.mark.parametrize(
    "mutate", [pytest.param(r[1], id=r[0]) for r in RULES]
)
def test_rules_agree(mutate):
    ws = base()
    mutate(ws)
    _check_agreement(ws)


#: Values the fast path must decline wherever a number is expected (the reference rejects
#: the first five; NumPy values are valid but left to the reference).
ODD_NUMBERS = [True, math.nan, -math.inf, 10**400, "1", np.float64(2.0), np.int64(3)]


def _number_slots(ws):
    """(container, key, is_uncertainty) of every number in the channels."""
    for channel in ws["channels"]:
        for sample in channel["samples"]:
            yield sample["data"], 0, False
            for mod in sample["modifiers"]:
                if mod["type"] == "normsys":
                    yield mod["data"], "hi", False
                elif mod["type"] == "histosys":
                    yield mod["data"]["lo_data"], -1, False
                elif mod["type"] in ("staterror", "shapesys"):
                    yield mod["data"], -1, True


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_odd_numbers_agree(data):
    ws = zoo_case(data.draw(st.sampled_from(sorted(ZOO))))
    slots = list(_number_slots(ws))
    container, key, is_unc = data.draw(st.sampled_from(slots))
    value = data.draw(st.sampled_from(ODD_NUMBERS + ([-0.5] if is_unc else [])))
    container[key] = value
    assert not _check_agreement(ws)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_workspaces())
def test_mutations_agree(ws):
    _check_agreement(ws)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_workspaces())
def test_plain_copy_is_a_deep_copy(ws):
    copied = plain_copy(ws)
    assert copied == W._to_plain(ws) == ws
    # nothing shared: every container is new
    stack = [(copied, ws)]
    while stack:
        a, b = stack.pop()
        if isinstance(b, (dict, list)):
            assert a is not b
            if isinstance(b, dict):
                stack.extend(zip(a.values(), b.values(), strict=True))
            else:
                stack.extend(zip(a, b, strict=True))


@pytest.mark.parametrize(
    "value", [np.float64(1.0), np.array([1.0, 2.0]), (1.0, 2.0), {1: "a"}, np.int64(2)]
)
def test_plain_copy_declines_other_values(value):
    ws = zoo_case("multichannel")
    ws["channels"][0]["samples"][0]["data"][0] = value
    with pytest.raises(NotPlain):
        plain_copy(ws)
    # the converting copy takes over
    assert W._copy_plain(ws) == W._to_plain(ws)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**70), 2**70),
    st.integers(-(10**400), 10**400).filter(lambda v: abs(v) > 2**1100),
    st.booleans(),
    st.floats(width=32).map(np.float32),
    st.integers(-100, 100).map(np.int64),
), max_size=30))
def test_float_array_is_numpy_asarray(values):
    try:
        expected = np.asarray(values, dtype=np.float64)
    except OverflowError as err:
        with pytest.raises(type(err)):
            float_array(values)
        return
    got = float_array(values)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


def test_deep_nesting_is_an_error_not_a_crash():
    """The compiled copy stops at a fixed depth; the Python copy then reports the nesting."""
    deep: list = []
    cur = deep
    for _ in range(100_000):
        cur.append([])
        cur = cur[0]
    with pytest.raises(NotPlain):
        plain_copy({"channels": deep})
    with pytest.raises(InvalidWorkspace, match="nested too deeply"):
        W.load_workspace_spec({"channels": deep})
