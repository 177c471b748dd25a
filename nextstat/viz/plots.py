"""matplotlib renderers for nextstat results.

Each ``plot_xxx(result, ax=None, **style)`` accepts the result object or its ``to_dict()``
output (so plots can be made from saved JSON, where NaN is ``null``), draws on ``ax`` (a new
figure when None) and returns the ``Axes`` (``plot_yields`` returns the ``Figure``: it has a
ratio panel). matplotlib is imported on first use, never at import time of this module.

Colours follow the usual HEP conventions (green/yellow expected bands, black observed);
sizes are chosen for a single-column figure that stays readable when scaled down.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentType, InvalidParameters

__all__ = [
    "plot_brazil",
    "plot_corr",
    "plot_limits",
    "plot_profile",
    "plot_pulls",
    "plot_ranking",
    "plot_yields",
    "save",
]

#: Band colours (±1σ green, ±2σ yellow), as in ATLAS/CMS limit plots.
GREEN = "#00cc00"
YELLOW = "#ffcc00"
#: Impact-plot colours: up (θ̂ + Δθ) and down (θ̂ − Δθ) variations.
UP_COLOR = "#3a78c2"
DOWN_COLOR = "#e0703a"
ALPHA_COLOR = "#c0392b"
#: Sample colours of stacked yields (M. Petroff's 10-colour accessible sequence).
SAMPLE_COLORS = ("#3f90da", "#ffa90e", "#bd1f01", "#94a4a2", "#832db6", "#a96b59", "#e76300",
                 "#b9ac70", "#717581", "#92dadd")

LABEL_SIZE = 13
TICK_SIZE = 11
LEGEND_SIZE = 10
TEXT_SIZE = 10

#: Formats :func:`save` writes, by file suffix.
SAVE_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}

_MISSING = object()


# --------------------------------------------------------------------------------------
# matplotlib access
# --------------------------------------------------------------------------------------


def _has_display() -> bool:
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _pyplot():
    """Import pyplot, choosing Agg first when nothing chose a backend and there is no display.

    A backend chosen by the user (``matplotlib.use``, ``MPLBACKEND``, an rc file, Jupyter's
    inline backend, an already imported pyplot) is left alone.
    """
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(
            f"nextstat.viz needs matplotlib ({exc}); pip install 'nextstat[plot]'"
        ) from exc

    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
        if getter is not None:
            chosen = getter()
        else:  # matplotlib < 3.8
            from matplotlib import rcsetup

            chosen = dict.__getitem__(matplotlib.rcParams, "backend")
            if chosen is getattr(rcsetup, "_auto_backend_sentinel", None):
                chosen = None
        if chosen is None and not _has_display():
            matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _new_axes(ax, figsize):
    if ax is not None:
        return ax
    plt = _pyplot()
    _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def _style_axes(ax, xlabel=None, ylabel=None, *, grid=True):
    if xlabel is not None:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    if ylabel is not None:
        ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE, direction="in", which="both", top=False, right=True)
    ax.minorticks_on()
    if grid:
        ax.grid(True, which="major", color="0.85", linewidth=0.6, zorder=0)
        ax.set_axisbelow(True)


def _auto_minor():
    from matplotlib.ticker import AutoMinorLocator

    return AutoMinorLocator()


def _legend(ax, order=None, **kw):
    """Axes legend; ``order`` lists label prefixes to put first, in that order."""
    if order is not None and "handles" not in kw:
        handles, labels = ax.get_legend_handles_labels()

        def rank(label):  # position of the longest matching prefix
            hits = [(len(p), i) for i, p in enumerate(order) if label.startswith(p)]
            return max(hits)[1] if hits else len(order)

        pairs = sorted(zip(handles, labels, strict=True), key=lambda hl: rank(hl[1]))
        kw["handles"], kw["labels"] = [h for h, _ in pairs], [lb for _, lb in pairs]
    kw.setdefault("fontsize", LEGEND_SIZE)
    kw.setdefault("frameon", True)
    kw.setdefault("framealpha", 0.9)
    kw.setdefault("edgecolor", "0.8")
    return ax.legend(**kw)


# --------------------------------------------------------------------------------------
# reading results and their dicts alike
# --------------------------------------------------------------------------------------


class _View:
    """Read fields of a result object or of its ``to_dict()`` output, by any of several names."""

    def __init__(self, obj, what: str):
        if obj is None:
            raise InvalidArgumentType(f"expected {what}, got None")
        self.obj = obj
        self.what = what
        self._dict = obj if isinstance(obj, Mapping) else None
        self._lazy_dict = None

    def _as_dict(self):
        if self._dict is not None:
            return self._dict
        if self._lazy_dict is None:
            to_dict = getattr(self.obj, "to_dict", None)
            self._lazy_dict = to_dict() if callable(to_dict) else {}
        return self._lazy_dict

    def get(self, *names, default=_MISSING):
        for name in names:
            if self._dict is None:
                try:
                    val = getattr(self.obj, name)
                except AttributeError:
                    val = None
                if val is not None and not (callable(val) and not isinstance(val, np.ndarray)):
                    return val
            val = self._as_dict().get(name)
            if val is not None:
                return val
        if default is _MISSING:
            raise InvalidArgumentType(
                f"expected {self.what}: {type(self.obj).__name__} has no field "
                + " / ".join(repr(n) for n in names)
            )
        return default

    def has(self, *names) -> bool:
        return self.get(*names, default=None) is not None

    def sub(self, *names):
        """A nested result (e.g. the CLs curve inside an upper-limit result), or None."""
        val = self.get(*names, default=None)
        return None if val is None else _View(val, self.what)


def _arr(x, ndim=1) -> np.ndarray:
    """Float array; ``None`` (JSON's NaN) becomes NaN."""
    a = np.array(x, dtype=float)
    if a.ndim != ndim:
        raise InvalidArgumentType(f"expected a {ndim}-d array, got shape {a.shape}")
    return a


def _float(x) -> float:
    return math.nan if x is None else float(x)


def _records(obj, what: str, list_keys, name_keys=("names", "parameter_names", "parameters")):
    """A list of per-parameter records from a result, its dict, a list, or parallel arrays."""
    if isinstance(obj, Sequence) and not isinstance(obj, str | bytes):
        return [_View(r, what) for r in obj]
    view = _View(obj, what)
    for key in list_keys:
        val = view.get(key, default=None)
        if isinstance(val, Sequence) and not isinstance(val, str) and len(val) and not isinstance(
            val[0], int | float | str | type(None)
        ):
            return [_View(r, what) for r in val]
    # Parallel columns, e.g. RankingResult.to_columns(): {"names": [...], "pull": [...], ...}.
    cols_src = view._as_dict()
    for nk in name_keys:
        names = cols_src.get(nk)
        if not isinstance(names, Sequence) or not names or not isinstance(names[0], str):
            continue
        cols = {k: v for k, v in cols_src.items()
                if isinstance(v, Sequence | np.ndarray) and not isinstance(v, str)
                and len(v) == len(names)}
        return [_View({**{k: v[i] for k, v in cols.items()}, "name": name}, what)
                for i, name in enumerate(names)]
    raise InvalidArgumentType(f"expected {what}: found no per-parameter entries")


def _poi_label(name) -> str:
    if not name or name == "mu":
        return "μ (signal strength)"
    return str(name)


def _fmt(x: float) -> str:
    if not np.isfinite(x):
        return "n/a"
    return f"{x:.3g}" if abs(x) < 100 else f"{x:.4g}"


# --------------------------------------------------------------------------------------
# limits
# --------------------------------------------------------------------------------------


def _crossing(mu: np.ndarray, cls: np.ndarray, alpha: float) -> float:
    """First ``mu`` where ``cls`` falls to ``alpha`` (linear in log CLs), NaN if it never does."""
    ok = np.isfinite(cls) & np.isfinite(mu)
    mu, cls = mu[ok], cls[ok]
    below = np.flatnonzero(cls <= alpha)
    if below.size == 0:
        return math.nan
    i = int(below[0])
    if i == 0:
        return float(mu[0])
    y0, y1 = math.log(max(cls[i - 1], 1e-300)), math.log(max(cls[i], 1e-300))
    t = (math.log(alpha) - y0) / (y1 - y0) if y1 != y0 else 0.0
    return float(mu[i - 1] + t * (mu[i] - mu[i - 1]))


def _cls_exp_matrix(val, n: int) -> np.ndarray:
    exp = _arr(val, ndim=2)
    if exp.shape == (n, 5) and n != 5:
        exp = exp.T
    if exp.shape != (5, n):
        raise InvalidArgumentType(f"cls_exp must have shape (5, {n}), got {exp.shape}")
    # Rows in NSIGMA_ORDER (2, 1, 0, -1, -2) are ascending in CLs; sort to be safe.
    return np.sort(exp, axis=0)


_LIMIT_ORDER = ("Observed", "Expected", "Expected ±1σ", "Expected ±2σ", "μ = 1")


def _limit_curve(obj):
    """``(mu, cls_obs, cls_exp[5, n], alpha, obs_limit, exp_limits[5], poi_name)``."""
    if isinstance(obj, Sequence) and not isinstance(obj, str) and len(obj) and _View(
        obj[0], "a HypotestResult"
    ).has("mu_test"):
        views = sorted((_View(r, "a HypotestResult") for r in obj),
                       key=lambda v: float(v.get("mu_test")))
        mu = _arr([v.get("mu_test") for v in views])
        obs = _arr([_float(v.get("cls", default=None)) for v in views])
        exp = np.sort(_arr([v.get("cls_exp") for v in views], ndim=2).T, axis=0)
        alpha, obs_lim, exp_lims, poi, sparse = 0.05, math.nan, None, None, False
    else:
        top = _View(obj, "a ClsCurve or UpperLimitResult")
        sparse = False
        curve = top if top.has("mu_values", "mu") else top.sub("curve", "cls_curve", "scan")
        if curve is None:
            points = top.get("points", default=None)
            if not points:
                raise InvalidArgumentType(
                    f"expected a ClsCurve or UpperLimitResult: {type(obj).__name__} has no "
                    "'mu_values', 'points' or nested 'curve'"
                )
            # UpperLimitResult: the CLs points its limit search evaluated.
            sparse = True
            pts = [_View(p, "a CLs point") for p in points]
            curve = _View({
                "mu_values": [p.get("mu", "mu_test") for p in pts],
                "cls_obs": [_float(p.get("cls_obs", "cls", default=None)) for p in pts],
                "cls_exp": np.array([p.get("cls_exp") for p in pts], dtype=float).T,
            }, "a CLs curve")
        mu = _arr(curve.get("mu_values", "mu"))
        obs = _arr(curve.get("cls_obs", "cls"))
        exp = _cls_exp_matrix(curve.get("cls_exp"), mu.size)
        alpha = _float(top.get("alpha", default=None) or curve.get("alpha", default=0.05))
        obs_lim = _float(top.get("obs_limit", default=None) or curve.get("obs_limit",
                                                                         default=None))
        exp_lims = top.get("exp_limits", default=None)
        if exp_lims is None:
            exp_lims = curve.get("exp_limits", default=None)
        poi = top.get("poi_name", default=None) or curve.get("poi_name", default=None)
    order = np.argsort(mu, kind="stable")
    mu, obs, exp = mu[order], obs[order], exp[:, order]
    if not np.isfinite(obs_lim):
        obs_lim = _crossing(mu, obs, alpha)
    if exp_lims is None:
        exp_lims = [_crossing(mu, row, alpha) for row in exp]
    exp_lims = np.sort(_arr(exp_lims))
    return mu, obs, exp, alpha, obs_lim, exp_lims, poi, sparse


def plot_brazil(cls_curve, ax=None, *, poi_name=None, logy=False, show_limits=True,
                title=None, figsize=(6.4, 4.8)):
    """CLs versus the POI: observed, expected median, ±1σ/±2σ bands, ``alpha`` line, limits.

    Parameters
    ----------
    cls_curve : ClsCurve, UpperLimitResult, their ``to_dict()``, or a list of HypotestResult
        Needs ``mu_values``, ``cls_obs`` and ``cls_exp`` (5 rows, ascending CLs), or the
        ``points`` an :class:`UpperLimitResult` evaluated (``{"mu", "cls_obs", "cls_exp"}``:
        the root finder's points, sparser than a ``cls_curve`` grid); ``alpha``,
        ``obs_limit`` and ``exp_limits`` are used when present, else interpolated.
    ax : matplotlib Axes, optional
    poi_name : str, optional
        x-axis label (default from the result, else "μ (signal strength)").
    logy : bool
        Logarithmic CLs axis.
    show_limits : bool
        Vertical lines at the observed and expected-median limits (values in the legend).

    Returns
    -------
    matplotlib.axes.Axes
    """
    mu, obs, exp, alpha, obs_lim, exp_lims, poi, sparse = _limit_curve(cls_curve)
    ax = _new_axes(ax, figsize)
    ax.fill_between(mu, exp[0], exp[4], color=YELLOW, lw=0, label="Expected ±2σ", zorder=1)
    ax.fill_between(mu, exp[1], exp[3], color=GREEN, lw=0, label="Expected ±1σ", zorder=2)
    exp_label = "Expected CLs"
    obs_label = "Observed CLs"
    if show_limits:
        exp_label += f" (μ < {_fmt(exp_lims[2])})"
        obs_label += f" (μ < {_fmt(obs_lim)})"
    ax.plot(mu, exp[2], color="black", ls="--", lw=1.5, label=exp_label, zorder=3)
    ax.plot(mu, obs, color="black", ls="-", lw=1.8, marker="o", ms=3.5, label=obs_label,
            zorder=4)
    cl = f"{100 * (1 - alpha):.3g}% CL"
    ax.axhline(alpha, color=ALPHA_COLOR, lw=1.2, zorder=3)
    lo, hi = float(np.nanmin(mu)), float(np.nanmax(mu))
    if sparse:  # a limit search's points reach far out: stop a bit past the largest limit
        reach = np.nanmax(np.concatenate([[obs_lim], exp_lims]))
        if np.isfinite(reach):
            hi = min(hi, lo + 1.4 * (reach - lo)) if reach > lo else hi
    ax.set_xlim(lo, hi)
    if logy:
        ax.set_yscale("log")
        finite = np.concatenate([obs, exp.ravel()])
        finite = finite[np.isfinite(finite) & (finite > 0)]
        ymin = max(min(float(finite.min()) if finite.size else alpha, alpha) / 3, alpha * 1e-3)
        ax.set_ylim(ymin, 1.5)
    else:
        ax.set_ylim(0.0, 1.05)
    ax.annotate(cl + f" (CLs = {alpha:g})", xy=(1.0, alpha), xycoords=("axes fraction", "data"),
                xytext=(-4, 3), textcoords="offset points", ha="right", va="bottom",
                color=ALPHA_COLOR, fontsize=TEXT_SIZE)
    if show_limits:
        if np.isfinite(obs_lim):
            ax.axvline(obs_lim, color="black", lw=1.0, ls=":", zorder=3)
        if np.isfinite(exp_lims[2]):
            ax.axvline(exp_lims[2], color="0.35", lw=1.0, ls="-.", zorder=3)
    _style_axes(ax, _poi_label(poi_name or poi), "CLs")
    _legend(ax, order=_LIMIT_ORDER, loc="lower left" if logy else "upper right")
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return ax


def _limit_pair(res):
    v = _View(res, "an UpperLimitResult")
    if v.has("obs_limit", "exp_limits"):
        obs = _float(v.get("obs_limit", default=None))
        exp = v.get("exp_limits", default=None)
        exp = np.full(5, np.nan) if exp is None else np.sort(_arr(exp))
        return obs, exp
    _, _, _, _, obs, exp, _, _ = _limit_curve(res)
    return obs, exp


def plot_limits(results, ax=None, *, x=None, labels=None, xlabel=None, ylabel=None,
                logy=False, cl=0.95, figsize=None):
    """Summary of several upper limits: observed markers and expected ±1σ/±2σ bands.

    Parameters
    ----------
    results : sequence or mapping of UpperLimitResult (or dicts with ``obs_limit``,
        ``exp_limits``)
        A mapping's keys are the x values (numbers, e.g. masses) or the labels (strings).
    x : sequence of float, optional
        Numeric positions (e.g. mass points): a limit-versus-x plot with continuous bands.
    labels : sequence of str, optional
        Names of categorical entries (e.g. workspaces): one row per entry, limits on the x
        axis. Default when ``x`` is not given: "0", "1", ....
    xlabel, ylabel : str, optional
    logy : bool
        Log scale on the limit axis.
    cl : float
        Confidence level quoted in the default axis label.

    Returns
    -------
    matplotlib.axes.Axes
    """
    if isinstance(results, Mapping) and not _View(results, "").has("obs_limit", "exp_limits"):
        keys = list(results)
        results = [results[k] for k in keys]
        if all(isinstance(k, int | float) and not isinstance(k, bool) for k in keys):
            x = keys if x is None else x
        elif labels is None:
            labels = [str(k) for k in keys]
    results = list(results)
    if not results:
        raise InvalidArgumentType("plot_limits needs at least one result")
    pairs = [_limit_pair(r) for r in results]
    obs = np.array([p[0] for p in pairs])
    exp = np.array([p[1] for p in pairs]).T  # (5, n), ascending
    limit_label = f"{100 * cl:.3g}% CL upper limit on μ"
    if x is not None:
        xs = _arr(x)
        if xs.size != len(results):
            raise InvalidArgumentType(f"{xs.size} x values for {len(results)} results")
        order = np.argsort(xs)
        xs, obs, exp = xs[order], obs[order], exp[:, order]
        ax = _new_axes(ax, figsize or (6.4, 4.8))
        ax.fill_between(xs, exp[0], exp[4], color=YELLOW, lw=0, label="Expected ±2σ", zorder=1)
        ax.fill_between(xs, exp[1], exp[3], color=GREEN, lw=0, label="Expected ±1σ", zorder=2)
        ax.plot(xs, exp[2], color="black", ls="--", lw=1.5, label="Expected", zorder=3)
        ax.plot(xs, obs, color="black", lw=1.8, marker="o", ms=5, label="Observed", zorder=4,
                clip_on=False)
        ax.axhline(1.0, color=ALPHA_COLOR, lw=1.0, ls=":", zorder=2, label="μ = 1")
        if logy:
            ax.set_yscale("log")
        else:
            ax.set_ylim(0, None)
        ax.set_xlim(xs.min(), xs.max())
        _style_axes(ax, xlabel or "Model point", ylabel or limit_label)
        _legend(ax, order=_LIMIT_ORDER, loc="best")
        return ax
    n = len(results)
    labels = [str(i) for i in range(n)] if labels is None else [str(s) for s in labels]
    if len(labels) != n:
        raise InvalidArgumentType(f"{len(labels)} labels for {n} results")
    ax = _new_axes(ax, figsize or (6.4, max(2.4, 1.3 + 0.55 * n)))
    ys = np.arange(n)[::-1].astype(float)
    h2, h1 = 0.7, 0.7
    ax.barh(ys, exp[4] - exp[0], left=exp[0], height=h2, color=YELLOW, lw=0,
            label="Expected ±2σ", zorder=1)
    ax.barh(ys, exp[3] - exp[1], left=exp[1], height=h1, color=GREEN, lw=0,
            label="Expected ±1σ", zorder=2)
    for i, y in enumerate(ys):
        ax.plot([exp[2, i]] * 2, [y - h1 / 2, y + h1 / 2], color="black", ls="--", lw=1.5,
                zorder=3, label="Expected" if i == 0 else None)
    ax.plot(obs, ys, ls="none", marker="o", ms=7, color="black", label="Observed", zorder=4)
    ax.axvline(1.0, color=ALPHA_COLOR, lw=1.0, ls=":", zorder=2, label="μ = 1")
    ax.set_yticks(ys, labels)
    ax.set_ylim(-0.6, n - 0.4)
    if logy:
        ax.set_xscale("log")
    else:
        ax.set_xlim(0, None)
    _style_axes(ax, xlabel or limit_label, ylabel, grid=False)
    ax.tick_params(axis="y", which="minor", left=False, right=False)
    ax.grid(True, axis="x", color="0.85", lw=0.6)
    _legend(ax, order=_LIMIT_ORDER, loc="lower center", ncol=3, bbox_to_anchor=(0.5, 1.0),
            frameon=False, handlelength=1.6, columnspacing=1.2)
    return ax


# --------------------------------------------------------------------------------------
# profile likelihood
# --------------------------------------------------------------------------------------


def _profile_interval(mu, y, mu_hat, level):
    """Where ``y`` crosses ``level`` left and right of ``mu_hat`` (NaN where it does not)."""
    ok = np.isfinite(y)
    mu, y = mu[ok], y[ok]
    out = []
    for side in (mu <= mu_hat, mu >= mu_hat):
        m, v = mu[side], y[side]
        if side[0]:  # left: walk down from mu_hat
            m, v = m[::-1], v[::-1]
        idx = np.flatnonzero(v >= level)
        if idx.size == 0 or idx[0] == 0:
            out.append(math.nan)
            continue
        i = int(idx[0])
        t = (level - v[i - 1]) / (v[i] - v[i - 1])
        out.append(float(m[i - 1] + t * (m[i] - m[i - 1])))
    return out


def _ci_values(ci):
    if isinstance(ci, tuple | list) and len(ci) == 2:
        return float(ci[0]), float(ci[1]), "Interval"
    v = _View(ci, "a ProfileCI")
    lo, hi = _float(v.get("lower")), _float(v.get("upper"))
    level = v.get("level", default=None)
    text = f"{100 * float(level):.3g}% CL" if level is not None else "Interval"
    return lo, hi, text


def _ci_threshold(ci) -> float:
    if isinstance(ci, tuple | list):
        return 1.0
    return _float(_View(ci, "a ProfileCI").get("threshold", default=1.0))


def plot_profile(scan, ax=None, *, poi_name=None, ci=None, show_q_mu=False, show_interval=True,
                 title=None, figsize=(6.4, 4.8)):
    """Profile likelihood scan: ``-2 Δln L`` versus the POI.

    Parameters
    ----------
    scan : ProfileScanResult or its ``to_dict()``
        Needs ``mu_values`` and ``twice_delta_nll``; uses ``mu_hat``, ``poi_name`` and
        ``q_mu`` when present.
    show_q_mu : bool
        Also draw the one-sided ``q_μ`` (when the scan has it).
    ci : ProfileCI, its ``to_dict()`` or (lower, upper), optional
        Interval to shade (e.g. from :func:`nextstat.profile_ci`), up to its threshold.
    show_interval : bool
        Without ``ci``: shade the 68% CL interval read off the scan (where
        ``-2 Δln L < 1``; a side that stays below 1 ends at the scan edge).

    Returns
    -------
    matplotlib.axes.Axes
    """
    v = _View(scan, "a ProfileScanResult")
    mu = _arr(v.get("mu_values", "mu"))
    y = _arr(v.get("twice_delta_nll", "delta_twice_nll", "t_mu"))
    order = np.argsort(mu, kind="stable")
    mu, y = mu[order], y[order]
    mu_hat = _float(v.get("mu_hat", default=None))
    if not np.isfinite(mu_hat):
        mu_hat = float(mu[np.nanargmin(y)])
    poi = poi_name or v.get("poi_name", default=None)
    ax = _new_axes(ax, figsize)
    ax.plot(mu, y, color="black", lw=2.0, label="Profile likelihood", zorder=4)
    if show_q_mu and v.has("q_mu"):
        q = _arr(v.get("q_mu"))[order]
        ax.plot(mu, q, color=UP_COLOR, lw=1.6, ls="--", label="q$_\\mu$ (one-sided)", zorder=5)
    ymax = max(float(np.nanmax(y)) * 1.05, 5.0)
    ax.set_ylim(0.0, ymax)
    ax.set_xlim(float(mu.min()), float(mu.max()))
    for level, text in ((1.0, "68% CL"), (3.84, "95% CL")):
        ax.axhline(level, color="0.45", lw=1.0, ls="--", zorder=2)
        ax.annotate(text, xy=(0.0, level), xycoords=("axes fraction", "data"), xytext=(4, 2),
                    textcoords="offset points", ha="left", va="bottom", color="0.3",
                    fontsize=TEXT_SIZE)
    hat = "μ̂" if not poi or poi == "mu" else f"{poi} (best fit)"
    ax.axvline(mu_hat, color=ALPHA_COLOR, lw=1.4, ls=":", zorder=3,
               label=f"{hat} = {_fmt(mu_hat)}")
    if ci is not None:
        lo, hi, text = _ci_values(ci)
        show_interval = True
    elif show_interval:
        lo, hi = _profile_interval(mu, y, mu_hat, 1.0)
        text = "68% CL"
        # A side that never crosses 1 inside the scan ends at the scan edge (e.g. a bound).
        if np.isfinite(lo) or np.isfinite(hi):
            lo = lo if np.isfinite(lo) else float(mu[0])
            hi = hi if np.isfinite(hi) else float(mu[-1])
    if show_interval and np.isfinite(lo) and np.isfinite(hi):
        level = 1.0 if ci is None else _ci_threshold(ci)
        ax.fill_between([lo, hi], 0.0, level, color=GREEN, alpha=0.35, lw=0, zorder=1,
                        label=f"{text}: [{_fmt(lo)}, {_fmt(hi)}]")
    _style_axes(ax, _poi_label(poi), r"$-2\,\Delta\ln L$")
    _legend(ax, loc="upper center")
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return ax


# --------------------------------------------------------------------------------------
# pulls and ranking
# --------------------------------------------------------------------------------------

_ENTRY_KEYS = ("entries", "parameters", "ranking", "pulls", "items")


def _pull_data(rec):
    pull = _float(rec.get("pull", default=None))
    con = _float(rec.get("constraint", "postfit_constraint", "pull_err", "pull_error",
                         default=None))
    return pull, con


def _pull_axes(ax, names, pulls, cons, *, pull_range):
    n = len(names)
    ys = np.arange(n)[::-1].astype(float)
    ax.axvspan(-2, 2, color=YELLOW, alpha=0.35, lw=0, zorder=0)
    ax.axvspan(-1, 1, color=GREEN, alpha=0.30, lw=0, zorder=0)
    ax.axvline(0.0, color="0.4", lw=0.8, zorder=1)
    ok = np.isfinite(pulls)
    err = np.where(np.isfinite(cons), cons, 0.0)
    ax.errorbar(pulls[ok], ys[ok], xerr=err[ok], fmt="o", color="black", ms=5, lw=1.4,
                capsize=0, zorder=5, label="Pull")
    return ys


def plot_pulls(pulls, ax=None, *, pull_range=3.0, title=None, figsize=None):
    """Nuisance-parameter pulls ``(θ̂ − θ0)/σ0`` with error bars ``σ̂/σ0``.

    Parameters
    ----------
    pulls : PullsResult, RankingResult, their ``to_dict()``, or a list of entries
        Entries with ``name``, ``pull`` and ``constraint``; entries without a pull (free
        parameters) are left out.
    pull_range : float
        Half-width of the x axis (widened if a pull ± its error does not fit).

    Returns
    -------
    matplotlib.axes.Axes
    """
    recs = _records(pulls, "a PullsResult", _ENTRY_KEYS)
    names, ps, cs = [], [], []
    for r in recs:
        p, c = _pull_data(r)
        if np.isfinite(p):
            names.append(str(r.get("name", "parameter")))
            ps.append(p)
            cs.append(c)
    if not names:
        raise InvalidArgumentType("no entry with a finite pull to plot")
    pulls_a, cons_a = np.array(ps), np.array(cs)
    n = len(names)
    ax = _new_axes(ax, figsize or (6.4, max(2.6, 1.2 + 0.32 * n)))
    ys = _pull_axes(ax, names, pulls_a, cons_a, pull_range=pull_range)
    reach = float(np.nanmax(np.abs(pulls_a) + np.nan_to_num(cons_a)))
    half = max(pull_range, math.ceil(reach * 1.1 * 2) / 2)
    ax.set_xlim(-half, half)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(ys, names)
    _style_axes(ax, r"$(\hat\theta - \theta_0)/\Delta\theta$", None, grid=False)
    ax.tick_params(axis="y", which="minor", left=False, right=False)
    ax.tick_params(axis="y", labelsize=TICK_SIZE - 1 if n > 25 else TICK_SIZE)
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return ax


def _impacts(rec):
    def pick(*names):
        return _float(rec.get(*names, default=None))

    return (
        pick("prefit_up", "impact_prefit_up", "prefit_impact_up", "pre_up"),
        pick("prefit_down", "impact_prefit_down", "prefit_impact_down", "pre_down"),
        pick("postfit_up", "impact_postfit_up", "postfit_impact_up", "post_up", "up"),
        pick("postfit_down", "impact_postfit_down", "postfit_impact_down", "post_down", "down"),
    )


def plot_ranking(ranking, ax=None, *, top=20, poi_name=None, pull_range=2.0, title=None,
                 figsize=None):
    """Impact plot: POI shifts from each nuisance parameter (top axis) and its pull (bottom).

    Parameters are sorted by the larger of their |post-fit impacts| (largest first, on top)
    and cut at ``top``. Post-fit impacts are filled bars, pre-fit impacts hatched outlines
    behind them; blue is the ``θ̂ + Δθ`` variation, orange the ``θ̂ − Δθ`` one. Pulls and
    constraints are black points with error bars, read on the bottom axis (a twin axes
    sharing y, ``ax.pulls_axes``, grey bands at pulls of ±1 and ±2).

    Parameters
    ----------
    ranking : RankingResult, its ``to_dict()``, or a list of entries
        Entries with ``name``, ``pull``, ``constraint`` and pre/post-fit up/down impacts.
    top : int or None
        Number of parameters shown (None: all).
    pull_range : float
        Half-width of the pull axis (widened when a pull does not fit).

    Returns
    -------
    matplotlib.axes.Axes
        The impact axes (bar containers in ``ax.containers``: prefit up, prefit down,
        postfit up, postfit down, one bar per parameter each).
    """
    recs = _records(ranking, "a RankingResult", _ENTRY_KEYS)
    rows = []
    for r in recs:
        imp = _impacts(r)
        p, c = _pull_data(r)
        rows.append((str(r.get("name", "parameter")), imp, p, c))
    if not rows:
        raise InvalidArgumentType("the ranking has no entries")
    rows.sort(key=lambda row: -np.nanmax(np.abs(np.nan_to_num(row[1][2:4])) + 0.0))
    if top is not None:
        rows = rows[: int(top)]
    n = len(rows)
    names = [r[0] for r in rows]
    imp = np.array([r[1] for r in rows])  # (n, 4)
    pulls = np.array([r[2] for r in rows])
    cons = np.array([r[3] for r in rows])
    created = ax is None
    ax = _new_axes(ax, figsize or (7.0, max(3.6, 2.4 + 0.36 * n)))
    ys = np.arange(n)[::-1].astype(float)
    hw = 0.7
    pre_kw = dict(height=hw, fill=False, lw=1.0, zorder=1)  # behind the post-fit bars
    ax.barh(ys, np.nan_to_num(imp[:, 0]), edgecolor=UP_COLOR, hatch="////",
            label="Pre-fit impact, θ = θ̂ + Δθ", **pre_kw)
    ax.barh(ys, np.nan_to_num(imp[:, 1]), edgecolor=DOWN_COLOR, hatch="\\\\\\\\",
            label="Pre-fit impact, θ = θ̂ − Δθ", **pre_kw)
    ax.barh(ys, np.nan_to_num(imp[:, 2]), height=hw, color=UP_COLOR, lw=0,
            zorder=2, label="Post-fit impact, θ = θ̂ + Δθ")
    ax.barh(ys, np.nan_to_num(imp[:, 3]), height=hw, color=DOWN_COLOR, lw=0,
            zorder=2, label="Post-fit impact, θ = θ̂ − Δθ")
    reach = float(np.nanmax(np.abs(np.nan_to_num(imp)))) if imp.size else 0.0
    reach = reach * 1.15 if reach > 0 else 1.0
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-0.7, n - 0.3)
    ax.set_yticks(ys, names)
    ax.axvline(0.0, color="0.4", lw=0.8, zorder=1)
    poi = poi_name or _View(ranking, "").get("poi_name", default=None) if not isinstance(
        ranking, Sequence) else poi_name
    sym = "μ" if not poi or poi == "mu" else str(poi)
    pax = ax.twiny()  # pull axis (bottom), sharing y; drawn behind the impact axes
    pax.set_zorder(ax.get_zorder() - 1)
    ax.patch.set_visible(False)
    pax.axvspan(-2, 2, color="0.94", lw=0, zorder=0)
    pax.axvspan(-1, 1, color="0.86", lw=0, zorder=0)
    ok = np.isfinite(pulls)
    half = pull_range
    if ok.any():
        reach_p = float(np.nanmax(np.abs(pulls[ok]) + np.nan_to_num(cons[ok])))
        half = max(pull_range, math.ceil(reach_p * 1.1 * 2) / 2)
    pax.set_xlim(-half, half)
    pax.xaxis.set_label_position("bottom")
    pax.xaxis.tick_bottom()
    pax.set_xlabel(r"$(\hat\theta - \theta_0)/\Delta\theta$", fontsize=LABEL_SIZE)
    pax.tick_params(axis="x", labelsize=TICK_SIZE, direction="in", which="both", top=False,
                    bottom=True, labelbottom=True, labeltop=False)
    pax.xaxis.set_minor_locator(_auto_minor())

    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.set_xlabel(f"Δ{sym} (impact on {sym})", fontsize=LABEL_SIZE)
    ax.tick_params(axis="x", which="both", direction="in", top=True, bottom=False,
                   labeltop=True, labelbottom=False, labelsize=TICK_SIZE)
    ax.xaxis.set_minor_locator(_auto_minor())
    ax.tick_params(axis="y", which="both", left=False, right=False,
                   labelsize=TICK_SIZE - 1 if n > 25 else TICK_SIZE)
    # Pulls drawn on the impact axes (in front of the bars), mapped to impact coordinates.
    scale = reach / half
    err = np.where(np.isfinite(cons), cons, 0.0)
    ax.errorbar(pulls[ok] * scale, ys[ok], xerr=err[ok] * scale, fmt="o", color="black", ms=5,
                lw=1.4, capsize=0, zorder=6, label="Pull")
    handles, labels = ax.get_legend_handles_labels()
    leg_kw = dict(handles=handles, labels=labels, ncol=2, fontsize=LEGEND_SIZE - 1,
                  handlelength=1.8, columnspacing=1.0)
    if created:
        ax.figure.legend(loc="outside upper center", frameon=False, **leg_kw)
    else:  # above the impact axis' tick labels and label
        from matplotlib.transforms import offset_copy

        fig = ax.figure
        fig.draw_without_rendering()
        deco = ax.xaxis.get_tightbbox()
        above = (deco.y1 - ax.get_window_extent().y1) * 72.0 / fig.dpi if deco else 0.0
        _legend(ax, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
                bbox_transform=offset_copy(ax.transAxes, fig=fig, y=max(above, 0.0) + 2.0,
                                           units="points"), **leg_kw)
    ax.pulls_axes = pax
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return ax


# --------------------------------------------------------------------------------------
# correlation matrix
# --------------------------------------------------------------------------------------


def _corr_data(corr):
    if isinstance(corr, tuple) and len(corr) == 2:
        names, mat = corr
        return list(names), _arr(mat, ndim=2)
    if isinstance(corr, np.ndarray) or (
        isinstance(corr, list) and corr and isinstance(corr[0], list | np.ndarray)
    ):
        mat = _arr(corr, ndim=2)
        return [f"p{i}" for i in range(mat.shape[0])], mat
    v = _View(corr, "a correlation matrix")
    mat = _arr(v.get("correlation", "matrix", "corr", "correlation_matrix"), ndim=2)
    names = v.get("parameter_names", "names", "labels", "parameters",
                  default=[f"p{i}" for i in range(mat.shape[0])])
    return [str(s) for s in names], mat


def plot_corr(corr, ax=None, *, threshold=None, annotate=None, drop_fixed=True, title=None,
              figsize=None, cmap="RdBu_r"):
    """Correlation-matrix heatmap, colour scale fixed at [-1, 1].

    Parameters
    ----------
    corr : correlation_matrix artifact, FitResult, their dicts, ``(names, matrix)`` or a
        square array
        Dicts/objects need ``correlation`` (or ``matrix``) and ``parameter_names`` (or
        ``names``).
    threshold : float, optional
        Keep only parameters with some |off-diagonal correlation| >= ``threshold``.
    annotate : bool, optional
        Write the values in the cells (default: when at most 20 parameters are shown).
    drop_fixed : bool
        Leave out parameters whose row is all zero (fixed parameters of a fit).

    Returns
    -------
    matplotlib.axes.Axes
        With one ``AxesImage`` (``clim == (-1, 1)``) and a colour bar.
    """
    names, mat = _corr_data(corr)
    if mat.shape[0] != mat.shape[1] or mat.shape[0] != len(names):
        raise InvalidArgumentType(
            f"correlation matrix of shape {mat.shape} with {len(names)} names"
        )
    keep = np.ones(len(names), dtype=bool)
    if drop_fixed:
        keep &= np.any(np.nan_to_num(mat) != 0, axis=1)
    if threshold is not None:
        off = np.abs(np.nan_to_num(mat)) - np.eye(len(names)) * np.abs(np.nan_to_num(np.diag(mat)))
        keep &= off.max(axis=1) >= float(threshold)
    idx = np.flatnonzero(keep)
    if idx.size == 0:
        raise InvalidParameters(
            "no parameter left to plot" + (f" at threshold {threshold}" if threshold else "")
        )
    names = [names[i] for i in idx]
    mat = mat[np.ix_(idx, idx)]
    n = len(names)
    side = min(max(4.5, 1.8 + 0.45 * n), 16.0)
    ax = _new_axes(ax, figsize or (side + 1.2, side))
    im = ax.imshow(mat, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest", aspect="equal")
    cbar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    cbar.set_label("Correlation", fontsize=LABEL_SIZE)
    cbar.ax.tick_params(labelsize=TICK_SIZE)
    font = TICK_SIZE if n <= 15 else max(5, int(TICK_SIZE - (n - 15) / 5))
    ax.set_xticks(np.arange(n), names, rotation=60, ha="right", rotation_mode="anchor",
                  fontsize=font)
    ax.set_yticks(np.arange(n), names, fontsize=font)
    ax.tick_params(which="both", length=0)
    ax.set_xticks(np.arange(n + 1) - 0.5, minor=True)
    ax.set_yticks(np.arange(n + 1) - 0.5, minor=True)
    ax.grid(which="minor", color="white", linewidth=1.0)
    ax.grid(which="major", visible=False)
    if annotate is None:
        annotate = n <= 20
    if annotate:
        fig = ax.figure
        fig.draw_without_rendering()  # lay out, to size the numbers to the cells
        bbox = ax.get_window_extent()
        cell_pt = min(bbox.width, bbox.height) * 72.0 / fig.dpi / n
        cell = max(5.0, min(10.0, cell_pt / 3.4))
        for i in range(n):
            for j in range(n):
                val = mat[i, j]
                if not np.isfinite(val):
                    continue
                ax.text(j, i, f"{round(val, 2) + 0.0:.2f}", ha="center", va="center", fontsize=cell,
                        color="white" if abs(val) > 0.6 else "black")
    if title:
        ax.set_title(title, fontsize=LABEL_SIZE)
    return ax


# --------------------------------------------------------------------------------------
# yields
# --------------------------------------------------------------------------------------


def _poisson_errors(n: np.ndarray):
    """Garwood 68% central interval: ``(n - lo, hi - n)``."""
    from scipy.stats import chi2

    n = np.asarray(n, dtype=float)
    lo = np.where(n > 0, chi2.ppf(0.15865525, 2 * np.maximum(n, 1e-12)) / 2, 0.0)
    hi = chi2.ppf(0.84134475, 2 * (n + 1)) / 2
    return n - lo, hi - n


def _channel_view(yields, channel, stage):
    """``(channel name, channel view, stage label)`` of a YieldsResult (or a pre/post pair)."""
    top = _View(yields, "a YieldsResult")
    if not top.has("channels"):
        # {"prefit": YieldsResult, "postfit": YieldsResult}: pick one.
        stages = [k for k in ("postfit", "prefit") if top.has(k)]
        if not stages:
            raise InvalidArgumentType("expected a YieldsResult: no 'channels'")
        if stage is None:
            stage = stages[0]
        if stage not in stages:
            raise InvalidParameters(f"no {stage!r} yields; have {stages}")
        top = top.sub(stage)
    own = top.get("stage", default=None)
    if stage is not None and isinstance(own, str) and own and own != stage:
        raise InvalidParameters(f"these are {own} yields, not {stage}")
    stage = own if isinstance(own, str) and own else stage
    chans = top.get("channels")
    if isinstance(chans, Mapping):
        names = [str(k) for k in chans]
        views = [_View(c, "a channel of a YieldsResult") for c in chans.values()]
    else:
        views = [_View(c, "a channel of a YieldsResult") for c in chans]
        names = [str(c.get("name", "channel_name", "channel")) for c in views]
    if channel is None:
        channel = names[0]
    if channel not in names:
        raise InvalidParameters(f"no channel named {channel!r}; channels are {names}")
    all_samples = set()
    for v in views:
        smp = v.get("samples", default=())
        if isinstance(smp, Mapping):
            all_samples.update(str(k) for k in smp)
        else:
            all_samples.update(str(_View(x, "").get("name", "sample_name", default=""))
                               for x in smp)
    return channel, views[names.index(channel)], stage, sorted(all_samples)


def plot_yields(yields, channel=None, ax=None, *, stage=None, bin_edges=None,
                xlabel=None, logy=False, ratio_range=None, signal=None, title=None,
                figsize=(6.4, 6.0), colors=None):
    """Stacked expected yields with data, hatched model uncertainty, and a data/model ratio.

    Parameters
    ----------
    yields : YieldsResult, its ``to_dict()``, or ``{"prefit": ..., "postfit": ...}`` of them
        Per channel: ``samples`` (``name``, per-bin ``y``), ``total``, ``total_error`` and
        ``data``; the result's ``stage`` labels the plot.
    channel : str, optional
        Channel to draw (default: the first).
    ax : pair of Axes (main, ratio), optional
        Default: a new figure with a 3:1 split.
    stage : {"postfit", "prefit"}, optional
        Which of a pre/post pair to draw (default post-fit); for a single result, a check.
    bin_edges : sequence of float, optional
        Bin edges (default: bin index, edges at 0, 1, ..., n).
    xlabel : str, optional
        x-axis label (default "Bin", or "Observable" with ``bin_edges``).
    logy : bool
        Log scale on the event axis.
    ratio_range : (float, float), optional
        y range of the ratio panel (default: 1 ± 0.5, widened to show every data point).
    signal : str or list of str, optional
        Samples stacked on top (default: names containing "signal"); the other samples are
        stacked from the smallest total up.
    colors : dict or list of colours, optional
        ``{sample: colour}``, or colours from the bottom of the stack up (default: a fixed
        colour per sample name, the same in every channel of the result).

    Returns
    -------
    matplotlib.figure.Figure
        Main axes first in ``fig.axes``, ratio axes second.
    """
    channel, ch, stage, all_samples = _channel_view(yields, channel, stage)
    samples = ch.get("samples")
    if isinstance(samples, Mapping):
        sample_items = [(str(k), v) for k, v in samples.items()]
    else:
        sample_items = []
        for s in samples:
            sv = _View(s, "a sample of a YieldsResult")
            sample_items.append((str(sv.get("name", "sample_name")),
                                 sv.get("y", "yields", "values")))
    sample_items = [(name, _arr(vals)) for name, vals in sample_items]
    if not sample_items:
        raise InvalidArgumentType(f"channel {channel!r} has no samples")
    nb = sample_items[0][1].size
    total = ch.get("total", default=None)
    total = sum(v for _, v in sample_items) if total is None else _arr(total)
    unc = ch.get("total_error", "total_uncertainty", default=None)
    unc = np.full(nb, np.nan) if unc is None else _arr(unc)
    data = ch.get("data", default=None)
    data = None if data is None else _arr(data)
    edges = np.arange(nb + 1, dtype=float) if bin_edges is None else _arr(bin_edges)
    if edges.size != nb + 1:
        raise InvalidArgumentType(f"{edges.size} bin edges for {nb} bins")
    centers = 0.5 * (edges[1:] + edges[:-1])

    if ax is None:
        plt = _pyplot()
        fig = plt.figure(figsize=figsize)
        gs = fig.add_gridspec(2, 1, height_ratios=(3, 1), hspace=0.0, left=0.14, right=0.97,
                              top=0.97, bottom=0.1)
        main = fig.add_subplot(gs[0])
        rax = fig.add_subplot(gs[1], sharex=main)
    else:
        main, rax = ax
        fig = main.figure
    # Stack: backgrounds from the smallest total (bottom) up, signal sample(s) on top.
    if signal is None:
        signal = [name for name, _ in sample_items if "signal" in name.lower()]
    elif isinstance(signal, str):
        signal = [signal]
    signal = set(signal)
    order = sorted(range(len(sample_items)), key=lambda i: (
        sample_items[i][0] in signal, float(np.nansum(sample_items[i][1]))))
    if isinstance(colors, Mapping):
        color_of = dict(colors)
    elif colors is not None:
        color_of = {sample_items[i][0]: colors[k % len(colors)] for k, i in enumerate(order)}
    else:  # the same colour for a sample in every channel of the result
        color_of = {name: SAMPLE_COLORS[k % len(SAMPLE_COLORS)]
                    for k, name in enumerate(all_samples)}
    bottom = np.zeros(nb)
    for k, i in enumerate(order):
        name, vals = sample_items[i]
        vals = np.nan_to_num(vals)
        main.stairs(bottom + vals, edges, baseline=bottom, fill=True,
                    color=color_of.get(name, SAMPLE_COLORS[k % len(SAMPLE_COLORS)]), label=name,
                    zorder=2)
        bottom = bottom + vals
    main.stairs(total, edges, color="black", lw=1.2, zorder=3)
    has_unc = np.any(np.isfinite(unc))
    if has_unc:
        u = np.nan_to_num(unc)
        main.stairs(total + u, edges, baseline=total - u, fill=True, facecolor="none",
                    edgecolor="0.25", hatch="////", lw=0, zorder=4, label="Uncertainty")
    if data is not None:
        lo, hi = _poisson_errors(data)
        main.errorbar(centers, data, yerr=(lo, hi), fmt="o", color="black", ms=5, lw=1.3,
                      zorder=5, label="Data")
    stage_name = {"postfit": "Post-fit", "prefit": "Pre-fit"}.get(stage or "", "")
    ymax = float(np.nanmax(np.concatenate([total + np.nan_to_num(unc),
                                           data + hi if data is not None else total])))
    if logy:
        main.set_yscale("log")
        pos = total[total > 0]
        main.set_ylim(max(float(pos.min()) / 5 if pos.size else 0.1, 1e-3), ymax * 30)
    else:
        main.set_ylim(0.0, ymax * 1.45)
    _style_axes(main, None, "Events / bin", grid=False)
    main.tick_params(labelbottom=False, top=True)
    main.set_xlim(edges[0], edges[-1])
    handles, labels = main.get_legend_handles_labels()
    # Legend: data first, then samples top of the stack first, then the uncertainty.
    want = (["Data"] if data is not None else []) + [sample_items[i][0] for i in order[::-1]]
    want += ["Uncertainty"] if has_unc else []
    lookup = dict(zip(labels, handles, strict=False))
    _legend(main, handles=[lookup[w] for w in want if w in lookup],
            labels=[w for w in want if w in lookup], loc="upper right",
            ncol=2 if len(want) > 4 else 1)
    heading = " ".join(s for s in (channel, stage_name) if s)
    main.text(0.03, 0.95, heading, transform=main.transAxes, ha="left", va="top",
              fontsize=LABEL_SIZE, fontweight="bold")
    if title:
        main.set_title(title, fontsize=LABEL_SIZE)

    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(total > 0, np.nan_to_num(unc) / total, np.nan)
        if has_unc:
            rax.stairs(1 + rel, edges, baseline=1 - rel, fill=True, facecolor="none",
                       edgecolor="0.25", hatch="////", lw=0, zorder=2)
        rax.axhline(1.0, color="black", lw=1.0, zorder=3)
        if data is not None:
            ratio = np.where(total > 0, data / total, np.nan)
            rax.errorbar(centers, ratio, yerr=(lo / total, hi / total), fmt="o", color="black",
                         ms=5, lw=1.3, zorder=4)
    if ratio_range is None:
        dev = [0.0]
        if data is not None:
            dev.append(float(np.nanmax(np.abs(ratio - 1.0), initial=0.0)))
        if has_unc:
            dev.append(float(np.nanmax(rel, initial=0.0)))
        half = max(0.5, math.ceil(max(dev) * 1.25 / 0.25) * 0.25)
        ratio_range = (max(0.0, 1.0 - half), 1.0 + half)
    rax.set_ylim(*ratio_range)
    from matplotlib.ticker import MaxNLocator

    rax.yaxis.set_major_locator(MaxNLocator(nbins=4, prune="upper"))
    rax.set_xlim(edges[0], edges[-1])
    _style_axes(rax, xlabel or ("Bin" if bin_edges is None else "Observable"), "Data / Model",
                grid=False)
    rax.yaxis.label.set_size(LABEL_SIZE - 2)
    rax.tick_params(top=True)
    if bin_edges is None:
        rax.set_xticks(centers, [str(i) for i in range(nb)] if nb <= 30 else None)
        rax.tick_params(axis="x", which="minor", bottom=False, top=False)
        main.tick_params(axis="x", which="minor", bottom=False, top=False)
    fig.align_ylabels([main, rax])
    return fig


# --------------------------------------------------------------------------------------
# saving
# --------------------------------------------------------------------------------------


def save(fig_or_ax, path, *, dpi=150, **kwargs):
    """Write a figure (or the figure of an Axes) to ``path``; PNG, PDF or SVG by suffix.

    Parameters
    ----------
    fig_or_ax : Figure or Axes
    path : str or Path
        ``.png``, ``.pdf`` or ``.svg``.
    dpi : int
        Resolution of raster output (default 150).
    kwargs
        Passed on to :meth:`matplotlib.figure.Figure.savefig`.

    Returns
    -------
    pathlib.Path
    """
    path = Path(path)
    fmt = SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InvalidParameters(
            f"cannot tell the format of {str(path)!r}: use one of {sorted(SAVE_FORMATS)}"
        )
    fig = fig_or_ax if hasattr(fig_or_ax, "savefig") else getattr(fig_or_ax, "figure", None)
    while fig is not None and not hasattr(fig, "savefig"):  # a SubFigure: go to the root
        fig = getattr(fig, "figure", None)
    if fig is None:
        raise InvalidArgumentType(f"expected a matplotlib Figure or Axes, got {type(fig_or_ax)}")
    kwargs.setdefault("bbox_inches", "tight")
    if fmt == "png":
        kwargs.setdefault("metadata", {"Software": None})  # byte-stable images
    fig.savefig(path, format=fmt, dpi=dpi, **kwargs)
    return path
