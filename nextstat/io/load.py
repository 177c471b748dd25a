"""One entry point for every workspace format: :func:`load` detects the format.

Detection, in order:

* a path ending in ``.xml``: a HistFactory ``combination.xml``
  (:func:`nextstat.io.histfactory_xml.from_xml`);
* otherwise the JSON document (a dict, JSON text, or a ``.json``/``.json.gz`` file) is a
  pyhf workspace when it has ``channels``, and an HS3 document when it has
  ``distributions`` (:func:`nextstat.io.hs3.from_hs3`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .._gc import gc_paused
from ..errors import InvalidArgumentType, InvalidWorkspace
from ..model.histfactory import HistFactoryModel
from ..model.workspace import parse_json_text, read_json_file, validate_workspace

__all__ = ["load", "detect_format", "read_json_document"]


def read_json_document(source) -> tuple[dict, str]:
    """Parse ``source`` (dict, JSON text or path to a JSON file) into ``(document, label)``."""
    if isinstance(source, dict):
        return source, "<dict>"
    if isinstance(source, str) and source.lstrip().startswith("{"):
        doc, label = parse_json_text(source, "JSON text"), "<JSON text>"
    elif isinstance(source, (str, os.PathLike)):
        doc, label = read_json_file(os.fspath(source)), os.fspath(source)
    else:
        raise InvalidArgumentType(
            f"a workspace must be a path, JSON text or dict, not {type(source).__name__}"
        )
    if not isinstance(doc, dict):
        raise InvalidWorkspace(f"{label}: expected a JSON object, found a {type(doc).__name__}")
    return doc, label


def detect_format(doc: dict) -> str:
    """``"pyhf"`` or ``"hs3"`` for a parsed JSON document; an error names what was found."""
    if "channels" in doc:
        return "pyhf"
    if "distributions" in doc:
        return "hs3"
    keys = ", ".join(sorted(map(str, doc))[:8]) or "none"
    raise InvalidWorkspace(
        "not a pyhf workspace (no 'channels') nor an HS3 document (no 'distributions'); "
        f"top-level keys: {keys}"
    )


@gc_paused()
def load(source, *, measurement: str | None = None, interpolation=None,
         **options) -> HistFactoryModel:
    """Build a model from a pyhf workspace, an HS3 document or a HistFactory XML setup.

    Parameters
    ----------
    source : str, os.PathLike or dict
        A path (``.json``, ``.json.gz``, ``.xml``), JSON text, or a parsed document.
    measurement : str, optional
        pyhf and XML: the measurement to use (default: the first). For HS3 use
        ``analysis=`` in ``options``.
    interpolation : str or mapping, optional
        Interpolation codes (see :func:`nextstat.from_pyhf`); ``None`` takes the format's
        default: ``"pyhf"`` for pyhf JSON, the codes ROOT 6.40 uses for HS3 and XML.
    **options
        Passed to the format's reader (e.g. ``analysis=``, ``parameter_point=`` for HS3).

    Returns
    -------
    HistFactoryModel
    """
    if isinstance(source, (str, os.PathLike)) and Path(os.fspath(source)).suffix == ".xml":
        from .histfactory_xml import from_xml

        kwargs = dict(options, measurement=measurement)
        if interpolation is not None:
            kwargs["interpolation"] = interpolation
        return from_xml(source, **kwargs)
    doc, label = read_json_document(source)
    if detect_format(doc) == "hs3":
        from .hs3 import from_hs3

        kwargs = dict(options)
        if interpolation is not None:
            kwargs["interpolation"] = interpolation
        return from_hs3(doc, **kwargs)
    from .pyhf import build_model, from_pyhf

    interpolation = "pyhf" if interpolation is None else interpolation
    if label == "<dict>":  # the caller's dict: from_pyhf validates a copy
        return from_pyhf(doc, measurement=measurement, interpolation=interpolation, **options)
    # parsed here, so nobody else holds it: validate it in place instead of copying it
    validate_workspace(doc)
    return build_model(doc, measurement, interpolation, **options)
