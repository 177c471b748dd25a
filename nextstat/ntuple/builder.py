"""``NtupleWorkspaceBuilder``: ROOT ntuples -> histograms -> pyhf workspace.

A fluent description of an analysis (channels with a variable, a binning and a
selection; samples from files and trees with weight expressions; normfactors,
normsys, weight and tree systematics, staterror; data from a tree) is turned into a
pyhf workspace (schema 1.0.0) by filling every histogram with
:func:`nextstat.ntuple.fill.fill_histograms`: each (file, tree) is read once, in
chunks, for all channels, samples and weight variations that use it.

Example
-------
>>> ws = (
...     NtupleWorkspaceBuilder()
...     .ntuple_path("ntuples/")
...     .tree_name("events")
...     .measurement("meas", "mu")
...     .add_channel("SR", lambda ch: ch
...         .variable("mbb")
...         .binning([0., 50., 100., 150., 200., 300.])
...         .selection("njet >= 4 && pt > 25.0")
...         .data_file("data.root")
...         .add_sample("signal", lambda s: s
...             .file("ttH.root").weight("weight_mc * weight_sf").normfactor("mu"))
...         .add_sample("background", lambda s: s
...             .file("ttbar.root")
...             .weight("weight_mc * weight_sf")
...             .normsys("bkg_norm", 0.9, 1.1)
...             .weight_sys("jes", "weight_jes_up", "weight_jes_down")
...             .tree_sys("jer", "jer_up.root", "jer_down.root")
...             .staterror()))
...     .build()
... )  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nextstat.errors import ExpressionError, InvalidConfig
from nextstat.ntuple.expr import Expression
from nextstat.ntuple.fill import (
    DEFAULT_STEP_SIZE,
    Hist,
    HistRequest,
    ProgressCallback,
    check_edges,
    fill_histograms,
    print_progress,
)

__all__ = ["NtupleWorkspaceBuilder", "ChannelBuilder", "SampleBuilder"]


def _compile(text: str | None, what: str, where: str) -> Expression | None:
    """Compile an expression, naming the place it came from in any error."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    try:
        return Expression(text)
    except ExpressionError as exc:
        raise ExpressionError(
            f"{where}: {what}: {exc.message}", exc.expression, exc.line, exc.column
        ) from None


def _and(*parts: str | None) -> str | None:
    kept = [p for p in parts if p not in (None, "")]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else " && ".join(f"({p})" for p in kept)


def _times(*parts: str | None) -> str | None:
    kept = [p for p in parts if p not in (None, "")]
    if not kept:
        return None
    return kept[0] if len(kept) == 1 else " * ".join(f"({p})" for p in kept)


@dataclass
class _Syst:
    kind: str  # normsys | weight | tree | normfactor | staterror | shapesys
    name: str
    data: dict[str, Any] = field(default_factory=dict)


class SampleBuilder:
    """One sample of a channel; every method returns ``self`` for chaining."""

    def __init__(self, name: str, where: str):
        self.name = name
        self.where = where
        self._files: list[str] = []
        self._tree: str | None = None
        self._weight: str | None = None
        self._selection: str | None = None
        self._mods: list[_Syst] = []

    def file(self, path: str | Sequence[str]) -> SampleBuilder:
        """ROOT file(s) of the sample, relative to the builder's ntuple path; summed."""
        self._files.extend([path] if isinstance(path, (str, os.PathLike)) else list(path))
        return self

    files = file

    def tree(self, name: str) -> SampleBuilder:
        """TTree name for this sample (default: the builder's)."""
        self._tree = name
        return self

    def weight(self, expr: str) -> SampleBuilder:
        """Per-event weight expression (multiplied by the channel's weight, if any)."""
        self._weight = expr
        return self

    def selection(self, expr: str) -> SampleBuilder:
        """Extra selection for this sample, and-ed with the channel's."""
        self._selection = expr
        return self

    def normfactor(
        self, name: str, init: float | None = None, bounds: tuple[float, float] | None = None
    ) -> SampleBuilder:
        """Free normalisation ``name`` (optional initial value and bounds)."""
        self._mods.append(_Syst("normfactor", name, {"init": init, "bounds": bounds}))
        return self

    def normsys(self, name: str, lo: float, hi: float) -> SampleBuilder:
        """Normalisation systematic: factors ``lo`` / ``hi`` at -1 / +1 sigma."""
        self._mods.append(_Syst("normsys", name, {"lo": float(lo), "hi": float(hi)}))
        return self

    def weight_sys(
        self, name: str, up: str, down: str | None = None, *, relative: bool = False
    ) -> SampleBuilder:
        """Shape systematic from alternative weights of the same events (a histosys).

        Parameters
        ----------
        name : str
            Nuisance parameter name.
        up, down : str
            Weight expressions for the +1 / -1 sigma templates. By default they
            replace the sample's weight; with ``relative=True`` they multiply it
            (TRExFitter's ``WeightSufUp``). Without ``down`` the down template is the
            up one mirrored around the nominal (``2 * nominal - up``).
        relative : bool
            See above. The channel weight always applies.
        """
        self._mods.append(_Syst("weight", name, {"up": up, "down": down, "relative": relative}))
        return self

    def tree_sys(
        self,
        name: str,
        file_up: str | None = None,
        file_down: str | None = None,
        *,
        tree_up: str | None = None,
        tree_down: str | None = None,
    ) -> SampleBuilder:
        """Shape systematic from other files and/or trees (a histosys).

        The variation is filled with the sample's selection and weight from
        ``file_up`` (default: the sample's files) and tree ``tree_up`` (default: the
        sample's tree); likewise down. Without any down source the down template is
        the up one mirrored around the nominal.
        """
        if file_up is None and tree_up is None:
            raise InvalidConfig(f"tree_sys {name!r} needs file_up or tree_up", self.where)
        self._mods.append(
            _Syst(
                "tree",
                name,
                {
                    "file_up": file_up,
                    "file_down": file_down,
                    "tree_up": tree_up,
                    "tree_down": tree_down,
                },
            )
        )
        return self

    def staterror(self, enabled: bool = True) -> SampleBuilder:
        """MC statistical uncertainty (``staterror_<channel>``, sigma = sqrt(sumw2))."""
        self._mods = [m for m in self._mods if m.kind != "staterror"]
        if enabled:
            self._mods.append(_Syst("staterror", ""))
        return self

    def shapesys(self, name: str) -> SampleBuilder:
        """Uncorrelated per-bin uncertainty ``name`` from this sample's sqrt(sumw2)."""
        self._mods.append(_Syst("shapesys", name))
        return self


class ChannelBuilder:
    """One channel (region); every method returns ``self`` for chaining."""

    def __init__(self, name: str, where: str):
        self.name = name
        self.where = where
        self._variable: str | None = None
        self._edges: Any = None
        self._selection: str | None = None
        self._weight: str | None = None
        self._flow = "drop"
        self._data: dict[str, Any] | None = None
        self._samples: list[SampleBuilder] = []

    def variable(self, expr: str) -> ChannelBuilder:
        """Expression histogrammed in this channel."""
        self._variable = expr
        return self

    def binning(
        self, edges: Sequence[float] | int, lo: float | None = None, hi: float | None = None
    ) -> ChannelBuilder:
        """Bin edges, or ``binning(n, lo, hi)`` for ``n`` equal bins."""
        if isinstance(edges, (int, np.integer)) and lo is not None and hi is not None:
            if edges < 1:
                raise InvalidConfig(f"number of bins must be positive, got {edges}", self.where)
            edges = np.linspace(float(lo), float(hi), int(edges) + 1).tolist()
        self._edges = edges
        return self

    def selection(self, expr: str) -> ChannelBuilder:
        """Event selection of the channel (applies to every sample and to data)."""
        self._selection = expr
        return self

    def weight(self, expr: str) -> ChannelBuilder:
        """Weight applied to every simulated sample of the channel (not to data)."""
        self._weight = expr
        return self

    def flow(self, policy: str) -> ChannelBuilder:
        """``"drop"`` (default) or ``"merge"`` under/overflow into the first/last bin."""
        if policy not in ("drop", "merge"):
            raise InvalidConfig(f"flow must be 'drop' or 'merge', got {policy!r}", self.where)
        self._flow = policy
        return self

    def data_file(
        self,
        path: str | Sequence[str],
        tree: str | None = None,
        *,
        selection: str | None = None,
        weight: str | None = None,
    ) -> ChannelBuilder:
        """Observed data from ``path`` (tree ``tree``, default the builder's).

        Data get the channel selection (and-ed with ``selection``) and no weight
        unless ``weight`` is given. Without data the observations are the sum of the
        nominal templates (an Asimov data set).
        """
        files = [path] if isinstance(path, (str, os.PathLike)) else list(path)
        self._data = {"files": files, "tree": tree, "selection": selection, "weight": weight}
        return self

    def add_sample(
        self, name: str, configure: Callable[[SampleBuilder], Any] | None = None
    ) -> ChannelBuilder:
        """Add sample ``name``; ``configure(sample_builder)`` sets it up."""
        if any(s.name == name for s in self._samples):
            raise InvalidConfig(f"duplicate sample {name!r}", self.where)
        s = SampleBuilder(name, f"{self.where}, sample {name!r}")
        if configure is not None:
            configure(s)
        self._samples.append(s)
        return self

    def sample(self, name: str) -> SampleBuilder:
        """Add sample ``name`` and return its builder (imperative style)."""
        self.add_sample(name)
        return self._samples[-1]


class NtupleWorkspaceBuilder:
    """Fluent builder: ROOT ntuples -> histograms -> pyhf workspace.

    Defaults: tree ``"events"``, measurement ``"meas"`` with POI ``"mu"``, files
    relative to the current directory, chunks of
    :data:`~nextstat.ntuple.fill.DEFAULT_STEP_SIZE` entries, no progress output.

    After :meth:`build`, :attr:`histograms` maps ``(channel, sample, variation)`` to
    the filled :class:`~nextstat.ntuple.fill.Hist` (variation ``"nominal"``,
    ``"<syst>_up"`` / ``"<syst>_down"``, and ``(channel, "data", "nominal")``).
    """

    def __init__(self) -> None:
        self._base = "."
        self._tree = "events"
        self._meas = "meas"
        self._poi = "mu"
        self._step = DEFAULT_STEP_SIZE
        self._progress: ProgressCallback | None = None
        self._channels: list[ChannelBuilder] = []
        self._params: dict[str, dict[str, Any]] = {}
        self.histograms: dict[tuple[str, str, str], Hist] = {}

    # -- global settings ------------------------------------------------------
    def ntuple_path(self, path: str | os.PathLike) -> NtupleWorkspaceBuilder:
        """Directory that relative file names are resolved against."""
        self._base = os.fspath(path)
        return self

    def tree_name(self, name: str) -> NtupleWorkspaceBuilder:
        """Default TTree name."""
        self._tree = name
        return self

    def measurement(self, name: str, poi: str) -> NtupleWorkspaceBuilder:
        """Measurement name and parameter of interest."""
        self._meas, self._poi = name, poi
        return self

    def parameter(self, name: str, **config: Any) -> NtupleWorkspaceBuilder:
        """Extra measurement settings for ``name`` (``inits``, ``bounds``, ``fixed``, ...)."""
        self._params.setdefault(name, {}).update(config)
        return self

    def step_size(self, entries: int) -> NtupleWorkspaceBuilder:
        """Entries per chunk while reading (memory is proportional to it)."""
        self._step = int(entries)
        return self

    def progress(self, callback: ProgressCallback | bool = True) -> NtupleWorkspaceBuilder:
        """Report progress: ``True`` prints a line on stderr, or pass ``f(label, done, total)``."""
        self._progress = print_progress if callback is True else (callback or None)
        return self

    def add_channel(
        self, name: str, configure: Callable[[ChannelBuilder], Any] | None = None
    ) -> NtupleWorkspaceBuilder:
        """Add channel ``name``; ``configure(channel_builder)`` sets it up."""
        if any(c.name == name for c in self._channels):
            raise InvalidConfig(f"duplicate channel {name!r}")
        ch = ChannelBuilder(name, f"channel {name!r}")
        if configure is not None:
            configure(ch)
        self._channels.append(ch)
        return self

    def channel(self, name: str) -> ChannelBuilder:
        """Add channel ``name`` and return its builder (imperative style)."""
        self.add_channel(name)
        return self._channels[-1]

    # -- building -------------------------------------------------------------
    def _path(self, p: str) -> str:
        p = os.fspath(p)
        return p if os.path.isabs(p) else os.path.join(self._base, p)

    def _requests(self) -> tuple[list[HistRequest], dict[str, np.ndarray]]:
        if not self._channels:
            raise InvalidConfig("no channels defined")
        reqs: list[HistRequest] = []
        edges_of: dict[str, np.ndarray] = {}
        for ch in self._channels:
            if ch._variable is None:
                raise InvalidConfig("no variable set", ch.where)
            if ch._edges is None:
                raise InvalidConfig("no binning set", ch.where)
            if not ch._samples:
                raise InvalidConfig("no samples", ch.where)
            edges = check_edges(ch._edges, f"{ch.where}: binning")
            edges_of[ch.name] = edges
            var = _compile(ch._variable, "variable", ch.where)

            def add(key, files, tree, sel, w, where, _ch=ch, _var=var, _edges=edges):
                if not files:
                    raise InvalidConfig("no input file", where)
                s = _compile(sel, "selection", where)
                we = _compile(w, "weight", where)
                for f in files:
                    reqs.append(
                        HistRequest(key, self._path(f), tree, _var, _edges, s, we, _ch._flow, where)
                    )

            if ch._data is not None:
                d = ch._data
                add(
                    (ch.name, "data", "nominal"),
                    d["files"],
                    d["tree"] or self._tree,
                    _and(ch._selection, d["selection"]),
                    d["weight"],
                    f"{ch.where}, data",
                )
            for s in ch._samples:
                self._sample_requests(ch, s, add)
        return reqs, edges_of

    def _sample_requests(self, ch: ChannelBuilder, s: SampleBuilder, add: Callable) -> None:
        tree = s._tree or self._tree
        sel = _and(ch._selection, s._selection)
        w_nom = _times(ch._weight, s._weight)
        add((ch.name, s.name, "nominal"), s._files, tree, sel, w_nom, s.where)
        for m in s._mods:
            where = f"{s.where}, systematic {m.name!r}"
            if m.kind == "weight":
                for side in ("up", "down"):
                    expr = m.data[side]
                    if expr is None:
                        continue
                    base = _times(ch._weight, s._weight) if m.data["relative"] else ch._weight
                    add(
                        (ch.name, s.name, f"{m.name}_{side}"),
                        s._files,
                        tree,
                        sel,
                        _times(base, expr),
                        where,
                    )
            elif m.kind == "tree":
                for side in ("up", "down"):
                    f, t = m.data[f"file_{side}"], m.data[f"tree_{side}"]
                    if f is None and t is None:
                        continue
                    if f is None:
                        files = s._files
                    else:
                        files = [f] if isinstance(f, (str, os.PathLike)) else list(f)
                    add((ch.name, s.name, f"{m.name}_{side}"), files, t or tree, sel, w_nom, where)

    def fill(self) -> dict[tuple[str, str, str], Hist]:
        """Fill every histogram (without assembling a workspace) and return them."""
        reqs, _ = self._requests()
        self.histograms = fill_histograms(reqs, step_size=self._step, progress=self._progress)
        return self.histograms

    def build(self) -> dict[str, Any]:
        """Fill all histograms and return the pyhf workspace (a dict, schema 1.0.0)."""
        hists = self.fill()
        channels, observations = [], []
        params: dict[str, dict[str, Any]] = {}
        for ch in self._channels:
            samples = [self._sample_spec(ch, s, hists, params) for s in ch._samples]
            data = hists.get((ch.name, "data", "nominal"))
            if data is not None:
                obs = data.sumw.tolist()
            else:
                obs = np.sum([s["data"] for s in samples], axis=0).tolist()
            channels.append({"name": ch.name, "samples": samples})
            observations.append({"name": ch.name, "data": obs})
        for name, cfg in self._params.items():
            params.setdefault(name, {}).update(cfg)
        parameters = [{"name": k, **v} for k, v in params.items()]
        return {
            "channels": channels,
            "observations": observations,
            "measurements": [
                {"name": self._meas, "config": {"poi": self._poi, "parameters": parameters}}
            ],
            "version": "1.0.0",
        }

    def _sample_spec(
        self, ch: ChannelBuilder, s: SampleBuilder, hists: dict, params: dict
    ) -> dict[str, Any]:
        nom = hists[(ch.name, s.name, "nominal")]
        mods: list[dict[str, Any]] = []
        for m in s._mods:
            if m.kind == "normfactor":
                mods.append({"name": m.name, "type": "normfactor", "data": None})
                cfg = {}
                if m.data["init"] is not None:
                    cfg["inits"] = [float(m.data["init"])]
                if m.data["bounds"] is not None:
                    cfg["bounds"] = [[float(b) for b in m.data["bounds"]]]
                if cfg:
                    prev = params.setdefault(m.name, {})
                    if any(k in prev and prev[k] != v for k, v in cfg.items()):
                        raise InvalidConfig(
                            f"normfactor {m.name!r} has conflicting init/bounds", s.where
                        )
                    prev.update(cfg)
            elif m.kind == "normsys":
                mods.append(
                    {
                        "name": m.name,
                        "type": "normsys",
                        "data": {"hi": m.data["hi"], "lo": m.data["lo"]},
                    }
                )
            elif m.kind in ("weight", "tree"):
                up = hists.get((ch.name, s.name, f"{m.name}_up"))
                down = hists.get((ch.name, s.name, f"{m.name}_down"))
                hi = up.sumw if up is not None else 2 * nom.sumw - down.sumw
                lo = down.sumw if down is not None else 2 * nom.sumw - up.sumw
                mods.append(
                    {
                        "name": m.name,
                        "type": "histosys",
                        "data": {"hi_data": hi.tolist(), "lo_data": lo.tolist()},
                    }
                )
            elif m.kind == "staterror":
                mods.append(
                    {
                        "name": f"staterror_{ch.name}",
                        "type": "staterror",
                        "data": np.sqrt(nom.sumw2).tolist(),
                    }
                )
            elif m.kind == "shapesys":
                mods.append(
                    {"name": m.name, "type": "shapesys", "data": np.sqrt(nom.sumw2).tolist()}
                )
        return {"name": s.name, "data": nom.sumw.tolist(), "modifiers": mods}

    def model(self, measurement: str | None = None, interpolation: str = "pyhf") -> Any:
        """Build and return the :class:`nextstat.HistFactoryModel` of the workspace."""
        import nextstat

        return nextstat.from_pyhf(
            self.build(), measurement=measurement, interpolation=interpolation
        )
