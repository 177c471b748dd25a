"""Plots of nextstat results (needs matplotlib: ``pip install nextstat[plot]``).

Every renderer takes a result object *or* its ``to_dict()`` output (e.g. JSON written by the
CLI and read back), draws on ``ax`` (a new figure when ``ax`` is None) and returns the
matplotlib ``Axes`` (a ``Figure`` for multi-panel plots). See ``docs/plots.md``.

Importing :mod:`nextstat.viz` is cheap: matplotlib is imported by the first renderer call,
not here (and ``import nextstat`` never imports this module).
"""

from __future__ import annotations

from .plots import (
    plot_brazil,
    plot_corr,
    plot_limits,
    plot_profile,
    plot_pulls,
    plot_ranking,
    plot_yields,
    save,
)
from .toys import plot_toys

__all__ = [
    "plot_brazil",
    "plot_corr",
    "plot_limits",
    "plot_profile",
    "plot_pulls",
    "plot_ranking",
    "plot_toys",
    "plot_yields",
    "save",
]
