# All OpenMP runtime calls are cimported from here, so that a serial build
# (compiler without OpenMP) still compiles: the shim stubs them out.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define NS_OPENMP_ENABLED 1
    #else
    #define NS_OPENMP_ENABLED 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint NS_OPENMP_ENABLED
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
