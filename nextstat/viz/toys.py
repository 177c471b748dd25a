"""Test-statistic distributions of a toy run, with the asymptotic densities overlaid."""

from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidArgumentType
from .plots import _arr, _legend, _new_axes, _style_axes, _View

__all__ = ["plot_toys", "asymptotic_densities"]

SB_COLOR = "#3f90da"
B_COLOR = "#e76300"


def _phi_pdf(x):
    return np.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def asymptotic_densities(q, q_asimov: float, test_stat: str = "qtilde"):
    """Asymptotic densities of ``q_mu`` / ``q~_mu`` for ``q > 0`` under s+b and b-only.

    With ``t(q)`` pyhf's asymptotic test statistic (``sqrt(q) - sqrt(q_A)``, or for
    ``q~`` above ``q_A``: ``(q - q_A) / (2 sqrt(q_A))``) the tail probabilities are
    ``CLs+b = Phi(-(t + sqrt(q_A)))`` and ``CLb = Phi(-t)`` (Cowan et al., EPJC 71 (2011)
    1554); the densities are their derivatives, ``phi(t + sqrt(q_A)) t'(q)`` and
    ``phi(t) t'(q)``. The remaining probability sits at ``q = 0``: 1/2 under s+b and
    ``1 - Phi(sqrt(q_A))`` under b-only (``CLb`` at ``q -> 0+`` is ``Phi(sqrt(q_A))``).

    Returns
    -------
    (pdf_sb, pdf_b, p0_sb, p0_b) : arrays over ``q`` and the two masses at zero
    """
    q = np.asarray(q, dtype=float)
    sq_a = math.sqrt(max(q_asimov, 0.0))
    sq = np.sqrt(np.maximum(q, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = sq - sq_a
        dt = 0.5 / sq
        if test_stat == "qtilde" and sq_a > 0.0:
            above = sq > sq_a
            t = np.where(above, (q - q_asimov) / (2.0 * sq_a), t)
            dt = np.where(above, 0.5 / sq_a, dt)
    pdf_sb = _phi_pdf(t + sq_a) * dt
    pdf_b = _phi_pdf(t) * dt
    p0_b = 0.5 * math.erfc(sq_a / math.sqrt(2.0))
    return pdf_sb, pdf_b, 0.5, p0_b


def plot_toys(result, ax=None, *, bins=40, asymptotic=True, logy=True, title=None,
              figsize=(6.4, 4.8)):
    """Histograms of the toy test statistics under s+b and b-only, the observed value, and
    the asymptotic densities.

    Parameters
    ----------
    result : ToyHypotestResult or its ``to_dict(include_samples=True)``
        Needs ``q_sb``, ``q_b``, ``q_obs``, ``mu_test``, ``test_stat``; ``q_asimov`` for
        the asymptotic curves (skipped when absent).
    bins : int
        Histogram bins over ``[0, max q]`` (toys at ``q = 0`` fall in the first bin).
    asymptotic : bool
        Overlay the asymptotic densities (see :func:`asymptotic_densities`).
    logy : bool
        Logarithmic density axis (the tails are what CLs is made of).

    Returns
    -------
    matplotlib.axes.Axes
    """
    v = _View(result, "a toy result with per-toy test statistics")
    q_sb = _arr(v.get("q_sb"))
    q_b = _arr(v.get("q_b"))
    q_sb, q_b = q_sb[np.isfinite(q_sb)], q_b[np.isfinite(q_b)]
    if q_sb.size == 0 or q_b.size == 0:
        raise InvalidArgumentType("the toy result has no successful toys to draw")
    q_obs = float(v.get("q_obs"))
    mu = float(v.get("mu_test"))
    stat = str(v.get("test_stat", default="qtilde"))
    hi = float(max(q_sb.max(), q_b.max(), q_obs)) * 1.05 or 1.0
    edges = np.linspace(0.0, hi, int(bins) + 1)
    ax = _new_axes(ax, figsize)
    sym = r"\tilde{q}_{\mu}" if stat == "qtilde" else r"q_{\mu}"
    ax.hist(q_sb, bins=edges, density=True, histtype="stepfilled", alpha=0.35,
            color=SB_COLOR, label=f"s+b toys (μ = {mu:g}), {q_sb.size}")
    ax.hist(q_b, bins=edges, density=True, histtype="step", lw=1.6, color=B_COLOR,
            label=f"b-only toys, {q_b.size}")
    q_a = v.get("q_asimov", default=None)
    if asymptotic and q_a is not None and math.isfinite(float(q_a)):
        grid = np.linspace(edges[1] * 0.5, hi, 400)
        pdf_sb, pdf_b, _, _ = asymptotic_densities(grid, float(q_a), stat)
        ax.plot(grid, pdf_sb, color=SB_COLOR, lw=1.4, ls="--", label="asymptotic, s+b")
        ax.plot(grid, pdf_b, color=B_COLOR, lw=1.4, ls="--", label="asymptotic, b-only")
    ax.axvline(q_obs, color="black", lw=1.6, label=f"observed ${sym}$ = {q_obs:.3g}")
    cls = v.get("cls", default=None)
    legend_title = None
    if cls is not None and math.isfinite(float(cls)):
        legend_title = f"CLs = {float(cls):.3g} (toys)"
        cls_a = v.get("cls_asymptotic", default=None)
        if cls_a is not None and math.isfinite(float(cls_a)):
            legend_title += f", {float(cls_a):.3g} (asymptotic)"
    if logy:
        ax.set_yscale("log")
        # One toy in a bin is the smallest density the histograms can show.
        floor = 1.0 / (max(q_sb.size, q_b.size) * (edges[1] - edges[0]))
        ax.set_ylim(bottom=0.3 * floor)
    ax.set_xlim(0.0, hi)
    _style_axes(ax, f"${sym}$ (test statistic at μ = {mu:g})", "probability density")
    _legend(ax, loc="upper right", title=legend_title, title_fontsize=10)
    if title:
        ax.set_title(title)
    return ax
