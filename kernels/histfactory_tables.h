/*
 * histfactory_tables.h -- the device-side view of a compiled HistFactory model and the
 * argument contract of the CUDA kernels in histfactory_nll.cu.
 *
 * The tables are those of nextstat/model/compile.py (`model.layout.tables`), with the meaning
 * documented in nextstat/_ext/nll.pyx and the field names of `NsModel` in nll.pxd. Three
 * tables are derived from them on the host by nextstat/accel/cuda.py (`derived_tables`) so
 * that a GPU thread can own one main bin or one (sample, bin) entry without atomics:
 *
 *   sb_blk[n_sb]           block (channel, sample) of entry sb
 *   bin_sb_ptr[n_bins + 1] CSR row pointers: the entries adding to main bin b are
 *   bin_sb[n_sb]           bin_sb[bin_sb_ptr[b] .. bin_sb_ptr[b + 1]), in block order (the
 *                          order in which nll.pyx's `_forward` adds them to nu[b])
 *
 * The kernels take every table as its own pointer argument (no struct crosses the host /
 * device boundary, so no layout has to be agreed with CuPy); NS_TABLE_PARAMS lists them in
 * the order nextstat/accel/cuda.py passes them (TABLE_POINTERS, then TABLE_DIMS) and
 * NS_TABLES_SET fills an ns_tables_t from them inside a kernel.
 */
#ifndef NEXTSTAT_HISTFACTORY_TABLES_H
#define NEXTSTAT_HISTFACTORY_TABLES_H

typedef struct {
    /* dimensions */
    int n_par;
    int n_bins;
    int n_blk;
    int n_sb;
    int n_fac;
    int n_gauss;
    int n_pois;
    /* blocks: one per (channel, sample), blk_len contiguous bins */
    const int *blk_bin_start;
    const int *blk_sb_start;
    const int *blk_len;
    /* scalar factors (normfactor / lumi: code -1, normsys: interpolation code) */
    const int *blk_fac_ptr;
    const int *fac_param;
    const int *fac_code;
    const double *fac_lo;
    const double *fac_hi;
    /* histosys shifts, per-entry variations at hs_off[h] + i */
    const int *blk_hs_ptr;
    const int *hs_param;
    const int *hs_code;
    const int *hs_off;
    const double *hs_lo;
    const double *hs_hi;
    /* per-bin gammas (staterror, shapesys, shapefactor) */
    const int *sb_gam_ptr;
    const int *gam_param;
    const double *nominal;
    /* constraints */
    const int *g_param;
    const int *g_aux;
    const double *g_inv_sigma;
    const int *p_param;
    const int *p_aux;
    const double *p_tau;
    /* derived on the host (see above) */
    const int *sb_blk;
    const int *bin_sb_ptr;
    const int *bin_sb;
} ns_tables_t;

/* Kernel parameters carrying the model: 26 table pointers, then 7 int dimensions. Keep in
 * step with TABLE_POINTERS / TABLE_DIMS in nextstat/accel/cuda.py. */
#define NS_TABLE_PARAMS                                                                       \
    const int *__restrict__ blk_bin_start, const int *__restrict__ blk_sb_start,             \
        const int *__restrict__ blk_len, const int *__restrict__ blk_fac_ptr,                \
        const int *__restrict__ fac_param, const int *__restrict__ fac_code,                 \
        const double *__restrict__ fac_lo, const double *__restrict__ fac_hi,                \
        const int *__restrict__ blk_hs_ptr, const int *__restrict__ hs_param,                \
        const int *__restrict__ hs_code, const int *__restrict__ hs_off,                     \
        const double *__restrict__ hs_lo, const double *__restrict__ hs_hi,                  \
        const int *__restrict__ sb_gam_ptr, const int *__restrict__ gam_param,               \
        const double *__restrict__ nominal, const int *__restrict__ g_param,                 \
        const int *__restrict__ g_aux, const double *__restrict__ g_inv_sigma,               \
        const int *__restrict__ p_param, const int *__restrict__ p_aux,                      \
        const double *__restrict__ p_tau, const int *__restrict__ sb_blk,                    \
        const int *__restrict__ bin_sb_ptr, const int *__restrict__ bin_sb, int n_par,       \
        int n_bins, int n_blk, int n_sb, int n_fac, int n_gauss, int n_pois

/* The argument list matching NS_TABLE_PARAMS, to forward them to another function. */
#define NS_TABLE_ARGS                                                                         \
    blk_bin_start, blk_sb_start, blk_len, blk_fac_ptr, fac_param, fac_code, fac_lo, fac_hi,  \
        blk_hs_ptr, hs_param, hs_code, hs_off, hs_lo, hs_hi, sb_gam_ptr, gam_param, nominal, \
        g_param, g_aux, g_inv_sigma, p_param, p_aux, p_tau, sb_blk, bin_sb_ptr, bin_sb,      \
        n_par, n_bins, n_blk, n_sb, n_fac, n_gauss, n_pois

/* Fill the ns_tables_t `T` from the NS_TABLE_PARAMS in scope. */
#define NS_TABLES_SET(T)                                                                      \
    do {                                                                                      \
        (T).n_par = n_par;                                                                    \
        (T).n_bins = n_bins;                                                                  \
        (T).n_blk = n_blk;                                                                    \
        (T).n_sb = n_sb;                                                                      \
        (T).n_fac = n_fac;                                                                    \
        (T).n_gauss = n_gauss;                                                                \
        (T).n_pois = n_pois;                                                                  \
        (T).blk_bin_start = blk_bin_start;                                                    \
        (T).blk_sb_start = blk_sb_start;                                                      \
        (T).blk_len = blk_len;                                                                \
        (T).blk_fac_ptr = blk_fac_ptr;                                                        \
        (T).fac_param = fac_param;                                                            \
        (T).fac_code = fac_code;                                                              \
        (T).fac_lo = fac_lo;                                                                  \
        (T).fac_hi = fac_hi;                                                                  \
        (T).blk_hs_ptr = blk_hs_ptr;                                                          \
        (T).hs_param = hs_param;                                                              \
        (T).hs_code = hs_code;                                                                \
        (T).hs_off = hs_off;                                                                  \
        (T).hs_lo = hs_lo;                                                                    \
        (T).hs_hi = hs_hi;                                                                    \
        (T).sb_gam_ptr = sb_gam_ptr;                                                          \
        (T).gam_param = gam_param;                                                            \
        (T).nominal = nominal;                                                                \
        (T).g_param = g_param;                                                                \
        (T).g_aux = g_aux;                                                                    \
        (T).g_inv_sigma = g_inv_sigma;                                                        \
        (T).p_param = p_param;                                                                \
        (T).p_aux = p_aux;                                                                    \
        (T).p_tau = p_tau;                                                                    \
        (T).sb_blk = sb_blk;                                                                  \
        (T).bin_sb_ptr = bin_sb_ptr;                                                          \
        (T).bin_sb = bin_sb;                                                                  \
    } while (0)

/* Per-problem scratch: the layout of nll.pyx's `_forward`,
 *   nu[n_bins] | shape[n_sb] | gprod[n_sb] | fv[n_fac] | fd[n_fac] | blk_s[n_blk] | hsd[n_hs]
 * with n_hs = len(hs_lo); its length is CompiledModel.scratch_size. */
typedef struct {
    double *nu;
    double *shape;
    double *gprod;
    double *fv;
    double *fd;
    double *blk_s;
    double *hsd;
} ns_scratch_t;

#endif /* NEXTSTAT_HISTFACTORY_TABLES_H */
