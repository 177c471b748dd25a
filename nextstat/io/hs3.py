"""HS3 (HEP Statistics Serialization Standard) v0.2 <-> pyhf-style workspaces.

The reader converts a ``histfactory_dist`` likelihood as ROOT >= 6.30 writes it into a pyhf
workspace dict, which :func:`nextstat.from_pyhf` then compiles; the writer goes the other
way. What is supported, the interpolation-code mapping and every deliberate difference from
ROOT are in ``docs/formats-hs3.md``.

Parameter names: scalar parameters keep their HS3 names (``alpha_jes``, ``mu``), except the
Gaussian-constrained normfactor (ROOT's ``Lumi``), which becomes pyhf's ``lumi``; per-bin
parameters ``<base>_bin_<i>`` become ``<base>[i]``. :func:`hs3_to_workspace` returns the
full map.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

from ..errors import InvalidFormat

__all__ = ["hs3_to_workspace", "from_hs3", "to_hs3", "ROOT_NORMSYS_CODES",
           "ROOT_HISTOSYS_CODES"]

HS3_VERSION = "0.2"

#: ROOT ``FlexibleInterpVar`` code (an HS3 normsys ``interpolation``) -> nextstat code.
#: Checked numerically against ROOT 6.40 (codes 4 and 5 both give pyhf's code4).
ROOT_NORMSYS_CODES = {0: "0", 1: "1", 2: "2", 4: "4", 5: "4"}
#: ROOT ``PiecewiseInterpolation`` code (an HS3 histosys ``interpolation``) -> nextstat code.
ROOT_HISTOSYS_CODES = {0: "0", 1: "1", 2: "2", 4: "4p", 5: "4", 6: "4p"}
#: pyhf code name (pyhs3 writes it as the modifier's ``data.interpolation``) -> nextstat code.
PYHF_CODE_NAMES = {"code0": "0", "code1": "1", "code2": "2", "code4": "4", "code4p": "4p"}
#: What an HS3 file means without an ``interpolation`` key: ROOT 6.40's importer builds
#: normsys with code 4 (= pyhf code4) and histosys with code 4 (= pyhf code4p).
HS3_DEFAULT_CODES = {"normsys": "4", "histosys": "4p"}
#: nextstat code -> the ROOT code the writer puts in ``interpolation``.
_EXPORT_CODES = {
    "normsys": {"0": 0, "1": 1, "2": 2, "4": 5},
    "histosys": {"0": 0, "1": 1, "2": 2, "4p": 4, "4": 5},
}

_BIN_NAME = re.compile(r"^(?P<base>.+)_bin_(?P<i>\d+)$")
_CONSTRAINT_TYPES = ("Gauss", "Poisson", "Const")


def _fail(message: str, where: str) -> None:
    raise InvalidFormat(message, where)


# ---------------------------------------------------------------------------------------
# small readers with JSON paths
# ---------------------------------------------------------------------------------------


def _get(obj, key, where, kind=None):
    """``obj[key]``, checked to exist (and to be of ``kind``)."""
    if not isinstance(obj, dict) or key not in obj:
        _fail(f"missing required key '{key}'", where)
    value = obj[key]
    if kind is not None and not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        _fail(f"'{key}' must be a {names}, not {type(value).__name__}", where)
    return value


def _numbers(values, where) -> list[float]:
    if not isinstance(values, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in values
    ):
        _fail("expected a list of numbers", where)
    out = [float(v) for v in values]
    if not all(math.isfinite(v) for v in out):
        _fail("non-finite number", where)
    return out


def _strings(values, where) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        _fail("expected a list of names (strings)", where)
    return values


def _number(value, where) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(f"expected a finite number, got {value!r}", where)
    return float(value)


def _named(doc: dict, section: str) -> dict[str, tuple[dict, str]]:
    """``{name: (object, path)}`` for a top-level list of named objects."""
    items = doc.get(section, [])
    if not isinstance(items, list):
        _fail(f"'{section}' must be a list", section)
    out: dict[str, tuple[dict, str]] = {}
    for i, item in enumerate(items):
        where = f"{section}[{i}]"
        name = _get(item, "name", where, str)
        if name in out:
            _fail(f"duplicate name '{name}' (first at {out[name][1]})", where)
        out[name] = (item, where)
    return out


def _nbins(axes, where) -> int:
    """Number of bins of a (possibly multi-dimensional) binned axis list."""
    if not isinstance(axes, list) or not axes:
        _fail("'axes' must be a non-empty list", where)
    n = 1
    for k, ax in enumerate(axes):
        apath = f"{where}.axes[{k}]"
        if isinstance(ax, dict) and "nbins" in ax:
            nb = _number(ax["nbins"], apath + ".nbins")
            if nb < 1 or nb != int(nb):
                _fail(f"'nbins' must be a positive integer, got {ax['nbins']!r}", apath + ".nbins")
            n *= int(nb)
        elif isinstance(ax, dict) and "bounds" in ax:
            n *= len(_numbers(ax["bounds"], apath + ".bounds")) - 1
        else:
            _fail("an axis needs 'nbins' or 'bounds'", apath)
    return n


# ---------------------------------------------------------------------------------------
# selecting analysis, likelihood, parameter point, domains
# ---------------------------------------------------------------------------------------


def _select_analysis(doc: dict, analysis: str | None):
    """The analysis object (or ``None`` when the document has none) and its path."""
    analyses = _named(doc, "analyses")
    if analysis is not None:
        if analysis not in analyses:
            _fail(f"no analysis named '{analysis}'; analyses are {sorted(analyses)}", "analyses")
        return analyses[analysis]
    if not analyses:
        return None, None
    if len(analyses) == 1:
        return next(iter(analyses.values()))
    observed = [n for n in analyses if "obsdata" in n.lower()]
    if len(observed) == 1:
        return analyses[observed[0]]
    first = next(iter(analyses))
    warnings.warn(
        f"HS3 document has analyses {sorted(analyses)}; using the first, '{first}' "
        "(pass analysis=... to choose)", stacklevel=4,
    )
    return analyses[first]


def _select_likelihood(doc: dict, ana: dict | None, ana_path: str | None):
    likelihoods = _named(doc, "likelihoods")
    if ana is not None:
        name = _get(ana, "likelihood", ana_path, str)
        if name not in likelihoods:
            _fail(f"likelihood '{name}' is not defined in 'likelihoods'", ana_path + ".likelihood")
        return likelihoods[name]
    if len(likelihoods) != 1:
        _fail(
            f"no 'analyses' and {len(likelihoods)} likelihoods; the document must define one",
            "likelihoods",
        )
    return next(iter(likelihoods.values()))


def _select_point(doc: dict, parameter_point: str | None) -> tuple[str | None, dict[str, dict]]:
    """``(name, {parameter: entry})`` of the parameter point (``default_values`` first)."""
    points = _named(doc, "parameter_points")
    if parameter_point is not None:
        if parameter_point not in points:
            _fail(
                f"no parameter point named '{parameter_point}'; points are {sorted(points)}",
                "parameter_points",
            )
        name = parameter_point
    elif "default_values" in points:
        name = "default_values"
    elif points:
        name = next(iter(points))
    else:
        return None, {}
    point, where = points[name]
    entries = {}
    for i, entry in enumerate(_get(point, "parameters", where, list)):
        epath = f"{where}.parameters[{i}]"
        entries[_get(entry, "name", epath, str)] = dict(entry, _path=epath)
    return name, entries


def _domain_bounds(doc: dict, ana: dict | None, ana_path: str | None) -> dict[str, tuple]:
    """``{parameter: (min, max)}`` from the analysis' domains (all domains without one).

    An axis without ``min`` or ``max`` (ROOT leaves out infinite limits) gives no bounds:
    the parameter keeps pyhf's default bounds.
    """
    domains = _named(doc, "domains")
    if ana is not None and "domains" in ana:
        names = _strings(ana["domains"], ana_path + ".domains")
        for k, n in enumerate(names):
            if n not in domains:
                _fail(f"domain '{n}' is not defined in 'domains'", f"{ana_path}.domains[{k}]")
    else:
        names = list(domains)
    bounds: dict[str, tuple] = {}
    for n in names:
        dom, where = domains[n]
        if dom.get("type") != "product_domain":
            _fail(f"unsupported domain type {dom.get('type')!r} (only product_domain)", where)
        for k, ax in enumerate(_get(dom, "axes", where, list)):
            apath = f"{where}.axes[{k}]"
            pname = _get(ax, "name", apath, str)
            if "min" not in ax or "max" not in ax:  # ROOT omits infinite limits
                continue
            lo = _number(ax["min"], apath + ".min")
            hi = _number(ax["max"], apath + ".max")
            if not lo <= hi:
                _fail(f"min {lo} > max {hi}", apath)
            bounds.setdefault(pname, (lo, hi))
    return bounds


# ---------------------------------------------------------------------------------------
# conversion state
# ---------------------------------------------------------------------------------------


@dataclass
class _ParSet:
    """One pyhf parameter set being assembled from HS3 modifiers."""

    name: str  # pyhf modifier name
    kind: str  # pyhf modifier type
    hs3: list[str]  # HS3 parameter names of the components
    where: str
    auxdata: list[float] | None = None
    sigmas: list[float] | None = None


@dataclass
class _State:
    point: dict[str, dict]
    bounds: dict[str, tuple]
    sets: dict[str, _ParSet] = field(default_factory=dict)  # pyhf name -> set
    owner: dict[str, tuple[str, int]] = field(default_factory=dict)  # HS3 name -> (set, i)
    #: per type: nextstat code -> (the code as the document writes it, JSON path)
    codes: dict[str, dict[str, tuple]] = field(
        default_factory=lambda: {"normsys": {}, "histosys": {}}
    )
    lumi: str | None = None  # HS3 name of the constrained normfactor

    def value(self, name: str, default: float | None = None) -> float | None:
        entry = self.point.get(name)
        if entry is None or "value" not in entry:
            return default
        return _number(entry["value"], entry["_path"] + ".value")

    def is_const(self, name: str) -> bool:
        entry = self.point.get(name)
        return bool(entry and entry.get("const", False))


def _register(state: _State, name: str, kind: str, hs3_names: list[str], where: str) -> _ParSet:
    """Find or create the pyhf parameter set ``name``; check the HS3 names agree."""
    ps = state.sets.get(name)
    if ps is None:
        for i, h in enumerate(hs3_names):
            if h in state.owner and state.owner[h][0] != name:
                _fail(
                    f"parameter '{h}' is already used by modifier '{state.owner[h][0]}' "
                    "in another role; pyhf cannot share part of a per-bin parameter set",
                    where,
                )
            state.owner[h] = (name, i)
        ps = _ParSet(name, kind, list(hs3_names), where)
        state.sets[name] = ps
        return ps
    if ps.hs3 != list(hs3_names):
        _fail(f"parameters {hs3_names} differ from those of '{name}' at {ps.where}", where)
    if ps.kind != kind and not {ps.kind, kind} <= {"normsys", "histosys"}:
        _fail(f"parameter '{name}' is a {kind} here but a {ps.kind} at {ps.where}", where)
    return ps


def _bin_base(params: list[str], fallback: str) -> str:
    """``gamma_stat_SR`` for ``[gamma_stat_SR_bin_0, gamma_stat_SR_bin_1, ...]``."""
    matches = [_BIN_NAME.match(p) for p in params]
    if all(matches) and len({m["base"] for m in matches}) == 1 and [
        int(m["i"]) for m in matches
    ] == list(range(len(params))):
        return matches[0]["base"]
    return fallback


def _per_bin_params(mod: dict, where: str, nbins: int, fallback: str) -> tuple[str, list[str]]:
    params = _get(mod, "parameters", where, list)
    if len(params) != nbins or not all(isinstance(p, str) for p in params):
        _fail(f"'parameters' must list {nbins} parameter names (one per bin)", where)
    if len(set(params)) != len(params):
        _fail("'parameters' repeats a name", where)
    return _bin_base(params, fallback), params


def _constraint_type(mod: dict, where: str, default: str) -> str:
    ctype = mod.get("constraint_type", mod.get("constraint", default))
    if ctype not in _CONSTRAINT_TYPES:
        _fail(f"unsupported constraint type {ctype!r} (supported: Gauss, Poisson, Const)", where)
    return ctype


# ---------------------------------------------------------------------------------------
# modifiers
# ---------------------------------------------------------------------------------------


def _gauss_constraint(doc_dists, state, cname, param, where) -> tuple[float, float]:
    """``(mean, sigma)`` of the Gaussian constraint ``cname`` on ``param``."""
    if cname not in doc_dists:
        _fail(f"constraint distribution '{cname}' is not defined in 'distributions'", where)
    dist, dpath = doc_dists[cname]
    if dist.get("type") != "gaussian_dist":
        _fail(
            f"constraint '{cname}' has type {dist.get('type')!r}; only gaussian_dist is "
            "supported for normfactor/normsys/histosys constraints", dpath,
        )
    if dist.get("x") != param:
        _fail(f"constraint '{cname}' constrains {dist.get('x')!r}, not '{param}'", dpath)

    def resolve(key, default):
        v = dist.get(key, default)
        if isinstance(v, str):
            v = state.value(v, default if key == "mean" else None)
            if v is None:
                _fail(f"'{key}' names a parameter without a value in the parameter point", dpath)
        return _number(v, f"{dpath}.{key}")

    sigma = resolve("sigma", 1.0)
    if not sigma > 0:
        _fail("sigma must be > 0", dpath + ".sigma")
    return resolve("mean", 0.0), sigma


def _normfactor(mod, where, ctx):
    state = ctx.state
    param = mod.get("parameter", mod.get("name"))
    if not isinstance(param, str):
        _fail("normfactor needs a 'parameter' (or 'name')", where)
    if "constraint_name" not in mod:
        _register(state, param, "normfactor", [param], where)
        return {"name": param, "type": "normfactor", "data": None}
    if state.lumi not in (None, param):
        _fail(
            f"a second constrained normfactor ('{param}'; the first is '{state.lumi}'): "
            "pyhf semantics allow one (lumi)", where,
        )
    mean, sigma = _gauss_constraint(ctx.dists, state, mod["constraint_name"], param, where)
    state.lumi = param
    ps = _register(state, "lumi", "lumi", [param], where)
    ps.auxdata, ps.sigmas = [mean], [sigma]
    return {"name": "lumi", "type": "lumi", "data": None}


def _alpha_set(mod, where, ctx, kind):
    """Register the Gaussian parameter of a normsys/histosys; return its pyhf name."""
    state = ctx.state
    name = _get(mod, "name", where, str)
    param = mod.get("parameter", "alpha_" + name)
    if not isinstance(param, str):
        _fail("'parameter' must be a string", where)
    if "constraint_name" in mod:
        mean, sigma = _gauss_constraint(ctx.dists, state, mod["constraint_name"], param, where)
    else:
        if _constraint_type(mod, where, "Gauss") != "Gauss":
            _fail(f"a {kind} needs a Gaussian constraint in pyhf semantics", where)
        mean, sigma = state.value("nom_" + param, 0.0), 1.0
    ps = _register(state, param, kind, [param], where)
    if ps.auxdata is not None and (ps.auxdata, ps.sigmas) != ([mean], [sigma]):
        _fail(f"constraint of '{param}' differs from the one at {ps.where}", where)
    ps.auxdata, ps.sigmas = [mean], [sigma]
    _interpolation(mod, where, ctx.state, kind)
    return param


def _interpolation(mod, where, state, kind) -> None:
    """Record the modifier's interpolation code: ROOT's number in ``interpolation`` and/or
    pyhf's name in ``data.interpolation`` (how pyhs3 writes it); both must agree."""
    found = []
    if "interpolation" in mod:
        table = ROOT_NORMSYS_CODES if kind == "normsys" else ROOT_HISTOSYS_CODES
        code = mod["interpolation"]
        if isinstance(code, bool) or not isinstance(code, int) or code not in table:
            _fail(f"unsupported {kind} interpolation code {code!r} (supported: "
                  f"{sorted(table)})", where + ".interpolation")
        found.append((table[code], code, where + ".interpolation"))
    data = mod.get("data")
    if isinstance(data, dict) and "interpolation" in data:
        code = data["interpolation"]
        if not isinstance(code, str) or code not in PYHF_CODE_NAMES:
            _fail(f"unsupported {kind} interpolation {code!r} in 'data' (supported: "
                  f"{', '.join(PYHF_CODE_NAMES)})", where + ".data.interpolation")
        found.append((PYHF_CODE_NAMES[code], code, where + ".data.interpolation"))
    if len({ours for ours, _, _ in found}) > 1:
        _fail(f"'interpolation' {found[0][1]!r} and 'data.interpolation' {found[1][1]!r} "
              "are different codes", where)
    for ours, code, path in found:
        state.codes[kind].setdefault(ours, (code, path))


def _normsys(mod, where, ctx):
    param = _alpha_set(mod, where, ctx, "normsys")
    data = _get(mod, "data", where, dict)
    lo = _number(_get(data, "lo", where + ".data"), where + ".data.lo")
    hi = _number(_get(data, "hi", where + ".data"), where + ".data.hi")
    return {"name": param, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _template(data, key, where, nbins) -> list[float]:
    node = _get(data, key, where + ".data")
    values = _numbers(_get(node, "contents", f"{where}.data.{key}"), f"{where}.data.{key}.contents")
    if len(values) != nbins:
        _fail(f"{len(values)} bins, the distribution has {nbins}", f"{where}.data.{key}.contents")
    return values


def _histosys(mod, where, ctx):
    param = _alpha_set(mod, where, ctx, "histosys")
    data = _get(mod, "data", where, dict)
    lo = _template(data, "lo", where, ctx.nbins)
    hi = _template(data, "hi", where, ctx.nbins)
    return {"name": param, "type": "histosys", "data": {"hi_data": hi, "lo_data": lo}}


def _shapefactor(mod, where, ctx):
    name = mod.get("name", "shapefactor")
    base, params = _per_bin_params(mod, where, ctx.nbins, f"{name}_{ctx.channel}")
    _register(ctx.state, base, "shapefactor", params, where)
    return {"name": base, "type": "shapefactor", "data": None}


def _staterror(mod, where, ctx):
    """Collected per parameter set; the pyhf modifiers are made by :func:`_finish_staterror`."""
    base, params = _per_bin_params(mod, where, ctx.nbins, f"staterror_{ctx.channel}")
    ctype = _constraint_type(mod, where, ctx.staterror_type)
    errors = ctx.sample.get("data", {}).get("errors")
    if errors is None:
        _fail("a sample with a staterror modifier needs 'data.errors'", ctx.sample_path)
    errors = _numbers(errors, ctx.sample_path + ".data.errors")
    if len(errors) != ctx.nbins:
        _fail(f"{len(errors)} errors for {ctx.nbins} bins", ctx.sample_path + ".data.errors")
    group = ctx.stat_groups.setdefault(
        base, {"type": ctype, "params": params, "mods": [], "nominals": []}
    )
    if group["type"] != ctype or group["params"] != params:
        _fail(f"staterror '{base}' is declared differently on another sample", where)
    mod_out = {"name": base, "type": None, "data": errors}
    group["mods"].append(mod_out)
    group["nominals"].append(ctx.sample_data)
    return mod_out


def _shapesys(mod, where, ctx):
    name = mod.get("name", "shapesys")
    base, params = _per_bin_params(mod, where, ctx.nbins, f"{name}_{ctx.channel}")
    ctype = _constraint_type(mod, where, "Poisson")
    vals = _numbers(_get(_get(mod, "data", where, dict), "vals", where + ".data"),
                    where + ".data.vals")
    if len(vals) != ctx.nbins:
        _fail(f"{len(vals)} values for {ctx.nbins} bins", where + ".data.vals")
    const = [ctx.state.is_const(p) for p in params]
    if ctype != "Const" and not any(vals) and not all(const):
        # ROOT writes a ShapeFactor as a shapesys without uncertainties and floating gammas
        _register(ctx.state, base, "shapefactor", params, where)
        return {"name": base, "type": "shapefactor", "data": None}
    if base in ctx.state.sets:
        _fail(f"shapesys parameters of '{base}' are shared with another sample (pyhf allows "
              f"a shapesys on one sample only; first at {ctx.state.sets[base].where})", where)
    kind = "staterror" if ctype == "Gauss" else "shapesys"
    _register(ctx.state, base, kind, params, where)
    delta = [v * n for v, n in zip(vals, ctx.sample_data, strict=True)]
    return {"name": base, "type": kind, "data": _zero_const_bins(delta, const, ctype)}


def _zero_const_bins(delta: list[float], const: list[bool], ctype: str) -> list[float]:
    """pyhf fixes a gamma whose uncertainty is 0: that is how single const bins are kept.

    A wholly const (or ``Const``-constrained) set keeps its data and is fixed as a whole.
    """
    if ctype == "Const":
        return [0.0] * len(delta)
    if all(const):
        return delta
    return [0.0 if c else d for d, c in zip(delta, const, strict=True)]


_MODIFIERS = {
    "normfactor": _normfactor,
    "normsys": _normsys,
    "histosys": _histosys,
    "staterror": _staterror,
    "shapesys": _shapesys,
    "shapefactor": _shapefactor,
}


@dataclass
class _Channel:
    """Per-distribution conversion context."""

    state: _State
    dists: dict
    channel: str
    nbins: int
    staterror_type: str
    threshold: float
    stat_groups: dict = field(default_factory=dict)
    sample: dict | None = None
    sample_path: str = ""
    sample_data: list[float] = field(default_factory=list)


def _finish_staterror(ctx: _Channel, where: str) -> None:
    """Turn collected staterror groups into pyhf staterror (Gauss) or shapesys (Poisson)."""
    for base, group in ctx.stat_groups.items():
        mods, params, ctype = group["mods"], group["params"], group["type"]
        if ctype == "Poisson" and len(mods) > 1:
            _fail(
                f"staterror '{base}' has a Poisson constraint shared by {len(mods)} samples; "
                "pyhf semantics have no shared Poisson gamma (a shapesys belongs to one sample)",
                where,
            )
        sumw = [sum(col) for col in zip(*group["nominals"], strict=True)]
        sumw2 = [sum(e * e for e in col) for col in zip(*(m["data"] for m in mods), strict=True)]
        const = [
            ctx.state.is_const(p)
            or (sumw[b] > 0 and math.sqrt(sumw2[b]) / sumw[b] < ctx.threshold)
            for b, p in enumerate(params)
        ]
        kind = "shapesys" if ctype == "Poisson" else "staterror"
        _register(ctx.state, base, kind, params, where)
        for m in mods:
            m["type"] = kind
            m["data"] = _zero_const_bins(m["data"], const, ctype)


def _convert_sample(sample, spath, ctx: _Channel) -> dict:
    name = _get(sample, "name", spath, str)
    data = _get(sample, "data", spath, dict)
    contents = _numbers(_get(data, "contents", spath + ".data"), spath + ".data.contents")
    if len(contents) != ctx.nbins:
        _fail(f"{len(contents)} bins, the distribution has {ctx.nbins}", spath + ".data.contents")
    ctx.sample, ctx.sample_path, ctx.sample_data = sample, spath, contents
    modifiers = []
    for k, mod in enumerate(sample.get("modifiers", [])):
        mpath = f"{spath}.modifiers[{k}]"
        mtype = _get(mod, "type", mpath, str)
        if mtype not in _MODIFIERS:
            _fail(f"unknown modifier type '{mtype}' (supported: {', '.join(_MODIFIERS)})", mpath)
        modifiers.append(_MODIFIERS[mtype](mod, mpath, ctx))
    return {"name": name, "data": contents, "modifiers": modifiers}


def _channel_name(dist_name: str) -> str:
    return dist_name[len("model_"):] if dist_name.startswith("model_") else dist_name


def _convert_distribution(dist, dpath, state, dists) -> dict:
    if dist.get("type") != "histfactory_dist":
        _fail(f"unsupported distribution type {dist.get('type')!r} in the likelihood "
              "(only histfactory_dist)", dpath)
    nbins = _nbins(_get(dist, "axes", dpath), dpath)
    if dist.get("barlow_beeston_method", "lite") != "lite":
        # pyhs3's extension: one constraint per sample and staterror, from the modifier's
        # data.uncertainties; HS3, ROOT and pyhf combine the samples of a bin ("lite")
        _fail(f"barlow_beeston_method {dist['barlow_beeston_method']!r} is not supported "
              "(only 'lite': one staterror constraint per bin from all its samples)",
              dpath + ".barlow_beeston_method")
    block = _get(dist, "staterror", dpath, dict) if "staterror" in dist else {}
    ctx = _Channel(
        state, dists, _channel_name(dist["name"]), nbins,
        staterror_type=block.get("constraint", "Poisson"),
        threshold=_number(block.get("relThreshold", 0.0), dpath + ".staterror.relThreshold"),
    )
    samples = [
        _convert_sample(s, f"{dpath}.samples[{j}]", ctx)
        for j, s in enumerate(_get(dist, "samples", dpath, list))
    ]
    if not samples:
        _fail("a histfactory_dist needs at least one sample", dpath + ".samples")
    _finish_staterror(ctx, dpath)
    return {"name": ctx.channel, "samples": samples}


def _observation(data_name, lpath, data_index, channel, nbins) -> dict:
    if data_name not in data_index:
        _fail(f"data '{data_name}' is not defined in 'data'", lpath)
    entry, dpath = data_index[data_name]
    if entry.get("type", "binned") != "binned":
        _fail(f"unsupported data type {entry.get('type')!r} (only binned)", dpath)
    contents = _numbers(_get(entry, "contents", dpath), dpath + ".contents")
    if len(contents) != nbins:
        _fail(f"{len(contents)} bins, distribution of channel '{channel}' has {nbins}",
              dpath + ".contents")
    return {"name": channel, "data": contents}


# ---------------------------------------------------------------------------------------
# measurement config
# ---------------------------------------------------------------------------------------


def _component_names(ps: _ParSet) -> list[str]:
    if ps.kind in ("shapefactor", "shapesys", "staterror"):
        return [f"{ps.name}[{i}]" for i in range(len(ps.hs3))]
    return [ps.name]


def _parameter_entry(ps: _ParSet, state: _State) -> dict | None:
    """The pyhf ``measurement.config.parameters`` entry for one set (``None``: defaults)."""
    entry: dict = {"name": ps.name}
    inits = [state.value(h) for h in ps.hs3]
    const = [state.is_const(h) for h in ps.hs3]
    if ps.kind == "lumi":
        entry["auxdata"], entry["sigmas"] = ps.auxdata, ps.sigmas
        a, s = ps.auxdata[0], ps.sigmas[0]
        inits = [a if inits[0] is None else inits[0]]
        state.bounds.setdefault(ps.hs3[0], (a - 5.0 * s, a + 5.0 * s))
    elif ps.kind in ("normsys", "histosys") and (ps.auxdata, ps.sigmas) != ([0.0], [1.0]):
        entry["auxdata"], entry["sigmas"] = ps.auxdata, ps.sigmas
    if all(v is not None for v in inits):
        entry["inits"] = inits
    if all(h in state.bounds for h in ps.hs3):
        entry["bounds"] = [list(state.bounds[h]) for h in ps.hs3]
    if all(const):
        entry["fixed"] = True
    elif any(const) and ps.kind not in ("staterror", "shapesys"):  # those: zero uncertainty
        loose = [h for h, c in zip(ps.hs3, const, strict=True) if c]
        _fail(f"parameters {loose} are const but the others of '{ps.name}' are not; "
              f"pyhf can fix only whole {ps.kind} sets", ps.where)
    return entry if len(entry) > 1 else None


def _interpolation_codes(state: _State) -> tuple[dict[str, str] | None, str | None]:
    """The document's codes per type (nextstat names), or ``(None, why)`` if they differ."""
    codes = dict(HS3_DEFAULT_CODES)
    for kind, found in state.codes.items():
        if len(found) > 1:
            where = ", ".join(f"{c!r} at {w}" for c, w in found.values())
            return None, (f"{kind} modifiers use different interpolation codes ({where}); "
                          "nextstat has one code per modifier type: pass interpolation=... "
                          "to choose")
        if found:
            codes[kind] = next(iter(found))
    return codes, None


# ---------------------------------------------------------------------------------------
# public: reader
# ---------------------------------------------------------------------------------------


def hs3_to_workspace(doc: dict, analysis: str | None = None,
                     parameter_point: str | None = None) -> tuple[dict, dict]:
    """Convert an HS3 v0.2 document (HistFactory likelihoods) into a pyhf workspace.

    Parameters
    ----------
    doc : dict
        The parsed HS3 document.
    analysis : str, optional
        Name of the analysis to convert. Default: the only one; among several, the one whose
        name contains ``obsData`` (ROOT also writes an ``asimovData`` analysis), else the
        first, with a warning.
    parameter_point : str, optional
        Parameter point giving initial values, constant flags and global-observable values.
        Default: ``default_values``, else the first point.

    Returns
    -------
    workspace : dict
        A pyhf workspace (schema 1.0.0) with one measurement named after the analysis.
    info : dict
        ``analysis``, ``likelihood``, ``parameter_point``, ``measurement``, ``poi``,
        ``interpolation`` (the codes the document asks for, nextstat names; ``None`` when
        modifiers of one type ask for different codes, ``interpolation_conflict`` says which),
        ``channels`` (channel -> HS3 distribution) and ``parameters`` (HS3 parameter name ->
        nextstat parameter name).

    Raises
    ------
    nextstat.errors.InvalidFormat
        Anything that is not valid HS3 or has no pyhf equivalent; ``where`` is the JSON path.
    """
    if not isinstance(doc, dict):
        raise InvalidFormat(f"an HS3 document is a JSON object, not {type(doc).__name__}")
    _get(doc, "distributions", "<document>", list)
    ana, ana_path = _select_analysis(doc, analysis)
    lik, lik_path = _select_likelihood(doc, ana, ana_path)
    point_name, point = _select_point(doc, parameter_point)
    state = _State(point=point, bounds=_domain_bounds(doc, ana, ana_path))
    dists = _named(doc, "distributions")
    data_index = _named(doc, "data")

    dist_names = _get(lik, "distributions", lik_path, list)
    data_names = _get(lik, "data", lik_path, list)
    if len(dist_names) != len(data_names):
        _fail("'distributions' and 'data' must have the same length", lik_path)
    channels, observations, channel_map = [], [], {}
    for k, (dname, oname) in enumerate(zip(dist_names, data_names, strict=True)):
        if dname not in dists:
            _fail(f"distribution '{dname}' is not defined", f"{lik_path}.distributions[{k}]")
        dist, dpath = dists[dname]
        channel = _convert_distribution(dist, dpath, state, dists)
        if channel["name"] in channel_map:
            _fail(f"two distributions map to channel '{channel['name']}'", dpath)
        channel_map[channel["name"]] = dname
        channels.append(channel)
        nbins = len(channel["samples"][0]["data"])
        observations.append(
            _observation(oname, f"{lik_path}.data[{k}]", data_index, channel["name"], nbins)
        )

    hs3_to_ours = {}
    for ps in state.sets.values():
        hs3_to_ours.update(zip(ps.hs3, _component_names(ps), strict=True))
    pois = []
    if ana is not None and "parameters_of_interest" in ana:
        pois = _strings(ana["parameters_of_interest"], f"{ana_path}.parameters_of_interest")
    if len(pois) > 1:
        warnings.warn(f"HS3 analysis has POIs {pois}; using the first", stacklevel=2)
    poi = hs3_to_ours.get(pois[0], pois[0]) if pois else None
    if poi is not None and poi not in hs3_to_ours.values():
        _fail(f"parameter of interest '{pois[0]}' is not a parameter of the likelihood",
              f"{ana_path}.parameters_of_interest")
    mname = (ana or lik)["name"]
    parameters = [e for ps in state.sets.values() if (e := _parameter_entry(ps, state))]
    config = {"poi": poi, "parameters": parameters}
    if poi is None:
        config.pop("poi")
    workspace = {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": mname, "config": config}],
        "version": "1.0.0",
    }
    codes, conflict = _interpolation_codes(state)
    info = {
        "analysis": ana["name"] if ana is not None else None,
        "likelihood": lik["name"],
        "parameter_point": point_name,
        "measurement": mname,
        "poi": poi,
        "interpolation": codes,
        "interpolation_conflict": conflict,
        "channels": channel_map,
        "parameters": hs3_to_ours,
    }
    return workspace, info


def from_hs3(source, analysis: str | None = None, parameter_point: str | None = None,
             interpolation=None):
    """Build a :class:`~nextstat.model.histfactory.HistFactoryModel` from an HS3 document.

    Parameters
    ----------
    source : dict, str or os.PathLike
        The HS3 document, its JSON text, or a path to a ``.json`` / ``.json.gz`` file.
    analysis, parameter_point : str, optional
        See :func:`hs3_to_workspace`.
    interpolation : {"pyhf", "root"} or mapping, optional
        Interpolation codes (see :func:`nextstat.from_pyhf`). Default: what the document says
        (each modifier's ``interpolation``, ROOT code numbers), and without a key what ROOT
        6.40 uses: normsys code4 (ROOT 4/5), histosys code4p (ROOT 4), i.e. pyhf's defaults.

    Returns
    -------
    HistFactoryModel

    Raises
    ------
    nextstat.errors.InvalidFormat
        Invalid HS3 or something pyhf semantics cannot express; the message names the JSON
        path inside the document.

    Examples
    --------
    >>> import nextstat
    >>> from nextstat.io.hs3 import from_hs3, to_hs3
    >>> from nextstat.examples import example_path
    >>> model = nextstat.from_pyhf(example_path())
    >>> from_hs3(to_hs3(model)).parameter_names() == model.parameter_names()
    True
    """
    from .load import read_json_document
    from .pyhf import from_pyhf

    doc, _ = read_json_document(source)
    workspace, info = hs3_to_workspace(doc, analysis=analysis, parameter_point=parameter_point)
    if interpolation is None and info["interpolation"] is None:
        raise InvalidFormat(info["interpolation_conflict"], "distributions")
    codes = info["interpolation"] if interpolation is None else interpolation
    return from_pyhf(workspace, measurement=info["measurement"], interpolation=codes)


# ---------------------------------------------------------------------------------------
# public: writer
# ---------------------------------------------------------------------------------------


def _hs3_names(ps) -> list[str]:
    if ps.kind in ("shapefactor", "shapesys", "staterror"):
        return [f"{ps.name}_bin_{i}" for i in range(ps.n)]
    return [ps.name]


def _export_code(kind: str, code: str) -> int:
    try:
        return _EXPORT_CODES[kind][code]
    except KeyError:
        raise InvalidFormat(f"{kind} interpolation code {code} has no ROOT/HS3 equivalent; "
                            f"exportable codes: {sorted(_EXPORT_CODES[kind])}", "to_hs3") from None


def _axes(channel: str, nbins: int) -> list[dict]:
    return [{"name": f"obs_x_{channel}", "min": 0.0, "max": float(nbins), "nbins": nbins}]


def _export_modifier(mod, sample, sets, codes) -> dict:
    kind, name = mod["type"], mod["name"]
    if kind == "normfactor":
        return {"name": name, "parameter": name, "type": "normfactor"}
    if kind == "lumi":
        return {"name": name, "parameter": name, "type": "normfactor",
                "constraint_name": f"{name}Constraint"}
    if kind == "normsys":
        return {"name": name, "parameter": name, "type": "normsys",
                "constraint_name": f"{name}Constraint", "interpolation": codes["normsys"],
                "data": {"hi": mod["data"]["hi"], "lo": mod["data"]["lo"]}}
    if kind == "histosys":
        return {"name": name, "parameter": name, "type": "histosys",
                "constraint_name": f"{name}Constraint", "interpolation": codes["histosys"],
                "data": {"hi": {"contents": mod["data"]["hi_data"]},
                         "lo": {"contents": mod["data"]["lo_data"]}}}
    params = _hs3_names(sets[name])
    if kind == "shapefactor":
        return {"name": name, "parameters": params, "type": "shapefactor"}
    if kind == "staterror":
        return {"name": name, "parameters": params, "type": "staterror",
                "constraint_type": "Gauss"}
    return _export_shapesys(mod, sample, sets[name], params)


def _export_shapesys(mod, sample, ps, params) -> dict:
    if list(ps.auxdata) != list(ps.factors):
        raise InvalidFormat(f"shapesys '{ps.name}' has auxdata different from its factors; "
                            "HS3 cannot express that", "to_hs3")
    # relative uncertainty that gives back tau = factor: tau = (nu / delta)^2 = 1 / rel^2;
    # 0 where pyhf fixes the gamma (no nominal or no uncertainty)
    vals = [1.0 / math.sqrt(tau) if n > 0.0 and d > 0.0 else 0.0
            for d, n, tau in zip(mod["data"], sample["data"], ps.factors, strict=True)]
    return {"name": mod["name"], "parameters": params, "type": "shapesys",
            "constraint_type": "Poisson", "data": {"vals": vals}}


def _export_sample(sample, sets, codes) -> dict:
    out = {"name": sample["name"], "data": {"contents": list(sample["data"])}}
    mods = []
    for mod in sample["modifiers"]:
        mods.append(_export_modifier(mod, sample, sets, codes))
        if mod["type"] == "staterror":
            out["data"]["errors"] = list(mod["data"])
    out["modifiers"] = mods
    return out


def _constraint_dists(sets) -> tuple[list[dict], list[dict]]:
    """gaussian_dist constraints and the global-observable parameter entries."""
    dists, globs = [], []
    for ps in sets.values():
        if ps.kind in ("lumi", "normsys", "histosys"):
            dists.append({"name": f"{ps.name}Constraint", "type": "gaussian_dist",
                          "x": ps.name, "mean": f"nom_{ps.name}", "sigma": ps.sigmas[0]})
            globs.append({"name": f"nom_{ps.name}", "value": ps.auxdata[0], "const": True})
        elif ps.kind == "staterror":
            globs += [{"name": f"nom_{h}", "value": a, "const": True}
                      for h, a in zip(_hs3_names(ps), ps.auxdata, strict=True)]
    return dists, globs


def _point(name, sets, values, globs) -> dict:
    params = []
    for ps in sets.values():
        for h, v, f in zip(_hs3_names(ps), values(ps), ps.fixed, strict=True):
            entry = {"name": h, "value": float(v)}
            if f:
                entry["const"] = True
            params.append(entry)
    return {"name": name, "parameters": params + globs}


def _bestfit_values(model, bestfit):
    import numpy as np

    values = getattr(bestfit, "bestfit", bestfit)
    values = np.asarray(values, dtype=float)
    if values.shape != (model.n_params(),):
        raise InvalidFormat(f"bestfit has shape {values.shape}, the model has "
                            f"{model.n_params()} parameters", "to_hs3")
    return values


def to_hs3(model, bestfit=None) -> dict:
    """Export a model to an HS3 v0.2 document (``histfactory_dist`` per channel).

    Parameters
    ----------
    model : HistFactoryModel
        The model; its pyhf spec, measurement settings, interpolation codes and current
        observed data are exported.
    bestfit : array-like or FitResult, optional
        Parameter values (or a fit result with ``.bestfit``) written as a second parameter
        point, ``bestfit``.

    Returns
    -------
    dict
        The HS3 document: analysis ``<measurement>``, likelihood, ``obsData_<channel>`` data,
        ``model_<channel>`` distributions, Gaussian constraints, one product domain with the
        parameter bounds and the parameter point ``default_values`` (inits, ``const`` for
        fixed parameters, global observables).

    Raises
    ------
    nextstat.errors.InvalidFormat
        An interpolation code or setting without an HS3 equivalent (normsys code 4p).
    """
    from .._version import __version__

    codes = {k: _export_code(k, c) for k, c in model.interpolation_codes().items()}
    sets = {ps.name: ps for ps in model.layout.param_sets}
    observed = {c["channel_name"]: c["y"] for c in model.observed_main_by_channel()}
    channels = sorted(model.spec["channels"], key=lambda c: c["name"])
    mname = model.measurement
    lname = f"{mname}_obsData"
    dists = [
        {"name": f"model_{c['name']}", "type": "histfactory_dist",
         "axes": _axes(c["name"], len(observed[c["name"]])),
         "samples": [_export_sample(s, sets, codes) for s in c["samples"]]}
        for c in channels
    ]
    data = [{"name": f"obsData_{c['name']}", "type": "binned",
             "axes": _axes(c["name"], len(observed[c["name"]])),
             "contents": list(observed[c["name"]])} for c in channels]
    cdists, globs = _constraint_dists(sets)
    domain = {"name": f"{mname}_parameters", "type": "product_domain", "axes": [
        {"name": h, "min": float(lo), "max": float(hi)}
        for ps in sets.values() for h, (lo, hi) in zip(_hs3_names(ps), ps.bounds, strict=True)
    ]}
    points = [_point("default_values", sets, lambda ps: ps.inits, globs)]
    if bestfit is not None:
        values = _bestfit_values(model, bestfit)
        points.append(_point("bestfit", sets,
                             lambda ps: values[ps.offset:ps.offset + ps.n], globs))
    analysis = {"name": mname, "likelihood": lname, "domains": [domain["name"]],
                "parameters_of_interest": [model.poi_name] if model.poi_name else []}
    return {
        "metadata": {"hs3_version": HS3_VERSION,
                     "packages": [{"name": "nextstat", "version": __version__}]},
        "distributions": dists + cdists,
        "data": data,
        "likelihoods": [{"name": lname, "distributions": [d["name"] for d in dists],
                         "data": [d["name"] for d in data]}],
        "analyses": [analysis],
        "domains": [domain],
        "parameter_points": points,
    }
