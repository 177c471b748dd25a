"""pyhf JSON workspaces -> :class:`~nextstat.model.histfactory.HistFactoryModel`."""

from __future__ import annotations

from .._gc import gc_paused
from ..model.compile import compile_workspace
from ..model.histfactory import HistFactoryModel
from ..model.interpolation import resolve_codes
from ..model.workspace import load_workspace_spec, select_measurement

__all__ = ["from_pyhf", "build_model"]


@gc_paused()
def from_pyhf(
    spec,
    *,
    measurement: str | None = None,
    interpolation="pyhf",
    unknown_parameters: str = "error",
) -> HistFactoryModel:
    """Build a model from a pyhf workspace.

    Parameters
    ----------
    spec : str, os.PathLike or dict
        Path to a workspace JSON file, the JSON text itself, or the workspace dict.
    measurement : str, optional
        Name of the measurement to use (default: the first).
    interpolation : {"pyhf", "root"} or mapping
        ``"pyhf"`` (default): normsys code4, histosys code4p (pyhf's defaults).
        ``"root"``: normsys code1, histosys code0 (classic ROOT HistFactory).
        A mapping such as ``{"normsys": "1"}`` overrides the ``"pyhf"`` preset per type;
        codes 0, 1, 2, 4 and 4p are available for both types.
    unknown_parameters : {"error", "warn", "ignore"}
        A measurement parameter entry that names no model parameter is an error by
        default; pyhf ignores such entries silently (``"ignore"``).

    Returns
    -------
    HistFactoryModel

    Raises
    ------
    nextstat.errors.InvalidWorkspace
        Malformed JSON or a schema violation; the message names the JSON path.
    nextstat.errors.InvalidModel
        A valid workspace that does not define a usable model.

    Examples
    --------
    >>> import nextstat
    >>> from nextstat.examples import example_path
    >>> model = nextstat.from_pyhf(example_path())
    >>> model.poi_name
    'mu'
    """
    if unknown_parameters not in ("error", "warn", "ignore"):
        raise ValueError("unknown_parameters must be 'error', 'warn' or 'ignore'")
    return build_model(load_workspace_spec(spec), measurement, interpolation,
                       unknown_parameters)


def build_model(ws: dict, measurement: str | None = None, interpolation="pyhf",
                unknown_parameters: str = "error") -> HistFactoryModel:
    """The model of a workspace that :func:`validate_workspace` accepted (not copied: the
    model keeps ``ws`` as its spec, so it must not be changed afterwards)."""
    meas = select_measurement(ws, measurement)
    codes = resolve_codes(interpolation)
    layout = compile_workspace(ws, meas, codes, unknown_parameters)
    return HistFactoryModel(layout, ws, meas["name"])
