/*
 * histfactory_math.h -- per-bin HistFactory math shared by the CPU (Cython) and GPU (CUDA) paths.
 *
 * Everything here is a small inline function of scalars: the interpolation codes 0, 1, 2, 4, 4p
 * (value and derivative w.r.t. the nuisance parameter), the Poisson and constraint terms of the
 * negative log-likelihood, and a Kahan-compensated accumulator. The Cython modules include this
 * file with `cdef extern from "histfactory_math.h"`; the CUDA kernels `#include` it, where NS_HD
 * expands to `__host__ __device__`. Keeping the formulas in one place means the CPU tests
 * exercise exactly the arithmetic the GPU runs.
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

/* code1: piecewise exponential. kappa = hi^a for a >= 0, lo^(-a) for a < 0. */
NS_HD double ns_code1(double a, double lo, double hi, double *d)
{
    if (a >= 0.0) {
        double l = log(hi);
        double k = exp(a * l);
        *d = k * l;
        return k;
    }
    double l = log(lo);
    double k = exp(-a * l);
    *d = -k * l;
    return k;
}

/* code4: exponential outside |a| >= 1, inside 1 + sum_{i=1..6} c_i a^i with c = A^-1 v,
 *   v = (hi - 1, lo - 1, hi ln hi, -lo ln lo, hi (ln hi)^2, lo (ln lo)^2)
 * so that value, first and second derivative match the exponentials at a = +-1 (pyhf `code4`,
 * alpha0 = 1). */
NS_HD double ns_code4(double a, double lo, double hi, double *d)
{
    if (a >= 1.0) {
        double l = log(hi);
        double k = exp(a * l);
        *d = k * l;
        return k;
    }
    if (a <= -1.0) {
        double l = log(lo);
        double k = exp(-a * l);
        *d = -k * l;
        return k;
    }
    double lh = log(hi), ll = log(lo);
    double v0 = hi - 1.0, v1 = lo - 1.0;
    double v2 = hi * lh, v3 = -lo * ll;
    double v4 = hi * lh * lh, v5 = lo * ll * ll;
    /* c = A^-1 v, A^-1 rows in units of 1/16 */
    double c1 = (15.0 * v0 - 15.0 * v1 - 7.0 * v2 - 7.0 * v3 + v4 - v5) / 16.0;
    double c2 = (24.0 * v0 + 24.0 * v1 - 9.0 * v2 + 9.0 * v3 + v4 + v5) / 16.0;
    double c3 = (-10.0 * v0 + 10.0 * v1 + 10.0 * v2 + 10.0 * v3 - 2.0 * v4 + 2.0 * v5) / 16.0;
    double c4 = (-24.0 * v0 - 24.0 * v1 + 14.0 * v2 - 14.0 * v3 - 2.0 * v4 - 2.0 * v5) / 16.0;
    double c5 = (3.0 * v0 - 3.0 * v1 - 3.0 * v2 - 3.0 * v3 + v4 - v5) / 16.0;
    double c6 = (8.0 * v0 + 8.0 * v1 - 5.0 * v2 + 5.0 * v3 + v4 + v5) / 16.0;
    *d = c1 + a * (2.0 * c2 + a * (3.0 * c3 + a * (4.0 * c4 + a * (5.0 * c5 + a * 6.0 * c6))));
    return 1.0 + a * (c1 + a * (c2 + a * (c3 + a * (c4 + a * (c5 + a * c6)))));
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

#endif /* NEXTSTAT_HISTFACTORY_MATH_H */
