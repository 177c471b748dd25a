"""Generate the HS3 test fixtures in ``tests/data/hs3/`` with ROOT (RooFit/HistFactory).

Run with a Python that has ROOT (``pip install root``, ROOT 6.40 alpha); neither the package
nor the tests need ROOT. For each model defined below this script

1. builds the HistFactory model with the C++ API (``Measurement``, ``Channel``, ``Sample``,
   ``MakeModelAndMeasurementFast``),
2. exports it to HS3 with ``RooJSONFactoryWSTool`` -> ``<name>.json`` (unchanged ROOT output,
   only re-indented),
3. evaluates RooFit's NLL (``createNLL`` with the constraints and global observables, no
   offset) at a few parameter points, fits it with Minuit2 and writes ``<name>.roofit.json``:
   the points, the NLL at each point and at the best fit, and the best-fit values.

RooFit's NLL has other constants than pyhf's, so the tests compare NLL *differences*.

Usage::

    python tools/make_hs3_fixtures.py [outdir]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

#: Parameter points per model: offsets from the default values, drawn with this seed and
#: kept small enough that no histosys template goes negative (ROOT clips at zero, pyhf not).
SEED = 20260805
N_POINTS = 5


def _roo():
    import ROOT

    ROOT.gROOT.SetBatch(True)
    ROOT.RooMsgService.instance().setGlobalKillBelow(ROOT.RooFit.WARNING)
    return ROOT


def _hist(ROOT, name, values, errors=None):
    h = ROOT.TH1D(name, name, len(values), 0.0, float(len(values)))
    for i, v in enumerate(values):
        h.SetBinContent(i + 1, v)
        if errors is not None:
            h.SetBinError(i + 1, errors[i])
    h.SetDirectory(0)
    ROOT.SetOwnership(h, False)  # HistFactory keeps pointers to it
    return h


def _add_modifier(ROOT, sample, name, mod, tag):
    HF = ROOT.RooStats.HistFactory
    kind = mod[0]
    if kind == "normfactor":
        sample.AddNormFactor(name, 1.0, 0.0, 10.0)
    elif kind == "normsys":
        sample.AddOverallSys(name, mod[1], mod[2])  # (lo, hi)
    elif kind == "histosys":
        hs = HF.HistoSys()
        hs.SetName(name)
        hs.SetHistoLow(_hist(ROOT, f"{tag}_{name}_lo", mod[1]))
        hs.SetHistoHigh(_hist(ROOT, f"{tag}_{name}_hi", mod[2]))
        sample.AddHistoSys(hs)
    elif kind == "shapesys":  # relative uncertainties, Poisson constraint
        ss = HF.ShapeSys()
        ss.SetName(name)
        ss.SetErrorHist(_hist(ROOT, f"{tag}_{name}_rel", mod[1]))
        ss.SetConstraintType(HF.Constraint.Poisson)
        sample.AddShapeSys(ss)
    elif kind == "shapefactor":
        sample.AddShapeFactor(name)
    else:
        raise ValueError(kind)


def build_workspace(ROOT, model):
    """The combined RooWorkspace of one model description."""
    HF = ROOT.RooStats.HistFactory
    meas = HF.Measurement("meas", "meas")
    meas.SetPOI(model["poi"])
    meas.SetLumi(1.0)
    meas.SetLumiRelErr(model.get("lumi_rel_err", 0.02))
    for p in model.get("const", []):
        meas.AddConstantParam(p)
    for cname, ch_def in model["channels"].items():
        ch = HF.Channel(cname)
        ch.SetData(_hist(ROOT, f"data_{cname}", ch_def["data"]))
        threshold, ctype = ch_def.get("staterror", (0.0, "Gaussian"))
        ch.SetStatErrorConfig(threshold, ctype)
        for sname, s_def in ch_def["samples"].items():
            tag = f"{cname}_{sname}"
            sample = HF.Sample(sname)
            sample.SetHisto(_hist(ROOT, f"nom_{tag}", s_def["data"], s_def.get("staterror")))
            sample.SetNormalizeByTheory(s_def.get("lumi", False))
            if s_def.get("staterror") is not None:
                sample.ActivateStatError()
            for mname, mod in s_def.get("modifiers", {}).items():
                _add_modifier(ROOT, sample, mname, mod, tag)
            ch.AddSample(sample)
        meas.AddChannel(ch)
    return HF.MakeModelAndMeasurementFast(meas)


def _nll(ROOT, ws):
    mc = ws.obj("ModelConfig")
    pdf = mc.GetPdf()
    data = ws.data("obsData")
    nll = pdf.createNLL(
        data,
        ROOT.RooFit.Constrain(mc.GetNuisanceParameters()),
        ROOT.RooFit.GlobalObservables(mc.GetGlobalObservables()),
        ROOT.RooFit.Offset("off"),
    )
    ROOT.SetOwnership(nll, False)
    return mc, nll


def _floating(mc):
    pars = list(mc.GetParametersOfInterest()) + list(mc.GetNuisanceParameters())
    return [p for p in pars if not p.isConstant()]


def _points(pars, rng):
    """Random points: alphas in [-1.5, 1.5], constrained gammas within 2 sigma, Lumi within
    1.5 sigma, free parameters in [0.8, 1.25] times their default."""
    defaults = {p.GetName(): p.getVal() for p in pars}
    points = []
    for _ in range(N_POINTS):
        point = {}
        for p in pars:
            name, v, err = p.GetName(), p.getVal(), p.getError()
            if name.startswith("alpha_"):
                x = rng.uniform(-1.5, 1.5)
            elif name.startswith("gamma_") and err > 0:
                x = rng.uniform(1.0 - 2.0 * err, 1.0 + 2.0 * err)
            elif name == "Lumi":
                x = rng.uniform(0.97, 1.03)
            else:
                x = v * rng.uniform(0.8, 1.25)
            point[name] = float(min(max(x, p.getMin()), p.getMax()))
        points.append(point)
    return defaults, points


def _eval(nll, pars, point):
    for p in pars:
        p.setVal(point[p.GetName()])
    return float(nll.getVal())


def _fit(ROOT, nll, pars, defaults):
    for p in pars:
        p.setVal(defaults[p.GetName()])
    minim = ROOT.RooMinimizer(nll)
    minim.setMinimizerType("Minuit2")
    minim.setStrategy(2)
    minim.setEps(1e-6)
    minim.setPrintLevel(-1)
    status = minim.minimize("Minuit2", "Migrad")
    return int(status), {p.GetName(): float(p.getVal()) for p in pars}, float(nll.getVal())


def make_fixture(ROOT, name, model, outdir, rng):
    """Write ``<name>.json`` (HS3 from ROOT) and ``<name>.roofit.json`` (RooFit numbers)."""
    ws = build_workspace(ROOT, model)
    hs3 = json.loads(ROOT.RooJSONFactoryWSTool(ws).exportJSONtoString())
    (outdir / f"{name}.json").write_text(json.dumps(hs3, indent=1) + "\n")

    mc, nll = _nll(ROOT, ws)
    pars = _floating(mc)
    defaults, points = _points(pars, rng)
    values = [_eval(nll, pars, pt) for pt in [defaults, *points]]
    status, bestfit, nll_min = _fit(ROOT, nll, pars, defaults)
    ref = {
        "description": model["description"],
        "root_version": str(ROOT.gROOT.GetVersion()),
        "nll": "createNLL(obsData, Constrain(nuisances), GlobalObservables(globs), Offset(off))",
        "points": [defaults, *points],
        "nll_at_points": values,
        "fit_status": status,
        "bestfit": bestfit,
        "nll_bestfit": nll_min,
    }
    (outdir / f"{name}.roofit.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(f"{name}: {len(pars)} floating parameters, fit status {status}, NLL {nll_min:.6f}")


def _sample(data, modifiers=None, staterror=None, lumi=True):
    return {"data": data, "modifiers": modifiers or {}, "staterror": staterror, "lumi": lumi}


MODELS = {
    "root_norm_histo_stat": {
        "description": "1 channel x 3 bins: signal (mu, lumi, normsys), background (lumi, "
        "histosys, Gaussian staterror, normsys)",
        "poi": "mu",
        "channels": {
            "SR": {
                "data": [58.0, 49.0, 22.0],
                "samples": {
                    "signal": _sample(
                        [5.0, 9.0, 4.0],
                        {"mu": ("normfactor",), "sig_xsec": ("normsys", 0.94, 1.05)},
                    ),
                    "background": _sample(
                        [50.0, 38.0, 15.0],
                        {
                            "jes": ("histosys", [47.0, 36.5, 14.0], [53.5, 39.0, 16.5]),
                            "bkg_norm": ("normsys", 0.9, 1.12),
                        },
                        staterror=[2.0, 1.8, 1.0],
                    ),
                },
            }
        },
    },
    "root_shapesys_shapefactor": {
        "description": "2 channels (SR 2 bins, CR 2 bins): shapefactor shared across channels, "
        "Poisson shapesys on a fakes sample, lumi on MC samples, coupled normsys",
        "poi": "mu",
        "channels": {
            "SR": {
                "data": [31.0, 19.0],
                "samples": {
                    "signal": _sample([5.0, 3.0], {"mu": ("normfactor",)}),
                    "wjets": _sample(
                        [20.0, 10.0],
                        {"sf_w": ("shapefactor",), "xsec": ("normsys", 0.93, 1.08)},
                    ),
                    "fakes": _sample(
                        [6.0, 4.0], {"fakes_unc": ("shapesys", [0.2, 0.3])}, lumi=False
                    ),
                },
            },
            "CR": {
                "data": [104.0, 47.0],
                "samples": {
                    "wjets": _sample(
                        [100.0, 50.0],
                        {"sf_w": ("shapefactor",), "xsec": ("normsys", 0.93, 1.08)},
                    ),
                },
            },
        },
    },
    "root_multichannel_stat": {
        "description": "2 channels: free background norm, per-channel Gaussian staterror on two "
        "samples, coupled histosys and normsys, lumi",
        "poi": "mu",
        "channels": {
            "SR": {
                "data": [22.0, 17.0],
                "samples": {
                    "signal": _sample(
                        [4.0, 6.0],
                        {"mu": ("normfactor",), "jes": ("histosys", [3.7, 5.6], [4.4, 6.5])},
                        staterror=[0.3, 0.4],
                    ),
                    "bkg": _sample(
                        [15.0, 10.0],
                        {
                            "mu_bkg": ("normfactor",),
                            "jes": ("histosys", [14.2, 9.3], [16.1, 10.6]),
                        },
                        staterror=[0.9, 0.8],
                    ),
                },
            },
            "CR": {
                "data": [98.0, 81.0],
                "samples": {
                    "bkg": _sample(
                        [100.0, 80.0],
                        {
                            "mu_bkg": ("normfactor",),
                            "jes": ("histosys", [96.0, 78.0], [104.5, 82.5]),
                            "pileup": ("normsys", 0.97, 1.02),
                        },
                        staterror=[3.0, 2.5],
                    ),
                },
            },
        },
    },
    "root_stat_poisson_threshold": {
        "description": "1 channel x 3 bins: staterror with ROOT's Poisson constraint on one "
        "sample and a 5% relative-error threshold (bin 0 at 2% becomes const), normsys",
        "poi": "mu",
        "channels": {
            "SR": {
                "data": [105.0, 33.0, 14.0],
                "staterror": (0.05, "Poisson"),
                "samples": {
                    "signal": _sample([3.0, 6.0, 4.0], {"mu": ("normfactor",)}),
                    "background": _sample(
                        [100.0, 25.0, 10.0],
                        {"bkg_norm": ("normsys", 0.92, 1.1)},
                        staterror=[2.0, 2.5, 1.5],
                    ),
                },
            }
        },
    },
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    outdir = Path(argv[0]) if argv else Path(__file__).resolve().parents[1] / "tests/data/hs3"
    outdir = outdir.resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    ROOT = _roo()
    rng = np.random.default_rng(SEED)
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as scratch:  # HistFactory writes *_model.root files
        os.chdir(scratch)
        try:
            for name, model in MODELS.items():
                make_fixture(ROOT, name, model, outdir, rng)
        finally:
            os.chdir(cwd)


if __name__ == "__main__":
    main()
