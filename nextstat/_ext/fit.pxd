from nextstat._ext.nll cimport NsModel


cdef struct NllContext:
    const NsModel* model
    const double* main
    const double* aux
    double constant
    bint kahan
    double* scratch
    const double* scale
    double* xbuf


cdef double nll_objective(const double* y, double* grad, void* ctx) noexcept nogil

cdef void fisher_scales(const NsModel* m, const double* x, const double* aux,
                        const double* lower, const double* upper, double* scale,
                        double* scratch) noexcept nogil
