"""ROOT histograms and trees into numpy, through uproot.

Two readers, both with errors that say what went wrong and where:

* :func:`read_hist` reads a one-dimensional ``TH1`` (``TH1D``, ``TH1F``, ``TH1I``, ...)
  into a frozen :class:`Hist1D`: bin contents, variances (``sumw2``), edges, and the
  under/overflow bins.
* :func:`read_tree` reads branches of a ``TTree`` (or an ``RNTuple``) into a dict of
  columns; :func:`iter_tree` yields the same dicts chunk by chunk, so a file larger than
  memory is read in constant memory.

Column types
------------
* scalar branches (``double x``, ``int n``) become 1-D numpy arrays of the branch dtype;
* fixed-size array branches (``float p[3]``, ``std::array<double,3>``) become 2-D numpy
  arrays of shape ``(n_entries, 3)``;
* jagged branches (``std::vector<double>``, ``double v[n]``) depend on ``jagged=``:

  - ``"awkward"`` (default): an :class:`awkward.Array` (``n * var * float64``), exactly what
    uproot returns; any nesting depth;
  - ``"pad"``: a 2-D numpy array padded with ``pad_value`` to the longest entry (or clipped
    to ``pad_length``) -- ``x[0]`` of an empty entry is then ``pad_value``;
  - ``"ragged"``: a :class:`Jagged` pair of numpy arrays ``(content, offsets)``, the
    layout ROOT stores, with no awkward dependency for the caller.

  ``"pad"`` and ``"ragged"`` take one level of nesting; ``vector<vector<T>>`` needs
  ``"awkward"``.

Every error is a :class:`nextstat.errors.InvalidFormat` whose ``where`` is
``file.root`` or ``file.root:dir/object``. A missing object lists the objects that are
there, with a did-you-mean suggestion.

uproot and awkward are imported inside the functions, so importing this module is cheap.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InvalidFormat

__all__ = [
    "Hist1D",
    "Jagged",
    "RootFile",
    "open_root",
    "read_hist",
    "read_tree",
    "iter_tree",
    "list_objects",
]

#: Class names accepted as trees.
TREE_CLASSES = ("TTree", "TNtuple", "TNtupleD", "ROOT::RNTuple")

#: How many candidate names an error message lists at most.
_MAX_LISTED = 25

JAGGED_MODES = ("awkward", "pad", "ragged")


# ---------------------------------------------------------------------------
# Result types
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Hist1D:
    """A one-dimensional ROOT histogram as numpy arrays.

    Attributes
    ----------
    name : str
        Object path inside the file (``dir/hist``).
    title : str
        The histogram title.
    classname : str
        ROOT class, e.g. ``"TH1D"``.
    values : numpy.ndarray
        Bin contents. ``n`` in-range bins, or ``n + 2`` with the underflow first and the
        overflow last when read with ``flow=True``.
    variances : numpy.ndarray
        Per-bin variances, same length as ``values``: ``fSumw2`` when the histogram
        stores it, otherwise ``|values|`` (ROOT's ``GetBinError`` = ``sqrt(|content|)``).
    edges : numpy.ndarray
        Bin edges: ``n + 1`` values, or ``n + 3`` with ``-inf`` / ``+inf`` at the ends when
        read with ``flow=True`` (uproot's and boost-histogram's convention).
    flow : bool
        Whether ``values`` / ``variances`` / ``edges`` include the flow bins.
    has_sumw2 : bool
        Whether the file stores ``fSumw2`` (weighted filling) for this histogram.
    underflow, overflow : float
        Content of the under/overflow bins (always filled, whatever ``flow``).
    underflow_variance, overflow_variance : float
        Their variances.
    entries : float
        ``fEntries``.
    """

    name: str
    title: str
    classname: str
    values: np.ndarray = field(repr=False)
    variances: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)
    flow: bool
    has_sumw2: bool
    underflow: float
    overflow: float
    underflow_variance: float
    overflow_variance: float
    entries: float

    @property
    def sumw2(self) -> np.ndarray:
        """Alias of :attr:`variances` (ROOT's name)."""
        return self.variances

    @property
    def errors(self) -> np.ndarray:
        """Per-bin uncertainties, ``sqrt(variances)`` (ROOT's ``GetBinError``)."""
        return np.sqrt(self.variances)

    @property
    def nbins(self) -> int:
        """Number of in-range bins."""
        return len(self.values) - (2 if self.flow else 0)

    @property
    def in_range_edges(self) -> np.ndarray:
        """The ``n + 1`` finite edges, whatever ``flow``."""
        return self.edges[1:-1] if self.flow else self.edges


@dataclass(frozen=True)
class Jagged:
    """A jagged column as ROOT stores it: flat ``content`` and ``offsets``.

    Entry ``i`` is ``content[offsets[i]:offsets[i + 1]]``; ``len(offsets) == n + 1``.
    """

    content: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> np.ndarray:
        return self.content[self.offsets[i]:self.offsets[i + 1]]

    @property
    def counts(self) -> np.ndarray:
        """Number of items in each entry."""
        return np.diff(self.offsets)

    def pad(self, length: int | None = None, value: float = 0) -> np.ndarray:
        """A 2-D array of shape ``(n, length)``: entries clipped or padded with ``value``.

        ``length`` defaults to the longest entry.
        """
        counts = self.counts
        if length is None:
            length = int(counts.max()) if len(counts) else 0
        dtype = np.result_type(self.content.dtype, np.asarray(value).dtype)
        out = np.full((len(counts), length), value, dtype=dtype)
        rows = np.repeat(np.arange(len(counts)), counts)
        cols = np.arange(len(self.content)) - np.repeat(self.offsets[:-1], counts)
        keep = cols < length
        out[rows[keep], cols[keep]] = self.content[keep]
        return out


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _corrupt(path: str, exc: BaseException, what: str = "") -> InvalidFormat:
    detail = " ".join(str(exc).split())[:300]
    where = f"{path}:{what}" if what else path
    return InvalidFormat(
        f"truncated or corrupt ROOT file ({type(exc).__name__}: {detail})", where
    )


class RootFile:
    """An open ROOT file; use :func:`open_root` (a context manager) to get one.

    Reading many histograms through one ``RootFile`` avoids reopening the file.
    """

    def __init__(self, path: str | os.PathLike):
        import uproot

        self.path = os.fspath(path)
        if not os.path.exists(self.path):
            raise InvalidFormat("ROOT file not found", self.path)
        if os.path.isdir(self.path):
            raise InvalidFormat("is a directory, not a ROOT file", self.path)
        try:
            self._file = uproot.open(self.path)
        except Exception as exc:  # uproot raises ValueError/OSError/struct errors
            if isinstance(exc, ValueError) and "not a ROOT file" in str(exc):
                raise InvalidFormat("not a ROOT file (bad magic bytes)", self.path) from None
            raise _corrupt(self.path, exc) from None
        self._check_length()

    def _check_length(self) -> None:
        """A file shorter than its header's ``fEND`` was cut off (ROOT would try recovery)."""
        end = getattr(self._file.file, "fEND", None)
        size = os.path.getsize(self.path)
        if end is not None and size < end:
            self.close()
            raise InvalidFormat(
                f"truncated ROOT file: {size} bytes, the header says {end}", self.path
            )

    # -- context manager ---------------------------------------------------
    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __enter__(self) -> RootFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- lookup ---------------------------------------------------------------
    def classnames(self) -> dict[str, str]:
        """``{object path: class name}`` for every object (latest cycles, recursive)."""
        try:
            raw = self._file.classnames(cycle=False)
        except Exception as exc:
            raise _corrupt(self.path, exc) from None
        return dict(raw)

    def _get(self, name: str, kinds: str):
        """The object ``name`` (``dir/obj``, optional ``;cycle``), or a helpful error."""
        import uproot

        key = name.strip("/")
        try:
            return self._file[key]
        except uproot.KeyInFileError:
            raise self._missing(key, kinds) from None
        except Exception as exc:
            raise _corrupt(self.path, exc, key) from None

    def _missing(self, key: str, kinds: str) -> InvalidFormat:
        names = self.classnames()
        base = key.split(";")[0]
        wanted = {
            n: c for n, c in names.items() if kinds == "any" or _kind_of(c) == kinds
        } or names
        listed = sorted(wanted)[:_MAX_LISTED]
        more = "" if len(wanted) <= _MAX_LISTED else f" (and {len(wanted) - _MAX_LISTED} more)"
        hint = _suggest(base, list(names))
        msg = "no such object"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        label = "objects" if kinds == "any" else f"{kinds}s"
        msg += f"; {label} in the file: {', '.join(listed) or '(none)'}{more}"
        return InvalidFormat(msg, f"{self.path}:{base}")

    def hist(self, name: str, *, flow: bool = False) -> Hist1D:
        """Read the 1-D histogram ``name``; see :func:`read_hist`."""
        obj = self._get(name, "histogram")
        classname = getattr(obj, "classname", type(obj).__name__)
        where = f"{self.path}:{name}"
        if not (classname.startswith("TH1") and not classname.startswith("TH1K")):
            raise InvalidFormat(
                f"is a {classname}, expected a 1-D histogram (TH1D, TH1F, TH1I, ...)", where
            )
        try:
            return _hist_from_uproot(obj, name.strip("/"), classname, flow, where)
        except InvalidFormat:
            raise
        except Exception as exc:
            raise _corrupt(self.path, exc, name) from None

    def tree(self, name: str):
        """The uproot tree object ``name`` (``TTree`` or ``RNTuple``), type-checked."""
        obj = self._get(name, "tree")
        classname = getattr(obj, "classname", type(obj).__name__)
        if classname not in TREE_CLASSES:
            raise InvalidFormat(
                f"is a {classname}, expected a tree ({', '.join(TREE_CLASSES)})",
                f"{self.path}:{name}",
            )
        return obj


def _suggest(name: str, candidates: list[str]) -> list[str]:
    """The closest candidate (difflib), else one that starts with or contains ``name``."""
    close = difflib.get_close_matches(name, candidates, n=1)
    if close:
        return close
    tail = name.rsplit("/", 1)[-1].lower()
    for test in (lambda c: c.lower().rsplit("/", 1)[-1].startswith(tail),
                 lambda c: tail in c.lower()):
        found = sorted(c for c in candidates if test(c))
        if found:
            return found[:1]
    return []


def _kind_of(classname: str) -> str:
    if classname.startswith("TH1"):
        return "histogram"
    if classname in TREE_CLASSES:
        return "tree"
    return "other"


def open_root(path: str | os.PathLike) -> RootFile:
    """Open a ROOT file for reading (use as ``with open_root(p) as f: f.hist("h")``).

    Raises
    ------
    nextstat.errors.InvalidFormat
        The file does not exist, is not a ROOT file, or is truncated.
    """
    return RootFile(path)


def list_objects(path: str | os.PathLike) -> dict[str, str]:
    """``{object path: ROOT class name}`` of every object in a ROOT file (recursive)."""
    with open_root(path) as f:
        return f.classnames()


# ---------------------------------------------------------------------------
# Histograms
# ---------------------------------------------------------------------------


def _hist_from_uproot(obj, name: str, classname: str, flow: bool, where: str) -> Hist1D:
    values = np.asarray(obj.values(flow=True), dtype=np.float64)
    sumw2 = np.asarray(obj.member("fSumw2"), dtype=np.float64)
    has_sumw2 = len(sumw2) > 0
    if has_sumw2 and len(sumw2) != len(values):
        raise InvalidFormat(
            f"fSumw2 has {len(sumw2)} entries for {len(values)} bins (with flows)", where
        )
    variances = sumw2 if has_sumw2 else np.abs(values)
    edges = np.asarray(obj.axis().edges(flow=False), dtype=np.float64)
    if len(edges) != len(values) - 1:
        raise InvalidFormat(f"{len(edges)} edges for {len(values) - 2} bins", where)
    if flow:
        edges = np.concatenate([[-np.inf], edges, [np.inf]])
        vals, var = values, variances
    else:
        vals, var = values[1:-1], variances[1:-1]
    return Hist1D(
        name=name,
        title=str(obj.member("fTitle")),
        classname=classname,
        values=_frozen(vals),
        variances=_frozen(var),
        edges=_frozen(edges),
        flow=flow,
        has_sumw2=has_sumw2,
        underflow=float(values[0]),
        overflow=float(values[-1]),
        underflow_variance=float(variances[0]),
        overflow_variance=float(variances[-1]),
        entries=float(obj.member("fEntries")),
    )


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=np.float64, copy=True)
    a.setflags(write=False)
    return a


def read_hist(path: str | os.PathLike, name: str, flow: bool = False) -> Hist1D:
    """Read a 1-D ROOT histogram (``TH1D``/``TH1F``/``TH1I``/...) into numpy.

    Parameters
    ----------
    path : str or os.PathLike
        The ROOT file.
    name : str
        Object path inside the file, e.g. ``"hists/ttbar_nominal"`` (``;cycle`` optional).
    flow : bool, default False
        Include the under/overflow bins in ``values``, ``variances`` and ``edges``
        (``n + 2`` values, ``n + 3`` edges with ``-inf``/``+inf``). The flow contents are
        also in :attr:`Hist1D.underflow` / :attr:`Hist1D.overflow` either way.

    Returns
    -------
    Hist1D

    Raises
    ------
    nextstat.errors.InvalidFormat
        Missing or unreadable file, missing object (the message lists the histograms in
        the file and suggests the closest name), an object that is not a 1-D histogram,
        or a truncated/corrupt file.

    Examples
    --------
    >>> import numpy as np, uproot, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "h.root")
    >>> with uproot.recreate(path) as f:
    ...     f["h"] = (np.array([1.0, 4.0]), np.array([0.0, 1.0, 2.0]))
    >>> h = read_hist(path, "h")
    >>> h.values.tolist(), h.variances.tolist(), h.edges.tolist()
    ([1.0, 4.0], [1.0, 4.0], [0.0, 1.0, 2.0])
    """
    with open_root(path) as f:
        return f.hist(name, flow=flow)


# ---------------------------------------------------------------------------
# Trees
# ---------------------------------------------------------------------------


def _check_branches(tree, path: str, tree_name: str, branches: Sequence[str] | None):
    available = list(tree.keys())
    if branches is None:
        return None
    if isinstance(branches, str):
        branches = [branches]
    missing = [b for b in branches if b not in available]
    if missing:
        b = missing[0]
        hint = _suggest(b, available)
        msg = f"no branch {b!r}"
        if hint:
            msg += f" (did you mean {hint[0]!r}?)"
        shown = ", ".join(available[:_MAX_LISTED])
        extra = len(available) - _MAX_LISTED
        more = f" (and {extra} more)" if extra > 0 else ""
        raise InvalidFormat(f"{msg}; branches: {shown}{more}", f"{path}:{tree_name}")
    return list(branches)


def _convert_column(col, jagged: str, pad_value: float, pad_length: int | None, where: str):
    """An awkward column -> numpy (regular) or the requested jagged representation."""
    import awkward as ak

    if _is_regular(ak.type(col).content):
        return ak.to_numpy(col)
    if jagged == "awkward":
        return col
    inner = ak.type(col).content.content
    if not _is_regular(inner):
        raise InvalidFormat(
            f"doubly jagged column ({ak.type(col)}) needs jagged='awkward'", where
        )
    flat = ak.to_numpy(ak.flatten(col, axis=1))
    counts = ak.to_numpy(ak.num(col, axis=1))
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    ragged = Jagged(content=flat, offsets=offsets)
    if jagged == "ragged":
        return ragged
    return ragged.pad(pad_length, pad_value)


def _is_regular(t) -> bool:
    """True for a type without variable-length or optional dimensions."""
    import awkward as ak

    while isinstance(t, ak.types.RegularType):
        t = t.content
    return isinstance(t, ak.types.NumpyType)


def _columns(arrays, fields, jagged, pad_value, pad_length, where) -> dict[str, Any]:
    return {
        f: _convert_column(arrays[f], jagged, pad_value, pad_length, f"{where}/{f}")
        for f in fields
    }


def _check_jagged(jagged: str) -> None:
    if jagged not in JAGGED_MODES:
        raise ValueError(f"jagged must be one of {JAGGED_MODES}, not {jagged!r}")


def read_tree(
    path: str | os.PathLike,
    tree: str,
    branches: Sequence[str] | None = None,
    *,
    entry_start: int | None = None,
    entry_stop: int | None = None,
    jagged: str = "awkward",
    pad_value: float = 0,
    pad_length: int | None = None,
) -> dict[str, Any]:
    """Read branches of a ``TTree`` (or ``RNTuple``) into columns.

    Parameters
    ----------
    path : str or os.PathLike
        The ROOT file.
    tree : str
        Tree path inside the file (``"nominal"``, ``"dir/tree"``).
    branches : sequence of str, optional
        Branch names (default: all top-level branches).
    entry_start, entry_stop : int, optional
        Entry range (Python slice semantics).
    jagged : {"awkward", "pad", "ragged"}
        How variable-length branches are returned (see the module docstring).
    pad_value : float
        Fill value for ``jagged="pad"``.
    pad_length : int, optional
        Width for ``jagged="pad"`` (default: the longest entry read).

    Returns
    -------
    dict
        ``{branch: column}``: numpy arrays for scalar (1-D) and fixed-size array (2-D)
        branches; jagged branches as chosen by ``jagged``.

    Raises
    ------
    nextstat.errors.InvalidFormat
        Missing file, tree or branch (with the available names), an object that is not a
        tree, or a truncated/corrupt file.
    """
    _check_jagged(jagged)
    path = os.fspath(path)
    with open_root(path) as f:
        t = f.tree(tree)
        names = _check_branches(t, path, tree, branches)
        where = f"{path}:{tree}"
        try:
            arrays = t.arrays(names, entry_start=entry_start, entry_stop=entry_stop,
                              library="ak")
        except InvalidFormat:
            raise
        except Exception as exc:
            raise _corrupt(path, exc, tree) from None
        return _columns(arrays, names or arrays.fields, jagged, pad_value, pad_length, where)


def iter_tree(
    path: str | os.PathLike,
    tree: str,
    branches: Sequence[str] | None = None,
    *,
    step_size: int | str = "100 MB",
    entry_start: int | None = None,
    entry_stop: int | None = None,
    jagged: str = "awkward",
    pad_value: float = 0,
    pad_length: int | None = None,
) -> Iterator[dict[str, Any]]:
    """Iterate over a tree in chunks; each chunk is a dict as from :func:`read_tree`.

    Parameters
    ----------
    step_size : int or str
        Entries per chunk, or a memory size such as ``"100 MB"`` (uproot's ``iterate``).
    path, tree, branches, entry_start, entry_stop, jagged, pad_value, pad_length
        As for :func:`read_tree`. With ``jagged="pad"`` and no ``pad_length`` each chunk
        is padded to its own longest entry; pass ``pad_length`` for a fixed width.

    Yields
    ------
    dict
        ``{branch: column}`` for consecutive entry ranges.
    """
    _check_jagged(jagged)
    path = os.fspath(path)
    with open_root(path) as f:
        t = f.tree(tree)
        names = _check_branches(t, path, tree, branches)
        where = f"{path}:{tree}"
        chunks = t.iterate(names, step_size=step_size, entry_start=entry_start,
                           entry_stop=entry_stop, library="ak")
        while True:
            try:
                arrays = next(chunks)
            except StopIteration:
                return
            except Exception as exc:
                raise _corrupt(path, exc, tree) from None
            yield _columns(arrays, names or arrays.fields, jagged, pad_value, pad_length,
                           where)
