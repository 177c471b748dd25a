/*
 * histfactory_nll.cu -- batched HistFactory NLL, gradient and expected rates on a CUDA GPU.
 *
 * A batch is B independent problems that share one model (the tables of
 * nextstat/model/compile.py, see histfactory_tables.h): problem p has its own parameter
 * vector theta[p][n_par], main counts n_main[p][n_bins], auxiliary data aux[p][n_aux] and
 * data constant constant[p]. The formulas are nll.pyx's (`_forward` and `ns_nll`), with the
 * per-bin arithmetic from histfactory_math.h, in double precision.
 *
 * Parallel layout: one thread block per problem (a grid-stride loop covers B > gridDim.x),
 * threads striding over the blocks (channel, sample), the (sample, bin) entries, the main
 * bins and the constraint terms of that problem. Each thread block owns one row of `scratch`
 * (global memory, nll.pyx's `_forward` layout) and one row of `grad_out`. The work of one
 * problem is a fixed sequence of steps separated by __syncthreads() (ns_nll_grad_step):
 *
 *   RATES         zero grad; per block k: scalar factors fv/fd, their product blk_s[k];
 *                 per entry sb: shape (nominal + histosys shifts, hsd), gamma product gprod
 *   NU            per main bin b: nu[b] = sum over its entries, in block order (no atomics)
 *   NLL           per-thread Kahan partials of the Poisson and constraint terms into
 *                 shared memory; nu[b] <- w_b = dNLL/dnu_b; constraint gradient (atomicAdd)
 *   GRAD_ENTRIES  per entry: gamma and histosys gradient (atomicAdd);
 *                 shape[sb] <- w gprod shape (the entry's share of dNLL/dS_k)
 *   GRAD_FACTORS  per block: a_k = sum of those shares in bin order; factor gradient
 *   REDUCE...     shared-memory tree reduction of the Kahan partials; thread 0 adds the
 *                 constant and writes nll_out[p]
 *
 * Every step function is __host__ __device__ and takes (tid, nthr) explicitly, so the same
 * code runs on the host with the threads executed one after another (NS_HOST_EMULATION,
 * used by tests/test_cuda.py to check the indexing on machines without a GPU).
 *
 * Needs double-precision atomicAdd on global memory (sm_60 or newer).
 */
#include "histfactory_math.h"
#include "histfactory_tables.h"

/* Largest thread-block size the kernels accept (size of the shared reduction buffer). */
#define NS_MAX_THREADS 256

#define NS_KD static __host__ __device__ inline

#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ < 600)
#error "histfactory_nll.cu needs double-precision atomicAdd (compute capability 6.0 or newer)"
#endif

/* grad[q] += v: an atomic add on the device, a plain add in the host emulation (threads run
 * one after another there). */
NS_KD void ns_atomic_add(double *p, double v)
{
#ifdef __CUDA_ARCH__
    atomicAdd(p, v);
#else
    *p += v;
#endif
}

/* One problem of the batch as seen by the step functions. */
typedef struct {
    const double *theta;  /* [n_par] */
    const double *n_main; /* [n_bins] */
    const double *aux;    /* [n_aux] */
    double constant;      /* data-dependent constant of the NLL */
    double *nll;          /* where thread 0 writes the result */
    double *grad;         /* [n_par], NULL when no gradient is wanted */
    ns_scratch_t s;       /* this thread block's scratch row */
} ns_problem_t;

/* nll.pyx's scratch layout on `base` (length n_bins + 2 n_sb + 2 n_fac + n_blk + n_hs). */
NS_KD ns_scratch_t ns_scratch_view(const ns_tables_t *T, double *base)
{
    ns_scratch_t s;
    s.nu = base;
    s.shape = s.nu + T->n_bins;
    s.gprod = s.shape + T->n_sb;
    s.fv = s.gprod + T->n_sb;
    s.fd = s.fv + T->n_fac;
    s.blk_s = s.fd + T->n_fac;
    s.hsd = s.blk_s + T->n_blk;
    return s;
}

/* Problem p, handled by thread block `blk` (its scratch row). Row strides of 0 share one
 * row of main data / aux data / constant between all problems. */
NS_KD ns_problem_t ns_problem(const ns_tables_t *T, long long p, long long blk,
                              const double *theta, const double *n_main, long long main_stride,
                              const double *aux, long long aux_stride, const double *constant,
                              long long const_stride, double *nll_out, double *grad_out,
                              int want_grad, double *scratch, long long scratch_stride)
{
    ns_problem_t P;
    P.theta = theta + p * T->n_par;
    P.n_main = n_main + p * main_stride;
    P.aux = aux + p * aux_stride;
    P.constant = constant[p * const_stride];
    P.nll = nll_out + p;
    P.grad = want_grad ? grad_out + p * T->n_par : (double *)0;
    P.s = ns_scratch_view(T, scratch + blk * scratch_stride);
    return P;
}

/* ---- forward pass (nll.pyx `_forward`) ------------------------------------------------ */

/* Scalar factors per block and shape / gamma product per entry. The two loops write
 * disjoint scratch ranges and read only theta and the tables, so no barrier between them. */
NS_KD void ns_rates(const ns_tables_t *T, const double *theta, const ns_scratch_t *S,
                    int keep_derivs, int tid, int nthr)
{
    for (int k = tid; k < T->n_blk; k += nthr) {
        double s = 1.0;
        for (int j = T->blk_fac_ptr[k]; j < T->blk_fac_ptr[k + 1]; ++j) {
            const int code = T->fac_code[j];
            double v, d;
            if (code < 0) {
                v = theta[T->fac_param[j]];
                d = 1.0;
            } else {
                v = ns_interp_factor(code, theta[T->fac_param[j]], T->fac_lo[j], T->fac_hi[j],
                                     &d);
            }
            S->fv[j] = v;
            S->fd[j] = d;
            s *= v;
        }
        S->blk_s[k] = s;
    }
    for (int sb = tid; sb < T->n_sb; sb += nthr) {
        const int k = T->sb_blk[sb];
        const int i = sb - T->blk_sb_start[k];
        const double nom = T->nominal[sb];
        double sh = nom;
        for (int h = T->blk_hs_ptr[k]; h < T->blk_hs_ptr[k + 1]; ++h) {
            const int off = T->hs_off[h] + i;
            double d;
            sh += ns_interp_delta(T->hs_code[h], theta[T->hs_param[h]], T->hs_lo[off], nom,
                                  T->hs_hi[off], &d);
            if (keep_derivs)
                S->hsd[off] = d;
        }
        double gp = 1.0;
        for (int g = T->sb_gam_ptr[sb]; g < T->sb_gam_ptr[sb + 1]; ++g)
            gp *= theta[T->gam_param[g]];
        S->shape[sb] = sh;
        S->gprod[sb] = gp;
    }
}

/* nu[b] = sum over the entries of bin b of blk_s * gprod * shape, in block order (the order
 * and the association of `_forward`'s `nu[b0 + i] += s * gp * sh`). */
NS_KD void ns_nu(const ns_tables_t *T, const ns_scratch_t *S, double *nu, int tid, int nthr)
{
    for (int b = tid; b < T->n_bins; b += nthr) {
        double acc = 0.0;
        for (int e = T->bin_sb_ptr[b]; e < T->bin_sb_ptr[b + 1]; ++e) {
            const int sb = T->bin_sb[e];
            acc += S->blk_s[T->sb_blk[sb]] * S->gprod[sb] * S->shape[sb];
        }
        nu[b] = acc;
    }
}

/* ---- NLL terms and gradient (nll.pyx `ns_nll`) ---------------------------------------- */

/* This thread's compensated partial sum of the Poisson and constraint terms. With a
 * gradient: nu[b] is replaced by w_b = dNLL/dnu_b (only this thread reads or writes nu[b]
 * in this step) and the constraint derivatives go to grad. */
NS_KD ns_kahan_t ns_nll_terms(const ns_tables_t *T, const ns_problem_t *P, int tid, int nthr)
{
    ns_kahan_t acc;
    acc.sum = 0.0;
    acc.comp = 0.0;
    double *nu = P->s.nu;
    for (int b = tid; b < T->n_bins; b += nthr) {
        const double n = P->n_main[b];
        const double v = nu[b];
        ns_kahan_add(&acc, ns_poisson_term(n, v));
        if (P->grad)
            nu[b] = ns_poisson_dterm(n, v);
    }
    for (int c = tid; c < T->n_gauss; c += nthr) {
        const int q = T->g_param[c];
        double d;
        const double t = ns_gauss_term(P->theta[q], P->aux[T->g_aux[c]], T->g_inv_sigma[c], &d);
        if (P->grad)
            ns_atomic_add(&P->grad[q], d);
        ns_kahan_add(&acc, t);
    }
    for (int c = tid; c < T->n_pois; c += nthr) {
        const int q = T->p_param[c];
        double d;
        const double t =
            ns_poisson_constraint_term(P->theta[q], T->p_tau[c], P->aux[T->p_aux[c]], &d);
        if (P->grad)
            ns_atomic_add(&P->grad[q], d);
        ns_kahan_add(&acc, t);
    }
    return acc;
}

/* Per entry sb (block k, bin b0 + i): the gamma and histosys terms of the gradient, then
 * shape[sb] <- w gprod shape, the entry's term of nll.pyx's `a_blk`. */
NS_KD void ns_grad_entries(const ns_tables_t *T, const ns_problem_t *P, int tid, int nthr)
{
    const ns_scratch_t *S = &P->s;
    const double *theta = P->theta;
    for (int sb = tid; sb < T->n_sb; sb += nthr) {
        const int k = T->sb_blk[sb];
        const int i = sb - T->blk_sb_start[k];
        const double w = S->nu[T->blk_bin_start[k] + i];
        const double s = S->blk_s[k];
        const double sh = S->shape[sb];
        const double gp = S->gprod[sb];
        const double ws = w * s;
        const int g0 = T->sb_gam_ptr[sb], g1 = T->sb_gam_ptr[sb + 1];
        for (int g = g0; g < g1; ++g) {
            double others = ws * sh;
            for (int g2 = g0; g2 < g1; ++g2)
                if (g2 != g)
                    others *= theta[T->gam_param[g2]];
            ns_atomic_add(&P->grad[T->gam_param[g]], others);
        }
        for (int h = T->blk_hs_ptr[k]; h < T->blk_hs_ptr[k + 1]; ++h)
            ns_atomic_add(&P->grad[T->hs_param[h]], ws * gp * S->hsd[T->hs_off[h] + i]);
        S->shape[sb] = w * gp * sh;
    }
}

/* Per block k: a_k = sum_i w gprod shape (bin order, as nll.pyx) and the scalar-factor
 * terms fd[j] a_k prod_{j2 != j} fv[j2]. */
NS_KD void ns_grad_factors(const ns_tables_t *T, const ns_problem_t *P, int tid, int nthr)
{
    const ns_scratch_t *S = &P->s;
    for (int k = tid; k < T->n_blk; k += nthr) {
        const int sb0 = T->blk_sb_start[k];
        double a_blk = 0.0;
        for (int i = 0; i < T->blk_len[k]; ++i)
            a_blk += S->shape[sb0 + i];
        const int j0 = T->blk_fac_ptr[k], j1 = T->blk_fac_ptr[k + 1];
        for (int j = j0; j < j1; ++j) {
            double others = S->fd[j] * a_blk;
            for (int j2 = j0; j2 < j1; ++j2)
                if (j2 != j)
                    others *= S->fv[j2];
            ns_atomic_add(&P->grad[T->fac_param[j]], others);
        }
    }
}

/* ---- block reduction of the Kahan partials -------------------------------------------- */

NS_KD void ns_kahan_merge(ns_kahan_t *a, const ns_kahan_t *b)
{
    ns_kahan_add(a, b->sum);
    a->comp += b->comp;
}

/* Largest power of two strictly below nthr (0 for nthr == 1): the first reduction stride. */
NS_KD int ns_reduce_first_stride(int nthr)
{
    int s = 1;
    while (s < nthr)
        s <<= 1;
    return s >> 1;
}

/* ---- the step sequence of one problem ------------------------------------------------- */

enum {
    NS_STEP_RATES = 0,
    NS_STEP_NU = 1,
    NS_STEP_NLL = 2,
    NS_STEP_GRAD_ENTRIES = 3,
    NS_STEP_GRAD_FACTORS = 4,
    NS_STEP_REDUCE = 5
};

/* Run step `step` of problem P as thread tid of nthr; `red` has nthr entries shared by the
 * thread block. Returns 1 when another step follows (after a barrier), 0 after the last.
 * The return value depends only on (step, nthr), so every thread of a block sees the same
 * sequence and meets the same barriers. */
NS_KD int ns_nll_grad_step(const ns_tables_t *T, const ns_problem_t *P, int step, int tid,
                           int nthr, ns_kahan_t *red)
{
    switch (step) {
    case NS_STEP_RATES:
        if (P->grad)
            for (int q = tid; q < T->n_par; q += nthr)
                P->grad[q] = 0.0;
        ns_rates(T, P->theta, &P->s, P->grad != 0, tid, nthr);
        return 1;
    case NS_STEP_NU:
        ns_nu(T, &P->s, P->s.nu, tid, nthr);
        return 1;
    case NS_STEP_NLL:
        red[tid] = ns_nll_terms(T, P, tid, nthr);
        return 1;
    case NS_STEP_GRAD_ENTRIES:
        if (P->grad)
            ns_grad_entries(T, P, tid, nthr);
        return 1;
    case NS_STEP_GRAD_FACTORS:
        if (P->grad)
            ns_grad_factors(T, P, tid, nthr);
        return 1;
    default: {
        const int stride = ns_reduce_first_stride(nthr) >> (step - NS_STEP_REDUCE);
        if (stride > 0) {
            if (tid < stride && tid + stride < nthr)
                ns_kahan_merge(&red[tid], &red[tid + stride]);
            return 1;
        }
        if (tid == 0) {
            ns_kahan_t acc = red[0];
            ns_kahan_add(&acc, P->constant);
            *P->nll = ns_kahan_value(&acc);
        }
        return 0;
    }
    }
}

/* Steps of one expected-rate evaluation: RATES, then NU into `nu_out`. */
NS_KD int ns_expected_step(const ns_tables_t *T, const double *theta, const ns_scratch_t *S,
                           double *nu_out, int step, int tid, int nthr)
{
    if (step == 0) {
        ns_rates(T, theta, S, 0, tid, nthr);
        return 1;
    }
    ns_nu(T, S, nu_out, tid, nthr);
    return 0;
}

/* ---- kernels --------------------------------------------------------------------------- */

/*
 * NLL (and gradient) of n_prob problems.
 *   theta      [n_prob][n_par]
 *   n_main     row p at n_main + p * main_stride (n_bins values; stride 0 shares one row)
 *   aux        row p at aux + p * aux_stride (n_aux values)
 *   constant   constant[p * const_stride]
 *   nll_out    [n_prob]
 *   grad_out   [n_prob][n_par], written only when want_grad != 0
 *   scratch    [gridDim.x][scratch_stride], scratch_stride >= CompiledModel.scratch_size
 * Launch with blockDim.x <= NS_MAX_THREADS (any value, power of two or not) and any gridDim.x.
 */
extern "C" __global__ void __launch_bounds__(NS_MAX_THREADS)
    ns_batch_nll_grad(NS_TABLE_PARAMS, int n_prob, const double *__restrict__ theta,
                      const double *__restrict__ n_main, long long main_stride,
                      const double *__restrict__ aux, long long aux_stride,
                      const double *__restrict__ constant, long long const_stride,
                      double *__restrict__ nll_out, double *__restrict__ grad_out,
                      int want_grad, double *__restrict__ scratch, long long scratch_stride)
{
    __shared__ ns_kahan_t red[NS_MAX_THREADS];
    ns_tables_t T;
    NS_TABLES_SET(T);
    const int tid = (int)threadIdx.x;
    const int nthr = (int)blockDim.x;
    for (int p = (int)blockIdx.x; p < n_prob; p += (int)gridDim.x) {
        const ns_problem_t P =
            ns_problem(&T, p, (long long)blockIdx.x, theta, n_main, main_stride, aux,
                       aux_stride, constant, const_stride, nll_out, grad_out, want_grad,
                       scratch, scratch_stride);
        for (int step = 0; ns_nll_grad_step(&T, &P, step, tid, nthr, red); ++step)
            __syncthreads();
        __syncthreads(); /* scratch and red are reused by the next problem */
    }
}

/*
 * Expected main-bin rates of n_prob parameter vectors.
 *   theta    [n_prob][n_par]
 *   nu_out   [n_prob][n_bins]
 *   scratch  [gridDim.x][scratch_stride], as for ns_batch_nll_grad
 */
extern "C" __global__ void __launch_bounds__(NS_MAX_THREADS)
    ns_batch_expected_main(NS_TABLE_PARAMS, int n_prob, const double *__restrict__ theta,
                           double *__restrict__ nu_out, double *__restrict__ scratch,
                           long long scratch_stride)
{
    ns_tables_t T;
    NS_TABLES_SET(T);
    const int tid = (int)threadIdx.x;
    const int nthr = (int)blockDim.x;
    for (int p = (int)blockIdx.x; p < n_prob; p += (int)gridDim.x) {
        const double *th = theta + (long long)p * n_par;
        double *out = nu_out + (long long)p * n_bins;
        const ns_scratch_t S = ns_scratch_view(&T, scratch + (long long)blockIdx.x * scratch_stride);
        for (int step = 0; ns_expected_step(&T, th, &S, out, step, tid, nthr); ++step)
            __syncthreads();
        __syncthreads();
    }
}

/* ---- host emulation (tests only) ------------------------------------------------------- */
#if defined(NS_HOST_EMULATION) && !defined(__CUDACC_RTC__)
/*
 * The kernels' step sequences run on the host: thread blocks one after another, and within
 * a step the n_threads "threads" one after another in a pseudo-random order drawn from
 * `seed` (a barrier is the end of a step). Same arguments as the kernels, plus the launch
 * shape. A step that read what another thread writes in the same step would depend on the
 * order; the tests run several orders and thread counts.
 */
static unsigned ns_emu_next(unsigned *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void ns_emu_order(int *order, int n, unsigned *state)
{
    for (int i = 0; i < n; ++i)
        order[i] = i;
    for (int i = n - 1; i > 0; --i) {
        const int j = (int)(ns_emu_next(state) % (unsigned)(i + 1));
        const int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

extern "C" int ns_emulate_batch_nll_grad(NS_TABLE_PARAMS, int n_prob, const double *theta,
                                         const double *n_main, long long main_stride,
                                         const double *aux, long long aux_stride,
                                         const double *constant, long long const_stride,
                                         double *nll_out, double *grad_out, int want_grad,
                                         double *scratch, long long scratch_stride,
                                         int n_blocks, int n_threads, unsigned seed)
{
    if (n_threads < 1 || n_threads > NS_MAX_THREADS || n_blocks < 1)
        return 1;
    ns_kahan_t red[NS_MAX_THREADS];
    int order[NS_MAX_THREADS];
    unsigned state = seed;
    ns_tables_t T;
    NS_TABLES_SET(T);
    for (int blk = 0; blk < n_blocks; ++blk) {
        for (int p = blk; p < n_prob; p += n_blocks) {
            const ns_problem_t P =
                ns_problem(&T, p, blk, theta, n_main, main_stride, aux, aux_stride, constant,
                           const_stride, nll_out, grad_out, want_grad, scratch, scratch_stride);
            for (int step = 0;; ++step) {
                int more = 0;
                ns_emu_order(order, n_threads, &state);
                for (int t = 0; t < n_threads; ++t)
                    more = ns_nll_grad_step(&T, &P, step, order[t], n_threads, red);
                if (!more)
                    break;
            }
        }
    }
    return 0;
}

extern "C" int ns_emulate_batch_expected_main(NS_TABLE_PARAMS, int n_prob, const double *theta,
                                              double *nu_out, double *scratch,
                                              long long scratch_stride, int n_blocks,
                                              int n_threads, unsigned seed)
{
    if (n_threads < 1 || n_threads > NS_MAX_THREADS || n_blocks < 1)
        return 1;
    int order[NS_MAX_THREADS];
    unsigned state = seed;
    ns_tables_t T;
    NS_TABLES_SET(T);
    for (int blk = 0; blk < n_blocks; ++blk) {
        for (int p = blk; p < n_prob; p += n_blocks) {
            const double *th = theta + (long long)p * n_par;
            double *out = nu_out + (long long)p * n_bins;
            const ns_scratch_t S = ns_scratch_view(&T, scratch + (long long)blk * scratch_stride);
            for (int step = 0;; ++step) {
                int more = 0;
                ns_emu_order(order, n_threads, &state);
                for (int t = 0; t < n_threads; ++t)
                    more = ns_expected_step(&T, th, &S, out, step, order[t], n_threads);
                if (!more)
                    break;
            }
        }
    }
    return 0;
}
#endif /* NS_HOST_EMULATION */
