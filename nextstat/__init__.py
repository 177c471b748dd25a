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
from .io.arrow import from_arrow, from_parquet, to_arrow
from .io.histfactory_xml import from_xml, to_xml
from .io.hs3 import from_hs3, to_hs3
from .io.load import load
from .io.pyhf import from_pyhf
from .model import simplemodels
from .model.histfactory import HistFactoryModel
from .model.workspace_ops import (
    PatchSet,
    apply_patch,
    combine,
    digest,
    list_patches,
    prune,
    rename,
    sorted_workspace,
)
from .ntuple.builder import NtupleWorkspaceBuilder
from .sysinfo import openmp_enabled, show_versions

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
