"""L-BFGS-B: limited-memory quasi-Newton minimisation subject to bounds.

Minimises a smooth ``f(x)`` over the box ``lower <= x <= upper`` (bounds may be
infinite; ``lower == upper`` fixes a variable) with the algorithm of Byrd, Lu, Nocedal
and Zhu [1]_. Each iteration

1. represents the quasi-Newton matrix in the compact limited-memory form of Byrd,
   Nocedal and Schnabel [2]_, ``B = theta I - W M W^T`` with ``W = [Y, theta S]`` built
   from the last ``m`` correction pairs ``s = x_k+1 - x_k``, ``y = g_k+1 - g_k``;
2. finds the generalized Cauchy point: the first local minimiser of the quadratic model
   along the projected steepest-descent path ``P(x - t g)``, walking the breakpoints
   where variables hit their bounds in increasing order (a binary heap), at ``O(m^2)``
   cost per breakpoint;
3. minimises the model over the variables that are free at the Cauchy point (direct
   primal method of [1]_: Sherman-Morrison-Woodbury on the compact form, ``O(m n)`` plus
   a block Cholesky factorisation of a ``2m x 2m`` matrix). When that step leaves the
   box, its projection onto the box (Morales and Nocedal [4]_) is used if it is a
   descent direction that loses no model decrease against the step truncated at the
   box boundary [1]_; otherwise the truncated step is used;
4. searches along ``d = x_bar - x_k`` for a step satisfying the strong Wolfe conditions
   (sufficient decrease ``1e-3``, curvature ``0.9``) with the safeguarded
   cubic/quadratic interpolation of More and Thuente [3]_, never beyond the box
   boundary. The first iteration tries a step of unit length, later ones the full step.

A correction pair is stored only when ``s'y > eps y'y`` (``eps`` the machine epsilon),
which keeps ``B`` positive definite. When the limited-memory matrices become numerically
singular, the direction is not a descent direction, or a line search fails or ends on a
step too short to change ``f``, the memory is discarded and the iteration is retried as
projected steepest descent; a failed retry ends the run (``ABNORMAL_LINE_SEARCH``). A
non-finite objective or gradient at a trial point counts as a failed trial: the line
search halves its distance to the best point and never goes that far again.

The optimizer is a reverse-communication state machine (:c:func:`lbfgsb_init`,
:c:func:`lbfgsb_step`); :c:func:`lbfgsb_minimize` drives it with a C callback and
:class:`LBFGSB` drives the very same code from Python (ask/tell). All state lives in an
``LbfgsbState`` and a caller-owned work buffer: nothing is allocated or shared, so
independent fits can run in parallel without the GIL. The cost of an iteration is
``O(m n)`` besides the objective.

References
----------
.. [1] R. H. Byrd, P. Lu, J. Nocedal and C. Zhu, "A limited memory algorithm for bound
   constrained optimization", SIAM J. Sci. Comput. 16(5), 1190-1208 (1995).
.. [2] R. H. Byrd, J. Nocedal and R. B. Schnabel, "Representations of quasi-Newton
   matrices and their use in limited memory methods", Math. Program. 63, 129-156 (1994).
.. [3] J. J. More and D. J. Thuente, "Line search algorithms with guaranteed sufficient
   decrease", ACM Trans. Math. Softw. 20(3), 286-307 (1994).
.. [4] J. L. Morales and J. Nocedal, "Remark on Algorithm 778: L-BFGS-B", ACM Trans.
   Math. Softw. 38(1), 7 (2011).
"""

import operator
from enum import IntEnum

import numpy as np

from nextstat.errors import FitError, InvalidParameters

from cython.parallel cimport prange
from libc.float cimport DBL_EPSILON
from libc.limits cimport INT_MAX
from libc.math cimport INFINITY, NAN, fabs, isfinite, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cdef extern from *:
    """
    #define NS_LBFGSB_MU 1e-3
    #define NS_LBFGSB_ETA 0.9
    #define NS_LBFGSB_XTOL 0.1
    #define NS_LBFGSB_XTRAPL 1.1
    #define NS_LBFGSB_XTRAPU 4.0
    #define NS_LBFGSB_BIG_STEP 1e10
    """
    # sufficient-decrease and curvature constants of the strong Wolfe conditions
    const double MU "NS_LBFGSB_MU"
    const double ETA "NS_LBFGSB_ETA"
    # relative width of the bracketing interval below which the line search stops
    const double XTOL "NS_LBFGSB_XTOL"
    # extrapolation range of an unbracketed line search step, relative to the last one
    const double XTRAPL "NS_LBFGSB_XTRAPL"
    const double XTRAPU "NS_LBFGSB_XTRAPU"
    # longest step tried along a direction that no bound limits
    const double BIG_STEP "NS_LBFGSB_BIG_STEP"

cdef enum:
    PHASE_START = 0
    PHASE_SEARCH = 1
    PHASE_DONE = 2

cdef enum:
    LS_CONTINUE = 0     # evaluate at ls.stp
    LS_CONVERGED = 1    # accept the point just evaluated
    LS_STOP = 2         # no further progress possible: accept the best point, if any
    LS_ACCEPT_BEST = 3  # accept the best point recorded so far
    LS_FAIL = 4


# ---------------------------------------------------------------------------------------
# small dense helpers
# ---------------------------------------------------------------------------------------

cdef inline double _clip(double v, double lo, double hi) noexcept nogil:
    if v < lo:
        return lo
    if v > hi:
        return hi
    return v


cdef inline double _dot(const double* a, const double* b, int n) noexcept nogil:
    """Dot product with four independent partial sums (deterministic order)."""
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef int i = 0
    while i + 4 <= n:
        s0 += a[i] * b[i]
        s1 += a[i + 1] * b[i + 1]
        s2 += a[i + 2] * b[i + 2]
        s3 += a[i + 3] * b[i + 3]
        i += 4
    while i < n:
        s0 += a[i] * b[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


cdef inline void _dot2(const double* a, const double* b, const double* x, int n,
                       double* ax, double* bx) noexcept nogil:
    """``ax = a'x`` and ``bx = b'x`` in one pass (two partial sums each)."""
    cdef double a0 = 0.0, a1 = 0.0, b0 = 0.0, b1 = 0.0
    cdef int i = 0
    while i + 2 <= n:
        a0 += a[i] * x[i]
        b0 += b[i] * x[i]
        a1 += a[i + 1] * x[i + 1]
        b1 += b[i + 1] * x[i + 1]
        i += 2
    if i < n:
        a0 += a[i] * x[i]
        b0 += b[i] * x[i]
    ax[0] = a0 + a1
    bx[0] = b0 + b1


cdef inline void _axpy2(double alpha, const double* a, double beta, const double* b, double* y,
                        int n) noexcept nogil:
    """``y += alpha a + beta b``."""
    cdef int i
    for i in range(n):
        y[i] += alpha * a[i] + beta * b[i]


cdef inline void _w_times(const LbfgsbState* st, const double* d, double* out) noexcept nogil:
    """``out = W' d = [Y'd, theta S'd]`` (length ``2 nc``)."""
    cdef int k, n = st.n, nc = st.nc
    for k in range(nc):
        _dot2(st.Y + <Py_ssize_t> k * n, st.S + <Py_ssize_t> k * n, d, n, &out[k],
              &out[nc + k])
        out[nc + k] *= st.theta


cdef inline void _add_w_row(const LbfgsbState* st, int i, double alpha,
                            double* v) noexcept nogil:
    """``v += alpha * w_i`` with ``w_i = [Y[i, :], theta S[i, :]]`` the row i of W."""
    cdef int k, nc = st.nc
    cdef Py_ssize_t n = st.n
    cdef double at = alpha * st.theta
    for k in range(nc):
        v[k] += alpha * st.Y[k * n + i]
        v[nc + k] += at * st.S[k * n + i]


cdef bint _cholesky(double* a, int k, int lda) noexcept nogil:
    """In-place Cholesky factorisation ``a = C C'`` of the lower triangle of the ``k x k``
    matrix ``a`` (leading dimension ``lda``). Returns false unless every pivot stays above
    ``eps`` times its original diagonal entry (numerically not positive definite)."""
    cdef int i, j, q
    cdef double s, diag
    for j in range(k):
        diag = a[j * lda + j]
        s = diag
        for q in range(j):
            s -= a[j * lda + q] * a[j * lda + q]
        if not s > DBL_EPSILON * diag:
            return False
        a[j * lda + j] = sqrt(s)
        for i in range(j + 1, k):
            s = a[i * lda + j]
            for q in range(j):
                s -= a[i * lda + q] * a[j * lda + q]
            a[i * lda + j] = s / a[j * lda + j]
    return True


cdef void _solve_lower(const double* c, int k, int lda, double* b) noexcept nogil:
    """``b = C^-1 b`` for lower triangular ``C``."""
    cdef int i, q
    cdef double s
    for i in range(k):
        s = b[i]
        for q in range(i):
            s -= c[i * lda + q] * b[q]
        b[i] = s / c[i * lda + i]


cdef void _solve_upper(const double* c, int k, int lda, double* b) noexcept nogil:
    """``b = C'^-1 b`` for lower triangular ``C``."""
    cdef int i, q
    cdef double s
    for i in range(k - 1, -1, -1):
        s = b[i]
        for q in range(i + 1, k):
            s -= c[q * lda + i] * b[q]
        b[i] = s / c[i * lda + i]


# ---------------------------------------------------------------------------------------
# binary min-heap of variable indices keyed by their breakpoints t[i]
# ---------------------------------------------------------------------------------------

cdef void _sift_down(int* h, int size, int pos, const double* t) noexcept nogil:
    cdef int item = h[pos], child
    cdef double key = t[item]
    while True:
        child = 2 * pos + 1
        if child >= size:
            break
        if child + 1 < size and t[h[child + 1]] < t[h[child]]:
            child += 1
        if t[h[child]] >= key:
            break
        h[pos] = h[child]
        pos = child
    h[pos] = item


cdef void _heapify(int* h, int size, const double* t) noexcept nogil:
    cdef int pos
    for pos in range(size // 2 - 1, -1, -1):
        _sift_down(h, size, pos, t)


# ---------------------------------------------------------------------------------------
# limited-memory matrices
# ---------------------------------------------------------------------------------------

cdef inline Py_ssize_t _ints_as_doubles(Py_ssize_t count) noexcept nogil:
    return (count * <Py_ssize_t> sizeof(int) + <Py_ssize_t> sizeof(double) - 1) \
        // <Py_ssize_t> sizeof(double)


cdef Py_ssize_t lbfgsb_work_size(int n, int m) noexcept nogil:
    """Doubles of scratch one fit with ``n`` variables and history ``m`` needs."""
    if n < 1 or m < 1:
        return 0
    cdef Py_ssize_t nn = n, mm = m
    return 9 * nn + 2 * nn * mm + 12 * mm * mm + 16 * mm + _ints_as_doubles(2 * nn)


cdef void _layout(LbfgsbState* st, double* work) noexcept nogil:
    cdef Py_ssize_t n = st.n, m = st.m
    cdef double* w = work
    st.lo = w
    w += n
    st.hi = w
    w += n
    st.xk = w
    w += n
    st.gk = w
    w += n
    st.d = w
    w += n
    st.xbar = w
    w += n
    st.gbest = w
    w += n
    st.t = w
    w += n
    st.gdrv = w
    w += n
    st.S = w
    w += n * m
    st.Y = w
    w += n * m
    st.SS = w
    w += m * m
    st.SY = w
    w += m * m
    st.YY = w
    w += m * m
    st.Lm = w
    w += m * m
    st.J = w
    w += m * m
    st.K = w
    w += 4 * m * m
    st.Pch = w
    w += m * m
    st.Ech = w
    w += m * m
    st.Sch = w
    w += m * m
    st.Dg = w
    w += m
    st.Dinv = w
    w += m
    st.p = w
    w += 2 * m
    st.c = w
    w += 2 * m
    st.Mp = w
    w += 2 * m
    st.Mc = w
    w += 2 * m
    st.v = w
    w += 2 * m
    st.wrow = w
    w += 2 * m
    st.wg = w
    w += 2 * m
    st.heap = <int*> w
    st.free_list = st.heap + n


cdef void _reset_memory(LbfgsbState* st) noexcept nogil:
    st.nc = 0
    st.head = 0
    st.theta = 1.0


cdef void _push_pair(LbfgsbState* st, const double* s, const double* y) noexcept nogil:
    """Store the pair ``(s, y)`` (replacing the oldest when full) and update the Gram
    matrices ``S'S``, ``S'Y`` and ``Y'Y`` in ``O(m n)``. Pairs are columns of ``S`` and
    ``Y`` (slot ``k`` at offset ``k n``)."""
    cdef int n = st.n, m = st.m, j, k
    cdef double* sk
    cdef double* yk
    cdef double* sj
    cdef double* yj
    cdef double ss, sy, ys, yy
    if st.nc < m:
        k = st.nc
        st.nc += 1
    else:
        k = st.head
        st.head = (st.head + 1) % m
    sk = st.S + <Py_ssize_t> k * n
    yk = st.Y + <Py_ssize_t> k * n
    memcpy(sk, s, n * sizeof(double))
    memcpy(yk, y, n * sizeof(double))
    for j in range(st.nc):
        sj = st.S + <Py_ssize_t> j * n
        yj = st.Y + <Py_ssize_t> j * n
        _dot2(sj, yj, sk, n, &ss, &sy)
        _dot2(sj, yj, yk, n, &ys, &yy)
        st.SS[k * m + j] = ss
        st.SS[j * m + k] = ss
        st.SY[j * m + k] = ys
        st.SY[k * m + j] = sy
        st.YY[k * m + j] = yy
        st.YY[j * m + k] = yy


cdef bint _factor_middle(LbfgsbState* st) noexcept nogil:
    """Prepare products with ``M = [[-D, L'], [L, theta S'S]]^-1``: ``D = diag(s_i'y_i)``,
    ``L`` the strictly lower (older-by-newer) part of ``S'Y``, and the Cholesky factor
    ``J`` of ``theta S'S + L D^-1 L'``. Slots are used in storage order; the age of a slot
    only decides which entries of ``S'Y`` belong to ``L``. Returns false when the
    factorisation breaks down."""
    cdef int m = st.m, nc = st.nc, head = st.head, a, b, q
    cdef double s
    for a in range(nc):
        st.Dg[a] = st.SY[a * m + a]
        st.Dinv[a] = 1.0 / st.Dg[a]
    for a in range(nc):
        for b in range(nc):
            if (a - head + m) % m > (b - head + m) % m:
                st.Lm[a * m + b] = st.SY[a * m + b]
            else:
                st.Lm[a * m + b] = 0.0
    for a in range(nc):
        for b in range(a + 1):
            s = st.theta * st.SS[a * m + b]
            for q in range(nc):
                s += st.Lm[a * m + q] * st.Lm[b * m + q] * st.Dinv[q]
            st.J[a * m + b] = s
    return _cholesky(st.J, nc, m)


cdef void _apply_M(const LbfgsbState* st, const double* v, double* out) noexcept nogil:
    """``out = M v`` for ``v`` of length ``2 nc`` (``out`` must not alias ``v``).

    With ``K = M^-1 = [[-D, L'], [L, T]]``: ``out2 = (J J')^-1 (v2 + L D^-1 v1)`` and
    ``out1 = D^-1 (L' out2 - v1)``."""
    cdef int m = st.m, nc = st.nc, a, b
    cdef double s
    cdef double* o2 = out + nc
    for a in range(nc):
        s = v[nc + a]
        for b in range(nc):
            s += st.Lm[a * m + b] * v[b] * st.Dinv[b]
        o2[a] = s
    _solve_lower(st.J, nc, m, o2)
    _solve_upper(st.J, nc, m, o2)
    for a in range(nc):
        s = -v[a]
        for b in range(nc):
            s += st.Lm[b * m + a] * o2[b]
        out[a] = s * st.Dinv[a]


# ---------------------------------------------------------------------------------------
# generalized Cauchy point and subspace minimisation
# ---------------------------------------------------------------------------------------

cdef bint _cauchy(LbfgsbState* st) noexcept nogil:
    """Generalized Cauchy point ``xbar`` of the model along ``P(x - t g)`` and
    ``c = W'(xbar - x)``. Returns false when the model has no positive curvature along the
    path (a broken limited-memory matrix)."""
    cdef int n = st.n, nc = st.nc, kd = 2 * st.nc, i, b, k, nb = 0, n_moving = 0
    cdef const double* x = st.xk
    cdef const double* g = st.gk
    cdef double* xcp = st.xbar
    cdef double* d = st.d
    cdef double* t = st.t
    cdef int* heap = st.heap
    cdef double theta = st.theta
    cdef double gi, ti, dd = 0.0, gd, dz = 0.0, f1, f2, f2_org, dtm, dt, t_old = 0.0
    cdef double pmp = 0.0, cmp = 0.0, gb, bound, t_min = INFINITY
    for i in range(n):
        xcp[i] = x[i]
        gi = g[i]
        ti = INFINITY
        if gi < 0.0:
            if st.hi[i] < INFINITY:
                ti = (x[i] - st.hi[i]) / gi
        elif gi > 0.0:
            if st.lo[i] > -INFINITY:
                ti = (x[i] - st.lo[i]) / gi
        if gi != 0.0 and ti > 0.0:
            d[i] = -gi
            dd += gi * gi
            n_moving += 1
            if ti < INFINITY:
                t[i] = ti
                heap[nb] = i
                nb += 1
                if ti < t_min:
                    t_min = ti
        else:
            d[i] = 0.0
    for k in range(kd):
        st.c[k] = 0.0
    if nc > 0:
        _w_times(st, d, st.p)
        # W'g = -p plus the rows that do not move although their gradient is non-zero
        for k in range(kd):
            st.wg[k] = -st.p[k]
        for i in range(n):
            if d[i] == 0.0 and g[i] != 0.0:
                _add_w_row(st, i, g[i], st.wg)
        _apply_M(st, st.p, st.Mp)
        pmp = _dot(st.p, st.Mp, kd)
    if n_moving == 0:
        return True
    gd = -dd
    f1 = -dd
    f2 = theta * dd - pmp
    f2_org = f2
    if not f2_org > 0.0:
        return False
    dtm = -f1 / f2
    # The usual case: the model's minimum along the path comes before the first breakpoint,
    # and the heap (O(n) to build) is not needed.
    if dtm < t_min:
        nb = 0
    else:
        _heapify(heap, nb, t)
    while nb > 0:
        b = heap[0]
        dt = t[b] - t_old
        if dtm < dt:
            break
        nb -= 1
        heap[0] = heap[nb]
        _sift_down(heap, nb, 0, t)
        # variable b reaches its bound and stops there
        gb = g[b]
        bound = st.hi[b] if d[b] > 0.0 else st.lo[b]
        xcp[b] = bound
        for k in range(kd):
            st.c[k] += dt * st.p[k]
        dz += dt * dd + gb * (bound - x[b])
        gd += gb * gb
        dd -= gb * gb
        d[b] = 0.0
        n_moving -= 1
        t_old = t[b]
        if n_moving == 0:
            dtm = 0.0
            break
        if nc > 0:
            _add_w_row(st, b, gb, st.p)
            _apply_M(st, st.p, st.Mp)
            pmp = _dot(st.p, st.Mp, kd)
            cmp = _dot(st.c, st.Mp, kd)
        f1 = gd + theta * dz - cmp
        f2 = theta * dd - pmp
        if f2 < DBL_EPSILON * f2_org:
            f2 = DBL_EPSILON * f2_org
        dtm = -f1 / f2
    if dtm < 0.0:
        dtm = 0.0
    t_old += dtm
    for i in range(n):
        if d[i] != 0.0:
            xcp[i] = _clip(x[i] + t_old * d[i], st.lo[i], st.hi[i])
    for k in range(kd):
        st.c[k] += dtm * st.p[k]
    return True


cdef void _gram_update(const LbfgsbState* st, int i, double sign, double beta) noexcept nogil:
    """``K += sign w_i w_i'`` (upper triangle) and ``v += sign beta w_i``, ``w_i`` the row i
    of W."""
    cdef int nc = st.nc, kd = 2 * st.nc, k, q
    cdef Py_ssize_t n = st.n
    cdef double* w = st.wrow
    cdef double wp
    for k in range(nc):
        w[k] = st.Y[k * n + i]
        w[nc + k] = st.theta * st.S[k * n + i]
    for k in range(kd):
        wp = sign * w[k]
        st.v[k] += wp * beta
        for q in range(k, kd):
            st.K[k * kd + q] += wp * w[q]


cdef bint _solve_reduced(LbfgsbState* st) noexcept nogil:
    """Solve ``(M^-1 - A / theta) u = v`` in place (``v`` becomes ``u``), ``A`` the upper
    triangle of ``st.K``. In blocks the matrix is ``[[-P, T], [T', R]]`` with the positive
    definite ``P = D + A11 / theta``, ``T = L' - A12 / theta`` and
    ``R = theta S'S - A22 / theta`` (``theta S'S`` over the bound variables only), so with
    ``P = C C'``, ``E = C^-1 T`` and the Cholesky factor ``G`` of ``R + E'E``:
    ``u2 = (G G')^-1 (v2 + E' C^-1 v1)`` and ``u1 = C'^-1 (E u2 - C^-1 v1)``. Returns
    false when a factorisation breaks down."""
    cdef int m = st.m, nc = st.nc, kd = 2 * st.nc, a, b, q
    cdef double theta = st.theta, s
    cdef double* C = st.Pch
    cdef double* E = st.Ech
    cdef double* G = st.Sch
    cdef double* v1 = st.v
    cdef double* v2 = st.v + nc
    for a in range(nc):
        for b in range(nc):
            if b <= a:
                C[a * m + b] = st.K[b * kd + a] / theta
                G[a * m + b] = theta * st.SS[a * m + b] - st.K[(nc + b) * kd + nc + a] / theta
            E[a * m + b] = st.Lm[b * m + a] - st.K[a * kd + nc + b] / theta
        C[a * m + a] += st.Dg[a]
    if not _cholesky(C, nc, m):
        return False
    for b in range(nc):
        # column b of E = C^-1 T
        for a in range(nc):
            s = E[a * m + b]
            for q in range(a):
                s -= C[a * m + q] * E[q * m + b]
            E[a * m + b] = s / C[a * m + a]
    for a in range(nc):
        for b in range(a + 1):
            s = 0.0
            for q in range(nc):
                s += E[q * m + a] * E[q * m + b]
            G[a * m + b] += s
    if not _cholesky(G, nc, m):
        return False
    _solve_lower(C, nc, m, v1)
    for a in range(nc):
        s = 0.0
        for q in range(nc):
            s += E[q * m + a] * v1[q]
        v2[a] += s
    _solve_lower(G, nc, m, v2)
    _solve_upper(G, nc, m, v2)
    for a in range(nc):
        s = -v1[a]
        for q in range(nc):
            s += E[a * m + q] * v2[q]
        v1[a] = s
    _solve_upper(C, nc, m, v1)
    return True


cdef bint _subspace(LbfgsbState* st) noexcept nogil:
    """Minimise the model over the variables free at the Cauchy point and update ``xbar``.

    With ``Z`` selecting the free variables and ``e = xbar - x``, the reduced gradient is
    ``r = Z'(g + theta e - W M c)`` and the subspace step is, by Sherman-Morrison-Woodbury,
    ``du = -(r + Z'W u / theta) / theta`` with ``(M^-1 - A / theta) u = W'Z r``,
    ``A = W'Z Z'W``. ``A`` and ``W'Z r = W'Z Z'(g + theta e) - A M c`` are summed over the
    free variables or, when fewer are bound, obtained from the stored Gram matrices,
    ``W'g`` and ``c = W'e`` minus the bound variables' share, so that the only ``O(m n)``
    work is the final product ``W (M c - u / theta)``. Returns false when the small
    system is singular."""
    cdef int n = st.n, m = st.m, nc = st.nc, kd = 2 * st.nc, i, j, a, b, k, q
    cdef int nf = 0, na = 0
    cdef int* fl = st.free_list
    cdef const double* x = st.xk
    cdef const double* g = st.gk
    cdef double* xcp = st.xbar
    cdef double* r = st.d
    cdef double theta = st.theta, alpha, du, s
    for i in range(n):
        if st.lo[i] < xcp[i] < st.hi[i]:
            fl[nf] = i
            nf += 1
        else:
            na += 1
            fl[n - na] = i
    st.n_free = nf
    if nf == 0:
        return True
    # A (upper triangle, in K) and W'Z Z'(g + theta e) (in v)
    if nf <= na:
        for k in range(kd * kd):
            st.K[k] = 0.0
        for k in range(kd):
            st.v[k] = 0.0
        for j in range(nf):
            i = fl[j]
            _gram_update(st, i, 1.0, g[i] + theta * (xcp[i] - x[i]))
    else:
        for a in range(nc):
            for b in range(nc):
                st.K[a * kd + b] = st.YY[a * m + b]
                st.K[a * kd + nc + b] = theta * st.SY[b * m + a]
                st.K[(nc + a) * kd + nc + b] = theta * theta * st.SS[a * m + b]
        for k in range(kd):
            st.v[k] = st.wg[k] + theta * st.c[k]
        for j in range(n - na, n):
            i = fl[j]
            _gram_update(st, i, -1.0, g[i] + theta * (xcp[i] - x[i]))
    # v -= A M c
    _apply_M(st, st.c, st.Mc)
    for k in range(kd):
        s = 0.0
        for q in range(k):
            s += st.K[q * kd + k] * st.Mc[q]
        for q in range(k, kd):
            s += st.K[k * kd + q] * st.Mc[q]
        st.v[k] -= s
    if not _solve_reduced(st):
        return False
    # r = g + theta e - W (M c - u / theta), then du = -r / theta on the free variables
    for k in range(kd):
        st.Mc[k] -= st.v[k] / theta
    for i in range(n):
        r[i] = g[i] + theta * (xcp[i] - x[i])
    for k in range(nc):
        _axpy2(-st.Mc[k], st.Y + <Py_ssize_t> k * n, -theta * st.Mc[nc + k],
               st.S + <Py_ssize_t> k * n, r, n)
    # the subspace step du (stored over r) and the longest feasible step along it
    alpha = 1.0
    for j in range(nf):
        i = fl[j]
        du = -r[i] / theta
        r[i] = du
        if du > 0.0 and st.hi[i] - xcp[i] < alpha * du:
            alpha = (st.hi[i] - xcp[i]) / du
        elif du < 0.0 and st.lo[i] - xcp[i] > alpha * du:
            alpha = (st.lo[i] - xcp[i]) / du
    if alpha < 1.0 and _projection_is_better(st, alpha):
        for j in range(nf):
            i = fl[j]
            xcp[i] = _clip(xcp[i] + r[i], st.lo[i], st.hi[i])
    else:
        for j in range(nf):
            i = fl[j]
            xcp[i] = _clip(xcp[i] + alpha * r[i], st.lo[i], st.hi[i])
    return True


cdef bint _projection_is_better(LbfgsbState* st, double alpha) noexcept nogil:
    """Whether the projection ``P(xbar + du)`` of the subspace step onto the box is a
    descent direction with a model value no higher than the truncated ``xbar + alpha du``
    (Morales and Nocedal's variant, kept only when it does not lose model decrease).

    Both points differ from the Cauchy point ``xbar`` by a step ``delta`` over the free
    variables, so the model change is ``r'delta + (theta |delta|^2 - q'M q) / 2`` with
    ``q = W'Z delta``. For ``du`` (``B_F du = -r``) it is ``(alpha - alpha^2 / 2) r'du``;
    for the projection, ``W'Z du = -M^-1 u / theta`` (from ``(M^-1 - A / theta) u = W'Z r``)
    and ``r = -theta du - Z'W u / theta`` reduce the cost to ``O(n + m^2)`` plus ``O(m)``
    per clipped variable. ``du`` is in ``st.d``, ``u`` in ``st.v``."""
    cdef int n = st.n, m = st.m, nc = st.nc, kd = 2 * st.nc, nf = st.n_free, i, j, a, b
    cdef const int* fl = st.free_list
    cdef const double* x = st.xk
    cdef const double* g = st.gk
    cdef const double* xcp = st.xbar
    cdef const double* du = st.d
    cdef const double* u = st.v
    cdef double* q = st.p
    cdef double theta = st.theta, s1, s2, dh, uu, dud, dd, gd_hat = 0.0, r_du, dm_proj
    # q = W'Z du = -M^-1 u / theta
    for a in range(nc):
        s1 = -st.Dg[a] * u[a]
        s2 = 0.0
        for b in range(nc):
            s1 += st.Lm[b * m + a] * u[nc + b]
            s2 += st.Lm[a * m + b] * u[b] + theta * st.SS[a * m + b] * u[nc + b]
        q[a] = s1
        q[nc + a] = s2
    uu = _dot(u, q, kd)  # u'M^-1 u
    for a in range(kd):
        q[a] = -q[a] / theta
    # the projected step: |dh|^2, du'dh, and the clipped rows' share of q = W'Z dh
    dd = 0.0
    dud = 0.0
    s1 = 0.0
    for j in range(nf):
        i = fl[j]
        dh = _clip(xcp[i] + du[i], st.lo[i], st.hi[i]) - xcp[i]
        dd += du[i] * du[i]
        dud += du[i] * dh
        s1 += dh * dh
        gd_hat += g[i] * (xcp[i] + dh - x[i])
        if dh != du[i]:
            _add_w_row(st, i, dh - du[i], q)
    for j in range(nf, n):
        i = fl[j]
        gd_hat += g[i] * (xcp[i] - x[i])
    if not gd_hat < 0.0:
        return False
    _apply_M(st, q, st.Mp)
    dm_proj = -theta * dud - _dot(u, q, kd) / theta + 0.5 * (theta * s1 - _dot(q, st.Mp, kd))
    r_du = -theta * dd + uu / (theta * theta)
    return dm_proj <= (alpha - 0.5 * alpha * alpha) * r_du


# ---------------------------------------------------------------------------------------
# More-Thuente line search
# ---------------------------------------------------------------------------------------

cdef double _cubic_ratio(double a, double fa, double ga, double b, double fb, double gb,
                         double* gamma) noexcept nogil:
    """Minimiser ``a + r (b - a)`` of the cubic with values ``fa, fb`` and slopes
    ``ga, gb`` at ``a, b``; returns ``r`` (and the discriminant root in ``gamma``, 0 when
    the cubic has no local minimiser)."""
    cdef double theta = 3.0 * (fa - fb) / (b - a) + ga + gb
    cdef double s = fabs(theta)
    cdef double disc
    if fabs(ga) > s:
        s = fabs(ga)
    if fabs(gb) > s:
        s = fabs(gb)
    disc = (theta / s) * (theta / s) - (ga / s) * (gb / s)
    gamma[0] = s * sqrt(disc) if disc > 0.0 else 0.0
    if b < a:
        gamma[0] = -gamma[0]
    return ((gamma[0] - ga) + theta) / (((gamma[0] - ga) + gamma[0]) + gb)


cdef void _safeguarded_step(double* stx, double* fx, double* dx, double* sty, double* fy,
                            double* dy, double* stp, double fp, double dp, int* brackt,
                            double stpmin, double stpmax) noexcept nogil:
    """One step of the More-Thuente interval update (their Section 4, cases 1-4).

    ``stx`` is the best step so far, ``sty`` the other end of the interval, ``stp`` the
    step just evaluated (value ``fp``, slope ``dp``). Chooses the next trial step
    (written to ``stp``) by cubic / quadratic / secant interpolation, safeguarded to
    ``[stpmin, stpmax]`` and to the interval once a minimiser is bracketed, and updates
    the interval."""
    cdef double gamma, r, stpc, stpq, stpf
    cdef bint opposite = (dp > 0.0 and dx[0] < 0.0) or (dp < 0.0 and dx[0] > 0.0)
    if fp > fx[0]:
        # case 1: higher value, a minimiser lies between stx and stp
        r = _cubic_ratio(stx[0], fx[0], dx[0], stp[0], fp, dp, &gamma)
        stpc = stx[0] + r * (stp[0] - stx[0])
        stpq = stx[0] + (dx[0] / ((fx[0] - fp) / (stp[0] - stx[0]) + dx[0])) / 2.0 \
            * (stp[0] - stx[0])
        if fabs(stpc - stx[0]) < fabs(stpq - stx[0]):
            stpf = stpc
        else:
            stpf = stpc + (stpq - stpc) / 2.0
        brackt[0] = 1
    elif opposite:
        # case 2: lower value, slopes of opposite sign: bracketed
        r = _cubic_ratio(stp[0], fp, dp, stx[0], fx[0], dx[0], &gamma)
        stpc = stp[0] + r * (stx[0] - stp[0])
        stpq = stp[0] + (dp / (dp - dx[0])) * (stx[0] - stp[0])
        stpf = stpc if fabs(stpc - stp[0]) > fabs(stpq - stp[0]) else stpq
        brackt[0] = 1
    elif fabs(dp) < fabs(dx[0]):
        # case 3: lower value, same slope sign, slope decreasing in magnitude
        r = _cubic_ratio(stp[0], fp, dp, stx[0], fx[0], dx[0], &gamma)
        if r < 0.0 and gamma != 0.0:
            stpc = stp[0] + r * (stx[0] - stp[0])
        elif stp[0] > stx[0]:
            stpc = stpmax
        else:
            stpc = stpmin
        stpq = stp[0] + (dp / (dp - dx[0])) * (stx[0] - stp[0])
        if brackt[0]:
            stpf = stpc if fabs(stpc - stp[0]) < fabs(stpq - stp[0]) else stpq
            if stp[0] > stx[0]:
                if stp[0] + 0.66 * (sty[0] - stp[0]) < stpf:
                    stpf = stp[0] + 0.66 * (sty[0] - stp[0])
            elif stp[0] + 0.66 * (sty[0] - stp[0]) > stpf:
                stpf = stp[0] + 0.66 * (sty[0] - stp[0])
        else:
            stpf = stpc if fabs(stpc - stp[0]) > fabs(stpq - stp[0]) else stpq
            stpf = _clip(stpf, stpmin, stpmax)
    else:
        # case 4: lower value, same slope sign, slope not decreasing
        if brackt[0]:
            r = _cubic_ratio(stp[0], fp, dp, sty[0], fy[0], dy[0], &gamma)
            stpf = stp[0] + r * (sty[0] - stp[0])
        elif stp[0] > stx[0]:
            stpf = stpmax
        else:
            stpf = stpmin
    if fp > fx[0]:
        sty[0] = stp[0]
        fy[0] = fp
        dy[0] = dp
    else:
        if opposite:
            sty[0] = stx[0]
            fy[0] = fx[0]
            dy[0] = dx[0]
        stx[0] = stp[0]
        fx[0] = fp
        dx[0] = dp
    stp[0] = stpf


cdef void _ls_init(LbfgsbLineSearch* ls, double stp, double finit, double ginit,
                   double stpmax) noexcept nogil:
    ls.stp = stp
    ls.stpmax = stpmax
    ls.finit = finit
    ls.ginit = ginit
    ls.gtest = MU * ginit
    ls.brackt = 0
    ls.stage = 1
    ls.width = stpmax
    ls.width1 = 2.0 * stpmax
    ls.stx = 0.0
    ls.fx = finit
    ls.gx = ginit
    ls.sty = 0.0
    ls.fy = finit
    ls.gy = ginit
    ls.stmin = 0.0
    ls.stmax = stp + XTRAPU * stp
    ls.nfev = 0
    ls.has_best = 0
    ls.best_stp = 0.0
    ls.best_f = finit


cdef int _ls_eval(LbfgsbLineSearch* ls, double f, double g) noexcept nogil:
    """Digest ``phi(stp) = f`` and ``phi'(stp) = g``; on ``LS_CONTINUE`` ``ls.stp`` holds
    the next trial step."""
    cdef double stp = ls.stp
    cdef double ftest = ls.finit + stp * ls.gtest
    cdef double fm, fxm, fym, gm, gxm, gym
    ls.nfev += 1
    if ls.stage == 1 and f <= ftest and g >= 0.0:
        ls.stage = 2
    if f <= ftest and fabs(g) <= -ETA * ls.ginit:
        return LS_CONVERGED
    if stp >= ls.stpmax and f <= ftest and g <= ls.gtest:
        return LS_CONVERGED
    if ls.brackt and (stp <= ls.stmin or stp >= ls.stmax):
        return LS_STOP
    if ls.brackt and ls.stmax - ls.stmin <= XTOL * ls.stmax:
        return LS_STOP
    if ls.stage == 1 and f <= ls.fx and f > ftest:
        # work with psi(a) = phi(a) - phi(0) - MU a phi'(0) until psi has a minimiser
        fm = f - stp * ls.gtest
        fxm = ls.fx - ls.stx * ls.gtest
        fym = ls.fy - ls.sty * ls.gtest
        gm = g - ls.gtest
        gxm = ls.gx - ls.gtest
        gym = ls.gy - ls.gtest
        _safeguarded_step(&ls.stx, &fxm, &gxm, &ls.sty, &fym, &gym, &ls.stp, fm, gm,
                          &ls.brackt, ls.stmin, ls.stmax)
        ls.fx = fxm + ls.stx * ls.gtest
        ls.fy = fym + ls.sty * ls.gtest
        ls.gx = gxm + ls.gtest
        ls.gy = gym + ls.gtest
    else:
        _safeguarded_step(&ls.stx, &ls.fx, &ls.gx, &ls.sty, &ls.fy, &ls.gy, &ls.stp, f, g,
                          &ls.brackt, ls.stmin, ls.stmax)
    if ls.brackt:
        if fabs(ls.sty - ls.stx) >= 0.66 * ls.width1:
            ls.stp = ls.stx + 0.5 * (ls.sty - ls.stx)
        ls.width1 = ls.width
        ls.width = fabs(ls.sty - ls.stx)
    if not isfinite(ls.stp):
        ls.stp = 0.5 * (ls.stx + ls.sty) if ls.brackt else ls.stmax
    if ls.brackt:
        ls.stmin = ls.stx if ls.stx < ls.sty else ls.sty
        ls.stmax = ls.sty if ls.stx < ls.sty else ls.stx
    else:
        ls.stmin = ls.stp + XTRAPL * (ls.stp - ls.stx)
        ls.stmax = ls.stp + XTRAPU * (ls.stp - ls.stx)
    ls.stp = _clip(ls.stp, 0.0, ls.stpmax)
    if not ls.stp > 0.0:
        return LS_STOP
    if ls.brackt and (ls.stp <= ls.stmin or ls.stp >= ls.stmax
                      or ls.stmax - ls.stmin <= XTOL * ls.stmax):
        return LS_STOP
    return LS_CONTINUE


cdef int _ls_nonfinite(LbfgsbLineSearch* ls) noexcept nogil:
    """The trial step gave a non-finite value: retreat half-way to the best step and never
    step beyond that again."""
    cdef double bad = ls.stp
    ls.nfev += 1
    if not bad > ls.stx:
        return LS_STOP
    ls.stp = ls.stx + 0.5 * (bad - ls.stx)
    ls.stpmax = ls.stp
    ls.brackt = 0
    ls.sty = ls.stx
    ls.fy = ls.fx
    ls.gy = ls.gx
    ls.stmin = ls.stx
    ls.stmax = ls.stp
    ls.width = ls.stp - ls.stx
    ls.width1 = 2.0 * ls.width
    return LS_CONTINUE


# ---------------------------------------------------------------------------------------
# the state machine
# ---------------------------------------------------------------------------------------

cdef void lbfgsb_default_options(LbfgsbOptions* opts) noexcept nogil:
    """Fill ``opts`` with the defaults: ``m=10, max_iter=1000, max_fev=5000, max_ls=20,
    pgtol=1e-6, ftol=1e-12``."""
    opts.m = 10
    opts.max_iter = 1000
    opts.max_fev = 5000
    opts.max_ls = 20
    opts.pgtol = 1e-6
    opts.ftol = 1e-12


cdef bint lbfgsb_is_terminal(int status) noexcept nogil:
    """True for the statuses that end a run (everything but EVALUATE / NEW_ITERATION)."""
    return status >= LBFGSB_CONVERGED_PGTOL


cdef double _proj_grad_norm(const LbfgsbState* st) noexcept nogil:
    cdef int i
    cdef double gi, v, norm = 0.0
    for i in range(st.n):
        gi = st.gk[i]
        if gi < 0.0:
            v = st.hi[i] - st.xk[i]
            if -gi < v:
                v = -gi
        elif gi > 0.0:
            v = st.xk[i] - st.lo[i]
            if gi < v:
                v = gi
        else:
            v = fabs(gi)  # NaN propagates
        if not v <= norm:
            norm = v
    return norm


cdef int _finish(LbfgsbState* st, double* x, int status) noexcept nogil:
    memcpy(x, st.xk, st.n * sizeof(double))
    st.status = status
    st.phase = PHASE_DONE
    return status


cdef void _write_trial(const LbfgsbState* st, double* x, double stp) noexcept nogil:
    cdef int i
    if stp == 1.0:
        memcpy(x, st.xbar, st.n * sizeof(double))
        return
    for i in range(st.n):
        x[i] = _clip(st.xk[i] + stp * st.d[i], st.lo[i], st.hi[i])


cdef int _begin_iteration(LbfgsbState* st, double* x, int code) noexcept nogil:
    """Compute the search direction from ``xk`` and write the first trial point to ``x``.
    Returns ``code`` (EVALUATE or NEW_ITERATION) or a terminal status."""
    cdef int n = st.n, i
    cdef double di, gd, dn2, stpmax, stp
    while True:
        if (st.nc > 0 and not _factor_middle(st)) or not _cauchy(st) \
                or (st.nc > 0 and not _subspace(st)):
            if st.nc == 0:
                return _finish(st, x, LBFGSB_ABNORMAL_LINE_SEARCH)
            _reset_memory(st)
            continue
        gd = 0.0
        dn2 = 0.0
        stpmax = BIG_STEP
        for i in range(n):
            di = st.xbar[i] - st.xk[i]
            st.d[i] = di
            gd += st.gk[i] * di
            dn2 += di * di
            if di > 0.0:
                if st.hi[i] - st.xk[i] < stpmax * di:
                    stpmax = (st.hi[i] - st.xk[i]) / di
            elif di < 0.0:
                if st.lo[i] - st.xk[i] > stpmax * di:
                    stpmax = (st.lo[i] - st.xk[i]) / di
        if gd < 0.0:
            break
        if st.nc == 0:
            return _finish(st, x, LBFGSB_ABNORMAL_LINE_SEARCH)
        _reset_memory(st)
    if stpmax < 1.0:
        stpmax = 1.0
    if st.nc > 0:
        stp = 1.0
    else:
        # no curvature information: a step of unit length
        stp = 1.0 / sqrt(dn2)
        if stp > stpmax:
            stp = stpmax
    _ls_init(&st.ls, stp, st.f, gd, stpmax)
    if st.n_fev >= st.opts.max_fev:
        return _finish(st, x, LBFGSB_MAX_FEV)
    st.phase = PHASE_SEARCH
    _write_trial(st, x, stp)
    return code


cdef void _accept(LbfgsbState* st, const double* x, double f, const double* g) noexcept nogil:
    """Make ``x`` the new iterate and store the correction pair when its curvature is
    safely positive."""
    cdef int n = st.n, i
    cdef double sy = 0.0, yy = 0.0, si, yi
    for i in range(n):
        si = x[i] - st.xk[i]
        yi = g[i] - st.gk[i]
        st.d[i] = si
        st.t[i] = yi
        sy += si * yi
        yy += yi * yi
    if sy > DBL_EPSILON * yy:
        _push_pair(st, st.d, st.t)
        st.theta = yy / sy
    memcpy(st.xk, x, n * sizeof(double))
    memcpy(st.gk, g, n * sizeof(double))
    st.f = f
    st.n_iter += 1
    st.pg_norm = _proj_grad_norm(st)


cdef int lbfgsb_init(LbfgsbState* st, int n, double* x, const double* lower,
                     const double* upper, const LbfgsbOptions* opts,
                     double* work) noexcept nogil:
    """Start a run: validate, project ``x`` onto the box and ask for its evaluation.

    ``lower``/``upper`` may be NULL (unbounded) and are copied; ``opts`` NULL means the
    defaults; ``work`` holds ``lbfgsb_work_size(n, opts.m)`` doubles and must outlive the
    run. Returns LBFGSB_EVALUATE, or LBFGSB_INVALID_INPUT (n < 1, bad options, NaN or
    crossed bounds, a non-finite start)."""
    cdef int i
    cdef double lo, hi, xi
    st.n = n
    st.status = LBFGSB_INVALID_INPUT
    st.phase = PHASE_DONE
    st.nc = 0
    st.head = 0
    st.n_free = 0
    st.n_iter = 0
    st.n_fev = 0
    st.n_gev = 0
    st.theta = 1.0
    st.f = NAN
    st.f_initial = NAN
    st.pg_norm = NAN
    st.xk = NULL
    if opts == NULL:
        lbfgsb_default_options(&st.opts)
    else:
        st.opts = opts[0]
    st.m = st.opts.m
    if (n < 1 or x == NULL or work == NULL or st.opts.m < 1 or st.opts.max_iter < 0
            or st.opts.max_fev < 1 or st.opts.max_ls < 1 or not st.opts.pgtol >= 0.0
            or not st.opts.ftol >= 0.0):
        return LBFGSB_INVALID_INPUT
    for i in range(n):
        lo = lower[i] if lower != NULL else -INFINITY
        hi = upper[i] if upper != NULL else INFINITY
        if not lo <= hi or lo == INFINITY or hi == -INFINITY:
            return LBFGSB_INVALID_INPUT
        if not isfinite(_clip(x[i], lo, hi)):
            return LBFGSB_INVALID_INPUT
    _layout(st, work)
    for i in range(n):
        lo = lower[i] if lower != NULL else -INFINITY
        hi = upper[i] if upper != NULL else INFINITY
        xi = _clip(x[i], lo, hi)
        st.lo[i] = lo
        st.hi[i] = hi
        x[i] = xi
        st.xk[i] = xi
        st.gk[i] = NAN
    st.status = LBFGSB_EVALUATE
    st.phase = PHASE_START
    return LBFGSB_EVALUATE


cdef int lbfgsb_step(LbfgsbState* st, double* x, double f, const double* g) noexcept nogil:
    """Tell the optimizer ``f`` and gradient ``g`` at the point it last wrote to ``x``.

    Returns LBFGSB_EVALUATE or LBFGSB_NEW_ITERATION with the next point to evaluate in
    ``x``, or a terminal status with the solution in ``x``. Calls after termination change
    nothing and return the terminal status again."""
    cdef int n = st.n, i, code
    cdef bint finite = isfinite(f)
    cdef double dg, stp, ftest
    cdef bint better
    cdef const double* g_acc = g
    cdef double f_acc = f, f_prev
    if lbfgsb_is_terminal(st.status):
        return st.status
    st.n_fev += 1
    st.n_gev += 1
    for i in range(n):
        if not isfinite(g[i]):
            finite = False
            break
    if st.phase == PHASE_START:
        if not finite:
            return _finish(st, x, LBFGSB_NONFINITE)
        memcpy(st.xk, x, n * sizeof(double))
        memcpy(st.gk, g, n * sizeof(double))
        st.f = f
        st.f_initial = f
        st.pg_norm = _proj_grad_norm(st)
        if st.pg_norm <= st.opts.pgtol:
            return _finish(st, x, LBFGSB_CONVERGED_PGTOL)
        if st.opts.max_iter == 0:
            return _finish(st, x, LBFGSB_MAX_ITER)
        return _begin_iteration(st, x, LBFGSB_EVALUATE)

    # phase PHASE_SEARCH: a line-search trial
    stp = st.ls.stp
    better = False
    if finite:
        dg = _dot(g, st.d, n)
        ftest = st.ls.finit + stp * st.ls.gtest
        better = f <= ftest and f < st.ls.best_f
        code = _ls_eval(&st.ls, f, dg)
    else:
        code = _ls_nonfinite(&st.ls)
    if code == LS_CONTINUE:
        if better:
            memcpy(st.gbest, g, n * sizeof(double))
            st.ls.best_stp = stp
            st.ls.best_f = f
            st.ls.has_best = 1
        if st.ls.nfev >= st.opts.max_ls:
            code = LS_ACCEPT_BEST if st.ls.has_best else LS_FAIL
        elif st.n_fev >= st.opts.max_fev:
            if st.ls.has_best:
                _write_trial(st, x, st.ls.best_stp)
                _accept(st, x, st.ls.best_f, st.gbest)
            return _finish(st, x, LBFGSB_MAX_FEV)
        else:
            _write_trial(st, x, st.ls.stp)
            return LBFGSB_EVALUATE
    elif code == LS_STOP:
        if better:
            code = LS_CONVERGED
        else:
            code = LS_ACCEPT_BEST if st.ls.has_best else LS_FAIL
    if code == LS_FAIL:
        if st.nc > 0:
            _reset_memory(st)
            return _begin_iteration(st, x, LBFGSB_EVALUATE)
        return _finish(st, x, LBFGSB_ABNORMAL_LINE_SEARCH)
    if code == LS_ACCEPT_BEST:
        _write_trial(st, x, st.ls.best_stp)
        g_acc = st.gbest
        f_acc = st.ls.best_f
    if not f_acc < st.f and st.nc > 0:
        # a step too short to change f: distrust the quasi-Newton direction
        _reset_memory(st)
        return _begin_iteration(st, x, LBFGSB_EVALUATE)
    f_prev = st.f
    _accept(st, x, f_acc, g_acc)
    if st.pg_norm <= st.opts.pgtol:
        return _finish(st, x, LBFGSB_CONVERGED_PGTOL)
    if f_prev - f_acc <= st.opts.ftol * max(fabs(f_prev), fabs(f_acc), 1.0):
        return _finish(st, x, LBFGSB_CONVERGED_FTOL)
    if st.n_iter >= st.opts.max_iter:
        return _finish(st, x, LBFGSB_MAX_ITER)
    return _begin_iteration(st, x, LBFGSB_NEW_ITERATION)


cdef void lbfgsb_result(const LbfgsbState* st, LbfgsbResult* res) noexcept nogil:
    """Summarise the run so far (final once the status is terminal)."""
    cdef int i, active = 0
    res.status = st.status
    res.n_iter = st.n_iter
    res.n_fev = st.n_fev
    res.n_gev = st.n_gev
    res.f = st.f
    res.proj_grad_norm = st.pg_norm
    res.initial_f = st.f_initial
    if st.xk != NULL:
        for i in range(st.n):
            if st.xk[i] == st.lo[i] or st.xk[i] == st.hi[i]:
                active += 1
    res.n_active_bounds = active


cdef int lbfgsb_minimize(int n, double* x, const double* lower, const double* upper,
                         objective_fn fun, void* ctx, const LbfgsbOptions* opts,
                         LbfgsbResult* res, double* work) noexcept nogil:
    """Minimise ``fun`` over the box from ``x`` (overwritten by the solution).

    ``lower``/``upper`` may be NULL; ``opts`` NULL means the defaults; ``res`` may be NULL;
    ``work`` holds ``lbfgsb_work_size(n, opts.m)`` doubles. Returns the terminal status."""
    cdef LbfgsbState st
    cdef int status = lbfgsb_init(&st, n, x, lower, upper, opts, work)
    cdef double f
    while not lbfgsb_is_terminal(status):
        f = fun(x, st.gdrv, ctx)
        status = lbfgsb_step(&st, x, f, st.gdrv)
    if res != NULL:
        lbfgsb_result(&st, res)
    return status


# ---------------------------------------------------------------------------------------
# Python face
# ---------------------------------------------------------------------------------------

class Status(IntEnum):
    """Task or termination reason of the L-BFGS-B state machine.

    ``EVALUATE`` and ``NEW_ITERATION`` ask for an evaluation (the latter also reports that
    a new iterate was accepted); every other status ends the run. :attr:`message` gives a
    human-readable explanation.
    """

    EVALUATE = LBFGSB_EVALUATE
    NEW_ITERATION = LBFGSB_NEW_ITERATION
    CONVERGED_PGTOL = LBFGSB_CONVERGED_PGTOL
    CONVERGED_FTOL = LBFGSB_CONVERGED_FTOL
    MAX_ITER = LBFGSB_MAX_ITER
    MAX_FEV = LBFGSB_MAX_FEV
    ABNORMAL_LINE_SEARCH = LBFGSB_ABNORMAL_LINE_SEARCH
    NONFINITE = LBFGSB_NONFINITE
    INVALID_INPUT = LBFGSB_INVALID_INPUT

    @property
    def message(self):
        """Human-readable description."""
        return STATUS_MESSAGES[self]

    @property
    def is_terminal(self):
        """Whether the run has ended."""
        return lbfgsb_is_terminal(self)

    @property
    def converged(self):
        """Whether the run ended on a convergence criterion."""
        return self == Status.CONVERGED_PGTOL or self == Status.CONVERGED_FTOL


STATUS_MESSAGES = {
    Status.EVALUATE: "evaluate the objective and gradient at the proposed point",
    Status.NEW_ITERATION: "a new iterate was accepted; evaluate at the proposed point",
    Status.CONVERGED_PGTOL: "converged: the projected gradient is within pgtol",
    Status.CONVERGED_FTOL: "converged: the relative reduction of the objective is within ftol",
    Status.MAX_ITER: "stopped: the iteration limit max_iter was reached",
    Status.MAX_FEV: "stopped: the evaluation limit max_fev was reached",
    Status.ABNORMAL_LINE_SEARCH: (
        "abnormal termination: no step along the search direction decreases the objective "
        "(non-finite values, rounding errors, or a gradient inconsistent with the "
        "objective); x is the best point found"
    ),
    Status.NONFINITE: "the objective or its gradient is not finite at the starting point",
    Status.INVALID_INPUT: "invalid input (dimension, options, bounds or starting point)",
}


_OPTION_DEFAULTS = {
    "m": 10,
    "max_iter": 1000,
    "max_fev": 5000,
    "max_ls": 20,
    "pgtol": 1e-6,
    "ftol": 1e-12,
}
_INT_OPTION_MINIMA = {"m": 1, "max_iter": 0, "max_fev": 1, "max_ls": 1}


cdef int _fill_options(LbfgsbOptions* opts, dict options) except -1:
    """Validate user options (see :class:`LBFGSB`) into ``opts``."""
    unknown = sorted(set(options) - set(_OPTION_DEFAULTS))
    if unknown:
        raise InvalidParameters(
            f"unknown L-BFGS-B option(s) {unknown}; valid: {sorted(_OPTION_DEFAULTS)}")
    vals = dict(_OPTION_DEFAULTS)
    vals.update(options)
    for name, minimum in _INT_OPTION_MINIMA.items():
        try:
            value = operator.index(vals[name])
        except TypeError:
            raise InvalidParameters(
                f"{name} must be an integer, got {vals[name]!r}") from None
        if not minimum <= value <= INT_MAX:
            raise InvalidParameters(f"{name} must be in [{minimum}, {INT_MAX}], got {value}")
        vals[name] = value
    for name in ("pgtol", "ftol"):
        try:
            value = float(vals[name])
        except (TypeError, ValueError):
            raise InvalidParameters(f"{name} must be a number, got {vals[name]!r}") from None
        if not value >= 0.0:
            raise InvalidParameters(f"{name} must be >= 0, got {value}")
        vals[name] = value
    opts.m = vals["m"]
    opts.max_iter = vals["max_iter"]
    opts.max_fev = vals["max_fev"]
    opts.max_ls = vals["max_ls"]
    opts.pgtol = vals["pgtol"]
    opts.ftol = vals["ftol"]
    return 0


def _bound_array(value, n, name, fill):
    if value is None:
        return np.full(n, fill)
    try:
        arr = np.array(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameters(f"{name} must be numeric, got {value!r}") from None
    if arr.ndim == 0:
        arr = np.full(n, float(arr))
    if arr.shape != (n,):
        raise InvalidParameters(f"{name} has shape {arr.shape}, expected ({n},) like x0")
    if np.isnan(arr).any():
        raise InvalidParameters(f"{name}[{int(np.flatnonzero(np.isnan(arr))[0])}] is NaN")
    return arr


def _prepare_problem(x0, lower, upper):
    """Validate ``x0`` and the bounds; returns float64 C-contiguous copies."""
    try:
        x = np.array(x0, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameters(f"x0 must be a numeric vector, got {x0!r}") from None
    if x.ndim != 1 or x.shape[0] == 0:
        raise InvalidParameters(f"x0 must be a non-empty 1-d array, got shape {x.shape}")
    n = x.shape[0]
    if n > INT_MAX:
        raise InvalidParameters(f"x0 has {n} entries, more than supported ({INT_MAX})")
    if not np.isfinite(x).all():
        raise InvalidParameters(
            f"x0[{int(np.flatnonzero(~np.isfinite(x))[0])}] is not finite")
    lo = _bound_array(lower, n, "lower", -np.inf)
    hi = _bound_array(upper, n, "upper", np.inf)
    crossed = np.flatnonzero(lo > hi)
    if crossed.size:
        i = int(crossed[0])
        raise InvalidParameters(f"lower[{i}] = {lo[i]} exceeds upper[{i}] = {hi[i]}")
    if (lo == np.inf).any() or (hi == -np.inf).any():
        raise InvalidParameters("lower must be < +inf and upper > -inf")
    return x, lo, hi


class MinimizeResult:
    """Outcome of :func:`minimize` (or :meth:`LBFGSB.result`).

    Attributes
    ----------
    x : ndarray
        Solution (best point found).
    fun : float
        Objective at ``x``.
    jac : ndarray
        Gradient at ``x``.
    status : Status
        Termination reason; ``message`` describes it and ``success`` is true when a
        convergence criterion was met.
    n_iter, n_fev, n_gev : int
        Iterations, objective and gradient evaluations.
    proj_grad_norm : float
        Infinity norm of the projected gradient at ``x``.
    n_active_bounds : int
        Variables on a bound at ``x`` (fixed ones included).
    initial_fun : float
        Objective at the (projected) starting point.
    """

    def __init__(self, x, fun, jac, status, n_iter, n_fev, n_gev, proj_grad_norm,
                 n_active_bounds, initial_fun):
        self.x = x
        self.fun = fun
        self.jac = jac
        self.status = status
        self.message = status.message
        self.success = status.converged
        self.n_iter = n_iter
        self.n_fev = n_fev
        self.n_gev = n_gev
        self.proj_grad_norm = proj_grad_norm
        self.n_active_bounds = n_active_bounds
        self.initial_fun = initial_fun

    def __repr__(self):
        return (f"MinimizeResult(status={self.status.name}, fun={self.fun!r}, "
                f"n_iter={self.n_iter}, n_fev={self.n_fev}, "
                f"proj_grad_norm={self.proj_grad_norm!r}, x={self.x!r})")


cdef class LBFGSB:
    """Ask/tell (reverse-communication) interface to the L-BFGS-B optimizer.

    Drives the same C state machine as the nogil driver ``lbfgsb_minimize``; see the
    module documentation for the algorithm.

    Parameters
    ----------
    x0 : array_like, shape (n,)
        Starting point; projected onto the box.
    lower, upper : array_like or float, optional
        Bounds (``-inf``/``+inf`` allowed, ``None`` for unbounded). ``lower[i] ==
        upper[i]`` fixes variable ``i``.
    m : int, default 10
        Number of correction pairs kept.
    max_iter : int, default 1000
        Iteration limit.
    max_fev : int, default 5000
        Evaluation limit.
    pgtol : float, default 1e-6
        Stop when the infinity norm of the projected gradient is at most ``pgtol``.
    ftol : float, default 1e-12
        Stop when ``(f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol``.
    max_ls : int, default 20
        Evaluations allowed per line search.

    Raises
    ------
    nextstat.errors.InvalidParameters
        On malformed input: shape mismatch, NaN, ``lower > upper``, ``m < 1``, ...

    Attributes
    ----------
    n : int
        Number of variables.

    Notes
    -----
    A typical loop::

        opt = LBFGSB(x0, lower, upper)
        x = opt.ask()
        while True:
            status = opt.tell(f(x), grad(x))
            if status.is_terminal:
                break
            x = opt.ask()
        opt.x, opt.f, opt.message
    """

    cdef LbfgsbState _st
    cdef double[::1] _x
    cdef double[::1] _work
    cdef readonly int n

    def __init__(self, x0, lower=None, upper=None, m=10, max_iter=1000, max_fev=5000,
                 pgtol=1e-6, ftol=1e-12, max_ls=20):
        cdef LbfgsbOptions opts
        cdef double[::1] lo, hi
        _fill_options(&opts, {"m": m, "max_iter": max_iter, "max_fev": max_fev,
                              "pgtol": pgtol, "ftol": ftol, "max_ls": max_ls})
        x, lo, hi = _prepare_problem(x0, lower, upper)
        self.n = x.shape[0]
        self._x = x
        self._work = np.empty(lbfgsb_work_size(self.n, opts.m))
        if lbfgsb_init(&self._st, self.n, &self._x[0], &lo[0], &hi[0], &opts,
                       &self._work[0]) != LBFGSB_EVALUATE:
            raise InvalidParameters("invalid L-BFGS-B problem")

    def ask(self):
        """The point at which to evaluate the objective and gradient next.

        Returns
        -------
        ndarray, shape (n,)
            A fresh copy (inside the box).

        Raises
        ------
        nextstat.errors.FitError
            When the run has already terminated.
        """
        if lbfgsb_is_terminal(self._st.status):
            raise FitError(f"the optimizer has terminated: {self.message}")
        return np.array(self._x)

    def tell(self, f, g):
        """Report the objective ``f`` and gradient ``g`` at the point from :meth:`ask`.

        Non-finite values are allowed: they reject the trial point.

        Returns
        -------
        Status
            ``EVALUATE``/``NEW_ITERATION`` (call :meth:`ask` again) or the terminal status.
        """
        cdef double fv
        cdef const double[::1] gv
        cdef int code
        if lbfgsb_is_terminal(self._st.status):
            raise FitError(f"the optimizer has terminated: {self.message}")
        try:
            fv = float(f)
            garr = np.ascontiguousarray(g, dtype=np.float64)
        except (TypeError, ValueError):
            raise InvalidParameters("f must be a number and g a numeric vector") from None
        if garr.shape != (self.n,):
            raise InvalidParameters(f"g has shape {garr.shape}, expected ({self.n},)")
        gv = garr
        with nogil:
            code = lbfgsb_step(&self._st, &self._x[0], fv, &gv[0])
        return Status(code)

    @property
    def x(self):
        """Best point so far (the solution once terminated)."""
        return np.array(<double[:self.n]> self._st.xk)

    @property
    def f(self):
        """Objective at :attr:`x` (NaN before the first evaluation)."""
        return self._st.f

    @property
    def jac(self):
        """Gradient at :attr:`x` (NaN before the first evaluation)."""
        return np.array(<double[:self.n]> self._st.gk)

    @property
    def status(self):
        """Current :class:`Status`."""
        return Status(self._st.status)

    @property
    def message(self):
        """Human-readable :attr:`status`."""
        return self.status.message

    @property
    def n_iter(self):
        """Accepted iterations."""
        return self._st.n_iter

    @property
    def n_fev(self):
        """Objective evaluations."""
        return self._st.n_fev

    @property
    def n_gev(self):
        """Gradient evaluations."""
        return self._st.n_gev

    @property
    def proj_grad_norm(self):
        """Infinity norm of the projected gradient at :attr:`x`."""
        return self._st.pg_norm

    def result(self):
        """Summary of the run as a :class:`MinimizeResult`."""
        cdef LbfgsbResult res
        lbfgsb_result(&self._st, &res)
        return MinimizeResult(self.x, res.f, self.jac, Status(res.status), res.n_iter,
                              res.n_fev, res.n_gev, res.proj_grad_norm,
                              res.n_active_bounds, res.initial_f)


def minimize(fun_and_grad, x0, lower=None, upper=None, **options):
    """Minimise ``fun_and_grad`` over a box with L-BFGS-B (an ask/tell loop on
    :class:`LBFGSB`).

    Parameters
    ----------
    fun_and_grad : callable
        ``fun_and_grad(x) -> (f, g)`` with ``g`` of shape ``(n,)``. It may return
        non-finite values where the objective is undefined.
    x0 : array_like, shape (n,)
        Starting point (projected onto the box).
    lower, upper : array_like or float, optional
        Bounds; see :class:`LBFGSB`.
    **options
        ``m``, ``max_iter``, ``max_fev``, ``pgtol``, ``ftol``, ``max_ls``; see
        :class:`LBFGSB`.

    Returns
    -------
    MinimizeResult
    """
    opt = LBFGSB(x0, lower, upper, **options)
    x = opt.ask()
    while True:
        f, g = fun_and_grad(x)
        if opt.tell(f, g).is_terminal:
            return opt.result()
        x = opt.ask()


# ---------------------------------------------------------------------------------------
# nogil self-test / benchmark: the C driver on a C objective, in parallel
# ---------------------------------------------------------------------------------------

cdef double _chained_rosenbrock(const double* x, double* grad, void* ctx) noexcept nogil:
    """``sum_i 100 (x_i+1 - x_i^2)^2 + (1 - x_i)^2``; ``ctx`` points to ``n`` (an int)."""
    cdef int n = (<const int*> ctx)[0], i
    cdef double f = 0.0, a, b
    for i in range(n):
        grad[i] = 0.0
    for i in range(n - 1):
        a = x[i + 1] - x[i] * x[i]
        b = 1.0 - x[i]
        f += 100.0 * a * a + b * b
        grad[i] += -400.0 * x[i] * a - 2.0 * b
        grad[i + 1] += 200.0 * a
    return f


def _rosenbrock(x):
    """Value and gradient of the chained Rosenbrock function, computed by the same C code
    that :func:`_minimize_rosenbrock_batch` hands to the C driver."""
    cdef double[::1] xv = np.array(x, dtype=np.float64)
    cdef int n = xv.shape[0]
    g = np.empty(n)
    cdef double[::1] gv = g
    return _chained_rosenbrock(&xv[0], &gv[0], &n), g


def _minimize_rosenbrock_batch(x0s, lower=None, upper=None, int num_threads=1, **options):
    """Run ``lbfgsb_minimize`` (nogil, one work buffer per fit, ``prange`` over the rows of
    ``x0s``) on the chained Rosenbrock function: exercises and times the C driver without
    any Python in the loop.

    Returns
    -------
    dict
        ``x`` (k, n), and per fit ``f``, ``status``, ``n_iter``, ``n_fev``,
        ``proj_grad_norm``.
    """
    cdef LbfgsbOptions opts
    _fill_options(&opts, options)
    X = np.array(x0s, dtype=np.float64, ndmin=2)
    if X.ndim != 2:
        raise InvalidParameters(f"x0s must be 2-d, got shape {X.shape}")
    for row in X:
        _prepare_problem(row, lower, upper)
    _, lo_arr, hi_arr = _prepare_problem(X[0], lower, upper)
    cdef double[:, ::1] xv = X
    cdef double[::1] lo = lo_arr, hi = hi_arr
    cdef int k = X.shape[0], n = X.shape[1], r
    cdef double[:, ::1] work = np.empty((k, lbfgsb_work_size(n, opts.m)))
    cdef LbfgsbResult* res = <LbfgsbResult*> malloc(k * sizeof(LbfgsbResult))
    if res == NULL:
        raise MemoryError()
    try:
        with nogil:
            for r in prange(k, num_threads=num_threads, schedule="dynamic"):
                lbfgsb_minimize(n, &xv[r, 0], &lo[0], &hi[0], _chained_rosenbrock, &n,
                                &opts, &res[r], &work[r, 0])
        return {
            "x": X,
            "f": np.array([res[r].f for r in range(k)]),
            "status": np.array([res[r].status for r in range(k)]),
            "n_iter": np.array([res[r].n_iter for r in range(k)]),
            "n_fev": np.array([res[r].n_fev for r in range(k)]),
            "proj_grad_norm": np.array([res[r].proj_grad_norm for r in range(k)]),
        }
    finally:
        free(res)
