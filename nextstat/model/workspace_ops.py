"""Workspace tools: combine, prune, rename, sort, digest and patchsets (pyhf 0.7.6 semantics).

Every function here takes pyhf workspaces as a ``dict``, JSON text or a file path (see
:func:`~nextstat.model.workspace.load_workspace_spec`), validates them, never modifies its
inputs, and returns a new, validated workspace ``dict``. The operations follow
``pyhf.Workspace.combine/prune/rename/sorted``, ``pyhf.utils.digest`` and
``pyhf.PatchSet`` of pyhf 0.7.6 (``src/pyhf/workspace.py``, ``src/pyhf/patchset.py``);
JSON Patch (RFC 6902) and JSON Pointer (RFC 6901) are implemented here, without the
``jsonpatch`` package.

Differences from pyhf, all deliberate:

* Results are checked with nextstat's full workspace validation, which is stricter than
  pyhf's JSON schema (e.g. the POI must still name a modifier after a prune; pyhf accepts
  such a workspace and fails later, when the model is built).
* Digests are compared case-insensitively when a patchset is verified (the schema allows
  upper-case SHA-256 digests, which pyhf then never matches).
* ``combine`` with ``'left outer'``/``'right outer'`` does not log pyhf's "unsafe join"
  warning; the documentation says what these joins drop.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nextstat.errors import InvalidArgumentType, InvalidWorkspace
from nextstat.model.workspace import (
    _quoted_list,
    load_workspace_spec,
    parse_json_text,
    read_json_file,
    validate_workspace,
)

__all__ = [
    "VALID_JOINS",
    "InvalidPatchSet",
    "InvalidWorkspaceOperation",
    "Patch",
    "PatchSet",
    "PatchSetVerificationError",
    "apply_json_patch",
    "apply_patch",
    "combine",
    "digest",
    "list_patches",
    "load_patchset",
    "prune",
    "rename",
    "sorted_workspace",
]

#: The join modes of :func:`combine` (pyhf's ``Workspace.valid_joins``).
VALID_JOINS = ("none", "outer", "left outer", "right outer")


class InvalidWorkspaceOperation(InvalidWorkspace):
    """A combine/prune/rename request that cannot be carried out (pyhf's exception of the
    same name); ``path`` names the workspace part involved, e.g. ``channels``."""


class InvalidPatchSet(InvalidWorkspace):
    """A patchset is malformed, has no patch of the requested name, or a patch does not
    apply; ``path`` is a JSON path inside the patchset, e.g. ``patches[2].patch[0].path``."""


class PatchSetVerificationError(InvalidPatchSet):
    """The workspace's digest differs from the one recorded in the patchset."""


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _load(ws: Any, what: str = "workspace") -> dict:
    """Validated private copy of a workspace given as dict, JSON text or path."""
    try:
        return load_workspace_spec(ws)
    except InvalidWorkspace as err:
        if what == "workspace":
            raise
        raise type(err)(f"{what}: {err.message}", err.path) from None


def _validated(ws: dict, operation: str) -> dict:
    """Validate an operation's result, saying which operation produced it."""
    try:
        validate_workspace(ws)
    except InvalidWorkspace as err:
        raise InvalidWorkspaceOperation(
            f"the {operation} workspace is not valid: {err.message}", err.path
        ) from None
    return ws


def _names(values: Any, argument: str) -> list[str]:
    """A list of names from a str or an iterable of str (a lone str is one name)."""
    if values is None:
        return []
    if isinstance(values, str):
        return [values]
    if not isinstance(values, Iterable) or isinstance(values, Mapping):
        raise InvalidArgumentType(f"{argument} must be a name or a list of names")
    out = list(values)
    for v in out:
        if not isinstance(v, str):
            raise InvalidArgumentType(f"{argument} must contain strings, got {v!r}")
    return out


def _mapping(values: Any, argument: str) -> dict[str, str]:
    """A ``{old: new}`` dict of names from a mapping or an iterable of pairs."""
    if values is None:
        return {}
    pairs = values.items() if isinstance(values, Mapping) else values
    out: dict[str, str] = {}
    try:
        for old, new in pairs:
            if not isinstance(old, str) or not isinstance(new, str):
                raise InvalidArgumentType(f"{argument} must map names (str) to names (str)")
            out[old] = new
    except (TypeError, ValueError):
        raise InvalidArgumentType(
            f"{argument} must be a mapping {{old: new}} or a list of (old, new) pairs"
        ) from None
    return out


def _inventory(ws: dict) -> dict[str, list[str]]:
    """The sorted channel, sample, modifier-name, modifier-type and measurement names."""
    channels, samples, mods, types = set(), set(), set(), set()
    for ch in ws["channels"]:
        channels.add(ch["name"])
        for s in ch["samples"]:
            samples.add(s["name"])
            for m in s["modifiers"]:
                mods.add(m["name"])
                types.add(m["type"])
    return {
        "channel": sorted(channels),
        "sample": sorted(samples),
        "modifier": sorted(mods),
        "modifier type": sorted(types),
        "measurement": sorted(m["name"] for m in ws["measurements"]),
    }


def _check_known(requested: Iterable[str], known: list[str], kind: str, verb: str) -> None:
    """Raise unless every requested name exists (pyhf's check in ``_prune_and_rename``)."""
    for name in requested:
        if name not in known:
            plural = "modifier types" if kind == "modifier type" else f"{kind}s"
            raise InvalidWorkspaceOperation(
                f"cannot {verb} {kind} {name!r}: it is not one of the {plural} of this "
                f"workspace ({_quoted_list(known)})"
            )


# --------------------------------------------------------------------------
# prune and rename
# --------------------------------------------------------------------------


def _prune_and_rename(ws: dict, prune_: dict[str, list[str]], rename_: dict[str, dict]) -> dict:
    """pyhf's ``Workspace._prune_and_rename`` on a validated private copy."""
    pm, pt, ps, pc = prune_["modifier"], prune_["modifier type"], prune_["sample"], \
        prune_["channel"]
    rm, rs, rc, rmeas = rename_["modifier"], rename_["sample"], rename_["channel"], \
        rename_["measurement"]
    channels = [
        {
            "name": rc.get(ch["name"], ch["name"]),
            "samples": [
                {
                    "name": rs.get(s["name"], s["name"]),
                    "data": s["data"],
                    "modifiers": [
                        dict(m, name=rm.get(m["name"], m["name"]))
                        for m in s["modifiers"]
                        if m["name"] not in pm and m["type"] not in pt
                    ],
                }
                for s in ch["samples"]
                if s["name"] not in ps
            ],
        }
        for ch in ws["channels"]
        if ch["name"] not in pc
    ]
    measurements = [
        {
            "name": rmeas.get(meas["name"], meas["name"]),
            "config": {
                "parameters": [
                    dict(p, name=rm.get(p["name"], p["name"]))
                    for p in meas["config"]["parameters"]
                    if p["name"] not in pm
                ],
                "poi": rm.get(meas["config"]["poi"], meas["config"]["poi"]),
            },
        }
        for meas in ws["measurements"]
        if meas["name"] not in prune_["measurement"]
    ]
    observations = [
        dict(obs, name=rc.get(obs["name"], obs["name"]))
        for obs in ws["observations"]
        if obs["name"] not in pc
    ]
    return {
        "channels": channels,
        "measurements": measurements,
        "observations": observations,
        "version": ws["version"],
    }


def _edit(ws: Any, verb: str, request: dict[str, Any]) -> dict:
    """Check that every name in ``request`` exists, then prune (or rename) them."""
    spec = _load(ws)
    known = _inventory(spec)
    for kind, names in request.items():  # the checks run in the request's order
        _check_known(names, known[kind], kind, verb)
    if verb == "prune":
        out = _prune_and_rename(spec, request, {k: {} for k in known})
    else:
        out = _prune_and_rename(spec, {k: [] for k in known}, request)
    return _validated(out, f"{verb}d")


def prune(
    ws: Any,
    channels: Any = (),
    samples: Any = (),
    modifiers: Any = (),
    modifier_types: Any = (),
    measurements: Any = (),
) -> dict:
    """Remove channels, samples, modifiers or measurements (``pyhf.Workspace.prune``).

    Parameters
    ----------
    ws : dict, str or os.PathLike
        The workspace (dict, JSON text or file path); it is not modified.
    channels, samples, modifiers, modifier_types, measurements : str or list of str
        Names to remove. A channel also loses its observation; a modifier name removes
        the modifiers of that name of every type and the measurements' parameter
        configurations of that name; a modifier type removes every modifier of that type.

    Returns
    -------
    dict
        A new, validated workspace.

    Raises
    ------
    InvalidWorkspaceOperation
        A name that does not occur in the workspace, or a result that is not a valid
        workspace (e.g. a channel left without samples, or a POI that no longer names a
        modifier); the message says which.

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> ws = uncorrelated_background([5.0], [50.0], [7.0])
    >>> pruned = prune(ws, modifier_types="shapesys")
    >>> [m["type"] for s in pruned["channels"][0]["samples"] for m in s["modifiers"]]
    ['normfactor']
    """
    request = {
        "modifier type": _names(modifier_types, "modifier_types"),
        "modifier": _names(modifiers, "modifiers"),
        "sample": _names(samples, "samples"),
        "channel": _names(channels, "channels"),
        "measurement": _names(measurements, "measurements"),
    }
    return _edit(ws, "prune", request)


def rename(
    ws: Any,
    channels: Any = None,
    samples: Any = None,
    modifiers: Any = None,
    measurements: Any = None,
) -> dict:
    """Rename channels, samples, modifiers or measurements (``pyhf.Workspace.rename``).

    Parameters
    ----------
    ws : dict, str or os.PathLike
        The workspace (dict, JSON text or file path); it is not modified.
    channels, samples, modifiers, measurements : mapping or list of (old, new) pairs
        ``{old: new}`` names. Renaming a channel renames its observation; renaming a
        modifier renames it in every sample, in the measurements' parameter
        configurations and as the measurements' POI.

    Returns
    -------
    dict
        A new, validated workspace.

    Raises
    ------
    InvalidWorkspaceOperation
        An old name that does not occur in the workspace, or a result that is not a valid
        workspace (e.g. two channels now share a name).

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> ws = rename(uncorrelated_background([5.0], [50.0], [7.0]), modifiers={"mu": "xsec"})
    >>> ws["measurements"][0]["config"]["poi"]
    'xsec'
    """
    request = {
        "modifier type": {},
        "modifier": _mapping(modifiers, "modifiers"),
        "sample": _mapping(samples, "samples"),
        "channel": _mapping(channels, "channels"),
        "measurement": _mapping(measurements, "measurements"),
    }
    return _edit(ws, "rename", request)


# --------------------------------------------------------------------------
# combine
# --------------------------------------------------------------------------


def _join_items(join: str, left: list, right: list, deep_merge_key: str | None = None) -> list:
    """pyhf's ``_join_items``: join two lists of named objects (deep copies)."""
    if join == "right outer":
        primary, secondary = right, left
    else:
        primary, secondary = left, right
    joined = copy.deepcopy(primary)
    keys = [item["name"] for item in joined]
    for item in secondary:
        if item["name"] in keys and deep_merge_key is not None:
            target = joined[keys.index(item["name"])]
            target[deep_merge_key] = _join_items(
                "left outer", target[deep_merge_key], item[deep_merge_key]
            )
        elif (
            join == "none"
            or (join == "outer" and item not in primary)
            or (join in ("left outer", "right outer") and item["name"] not in keys)
        ):
            joined.append(copy.deepcopy(item))
    return joined


def _duplicates(items: list) -> list[str]:
    """Names that occur more than once, in order of first occurrence."""
    counts = Counter(item["name"] for item in items)
    return [name for name, n in counts.items() if n > 1]


def _check_join(join: str, kind: str, left: list, right: list, joined: list) -> None:
    """pyhf's conflict checks for channels and observations."""
    if join == "none":
        common = sorted({i["name"] for i in left} & {i["name"] for i in right})
        if common:
            raise InvalidWorkspaceOperation(
                f"with join='none' the workspaces cannot have {kind}s of the same name in "
                f"common: {_quoted_list(common)}; try join='outer' (or a left/right outer join)",
                f"{kind}s",
            )
    elif join == "outer":
        bad = _duplicates(joined)
        if bad:
            raise InvalidWorkspaceOperation(
                f"with join='outer' {kind}s of the same name must be identical in both "
                f"workspaces; these differ: {_quoted_list(bad)}",
                f"{kind}s",
            )


def _join_parameter_configs(name: str, left: list, right: list) -> list:
    """Outer-join the parameter configurations of two same-name measurements."""
    joined = _join_items("outer", left, right)
    bad = _duplicates(joined)
    if bad:
        raise InvalidWorkspaceOperation(
            f"measurement {name!r} has incompatible parameter configurations in the two "
            f"workspaces for: {_quoted_list(bad)}",
            "measurements",
        )
    return joined


def _join_measurements(join: str, left: list, right: list) -> list:
    """pyhf's ``_join_measurements``: same-name measurements merge under 'outer'."""
    joined = _join_items(join, left, right)
    if join == "none":
        _check_join(join, "measurement", left, right, joined)
        return joined
    if join != "outer":
        return joined
    by_name: dict[str, list] = {}
    for meas in joined:
        by_name.setdefault(meas["name"], []).append(meas)
    bad_poi = [n for n, ms in by_name.items() if len({m["config"]["poi"] for m in ms}) > 1]
    if bad_poi:
        raise InvalidWorkspaceOperation(
            f"measurements of the same name have different POIs in the two workspaces: "
            f"{_quoted_list(bad_poi)}",
            "measurements",
        )
    out = []
    for name, ms in by_name.items():
        if len(ms) == 1:
            out.append(ms[0])
            continue
        params = _join_parameter_configs(
            name, ms[0]["config"]["parameters"], ms[1]["config"]["parameters"]
        )
        out.append({"name": name, "config": {"poi": ms[0]["config"]["poi"],
                                             "parameters": params}})
    return out


def combine(ws1: Any, ws2: Any, join: str = "none", merge_channels: bool = False) -> dict:
    """Combine two workspaces (``pyhf.Workspace.combine``).

    Parameters
    ----------
    ws1, ws2 : dict, str or os.PathLike
        The left and right workspaces; neither is modified.
    join : {'none', 'outer', 'left outer', 'right outer'}
        How same-name channels, observations and measurements are joined:

        * ``'none'``: no name may occur in both workspaces;
        * ``'outer'``: a name in both is kept once if both objects are identical and is an
          error otherwise; same-name measurements must have the same POI and are merged,
          their parameter configurations outer-joined;
        * ``'left outer'`` / ``'right outer'``: on a name clash the left (right) object is
          kept and the other is dropped silently.
    merge_channels : bool
        With an outer join, merge same-name channels sample by sample (a sample of the
        same name is taken from the left workspace for ``'outer'``/``'left outer'`` and
        from the right one for ``'right outer'``).

    Returns
    -------
    dict
        A new, validated workspace: left items first, then the right ones (right first for
        ``'right outer'``).

    Raises
    ------
    InvalidWorkspaceOperation
        An unknown ``join``, ``merge_channels`` without an outer join, conflicting names,
        different versions or POIs, or an invalid result.

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> a = uncorrelated_background([5.0], [50.0], [7.0])
    >>> b = rename(a, channels={"singlechannel": "CR"}, measurements={"measurement": "m2"})
    >>> [c["name"] for c in combine(a, b)["channels"]]
    ['singlechannel', 'CR']
    """
    if join not in VALID_JOINS:
        raise InvalidWorkspaceOperation(
            f"join must be one of {_quoted_list(list(VALID_JOINS))}, got {join!r}"
        )
    if merge_channels and join == "none":
        raise InvalidWorkspaceOperation(
            "merge_channels needs an 'outer', 'left outer' or 'right outer' join, not 'none'"
        )
    left, right = _load(ws1, "left workspace"), _load(ws2, "right workspace")
    if left["version"] != right["version"]:
        raise InvalidWorkspaceOperation(
            f"workspaces of different versions cannot be combined: {left['version']!r} != "
            f"{right['version']!r}",
            "version",
        )
    channels = _join_items(join, left["channels"], right["channels"],
                           "samples" if merge_channels else None)
    _check_join(join, "channel", left["channels"], right["channels"], channels)
    observations = _join_items(join, left["observations"], right["observations"])
    _check_join(join, "observation", left["observations"], right["observations"], observations)
    measurements = _join_measurements(join, left["measurements"], right["measurements"])
    out = {
        "channels": channels,
        "measurements": measurements,
        "observations": observations,
        "version": left["version"],
    }
    return _validated(out, "combined")


# --------------------------------------------------------------------------
# sorted and digest
# --------------------------------------------------------------------------


def sorted_workspace(ws: Any) -> dict:
    """The workspace with every named list sorted by name (``pyhf.Workspace.sorted``).

    Channels, samples, measurements, parameter configurations and observations are sorted
    by name, modifiers by ``(name, type)``; Python's stable sort keeps ties in order.

    Parameters
    ----------
    ws : dict, str or os.PathLike
        The workspace; it is not modified.

    Returns
    -------
    dict
        A new, validated, sorted workspace.

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> ws = sorted_workspace(uncorrelated_background([5.0], [50.0], [7.0]))
    >>> [s["name"] for s in ws["channels"][0]["samples"]]
    ['background', 'signal']
    """
    spec = _load(ws)
    spec["channels"].sort(key=lambda e: e["name"])
    for ch in spec["channels"]:
        ch["samples"].sort(key=lambda e: e["name"])
        for s in ch["samples"]:
            s["modifiers"].sort(key=lambda e: (e["name"], e["type"]))
    spec["measurements"].sort(key=lambda e: e["name"])
    for meas in spec["measurements"]:
        meas["config"]["parameters"].sort(key=lambda e: e["name"])
    spec["observations"].sort(key=lambda e: e["name"])
    return spec


def _digest_json(obj: Any, algorithm: str) -> str:
    """Hash of ``json.dumps(obj, sort_keys=True, ensure_ascii=False)`` (pyhf.utils.digest)."""
    if algorithm not in hashlib.algorithms_available:
        raise InvalidWorkspaceOperation(
            f"unknown hash algorithm {algorithm!r}; available: "
            f"{_quoted_list(sorted(hashlib.algorithms_available))}"
        )
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, allow_nan=False)
    h = hashlib.new(algorithm)
    h.update(text.encode("utf8"))
    if h.digest_size == 0:  # shake_* need a length; pyhf fails on them too
        raise InvalidWorkspaceOperation(f"hash algorithm {algorithm!r} needs a digest length")
    return h.hexdigest()


def digest(ws: Any, algorithm: str = "sha256") -> str:
    """The workspace digest pyhf records in patchsets (``pyhf.utils.digest``).

    The hash of ``json.dumps(ws, sort_keys=True, ensure_ascii=False)`` encoded as UTF-8,
    so it depends on key order nowhere but on list order and on how numbers are written
    (``5`` and ``5.0`` differ, as in pyhf).

    Parameters
    ----------
    ws : dict, str or os.PathLike
        The workspace (validated first).
    algorithm : str
        Any :mod:`hashlib` algorithm with a fixed length: ``'sha256'`` (default),
        ``'md5'``, ``'sha1'``, ...

    Returns
    -------
    str
        The hexadecimal digest.

    Examples
    --------
    >>> from nextstat.model.simplemodels import uncorrelated_background
    >>> len(digest(uncorrelated_background([5.0], [50.0], [7.0])))
    64
    """
    if not isinstance(algorithm, str):
        raise InvalidArgumentType(f"algorithm must be a string, got {type(algorithm).__name__}")
    return _digest_json(_load(ws), algorithm)


# --------------------------------------------------------------------------
# JSON Pointer (RFC 6901) and JSON Patch (RFC 6902)
# --------------------------------------------------------------------------

_INDEX = re.compile(r"^(0|[1-9][0-9]*)$")


class _PatchError(Exception):
    """Internal: a patch operation failed; the caller adds the location."""


def _pointer_tokens(pointer: str) -> list[str]:
    """Split a JSON Pointer into unescaped reference tokens."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise _PatchError(f"JSON pointer {pointer!r} must be empty or start with '/'")
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/")]


def _index(container: list, token: str, pointer: str, allow_end: bool) -> int:
    """The list index a token names (``-`` is the end, only where ``allow_end``)."""
    if token == "-" and allow_end:
        return len(container)
    if not _INDEX.match(token):
        raise _PatchError(f"{pointer!r}: {token!r} is not an array index")
    i = int(token)
    if i > len(container) or (i == len(container) and not allow_end):
        raise _PatchError(f"{pointer!r}: index {i} is out of range (array of {len(container)})")
    return i


def _resolve(doc: Any, tokens: list[str], pointer: str) -> Any:
    """The value at ``tokens`` inside ``doc``."""
    node = doc
    for depth, token in enumerate(tokens):
        where = "/" + "/".join(tokens[:depth]) if depth else "the document root"
        if isinstance(node, dict):
            if token not in node:
                raise _PatchError(f"{pointer!r}: no member {token!r} in {where}")
            node = node[token]
        elif isinstance(node, list):
            node = node[_index(node, token, pointer, allow_end=False)]
        else:
            raise _PatchError(f"{pointer!r}: cannot step into a {type(node).__name__} at {where}")
    return node


def _parent(doc: Any, pointer: str) -> tuple[Any, str]:
    """The container of the target of ``pointer`` and the last token."""
    tokens = _pointer_tokens(pointer)
    parent = _resolve(doc, tokens[:-1], pointer)
    if not isinstance(parent, (dict, list)):
        raise _PatchError(f"{pointer!r}: the parent is a {type(parent).__name__}, not a container")
    return parent, tokens[-1]


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers by value, booleans distinct from numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _op_add(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        parent[token] = value
    else:
        parent.insert(_index(parent, token, pointer, allow_end=True), value)
    return doc


def _op_remove(doc: Any, pointer: str) -> Any:
    if pointer == "":
        raise _PatchError("cannot remove the document root")
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise _PatchError(f"{pointer!r}: no member {token!r} to remove")
        del parent[token]
    else:
        del parent[_index(parent, token, pointer, allow_end=False)]
    return doc


def _op_replace(doc: Any, pointer: str, value: Any) -> Any:
    if pointer == "":
        return value
    parent, token = _parent(doc, pointer)
    if isinstance(parent, dict):
        if token not in parent:
            raise _PatchError(f"{pointer!r}: no member {token!r} to replace")
        parent[token] = value
    else:
        parent[_index(parent, token, pointer, allow_end=False)] = value
    return doc


def _apply_operation(doc: Any, op: dict) -> Any:
    """Apply one RFC 6902 operation in place (the root may be replaced: use the result)."""
    kind, pointer = op["op"], op["path"]
    if kind == "add":
        return _op_add(doc, pointer, copy.deepcopy(op["value"]))
    if kind == "remove":
        return _op_remove(doc, pointer)
    if kind == "replace":
        return _op_replace(doc, pointer, copy.deepcopy(op["value"]))
    if kind == "test":
        actual = _resolve(doc, _pointer_tokens(pointer), pointer)
        if not _json_equal(actual, op["value"]):
            raise _PatchError(f"test failed at {pointer!r}: {actual!r} != {op['value']!r}")
        return doc
    source = op["from"]
    value = _resolve(doc, _pointer_tokens(source), source)
    if kind == "copy":
        return _op_add(doc, pointer, copy.deepcopy(value))
    if pointer == source:  # kind == "move"
        return doc
    if pointer.startswith(source + "/"):
        raise _PatchError(f"cannot move {source!r} into its own child {pointer!r}")
    doc = _op_remove(doc, source)
    return _op_add(doc, pointer, value)


def apply_json_patch(document: Any, operations: list, where: str = "patch") -> Any:
    """Apply a JSON Patch (RFC 6902) to a copy of ``document``.

    Parameters
    ----------
    document : JSON value
        The document; it is not modified.
    operations : list of dict
        ``add``, ``remove``, ``replace``, ``move``, ``copy`` and ``test`` operations with
        JSON Pointer (RFC 6901) ``path``/``from`` members; ``-`` appends to an array.
    where : str
        The JSON path of ``operations`` used in error messages.

    Returns
    -------
    JSON value
        The patched copy. Operations apply in order; a failure leaves nothing half-done
        (the input is never touched).

    Raises
    ------
    InvalidPatchSet
        A malformed operation, a path that does not exist, or a failed ``test``;
        ``err.path`` is e.g. ``patch[3]``.

    Examples
    --------
    >>> apply_json_patch({"a": [1, 2]}, [{"op": "add", "path": "/a/-", "value": 3},
    ...                                  {"op": "move", "from": "/a", "path": "/b"}])
    {'b': [1, 2, 3]}
    """
    _check_operations(operations, where)
    return _apply_operations(copy.deepcopy(document), operations, where)


def _apply_operations(doc: Any, operations: list, where: str) -> Any:
    """Apply checked operations to ``doc`` in place (the root may be replaced: use the result)."""
    for i, op in enumerate(operations):
        try:
            doc = _apply_operation(doc, op)
        except _PatchError as err:
            raise InvalidPatchSet(f"{op['op']} operation failed: {err}", f"{where}[{i}]") from None
    return doc


_OPS_WITH_VALUE = ("add", "replace", "test")
_OPS_WITH_FROM = ("move", "copy")


def _check_operations(operations: Any, where: str) -> None:
    """The jsonpatch schema of pyhf's ``defs.json``."""
    if not isinstance(operations, list):
        raise InvalidPatchSet(f"a JSON patch is an array of operations, got "
                              f"{type(operations).__name__}", where)
    for i, op in enumerate(operations):
        path = f"{where}[{i}]"
        if not isinstance(op, dict):
            raise InvalidPatchSet(f"an operation is an object, got {type(op).__name__}", path)
        kind = op.get("op")
        if kind not in _OPS_WITH_VALUE + _OPS_WITH_FROM + ("remove",):
            raise InvalidPatchSet(
                f"'op' must be one of add, remove, replace, move, copy, test; got {kind!r}",
                f"{path}.op",
            )
        if not isinstance(op.get("path"), str):
            raise InvalidPatchSet("'path' must be a JSON pointer string", f"{path}.path")
        if kind in _OPS_WITH_VALUE and "value" not in op:
            raise InvalidPatchSet(f"a {kind!r} operation needs a 'value'", path)
        if kind in _OPS_WITH_FROM and not isinstance(op.get("from"), str):
            raise InvalidPatchSet(f"a {kind!r} operation needs a 'from' pointer string", path)


# --------------------------------------------------------------------------
# patchsets
# --------------------------------------------------------------------------

_LABEL = re.compile(r"^[a-zA-Z0-9_]+$")
_DIGEST_PATTERNS = {
    "md5": re.compile(r"^[a-f0-9]{32}$"),
    "sha256": re.compile(r"^[a-fA-F0-9]{64}$"),
}
_HEPDATA = re.compile(r"^ins[0-9]{7}$")


@dataclass(frozen=True)
class Patch:
    """One patch of a :class:`PatchSet`.

    Attributes
    ----------
    name : str
        The patch name (``[A-Za-z0-9_]+``).
    values : tuple
        One value (number or string) per patchset label, e.g. the signal masses.
    operations : list of dict
        The JSON Patch operations.
    metadata : dict
        The patch's full ``metadata`` object.
    """

    name: str
    values: tuple
    operations: list = field(repr=False)
    metadata: dict = field(repr=False)


def _require(obj: Any, path: str, keys: tuple[str, ...], allowed: tuple[str, ...] | None) -> None:
    """``obj`` is an object with the ``keys`` (and, if given, only the ``allowed`` keys)."""
    if not isinstance(obj, dict):
        raise InvalidPatchSet(f"expected an object, got {type(obj).__name__}", path or None)
    for key in keys:
        if key not in obj:
            raise InvalidPatchSet(f"missing required member {key!r}", path or None)
    if allowed is not None:
        extra = sorted(set(obj) - set(allowed))
        if extra:
            raise InvalidPatchSet(
                f"unexpected member(s) {_quoted_list(extra)}; allowed: {_quoted_list(allowed)}",
                path or None,
            )


def _check_metadata(meta: dict) -> None:
    """The patchset ``metadata`` object of pyhf's schema."""
    _require(meta, "metadata", ("references", "digests", "labels", "description"), None)
    refs, digests, labels = meta["references"], meta["digests"], meta["labels"]
    _require(refs, "metadata.references", (), ("hepdata",))
    if not refs:
        raise InvalidPatchSet("needs at least one reference", "metadata.references")
    if "hepdata" in refs and not (isinstance(refs["hepdata"], str)
                                  and _HEPDATA.match(refs["hepdata"])):
        raise InvalidPatchSet("must look like 'ins1234567'", "metadata.references.hepdata")
    _require(digests, "metadata.digests", (), tuple(_DIGEST_PATTERNS))
    if not digests:
        raise InvalidPatchSet("needs at least one digest (md5 or sha256)", "metadata.digests")
    for alg, value in digests.items():
        if not (isinstance(value, str) and _DIGEST_PATTERNS[alg].match(value)):
            raise InvalidPatchSet(f"not a hexadecimal {alg} digest: {value!r}",
                                  f"metadata.digests.{alg}")
    if not isinstance(labels, list) or not labels:
        raise InvalidPatchSet("must be a non-empty array of labels", "metadata.labels")
    for i, label in enumerate(labels):
        if not (isinstance(label, str) and _LABEL.match(label)):
            raise InvalidPatchSet(f"a label is a [A-Za-z0-9_]+ string, got {label!r}",
                                  f"metadata.labels[{i}]")
    if not isinstance(meta["description"], str):
        raise InvalidPatchSet("must be a string", "metadata.description")


def _parse_patch(entry: Any, i: int, n_labels: int) -> Patch:
    """One entry of ``patches``."""
    path = f"patches[{i}]"
    _require(entry, path, ("metadata", "patch"), ("metadata", "patch"))
    meta = entry["metadata"]
    _require(meta, f"{path}.metadata", ("name", "values"), None)
    name, values = meta["name"], meta["values"]
    if not (isinstance(name, str) and _LABEL.match(name)):
        raise InvalidPatchSet(f"a patch name is a [A-Za-z0-9_]+ string, got {name!r}",
                              f"{path}.metadata.name")
    if not isinstance(values, list):
        raise InvalidPatchSet("must be an array", f"{path}.metadata.values")
    for j, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, str)):
            raise InvalidPatchSet(f"a value is a number or a string, got {v!r}",
                                  f"{path}.metadata.values[{j}]")
    if len(values) != n_labels:
        raise InvalidPatchSet(
            f"patch {name!r} has {len(values)} value(s), the patchset has {n_labels} label(s)",
            f"{path}.metadata.values",
        )
    _check_operations(entry["patch"], f"{path}.patch")
    return Patch(name, tuple(values), entry["patch"], meta)


class PatchSet:
    """A pyhf patchset (schema 1.0.0): signal patches for a background-only workspace.

    Parameters
    ----------
    spec : dict, str or os.PathLike
        The patchset as a dict, JSON text, or the path of a (possibly gzipped) JSON file.
        It is validated against pyhf's ``patchset.json`` schema; patch names and value
        tuples must be unique (as in pyhf), and every patch has one value per label.

    Raises
    ------
    InvalidPatchSet
        With ``err.path`` set to the offending JSON path, e.g. ``patches[4].metadata.name``.

    Examples
    --------
    >>> ps = PatchSet({"version": "1.0.0", "metadata": {
    ...     "references": {"hepdata": "ins1234567"}, "digests": {"md5": "0" * 32},
    ...     "labels": ["m"], "description": "demo"},
    ...     "patches": [{"metadata": {"name": "m100", "values": [100]},
    ...                  "patch": [{"op": "remove", "path": "/x"}]}]})
    >>> ps["m100"].values, ps[(100,)].name
    ((100,), 'm100')
    """

    def __init__(self, spec: Any):
        doc = _read_patchset(spec)
        _require(doc, "", ("patches", "metadata", "version"), ("patches", "metadata", "version"))
        if doc["version"] != "1.0.0":
            raise InvalidPatchSet(f"version must be '1.0.0', got {doc['version']!r}", "version")
        _check_metadata(doc["metadata"])
        patches = doc["patches"]
        if not isinstance(patches, list) or not patches:
            raise InvalidPatchSet("must be a non-empty array of patches", "patches")
        n_labels = len(doc["metadata"]["labels"])
        self._patches = [_parse_patch(p, i, n_labels) for i, p in enumerate(patches)]
        self._by_name: dict[str, Patch] = {}
        self._by_values: dict[tuple, Patch] = {}
        for i, p in enumerate(self._patches):
            for table, key, what in ((self._by_name, p.name, "name"),
                                     (self._by_values, p.values, "values")):
                if key in table:
                    raise InvalidPatchSet(f"two patches have the same {what} {key!r}",
                                          f"patches[{i}].metadata.{what}")
                table[key] = p
        self._doc = doc

    @property
    def version(self) -> str:
        """The schema version (``'1.0.0'``)."""
        return self._doc["version"]

    @property
    def metadata(self) -> dict:
        """The patchset ``metadata`` object."""
        return self._doc["metadata"]

    @property
    def labels(self) -> list[str]:
        """Names of the dimensions of each patch's ``values``."""
        return list(self.metadata["labels"])

    @property
    def digests(self) -> dict[str, str]:
        """``{algorithm: digest}`` of the background-only workspace."""
        return dict(self.metadata["digests"])

    @property
    def description(self) -> str:
        """The patchset description."""
        return self.metadata["description"]

    @property
    def references(self) -> dict:
        """The references (``{'hepdata': 'ins...'}``)."""
        return dict(self.metadata["references"])

    @property
    def patches(self) -> list[Patch]:
        """The patches, in file order."""
        return list(self._patches)

    def __len__(self) -> int:
        return len(self._patches)

    def __iter__(self):
        return iter(self._patches)

    def __getitem__(self, key: Any) -> Patch:
        """The patch of a name (str) or of a values tuple/list."""
        if isinstance(key, str):
            found = self._by_name.get(key)
        elif isinstance(key, (tuple, list)):
            found = self._by_values.get(tuple(key))
        else:
            raise InvalidArgumentType(
                f"a patch is looked up by name (str) or values (tuple), not {type(key).__name__}"
            )
        if found is None:
            names = [p.name for p in self._patches]
            raise InvalidPatchSet(
                f"no patch {key!r} in the patchset; patches are: {_quoted_list(names)}",
                "patches",
            )
        return found

    def verify(self, ws: Any) -> None:
        """Check the background-only workspace against every recorded digest.

        Raises
        ------
        PatchSetVerificationError
            If a digest differs (the message gives both).
        """
        self._verify(_load(ws, "background-only workspace"))

    def _verify(self, spec: dict) -> None:
        """:meth:`verify` on an already loaded workspace."""
        for alg, expected in self.digests.items():
            actual = _digest_json(spec, alg)
            if actual.lower() != expected.lower():
                raise PatchSetVerificationError(
                    f"the workspace does not match the patchset: {alg} digest is {actual}, "
                    f"the patchset expects {expected}",
                    f"metadata.digests.{alg}",
                )

    def apply(self, ws: Any, key: Any, verify: bool = True) -> dict:
        """The workspace with patch ``key`` applied (see :func:`apply_patch`)."""
        spec = _load(ws, "background-only workspace")  # a private copy: patched in place
        if verify:
            self._verify(spec)
        patch = self[key]
        index = self._patches.index(patch)
        where = f"patches[{index}]"
        patched = _apply_operations(spec, patch.operations, f"{where}.patch")
        if not isinstance(patched, dict):
            raise InvalidPatchSet(
                f"patch {patch.name!r} turns the workspace into a {type(patched).__name__}", where
            )
        try:
            return load_workspace_spec(patched)
        except InvalidWorkspace as err:
            raise InvalidPatchSet(
                f"patch {patch.name!r} produces an invalid workspace: {err}", where
            ) from None

    def __repr__(self) -> str:
        return f"PatchSet(labels={self.labels}, patches={len(self)})"


def _read_patchset(spec: Any) -> Any:
    """Parse a patchset given as dict, JSON text or path."""
    if isinstance(spec, PatchSet):
        return copy.deepcopy(spec._doc)
    if isinstance(spec, dict):
        return copy.deepcopy(spec)
    if isinstance(spec, str) and spec.lstrip().startswith(("{", "[")):
        return parse_json_text(spec, "patchset JSON text")
    if isinstance(spec, (str, os.PathLike)):
        try:
            return read_json_file(os.fspath(spec))
        except InvalidWorkspace as err:
            raise InvalidPatchSet(err.message.replace("workspace file", "patchset file")) from None
    raise InvalidArgumentType(
        f"a patchset must be a dict, JSON text or a file path, got {type(spec).__name__}"
    )


def load_patchset(spec: Any) -> PatchSet:
    """Read and validate a patchset (dict, JSON text, path, or a :class:`PatchSet`)."""
    return spec if isinstance(spec, PatchSet) else PatchSet(spec)


def list_patches(patchset: Any) -> list[dict]:
    """The patches of a patchset as ``[{"name": ..., "values": [...]}]``, in file order.

    Examples
    --------
    >>> ps = {"version": "1.0.0", "metadata": {"references": {"hepdata": "ins1234567"},
    ...       "digests": {"md5": "0" * 32}, "labels": ["m1", "m2"], "description": ""},
    ...       "patches": [{"metadata": {"name": "p_1_2", "values": [1, 2]}, "patch": []}]}
    >>> list_patches(ps)
    [{'name': 'p_1_2', 'values': [1, 2]}]
    """
    return [{"name": p.name, "values": list(p.values)} for p in load_patchset(patchset)]


def apply_patch(ws: Any, patchset: Any, name: Any, verify: bool = True) -> dict:
    """Apply one patch of a patchset to a background-only workspace (``pyhf patchset apply``).

    Parameters
    ----------
    ws : dict, str or os.PathLike
        The background-only workspace; it is not modified.
    patchset : PatchSet, dict, str or os.PathLike
        The patchset.
    name : str or tuple
        The patch's name, or its values (one per label), e.g. ``(1000, 100)``.
    verify : bool
        Check the workspace digests recorded in the patchset first (as pyhf always does).

    Returns
    -------
    dict
        The patched, validated workspace.

    Raises
    ------
    PatchSetVerificationError
        The workspace is not the one the patchset was made for.
    InvalidPatchSet
        No such patch, a patch operation fails, or the result is not a valid workspace.
    """
    return load_patchset(patchset).apply(ws, name, verify=verify)
