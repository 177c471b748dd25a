# C-level interface of the compiled HistFactory likelihood (see nll.pyx).

cdef extern from "histfactory_math.h" nogil:
    ctypedef struct ns_block_t:
        pass

    ctypedef struct ns_run_t:
        pass

    # The C struct ns_model_t (kernels/histfactory_math.h), which the C kernel of ns_nll reads.
    ctypedef struct NsModel "ns_model_t":
        int n_par
        int n_bins
        int n_blk
        int n_sb
        int n_fac
        int n_aux
        int n_gauss
        int n_pois
        Py_ssize_t scratch_size
        const int* blk_bin_start
        const int* blk_sb_start
        const int* blk_len
        const int* blk_fac_ptr
        const int* fac_param
        const int* fac_code
        const double* fac_lo
        const double* fac_hi
        const int* blk_hs_ptr
        const int* hs_param
        const int* hs_code
        const int* hs_off
        const double* hs_lo
        const double* hs_hi
        const int* sb_gam_ptr
        const int* gam_param
        const double* nominal
        const int* g_param
        const int* g_aux
        const double* g_inv_sigma
        const int* p_param
        const int* p_aux
        const double* p_tau
        # derived by CompiledModel from the tables above
        int n_hs_data
        const ns_block_t* blk
        int n_run
        const ns_run_t* run
        const double* run_nominal
        int n_g_run
        int n_p_run
        const int* g_run
        const int* p_run
        double* fac_pre
        double* hs_dp
        double* hs_dm

    # Views of a scratch buffer (ns_cpu_scratch) and the general forward pass, which leaves
    # the rates of the bins (nu), the per-block scalar factors (blk_s) and the per-entry
    # shapes and gamma products in them.
    ctypedef struct ns_cpu_scratch_t:
        double* nu
        double* shape
        double* gprod
        double* fv
        double* fd
        double* blk_s
        double* hsd
    ns_cpu_scratch_t ns_cpu_scratch(const NsModel* m, double* base)
    void ns_cpu_forward_entries(const NsModel* m, const double* theta,
                                const ns_cpu_scratch_t* s, int derivs)


cdef double ns_nll(const NsModel* m, const double* theta, const double* n_main,
                   const double* aux, double constant, double* grad, bint kahan,
                   double* scratch) noexcept nogil

cdef void ns_fisher_diag(const NsModel* m, const double* theta, const double* aux,
                         double* diag, double* scratch) noexcept nogil

cdef void ns_expected_main(const NsModel* m, const double* theta, double* nu,
                           double* scratch) noexcept nogil


cdef class CompiledModel:
    cdef NsModel c
    cdef object _keep
    cdef readonly int n_par
    cdef readonly int n_bins
    cdef readonly int n_aux
