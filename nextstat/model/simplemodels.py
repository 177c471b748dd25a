"""One-channel signal + background workspaces, as ``pyhf.simplemodels`` builds them.

``pyhf.simplemodels`` (0.7.6) returns a *model* (a ``{"channels": [...]}`` spec without
observations or measurements). Here the same channel is wrapped in a complete workspace,
so that it can be saved, combined or patched like any other:

* the channel, sample and modifier names and the modifier data are pyhf's exactly
  (``singlechannel`` / ``uncorr_bkguncrt`` for the uncorrelated model,
  ``single_channel`` / ``correlated_bkg_uncertainty`` for the correlated one);
* one measurement, ``"measurement"`` (the name ``pyhf.Workspace.build`` uses), with POI
  ``mu`` and no parameter configurations, so every parameter keeps pyhf's defaults;
* observations: pyhf has none; by default they are the background yields (the
  background-only expectation, the usual data set for expected limits); pass
  ``observations=`` for real counts. (The Rust toolkit used signal + background.)

With the same data, ``nextstat.from_pyhf(uncorrelated_background(...))`` and the pyhf
model give the same likelihood.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nextstat.errors import InvalidWorkspace
from nextstat.model.workspace import validate_workspace

__all__ = ["correlated_background", "uncorrelated_background"]

#: Measurement name of the simple-model workspaces (``pyhf.Workspace.build``'s default).
MEASUREMENT = "measurement"


def _floats(values: Sequence[float], name: str, nbins: int | None = None) -> list[float]:
    """A 1-D list of finite floats, optionally of a given length."""
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InvalidWorkspace(f"{name} must be a sequence of numbers, got {values!r}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidWorkspace(f"{name} must be a non-empty 1-D sequence, got shape {arr.shape}")
    if nbins is not None and arr.size != nbins:
        raise InvalidWorkspace(f"{name} has {arr.size} bins, signal has {nbins}")
    if not np.all(np.isfinite(arr)):
        raise InvalidWorkspace(f"{name} must be finite, got {arr.tolist()}")
    return arr.tolist()


def _workspace(channel: str, signal: list, background: dict, observations) -> dict:
    """Wrap pyhf's simple-model channel in a workspace and validate it."""
    nbins = len(signal)
    obs = background["data"] if observations is None else _floats(
        observations, "observations", nbins
    )
    ws = {
        "channels": [
            {
                "name": channel,
                "samples": [
                    {
                        "name": "signal",
                        "data": signal,
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    background,
                ],
            }
        ],
        "observations": [{"name": channel, "data": list(obs)}],
        "measurements": [{"name": MEASUREMENT, "config": {"poi": "mu", "parameters": []}}],
        "version": "1.0.0",
    }
    validate_workspace(ws)
    return ws


def uncorrelated_background(
    signal: Sequence[float],
    bkg: Sequence[float],
    bkg_uncertainty: Sequence[float],
    observations: Sequence[float] | None = None,
) -> dict:
    """Signal with a normfactor ``mu`` over a background with a per-bin ``shapesys``.

    Parameters
    ----------
    signal, bkg : sequence of float
        Signal and background yields per bin.
    bkg_uncertainty : sequence of float
        Absolute, uncorrelated background uncertainty per bin (modifier
        ``uncorr_bkguncrt``, type ``shapesys``).
    observations : sequence of float, optional
        Observed counts; default ``bkg``.

    Returns
    -------
    dict
        A validated workspace with channel ``singlechannel``.

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        Inputs of different lengths, non-numbers or non-finite values.

    Examples
    --------
    >>> ws = uncorrelated_background([12.0, 11.0], [50.0, 52.0], [3.0, 7.0])
    >>> ws["observations"][0]["data"]
    [50.0, 52.0]
    """
    sig = _floats(signal, "signal")
    background = {
        "name": "background",
        "data": _floats(bkg, "bkg", len(sig)),
        "modifiers": [
            {
                "name": "uncorr_bkguncrt",
                "type": "shapesys",
                "data": _floats(bkg_uncertainty, "bkg_uncertainty", len(sig)),
            }
        ],
    }
    return _workspace("singlechannel", sig, background, observations)


def correlated_background(
    signal: Sequence[float],
    bkg: Sequence[float],
    bkg_up: Sequence[float],
    bkg_down: Sequence[float],
    observations: Sequence[float] | None = None,
) -> dict:
    """Signal with a normfactor ``mu`` over a background with a correlated ``histosys``.

    Parameters
    ----------
    signal, bkg : sequence of float
        Signal and background yields per bin.
    bkg_up, bkg_down : sequence of float
        Background yields at alpha = +1 and alpha = -1 (modifier
        ``correlated_bkg_uncertainty``, type ``histosys``).
    observations : sequence of float, optional
        Observed counts; default ``bkg``.

    Returns
    -------
    dict
        A validated workspace with channel ``single_channel``.

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        Inputs of different lengths, non-numbers or non-finite values.

    Examples
    --------
    >>> ws = correlated_background([12.0, 11.0], [50.0, 52.0], [45.0, 57.0], [55.0, 47.0])
    >>> ws["channels"][0]["samples"][1]["modifiers"][0]["type"]
    'histosys'
    """
    sig = _floats(signal, "signal")
    background = {
        "name": "background",
        "data": _floats(bkg, "bkg", len(sig)),
        "modifiers": [
            {
                "name": "correlated_bkg_uncertainty",
                "type": "histosys",
                "data": {
                    "hi_data": _floats(bkg_up, "bkg_up", len(sig)),
                    "lo_data": _floats(bkg_down, "bkg_down", len(sig)),
                },
            }
        ],
    }
    return _workspace("single_channel", sig, background, observations)
