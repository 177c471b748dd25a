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
``kernels/histfactory_math.h``, shared with the CUDA kernels.
"""

import numpy as np

from libc.string cimport memset


cdef extern from "histfactory_math.h" nogil:
    ctypedef struct ns_kahan_t:
        double sum
        double comp
    double ns_interp_factor(int code, double a, double lo, double hi, double* d)
    double ns_interp_delta(int code, double a, double lo, double nom, double hi, double* d)
    double ns_poisson_term(double n, double nu)
    double ns_poisson_dterm(double n, double nu)
    double ns_gauss_term(double theta, double aux, double inv_sigma, double* d)
    double ns_poisson_constraint_term(double gamma, double tau, double aux, double* d)
    void ns_kahan_add(ns_kahan_t* acc, double x)
    double ns_kahan_value(const ns_kahan_t* acc)


cdef inline Py_ssize_t _scratch_size(const NsModel* m, Py_ssize_t n_hs_data) noexcept nogil:
    # nu[n_bins] | shape[n_sb] | gprod[n_sb] | fv[n_fac] | fd[n_fac] | blkS[n_blk] | hsd[...]
    return m.n_bins + 2 * m.n_sb + 2 * m.n_fac + m.n_blk + n_hs_data


cdef void _forward(const NsModel* m, const double* theta, double* scratch,
                   bint keep_derivs) noexcept nogil:
    """Fill nu, shape, gprod, factor values/derivatives and histosys derivatives.

    Table pointers are copied to locals first: extensions build with
    ``-fno-strict-aliasing``, so reading them through ``m`` inside the loops would make
    the compiler reload them after every store.
    """
    cdef int n_bins = m.n_bins, n_sb = m.n_sb, n_fac = m.n_fac, n_blk = m.n_blk
    cdef double* nu = scratch
    cdef double* shape = nu + n_bins
    cdef double* gprod = shape + n_sb
    cdef double* fv = gprod + n_sb
    cdef double* fd = fv + n_fac
    cdef double* blk_s = fd + n_fac
    cdef double* hsd = blk_s + n_blk
    cdef const int* blk_fac_ptr = m.blk_fac_ptr
    cdef const int* fac_code = m.fac_code
    cdef const int* fac_param = m.fac_param
    cdef const double* fac_lo = m.fac_lo
    cdef const double* fac_hi = m.fac_hi
    cdef const int* blk_bin_start = m.blk_bin_start
    cdef const int* blk_sb_start = m.blk_sb_start
    cdef const int* blk_len = m.blk_len
    cdef const int* blk_hs_ptr = m.blk_hs_ptr
    cdef const int* hs_off = m.hs_off
    cdef const int* hs_code = m.hs_code
    cdef const int* hs_param = m.hs_param
    cdef const double* hs_lo = m.hs_lo
    cdef const double* hs_hi = m.hs_hi
    cdef const int* sb_gam_ptr = m.sb_gam_ptr
    cdef const int* gam_param = m.gam_param
    cdef const double* nominal = m.nominal
    cdef int k, j, i, h, g, sb, sb0, b0, off, code, h0, h1, g0, g1, nb
    cdef double s, v, d, sh, gp, nom
    memset(nu, 0, n_bins * sizeof(double))
    for k in range(n_blk):
        s = 1.0
        for j in range(blk_fac_ptr[k], blk_fac_ptr[k + 1]):
            code = fac_code[j]
            if code < 0:
                v = theta[fac_param[j]]
                d = 1.0
            else:
                v = ns_interp_factor(code, theta[fac_param[j]], fac_lo[j], fac_hi[j], &d)
            fv[j] = v
            fd[j] = d
            s *= v
        blk_s[k] = s
        b0 = blk_bin_start[k]
        sb0 = blk_sb_start[k]
        h0 = blk_hs_ptr[k]
        h1 = blk_hs_ptr[k + 1]
        nb = blk_len[k]
        for i in range(nb):
            sb = sb0 + i
            nom = nominal[sb]
            sh = nom
            for h in range(h0, h1):
                off = hs_off[h] + i
                sh = sh + ns_interp_delta(hs_code[h], theta[hs_param[h]],
                                          hs_lo[off], nom, hs_hi[off], &d)
                if keep_derivs:
                    hsd[off] = d
            g0 = sb_gam_ptr[sb]
            g1 = sb_gam_ptr[sb + 1]
            gp = 1.0
            for g in range(g0, g1):
                gp = gp * theta[gam_param[g]]
            shape[sb] = sh
            gprod[sb] = gp
            nu[b0 + i] += s * gp * sh


cdef void ns_expected_main(const NsModel* m, const double* theta, double* nu,
                           double* scratch) noexcept nogil:
    """Expected main-bin rates nu_b(theta) into ``nu`` (length n_bins)."""
    cdef int b
    _forward(m, theta, scratch, False)
    for b in range(m.n_bins):
        nu[b] = scratch[b]


cdef double ns_nll(const NsModel* m, const double* theta, const double* n_main,
                   const double* aux, double constant, double* grad, bint kahan,
                   double* scratch) noexcept nogil:
    """-ln L(theta | n_main, aux) and, when ``grad`` is not NULL, its gradient.

    ``kahan`` selects parity mode: every sum is Kahan-Babuska compensated and the
    order of operations is fixed. ``scratch`` holds ``NsModel.scratch_size`` doubles.
    """
    cdef double* nu = scratch
    cdef bint want_grad = grad != NULL
    cdef const int* g_param = m.g_param
    cdef const int* g_aux = m.g_aux
    cdef const double* g_inv_sigma = m.g_inv_sigma
    cdef const int* p_param = m.p_param
    cdef const int* p_aux = m.p_aux
    cdef const double* p_tau = m.p_tau
    cdef int n_bins = m.n_bins, n_gauss = m.n_gauss, n_pois = m.n_pois
    cdef ns_kahan_t acc
    cdef double total = 0.0, t, d
    cdef int b, c, p

    _forward(m, theta, scratch, want_grad)
    acc.sum = 0.0
    acc.comp = 0.0
    if want_grad:
        memset(grad, 0, m.n_par * sizeof(double))

    if kahan:
        for b in range(n_bins):
            ns_kahan_add(&acc, ns_poisson_term(n_main[b], nu[b]))
    else:
        for b in range(n_bins):
            total += ns_poisson_term(n_main[b], nu[b])
    for c in range(n_gauss):
        p = g_param[c]
        t = ns_gauss_term(theta[p], aux[g_aux[c]], g_inv_sigma[c], &d)
        if want_grad:
            grad[p] += d
        if kahan:
            ns_kahan_add(&acc, t)
        else:
            total += t
    for c in range(n_pois):
        p = p_param[c]
        t = ns_poisson_constraint_term(theta[p], p_tau[c], aux[p_aux[c]], &d)
        if want_grad:
            grad[p] += d
        if kahan:
            ns_kahan_add(&acc, t)
        else:
            total += t
    if kahan:
        ns_kahan_add(&acc, constant)
        total = ns_kahan_value(&acc)
    else:
        total += constant

    if not want_grad:
        return total
    for b in range(n_bins):
        nu[b] = ns_poisson_dterm(n_main[b], nu[b])
    _backward(m, theta, scratch, grad)
    return total


cdef void _backward(const NsModel* m, const double* theta, double* scratch,
                    double* grad) noexcept nogil:
    """Accumulate d(sum_b poisson_term)/d theta into ``grad``.

    Runs after ``_forward``, with the rates ``nu_b`` in scratch replaced by
    ``w_b = d poisson_term / d nu_b`` (one division per bin, not per sample-bin entry).
    """
    cdef int n_bins = m.n_bins, n_sb = m.n_sb, n_fac = m.n_fac, n_blk = m.n_blk
    cdef double* wb = scratch
    cdef double* shape = wb + n_bins
    cdef double* gprod = shape + n_sb
    cdef double* fv = gprod + n_sb
    cdef double* fd = fv + n_fac
    cdef double* blk_s = fd + n_fac
    cdef double* hsd = blk_s + n_blk
    cdef const int* blk_fac_ptr = m.blk_fac_ptr
    cdef const int* fac_param = m.fac_param
    cdef const int* blk_bin_start = m.blk_bin_start
    cdef const int* blk_sb_start = m.blk_sb_start
    cdef const int* blk_len = m.blk_len
    cdef const int* blk_hs_ptr = m.blk_hs_ptr
    cdef const int* hs_off = m.hs_off
    cdef const int* hs_param = m.hs_param
    cdef const int* sb_gam_ptr = m.sb_gam_ptr
    cdef const int* gam_param = m.gam_param
    cdef int k, i, j, j2, g, g2, h, sb, sb0, b0, g0, g1, h0, h1, j0, j1, nb
    cdef double w, s, a_blk, others, sh, gp, ws
    for k in range(n_blk):
        s = blk_s[k]
        b0 = blk_bin_start[k]
        sb0 = blk_sb_start[k]
        h0 = blk_hs_ptr[k]
        h1 = blk_hs_ptr[k + 1]
        nb = blk_len[k]
        a_blk = 0.0
        for i in range(nb):
            sb = sb0 + i
            w = wb[b0 + i]
            sh = shape[sb]
            gp = gprod[sb]
            a_blk += w * gp * sh
            ws = w * s
            g0 = sb_gam_ptr[sb]
            g1 = sb_gam_ptr[sb + 1]
            if g1 - g0 == 1:
                grad[gam_param[g0]] += ws * sh
            else:
                for g in range(g0, g1):
                    others = ws * sh
                    for g2 in range(g0, g1):
                        if g2 != g:
                            others = others * theta[gam_param[g2]]
                    grad[gam_param[g]] += others
            for h in range(h0, h1):
                grad[hs_param[h]] += ws * gp * hsd[hs_off[h] + i]
        j0 = blk_fac_ptr[k]
        j1 = blk_fac_ptr[k + 1]
        for j in range(j0, j1):
            others = fd[j] * a_blk
            for j2 in range(j0, j1):
                if j2 != j:
                    others = others * fv[j2]
            grad[fac_param[j]] += others


cdef void ns_fisher_diag(const NsModel* m, const double* theta, const double* aux,
                         double* diag, double* scratch) noexcept nogil:
    """Approximate diagonal of the expected Fisher information at ``theta``.

    ``diag_i = sum_{s,b} (d nu_sb / d theta_i)^2 / nu_b`` plus the constraint curvature
    (``1/sigma^2`` for Gaussian terms, ``tau / gamma`` for Poisson terms). Summing squares
    over samples instead of squaring the per-bin sum makes it exact only when a parameter
    touches one sample per bin; it is meant for scaling the optimizer's variables, where
    the order of magnitude is what matters.
    """
    cdef double* nu = scratch
    cdef double* shape = nu + m.n_bins
    cdef double* gprod = shape + m.n_sb
    cdef double* fv = gprod + m.n_sb
    cdef double* fd = fv + m.n_fac
    cdef double* blk_s = fd + m.n_fac
    cdef double* hsd = blk_s + m.n_blk
    cdef int k, i, j, j2, g, g2, h, sb, c
    cdef double s, inv_nu, b_blk, others, sh, gp, t
    _forward(m, theta, scratch, True)
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
        self.c.scratch_size = _scratch_size(&self.c, t["hs_lo"].shape[0])
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
        cdef double* shape = &scratch[0] + self.c.n_bins
        cdef double* gprod = shape + self.c.n_sb
        cdef double* blk_s = gprod + self.c.n_sb + 2 * self.c.n_fac
        cdef int k, i, sb
        with nogil:
            _forward(&self.c, &theta[0], &scratch[0], False)
            for k in range(self.c.n_blk):
                for i in range(self.c.blk_len[k]):
                    sb = self.c.blk_sb_start[k] + i
                    out[sb] = blk_s[k] * gprod[sb] * shape[sb]
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
