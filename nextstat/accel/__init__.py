"""Optional accelerators; nothing here is imported by ``import nextstat``.

``nextstat.accel.cuda`` evaluates the compiled likelihood for batches of parameter points on
a CUDA GPU through CuPy (see ``docs/gpu.md``). Import it explicitly; it imports CuPy only
when a :class:`~nextstat.accel.cuda.CudaModel` is built.
"""
