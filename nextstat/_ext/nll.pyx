"""Compiled HistFactory negative log-likelihood and its gradient.

The model arrives as flat tables (built by :mod:`nextstat.model.compile`) and is evaluated
by one ``nogil`` function, :func:`ns_nll`, into caller-owned buffers. The expected rate of
sample *s* in bin *b* is

.. math::

    \\nu_{sb}(\\theta) = S_s(\\theta)\\, G_{sb}(\\theta)\\,
        \\Big(\\nu^0_{sb} + \\sum_h \\Delta_{h,sb}(\\alpha_h)\\Big)

with :math:`S_s` the product of the sample's scalar factors (normfactor, lumi, normsys
:math:`\\kappa(\\alpha)`), :math:`G_{sb}` the product of its per-bin factors (staterror,
shapesys, shapefactor :math:`\\gamma_b`) and :math:`\\Delta_h` the histosys shifts. The
samples of a channel form *blocks* of contiguous bins, so every scalar factor is evaluated once
per block. The NLL is pyhf's ``-logpdf`` with all constants:

.. math::

    -\\ln L = \\sum_b \\big(\\nu_b - n_b \\ln \\nu_b\\big)
              + \\sum_{c \\in \\mathrm{Gauss}} \\frac{(\\theta_c - a_c)^2}{2\\sigma_c^2}
              + \\sum_{c \\in \\mathrm{Pois}}
                \\big(\\gamma_c\\tau_c - a_c \\ln(\\gamma_c\\tau_c)\\big)
              + C(n, a)

where the data-dependent constant :math:`C` (``lgamma`` terms and Gaussian normalisations) is
precomputed once per dataset. The gradient is analytic: one pass computes the rates, a second
pass back-propagates :math:`\\partial(-\\ln L)/\\partial\\nu_b = 1 - n_b/\\nu_b`.

Per-bin arithmetic (interpolation codes, Poisson and constraint terms, Kahan sums) lives in
``kernels/histfactory_math.h``, shared with the CUDA kernels. So does the CPU kernel itself
(``ns_cpu_forward``, ``ns_cpu_backward``, ``ns_cpu_nll``: plain C with ``restrict``
pointers and vectorisable loops, compiled for the host only); this module builds its derived
tables and wraps it.
"""

import numpy as np

from libc.string cimport memset


cdef extern from "histfactory_math.h" nogil:
    Py_ssize_t ns_cpu_scratch_size(const NsModel* m)
    void ns_cpu_forward(const NsModel* m, const double* theta, const ns_cpu_scratch_t* s,
                        int derivs)
    double ns_cpu_nll(const NsModel* m, const double* theta, const double* n_main,
                      const double* aux, double constant, double* grad, int kahan,
                      double* scratch)
    int NS_GAM_NONE
    int NS_GAM_GENERAL
    int NS_PRE
    void ns_cpu_model_constants(NsModel* m)


cdef void ns_expected_main(const NsModel* m, const double* theta, double* nu,
                           double* scratch) noexcept nogil:
    """Expected main-bin rates nu_b(theta) into ``nu`` (length n_bins)."""
    cdef ns_cpu_scratch_t s = ns_cpu_scratch(m, scratch)
    cdef Py_ssize_t b
    ns_cpu_forward(m, theta, &s, False)
    for b in range(m.n_bins):
        nu[b] = s.nu[b]


cdef double ns_nll(const NsModel* m, const double* theta, const double* n_main,
                   const double* aux, double constant, double* grad, bint kahan,
                   double* scratch) noexcept nogil:
    """-ln L(theta | n_main, aux) and, when ``grad`` is not NULL, its gradient.

    ``kahan`` selects parity mode: the terms are summed Kahan-Babuska compensated, in a
    fixed order (fast mode: in four interleaved partial sums, also a fixed order).
    ``scratch`` holds ``NsModel.scratch_size`` doubles. The work is done by the C kernel
    ``ns_cpu_nll`` of ``kernels/histfactory_math.h``.
    """
    return ns_cpu_nll(m, theta, n_main, aux, constant, grad, kahan, scratch)


cdef void ns_fisher_diag(const NsModel* m, const double* theta, const double* aux,
                         double* diag, double* scratch) noexcept nogil:
    """Approximate diagonal of the expected Fisher information at ``theta``.

    ``diag_i = sum_{s,b} (d nu_sb / d theta_i)^2 / nu_b`` plus the constraint curvature
    (``1/sigma^2`` for Gaussian terms, ``tau / gamma`` for Poisson terms). Summing squares
    over samples instead of squaring the per-bin sum makes it exact only when a parameter
    touches one sample per bin; it is meant for scaling the optimizer's variables, where
    the order of magnitude is what matters.
    """
    cdef ns_cpu_scratch_t sc = ns_cpu_scratch(m, scratch)
    cdef double* nu = sc.nu
    cdef double* shape = sc.shape
    cdef double* gprod = sc.gprod
    cdef double* fv = sc.fv
    cdef double* fd = sc.fd
    cdef double* blk_s = sc.blk_s
    cdef double* hsd = sc.hsd
    cdef int k, i, j, j2, g, g2, h, sb, c
    cdef double s, inv_nu, b_blk, others, sh, gp, t
    ns_cpu_forward_entries(m, theta, &sc, True)
    memset(diag, 0, m.n_par * sizeof(double))
    for c in range(m.n_gauss):
        diag[m.g_param[c]] += m.g_inv_sigma[c] * m.g_inv_sigma[c]
    for c in range(m.n_pois):
        if theta[m.p_param[c]] > 0.0:
            diag[m.p_param[c]] += m.p_tau[c] / theta[m.p_param[c]]
    for k in range(m.n_blk):
        s = blk_s[k]
        b_blk = 0.0
        for i in range(m.blk_len[k]):
            sb = m.blk_sb_start[k] + i
            t = nu[m.blk_bin_start[k] + i]
            if not t > 0.0:
                continue
            inv_nu = 1.0 / t
            sh = shape[sb]
            gp = gprod[sb]
            b_blk += gp * gp * sh * sh * inv_nu
            for g in range(m.sb_gam_ptr[sb], m.sb_gam_ptr[sb + 1]):
                others = s * sh
                for g2 in range(m.sb_gam_ptr[sb], m.sb_gam_ptr[sb + 1]):
                    if g2 != g:
                        others *= theta[m.gam_param[g2]]
                diag[m.gam_param[g]] += others * others * inv_nu
            for h in range(m.blk_hs_ptr[k], m.blk_hs_ptr[k + 1]):
                t = s * gp * hsd[m.hs_off[h] + i]
                diag[m.hs_param[h]] += t * t * inv_nu
        for j in range(m.blk_fac_ptr[k], m.blk_fac_ptr[k + 1]):
            others = fd[j]
            for j2 in range(m.blk_fac_ptr[k], m.blk_fac_ptr[k + 1]):
                if j2 != j:
                    others *= fv[j2]
            diag[m.fac_param[j]] += others * others * b_blk


def _blocks(dict t):
    """The packed block records of the C kernel (``ns_block_t``: bin0, sb0, len, fac0,
    fac1, hs0, hs1, gam0), one row per block. ``gam0`` is NS_GAM_NONE if no entry has a
    gamma, the first gamma parameter if entry i has exactly one, parameter ``gam0 + i``, and
    there is no histosys (the kernel's contiguous fast paths), else NS_GAM_GENERAL."""
    cdef const int[::1] ptr = t["sb_gam_ptr"]
    cdef const int[::1] gam = t["gam_param"]
    cdef const int[::1] bin_start = t["blk_bin_start"]
    cdef const int[::1] sb_start = t["blk_sb_start"]
    cdef const int[::1] length = t["blk_len"]
    cdef const int[::1] fac = t["blk_fac_ptr"]
    cdef const int[::1] hs = t["blk_hs_ptr"]
    cdef Py_ssize_t n_blk = length.shape[0], k, i
    cdef int sb0, nb, g
    out = np.empty((n_blk, 8), dtype=np.int32)
    cdef int[:, ::1] o = out
    for k in range(n_blk):
        sb0, nb = sb_start[k], length[k]
        g = NS_GAM_GENERAL
        if hs[k + 1] == hs[k]:
            if ptr[sb0 + nb] == ptr[sb0]:
                g = NS_GAM_NONE
            else:
                g = gam[ptr[sb0]]
                for i in range(nb):
                    if ptr[sb0 + i + 1] - ptr[sb0 + i] != 1 or gam[ptr[sb0 + i]] != g + i:
                        g = NS_GAM_GENERAL
                        break
        o[k, 0] = bin_start[k]
        o[k, 1] = sb0
        o[k, 2] = nb
        o[k, 3] = fac[k]
        o[k, 4] = fac[k + 1]
        o[k, 5] = hs[k]
        o[k, 6] = hs[k + 1]
        o[k, 7] = g
    return out


cdef int _last_run(const int[::1] last, const int[::1] idx, int i0, int i1, int floor):
    """``max(floor, last[idx[i0:i1]])``."""
    cdef int i
    for i in range(i0, i1):
        if last[idx[i]] > floor:
            floor = last[idx[i]]
    return floor


cdef void _mark_run(int[::1] last, const int[::1] idx, int i0, int i1, int r):
    cdef int i
    for i in range(i0, i1):
        last[idx[i]] = r


def _runs_of_blocks(dict t, blk):
    """Group blocks into the C kernel's runs (``ns_run_t``: bin0, len, nom0, gam0, blk0,
    fac0, fac1, n_blk) and lay out their nominal rates run by run.

    Block k joins an earlier run if both are of the same kind (no gammas, or one consecutive
    gamma parameter per entry; a GENERAL block is a run of its own), have the same scalar
    factors (parameter, code, lo, hi), k's bins (and gammas) continue the run's, and none of
    k's bins and parameters has had a contribution from a later run: runs are evaluated in
    order, so every bin and parameter still receives its contributions in block order.
    """
    cdef const int[:, ::1] b = blk
    cdef const int[::1] fac_param = t["fac_param"]
    cdef const int[::1] hs_param = t["hs_param"]
    cdef const int[::1] gam_param = t["gam_param"]
    cdef const int[::1] g_ptr = t["sb_gam_ptr"]
    fac_arrays = (t["fac_param"], t["fac_code"], t["fac_lo"], t["fac_hi"])
    # the last run that touched each bin / parameter (-1: none)
    last_bin_arr = np.full(t["n_bins"], -1, dtype=np.int32)
    last_par_arr = np.full(t["n_par"], -1, dtype=np.int32)
    cdef int[::1] last_bin = last_bin_arr
    cdef int[::1] last_par = last_par_arr
    cdef Py_ssize_t n_blk = b.shape[0], k, i
    cdef int bin0, sb0, nb, f0, f1, h0, h1, gam0, floor, r, cand
    runs = []       # [bin0, len, gam0, blk0, fac0, fac1, n_blk, [(sb0, nb), ...]]
    open_runs = {}  # (has gammas, next bin, next gamma, factors) -> run it would extend
    for k in range(n_blk):
        bin0, sb0, nb, f0, f1 = b[k, 0], b[k, 1], b[k, 2], b[k, 3], b[k, 4]
        h0, h1, gam0 = b[k, 5], b[k, 6], b[k, 7]
        floor = -1
        for i in range(bin0, bin0 + nb):
            if last_bin[i] > floor:
                floor = last_bin[i]
        floor = _last_run(last_par, fac_param, f0, f1, floor)
        floor = _last_run(last_par, hs_param, h0, h1, floor)
        floor = _last_run(last_par, gam_param, g_ptr[sb0], g_ptr[sb0 + nb], floor)
        r = -1
        if gam0 != NS_GAM_GENERAL:
            sig = tuple(a[f0:f1].tobytes() for a in fac_arrays)
            cand = open_runs.pop((gam0 >= 0, bin0, max(gam0, 0), sig), -1)
            if cand >= 0 and cand >= floor:
                r = cand
        if r < 0:
            r = len(runs)
            runs.append([bin0, 0, gam0, k, f0, f1, 0, []])
        run = runs[r]
        run[1] += nb
        run[6] += 1
        run[7].append((sb0, nb))
        if gam0 != NS_GAM_GENERAL:
            open_runs[(gam0 >= 0, bin0 + nb, max(gam0, 0) + nb if gam0 >= 0 else 0, sig)] = r
        for i in range(bin0, bin0 + nb):
            last_bin[i] = r
        _mark_run(last_par, fac_param, f0, f1, r)
        _mark_run(last_par, hs_param, h0, h1, r)
        _mark_run(last_par, gam_param, g_ptr[sb0], g_ptr[sb0 + nb], r)
    nominal = t["nominal"]
    out = np.zeros((len(runs), 8), dtype=np.int32)
    parts, nom0 = [], 0
    for r, (bin0, nb, gam0, blk0, f0, f1, n_blk, slices) in enumerate(runs):
        out[r] = (bin0, nb, nom0, gam0, blk0, f0, f1, n_blk)
        if gam0 != NS_GAM_GENERAL:
            parts += [nominal[sb0:sb0 + n] for sb0, n in slices]
            nom0 += nb
    run_nominal = np.concatenate(parts) if parts else np.zeros(0)
    return out, np.ascontiguousarray(run_nominal, dtype=np.float64)


def _runs(param, aux_index):
    """CSR boundaries of the runs of constraint terms whose parameters and aux entries are
    both consecutive (the C kernel loops over each run with contiguous pointers)."""
    n = param.shape[0]
    breaks = np.flatnonzero((np.diff(param) != 1) | (np.diff(aux_index) != 1)) + 1
    return np.concatenate([[0], breaks, [n] if n else []]).astype(np.int32)


cdef const int* _iptr(object arr):
    cdef const int[::1] v = arr
    return &v[0] if v.shape[0] > 0 else NULL


cdef const double* _dptr(object arr):
    cdef const double[::1] v = arr
    return &v[0] if v.shape[0] > 0 else NULL


cdef class CompiledModel:
    """Flat, contiguous tables of a HistFactory model and the compiled NLL over them.

    Parameters
    ----------
    tables : dict of str -> numpy.ndarray
        The tables built by :func:`nextstat.model.compile.compile_tables` (int32 index
        arrays and float64 value arrays). They are kept alive by this object.
    """

    def __cinit__(self, dict tables):
        cdef dict t = {}
        for key, val in tables.items():
            if isinstance(val, np.ndarray):
                dtype = np.int32 if val.dtype.kind in "iub" else np.float64
                t[key] = np.ascontiguousarray(val, dtype=dtype)
            else:
                t[key] = val
        self._keep = t
        self.c.n_par = t["n_par"]
        self.c.n_bins = t["n_bins"]
        self.c.n_blk = t["blk_len"].shape[0]
        self.c.n_sb = t["nominal"].shape[0]
        self.c.n_fac = t["fac_param"].shape[0]
        self.c.n_aux = t["n_aux"]
        self.c.n_gauss = t["g_param"].shape[0]
        self.c.n_pois = t["p_param"].shape[0]
        self.c.blk_bin_start = _iptr(t["blk_bin_start"])
        self.c.blk_sb_start = _iptr(t["blk_sb_start"])
        self.c.blk_len = _iptr(t["blk_len"])
        self.c.blk_fac_ptr = _iptr(t["blk_fac_ptr"])
        self.c.fac_param = _iptr(t["fac_param"])
        self.c.fac_code = _iptr(t["fac_code"])
        self.c.fac_lo = _dptr(t["fac_lo"])
        self.c.fac_hi = _dptr(t["fac_hi"])
        self.c.blk_hs_ptr = _iptr(t["blk_hs_ptr"])
        self.c.hs_param = _iptr(t["hs_param"])
        self.c.hs_code = _iptr(t["hs_code"])
        self.c.hs_off = _iptr(t["hs_off"])
        self.c.hs_lo = _dptr(t["hs_lo"])
        self.c.hs_hi = _dptr(t["hs_hi"])
        self.c.sb_gam_ptr = _iptr(t["sb_gam_ptr"])
        self.c.gam_param = _iptr(t["gam_param"])
        self.c.nominal = _dptr(t["nominal"])
        self.c.g_param = _iptr(t["g_param"])
        self.c.g_aux = _iptr(t["g_aux"])
        self.c.g_inv_sigma = _dptr(t["g_inv_sigma"])
        self.c.p_param = _iptr(t["p_param"])
        self.c.p_aux = _iptr(t["p_aux"])
        self.c.p_tau = _dptr(t["p_tau"])
        self.c.n_hs_data = t["hs_lo"].shape[0]
        t["blk"] = _blocks(t)
        t["run"], t["run_nominal"] = _runs_of_blocks(t, t["blk"])
        t["g_run"] = _runs(t["g_param"], t["g_aux"])
        t["p_run"] = _runs(t["p_param"], t["p_aux"])
        self.c.blk = <const ns_block_t*> _iptr(t["blk"].reshape(-1))
        self.c.n_run = t["run"].shape[0]
        self.c.run = <const ns_run_t*> _iptr(t["run"].reshape(-1))
        self.c.run_nominal = _dptr(t["run_nominal"])
        self.c.n_g_run = t["g_run"].shape[0] - 1
        self.c.g_run = _iptr(t["g_run"])
        self.c.n_p_run = t["p_run"].shape[0] - 1
        self.c.p_run = _iptr(t["p_run"])
        t["fac_pre"] = np.empty(NS_PRE * self.c.n_fac)
        t["hs_dp"] = np.empty(self.c.n_hs_data)
        t["hs_dm"] = np.empty(self.c.n_hs_data)
        self.c.fac_pre = <double*> _dptr(t["fac_pre"])
        self.c.hs_dp = <double*> _dptr(t["hs_dp"])
        self.c.hs_dm = <double*> _dptr(t["hs_dm"])
        ns_cpu_model_constants(&self.c)
        self.c.scratch_size = ns_cpu_scratch_size(&self.c)
        self.n_par = self.c.n_par
        self.n_bins = self.c.n_bins
        self.n_aux = self.c.n_aux

    @property
    def scratch_size(self):
        """Number of doubles of scratch one evaluation needs."""
        return self.c.scratch_size

    def nll(self, const double[::1] theta, const double[::1] main, const double[::1] aux,
            double constant, bint kahan=False):
        """NLL at ``theta`` for main counts ``main`` and auxiliary data ``aux``."""
        self._check(theta, main, aux)
        cdef double[::1] scratch = np.empty(max(self.c.scratch_size, 1))
        cdef double out
        with nogil:
            out = ns_nll(&self.c, &theta[0], &main[0], _aux0(aux), constant, NULL, kahan,
                         &scratch[0])
        return out

    def nll_grad(self, const double[::1] theta, const double[::1] main, const double[::1] aux,
                 double constant, bint kahan=False):
        """NLL and gradient at ``theta``; returns ``(nll, grad)``."""
        self._check(theta, main, aux)
        cdef double[::1] scratch = np.empty(max(self.c.scratch_size, 1))
        grad_arr = np.empty(self.c.n_par)
        cdef double[::1] grad = grad_arr
        cdef double out
        with nogil:
            out = ns_nll(&self.c, &theta[0], &main[0], _aux0(aux), constant, &grad[0], kahan,
                         &scratch[0])
        return out, grad_arr

    def fisher_diag(self, const double[::1] theta, const double[::1] aux):
        """Approximate diagonal of the expected Fisher information (see ns_fisher_diag)."""
        if theta.shape[0] != self.c.n_par or aux.shape[0] != self.c.n_aux:
            raise ValueError("theta / aux have the wrong length")
        cdef double[::1] scratch = np.empty(max(self.c.scratch_size, 1))
        out_arr = np.empty(self.c.n_par)
        cdef double[::1] out = out_arr
        with nogil:
            ns_fisher_diag(&self.c, &theta[0], _aux0(aux), &out[0], &scratch[0])
        return out_arr

    def expected_samples(self, const double[::1] theta):
        """Expected rate of every (sample, bin) entry, in table order (blocks of bins)."""
        if theta.shape[0] != self.c.n_par:
            raise ValueError(f"theta has {theta.shape[0]} entries, expected {self.c.n_par}")
        cdef double[::1] scratch = np.empty(max(self.c.scratch_size, 1))
        out_arr = np.empty(self.c.n_sb)
        cdef double[::1] out = out_arr
        cdef ns_cpu_scratch_t sc = ns_cpu_scratch(&self.c, &scratch[0])
        cdef int k, i, sb
        with nogil:
            ns_cpu_forward_entries(&self.c, &theta[0], &sc, False)
            for k in range(self.c.n_blk):
                for i in range(self.c.blk_len[k]):
                    sb = self.c.blk_sb_start[k] + i
                    out[sb] = sc.blk_s[k] * sc.gprod[sb] * sc.shape[sb]
        return out_arr

    def expected_main(self, const double[::1] theta):
        """Expected main-bin rates at ``theta``."""
        if theta.shape[0] != self.c.n_par:
            raise ValueError(f"theta has {theta.shape[0]} entries, expected {self.c.n_par}")
        cdef double[::1] scratch = np.empty(max(self.c.scratch_size, 1))
        nu_arr = np.empty(self.c.n_bins)
        cdef double[::1] nu = nu_arr
        with nogil:
            ns_expected_main(&self.c, &theta[0], &nu[0], &scratch[0])
        return nu_arr

    def _check(self, const double[::1] theta, const double[::1] main, const double[::1] aux):
        if theta.shape[0] != self.c.n_par:
            raise ValueError(f"theta has {theta.shape[0]} entries, expected {self.c.n_par}")
        if main.shape[0] != self.c.n_bins:
            raise ValueError(f"main data has {main.shape[0]} entries, expected {self.c.n_bins}")
        if aux.shape[0] != self.c.n_aux:
            raise ValueError(f"aux data has {aux.shape[0]} entries, expected {self.c.n_aux}")


cdef inline const double* _aux0(const double[::1] aux) noexcept nogil:
    return &aux[0] if aux.shape[0] > 0 else NULL
