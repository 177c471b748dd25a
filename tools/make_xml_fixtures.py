"""Generate the HistFactory XML test fixtures in ``tests/data/xml_root/`` with ROOT.

Run with a Python that has ROOT (``pip install root``, ROOT 6.40 alpha); neither the package
nor the tests need ROOT. This ROOT build cannot *read* HistFactory XML (no ``ConfigParser``,
no ``hist2workspace``), but it writes it. For each model defined below this script

1. builds a ``RooStats::HistFactory::Measurement`` with the C++ API,
2. has ROOT write the files that ``hist2workspace`` reads, unchanged, into
   ``<outdir>/<model>/`` (the folder ``hist2workspace`` would run in; the layout of ROOT's
   tutorials):

   * ``data/<model>.root``: every histogram, from ``Measurement::writeToFile`` (which also
     points the Measurement's ``InputFile``/``HistoPath``/``HistoName`` entries at them);
   * ``config/meas.xml`` (``<Combination>``) and ``config/meas_<channel>.xml``, from
     ``Measurement::PrintXML("config")``; paths inside are relative to ``<model>/``;

3. builds ROOT's model from the same Measurement (``MakeModelAndMeasurementFast``), evaluates
   RooFit's NLL at the default point and a few random points, fits it with Minuit2 and
   writes ``<outdir>/<model>.roofit.json`` (the NLL, points and fit helpers are those of
   ``make_hs3_fixtures.py``).

RooFit's NLL has other constants than pyhf's, so the tests compare NLL *differences*.
``PrintXML`` writes no ``ParamSetting Val`` (``Measurement::SetParamValue``) and no
``ShapeFactor Const``; those cannot be checked this way. It stamps the date into each XML
file, so regenerated XML differs in that comment line only.

Usage::

    /tmp/rootenv/bin/python tools/make_xml_fixtures.py [outdir]
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import make_hs3_fixtures as hs3  # noqa: E402  (the sibling script, found through sys.path)

#: Seed of the random parameter points (drawn by ``make_hs3_fixtures._points``).
SEED = 20260806
#: Name of every Measurement, hence of ``config/meas.xml`` and ``config/meas_<channel>.xml``.
MEASUREMENT = "meas"


def _constraint(ROOT, name):
    return getattr(ROOT.RooStats.HistFactory.Constraint, name)


def _add(ROOT, sample, name, mod, tag):
    """Add one modifier; the kinds ``make_hs3_fixtures._add_modifier`` has go there."""
    HF = ROOT.RooStats.HistFactory
    kind = mod[0]
    if kind == "normfactor" and len(mod) == 4:  # (kind, val, low, high)
        sample.AddNormFactor(name, mod[1], mod[2], mod[3])
    elif kind == "shapesys":  # (kind, relative errors, constraint)
        ss = HF.ShapeSys()
        ss.SetName(name)
        ss.SetErrorHist(hs3._hist(ROOT, f"{tag}_{name}_rel", mod[1]))
        ss.SetConstraintType(_constraint(ROOT, mod[2]))
        sample.AddShapeSys(ss)
    else:
        hs3._add_modifier(ROOT, sample, name, mod, tag)


def build_measurement(ROOT, model):
    """Build the ``Measurement`` of one model description, histograms in memory.

    Parameters
    ----------
    ROOT : module
        The ROOT module (``make_hs3_fixtures._roo()``).
    model : dict
        An entry of :data:`MODELS`: ``poi``, ``lumi`` ``(Lumi, LumiRelErr)``, optional
        ``const`` (``AddConstantParam`` names) and ``channels`` with ``data``,
        ``staterror`` ``(RelErrorThreshold, ConstraintType)`` and ``samples`` (``data``,
        ``lumi`` = NormalizeByTheory, ``errors`` = bin errors with ``ActivateStatError`` or
        ``rel_errors`` = a relative stat-error histogram, ``modifiers``).

    Returns
    -------
    ROOT.RooStats.HistFactory.Measurement
    """
    HF = ROOT.RooStats.HistFactory
    meas = HF.Measurement(MEASUREMENT, MEASUREMENT)
    meas.SetOutputFilePrefix("./results/" + MEASUREMENT)
    meas.SetPOI(model["poi"])
    lumi, rel_err = model["lumi"]
    meas.SetLumi(lumi)
    meas.SetLumiRelErr(rel_err)
    for p in model.get("const", []):
        meas.AddConstantParam(p)
    for cname, ch_def in model["channels"].items():
        ch = HF.Channel(cname)
        ch.SetData(hs3._hist(ROOT, f"data_{cname}", ch_def["data"]))
        threshold, ctype = ch_def["staterror"]
        ch.SetStatErrorConfig(threshold, ctype)
        for sname, s_def in ch_def["samples"].items():
            tag = f"{cname}_{sname}"
            sample = HF.Sample(sname)
            sample.SetHisto(hs3._hist(ROOT, f"nom_{tag}", s_def["data"], s_def.get("errors")))
            sample.SetNormalizeByTheory(s_def["lumi"])
            if s_def.get("errors") is not None:  # stat error = the histogram's bin errors
                sample.ActivateStatError()
            elif s_def.get("rel_errors") is not None:  # stat error from a relative histogram
                stat = sample.GetStatError()
                stat.Activate(True)
                stat.SetUseHisto(True)
                stat.SetErrorHist(hs3._hist(ROOT, f"{tag}_stat_rel", s_def["rel_errors"]))
            for mname, mod in s_def.get("modifiers", {}).items():
                _add(ROOT, sample, mname, mod, tag)
            ch.AddSample(sample)
        meas.AddChannel(ch)
    return meas


def write_xml(ROOT, meas, folder: Path, name: str) -> Path:
    """Let ROOT write the histograms and the XML of a Measurement.

    ``Measurement::writeToFile`` writes ``folder/data/<name>.root`` and points the
    Measurement at it, then ``Measurement::PrintXML("config")`` writes ``folder/config/``.
    Both run in ``folder``, so the paths ROOT puts into the XML are relative to it.

    Parameters
    ----------
    ROOT : module
        The ROOT module.
    meas : ROOT.RooStats.HistFactory.Measurement
        The Measurement (from :func:`build_measurement`).
    folder : pathlib.Path
        The fixture folder; replaced if it exists.
    name : str
        Base name of the ROOT file.

    Returns
    -------
    pathlib.Path
        The ``<Combination>`` file, ``folder/config/meas.xml``.
    """
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "data").mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        f = ROOT.TFile(f"data/{name}.root", "RECREATE")
        meas.writeToFile(f)
        f.Close()
        meas.PrintXML("config")
    finally:
        os.chdir(cwd)
    return folder / "config" / f"{MEASUREMENT}.xml"


def _relative_lumi(points, defaults):
    """``make_hs3_fixtures._points`` draws Lumi in [0.97, 1.03]; scale it to the nominal."""
    if "Lumi" in defaults:
        for p in points:
            p["Lumi"] *= defaults["Lumi"]
    return points


def gaussian_gamma_constraints(ws) -> dict:
    """The Gaussian gamma constraints (StatError, ShapeSys) of ROOT's model.

    RooFit normalises each ``Gaussian(nom | gamma, sigma)`` over the range ``[lo, hi]`` of
    its global observable ``nom``; a pyhf workspace cannot express that, so the tests need
    the numbers.

    Parameters
    ----------
    ws : ROOT.RooWorkspace
        The workspace of ``MakeModelAndMeasurementFast``.

    Returns
    -------
    dict
        ``{gamma name: [sigma, lo, hi]}``, sorted by name.
    """
    out = {}
    for pdf in ws.allPdfs():
        if pdf.ClassName() != "RooGaussian" or not pdf.GetName().startswith("gamma_"):
            continue
        nom, gamma = pdf.getX(), pdf.getMean()
        out[gamma.GetName()] = [float(pdf.getSigma().getVal()), float(nom.getMin()),
                                float(nom.getMax())]
    return dict(sorted(out.items()))


def make_fixture(ROOT, name, model, outdir: Path, rng, scratch: str):
    """Write one fixture: ROOT's XML and ROOT file, and RooFit's numbers.

    Parameters
    ----------
    ROOT : module
        The ROOT module.
    name : str
        Fixture name: ``<outdir>/<name>/`` and ``<outdir>/<name>.roofit.json``.
    model : dict
        The model description (see :func:`build_measurement`).
    outdir : pathlib.Path
        Output folder.
    rng : numpy.random.Generator
        Draws the parameter points.
    scratch : str
        Folder where ``MakeModelAndMeasurementFast`` may write its result files.
    """
    meas = build_measurement(ROOT, model)
    combination = write_xml(ROOT, meas, outdir / name, name)
    cwd = os.getcwd()
    os.chdir(scratch)  # MakeModelAndMeasurementFast writes result files
    try:
        ws = ROOT.RooStats.HistFactory.MakeModelAndMeasurementFast(meas)
    finally:
        os.chdir(cwd)
    ROOT.SetOwnership(ws, False)
    mc, nll = hs3._nll(ROOT, ws)
    pars = hs3._floating(mc)
    defaults, points = hs3._points(pars, rng)
    points = _relative_lumi(points, defaults)
    values = [hs3._eval(nll, pars, pt) for pt in [defaults, *points]]
    status, bestfit, nll_min = hs3._fit(ROOT, nll, pars, defaults)
    constant = {}  # the ParamSetting Const parameters: constant in ROOT's model, and their values
    for pname in model.get("const", []):
        var = ws.var(pname)
        assert var.isConstant(), pname
        constant[pname] = float(var.getVal())
    ref = {
        "description": model["description"],
        "root_version": str(ROOT.gROOT.GetVersion()),
        "combination": combination.relative_to(outdir).as_posix(),
        "nll": "createNLL(obsData, Constrain(nuisances), GlobalObservables(globs), Offset(off))",
        "constant": constant,
        "gaussian_gamma_constraints": gaussian_gamma_constraints(ws),
        "points": [defaults, *points],
        "nll_at_points": values,
        "fit_status": status,
        "bestfit": bestfit,
        "nll_bestfit": nll_min,
    }
    (outdir / f"{name}.roofit.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"{name}: {len(pars)} floating parameters, fit status {status}, NLL {nll_min:.6f}")


def _sample(data, modifiers=None, *, lumi=True, errors=None, rel_errors=None):
    return {"data": data, "modifiers": modifiers or {}, "lumi": lumi, "errors": errors,
            "rel_errors": rel_errors}


MODELS = {
    "norm_histo_gauss": {
        "description": "1 channel x 3 bins, Lumi 1 +- 3%: signal (mu, OverallSys, HistoSys); "
        "two backgrounds sharing a Gaussian StatError whose 5% RelErrorThreshold makes bin 0 "
        "(1.4%) constant; a NormFactor (Val 1.2) and an OverallSys made constant by "
        "ParamSetting",
        "poi": "mu",
        "lumi": (1.0, 0.03),
        "const": ["k_bkg", "alpha_pileup"],
        "channels": {
            "SR": {
                "data": [121.0, 66.0, 30.0],
                "staterror": (0.05, "Gaussian"),
                "samples": {
                    "signal": _sample(
                        [5.0, 10.0, 6.0],
                        {
                            "mu": ("normfactor", 1.0, 0.0, 10.0),
                            "sig_xsec": ("normsys", 0.94, 1.05),
                            "jes": ("histosys", [4.6, 9.5, 5.8], [5.3, 10.4, 6.1]),
                        },
                    ),
                    "bkg1": _sample(
                        [80.0, 35.0, 15.0],
                        {
                            "k_bkg": ("normfactor", 1.2, 0.5, 3.0),
                            "jes": ("histosys", [77.0, 34.0, 14.6], [83.5, 36.2, 15.5]),
                            "pileup": ("normsys", 0.97, 1.04),
                        },
                        errors=[1.2, 2.5, 2.0],
                    ),
                    "bkg2": _sample(
                        [30.0, 15.0, 8.0],
                        {"bkg2_norm": ("normsys", 0.9, 1.12)},
                        errors=[0.9, 1.6, 1.2],
                    ),
                },
            }
        },
    },
    "shapes_lumi_poisson": {
        "description": "2 channels x 2 bins, Lumi 2 +- 5%: ShapeFactor shared by SR and CR; "
        "NormalizeByTheory=False fakes with a Poisson ShapeSys (SR) and a Gaussian ShapeSys "
        "(CR); Poisson StatError on one sample per channel (SR: bin errors, CR: relative "
        "error histogram), each with a bin below the 5% threshold",
        "poi": "mu",
        "lumi": (2.0, 0.05),
        "channels": {
            "SR": {
                "data": [70.0, 41.0],
                "staterror": (0.05, "Poisson"),
                "samples": {
                    "signal": _sample([4.0, 7.0], {"mu": ("normfactor", 1.0, 0.0, 10.0)}),
                    "wjets": _sample(
                        [22.0, 11.0],
                        {"sf_w": ("shapefactor",), "xsec": ("normsys", 0.93, 1.08)},
                        errors=[0.8, 1.1],
                    ),
                    "fakes": _sample(
                        [7.0, 5.0],
                        {"fakes_unc": ("shapesys", [0.2, 0.3], "Poisson")},
                        lumi=False,
                    ),
                },
            },
            "CR": {
                "data": [205.0, 98.0],
                "staterror": (0.05, "Poisson"),
                "samples": {
                    "wjets": _sample(
                        [100.0, 50.0],
                        {"sf_w": ("shapefactor",), "xsec": ("normsys", 0.93, 1.08)},
                        rel_errors=[0.03, 0.08],
                    ),
                    "fakes": _sample(
                        [2.0, 1.5],
                        {"fakes_cr": ("shapesys", [0.1, 0.15], "Gaussian")},
                        lumi=False,
                    ),
                },
            },
        },
    },
    "gauss_wide": {
        "description": "1 channel x 2 bins, Lumi constant (ParamSetting): Gaussian StatError "
        "(no threshold) and a Gaussian ShapeSys with relative errors 0.30-0.45, where RooFit "
        "normalises each Gaussian constraint over its global observable's range [0, 10]",
        "poi": "mu",
        "lumi": (1.0, 0.1),
        "const": ["Lumi"],
        "channels": {
            "SR": {
                "data": [9.0, 6.0],
                "staterror": (0.0, "Gaussian"),
                "samples": {
                    "signal": _sample([2.0, 3.0], {"mu": ("normfactor", 1.0, 0.0, 10.0)}),
                    "bkg": _sample(
                        [6.0, 3.0],
                        {"bkg_shape": ("shapesys", [0.3, 0.35], "Gaussian")},
                        errors=[2.4, 1.35],
                    ),
                },
            }
        },
    },
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    default = Path(__file__).resolve().parents[1] / "tests/data/xml_root"
    outdir = (Path(argv[0]) if argv else default).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    ROOT = hs3._roo()
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in MODELS.items():
            make_fixture(ROOT, name, model, outdir, rng, scratch)


if __name__ == "__main__":
    main()
