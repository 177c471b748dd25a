"""Small dense linear algebra without BLAS threads.

The matrices met in a fit (the dense block of global parameters, a few to a few hundred
rows) are too small for a threaded BLAS to pay off; on a busy 2-core machine OpenBLAS's
thread hand-offs cost far more than the arithmetic. These loops run single-threaded with
the GIL released.
"""

import numpy as np

from libc.math cimport sqrt


def spd_inverse(const double[:, ::1] a):
    """Inverse of a symmetric positive-definite matrix by Cholesky, ``L L^T = a``.

    Parameters
    ----------
    a : ndarray, shape (n, n)
        Symmetric; only the lower triangle is read.

    Returns
    -------
    inv : ndarray or None
        ``a^{-1}``, or None when a pivot is not positive.
    min_pivot : float
        ``min_k L_kk^2 / a_kk``: the smallest fraction of a diagonal element left after
        eliminating the rows before it (1 for a diagonal matrix, ~0 near singularity).
    """
    cdef Py_ssize_t n = a.shape[0], i, j, k
    if a.shape[1] != n:
        raise ValueError("spd_inverse needs a square matrix")
    lo_arr = np.zeros((n, n))
    inv_arr = np.zeros((n, n))
    cdef double[:, ::1] low = lo_arr
    cdef double[:, ::1] inv = inv_arr
    cdef double s, piv, min_piv = 1.0
    cdef bint ok = True
    with nogil:
        for j in range(n):
            s = a[j, j]
            for k in range(j):
                s -= low[j, k] * low[j, k]
            if not s > 0.0:
                ok = False
                break
            piv = s / a[j, j]
            if piv < min_piv:
                min_piv = piv
            low[j, j] = sqrt(s)
            for i in range(j + 1, n):
                s = a[i, j]
                for k in range(j):
                    s -= low[i, k] * low[j, k]
                low[i, j] = s / low[j, j]
        if ok:
            # inv(L) in place of the upper part of `inv`, column by column: L X = I.
            for j in range(n):
                inv[j, j] = 1.0 / low[j, j]
                for i in range(j + 1, n):
                    s = 0.0
                    for k in range(j, i):
                        s -= low[i, k] * inv[k, j]
                    inv[i, j] = s / low[i, i]
            # a^{-1} = inv(L)^T inv(L); write the lower triangle of the result into `low`.
            for i in range(n):
                for j in range(i + 1):
                    s = 0.0
                    for k in range(i, n):
                        s += inv[k, i] * inv[k, j]
                    low[i, j] = s
    if not ok:
        return None, 0.0
    out = np.tril(lo_arr)
    return out + np.tril(out, -1).T, min_piv
