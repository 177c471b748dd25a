"""Plain-JSON conversion shared by the result classes' ``to_dict``."""

from __future__ import annotations

import math

import numpy as np


def to_json_data(x):
    """Plain Python data (lists, dicts, floats, ints) with NaN/inf as None (strict JSON)."""
    if isinstance(x, np.ndarray):
        x = x.tolist()
    if isinstance(x, list | tuple):
        return [to_json_data(v) for v in x]
    if isinstance(x, dict):
        return {k: to_json_data(v) for k, v in x.items()}
    if isinstance(x, float | np.floating):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.bool_ | np.integer):
        return x.item()
    return x
