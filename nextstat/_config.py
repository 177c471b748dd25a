"""Process-wide settings: the evaluation mode."""

from __future__ import annotations

from .errors import InvalidParameters

_MODES = ("fast", "parity")
_state: dict = {"mode": "fast", "threads": None}


def set_eval_mode(mode: str) -> None:
    """Select the default evaluation mode.

    Parameters
    ----------
    mode : {"fast", "parity"}
        ``"fast"`` (default): plain summation. ``"parity"``: Kahan-Babuska compensated sums in
        a fixed order, deterministic and independent of the thread count; use it to compare
        with pyhf at the 1e-8 level on 2*NLL.
    """
    if mode not in _MODES:
        raise InvalidParameters(f"eval mode must be one of {_MODES}, got {mode!r}")
    _state["mode"] = mode


def get_eval_mode() -> str:
    """The default evaluation mode, ``"fast"`` or ``"parity"``."""
    return _state["mode"]


def use_kahan(mode: str | None) -> bool:
    """Whether a call with ``mode`` (``None`` = the global default) uses compensated sums."""
    if mode is None:
        return _state["mode"] == "parity"
    if mode not in _MODES:
        raise InvalidParameters(f"mode must be one of {_MODES} or None, got {mode!r}")
    return mode == "parity"


def set_threads(n: int | None) -> None:
    """Default number of threads for work split over independent fits (ranking, batches).

    Parameters
    ----------
    n : int or None
        A positive count, ``0`` or ``None`` for all cores (``os.cpu_count()``).
    """
    if n is not None and (not isinstance(n, int) or n < 0):
        raise InvalidParameters(f"threads must be a non-negative int or None, got {n!r}")
    _state["threads"] = n or None


def get_threads() -> int:
    """The thread count :func:`set_threads` chose (all cores by default)."""
    import os

    return _state["threads"] or os.cpu_count() or 1
