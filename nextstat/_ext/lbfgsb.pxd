# C-level interface of nextstat's L-BFGS-B optimizer (algorithm: see lbfgsb.pyx).
#
# Two ways to drive it, both nogil and allocation-free:
#
# * lbfgsb_minimize(): give it a C objective; it loops until a terminal status.
# * reverse communication (ask/tell): lbfgsb_init() writes the first point to evaluate
#   into x; evaluate f and the gradient there and call lbfgsb_step(), which writes the
#   next point into x, until it returns a terminal status (lbfgsb_is_terminal()). On
#   termination x holds the solution, the best point found.
#
# All state lives in an LbfgsbState (treat its fields as private) and in a caller-owned
# work buffer of lbfgsb_work_size(n, m) doubles, so independent fits may run concurrently,
# e.g. one work buffer per prange iteration.

ctypedef double (*objective_fn)(const double* x, double* grad, void* ctx) noexcept nogil
# Returns f(x) and writes the gradient into grad. A non-finite return value (or gradient)
# makes the optimizer reject the point.

cdef enum:
    # non-terminal tasks: evaluate the objective and gradient at x, then call lbfgsb_step
    LBFGSB_EVALUATE = 0
    LBFGSB_NEW_ITERATION = 1  # as EVALUATE; the call also accepted a new iterate
    # terminal statuses (>= LBFGSB_CONVERGED_PGTOL)
    LBFGSB_CONVERGED_PGTOL = 2
    LBFGSB_CONVERGED_FTOL = 3
    LBFGSB_MAX_ITER = 4
    LBFGSB_MAX_FEV = 5
    LBFGSB_ABNORMAL_LINE_SEARCH = 6
    LBFGSB_NONFINITE = 7
    LBFGSB_INVALID_INPUT = 8

cdef struct LbfgsbOptions:
    int m            # number of correction pairs kept (default 10)
    int max_iter     # iteration limit (default 1000)
    int max_fev      # function + gradient evaluation limit (default 5000)
    int max_ls       # evaluations per line search (default 20)
    double pgtol     # stop when max_i |projected gradient_i| <= pgtol (default 1e-6)
    double ftol      # stop when (f_k - f_k+1) / max(|f_k|, |f_k+1|, 1) <= ftol (default 1e-12)

cdef struct LbfgsbResult:
    int status
    int n_iter
    int n_fev
    int n_gev
    double f
    double proj_grad_norm   # infinity norm of the projected gradient at the solution
    int n_active_bounds     # variables sitting on a bound (fixed ones included)
    double initial_f

cdef struct LbfgsbLineSearch:
    double stp
    double stpmax
    double finit
    double ginit
    double gtest
    double stx
    double fx
    double gx
    double sty
    double fy
    double gy
    double stmin
    double stmax
    double width
    double width1
    double best_stp
    double best_f
    int brackt
    int stage
    int nfev
    int has_best

cdef struct LbfgsbState:
    int n
    int m
    int status
    int phase
    int nc           # correction pairs stored
    int head         # slot of the oldest pair
    int n_free
    int n_iter
    int n_fev
    int n_gev
    double theta
    double f
    double f_initial
    double pg_norm
    LbfgsbOptions opts
    LbfgsbLineSearch ls
    # views into the work buffer
    double* lo
    double* hi
    double* xk
    double* gk
    double* d
    double* xbar
    double* gbest
    double* t
    double* gdrv
    double* S
    double* Y
    double* SS
    double* SY
    double* YY
    double* Lm
    double* J
    double* K
    double* Pch
    double* Ech
    double* Sch
    double* Dg
    double* Dinv
    double* p
    double* c
    double* Mp
    double* Mc
    double* v
    double* wrow
    double* wg
    int* heap
    int* free_list

cdef Py_ssize_t lbfgsb_work_size(int n, int m) noexcept nogil
cdef void lbfgsb_default_options(LbfgsbOptions* opts) noexcept nogil
cdef bint lbfgsb_is_terminal(int status) noexcept nogil
cdef int lbfgsb_init(LbfgsbState* st, int n, double* x, const double* lower,
                     const double* upper, const LbfgsbOptions* opts,
                     double* work) noexcept nogil
cdef int lbfgsb_step(LbfgsbState* st, double* x, double f, const double* g) noexcept nogil
cdef void lbfgsb_result(const LbfgsbState* st, LbfgsbResult* res) noexcept nogil
cdef int lbfgsb_minimize(int n, double* x, const double* lower, const double* upper,
                         objective_fn fun, void* ctx, const LbfgsbOptions* opts,
                         LbfgsbResult* res, double* work) noexcept nogil
