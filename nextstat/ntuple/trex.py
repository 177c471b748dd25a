"""TRExFitter ``.config`` files -> pyhf workspace.

The text format: blocks start with a ``Type: "Name"`` line (``Job``, ``Fit``,
``Limit``, ``Significance``, ``Options``, ``Region``, ``Sample``, ``Systematic``,
``NormFactor``, ``ShapeFactor``, ...), followed by ``Key: value`` lines; ``%`` or
``#`` starts a comment line; values may be quoted; lists are comma-separated;
``Systematic: "A";"B"`` declares several blocks at once. Keys before the first block
belong to the ``Job``.

``ReadFrom: NTUP`` fills histograms from ntuples with
:class:`~nextstat.ntuple.builder.NtupleWorkspaceBuilder`; ``ReadFrom: HIST`` reads
ROOT histograms (TH1) with uproot. Every key and block that is not used is listed
in the report with its line number and the reason (unknown, cosmetic, not part of a
workspace, not supported). See ``docs/ntuples.md`` for the support matrix.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextstat.errors import InvalidConfig, InvalidFormat
from nextstat.ntuple.builder import NtupleWorkspaceBuilder, _and, _times
from nextstat.ntuple.config import read_config_text
from nextstat.ntuple.fill import Hist, check_edges

__all__ = ["Block", "parse_trex_config", "trex_to_workspace"]

BLOCK_TYPES = (
    "Job",
    "Fit",
    "Limit",
    "Significance",
    "Options",
    "Region",
    "Sample",
    "Systematic",
    "NormFactor",
    "ShapeFactor",
    "Unfolding",
    "TruthSample",
    "GeneralSettings",
)
_BLOCK_LOWER = {b.lower(): b for b in BLOCK_TYPES}


@dataclass
class Block:
    """One block of a config: its type, name, ``key -> (value, line)`` and its line."""

    type: str
    name: str
    line: int
    keys: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    def get(self, *names: str, default: Any = None) -> Any:
        """The value of the first of ``names`` present (case-insensitive), marking it used."""
        for n in names:
            k = n.lower()
            if k in self.keys:
                self.used.add(k)
                return self.keys[k][0]
        return default

    def where(self, source: str, key: str | None = None) -> str:
        line = self.keys[key.lower()][1] if key and key.lower() in self.keys else self.line
        return f"{source}:{line} ({self.type} {self.name!r})"


def _unquote(v: str) -> str:
    v = v.strip()
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        return v[1:-1]
    return v


def _list(v: str | None) -> list[str]:
    if v is None:
        return []
    return [_unquote(x) for x in v.split(",") if _unquote(x) != ""]


def _bool(v: str | None, default: bool) -> bool:
    if v is None:
        return default
    return _unquote(v).strip().upper() in ("TRUE", "1", "YES")


def _number(ctx: _Ctx, blk: Block, *keys: str, default: float) -> float:
    """The first of ``keys`` present in ``blk`` as a float, or ``default``."""
    v = blk.get(*keys)
    if v is None:
        return default
    try:
        return float(_unquote(v))
    except ValueError:
        key = next(k for k in keys if k.lower() in blk.keys)
        raise InvalidConfig(
            f"{key} must be a number, got {v!r}", blk.where(ctx.source, key)
        ) from None


def parse_trex_config(text: str, source: str = "config") -> list[Block]:
    """Split the text into blocks (no interpretation of the keys)."""
    blocks: list[Block] = [Block("Job", "", 1)]
    current = blocks[0]
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line[0] in "%#":
            continue
        if ":" not in line:
            raise InvalidConfig(f"expected 'Key: value', got {line!r}", f"{source}:{lineno}")
        key, value = line.split(":", 1)
        key, value = key.strip(), value.strip()
        indented = raw[:1].isspace()
        sample_key = (
            key.lower() in ("normfactor", "shapefactor")
            and indented
            and (getattr(current, "type", "") == "Sample")
        )
        if key.lower() in _BLOCK_LOWER and not sample_key:
            btype = _BLOCK_LOWER[key.lower()]
            names = [_unquote(n) for n in value.split(";")] or [""]
            for name in names:
                if btype == "Job" and blocks[0].name == "" and len(blocks) == 1:
                    blocks[0].name, blocks[0].line = name, lineno
                    current = blocks[0]
                    continue
                current = Block(btype, name, lineno)
                blocks.append(current)
            if len(names) > 1:
                current = _MultiBlock([b for b in blocks[-len(names) :]])
            continue
        current.keys[key.lower()] = (value, lineno, key)
    return blocks


class _MultiBlock:
    """``Systematic: "A";"B"``: the following keys go to every one of the blocks."""

    def __init__(self, blocks: list[Block]):
        self.blocks = blocks
        self.keys = _Fanout(blocks)


class _Fanout(dict):
    def __init__(self, blocks: list[Block]):
        super().__init__()
        self.blocks = blocks

    def __setitem__(self, key: str, value: Any) -> None:
        for b in self.blocks:
            b.keys[key] = value


# ---------------------------------------------------------------------------
# Key classification for the report
# ---------------------------------------------------------------------------

_COSMETIC = {
    "label",
    "title",
    "textitle",
    "shorttitle",
    "shortlabel",
    "texlabel",
    "fillcolor",
    "linecolor",
    "fillcolorrgb",
    "linecolorrgb",
    "group",
    "variabletitle",
    "logscale",
    "ymin",
    "ymax",
    "ymaxscale",
    "ratioymin",
    "ratioymax",
    "lumilabel",
    "cmelabel",
    "yaxistitle",
    "binwidth",
    "binlabels",
    "category",
    "subcategory",
    "outputdir",
    "plotoptions",
    "debuglevel",
    "imageformat",
    "atlaslabel",
    "systcontrolplots",
    "histochecks",
    "tableoptions",
    "systdataplots",
    "doplots",
}


@dataclass
class _Ctx:
    source: str
    base: str
    blocks: list[Block]
    job: Block
    ignored: list[dict[str, Any]] = field(default_factory=list)
    swapped: set[str] = field(default_factory=set)

    def ignore(self, block: Block, key: str | None, reason: str) -> None:
        line = block.keys[key][1] if key else block.line
        orig = block.keys[key][2] if key else ""
        what = f"{block.type} block {block.name!r}" if key is None else f"{block.type}.{orig}"
        self.ignored.append(
            {
                "line": line,
                "block": block.type,
                "name": block.name,
                "key": key,
                "what": what,
                "reason": reason,
            }
        )


def _of(blocks: list[Block], t: str) -> list[Block]:
    return [b for b in blocks if b.type == t]


def _applies(blk: Block, name: str, key: str) -> bool:
    vals = _list(blk.get(key))
    if not vals or any(v.lower() == "all" for v in vals):
        return True
    return name in vals


def _excluded(blk: Block, *names: str) -> bool:
    ex = set(_list(blk.get("Exclude")))
    return any(n in ex for n in names)


# ---------------------------------------------------------------------------
# Regions, samples, systematics (shared by NTUP and HIST)
# ---------------------------------------------------------------------------


@dataclass
class _Region:
    blk: Block
    name: str
    edges: np.ndarray | None = None
    variable: str | None = None


def _regions(ctx: _Ctx) -> list[_Region]:
    out = []
    for r in _of(ctx.blocks, "Region"):
        rtype = (r.get("Type") or "SIGNAL").upper()
        if _unquote(rtype) == "VALIDATION":
            ctx.ignore(r, None, "VALIDATION regions are not part of the fit workspace")
            r.used.update(r.keys)
            continue
        out.append(_Region(r, r.name))
    if not out:
        raise InvalidConfig("no Region blocks (besides VALIDATION ones)", ctx.source)
    return out


def _parse_binning(ctx: _Ctx, reg: _Region) -> None:
    r = reg.blk
    var = r.get("Variable", "Var")
    binning = r.get("Binning", "BinEdges")
    parts = _list(var) if var is not None else []
    if parts:
        reg.variable = parts[0]
    if binning is not None:
        b = _list(binning)
        if b and b[0].lower() == "autobin":
            raise InvalidConfig("Binning: AutoBin is not supported", r.where(ctx.source, "binning"))
        try:
            values = [float(x) for x in b]
        except ValueError:
            raise InvalidConfig(
                f"Binning is not a list of numbers: {binning!r}", r.where(ctx.source, "binning")
            ) from None
        reg.edges = check_edges(values, r.where(ctx.source, "binning"))
    elif len(parts) == 4:
        try:
            n, lo, hi = int(parts[1]), float(parts[2]), float(parts[3])
        except ValueError:
            raise InvalidConfig(
                f'Variable must be "expr",nbins,min,max: {var!r}', r.where(ctx.source, "variable")
            ) from None
        reg.edges = check_edges(np.linspace(lo, hi, n + 1), r.where(ctx.source, "variable"))


@dataclass
class _Sample:
    blk: Block
    name: str
    kind: str  # SIGNAL BACKGROUND DATA


def _samples(ctx: _Ctx) -> list[_Sample]:
    out = []
    for s in _of(ctx.blocks, "Sample"):
        kind = _unquote(s.get("Type") or "BACKGROUND").upper()
        if kind == "GHOST":
            ctx.ignore(s, None, "GHOST samples do not enter the workspace")
            s.used.update(s.keys)
            continue
        out.append(_Sample(s, s.name, kind))
    return out


def _in_region(s: _Sample, reg: _Region) -> bool:
    regs = _list(s.blk.get("Regions"))
    if regs and reg.name not in regs and not any(r.lower() == "all" for r in regs):
        return False
    return not _excluded(s.blk, reg.name)


def _systs_for(ctx: _Ctx, s: _Sample, reg: _Region) -> list[Block]:
    out = []
    for sy in _of(ctx.blocks, "Systematic"):
        if not _applies(sy, s.name, "Samples") or not _applies(sy, reg.name, "Regions"):
            continue
        if _excluded(sy, s.name, reg.name):
            continue
        ex_rs = _list(sy.get("ExcludeRegionSample"))
        if f"{reg.name}:{s.name}" in ex_rs:
            continue
        out.append(sy)
    return out


# ---------------------------------------------------------------------------
# NTUP: fill with the builder
# ---------------------------------------------------------------------------


def _prod(*parts: str | None) -> str | None:
    """The product of the (unquoted) weight expressions given."""
    return _times(*(None if p is None else _unquote(p) for p in parts))


def _ntuple_files(ctx: _Ctx, *levels: Block, suffix: str = "") -> list[str]:
    """Cartesian product of NtuplePath(s) x NtuplePathSuff x NtupleFile(s) x suffixes."""

    def first(*keys: str) -> list[str]:
        for blk in levels:
            v = blk.get(*keys)
            if v is not None:
                return _list(v)
        return []

    up = suffix
    paths = first(f"NtuplePaths{up}", f"NtuplePath{up}") or first("NtuplePaths", "NtuplePath")
    paths = paths or [""]
    psuff = first("NtuplePathSuff", "NtuplePathSuffs") or [""]
    files = first(f"NtupleFiles{up}", f"NtupleFile{up}") if up else []
    files = files or first("NtupleFiles", "NtupleFile", "File", "Path")
    fsuff = (
        (first(f"NtupleFileSuf{up}") if up else [])
        or first("NtupleFileSuff", "NtupleFileSuffs")
        or [""]
    )
    out = []
    for p, ps, f, fs in itertools.product(paths, psuff, files, fsuff):
        name = f + fs
        if not name.endswith(".root"):
            name += ".root"
        out.append(os.path.join(p + ps, name) if (p + ps) else name)
    return out


def _tree_name(*levels: Block, suffix: str = "") -> str | None:
    for blk in levels:
        v = blk.get(
            *((f"NtupleNames{suffix}", f"NtupleName{suffix}") if suffix else ()),
            "NtupleNames",
            "NtupleName",
            "TreeName",
            "Tree",
        )
        if v is not None:
            return _list(v)[0]
    return None


def _build_ntup(ctx: _Ctx, regions, samples, step: int, progress) -> dict:
    job = ctx.job
    b = NtupleWorkspaceBuilder().ntuple_path(ctx.base).tree_name(_tree_name(job) or "events")
    if step:
        b.step_size(step)
    if progress is not None:
        b.progress(progress)
    lumi = job.get("Lumi", "Luminosity")
    for reg in regions:
        r = reg.blk
        if reg.variable is None or reg.edges is None:
            raise InvalidConfig(
                'needs Variable and Binning (or Variable: "x",n,min,max)', r.where(ctx.source)
            )
        ch = b.channel(reg.name).variable(reg.variable).binning(reg.edges.tolist())
        ch.selection(_and_sel(job.get("Selection"), r.get("Selection")))
        for s in samples:
            if not _in_region(s, reg):
                continue
            _ntup_sample(ctx, ch, reg, s, lumi)
    return b.fill()


def _and_sel(*parts: str | None) -> str | None:
    """The conjunction of the (unquoted) selections given."""
    return _and(*(None if p is None else _unquote(p) for p in parts))


def _ntup_sample(ctx: _Ctx, ch, reg: _Region, s: _Sample, lumi: str | None) -> None:
    job, r, sb = ctx.job, reg.blk, s.blk
    files = _ntuple_files(ctx, sb, r, job)
    if not files:
        raise InvalidConfig("no NtupleFile(s) for this sample", sb.where(ctx.source))
    tree = _tree_name(sb, r, job)
    sel = None if _bool(sb.get("IgnoreSelection"), False) else sb.get("Selection")
    if s.kind == "DATA":
        ch.data_file(files, tree, selection=sel)
        return
    by_theory = _bool(sb.get("NormalizedByTheory", "NormByTheory"), True)
    common = (
        _prod(job.get("MCweight"), r.get("MCweight"), lumi, sb.get("LumiScale", "LumiScales"))
        if by_theory
        else _prod(sb.get("LumiScale", "LumiScales"))
    )
    weight = _prod(common, sb.get("MCweight"))
    sample = ch.sample(s.name).file(files).weight(weight or "1")
    if tree:
        sample.tree(tree)
    if sel:
        sample.selection(_unquote(sel))
    for sy in _systs_for(ctx, s, reg):
        typ = _unquote(sy.get("Type") or "HISTO").upper()
        if typ == "OVERALL":
            continue
        np_name = _unquote(sy.get("NuisanceParameter") or sy.name)
        wu, wd = sy.get("WeightUp"), sy.get("WeightDown")
        su, sd = sy.get("WeightSufUp"), sy.get("WeightSufDown")
        tree_keys = [
            k
            for k in sy.keys
            if k.startswith("ntuple") and (k.endswith("up") or k.endswith("down"))
        ]
        if (wu or wd) and (su or sd):
            raise InvalidConfig("both WeightUp/Down and WeightSufUp/Down", sy.where(ctx.source))
        key = f"{np_name}|{sy.name}"
        if wu or wd or su or sd:
            if tree_keys:
                raise InvalidConfig(
                    "weight and ntuple variations together are not supported", sy.where(ctx.source)
                )
            if wu or wd:
                up = _prod(common, wu) if wu else None
                down = _prod(common, wd) if wd else None
                sample.weight_sys(key, up or weight, down, relative=False)
                if not wu:
                    # only a down weight: fill it as the one side, mirror, then swap
                    sample._mods[-1].data.update(up=down, down=None)
                    ctx.swapped.add(key)
            else:
                sample.weight_sys(
                    key, _unquote(su) if su else "1", _unquote(sd) if sd else None, relative=True
                )
        elif tree_keys:
            fu = _ntuple_files(ctx, sy, sb, r, job, suffix="Up") if _has(sy, "Up") else None
            fd = _ntuple_files(ctx, sy, sb, r, job, suffix="Down") if _has(sy, "Down") else None
            tu = _tree_name(sy, suffix="Up") if sy.get("NtupleNameUp", "NtupleNamesUp") else None
            td = (
                _tree_name(sy, suffix="Down")
                if sy.get("NtupleNameDown", "NtupleNamesDown")
                else None
            )
            if fu is None and tu is None:
                raise InvalidConfig(
                    "no up variation (NtupleFile(s)Up / NtupleName(s)Up)", sy.where(ctx.source)
                )
            sample.tree_sys(
                key,
                fu,
                fd,
                tree_up=tu or (tree if fu else None),
                tree_down=td or (tree if fd else None),
            )
        else:
            raise InvalidConfig(
                f"{typ} systematic without WeightUp/WeightSufUp/NtupleFileUp variation",
                sy.where(ctx.source),
            )


def _has(sy: Block, side: str) -> bool:
    s = side.lower()
    return any(
        k in sy.keys
        for k in (
            f"ntuplefile{s}",
            f"ntuplefiles{s}",
            f"ntuplepath{s}",
            f"ntuplepaths{s}",
            f"ntuplefilesuf{s}",
        )
    )


# ---------------------------------------------------------------------------
# HIST: read TH1s
# ---------------------------------------------------------------------------


def _hist_path(ctx: _Ctx, levels: list[Block], side: str = "") -> tuple[str, str]:
    def first(*keys: str) -> str | None:
        for blk in levels:
            v = blk.get(*keys)
            if v is not None:
                return _list(v)[0] if _list(v) else ""
        return None

    path = first(f"HistoPath{side}", f"HistoPaths{side}") if side else None
    path = path if path is not None else (first("HistoPath", "HistoPaths") or "")
    psuff = first("HistoPathSuff", "HistoPathSuffs") or ""
    if side:
        psuff += first(f"HistoPathSuf{side}") or ""
    fname = first(f"HistoFile{side}", f"HistoFiles{side}") if side else None
    fname = fname if fname is not None else first("HistoFile", "HistoFiles")
    fsuff = (first("HistoFileSuff", "HistoFileSuffs") or "") + (
        (first(f"HistoFileSuf{side}") or "") if side else ""
    )
    hname = first(f"HistoName{side}", f"HistoNames{side}") if side else None
    hname = hname if hname is not None else first("HistoName", "HistoNames")
    hsuff = (first("HistoNameSuff", "HistoNameSuffs") or "") + (
        (first(f"HistoNameSuf{side}") or "") if side else ""
    )
    if fname is None or hname is None:
        raise InvalidConfig(
            "needs HistoFile and HistoName (in the Sample, Region or Job)",
            levels[0].where(ctx.source),
        )
    f = fname + fsuff
    if not f.endswith(".root"):
        f += ".root"
    directory = os.path.join(ctx.base, path + psuff)
    return os.path.join(directory, f), hname + hsuff


def _read_th1(files: dict, path: str, name: str, where: str) -> Hist:
    """TH1 ``name`` of ``path`` (:mod:`nextstat.io.root`); ``files`` caches open files."""
    from nextstat.io.root import open_root

    key = os.path.abspath(path)
    try:
        rfile = files.get(key)
        if rfile is None:
            if not os.path.exists(path):
                raise InvalidConfig(f"file not found: {path}", where)
            rfile = files[key] = open_root(path)
        h = rfile.hist(name)
    except InvalidFormat as exc:
        raise InvalidConfig(f"cannot read histogram: {exc}", where) from None
    return Hist(h.edges, h.values, h.variances)


def _same_edges(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-9, atol=0)


def _build_hist(ctx: _Ctx, regions, samples) -> dict:
    lumi = _number(ctx, ctx.job, "Lumi", "Luminosity", default=1.0)
    out: dict = {}
    files: dict = {}  # one open per ROOT file
    try:
        for reg in regions:
            _hist_region(ctx, reg, samples, lumi, files, out)
    finally:
        for rfile in files.values():
            rfile.close()
    return out


def _hist_region(ctx: _Ctx, reg: _Region, samples, lumi: float, files: dict, out: dict) -> None:
    """Read the histograms of one region into ``out`` and set ``reg.edges``."""
    job, r = ctx.job, reg.blk
    edges = None
    for s in samples:
        if not _in_region(s, reg):
            continue
        where = f"{s.blk.where(ctx.source)} in Region {reg.name!r}"
        path, name = _hist_path(ctx, [s.blk, r, job])
        h = _read_th1(files, path, name, where)
        if edges is None:
            edges = h.edges
        elif not _same_edges(edges, h.edges):
            raise InvalidConfig(
                f"binning of {path}:{name} differs from the region's first "
                f"histogram ({edges.tolist()} vs {h.edges.tolist()})",
                where,
            )
        if s.kind == "DATA":
            out[(reg.name, "data", "nominal")] = h
            continue
        scale = _number(ctx, s.blk, "LumiScale", "LumiScales", default=1.0)
        if _bool(s.blk.get("NormalizedByTheory", "NormByTheory"), True):
            scale *= lumi
        out[(reg.name, s.name, "nominal")] = _scaled(h, scale)
        for sy in _systs_for(ctx, s, reg):
            typ = _unquote(sy.get("Type") or "HISTO").upper()
            if typ == "OVERALL":
                continue
            np_name = _unquote(sy.get("NuisanceParameter") or sy.name)
            for side in ("Up", "Down"):
                if not any(k.startswith("histo") and k.endswith(side.lower()) for k in sy.keys):
                    continue
                p, n = _hist_path(ctx, [sy, s.blk, r, job], side)
                hv = _read_th1(files, p, n, sy.where(ctx.source))
                if not _same_edges(edges, hv.edges):
                    raise InvalidConfig(
                        f"binning of {p}:{n} differs from the nominal", sy.where(ctx.source)
                    )
                key = (reg.name, s.name, f"{np_name}|{sy.name}_{side.lower()}")
                out[key] = _scaled(hv, scale)
    reg.edges = edges


def _scaled(h: Hist, k: float) -> Hist:
    return Hist(h.edges, h.sumw * k, h.sumw2 * k * k)


# ---------------------------------------------------------------------------
# Workspace assembly
# ---------------------------------------------------------------------------


def _assemble(ctx: _Ctx, regions, samples, hists: dict) -> dict:
    job = ctx.job
    poi = _unquote(job.get("POI") or "")
    mcstat = _unquote(job.get("MCstatThreshold") or "")
    use_stat_default = mcstat.upper() != "NONE"
    channels, observations = [], []
    params: dict[str, dict[str, Any]] = {}
    for reg in regions:
        ss = []
        for s in samples:
            if s.kind == "DATA" or not _in_region(s, reg):
                continue
            nom = hists[(reg.name, s.name, "nominal")]
            ss.append(
                {
                    "name": s.name,
                    "data": nom.sumw.tolist(),
                    "modifiers": _modifiers(ctx, reg, s, nom, hists, params, use_stat_default),
                }
            )
        if not ss:
            raise InvalidConfig("no samples in this region", reg.blk.where(ctx.source))
        data = hists.get((reg.name, "data", "nominal"))
        obs = (
            data.sumw.tolist()
            if data is not None and _unquote(reg.blk.get("DataType") or "DATA").upper() != "ASIMOV"
            else np.sum([x["data"] for x in ss], axis=0).tolist()
        )
        channels.append({"name": reg.name, "samples": ss})
        observations.append({"name": reg.name, "data": obs})
    if not poi:
        nfs = [n for n in params if params[n].get("_nf")]
        poi = nfs[0] if nfs else ""
    parameters = [
        {"name": k, **{a: b for a, b in v.items() if not a.startswith("_")}}
        for k, v in params.items()
    ]
    parameters = [p for p in parameters if len(p) > 1]
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [
            {"name": _unquote(job.name) or "meas", "config": {"poi": poi, "parameters": parameters}}
        ],
        "version": "1.0.0",
    }


def _normfactor(
    params: dict, name: str, nominal, lo, hi, const: bool, where: str
) -> dict[str, Any]:
    def num(v: Any) -> float:
        try:
            return float(_unquote(v))
        except ValueError:
            raise InvalidConfig(f"normfactor {name!r}: not a number: {v!r}", where) from None

    cfg = params.setdefault(name, {"_nf": True})
    if nominal is not None:
        cfg["inits"] = [num(nominal)]
    if lo is not None and hi is not None:
        cfg["bounds"] = [[num(lo), num(hi)]]
    if const:
        cfg["fixed"] = True
    return {"name": name, "type": "normfactor", "data": None}


def _modifiers(ctx, reg, s, nom: Hist, hists, params, use_stat_default) -> list[dict]:
    mods: list[dict] = []
    sb = s.blk
    nf = _list(sb.get("NormFactor"))
    if nf:
        vals = nf + [None] * (4 - len(nf))
        where = sb.where(ctx.source, "normfactor")
        mods.append(_normfactor(params, vals[0], vals[1], vals[2], vals[3], False, where))
    for nb in _of(ctx.blocks, "NormFactor"):
        if (
            _applies(nb, s.name, "Samples")
            and _applies(nb, reg.name, "Regions")
            and not _excluded(nb, s.name, reg.name)
        ):
            mods.append(
                _normfactor(
                    params,
                    nb.name,
                    nb.get("Nominal"),
                    nb.get("Min"),
                    nb.get("Max"),
                    _bool(nb.get("Constant"), False),
                    nb.where(ctx.source),
                )
            )
    for sy in _systs_for(ctx, s, reg):
        typ = _unquote(sy.get("Type") or "HISTO").upper()
        np_name = _unquote(sy.get("NuisanceParameter") or sy.name)
        if typ == "OVERALL":
            up = _number(ctx, sy, "OverallUp", default=0.0)
            down = _number(ctx, sy, "OverallDown", default=-up)
            mods.append(
                {"name": np_name, "type": "normsys", "data": {"hi": 1.0 + up, "lo": 1.0 + down}}
            )
            continue
        key = f"{np_name}|{sy.name}"
        h_up = hists.get((reg.name, s.name, f"{key}_up"))
        h_dn = hists.get((reg.name, s.name, f"{key}_down"))
        if key in ctx.swapped:
            h_up, h_dn = None, h_up
        mods.extend(_shape_mods(ctx, sy, typ, np_name, nom.sumw, h_up, h_dn))
    if s.kind != "DATA" and _bool(sb.get("UseMCstat"), True) and use_stat_default:
        mods.append(
            {
                "name": f"staterror_{reg.name}",
                "type": "staterror",
                "data": np.sqrt(nom.sumw2).tolist(),
            }
        )
    return mods


def _shape_mods(ctx, sy: Block, typ: str, name: str, nom, h_up, h_dn) -> list[dict]:
    if h_up is None and h_dn is None:
        return []
    up = h_up.sumw if h_up is not None else None
    dn = h_dn.sumw if h_dn is not None else None
    sym = _unquote(sy.get("Symmetrisation", "Symmetrization") or "").upper()
    if up is None:  # only a down variation: mirror it for the up side
        up = 2 * nom - dn
    if sym == "TWOSIDED" and dn is not None:
        half = (up - dn) / 2.0
        up, dn = nom + half, nom - half
    elif sym in ("", "ONESIDED") or dn is None:
        if dn is None:
            dn = 2 * nom - up
    else:
        k = "symmetrisation" if "symmetrisation" in sy.keys else "symmetrization"
        ctx.ignore(sy, k, f"Symmetrisation {sym} is not supported (none applied)")
    if typ == "SHAPE":
        sigma = np.maximum(np.abs(up - nom), np.abs(dn - nom))
        return [{"name": name, "type": "shapesys", "data": sigma.tolist()}]
    # HISTO: TRExFitter's split into an overall (normsys) and a normalised shape (histosys)
    if _bool(sy.get("DropNorm"), False) or _unquote(sy.get("DropNorm") or "").upper() == "ALL":
        norm_up = norm_dn = 1.0
    else:
        tot = float(np.sum(nom))
        norm_up = float(np.sum(up)) / tot if tot else 1.0
        norm_dn = float(np.sum(dn)) / tot if tot else 1.0
    mods = []
    if norm_up != 1.0 or norm_dn != 1.0:
        mods.append({"name": name, "type": "normsys", "data": {"hi": norm_up, "lo": norm_dn}})
    mods.append(
        {
            "name": name,
            "type": "histosys",
            "data": {"hi_data": (up / norm_up).tolist(), "lo_data": (dn / norm_dn).tolist()},
        }
    )
    return mods


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def trex_to_workspace(
    path: str | os.PathLike,
    base_dir: str | os.PathLike | None = None,
    *,
    step_size: int | None = None,
    progress: Callable[[str, int, int], None] | bool | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a TRExFitter config and build the pyhf workspace.

    Parameters
    ----------
    path : path
        The ``.config`` file.
    base_dir : path, optional
        Directory that ntuple / histogram paths are relative to (default: the
        config file's directory).
    step_size : int, optional
        Entries per chunk when reading ntuples.
    progress : callable or bool, optional
        Progress reporting for the NTUP route (see
        :meth:`NtupleWorkspaceBuilder.progress`).

    Returns
    -------
    workspace : dict
        The pyhf workspace.
    report : dict
        ``{"config", "read_from", "ignored": [{"line", "block", "name", "key",
        "what", "reason"}, ...]}``: every key and block that did not contribute.
    """
    path = os.fspath(path)
    source = os.path.basename(path)
    blocks = parse_trex_config(read_config_text(path), source)
    base = os.fspath(base_dir) if base_dir is not None else os.path.dirname(os.path.abspath(path))
    ctx = _Ctx(source, base, blocks, blocks[0])
    read_from = _unquote(ctx.job.get("ReadFrom") or "").upper()
    if read_from not in ("NTUP", "HIST"):
        raise InvalidConfig(
            f"ReadFrom must be NTUP or HIST, got {read_from or 'nothing'!r}",
            ctx.job.where(source, "readfrom"),
        )
    for b in blocks:
        if b.type in (
            "Fit",
            "Limit",
            "Significance",
            "Options",
            "Unfolding",
            "TruthSample",
            "ShapeFactor",
            "GeneralSettings",
        ):
            reason = (
                "fit / limit settings are not part of a workspace"
                if b.type in ("Fit", "Limit", "Significance", "Options")
                else f"{b.type} blocks are not supported"
            )
            ctx.ignore(b, None, reason)
            b.used.update(b.keys)
    regions = _regions(ctx)
    samples = _samples(ctx)
    if not any(s.kind != "DATA" for s in samples):
        raise InvalidConfig("no (non-DATA) Sample blocks", source)
    if read_from == "NTUP":
        for reg in regions:
            _parse_binning(ctx, reg)
        hists = _build_ntup(ctx, regions, samples, step_size or 0, progress)
    else:
        hists = _build_hist(ctx, regions, samples)
    ws = _assemble(ctx, regions, samples, hists)
    for b in blocks:
        for key in b.keys:
            if key in b.used:
                continue
            reason = "cosmetic (plots / tables)" if key in _COSMETIC else "not used"
            ctx.ignore(b, key, reason)
    ctx.ignored.sort(key=lambda d: d["line"])
    return ws, {"config": source, "read_from": read_from, "ignored": ctx.ignored}
