"""Facts about how the compiled extensions were built."""

from nextstat._ext.openmp_helpers cimport NS_OPENMP_ENABLED, omp_get_max_threads


def openmp_enabled():
    """True when the extensions were compiled with OpenMP."""
    return bool(NS_OPENMP_ENABLED)


def max_threads():
    """OpenMP's default thread count (1 in a serial build)."""
    return omp_get_max_threads()
