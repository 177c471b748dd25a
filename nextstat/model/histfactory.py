"""The HistFactory model: pyhf semantics over a compiled likelihood."""

from __future__ import annotations

import copy

import numpy as np

from .._config import use_kahan
from .._ext.nll import CompiledModel
from ..errors import InvalidParameters
from .compile import ModelLayout

__all__ = ["HistFactoryModel"]


def _log_factorial_sum(x: np.ndarray) -> float:
    """sum(lgamma(x + 1)): the Poisson normalisation of (possibly non-integer) counts."""
    from scipy.special import gammaln

    return float(np.sum(gammaln(x + 1.0))) if x.size else 0.0


class HistFactoryModel:
    """A binned HistFactory likelihood with pyhf 0.7.6 semantics.

    Built by :func:`nextstat.from_pyhf`. Parameters follow pyhf's ``par_order`` (grouped by
    modifier type: histosys, lumi, normfactor, normsys, shapefactor, shapesys, staterror);
    per-bin parameters are named ``name[i]``. Data vectors follow pyhf too: main bins of
    the channels in alphabetical order, followed (optionally) by the auxiliary data.

    Every method that takes ``data`` accepts ``None`` (the observed data), the main bins
    only (length :meth:`n_main_bins`; auxiliary data from the model), or main + auxiliary
    data (length ``n_main_bins() + n_aux()``, pyhf's full data vector).
    """

    def __init__(self, layout: ModelLayout, spec: dict, measurement: str):
        self._layout = layout
        self._spec = spec
        self._measurement = measurement
        self._cm = CompiledModel(layout.tables)
        self._observed = self._prepare_data(None, name="observed data")

    # ---- structure -----------------------------------------------------------------
    @property
    def layout(self) -> ModelLayout:
        """The compiled layout (parameter sets, tables)."""
        return self._layout

    @property
    def compiled(self) -> CompiledModel:
        """The compiled likelihood object (for the inference layer)."""
        return self._cm

    @property
    def spec(self) -> dict:
        """The validated workspace this model was built from (do not mutate)."""
        return self._spec

    @property
    def measurement(self) -> str:
        """Name of the measurement the model was built with."""
        return self._measurement

    @property
    def poi_name(self) -> str | None:
        """Name of the parameter of interest (``None`` for a POI-less model)."""
        return self._layout.poi_name

    def poi_index(self) -> int | None:
        """Index of the parameter of interest in the parameter vector."""
        return self._layout.poi_index

    def n_params(self) -> int:
        """Number of parameters."""
        return len(self._layout.parameter_names)

    dim = n_params

    def n_main_bins(self) -> int:
        """Number of main (observed) bins over all channels."""
        return self._cm.n_bins

    def n_aux(self) -> int:
        """Number of auxiliary data (global observables)."""
        return self._cm.n_aux

    def parameter_names(self) -> list[str]:
        """Parameter names in vector order; per-bin parameters as ``name[i]``."""
        return list(self._layout.parameter_names)

    def parameter_index(self, name: str) -> int:
        """Index of the parameter called ``name``."""
        try:
            return self._layout.parameter_names.index(name)
        except ValueError:
            raise InvalidParameters(
                f"no parameter named {name!r}; parameters are {self._layout.parameter_names}"
            ) from None

    def suggested_init(self) -> np.ndarray:
        """Initial values (modifier defaults, measurement overrides applied)."""
        return self._layout.init.copy()

    def suggested_bounds(self) -> list[tuple[float, float]]:
        """``(low, high)`` bounds per parameter."""
        return [(float(lo), float(hi)) for lo, hi in self._layout.bounds]

    def suggested_fixed(self) -> list[bool]:
        """Whether each parameter is fixed (measurement ``fixed`` or an empty-bin gamma)."""
        return [bool(f) for f in self._layout.fixed]

    def channel_names(self) -> list[str]:
        """Channel names, in data order (alphabetical)."""
        return list(self._layout.channels)

    def channel_bins(self) -> dict[str, int]:
        """Number of bins per channel."""
        return dict(self._layout.channel_bins)

    def channel_slices(self) -> dict[str, slice]:
        """Slice of each channel in the main-data vector."""
        out, start = {}, 0
        for c in self._layout.channels:
            n = self._layout.channel_bins[c]
            out[c] = slice(start, start + n)
            start += n
        return out

    def sample_names(self, channel: str) -> list[str]:
        """Sample names of ``channel`` (alphabetical)."""
        try:
            return list(self._layout.channel_samples[channel])
        except KeyError:
            raise InvalidParameters(
                f"no channel named {channel!r}; channels are {self._layout.channels}"
            ) from None

    def modifier_summary(self) -> dict[str, list[str]]:
        """Modifier names grouped by type."""
        return {k: list(v) for k, v in self._layout.modifiers.items()}

    def interpolation_codes(self) -> dict[str, str]:
        """Interpolation code per modifier type, e.g. ``{"normsys": "4", "histosys": "4p"}``."""
        return dict(self._layout.codes)

    # ---- data --------------------------------------------------------------------------
    def observed_main(self) -> np.ndarray:
        """Observed main-bin counts."""
        return self._observed[0].copy()

    def aux_data(self) -> np.ndarray:
        """Observed auxiliary data (pyhf's ``model.config.auxdata``)."""
        return self._observed[1].copy()

    def observed_data(self, include_auxdata: bool = True) -> np.ndarray:
        """Observed data vector, pyhf layout (main bins, then auxdata if asked)."""
        main, aux, _ = self._observed
        return np.concatenate([main, aux]) if include_auxdata else main.copy()

    def observed_main_by_channel(self) -> list[dict]:
        """``[{"channel_name": c, "y": [...]}]`` in channel order."""
        main = self._observed[0]
        return [
            {"channel_name": c, "y": main[sl].tolist()} for c, sl in self.channel_slices().items()
        ]

    def with_observed_main(self, observed) -> HistFactoryModel:
        """A copy of this model whose observed main-bin counts are ``observed``."""
        main, _, _ = self._prepare_data(observed, name="observed")
        if main.size != self.n_main_bins() or observed is None:
            raise InvalidParameters(f"observed must have {self.n_main_bins()} main-bin counts")
        clone = copy.copy(self)
        clone._spec = copy.deepcopy(self._spec)
        for obs in clone._spec["observations"]:
            obs["data"] = main[self.channel_slices()[obs["name"]]].tolist()
        clone._observed = clone._prepare_data(main, name="observed")
        return clone

    def _prepare_data(self, data, name: str = "data"):
        """Split ``data`` into (main, aux, constant); validate shapes and values."""
        n_main, n_aux = self._cm.n_bins, self._cm.n_aux
        lay = self._layout
        if data is None:
            main, aux = lay.observed_main, lay.aux_data
        else:
            arr = np.asarray(data, dtype=float)
            if arr.ndim != 1 or arr.size not in (n_main, n_main + n_aux):
                raise InvalidParameters(
                    f"{name} has shape {arr.shape}; expected {n_main} main-bin counts or "
                    f"{n_main + n_aux} values (main bins followed by auxiliary data)"
                )
            main = arr[:n_main]
            aux = arr[n_main:] if arr.size > n_main else lay.aux_data
        main = np.ascontiguousarray(main, dtype=float)
        aux = np.ascontiguousarray(aux, dtype=float)
        bad = np.flatnonzero(~np.isfinite(main) | (main < 0))
        if bad.size:
            b = int(bad[0])
            raise InvalidParameters(
                f"{name}: main bin {b} ({self._bin_label(b)}) is {main[b]!r}; counts must be "
                "finite and >= 0"
            )
        bad = np.flatnonzero(~np.isfinite(aux))
        if bad.size:
            raise InvalidParameters(f"{name}: auxiliary datum {int(bad[0])} is not finite")
        pois = aux[lay.pois_aux_index]
        if np.any(pois < 0):
            raise InvalidParameters(f"{name}: Poisson auxiliary data must be >= 0")
        constant = _log_factorial_sum(main) + _log_factorial_sum(pois) + lay.gauss_log_norm
        return main, aux, constant

    def _bin_label(self, b: int) -> str:
        for c, sl in self.channel_slices().items():
            if sl.start <= b < sl.stop:
                return f"channel '{c}' bin {b - sl.start}"
        return "?"

    def dataset(self, data=None) -> tuple[np.ndarray, np.ndarray, float]:
        """``(main, aux, constant)`` for ``data`` (see the class docstring for its forms).

        ``constant`` is the data-dependent part of the NLL: the Poisson ``lgamma``
        normalisations of the main and Poisson-auxiliary counts plus the Gaussian
        normalisations.
        """
        return self._observed if data is None else self._prepare_data(data)

    def _params(self, params, name: str = "params") -> np.ndarray:
        try:
            p = np.ascontiguousarray(params, dtype=float)
        except (TypeError, ValueError) as exc:
            raise InvalidParameters(f"{name} must be a sequence of numbers ({exc})") from None
        if p.ndim != 1 or p.size != self.n_params():
            raise InvalidParameters(
                f"{name} has shape {p.shape}, the model has {self.n_params()} parameters "
                f"({', '.join(self._layout.parameter_names[:6])}"
                f"{', ...' if self.n_params() > 6 else ''})"
            )
        bad = np.flatnonzero(~np.isfinite(p))
        if bad.size:
            i = int(bad[0])
            raise InvalidParameters(
                f"{name}[{i}] ({self._layout.parameter_names[i]}) is {p[i]!r}"
            )
        return p

    # ---- likelihood ------------------------------------------------------------------
    def nll(self, params, data=None, mode: str | None = None) -> float:
        """Negative log-likelihood, pyhf's ``-logpdf`` with all constants.

        Parameters
        ----------
        params : array_like
            Parameter vector (see :meth:`parameter_names`).
        data : array_like, optional
            Main bins, or main bins + auxiliary data; default the observed data.
        mode : {"fast", "parity"}, optional
            Evaluation mode; default :func:`nextstat.get_eval_mode`.
        """
        main, aux, const = self.dataset(data)
        return self._cm.nll(self._params(params), main, aux, const, use_kahan(mode))

    def twice_nll(self, params, data=None, mode: str | None = None) -> float:
        """``2 * nll``: pyhf's ``twice_nll`` / ``-2 logpdf``."""
        return 2.0 * self.nll(params, data, mode)

    def logpdf(self, params, data=None, mode: str | None = None) -> float:
        """``-nll``, pyhf's ``model.logpdf`` (a float, not a 1-element array)."""
        return -self.nll(params, data, mode)

    def nll_and_grad(self, params, data=None, mode: str | None = None):
        """``(nll, gradient)`` from one fused evaluation."""
        main, aux, const = self.dataset(data)
        return self._cm.nll_grad(self._params(params), main, aux, const, use_kahan(mode))

    def grad_nll(self, params, data=None, mode: str | None = None) -> np.ndarray:
        """Analytic gradient of :meth:`nll` with respect to the parameters."""
        return self.nll_and_grad(params, data, mode)[1]

    def expected_main(self, params) -> np.ndarray:
        """Expected main-bin rates ``nu_b(params)``."""
        return self._cm.expected_main(self._params(params))

    def expected_aux(self, params) -> np.ndarray:
        """Expected auxiliary data: ``theta`` for Gaussian terms, ``gamma * tau`` for Poisson."""
        p = self._params(params)
        lay = self._layout
        vals = p[lay.aux_param]
        return np.where(lay.aux_kind == 1, vals * lay.aux_tau, vals)

    def expected_data(self, params, include_auxdata: bool = True) -> np.ndarray:
        """pyhf's ``expected_data``: main rates, then expected auxiliary data if asked."""
        main = self.expected_main(params)
        if not include_auxdata:
            return main
        return np.concatenate([main, self.expected_aux(params)])

    def expected_main_by_channel_sample(self, params) -> list[dict]:
        """Per-channel, per-sample expected yields.

        Returns ``[{"channel_name", "samples": [{"sample_name", "y"}], "total"}]``.
        """
        per_sb = self._cm.expected_samples(self._params(params))
        lay = self._layout
        tables = lay.tables
        out: dict[str, dict] = {
            c: {"channel_name": c, "samples": [], "total": np.zeros(lay.channel_bins[c])}
            for c in lay.channels
        }
        for k, (c, s) in enumerate(lay.blocks):
            start, n = int(tables["blk_sb_start"][k]), int(tables["blk_len"][k])
            y = per_sb[start:start + n]
            out[c]["samples"].append({"sample_name": s, "y": y.tolist()})
            out[c]["total"] += y
        for entry in out.values():
            entry["total"] = entry["total"].tolist()
        return list(out.values())

    def __repr__(self) -> str:
        return (
            f"HistFactoryModel(channels={len(self._layout.channels)}, "
            f"bins={self.n_main_bins()}, params={self.n_params()}, poi={self.poi_name!r}, "
            f"interpolation={self._layout.codes})"
        )
