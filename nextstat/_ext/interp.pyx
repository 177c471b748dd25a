"""Vectorised Python face of the interpolation codes in ``kernels/histfactory_math.h``.

The model kernel calls the same C functions per bin; this module exposes them on NumPy
arrays (for tests, plots and users who want to look at an interpolation curve). Codes are
named as in :mod:`nextstat.model.interpolation`: ``"0"``, ``"1"``, ``"2"``, ``"4"``, ``"4p"``
(``4``, ``"code4"`` ... are accepted too).

Multiplicative codes (1, 4) act on factors ``lo = I-/I0``, ``hi = I+/I0`` and return
kappa(alpha); additive codes (0, 2, 4p) act on yields ``(lo, nom, hi)`` and return
Delta(alpha). Either kind of code can be asked for either quantity: :func:`interp_factor`
applies an additive code to the triple ``(lo, 1, hi)`` and :func:`interp_delta` applies a
multiplicative code to the ratios ``lo/nom``, ``hi/nom`` (``Delta = nom (kappa - 1)``).
"""

import numpy as np

from ..errors import InvalidParameters
from ..model.interpolation import CODE_IDS, normalize_code

__all__ = ["interp_factor", "interp_delta"]


cdef extern from "histfactory_math.h" nogil:
    double ns_interp_factor(int code, double a, double lo, double hi, double* d)
    double ns_interp_delta(int code, double a, double lo, double nom, double hi, double* d)


#: Codes that act on ratios and so need positive inputs.
_MULTIPLICATIVE = (CODE_IDS["1"], CODE_IDS["4"])


def _code_id(code):
    """Identifier of ``code`` (``NS_CODE*``); unknown codes raise ``InvalidModel``."""
    return CODE_IDS[normalize_code(code)]


def _as_float_array(x, name):
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidParameters(f"{name} must be a number or an array of numbers ({exc})") \
            from None
    if not np.all(np.isfinite(arr)):
        raise InvalidParameters(f"{name} contains non-finite values")
    return arr


def _broadcast(names, arrays):
    """Broadcast ``arrays`` and return their shape and flat contiguous float64 copies."""
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays))
    except ValueError:
        shapes = ", ".join(f"{n} {a.shape}" for n, a in zip(names, arrays))
        raise InvalidParameters(f"shapes do not broadcast: {shapes}") from None
    flat = [np.ascontiguousarray(np.broadcast_to(a, shape), dtype=np.float64).ravel()
            for a in arrays]
    return shape, flat


def _require_positive(names, arrays, code):
    for n, a in zip(names, arrays):
        if np.any(a <= 0.0):
            raise InvalidParameters(
                f"{n} must be > 0 for the multiplicative interpolation code {code!r}"
            )


cdef void _factor_loop(int code, const double[::1] a, const double[::1] lo,
                       const double[::1] hi, double[::1] val, double[::1] der) noexcept nogil:
    cdef Py_ssize_t i
    cdef double d
    for i in range(a.shape[0]):
        val[i] = ns_interp_factor(code, a[i], lo[i], hi[i], &d)
        der[i] = d


cdef void _delta_loop(int code, const double[::1] a, const double[::1] lo,
                      const double[::1] nom, const double[::1] hi, double[::1] val,
                      double[::1] der) noexcept nogil:
    cdef Py_ssize_t i
    cdef double d
    for i in range(a.shape[0]):
        val[i] = ns_interp_delta(code, a[i], lo[i], nom[i], hi[i], &d)
        der[i] = d


def interp_factor(code, alpha, lo, hi):
    """Multiplicative interpolation factor and its derivative.

    Parameters
    ----------
    code : {"0", "1", "2", "4", "4p"}
        Interpolation code (``4``, ``"code4"`` ... accepted).
    alpha : float or array_like
        Nuisance parameter values.
    lo, hi : float or array_like
        Down / up factors ``I-/I0``, ``I+/I0``; broadcast against ``alpha``. Must be
        positive for codes 1 and 4.

    Returns
    -------
    kappa, dkappa : numpy.ndarray
        kappa(alpha) and d kappa / d alpha, in the broadcast shape of the inputs.

    Raises
    ------
    nextstat.errors.InvalidParameters
        Non-numeric or non-finite input, shapes that do not broadcast, or non-positive
        factors for a multiplicative code.
    nextstat.errors.InvalidModel
        Unknown code.

    Notes
    -----
    code1: kappa = hi^a (a >= 0), lo^-a (a < 0). code4: the code1 exponentials for
    |a| >= 1, inside ``1 + sum_{i=1..6} c_i a^i`` matching value, first and second
    derivative at a = +-1. Additive codes 0, 2, 4p give ``1 + Delta(a; lo, 1, hi)`` (see
    :func:`interp_delta`).

    Examples
    --------
    >>> k, dk = interp_factor("4", [0.5, -0.5], 0.9, 1.15)
    >>> k.round(6).tolist()
    [1.070659, 0.946847]
    """
    cdef int cid = _code_id(code)
    names = ("alpha", "lo", "hi")
    arrays = [_as_float_array(x, n) for x, n in zip((alpha, lo, hi), names)]
    if cid in _MULTIPLICATIVE:
        _require_positive(names[1:], arrays[1:], code)
    shape, (a, lo_f, hi_f) = _broadcast(names, arrays)
    val = np.empty(a.shape[0], dtype=np.float64)
    der = np.empty(a.shape[0], dtype=np.float64)
    cdef const double[::1] av = a, lv = lo_f, hv = hi_f
    cdef double[::1] vv = val, dv = der
    with nogil:
        _factor_loop(cid, av, lv, hv, vv, dv)
    return val.reshape(shape), der.reshape(shape)


def interp_delta(code, alpha, lo, nom, hi):
    """Additive interpolation shift and its derivative.

    Parameters
    ----------
    code : {"0", "1", "2", "4", "4p"}
        Interpolation code (``4``, ``"code4"`` ... accepted).
    alpha : float or array_like
        Nuisance parameter values.
    lo, nom, hi : float or array_like
        Down, nominal and up yields ``I-``, ``I0``, ``I+``; broadcast against ``alpha``.
        All must be positive for codes 1 and 4.

    Returns
    -------
    delta, ddelta : numpy.ndarray
        Delta(alpha) (to be added to ``nom``) and d Delta / d alpha, in the broadcast shape.

    Raises
    ------
    nextstat.errors.InvalidParameters
        Non-numeric or non-finite input, shapes that do not broadcast, or non-positive
        yields for a multiplicative code.
    nextstat.errors.InvalidModel
        Unknown code.

    Notes
    -----
    With ``dp = hi - nom``, ``dm = nom - lo``:

    * code0: ``a dp`` (a > 0), ``a dm`` (a <= 0).
    * code2: ``A a^2 + B a`` for |a| <= 1 with ``A = (hi + lo)/2 - nom``,
      ``B = (hi - lo)/2``; linear continuation ``dp + (B + 2A)(a - 1)`` /
      ``-dm + (B - 2A)(a + 1)`` outside (ROOT's definition, continuous with a continuous
      derivative; pyhf 0.7.6 drops the ``dp`` / ``-dm`` offsets).
    * code4p: ``a dp`` (a > 1), ``a dm`` (a < -1), else
      ``a S + a^2 A (15 - 10 a^2 + 3 a^4)``, ``S = (dp + dm)/2``, ``A = (dp - dm)/16``.
    * codes 1, 4: ``nom (kappa(a; lo/nom, hi/nom) - 1)`` (see :func:`interp_factor`).

    Examples
    --------
    >>> d, dd = interp_delta("2", [1.0, 2.0], 90.0, 100.0, 115.0)
    >>> d.tolist(), dd.tolist()
    ([15.0, 32.5], [17.5, 17.5])
    """
    cdef int cid = _code_id(code)
    names = ("alpha", "lo", "nom", "hi")
    arrays = [_as_float_array(x, n) for x, n in zip((alpha, lo, nom, hi), names)]
    if cid in _MULTIPLICATIVE:
        _require_positive(names[1:], arrays[1:], code)
    shape, (a, lo_f, nom_f, hi_f) = _broadcast(names, arrays)
    val = np.empty(a.shape[0], dtype=np.float64)
    der = np.empty(a.shape[0], dtype=np.float64)
    cdef const double[::1] av = a, lv = lo_f, nv = nom_f, hv = hi_f
    cdef double[::1] vv = val, dv = der
    with nogil:
        _delta_loop(cid, av, lv, nv, hv, vv, dv)
    return val.reshape(shape), der.reshape(shape)
