"""A slow, plain NumPy reference of the HistFactory likelihood.

Written independently of the compiled tables: it walks the workspace (channels, samples,
modifiers) and applies each modifier with vectorised NumPy, and it derives the code-4
polynomial by solving its boundary conditions instead of using the closed-form inverse
matrix of the C header. Tests compare it with the compiled path at 1e-12; it is not meant
for speed.
"""

from __future__ import annotations

import numpy as np
from scipy.special import gammaln, xlogy

__all__ = ["reference_expected_main", "reference_nll", "interp_delta", "interp_factor"]


def _code4_coefficients(lo: float, hi: float) -> np.ndarray:
    """c_1..c_6 of kappa(a) = 1 + sum c_i a^i matching exp branches at a = +-1 (value, 1st, 2nd)."""
    powers = np.arange(1, 7)
    rows, rhs = [], []
    for x, delta, sign in ((1.0, hi, 1.0), (-1.0, lo, -1.0)):
        ln = np.log(delta)
        rows.append(x ** powers)
        rhs.append(delta - 1.0)
        rows.append(powers * x ** (powers - 1))
        rhs.append(sign * delta * ln)
        rows.append(powers * (powers - 1) * x ** (powers - 2.0))
        rhs.append(delta * ln * ln)
    return np.linalg.solve(np.array(rows), np.array(rhs))


def interp_factor(code: str, alpha: float, lo: float, hi: float) -> float:
    """Multiplicative factor kappa(alpha) for interpolation ``code`` on factors (lo, 1, hi)."""
    if code in ("0", "2", "4p"):
        return 1.0 + float(interp_delta(code, alpha, np.array([lo]), np.array([1.0]),
                                        np.array([hi]))[0])
    if code == "1" or abs(alpha) >= 1.0:
        return hi ** alpha if alpha >= 0 else lo ** (-alpha)
    c = _code4_coefficients(lo, hi)
    return 1.0 + float(np.sum(c * alpha ** np.arange(1, 7)))


def interp_delta(code: str, alpha: float, lo, nom, hi) -> np.ndarray:
    """Additive shift Delta(alpha) per bin for interpolation ``code``."""
    lo, nom, hi = (np.asarray(x, dtype=float) for x in (lo, nom, hi))
    a = float(alpha)
    if code == "0":
        return a * (hi - nom) if a > 0 else a * (nom - lo)
    if code == "2":
        quad = 0.5 * (hi + lo) - nom
        lin = 0.5 * (hi - lo)
        if a > 1:
            return (hi - nom) + (lin + 2 * quad) * (a - 1)
        if a < -1:
            return (lo - nom) + (lin - 2 * quad) * (a + 1)
        return quad * a * a + lin * a
    if code == "4p":
        up, down = hi - nom, nom - lo
        if a > 1:
            return a * up
        if a < -1:
            return a * down
        s = 0.5 * (up + down)
        asym = (up - down) / 16.0
        return a * s + a * a * asym * (15 - 10 * a**2 + 3 * a**4)
    return np.array(
        [n * (interp_factor(code, a, lo_i / n, hi_i / n) - 1.0) for lo_i, n, hi_i in
         zip(lo, nom, hi, strict=True)]
    )


def _sample_rates(model, s: dict, theta: np.ndarray) -> np.ndarray:
    sets = {ps.name: ps for ps in model.layout.param_sets}
    codes = model.interpolation_codes()
    nom = np.asarray(s["data"], dtype=float)
    factor = np.ones_like(nom)
    delta = np.zeros_like(nom)
    for mod in s["modifiers"]:
        ps = sets[mod["name"]]
        kind = mod["type"]
        if kind in ("normfactor", "lumi"):
            factor = factor * theta[ps.offset]
        elif kind in ("staterror", "shapesys", "shapefactor"):
            factor = factor * theta[ps.offset:ps.offset + ps.n]
        elif kind == "normsys":
            factor = factor * interp_factor(codes["normsys"], theta[ps.offset],
                                            mod["data"]["lo"], mod["data"]["hi"])
        elif kind == "histosys":
            delta = delta + interp_delta(codes["histosys"], theta[ps.offset],
                                         mod["data"]["lo_data"], nom, mod["data"]["hi_data"])
    return factor * (nom + delta)


def reference_expected_main(model, params) -> np.ndarray:
    """Expected main-bin rates, channels in alphabetical order."""
    theta = np.asarray(params, dtype=float)
    out = []
    for ch in sorted(model.spec["channels"], key=lambda c: c["name"]):
        out.append(sum(_sample_rates(model, s, theta) for s in ch["samples"]))
    return np.concatenate(out)


def reference_nll(model, params, data=None) -> float:
    """pyhf's ``-logpdf``: Poisson main terms + Gaussian / Poisson constraints, all constants."""
    theta = np.asarray(params, dtype=float)
    if data is None:
        data = model.observed_data(include_auxdata=True)
    data = np.asarray(data, dtype=float)
    n_main = model.n_main_bins()
    main = data[:n_main]
    aux = data[n_main:] if data.size > n_main else model.aux_data()
    nu = reference_expected_main(model, theta)
    total = np.sum(nu - xlogy(main, nu) + gammaln(main + 1.0))
    k = 0
    for ps in model.layout.param_sets:
        if ps.constraint is None:
            continue
        th = theta[ps.offset:ps.offset + ps.n]
        a = aux[k:k + ps.n]
        k += ps.n
        if ps.constraint == "gauss":
            sig = np.asarray(ps.sigmas)
            total += np.sum(0.5 * ((a - th) / sig) ** 2 + np.log(sig * np.sqrt(2 * np.pi)))
        else:
            rate = th * np.asarray(ps.factors)
            total += np.sum(rate - xlogy(a, rate) + gammaln(a + 1.0))
    return float(total)
