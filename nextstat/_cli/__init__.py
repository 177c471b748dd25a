"""Command groups that live outside :mod:`nextstat.cli`.

Every module in this package defines ``register(cli)``, which adds its commands to
the main click group; :func:`register_all` calls each in name order. Modules import
only click (and :mod:`nextstat.cli` helpers) at top level, so ``nextstat --help``
stays fast.
"""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["register_all"]


def register_all(cli) -> None:
    """Add the commands of every ``nextstat._cli.<module>`` to ``cli``."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(cli)
