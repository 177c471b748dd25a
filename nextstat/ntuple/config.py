"""The YAML / JSON form of :class:`~nextstat.ntuple.builder.NtupleWorkspaceBuilder`.

Used by ``nextstat build --config analysis.yaml``. The format (all keys optional
unless marked required; unknown keys are errors, with a suggestion)::

    ntuple_path: ntuples/          # relative to the base directory (default: the
                                   # config file's directory, or --base-dir)
    tree: events                   # default TTree
    measurement: {name: meas, poi: mu}
    step_size: 1000000             # entries per chunk
    parameters:                    # pyhf measurement parameter settings
      - {name: mu, bounds: [[0, 10]]}
    regions:                       # required, at least one
      - name: SR                   # required
        variable: mbb              # required, an expression
        binning: [0, 50, 100, 200] # required: edges, or {bins: 10, low: 0, high: 500}
        selection: njet >= 4 && pt > 25
        weight: weight_pu          # applies to every MC sample of the region
        flow: drop                 # or merge
        data: data.root            # or {file(s): ..., tree: ..., selection: ..., weight: ...}
    samples:                       # required, at least one
      - name: ttbar                # required
        file: ttbar.root           # required: file or files (list)
        tree: nominal
        weight: weight_mc * weight_sf
        selection: ...             # and-ed with the region's
        regions: [SR]              # default: every region
        normfactor: mu             # name, {name, init, bounds}, or a list of those
        normsys: {name: xsec, lo: 0.9, hi: 1.1}   # or a list
        staterror: true
        shapesys: name
    normfactors:                   # apply to several samples at once
      - {name: mu_bkg, samples: [ttbar, wjets], regions: [CR], init: 1, bounds: [0, 5]}
    systematics:
      - name: jes                  # required
        type: weight               # required: weight | tree | norm
        samples: [ttbar]           # default: every sample
        regions: [SR]              # default: every region
        up: weight_jes_up          # weight: up/down weight expressions,
        down: weight_jes_down      #   relative: true multiplies the sample weight
      - {name: jer, type: tree, file_up: jer_up.root, file_down: jer_down.root}
      - {name: lumi_unc, type: norm, lo: 0.98, hi: 1.02}
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Mapping
from typing import Any

from nextstat.errors import InvalidConfig
from nextstat.ntuple.builder import NtupleWorkspaceBuilder

__all__ = ["load_config", "builder_from_config", "build_from_config"]

_TOP = {
    "ntuple_path",
    "tree",
    "measurement",
    "step_size",
    "parameters",
    "regions",
    "samples",
    "normfactors",
    "systematics",
}
_REGION = {"name", "variable", "binning", "selection", "weight", "flow", "data"}
_DATA = {"file", "files", "tree", "selection", "weight"}
_SAMPLE = {
    "name",
    "file",
    "files",
    "tree",
    "weight",
    "selection",
    "regions",
    "normfactor",
    "normsys",
    "staterror",
    "shapesys",
}
_NORMFACTOR = {"name", "samples", "regions", "init", "bounds"}
_SYST = {
    "name",
    "type",
    "samples",
    "regions",
    "up",
    "down",
    "relative",
    "file_up",
    "file_down",
    "tree_up",
    "tree_down",
    "lo",
    "hi",
}


def read_config_text(path: str) -> str:
    """The text of a config file (UTF-8); a missing file is an :class:`InvalidConfig`."""
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise InvalidConfig(f"config file not found: {path}") from None


def load_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML (``.yaml`` / ``.yml``) or JSON config file into a dict."""
    path = os.fspath(path)
    name = os.path.basename(path)
    text = read_config_text(path)
    if path.endswith((".yaml", ".yml")):
        import yaml

        try:
            cfg = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise InvalidConfig(f"invalid YAML: {exc}", name) from None
    else:
        try:
            cfg = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidConfig(f"invalid JSON: {exc}", name) from None
    if not isinstance(cfg, dict):
        raise InvalidConfig("the config must be a mapping at top level", name)
    return cfg


class _Checker:
    def __init__(self, source: str):
        self.source = source

    def at(self, path: str) -> str:
        return f"{self.source}: {path}" if path else self.source

    def mapping(self, obj: Any, allowed: set[str], path: str) -> Mapping[str, Any]:
        if not isinstance(obj, Mapping):
            raise InvalidConfig(f"expected a mapping, got {type(obj).__name__}", self.at(path))
        for key in obj:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), sorted(allowed), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidConfig(f"unknown key {key!r}{hint}", self.at(path))
        return obj

    def require(self, obj: Mapping[str, Any], key: str, path: str) -> Any:
        if key not in obj or obj[key] is None:
            raise InvalidConfig(f"missing required key {key!r}", self.at(path))
        return obj[key]

    def seq(self, obj: Any, path: str, *, allow_one: bool = False) -> list[Any]:
        if obj is None:
            return []
        if isinstance(obj, (list, tuple)):
            return list(obj)
        if allow_one:
            return [obj]
        raise InvalidConfig(f"expected a list, got {type(obj).__name__}", self.at(path))

    def names(self, obj: Any, known: list[str], what: str, path: str) -> list[str] | None:
        if obj is None:
            return None
        names = [str(x) for x in self.seq(obj, path, allow_one=True)]
        for n in names:
            if n not in known:
                close = difflib.get_close_matches(n, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise InvalidConfig(f"unknown {what} {n!r}{hint}", self.at(path))
        return names


def _files(c: _Checker, obj: Mapping[str, Any], path: str, required: bool = True) -> list[str]:
    if "file" in obj and "files" in obj:
        raise InvalidConfig("give 'file' or 'files', not both", c.at(path))
    raw = obj.get("file", obj.get("files"))
    if raw is None:
        if required:
            raise InvalidConfig("missing required key 'file' (or 'files')", c.at(path))
        return []
    return [str(f) for f in c.seq(raw, path + ".files", allow_one=True)]


def _binning(c: _Checker, raw: Any, path: str) -> tuple[Any, Any, Any]:
    if isinstance(raw, Mapping):
        c.mapping(raw, {"bins", "low", "high"}, path)
        try:
            return int(c.require(raw, "bins", path)), float(raw["low"]), float(raw["high"])
        except (KeyError, TypeError, ValueError):
            raise InvalidConfig("needs numbers 'bins', 'low' and 'high'", c.at(path)) from None
    if not isinstance(raw, (list, tuple)):
        raise InvalidConfig(f"expected a list of edges, got {raw!r}", c.at(path))
    return raw, None, None


def builder_from_config(
    cfg: Mapping[str, Any], base_dir: str | os.PathLike = ".", source: str = "config"
) -> NtupleWorkspaceBuilder:
    """Translate a config mapping into a (not yet built) :class:`NtupleWorkspaceBuilder`.

    Parameters
    ----------
    cfg : mapping
        The parsed config (see the module docstring for the format).
    base_dir : path
        Directory that ``ntuple_path`` and relative file names are resolved against.
    source : str
        Name of the config in error messages (e.g. ``analysis.yaml``).

    Raises
    ------
    InvalidConfig
        Unknown or missing keys, unknown region / sample names, with the place in
        the config (``analysis.yaml: samples[1].regions``).
    """
    c = _Checker(source)
    c.mapping(cfg, _TOP, "")
    b = NtupleWorkspaceBuilder()
    b.ntuple_path(os.path.join(os.fspath(base_dir), str(cfg.get("ntuple_path", "."))))
    if "tree" in cfg:
        b.tree_name(str(cfg["tree"]))
    meas = c.mapping(cfg.get("measurement", {}), {"name", "poi"}, "measurement")
    b.measurement(str(meas.get("name", "meas")), str(meas.get("poi", "mu")))
    if "step_size" in cfg:
        step = cfg["step_size"]
        if isinstance(step, bool) or not isinstance(step, (int, float)) or step < 1 or step % 1:
            raise InvalidConfig(f"must be a positive integer, got {step!r}", c.at("step_size"))
        b.step_size(int(step))
    for i, p in enumerate(c.seq(cfg.get("parameters"), "parameters")):
        if not isinstance(p, Mapping) or "name" not in p:
            raise InvalidConfig("each parameter needs a 'name'", c.at(f"parameters[{i}]"))
        b.parameter(str(p["name"]), **{k: v for k, v in p.items() if k != "name"})

    regions = c.seq(c.require(cfg, "regions", ""), "regions")
    samples = c.seq(c.require(cfg, "samples", ""), "samples")
    if not regions:
        raise InvalidConfig("no regions", c.at("regions"))
    if not samples:
        raise InvalidConfig("no samples", c.at("samples"))
    region_names = [
        str(c.require(c.mapping(r, _REGION, f"regions[{i}]"), "name", f"regions[{i}]"))
        for i, r in enumerate(regions)
    ]
    sample_names = [
        str(c.require(c.mapping(s, _SAMPLE, f"samples[{i}]"), "name", f"samples[{i}]"))
        for i, s in enumerate(samples)
    ]
    for what, names, key in (
        ("region", region_names, "regions"),
        ("sample", sample_names, "samples"),
    ):
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise InvalidConfig(f"duplicate {what} name {sorted(dup)[0]!r}", c.at(key))

    systs = [
        c.mapping(s, _SYST, f"systematics[{i}]")
        for i, s in enumerate(c.seq(cfg.get("systematics"), "systematics"))
    ]
    nfs = [
        c.mapping(s, _NORMFACTOR, f"normfactors[{i}]")
        for i, s in enumerate(c.seq(cfg.get("normfactors"), "normfactors"))
    ]
    filters = {}
    for kind, items in (("systematics", systs), ("normfactors", nfs)):
        for i, item in enumerate(items):
            path = f"{kind}[{i}]"
            c.require(item, "name", path)
            filters[(kind, i)] = (
                c.names(item.get("samples"), sample_names, "sample", f"{path}.samples"),
                c.names(item.get("regions"), region_names, "region", f"{path}.regions"),
            )

    for ri, r in enumerate(regions):
        rpath = f"regions[{ri}]"
        rname = region_names[ri]
        ch = b.channel(rname)
        ch.variable(str(c.require(r, "variable", rpath)))
        ch.binning(*_binning(c, c.require(r, "binning", rpath), f"{rpath}.binning"))
        if r.get("selection") is not None:
            ch.selection(str(r["selection"]))
        if r.get("weight") is not None:
            ch.weight(str(r["weight"]))
        if "flow" in r:
            ch.flow(str(r["flow"]))
        if r.get("data") is not None:
            d = r["data"]
            if isinstance(d, str):
                d = {"file": d}
            d = c.mapping(d, _DATA, f"{rpath}.data")
            ch.data_file(
                _files(c, d, f"{rpath}.data"),
                d.get("tree"),
                selection=d.get("selection"),
                weight=d.get("weight"),
            )
        for si, s in enumerate(samples):
            spath = f"samples[{si}]"
            keep = c.names(s.get("regions"), region_names, "region", f"{spath}.regions")
            if keep is not None and rname not in keep:
                continue
            sb = ch.sample(sample_names[si])
            _add_sample(c, sb, s, spath)
            for kind, items in (("normfactors", nfs), ("systematics", systs)):
                for i, item in enumerate(items):
                    only_s, only_r = filters[(kind, i)]
                    if (only_s is None or sb.name in only_s) and (
                        only_r is None or rname in only_r
                    ):
                        _apply(c, sb, kind, item, f"{kind}[{i}]")
    return b


def _add_sample(c: _Checker, sb: Any, s: Mapping[str, Any], path: str) -> None:
    sb.file(_files(c, s, path))
    if s.get("tree") is not None:
        sb.tree(str(s["tree"]))
    if s.get("weight") is not None:
        sb.weight(str(s["weight"]))
    if s.get("selection") is not None:
        sb.selection(str(s["selection"]))
    for i, nf in enumerate(c.seq(s.get("normfactor"), f"{path}.normfactor", allow_one=True)):
        if isinstance(nf, str):
            nf = {"name": nf}
        _apply(
            c,
            sb,
            "normfactors",
            c.mapping(nf, {"name", "init", "bounds"}, f"{path}.normfactor[{i}]"),
            f"{path}.normfactor[{i}]",
        )
    for i, ns in enumerate(c.seq(s.get("normsys"), f"{path}.normsys", allow_one=True)):
        p = f"{path}.normsys[{i}]"
        ns = c.mapping(ns, {"name", "lo", "hi"}, p)
        _apply(c, sb, "systematics", {**ns, "type": "norm"}, p)
    if s.get("staterror"):
        sb.staterror()
    if s.get("shapesys"):
        sb.shapesys(str(s["shapesys"]))


def _apply(c: _Checker, sb: Any, kind: str, item: Mapping[str, Any], path: str) -> None:
    name = str(c.require(item, "name", path))
    if kind == "normfactors":
        init, bounds = item.get("init"), item.get("bounds")
        if bounds is not None and (not isinstance(bounds, (list, tuple)) or len(bounds) != 2):
            raise InvalidConfig(f"bounds must be [low, high], got {bounds!r}", c.at(path))
        try:
            init = None if init is None else float(init)
            bounds = None if bounds is None else (float(bounds[0]), float(bounds[1]))
        except (TypeError, ValueError):
            raise InvalidConfig("'init' and 'bounds' must be numbers", c.at(path)) from None
        sb.normfactor(name, init, bounds)
        return
    typ = str(c.require(item, "type", path)).lower()
    if typ == "norm":
        try:
            sb.normsys(name, float(c.require(item, "lo", path)), float(c.require(item, "hi", path)))
        except (TypeError, ValueError):
            raise InvalidConfig("'lo' and 'hi' must be numbers", c.at(path)) from None
    elif typ == "weight":
        sb.weight_sys(
            name,
            str(c.require(item, "up", path)),
            None if item.get("down") is None else str(item["down"]),
            relative=bool(item.get("relative", False)),
        )
    elif typ == "tree":
        if not any(item.get(k) for k in ("file_up", "tree_up")):
            raise InvalidConfig("a tree systematic needs 'file_up' or 'tree_up'", c.at(path))
        sb.tree_sys(
            name,
            item.get("file_up"),
            item.get("file_down"),
            tree_up=item.get("tree_up"),
            tree_down=item.get("tree_down"),
        )
    else:
        raise InvalidConfig(
            f"unknown systematic type {typ!r} (expected weight, tree or norm)", c.at(path)
        )


def build_from_config(
    path: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """Read ``path`` (YAML/JSON), fill every histogram and return the pyhf workspace.

    ``base_dir`` defaults to the directory of the config file.
    """
    path = os.fspath(path)
    cfg = load_config(path)
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(path))
    b = builder_from_config(cfg, base_dir, os.path.basename(path))
    if progress is not None:
        b.progress(progress)
    return b.build()
