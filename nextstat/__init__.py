"""nextstat: fast, pyhf-exact statistical inference for high-energy physics.

Importing this package is cheap: it loads NumPy and the compiled extensions, and nothing
else (no SciPy, matplotlib, uproot, CuPy or torch until a feature needs them).
"""

from __future__ import annotations

from . import errors
from ._config import get_eval_mode, get_threads, set_eval_mode, set_threads
from ._version import __version__
from .infer.asymptotics import HypotestResult, hypotest
from .infer.gof import GofResult, goodness_of_fit
from .infer.limits import ClsCurve, UpperLimitResult, cls_curve, upper_limit
from .infer.mle import FitResult, fit
from .infer.ranking import (
    CorrelationResult,
    PullsResult,
    RankingResult,
    correlation_matrix,
    pulls,
    ranking,
)
from .infer.scan import ProfileCI, ProfileScanResult, profile_ci, profile_scan
from .infer.significance import SignificanceResult, significance
from .infer.toys import (
    ToyFitResult,
    ToyHypotestResult,
    fit_toys,
    hypotest_toys,
    load_toys,
    merge_toys,
    save_toys,
)
from .infer.yields import YieldsResult, yields
from .io.load import load
from .io.pyhf import from_pyhf
from .model.histfactory import HistFactoryModel
from .sysinfo import openmp_enabled, show_versions

#: Names imported on first use (PEP 562): the other formats, the workspace tools and the
#: ntuple builder are not needed to load and fit a workspace, and importing them all up
#: front costs about a quarter of ``import nextstat``.
_LAZY = {
    "from_arrow": ".io.arrow",
    "from_parquet": ".io.arrow",
    "to_arrow": ".io.arrow",
    "from_xml": ".io.histfactory_xml",
    "to_xml": ".io.histfactory_xml",
    "from_hs3": ".io.hs3",
    "to_hs3": ".io.hs3",
    "PatchSet": ".model.workspace_ops",
    "apply_patch": ".model.workspace_ops",
    "combine": ".model.workspace_ops",
    "digest": ".model.workspace_ops",
    "list_patches": ".model.workspace_ops",
    "prune": ".model.workspace_ops",
    "rename": ".model.workspace_ops",
    "sorted_workspace": ".model.workspace_ops",
    "NtupleWorkspaceBuilder": ".ntuple.builder",
    "simplemodels": ".model.simplemodels",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        value = module if name == "simplemodels" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'nextstat' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = [
    "__version__",
    "errors",
    "from_pyhf",
    "load",
    "from_hs3",
    "to_hs3",
    "from_xml",
    "to_xml",
    "from_arrow",
    "from_parquet",
    "to_arrow",
    "combine",
    "prune",
    "rename",
    "sorted_workspace",
    "digest",
    "PatchSet",
    "apply_patch",
    "list_patches",
    "simplemodels",
    "NtupleWorkspaceBuilder",
    "fit",
    "hypotest",
    "HypotestResult",
    "upper_limit",
    "cls_curve",
    "profile_scan",
    "profile_ci",
    "UpperLimitResult",
    "ClsCurve",
    "ProfileScanResult",
    "ProfileCI",
    "FitResult",
    "significance",
    "SignificanceResult",
    "hypotest_toys",
    "ToyHypotestResult",
    "fit_toys",
    "ToyFitResult",
    "merge_toys",
    "save_toys",
    "load_toys",
    "goodness_of_fit",
    "GofResult",
    "ranking",
    "RankingResult",
    "pulls",
    "PullsResult",
    "correlation_matrix",
    "CorrelationResult",
    "yields",
    "YieldsResult",
    "HistFactoryModel",
    "get_eval_mode",
    "set_eval_mode",
    "get_threads",
    "set_threads",
    "openmp_enabled",
    "show_versions",
]
