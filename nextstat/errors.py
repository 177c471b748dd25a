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
    "InvalidFormat",
    "InvalidConfig",
    "ExpressionError",
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


class InvalidFormat(NextStatError, ValueError):
    """An input file in a non-pyhf format (HS3, HistFactory XML, ROOT, Parquet) is unusable.

    Parameters
    ----------
    message : str
        What is wrong.
    where : str, optional
        Where: a file path, a JSON path inside an HS3 document, an XML element, a ROOT
        object path such as ``file.root:dir/hist``.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class InvalidConfig(NextStatError, ValueError):
    """A build configuration (ntuple builder YAML/JSON, TRExFitter ``.config``) is unusable.

    Parameters
    ----------
    message : str
        What is wrong.
    where : str, optional
        Where, e.g. ``config.yaml: regions[1].binning`` or ``fit.config:42 (Region "SR")``.
    """

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        self.message = message
        super().__init__(f"{where}: {message}" if where else message)


class ExpressionError(NextStatError, ValueError):
    """A selection or weight expression does not parse or cannot be evaluated.

    Parameters
    ----------
    message : str
        What is wrong.
    expression : str
        The full expression text.
    line, column : int
        1-based position of the offending token.
    """

    def __init__(self, message: str, expression: str = "", line: int = 1, column: int = 1):
        self.expression = expression
        self.line = line
        self.column = column
        self.message = message
        super().__init__(f"line {line}, column {column}: {message} in expression {expression!r}")
