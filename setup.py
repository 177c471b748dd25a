"""Build the Cython extensions of nextstat.

OpenMP is used when the compiler accepts ``-fopenmp``; otherwise the build goes on
serially and says so loudly (``nextstat.openmp_enabled()`` reports the outcome).
Set ``NEXTSTAT_DISABLE_OPENMP=1`` to force a serial build and
``NEXTSTAT_CYTHON_DEBUG=1`` to turn bounds checking on.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py as _build_py

HERE = Path(__file__).parent
EXT_DIR = Path("nextstat") / "_ext"


def _compiler_has_openmp() -> bool:
    """Compile and link a tiny OpenMP program with the default C compiler."""
    if os.environ.get("NEXTSTAT_DISABLE_OPENMP"):
        return False
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        return False
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        c_file = Path(tmp) / "t.c"
        c_file.write_text(src)
        try:
            res = subprocess.run(
                [cc, "-fopenmp", str(c_file), "-o", str(Path(tmp) / "t")],
                capture_output=True,
                check=False,
            )
        except OSError:
            return False
        return res.returncode == 0


HAS_OPENMP = _compiler_has_openmp()
if not HAS_OPENMP:
    print(
        "*** nextstat: the C compiler does not support OpenMP; building single-threaded ***",
        file=sys.stderr,
    )

DEBUG = bool(os.environ.get("NEXTSTAT_CYTHON_DEBUG"))
compile_args = ["-O3", "-fno-math-errno"]
link_args: list[str] = []
if HAS_OPENMP:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

extensions = [
    Extension(
        f"nextstat._ext.{pyx.stem}",
        [str(pyx)],
        include_dirs=[np.get_include(), "kernels", str(EXT_DIR)],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for pyx in sorted(EXT_DIR.glob("*.pyx"))
]



class build_py(_build_py):
    """Also ship kernels/*.cu and *.h as package data (nextstat/_kernels/) for the CUDA loader."""

    def run(self):
        super().run()
        dest = Path(self.build_lib) / "nextstat" / "_kernels"
        dest.mkdir(parents=True, exist_ok=True)
        for f in sorted((HERE / "kernels").iterdir()):
            if f.suffix in (".cu", ".h", ".metal"):
                shutil.copy2(f, dest / f.name)


setup(
    cmdclass={"build_py": build_py},
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": DEBUG,
            "wraparound": False,
            "initializedcheck": DEBUG,
            "nonecheck": False,
            "cdivision": True,
            "embedsignature": True,
        },
    ),
)
