/*
 * histfactory_math.h -- per-bin HistFactory math shared by the CPU (Cython) and GPU (CUDA) paths.
 *
 * Everything here is a small inline function of scalars: the interpolation codes 0, 1, 2, 4, 4p
 * (value and derivative w.r.t. the nuisance parameter), the Poisson and constraint terms of the
 * negative log-likelihood, and a Kahan-compensated accumulator. The Cython modules include this
 * file with `cdef extern from "histfactory_math.h"`; the CUDA kernels `#include` it, where NS_HD
 * expands to `__host__ __device__`. Keeping the formulas in one place means the CPU tests
 * exercise exactly the arithmetic the GPU runs. At the end, compiled for the host only (not
 * under __CUDACC__), is the CPU kernel of the NLL and its gradient (nll.pyx's `ns_nll`).
 *
 * Notation (CERN-OPEN-2012-016, pyhf 0.7.6 `pyhf.interpolators`): alpha is the nuisance
 * parameter, I0 the nominal, I+ / I- the up / down variations. Additive codes return
 * Delta(alpha) to be added to the nominal; multiplicative codes take the ratios
 * hi = I+/I0, lo = I-/I0 and return the factor kappa(alpha).
 */
#ifndef NEXTSTAT_HISTFACTORY_MATH_H
#define NEXTSTAT_HISTFACTORY_MATH_H

#ifndef __CUDACC_RTC__ /* NVRTC (CuPy) provides the math functions itself */
#include <math.h>
#endif

#ifdef __CUDACC__
#define NS_HD static __host__ __device__ __forceinline__
#else
#define NS_HD static inline
#endif

/* Interpolation code identifiers (the numbers used in the compiled model tables). */
#define NS_CODE0 0
#define NS_CODE1 1
#define NS_CODE2 2
#define NS_CODE4 4
#define NS_CODE4P 5

/* ---- additive codes: Delta(alpha; lo, nom, hi) ------------------------------------------ */

/* code0: piecewise linear. Delta = a (hi - nom) for a > 0, a (nom - lo) for a <= 0. */
NS_HD double ns_code0(double a, double lo, double nom, double hi, double *d)
{
    double s = (a > 0.0) ? (hi - nom) : (nom - lo);
    *d = s;
    return a * s;
}

/* code2: quadratic inside |a| <= 1, linear extrapolation outside, continuous with a continuous
 * first derivative at |a| = 1 (ROOT's definition):
 *   A = (hi + lo)/2 - nom, B = (hi - lo)/2
 *   |a| <= 1: Delta = A a^2 + B a
 *   a > 1:    Delta = (hi - nom) + (B + 2A)(a - 1)
 *   a < -1:   Delta = (lo - nom) + (B - 2A)(a + 1)
 * pyhf 0.7.6 omits the (hi - nom) / (lo - nom) offsets and is discontinuous at |a| = 1. */
NS_HD double ns_code2(double a, double lo, double nom, double hi, double *d)
{
    double A = 0.5 * (hi + lo) - nom;
    double B = 0.5 * (hi - lo);
    if (a > 1.0) {
        *d = B + 2.0 * A;
        return (hi - nom) + (B + 2.0 * A) * (a - 1.0);
    }
    if (a < -1.0) {
        *d = B - 2.0 * A;
        return (lo - nom) + (B - 2.0 * A) * (a + 1.0);
    }
    *d = 2.0 * A * a + B;
    return (A * a + B) * a;
}

/* code4p: linear outside |a| > 1, a 6th-order polynomial inside matching value, first and
 * second derivative at |a| = 1 (pyhf `code4p`):
 *   dp = hi - nom, dm = nom - lo, S = (dp + dm)/2, A = (dp - dm)/16
 *   a > 1: a dp;  a < -1: a dm;  else a S + a^2 A (15 - 10 a^2 + 3 a^4). */
NS_HD double ns_code4p(double a, double lo, double nom, double hi, double *d)
{
    double dp = hi - nom;
    double dm = nom - lo;
    if (a > 1.0) {
        *d = dp;
        return a * dp;
    }
    if (a < -1.0) {
        *d = dm;
        return a * dm;
    }
    double S = 0.5 * (dp + dm);
    double A = 0.0625 * (dp - dm);
    double a2 = a * a;
    *d = S + A * a * (30.0 + a2 * (-40.0 + 18.0 * a2));
    return a * S + a2 * A * (15.0 + a2 * (-10.0 + 3.0 * a2));
}

/* ---- multiplicative codes: kappa(alpha; lo, hi) with lo = I-/I0, hi = I+/I0 ------------- */

/* The constants of code1 and code4 for one (lo, hi): pre = (ln hi, ln lo, c1 ... c6). The
 * CPU kernel computes them once per model (ns_cpu_factor_constants); ns_code4 computes them
 * on every call, with the same arithmetic, so both give the same bits. */
#define NS_PRE 8
NS_HD void ns_code4_constants(double lo, double hi, double *pre)
{
    double lh = log(hi), ll = log(lo);
    double v0 = hi - 1.0, v1 = lo - 1.0;
    double v2 = hi * lh, v3 = -lo * ll;
    double v4 = hi * lh * lh, v5 = lo * ll * ll;
    pre[0] = lh;
    pre[1] = ll;
    /* c = A^-1 v, A^-1 rows in units of 1/16 */
    pre[2] = (15.0 * v0 - 15.0 * v1 - 7.0 * v2 - 7.0 * v3 + v4 - v5) / 16.0;
    pre[3] = (24.0 * v0 + 24.0 * v1 - 9.0 * v2 + 9.0 * v3 + v4 + v5) / 16.0;
    pre[4] = (-10.0 * v0 + 10.0 * v1 + 10.0 * v2 + 10.0 * v3 - 2.0 * v4 + 2.0 * v5) / 16.0;
    pre[5] = (-24.0 * v0 - 24.0 * v1 + 14.0 * v2 - 14.0 * v3 - 2.0 * v4 - 2.0 * v5) / 16.0;
    pre[6] = (3.0 * v0 - 3.0 * v1 - 3.0 * v2 - 3.0 * v3 + v4 - v5) / 16.0;
    pre[7] = (8.0 * v0 + 8.0 * v1 - 5.0 * v2 + 5.0 * v3 + v4 + v5) / 16.0;
}

/* code1 from its constants: kappa = exp(a ln hi) for a >= 0, exp(-a ln lo) for a < 0. */
NS_HD double ns_code1_pre(double a, const double *pre, double *d)
{
    double l = (a >= 0.0) ? pre[0] : -pre[1];
    double k = exp(a * l);
    *d = k * l;
    return k;
}

/* code4 from its constants (see ns_code4). */
NS_HD double ns_code4_pre(double a, const double *pre, double *d)
{
    if (a >= 1.0 || a <= -1.0)
        return ns_code1_pre(a, pre, d);
    const double c1 = pre[2], c2 = pre[3], c3 = pre[4], c4 = pre[5], c5 = pre[6], c6 = pre[7];
    *d = c1 + a * (2.0 * c2 + a * (3.0 * c3 + a * (4.0 * c4 + a * (5.0 * c5 + a * 6.0 * c6))));
    return 1.0 + a * (c1 + a * (c2 + a * (c3 + a * (c4 + a * (c5 + a * c6)))));
}

/* code1: piecewise exponential. kappa = hi^a for a >= 0, lo^(-a) for a < 0. */
NS_HD double ns_code1(double a, double lo, double hi, double *d)
{
    double pre[2] = {log(hi), log(lo)};
    return ns_code1_pre(a, pre, d);
}

/* code4: exponential outside |a| >= 1, inside 1 + sum_{i=1..6} c_i a^i with c = A^-1 v,
 *   v = (hi - 1, lo - 1, hi ln hi, -lo ln lo, hi (ln hi)^2, lo (ln lo)^2)
 * so that value, first and second derivative match the exponentials at a = +-1 (pyhf `code4`,
 * alpha0 = 1). */
NS_HD double ns_code4(double a, double lo, double hi, double *d)
{
    double pre[NS_PRE];
    ns_code4_constants(lo, hi, pre);
    return ns_code4_pre(a, pre, d);
}

/* Multiplicative factor for any code: additive codes act on the triple (lo, 1, hi). */
NS_HD double ns_interp_factor(int code, double a, double lo, double hi, double *d)
{
    switch (code) {
    case NS_CODE1: return ns_code1(a, lo, hi, d);
    case NS_CODE4: return ns_code4(a, lo, hi, d);
    case NS_CODE0: return 1.0 + ns_code0(a, lo, 1.0, hi, d);
    case NS_CODE2: return 1.0 + ns_code2(a, lo, 1.0, hi, d);
    default: return 1.0 + ns_code4p(a, lo, 1.0, hi, d);
    }
}

/* Additive shift for any code: multiplicative codes act on the ratios lo/nom, hi/nom
 * (Delta = nom (kappa - 1); the model builder guarantees nom > 0 for those). */
NS_HD double ns_interp_delta(int code, double a, double lo, double nom, double hi, double *d)
{
    switch (code) {
    case NS_CODE0: return ns_code0(a, lo, nom, hi, d);
    case NS_CODE2: return ns_code2(a, lo, nom, hi, d);
    case NS_CODE4P: return ns_code4p(a, lo, nom, hi, d);
    default: {
        double dk;
        double k = (code == NS_CODE1) ? ns_code1(a, lo / nom, hi / nom, &dk)
                                      : ns_code4(a, lo / nom, hi / nom, &dk);
        *d = nom * dk;
        return nom * (k - 1.0);
    }
    }
}

/* ---- likelihood terms ------------------------------------------------------------------- */

/* Poisson main term without the lgamma constant: nu - n ln nu, with xlogy semantics (n = 0
 * gives nu whatever nu is). nu <= 0 with n > 0 gives +inf / nan, as pyhf does. */
NS_HD double ns_poisson_term(double n, double nu)
{
    return (n == 0.0) ? nu : nu - n * log(nu);
}

/* d/dnu of ns_poisson_term. */
NS_HD double ns_poisson_dterm(double n, double nu)
{
    return (n == 0.0) ? 1.0 : 1.0 - n / nu;
}

/* Gaussian constraint without its normalisation: (theta - aux)^2 / (2 sigma^2). */
NS_HD double ns_gauss_term(double theta, double aux, double inv_sigma, double *d)
{
    double z = (theta - aux) * inv_sigma;
    *d = z * inv_sigma;
    return 0.5 * z * z;
}

/* Poisson (Barlow-Beeston) constraint of a gamma with factor tau and aux count a, without
 * lgamma(a + 1): gamma tau - a ln(gamma tau). */
NS_HD double ns_poisson_constraint_term(double gamma, double tau, double aux, double *d)
{
    double r = gamma * tau;
    if (aux == 0.0) {
        *d = tau;
        return r;
    }
    *d = tau - aux / gamma;
    return r - aux * log(r);
}

/* ---- Kahan-Babuska (Neumaier) compensated summation ------------------------------------- */

typedef struct {
    double sum;
    double comp;
} ns_kahan_t;

NS_HD void ns_kahan_add(ns_kahan_t *acc, double x)
{
    double t = acc->sum + x;
    if (fabs(acc->sum) >= fabs(x))
        acc->comp += (acc->sum - t) + x;
    else
        acc->comp += (x - t) + acc->sum;
    acc->sum = t;
}

NS_HD double ns_kahan_value(const ns_kahan_t *acc)
{
    return acc->sum + acc->comp;
}

/* ==== CPU kernel (host C only; nvcc and NVRTC never see it) ============================== *
 *
 * The NLL + gradient of nextstat/_ext/nll.pyx (`ns_nll`), written in C so that the compiler
 * gets `restrict` pointers, pointer-sized indices and loops it can vectorise (Python builds
 * extensions with -fwrapv, and Cython's loops over `int` tables cost a sign extension per
 * index). nll.pyx documents the model; `ns_model_t` is its `NsModel` (nll.pxd declares it
 * from here).
 *
 * Instruction counts below are per NLL + gradient of the 201-parameter benchmark model (50
 * channels x 4 bins, a signal with normfactor mu and a background with one shapesys gamma per
 * bin; 400 (sample, bin) entries, 200 Poisson constraints), measured with callgrind on AVX2:
 * 82,000 for the Cython kernel this replaces (62,000 in its loops, 20,000 in 400 libm logs).
 */
#ifndef __CUDACC__
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define NS_RESTRICT __restrict

/* NS_CPU_HOT functions (the forward pass, the backward pass, ns_cpu_nll) are compiled twice
 * where gcc can dispatch at load time (ifunc: x86-64 with glibc): for the baseline ISA (SSE2)
 * and for AVX2, picked by the CPU when the module is loaded. AVX2 has 4-wide vectors and
 * 64-bit integer vector ops: the whole evaluation is 8,200 instructions with it, 18,800
 * without. FMA is left out, so that both clones (every x86-64 machine) give bit-identical
 * results; an x86-64-v3 clone (AVX2 + FMA) would save another ~8%. They are separate
 * functions rather than one: inlined into one, the loops ran out of registers and kept their
 * counters on the stack (1,500 instructions). The loops they call are inlined into them
 * (NS_CPU_INLINE), so as to be compiled in both clones; the rare general cases are kept out
 * of line (NS_CPU_COLD). */
#if defined(__GNUC__) || defined(__clang__)
#define NS_CPU_INLINE static inline __attribute__((always_inline))
#define NS_CPU_COLD static __attribute__((noinline, unused))
#if !defined(__clang__) && defined(__x86_64__) && defined(__GLIBC__)
#define NS_CPU_HOT static __attribute__((unused, target_clones("avx2", "default")))
#else
#define NS_CPU_HOT static __attribute__((unused))
#endif
#else
#define NS_CPU_INLINE static inline
#define NS_CPU_COLD static
#define NS_CPU_HOT static
#endif

/* The gam0 field of a block / run none of whose entries has a gamma factor ... */
#define NS_GAM_NONE (-1)
/* ... and of one with histosys or with any other gamma pattern than "entry i has exactly
 * one gamma, parameter gam0 + i" (gam0 >= 0: staterror, shapesys, shapefactor). */
#define NS_GAM_GENERAL (-2)

/* One block (channel, sample), packed by CompiledModel from the blk_* tables. */
typedef struct {
    int bin0, sb0, len; /* main bins [bin0, bin0 + len), entries [sb0, sb0 + len) */
    int fac0, fac1;     /* scalar factors [fac0, fac1) */
    int hs0, hs1;       /* histosys [hs0, hs1) */
    int gam0;           /* NS_GAM_NONE, NS_GAM_GENERAL or the first gamma parameter */
} ns_block_t;

/* A run: consecutive blocks of the same kind (gam0 class), with equal scalar factors
 * (parameter, code, lo, hi), bins that continue one another and, for gammas, gamma
 * parameters that continue one another (CompiledModel builds them; a GENERAL block is a run
 * of its own). The 50 background blocks of the benchmark model are one run of 200 bins,
 * the 50 signal blocks another, so the forward and backward passes are four long vector
 * loops instead of 100 blocks' short ones with their bookkeeping: 1,800 instructions instead
 * of 12,000. Runs are formed so that every main bin and every parameter still receives its
 * contributions in block order, which keeps nu bit for bit what the loop over blocks
 * computes. */
typedef struct {
    int bin0, len;  /* main bins [bin0, bin0 + len) */
    int nom0;       /* the nominal rates of the run at run_nominal[nom0 ...] */
    int gam0;       /* as ns_block_t.gam0 */
    int blk0;       /* the first block (the only one of a GENERAL run) */
    int fac0, fac1; /* blk0's scalar factors, the same as every other block's of the run */
    int n_blk;      /* number of blocks */
} ns_run_t;

typedef struct ns_model {
    int n_par, n_bins, n_blk, n_sb, n_fac, n_aux, n_gauss, n_pois;
    ptrdiff_t scratch_size;
    /* the tables of nextstat/model/compile.py (meaning: nll.pyx) */
    const int *blk_bin_start, *blk_sb_start, *blk_len;
    const int *blk_fac_ptr, *fac_param, *fac_code;
    const double *fac_lo, *fac_hi;
    const int *blk_hs_ptr, *hs_param, *hs_code, *hs_off;
    const double *hs_lo, *hs_hi;
    const int *sb_gam_ptr, *gam_param;
    const double *nominal;
    const int *g_param, *g_aux;
    const double *g_inv_sigma;
    const int *p_param, *p_aux;
    const double *p_tau;
    /* derived by CompiledModel */
    int n_hs_data;              /* length of hs_lo / hs_hi */
    const ns_block_t *blk;      /* [n_blk] */
    int n_run;                  /* <= n_blk */
    const ns_run_t *run;        /* [n_run], in the order they are evaluated */
    const double *run_nominal;  /* the nominal rates of the non-GENERAL runs, run by run */
    int n_g_run, n_p_run;       /* constraints as runs of consecutive parameters and aux */
    const int *g_run, *p_run;   /* run r: terms [run[r], run[r + 1]) (CSR, n_run + 1) */
    /* constants computed once per model (ns_cpu_model_constants) */
    double *fac_pre;            /* [NS_PRE n_fac]: ns_code4_constants of each scalar factor */
    double *hs_dp, *hs_dm;      /* [n_hs_data]: hi - nom and nom - lo of each histosys entry */
} ns_model_t;

/* Scratch layout (kernels/histfactory_nll.cu mirrors it; its length is scratch_size):
 * nu | shape | gprod | fv | fd | blk_s | hsd. ns_cpu_nll overwrites nu with dNLL/dnu and
 * keeps the product of each run's scalar factors in blk_s[run] (n_run <= n_blk); shape,
 * gprod and hsd are written for the entries of GENERAL blocks only. The NLL terms are summed
 * in chunks on the stack. */
typedef struct {
    double *nu, *shape, *gprod, *fv, *fd, *blk_s, *hsd;
} ns_cpu_scratch_t;

static inline ptrdiff_t ns_cpu_scratch_size(const ns_model_t *m)
{
    return (ptrdiff_t)m->n_bins + 2 * (ptrdiff_t)m->n_sb + 2 * (ptrdiff_t)m->n_fac + m->n_blk
           + m->n_hs_data;
}

static inline ns_cpu_scratch_t ns_cpu_scratch(const ns_model_t *m, double *base)
{
    ns_cpu_scratch_t s;
    s.nu = base;
    s.shape = s.nu + m->n_bins;
    s.gprod = s.shape + m->n_sb;
    s.fv = s.gprod + m->n_sb;
    s.fd = s.fv + m->n_fac;
    s.blk_s = s.fd + m->n_fac;
    s.hsd = s.blk_s + m->n_blk;
    return s;
}

/* log(x) for positive, normal, finite x, without branches or tables, so that loops calling
 * it vectorise (calls to libm's log do not: 400 of them were 20,000 instructions, a quarter
 * of the evaluation; now 3,400, plus 650 for the domain check). The algorithm is fdlibm's e_log.c, in the one-formula form
 * of musl 1.1: x = 2^k (1 + f) with 1 + f in [sqrt(2)/2, sqrt(2)), s = f / (2 + f),
 * log(1 + f) = f - f^2/2 + s (f^2/2 + R(s^2)) with fdlibm's minimax R. Error < 1 ulp
 * (measured: max 0.77 ulp over 2e7 random arguments, against logl; glibc's log: 0.51 ulp; the
 * two differ in the last bit for ~1% of arguments). Callers check the domain with
 * ns_log_domain_* and redo the evaluation with libm's log if any argument was outside. */
NS_CPU_INLINE double ns_log_normal(double x)
{
    uint64_t u, t, kb, mb;
    double kd, m, f, s, z, w, R, hfsq;
    memcpy(&u, &x, sizeof u);
    /* Split x = 2^k m with m in [sqrt(2)/2, sqrt(2)) with integer operations only (as ARM's
     * optimized-routines do): the top 12 bits of t = u - bits(sqrt(2)/2) are k (two's
     * complement), and u - (k << 52) is m. k becomes a double through the bit pattern of
     * 2^52 + (k + 2048), which needs no 64-bit arithmetic shift (AVX2 has none). */
    t = u - 0x3fe6a09e667f3bcdULL;
    kb = ((t >> 52) ^ 0x800) | 0x4330000000000000ULL;
    memcpy(&kd, &kb, sizeof kd);
    kd -= 4503599627372544.0; /* 2^52 + 2048: k, exactly */
    mb = u - (t & 0xfff0000000000000ULL);
    memcpy(&m, &mb, sizeof m);
    f = m - 1.0; /* exact */
    s = f / (2.0 + f);
    z = s * s;
    w = z * z;
    R = z * (6.666666666666735130e-01 + w * (2.857142874366239149e-01
             + w * (1.818357216161805012e-01 + w * 1.479819860511658591e-01)))
        + w * (3.999999999940941908e-01 + w * (2.222219843214978396e-01
               + w * 1.531383769920937332e-01));
    hfsq = 0.5 * f * f;
    return s * (hfsq + R) + kd * 1.90821492927058770002e-10 - hfsq + f
           + kd * 6.93147180369123816490e-01;
}

/* Domain check for loops over ns_log_normal, accumulated without compares (gcc vectorises
 * double compares that feed an integer reduction for AVX2 but not for SSE2): with e the top
 * 12 bits of x (sign and exponent), x is positive, normal and finite iff 1 <= e <= 0x7fe.
 * OR-ing e - 1 over the loop sets bit 63 iff some e == 0 (zero, subnormal); OR-ing e + 1 sets
 * a bit above bit 10 iff some e >= 0x7ff (inf, NaN, negative). */
typedef struct {
    uint64_t lo, hi;
} ns_log_domain_t;

NS_CPU_INLINE void ns_log_domain_add(ns_log_domain_t *acc, double x)
{
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    acc->lo |= (u >> 52) - 1;
    acc->hi |= (u >> 52) + 1;
}

NS_CPU_INLINE int ns_log_domain_ok(const ns_log_domain_t *acc)
{
    return !(acc->lo >> 63) && !(acc->hi & ~(uint64_t)0x7ff);
}

/* ---- forward pass ----------------------------------------------------------------------- */

/* Scalar factor j (an interpolated normsys: code >= 0), kept out of line. */
NS_CPU_COLD double ns_cpu_interp_factor(const ns_model_t *m, const double *theta,
                                        ptrdiff_t j, double *d)
{
    const int code = m->fac_code[j];
    const double a = theta[m->fac_param[j]];
    if (code == NS_CODE4)
        return ns_code4_pre(a, m->fac_pre + NS_PRE * j, d);
    if (code == NS_CODE1)
        return ns_code1_pre(a, m->fac_pre + NS_PRE * j, d);
    return ns_interp_factor(code, a, m->fac_lo[j], m->fac_hi[j], d);
}

/* The per-model constants: the logarithms and polynomial coefficients of the multiplicative
 * scalar factors (for code1 and code4 they were ~30% of an evaluation of a model with a few
 * hundred normsys blocks), and hi - nom, nom - lo of every histosys entry. */
static inline void ns_cpu_model_constants(ns_model_t *m)
{
    ptrdiff_t j, k, h, i;
    for (j = 0; j < m->n_fac; ++j)
        ns_code4_constants(m->fac_lo[j], m->fac_hi[j], m->fac_pre + NS_PRE * j);
    for (k = 0; k < m->n_blk; ++k)
        for (h = m->blk_hs_ptr[k]; h < m->blk_hs_ptr[k + 1]; ++h)
            for (i = 0; i < m->blk_len[k]; ++i) {
                const ptrdiff_t off = m->hs_off[h] + i;
                const double nom = m->nominal[m->blk_sb_start[k] + i];
                m->hs_dp[off] = m->hs_hi[off] - nom;
                m->hs_dm[off] = nom - m->hs_lo[off];
            }
}

/* fv[j], fd[j] for j in [j0, j1); returns their product (the block's S). */
NS_CPU_INLINE double ns_cpu_factors(const ns_model_t *m, const double *NS_RESTRICT theta,
                                    ptrdiff_t j0, ptrdiff_t j1, double *NS_RESTRICT fv,
                                    double *NS_RESTRICT fd)
{
    double s = 1.0;
    ptrdiff_t j;
    for (j = j0; j < j1; ++j) {
        double v, d = 1.0;
        if (m->fac_code[j] < 0)
            v = theta[m->fac_param[j]]; /* normfactor, lumi */
        else
            v = ns_cpu_interp_factor(m, theta, j, &d);
        fv[j] = v;
        fd[j] = d;
        s *= v;
    }
    return s;
}

/* shape_i += Delta_h(a; lo_i, nom_i, hi_i) over the n entries of one histosys modifier of a
 * block, and its derivatives into hsd (when not NULL). alpha is one number for the whole
 * modifier, so the branches of the additive codes are taken once and the entries are vector
 * loops; each entry gets the arithmetic of ns_code0 / ns_code2 / ns_code4p, bit for bit.
 * Multiplicative codes go through ns_interp_delta entry by entry. */
NS_CPU_INLINE void ns_cpu_histosys(const ns_model_t *m, ptrdiff_t h, ptrdiff_t sb0, ptrdiff_t n,
                                   double a, double *NS_RESTRICT sh, double *NS_RESTRICT hsd)
{
    const ptrdiff_t off = m->hs_off[h];
    const double *NS_RESTRICT dp = m->hs_dp + off;
    const double *NS_RESTRICT dm = m->hs_dm + off;
    const double *NS_RESTRICT lo = m->hs_lo + off;
    const double *NS_RESTRICT hi = m->hs_hi + off;
    const double *NS_RESTRICT nom = m->nominal + sb0;
    const int code = m->hs_code[h];
    ptrdiff_t i;
    if ((code == NS_CODE0 && a > 0.0) || (code == NS_CODE4P && a > 1.0)) {
        for (i = 0; i < n; ++i)
            sh[i] = sh[i] + a * dp[i];
        if (hsd)
            memcpy(hsd, dp, (size_t)n * sizeof(double));
    } else if (code == NS_CODE0 || (code == NS_CODE4P && a < -1.0)) {
        for (i = 0; i < n; ++i)
            sh[i] = sh[i] + a * dm[i];
        if (hsd)
            memcpy(hsd, dm, (size_t)n * sizeof(double));
    } else if (code == NS_CODE4P) {
        const double a2 = a * a;
        const double p = 15.0 + a2 * (-10.0 + 3.0 * a2);
        const double q = 30.0 + a2 * (-40.0 + 18.0 * a2);
        for (i = 0; i < n; ++i) {
            const double S = 0.5 * (dp[i] + dm[i]);
            const double A = 0.0625 * (dp[i] - dm[i]);
            sh[i] = sh[i] + (a * S + a2 * A * p);
            if (hsd)
                hsd[i] = S + A * a * q;
        }
    } else {
        double d;
        for (i = 0; i < n; ++i) {
            sh[i] = sh[i] + ns_interp_delta(code, a, lo[i], nom[i], hi[i], &d);
            if (hsd)
                hsd[i] = d;
        }
    }
}

/* nu_b += s G_sb (nominal_sb + histosys shifts) over the entries of block k, the general
 * way; stores shape, gprod (and the histosys derivatives hsd when `derivs`) per entry. */
NS_CPU_HOT void ns_cpu_forward_general(const ns_model_t *m, const double *theta,
                                        const ns_cpu_scratch_t *S, ptrdiff_t k, double s,
                                        int derivs)
{
    const ns_block_t *B = m->blk + k;
    const ptrdiff_t nb = B->len, sb0 = B->sb0;
    double *nuk = S->nu + B->bin0;
    double *sh = S->shape + sb0, *gp = S->gprod + sb0;
    ptrdiff_t i, h, g;
    memcpy(sh, m->nominal + sb0, (size_t)nb * sizeof(double));
    for (h = B->hs0; h < B->hs1; ++h)
        ns_cpu_histosys(m, h, sb0, nb, theta[m->hs_param[h]], sh,
                        derivs ? S->hsd + m->hs_off[h] : NULL);
    for (i = 0; i < nb; ++i) {
        double p = 1.0;
        for (g = m->sb_gam_ptr[sb0 + i]; g < m->sb_gam_ptr[sb0 + i + 1]; ++g)
            p = p * theta[m->gam_param[g]];
        gp[i] = p;
        nuk[i] += s * p * sh[i];
    }
}

/* The forward pass of every block the general way (what ns_fisher_diag and
 * expected_samples read: fv, fd, blk_s per block, shape and gprod per entry). */
NS_CPU_COLD void ns_cpu_forward_entries(const ns_model_t *m, const double *theta,
                                        const ns_cpu_scratch_t *S, int derivs)
{
    ptrdiff_t k;
    memset(S->nu, 0, (size_t)m->n_bins * sizeof(double));
    for (k = 0; k < m->n_blk; ++k) {
        S->blk_s[k] = ns_cpu_factors(m, theta, m->blk[k].fac0, m->blk[k].fac1, S->fv, S->fd);
        ns_cpu_forward_general(m, theta, S, k, S->blk_s[k], derivs);
    }
}

/* nu, run by run (see ns_run_t): y_i += s x_i for runs without gammas, y_i += s g_i x_i
 * with them (the general loop's s * gp * sh, bit for bit: gp = 1.0 * g, sh = nominal). The
 * products of each run's factors go to blk_s[run]. */
NS_CPU_HOT void ns_cpu_forward(const ns_model_t *m, const double *NS_RESTRICT theta,
                               const ns_cpu_scratch_t *S, int derivs)
{
    const ptrdiff_t n_run = m->n_run;
    const double *NS_RESTRICT nominal = m->run_nominal;
    double *NS_RESTRICT nu = S->nu;
    ptrdiff_t r, i;

    memset(nu, 0, (size_t)m->n_bins * sizeof(double));
    for (r = 0; r < n_run; ++r) {
        const ns_run_t *R = m->run + r;
        const ptrdiff_t n = R->len;
        const double s = ns_cpu_factors(m, theta, R->fac0, R->fac1, S->fv, S->fd);
        double *NS_RESTRICT y = nu + R->bin0;
        const double *NS_RESTRICT x = nominal + R->nom0;
        S->blk_s[r] = s;
        if (R->gam0 >= 0) {
            const double *NS_RESTRICT g = theta + R->gam0;
            for (i = 0; i < n; ++i)
                y[i] += s * g[i] * x[i];
        } else if (R->gam0 == NS_GAM_NONE) {
            for (i = 0; i < n; ++i)
                y[i] += s * x[i];
        } else {
            ns_cpu_forward_general(m, theta, S, R->blk0, s, derivs);
        }
    }
}

/* ---- backward pass ---------------------------------------------------------------------- */

/* The backward pass of block k the general way, from S->nu = dNLL/dnu: gamma and histosys
 * gradients into grad; returns dNLL/dS_k. Each histosys parameter's gradient is summed over
 * the entries in entry order, as one modifier's loop (a block has each parameter once). */
NS_CPU_HOT double ns_cpu_backward_general(const ns_model_t *m, const double *theta,
                                           const ns_cpu_scratch_t *S, ptrdiff_t k, double s,
                                           double *grad)
{
    const ns_block_t *B = m->blk + k;
    const ptrdiff_t nb = B->len, sb0 = B->sb0;
    const double *wk = S->nu + B->bin0;
    const double *sh = S->shape + sb0, *gp = S->gprod + sb0;
    const int *gam_param = m->gam_param;
    double a_blk = 0.0;
    ptrdiff_t i, g, g2, h;
    for (i = 0; i < nb; ++i) {
        const ptrdiff_t sb = sb0 + i, g0 = m->sb_gam_ptr[sb], g1 = m->sb_gam_ptr[sb + 1];
        const double w = wk[i], ws = w * s;
        a_blk += w * gp[i] * sh[i];
        if (g1 - g0 == 1) {
            grad[gam_param[g0]] += ws * sh[i];
        } else {
            /* products of the other gammas, without dividing (a gamma may be 0) */
            for (g = g0; g < g1; ++g) {
                double others = ws * sh[i];
                for (g2 = g0; g2 < g1; ++g2)
                    if (g2 != g)
                        others = others * theta[gam_param[g2]];
                grad[gam_param[g]] += others;
            }
        }
    }
    for (h = B->hs0; h < B->hs1; ++h) {
        const double *hsd = S->hsd + m->hs_off[h];
        double acc = grad[m->hs_param[h]];
        for (i = 0; i < nb; ++i)
            acc += wk[i] * s * gp[i] * hsd[i];
        grad[m->hs_param[h]] = acc;
    }
    return a_blk;
}

/* grad += d(sum_b main term)/d theta, from S->nu = w_b = dNLL/dnu_b, run by run. Gammas:
 * grad_{gam0 + i} += w_i s x_i. Scalar factors: dNLL/dS summed over the whole run (four
 * interleaved partial sums, which vectorise) times the product of the other factors (no
 * division, so a factor may be 0). The per-block loop summed dNLL/dS_k block by block and
 * added each to grad; summing over the run first changes the factors' gradient by rounding. */
NS_CPU_HOT void ns_cpu_backward(const ns_model_t *m, const double *NS_RESTRICT theta,
                                const ns_cpu_scratch_t *S, double *NS_RESTRICT grad)
{
    const ptrdiff_t n_run = m->n_run;
    const int *NS_RESTRICT fac_param = m->fac_param;
    const double *NS_RESTRICT nominal = m->run_nominal;
    const double *NS_RESTRICT wb = S->nu;
    const double *NS_RESTRICT fv = S->fv;
    const double *NS_RESTRICT fd = S->fd;
    ptrdiff_t r, i, l, j, j2;

    for (r = 0; r < n_run; ++r) {
        const ns_run_t *R = m->run + r;
        const ptrdiff_t n = R->len, has_fac = R->fac1 > R->fac0;
        const double s = S->blk_s[r];
        const double *NS_RESTRICT w = wb + R->bin0;
        const double *NS_RESTRICT x = nominal + R->nom0;
        double a[4] = {0.0, 0.0, 0.0, 0.0}, a_run;
        if (R->gam0 >= 0) {
            const double *NS_RESTRICT g = theta + R->gam0;
            double *NS_RESTRICT y = grad + R->gam0;
            for (i = 0; i < n; ++i)
                y[i] += w[i] * s * x[i];
            if (has_fac) {
                for (i = 0; i + 4 <= n; i += 4)
                    for (l = 0; l < 4; ++l)
                        a[l] += w[i + l] * g[i + l] * x[i + l];
                for (; i < n; ++i)
                    a[0] += w[i] * g[i] * x[i];
            }
            a_run = (a[0] + a[1]) + (a[2] + a[3]);
        } else if (R->gam0 == NS_GAM_NONE) {
            if (has_fac) {
                for (i = 0; i + 4 <= n; i += 4)
                    for (l = 0; l < 4; ++l)
                        a[l] += w[i + l] * x[i + l];
                for (; i < n; ++i)
                    a[0] += w[i] * x[i];
            }
            a_run = (a[0] + a[1]) + (a[2] + a[3]);
        } else {
            a_run = ns_cpu_backward_general(m, theta, S, R->blk0, s, grad);
        }
        for (j = R->fac0; j < R->fac1; ++j) {
            double others = fd[j] * a_run;
            for (j2 = R->fac0; j2 < R->fac1; ++j2)
                if (j2 != j)
                    others = others * fv[j2];
            grad[fac_param[j]] += others;
        }
    }
}

/* ---- NLL terms -------------------------------------------------------------------------- */

/* The NLL's sum. Fast mode: four interleaved partial sums (the compiler vectorises them);
 * parity mode: one Kahan-Babuska sum in table order. Terms are computed in vectorised loops
 * over chunks of NS_CHUNK into a buffer on the stack (the scratch layout has no room for
 * them), then added: both modes sum the same terms, in a fixed order. Chunks of 256 rather
 * than 64 saved 500 instructions (the vector loops' prologues and epilogues). */
#define NS_CHUNK 256

typedef struct {
    int kahan;
    double part[4];
    ns_kahan_t acc;
} ns_cpu_sum_t;

NS_CPU_INLINE void ns_cpu_sum_add(ns_cpu_sum_t *sum, const double *t, ptrdiff_t n)
{
    ptrdiff_t i = 0, l;
    if (sum->kahan) {
        for (; i < n; ++i)
            ns_kahan_add(&sum->acc, t[i]);
        return;
    }
    for (; i + 4 <= n; i += 4)
        for (l = 0; l < 4; ++l)
            sum->part[l] += t[i + l];
    for (; i < n; ++i)
        sum->part[0] += t[i];
}

/* Main-bin Poisson terms into t, and w_b = dNLL/dnu_b over nu (in place). No special case
 * for n_b = 0 (xlogy): with nu_b in ns_log_normal's domain, nu - 0 ln nu = nu and
 * 1 - 0/nu = 1 exactly, and outside it the caller redoes everything with ns_poisson_term.
 * (Selects on n == 0 would also need -fno-trapping-math to vectorise.) */
NS_CPU_INLINE void ns_cpu_main_chunk(ptrdiff_t n, const double *NS_RESTRICT cnt,
                                     double *NS_RESTRICT nu, double *NS_RESTRICT t,
                                     ns_log_domain_t *dom)
{
    ptrdiff_t b;
    for (b = 0; b < n; ++b) {
        const double v = nu[b], c = cnt[b];
        t[b] = v - c * ns_log_normal(v);
        nu[b] = 1.0 - c / v;
        ns_log_domain_add(dom, v);
    }
}

/* Gaussian constraint terms of a run of consecutive parameters and aux entries into t, their
 * derivatives into d. */
NS_CPU_INLINE void ns_cpu_gauss_chunk(ptrdiff_t n, const double *NS_RESTRICT th,
                                      const double *NS_RESTRICT ax,
                                      const double *NS_RESTRICT inv, double *NS_RESTRICT t,
                                      double *NS_RESTRICT d)
{
    ptrdiff_t i;
    for (i = 0; i < n; ++i)
        t[i] = ns_gauss_term(th[i], ax[i], inv[i], d + i);
}

/* Poisson constraint terms, as ns_cpu_gauss_chunk (aux = 0 needs no special case, as in
 * ns_cpu_main_chunk: gamma tau in ns_log_normal's domain makes gamma finite and nonzero). */
NS_CPU_INLINE void ns_cpu_pois_chunk(ptrdiff_t n, const double *NS_RESTRICT th,
                                     const double *NS_RESTRICT ax,
                                     const double *NS_RESTRICT tau, double *NS_RESTRICT t,
                                     double *NS_RESTRICT d, ns_log_domain_t *dom)
{
    ptrdiff_t i;
    for (i = 0; i < n; ++i) {
        const double g = th[i], a = ax[i], r = g * tau[i];
        t[i] = r - a * ns_log_normal(r);
        d[i] = tau[i] - a / g;
        ns_log_domain_add(dom, r);
    }
}

NS_CPU_INLINE void ns_cpu_add_grad(ptrdiff_t n, const double *NS_RESTRICT d,
                                   double *NS_RESTRICT grad)
{
    ptrdiff_t i;
    for (i = 0; i < n; ++i)
        grad[i] += d[i];
}

/* All NLL terms into `sum`, their constraint gradient into grad (if not NULL), nu replaced by
 * dNLL/dnu. Returns 0 if an argument of ns_log_normal was outside its domain. */
NS_CPU_INLINE int ns_cpu_terms(const ns_model_t *m, const double *NS_RESTRICT theta,
                               const double *NS_RESTRICT n_main,
                               const double *NS_RESTRICT aux, double *NS_RESTRICT nu,
                               double *NS_RESTRICT grad, ns_cpu_sum_t *sum)
{
    double t[NS_CHUNK], d[NS_CHUNK];
    ns_log_domain_t dom = {0, 0};
    ptrdiff_t r, c, n;
    for (c = 0; c < m->n_bins; c += NS_CHUNK) {
        n = (m->n_bins - c < NS_CHUNK) ? m->n_bins - c : NS_CHUNK;
        ns_cpu_main_chunk(n, n_main + c, nu + c, t, &dom);
        ns_cpu_sum_add(sum, t, n);
    }
    for (r = 0; r < m->n_g_run; ++r) {
        const ptrdiff_t c0 = m->g_run[r], c1 = m->g_run[r + 1];
        for (c = c0; c < c1; c += NS_CHUNK) {
            const ptrdiff_t p = m->g_param[c];
            n = (c1 - c < NS_CHUNK) ? c1 - c : NS_CHUNK;
            ns_cpu_gauss_chunk(n, theta + p, aux + m->g_aux[c], m->g_inv_sigma + c, t, d);
            if (grad)
                ns_cpu_add_grad(n, d, grad + p);
            ns_cpu_sum_add(sum, t, n);
        }
    }
    for (r = 0; r < m->n_p_run; ++r) {
        const ptrdiff_t c0 = m->p_run[r], c1 = m->p_run[r + 1];
        for (c = c0; c < c1; c += NS_CHUNK) {
            const ptrdiff_t p = m->p_param[c];
            n = (c1 - c < NS_CHUNK) ? c1 - c : NS_CHUNK;
            ns_cpu_pois_chunk(n, theta + p, aux + m->p_aux[c], m->p_tau + c, t, d, &dom);
            if (grad)
                ns_cpu_add_grad(n, d, grad + p);
            ns_cpu_sum_add(sum, t, n);
        }
    }
    return ns_log_domain_ok(&dom);
}

/* ns_cpu_terms with the header's scalar functions and libm's log, for points where a rate or
 * a Poisson constraint argument is outside ns_log_normal's domain (<= 0, subnormal, inf,
 * NaN): there the terms are those of the Cython kernel this replaced (xlogy for n = 0, libm's
 * infinities and NaNs). */
NS_CPU_COLD void ns_cpu_terms_exact(const ns_model_t *m, const double *theta,
                                    const double *n_main, const double *aux, double *nu,
                                    double *grad, ns_cpu_sum_t *sum)
{
    ptrdiff_t b, c;
    double t, d;
    for (b = 0; b < m->n_bins; ++b) {
        t = ns_poisson_term(n_main[b], nu[b]);
        nu[b] = ns_poisson_dterm(n_main[b], nu[b]);
        ns_cpu_sum_add(sum, &t, 1);
    }
    for (c = 0; c < m->n_gauss; ++c) {
        t = ns_gauss_term(theta[m->g_param[c]], aux[m->g_aux[c]], m->g_inv_sigma[c], &d);
        if (grad)
            grad[m->g_param[c]] += d;
        ns_cpu_sum_add(sum, &t, 1);
    }
    for (c = 0; c < m->n_pois; ++c) {
        t = ns_poisson_constraint_term(theta[m->p_param[c]], m->p_tau[c], aux[m->p_aux[c]],
                                       &d);
        if (grad)
            grad[m->p_param[c]] += d;
        ns_cpu_sum_add(sum, &t, 1);
    }
}

/* ---- the NLL ---------------------------------------------------------------------------- */

/* nll.pyx's `ns_nll`: -ln L and, when grad is not NULL, its gradient; `kahan`: parity mode
 * (see ns_cpu_sum_t). If a rate or a Poisson constraint argument falls outside
 * ns_log_normal's domain (<= 0, subnormal, inf, NaN), the evaluation is redone with libm's
 * log, so that such points give exactly what they gave before. */
NS_CPU_HOT double ns_cpu_nll(const ns_model_t *m, const double *NS_RESTRICT theta,
                             const double *NS_RESTRICT n_main, const double *NS_RESTRICT aux,
                             double constant, double *NS_RESTRICT grad, int kahan,
                             double *scratch)
{
    const ns_cpu_scratch_t S = ns_cpu_scratch(m, scratch);
    ns_cpu_sum_t sum;
    memset(&sum, 0, sizeof sum);
    sum.kahan = kahan;
    ns_cpu_forward(m, theta, &S, grad != NULL);
    if (grad)
        memset(grad, 0, (size_t)m->n_par * sizeof(double));
    if (!ns_cpu_terms(m, theta, n_main, aux, S.nu, grad, &sum)) {
        /* start again (nu has been overwritten, grad accumulated) */
        memset(&sum, 0, sizeof sum);
        sum.kahan = kahan;
        ns_cpu_forward(m, theta, &S, grad != NULL);
        if (grad)
            memset(grad, 0, (size_t)m->n_par * sizeof(double));
        ns_cpu_terms_exact(m, theta, n_main, aux, S.nu, grad, &sum);
    }
    if (grad)
        ns_cpu_backward(m, theta, &S, grad);
    if (kahan) {
        ns_kahan_add(&sum.acc, constant);
        return ns_kahan_value(&sum.acc);
    }
    return ((sum.part[0] + sum.part[1]) + (sum.part[2] + sum.part[3])) + constant;
}

#endif /* !__CUDACC__ */

#endif /* NEXTSTAT_HISTFACTORY_MATH_H */
