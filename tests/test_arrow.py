"""Arrow / Parquet histogram tables <-> workspaces and model outputs (nextstat.io.arrow)."""

from __future__ import annotations

import copy

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from zoo import ZOO, pyhf_model, zoo_case

import nextstat
from nextstat.errors import InvalidFormat, InvalidWorkspace
from nextstat.io.arrow import (
    arrow_to_workspace,
    from_arrow,
    from_parquet,
    parquet_to_workspace,
    read_parquet_tables,
    to_arrow,
    workspace_to_arrow,
    workspace_to_parquet,
    write_parquet,
)
from nextstat.model.workspace_ops import sorted_workspace

#: Expected rates, ours (parity mode) vs pyhf: the same products in a near-identical order.
EXPECTED_RTOL = 1e-12


def _points(model, n, seed):
    rng = np.random.default_rng(seed)
    lo, hi = np.array(model.suggested_bounds()).T
    init = model.suggested_init()
    return [np.clip(init + 0.1 * rng.standard_normal(init.size), lo + 1e-3, hi - 1e-3)
            for _ in range(n)]


def _round_trip(ws):
    t = workspace_to_arrow(ws)
    return arrow_to_workspace(t["yields"], modifiers=t["modifiers"],
                              observations=t["observations"], measurements=t["measurements"])


# --------------------------------------------------------------------------
# round trips
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(ZOO))
def test_workspace_table_workspace_round_trip(case):
    ws = zoo_case(case)
    before = copy.deepcopy(ws)
    back = _round_trip(ws)
    assert ws == before
    # The same workspace up to list order and int -> float (5 == 5.0) ...
    assert sorted_workspace(back) == sorted_workspace(ws)
    # ... hence the same compiled model: NLLs are bit-identical, no tolerance needed.
    a = nextstat.from_pyhf(ws, unknown_parameters="ignore")
    b = nextstat.from_pyhf(back, unknown_parameters="ignore")
    assert a.parameter_names() == b.parameter_names()
    for p in _points(a, 3, seed=5):
        assert a.nll(p) == b.nll(p)


@pytest.mark.parametrize("case", ["realistic", "measurement_overrides", "two_measurements"])
def test_parquet_directory_round_trip(case, tmp_path):
    ws = zoo_case(case)
    paths = workspace_to_parquet(ws, tmp_path / "ws")
    assert sorted(paths) == ["measurements", "modifiers", "observations", "yields"]
    assert pq.read_table(paths["yields"]).num_rows == sum(len(c["samples"])
                                                           for c in ws["channels"])
    back = parquet_to_workspace(tmp_path / "ws")
    assert sorted_workspace(back) == sorted_workspace(ws)
    a = nextstat.from_pyhf(ws, unknown_parameters="ignore")
    b = from_parquet(str(tmp_path / "ws"), unknown_parameters="ignore")
    p = _points(a, 1, seed=2)[0]
    assert a.nll(p) == b.nll(p)


def test_yields_table_alone_and_pyhf_agrees(tmp_path):
    table = pa.table({
        "channel": ["SR", "SR", "CR"],
        "sample": ["signal", "bkg", "bkg"],
        "yields": [[5.0, 10.0], [50.0, 60.0], [100.0]],
        "stat_error": [None, [5.0, 6.0], [10.0]],
    })
    ws = arrow_to_workspace(table, observations={"SR": [53, 65], "CR": [98]})
    assert ws["channels"] == [
        {"name": "SR", "samples": [
            {"name": "signal", "data": [5.0, 10.0],
             "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
            {"name": "bkg", "data": [50.0, 60.0],
             "modifiers": [{"name": "staterror_SR", "type": "staterror", "data": [5.0, 6.0]}]},
        ]},
        {"name": "CR", "samples": [
            {"name": "bkg", "data": [100.0],
             "modifiers": [{"name": "staterror_CR", "type": "staterror", "data": [10.0]}]},
        ]},
    ]
    assert ws["measurements"] == [{"name": "NormalMeasurement",
                                   "config": {"poi": "mu", "parameters": []}}]
    model = from_arrow(table, observations={"SR": [53, 65], "CR": [98]})
    pm, data = pyhf_model(ws)
    for p in _points(model, 3, seed=1):
        assert model.twice_nll(p, mode="parity") == pytest.approx(
            float(-2 * pm.logpdf(p, data)[0]), abs=1e-9)  # a few ulp of a sum of O(10) terms
    write_parquet(table, tmp_path / "h.parquet")
    assert parquet_to_workspace(tmp_path / "h.parquet",
                                observations={"SR": [53, 65], "CR": [98]}) == ws


def test_default_observations_are_the_nominal_sum_and_poi_options():
    t = {"channel": ["A", "A"], "sample": ["xsec", "b"], "yields": [[1, 2], [10, 20]]}
    ws = arrow_to_workspace(t, poi="xsec")
    assert ws["observations"] == [{"name": "A", "data": [11.0, 22.0]}]
    assert ws["channels"][0]["samples"][0]["modifiers"][0]["name"] == "xsec"
    ws = arrow_to_workspace(t, poi=None)
    assert ws["measurements"][0]["config"]["poi"] == ""
    assert all(not s["modifiers"] for s in ws["channels"][0]["samples"])


def test_modifiers_table_declares_the_poi():
    t = {"channel": ["A", "A"], "sample": ["signal", "b"], "yields": [[1.0], [10.0]]}
    mods = {"channel": ["A", "A"], "sample": ["b", "b"], "modifier_name": ["mu", "n"],
            "modifier_type": ["normfactor", "normsys"], "data_hi": [None, [1.1]],
            "data_lo": [None, [0.9]]}
    ws = arrow_to_workspace(t, modifiers=mods)
    signal, bkg = ws["channels"][0]["samples"]
    assert signal["modifiers"] == []  # mu is declared, so no implicit normfactor
    assert bkg["modifiers"] == [{"name": "mu", "type": "normfactor", "data": None},
                                {"name": "n", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}]


def test_other_arrow_types_are_accepted():
    table = pa.table({
        "channel": pa.array(["SR", "SR"], pa.large_string()).dictionary_encode(),
        "sample": pa.array(["signal", "b"], pa.string_view()),
        "yields": pa.array([[1, 2], [3, 4]], pa.large_list(pa.int32())),
        "stat_error": pa.array([[0.5, 0.5], [1.0, 1.0]], pa.list_(pa.float32(), 2)),
    })
    ws = arrow_to_workspace(table)
    assert ws["channels"][0]["samples"][1]["data"] == [3.0, 4.0]
    assert arrow_to_workspace(table.to_batches()[0]) == ws
    assert arrow_to_workspace(table.to_batches()) == ws


# --------------------------------------------------------------------------
# model -> tables
# --------------------------------------------------------------------------


def test_to_arrow_yields_match_pyhf_and_read_back():
    ws = zoo_case("multichannel")
    model = nextstat.from_pyhf(ws)
    pm, _ = pyhf_model(ws)
    p = _points(model, 1, seed=3)[0]
    table = to_arrow(model, p)
    assert table.column_names == ["channel", "sample", "yields"]
    totals = {}
    for row in table.to_pylist():
        totals.setdefault(row["channel"], np.zeros(len(row["yields"])))
        totals[row["channel"]] += row["yields"]
    ours = np.concatenate([totals[c] for c in model.channel_names()])
    np.testing.assert_allclose(ours, pm.expected_actualdata(p), rtol=EXPECTED_RTOL)
    back = arrow_to_workspace(table, poi=None)  # post-fit yields as a nominal workspace
    assert nextstat.from_pyhf(back).expected_main([]) == pytest.approx(ours, rel=1e-15)


def test_to_arrow_params_with_a_fit_result(tmp_path):
    model = nextstat.from_pyhf(ZOO["shapesys_only"])
    t = to_arrow(model, what="params")
    assert t.column_names == ["name", "index", "value", "init", "bound_lo", "bound_hi", "fixed"]
    assert t.column("name").to_pylist() == model.parameter_names()
    assert t.column("value").to_pylist() == model.suggested_init().tolist()
    fit = nextstat.fit(model)
    t = to_arrow(model, fit, what="params")
    assert t.column("value").to_pylist() == fit.bestfit.tolist()
    assert t.column("uncertainty").to_pylist() == fit.uncertainties.tolist()
    write_parquet(t, tmp_path / "p.parquet")
    assert pq.read_table(tmp_path / "p.parquet").equals(t)
    with pytest.raises(TypeError, match="what must be 'yields' or 'params'"):
        to_arrow(model, what="nope")
    with pytest.raises(ValueError, match="params has shape"):
        to_arrow(model, [1.0])
    other = nextstat.fit(nextstat.from_pyhf(ZOO["all_modifiers"]))  # another model's fit
    with pytest.raises(ValueError, match="params has shape"):
        to_arrow(model, other, what="params")


# --------------------------------------------------------------------------
# bad inputs name their place
# --------------------------------------------------------------------------

GOOD = {"channel": ["SR", "SR"], "sample": ["signal", "bkg"], "yields": [[1.0, 2.0], [3.0, 4.0]]}


def _yields(**changes):
    t = copy.deepcopy(GOOD)
    t.update(changes)
    return {k: v for k, v in t.items() if v is not None}


BAD_YIELDS = [
    (_yields(yields=None), "yields table", "missing required column 'yields'"),
    (_yields(stat_errors=[None, None]), "yields table", "did you mean 'stat_error'"),
    (_yields(yields=[1.0, 2.0]), "yields table, column 'yields'", "must be a list<double>"),
    (_yields(channel=[1, 2]), "yields table, column 'channel'", "must be a string column"),
    (_yields(sample=["signal", None]), "yields table, row 1 (channel 'SR'), column 'sample'",
     "is null"),
    (_yields(yields=[[1.0, 2.0], [3.0]]),
     "yields table, row 1 (channel 'SR', sample 'bkg'), column 'yields'", "has 1 values"),
    (_yields(yields=[[1.0, float("nan")], [3.0, 4.0]]),
     "yields table, row 0 (channel 'SR', sample 'signal'), column 'yields'", "bin 1 is nan"),
    (_yields(yields=[[1.0, 2.0], []]),
     "yields table, row 1 (channel 'SR', sample 'bkg'), column 'yields'", "is an empty list"),
    (_yields(sample=["signal", "signal"]), "yields table, row 1 (channel 'SR', sample 'signal')",
     "duplicate .* first in row 0"),
    (_yields(stat_error=[[1.0], None]),
     "yields table, row 0 (channel 'SR', sample 'signal'), column 'stat_error'",
     "expected 2"),
    (_yields(sample=["sig", "bkg"]), "yields table, column 'sample'", "no sample carries the POI"),
]


@pytest.mark.parametrize(("table", "where", "message"), BAD_YIELDS)
def test_bad_yields_tables(table, where, message):
    with pytest.raises(InvalidFormat, match=message) as exc:
        arrow_to_workspace(table)
    assert exc.value.where == where


def _mods(**row):
    base = {"channel": "SR", "sample": "bkg", "modifier_name": "m", "modifier_type": "normsys",
            "data_hi": [1.1], "data_lo": [0.9], "data": None}
    base.update(row)
    return pa.Table.from_pylist([base], schema=workspace_to_arrow(ZOO["normsys_only"])[
        "modifiers"].schema)


BAD_MODIFIERS = [
    (_mods(modifier_type="normsis"), "column 'modifier_type'", "did you mean 'normsys'"),
    (_mods(sample="nope"), "", "no row for channel 'SR', sample 'nope'"),
    (_mods(data_hi=[1.1, 1.2]), "column 'data_hi'", "has 2 values, expected 1"),
    (_mods(data_lo=None), "column 'data_lo'", "is null"),
    (_mods(modifier_type="normfactor"), "column 'data_hi'", "must be null for a normfactor"),
    (_mods(modifier_type="histosys"), "column 'data_hi'", "expected 2"),
    (_mods(modifier_type="shapesys", data_hi=None, data_lo=None), "column 'data'", "is null"),
]


@pytest.mark.parametrize(("mods", "column", "message"), BAD_MODIFIERS)
def test_bad_modifier_tables(mods, column, message):
    with pytest.raises(InvalidFormat, match=message) as exc:
        arrow_to_workspace(GOOD, modifiers=mods)
    sample = mods.column("sample")[0].as_py()
    expected = f"modifiers table, row 0 (channel 'SR', sample '{sample}', modifier_name 'm')"
    assert exc.value.where == expected + (f", {column}" if column else "")


def test_bad_observations_and_measurements():
    with pytest.raises(InvalidFormat, match=r"no observed counts for channel\(s\) 'SR'"):
        arrow_to_workspace(GOOD, observations={})
    with pytest.raises(InvalidFormat, match="channel 'XR' is not in the yields table") as exc:
        arrow_to_workspace(GOOD, observations={"SR": [1, 2], "XR": [1]})
    assert exc.value.where == "observations table, row 1 (channel 'XR'), column 'channel'"
    with pytest.raises(InvalidFormat, match="has 1 values, expected 2"):
        arrow_to_workspace(GOOD, observations=pa.table({"channel": ["SR"], "data": [[1.0]]}))
    meas = workspace_to_arrow(ZOO["measurement_overrides"])["measurements"].to_pylist()
    meas[1]["poi"] = "other"
    with pytest.raises(InvalidFormat, match="poi 'other' differs from 'mu'") as exc:
        arrow_to_workspace(GOOD, measurements=meas_table(meas))
    assert exc.value.where.startswith("measurements table, row 1 (measurement 'meas', parameter")
    meas = workspace_to_arrow(ZOO["measurement_overrides"])["measurements"].to_pylist()
    meas[0]["bounds"] = [[0.0, 1.0, 2.0]]
    with pytest.raises(InvalidFormat, match=r"entry 0 must be a \[lo, hi\] pair"):
        arrow_to_workspace(GOOD, measurements=meas_table(meas))
    # readable tables that describe an invalid workspace fail in the workspace validator
    with pytest.raises(InvalidWorkspace, match="poi 'mu' .* is not a parameter"):
        arrow_to_workspace(GOOD, poi="mu", measurements=meas_table(meas[:0] + [
            {"measurement": "m", "poi": "mu"}]), modifiers=None)



@pytest.mark.parametrize("counts, message", [
    (5, "must be a list of numbers, got 5"),
    ("ab", "must be a list of numbers, got 'ab'"),
    ([1, "x"], "must be a list of numbers"),
    ([1, None], "bin 1 is None; values must be finite numbers"),
    ([1, float("inf")], "bin 1 is inf"),
])
def test_observation_mapping_with_bad_counts(counts, message):
    with pytest.raises(InvalidFormat, match=message) as exc:
        arrow_to_workspace(GOOD, observations={"SR": counts})
    assert exc.value.where == "observations table, row 0 (channel 'SR'), column 'data'"

def meas_table(rows):
    schema = workspace_to_arrow(ZOO["measurement_overrides"])["measurements"].schema
    return pa.Table.from_pylist(rows, schema=schema)


def test_parquet_file_errors(tmp_path):
    with pytest.raises(InvalidFormat, match="yields Parquet file not found"):
        parquet_to_workspace(tmp_path / "missing.parquet")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidFormat, match="needs a yields.parquet"):
        read_parquet_tables(tmp_path / "empty")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidFormat, match="cannot read the yields table as Parquet") as exc:
        from_parquet(bad)
    assert exc.value.where == str(bad)
    with pytest.raises(TypeError, match="must be a pyarrow Table"):
        arrow_to_workspace(42)
