"""Inference: fits, test statistics, limits, scans."""

from .limits import ClsCurve as ClsCurve
from .limits import UpperLimitResult as UpperLimitResult
from .limits import cls_curve as cls_curve
from .limits import upper_limit as upper_limit
from .scan import ProfileCI as ProfileCI
from .scan import ProfileScanResult as ProfileScanResult
from .scan import profile_ci as profile_ci
from .scan import profile_scan as profile_scan
