"""Pre- and post-fit yields with uncertainties from linear error propagation.

For every yield ``y`` (one sample in one bin, a bin's total, a sample integrated over a
channel, a channel's total) the variance is ``sigma^2(y) = J C J^T``, with ``C`` the
parameter covariance and ``J`` the Jacobian of ``y`` with respect to the parameters.
Correlations between parameters (post-fit) and between samples and bins (one parameter
acting on several of them) are thus all accounted for.

* **Post-fit**: parameters at ``fit_result.bestfit``, ``C = fit_result.covariance``.
* **Pre-fit**: unconstrained and fixed parameters at their init, constrained free
  parameters at their constraint centre; ``C`` diagonal with the constraint widths squared
  (1 for normsys/histosys, the staterror ``sigma_b``, ``1/sqrt(tau)`` for shapesys, the
  lumi ``sigma``) and 0 for unconstrained and fixed parameters (cabinetry's
  ``prefit_uncertainties``).

``J`` is computed column by column from the compiled per-sample rates:

* ``method="derivative"`` (default): central finite differences with step
  ``FD_REL_STEP * sigma_j``: the derivative, i.e. first-order error propagation. At a
  kink of an interpolation (codes 0 and 1 at ``alpha = 0``) it gives the mean of the two
  one-sided slopes.
* ``method="secant"``: ``(y(theta + sigma_j) - y(theta - sigma_j)) / 2``, the symmetrised
  +-1 sigma variation that cabinetry's ``yield_stdev`` and TRExFitter use.

A parameter only touches the yields it modifies, so ``J`` is sparse; the propagation works
on row blocks of the sparse ``J`` to stay fast on models with thousands of parameters.
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import InvalidParameters
from ._json import to_json_data as _clean
from .ranking import prefit_constraints

__all__ = ["ChannelYields", "SampleYields", "YieldsResult", "yields"]

#: Finite-difference step of the "derivative" Jacobian, relative to sigma_j: truncation
#: ~(1e-4)^2 relative, rounding ~1e-16 / 1e-4 = 1e-12 relative: both negligible.
FD_REL_STEP = 1e-4
#: Rows of J propagated at a time (bounds the (rows x n_params) work array).
ROW_BLOCK = 2048
_METHODS = ("derivative", "secant")


@dataclass
class SampleYields:
    """One sample in one channel: per-bin yields and errors, and the channel integral."""

    name: str
    y: list[float]
    y_err: list[float]
    integrated: float
    integrated_error: float


@dataclass
class ChannelYields:
    """One channel: its samples, the per-bin and integrated totals, and the data."""

    name: str
    n_bins: int
    samples: list[SampleYields]
    total: list[float]
    total_error: list[float]
    integrated: float
    integrated_error: float
    data: list[float]
    data_integrated: float

    def sample(self, name: str) -> SampleYields:
        """The sample called ``name``."""
        for s in self.samples:
            if s.name == name:
                return s
        raise InvalidParameters(f"no sample {name!r} in channel {self.name!r}")


@dataclass
class YieldsResult:
    """Yields of every channel and sample with uncertainties (see the module docstring)."""

    stage: str
    method: str
    channels: list[ChannelYields]
    parameters: list[float] = field(default_factory=list)

    def channel(self, name: str) -> ChannelYields:
        """The channel called ``name``."""
        for c in self.channels:
            if c.name == name:
                return c
        names = [c.name for c in self.channels]
        raise InvalidParameters(f"no channel {name!r}; channels are {names}")

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable; NaN becomes None)."""
        return _clean(asdict(self))

    def to_csv(self) -> str:
        """Long-format CSV: ``channel,sample,bin,yield,uncertainty``.

        ``bin`` is the bin index, or ``total`` for the channel integral; ``sample`` is a
        sample name, ``total`` (sum of samples) or ``data`` (no uncertainty).
        """
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["channel", "sample", "bin", "yield", "uncertainty"])

        def num(v):
            return f"{v:.10g}"

        for ch in self.channels:
            for s in ch.samples:
                for b, (v, e) in enumerate(zip(s.y, s.y_err, strict=True)):
                    w.writerow([ch.name, s.name, b, num(v), num(e)])
                w.writerow([ch.name, s.name, "total", num(s.integrated),
                            num(s.integrated_error)])
            for b, (v, e) in enumerate(zip(ch.total, ch.total_error, strict=True)):
                w.writerow([ch.name, "total", b, num(v), num(e)])
            w.writerow([ch.name, "total", "total", num(ch.integrated), num(ch.integrated_error)])
            for b, v in enumerate(ch.data):
                w.writerow([ch.name, "data", b, num(v), ""])
            w.writerow([ch.name, "data", "total", num(ch.data_integrated), ""])
        return buf.getvalue()

    def to_latex(self, precision: int = 2) -> str:
        """One booktabs table per channel: integrated yield +- error per sample, the
        total and the data (needs ``\\usepackage{booktabs}``)."""
        out = []
        for ch in self.channels:
            rows = [(_tex(s.name), _pm(s.integrated, s.integrated_error, precision))
                    for s in ch.samples]
            out += [
                r"\begin{table}[htbp]",
                r"\centering",
                rf"\caption{{{self.stage.capitalize()} yields in channel {_tex(ch.name)}.}}",
                r"\begin{tabular}{lr}",
                r"\toprule",
                r"Sample & Yield \\",
                r"\midrule",
                *[rf"{n} & {v} \\" for n, v in rows],
                r"\midrule",
                rf"Total & {_pm(ch.integrated, ch.integrated_error, precision)} \\",
                rf"Data & ${ch.data_integrated:.{precision if ch.data_integrated % 1 else 0}f}$ \\",
                r"\bottomrule",
                r"\end{tabular}",
                r"\end{table}",
                "",
            ]
        return "\n".join(out)


def _pm(v: float, e: float, precision: int) -> str:
    return f"${v:.{precision}f} \\pm {e:.{precision}f}$"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def _tex(s: str) -> str:
    return "".join(_TEX_ESCAPES.get(c, c) for c in s)


def _prefit_point(model):
    """Pre-fit parameters and covariance (see the module docstring)."""
    pre = prefit_constraints(model)
    fixed = np.array(model.suggested_fixed(), dtype=bool)
    x = model.suggested_init()
    use = pre.constrained & ~fixed
    x[use] = pre.center[use]
    cov = np.diag(np.where(use, pre.sigma, 0.0) ** 2)
    return x, cov


def yields(model, fit_result=None, data=None, *, method: str = "derivative") -> YieldsResult:
    """Per-bin, per-sample, per-channel yields with propagated uncertainties.

    Parameters
    ----------
    model : HistFactoryModel
    fit_result : FitResult, optional
        Post-fit yields at its best fit with its covariance; pre-fit yields when None.
    data : array_like, optional
        Main bins (or main + auxiliary data) to show as data; default the observed data.
    method : {"derivative", "secant"}
        How the Jacobian is formed (see the module docstring).

    Returns
    -------
    YieldsResult
    """
    if method not in _METHODS:
        raise InvalidParameters(f"method must be one of {_METHODS}, got {method!r}")
    if fit_result is None:
        stage = "prefit"
        x, cov = _prefit_point(model)
    else:
        stage = "postfit"
        if list(fit_result.parameter_names) != model.parameter_names():
            raise InvalidParameters("fit_result does not belong to this model")
        if fit_result.covariance is None:
            raise InvalidParameters("fit_result has no covariance; fit with uncertainties=True")
        x = np.array(fit_result.bestfit, dtype=float)
        cov = np.asarray(fit_result.covariance, dtype=float)
    main = model.dataset(data)[0]
    lay = model.layout
    tables = lay.tables
    cm = model.compiled
    y0 = cm.expected_samples(np.ascontiguousarray(x))
    n_sb = y0.size
    sig = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    cols = np.flatnonzero(sig > 0)

    # Sparse Jacobian of the per-(sample, bin) rates over the parameters with variance.
    rows_j, cols_j, vals_j = [], [], []
    xw = x.copy()
    for k, j in enumerate(cols):
        h = sig[j] * (FD_REL_STEP if method == "derivative" else 1.0)
        xw[j] = x[j] + h
        up = cm.expected_samples(xw)
        xw[j] = x[j] - h
        dn = cm.expected_samples(xw)
        xw[j] = x[j]
        d = (up - dn) / (2.0 * h)
        nz = np.flatnonzero(d)
        rows_j.append(nz)
        cols_j.append(np.full(nz.size, k))
        vals_j.append(d[nz])

    # Aggregation rows: every (sample, bin), every bin total, every sample integral,
    # every channel total.
    blk_sb = tables["blk_sb_start"]
    blk_bin = tables["blk_bin_start"]
    blk_len = tables["blk_len"]
    sb_bin = np.empty(n_sb, dtype=np.intp)
    sb_blk = np.empty(n_sb, dtype=np.intp)
    for k in range(len(lay.blocks)):
        s0, n = int(blk_sb[k]), int(blk_len[k])
        sb_bin[s0:s0 + n] = np.arange(int(blk_bin[k]), int(blk_bin[k]) + n)
        sb_blk[s0:s0 + n] = k
    ch_index = {c: i for i, c in enumerate(lay.channels)}
    blk_ch = np.array([ch_index[c] for c, _ in lay.blocks], dtype=np.intp)
    n_bins, n_blk, n_ch = int(tables["n_bins"]), len(lay.blocks), len(lay.channels)
    agg_rows = np.concatenate([
        np.arange(n_sb),
        n_sb + sb_bin,
        n_sb + n_bins + sb_blk,
        n_sb + n_bins + n_blk + blk_ch[sb_blk],
    ])
    agg_cols = np.tile(np.arange(n_sb), 4)
    n_rows = n_sb + n_bins + n_blk + n_ch

    from scipy import sparse

    agg = sparse.csr_matrix((np.ones(agg_rows.size), (agg_rows, agg_cols)), shape=(n_rows, n_sb))
    values = agg @ y0
    if cols.size:
        jac = sparse.csr_matrix(
            (np.concatenate(vals_j), (np.concatenate(rows_j), np.concatenate(cols_j))),
            shape=(n_sb, cols.size),
        )
        a = (agg @ jac).tocsr()
        c_sub = np.ascontiguousarray(cov[np.ix_(cols, cols)])
        var = np.empty(n_rows)
        for r0 in range(0, n_rows, ROW_BLOCK):
            blk = a[r0:r0 + ROW_BLOCK]
            m = blk @ c_sub
            var[r0:r0 + ROW_BLOCK] = np.asarray(blk.multiply(m).sum(axis=1)).ravel()
        err = np.sqrt(np.clip(var, 0.0, None))
    else:
        err = np.zeros(n_rows)

    off_bin, off_blk, off_ch = n_sb, n_sb + n_bins, n_sb + n_bins + n_blk
    slices = model.channel_slices()
    channels = []
    for c in lay.channels:
        ci = ch_index[c]
        sl = slices[c]
        samples = []
        for k, (cc, sname) in enumerate(lay.blocks):
            if cc != c:
                continue
            s0, n = int(blk_sb[k]), int(blk_len[k])
            samples.append(SampleYields(
                name=sname,
                y=values[s0:s0 + n].tolist(),
                y_err=err[s0:s0 + n].tolist(),
                integrated=float(values[off_blk + k]),
                integrated_error=float(err[off_blk + k]),
            ))
        channels.append(ChannelYields(
            name=c,
            n_bins=sl.stop - sl.start,
            samples=samples,
            total=values[off_bin + sl.start:off_bin + sl.stop].tolist(),
            total_error=err[off_bin + sl.start:off_bin + sl.stop].tolist(),
            integrated=float(values[off_ch + ci]),
            integrated_error=float(err[off_ch + ci]),
            data=main[sl].tolist(),
            data_integrated=float(np.sum(main[sl])),
        ))
    return YieldsResult(stage=stage, method=method, channels=channels, parameters=x.tolist())
