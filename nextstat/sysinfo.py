"""Build and environment report (``nextstat.show_versions()``)."""

from __future__ import annotations

import platform
import sys

from ._ext import buildinfo
from ._version import __version__

__all__ = ["openmp_enabled", "show_versions", "versions"]


def openmp_enabled() -> bool:
    """Whether the compiled extensions were built with OpenMP (else they run serially)."""
    return buildinfo.openmp_enabled()


def versions() -> dict:
    """Versions of nextstat, Python, the build and the optional dependencies."""
    from importlib import metadata  # ~20 ms: only when asked

    info = {
        "nextstat": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "openmp": openmp_enabled(),
        "openmp_max_threads": buildinfo.max_threads(),
    }
    for dist in ("numpy", "scipy", "click", "matplotlib", "uproot", "pyarrow", "cupy", "torch"):
        try:
            info[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            info[dist] = None
    return info


def show_versions() -> None:
    """Print :func:`versions` one per line."""
    for key, val in versions().items():
        print(f"{key:>20}: {val if val is not None else 'not installed'}")
