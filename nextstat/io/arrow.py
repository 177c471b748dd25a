"""Binned histogram tables (Apache Arrow / Parquet) <-> pyhf workspaces and model outputs.

The tables (full description in ``docs/formats-arrow.md``):

* **yields** (required): ``channel`` (string), ``sample`` (string), ``yields``
  (list of numbers, one per bin), optional ``stat_error`` (list of numbers or null): the
  absolute per-bin statistical uncertainty, which becomes a ``staterror`` modifier named
  ``staterror_<channel>``.
* **modifiers** (optional): ``channel``, ``sample``, ``modifier_name``, ``modifier_type``
  and the list columns ``data_hi``, ``data_lo``, ``data`` (normsys: one-element
  ``data_hi``/``data_lo`` factors; histosys: per-bin templates; shapesys/staterror:
  per-bin ``data``; normfactor/shapefactor/lumi: no data).
* **observations** (optional): ``channel``, ``data`` (list of counts).
* **measurements** (optional): ``measurement``, ``poi``, ``parameter`` (null for a
  measurement without parameter configurations) and the optional ``inits``, ``bounds``
  (list of ``[lo, hi]`` lists), ``fixed`` (bool), ``auxdata``, ``factors``, ``sigmas``.

Without a measurements table the workspace gets one measurement named
``measurement_name`` with POI ``poi``, and a normfactor ``poi`` is added to every sample
named ``signal`` or ``poi`` unless the modifiers table declares a modifier of that name.
Without observations the data are the sum of the nominal yields of each channel.

pyarrow is imported lazily; it ships with the ``io`` extra (``pip install nextstat[io]``).
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nextstat.errors import InvalidArgumentType, InvalidFormat, InvalidParameters
from nextstat.model.workspace import MODIFIER_TYPES, load_workspace_spec

__all__ = [
    "MEASUREMENTS_COLUMNS",
    "MODIFIERS_COLUMNS",
    "OBSERVATIONS_COLUMNS",
    "TABLE_NAMES",
    "YIELDS_COLUMNS",
    "arrow_to_workspace",
    "from_arrow",
    "from_parquet",
    "parquet_to_workspace",
    "read_parquet_tables",
    "to_arrow",
    "workspace_to_arrow",
    "workspace_to_parquet",
    "write_parquet",
]

#: Columns of each table: name -> kind (``str``, ``list``, ``list2``, ``bool``); the first
#: ``_REQUIRED[table]`` columns are required.
YIELDS_COLUMNS = {"channel": "str", "sample": "str", "yields": "list", "stat_error": "list"}
MODIFIERS_COLUMNS = {
    "channel": "str", "sample": "str", "modifier_name": "str", "modifier_type": "str",
    "data_hi": "list", "data_lo": "list", "data": "list",
}
OBSERVATIONS_COLUMNS = {"channel": "str", "data": "list"}
MEASUREMENTS_COLUMNS = {
    "measurement": "str", "poi": "str", "parameter": "str", "inits": "list",
    "bounds": "list2", "fixed": "bool", "auxdata": "list", "factors": "list", "sigmas": "list",
}
#: The tables, in the order of the files of a Parquet directory (``<name>.parquet``).
TABLE_NAMES = ("yields", "modifiers", "observations", "measurements")

_COLUMNS = {
    "yields": YIELDS_COLUMNS, "modifiers": MODIFIERS_COLUMNS,
    "observations": OBSERVATIONS_COLUMNS, "measurements": MEASUREMENTS_COLUMNS,
}
_REQUIRED = {
    "yields": ("channel", "sample", "yields"),
    "modifiers": ("channel", "sample", "modifier_name", "modifier_type"),
    "observations": ("channel", "data"),
    "measurements": ("measurement", "poi"),
}
_PARAM_LISTS = ("inits", "auxdata", "factors", "sigmas")


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is in the io extra
        raise ImportError(
            "Arrow/Parquet support needs pyarrow: pip install 'nextstat[io]'"
        ) from None
    return pa, pq


# --------------------------------------------------------------------------
# reading tables: types, then rows
# --------------------------------------------------------------------------


def _as_table(obj: Any, name: str):
    """A ``pyarrow.Table`` from a Table, RecordBatch(es), dict of columns, pandas/polars
    frame or any object with ``__arrow_c_stream__``; a str/path is read as Parquet."""
    pa, pq = _pyarrow()
    if isinstance(obj, pa.Table):
        return obj
    if isinstance(obj, pa.RecordBatch):
        return pa.Table.from_batches([obj])
    if isinstance(obj, (str, os.PathLike)):
        return _read_parquet_file(obj, name)
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(b, pa.RecordBatch) for b in obj):
        return pa.Table.from_batches(list(obj))
    try:
        if isinstance(obj, Mapping):
            return pa.table(dict(obj))
        if hasattr(obj, "to_arrow"):  # polars
            return _as_table(obj.to_arrow(), name)
        if type(obj).__module__.startswith("pandas"):
            return pa.Table.from_pandas(obj, preserve_index=False)
        if hasattr(obj, "__arrow_c_stream__"):
            return pa.table(obj)
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise InvalidFormat(f"cannot make an Arrow table: {err}", f"{name} table") from None
    raise InvalidArgumentType(
        f"the {name} table must be a pyarrow Table or RecordBatch, a dict of columns, a "
        f"pandas/polars DataFrame or a Parquet path, got {type(obj).__name__}"
    )


def _read_parquet_file(path: Any, name: str):
    pa, pq = _pyarrow()
    shown = os.fsdecode(os.fspath(path))
    if not os.path.isfile(shown):
        raise InvalidFormat(f"{name} Parquet file not found", shown)
    try:
        return pq.read_table(shown)
    except (pa.ArrowException, OSError) as err:
        raise InvalidFormat(f"cannot read the {name} table as Parquet: {err}", shown) from None


def _kind_of(dtype) -> str | None:
    """``str``, ``list``, ``list2`` or ``bool`` for an Arrow type (None: unsupported)."""
    pa, _ = _pyarrow()
    t = pa.types
    if t.is_dictionary(dtype):
        return _kind_of(dtype.value_type)
    if t.is_string(dtype) or t.is_large_string(dtype) or t.is_string_view(dtype):
        return "str"
    if t.is_boolean(dtype):
        return "bool"
    if t.is_null(dtype):
        return "null"
    if (t.is_list(dtype) or t.is_large_list(dtype) or t.is_fixed_size_list(dtype)
            or t.is_list_view(dtype) or t.is_large_list_view(dtype)):
        inner = dtype.value_type
        if t.is_integer(inner) or t.is_floating(inner) or t.is_null(inner):
            return "list"
        return "list2" if _kind_of(inner) == "list" else None
    return None


_KIND_TEXT = {
    "str": "a string column", "list": "a list<double> column (lists of numbers)",
    "list2": "a list<list<double>> column", "bool": "a boolean column",
}


def _check_schema(table, name: str) -> None:
    """Required columns present, no unknown columns, every column of the right type."""
    columns = _COLUMNS[name]
    names = list(table.column_names)
    for col in names:
        if col not in columns:
            close = difflib.get_close_matches(col, list(columns), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidFormat(
                f"unknown column {col!r}{hint} (columns are: {', '.join(columns)})",
                f"{name} table",
            )
    if len(set(names)) != len(names):
        raise InvalidFormat("duplicate column names", f"{name} table")
    for col in _REQUIRED[name]:
        if col not in names:
            raise InvalidFormat(f"missing required column {col!r}", f"{name} table")
    for col in names:
        dtype = table.schema.field(col).type
        kind = _kind_of(dtype)
        if kind != columns[col] and kind != "null":
            raise InvalidFormat(
                f"must be {_KIND_TEXT[columns[col]]}, got Arrow type {dtype}",
                f"{name} table, column {col!r}",
            )


def _rows(table, name: str) -> list[dict]:
    """The validated table as a list of row dicts (all columns of the table)."""
    _check_schema(table, name)
    return table.to_pylist()


def _where(name: str, i: int, row: dict, col: str | None = None) -> str:
    label = ", ".join(f"{k} {row[k]!r}" for k in ("channel", "sample", "modifier_name",
                                                  "measurement", "parameter")
                      if isinstance(row.get(k), str))
    text = f"{name} table, row {i}" + (f" ({label})" if label else "")
    return text + (f", column {col!r}" if col else "")


def _text(row: dict, col: str, name: str, i: int, required: bool = True) -> str | None:
    value = row.get(col)
    if value is None:
        if required:
            raise InvalidFormat("is null", _where(name, i, row, col))
        return None
    if value == "":
        raise InvalidFormat("is an empty string", _where(name, i, row, col))
    return value


def _numbers(row: dict, col: str, name: str, i: int, nbins: int | None = None,
             required: bool = False) -> list[float] | None:
    """A list column as finite floats (None when null and not required)."""
    values = row.get(col)
    if values is None:
        if required:
            raise InvalidFormat("is null", _where(name, i, row, col))
        return None
    try:
        arr = np.asarray(values, dtype=np.float64)  # null entries become NaN
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim != 1:
        raise InvalidFormat(f"must be a list of numbers, got {values!r}"[:200],
                            _where(name, i, row, col))
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        b = int(bad[0])
        raise InvalidFormat(f"bin {b} is {values[b]!r}; values must be finite numbers",
                            _where(name, i, row, col))
    out = arr.tolist()
    if required and not out:
        raise InvalidFormat("is an empty list", _where(name, i, row, col))
    if nbins is not None and len(out) != nbins:
        raise InvalidFormat(f"has {len(out)} values, expected {nbins} (the channel's bins)",
                            _where(name, i, row, col))
    return out


# --------------------------------------------------------------------------
# tables -> workspace
# --------------------------------------------------------------------------


def _channels_from_yields(rows: list[dict]) -> tuple[dict, dict]:
    """``{channel: {sample: sample_dict}}`` in table order, and the bins per channel."""
    channels: dict[str, dict] = {}
    nbins: dict[str, int] = {}
    first_row: dict[tuple, int] = {}
    for i, row in enumerate(rows):
        ch = _text(row, "channel", "yields", i)
        sa = _text(row, "sample", "yields", i)
        if (ch, sa) in first_row:
            raise InvalidFormat(
                f"duplicate (channel, sample) = ({ch!r}, {sa!r}); first in row "
                f"{first_row[(ch, sa)]}", _where("yields", i, row))
        first_row[(ch, sa)] = i
        data = _numbers(row, "yields", "yields", i, nbins.get(ch), required=True)
        nbins.setdefault(ch, len(data))
        sample = {"name": sa, "data": data, "modifiers": []}
        stat = _numbers(row, "stat_error", "yields", i, len(data))
        if stat is not None:
            sample["modifiers"].append({"name": f"staterror_{ch}", "type": "staterror",
                                        "data": stat})
        channels.setdefault(ch, {})[sa] = sample
    if not channels:
        raise InvalidFormat("has no rows", "yields table")
    return channels, nbins


def _modifier_data(row: dict, i: int, kind: str, nbins: int) -> Any:
    """The workspace ``data`` of one modifiers-table row."""
    name = "modifiers"
    cols = {c: row.get(c) for c in ("data_hi", "data_lo", "data")}
    wanted = {"normsys": ("data_hi", "data_lo"), "histosys": ("data_hi", "data_lo"),
              "shapesys": ("data",), "staterror": ("data",)}.get(kind, ())
    for col, value in cols.items():
        if col not in wanted and value is not None and len(value) > 0:
            raise InvalidFormat(f"must be null for a {kind} modifier", _where(name, i, row, col))
    if kind == "normsys":
        hi = _numbers(row, "data_hi", name, i, 1, required=True)
        lo = _numbers(row, "data_lo", name, i, 1, required=True)
        return {"hi": hi[0], "lo": lo[0]}
    if kind == "histosys":
        return {"hi_data": _numbers(row, "data_hi", name, i, nbins, required=True),
                "lo_data": _numbers(row, "data_lo", name, i, nbins, required=True)}
    if kind in ("shapesys", "staterror"):
        return _numbers(row, "data", name, i, nbins, required=True)
    return None


def _add_modifiers(channels: dict, nbins: dict, rows: list[dict]) -> set[str]:
    """Append the modifiers table's rows to their samples; return the modifier names."""
    names = set()
    for i, row in enumerate(rows):
        ch = _text(row, "channel", "modifiers", i)
        sa = _text(row, "sample", "modifiers", i)
        mname = _text(row, "modifier_name", "modifiers", i)
        kind = _text(row, "modifier_type", "modifiers", i)
        if kind not in MODIFIER_TYPES:
            close = difflib.get_close_matches(kind, MODIFIER_TYPES, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise InvalidFormat(f"unknown modifier type {kind!r}{hint} (types are: "
                                f"{', '.join(MODIFIER_TYPES)})",
                                _where("modifiers", i, row, "modifier_type"))
        if sa not in channels.get(ch, {}):
            raise InvalidFormat(f"no row for channel {ch!r}, sample {sa!r} in the yields table",
                                _where("modifiers", i, row))
        data = _modifier_data(row, i, kind, nbins[ch])
        channels[ch][sa]["modifiers"].append({"name": mname, "type": kind, "data": data})
        names.add(mname)
    return names


def _observations(obs: Any, channels: dict, nbins: dict) -> list[dict]:
    """Observation objects, in channel order; Asimov (sum of nominal yields) by default."""
    if obs is None:
        return [{"name": ch, "data": np.sum([s["data"] for s in samples.values()],
                                            axis=0).tolist()}
                for ch, samples in channels.items()]
    if isinstance(obs, Mapping) and not ({"channel", "data"} <= set(obs)):
        rows = [{"channel": k, "data": v} for k, v in obs.items()]
        name = "observations"
    else:
        rows, name = _rows(_as_table(obs, "observations"), "observations"), "observations"
    given: dict[str, list[float]] = {}
    for i, row in enumerate(rows):
        ch = _text(row, "channel", name, i)
        if ch not in channels:
            raise InvalidFormat(f"channel {ch!r} is not in the yields table",
                                _where(name, i, row, "channel"))
        if ch in given:
            raise InvalidFormat(f"a second observation for channel {ch!r}", _where(name, i, row))
        given[ch] = _numbers(row, "data", name, i, nbins[ch], required=True)
    missing = [ch for ch in channels if ch not in given]
    if missing:
        raise InvalidFormat(f"no observed counts for channel(s) {', '.join(map(repr, missing))}",
                            "observations")
    return [{"name": ch, "data": given[ch]} for ch in channels]


def _parameter_config(row: dict, i: int) -> dict:
    """One measurements-table row as a parameter configuration."""
    where = "measurements"
    entry: dict[str, Any] = {"name": row["parameter"]}
    for col in _PARAM_LISTS:
        values = _numbers(row, col, where, i)
        if values is not None:
            entry[col] = values
    if row.get("bounds") is not None:
        pairs = []
        for k, pair in enumerate(row["bounds"]):
            sub = {"bounds": pair}
            pairs.append(_numbers(sub, "bounds", where, i) if pair is not None else None)
            if pairs[-1] is None or len(pairs[-1]) != 2:
                raise InvalidFormat(f"entry {k} must be a [lo, hi] pair, got {pair!r}",
                                    _where(where, i, row, "bounds"))
        entry["bounds"] = pairs
    if row.get("fixed") is not None:
        entry["fixed"] = bool(row["fixed"])
    return entry


def _measurements(rows: list[dict]) -> list[dict]:
    """Measurement objects from the measurements table (rows grouped by measurement)."""
    out: dict[str, dict] = {}
    for i, row in enumerate(rows):
        name = _text(row, "measurement", "measurements", i)
        poi = row.get("poi") if row.get("poi") is not None else ""
        meas = out.setdefault(name, {"name": name, "config": {"poi": poi, "parameters": []}})
        if meas["config"]["poi"] != poi:
            raise InvalidFormat(f"poi {poi!r} differs from {meas['config']['poi']!r} given "
                                f"earlier for measurement {name!r}",
                                _where("measurements", i, row, "poi"))
        if row.get("parameter") is None:
            extra = [c for c in _PARAM_LISTS + ("bounds", "fixed") if row.get(c) is not None]
            if extra:
                raise InvalidFormat(f"{', '.join(extra)} given without a parameter name",
                                    _where("measurements", i, row, "parameter"))
            continue
        meas["config"]["parameters"].append(_parameter_config(row, i))
    if not out:
        raise InvalidFormat("has no rows", "measurements table")
    return list(out.values())


def arrow_to_workspace(
    table: Any,
    *,
    poi: str | None = "mu",
    observations: Any = None,
    modifiers: Any = None,
    measurements: Any = None,
    measurement_name: str = "NormalMeasurement",
) -> dict:
    """Build a pyhf workspace from a binned yields table (and optional companion tables).

    Parameters
    ----------
    table : pyarrow.Table, RecordBatch, dict of columns, DataFrame or Parquet path
        The yields table: ``channel``, ``sample``, ``yields`` and optional ``stat_error``.
        Channels and samples keep the order of their first row.
    poi : str or None
        Without a measurements table: the POI of the single measurement (``None``: no
        POI), and the normfactor added to the samples named ``"signal"`` or ``poi`` when
        the modifiers table declares no modifier of that name.
    observations : mapping, table or path, optional
        ``{channel: counts}`` or an observations table; every channel needs one. Default:
        the sum of the nominal yields of each channel (an Asimov-like data set).
    modifiers, measurements : table or path, optional
        The modifiers and measurements tables (see the module docstring).
    measurement_name : str
        The measurement's name when there is no measurements table.

    Returns
    -------
    dict
        A validated pyhf workspace.

    Raises
    ------
    nextstat.errors.InvalidFormat
        A missing, unknown or mistyped column, or a bad row; ``err.where`` names the table,
        the row (with its channel and sample) and the column.
    nextstat.errors.InvalidWorkspace
        The tables are readable but describe an invalid workspace (e.g. a lumi modifier
        without a measurement configuration for ``lumi``).

    Examples
    --------
    >>> ws = arrow_to_workspace({"channel": ["SR", "SR"], "sample": ["signal", "bkg"],
    ...                          "yields": [[5.0, 2.0], [50.0, 40.0]]})
    >>> ws["channels"][0]["samples"][0]["modifiers"], ws["observations"][0]["data"]
    ([{'name': 'mu', 'type': 'normfactor', 'data': None}], [55.0, 42.0])
    """
    channels, nbins = _channels_from_yields(_rows(_as_table(table, "yields"), "yields"))
    declared: set[str] = set()
    if modifiers is not None:
        declared = _add_modifiers(
            channels, nbins, _rows(_as_table(modifiers, "modifiers"), "modifiers")
        )
    if measurements is not None:
        meas = _measurements(_rows(_as_table(measurements, "measurements"), "measurements"))
    else:
        if poi is not None and not isinstance(poi, str):
            raise InvalidArgumentType(f"poi must be a string or None, got {type(poi).__name__}")
        meas = [{"name": measurement_name, "config": {"poi": poi or "", "parameters": []}}]
        if poi and poi not in declared:
            _add_poi(channels, poi)
    ws = {
        "channels": [{"name": ch, "samples": list(samples.values())}
                     for ch, samples in channels.items()],
        "observations": _observations(observations, channels, nbins),
        "measurements": meas,
        "version": "1.0.0",
    }
    return load_workspace_spec(ws)


def _add_poi(channels: dict, poi: str) -> None:
    """Put a normfactor ``poi`` first on every sample named ``signal`` or ``poi``."""
    hits = 0
    for samples in channels.values():
        for name, sample in samples.items():
            if name in ("signal", poi):
                sample["modifiers"].insert(0, {"name": poi, "type": "normfactor", "data": None})
                hits += 1
    if not hits:
        raise InvalidFormat(
            f"no sample carries the POI {poi!r}: name the signal sample 'signal' (or "
            f"{poi!r}), declare a modifier {poi!r} in the modifiers table, or pass poi=None",
            "yields table, column 'sample'",
        )


def from_arrow(table: Any, *, measurement: str | None = None, interpolation: Any = "pyhf",
               unknown_parameters: str = "error", **kwargs: Any):
    """:func:`arrow_to_workspace`, then :func:`nextstat.from_pyhf` on the result.

    Parameters
    ----------
    table : table-like
        See :func:`arrow_to_workspace`.
    measurement, interpolation, unknown_parameters
        As in :func:`nextstat.from_pyhf`.
    **kwargs
        ``poi``, ``observations``, ``modifiers``, ``measurements``, ``measurement_name``.

    Returns
    -------
    HistFactoryModel
    """
    from nextstat.io.pyhf import from_pyhf

    ws = arrow_to_workspace(table, **kwargs)
    return from_pyhf(ws, measurement=measurement, interpolation=interpolation,
                     unknown_parameters=unknown_parameters)


# --------------------------------------------------------------------------
# Parquet files
# --------------------------------------------------------------------------


def read_parquet_tables(path: str | os.PathLike) -> dict:
    """Read a Parquet file (the yields table) or a directory of ``<table>.parquet`` files.

    Returns
    -------
    dict
        ``{"yields": Table, ...}`` with the companion tables the directory holds.
    """
    shown = os.fsdecode(os.fspath(path))
    if os.path.isdir(shown):
        tables = {name: _read_parquet_file(os.path.join(shown, f"{name}.parquet"), name)
                  for name in TABLE_NAMES
                  if os.path.isfile(os.path.join(shown, f"{name}.parquet"))}
        if "yields" not in tables:
            raise InvalidFormat("a Parquet workspace directory needs a yields.parquet file",
                                shown)
        return tables
    return {"yields": _read_parquet_file(shown, "yields")}


def parquet_to_workspace(path: str | os.PathLike, **kwargs: Any) -> dict:
    """:func:`arrow_to_workspace` on a Parquet file or directory.

    A directory written by :func:`workspace_to_parquet` holds ``yields.parquet`` and
    optionally ``modifiers.parquet``, ``observations.parquet`` and
    ``measurements.parquet``; tables passed as keyword arguments take precedence.
    """
    tables = read_parquet_tables(path)
    for name in TABLE_NAMES[1:]:
        if kwargs.get(name) is None and name in tables:
            kwargs[name] = tables[name]
    return arrow_to_workspace(tables["yields"], **kwargs)


def from_parquet(path: str | os.PathLike, *, measurement: str | None = None,
                 interpolation: Any = "pyhf", unknown_parameters: str = "error",
                 **kwargs: Any):
    """:func:`parquet_to_workspace`, then :func:`nextstat.from_pyhf` (returns the model)."""
    from nextstat.io.pyhf import from_pyhf

    ws = parquet_to_workspace(path, **kwargs)
    return from_pyhf(ws, measurement=measurement, interpolation=interpolation,
                     unknown_parameters=unknown_parameters)


def write_parquet(table: Any, path: str | os.PathLike, compression: str = "zstd") -> str:
    """Write one table (anything :func:`arrow_to_workspace` accepts) to a Parquet file.

    Returns
    -------
    str
        The path written.
    """
    _, pq = _pyarrow()
    shown = os.fsdecode(os.fspath(path))
    pq.write_table(_as_table(table, "output"), shown, compression=compression)
    return shown


def workspace_to_parquet(ws: Any, directory: str | os.PathLike,
                         compression: str = "zstd") -> dict[str, str]:
    """Write a workspace as a Parquet directory (``yields.parquet``, ``modifiers.parquet``,
    ``observations.parquet``, ``measurements.parquet``); read it back with
    :func:`parquet_to_workspace`.

    Returns
    -------
    dict
        ``{table name: file path}``.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    return {name: write_parquet(t, out / f"{name}.parquet", compression)
            for name, t in workspace_to_arrow(ws).items()}


# --------------------------------------------------------------------------
# workspace / model -> tables
# --------------------------------------------------------------------------


def _list_type(pa, depth: int = 1):
    t = pa.float64()
    for _ in range(depth):
        t = pa.list_(t)
    return t


def _schema(pa, name: str):
    types = {"str": pa.string(), "list": _list_type(pa), "list2": _list_type(pa, 2),
             "bool": pa.bool_()}
    cols = [c for c in _COLUMNS[name] if not (name == "yields" and c == "stat_error")]
    return pa.schema([(c, types[_COLUMNS[name][c]]) for c in cols])


def _modifier_row(ch: str, sa: str, mod: dict) -> dict:
    row = {"channel": ch, "sample": sa, "modifier_name": mod["name"],
           "modifier_type": mod["type"], "data_hi": None, "data_lo": None, "data": None}
    data = mod["data"]
    if mod["type"] == "normsys":
        row["data_hi"], row["data_lo"] = [data["hi"]], [data["lo"]]
    elif mod["type"] == "histosys":
        row["data_hi"], row["data_lo"] = data["hi_data"], data["lo_data"]
    elif mod["type"] in ("shapesys", "staterror"):
        row["data"] = data
    return row


def _measurement_rows(meas: dict) -> list[dict]:
    base = {"measurement": meas["name"], "poi": meas["config"]["poi"]}
    empty = {c: None for c in MEASUREMENTS_COLUMNS if c not in base}
    params = meas["config"]["parameters"]
    if not params:
        return [dict(base, **empty)]
    rows = []
    for p in params:
        row = dict(base, **empty)
        row.update({k: p[k] for k in (*_PARAM_LISTS, "bounds", "fixed") if k in p})
        row["parameter"] = p["name"]
        rows.append(row)
    return rows


def workspace_to_arrow(ws: Any) -> dict:
    """A workspace as the four tables (``yields``, ``modifiers``, ``observations``,
    ``measurements``); :func:`arrow_to_workspace` rebuilds an equivalent workspace.

    Every modifier, including staterror, goes to the modifiers table under its own name
    (the yields table has no ``stat_error`` column), so names survive the round trip.

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> tables = workspace_to_arrow(uncorrelated_background([5.0], [50.0], [7.0]))
    >>> tables["modifiers"].column("modifier_type").to_pylist()
    ['normfactor', 'shapesys']
    """
    pa, _ = _pyarrow()
    spec = load_workspace_spec(ws)
    yields, mods = [], []
    for ch in spec["channels"]:
        for s in ch["samples"]:
            yields.append({"channel": ch["name"], "sample": s["name"], "yields": s["data"]})
            mods.extend(_modifier_row(ch["name"], s["name"], m) for m in s["modifiers"])
    obs = [{"channel": o["name"], "data": o["data"]} for o in spec["observations"]]
    meas = [row for m in spec["measurements"] for row in _measurement_rows(m)]
    rows = {"yields": yields, "modifiers": mods, "observations": obs, "measurements": meas}
    return {name: pa.Table.from_pylist(rows[name], schema=_schema(pa, name))
            for name in TABLE_NAMES}


def _parameter_values(model, params: Any):
    """(values, uncertainties or None) from None, a vector or a FitResult."""
    if params is None:
        return model.suggested_init(), None
    unc = getattr(params, "uncertainties", None) if hasattr(params, "bestfit") else None
    values = np.asarray(getattr(params, "bestfit", params), dtype=float)
    if values.shape != (model.n_params(),):
        raise InvalidParameters(
            f"params has shape {values.shape}, the model has {model.n_params()} parameters"
        )
    return values, None if unc is None else np.asarray(unc, dtype=float)


def to_arrow(model: Any, params: Any = None, what: str = "yields"):
    """Model outputs as an Arrow table.

    Parameters
    ----------
    model : HistFactoryModel
        The model.
    params : array_like or FitResult, optional
        Parameter values; a :class:`~nextstat.FitResult` gives its best fit (and, for
        ``what="params"``, its uncertainties). Default: the model's initial values.
    what : {"yields", "params"}
        * ``"yields"``: one row per (channel, sample) in model order, with columns
          ``channel``, ``sample``, ``yields`` (expected yields per bin at ``params``): the
          yields-table schema, so the result can be read back with
          :func:`arrow_to_workspace`.
        * ``"params"``: one row per parameter: ``name``, ``index``, ``value``, ``init``,
          ``bound_lo``, ``bound_hi``, ``fixed`` and, for a FitResult, ``uncertainty``.

    Returns
    -------
    pyarrow.Table
    """
    pa, _ = _pyarrow()
    values, unc = _parameter_values(model, params)
    if what == "yields":
        rows = [{"channel": entry["channel_name"], "sample": s["sample_name"], "yields": s["y"]}
                for entry in model.expected_main_by_channel_sample(values)
                for s in entry["samples"]]
        return pa.Table.from_pylist(rows, schema=_schema(pa, "yields"))
    if what != "params":
        raise InvalidArgumentType(f"what must be 'yields' or 'params', got {what!r}")
    bounds = model.suggested_bounds()
    columns = {
        "name": pa.array(model.parameter_names(), pa.string()),
        "index": pa.array(range(model.n_params()), pa.int32()),
        "value": pa.array(values.tolist(), pa.float64()),
        "init": pa.array(model.suggested_init().tolist(), pa.float64()),
        "bound_lo": pa.array([b[0] for b in bounds], pa.float64()),
        "bound_hi": pa.array([b[1] for b in bounds], pa.float64()),
        "fixed": pa.array(model.suggested_fixed(), pa.bool_()),
    }
    if unc is not None:
        columns["uncertainty"] = pa.array(unc.tolist(), pa.float64())
    return pa.table(columns)
