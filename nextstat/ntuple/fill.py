"""Streaming histogram filling from ROOT TTrees: one pass per (file, tree).

:func:`fill_histograms` takes a list of :class:`HistRequest` (variable, binning,
selection, weight, file, tree) and groups them by (file, tree). Each group is read
once, chunk by chunk with ``uproot``'s ``iterate`` (``step_size`` entries at a time),
loading only the branches the group's expressions need; memory therefore depends on
the chunk size, not on the file size. Within a chunk every distinct selection is
evaluated once, the branches the variables and weights need are compressed to the
selected events once per selection, every distinct variable is binned once
(``searchsorted`` on the edges) and each weight adds two ``bincount`` calls (sum of
weights and sum of squared weights).

Binning follows ROOT's TH1 convention: bin ``i`` is ``[edges[i], edges[i+1])``, so a
value equal to the last edge is overflow. Under/overflow are dropped
(``flow="drop"``, the default) or added to the first / last bin (``flow="merge"``).
Events whose variable is ``nan`` are not filled.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextstat.errors import ExpressionError, InvalidConfig, InvalidFormat
from nextstat.ntuple.expr import Expression

__all__ = ["HistRequest", "Hist", "fill_histograms", "DEFAULT_STEP_SIZE", "check_edges"]

#: Entries per chunk: ~8 MB per float64 branch, a few tens of MB for a typical request.
DEFAULT_STEP_SIZE = 1_000_000

#: ``progress(label, entries_done, entries_total)``; ``label`` is ``"file.root:tree"``.
ProgressCallback = Callable[[str, int, int], None]


@dataclass
class HistRequest:
    """One histogram to fill.

    Requests with the same ``key`` are summed (e.g. one sample spread over several
    files).
    """

    key: Hashable
    path: str
    tree: str
    variable: Expression
    edges: np.ndarray
    selection: Expression | None = None
    weight: Expression | None = None
    flow: str = "drop"
    where: str = ""


@dataclass
class Hist:
    """A filled histogram: per-bin sum of weights and sum of squared weights."""

    edges: np.ndarray
    sumw: np.ndarray
    sumw2: np.ndarray
    entries: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def check_edges(edges: Any, where: str) -> np.ndarray:
    """Validate bin edges (at least two, finite, strictly increasing)."""
    try:
        arr = np.asarray(edges, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidConfig(f"must be a list of numbers, got {edges!r}", where) from None
    if arr.ndim != 1 or arr.size < 2:
        raise InvalidConfig(f"needs at least two edges, got {edges!r}", where)
    if not np.isfinite(arr).all():
        raise InvalidConfig(f"edges must be finite, got {edges!r}", where)
    bad = np.flatnonzero(np.diff(arr) <= 0)
    if bad.size:
        i = int(bad[0])
        raise InvalidConfig(
            f"edges must increase strictly; edge {i + 1} ({arr[i + 1]:g}) "
            f"does not exceed edge {i} ({arr[i]:g})",
            where,
        )
    return arr


def _did_you_mean(name: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, list(options), n=3, cutoff=0.6)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def _open_tree(files: dict, path: str, tree: str, where: str) -> Any:
    """Tree ``tree`` of ``path``; ``files`` caches the open files (one open per file)."""
    from nextstat.io.root import open_root

    rfile = files.get(path)
    if rfile is None:
        if not os.path.exists(path):
            raise InvalidConfig(f"file not found: {path}", where)
        rfile = files[path] = open_root(path)  # InvalidFormat: not ROOT, truncated, corrupt
    try:
        return rfile.tree(tree)
    except InvalidFormat as exc:
        raise InvalidConfig(f"no tree {tree!r} in {path}: {exc.message}", where) from None


def _check_branches(tree: Any, requests: list[HistRequest], label: str) -> list[str]:
    keys = set(tree.keys(recursive=True))
    needed: dict[str, None] = {}
    for r in requests:
        for e in (r.variable, r.selection, r.weight):
            if e is None:
                continue
            for b in e.branches:
                if b not in keys:
                    raise InvalidConfig(
                        f"branch {b!r} (used in {e.text!r}) is not in {label}"
                        f"{_did_you_mean(b, sorted(keys))}",
                        r.where,
                    )
                needed[b] = None
    return list(needed)


def _needs_awkward(tree: Any, branches: list[str]) -> bool:
    import uproot

    for b in branches:
        interp = getattr(tree[b], "interpretation", None)  # RNTuple fields have none
        if interp is None or not isinstance(interp, uproot.interpretation.numerical.AsDtype):
            return True
    return False


def _chunks(tree: Any, branches: list[str], step_size: int):
    """Yield ``(columns, n)`` per chunk; scalar and fixed-size columns are numpy."""
    if not branches:
        total = tree.num_entries
        for start in range(0, total, step_size):
            yield {}, min(step_size, total - start)
        return
    if not _needs_awkward(tree, branches):
        for chunk in tree.iterate(filter_name=branches, step_size=step_size, library="np"):
            cols = {b: chunk[b] for b in branches}
            yield cols, len(cols[branches[0]])
        return
    import awkward as ak

    for chunk in tree.iterate(filter_name=branches, step_size=step_size, library="ak"):
        cols: dict[str, Any] = {}
        for b in branches:
            col = chunk[b]
            try:
                cols[b] = ak.to_numpy(col)
            except ValueError:  # jagged: keep awkward
                cols[b] = col
        yield cols, len(chunk)


class _Compressed(Mapping):
    """The selected events of a chunk; a column is compressed the first time it is read."""

    def __init__(self, cols: dict[str, Any], mask: np.ndarray):
        self._cols, self._mask, self._done = cols, mask, {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._done:
            self._done[name] = self._cols[name][self._mask]
        return self._done[name]

    def __iter__(self):
        return iter(self._cols)

    def __len__(self) -> int:
        return len(self._cols)


class _ChunkState:
    """Per-chunk caches so shared selections, variables and weights are computed once."""

    def __init__(self, cols: dict[str, Any], n: int):
        self.cols, self.n = cols, n
        self.sel: dict[str, tuple[Mapping[str, Any], int]] = {}
        self.values: dict[tuple[str, str], np.ndarray] = {}
        self.index: dict[tuple[str, str, bytes], np.ndarray] = {}

    def subset(self, selection: Expression | None) -> tuple[str, Mapping[str, Any], int]:
        key = selection.text if selection is not None else ""
        if key not in self.sel:
            if selection is None:
                self.sel[key] = (self.cols, self.n)
            else:
                mask = selection.evaluate(self.cols, self.n)
                if mask.dtype != np.bool_:
                    mask = mask != 0
                if mask.all():
                    self.sel[key] = (self.cols, self.n)
                else:
                    self.sel[key] = (_Compressed(self.cols, mask), int(np.count_nonzero(mask)))
        return key, *self.sel[key]

    def value(self, skey: str, expr: Expression, env: Mapping[str, Any], n: int) -> np.ndarray:
        k = (skey, expr.text)
        if k not in self.values:
            v = expr.evaluate(env, n)
            self.values[k] = v.astype(np.float64, copy=False)
        return self.values[k]

    def bin_index(self, skey: str, r: HistRequest, env: Mapping[str, Any], n: int) -> np.ndarray:
        k = (skey, r.variable.text, r.edges.tobytes())
        if k not in self.index:
            x = self.value(skey, r.variable, env, n)
            # 0 = underflow, 1..nb = bins, nb + 1 = overflow, nb + 2 = nan (never kept).
            idx = np.searchsorted(r.edges, x, side="right")
            nan = np.isnan(x)
            if nan.any():
                idx[nan] = r.edges.size + 1
            self.index[k] = idx
        return self.index[k]


def _fill_chunk(state: _ChunkState, reqs: list[HistRequest], acc: dict, counts: dict) -> None:
    for r in reqs:
        try:
            _fill_one(state, r, acc, counts)
        except ExpressionError as exc:  # e.g. an unindexed jagged branch: name the place
            where = f"{r.where}: " if r.where else ""
            raise ExpressionError(
                f"{where}{exc.message}", exc.expression, exc.line, exc.column
            ) from None


def _fill_one(state: _ChunkState, r: HistRequest, acc: dict, counts: dict) -> None:
    """Add one chunk's selected events to the accumulators of ``r``."""
    skey, env, n = state.subset(r.selection)
    nb = r.edges.size - 1
    idx = state.bin_index(skey, r, env, n)
    if r.weight is None:
        sumw = np.bincount(idx, minlength=nb + 3).astype(np.float64)
        sumw2 = sumw
    else:
        w = state.value(skey, r.weight, env, n)
        sumw = np.bincount(idx, weights=w, minlength=nb + 3)
        sumw2 = np.bincount(idx, weights=w * w, minlength=nb + 3)
    a = acc[r.key]
    a[0] += sumw[: nb + 2]
    a[1] += sumw2[: nb + 2]
    counts[r.key] += n


def _finish(r: HistRequest, sumw: np.ndarray, sumw2: np.ndarray, entries: int) -> Hist:
    nb = r.edges.size - 1
    w, w2 = sumw[1 : nb + 1].copy(), sumw2[1 : nb + 1].copy()
    if r.flow == "merge":
        w[0] += sumw[0]
        w2[0] += sumw2[0]
        w[-1] += sumw[nb + 1]
        w2[-1] += sumw2[nb + 1]
    extra = {"underflow": float(sumw[0]), "overflow": float(sumw[nb + 1])}
    return Hist(r.edges, w, w2, entries, extra)


def _open_all(groups: dict, files: dict) -> tuple[dict, int]:
    """Open every group's tree first: bad paths fail before any long read starts.

    Returns ``{group: (tree, branches to read, label)}`` and the total number of entries;
    the open files are left in ``files`` for the caller to close.
    """
    opened: dict = {}
    total = 0
    for (path, tree), reqs in groups.items():
        t = _open_tree(files, path, tree, reqs[0].where)
        label = f"{os.path.basename(path)}:{tree}"
        opened[(path, tree)] = (t, _check_branches(t, reqs, label), label)
        total += t.num_entries
    return opened, total


def fill_histograms(
    requests: Sequence[HistRequest],
    *,
    step_size: int = DEFAULT_STEP_SIZE,
    progress: ProgressCallback | None = None,
) -> dict[Hashable, Hist]:
    """Fill every request, reading each (file, tree) once in chunks.

    Parameters
    ----------
    requests : sequence of HistRequest
        What to fill. Requests sharing a ``key`` are summed.
    step_size : int
        Entries per chunk.
    progress : callable, optional
        ``progress(label, done, total)`` after each chunk; ``done`` / ``total`` count
        entries over all files of the call.

    Returns
    -------
    dict
        ``key -> Hist``.

    Raises
    ------
    InvalidConfig
        A missing file, tree or branch (with close matches), or inconsistent binning
        between requests of one key.
    InvalidFormat
        A file that uproot cannot read.
    """
    if step_size < 1:
        raise InvalidConfig(f"step_size must be positive, got {step_size}")
    groups: dict[tuple[str, str], list[HistRequest]] = {}
    first: dict[Hashable, HistRequest] = {}
    for r in requests:
        groups.setdefault((os.path.abspath(r.path), r.tree), []).append(r)
        f = first.setdefault(r.key, r)
        if f is not r and not np.array_equal(f.edges, r.edges):
            raise InvalidConfig(f"binning differs between parts of {r.key!r}", r.where)
    acc = {k: [np.zeros(r.edges.size + 1), np.zeros(r.edges.size + 1)] for k, r in first.items()}
    counts = dict.fromkeys(first, 0)
    files: dict = {}
    done = 0
    try:
        opened, total = _open_all(groups, files)
        for gkey, reqs in groups.items():
            tree, branches, label = opened[gkey]
            for cols, n in _chunks(tree, branches, step_size):
                _fill_chunk(_ChunkState(cols, n), reqs, acc, counts)
                done += n
                if progress is not None:
                    progress(label, done, total)
    finally:
        for rfile in files.values():
            rfile.close()
    return {k: _finish(first[k], *acc[k], counts[k]) for k in first}


def print_progress(label: str, done: int, total: int) -> None:
    """A plain progress line on stderr (no tqdm): ``file.root:tree  3.0M / 10.0M (30%)``."""
    import sys

    pct = 100.0 * done / total if total else 100.0
    end = "\n" if done >= total else ""
    sys.stderr.write(f"\r{label}  {done / 1e6:.1f}M / {total / 1e6:.1f}M entries ({pct:.0f}%)")
    sys.stderr.write(end)
    sys.stderr.flush()
