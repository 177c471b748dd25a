"""Batched, independent maximum-likelihood fits for pseudo-experiments (toys).

:func:`fit_batch` runs one Fisher-scaled L-BFGS-B fit per dataset (row) across OpenMP
threads with the GIL released. Each thread owns its optimizer work buffer and NLL
scratch (allocated once before the loop); every row's fit reads only its own data and
start point, so the results are bitwise identical for any number of threads.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport isfinite, sqrt

from nextstat._ext.lbfgsb cimport (
    LBFGSB_ABNORMAL_LINE_SEARCH,
    LBFGSB_CONVERGED_FTOL,
    LBFGSB_CONVERGED_PGTOL,
    LbfgsbOptions,
    LbfgsbResult,
    lbfgsb_default_options,
    lbfgsb_minimize,
    lbfgsb_work_size,
)
from nextstat._ext.nll cimport CompiledModel, NsModel, ns_fisher_diag, ns_nll
from nextstat._ext.openmp_helpers cimport omp_get_thread_num


cdef struct ToyContext:
    const NsModel* model
    const double* main
    const double* aux
    double constant
    bint kahan
    double* scratch
    const double* scale
    double* xbuf


cdef double _toy_objective(const double* y, double* grad, void* ctx) noexcept nogil:
    """NLL in scaled variables: x = scale * y, dNLL/dy = scale * dNLL/dx."""
    cdef ToyContext* c = <ToyContext*> ctx
    cdef int i, n = c.model.n_par
    cdef double f
    for i in range(n):
        c.xbuf[i] = y[i] * c.scale[i]
    f = ns_nll(c.model, c.xbuf, c.main, c.aux, c.constant, grad, c.kahan, c.scratch)
    if grad != NULL:
        for i in range(n):
            grad[i] *= c.scale[i]
    return f


cdef inline bint _converged(int status, double pg, double accept_pgtol) noexcept nogil:
    if status == LBFGSB_CONVERGED_PGTOL or status == LBFGSB_CONVERGED_FTOL:
        return True
    return status == LBFGSB_ABNORMAL_LINE_SEARCH and pg <= accept_pgtol


cdef void _fit_one(const NsModel* m, double* x, const double* lower, const double* upper,
                   const double* main, const double* aux, double constant, bint kahan,
                   const LbfgsbOptions* opts, int max_restarts, double accept_pgtol,
                   const double* given_scale, double* work, double* scratch, double* buf,
                   double* f_out, int* status_out, int* iter_out,
                   unsigned char* conv_out) noexcept nogil:
    """One Fisher-scaled fit in place, restarted from where it stopped if needed."""
    cdef int n = m.n_par
    cdef double* scale = buf
    cdef double* y = buf + n
    cdef double* ylo = buf + 2 * n
    cdef double* yhi = buf + 3 * n
    cdef double* xbuf = buf + 4 * n
    cdef ToyContext ctx
    cdef LbfgsbResult res
    cdef int i, _attempt, n_iter = 0
    cdef double d
    cdef bint conv = False
    ctx.model = m
    ctx.main = main
    ctx.aux = aux
    ctx.constant = constant
    ctx.kahan = kahan
    ctx.scratch = scratch
    ctx.scale = scale
    ctx.xbuf = xbuf
    res.status = LBFGSB_CONVERGED_PGTOL
    res.f = 0.0
    for i in range(n):
        if x[i] < lower[i]:
            x[i] = lower[i]
        elif x[i] > upper[i]:
            x[i] = upper[i]
    if given_scale != NULL:
        for i in range(n):
            scale[i] = 1.0 if lower[i] == upper[i] else given_scale[i]
    else:
        ns_fisher_diag(m, x, aux, scale, scratch)
        for i in range(n):
            d = scale[i]
            if lower[i] == upper[i] or not (d > 0.0 and d < 1e300):
                scale[i] = 1.0
            else:
                scale[i] = 1.0 / sqrt(d)
    for i in range(n):
        ylo[i] = lower[i] / scale[i]
        yhi[i] = upper[i] / scale[i]
    for _attempt in range(max_restarts + 1):
        for i in range(n):
            y[i] = x[i] / scale[i]
        lbfgsb_minimize(n, y, ylo, yhi, _toy_objective, &ctx, opts, &res, work)
        n_iter = n_iter + res.n_iter
        for i in range(n):
            d = y[i] * scale[i]
            if d < lower[i]:
                d = lower[i]
            elif d > upper[i]:
                d = upper[i]
            x[i] = d
        conv = _converged(res.status, res.proj_grad_norm, accept_pgtol)
        if conv or not isfinite(res.f):
            break
    f_out[0] = res.f
    status_out[0] = res.status
    iter_out[0] = n_iter
    conv_out[0] = conv


def fit_batch(CompiledModel cm, const double[:, ::1] mains, const double[:, ::1] auxs,
              const double[::1] constants, x0, const double[::1] lower,
              const double[::1] upper, bint kahan=False, int n_threads=1,
              int max_iter=2000, double pgtol=1e-6, int max_restarts=3,
              double accept_pgtol=1e-4, scale=None, int m=0):
    """Independent fits of ``B`` datasets, one per row, spread over OpenMP threads.

    Parameters
    ----------
    cm : CompiledModel
    mains : ndarray, shape (B, n_bins)
    auxs : ndarray, shape (B, n_aux)
    constants : ndarray, shape (B,)
        Data-dependent NLL constants of the rows.
    x0 : ndarray, shape (n_par,) or (B, n_par)
        Start point(s).
    lower, upper : ndarray, shape (n_par,)
        Box bounds (``lower == upper`` fixes a parameter).
    kahan : bool
        Parity-mode sums.
    n_threads : int
    max_iter, pgtol, max_restarts, accept_pgtol
        Optimizer settings as in :func:`nextstat.fit` (a run ending in a line-search
        failure with projected gradient <= ``accept_pgtol`` counts as converged).
    m : int
        L-BFGS history length (0: ``clamp(n_par // 20, 5, 10)`` as in ``minimize_nll``).
    scale : ndarray, shape (n_par,), optional
        Variable scales shared by all rows (e.g. from :func:`fisher_scale` at the
        generating point); default: ``1 / sqrt(Fisher diagonal)`` at each row's start.

    Returns
    -------
    x : ndarray, shape (B, n_par)
    nll : ndarray, shape (B,)
    status : ndarray of int32, shape (B,)
        Status of the last optimizer run (:class:`nextstat._ext.lbfgsb.Status`).
    n_iter : ndarray of int32, shape (B,)
    converged : ndarray of bool, shape (B,)
    """
    cdef int n = cm.n_par
    cdef Py_ssize_t B = mains.shape[0], k
    cdef int i
    if n_threads < 1:
        raise ValueError("n_threads must be >= 1")
    if mains.shape[1] != cm.n_bins or auxs.shape[0] != B or constants.shape[0] != B:
        raise ValueError("mains, auxs and constants must have one row per dataset")
    if auxs.shape[1] != cm.n_aux:
        raise ValueError(f"auxs must have {cm.n_aux} columns")
    if lower.shape[0] != n or upper.shape[0] != n:
        raise ValueError("lower and upper must have one entry per parameter")
    x0a = np.asarray(x0, dtype=np.float64)
    if x0a.ndim == 1:
        if x0a.shape[0] != n:
            raise ValueError("x0 must have one entry per parameter")
        x_arr = np.ascontiguousarray(np.broadcast_to(x0a, (B, n)), dtype=np.float64).copy()
    else:
        if x0a.shape[0] != B or x0a.shape[1] != n:
            raise ValueError("x0 must have shape (n_par,) or (B, n_par)")
        x_arr = np.array(x0a, dtype=np.float64, order="C", copy=True)
    nll_arr = np.empty(B)
    status_arr = np.empty(B, dtype=np.int32)
    iter_arr = np.empty(B, dtype=np.int32)
    conv_arr = np.zeros(B, dtype=np.uint8)
    if B == 0:
        return x_arr, nll_arr, status_arr, iter_arr, conv_arr.astype(bool)
    cdef LbfgsbOptions opts
    lbfgsb_default_options(&opts)
    opts.m = m if m > 0 else min(max(n // 20, 5), 10)
    opts.max_iter = max_iter
    opts.pgtol = pgtol
    cdef int nt = n_threads
    if nt > B:
        nt = <int> B
    cdef Py_ssize_t ws = max(lbfgsb_work_size(n, opts.m), 1)
    cdef Py_ssize_t ss = max(cm.c.scratch_size, 1)
    cdef double[:, ::1] work = np.empty((nt, ws))
    cdef double[:, ::1] scratch = np.empty((nt, ss))
    cdef double[:, ::1] buf = np.empty((nt, 5 * n + 1))
    cdef double[:, ::1] x = x_arr
    cdef double[::1] nll = nll_arr
    cdef int[::1] status = status_arr
    cdef int[::1] n_iter = iter_arr
    cdef unsigned char[::1] conv = conv_arr
    cdef const double* ap = NULL
    cdef const double* sp = NULL
    cdef double[::1] scale_v
    if scale is not None:
        scale_v = np.ascontiguousarray(scale, dtype=np.float64)
        if scale_v.shape[0] != n:
            raise ValueError("scale must have one entry per parameter")
        for i in range(n):
            if not (scale_v[i] > 0.0 and isfinite(scale_v[i])):
                raise ValueError("scale must be positive and finite")
        sp = &scale_v[0]
    cdef int tid
    for k in prange(B, nogil=True, num_threads=nt, schedule="dynamic"):
        tid = omp_get_thread_num()
        _fit_one(&cm.c, &x[k, 0], &lower[0], &upper[0], &mains[k, 0],
                 &auxs[k, 0] if cm.n_aux > 0 else ap, constants[k], kahan, &opts,
                 max_restarts, accept_pgtol, sp, &work[tid, 0], &scratch[tid, 0],
                 &buf[tid, 0], &nll[k], &status[k], &n_iter[k], &conv[k])
    return x_arr, nll_arr, status_arr, iter_arr, conv_arr.astype(bool)


def fisher_scale(CompiledModel cm, const double[::1] x, const double[::1] aux):
    """``1 / sqrt(expected Fisher diagonal)`` at ``x`` (1 where it is not positive/finite)."""
    cdef int n = cm.n_par, i
    if x.shape[0] != n:
        raise ValueError("x must have one entry per parameter")
    out = np.empty(n)
    cdef double[::1] o = out
    cdef double[::1] scratch = np.empty(max(cm.c.scratch_size, 1))
    cdef double d
    ns_fisher_diag(&cm.c, &x[0], &aux[0] if aux.shape[0] > 0 else NULL, &o[0], &scratch[0])
    for i in range(n):
        d = o[i]
        o[i] = 1.0 / sqrt(d) if (d > 0.0 and d < 1e300) else 1.0
    return out
