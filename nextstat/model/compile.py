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
from dataclasses import dataclass, field

import numpy as np

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
        if self.kind in PER_BIN_TYPES:
            return [f"{self.name}[{i}]" for i in range(self.n)]
        return [self.name]


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
    channels = sorted(ch["name"] for ch in ws["channels"])
    by_name = {ch["name"]: ch for ch in ws["channels"]}
    channel_bins = {c: len(by_name[c]["samples"][0]["data"]) for c in channels}
    channel_samples = {c: sorted(s["name"] for s in by_name[c]["samples"]) for c in channels}

    # --- parameter sets in pyhf order --------------------------------------------------
    first_seen: dict[str, list[str]] = {t: [] for t in TYPE_ORDER}
    first_seen_set: dict[str, set[str]] = {t: set() for t in TYPE_ORDER}
    seen_types: dict[str, dict[str, tuple[str, str, int]]] = {}
    modifiers: dict[str, list[str]] = {t: [] for t in TYPE_ORDER}
    for c in channels:
        samples = sorted(by_name[c]["samples"], key=lambda s: s["name"])
        for s in samples:
            for mod in sorted(s["modifiers"], key=lambda m: (m["name"], m["type"])):
                name, kind = mod["name"], mod["type"]
                if name not in first_seen_set[kind]:
                    first_seen_set[kind].add(name)
                    first_seen[kind].append(name)
                    modifiers[kind].append(name)
                types = seen_types.setdefault(name, {})
                if kind in types:
                    prev_c, prev_sample, prev_n = types[kind]
                    if kind not in ("staterror", "shapesys", "shapefactor"):
                        continue
                    prev_where = f"channel '{prev_c}', sample '{prev_sample}'"
                    where = f"channel '{c}', sample '{s['name']}'"
                    if kind in ("staterror", "shapesys") and prev_c != c:
                        raise InvalidModel(
                            f"{kind} '{name}' is used in channels '{prev_c}' and '{c}'; "
                            f"per-bin constrained modifiers must stay within one channel"
                        )
                    if kind == "shapefactor" and prev_n != channel_bins[c]:
                        raise InvalidModel(
                            f"shapefactor '{name}' is shared by channels with "
                            f"{prev_n} and {channel_bins[c]} bins ({prev_where}; {where})"
                        )
                    if kind == "shapesys" and prev_c == c:
                        raise InvalidModel(
                            f"shapesys '{name}' appears on two samples ({prev_where}; {where});"
                            " shapesys modifiers cannot be shared"
                        )
                else:
                    types[kind] = (c, s["name"], channel_bins[c])
                    if len(types) > 1 and len({
                        _type_signature(k, n) for k, (_, _, n) in types.items()
                    }) > 1:
                        raise InvalidModel(
                            f"parameter '{name}' is used by modifiers of incompatible types "
                            f"{sorted(types)} (channel '{c}', sample '{s['name']}')"
                        )

    param_sets: dict[str, ParamSet] = {}
    order: list[str] = []
    for kind in TYPE_ORDER:
        for name in first_seen[kind]:
            if name in param_sets:
                continue
            c0, _, nb = seen_types[name][kind]
            n = nb if kind in PER_BIN_TYPES else 1
            if kind == "lumi":
                ps = ParamSet(name, kind, 1, [1.0], [(0.0, 10.0)], [False], "gauss", [1.0],
                              [1.0])
            else:
                init, bnd = _DEFAULTS[kind]
                constraint = _type_signature(kind, n)[1]
                ps = ParamSet(name, kind, n, [init] * n, [bnd] * n, [False] * n, constraint)
                if constraint == "gauss":
                    ps.auxdata = [0.0 if kind in ("normsys", "histosys") else 1.0] * n
                    ps.sigmas = [1.0] * n
            ps.channel = c0 if kind in PER_BIN_TYPES else None
            param_sets[name] = ps
            order.append(name)

    _staterror_sigmas(by_name, channels, param_sets)
    _shapesys_factors(by_name, channels, param_sets)
    _apply_measurement(measurement, param_sets, unknown_parameters)

    offset = 0
    for name in order:
        param_sets[name].offset = offset
        offset += param_sets[name].n
    n_par = offset
    ordered = [param_sets[n] for n in order]
    names = [cn for ps in ordered for cn in ps.component_names()]
    init = np.array([v for ps in ordered for v in ps.inits], dtype=float)
    bounds = np.array([b for ps in ordered for b in ps.bounds], dtype=float).reshape(n_par, 2)
    fixed = np.array([f for ps in ordered for f in ps.fixed], dtype=bool)

    poi_name = measurement["config"].get("poi") or None  # "" means no POI, as in pyhf
    poi_index = None
    if poi_name is not None:
        if poi_name not in param_sets or param_sets[poi_name].n != 1:
            raise InvalidModel(
                f"measurement '{measurement['name']}': poi '{poi_name}' is not a scalar "
                f"parameter of the model; parameters are {sorted(param_sets)}"
            )
        poi_index = param_sets[poi_name].offset

    # --- auxiliary data layout ---------------------------------------------------------
    aux_data, aux_kind, aux_param, aux_tau = [], [], [], []
    g_param, g_aux, g_inv_sigma, p_param, p_aux, p_tau = [], [], [], [], [], []
    log_norm = 0.0
    sqrt_2pi = math.sqrt(2.0 * math.pi)
    for ps in ordered:
        if ps.constraint is None:
            continue
        idx0, n = len(aux_data), ps.n
        params = range(ps.offset, ps.offset + n)
        aux_data.extend(ps.auxdata[:n])
        aux_param.extend(params)
        if ps.constraint == "gauss":
            g_param.extend(params)
            g_aux.extend(range(idx0, idx0 + n))
            g_inv_sigma.extend(1.0 / sigma for sigma in ps.sigmas[:n])
            for sigma in ps.sigmas[:n]:
                log_norm += math.log(sigma * sqrt_2pi)
            aux_kind.extend([0] * n)
            aux_tau.extend([1.0] * n)
        else:
            p_param.extend(params)
            p_aux.extend(range(idx0, idx0 + n))
            p_tau.extend(ps.factors[:n])
            aux_kind.extend([1] * n)
            aux_tau.extend(ps.factors[:n])

    # --- rate tables ---------------------------------------------------------------------
    code_ids = {k: CODE_IDS[v] for k, v in codes.items()}
    blk_bin_start, blk_sb_start, blk_len, blocks = [], [], [], []
    blk_fac_ptr, fac_param, fac_code, fac_lo, fac_hi = [0], [], [], [], []
    blk_hs_ptr, hs_param, hs_code, hs_off, hs_lo, hs_hi = [0], [], [], [], [], []
    sb_gammas: list[list[int]] = []
    nominal: list[float] = []
    observed: list[float] = []
    obs_by_name = {o["name"]: o["data"] for o in ws["observations"]}
    bin0 = 0
    for c in channels:
        nb = channel_bins[c]
        observed.extend(float(x) for x in obs_by_name[c])
        for s in sorted(by_name[c]["samples"], key=lambda s: s["name"]):
            where = f"channel '{c}', sample '{s['name']}'"
            blocks.append((c, s["name"]))
            blk_bin_start.append(bin0)
            blk_sb_start.append(len(nominal))
            blk_len.append(nb)
            nom = [float(x) for x in s["data"]]
            nominal.extend(nom)
            gam: list[list[int]] = [[] for _ in range(nb)]
            for mod in sorted(s["modifiers"], key=lambda m: (m["name"], m["type"])):
                kind, name = mod["type"], mod["name"]
                ps = param_sets[name]
                if kind in ("normfactor", "lumi"):
                    fac_param.append(ps.offset)
                    fac_code.append(-1)
                    fac_lo.append(1.0)
                    fac_hi.append(1.0)
                elif kind == "normsys":
                    lo, hi = float(mod["data"]["lo"]), float(mod["data"]["hi"])
                    code = codes["normsys"]
                    if code in ("1", "4") and (lo <= 0.0 or hi <= 0.0):
                        raise InvalidModel(
                            f"{where}: normsys '{name}' has factors lo={lo}, hi={hi}; "
                            f"interpolation code{code} needs both > 0"
                        )
                    fac_param.append(ps.offset)
                    fac_code.append(code_ids["normsys"])
                    fac_lo.append(lo)
                    fac_hi.append(hi)
                elif kind == "histosys":
                    lo_d = [float(x) for x in mod["data"]["lo_data"]]
                    hi_d = [float(x) for x in mod["data"]["hi_data"]]
                    code = codes["histosys"]
                    if code in ("1", "4"):
                        for i in range(nb):
                            if nom[i] <= 0.0 or lo_d[i] <= 0.0 or hi_d[i] <= 0.0:
                                raise InvalidModel(
                                    f"{where}: histosys '{name}' bin {i}: interpolation "
                                    f"code{code} needs positive nominal and variations"
                                )
                    hs_param.append(ps.offset)
                    hs_code.append(code_ids["histosys"])
                    hs_off.append(len(hs_lo))
                    hs_lo.extend(lo_d)
                    hs_hi.extend(hi_d)
                else:  # staterror, shapesys, shapefactor: one gamma per bin
                    for i in range(nb):
                        gam[i].append(ps.offset + i)
            blk_fac_ptr.append(len(fac_param))
            blk_hs_ptr.append(len(hs_param))
            sb_gammas.extend(gam)
        bin0 += nb

    sb_gam_ptr = np.zeros(len(sb_gammas) + 1, dtype=np.int32)
    sb_gam_ptr[1:] = np.cumsum([len(g) for g in sb_gammas])
    gam_param = [p for g in sb_gammas for p in g]

    def i32(x):
        return np.asarray(x, dtype=np.int32)

    def f64(x):
        return np.asarray(x, dtype=np.float64)

    tables = {
        "n_par": n_par,
        "n_bins": bin0,
        "n_aux": len(aux_data),
        "blk_bin_start": i32(blk_bin_start),
        "blk_sb_start": i32(blk_sb_start),
        "blk_len": i32(blk_len),
        "blk_fac_ptr": i32(blk_fac_ptr),
        "fac_param": i32(fac_param),
        "fac_code": i32(fac_code),
        "fac_lo": f64(fac_lo),
        "fac_hi": f64(fac_hi),
        "blk_hs_ptr": i32(blk_hs_ptr),
        "hs_param": i32(hs_param),
        "hs_code": i32(hs_code),
        "hs_off": i32(hs_off),
        "hs_lo": f64(hs_lo),
        "hs_hi": f64(hs_hi),
        "sb_gam_ptr": sb_gam_ptr,
        "gam_param": i32(gam_param),
        "nominal": f64(nominal),
        "g_param": i32(g_param),
        "g_aux": i32(g_aux),
        "g_inv_sigma": f64(g_inv_sigma),
        "p_param": i32(p_param),
        "p_aux": i32(p_aux),
        "p_tau": f64(p_tau),
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
        blocks=blocks,
        observed_main=f64(observed),
        aux_data=f64(aux_data),
        aux_kind=i32(aux_kind),
        aux_param=i32(aux_param),
        aux_tau=f64(aux_tau),
        gauss_log_norm=log_norm,
        pois_aux_index=i32(p_aux),
        tables=tables,
        local_params=_local_params(n_par, blk_bin_start, blk_sb_start, blk_len, sb_gammas),
        codes=dict(codes),
        modifiers={k: v for k, v in modifiers.items() if v},
    )


def _local_params(n_par, blk_bin_start, blk_sb_start, blk_len, sb_gammas) -> np.ndarray:
    """A set of per-bin gamma parameters no two of which touch the same bin.

    Their mutual Hessian block is diagonal, which the fit exploits (Schur complement,
    simultaneous finite differences). Greedy in parameter order: a gamma joins if none of
    its bins is taken yet.
    """
    bins_of: dict[int, set[int]] = {}
    for b0, s0, nb in zip(blk_bin_start, blk_sb_start, blk_len, strict=True):
        for i in range(nb):
            for p in sb_gammas[s0 + i]:
                bins_of.setdefault(p, set()).add(b0 + i)
    local = np.zeros(n_par, dtype=bool)
    taken: set[int] = set()
    for p in sorted(bins_of):
        bins = bins_of[p]
        if bins & taken:
            continue
        local[p] = True
        taken |= bins
    return local


def _staterror_sigmas(by_name, channels, param_sets):
    """Relative staterror uncertainties combined over the samples that carry them.

    ``sigma_b = sqrt(sum_s (delta_sb / sum_s' nu0_s'b)^2)``; a bin with ``sigma_b = 0``
    gets a fixed gamma and ``sigma_b = 1`` (its constraint stays as a constant).
    """
    acc: dict[str, tuple[np.ndarray, list[np.ndarray]]] = {}
    for c in channels:
        for s in by_name[c]["samples"]:
            for mod in s["modifiers"]:
                if mod["type"] != "staterror":
                    continue
                nom = np.asarray(s["data"], dtype=float)
                tot, deltas = acc.setdefault(mod["name"], (np.zeros(nom.size), []))
                tot += nom
                deltas.append(np.asarray(mod["data"], dtype=float))
    for name, (tot, deltas) in acc.items():
        rel2 = np.zeros(tot.size)
        for d in deltas:
            with np.errstate(divide="ignore", invalid="ignore"):
                rel2 += np.where(tot > 0, (d / np.where(tot > 0, tot, 1.0)) ** 2, 0.0)
        sig = np.sqrt(rel2)
        ps = param_sets[name]
        ps.sigmas = [float(v) if v > 0 else 1.0 for v in sig]
        ps.fixed = [bool(v == 0) for v in sig]


def _shapesys_factors(by_name, channels, param_sets):
    """Poisson factors ``tau_b = (nu0_b / delta_b)^2``; bins without both > 0 are fixed."""
    for c in channels:
        for s in by_name[c]["samples"]:
            for mod in s["modifiers"]:
                if mod["type"] != "shapesys":
                    continue
                ps = param_sets[mod["name"]]
                tau, fixed = [], []
                for nom, unc in zip(s["data"], mod["data"], strict=True):
                    ok = nom > 0 and unc > 0
                    tau.append(float(nom) ** 2 / float(unc) ** 2 if ok else 1.0)
                    fixed.append(not ok)
                ps.factors = tau
                ps.auxdata = list(tau)
                ps.fixed = fixed


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
    for ps in param_sets.values():
        for j, ((lo, hi), x0) in enumerate(zip(ps.bounds, ps.inits, strict=True)):
            if not lo <= hi:
                raise InvalidModel(f"parameter '{ps.name}' component {j}: bounds ({lo}, {hi})")
            if not lo <= x0 <= hi:
                raise InvalidModel(
                    f"parameter '{ps.name}' component {j}: init {x0} outside bounds ({lo}, {hi})"
                )
        if ps.constraint == "gauss" and any(not s > 0 for s in ps.sigmas):
            raise InvalidModel(f"parameter '{ps.name}': sigmas must be > 0, got {ps.sigmas}")
