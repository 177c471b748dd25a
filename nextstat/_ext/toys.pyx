"""Batched, independent maximum-likelihood fits for pseudo-experiments (toys).

:func:`fit_batch` runs one fit per dataset (row) across OpenMP threads with the GIL
released. Each thread owns its optimizer work buffer and NLL scratch (allocated once before
the loop); every row's fit reads only its own data and start point, so the results are
bitwise identical for any number of threads.

Two solvers:

* **Newton with a Schur complement** (when the caller passes the model's ``local`` mask and
  the model has at most :data:`NEWTON_MAX_GLOBAL` other free parameters). Per-bin gammas
  that touch disjoint bins ("local" parameters) have a diagonal Hessian block, so the
  Hessian is a diagonal block plus a small dense block for the global parameters (POI,
  normsys, histosys, lumi, normfactors) and their cross terms. It is computed by finite
  one-sided differences of the analytic gradient in ``n_global + 2`` gradient evaluations
  and reused while full Newton steps keep shrinking the gradient fast; and
  the Newton system is solved by eliminating the diagonal block:
  ``S = H_GG - B D^-1 B'``, ``S d_G = -g_G + B D^-1 g_L``, ``d_L = -(g_L + B' d_G) / D``,
  ``O(n_local n_global^2 + n_global^3)``. Bounds: a parameter on a bound whose gradient
  pushes outwards is held there (active set); steps are projected onto the box and
  halved until the NLL decreases (Armijo). Convergence is the L-BFGS-B path's test in
  Fisher-like units: ``max_i |g_i| / sqrt(H_ii) <= pgtol`` over the free parameters not
  held on a bound. Before the first iteration every local gamma that multiplies a single
  bin is set to its exact conditional minimum (a quadratic equation per bin, see
  :func:`_profile_locals`): the start point was fitted to other data, and adjusting the
  gammas to the toy's fluctuations was most of the first iterations' work. Toy fits on the
  201-parameter benchmark then take 1.4 iterations.
* **Fisher-scaled L-BFGS-B** (see ``fit.pyx``): without a ``local`` mask, for models with
  many global parameters, and as the fallback when Newton fails (a Hessian that is not
  positive definite, no decrease along the Newton direction, too many iterations); it
  starts where Newton stopped.
"""

import numpy as np

from cython.parallel cimport prange
from libc.math cimport INFINITY, fabs, isfinite, sqrt

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
from nextstat._ext.fit cimport NllContext, fisher_scales, nll_objective
from nextstat._ext.nll cimport (
    CompiledModel,
    NsModel,
    ns_cpu_forward_entries,
    ns_cpu_scratch,
    ns_cpu_scratch_t,
    ns_fisher_diag,
    ns_nll,
)
from nextstat._ext.openmp_helpers cimport omp_get_thread_num


#: Newton is used when at most this many free parameters are not local. A Hessian costs
#: n_global + 2 gradient evaluations and is reused over several iterations; L-BFGS-B needs
#: ~1.2 evaluations plus O(n m) work per iteration, but many more iterations. Measured per
#: toy fit (2 threads, 200 toys, Newton vs L-BFGS-B): 1 global (god_run) 89 vs 252 us;
#: 5 globals (305 parameters) 0.34 vs 0.57 ms; 13 globals (2,113 parameters) about 2x
#: faster, (313 parameters) 1.60 vs 1.59 ms; 16 globals 2.0 vs 1.9 ms; 29 globals 7.8 vs
#: 5.1 ms. Above this bound L-BFGS-B is as fast or faster.
NEWTON_MAX_GLOBAL = 16
#: Marquardt damping of an indefinite Hessian: first factor, then x10 per retry.
cdef double NEWTON_DAMPING_START = 1e-3
cdef int NEWTON_MAX_DAMPING = 8
#: A reused Hessian is kept while each iteration shrinks the scaled gradient by this factor.
cdef double NEWTON_REUSE_RATE = 0.25
#: Newton iterations before falling back to L-BFGS-B.
cdef int NEWTON_MAX_ITER = 50
#: Step halvings per Newton iteration before falling back.
cdef int NEWTON_MAX_HALVINGS = 30
#: Relative finite-difference step of the Hessian (as ``fit.hessian_structured``).
cdef double NEWTON_FD_STEP = 1e-5
#: Slack of the Armijo test for the rounding of the NLL (relative to 1 + |f|).
cdef double NEWTON_F_NOISE = 1e-13
#: Status reported for a fit that Newton finished (``Status.CONVERGED_PGTOL``).
cdef int NEWTON_DONE = LBFGSB_CONVERGED_PGTOL


cdef inline bint _converged(int status, double pg, double accept_pgtol) noexcept nogil:
    if status == LBFGSB_CONVERGED_PGTOL or status == LBFGSB_CONVERGED_FTOL:
        return True
    return status == LBFGSB_ABNORMAL_LINE_SEARCH and pg <= accept_pgtol


cdef inline double _fd_point(double xi, double lo, double hi) noexcept nogil:
    """The other point of a one-sided difference at ``xi``: above it, or below it next to
    the upper bound (``xi`` itself when neither fits in the box)."""
    cdef double h = NEWTON_FD_STEP * fabs(xi)
    if h < NEWTON_FD_STEP:
        h = NEWTON_FD_STEP
    if xi + h <= hi:
        return xi + h
    return xi - h if xi - h >= lo else xi


cdef bint _newton_hessian(const NsModel* m, const double* x, const double* lower,
                          const double* upper, const unsigned char* move,
                          const unsigned char* local, const int* gl, int ng,
                          const double* main, const double* aux, double constant,
                          double* rows, double* diag, double* xw, double* gp, double* g0,
                          double* scratch) noexcept nogil:
    """Rows of the global parameters ``gl[:ng]`` (``rows[k * n + j]``) and the diagonal
    (``diag``) of the Hessian over the parameters in ``move``, by one-sided differences of
    the gradient: one gradient at ``x``, one per global parameter and one for all local
    ones at once (as ``fit.hessian_structured``), ``n_global + 2`` in all. Returns false
    when a difference has zero width or a value is not finite."""
    cdef int n = m.n_par, i, j, k, n_local = 0
    cdef double inv
    ns_nll(m, x, main, aux, constant, g0, False, scratch)
    for j in range(n):
        xw[j] = x[j]
    for k in range(ng):
        i = gl[k]
        xw[i] = _fd_point(x[i], lower[i], upper[i])
        if xw[i] == x[i]:
            return False
        ns_nll(m, xw, main, aux, constant, gp, False, scratch)
        inv = 1.0 / (xw[i] - x[i])
        xw[i] = x[i]
        for j in range(n):
            rows[k * n + j] = (gp[j] - g0[j]) * inv if move[j] else 0.0
        diag[i] = rows[k * n + i]
    for j in range(n):
        if move[j] and local[j]:
            xw[j] = _fd_point(x[j], lower[j], upper[j])
            if xw[j] == x[j]:
                return False
            n_local += 1
    if n_local > 0:
        ns_nll(m, xw, main, aux, constant, gp, False, scratch)
        for j in range(n):
            if move[j] and local[j]:
                diag[j] = (gp[j] - g0[j]) / (xw[j] - x[j])
    for j in range(n):
        if move[j] and not isfinite(diag[j]):
            return False
    return True


#: Kinds of the constraint term of a parameter (``_profile_tables``).
cdef int CONSTRAINT_NONE = 0, CONSTRAINT_GAUSS = 1, CONSTRAINT_POIS = 2


cdef inline double _larger_root(double qa, double qb, double qc) noexcept nogil:
    """The larger root of ``qa g^2 + qb g + qc`` (``qa > 0``), without cancellation."""
    cdef double disc = qb * qb - 4.0 * qa * qc
    if disc < 0.0:
        disc = 0.0
    if qb <= 0.0:
        return (-qb + sqrt(disc)) / (2.0 * qa)
    return (2.0 * qc) / (-qb - sqrt(disc))


cdef void _profile_locals(const NsModel* m, double* x, const double* main, const double* aux,
                          const double* lower, const double* upper, const int* prof_bin,
                          const int* ckind, const int* cidx, double* rate,
                          double* scratch) noexcept nogil:
    """Set every profilable local gamma to its exact conditional minimum, the others fixed.

    A local gamma ``g`` that multiplies only bin ``b`` (``prof_bin[g] == b``) enters the NLL
    through ``nu_b = g A + C`` (``A``: the rates it multiplies, divided by ``g``) and its
    constraint, so ``d NLL / d g = 0`` is a quadratic equation:

    * Gaussian (mean ``a``, width ``s``):
      ``A g^2 + (A^2 s^2 + C - a A) g + (A C s^2 - n A s^2 - a C) = 0``;
    * Poisson (``tau``, auxiliary datum ``a``):
      ``(A + tau) A g^2 + ((A + tau) C - n A - a A) g - a C = 0``;
    * none (shapefactor): ``g = (n - C) / A``.

    The NLL is convex in ``g`` where ``nu_b > 0``, and its minimum is the larger root,
    clipped to the bounds."""
    cdef ns_cpu_scratch_t sc = ns_cpu_scratch(m, scratch)
    cdef int n = m.n_par, k, i, sb, g, g2, j, b, kind
    cdef double s, p, a, c, nb, a0, s2, tau, gam
    ns_cpu_forward_entries(m, x, &sc, False)
    for j in range(n):
        rate[j] = 0.0
    for k in range(m.n_blk):
        s = sc.blk_s[k]
        for i in range(m.blk_len[k]):
            sb = m.blk_sb_start[k] + i
            for g in range(m.sb_gam_ptr[sb], m.sb_gam_ptr[sb + 1]):
                j = m.gam_param[g]
                if prof_bin[j] < 0:
                    continue
                p = s * sc.shape[sb]
                for g2 in range(m.sb_gam_ptr[sb], m.sb_gam_ptr[sb + 1]):
                    if g2 != g:
                        p *= x[m.gam_param[g2]]
                rate[j] += p
    for j in range(n):
        b = prof_bin[j]
        if b < 0 or not lower[j] < upper[j]:
            continue
        a = rate[j]
        c = sc.nu[b] - x[j] * a
        if c < 0.0:
            c = 0.0
        nb = main[b]
        kind = ckind[j]
        if kind == CONSTRAINT_GAUSS:
            a0 = aux[m.g_aux[cidx[j]]]
            s2 = 1.0 / (m.g_inv_sigma[cidx[j]] * m.g_inv_sigma[cidx[j]])
            if a > 0.0:
                gam = _larger_root(a, a * a * s2 + c - a0 * a, a * c * s2 - nb * a * s2 - a0 * c)
            else:
                gam = a0
        elif kind == CONSTRAINT_POIS:
            a0 = aux[m.p_aux[cidx[j]]]
            tau = m.p_tau[cidx[j]]
            if a > 0.0:
                gam = _larger_root((a + tau) * a, (a + tau) * c - nb * a - a0 * a, -a0 * c)
            else:
                gam = a0 / tau
        elif a > 0.0:
            gam = (nb - c) / a
        else:
            continue
        if not isfinite(gam):
            continue
        if gam < lower[j]:
            gam = lower[j]
        elif gam > upper[j]:
            gam = upper[j]
        x[j] = gam


cdef void _profile_tables(const NsModel* m, const unsigned char* local,
                          int* prof) noexcept nogil:
    """What :func:`_profile_locals` reads, in ``prof`` (3 n): the one bin of each local
    gamma (< 0: not local, or several bins), then each parameter's constraint kind and its
    index in the Gaussian or Poisson tables."""
    cdef int n = m.n_par, k, i, g, j, b
    cdef int* bin_of = prof
    cdef int* kind = prof + n
    cdef int* idx = prof + 2 * n
    for j in range(n):
        bin_of[j] = -1
        kind[j] = CONSTRAINT_NONE
        idx[j] = -1
    for k in range(m.n_blk):
        for i in range(m.blk_len[k]):
            b = m.blk_bin_start[k] + i
            for g in range(m.sb_gam_ptr[m.blk_sb_start[k] + i],
                           m.sb_gam_ptr[m.blk_sb_start[k] + i + 1]):
                j = m.gam_param[g]
                if not local[j]:
                    continue
                if bin_of[j] == -1:
                    bin_of[j] = b
                elif bin_of[j] != b:
                    bin_of[j] = -2
    for i in range(m.n_gauss):
        kind[m.g_param[i]] = CONSTRAINT_GAUSS
        idx[m.g_param[i]] = i
    for i in range(m.n_pois):
        kind[m.p_param[i]] = CONSTRAINT_POIS
        idx[m.p_param[i]] = i


cdef bint _newton_schur(int n, int ng, const int* gl, const unsigned char* move,
                        const unsigned char* local, const double* rows, const double* diag,
                        const double* g, double lam, double* schur,
                        double* rhs) noexcept nogil:
    """Solve the global part of ``(H + lam diag(H)) d = -g`` by eliminating the diagonal
    local block: ``S = H_GG - B D^-1 B'`` (Cholesky-factored in place, lower triangle) and
    ``d_G = S^-1 (-g_G + B D^-1 g_L)`` into ``rhs``, with ``D`` and ``diag(H_GG)`` scaled by
    ``1 + lam``. Returns false when ``S`` is not positive definite."""
    cdef int a, b, j, k
    cdef double v, w, damp = 1.0 + lam
    for a in range(ng):
        rhs[a] = -g[gl[a]]
        for b in range(a + 1):
            schur[a * ng + b] = 0.5 * (rows[a * n + gl[b]] + rows[b * n + gl[a]])
        schur[a * ng + a] = diag[gl[a]] * damp
    for j in range(n):
        if move[j] and local[j]:
            w = 1.0 / (diag[j] * damp)
            v = g[j] * w
            for a in range(ng):
                rhs[a] += rows[a * n + j] * v
                for b in range(a + 1):
                    schur[a * ng + b] -= rows[a * n + j] * w * rows[b * n + j]
    for a in range(ng):
        for b in range(a + 1):
            v = schur[a * ng + b]
            for k in range(b):
                v -= schur[a * ng + k] * schur[b * ng + k]
            if a == b:
                if not v > 0.0:
                    return False
                schur[a * ng + a] = sqrt(v)
            else:
                schur[a * ng + b] = v / schur[b * ng + b]
    for a in range(ng):
        v = rhs[a]
        for k in range(a):
            v -= schur[a * ng + k] * rhs[k]
        rhs[a] = v / schur[a * ng + a]
    for a in range(ng - 1, -1, -1):
        v = rhs[a]
        for k in range(a + 1, ng):
            v -= schur[k * ng + a] * rhs[k]
        rhs[a] = v / schur[a * ng + a]
    return True


cdef int _newton_fit(const NsModel* m, double* x, const double* lower, const double* upper,
                     const unsigned char* local, int max_global, const int* prof,
                     const double* main, const double* aux, double constant, bint kahan,
                     double pgtol, double* f_out, double* g, double* buf, int* gl,
                     double* scratch) noexcept nogil:
    """Projected Newton iterations with the Schur complement of the local block (see the
    module docstring), in place; at most ``max_global`` free non-local parameters (the
    size of the buffers). Returns the number of iterations when converged, else
    ``-(iterations + 1)`` (``x`` is then the last accepted point, a fine start for
    L-BFGS-B)."""
    cdef int n = m.n_par, i, j, a, ng, it, _halving, _attempt
    cdef double* rows
    cdef double* diag = buf
    cdef double* xw = buf + n
    cdef double* gp = buf + 2 * n
    cdef double* gm = buf + 3 * n
    cdef double* d = buf + 4 * n
    cdef double* xt = buf + 5 * n
    cdef double* gt = buf + 6 * n
    cdef unsigned char* move = <unsigned char*> (buf + 7 * n)
    cdef unsigned char* hmove = move + n  # the move set the Hessian was computed for
    cdef double* schur = buf + 8 * n
    cdef double* rhs
    cdef double f, ft, slope, t, worst, v, lam, prev_worst = INFINITY
    cdef bint ok, have_h = False, refresh = True, fresh
    rows = schur + max_global * max_global
    rhs = rows + <Py_ssize_t> max_global * n
    for i in range(n):
        if x[i] < lower[i]:
            x[i] = lower[i]
        elif x[i] > upper[i]:
            x[i] = upper[i]
    # the per-bin gammas to this dataset's fluctuations, exactly (most of the first steps'
    # work otherwise: the start point was fitted to other data)
    _profile_locals(m, x, main, aux, lower, upper, prof, prof + n, prof + 2 * n, d, scratch)
    f = ns_nll(m, x, main, aux, constant, g, kahan, scratch)
    if not isfinite(f):
        return -1
    it = 0
    while it < NEWTON_MAX_ITER:
        # the free parameters not held on a bound by their gradient
        ng = 0
        for i in range(n):
            move[i] = lower[i] < upper[i] and not (
                (x[i] <= lower[i] and g[i] > 0.0) or (x[i] >= upper[i] and g[i] < 0.0))
            if move[i] and not local[i]:
                if ng == max_global:
                    return -(it + 1)
                gl[ng] = i
                ng += 1
            if move[i] != hmove[i]:
                refresh = True
        # The Hessian is reused while full Newton steps keep shrinking the gradient fast
        # (a chord method: one gradient per iteration instead of 2 (n_global + 1)); it is
        # recomputed when the move set changes, after a shortened step and when progress
        # slows.
        fresh = refresh or not have_h
        if fresh:
            if not _newton_hessian(m, x, lower, upper, move, local, gl, ng, main, aux,
                                   constant, rows, diag, xw, gp, gm, scratch):
                return -(it + 1)
            for i in range(n):
                hmove[i] = move[i]
            have_h = True
            refresh = False
        worst = 0.0
        for i in range(n):
            if move[i]:
                if not diag[i] > 0.0:
                    return -(it + 1)
                v = fabs(g[i]) / sqrt(diag[i])
                if not v <= worst:
                    worst = v
        if not isfinite(worst):
            return -(it + 1)
        if worst <= pgtol:
            f_out[0] = f
            return it
        if not fresh and worst > NEWTON_REUSE_RATE * prev_worst:
            refresh = True
            continue
        prev_worst = worst
        # Newton system (H + lam diag(H)) d = -g: lam = 0 first, then Marquardt damping
        # while the Schur complement is not positive definite (H is indefinite away from
        # the minimum; the damped direction is still a descent direction).
        lam = 0.0
        for _attempt in range(NEWTON_MAX_DAMPING + 1):
            if _newton_schur(n, ng, gl, move, local, rows, diag, g, lam, schur, rhs):
                break
            lam = NEWTON_DAMPING_START if lam == 0.0 else 10.0 * lam
        else:
            return -(it + 1)
        for i in range(n):
            d[i] = 0.0
        for a in range(ng):
            d[gl[a]] = rhs[a]
        for j in range(n):
            if move[j] and local[j]:
                v = -g[j]
                for a in range(ng):
                    v -= rows[a * n + j] * rhs[a]
                d[j] = v / (diag[j] * (1.0 + lam))
        # projected backtracking line search
        t = 1.0
        ok = False
        for _halving in range(NEWTON_MAX_HALVINGS):
            slope = 0.0
            for i in range(n):
                v = x[i] + t * d[i]
                if v < lower[i]:
                    v = lower[i]
                elif v > upper[i]:
                    v = upper[i]
                xt[i] = v
                slope += g[i] * (v - x[i])
            ft = ns_nll(m, xt, main, aux, constant, gt, kahan, scratch)
            if isfinite(ft) and slope <= 0.0 and \
                    ft <= f + 1e-4 * slope + NEWTON_F_NOISE * (1.0 + fabs(f)):
                ok = True
                break
            t *= 0.5
        if not ok:
            if fresh:
                return -(it + 1)
            refresh = True
            continue
        refresh = t < 1.0
        for i in range(n):
            x[i] = xt[i]
            g[i] = gt[i]
        f = ft
        it += 1
    return -(it + 1)


cdef void _fit_one(const NsModel* m, double* x, const double* lower, const double* upper,
                   const double* main, const double* aux, double constant, bint kahan,
                   const LbfgsbOptions* opts, int max_restarts, double accept_pgtol,
                   const double* given_scale, const unsigned char* local, int max_global,
                   const int* prof, double* work,
                   double* scratch, double* buf, double* nbuf, int* gl, double* f_out,
                   int* status_out, int* iter_out, unsigned char* conv_out) noexcept nogil:
    """One fit in place: Newton when ``local`` is given, else (or when it fails)
    Fisher-scaled L-BFGS-B, restarted from where it stopped if needed."""
    cdef int n = m.n_par
    cdef double* scale = buf
    cdef double* y = buf + n
    cdef double* ylo = buf + 2 * n
    cdef double* yhi = buf + 3 * n
    cdef double* xbuf = buf + 4 * n
    cdef NllContext ctx
    cdef LbfgsbResult res
    cdef int i, _attempt, n_iter = 0, newton_it
    cdef double d
    cdef bint conv = False
    if local != NULL:
        newton_it = _newton_fit(m, x, lower, upper, local, max_global, prof, main, aux,
                                constant, kahan, opts.pgtol, f_out, xbuf, nbuf, gl, scratch)
        if newton_it >= 0:
            status_out[0] = NEWTON_DONE
            iter_out[0] = newton_it
            conv_out[0] = True
            return
        n_iter = -newton_it - 1
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
        fisher_scales(m, x, aux, lower, upper, scale, scratch)
    for i in range(n):
        ylo[i] = lower[i] / scale[i]
        yhi[i] = upper[i] / scale[i]
    for _attempt in range(max_restarts + 1):
        for i in range(n):
            y[i] = x[i] / scale[i]
        lbfgsb_minimize(n, y, ylo, yhi, nll_objective, &ctx, opts, &res, work)
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
              double accept_pgtol=1e-4, scale=None, int m=0, local=None):
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
    local : ndarray of bool, shape (n_par,), optional
        The model's local parameters (``ModelLayout.local_params``): fit with Newton and
        the Schur complement of their diagonal block (see the module docstring), falling
        back to L-BFGS-B. Ignored when more than :data:`NEWTON_MAX_GLOBAL` free
        parameters are not local.

    Returns
    -------
    x : ndarray, shape (B, n_par)
    nll : ndarray, shape (B,)
    status : ndarray of int32, shape (B,)
        Status of the last optimizer run (:class:`nextstat._ext.lbfgsb.Status`).
    n_iter : ndarray of int32, shape (B,)
        Optimizer iterations (Newton's, plus L-BFGS-B's after a fallback).
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
    cdef const unsigned char* lp = NULL
    cdef const unsigned char[::1] local_v
    cdef int n_glob = 0
    if local is not None:
        local_v = np.ascontiguousarray(local, dtype=np.uint8)
        if local_v.shape[0] != n:
            raise ValueError("local must have one entry per parameter")
        n_glob = sum(1 for i in range(n) if not local_v[i] and lower[i] < upper[i])
        if n_glob <= NEWTON_MAX_GLOBAL:
            lp = &local_v[0]
    # Newton buffers: 8 vectors, the Schur complement, the global rows and the right-hand side
    cdef Py_ssize_t nb_size = 8 * n + <Py_ssize_t> n_glob * (n_glob + n + 1)
    cdef double[:, ::1] nbuf = np.empty((nt, nb_size if lp != NULL else 1))
    cdef int[::1] prof = np.empty(3 * n if lp != NULL else 1, dtype=np.int32)
    if lp != NULL:
        _profile_tables(&cm.c, lp, &prof[0])
    cdef int[:, ::1] glbuf = np.empty((nt, max(n_glob, 1)), dtype=np.int32)
    cdef int tid
    for k in prange(B, nogil=True, num_threads=nt, schedule="dynamic"):
        tid = omp_get_thread_num()
        _fit_one(&cm.c, &x[k, 0], &lower[0], &upper[0], &mains[k, 0],
                 &auxs[k, 0] if cm.n_aux > 0 else ap, constants[k], kahan, &opts,
                 max_restarts, accept_pgtol, sp, lp, n_glob, &prof[0], &work[tid, 0],
                 &scratch[tid, 0],
                 &buf[tid, 0], &nbuf[tid, 0], &glbuf[tid, 0], &nll[k], &status[k],
                 &n_iter[k], &conv[k])
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
