"""Load and validate pyhf JSON workspaces (schema version 1.0.0).

This module implements pyhf's ``workspace.json``
schema (``pyhf/schemas/1.0.0/defs.json``) plus the structural checks that
pyhf 0.7.6 performs later, or not at all, while building a model. It needs
neither ``jsonschema`` nor ``pyhf``.

Every problem is reported as :class:`~nextstat.errors.InvalidWorkspace`
whose ``path`` attribute is a JSON path such as
``channels[2].samples[0].modifiers[1].data.hi_data`` and whose message states
what was expected and what was found.

Validation runs in two phases:

1. *schema*: object keys, value types and minimum array lengths, exactly as
   the JSON schema, with two deliberate deviations: booleans are not numbers
   (pyhf's tensor-aware type checker lets ``true`` through) and every number
   must be finite (JSON has no NaN or infinity; Python's ``json`` module
   accepts them anyway).
2. *semantics*: everything the schema cannot express: unique channel,
   sample, modifier, observation, measurement and parameter-config names;
   bin counts of samples, modifiers and observations; one observation per
   channel; non-negative ``staterror``/``shapesys`` uncertainties;
   ``bounds`` given as ``[lo, hi]`` pairs with ``lo <= hi``; ``sigmas > 0``;
   the POI names a modifier parameter; a ``lumi`` modifier has a complete
   parameter configuration in every measurement.

Value-level model checks (negative yields, ``normsys`` factors that are not
positive under interpolation code 1 or 4, ...) belong to the model builder.
"""

from __future__ import annotations

import copy
import difflib
import gzip
import json
import math
import numbers
import os
import zlib
from typing import Any

import numpy as np

from nextstat._ext.workspace_fast import NotPlain, channels_fast_accept, plain_copy
from nextstat.errors import InvalidArgumentType, InvalidWorkspace

__all__ = [
    "MODIFIER_TYPES",
    "SCHEMA_VERSION",
    "load_workspace_spec",
    "select_measurement",
    "validate_workspace",
]

#: The only workspace schema version pyhf 0.7.6 knows.
SCHEMA_VERSION = "1.0.0"

#: The HistFactory modifier types of the 1.0.0 schema, alphabetically.
MODIFIER_TYPES = (
    "histosys",
    "lumi",
    "normfactor",
    "normsys",
    "shapefactor",
    "shapesys",
    "staterror",
)

_NULL_DATA_TYPES = ("lumi", "normfactor", "shapefactor")
_ARRAY_DATA_TYPES = ("shapesys", "staterror")

_WORKSPACE_KEYS = ("channels", "measurements", "observations", "version")
_CHANNEL_KEYS = ("name", "samples")
_SAMPLE_KEYS = ("name", "data", "modifiers")
_MODIFIER_KEYS = ("name", "type", "data")
_OBSERVATION_KEYS = ("name", "data")
_MEASUREMENT_KEYS = ("name", "config")
_CONFIG_KEYS = ("poi", "parameters")
_PARAMETER_OPTIONAL_KEYS = ("inits", "bounds", "auxdata", "factors", "sigmas", "fixed")
_LUMI_REQUIRED_CONFIG = ("inits", "bounds", "auxdata", "sigmas")


_MAX_LISTED = 20


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------


def _join(path: str, key: str | int) -> str:
    """Extend a JSON path by an object key or an array index."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _fail(path: str, message: str) -> None:
    """Raise :class:`InvalidWorkspace` at ``path`` (``""`` means the document root)."""
    raise InvalidWorkspace(message, path or None)


def _type_name(value: Any) -> str:
    """The JSON type name of ``value`` (Python type name for non-JSON values)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if _is_array(value):
        return "array"
    if isinstance(value, numbers.Real):
        return "number"
    return f"Python {type(value).__name__}"


def _is_array(value: Any) -> bool:
    """True for a JSON array: a ``list`` or a NumPy array of rank >= 1 (as pyhf allows)."""
    return isinstance(value, list) or (isinstance(value, np.ndarray) and value.ndim >= 1)


def _is_number(value: Any) -> bool:
    """True for a real number that is not a boolean."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _label(kind: str, obj: Any) -> str:
    """``"channel 'SR'"`` when ``obj`` has a string name, else just ``kind``."""
    if isinstance(obj, dict) and isinstance(obj.get("name"), str):
        return f"{kind} {obj['name']!r}"
    return kind


def _quoted_list(names: list[str] | tuple[str, ...]) -> str:
    """Render names as ``'a', 'b', 'c'``, shortened after ``_MAX_LISTED`` entries."""
    shown = ", ".join(repr(n) for n in names[:_MAX_LISTED])
    if len(names) > _MAX_LISTED:
        shown += f", ... ({len(names) - _MAX_LISTED} more)"
    return shown or "(none)"


def _did_you_mean(word: str, candidates: list[str] | tuple[str, ...]) -> str:
    """A ``"; did you mean 'x'?"`` suffix when a close match exists."""
    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------
# phase 1: the JSON schema
# --------------------------------------------------------------------------


def _check_object(
    obj: Any,
    path: str,
    what: str,
    required: tuple[str, ...],
    optional: tuple[str, ...] = (),
) -> None:
    """Check that ``obj`` is an object with all ``required`` keys and no others."""
    if not isinstance(obj, dict):
        _fail(path, f"{what} must be a JSON object, got {_type_name(obj)}")
    allowed = required + optional
    unknown = [k for k in obj if k not in allowed]
    for key in required:
        if key not in obj:
            extra = f" (found unknown key(s) {_quoted_list(unknown)})" if unknown else ""
            _fail(_join(path, key), f"{what} is missing required key {key!r}{extra}")
    if unknown:
        key = unknown[0]
        _fail(
            _join(path, str(key)),
            f"unknown key {key!r} in {what}{_did_you_mean(str(key), allowed)}; "
            f"allowed keys are: {_quoted_list(allowed)}",
        )


def _check_string(value: Any, path: str, what: str) -> None:
    if not isinstance(value, str):
        _fail(path, f"{what} must be a string, got {_type_name(value)}")


def _check_number(value: Any, path: str, what: str) -> None:
    if not _is_number(value):
        _fail(path, f"{what} must be a number, got {_type_name(value)}")
    try:
        finite = math.isfinite(value)
    except OverflowError:  # an int too large for a double
        finite = False
    if not finite:
        _fail(path, f"{what} must be a finite number, got {value!r}")


def _check_array(value: Any, path: str, what: str, min_items: int = 0) -> None:
    if not _is_array(value):
        _fail(path, f"{what} must be an array, got {_type_name(value)}")
    if len(value) < min_items:
        _fail(path, f"{what} must have at least {min_items} entry, got an empty array")


#: Python types of JSON numbers as json.loads makes them (``type(True)`` is bool, not int).
_PLAIN_NUMBERS = frozenset((float, int))


def _check_number_array(value: Any, path: str, what: str, min_items: int = 1) -> None:
    _check_array(value, path, what, min_items)
    # Fast path (a list of finite floats/ints: every array of a valid workspace; a finite
    # sum means finite entries); anything else, an overflowing sum included, goes through
    # the item-by-item checks, which name the offending entry.
    if type(value) is list and set(map(type, value)) <= _PLAIN_NUMBERS:
        try:
            if math.isfinite(sum(value)):
                return
        except OverflowError:  # an int too large for a double
            pass
    for i, item in enumerate(value):
        _check_number(item, _join(path, i), f"{what} entry {i}")


def _check_modifier_schema(mod: Any, path: str, where: str) -> None:
    if not isinstance(mod, dict):
        _fail(path, f"modifier in {where} must be a JSON object, got {_type_name(mod)}")
    if "type" not in mod:
        _fail(_join(path, "type"), f"{_label('modifier', mod)} in {where} has no 'type'")
    mtype = mod["type"]
    if not isinstance(mtype, str) or mtype not in MODIFIER_TYPES:
        shown = repr(mtype) if isinstance(mtype, str) else f"of JSON type {_type_name(mtype)}"
        hint = _did_you_mean(mtype, MODIFIER_TYPES) if isinstance(mtype, str) else ""
        _fail(
            _join(path, "type"),
            f"unknown modifier type {shown} for {_label('modifier', mod)} in {where}{hint}; "
            f"valid types are: {', '.join(MODIFIER_TYPES)}",
        )
    what = f"{mtype} modifier" + (f" {mod['name']!r}" if isinstance(mod.get("name"), str) else "")
    _check_object(mod, path, f"{what} in {where}", _MODIFIER_KEYS)
    _check_string(mod["name"], _join(path, "name"), f"name of {mtype} modifier")
    if mtype == "lumi" and mod["name"] != "lumi":
        _fail(
            _join(path, "name"),
            f"a lumi modifier must be named 'lumi', got {mod['name']!r} (in {where})",
        )
    data = mod["data"]
    dpath = _join(path, "data")
    if mtype in _NULL_DATA_TYPES:
        if data is not None:
            _fail(dpath, f"{what} data must be null, got {_type_name(data)}")
    elif mtype == "normsys":
        _check_object(data, dpath, f"{what} data", ("hi", "lo"))
        for key in ("hi", "lo"):
            _check_number(data[key], _join(dpath, key), f"{what} {key}")
    elif mtype == "histosys":
        _check_object(data, dpath, f"{what} data", ("hi_data", "lo_data"))
        for key in ("hi_data", "lo_data"):
            _check_number_array(data[key], _join(dpath, key), f"{what} {key}")
    else:  # staterror, shapesys
        _check_number_array(data, dpath, f"{what} data")


def _check_parameter_schema(par: Any, path: str, where: str) -> None:
    what = f"{_label('parameter config', par)} in {where}"
    _check_object(par, path, what, ("name",), _PARAMETER_OPTIONAL_KEYS)
    _check_string(par["name"], _join(path, "name"), f"name of parameter config in {where}")
    for key in ("inits", "auxdata", "factors", "sigmas"):
        if key in par:
            _check_number_array(par[key], _join(path, key), f"{what} {key}")
    if "bounds" in par:
        bpath = _join(path, "bounds")
        _check_array(par["bounds"], bpath, f"{what} bounds", 1)
        for i, pair in enumerate(par["bounds"]):
            # The schema puts minItems/maxItems on the number, where they have no
            # effect: any length passes phase 1; pairs are enforced in phase 2.
            _check_number_array(pair, _join(bpath, i), f"{what} bounds entry {i}", 0)
    if "fixed" in par and not isinstance(par["fixed"], bool):
        _fail(
            _join(path, "fixed"), f"{what} fixed must be a boolean, got {_type_name(par['fixed'])}"
        )


def _validate_schema(ws: Any) -> tuple | None:
    """Phase 1: check ``ws`` against pyhf's ``workspace.json`` schema 1.0.0.

    Equivalent to ``pyhf.schema.validate(ws, 'workspace.json')`` except that
    booleans and complex numbers are not accepted as numbers and numbers must
    be finite.

    The channels are first offered to the compiled
    :func:`~nextstat._ext.workspace_fast.channels_fast_accept`, which checks both
    phases on them at once; its result (bins per channel, first ``lumi`` modifier,
    modifier names) is returned, or ``None`` if it declined and the checks below ran.
    """
    if not isinstance(ws, dict):
        _fail("", f"a workspace must be a JSON object, got {_type_name(ws)}")
    _check_object(ws, "", "workspace", _WORKSPACE_KEYS)
    if not (isinstance(ws["version"], str) and ws["version"] == SCHEMA_VERSION):
        _fail(
            "version",
            f"unsupported workspace version {ws['version']!r}; expected {SCHEMA_VERSION!r}",
        )

    _check_array(ws["channels"], "channels", "channels", 1)
    accepted = channels_fast_accept(ws["channels"])
    if accepted is None:
        _check_channels_schema(ws["channels"])

    _check_array(ws["observations"], "observations", "observations", 1)
    for oi, obs in enumerate(ws["observations"]):
        opath = _join("observations", oi)
        owhat = _label("observation", obs)
        _check_object(obs, opath, owhat, _OBSERVATION_KEYS)
        _check_string(obs["name"], _join(opath, "name"), "observation name")
        _check_number_array(obs["data"], _join(opath, "data"), f"data of {owhat}")

    _check_array(ws["measurements"], "measurements", "measurements", 1)
    for mi, meas in enumerate(ws["measurements"]):
        mpath = _join("measurements", mi)
        mwhat = _label("measurement", meas)
        _check_object(meas, mpath, mwhat, _MEASUREMENT_KEYS)
        _check_string(meas["name"], _join(mpath, "name"), "measurement name")
        cfg_path = _join(mpath, "config")
        _check_object(meas["config"], cfg_path, f"config of {mwhat}", _CONFIG_KEYS)
        _check_string(meas["config"]["poi"], _join(cfg_path, "poi"), f"poi of {mwhat}")
        ppath_root = _join(cfg_path, "parameters")
        params = meas["config"]["parameters"]
        _check_array(params, ppath_root, f"parameters of {mwhat}")
        for pi, par in enumerate(params):
            _check_parameter_schema(par, _join(ppath_root, pi), mwhat)
    return accepted


def _check_channels_schema(channels: list) -> None:
    """Phase 1 on the channels (the reference the compiled fast path is tested against)."""
    for ci, channel in enumerate(channels):
        cpath = _join("channels", ci)
        cwhat = _label("channel", channel)
        _check_object(channel, cpath, cwhat, _CHANNEL_KEYS)
        _check_string(channel["name"], _join(cpath, "name"), "channel name")
        spath_root = _join(cpath, "samples")
        _check_array(channel["samples"], spath_root, f"samples of {cwhat}", 1)
        for si, sample in enumerate(channel["samples"]):
            spath = _join(spath_root, si)
            swhat = f"{_label('sample', sample)} of {cwhat}"
            _check_object(sample, spath, swhat, _SAMPLE_KEYS)
            _check_string(sample["name"], _join(spath, "name"), f"sample name in {cwhat}")
            _check_number_array(sample["data"], _join(spath, "data"), f"data of {swhat}")
            mpath_root = _join(spath, "modifiers")
            _check_array(sample["modifiers"], mpath_root, f"modifiers of {swhat}")
            for mi, mod in enumerate(sample["modifiers"]):
                _check_modifier_schema(mod, _join(mpath_root, mi), swhat)


# --------------------------------------------------------------------------
# phase 2: semantics the schema cannot express
# --------------------------------------------------------------------------


def _check_unique(names: list[str], path_of: Any, kind: str, where: str) -> None:
    """Reject the second occurrence of a name; ``path_of(i)`` gives the i-th path."""
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if name in seen:
            _fail(
                path_of(i),
                f"duplicate {kind} name {name!r}{where} (first defined at {path_of(seen[name])})",
            )
        seen[name] = i


def _validate_channels(ws: dict) -> tuple[dict[str, int], str | None, set[str]]:
    """Check channels; return bins per channel, path of the first lumi modifier, modifier names."""
    channels = ws["channels"]
    _check_unique(
        [c["name"] for c in channels], lambda i: _join(_join("channels", i), "name"), "channel", ""
    )
    nbins_of: dict[str, int] = {}
    lumi_at: str | None = None
    modifier_names: set[str] = set()
    for ci, channel in enumerate(channels):
        cpath = _join("channels", ci)
        cname = channel["name"]
        samples = channel["samples"]
        _check_unique(
            [s["name"] for s in samples],
            lambda i, cpath=cpath: _join(_join(_join(cpath, "samples"), i), "name"),
            "sample",
            f" in channel {cname!r}",
        )
        nbins = len(samples[0]["data"])
        first = samples[0]["name"]
        nbins_of[cname] = nbins
        for si, sample in enumerate(samples):
            spath = _join(_join(cpath, "samples"), si)
            sname = sample["name"]
            if len(sample["data"]) != nbins:
                _fail(
                    _join(spath, "data"),
                    f"sample {sname!r} has {len(sample['data'])} bins, channel {cname!r} has "
                    f"{nbins} (the bin count of its first sample {first!r})",
                )
            seen: dict[tuple[str, str], int] = {}
            for mi, mod in enumerate(sample["modifiers"]):
                mpath = _join(_join(spath, "modifiers"), mi)
                mname, mtype = mod["name"], mod["type"]
                if (mname, mtype) in seen:
                    _fail(
                        mpath,
                        f"duplicate {mtype} modifier {mname!r} in sample {sname!r} of channel "
                        f"{cname!r} (first defined at {_join(spath, 'modifiers')}"
                        f"[{seen[(mname, mtype)]}])",
                    )
                seen[(mname, mtype)] = mi
                modifier_names.add(mname)
                if mtype == "lumi" and lumi_at is None:
                    lumi_at = mpath
                _check_modifier_semantics(mod, mpath, cname, sname, nbins)
    return nbins_of, lumi_at, modifier_names


def _check_modifier_semantics(mod: dict, path: str, cname: str, sname: str, nbins: int) -> None:
    mname, mtype, data = mod["name"], mod["type"], mod["data"]
    dpath = _join(path, "data")
    if mtype == "histosys":
        for key in ("hi_data", "lo_data"):
            n = len(data[key])
            if n != nbins:
                _fail(
                    _join(dpath, key),
                    f"histosys {mname!r} {key} has {n} bins, channel {cname!r} has {nbins} "
                    f"(sample {sname!r})",
                )
    elif mtype in _ARRAY_DATA_TYPES:
        if len(data) != nbins:
            _fail(
                dpath,
                f"{mtype} {mname!r} has {len(data)} bins, channel {cname!r} has {nbins} "
                f"(sample {sname!r})",
            )
        for b, value in enumerate(data):
            if value < 0:
                _fail(
                    _join(dpath, b),
                    f"{mtype} {mname!r} uncertainty in bin {b} is negative ({value!r}) "
                    f"in sample {sname!r} of channel {cname!r}; uncertainties must be >= 0",
                )


def _validate_observations(ws: dict, nbins_of: dict[str, int]) -> None:
    observations = ws["observations"]
    _check_unique(
        [o["name"] for o in observations],
        lambda i: _join(_join("observations", i), "name"),
        "observation",
        "",
    )
    channel_names = list(nbins_of)
    for oi, obs in enumerate(observations):
        opath = _join("observations", oi)
        oname = obs["name"]
        if oname not in nbins_of:
            _fail(
                _join(opath, "name"),
                f"observation {oname!r} does not match any channel"
                f"{_did_you_mean(oname, channel_names)}; channels are: "
                f"{_quoted_list(channel_names)}",
            )
        if len(obs["data"]) != nbins_of[oname]:
            _fail(
                _join(opath, "data"),
                f"observation {oname!r} has {len(obs['data'])} bins, channel {oname!r} has "
                f"{nbins_of[oname]}",
            )
    observed = {o["name"] for o in observations}
    for ci, cname in enumerate(channel_names):
        if cname not in observed:
            _fail(
                "observations",
                f"channel {cname!r} (channels[{ci}]) has no observation; observations exist "
                f"for: {_quoted_list(sorted(observed))}",
            )


def _validate_measurements(ws: dict, lumi_at: str | None, modifier_names: set[str]) -> None:
    measurements = ws["measurements"]
    _check_unique(
        [m["name"] for m in measurements],
        lambda i: _join(_join("measurements", i), "name"),
        "measurement",
        "",
    )
    sorted_names = sorted(modifier_names)
    for mi, meas in enumerate(measurements):
        mpath = _join("measurements", mi)
        cfg_path = _join(mpath, "config")
        mname = meas["name"]
        poi = meas["config"]["poi"]
        # An empty POI string means a POI-less model (pyhf.Model maps "" to None).
        if poi != "" and poi not in modifier_names:
            _fail(
                _join(cfg_path, "poi"),
                f"poi {poi!r} of measurement {mname!r} is not a parameter of any modifier"
                f"{_did_you_mean(poi, sorted_names)}; parameters are: "
                f"{_quoted_list(sorted_names)}",
            )
        params = meas["config"]["parameters"]
        ppath_root = _join(cfg_path, "parameters")
        _check_unique(
            [p["name"] for p in params],
            lambda i, root=ppath_root: _join(_join(root, i), "name"),
            "parameter config",
            f" in measurement {mname!r}",
        )
        for pi, par in enumerate(params):
            _check_parameter_semantics(par, _join(ppath_root, pi), mname)
        if lumi_at is not None:
            entries = [i for i, p in enumerate(params) if p["name"] == "lumi"]
            if not entries:
                _fail(
                    ppath_root,
                    f"measurement {mname!r} has no parameter config for 'lumi', but the "
                    f"workspace has a lumi modifier ({lumi_at}); pyhf has no defaults "
                    f"for lumi: give {{'name': 'lumi', 'inits': [...], 'bounds': [[lo, hi]], "
                    f"'auxdata': [...], 'sigmas': [...]}}",
                )
            missing = [k for k in _LUMI_REQUIRED_CONFIG if k not in params[entries[0]]]
            if missing:
                _fail(
                    _join(ppath_root, entries[0]),
                    f"the lumi parameter config of measurement {mname!r} is missing "
                    f"{_quoted_list(missing)}; pyhf has no defaults for lumi and needs "
                    f"{_quoted_list(_LUMI_REQUIRED_CONFIG)}",
                )


def _check_parameter_semantics(par: dict, path: str, mname: str) -> None:
    pname = par["name"]
    for i, pair in enumerate(par.get("bounds", [])):
        bpath = _join(_join(path, "bounds"), i)
        if len(pair) != 2:
            _fail(
                bpath,
                f"bounds entry {i} of parameter {pname!r} (measurement {mname!r}) must be a "
                f"[lo, hi] pair, got {len(pair)} number(s)",
            )
        lo, hi = pair[0], pair[1]
        if lo > hi:
            _fail(
                bpath,
                f"bounds entry {i} of parameter {pname!r} (measurement {mname!r}) has "
                f"lo > hi ([{lo!r}, {hi!r}])",
            )
    for i, sigma in enumerate(par.get("sigmas", [])):
        if sigma <= 0:
            _fail(
                _join(_join(path, "sigmas"), i),
                f"sigmas entry {i} of parameter {pname!r} (measurement {mname!r}) must be > 0, "
                f"got {sigma!r}",
            )


def _validate_semantics(ws: dict, accepted: tuple | None = None) -> None:
    """Phase 2: checks beyond the JSON schema. Assumes :func:`_validate_schema` passed;
    ``accepted`` is what it returned (channels already checked by the fast path)."""
    if accepted is None:
        nbins_of, lumi_at, modifier_names = _validate_channels(ws)
    else:
        nbins_of, lumi_idx, modifier_names = accepted
        lumi_at = None
        if lumi_idx is not None:
            ci, si, mi = lumi_idx
            lumi_at = f"channels[{ci}].samples[{si}].modifiers[{mi}]"
    _validate_observations(ws, nbins_of)
    _validate_measurements(ws, lumi_at, modifier_names)


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def validate_workspace(ws: dict) -> None:
    """Validate a pyhf workspace (schema 1.0.0) in full.

    Parameters
    ----------
    ws : dict
        The workspace, as parsed from JSON. Arrays may be lists or NumPy
        arrays (as pyhf allows); numbers may be Python or NumPy scalars.

    Returns
    -------
    None
        When the workspace is valid.

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        At the first problem found. ``err.path`` is the JSON path of the
        offending value (``None`` for the document root) and the message
        states what was expected and what was received.

    Notes
    -----
    Everything pyhf's ``workspace.json`` schema rejects is rejected. In
    addition (pyhf 0.7.6 fails later, or silently misbehaves, on these):

    * booleans are not numbers and numbers must be finite;
    * channel names, sample names within a channel, (name, type) modifier
      pairs within a sample, observation names, measurement names and
      parameter-config names within a measurement must be unique;
    * every sample of a channel has the bin count of its first sample, as do
      ``histosys`` ``hi_data``/``lo_data`` and ``staterror``/``shapesys``
      data; ``staterror``/``shapesys`` uncertainties are ``>= 0``;
    * there is exactly one observation per channel, with the channel's bin
      count, and none for an unknown channel;
    * ``bounds`` entries are ``[lo, hi]`` pairs with ``lo <= hi`` and
      ``sigmas`` entries are ``> 0``;
    * a measurement POI is ``""`` (POI-less) or the name of a modifier;
    * if a ``lumi`` modifier exists, every measurement configures the
      ``lumi`` parameter with ``inits``, ``bounds``, ``auxdata`` and
      ``sigmas`` (pyhf has no defaults for them).

    Examples
    --------
    >>> ws = {
    ...     "channels": [{"name": "SR", "samples": [
    ...         {"name": "sig", "data": [5.0], "modifiers": [
    ...             {"name": "mu", "type": "normfactor", "data": None}]}]}],
    ...     "observations": [{"name": "SR", "data": [6.0]}],
    ...     "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    ...     "version": "1.0.0",
    ... }
    >>> validate_workspace(ws)
    >>> ws["observations"][0]["data"] = [6.0, 1.0]
    >>> validate_workspace(ws)
    Traceback (most recent call last):
    ...
    nextstat.errors.InvalidWorkspace: observations[0].data: observation 'SR' has 2 bins, \
channel 'SR' has 1
    """
    _validate_semantics(ws, _validate_schema(ws))


_JSON_LEAF_TYPES = frozenset((str, int, float, bool))


def _copy_plain(obj: Any) -> Any:
    """Deep-copy ``obj`` as plain JSON values: the compiled copy when it is plain already,
    else :func:`_to_plain`."""
    try:
        return plain_copy(obj)
    except NotPlain:
        return _to_plain(obj)


def _to_plain(obj: Any) -> Any:
    """Deep-copy ``obj`` replacing NumPy arrays by lists and NumPy numbers by Python ones."""
    if obj is None or type(obj) in _JSON_LEAF_TYPES:  # immutable JSON leaves
        return obj
    if isinstance(obj, dict):
        return {k: _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        if set(map(type, obj)) <= _JSON_LEAF_TYPES:  # the bin contents: a flat copy
            return list(obj)
        return [_to_plain(v) for v in obj]
    if isinstance(obj, np.ndarray) and obj.ndim >= 1:
        return [_to_plain(v) for v in obj]
    if isinstance(obj, np.number):
        return obj.item()
    return copy.deepcopy(obj)


def parse_json_text(text: str | bytes, source: str) -> Any:
    """Parse JSON text, turning syntax errors into :class:`InvalidWorkspace`."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InvalidWorkspace(
            f"malformed JSON in {source} at line {err.lineno}, column {err.colno}: {err.msg}"
        ) from None
    except UnicodeDecodeError as err:
        raise InvalidWorkspace(f"{source} is not valid UTF-8 JSON text: {err}") from None
    except RecursionError:
        raise InvalidWorkspace(f"{source} is nested too deeply to be a workspace") from None


def read_json_file(path: str | bytes) -> Any:
    """Read and parse a (possibly gzip-compressed) JSON workspace file."""
    shown = os.fsdecode(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise InvalidWorkspace(f"workspace file not found: {shown!r}") from None
    except OSError as err:
        raise InvalidWorkspace(
            f"cannot read workspace file {shown!r}: {err.strerror or err}"
        ) from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise InvalidWorkspace(f"corrupt gzip workspace file {shown!r}: {err}") from None
    return parse_json_text(raw, f"file {shown!r}")


def load_workspace_spec(spec: str | os.PathLike | dict) -> dict:
    """Load a pyhf workspace and validate it.

    Parameters
    ----------
    spec : str, os.PathLike or dict
        * a ``dict``: the workspace itself (deep-copied; NumPy arrays and
          scalars in it become lists and Python numbers);
        * a ``str`` whose first non-blank character is ``{`` (or ``[``):
          JSON text;
        * any other ``str``, or an :class:`os.PathLike`: the path of a JSON
          file (UTF-8, optionally gzip-compressed). ``"-"`` (standard input)
          is not handled here.

    Returns
    -------
    dict
        A new, validated workspace made only of JSON types.

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        If the file is missing or unreadable (the message names the path), the
        JSON text is malformed (the message gives line and column) or the
        workspace fails :func:`validate_workspace`.
    nextstat.errors.InvalidArgumentType
        If ``spec`` is of any other type.

    Examples
    --------
    >>> text = '''{"channels": [{"name": "SR", "samples": [{"name": "s", "data": [1.0],
    ...   "modifiers": [{"name": "mu", "type": "normfactor", "data": null}]}]}],
    ...   "observations": [{"name": "SR", "data": [2.0]}],
    ...   "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": []}}],
    ...   "version": "1.0.0"}'''
    >>> load_workspace_spec(text)["channels"][0]["name"]
    'SR'
    """
    if isinstance(spec, dict):
        try:
            ws = _copy_plain(spec)
        except RecursionError:
            raise InvalidWorkspace("the workspace dict is nested too deeply to be a "
                                   "workspace") from None
    elif isinstance(spec, str):
        if spec.lstrip().startswith(("{", "[")):
            ws = parse_json_text(spec, "JSON text")
        else:
            ws = read_json_file(spec)
    elif isinstance(spec, os.PathLike):
        ws = read_json_file(os.fspath(spec))
    else:
        raise InvalidArgumentType(
            "a workspace must be given as a dict, JSON text or a file path (str or "
            f"os.PathLike), got {type(spec).__name__}"
        )
    validate_workspace(ws)
    return ws


def select_measurement(ws: dict, name: str | None = None) -> dict:
    """Pick a measurement of a (validated) workspace.

    Parameters
    ----------
    ws : dict
        A workspace that passed :func:`validate_workspace`.
    name : str, optional
        The measurement's name. By default the first measurement is returned
        (as pyhf does).

    Returns
    -------
    dict
        The measurement object ``{"name": ..., "config": {"poi": ...,
        "parameters": [...]}}`` itself (not a copy).

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        If the workspace has no measurements or none is called ``name`` (the
        message lists the available names).
    nextstat.errors.InvalidArgumentType
        If ``name`` is neither ``None`` nor a string.

    Examples
    --------
    >>> ws = {"measurements": [{"name": "a", "config": {"poi": "mu", "parameters": []}},
    ...                        {"name": "b", "config": {"poi": "k", "parameters": []}}]}
    >>> select_measurement(ws)["name"], select_measurement(ws, "b")["config"]["poi"]
    ('a', 'k')
    """
    if name is not None and not isinstance(name, str):
        raise InvalidArgumentType(
            f"a measurement name must be a string or None, got {type(name).__name__}"
        )
    measurements = ws.get("measurements") if isinstance(ws, dict) else None
    if not measurements:
        raise InvalidWorkspace("the workspace defines no measurements", "measurements")
    if name is None:
        return measurements[0]
    names = [m.get("name") for m in measurements]
    for meas in measurements:
        if meas.get("name") == name:
            return meas
    raise InvalidWorkspace(
        f"no measurement named {name!r}{_did_you_mean(name, [str(n) for n in names])}; "
        f"available measurements are: {_quoted_list([str(n) for n in names])}",
        "measurements",
    )
