"""The interpolation codes (``nextstat._ext.interp`` over ``kernels/histfactory_math.h``).

Checked against three independent references:

* pyhf 0.7.6's own interpolators (``pyhf.interpolators.code*``, numpy backend), called the
  way pyhf's modifiers call them;
* the NumPy reference in :mod:`nextstat.model.reference` (which derives the code-4
  polynomial by solving its boundary conditions rather than using the closed-form inverse);
* closed forms and finite differences (hypothesis properties).

pyhf's code2 differs from ours (and from ROOT's) outside |alpha| <= 1; it is compared only
inside, and the difference is pinned down in :func:`test_pyhf_code2_is_discontinuous`.
"""

from __future__ import annotations

import numpy as np
import pyhf
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nextstat._ext.interp import interp_delta, interp_factor

from nextstat.errors import InvalidModel, InvalidParameters
from nextstat.model import reference

# ---------------------------------------------------------------------------------------------
# tolerances
# ---------------------------------------------------------------------------------------------

#: Ours vs pyhf and vs the NumPy reference. Both evaluate the same formulas in a different
#: order (pyhf: ``pow`` and an einsum with the inverse matrix; the reference: ``**`` and a
#: linear solve), so they agree to a few ulp of the *terms* being combined. The tolerance is
#: therefore relative to the scale of the inputs (``max |lo|, |nom|, |hi|``, or 1 for factors)
#: as well as to the result: a Delta that cancels to ~0 cannot be compared purely relatively.
PARITY_RTOL = 1e-12
#: kappa(+-1) = hi / lo and Delta(+-1) = hi - nom / lo - nom: only the rounding of
#: exp(log(x)), of the ratio x / nom or of the polynomial's sum is involved -- a few ulp of the
#: input scale.
VARIATION_RTOL = 1e-13
#: Central finite-difference step for d/dalpha, and the tolerance of the comparison with the
#: returned derivative: truncation h^2 |f'''| / 6 ~ 2e-11 |f'''| and rounding
#: eps |f| / h ~ 2e-11 |f|; 1e-8 of (|f| + |f'| + scale) is above both (observed worst:
#: 6e-11) and far below any formula error, which would be O(1) of the derivative.
FD_STEP = 1e-5
FD_RTOL = 1e-8
#: Points closer than this to a kink (0 for codes 0 and 1; +-1 for the branch switches) are
#: not checked with central differences (the stencil would straddle the kink).
KINK_MARGIN = 10 * FD_STEP
#: One-sided limits at alpha = +-1 are taken at DELTA from the junction, corrected to first
#: order with the returned (or FD second) derivative: error DELTA^2 |f''| / 2 ~ 5e-19 |f''|.
DELTA = 1e-9
#: Value continuity after that correction: rounding only, a few ulp of the input scale.
VALUE_CONT_RTOL = 1e-12
#: First-derivative continuity after the correction: rounding of the derivative polynomial,
#: whose terms reach ~30 x scale (observed worst: 1.3e-15).
DERIV_CONT_RTOL = 1e-12
#: Second derivatives from one-sided 3-point differences of the returned first derivative
#: with step SECOND_STEP: truncation SECOND_STEP^2 |f''''| / 3 (|f''''| reaches ~1e3 x scale
#: for code 4 with factors in [0.3, 3]) and rounding eps |f'| / SECOND_STEP ~ 1e-11 x scale;
#: observed worst 2.7e-7 of (|f''| + scale). A code that matched only value and first
#: derivative would miss by O(scale), five orders above this.
SECOND_STEP = 1e-4
SECOND_DERIV_RTOL = 1e-5

ADDITIVE = ("0", "2", "4p")
MULTIPLICATIVE = ("1", "4")
ALL_CODES = ADDITIVE + MULTIPLICATIVE
PYHF_CLASSES = {"0": "code0", "1": "code1", "2": "code2", "4": "code4", "4p": "code4p"}
#: Where each code switches branch (the only places its derivative may be non-smooth).
KINKS = {"0": (0.0,), "1": (0.0,), "2": (-1.0, 1.0), "4": (-1.0, 1.0), "4p": (-1.0, 1.0)}


def _close(actual, desired, rtol, scale):
    """|actual - desired| <= rtol * (|desired| + scale), elementwise."""
    actual, desired = np.broadcast_arrays(np.asarray(actual, float), np.asarray(desired, float))
    bound = rtol * (np.abs(desired) + np.asarray(scale, float))
    bad = ~(np.abs(actual - desired) <= bound)
    if np.any(bad):
        i = np.flatnonzero(bad.ravel())[0]
        worst = np.max(np.abs(actual - desired) / bound)
        raise AssertionError(
            f"{bad.sum()} of {bad.size} differ beyond rtol={rtol} (scale-relative); first: "
            f"actual {actual.ravel()[i]!r} desired {desired.ravel()[i]!r}; worst ratio {worst:.3g}"
        )


# ---------------------------------------------------------------------------------------------
# pyhf's interpolators
# ---------------------------------------------------------------------------------------------


def _pyhf_interpolate(code, alphas, lo, nom, hi):
    """pyhf ``code*`` on one systematic, one sample: returns [n_alpha, n_bins].

    pyhf builds ``histogramssets`` of shape [n_sys][n_samples][3][n_bins] with the triple
    (down, nominal, up) and calls the interpolator on ``alphasets`` [n_sys][n_alpha]; the
    result is [n_sys][n_samples][n_alpha][n_bins]. codes 0, 2, 4p return the additive shifts,
    codes 1 and 4 the multiplicative factors (not factors minus one).
    """
    histogramssets = [[[list(lo), list(nom), list(hi)]]]
    interpolator = getattr(pyhf.interpolators, PYHF_CLASSES[code])(histogramssets)
    out = interpolator(pyhf.tensorlib.astensor([list(alphas)]))
    return np.asarray(out, dtype=float)[0, 0]


@pytest.fixture(autouse=True, scope="module")
def _numpy_backend():
    pyhf.set_backend("numpy")


def _random_yields(rng, n_bins):
    nom = rng.uniform(1.0, 500.0, n_bins)
    lo = nom * rng.uniform(0.3, 1.7, n_bins)
    hi = nom * rng.uniform(0.3, 1.7, n_bins)
    return lo, nom, hi


def _random_alphas(rng, inside_unit=False):
    special = [0.0, 1.0, -1.0, 1e-300, -1e-300, 1 - 1e-15, -1 + 1e-15, 0.5, -0.5]
    if inside_unit:
        bulk = rng.uniform(-1.0, 1.0, 40)
    else:
        special += [1 + 1e-15, -1 - 1e-15, 5.0, -5.0]
        bulk = rng.uniform(-5.0, 5.0, 40)
    return np.concatenate([special, bulk])


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("code", ALL_CODES)
def test_delta_matches_pyhf(code, seed):
    rng = np.random.default_rng(seed)
    lo, nom, hi = _random_yields(rng, 25)
    alphas = _random_alphas(rng, inside_unit=code == "2")
    theirs = _pyhf_interpolate(code, alphas, lo, nom, hi)
    if code in MULTIPLICATIVE:
        theirs = nom * (theirs - 1.0)
    ours, _ = interp_delta(code, alphas[:, None], lo, nom, hi)
    assert ours.shape == theirs.shape == (alphas.size, nom.size)
    _close(ours, theirs, PARITY_RTOL, np.abs([lo, nom, hi]).max(axis=0))


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("code", ALL_CODES)
def test_factor_matches_pyhf(code, seed):
    """normsys factors: pyhf interpolates the triple (lo, 1, hi)."""
    rng = np.random.default_rng(100 + seed)
    lo = np.concatenate([rng.uniform(0.5, 0.95, 10), rng.uniform(1.05, 1.5, 10)])
    hi = np.concatenate([rng.uniform(1.05, 1.5, 10), rng.uniform(0.5, 0.95, 10)])
    alphas = _random_alphas(rng, inside_unit=code == "2")
    theirs = _pyhf_interpolate(code, alphas, lo, np.ones_like(lo), hi)
    if code in ADDITIVE:
        theirs = 1.0 + theirs
    ours, _ = interp_factor(code, alphas[:, None], lo, hi)
    _close(ours, theirs, PARITY_RTOL, 1.0)


# pyhf values quoted in docs (semantics notes): (lo, nom, hi) = (0.9, 1, 1.15)
PYHF_OBSERVED = {
    "4": {0.5: 1.0706593027800484, -0.5: 0.9468469919640782},
    "1": {0.5: 1.0723805294763609, -0.5: 0.9486832980505138},
}


@pytest.mark.parametrize("code", sorted(PYHF_OBSERVED))
def test_pyhf_observed_values(code):
    for alpha, expected in PYHF_OBSERVED[code].items():
        kappa, _ = interp_factor(code, alpha, 0.9, 1.15)
        assert float(kappa) == pytest.approx(expected, rel=PARITY_RTOL, abs=0)
        pyhf_kappa = _pyhf_interpolate(code, [alpha], [0.9], [1.0], [1.15])[0, 0]
        assert pyhf_kappa == pytest.approx(expected, rel=PARITY_RTOL, abs=0)


def test_pyhf_code2_is_discontinuous():
    """pyhf 0.7.6's code2 jumps at |alpha| = 1; ours (ROOT's) is C1 there.

    pyhf writes the linear branches as (b + 2a)(alpha - 1) for alpha > 1 and, in its
    vectorised implementation, (b - 2a) alpha for alpha < -1 (``alphasets + mask_off`` with
    ``mask_off = 0``; its docstring and ``_slow_code2`` say (b - 2a)(alpha + 1)). Inside it
    agrees with ours; outside it differs by exactly -(I+ - I0) above and by +a below.
    """
    lo, nom, hi = 90.0, 100.0, 115.0
    a_quad = 0.5 * (hi + lo) - nom  # 2.5
    b_lin = 0.5 * (hi - lo)  # 12.5
    eps = 1e-6
    alphas = [1 - eps, 1 + eps, -1 + eps, -1 - eps]
    theirs = _pyhf_interpolate("2", alphas, [lo], [nom], [hi])[:, 0]
    ours, dours = interp_delta("2", alphas, lo, nom, hi)

    # pyhf: the observed jump at +1, from ~I+ - I0 = 15 down to ~0
    assert theirs[0] == pytest.approx(15.0, abs=1e-4)
    assert theirs[1] == pytest.approx(1.75e-5, rel=1e-9)
    # ... and at -1, from ~I- - I0 = -10 to ~2a - b = -7.5
    assert theirs[2] == pytest.approx(lo - nom, abs=1e-4)
    assert theirs[3] == pytest.approx(-7.5, abs=1e-4)

    # ours: continuous, with slopes b + 2a above 1 and b - 2a below -1
    assert ours[1] - ours[0] == pytest.approx(2 * eps * (b_lin + 2 * a_quad), rel=1e-6)
    assert ours[2] - ours[3] == pytest.approx(2 * eps * (b_lin - 2 * a_quad), rel=1e-6)
    np.testing.assert_allclose(dours, [b_lin + 2 * a_quad * (1 - eps), b_lin + 2 * a_quad,
                                       b_lin + 2 * a_quad * (-1 + eps), b_lin - 2 * a_quad],
                               rtol=1e-12)

    # the exact relation outside |alpha| <= 1
    rng = np.random.default_rng(7)
    lo_b, nom_b, hi_b = _random_yields(rng, 20)
    quad = 0.5 * (hi_b + lo_b) - nom_b
    up_alphas = rng.uniform(1.0 + 1e-9, 5.0, 10)
    dn_alphas = rng.uniform(-5.0, -1.0 - 1e-9, 10)
    scale = np.abs([lo_b, nom_b, hi_b]).max(axis=0)
    theirs_up = _pyhf_interpolate("2", up_alphas, lo_b, nom_b, hi_b)
    ours_up, _ = interp_delta("2", up_alphas[:, None], lo_b, nom_b, hi_b)
    _close(theirs_up, ours_up - (hi_b - nom_b), PARITY_RTOL, 10 * scale)
    theirs_dn = _pyhf_interpolate("2", dn_alphas, lo_b, nom_b, hi_b)
    ours_dn, _ = interp_delta("2", dn_alphas[:, None], lo_b, nom_b, hi_b)
    _close(theirs_dn, ours_dn + quad, PARITY_RTOL, 10 * scale)


# ---------------------------------------------------------------------------------------------
# the NumPy reference (nextstat.model.reference)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", ALL_CODES)
def test_matches_numpy_reference(code):
    rng = np.random.default_rng(11)
    lo, nom, hi = _random_yields(rng, 15)
    f_lo = rng.uniform(0.3, 1.7, 15)
    f_hi = rng.uniform(0.3, 1.7, 15)
    scale = np.abs([lo, nom, hi]).max(axis=0)
    for alpha in _random_alphas(rng):
        ours, _ = interp_delta(code, alpha, lo, nom, hi)
        _close(ours, reference.interp_delta(code, alpha, lo, nom, hi), PARITY_RTOL, scale)
        ours_k, _ = interp_factor(code, alpha, f_lo, f_hi)
        ref_k = [reference.interp_factor(code, alpha, a, b)
                 for a, b in zip(f_lo, f_hi, strict=True)]
        _close(ours_k, ref_k, PARITY_RTOL, np.maximum(1.0, np.maximum(f_lo, f_hi)))


# ---------------------------------------------------------------------------------------------
# hypothesis properties
# ---------------------------------------------------------------------------------------------

factors = st.floats(0.3, 3.0)
yields = st.floats(1.0, 1000.0)
codes = st.sampled_from(ALL_CODES)


@st.composite
def triples(draw):
    """(lo, nom, hi) yields with lo, hi within a factor ~3 of the nominal."""
    nom = draw(yields)
    return nom * draw(factors), nom, nom * draw(factors)


def _evaluate(code, kind, alpha, args):
    if kind == "factor":
        return interp_factor(code, alpha, *args)
    return interp_delta(code, alpha, *args)


def _args_and_scale(kind, fl, fh, triple):
    if kind == "factor":
        return (fl, fh), max(1.0, fl, fh)
    return triple, max(abs(x) for x in triple)


def _second_derivative(code, kind, args, x0, direction):
    """f''(x0) from the returned f' at x0, x0 + s h, x0 + 2 s h (one-sided, 2nd order)."""
    xs = x0 + direction * SECOND_STEP * np.arange(3.0)
    _, d = _evaluate(code, kind, xs, args)
    return direction * (-3.0 * d[0] + 4.0 * d[1] - d[2]) / (2.0 * SECOND_STEP)


@settings(max_examples=60)
@given(code=st.sampled_from(("4", "4p")), kind=st.sampled_from(("factor", "delta")),
       fl=factors, fh=factors, triple=triples(), side=st.sampled_from((-1.0, 1.0)))
def test_codes_4_and_4p_are_c2_at_the_junctions(code, kind, fl, fh, triple, side):
    """Value, first and second derivative match across alpha = +-1."""
    args, scale = _args_and_scale(kind, fl, fh, triple)
    inner, outer = side * (1.0 - DELTA), side * (1.0 + DELTA)
    (v_in, v_out), (d_in, d_out) = _evaluate(code, kind, np.array([inner, outer]), args)
    # one-sided second derivatives, each from points on its own side of the junction only
    dd_in = _second_derivative(code, kind, args, inner, -side)
    dd_out = _second_derivative(code, kind, args, outer, side)
    # first-order-corrected limits at the junction
    v_in_lim, v_out_lim = v_in + side * DELTA * d_in, v_out - side * DELTA * d_out
    d_in_lim, d_out_lim = d_in + side * DELTA * dd_in, d_out - side * DELTA * dd_out
    assert abs(v_in_lim - v_out_lim) <= VALUE_CONT_RTOL * (abs(v_out) + scale)
    assert abs(d_in_lim - d_out_lim) <= DERIV_CONT_RTOL * (abs(d_out) + scale)
    assert abs(dd_in - dd_out) <= SECOND_DERIV_RTOL * (abs(dd_out) + scale)


@settings(max_examples=200)
@given(code=codes, kind=st.sampled_from(("factor", "delta")), fl=factors, fh=factors,
       triple=triples(), alpha=st.floats(-5.0, 5.0))
def test_derivative_matches_central_differences(code, kind, fl, fh, triple, alpha):
    if any(abs(alpha - k) < KINK_MARGIN for k in KINKS[code]):
        alpha = alpha + 2 * KINK_MARGIN  # step off the kink (no other kink is that close)
    args, scale = _args_and_scale(kind, fl, fh, triple)
    (f,), (d,) = _evaluate(code, kind, np.array([alpha]), args)
    (fp, fm), _ = _evaluate(code, kind, np.array([alpha + FD_STEP, alpha - FD_STEP]), args)
    fd = (fp - fm) / (2 * FD_STEP)
    assert abs(d - fd) <= FD_RTOL * (abs(f) + abs(d) + scale)


@settings(max_examples=100)
@given(code=codes, fl=factors, fh=factors, triple=triples())
def test_neutral_point_and_unit_variations(code, fl, fh, triple):
    """kappa(0) = 1 and Delta(0) = 0 exactly; alpha = +1 / -1 reproduce up / down."""
    lo, nom, hi = triple
    k, _ = interp_factor(code, [0.0, 1.0, -1.0], fl, fh)
    assert k[0] == 1.0
    _close(k[1:], [fh, fl], VARIATION_RTOL, max(1.0, fl, fh))
    delta, _ = interp_delta(code, [0.0, 1.0, -1.0], lo, nom, hi)
    assert delta[0] == 0.0
    _close(delta[1:], [hi - nom, lo - nom], VARIATION_RTOL, max(lo, nom, hi))


# ---------------------------------------------------------------------------------------------
# the Python face: broadcasting and validation
# ---------------------------------------------------------------------------------------------


def test_broadcasting_and_scalars():
    alphas = np.linspace(-2, 2, 7)
    lo = np.array([0.8, 0.9, 1.1])
    hi = np.array([1.2, 1.3, 0.95])
    k, dk = interp_factor("4", alphas[:, None], lo, hi)
    assert k.shape == dk.shape == (7, 3)
    for j in range(3):
        kj, dkj = interp_factor("code4", alphas, lo[j], hi[j])
        np.testing.assert_array_equal(kj, k[:, j])
        np.testing.assert_array_equal(dkj, dk[:, j])
    k0, dk0 = interp_factor(4, 0.25, 0.9, 1.1)
    assert k0.shape == dk0.shape == ()
    d, dd = interp_delta("4p", [0.5, 1.5], [9.0, 8.0], 10.0, [12.0, 13.0])
    assert d.shape == dd.shape == (2,)
    assert d[1] == pytest.approx(1.5 * 3.0, rel=1e-15)


def test_invalid_inputs():
    with pytest.raises(InvalidParameters, match="broadcast"):
        interp_factor("4", np.zeros(3), np.ones(2), 1.1)
    with pytest.raises(InvalidParameters, match="broadcast"):
        interp_delta("0", np.zeros((2, 3)), 1.0, np.ones(4), 2.0)
    with pytest.raises(InvalidParameters, match="> 0"):
        interp_factor("1", 0.5, 0.0, 1.1)
    with pytest.raises(InvalidParameters, match="> 0"):
        interp_delta("4", 0.5, 1.0, -2.0, 3.0)
    with pytest.raises(InvalidParameters, match="non-finite"):
        interp_factor("0", np.nan, 0.9, 1.1)
    with pytest.raises(InvalidParameters, match="number"):
        interp_delta("0", "abc", 1.0, 2.0, 3.0)
    with pytest.raises(InvalidModel, match="unknown interpolation code"):
        interp_factor("3", 0.5, 0.9, 1.1)
    # additive codes accept non-positive inputs (they are plain linear algebra)
    d, _ = interp_delta("0", -1.0, -1.0, 0.0, 1.0)
    assert float(d) == -1.0
