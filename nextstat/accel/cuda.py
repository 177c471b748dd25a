"""Batched NLL, gradient and expected rates of a HistFactory model on a CUDA GPU.

The kernels are ``kernels/histfactory_nll.cu`` (one thread block per problem of the batch;
see the file's header comment); they share their per-bin arithmetic with the CPU extension
through ``kernels/histfactory_math.h``. This module finds the kernel source, compiles it at
run time with CuPy's ``RawModule`` (NVRTC), uploads the model tables once and launches the
kernels. Nothing here is imported by ``import nextstat``, and CuPy is imported only when a
:class:`CudaModel` is built (or :func:`is_available` is called).

Example
-------
>>> from nextstat.accel import cuda
>>> if cuda.is_available():
...     gm = cuda.CudaModel(model)
...     nll, grad = gm.nll_grad_batch(thetas)          # thetas: (B, n_par)

See ``docs/gpu.md`` for how the source is found, compiled and tested.
"""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidParameters

__all__ = [
    "CudaModel",
    "compile_options",
    "derived_tables",
    "find_kernels_dir",
    "is_available",
    "kernel_source",
    "kernel_tables",
]

#: The kernel source file, in the kernels directory.
KERNEL_FILE = "histfactory_nll.cu"
NLL_KERNEL = "ns_batch_nll_grad"
EXPECTED_KERNEL = "ns_batch_expected_main"
#: ``NS_MAX_THREADS`` in the kernel source: the largest thread-block size it accepts.
MAX_THREADS = 256
DEFAULT_THREADS = 128
#: At most this many thread blocks per launch; larger batches go round the kernels'
#: grid-stride loop, reusing the blocks' scratch rows.
MAX_BLOCKS = 8192
#: Upper bound on one launch's scratch memory (bytes), which also bounds the grid.
SCRATCH_BUDGET = 512 * 2**20
#: Minimum compute capability (double-precision ``atomicAdd``).
MIN_COMPUTE_CAPABILITY = 60

#: Pointer arguments of the kernels, in the order of ``NS_TABLE_PARAMS``
#: (``kernels/histfactory_tables.h``), with their element types. The last three are derived
#: by :func:`derived_tables`; the others are ``model.layout.tables`` entries.
TABLE_POINTERS = (
    ("blk_bin_start", np.int32),
    ("blk_sb_start", np.int32),
    ("blk_len", np.int32),
    ("blk_fac_ptr", np.int32),
    ("fac_param", np.int32),
    ("fac_code", np.int32),
    ("fac_lo", np.float64),
    ("fac_hi", np.float64),
    ("blk_hs_ptr", np.int32),
    ("hs_param", np.int32),
    ("hs_code", np.int32),
    ("hs_off", np.int32),
    ("hs_lo", np.float64),
    ("hs_hi", np.float64),
    ("sb_gam_ptr", np.int32),
    ("gam_param", np.int32),
    ("nominal", np.float64),
    ("g_param", np.int32),
    ("g_aux", np.int32),
    ("g_inv_sigma", np.float64),
    ("p_param", np.int32),
    ("p_aux", np.int32),
    ("p_tau", np.float64),
    ("sb_blk", np.int32),
    ("bin_sb_ptr", np.int32),
    ("bin_sb", np.int32),
)
#: The int dimension arguments that follow the pointers.
TABLE_DIMS = ("n_par", "n_bins", "n_blk", "n_sb", "n_fac", "n_gauss", "n_pois")

_MISSING_CUPY = (
    "nextstat.accel.cuda needs CuPy and a CUDA GPU. Install the CuPy wheel that matches "
    "your CUDA driver, e.g. `pip install cupy-cuda12x` or `pip install cupy-cuda13x` "
    "(see https://docs.cupy.dev/en/stable/install.html); the CPU likelihood "
    "(`model.nll_and_grad`) needs none of this."
)


# ---- CuPy and the device ------------------------------------------------------------------


def _import_cupy():
    """CuPy, once a usable device is known to exist; ImportError with advice otherwise."""
    try:
        import cupy
    except Exception as exc:  # ImportError, or a broken install (missing CUDA libraries)
        raise ImportError(f"{_MISSING_CUPY} (importing cupy failed: {exc})") from exc
    try:
        n_dev = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError: no driver, no device, ...
        raise ImportError(
            f"CuPy is installed but no CUDA device can be used ({exc}). {_MISSING_CUPY}"
        ) from exc
    if n_dev < 1:
        raise ImportError(f"CuPy is installed but no CUDA device is visible. {_MISSING_CUPY}")
    cc = int(cupy.cuda.Device().compute_capability)
    if cc < MIN_COMPUTE_CAPABILITY:
        raise ImportError(
            f"CUDA device {cupy.cuda.Device().id} has compute capability {cc // 10}.{cc % 10};"
            f" the nextstat kernels need {MIN_COMPUTE_CAPABILITY // 10}.0 or newer"
        )
    return cupy


def is_available() -> bool:
    """Whether CuPy imports and a CUDA device it can use is present. Never raises."""
    try:
        _import_cupy()
    except Exception:
        return False
    return True


# ---- the kernel source --------------------------------------------------------------------


def find_kernels_dir() -> Path:
    """The directory holding ``histfactory_nll.cu`` and its headers.

    In a source checkout that is ``kernels/`` at the repository root (next to the
    ``nextstat`` package); in an installed package it is the package data directory
    ``nextstat/_kernels``.
    """
    candidates = [Path(__file__).resolve().parents[2] / "kernels"]
    try:
        candidates.append(Path(str(importlib.resources.files("nextstat") / "_kernels")))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - exotic importers
        pass
    for cand in candidates:
        if (cand / KERNEL_FILE).is_file():
            return cand
    raise FileNotFoundError(
        f"cannot find {KERNEL_FILE}; looked in "
        + ", ".join(str(c) for c in candidates)
        + " (pass kernels_dir= to point at a copy of the repository's kernels/ directory)"
    )


_QUOTED_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"\s*$')
_SYSTEM_INCLUDE = re.compile(r"^\s*#\s*include\s*<[^>]+>\s*$")


def kernel_source(kernels_dir=None) -> str:
    """The kernel source as one self-contained text, as handed to NVRTC.

    Quoted includes are inlined from ``kernels_dir`` (with ``#line`` markers, so compiler
    messages name the original files), which makes CuPy's kernel cache key (a hash of the
    source text and the options) cover the headers too. System includes such as
    ``<math.h>`` are wrapped in ``#ifndef __CUDACC_RTC__``: NVRTC has no C library headers
    (its math functions are built in) and fails on ``#include <math.h>``.
    """
    directory = Path(kernels_dir) if kernels_dir is not None else find_kernels_dir()
    seen: set[str] = set()

    def expand(name: str) -> list[str]:
        seen.add(name)
        out = [f'#line 1 "{name}"']
        text = (directory / name).read_text(encoding="utf-8")
        for lineno, line in enumerate(text.splitlines(), start=1):
            m = _QUOTED_INCLUDE.match(line)
            if m:
                if m.group(1) not in seen:
                    out.extend(expand(m.group(1)))
                out.append(f'#line {lineno + 1} "{name}"')
            elif _SYSTEM_INCLUDE.match(line):
                out.extend(["#ifndef __CUDACC_RTC__", line, "#endif"])
                out.append(f'#line {lineno + 1} "{name}"')
            else:
                out.append(line)
        return out

    return "\n".join(expand(KERNEL_FILE)) + "\n"


def compile_options(kernels_dir=None) -> tuple[str, ...]:
    """NVRTC options for :func:`kernel_source` (the include path is not needed by the inlined
    source; it is kept so that the options also compile the raw ``.cu`` file)."""
    directory = Path(kernels_dir) if kernels_dir is not None else find_kernels_dir()
    return (f"-I{directory}", "--std=c++14")


# ---- tables -------------------------------------------------------------------------------


def derived_tables(tables: dict) -> dict[str, np.ndarray]:
    """The bin-to-entry tables the kernels need besides ``model.layout.tables``.

    Returns ``sb_blk`` (block of each (sample, bin) entry), and ``bin_sb_ptr`` / ``bin_sb``
    (CSR lists of the entries of each main bin, in block order, the order in which the CPU
    code adds them up).
    """
    b0s = np.asarray(tables["blk_bin_start"], dtype=np.int64)
    s0s = np.asarray(tables["blk_sb_start"], dtype=np.int64)
    lens = np.asarray(tables["blk_len"], dtype=np.int64)
    n_sb = int(np.asarray(tables["nominal"]).shape[0])
    n_bins = int(tables["n_bins"])
    sb_blk = np.full(n_sb, -1, dtype=np.int64)
    sb_bin = np.full(n_sb, -1, dtype=np.int64)
    for k, (b0, s0, n) in enumerate(zip(b0s, s0s, lens, strict=True)):
        if n < 0 or s0 < 0 or b0 < 0 or s0 + n > n_sb or b0 + n > n_bins:
            raise ValueError(f"block {k} (bins {b0}+{n}, entries {s0}+{n}) is out of range")
        if np.any(sb_blk[s0 : s0 + n] >= 0):
            raise ValueError(f"block {k} overlaps the entries of another block")
        sb_blk[s0 : s0 + n] = k
        sb_bin[s0 : s0 + n] = b0 + np.arange(n)
    if np.any(sb_blk < 0):
        raise ValueError("some (sample, bin) entries belong to no block")
    order = np.lexsort((sb_blk, sb_bin))  # by bin, then by block
    ptr = np.zeros(n_bins + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(np.bincount(sb_bin, minlength=n_bins))
    return {
        "sb_blk": sb_blk.astype(np.int32),
        "bin_sb_ptr": ptr.astype(np.int32),
        "bin_sb": order.astype(np.int32),
    }


@dataclass
class KernelTables:
    """Host-side kernel arguments of a model: the table arrays (``TABLE_POINTERS`` order),
    the dimensions (``TABLE_DIMS`` order) and the scratch length of one problem."""

    arrays: list[np.ndarray]
    dims: list[int]
    scratch_size: int

    def args(self, upload=np.ascontiguousarray) -> tuple:
        """Kernel arguments: ``upload(array)`` for each table, then the dims as int32."""
        return (*(upload(a) for a in self.arrays), *(np.int32(d) for d in self.dims))


def kernel_tables(tables: dict) -> KernelTables:
    """Convert ``model.layout.tables`` into the kernels' table arguments."""
    full = dict(tables)
    full.update(derived_tables(tables))
    arrays = [np.ascontiguousarray(full[name], dtype=dt) for name, dt in TABLE_POINTERS]
    n_sb = full["nominal"].shape[0]
    n_fac = full["fac_param"].shape[0]
    n_blk = full["blk_len"].shape[0]
    dims = {
        "n_par": int(full["n_par"]),
        "n_bins": int(full["n_bins"]),
        "n_blk": n_blk,
        "n_sb": n_sb,
        "n_fac": n_fac,
        "n_gauss": full["g_param"].shape[0],
        "n_pois": full["p_param"].shape[0],
    }
    # the CPU kernel's scratch size (ns_cpu_scratch_size in histfactory_math.h):
    # nu | shape | gprod | fv | fd | blk_s | hsd
    scratch = dims["n_bins"] + 2 * n_sb + 2 * n_fac + n_blk + full["hs_lo"].shape[0]
    return KernelTables(arrays, [dims[d] for d in TABLE_DIMS], int(scratch))


# ---- batches ------------------------------------------------------------------------------


@dataclass
class Batch:
    """Validated host inputs of a batch: rows of one (shared) or ``n`` (per problem)."""

    thetas: np.ndarray  # (n, n_par)
    mains: np.ndarray  # (1 or n, n_bins)
    auxs: np.ndarray  # (1 or n, n_aux)
    constants: np.ndarray  # (1 or n,)

    @property
    def n(self) -> int:
        return self.thetas.shape[0]


def _rows(x, n: int, width: int, what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != width or arr.shape[0] not in (1, n):
        raise InvalidParameters(
            f"{what} has shape {np.shape(x)}; expected ({width},) or ({n}, {width})"
        )
    return np.ascontiguousarray(arr)


def prepare_batch(model, thetas, mains=None, auxs=None, constants=None) -> Batch:
    """Check and shape the inputs of a batch evaluation (see :meth:`CudaModel.nll_grad_batch`)."""
    from scipy.special import gammaln

    lay = model.layout
    n_par, n_bins, n_aux = model.n_params(), model.n_main_bins(), model.n_aux()
    th = np.asarray(thetas, dtype=np.float64)
    if th.ndim == 1:
        th = th[None, :]
    if th.ndim != 2 or th.shape[1] != n_par:
        raise InvalidParameters(
            f"thetas has shape {np.shape(thetas)}; expected ({n_par},) or (B, {n_par})"
        )
    if not np.all(np.isfinite(th)):
        raise InvalidParameters("thetas has non-finite entries")
    n = th.shape[0]
    obs_main, obs_aux, obs_const = model.dataset()
    main = obs_main[None, :] if mains is None else _rows(mains, n, n_bins, "mains")
    aux = obs_aux[None, :] if auxs is None else _rows(auxs, n, n_aux, "auxs")
    if mains is not None and not np.all(np.isfinite(main) & (main >= 0)):
        raise InvalidParameters("mains: counts must be finite and >= 0")
    if auxs is not None:
        if not np.all(np.isfinite(aux)):
            raise InvalidParameters("auxs has non-finite entries")
        if np.any(aux[:, lay.pois_aux_index] < 0):
            raise InvalidParameters("auxs: Poisson auxiliary data must be >= 0")
    if constants is not None:
        const = np.asarray(constants, dtype=np.float64).reshape(-1)
        if const.shape[0] not in (1, n):
            raise InvalidParameters(
                f"constants has shape {np.shape(constants)}; expected a scalar or ({n},)"
            )
    elif mains is None and auxs is None:
        const = np.array([obs_const])
    else:  # HistFactoryModel.dataset's constant, row by row
        lm = np.sum(gammaln(main + 1.0), axis=1)
        la = np.sum(gammaln(aux[:, lay.pois_aux_index] + 1.0), axis=1)
        const = lm + la + lay.gauss_log_norm
    return Batch(th, main, aux, np.ascontiguousarray(const))


def grid_size(n_prob: int, scratch_size: int, max_blocks: int = MAX_BLOCKS) -> int:
    """Thread blocks for a batch of ``n_prob``: one per problem, within the caps."""
    per_block = 8 * max(scratch_size, 1)
    return max(1, min(n_prob, max_blocks, SCRATCH_BUDGET // per_block))


def nll_grad_launch_args(xp, table_args, batch: Batch, want_grad: bool, n_blocks: int,
                         scratch_size: int):
    """Arguments of ``ns_batch_nll_grad`` with arrays from ``xp`` (numpy or cupy).

    Returns ``(args, nll, grad)``; ``grad`` is a 1-element dummy when ``want_grad`` is
    false. Shared by :class:`CudaModel` and the host emulation in the tests.
    """
    n, n_par = batch.thetas.shape
    width = max(scratch_size, 1)
    nll = xp.empty(n, dtype=xp.float64)
    grad = xp.empty((n, n_par) if want_grad else (1,), dtype=xp.float64)
    scratch = xp.empty((n_blocks, width), dtype=xp.float64)

    def stride(a):
        return np.int64(a.shape[1] if a.shape[0] > 1 else 0)

    const_stride = np.int64(1 if batch.constants.shape[0] > 1 else 0)
    args = (
        *table_args,
        np.int32(n),
        xp.asarray(batch.thetas),
        xp.asarray(batch.mains),
        stride(batch.mains),
        xp.asarray(batch.auxs),
        stride(batch.auxs),
        xp.asarray(batch.constants),
        const_stride,
        nll,
        grad,
        np.int32(1 if want_grad else 0),
        scratch,
        np.int64(width),
    )
    return args, nll, grad


def expected_main_launch_args(xp, table_args, thetas: np.ndarray, n_bins: int, n_blocks: int,
                              scratch_size: int):
    """Arguments of ``ns_batch_expected_main``; returns ``(args, nu)``."""
    n = thetas.shape[0]
    width = max(scratch_size, 1)
    nu = xp.empty((n, n_bins), dtype=xp.float64)
    scratch = xp.empty((n_blocks, width), dtype=xp.float64)
    args = (*table_args, np.int32(n), xp.asarray(thetas), nu, scratch, np.int64(width))
    return args, nu


# ---- the model ----------------------------------------------------------------------------


class CudaModel:
    """A :class:`~nextstat.HistFactoryModel` evaluated in batches on the GPU.

    Building it uploads the model tables once and compiles the kernels (NVRTC; CuPy caches
    the binary on disk, so later processes skip the compilation).

    Parameters
    ----------
    model : nextstat.HistFactoryModel
    threads_per_block : int
        CUDA threads per problem (1 to 256; default 128).
    kernels_dir : path, optional
        Directory with ``histfactory_nll.cu`` and its headers (default:
        :func:`find_kernels_dir`).
    max_blocks : int, optional
        Cap on the thread blocks of one launch (default :data:`MAX_BLOCKS`).

    Raises
    ------
    ImportError
        CuPy is missing or no usable CUDA device is present (see :func:`is_available`).
    """

    def __init__(self, model, *, threads_per_block: int = DEFAULT_THREADS, kernels_dir=None,
                 max_blocks: int = MAX_BLOCKS):
        cp = _import_cupy()
        if not 1 <= int(threads_per_block) <= MAX_THREADS:
            raise ValueError(f"threads_per_block must be in 1..{MAX_THREADS}")
        if int(max_blocks) < 1:
            raise ValueError("max_blocks must be >= 1")
        self._cp = cp
        self._model = model
        self._threads = int(threads_per_block)
        self._max_blocks = int(max_blocks)
        directory = Path(kernels_dir) if kernels_dir is not None else find_kernels_dir()
        self._kt = kernel_tables(model.layout.tables)
        self._table_args = self._kt.args(upload=cp.asarray)  # keeps the device arrays alive
        self._module = cp.RawModule(code=kernel_source(directory),
                                    options=compile_options(directory))
        self._nll_kernel = self._module.get_function(NLL_KERNEL)
        self._expected_kernel = self._module.get_function(EXPECTED_KERNEL)

    @property
    def model(self):
        """The CPU model this was built from."""
        return self._model

    @property
    def threads_per_block(self) -> int:
        return self._threads

    def _launch_nll(self, thetas, mains, auxs, constants, want_grad: bool):
        cp = self._cp
        batch = prepare_batch(self._model, thetas, mains, auxs, constants)
        n = batch.n
        n_par = batch.thetas.shape[1]
        if n == 0:
            return np.empty(0), np.empty((0, n_par))
        n_blocks = grid_size(n, self._kt.scratch_size, self._max_blocks)
        args, nll, grad = nll_grad_launch_args(cp, self._table_args, batch, want_grad,
                                               n_blocks, self._kt.scratch_size)
        self._nll_kernel((n_blocks,), (self._threads,), args)
        return cp.asnumpy(nll), (cp.asnumpy(grad) if want_grad else None)

    def nll_grad_batch(self, thetas, mains=None, auxs=None, constants=None):
        """NLL and gradient of a batch of problems.

        Parameters
        ----------
        thetas : array_like, shape (B, n_par) or (n_par,)
            One parameter vector per problem (a 1-D vector is a batch of one).
        mains : array_like, shape (B, n_bins) or (n_bins,), optional
            Main-bin counts per problem, or one row shared by all; default the observed data.
        auxs : array_like, shape (B, n_aux) or (n_aux,), optional
            Auxiliary data per problem or shared; default the model's.
        constants : float or array_like, shape (B,), optional
            The data-dependent NLL constant per problem (see
            :meth:`HistFactoryModel.dataset`); default computed from ``mains`` / ``auxs``.

        Returns
        -------
        nll : numpy.ndarray, shape (B,)
        grad : numpy.ndarray, shape (B, n_par)
        """
        return self._launch_nll(thetas, mains, auxs, constants, True)

    def nll_batch(self, thetas, mains=None, auxs=None, constants=None) -> np.ndarray:
        """NLL only (same arguments as :meth:`nll_grad_batch`); shape (B,)."""
        return self._launch_nll(thetas, mains, auxs, constants, False)[0]

    def expected_main_batch(self, thetas) -> np.ndarray:
        """Expected main-bin rates, shape (B, n_bins), for thetas of shape (B, n_par)."""
        cp = self._cp
        th = prepare_batch(self._model, thetas).thetas
        n_bins = self._model.n_main_bins()
        if th.shape[0] == 0:
            return np.empty((0, n_bins))
        n_blocks = grid_size(th.shape[0], self._kt.scratch_size, self._max_blocks)
        args, nu = expected_main_launch_args(cp, self._table_args, th, n_bins, n_blocks,
                                             self._kt.scratch_size)
        self._expected_kernel((n_blocks,), (self._threads,), args)
        return cp.asnumpy(nu)

    def __repr__(self) -> str:
        return (f"CudaModel({self._model.n_params()} parameters, "
                f"{self._model.n_main_bins()} bins, {self._threads} threads/problem)")
