"""Ntuples to histograms to workspaces: expressions, the builder, TRExFitter configs.

* :mod:`nextstat.ntuple.expr`: the selection / weight expression language
  (:func:`compile_expr`, :class:`Expression`).
* :mod:`nextstat.ntuple.builder`: :class:`NtupleWorkspaceBuilder`, which fills
  histograms from ROOT TTrees in one streaming pass per file and assembles a pyhf
  workspace.
* :mod:`nextstat.ntuple.config`: the YAML/JSON form of the builder (``nextstat build``).
* :mod:`nextstat.ntuple.trex`: TRExFitter ``.config`` files (``ReadFrom: NTUP`` / ``HIST``).

Submodules are imported lazily so that ``import nextstat.ntuple`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Expression",
    "compile_expr",
    "eval_expr",
    "NtupleWorkspaceBuilder",
    "build_from_config",
    "load_config",
    "trex_to_workspace",
    "parse_trex_config",
]

_WHERE = {
    "Expression": "expr",
    "compile_expr": "expr",
    "eval_expr": "expr",
    "NtupleWorkspaceBuilder": "builder",
    "build_from_config": "config",
    "load_config": "config",
    "trex_to_workspace": "trex",
    "parse_trex_config": "trex",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'nextstat.ntuple' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
