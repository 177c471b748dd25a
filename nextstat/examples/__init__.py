"""Example workspaces bundled with nextstat.

``simple_workspace.json`` is a small two-channel pyhf workspace: a signal region
``SR`` (4 bins) and a control region ``CR`` (3 bins), samples ``signal``
(scaled by the POI ``mu``), ``ttbar`` and ``wjets``, with normsys, histosys,
staterror, shapesys and lumi modifiers and two measurements
(``NominalMeasurement`` and ``FixedLumi``). The data show a mild excess, so the
observed 95% CLs upper limit on ``mu`` is about 2.

Examples
--------
>>> from nextstat.examples import example_path
>>> example_path().name
'simple_workspace.json'
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["example_path", "list_examples"]


def list_examples() -> list[str]:
    """Names of the bundled example files, sorted.

    Returns
    -------
    list of str
        File names accepted by :func:`example_path`.
    """
    return sorted(
        entry.name
        for entry in resources.files(__name__).iterdir()
        if entry.is_file() and entry.name.endswith(".json")
    )


def example_path(name: str = "simple_workspace.json") -> Path:
    """Filesystem path of a bundled example workspace.

    Parameters
    ----------
    name : str, optional
        File name of the example, by default ``"simple_workspace.json"``.

    Returns
    -------
    pathlib.Path
        Path of the JSON file inside the installed package.

    Raises
    ------
    FileNotFoundError
        If no example of that name is bundled; the message lists those that are.
    """
    resource = resources.files(__name__).joinpath(name)
    if not resource.is_file():
        raise FileNotFoundError(
            f"no bundled example named {name!r}; available: {', '.join(list_examples())}"
        )
    return Path(str(resource))
