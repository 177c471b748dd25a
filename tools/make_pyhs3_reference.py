"""pyhs3 as a second opinion on HS3 documents: its NLL at fixed parameter points.

pyhs3 (PyPI) is never a dependency of nextstat or its tests; this script runs in a separate
virtual environment and writes plain JSON that ``tests/test_hs3_pyhs3.py`` reads. Two steps,
two Pythons::

    # 1. the HS3 documents written by nextstat (needs nextstat; run from the repository root)
    python tools/make_pyhs3_reference.py ours

    # 2. pyhs3's NLL on every document (needs only pyhs3)
    python -m venv /tmp/pyhs3env && /tmp/pyhs3env/bin/pip install pyhs3
    /tmp/pyhs3env/bin/python tools/make_pyhs3_reference.py

Step 1 writes ``tests/data/hs3/ours_<case>.json``: ``nextstat.to_hs3`` of zoo models
(``tests/zoo.py``). Step 2 reads those and ROOT's fixtures ``tests/data/hs3/root_*.json``
(``tools/make_hs3_fixtures.py``) and writes ``tests/data/hs3/<name>.pyhs3.json``.

For each document pyhs3 is run on

- ``as_written``: the document unchanged;
- ``adapted`` (only where ``as_written`` fails and an exact rewrite exists): the document with
  the constructs pyhs3 cannot read rewritten into pyhs3's own form, each rewrite describing the
  same likelihood in ROOT's semantics (see :data:`ADAPTATIONS`).

A variant that pyhs3 evaluates gets ``points`` (pyhs3's free parameters: the document's
default values, then :data:`N_POINTS` random points drawn with :data:`SEED`) and ``nll``
(``-log_prob`` of the analysis, constants included). For ROOT's fixtures the variant is also
evaluated at RooFit's points from ``<name>.roofit.json`` (``nll_at_roofit_points``). A variant
that pyhs3 refuses or cannot evaluate gets ``error`` (exception type and message).
"""

from __future__ import annotations

import copy
import json
import sys
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "hs3"

#: Random points per document (after the default values).
N_POINTS = 6
#: Base seed; each document's generator is seeded with ``SEED + crc32(name)``.
SEED = 20260806

#: Zoo cases exported with ``nextstat.to_hs3`` (``ours_<case>.json``), with the interpolation
#: scheme the model is built with. Together they cover normfactor, normsys, histosys,
#: staterror, shapesys, shapefactor (shared across channels) and lumi.
OURS = {
    "coupled_systematics": "pyhf",  # normfactor, normsys + histosys coupled across channels
    "coupled_systematics_root_codes": "root",  # the same with normsys code1, histosys code0
    "staterror_only": "pyhf",  # Gaussian staterror on one sample
    "shared_staterror": "pyhf",  # one staterror shared by three samples
    "shapesys_only": "pyhf",  # Poisson shapesys
    "coupled_shapefactor": "pyhf",  # shapefactor shared by two channels
    "lumi_only": "pyhf",  # lumi (constrained normfactor)
    "measurement_overrides": "pyhf",  # const normsys at 0.5, lumi sigma 0.05, inits
    "all_modifiers": "pyhf",  # everything on four samples
}


def _zoo_name(case: str) -> str:
    return case.removesuffix("_root_codes")


# ---------------------------------------------------------------------------------------
# step 1: our documents
# ---------------------------------------------------------------------------------------


def write_ours(outdir: Path) -> None:
    """Write ``ours_<case>.json`` for every case in :data:`OURS` (needs nextstat)."""
    sys.path.insert(0, str(REPO / "tests"))
    from zoo import zoo_case

    import nextstat
    from nextstat.io.hs3 import to_hs3

    for case, interpolation in OURS.items():
        model = nextstat.from_pyhf(zoo_case(_zoo_name(case)), interpolation=interpolation,
                                   unknown_parameters="ignore")
        path = outdir / f"ours_{case}.json"
        path.write_text(json.dumps(to_hs3(model), indent=1) + "\n")
        print(f"wrote {path.relative_to(REPO)}")


# ---------------------------------------------------------------------------------------
# adaptations: exact rewrites of constructs pyhs3 cannot read
# ---------------------------------------------------------------------------------------


def _histfactory(doc):
    return [d for d in doc["distributions"] if d.get("type") == "histfactory_dist"]


def _staterror_bb_full(doc) -> bool:
    """pyhs3 crashes on every ``staterror`` in HS3's form (errors in the sample data,
    pyhs3's default "BB-lite" mode). pyhs3's own "BB-full" form (``barlow_beeston_method:
    full`` with the errors repeated as modifier ``data.uncertainties``) gives each sample its
    own constraint; that is the same likelihood exactly when a staterror's parameters sit on
    one sample only. The constraint type moves from ROOT's ``constraint_type`` to the key
    pyhs3 reads, ``constraint``. Applicable only if every staterror is on one sample."""
    owners: dict[tuple, int] = {}
    for dist in _histfactory(doc):
        for sample in dist["samples"]:
            for mod in sample.get("modifiers", []):
                if mod["type"] == "staterror":
                    key = tuple(mod["parameters"])
                    owners[key] = owners.get(key, 0) + 1
    if not owners or max(owners.values()) > 1:
        return False
    for dist in _histfactory(doc):
        uses = False
        for sample in dist["samples"]:
            for mod in sample.get("modifiers", []):
                if mod["type"] == "staterror":
                    uses = True
                    mod["data"] = {"uncertainties": list(sample["data"]["errors"])}
                    ctype = mod.pop("constraint_type", mod.get("constraint", "Gauss"))
                    mod["constraint"] = "Gauss" if ctype in ("Gauss", "Gaussian") else ctype
        if uses:
            dist["barlow_beeston_method"] = "full"
    return True


def _shapefactor_type(doc) -> bool:
    """ROOT writes a ShapeFactor as a ``shapesys`` with all ``vals`` 0 (and a Gauss
    ``constraint_type``); pyhs3 refuses such a shapesys when two channels share it. It is the
    standard ``shapefactor`` modifier with the same parameters (what ROOT builds)."""
    changed = False
    for dist in _histfactory(doc):
        for sample in dist["samples"]:
            for k, mod in enumerate(sample.get("modifiers", [])):
                if mod["type"] == "shapesys" and not any(mod["data"]["vals"]):
                    sample["modifiers"][k] = {"name": mod["name"], "type": "shapefactor",
                                              "parameters": list(mod["parameters"])}
                    changed = True
    return changed


#: name -> (rewrite, one-line description); a rewrite returns False if it does not apply.
ADAPTATIONS = {
    "staterror_bb_full": (
        _staterror_bb_full,
        "staterror on one sample rewritten to pyhs3's barlow_beeston_method 'full' form",
    ),
    "shapefactor_type": (
        _shapefactor_type,
        "ROOT's zero-uncertainty shapesys rewritten as a 'shapefactor' modifier",
    ),
}


# ---------------------------------------------------------------------------------------
# step 2: pyhs3
# ---------------------------------------------------------------------------------------


def _analysis_name(doc) -> str:
    names = [a["name"] for a in doc["analyses"]]
    observed = [n for n in names if "obsData" in n]
    return (observed or names)[0]


def _modifier_kinds(doc) -> dict[str, tuple[str, float]]:
    """Parameter -> (modifier type, Gaussian sigma of a constrained normfactor)."""
    sigmas = {d["name"]: d.get("sigma") for d in doc["distributions"]
              if d.get("type") == "gaussian_dist"}
    kinds: dict[str, tuple[str, float]] = {}
    for dist in _histfactory(doc):
        for sample in dist["samples"]:
            for mod in sample.get("modifiers", []):
                kind = mod["type"]
                sigma = 0.0
                if kind == "normfactor" and "constraint_name" in mod:
                    kind, sigma = "lumi", float(sigmas[mod["constraint_name"]])
                for p in mod.get("parameters", [mod.get("parameter", mod["name"])]):
                    kinds.setdefault(p, (kind, sigma))
    return kinds


def _draw_point(rng, names, defaults, bounds, kinds) -> dict[str, float]:
    """alphas in [-1.5, 1.5], gammas in [0.85, 1.15], a lumi within 1.5 sigma of 1, free
    normalisations in [0.8, 1.25] times their default; clipped to the domain. Templates stay
    positive at these points (no histosys clipping question)."""
    point = {}
    for name in names:
        kind, sigma = kinds[name]
        if kind in ("normsys", "histosys"):
            x = rng.uniform(-1.5, 1.5)
        elif kind in ("staterror", "shapesys", "shapefactor"):
            x = rng.uniform(0.85, 1.15)
        elif kind == "lumi":
            x = 1.0 + sigma * rng.uniform(-1.5, 1.5)
        else:
            x = defaults[name] * rng.uniform(0.8, 1.25)
        lo, hi = bounds.get(name, (None, None))
        x = x if lo is None else max(x, lo)
        x = x if hi is None else min(x, hi)
        point[name] = float(x)
    return point


class _Evaluator:
    """pyhs3's ``-log_prob`` of an analysis as a function of its free parameters."""

    def __init__(self, doc: dict):
        import pyhs3
        import pytensor
        from pytensor.graph.traversal import explicit_graph_inputs

        ws = pyhs3.Workspace(**copy.deepcopy(doc))
        point_name = doc["parameter_points"][0]["name"]
        self.model = ws.model(ws.analyses[_analysis_name(doc)], parameter_set=point_name,
                              progress=False)
        log_prob = self.model.log_prob
        self.inputs = list(explicit_graph_inputs([log_prob]))
        self.names = [v.name for v in self.inputs]
        self._fn = pytensor.function(self.inputs, log_prob)
        self.defaults = {p["name"]: float(p["value"])
                         for p in doc["parameter_points"][0]["parameters"]}
        self.bounds = {}
        for dom in doc.get("domains", []):
            for ax in dom.get("axes", []):
                self.bounds[ax["name"]] = (ax.get("min"), ax.get("max"))

    def nll(self, point: dict[str, float]) -> float:
        import numpy as np

        args = [np.asarray(point[n], dtype=np.float64) for n in self.names]
        return -float(np.asarray(self._fn(*args)).reshape(-1)[0])


def _run_variant(doc: dict, name: str, roofit: dict | None) -> dict:
    import numpy as np

    try:
        ev = _Evaluator(doc)
        names = sorted(ev.names)
        kinds = _modifier_kinds(doc)
        rng = np.random.default_rng(SEED + zlib.crc32(name.encode()))
        points = [{n: ev.defaults[n] for n in names}]
        points += [_draw_point(rng, names, ev.defaults, ev.bounds, kinds)
                   for _ in range(N_POINTS)]
        out = {"status": "ok", "points": points, "nll": [ev.nll(p) for p in points]}
        if roofit is not None:
            # RooFit's points name every floating parameter; pyhs3 may bake some as const
            out["nll_at_roofit_points"] = [
                ev.nll({n: p.get(n, ev.defaults.get(n)) for n in names})
                for p in roofit["points"]
            ]
        return out
    except Exception as exc:  # the failure itself is the finding
        return {"status": "error", "error": f"{type(exc).__name__}: {str(exc).strip()}"}


def reference(path: Path) -> dict:
    """pyhs3's numbers for one document (as written, and adapted where that helps)."""
    import pyhs3

    name = path.name.removesuffix(".json")
    doc = json.loads(path.read_text())
    roofit_path = path.with_name(f"{name}.roofit.json")
    roofit = json.loads(roofit_path.read_text()) if roofit_path.exists() else None
    variants = {"as_written": _run_variant(doc, name, roofit)}
    if variants["as_written"]["status"] != "ok":
        adapted = copy.deepcopy(doc)
        applied = [key for key, (rewrite, _) in ADAPTATIONS.items() if rewrite(adapted)]
        if applied:
            run = _run_variant(adapted, name, roofit)
            variants["adapted"] = {"adaptations": applied, **run}
    return {
        "document": path.name,
        "pyhs3_version": pyhs3.__version__,
        "generator": "tools/make_pyhs3_reference.py",
        "nll_definition": "-Workspace.model(analysis, parameter_set=<first point>).log_prob",
        "analysis": _analysis_name(doc),
        "adaptations": {k: d for k, (_, d) in ADAPTATIONS.items()},
        "variants": variants,
    }


def write_references(datadir: Path) -> None:
    """Write ``<name>.pyhs3.json`` for ROOT's fixtures and our documents (needs pyhs3)."""
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    paths = sorted(datadir.glob("root_*.json")) + sorted(datadir.glob("ours_*.json"))
    paths = [p for p in paths if p.name.count(".") == 1]  # not *.roofit.json / *.pyhs3.json
    for path in paths:
        ref = reference(path)
        out = path.with_name(path.name.removesuffix(".json") + ".pyhs3.json")
        out.write_text(json.dumps(ref, indent=1) + "\n")
        summary = ", ".join(
            f"{k}: {v['status']}" + (f" ({v['error'][:70]})" if v["status"] != "ok" else "")
            for k, v in ref["variants"].items()
        )
        print(f"{path.name}: {summary}")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ours"]:
        write_ours(DATA)
    elif not argv:
        write_references(DATA)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
