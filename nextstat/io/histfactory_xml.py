"""HistFactory XML (``combination.xml`` + channel XMLs + ROOT histograms) <-> pyhf workspaces.

Import
------
:func:`xml_to_workspace` reads the XML setup that ROOT's ``hist2workspace`` reads and
returns a pyhf workspace dict; :func:`from_xml` builds the model from it. Two semantics:

``compat="root"`` (default)
    What ROOT's HistFactory (6.40, checked numerically against RooFit on files ROOT wrote:
    ``tests/test_histfactory_xml_root.py``) builds from the same files:

    * ``StatErrorConfig`` defaults to ``ConstraintType="Poisson"`` and
      ``RelErrorThreshold="0.05"`` (also without the element, as in ROOT >= 6.28); a bin
      whose combined relative stat error is below the threshold gets a constant gamma
      (written as a zero uncertainty, which pyhf and nextstat treat as a fixed gamma).
    * Poisson stat errors become a ``shapesys`` named ``staterror_<channel>`` when one
      sample of the channel carries ``StatError`` (exact: tau = 1/rel^2, as in ROOT).
      When several samples share the gammas no pyhf modifier is exact; they become a
      Gaussian ``staterror`` with the same relative width and a
      :class:`HistFactoryXMLWarning` names the channels.
    * ``ShapeSys`` defaults to ``ConstraintType="Gaussian"``; Gaussian ones become a
      ``staterror`` named after the ShapeSys (gamma ~ Normal(1, rel)); Poisson ones a
      ``shapesys``.
    * Every sample is multiplied by ``Lumi``, whatever its ``NormalizeByTheory``: ROOT's
      ``HistoToWorkspaceFactoryFast`` puts the one ``Lumi`` variable on every sample and
      ``NormalizeByTheory="False"`` only resets it to its nominal value (a
      :class:`HistFactoryXMLWarning` names such samples). ``LumiRelErr=0`` or
      ``<ParamSetting Const="True">Lumi</ParamSetting>`` hold ``Lumi`` constant; held at 1
      in every measurement, the factor is 1 and no ``lumi`` modifier is written.
    * Gaussian gamma constraints are not truncated; ROOT normalises them over [0, 10]
      (see ``docs/formats-xml.md``).
``compat="pyhf"``
    The numbers of ``pyhf.readxml.parse``: Gaussian ``staterror`` whatever the
    ``StatErrorConfig``, no threshold, every ``ShapeSys`` Poisson, ``NormalizeByTheory``
    default ``False``, and only samples with ``NormalizeByTheory="True"`` get ``lumi``.

Both: ``Lumi``/``LumiRelErr`` give the ``lumi`` parameter (auxdata ``Lumi``, sigma
``Lumi*LumiRelErr``, bounds +-5 sigma); ``NormFactor`` ``Val``/``Low``/``High``/``Const`` and
``ParamSetting`` ``Val``/``Const`` (ROOT names ``alpha_X``, ``Lumi``) give measurement
parameter entries; relative ``ShapeSys``/``StatError`` histograms are multiplied by the
nominal; ``InputFile``/``HistoPath`` are inherited Channel -> Sample -> systematic as in
ROOT's ``ConfigParser``. Unknown elements and attributes are errors
(:class:`~nextstat.errors.InvalidFormat` naming file and element), as in ROOT.
:func:`from_xml` uses ROOT's interpolation codes, :data:`ROOT_INTERPOLATION`.

Export
------
:func:`to_xml` writes ``combination.xml``, one ``<prefix>_<channel>.xml`` per channel and
one ROOT file ``<prefix>_data.root`` (uproot), with paths relative to the output folder.
Reading them back with :func:`from_xml` gives the workspace's model, except where a
workspace puts ``lumi`` on some samples only: ROOT scales every sample by ``Lumi``, so such
files build the workspace's model only with ``compat="pyhf"`` (a warning says so).

See ``docs/formats-xml.md`` for the full mapping.
"""

from __future__ import annotations

import math
import os
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidFormat
from .root import Hist1D, RootFile

__all__ = [
    "ROOT_INTERPOLATION",
    "HistFactoryXMLWarning",
    "xml_to_workspace",
    "from_xml",
    "to_xml",
]

#: ROOT's StatErrorConfig defaults (ConfigParser::CreateStatErrorConfigElement and
#: StatErrorConfig's constructor in ROOT >= 6.28).
DEFAULT_REL_ERROR_THRESHOLD = 0.05
DEFAULT_STAT_CONSTRAINT = "Poisson"
#: ROOT's Measurement defaults (ConfigParser::CreateMeasurementFromDriverNode).
DEFAULT_LUMI = 1.0
DEFAULT_LUMI_REL_ERR = 0.10
#: The interpolation codes ROOT 6.40's ``HistoToWorkspaceFactoryFast`` builds: normsys as
#: ``FlexibleInterpVar`` code 5 and histosys as ``PiecewiseInterpolation`` code 4 (ROOT's
#: numbering), which are nextstat's/pyhf's code4 and code4p (checked against RooFit on the
#: fixtures of ``tools/make_xml_fixtures.py``). Not the ``"root"`` preset (code1/code0, named
#: after classic ROOT HistFactory), which ROOT 6.40 does not build from these files.
ROOT_INTERPOLATION = {"normsys": "4", "histosys": "4p"}
#: Bin edges of two histograms of one channel agree within this (relative) tolerance:
#: edges are stored as float64 (TAxis) and may come from float32 arithmetic upstream.
EDGE_RTOL = 1e-6

_TRUE = ("True", "true")
_FALSE = ("False", "false")
_CONSTRAINTS = {"Gaussian": "Gaussian", "Gauss": "Gaussian", "Poisson": "Poisson",
                "Pois": "Poisson"}

# allowed attributes per element (ROOT's ConfigParser, plus the DTD's HistoSys InputFile)
_ATTRS = {
    "Combination": {"OutputFilePrefix", "Mode"},
    "Measurement": {"Name", "Lumi", "LumiRelErr", "BinLow", "BinHigh", "Mode", "ExportOnly"},
    "ParamSetting": {"Const", "Val"},
    "Channel": {"Name", "InputFile", "HistoPath", "HistoName"},
    "Data": {"Name", "InputFile", "HistoName", "HistoPath"},
    "StatErrorConfig": {"RelErrorThreshold", "ConstraintType"},
    "Sample": {"Name", "InputFile", "HistoName", "HistoPath", "NormalizeByTheory"},
    "NormFactor": {"Name", "Val", "Low", "High", "Const"},
    "OverallSys": {"Name", "High", "Low"},
    "HistoSys": {"Name", "InputFile", "HistoFileHigh", "HistoPathHigh", "HistoNameHigh",
                 "HistoFileLow", "HistoPathLow", "HistoNameLow"},
    "ShapeSys": {"Name", "HistoName", "HistoPath", "InputFile", "ConstraintType"},
    "ShapeFactor": {"Name", "Const", "HistoName", "InputFile", "HistoPath"},
    "StatError": {"Activate", "HistoName", "HistoPath", "InputFile"},
}


class HistFactoryXMLWarning(UserWarning):
    """A HistFactory XML feature was mapped approximately or skipped (the message says which)."""


# ---------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------


def _where(file: Path | str, el: ET.Element | None = None) -> str:
    name = Path(file).name
    if el is None:
        return name
    label = el.get("Name")
    return f'{name}:<{el.tag} Name="{label}">' if label else f"{name}:<{el.tag}>"


def _check_attrs(el: ET.Element, file: Path) -> None:
    allowed = _ATTRS.get(el.tag, set())
    unknown = sorted(set(el.attrib) - allowed)
    if unknown:
        listed = ", ".join(sorted(allowed))
        raise InvalidFormat(
            f"unknown attribute {unknown[0]!r} on <{el.tag}> (allowed: {listed})",
            _where(file, el),
        )


def _required(el: ET.Element, attr: str, file: Path) -> str:
    value = el.get(attr)
    if value is None or value.strip() == "":
        raise InvalidFormat(f"<{el.tag}> needs a non-empty {attr!r} attribute", _where(file, el))
    return value.strip()


def _float(el: ET.Element, attr: str, file: Path, default: float | None = None) -> float:
    raw = el.get(attr)
    if raw is None:
        if default is None:
            raise InvalidFormat(f"<{el.tag}> needs a {attr!r} attribute", _where(file, el))
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidFormat(f"{attr}={raw!r} is not a number", _where(file, el)) from None
    if not math.isfinite(value):
        raise InvalidFormat(f"{attr}={raw!r} is not finite", _where(file, el))
    return value


def _bool(el: ET.Element, attr: str, file: Path, default: bool) -> bool:
    raw = el.get(attr)
    if raw is None:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise InvalidFormat(f"{attr}={raw!r}: expected 'True' or 'False'", _where(file, el))


def _constraint(el: ET.Element, file: Path, default: str) -> str:
    raw = el.get("ConstraintType")
    if raw is None:
        return default
    if raw not in _CONSTRAINTS:
        raise InvalidFormat(
            f"ConstraintType={raw!r}: expected 'Gaussian' or 'Poisson'", _where(file, el)
        )
    return _CONSTRAINTS[raw]


def _parse_xml(path: Path, root_tag: str, referenced_from: str | None = None) -> ET.Element:
    if not path.is_file():
        ref = f" (referenced from {referenced_from})" if referenced_from else ""
        raise InvalidFormat(f"XML file not found{ref}", str(path))
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise InvalidFormat(f"malformed XML: {exc}", str(path)) from None
    if root.tag != root_tag:
        raise InvalidFormat(f"expected a <{root_tag}> document, found <{root.tag}>", str(path))
    return root


def _unknown_child(child: ET.Element, parent: ET.Element, file: Path, allowed: str) -> None:
    raise InvalidFormat(
        f"unknown element <{child.tag}> inside <{parent.tag}> (allowed: {allowed})",
        _where(file, parent),
    )


# ---------------------------------------------------------------------------
# file resolution and histogram access
# ---------------------------------------------------------------------------


class _Resolver:
    """Finds files named in the XML and reads histograms (one open handle per file).

    A relative path is looked up in ``basedir`` when given; otherwise in the folder of
    ``combination.xml``, then its parent, then the current directory (the first that
    exists). An absolute path that does not exist falls back to its base name in those
    folders (exports moved to another machine).
    """

    def __init__(self, combination: Path, basedir: str | os.PathLike | None):
        if basedir is not None:
            self.dirs = [Path(basedir)]
        else:
            here = combination.resolve().parent
            self.dirs = list(dict.fromkeys([here, here.parent, Path.cwd()]))
        self._files: dict[Path, RootFile] = {}

    def candidates(self, name: str) -> list[Path]:
        p = Path(name)
        if p.is_absolute():
            return [p] + [d / p.name for d in self.dirs]
        return [d / p for d in self.dirs]

    def find(self, name: str, where: str, what: str) -> Path:
        tried = self.candidates(name)
        for c in tried:
            if c.is_file():
                return c
        raise InvalidFormat(
            f"{what} {name!r} not found (looked in: {', '.join(str(t) for t in tried)})", where
        )

    def hist(self, file: str, path: str, name: str, where: str) -> Hist1D:
        if not file:
            raise InvalidFormat(f"no InputFile for histogram {name!r}", where)
        resolved = self.find(file, where, "ROOT file")
        if resolved not in self._files:
            self._files[resolved] = RootFile(resolved)
        key = "/".join(p for p in (path.strip("/"), name.strip("/")) if p)
        try:
            return self._files[resolved].hist(key)
        except InvalidFormat as exc:
            raise InvalidFormat(f"{exc} (needed by {where})") from None

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()


# ---------------------------------------------------------------------------
# parsed channel pieces
# ---------------------------------------------------------------------------


@dataclass
class _Sample:
    name: str
    data: np.ndarray
    error: np.ndarray  # absolute per-bin stat error (sqrt sumw2 or rel hist * nominal)
    modifiers: list[dict] = field(default_factory=list)
    stat: bool = False
    where: str = ""
    normalize_by_theory: bool = True


@dataclass
class _Channel:
    name: str
    observed: np.ndarray
    samples: list[_Sample]
    threshold: float
    stat_constraint: str
    edges: np.ndarray
    where: str


class _ChannelReader:
    """Reads one channel XML into a :class:`_Channel` plus NormFactor parameter configs."""

    def __init__(self, resolver: _Resolver, file: Path, compat: str):
        self.r = resolver
        self.file = file
        self.compat = compat
        self.params: list[tuple[dict, str]] = []
        self.edges: np.ndarray | None = None
        self.edges_from = ""

    # -- histograms with a binning check -------------------------------------
    def _hist(self, file: str, path: str, name: str, where: str) -> Hist1D:
        h = self.r.hist(file, path, name, where)
        label = f"{file}:{'/'.join(p for p in (path.strip('/'), name) if p)}"
        if self.edges is None:
            self.edges, self.edges_from = h.edges, label
        elif len(h.edges) != len(self.edges) or not np.allclose(
            h.edges, self.edges, rtol=EDGE_RTOL, atol=0.0
        ):
            raise InvalidFormat(
                f"binning of {label} ({h.nbins} bins, edges {_edges_str(h.edges)}) differs "
                f"from {self.edges_from} ({len(self.edges) - 1} bins, edges "
                f"{_edges_str(self.edges)})",
                where,
            )
        return h

    # -- channel ---------------------------------------------------------------
    def read(self, root: ET.Element) -> _Channel:
        f = self.file
        _check_attrs(root, f)
        name = _required(root, "Name", f)
        where = _where(f, root)
        infile = root.get("InputFile", "")
        hpath = root.get("HistoPath", "")
        observed = None
        threshold = DEFAULT_REL_ERROR_THRESHOLD
        constraint = DEFAULT_STAT_CONSTRAINT
        samples: list[_Sample] = []
        for child in root:
            if child.tag == "Data":
                _check_attrs(child, f)
                if child.get("Name"):
                    warnings.warn(
                        f"{_where(f, child)}: additional data set skipped (only the first, "
                        "unnamed <Data> is the observation)", HistFactoryXMLWarning,
                        stacklevel=4)
                    continue
                if observed is not None:
                    raise InvalidFormat("more than one unnamed <Data> element", where)
                observed = self._data(child, infile, hpath)
            elif child.tag == "StatErrorConfig":
                _check_attrs(child, f)
                threshold = _float(child, "RelErrorThreshold", f, DEFAULT_REL_ERROR_THRESHOLD)
                constraint = _constraint(child, f, "Poisson")
            elif child.tag == "Sample":
                samples.append(self._sample(child, name, infile, hpath))
            else:
                _unknown_child(child, root, f, "Data, StatErrorConfig, Sample")
        if observed is None:
            raise InvalidFormat(f"channel {name!r} has no <Data> (observed counts)", where)
        if not samples:
            raise InvalidFormat(f"channel {name!r} has no <Sample>", where)
        return _Channel(name, observed, samples, threshold, constraint, self.edges, where)

    def _data(self, el: ET.Element, infile: str, hpath: str) -> np.ndarray:
        where = _where(self.file, el)
        hname = _required(el, "HistoName", self.file)
        h = self._hist(el.get("InputFile", infile), el.get("HistoPath", hpath), hname, where)
        return np.array(h.values)

    # -- samples and modifiers ---------------------------------------------------
    def _sample(self, el: ET.Element, channel: str, infile: str, hpath: str) -> _Sample:
        f = self.file
        _check_attrs(el, f)
        name = _required(el, "Name", f)
        where = _where(f, el)
        infile = el.get("InputFile", infile)
        hpath = el.get("HistoPath", hpath)
        h = self._hist(infile, hpath, _required(el, "HistoName", f), where)
        s = _Sample(name, np.array(h.values), np.sqrt(np.array(h.variances)), where=where)
        s.normalize_by_theory = _bool(el, "NormalizeByTheory", f, self.compat == "root")
        if s.normalize_by_theory and self.compat == "pyhf":
            s.modifiers.append(_lumi_modifier())
        # compat="root": ROOT scales every sample by Lumi (see _apply_root_lumi)
        for mod in el:
            if mod.tag == "HistoFactor":
                raise InvalidFormat("HistoFactor is not supported (ROOT ignores it too)",
                                    _where(f, mod))
            handler = getattr(self, f"_mod_{mod.tag}", None)
            if handler is None:
                _unknown_child(mod, el, f, "NormFactor, OverallSys, HistoSys, ShapeSys, "
                               "ShapeFactor, StatError")
            _check_attrs(mod, f)
            handler(mod, s, infile, hpath)
        return s

    def _mod_NormFactor(self, el, s: _Sample, infile: str, hpath: str) -> None:
        f = self.file
        name = _required(el, "Name", f)
        val, low, high = (_float(el, a, f) for a in ("Val", "Low", "High"))
        if not low < high or not low <= val <= high:
            raise InvalidFormat(f"need Low < High and Low <= Val <= High (Val={val}, "
                                f"Low={low}, High={high})", _where(f, el))
        s.modifiers.append({"name": name, "type": "normfactor", "data": None})
        cfg = {"name": name, "inits": [val], "bounds": [[low, high]]}
        if el.get("Const") is not None:
            cfg["fixed"] = _bool(el, "Const", f, False)
        self.params.append((cfg, _where(f, el)))

    def _mod_OverallSys(self, el, s: _Sample, infile: str, hpath: str) -> None:
        f = self.file
        s.modifiers.append({
            "name": _required(el, "Name", f), "type": "normsys",
            "data": {"hi": _float(el, "High", f), "lo": _float(el, "Low", f)},
        })

    def _mod_HistoSys(self, el, s: _Sample, infile: str, hpath: str) -> None:
        f = self.file
        where = _where(f, el)
        infile = el.get("InputFile", infile)
        lo = self._hist(el.get("HistoFileLow", infile), el.get("HistoPathLow", hpath),
                        _required(el, "HistoNameLow", f), where)
        hi = self._hist(el.get("HistoFileHigh", infile), el.get("HistoPathHigh", hpath),
                        _required(el, "HistoNameHigh", f), where)
        s.modifiers.append({
            "name": _required(el, "Name", f), "type": "histosys",
            "data": {"hi_data": hi.values.tolist(), "lo_data": lo.values.tolist()},
        })

    def _relative(self, el, s: _Sample, infile: str, hpath: str) -> np.ndarray:
        where = _where(self.file, el)
        h = self._hist(el.get("InputFile") or infile, el.get("HistoPath") or hpath,
                       _required(el, "HistoName", self.file), where)
        return np.asarray(h.values) * s.data

    def _mod_ShapeSys(self, el, s: _Sample, infile: str, hpath: str) -> None:
        name = _required(el, "Name", self.file)
        absolute = self._relative(el, s, infile, hpath)
        default = "Gaussian" if self.compat == "root" else "Poisson"
        kind = _constraint(el, self.file, default) if self.compat == "root" else "Poisson"
        mtype = "shapesys" if kind == "Poisson" else "staterror"
        s.modifiers.append({"name": name, "type": mtype, "data": absolute.tolist()})

    def _mod_ShapeFactor(self, el, s: _Sample, infile: str, hpath: str) -> None:
        f = self.file
        name = _required(el, "Name", f)
        if el.get("HistoName"):
            raise InvalidFormat("a ShapeFactor with an initial shape (HistoName) has no pyhf "
                                "equivalent", _where(f, el))
        s.modifiers.append({"name": name, "type": "shapefactor", "data": None})
        if el.get("Const") is not None:
            self.params.append(({"name": name, "fixed": _bool(el, "Const", f, False)},
                                _where(f, el)))

    def _mod_StatError(self, el, s: _Sample, infile: str, hpath: str) -> None:
        f = self.file
        if el.get("Activate") is None:
            raise InvalidFormat("<StatError> needs an 'Activate' attribute", _where(f, el))
        if not _bool(el, "Activate", f, False):
            return
        if el.get("HistoName"):
            s.error = self._relative(el, s, infile, hpath)
        s.stat = True


def _edges_str(edges: np.ndarray) -> str:
    shown = ", ".join(f"{e:g}" for e in edges[:6])
    return f"[{shown}{', ...' if len(edges) > 6 else ''}]"


# ---------------------------------------------------------------------------
# stat errors -> pyhf modifiers
# ---------------------------------------------------------------------------


def _stat_modifiers(ch: _Channel, compat: str) -> str | None:
    """Attach the channel's stat-error modifiers; returns the channel name if the Poisson
    constraint had to be approximated by a Gaussian."""
    carriers = [s for s in ch.samples if s.stat]
    if not carriers:
        return None
    errors = np.array([s.error for s in carriers], dtype=float)
    if compat == "root" and ch.threshold > 0:
        total = np.sum([s.data for s in carriers], axis=0)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(total > 0, np.sqrt(np.sum(errors**2, axis=0)) / total, 0.0)
        errors[:, rel < ch.threshold] = 0.0
    name = f"staterror_{ch.name}"
    approximated = None
    mtype = "staterror"
    if compat == "root" and ch.stat_constraint == "Poisson":
        if len(carriers) == 1:
            mtype = "shapesys"
        else:
            approximated = ch.name
    for s, err in zip(carriers, errors, strict=True):
        s.modifiers.append({"name": name, "type": mtype, "data": err.tolist()})
    return approximated


# ---------------------------------------------------------------------------
# lumi (compat="root")
# ---------------------------------------------------------------------------


def _lumi_modifier() -> dict:
    return {"name": "lumi", "type": "lumi", "data": None}


@dataclass(frozen=True)
class _LumiSetting:
    """A measurement's ``Lumi`` parameter as ROOT builds it."""

    value: float  # Lumi, or the value a <ParamSetting Val> gives it
    const: bool  # <ParamSetting Const> on Lumi, or LumiRelErr = 0 (ROOT then holds it constant)

    @property
    def is_one(self) -> bool:
        """Lumi is the constant 1: the factor it puts on every sample is identically 1."""
        return self.const and self.value == 1.0


def _lumi_setting(el: ET.Element, file: Path) -> _LumiSetting:
    lumi = _float(el, "Lumi", file, DEFAULT_LUMI)
    sigma = lumi * _float(el, "LumiRelErr", file, DEFAULT_LUMI_REL_ERR)
    value, const = lumi, sigma == 0
    for child in el:
        if child.tag == "ParamSetting" and {"Lumi", "lumi"} & set((child.text or "").split()):
            const = const or _bool(child, "Const", file, False)
            if child.get("Val") is not None:
                value = _float(child, "Val", file)
    return _LumiSetting(value, const)


def _apply_root_lumi(channels: list[_Channel], settings: list[_LumiSetting]) -> None:
    """Put ROOT's ``Lumi`` factor on the samples (``compat="root"``).

    ROOT 6.40's ``HistoToWorkspaceFactoryFast::MakeSingleChannelWorkspace`` multiplies
    *every* sample by the one ``Lumi`` variable; for ``NormalizeByTheory="False"`` it only
    sets that variable to the measurement's ``Lumi`` (its value already). ``LumiRelErr=0``
    makes ``Lumi`` constant (no ``lumiConstraint``). So every sample gets the ``lumi``
    modifier, unless ``Lumi`` is the constant 1 in every measurement (then the factor is
    identically 1 and no parameter is needed).
    """
    if all(s.is_one for s in settings):
        return
    for ch in channels:
        for s in ch.samples:
            s.modifiers.insert(0, _lumi_modifier())
    scaled = [f"{ch.name}/{s.name}" for ch in channels for s in ch.samples
              if not s.normalize_by_theory]
    if scaled:
        shown = ", ".join(scaled[:6]) + (f" and {len(scaled) - 6} more" if len(scaled) > 6 else "")
        warnings.warn(
            f'NormalizeByTheory="False" on {shown}: ROOT\'s HistFactory (6.40) multiplies these '
            "samples by the Lumi parameter all the same, and so does compat='root'; "
            "compat='pyhf' leaves them unscaled (pyhf's reading)", HistFactoryXMLWarning,
            stacklevel=3)


# ---------------------------------------------------------------------------
# measurements
# ---------------------------------------------------------------------------


_GAMMA = re.compile(r"^gamma_(.+)_bin_(\d+)$")


def _modifier_types(channels: list[dict]) -> dict[str, set[str]]:
    types: dict[str, set[str]] = {}
    for ch in channels:
        for s in ch["samples"]:
            for m in s["modifiers"]:
                types.setdefault(m["name"], set()).add(m["type"])
    return types


def _pyhf_name(root_name: str, types: dict[str, set[str]], where: str) -> str | None:
    """Map a ROOT parameter name (``alpha_X``, ``Lumi``, ``mu``) to the pyhf name, or None."""
    if root_name in ("Lumi", "lumi"):
        return "lumi" if "lumi" in types else None
    if root_name in types and types[root_name] & {"normfactor", "normsys", "histosys",
                                                   "shapefactor"}:
        return root_name
    if root_name.startswith("alpha_") and root_name[6:] in types:
        return root_name[6:]
    if _GAMMA.match(root_name) or root_name in types:
        raise InvalidFormat(
            f"ParamSetting on {root_name!r}: a single gamma (per-bin) parameter cannot be "
            "set in a pyhf workspace", where)
    return None


def _measurement(el: ET.Element, file: Path, types: dict[str, set[str]],
                 norm_params: list[tuple[dict, str]], compat: str) -> dict:
    _check_attrs(el, file)
    where = _where(file, el)
    name = _required(el, "Name", file)
    lumi = _float(el, "Lumi", file, DEFAULT_LUMI)
    sigma = lumi * _float(el, "LumiRelErr", file, DEFAULT_LUMI_REL_ERR)
    params: dict[str, dict] = {p["name"]: dict(p) for p, _ in norm_params}
    if "lumi" in types:
        if not sigma > 0 and compat == "root":
            raise InvalidFormat(
                f"LumiRelErr=0 makes ROOT hold Lumi constant at {lumi:g} on every sample, "
                "which a pyhf lumi parameter (width > 0) cannot express; give LumiRelErr > 0 "
                "with <ParamSetting Const=\"True\">Lumi</ParamSetting> (the same model)",
                where)
        if not sigma > 0:
            raise InvalidFormat("LumiRelErr must be > 0 when a sample has "
                                "NormalizeByTheory='True'", where)
        params["lumi"] = {"name": "lumi", "auxdata": [lumi], "sigmas": [sigma],
                          "bounds": [[lumi - 5 * sigma, lumi + 5 * sigma]], "inits": [lumi]}
    poi = None
    for child in el:
        if child.tag == "POI":
            names = (child.text or "").split()
            if not names:
                raise InvalidFormat("empty <POI>", where)
            if len(names) > 1:
                warnings.warn(f"{where}: several POIs {names}; pyhf workspaces have one, "
                              f"using {names[0]!r}", HistFactoryXMLWarning, stacklevel=3)
            poi = names[0]
        elif child.tag == "ParamSetting":
            _param_setting(child, file, types, params, compat)
        elif child.tag == "ConstraintTerm":
            raise InvalidFormat(
                f"<ConstraintTerm Type={child.get('Type')!r}> (non-Gaussian constraint on "
                f"{(child.text or '').strip()!r}) has no pyhf equivalent", where)
        elif child.tag == "Asimov":
            warnings.warn(f"{where}: <Asimov> data set definition skipped (not part of the "
                          "model)", HistFactoryXMLWarning, stacklevel=3)
        else:
            _unknown_child(child, el, file, "POI, ParamSetting, ConstraintTerm, Asimov")
    if poi is None:
        raise InvalidFormat(f"measurement {name!r} has no <POI>", where)
    return {"name": name, "config": {"poi": poi, "parameters": list(params.values())}}


def _param_setting(el: ET.Element, file: Path, types, params: dict[str, dict],
                   compat: str) -> None:
    _check_attrs(el, file)
    where = _where(file, el)
    update: dict[str, Any] = {}
    if _bool(el, "Const", file, False):
        update["fixed"] = True
    if el.get("Val") is not None:
        update["inits"] = [_float(el, "Val", file)]
    for root_name in (el.text or "").split():
        name = _pyhf_name(root_name, types, where)
        if name is None and compat == "root" and root_name in ("Lumi", "lumi"):
            continue  # ROOT's Lumi, the constant 1 here (see _apply_root_lumi)
        if name is None:
            warnings.warn(f"{where}: ParamSetting names {root_name!r}, which is no parameter "
                          "of the model; ignored", HistFactoryXMLWarning, stacklevel=4)
            continue
        params.setdefault(name, {"name": name}).update(update)


def _dedupe(params: list[tuple[dict, str]]) -> list[tuple[dict, str]]:
    seen: dict[str, tuple[dict, str]] = {}
    for cfg, where in params:
        if cfg["name"] in seen and seen[cfg["name"]][0] != cfg:
            first, first_where = seen[cfg["name"]]
            raise InvalidFormat(
                f"parameter {cfg['name']!r} configured differently here ({cfg}) and at "
                f"{first_where} ({first})", where)
        seen.setdefault(cfg["name"], (cfg, where))
    return list(seen.values())


# ---------------------------------------------------------------------------
# public import API
# ---------------------------------------------------------------------------


def xml_to_workspace(path: str | os.PathLike, basedir: str | os.PathLike | None = None, *,
                     compat: str = "root") -> dict:
    """Read a HistFactory XML setup into a pyhf workspace dict.

    Parameters
    ----------
    path : str or os.PathLike
        The top-level ``combination.xml`` (``<Combination>`` with ``<Input>`` channel files
        and ``<Measurement>`` elements).
    basedir : str or os.PathLike, optional
        Folder that relative paths in the XML (channel files, ``InputFile``) are relative
        to. Default: the folder of ``path``, then its parent, then the current directory.
    compat : {"root", "pyhf"}
        ``"root"``: ROOT HistFactory's semantics (Poisson stat errors with a 5% threshold
        by default, Gaussian ShapeSys by default, every sample scaled by ``Lumi``).
        ``"pyhf"``: the numbers of ``pyhf.readxml.parse``. See the module docstring.

    Returns
    -------
    dict
        A pyhf workspace (``channels``, ``observations``, ``measurements``, ``version``).

    Raises
    ------
    nextstat.errors.InvalidFormat
        Missing files or histograms, malformed XML, unknown elements or attributes,
        inconsistent binning, features without a pyhf equivalent.
    """
    if compat not in ("root", "pyhf"):
        raise ValueError(f"compat must be 'root' or 'pyhf', not {compat!r}")
    top_path = Path(os.fspath(path))
    top = _parse_xml(top_path, "Combination")
    _check_attrs(top, top_path)
    resolver = _Resolver(top_path, basedir)
    try:
        channels, norm_params, approximated = _read_channels(top, top_path, resolver, compat)
    finally:
        resolver.close()
    if approximated:
        warnings.warn(
            "Poisson-constrained stat errors shared by several samples have no exact pyhf "
            f"equivalent; using Gaussian staterror with the same width in: "
            f"{', '.join(approximated)}", HistFactoryXMLWarning, stacklevel=2)
    measurement_els = [el for el in top if el.tag == "Measurement"]
    if not measurement_els:
        raise InvalidFormat("no <Measurement> element", _where(top_path))
    if compat == "root":
        _apply_root_lumi(channels, [_lumi_setting(el, top_path) for el in measurement_els])
    spec_channels = [
        {"name": ch.name, "samples": [
            {"name": s.name, "data": s.data.tolist(), "modifiers": s.modifiers}
            for s in ch.samples]}
        for ch in channels
    ]
    types = _modifier_types(spec_channels)
    measurements = [
        _measurement(el, top_path, types, norm_params, compat) for el in measurement_els
    ]
    return {
        "channels": spec_channels,
        "observations": [{"name": ch.name, "data": ch.observed.tolist()} for ch in channels],
        "measurements": measurements,
        "version": "1.0.0",
    }


def _read_channels(top, top_path, resolver, compat):
    channels: list[_Channel] = []
    norm_params: list[tuple[dict, str]] = []
    approximated: list[str] = []
    for child in top:
        if child.tag == "Input":
            text = (child.text or "").strip()
            if not text:
                raise InvalidFormat("empty <Input>", _where(top_path, child))
            file = resolver.find(text, _where(top_path, child), "channel XML")
            reader = _ChannelReader(resolver, file, compat)
            ch = reader.read(_parse_xml(file, "Channel", top_path.name))
            if any(c.name == ch.name for c in channels):
                raise InvalidFormat(f"channel {ch.name!r} defined twice", ch.where)
            if len(ch.observed) != len(ch.samples[0].data):
                raise InvalidFormat("data and samples have different bin counts", ch.where)
            flagged = _stat_modifiers(ch, compat)
            if flagged:
                approximated.append(flagged)
            channels.append(ch)
            norm_params.extend(reader.params)
        elif child.tag == "Function":
            raise InvalidFormat("<Function> (preprocess functions) is not supported",
                                _where(top_path, child))
        elif child.tag != "Measurement":
            _unknown_child(child, top, top_path, "Input, Measurement")
    if not channels:
        raise InvalidFormat("no <Input> channel files", _where(top_path))
    return channels, _dedupe(norm_params), approximated


def from_xml(path: str | os.PathLike, measurement: str | None = None,
             interpolation: Any = None, *, basedir: str | os.PathLike | None = None,
             compat: str = "root"):
    """Build a :class:`~nextstat.model.histfactory.HistFactoryModel` from HistFactory XML.

    Parameters
    ----------
    path : str or os.PathLike
        The ``combination.xml``.
    measurement : str, optional
        Measurement name (default: the first).
    interpolation : {"pyhf", "root"} or mapping, optional
        Interpolation codes. Default: :data:`ROOT_INTERPOLATION` (normsys code4, histosys
        code4p), what ROOT 6.40 builds from these files, which are also pyhf's defaults.
        The ``"root"`` preset (code1/code0, named after classic ROOT HistFactory) is not
        what ROOT 6.40 builds. See :func:`nextstat.from_pyhf`.
    basedir : str or os.PathLike, optional
        See :func:`xml_to_workspace`.
    compat : {"root", "pyhf"}
        See :func:`xml_to_workspace`.

    Returns
    -------
    HistFactoryModel
        ``model.spec`` is the converted workspace.
    """
    from .pyhf import from_pyhf

    spec = xml_to_workspace(path, basedir, compat=compat)
    if interpolation is None:
        interpolation = dict(ROOT_INTERPOLATION)
    return from_pyhf(spec, measurement=measurement, interpolation=interpolation)


# ---------------------------------------------------------------------------
# export
# ---------------------------------------------------------------------------


_SAFE = re.compile(r"[^A-Za-z0-9_]")


class _Names:
    """Unique ROOT-safe object names."""

    def __init__(self):
        self.used: set[str] = set()

    def __call__(self, *parts: str) -> str:
        base = "_".join(_SAFE.sub("_", p) for p in parts if p) or "h"
        name, i = base, 1
        while name in self.used:
            i += 1
            name = f"{base}_{i}"
        self.used.add(name)
        return name


def _workspace_of(model_or_workspace) -> dict:
    from ..model.workspace import load_workspace_spec

    spec = getattr(model_or_workspace, "spec", model_or_workspace)
    return load_workspace_spec(spec)


def to_xml(model_or_workspace, outdir: str | os.PathLike, prefix: str = "nextstat") -> Path:
    """Write a workspace as HistFactory XML + one ROOT file.

    Parameters
    ----------
    model_or_workspace : HistFactoryModel, dict, str or os.PathLike
        A model (its ``spec`` is written) or a pyhf workspace (dict, JSON text or path).
    outdir : str or os.PathLike
        Output folder (created). Receives ``combination.xml``, ``<prefix>_<channel>.xml``
        per channel and ``<prefix>_data.root``; paths inside are relative to it.
    prefix : str
        File-name prefix.

    Returns
    -------
    pathlib.Path
        The path of ``combination.xml``.

    Raises
    ------
    nextstat.errors.InvalidFormat
        The workspace uses something HistFactory XML cannot express: more than one
        staterror name in a channel, measurement ``auxdata``/``sigmas`` on parameters
        other than ``lumi``, or a channel without observations.

    Notes
    -----
    Stat errors are stored as the ``sumw2`` of the nominal histogram with
    ``<StatErrorConfig RelErrorThreshold="0" ConstraintType="Gaussian"/>``; ShapeSys as
    relative histograms with ``ConstraintType="Poisson"``; samples with a ``lumi``
    modifier get ``NormalizeByTheory="True"``, the others ``"False"``; a workspace without
    ``lumi`` gets ``Lumi="1.0" LumiRelErr="0.0"`` (ROOT: the constant 1). When only some
    samples have ``lumi``, a :class:`HistFactoryXMLWarning` says that ROOT (and
    :func:`from_xml` with ``compat="root"``) scales the others by ``Lumi`` too.
    NormFactor ``Val``/``Low``/``High`` come from the first measurement; fixed parameters
    and non-default inits go to ``ParamSetting`` (ROOT names ``alpha_X``, ``Lumi``). Bins
    are ``[0, 1), [1, 2), ...``.
    """
    import uproot

    ws = _workspace_of(model_or_workspace)
    _warn_partial_lumi(ws)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    root_name = f"{prefix}_data.root"
    names = _Names()
    hists: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}
    types = {m["name"]: m["type"] for ch in ws["channels"] for s in ch["samples"]
             for m in s["modifiers"]}
    combination = ET.Element("Combination", OutputFilePrefix=f"./results/{prefix}")
    for ch in ws["channels"]:
        channel_el = _export_channel(ch, ws, root_name, names, hists)
        fname = names(prefix, ch["name"]) + ".xml"
        _write_xml(channel_el, out / fname, "Channel")
        ET.SubElement(combination, "Input").text = fname
    for meas in ws["measurements"]:
        combination.append(_export_measurement(meas, types))
    with uproot.recreate(out / root_name) as f:
        for hname, (values, sumw2) in hists.items():
            f[hname] = _th1(hname, values, sumw2)
    path = out / "combination.xml"
    _write_xml(combination, path, "Combination")
    return path


def _warn_partial_lumi(ws: dict) -> None:
    without = [f"{ch['name']}/{s['name']}" for ch in ws["channels"] for s in ch["samples"]
               if not any(m["type"] == "lumi" for m in s["modifiers"])]
    n_samples = sum(len(ch["samples"]) for ch in ws["channels"])
    if without and len(without) < n_samples:
        shown = ", ".join(without[:6]) + (f" and {len(without) - 6} more"
                                          if len(without) > 6 else "")
        warnings.warn(
            f"samples without a lumi modifier ({shown}) are written with "
            "NormalizeByTheory=\"False\", but ROOT's HistFactory (6.40) multiplies every sample "
            "by Lumi: hist2workspace and "
            "from_xml(compat='root') build another model from these files; "
            "from_xml(compat='pyhf') and pyhf's reader build this one", HistFactoryXMLWarning,
            stacklevel=3)


def _th1(name: str, values: np.ndarray, sumw2: np.ndarray | None):
    from uproot.writing.identify import to_TAxis, to_TH1x

    n = len(values)
    edges = np.arange(n + 1, dtype=np.float64)
    flow = np.concatenate([[0.0], values, [0.0]])
    w2 = np.concatenate([[0.0], sumw2, [0.0]]) if sumw2 is not None else np.array([])
    axis = to_TAxis("xaxis", "", n, 0.0, float(n), edges)
    total = float(np.sum(values))
    return to_TH1x(name, name, flow, total, total, float(np.sum(w2)),
                   float(np.sum(values * (edges[:-1] + 0.5))), 0.0, w2, axis)


def _write_xml(el: ET.Element, path: Path, doctype: str) -> None:
    ET.indent(el)
    text = ET.tostring(el, encoding="unicode")
    dtd = "HistFactorySchema.dtd"
    path.write_text(f"<?xml version='1.0' encoding='UTF-8'?>\n"
                    f"<!DOCTYPE {doctype} SYSTEM '{dtd}'>\n{text}\n", encoding="utf-8")


def _export_channel(ch: dict, ws: dict, root_name: str, names: _Names, hists: dict):
    cname = ch["name"]
    obs = next((o for o in ws.get("observations", []) if o["name"] == cname), None)
    if obs is None:
        raise InvalidFormat(f"channel {cname!r} has no observation; HistFactory XML needs "
                            "<Data>", f"channels[{cname}]")
    stat_names = {m["name"] for s in ch["samples"] for m in s["modifiers"]
                  if m["type"] == "staterror"}
    if len(stat_names) > 1:
        raise InvalidFormat(f"several staterror names {sorted(stat_names)} in one channel; "
                            "HistFactory XML has one stat error per channel",
                            f"channels[{cname}]")
    el = ET.Element("Channel", Name=cname, InputFile=root_name)
    data_name = names(cname, "data")
    hists[data_name] = (np.asarray(obs["data"], dtype=float), None)
    ET.SubElement(el, "Data", HistoName=data_name)
    ET.SubElement(el, "StatErrorConfig", RelErrorThreshold="0", ConstraintType="Gaussian")
    params = {p["name"]: p for p in ws["measurements"][0]["config"]["parameters"]}
    for s in ch["samples"]:
        el.append(_export_sample(cname, s, names, hists, params))
    return el


def _export_sample(cname: str, s: dict, names: _Names, hists: dict, params: dict):
    nominal = np.asarray(s["data"], dtype=float)
    hname = names(cname, s["name"])
    mods = s["modifiers"]
    lumi = any(m["type"] == "lumi" for m in mods)
    el = ET.Element("Sample", Name=s["name"], HistoName=hname,
                    NormalizeByTheory=str(lumi))
    sumw2 = None
    for m in mods:
        t, mname = m["type"], m["name"]
        if t == "normfactor":
            p = params.get(mname, {})
            lo, hi = p.get("bounds", [[0.0, 10.0]])[0]
            ET.SubElement(el, "NormFactor", Name=mname, Val=repr(float(p.get("inits", [1.0])[0])),
                          Low=repr(float(lo)), High=repr(float(hi)))
        elif t == "normsys":
            ET.SubElement(el, "OverallSys", Name=mname, High=repr(float(m["data"]["hi"])),
                          Low=repr(float(m["data"]["lo"])))
        elif t == "histosys":
            up, down = names(cname, s["name"], mname, "up"), names(cname, s["name"], mname, "down")
            hists[up] = (np.asarray(m["data"]["hi_data"], dtype=float), None)
            hists[down] = (np.asarray(m["data"]["lo_data"], dtype=float), None)
            ET.SubElement(el, "HistoSys", Name=mname, HistoNameHigh=up, HistoNameLow=down)
        elif t == "staterror":
            sumw2 = np.asarray(m["data"], dtype=float) ** 2
            ET.SubElement(el, "StatError", Activate="True")
        elif t == "shapesys":
            rel_name = names(cname, s["name"], mname, "rel")
            delta = np.asarray(m["data"], dtype=float)
            rel = np.divide(delta, nominal, out=np.zeros_like(delta), where=nominal != 0)
            hists[rel_name] = (rel, None)
            ET.SubElement(el, "ShapeSys", Name=mname, HistoName=rel_name,
                          ConstraintType="Poisson")
        elif t == "shapefactor":
            attrs = {"Name": mname}
            if params.get(mname, {}).get("fixed"):
                attrs["Const"] = "True"
            ET.SubElement(el, "ShapeFactor", **attrs)
    hists[hname] = (nominal, sumw2)
    return el


_ROOT_PREFIX = {"normsys": "alpha_", "histosys": "alpha_"}


def _export_measurement(meas: dict, types: dict[str, str]) -> ET.Element:
    cfg = meas["config"]
    lumi, sigma = DEFAULT_LUMI, 0.0
    const: list[str] = []
    vals: list[tuple[str, float]] = []
    where = f"measurements[{meas['name']}]"
    for p in cfg["parameters"]:
        name = p["name"]
        mtype = types.get(name)
        if mtype is None:
            continue  # pyhf ignores entries for unknown parameters
        if name == "lumi":
            lumi, sigma = float(p["auxdata"][0]), float(p["sigmas"][0])
            root_name = "Lumi"
        else:
            if "auxdata" in p or "sigmas" in p:
                raise InvalidFormat(f"auxdata/sigmas for {name!r} cannot be written as "
                                    "HistFactory XML", where)
            root_name = _ROOT_PREFIX.get(mtype, "") + name
        if mtype in ("staterror", "shapesys"):
            if p.get("fixed") or "inits" in p:
                warnings.warn(f"{where}: fixed/inits of gamma parameter {name!r} cannot be "
                              "written as HistFactory XML; dropped", HistFactoryXMLWarning,
                              stacklevel=3)
            continue
        if p.get("fixed") and mtype != "shapefactor":
            const.append(root_name)
        default = lumi if name == "lumi" else 0.0 if mtype in _ROOT_PREFIX else 1.0
        if "inits" in p and mtype not in ("normfactor", "shapefactor") \
                and float(p["inits"][0]) != default:
            vals.append((root_name, float(p["inits"][0])))
    rel = sigma / lumi if lumi else 0.0
    el = ET.Element("Measurement", Name=meas["name"], Lumi=repr(lumi), LumiRelErr=repr(rel),
                    ExportOnly="True")
    ET.SubElement(el, "POI").text = cfg["poi"]
    if const:
        ET.SubElement(el, "ParamSetting", Const="True").text = " ".join(const)
    for root_name, val in vals:
        ET.SubElement(el, "ParamSetting", Val=repr(val)).text = root_name
    return el
