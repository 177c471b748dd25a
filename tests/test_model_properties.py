"""Property tests of the compiled likelihood on hypothesis-generated workspaces.

Each example is a small random, valid pyhf workspace (1-3 channels, 1-5 bins, 1-3 samples,
a random subset of all seven modifier types on each sample, normfactor ``mu`` as POI) and a
random point inside the parameter bounds. Checked there:

(a) the analytic gradient against central finite differences of the NLL;
(b) the ``parity`` (compensated) and ``fast`` (plain) summation modes against each other;
(c) the compiled NLL against the NumPy reference :func:`nextstat.model.reference.reference_nll`;
(d) ``2 * NLL`` against pyhf 0.7.6's ``-2 logpdf`` (normsys code4, histosys code4p).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nextstat
from nextstat.model.reference import reference_nll

# ---------------------------------------------------------------------------------------------
# tolerances
# ---------------------------------------------------------------------------------------------

#: Central-difference step for the gradient check. The NLL here is a sum of O(30) terms of
#: magnitude up to ~1e3 whose individual rounding (~eps x 1e3 ~ 2e-13 each, not removed by
#: the compensated sum) gives an FD rounding error ~1e-12 / (2 FD_STEP) ~ 1e-7; the
#: truncation error FD_STEP^2 |f'''| / 6 stays below ~1e-7 for |f'''| <~ 1e4 (n / gamma^3
#: with n <= 200, gamma >= 0.5 gives at most ~2e3).
FD_STEP = 1e-5
#: Gradient vs central differences: GRAD_ATOL covers the FD rounding/truncation above with a
#: 10x margin; GRAD_RTOL covers large components (|dNLL/dtheta| up to ~1e3, where the
#: truncation term scales with the curvature). A wrong analytic derivative (a missing factor,
#: a wrong branch) is off by O(1) of the component.
GRAD_ATOL, GRAD_RTOL = 1e-6, 1e-4
#: parity (Kahan-Babuska) vs fast (plain) summation of the same terms: the plain sum of O(30)
#: terms of size <~1e3 errs by ~30 eps x 1e3 ~ 1e-11 absolute, below 1e-10 of an NLL >~ 1.
MODES_RTOL = 1e-10
#: Compiled vs NumPy reference: same formulas in another order and with a linear-solve code-4
#: polynomial; a few ulp of each term.
REFERENCE_RTOL = 1e-12
#: 2 NLL vs pyhf's -2 logpdf (sums of O(30) terms of size up to ~2e3 in both, pyhf summing
#: plainly): a few ulp of the terms, far below 1e-8.
TWICE_NLL_ATOL = 1e-8

PYHF_SETTINGS = {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}}
LUMI_CONFIG = {
    "name": "lumi",
    "auxdata": [1.0],
    "sigmas": [0.02],
    "inits": [1.0],
    "bounds": [[0.8, 1.2]],
}

CHANNEL_NAMES = ("SR", "cr_b", "Alpha")  # mixed case: exercises pyhf's sorted() order
SAMPLE_NAMES = ("signal", "Bkg", "ttbar")
NORMSYS_NAMES = ("ns_a", "ns_b")
HISTOSYS_NAMES = ("hs_a", "hs_b")
OPTIONAL_TYPES = ("lumi", "normsys", "histosys", "staterror", "shapesys", "shapefactor",
                  "normfactor")

#: Where random points are drawn, per parameter kind (all strictly inside pyhf's bounds).
#: The histosys range keeps every rate positive: at most two histosys of at most +-20% each
#: at |alpha| <= 2 leave >= 20% of the nominal.
POINT_RANGES = {
    "normfactor": (0.1, 3.0),
    "shapefactor": (0.2, 3.0),
    "lumi": (0.85, 1.15),
    "normsys": (-4.5, 4.5),
    "histosys": (-2.0, 2.0),
    "staterror": (0.5, 1.5),
    "shapesys": (0.5, 1.5),
}


# ---------------------------------------------------------------------------------------------
# strategies
# ---------------------------------------------------------------------------------------------


def _floats(lo, hi):
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


_normsys_factor = st.one_of(_floats(0.5, 0.95), _floats(1.05, 1.5))


@st.composite
def _modifiers(draw, channel, sample, nominal, is_poi_sample):
    kinds = draw(st.sets(st.sampled_from(OPTIONAL_TYPES)))
    nb = len(nominal)
    mods = []
    if is_poi_sample:
        mods.append({"name": "mu", "type": "normfactor", "data": None})
    if "normfactor" in kinds:
        mods.append({"name": "k_norm", "type": "normfactor", "data": None})
    if "lumi" in kinds:
        mods.append({"name": "lumi", "type": "lumi", "data": None})
    if "normsys" in kinds:
        for name in draw(st.sets(st.sampled_from(NORMSYS_NAMES), min_size=1)):
            mods.append({"name": name, "type": "normsys",
                         "data": {"hi": draw(_normsys_factor), "lo": draw(_normsys_factor)}})
    if "histosys" in kinds:
        for name in draw(st.sets(st.sampled_from(HISTOSYS_NAMES), min_size=1)):
            rel = st.lists(_floats(-0.2, 0.2), min_size=nb, max_size=nb)
            hi = [n * (1.0 + r) for n, r in zip(nominal, draw(rel), strict=True)]
            lo = [n * (1.0 + r) for n, r in zip(nominal, draw(rel), strict=True)]
            mods.append({"name": name, "type": "histosys",
                         "data": {"hi_data": hi, "lo_data": lo}})
    if "staterror" in kinds:
        rel = draw(st.lists(_floats(0.01, 0.3), min_size=nb, max_size=nb))
        mods.append({"name": f"staterror_{channel}", "type": "staterror",
                     "data": [n * r for n, r in zip(nominal, rel, strict=True)]})
    if "shapesys" in kinds:
        rel = draw(st.lists(_floats(0.05, 0.5), min_size=nb, max_size=nb))
        mods.append({"name": f"shapesys_{channel}_{sample}", "type": "shapesys",
                     "data": [n * r for n, r in zip(nominal, rel, strict=True)]})
    if "shapefactor" in kinds:
        mods.append({"name": f"sf_{channel}", "type": "shapefactor", "data": None})
    return mods


@st.composite
def workspaces(draw):
    """A small valid pyhf workspace using any of the seven modifier types."""
    n_channels = draw(st.integers(1, 3))
    channels, observations = [], []
    uses_lumi = False
    for c in range(n_channels):
        cname = CHANNEL_NAMES[c]
        nb = draw(st.integers(1, 5))
        n_samples = draw(st.integers(1, 3))
        samples = []
        for s in range(n_samples):
            sname = SAMPLE_NAMES[s]
            nominal = draw(st.lists(_floats(1.0, 100.0), min_size=nb, max_size=nb))
            mods = draw(_modifiers(cname, sname, nominal, is_poi_sample=(c == 0 and s == 0)))
            uses_lumi |= any(m["type"] == "lumi" for m in mods)
            samples.append({"name": sname, "data": nominal, "modifiers": mods})
        channels.append({"name": cname, "samples": samples})
        obs = draw(st.lists(st.integers(0, 200), min_size=nb, max_size=nb))
        observations.append({"name": cname, "data": [float(x) for x in obs]})
    params = [copy.deepcopy(LUMI_CONFIG)] if uses_lumi else []
    return {
        "channels": channels,
        "observations": observations,
        "measurements": [{"name": "meas", "config": {"poi": "mu", "parameters": params}}],
        "version": "1.0.0",
    }


def _draw_point(data, model):
    """A random parameter vector inside the bounds (fixed parameters at their init)."""
    init = model.suggested_init()
    fixed = model.suggested_fixed()
    bounds = model.suggested_bounds()
    p = np.array(init, dtype=float)
    for ps in model.layout.param_sets:
        lo_r, hi_r = POINT_RANGES[ps.kind]
        for i in range(ps.offset, ps.offset + ps.n):
            if fixed[i]:
                continue
            lo, hi = max(lo_r, bounds[i][0]), min(hi_r, bounds[i][1])
            p[i] = data.draw(_floats(lo, hi), label=model.parameter_names()[i])
    return p


_SETTINGS = dict(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---------------------------------------------------------------------------------------------
# properties
# ---------------------------------------------------------------------------------------------


def test_generator_covers_all_modifier_types():
    """The strategy can produce every modifier type (guards against a silent narrowing)."""
    seen = set()

    @settings(max_examples=40, **_SETTINGS)
    @given(ws=workspaces())
    def collect(ws):
        for ch in ws["channels"]:
            for s in ch["samples"]:
                seen.update(m["type"] for m in s["modifiers"])

    collect()
    assert seen == {"normfactor", "lumi", "normsys", "histosys", "staterror", "shapesys",
                    "shapefactor"}


@settings(max_examples=40, **_SETTINGS)
@given(ws=workspaces(), data=st.data())
def test_gradient_matches_finite_differences(ws, data):
    model = nextstat.from_pyhf(ws)
    p = _draw_point(data, model)
    grad = model.grad_nll(p, mode="parity")
    fd = np.empty_like(p)
    for i in range(p.size):
        e = np.zeros_like(p)
        e[i] = FD_STEP
        fd[i] = (model.nll(p + e, mode="parity") - model.nll(p - e, mode="parity")) / (
            2 * FD_STEP
        )
    np.testing.assert_allclose(grad, fd, rtol=GRAD_RTOL, atol=GRAD_ATOL,
                               err_msg=str(model.parameter_names()))


@settings(max_examples=60, **_SETTINGS)
@given(ws=workspaces(), data=st.data())
def test_parity_and_fast_modes_agree(ws, data):
    model = nextstat.from_pyhf(ws)
    p = _draw_point(data, model)
    parity = model.nll(p, mode="parity")
    fast = model.nll(p, mode="fast")
    assert np.isfinite(parity)
    assert fast == pytest.approx(parity, rel=MODES_RTOL, abs=0)


@settings(max_examples=60, **_SETTINGS)
@given(ws=workspaces(), data=st.data())
def test_matches_numpy_reference(ws, data):
    model = nextstat.from_pyhf(ws)
    p = _draw_point(data, model)
    assert model.nll(p, mode="parity") == pytest.approx(reference_nll(model, p),
                                                       rel=REFERENCE_RTOL, abs=0)


@settings(max_examples=15, **_SETTINGS)
@given(ws=workspaces(), data=st.data())
def test_twice_nll_matches_pyhf(ws, data):
    import pyhf

    pyhf.set_backend("numpy")
    model = nextstat.from_pyhf(ws)
    workspace = pyhf.Workspace(copy.deepcopy(ws))
    pm = workspace.model(modifier_settings=copy.deepcopy(PYHF_SETTINGS))
    pdata = workspace.data(pm)
    assert model.parameter_names() == pm.config.par_names
    np.testing.assert_array_equal(model.observed_data(), pdata)
    p = _draw_point(data, model)
    theirs = float(-2.0 * pm.logpdf(p, pdata)[0])
    assert model.twice_nll(p, mode="parity") == pytest.approx(theirs, rel=0,
                                                               abs=TWICE_NLL_ATOL)
