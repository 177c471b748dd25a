"""The nextstat exception hierarchy.

Every error raised for bad user input is a :class:`NextStatError`. Each concrete
class also subclasses the matching builtin (``ValueError`` or ``TypeError``) so
that generic ``except ValueError`` handlers keep working. Messages name the
offending place, e.g. ``channels[2].samples[0].modifiers[1]``.
"""

from __future__ import annotations

__all__ = [
    "NextStatError",
    "InvalidWorkspace",
    "InvalidModel",
    "InvalidParameters",
    "InvalidArgumentType",
    "FitError",
]


class NextStatError(Exception):
    """Base class of every error nextstat raises on purpose."""


class InvalidWorkspace(NextStatError, ValueError):
    """A workspace (JSON text or dict) is malformed or violates the schema.

    Parameters
    ----------
    message : str
        What is wrong.
    path : str, optional
        Where, as a JSON path such as ``channels[0].samples[1].data``.
    """

    def __init__(self, message: str, path: str | None = None):
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}" if path else message)


class InvalidModel(NextStatError, ValueError):
    """A workspace is well-formed but does not describe a valid model."""


class InvalidParameters(NextStatError, ValueError):
    """A parameter vector, bound, or fixed-parameter request is unusable."""


class InvalidArgumentType(NextStatError, TypeError):
    """An argument has the wrong type (e.g. a workspace that is neither path, str nor dict)."""


class FitError(NextStatError, RuntimeError):
    """A caller asked for something a fit cannot deliver (e.g. a covariance that does not exist)."""
