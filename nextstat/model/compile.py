"""Compile a validated pyhf workspace into flat tables for the compiled likelihood.

The semantics are pyhf 0.7.6's (see ``docs/architecture.md`` and the pyhf sources cited
there): channels and samples sorted by name, parameters ordered by modifier type
(histosys, lumi, normfactor, normsys, shapefactor, shapesys, staterror) and, within a type,
by first appearance; staterror uncertainties combined across samples; shapesys with
Poisson (Barlow-Beeston) auxiliary terms ``tau = (nominal / sigma)^2``.

The result, :class:`ModelLayout`, holds the parameter table, the auxiliary-data layout and
the int32 / float64 arrays consumed by :class:`nextstat._ext.nll.CompiledModel`.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from itertools import chain

import numpy as np

from .._ext.workspace_fast import float_array
from ..errors import InvalidModel
from .interpolation import CODE_IDS

TYPE_ORDER = ("histosys", "lumi", "normfactor", "normsys", "shapefactor", "shapesys", "staterror")
PER_BIN_TYPES = ("shapefactor", "shapesys", "staterror")
GAUSS_TYPES = ("histosys", "lumi", "normsys", "staterror")

#: Default (init, (lo, hi)) per modifier type, as in pyhf's ``required_parset``.
_DEFAULTS = {
    "normfactor": (1.0, (0.0, 10.0)),
    "shapefactor": (1.0, (0.0, 10.0)),
    "normsys": (0.0, (-5.0, 5.0)),
    "histosys": (0.0, (-5.0, 5.0)),
    "staterror": (1.0, (1e-10, 10.0)),
    "shapesys": (1.0, (1e-10, 10.0)),
}

_OVERRIDABLE = {
    None: {"inits", "bounds", "fixed"},
    "gauss": {"inits", "bounds", "fixed", "auxdata", "sigmas"},
    "poisson": {"inits", "bounds", "fixed", "auxdata", "factors"},
}


@dataclass
class ParamSet:
    """One named parameter set (scalar or one component per bin)."""

    name: str
    kind: str
    n: int
    inits: list[float]
    bounds: list[tuple[float, float]]
    fixed: list[bool]
    constraint: str | None = None  # None, "gauss" or "poisson"
    auxdata: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    factors: list[float] = field(default_factory=list)
    offset: int = 0
    channel: str | None = None

    def component_names(self) -> list[str]:
        """Parameter names of the components (``name[i]`` for per-bin sets)."""
        return _parameter_names([self])


@dataclass
class ModelLayout:
    """Everything the compiled model and its Python face need."""

    param_sets: list[ParamSet]
    parameter_names: list[str]
    init: np.ndarray
    bounds: np.ndarray
    fixed: np.ndarray
    poi_name: str | None
    poi_index: int | None
    channels: list[str]
    channel_bins: dict[str, int]
    channel_samples: dict[str, list[str]]
    blocks: list[tuple[str, str]]
    observed_main: np.ndarray
    aux_data: np.ndarray
    aux_kind: np.ndarray  # 0: Gaussian (expected = theta), 1: Poisson (expected = gamma tau)
    aux_param: np.ndarray
    aux_tau: np.ndarray
    gauss_log_norm: float
    pois_aux_index: np.ndarray
    tables: dict
    local_params: np.ndarray  # per-bin gammas with pairwise disjoint bins (see below)
    codes: dict[str, str]
    modifiers: dict[str, list[str]]


def _type_signature(kind: str, nbins: int) -> tuple:
    n = nbins if kind in PER_BIN_TYPES else 1
    constraint = (
        "gauss" if kind in GAUSS_TYPES else "poisson" if kind == "shapesys" else None
    )
    return (n, constraint, _DEFAULTS.get(kind))


def compile_workspace(
    ws: dict,
    measurement: dict,
    codes: dict[str, str],
    unknown_parameters: str = "error",
) -> ModelLayout:
    """Build the :class:`ModelLayout` of a validated workspace.

    One pass over the channels, samples and modifiers (in pyhf's sorted order) registers
    the parameters and records every modifier; the per-bin work (gamma tables, staterror
    sigmas, shapesys factors, positivity checks) is then done on whole arrays.

    Parameters
    ----------
    ws : dict
        A workspace that passed :func:`nextstat.model.workspace.validate_workspace`.
    measurement : dict
        The selected measurement.
    codes : dict
        Interpolation code per modifier type: ``{"normsys": "4", "histosys": "4p"}``.
    unknown_parameters : {"error", "warn", "ignore"}
        What to do with a measurement parameter entry that names no modifier parameter
        (pyhf ignores these silently).
    """
    by_name = {ch["name"]: ch for ch in ws["channels"]}
    channels = sorted(by_name)
    samples_of = {c: sorted(by_name[c]["samples"], key=_NAME) for c in channels}
    channel_bins = {c: len(samples_of[c][0]["data"]) for c in channels}
    channel_samples = {c: [s["name"] for s in samples_of[c]] for c in channels}
    obs_by_name = {o["name"]: o["data"] for o in ws["observations"]}
    code_ids = {k: CODE_IDS[v] for k, v in codes.items()}
    normsys_code = code_ids["normsys"]

    reg = _Registry(channel_bins)
    seen = reg.seen
    rec = _Records()
    # bound methods of the record lists: this loop runs once per modifier
    fac, hs, gam, stat, shapesys = (rec.fac.append, rec.hs.append, rec.gam.append,
                                    rec.stat.append, rec.shapesys.append)
    hs_lo, hs_hi, stat_delta, shapesys_delta = (rec.hs_lo.extend, rec.hs_hi.extend,
                                                rec.stat_delta.extend,
                                                rec.shapesys_delta.extend)
    bin0 = n_hs = 0
    for c in channels:
        nb = channel_bins[c]
        rec.observed.extend(obs_by_name[c])
        for s in samples_of[c]:
            k = len(rec.blocks)
            sb0 = len(rec.nominal)
            rec.blocks.append((c, s["name"]))
            rec.blk_bin_start.append(bin0)
            rec.blk_sb_start.append(sb0)
            rec.blk_len.append(nb)
            rec.nominal.extend(s["data"])
            # sorted by (name, type) without building key tuples: by type, then stably
            # by name
            for mod in sorted(sorted(s["modifiers"], key=_TYPE), key=_NAME):
                kind, name, data = mod["type"], mod["name"], mod["data"]
                types = seen.get(name)  # a repeated scalar modifier needs no checks
                if types is None or kind not in types or kind in PER_BIN_TYPES:
                    reg.add(name, kind, c, s["name"])
                if kind == "normsys":
                    fac((name, normsys_code, data["lo"], data["hi"]))
                elif kind == "histosys":
                    hs((name, k, n_hs))
                    hs_lo(data["lo_data"])
                    hs_hi(data["hi_data"])
                    n_hs += nb
                elif kind in ("normfactor", "lumi"):
                    fac((name, -1, 1.0, 1.0))
                else:  # staterror, shapesys, shapefactor: one gamma per bin
                    gam((name, sb0, bin0, nb))
                    if kind == "staterror":
                        stat((name, sb0, nb))
                        stat_delta(data)
                    elif kind == "shapesys":
                        shapesys((name, sb0, nb))
                        shapesys_delta(data)
            rec.blk_fac_ptr.append(len(rec.fac))
            rec.blk_hs_ptr.append(len(rec.hs))
        bin0 += nb
    n_bins = bin0

    param_sets = reg.param_sets()
    ordered = list(param_sets.values())
    offset = 0
    for ps in ordered:
        ps.offset = offset
        offset += ps.n
    n_par = offset
    nominal = float_array(rec.nominal)
    _staterror_sigmas(rec, nominal, param_sets, n_par)
    _shapesys_factors(rec, nominal, param_sets)
    _apply_measurement(measurement, param_sets, unknown_parameters)

    names = _parameter_names(ordered)
    init = np.fromiter(chain.from_iterable(ps.inits for ps in ordered), dtype=float,
                       count=n_par)
    bounds = np.fromiter(
        chain.from_iterable(chain.from_iterable(ps.bounds for ps in ordered)), dtype=float,
        count=2 * n_par,
    ).reshape(n_par, 2)
    fixed = np.fromiter(chain.from_iterable(ps.fixed for ps in ordered), dtype=bool,
                        count=n_par)
    _check_values(ordered, init, bounds)

    poi_name = measurement["config"].get("poi") or None  # "" means no POI, as in pyhf
    poi_index = None
    if poi_name is not None:
        if poi_name not in param_sets or param_sets[poi_name].n != 1:
            raise InvalidModel(
                f"measurement '{measurement['name']}': poi '{poi_name}' is not a scalar "
                f"parameter of the model; parameters are {sorted(param_sets)}"
            )
        poi_index = param_sets[poi_name].offset

    aux = _aux_layout(ordered)
    hs_lo = float_array(rec.hs_lo)
    hs_hi = float_array(rec.hs_hi)
    if codes["histosys"] in ("1", "4"):
        _check_histosys_positive(rec, nominal, hs_lo, hs_hi, codes["histosys"])
    sb_gam_ptr, gam_param = _gamma_table(rec, param_sets, nominal.size)

    offset_of = {ps.name: ps.offset for ps in ordered}
    fac_name, fac_code, fac_lo, fac_hi = zip(*rec.fac, strict=True) if rec.fac else ((),) * 4
    fac_lo, fac_hi = float_array(list(fac_lo)), float_array(list(fac_hi))
    if codes["normsys"] in ("1", "4"):
        _check_normsys_positive(rec, fac_name, fac_lo, fac_hi, codes["normsys"])
    hs_name, _, hs_off = zip(*rec.hs, strict=True) if rec.hs else ((),) * 3
    blk_bin_start = _i32(rec.blk_bin_start)
    blk_sb_start = _i32(rec.blk_sb_start)
    blk_len = _i32(rec.blk_len)
    tables = {
        "n_par": n_par,
        "n_bins": n_bins,
        "n_aux": aux["aux_data"].size,
        "blk_bin_start": blk_bin_start,
        "blk_sb_start": blk_sb_start,
        "blk_len": blk_len,
        "blk_fac_ptr": _i32(rec.blk_fac_ptr),
        "fac_param": _i32([offset_of[n] for n in fac_name]),
        "fac_code": _i32(fac_code),
        "fac_lo": fac_lo,
        "fac_hi": fac_hi,
        "blk_hs_ptr": _i32(rec.blk_hs_ptr),
        "hs_param": _i32([offset_of[n] for n in hs_name]),
        "hs_code": _i32([code_ids["histosys"]] * len(hs_name)),
        "hs_off": _i32(hs_off),
        "hs_lo": hs_lo,
        "hs_hi": hs_hi,
        "sb_gam_ptr": sb_gam_ptr,
        "gam_param": gam_param,
        "nominal": nominal,
        "g_param": aux["g_param"],
        "g_aux": aux["g_aux"],
        "g_inv_sigma": aux["g_inv_sigma"],
        "p_param": aux["p_param"],
        "p_aux": aux["p_aux"],
        "p_tau": aux["p_tau"],
    }
    return ModelLayout(
        param_sets=ordered,
        parameter_names=names,
        init=init,
        bounds=bounds,
        fixed=fixed,
        poi_name=poi_name,
        poi_index=poi_index,
        channels=channels,
        channel_bins=channel_bins,
        channel_samples=channel_samples,
        blocks=rec.blocks,
        observed_main=float_array(rec.observed),
        aux_data=aux["aux_data"],
        aux_kind=aux["aux_kind"],
        aux_param=aux["aux_param"],
        aux_tau=aux["aux_tau"],
        gauss_log_norm=aux["log_norm"],
        pois_aux_index=aux["p_aux"],
        tables=tables,
        local_params=_local_params(rec, param_sets, n_par, n_bins),
        codes=dict(codes),
        modifiers={k: v for k, v in reg.first_seen.items() if v},
    )


_NAME = operator.itemgetter("name")
_TYPE = operator.itemgetter("type")


def _parameter_names(param_sets: list[ParamSet]) -> list[str]:
    """Component names of the sets, in order: ``name`` or, per bin, ``name[i]``."""
    suffixes = [f"[{i}]" for i in range(max((ps.n for ps in param_sets), default=0))]
    names: list[str] = []
    for ps in param_sets:
        if ps.kind in PER_BIN_TYPES:
            names.extend(map(ps.name.__add__, suffixes[:ps.n]))
        else:
            names.append(ps.name)
    return names


def _i32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int32)


def _ranges(starts, lengths) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lengths)])``, vectorised."""
    starts = np.asarray(starts, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    first = np.cumsum(lengths) - lengths  # position of each range in the output
    return np.repeat(starts - first, lengths) + np.arange(total)


class _Registry:
    """Parameters in pyhf order and the checks that names are shared consistently."""

    def __init__(self, channel_bins: dict[str, int]):
        self.channel_bins = channel_bins
        self.first_seen: dict[str, list[str]] = {t: [] for t in TYPE_ORDER}
        # name -> {kind: (first channel, first sample, bins)}
        self.seen: dict[str, dict[str, tuple[str, str, int]]] = {}

    def add(self, name: str, kind: str, c: str, sample: str) -> None:
        types = self.seen.get(name)
        if types is None:
            self.seen[name] = {kind: (c, sample, self.channel_bins[c])}
            self.first_seen[kind].append(name)
            return
        if kind not in types:
            self.first_seen[kind].append(name)
            types[kind] = (c, sample, self.channel_bins[c])
            if len({_type_signature(k, n) for k, (_, _, n) in types.items()}) > 1:
                raise InvalidModel(
                    f"parameter '{name}' is used by modifiers of incompatible types "
                    f"{sorted(types)} (channel '{c}', sample '{sample}')"
                )
            return
        if kind not in PER_BIN_TYPES:
            return
        prev_c, prev_sample, prev_n = types[kind]
        if kind in ("staterror", "shapesys") and prev_c != c:
            raise InvalidModel(
                f"{kind} '{name}' is used in channels '{prev_c}' and '{c}'; "
                f"per-bin constrained modifiers must stay within one channel"
            )
        if kind == "shapefactor" and prev_n != self.channel_bins[c]:
            raise InvalidModel(
                f"shapefactor '{name}' is shared by channels with "
                f"{prev_n} and {self.channel_bins[c]} bins (channel '{prev_c}', sample "
                f"'{prev_sample}'; channel '{c}', sample '{sample}')"
            )
        if kind == "shapesys" and prev_c == c:
            raise InvalidModel(
                f"shapesys '{name}' appears on two samples (channel '{prev_c}', sample "
                f"'{prev_sample}'; channel '{c}', sample '{sample}'); shapesys modifiers "
                "cannot be shared"
            )

    def param_sets(self) -> dict[str, ParamSet]:
        """One :class:`ParamSet` per name, in pyhf order (by the type first listed in
        ``TYPE_ORDER``, then by first appearance); offsets are not set yet."""
        out: dict[str, ParamSet] = {}
        for kind in TYPE_ORDER:
            for name in self.first_seen[kind]:
                if name in out:
                    continue
                c0, _, nb = self.seen[name][kind]
                n = nb if kind in PER_BIN_TYPES else 1
                if kind == "lumi":
                    ps = ParamSet(name, kind, 1, [1.0], [(0.0, 10.0)], [False], "gauss",
                                  [1.0], [1.0])
                else:
                    init, bnd = _DEFAULTS[kind]
                    constraint = _type_signature(kind, n)[1]
                    ps = ParamSet(name, kind, n, [init] * n, [bnd] * n, [False] * n,
                                  constraint)
                    if constraint == "gauss":
                        ps.auxdata = [0.0 if kind in ("normsys", "histosys") else 1.0] * n
                        ps.sigmas = [1.0] * n
                ps.channel = c0 if kind in PER_BIN_TYPES else None
                out[name] = ps
        return out


@dataclass
class _Records:
    """What the pass over the workspace collected, in block order."""

    observed: list = field(default_factory=list)
    nominal: list = field(default_factory=list)
    blocks: list = field(default_factory=list)
    blk_bin_start: list = field(default_factory=list)
    blk_sb_start: list = field(default_factory=list)
    blk_len: list = field(default_factory=list)
    blk_fac_ptr: list = field(default_factory=lambda: [0])
    blk_hs_ptr: list = field(default_factory=lambda: [0])
    fac: list = field(default_factory=list)  # (name, code id, lo, hi)
    hs: list = field(default_factory=list)  # (name, block, offset into hs_lo / hs_hi)
    hs_lo: list = field(default_factory=list)
    hs_hi: list = field(default_factory=list)
    gam: list = field(default_factory=list)  # (name, sb0, bin0, nbins) per per-bin modifier
    stat: list = field(default_factory=list)  # (name, sb0, nbins) per staterror modifier
    stat_delta: list = field(default_factory=list)
    shapesys: list = field(default_factory=list)  # (name, sb0, nbins) per shapesys modifier
    shapesys_delta: list = field(default_factory=list)


def _aux_layout(ordered: list[ParamSet]) -> dict:
    """Auxiliary-data layout of the constrained parameter sets, in parameter order."""
    constrained = [ps for ps in ordered if ps.constraint is not None]
    gauss = [ps.constraint == "gauss" for ps in constrained]
    sizes = np.array([ps.n for ps in constrained], dtype=np.int64)
    aux_param = _ranges([ps.offset for ps in constrained], sizes)
    aux_index = np.arange(aux_param.size)
    is_gauss = np.repeat(np.array(gauss, dtype=bool), sizes)
    aux_data = np.array([v for ps in constrained for v in ps.auxdata[:ps.n]], dtype=float)
    sigmas = np.array(
        [v for ps in constrained if ps.constraint == "gauss" for v in ps.sigmas[:ps.n]]
    )
    factors = np.array(
        [v for ps in constrained if ps.constraint != "gauss" for v in ps.factors[:ps.n]]
    )
    aux_tau = np.ones(aux_param.size)
    aux_tau[~is_gauss] = factors
    return {
        "aux_data": aux_data,
        "aux_kind": _i32(~is_gauss),
        "aux_param": _i32(aux_param),
        "aux_tau": aux_tau,
        "g_param": _i32(aux_param[is_gauss]),
        "g_aux": _i32(aux_index[is_gauss]),
        "g_inv_sigma": 1.0 / sigmas,
        "p_param": _i32(aux_param[~is_gauss]),
        "p_aux": _i32(aux_index[~is_gauss]),
        "p_tau": factors,
        "log_norm": math.fsum(np.log(sigmas * math.sqrt(2.0 * math.pi))),
    }


def _check_normsys_positive(rec, fac_name, fac_lo, fac_hi, code):
    """Codes 1 and 4 take logarithms of the normsys factors: both must be > 0 (normfactor
    and lumi entries have 1, 1)."""
    bad = np.flatnonzero((fac_lo <= 0.0) | (fac_hi <= 0.0))
    if bad.size:
        j = int(bad[0])
        c, s = rec.blocks[int(np.searchsorted(rec.blk_fac_ptr, j, side="right")) - 1]
        raise InvalidModel(
            f"channel '{c}', sample '{s}': normsys '{fac_name[j]}' has factors "
            f"lo={fac_lo[j]}, hi={fac_hi[j]}; interpolation code{code} needs both > 0"
        )


def _check_histosys_positive(rec, nominal, hs_lo, hs_hi, code):
    """Codes 1 and 4 take logarithms: nominal and both variations must be > 0."""
    blk_sb_start = np.asarray(rec.blk_sb_start)
    blk_len = np.asarray(rec.blk_len)
    blocks = np.array([k for _, k, _ in rec.hs], dtype=np.int64)
    nom = nominal[_ranges(blk_sb_start[blocks], blk_len[blocks])]
    bad = np.flatnonzero((nom <= 0.0) | (hs_lo <= 0.0) | (hs_hi <= 0.0))
    if bad.size:
        j = int(np.searchsorted([off for _, _, off in rec.hs], bad[0], side="right")) - 1
        name, k, off = rec.hs[j]
        c, s = rec.blocks[k]
        raise InvalidModel(
            f"channel '{c}', sample '{s}': histosys '{name}' bin {int(bad[0]) - off}: "
            f"interpolation code{code} needs positive nominal and variations"
        )


def _gamma_table(rec, param_sets, n_sb) -> tuple[np.ndarray, np.ndarray]:
    """CSR table of the gamma parameters multiplying each (sample, bin) entry, in the
    order of the sample's sorted modifiers."""
    if not rec.gam:
        return np.zeros(n_sb + 1, dtype=np.int32), np.zeros(0, dtype=np.int32)
    names, sb0, _, nb = zip(*rec.gam, strict=True)
    sb = _ranges(sb0, nb)
    param = _ranges([param_sets[n].offset for n in names], nb)
    order = np.argsort(sb, kind="stable")
    ptr = np.zeros(n_sb + 1, dtype=np.int32)
    ptr[1:] = np.cumsum(np.bincount(sb, minlength=n_sb))
    return ptr, _i32(param[order])


def _local_params(rec, param_sets, n_par, n_bins) -> np.ndarray:
    """A set of per-bin gamma parameters no two of which touch the same bin.

    Their mutual Hessian block is diagonal, which the fit exploits (Schur complement,
    simultaneous finite differences). Greedy in parameter order: a gamma joins if none of
    its bins is taken yet. The components of one set touch pairwise different bins, so a
    whole set can be tested against the bins taken before it.
    """
    bin0s: dict[str, set[int]] = {}
    for name, _, bin0, _ in rec.gam:
        bin0s.setdefault(name, set()).add(bin0)
    local = np.zeros(n_par, dtype=bool)
    taken = np.zeros(n_bins, dtype=bool)
    for name in sorted(bin0s, key=lambda n: param_sets[n].offset):
        ps = param_sets[name]
        if len(bin0s[name]) == 1:  # the common case: one channel, a slice of bins
            (b0,) = bin0s[name]
            seg = taken[b0:b0 + ps.n]
            free = ~seg
            local[ps.offset:ps.offset + ps.n] = free
            seg[:] = True
            continue
        bins = np.add.outer(np.array(sorted(bin0s[name])), np.arange(ps.n))
        free = ~taken[bins].any(axis=0)
        local[ps.offset + np.flatnonzero(free)] = True
        taken[bins[:, free]] = True
    return local


def _staterror_sigmas(rec, nominal, param_sets, n_par):
    """Relative staterror uncertainties combined over the samples that carry them.

    ``sigma_b = sqrt(sum_s (delta_sb / sum_s' nu0_s'b)^2)``; a bin with ``sigma_b = 0``
    gets a fixed gamma and ``sigma_b = 1`` (its constraint stays as a constant).
    """
    if not rec.stat:
        return
    names, sb0, nb = zip(*rec.stat, strict=True)
    comp = _ranges([param_sets[n].offset for n in names], nb)
    nom = nominal[_ranges(sb0, nb)]
    tot = np.bincount(comp, weights=nom, minlength=n_par)[comp]
    delta = float_array(rec.stat_delta)
    with np.errstate(divide="ignore", invalid="ignore"):
        term = np.where(tot > 0, (delta / np.where(tot > 0, tot, 1.0)) ** 2, 0.0)
    sig = np.sqrt(np.bincount(comp, weights=term, minlength=n_par))
    sigmas = np.where(sig > 0, sig, 1.0).tolist()
    fixed = (sig == 0).tolist()
    for name in dict.fromkeys(names):
        ps = param_sets[name]
        ps.sigmas = sigmas[ps.offset:ps.offset + ps.n]
        ps.fixed = fixed[ps.offset:ps.offset + ps.n]


def _shapesys_factors(rec, nominal, param_sets):
    """Poisson factors ``tau_b = (nu0_b / delta_b)^2``; bins without both > 0 are fixed."""
    if not rec.shapesys:
        return
    names, sb0, nb = zip(*rec.shapesys, strict=True)
    nom = nominal[_ranges(sb0, nb)]
    unc = float_array(rec.shapesys_delta)
    ok = (nom > 0) & (unc > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = np.where(ok, nom**2 / unc**2, 1.0)
    start = 0
    for name, n in zip(names, nb, strict=True):
        ps = param_sets[name]
        ps.factors = tau[start:start + n].tolist()
        ps.auxdata = list(ps.factors)
        ps.fixed = (~ok[start:start + n]).tolist()
        start += n


def _apply_measurement(measurement, param_sets, unknown_parameters):
    """Apply ``measurement.config.parameters`` overrides, as pyhf's
    ``reduce_paramsets_requirements`` does.

    Unknown-parameter entries follow ``unknown_parameters``.
    """
    mname = measurement["name"]
    for i, entry in enumerate(measurement["config"].get("parameters", [])):
        where = f"measurement '{mname}', config.parameters[{i}] ('{entry['name']}')"
        ps = param_sets.get(entry["name"])
        if ps is None:
            msg = f"{where}: no modifier defines this parameter"
            if unknown_parameters == "error":
                raise InvalidModel(
                    msg + "; pass unknown_parameters='ignore' to skip it as pyhf does"
                )
            if unknown_parameters == "warn":
                import warnings

                warnings.warn(msg + "; ignored", stacklevel=4)
            continue
        allowed = _OVERRIDABLE[ps.constraint]
        for key, val in entry.items():
            if key == "name":
                continue
            if key not in allowed:
                raise InvalidModel(
                    f"{where}: '{key}' cannot be set on a {ps.kind} parameter "
                    f"(allowed: {sorted(allowed)})"
                )
            if key == "fixed":
                ps.fixed = [bool(val)] * ps.n
                continue
            vals = [tuple(map(float, v)) for v in val] if key == "bounds" else [
                float(v) for v in val
            ]
            if len(vals) != ps.n:
                raise InvalidModel(
                    f"{where}: '{key}' has {len(vals)} entries, the parameter has {ps.n}"
                )
            if key == "inits":
                ps.inits = vals
            elif key == "bounds":
                ps.bounds = vals
            elif key == "auxdata":
                ps.auxdata = vals
            elif key == "sigmas":
                ps.sigmas = vals
            elif key == "factors":
                ps.factors = vals
        if ps.kind == "lumi" and "inits" not in entry and "auxdata" in entry:
            ps.inits = list(ps.auxdata)
        if ps.kind == "lumi" and "bounds" not in entry and "auxdata" in entry:
            a, s = ps.auxdata[0], ps.sigmas[0]
            ps.bounds = [(a - 5.0 * s, a + 5.0 * s)]


def _check_values(ordered: list[ParamSet], init: np.ndarray, bounds: np.ndarray) -> None:
    """Bounds ordered, inits inside them, Gaussian sigmas > 0 (after the overrides)."""
    lo, hi = bounds[:, 0], bounds[:, 1]
    bad = np.flatnonzero(~(lo <= hi) | ~((lo <= init) & (init <= hi)))
    if bad.size:
        i = int(bad[0])
        ps = ordered[int(np.searchsorted([p.offset for p in ordered], i, side="right")) - 1]
        j = i - ps.offset
        if not lo[i] <= hi[i]:
            raise InvalidModel(f"parameter '{ps.name}' component {j}: bounds ({lo[i]}, {hi[i]})")
        raise InvalidModel(
            f"parameter '{ps.name}' component {j}: init {init[i]} outside bounds "
            f"({lo[i]}, {hi[i]})"
        )
    gauss = [ps for ps in ordered if ps.constraint == "gauss"]
    sigmas = np.fromiter(chain.from_iterable(ps.sigmas for ps in gauss), dtype=float)
    if not np.all(sigmas > 0):
        first = int(np.flatnonzero(~(sigmas > 0))[0])
        ps = gauss[int(np.searchsorted(np.cumsum([len(p.sigmas) for p in gauss]), first,
                                       side="right"))]
        raise InvalidModel(f"parameter '{ps.name}': sigmas must be > 0, got {ps.sigmas}")
