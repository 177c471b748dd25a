"""The CUDA batch likelihood: ``nextstat.accel.cuda`` and ``kernels/histfactory_nll.cu``.

Four tiers, so that most of the GPU path is exercised on machines without a GPU:

* always: the host-side pieces (derived tables, source assembly, batch shaping, the
  argument contract between the Python launcher and the kernel header, the ImportError
  without CuPy, ``import nextstat`` not importing any of it);
* nvcc on PATH: every ``kernels/*.cu`` (and the assembled source) compiles to PTX without
  warnings, and the kernels' step sequence compiled for the host (``NS_HOST_EMULATION``)
  reproduces the CPU likelihood, with the "threads" of each step run in random orders and
  several block / grid sizes (a missing barrier or a cross-thread race shows up as an
  order-dependent, wrong result), also driven through ``CudaModel`` with a stand-in CuPy;
* libnvrtc loadable: the assembled source compiles with NVRTC, as CuPy will compile it;
* marked ``gpu`` (CuPy and a CUDA device): the kernels on the GPU against the CPU model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from zoo import ZOO

import nextstat
from nextstat.accel import cuda
from nextstat.errors import InvalidParameters

KERNELS = Path(__file__).resolve().parents[1] / "kernels"
NVCC = shutil.which("nvcc")
PTX_ARCHS = ("sm_80", "sm_90")

# Tolerances, GPU (or host emulation) vs the CPU model in parity mode. Both sides sum the NLL
# with compensated sums (CPU: Kahan-Babuska in a fixed order; GPU: per-thread Kahan partials
# merged by a compensated tree), so what differs is the rounding of the terms themselves:
# device log/exp are within 2 ulp of glibc's and nvcc contracts a*b+c into FMAs, a few eps
# per term. That bounds the NLL difference by ~4 eps sum|t_i|; on the zoo at the points
# below sum|t_i| / |NLL| <= 250, i.e. <= 2.2e-13 relative. The gradient is summed with
# double atomicAdd in an arbitrary order: error <= ~4 eps sum|c_i| over its contributions
# c_i, which on the zoo is <= 5e-12 absolute and <= 1.5e-5 of (GRAD_RTOL |g| + GRAD_ATOL).
# An indexing error moves the results by far more (1e-3 and up).
#: NLL, relative.
NLL_RTOL = 1e-10
#: Gradient, relative + absolute (the absolute part covers components near zero).
GRAD_RTOL, GRAD_ATOL = 1e-8, 1e-10
#: Expected main rates: same products in the same order and association as the CPU code;
#: only device exp/log (codes 1 and 4) and FMA contraction differ, a few ulp per factor.
EXPECTED_RTOL = 1e-12

CASES = sorted(ZOO)
INTERPOLATIONS = ("pyhf", "root")
N_POINTS = 6
#: (threads per block, thread blocks) for the host emulation: one thread, a non-power of
#: two, a full warp pair, the maximum; fewer blocks than problems runs the grid-stride loop.
EMU_SHAPES = ((1, 1), (7, 2), (64, N_POINTS), (256, 4))


def _model(name, interpolation="pyhf"):
    return nextstat.from_pyhf(ZOO[name], interpolation=interpolation,
                              unknown_parameters="ignore")


def _points(model, n, seed):
    """Points around the init, inside the bounds, with per-type scales (fixed ones kept)."""
    rng = np.random.default_rng(seed)
    scales = np.concatenate([
        np.full(ps.n, {"normsys": 1.0, "histosys": 1.0, "normfactor": 0.5}.get(ps.kind, 0.05))
        for ps in model.layout.param_sets
    ])
    lo, hi = np.array(model.suggested_bounds()).T
    init = model.suggested_init()
    fixed = np.array(model.suggested_fixed())
    p = init + scales * rng.standard_normal((n, init.size))
    return np.where(fixed, init, np.clip(p, lo + 1e-3, hi - 1e-3))


def _toys(model, thetas, seed):
    """Poisson main counts drawn around the expected rates at each point."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.poisson(model.expected_main(t)).astype(float) for t in thetas])


def _cpu(model, thetas, mains=None):
    out = [model.nll_and_grad(t, data=None if mains is None else mains[i], mode="parity")
           for i, t in enumerate(thetas)]
    return np.array([o[0] for o in out]), np.stack([o[1] for o in out])


def _assert_matches_cpu(nll, grad, ref_nll, ref_grad):
    np.testing.assert_allclose(nll, ref_nll, rtol=NLL_RTOL, atol=0)
    np.testing.assert_allclose(grad, ref_grad, rtol=GRAD_RTOL, atol=GRAD_ATOL)


# ---- host-side pieces (always) ------------------------------------------------------------


def test_is_available_is_a_bool():
    assert isinstance(cuda.is_available(), bool)


@pytest.mark.skipif(cuda.is_available(), reason="a GPU is available")
def test_cuda_model_without_gpu_raises_import_error():
    with pytest.raises(ImportError, match="CuPy"):
        cuda.CudaModel(_model("normfactor_only"), kernels_dir=KERNELS)


def test_import_nextstat_loads_no_accelerator():
    code = ("import sys, nextstat; "
            "bad = [m for m in sys.modules if m.startswith(('nextstat.accel', 'cupy'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


def test_table_arguments_match_the_header():
    """The launcher's argument order is NS_TABLE_PARAMS' order."""
    text = (KERNELS / "histfactory_tables.h").read_text()
    body = re.search(r"#define NS_TABLE_PARAMS(.*?)\n\n", text, re.S).group(1)
    names = re.findall(r"(?:const \w+ \*__restrict__|int) (\w+)", body.replace("\\\n", " "))
    expected = [n for n, _ in cuda.TABLE_POINTERS] + list(cuda.TABLE_DIMS)
    assert names == expected
    dtypes = re.findall(r"const (\w+) \*__restrict__", body)
    assert dtypes == ["int" if dt is np.int32 else "double" for _, dt in cuda.TABLE_POINTERS]
    src = (KERNELS / cuda.KERNEL_FILE).read_text()
    assert f"#define NS_MAX_THREADS {cuda.MAX_THREADS}\n" in src


@pytest.mark.parametrize("name", CASES)
def test_derived_tables(name):
    model = _model(name)
    t = model.layout.tables
    d = cuda.derived_tables(t)
    n_sb = t["nominal"].shape[0]
    # the CPU loops: entry sb0 + i of block k adds to bin b0 + i
    expect: dict[int, list[int]] = {b: [] for b in range(t["n_bins"])}
    blocks = zip(t["blk_bin_start"], t["blk_sb_start"], t["blk_len"], strict=True)
    for k, (b0, s0, n) in enumerate(blocks):
        for i in range(n):
            assert d["sb_blk"][s0 + i] == k
            expect[b0 + i].append(s0 + i)
    assert d["bin_sb_ptr"][0] == 0 and d["bin_sb_ptr"][-1] == n_sb
    for b, entries in expect.items():
        got = d["bin_sb"][d["bin_sb_ptr"][b]:d["bin_sb_ptr"][b + 1]]
        assert got.tolist() == entries  # block order, as nll.pyx adds them
    kt = cuda.kernel_tables(t)
    assert kt.scratch_size == model.compiled.scratch_size
    assert all(a.flags.c_contiguous for a in kt.arrays)


def test_derived_tables_reject_overlapping_blocks():
    t = dict(_model("multichannel").layout.tables)
    t["blk_sb_start"] = np.zeros_like(t["blk_sb_start"])
    with pytest.raises(ValueError, match="overlaps"):
        cuda.derived_tables(t)


def test_kernel_source_is_self_contained():
    src = cuda.kernel_source(KERNELS)
    assert not re.search(r'^\s*#\s*include\s*"', src, re.M)
    assert "#ifndef __CUDACC_RTC__\n#include <math.h>\n#endif" in src
    for f in ("histfactory_math.h", "histfactory_tables.h", cuda.KERNEL_FILE):
        assert f'#line 1 "{f}"' in src
    assert "ns_batch_nll_grad" in src and "ns_batch_expected_main" in src
    assert cuda.compile_options(KERNELS) == (f"-I{KERNELS}", "--std=c++14")


def test_prepare_batch_constants_match_the_model():
    model = _model("realistic")
    th = _points(model, 3, seed=1)
    mains = _toys(model, th, seed=2)
    aux = model.aux_data() + 0.1
    b = cuda.prepare_batch(model, th, mains=mains, auxs=aux)
    assert b.mains.shape == mains.shape and b.auxs.shape == (1, model.n_aux())
    for i in range(3):
        _, _, c = model.dataset(np.concatenate([mains[i], aux]))
        assert b.constants[i] == pytest.approx(c, rel=1e-14)
    b = cuda.prepare_batch(model, th[0])
    assert b.thetas.shape == (1, model.n_params())
    assert b.constants.tolist() == [model.dataset()[2]]


def test_prepare_batch_rejects_bad_input():
    model = _model("realistic")
    th = _points(model, 2, seed=1)
    with pytest.raises(InvalidParameters, match="thetas"):
        cuda.prepare_batch(model, th[:, :-1])
    with pytest.raises(InvalidParameters, match="thetas"):
        cuda.prepare_batch(model, np.where(th == th[0, 0], np.nan, th))
    with pytest.raises(InvalidParameters, match="mains"):
        cuda.prepare_batch(model, th, mains=np.ones((3, model.n_main_bins())))
    with pytest.raises(InvalidParameters, match="mains"):
        cuda.prepare_batch(model, th, mains=-np.ones(model.n_main_bins()))
    with pytest.raises(InvalidParameters, match="constants"):
        cuda.prepare_batch(model, th, constants=np.zeros(3))


# ---- nvcc: compilation and host emulation -------------------------------------------------

needs_nvcc = pytest.mark.skipif(NVCC is None, reason="nvcc is not on PATH")


def _nvcc(args, cwd):
    res = subprocess.run([NVCC, *args], capture_output=True, text=True, cwd=cwd)
    return res.returncode, res.stdout + res.stderr


@needs_nvcc
@pytest.mark.parametrize("arch", PTX_ARCHS)
def test_kernels_compile_with_nvcc(arch, tmp_path):
    sources = sorted(KERNELS.glob("*.cu"))
    assert sources, "no kernels/*.cu"
    assembled = tmp_path / "assembled_histfactory_nll.cu"
    assembled.write_text(cuda.kernel_source(KERNELS))
    for cu in [*sources, assembled]:
        out = tmp_path / (cu.stem + ".ptx")
        rc, log = _nvcc(["-ptx", f"-arch={arch}", "-I", str(KERNELS), str(cu), "-o", str(out)],
                        tmp_path)
        assert rc == 0, f"{cu.name}:\n{log}"
        assert "warning" not in log.lower(), f"{cu.name}:\n{log}"
        assert out.stat().st_size > 0


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """The kernels' step sequence compiled for the host (NS_HOST_EMULATION)."""
    if NVCC is None:
        pytest.skip("nvcc is not on PATH")
    lib = tmp_path_factory.mktemp("emu") / "libns_emu.so"
    rc, log = _nvcc(["-shared", "-Xcompiler", "-fPIC", "-O2", "-arch=sm_80",
                     "-DNS_HOST_EMULATION", "-I", str(KERNELS),
                     str(KERNELS / cuda.KERNEL_FILE), "-o", str(lib)], lib.parent)
    assert rc == 0, log
    return ctypes.CDLL(str(lib))


def _c(arg):
    if isinstance(arg, np.ndarray):
        return ctypes.c_void_p(arg.ctypes.data)
    if isinstance(arg, np.int32):
        return ctypes.c_int32(int(arg))
    if isinstance(arg, np.int64):
        return ctypes.c_int64(int(arg))
    raise TypeError(f"unexpected kernel argument {type(arg)}")


def _emu_nll_grad(lib, model, batch, want_grad, n_threads, n_blocks, seed):
    kt = cuda.kernel_tables(model.layout.tables)
    args, nll, grad = cuda.nll_grad_launch_args(np, kt.args(), batch, want_grad, n_blocks,
                                                kt.scratch_size)
    if want_grad:
        grad.fill(np.nan)  # the kernel must zero its rows itself
    rc = lib.ns_emulate_batch_nll_grad(*map(_c, args), ctypes.c_int(n_blocks),
                                       ctypes.c_int(n_threads), ctypes.c_uint(seed))
    assert rc == 0
    return nll, grad


@pytest.mark.parametrize("interpolation", INTERPOLATIONS)
@pytest.mark.parametrize("name", CASES)
def test_emulated_kernel_matches_cpu(emu, name, interpolation):
    model = _model(name, interpolation)
    th = _points(model, N_POINTS, seed=11)
    ref_nll, ref_grad = _cpu(model, th)
    batch = cuda.prepare_batch(model, th)
    for seed, (n_threads, n_blocks) in enumerate(EMU_SHAPES):
        nll, grad = _emu_nll_grad(emu, model, batch, True, n_threads, n_blocks, seed + 1)
        _assert_matches_cpu(nll, grad, ref_nll, ref_grad)
    nll_only, _ = _emu_nll_grad(emu, model, batch, False, 32, 2, 99)
    np.testing.assert_allclose(nll_only, ref_nll, rtol=NLL_RTOL, atol=0)


@pytest.mark.parametrize("name", ["realistic", "all_modifiers", "zero_bins", "shapesys_only"])
def test_emulated_kernel_per_problem_data(emu, name):
    model = _model(name)
    th = _points(model, N_POINTS, seed=12)
    mains = _toys(model, th, seed=13)
    ref_nll, ref_grad = _cpu(model, th, mains)
    batch = cuda.prepare_batch(model, th, mains=mains)
    nll, grad = _emu_nll_grad(emu, model, batch, True, 32, 4, 5)
    _assert_matches_cpu(nll, grad, ref_nll, ref_grad)


@pytest.mark.parametrize("codes", [{"normsys": "2", "histosys": "4"},
                                   {"normsys": "0", "histosys": "2"},
                                   {"normsys": "4p", "histosys": "1"}])
def test_emulated_kernel_other_codes(emu, codes):
    model = nextstat.from_pyhf(ZOO["all_modifiers"], interpolation=codes,
                               unknown_parameters="ignore")
    th = _points(model, N_POINTS, seed=14)
    ref_nll, ref_grad = _cpu(model, th)
    nll, grad = _emu_nll_grad(emu, model, cuda.prepare_batch(model, th), True, 16, 3, 7)
    _assert_matches_cpu(nll, grad, ref_nll, ref_grad)


@pytest.mark.parametrize("name", CASES)
def test_emulated_expected_main(emu, name):
    model = _model(name, "root")
    th = _points(model, N_POINTS, seed=15)
    kt = cuda.kernel_tables(model.layout.tables)
    for seed, (n_threads, n_blocks) in enumerate(EMU_SHAPES):
        args, nu = cuda.expected_main_launch_args(np, kt.args(), th, model.n_main_bins(),
                                                  n_blocks, kt.scratch_size)
        rc = emu.ns_emulate_batch_expected_main(*map(_c, args), ctypes.c_int(n_blocks),
                                                ctypes.c_int(n_threads), ctypes.c_uint(seed))
        assert rc == 0
        for i, t in enumerate(th):
            np.testing.assert_allclose(nu[i], model.expected_main(t), rtol=EXPECTED_RTOL,
                                       atol=0)


def _fake_cupy(lib, calls):
    """A stand-in for CuPy whose RawModule kernels run the host emulation: NumPy arrays
    play device arrays, grid[0] / block[0] become the emulated launch shape."""
    emulated = {"ns_batch_nll_grad": lib.ns_emulate_batch_nll_grad,
                "ns_batch_expected_main": lib.ns_emulate_batch_expected_main}

    class RawModule:
        def __init__(self, code, options):
            calls.append(("compile", code, options))

        def get_function(self, name):
            def launch(grid, block, args):
                calls.append((name, grid, block))
                rc = emulated[name](*map(_c, args), ctypes.c_int(grid[0]),
                                    ctypes.c_int(block[0]), ctypes.c_uint(len(calls)))
                assert rc == 0
            return launch

    device = types.SimpleNamespace(compute_capability="80", id=0)
    return types.SimpleNamespace(
        float64=np.float64, asarray=np.ascontiguousarray, empty=np.empty, asnumpy=np.asarray,
        RawModule=RawModule,
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=lambda: 1),
                                   Device=lambda: device),
    )


@pytest.mark.parametrize("name", ["realistic", "all_modifiers", "zero_bins"])
def test_cuda_model_on_emulated_cupy(emu, monkeypatch, name):
    """CudaModel end to end (upload, batch shaping, launch shapes and arguments), with the
    kernels run by the host emulation instead of a GPU."""
    calls = []
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(emu, calls))
    model = _model(name)
    gm = cuda.CudaModel(model, threads_per_block=37, max_blocks=2, kernels_dir=KERNELS)
    assert calls[0] == ("compile", cuda.kernel_source(KERNELS), cuda.compile_options(KERNELS))
    th = _points(model, 5, seed=31)
    nll, grad = gm.nll_grad_batch(th)
    assert calls[-1] == ("ns_batch_nll_grad", (2,), (37,))
    _assert_matches_cpu(nll, grad, *_cpu(model, th))
    np.testing.assert_allclose(gm.nll_batch(th), nll, rtol=NLL_RTOL, atol=0)
    mains = _toys(model, th, seed=32)
    _assert_matches_cpu(*gm.nll_grad_batch(th, mains=mains), *_cpu(model, th, mains))
    nll1, grad1 = gm.nll_grad_batch(th[0])
    assert nll1.shape == (1,) and grad1.shape == (1, model.n_params())
    nu = gm.expected_main_batch(th)
    assert calls[-1] == ("ns_batch_expected_main", (2,), (37,))
    np.testing.assert_allclose(nu, np.stack([model.expected_main(t) for t in th]),
                               rtol=EXPECTED_RTOL, atol=0)
    empty_nll, empty_grad = gm.nll_grad_batch(np.empty((0, model.n_params())))
    assert empty_nll.shape == (0,) and empty_grad.shape == (0, model.n_params())
    with pytest.raises(ValueError, match="threads_per_block"):
        cuda.CudaModel(model, threads_per_block=cuda.MAX_THREADS + 1, kernels_dir=KERNELS)


# ---- NVRTC (what CuPy compiles with) ------------------------------------------------------


def _find_nvrtc():
    """libnvrtc from NEXTSTAT_NVRTC, the system, or the nvidia-cuda-nvrtc wheel; or None."""
    cands = [os.environ.get("NEXTSTAT_NVRTC", "")]
    cands.append(ctypes.util.find_library("nvrtc") or "")
    try:
        import nvidia

        for root in nvidia.__path__:
            cands += sorted(glob.glob(os.path.join(root, "**", "libnvrtc.so*"), recursive=True))
    except ImportError:
        pass
    for path in cands:
        if not path or "builtins" in path or ".alt." in path:
            continue
        d = os.path.dirname(path)
        for b in sorted(glob.glob(os.path.join(d, "libnvrtc-builtins.so*"))):
            if ".alt." not in b:  # load the builtins first so libnvrtc finds them
                try:
                    ctypes.CDLL(b, mode=ctypes.RTLD_GLOBAL)
                except OSError:
                    pass
        try:
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_kernel_source_compiles_with_nvrtc(arch):
    lib = _find_nvrtc()
    if lib is None:
        pytest.skip("libnvrtc not found (set NEXTSTAT_NVRTC to its path)")
    prog = ctypes.c_void_p()
    src = cuda.kernel_source(KERNELS).encode()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, b"histfactory_nll.cu", 0, None,
                                  None) == 0
    opts = [o.encode() for o in (*cuda.compile_options(KERNELS), f"-arch={arch}")]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    buf = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, buf)
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
    log = buf.value.decode(errors="replace")
    assert rc == 0, log
    assert "warning" not in log.lower(), log


# ---- on the GPU ---------------------------------------------------------------------------

@pytest.fixture(scope="module", params=[(c, i) for c in CASES for i in INTERPOLATIONS],
                ids=lambda p: f"{p[0]}-{p[1]}")
def gpu_pair(request):
    if not cuda.is_available():
        pytest.skip("needs CuPy and a CUDA device")
    model = _model(*request.param)
    return model, cuda.CudaModel(model, kernels_dir=KERNELS)


@pytest.mark.gpu
def test_gpu_nll_grad_matches_cpu(gpu_pair):
    model, gm = gpu_pair
    th = _points(model, N_POINTS, seed=21)
    nll, grad = gm.nll_grad_batch(th)
    assert nll.shape == (N_POINTS,) and grad.shape == (N_POINTS, model.n_params())
    _assert_matches_cpu(nll, grad, *_cpu(model, th))
    np.testing.assert_allclose(gm.nll_batch(th), nll, rtol=NLL_RTOL, atol=0)


@pytest.mark.gpu
def test_gpu_per_problem_data(gpu_pair):
    model, gm = gpu_pair
    th = _points(model, N_POINTS, seed=22)
    mains = _toys(model, th, seed=23)
    nll, grad = gm.nll_grad_batch(th, mains=mains)
    _assert_matches_cpu(nll, grad, *_cpu(model, th, mains))


@pytest.mark.gpu
def test_gpu_expected_main(gpu_pair):
    model, gm = gpu_pair
    th = _points(model, N_POINTS, seed=24)
    nu = gm.expected_main_batch(th)
    assert nu.shape == (N_POINTS, model.n_main_bins())
    for i, t in enumerate(th):
        np.testing.assert_allclose(nu[i], model.expected_main(t), rtol=EXPECTED_RTOL, atol=0)


@pytest.mark.parametrize("threads", [1, 33, 256])
@pytest.mark.parametrize("name", ["realistic", "all_modifiers"])
@pytest.mark.gpu
@pytest.mark.skipif(not cuda.is_available(), reason="needs CuPy and a CUDA device")
def test_gpu_block_and_grid_shapes(name, threads):
    """Odd block sizes and a grid smaller than the batch (the grid-stride loop)."""
    model = _model(name)
    gm = cuda.CudaModel(model, threads_per_block=threads, kernels_dir=KERNELS, max_blocks=3)
    th = _points(model, 10, seed=25)
    nll, grad = gm.nll_grad_batch(th)
    _assert_matches_cpu(nll, grad, *_cpu(model, th))
    nu = gm.expected_main_batch(th)
    np.testing.assert_allclose(nu, np.stack([model.expected_main(t) for t in th]),
                               rtol=EXPECTED_RTOL, atol=0)
