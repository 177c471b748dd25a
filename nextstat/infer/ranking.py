"""Nuisance-parameter ranking (impacts on the POI), pulls and the correlation matrix.

Conventions (cabinetry 0.6 ``fit.ranking`` / ``visualize.pulls``):

* **Prefit centre and width** of a constrained parameter ``theta``: Gaussian constraint
  (normsys, histosys, lumi, staterror): centre = its auxiliary datum, width = its
  ``sigma`` (1 for normsys/histosys, the combined relative uncertainty for staterror,
  the configured ``sigmas`` for lumi); Poisson constraint (shapesys):
  centre = ``auxdata / tau`` (1), width = ``1 / sqrt(tau)`` (pyhf's ``width()``).
* **Pull** ``(theta_hat - theta_0) / sigma_0``; **constraint** ``sigma_hat / sigma_0``.
* **Impacts**: the parameter is fixed at ``theta_hat +- sigma_0`` (*prefit* impact) and at
  ``theta_hat +- sigma_hat`` (*postfit* impact), every other parameter is refitted, and the
  impact is ``delta = mu_hat_fixed - mu_hat``. A value beyond the parameter's bounds is
  clipped to the bound; when the clipped value equals ``theta_hat`` (the parameter sits on
  that bound) the impact is 0 and no refit is made.
* **Order**: entries are sorted by ``max(|postfit up|, |postfit down|)``, largest first;
  ties keep parameter order.

How the refits run (``_Refitter``): a refit is the conditional minimum with one parameter
held, found by a quasi-Newton method preconditioned with the inverse Hessian of the NLL at
the best fit (computed once, in ``2 (n_global + 1)`` gradient evaluations thanks to the
block structure of the per-bin gammas). Its first point is the linear conditional mean
``x_hat + K e_j (theta_j - theta_hat_j) / K_jj`` (``K = H^-1``), exact for a quadratic NLL.
The four refits of a parameter run in stages whose start points extrapolate the residual
nonlinearity of the earlier ones (``d^2``, then ``p d^2 + q d^3``), and the refits of 32
parameters run in lockstep with their linear algebra batched and their NLL gradients
evaluated in one compiled call (``nll_grad_batch``). A refit stops when its quasi-Newton
step is below ``NEWTON_TOL`` conditional widths in every parameter: the refitted POI is
then within ~1e-8 of the conditional minimum (checked against Newton's method in the
tests), about 2.4 gradient evaluations per refit on a 2,100-bin model. Refits that take
large steps, meet bounds or do not converge in the batch go through a line-search /
active-set version of the same iteration, and through L-BFGS-B (``REFIT_PGTOL``) if that
fails too. The best fit itself is polished to the same precision first, so ``mu_hat`` and
the refitted POI carry the same small error.

The batches are fixed groups of parameters spread over a thread pool (the compiled
evaluations release the GIL); each group's arithmetic does not depend on which thread
runs it, so the results are bitwise identical whatever the number of threads.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field

import numpy as np

from .._config import get_threads
from .._ext import fit as _fit
from .._ext.lbfgsb import Status
from ..errors import InvalidParameters
from ._json import to_json_data as _clean
from .mle import MAX_ITER, MAX_RESTARTS, fit
from .profile import ProfileLikelihood

__all__ = [
    "CorrelationResult",
    "PullEntry",
    "PullsResult",
    "RankingEntry",
    "RankingResult",
    "correlation_matrix",
    "prefit_constraints",
    "pulls",
    "ranking",
]

#: Refits stop when a quasi-Newton step is at most this in every parameter, in units of
#: 1/sqrt(H_ii) (the conditional width); the step is then applied. On the zoo and the
#: benchmark models the refitted POI is then within ~1e-8 of the conditional minimum
#: (iterating to 1e-12), well below a fit's own tolerance (pgtol 1e-6).
NEWTON_TOL = 1e-6
#: Below this step size, a run of NEWTON_STALL steps without a smaller one means the
#: gradient's rounding noise has been reached: the point is accepted.
NEWTON_NOISE_TOL = 1e-4
NEWTON_STALL = 4
#: Give up on the fast path (and use L-BFGS-B) after this many NLL evaluations, ...
NEWTON_MAX_EVAL = 60
#: ... or when a line search needs more than this many halvings.
NEWTON_MAX_BACKTRACK = 30
#: Relative rounding level of the NLL (a sum of thousands of terms with lgamma constants,
#: ~1e-12 relative seen on a 2,100-bin model): the line search tolerates such a rise.
F_NOISE = 1e-11
#: Steps smaller than this (in 1/sqrt(H_ii) units) skip the line search: the quadratic
#: model is accurate there and the NLL change is at its rounding level.
NEWTON_FULL_STEP = 1e-2
#: Intermediate stages of a long move end when steps are this small (see _newton) ...
NEWTON_STAGE_TOL = 1e-2
#: ... and a move is halved at most until this fraction before bounds are enforced.
NEWTON_MIN_FRACTION = 1.0 / 1024.0
#: Most parameters a refit may hold on their bounds before it falls back to L-BFGS-B.
NEWTON_MAX_PINS = 20
#: Most releases of held parameters (active-set changes) before falling back.
NEWTON_MAX_RELEASES = 5
#: Batched refits (see _Refitter.impacts): iterations before a row is handed over to
#: the one-at-a-time path, and correction pairs kept.
BATCH_MAX_ITER = 8
BATCH_HISTORY = 4
#: Nuisance parameters per task of the thread pool (up to 4 refits each, batched). Tasks
#: are the same whatever the number of threads, so the results are too.
CHUNK = 32
#: Rows per matrix product in the batched solves (see _Refitter._solve_rows).
BLAS_ROWS = 32
#: Correction pairs kept by the quasi-Newton updates.
NEWTON_HISTORY = 10
#: Projected-gradient tolerance of the fallback L-BFGS-B refits (Fisher-scaled).
REFIT_PGTOL = 1e-8

_CONVERGED = (int(Status.CONVERGED_PGTOL), int(Status.CONVERGED_FTOL))

ORDER_POLICY = "max(|impact_postfit_up|, |impact_postfit_down|) descending; ties: parameter order"


@dataclass
class PrefitConstraints:
    """Per-parameter prefit information (arrays over all parameters)."""

    kind: list[str]
    constrained: np.ndarray  # bool: Gaussian or Poisson constraint term
    center: np.ndarray  # constraint centre (init for unconstrained parameters)
    sigma: np.ndarray  # constraint width (0 for unconstrained parameters)


def prefit_constraints(model) -> PrefitConstraints:
    """Prefit centre and width of every parameter (see the module docstring).

    Unconstrained parameters (normfactor, shapefactor) get their init as centre and width 0.
    """
    n = model.n_params()
    kind = [""] * n
    constrained = np.zeros(n, dtype=bool)
    center = model.suggested_init()
    sigma = np.zeros(n)
    for ps in model.layout.param_sets:
        sl = slice(ps.offset, ps.offset + ps.n)
        kind[sl] = [ps.kind] * ps.n
        if ps.constraint == "gauss":
            constrained[sl] = True
            center[sl] = ps.auxdata
            sigma[sl] = ps.sigmas
        elif ps.constraint == "poisson":
            tau = np.asarray(ps.factors, dtype=float)
            constrained[sl] = True
            center[sl] = np.asarray(ps.auxdata, dtype=float) / tau
            sigma[sl] = 1.0 / np.sqrt(tau)
    return PrefitConstraints(kind, constrained, center, sigma)


def _fixed_mask(model, fit_result) -> np.ndarray:
    """Fixed in the model, or with an uncertainty of exactly 0 in the fit (fixed there)."""
    mask = np.array(model.suggested_fixed(), dtype=bool)
    errs = np.asarray(fit_result.uncertainties, dtype=float)
    return mask | (errs == 0.0)


def _check_fit(model, fit_result):
    if list(fit_result.parameter_names) != model.parameter_names():
        raise InvalidParameters("fit_result does not belong to this model (parameter names differ)")


# ---------------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------------


@dataclass
class RankingEntry:
    """Impacts of one nuisance parameter on the POI (``delta = mu_hat_fixed - mu_hat``)."""

    name: str
    kind: str
    prefit_center: float
    prefit_sigma: float
    postfit_value: float
    postfit_sigma: float
    pull: float
    constraint: float
    impact_prefit_up: float
    impact_prefit_down: float
    impact_postfit_up: float
    impact_postfit_down: float
    converged: bool

    @property
    def max_postfit_impact(self) -> float:
        """``max(|postfit up|, |postfit down|)``: the sort key."""
        return max(abs(self.impact_postfit_up), abs(self.impact_postfit_down))


@dataclass
class RankingResult:
    """Ranking of the constrained nuisance parameters by their impact on the POI."""

    poi_name: str
    mu_hat: float
    mu_hat_sigma: float
    entries: list[RankingEntry]
    n_refits: int
    n_fallback_refits: int
    converged: bool
    order_policy: str = ORDER_POLICY
    warnings: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Parameter names in ranking order."""
        return [e.name for e in self.entries]

    def top(self, n: int) -> RankingResult:
        """The same result with only the ``n`` highest-ranked entries."""
        out = RankingResult(**{**self.__dict__})
        out.entries = self.entries[:n]
        return out

    def to_columns(self) -> dict:
        """Column arrays (``names``, ``pull``, ``constraint``, the four impacts...)."""
        cols: dict = {"names": self.names}
        for key in RankingEntry.__dataclass_fields__:
            if key != "name":
                cols[key] = [getattr(e, key) for e in self.entries]
        return _clean(cols)

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable; NaN becomes None)."""
        return _clean(asdict(self))


def _refit_start(x_hat, cov, j, value, lower, upper):
    """Best fit shifted along the covariance's linear conditional mean for ``theta_j = value``."""
    x0 = x_hat.copy()
    if cov is not None and cov[j, j] > 0.0:
        x0 += cov[:, j] * ((value - x_hat[j]) / cov[j, j])
        np.clip(x0, lower, upper, out=x0)
    x0[j] = value
    return x0


def _as_slice(idx):
    """A contiguous index array as a slice (views instead of copies), else unchanged."""
    if idx.size and np.all(np.diff(idx) == 1):
        return slice(int(idx[0]), int(idx[-1]) + 1)
    return idx


class _PinnedProfile:
    """A :class:`ProfileLikelihood`'s view with some free parameters fixed where they are
    (what :class:`_Refitter` reads: model, data, mode, POI, bounds, fixed set)."""

    def __init__(self, prof, pinned):
        self.model, self.data, self.kahan, self.poi = prof.model, prof.data, prof.kahan, prof.poi
        self.lower, self.upper = prof.lower, prof.upper
        self.fixed = prof.fixed.copy()
        self.fixed[pinned] = True


class _Refitter:
    """Conditional refits ``theta_j = value`` of one model and dataset (thread-safe).

    Fast path: a quasi-Newton method preconditioned with the inverse Hessian ``K = H^-1``
    of the NLL at the best fit. ``H`` is computed once (finite differences of the analytic
    gradient, ``2 (n_global + 1)`` gradient evaluations thanks to the block structure:
    per-bin gammas with pairwise disjoint bins have a diagonal block, see
    ``ModelLayout.local_params``), and ``K v`` costs ``O(n_global n_local + n_global^2)``
    by block elimination. Parameters held at a value (``theta_j``, and any parameter a
    step would push through its bound, which is then held on that bound) are removed by
    projecting ``K``: ``K_P = K - K[:, P] K[P, P]^-1 K[P, :]``. The first step, from the
    best fit, is the linear conditional mean (exact for a quadratic NLL); later steps use
    L-BFGS corrections on top of ``K_P`` with an Armijo line search while steps are large.
    The iteration stops when a step's largest component, in units of ``1 / sqrt(H_ii)``,
    is at most ``NEWTON_TOL``; that step is applied. A local gamma's refit typically takes
    3 gradient evaluations, a global nuisance parameter's 20 to 40.

    Parameters on a bound at the best fit but not pushed against it (a POI at 0 when the
    data equal the background) make every refit that pushes them outwards leave the
    batch; those are batched once more by a second refitter with them held where they are
    (``self.held``), and a solution is kept when the gradient pushes each held parameter
    against its bound (the KKT condition).

    Fallback (a Hessian that is not positive definite, a held parameter whose gradient
    would pull it back inside, too many evaluations): L-BFGS-B from the linear conditional
    mean with ``REFIT_PGTOL``.
    """

    def __init__(self, prof, x_hat, cov, pin=True):
        model = prof.model
        self.cm = model.compiled
        self._nll_grad = self.cm.nll_grad
        self._nll_grad_batch = _fit.nll_grad_batch
        self.main, self.aux, self.const = prof.data
        self.kahan = prof.kahan
        self.poi = prof.poi
        self.lower, self.upper = prof.lower, prof.upper
        self.cov = cov
        self.ok = False
        self.held = None
        self.pinned = np.zeros(0, dtype=np.intp)
        x = np.clip(np.array(x_hat, dtype=float), self.lower, self.upper)
        self.x_hat = x
        f, g = self._fg(x)
        self.f_hat, self.g_hat = f, g
        free = ~prof.fixed & (self.lower < self.upper)
        # Parameters on a bound that the gradient pushes against stay there.
        self.active = free & (((x <= self.lower) & (g > 0)) | ((x >= self.upper) & (g < 0)))
        newton = free & ~self.active
        self.newton = newton
        local = model.layout.local_params & newton
        self.L = np.flatnonzero(local)
        self.G = np.flatnonzero(newton & ~local)
        if not np.all(np.isfinite(g)) or not newton.any():
            return
        hess = _fit.hessian_structured(
            self.cm, x, self.lower, self.upper, newton.view(np.uint8), local.view(np.uint8),
            self.main, self.aux, self.const,
        )
        diag = np.diag(hess)
        if not np.all(np.isfinite(hess)) or not np.all(diag[newton] > 0.0):
            return
        self.d = diag[self.L].copy()
        self.b = np.ascontiguousarray(hess[np.ix_(self.G, self.L)])
        self.b_over_d = self.b / self.d
        self._l_index, self._g_index = _as_slice(self.L), _as_slice(self.G)
        # Columns outside the Newton set must come out as zeros.
        self._gaps = self.L.size + self.G.size < x.size
        schur = hess[np.ix_(self.G, self.G)] - (self.b / self.d) @ self.b.T
        try:
            np.linalg.cholesky(schur)
        except np.linalg.LinAlgError:
            return
        self.s_inv = np.linalg.inv(schur) if self.G.size else np.zeros((0, 0))
        self.scale = np.sqrt(np.where(newton, diag, 0.0))
        self.ok = True
        # Polish the best fit to the refits' precision, so that mu_hat and the refitted
        # POI values carry the same (small) error.
        polished = self._newton(x, f, g, None, 0.0)
        if polished is not None:
            self.x_hat = polished
            self.f_hat, self.g_hat = self._fg(polished)
        # Parameters that sit on a bound at the best fit (within NEWTON_TOL of their
        # width) without being pushed against it, e.g. a POI at 0 with data equal to the
        # background: refits that would move them out of the box are batched again with
        # them held there (see impacts()).
        room = np.minimum(self.x_hat - self.lower, self.upper - self.x_hat) * self.scale
        self.pinned = np.flatnonzero(newton & (room <= NEWTON_TOL))
        self.held = None
        if 0 < self.pinned.size <= NEWTON_MAX_PINS and pin:
            held_prof = _PinnedProfile(prof, self.pinned)
            self.held = _Refitter(held_prof, self.x_hat, cov, pin=False)

    def _fg(self, x):
        return self._nll_grad(x, self.main, self.aux, self.const, self.kahan)

    def _solve(self, v):
        """``K v`` over the Newton set (zero elsewhere)."""
        out = np.zeros_like(v)
        u_l = v[self.L] / self.d
        if self.G.size:
            y_g = self.s_inv @ (v[self.G] - self.b @ u_l)
            out[self.G] = y_g
            u_l -= (y_g @ self.b) / self.d
        out[self.L] = u_l
        return out

    def column(self, j):
        """``K e_j`` (None when ``j`` is not in the Newton set)."""
        if not self.ok or not self.newton[j]:
            return None
        e = np.zeros(self.x_hat.size)
        e[j] = 1.0
        return self._solve(e)

    def _newton(self, x, f, g, j, value, kj=None):
        """Quasi-Newton iterations from ``x`` (NLL ``f``, gradient ``g``).

        With ``j`` given, ``theta_j`` is moved to ``value`` and held there (``kj = K e_j``).
        The move ("forced" step, the linear conditional mean) is halved while it would
        take another parameter out of its bounds; the iteration then converges (to
        ``NEWTON_STAGE_TOL``) at the intermediate value and the move continues from there:
        a homotopy whose stages adapt to the nonlinearity. An ordinary step that crosses a
        bound is cut at the first bound it meets and that parameter is held there (an
        active set); a held parameter that the gradient pulls back inside at the end is
        released. Returns the minimum, or None when the fast path gives up.
        """
        lower, upper, scale = self.lower, self.upper, self.scale
        free = self.newton.copy()
        pins: list[int] = []  # held parameters ...
        cur = np.zeros(0)  # ... their current values ...
        final = np.zeros(0)  # ... and the values they must reach
        on_bound: list[int] = []  # pins held on a bound (may be released)
        cols = np.zeros((x.size, 0))  # K e_p for p in pins
        kpp_inv = np.zeros((0, 0))
        if j is not None:
            pins, cur, final = [j], np.array([x[j]]), np.array([value])
            cols = (self.column(j) if kj is None else kj)[:, None]
            kpp_inv = np.array([[1.0 / cols[j, 0]]])
            free[j] = False

        def hold(new, values, targets):
            nonlocal pins, cur, final, cols, kpp_inv
            pins = pins + [int(p) for p in new]
            on_bound.extend(int(p) for p in new)
            free[new] = False
            cur = np.concatenate([cur, values])
            final = np.concatenate([final, targets])
            cols = np.column_stack([cols] + [self.column(p) for p in new])
            kpp = cols[pins, :]
            kpp_inv = np.linalg.inv(0.5 * (kpp + kpp.T))

        pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
        n_eval = n_release = stall = 0
        best = math.inf
        start = True
        while True:
            gp = np.where(free, g, 0.0)
            # Two-loop recursion on top of the projected K.
            q = gp.copy()
            alphas = []
            for s_i, y_i, rho in reversed(pairs):
                a_i = rho * (s_i @ q)
                alphas.append(a_i)
                q -= a_i * y_i
            r = self._solve(q)
            if pins:
                r -= cols @ (kpp_inv @ r[pins])
            for (s_i, y_i, rho), a_i in zip(pairs, reversed(alphas), strict=True):
                r += s_i * (a_i - rho * (y_i @ r))
            step = -r
            size = float(np.max(np.abs(step) * scale))
            if not math.isfinite(size):
                return None
            want = final - cur
            moving = bool(np.any(want != 0.0))
            forced = moving and (start or size <= NEWTON_STAGE_TOL)
            # Stall detection over ordinary steps at fixed held values only.
            if moving or start:
                best, stall = math.inf, 0
            elif size < best:
                best, stall = size, 0
            else:
                stall += 1
            if forced:
                frac = 1.0
                while True:
                    tgt = cur + frac * want
                    xt = x + step + cols @ (kpp_inv @ (tgt - cur))
                    xt[pins] = tgt
                    out = ((xt < lower) | (xt > upper)) & free
                    if not out.any() or frac <= NEWTON_MIN_FRACTION:
                        break
                    frac *= 0.5
                if out.any():
                    # Parameters at their bounds that the move pushes out: hold them there.
                    new = np.flatnonzero(out)
                    if len(pins) + new.size > NEWTON_MAX_PINS:
                        return None
                    bound = np.where(xt[new] < lower[new], lower[new], upper[new])
                    hold(new, x[new], bound)
                    pairs.clear()
                    start = True
                    continue
            else:
                if not moving and (size <= NEWTON_TOL or (
                        best <= NEWTON_NOISE_TOL and stall >= NEWTON_STALL)):
                    xt = x + step
                    if pins:
                        xt[pins] = cur
                    if np.all(xt >= lower) and np.all(xt <= upper):
                        release = self._pulled_inside(xt, g, on_bound)
                        if not release:
                            return xt if self._kkt_active(xt, g) else None
                        n_release += 1
                        if n_release > NEWTON_MAX_RELEASES:
                            return None
                        keep = [k for k, p in enumerate(pins) if p not in release]
                        for p in release:
                            on_bound.remove(p)
                            free[p] = True
                        pins = [pins[k] for k in keep]
                        cur, final, cols = cur[keep], final[keep], cols[:, keep]
                        kpp = cols[pins, :]
                        kpp_inv = np.linalg.inv(0.5 * (kpp + kpp.T))
                        pairs.clear()
                        continue
                # Cut the step at the first bound it crosses.
                with np.errstate(divide="ignore", invalid="ignore"):
                    room = np.where(step < 0, lower - x, np.where(step > 0, upper - x, np.inf))
                    ratio = np.where(free & (step != 0), room / step, np.inf)
                tau = float(np.min(ratio)) if ratio.size else np.inf
                if tau < 1.0:
                    block = np.flatnonzero(free & (ratio <= tau))
                    if tau <= 0.0:
                        if len(pins) + block.size > NEWTON_MAX_PINS:
                            return None
                        bound = np.where(step[block] < 0, lower[block], upper[block])
                        hold(block, bound, bound)
                        pairs.clear()
                        continue
                    step = tau * step
                xt = x + step
                if pins:
                    xt[pins] = cur
                np.clip(xt, lower, upper, out=xt)
            t = 1.0
            slope = float(gp @ step)
            for _ in range(NEWTON_MAX_BACKTRACK):
                ft, gt = self._nll_grad(xt, self.main, self.aux, self.const, self.kahan)
                n_eval += 1
                # Armijo, with a slack for the rounding of f; small steps are taken whole
                # (their NLL change is at the NLL's rounding level).
                if (forced or size < NEWTON_FULL_STEP
                        or ft <= f + 1e-4 * t * slope + F_NOISE * (1.0 + abs(f))):
                    break
                t *= 0.5
                xt = x + t * step
                if pins:
                    xt[pins] = cur
            else:
                return None
            if not math.isfinite(ft) or n_eval > NEWTON_MAX_EVAL:
                return None
            if forced:
                cur = tgt
            else:
                if t == 1.0 and tau < 1.0:
                    # The cut step was taken whole: hold the blocking parameters.
                    if len(pins) + block.size > NEWTON_MAX_PINS:
                        return None
                    xt[block] = np.where(step[block] < 0, lower[block], upper[block])
                    hold(block, xt[block], xt[block])
                    pairs.clear()
                else:
                    s_k = xt - x
                    y_k = np.where(free, gt - g, 0.0)
                    sy = float(s_k @ y_k)
                    if sy > 0.0:
                        pairs.append((s_k, y_k, 1.0 / sy))
                        if len(pairs) > NEWTON_HISTORY:
                            pairs.pop(0)
            start = False
            x, f, g = xt, ft, gt

    def _pulled_inside(self, x, g, on_bound):
        """Parameters held on a bound whose gradient now pulls them back inside."""
        return [p for p in on_bound
                if (x[p] <= self.lower[p] and g[p] < 0) or (x[p] >= self.upper[p] and g[p] > 0)]

    def _kkt_active(self, x, g):
        """The parameters on a bound at the best fit must still be pushed against it."""
        held = self.active
        if not held.any():
            return True
        gh = g[held]
        at_lo = x[held] <= self.lower[held]
        return not (np.any(at_lo & (gh < 0)) or np.any(~at_lo & (gh > 0)))

    def _solve_rows(self, v):
        """``K v`` for every row of ``v`` (a ``(B, n)`` array)."""
        out = np.zeros_like(v) if self._gaps else np.empty_like(v)
        li, gi = self._l_index, self._g_index
        u_l = out[:, li] if isinstance(li, slice) else np.empty((v.shape[0], self.L.size))
        np.divide(v[:, li], self.d, out=u_l)
        if self.G.size:
            # Products of at most BLAS_ROWS rows: larger ones make OpenBLAS start threads
            # of its own, 10x slower on a busy machine (and stealing the refits' cores).
            y_g = np.empty((v.shape[0], self.G.size))
            for r0 in range(0, v.shape[0], BLAS_ROWS):
                sl = slice(r0, r0 + BLAS_ROWS)
                y_g[sl] = (v[sl, gi] - u_l[sl] @ self.b.T) @ self.s_inv.T
                u_l[sl] -= y_g[sl] @ self.b_over_d
            out[:, gi] = y_g
        if not isinstance(li, slice):
            out[:, li] = u_l
        return out

    def impacts(self, chunk, cands, solutions=False):
        """Refitted POI for each parameter ``chunk[k]`` fixed at each value ``cands[k][m]``.

        ``cands[k]`` holds up to four values (NaN: skipped), refitted in three batched
        stages whose start points use the earlier stages' solutions: with
        ``x_lin(v)`` the linear conditional mean and ``r(d) = x*(v) - x_lin(v)`` its
        residual at ``d = v - theta_hat``, stage 1 (``cands[k][0]``) starts at ``x_lin``,
        stage 2 (``[1]``) adds ``r_1 (d / d_1)^2``, stage 3 (the rest) adds the cubic
        ``p d^2 + q d^3`` through both. Each start is then off by a higher order of the
        nonlinearity, which cuts the gradient evaluations per refit from ~3.4 to ~2.

        Returns ``(poi, converged, used_fallback)`` arrays of shape ``(len(chunk), 4)``,
        and with ``solutions`` the refitted points of the batched refits, shape
        ``(len(chunk), 4, n)`` (NaN for the others).
        """
        nk = len(chunk)
        cands = np.asarray(cands, dtype=float).reshape(nk, 4)
        mu = np.full((nk, 4), np.nan)
        conv = np.zeros((nk, 4), dtype=bool)
        fb = np.zeros((nk, 4), dtype=bool)
        js = np.asarray(chunk, dtype=np.intp)
        todo = np.isfinite(cands)
        sol = np.full((nk, 4, self.x_hat.size), np.nan) if solutions else None
        batch = self.newton[js] if self.ok else np.zeros(nk, dtype=bool)
        if batch.any():
            kb = np.flatnonzero(batch)
            jb = js[kb]
            idx = np.arange(kb.size)
            e = np.zeros((kb.size, self.x_hat.size))
            e[idx, jb] = 1.0
            kc = self._solve_rows(e)
            kjj = kc[idx, jb]
            newton_f = self.newton.astype(float)
            r0 = self._solve(self.g_hat * newton_f)
            base = self.x_hat - r0 + kc * ((r0[jb] - self.x_hat[jb]) / kjj)[:, None]
            th = self.x_hat[jb]
            resid = {}  # stage -> (d, residual rows, clean mask)
            for stage, cols_m in ((0, [0]), (1, [1]), (2, [2, 3])):
                for m in cols_m:
                    vals = cands[kb, m]
                    sel = np.flatnonzero(np.isfinite(vals))
                    if sel.size == 0:
                        continue
                    v = vals[sel]
                    d = v - th[sel]
                    x0 = base[sel] + kc[sel] * (v / kjj[sel])[:, None]
                    x0[idx[:sel.size], jb[sel]] = v
                    lin = x0.copy()
                    x0 += self._extrapolate(resid, stage, sel, d)
                    x0[idx[:sel.size], jb[sel]] = v
                    xs, done = self._finish_rows(x0, kc[sel], kjj[sel], jb[sel], v)
                    rows = kb[sel]
                    mu[rows[done], m] = xs[done, self.poi]
                    if sol is not None:
                        sol[rows[done], m] = xs[done]
                    conv[rows[done], m] = True
                    todo[rows[done], m] = False
                    if stage < 2:
                        r = np.zeros((kb.size, self.x_hat.size))
                        dd = np.zeros(kb.size)
                        clean = np.zeros(kb.size, dtype=bool)
                        r[sel[done]] = xs[done] - lin[done]
                        dd[sel] = d
                        clean[sel[done]] = True
                        resid[stage] = (dd, r, clean)
        if solutions:  # the held pass's own refitter: the caller checks and refits the rest
            fb[todo] = True
            return mu, conv, fb, sol
        if todo.any() and self.held is not None and self.held.ok:
            self._impacts_held(js, cands, todo, mu, conv)
        for k, m in zip(*np.nonzero(todo), strict=True):
            xr, ok, used = self.refit(int(js[k]), float(cands[k, m]), None)
            mu[k, m], conv[k, m], fb[k, m] = xr[self.poi], ok, used
        return mu, conv, fb

    def _impacts_held(self, js, cands, todo, mu, conv):
        """Batched refits of the ``todo`` entries with the pinned parameters held on their
        bounds; a solution is kept (and its entry cleared from ``todo``) when it satisfies
        the bound's KKT condition, i.e. the gradient pushes each pinned parameter outwards
        (``g >= 0`` on a lower bound, ``<= 0`` on an upper one, to ``NEWTON_TOL`` in units
        of ``sqrt(H_pp)``); the rest are left for :meth:`refit`."""
        held = self.held
        rows = np.flatnonzero(todo.any(axis=1))
        sub = np.where(todo[rows], cands[rows], np.nan)
        hmu, hconv, hfb, hx = held.impacts(js[rows], sub, solutions=True)
        ok = hconv & ~hfb & todo[rows]
        if not ok.any():
            return
        kk, mm = np.nonzero(ok)
        xs = hx[kk, mm]
        grad = self._nll_grad_batch(self.cm, np.ascontiguousarray(xs), self.main, self.aux,
                                    self.const, self.kahan, 1)[1]
        p = self.pinned
        at_lo = self.x_hat[p] - self.lower[p] <= self.upper[p] - self.x_hat[p]
        push = np.where(at_lo, grad[:, p], -grad[:, p]) / self.scale[p]
        good = np.all(push >= -NEWTON_TOL, axis=1) & np.all(np.isfinite(grad), axis=1)
        for r, k_sub, m in zip(np.flatnonzero(good), kk[good], mm[good], strict=True):
            k = rows[k_sub]
            mu[k, m] = xs[r, self.poi]
            conv[k, m] = True
            todo[k, m] = False

    @staticmethod
    def _extrapolate(resid, stage, sel, d):
        """Nonlinear part of the start point from the earlier stages (see :meth:`impacts`)."""
        if not resid:
            return 0.0
        d1, r1, c1 = (a[sel] for a in resid[0])
        if stage == 1 or 1 not in resid:
            with np.errstate(divide="ignore", invalid="ignore"):
                w = np.where(c1 & (d1 != 0.0), (d / d1) ** 2, 0.0)
            return r1 * w[:, None]
        d2, r2, c2 = (a[sel] for a in resid[1])
        ok = c1 & c2 & (d1 != 0.0) & (d2 != 0.0) & (d1 != d2)
        with np.errstate(divide="ignore", invalid="ignore"):
            # r(d) = p d^2 + q d^3 through (d1, r1) and (d2, r2).
            det = np.where(ok, d1 * d1 * d2 * d2 * (d2 - d1), 1.0)
            a1 = np.where(ok, d2 ** 3 / det, 0.0)
            a2 = np.where(ok, -(d1 ** 3) / det, 0.0)
            b1 = np.where(ok, -(d2 ** 2) / det, 0.0)
            b2 = np.where(ok, d1 ** 2 / det, 0.0)
        p = r1 * a1[:, None] + r2 * a2[:, None]
        q = r1 * b1[:, None] + r2 * b2[:, None]
        out = p * (d * d)[:, None] + q * (d ** 3)[:, None]
        only1 = c1 & ~ok & (d1 != 0.0)
        if only1.any():
            out[only1] = r1[only1] * ((d[only1] / d1[only1]) ** 2)[:, None]
        return out

    def _finish_rows(self, x, kc, kjj, jr, vr):
        """Lockstep quasi-Newton iterations from the start points ``x`` (one row per refit).

        The same iteration as :meth:`_newton`, its linear algebra batched over the rows,
        without line search or bound handling: a row whose start or step leaves the
        bounds, whose step is large enough to want a line search, or that has not
        converged after ``BATCH_MAX_ITER`` iterations is left undone (for :meth:`refit`).
        Finished rows are dropped from the arrays as the iteration goes on.
        Returns ``(solutions, done)``.

        Gradient components outside the Newton set and along ``theta_j`` need no masking:
        ``K`` ignores the former, the projection removes the latter, and the correction
        pairs have ``s = 0`` in both.
        """
        lower, upper, scale = self.lower, self.upper, self.scale
        nrow, n = x.shape
        sol = np.full_like(x, np.nan)
        done = np.zeros(nrow, dtype=bool)
        rows = np.arange(nrow)
        active = np.all((x >= lower) & (x <= upper), axis=1)
        # Steps are < NEWTON_FULL_STEP (else the row leaves the batch), so over the whole
        # iteration a parameter moves < BATCH_MAX_ITER * NEWTON_FULL_STEP conditional
        # widths: only columns that start closer than that to a bound need checking.
        reach = BATCH_MAX_ITER * NEWTON_FULL_STEP
        moving = scale > 0
        near = ((x - lower) * scale < reach) | ((upper - x) * scale < reach)
        near_cols = np.flatnonzero(np.any(near & active[:, None], axis=0) & moving)
        lo_near, hi_near = lower[near_cols], upper[near_cols]
        s_hist = np.zeros((BATCH_HISTORY, nrow, n))
        y_hist = np.zeros((BATCH_HISTORY, nrow, n))
        rho = np.zeros((BATCH_HISTORY, nrow))
        n_pairs = 0
        x_prev = g_prev = None
        active_bound = self.active.any()
        for _ in range(BATCH_MAX_ITER):
            if not active.all():
                keep = np.flatnonzero(active)
                if keep.size == 0:
                    break
                x, kc, kjj, jr, vr, rows = (a[keep] for a in (x, kc, kjj, jr, vr, rows))
                s_hist, y_hist, rho = s_hist[:, keep], y_hist[:, keep], rho[:, keep]
                if x_prev is not None:
                    x_prev, g_prev = x_prev[keep], g_prev[keep]
            idx = np.arange(x.shape[0])
            grad = self._nll_grad_batch(self.cm, x, self.main, self.aux, self.const,
                                        self.kahan, 1)[1]
            finite = np.isfinite(grad.sum(axis=1))
            if x_prev is not None:
                k = n_pairs % BATCH_HISTORY
                np.subtract(x, x_prev, out=s_hist[k])
                np.subtract(grad, g_prev, out=y_hist[k])
                sy = np.einsum("ij,ij->i", s_hist[k], y_hist[k])
                with np.errstate(divide="ignore"):
                    rho[k] = np.where(sy > 0.0, 1.0 / sy, 0.0)
                n_pairs += 1
            order = [(n_pairs - 1 - i) % BATCH_HISTORY
                     for i in range(min(n_pairs, BATCH_HISTORY))]
            q = grad.copy() if order else grad
            alphas = []
            for k in order:
                a_k = rho[k] * np.einsum("ij,ij->i", s_hist[k], q)
                alphas.append(a_k)
                q -= a_k[:, None] * y_hist[k]
            rr = self._solve_rows(q)
            rr -= kc * (rr[idx, jr] / kjj)[:, None]
            for k, a_k in zip(reversed(order), reversed(alphas), strict=True):
                b_k = rho[k] * np.einsum("ij,ij->i", y_hist[k], rr)
                rr += (a_k - b_k)[:, None] * s_hist[k]
            rr[idx, jr] = 0.0
            size = np.max(np.abs(rr) * scale, axis=1)
            x_new = x - rr
            if near_cols.size:
                xn = x_new[:, near_cols]
                inside = np.all((xn >= lo_near) & (xn <= hi_near), axis=1)
            else:
                inside = np.ones(x.shape[0], dtype=bool)
            finished = finite & inside & (size <= NEWTON_TOL)
            if active_bound:
                for r in np.flatnonzero(finished):
                    if not self._kkt_active(x_new[r], grad[r]):
                        finished[r] = False
                        finite[r] = False
            sol[rows[finished]] = x_new[finished]
            done[rows[finished]] = True
            # Rows that would need a line search or leave the bounds go to refit().
            active = finite & ~finished & inside & (size < NEWTON_FULL_STEP)
            x_prev, g_prev = x, grad
            x = x_new
        return sol, done

    def refit(self, j, value, kj):
        """Conditional minimum with ``theta_j = value``: ``(x, converged, used_fallback)``."""
        if kj is None:
            kj = self.column(j)
        if kj is not None and kj[j] > 0.0:
            x = self._newton(self.x_hat, self.f_hat, self.g_hat, j, value, kj)
            if x is not None:
                return x, True, False
        lw = self.lower.copy()
        up = self.upper.copy()
        lw[j] = up[j] = value
        x = _refit_start(self.x_hat, self.cov, j, value, lw, up)
        ok = False
        for _ in range(MAX_RESTARTS + 1):
            status, f, *_ = _fit.minimize_nll(
                self.cm, x, lw, up, self.main, self.aux, self.const, self.kahan,
                max_iter=MAX_ITER, pgtol=REFIT_PGTOL,
            )
            ok = status in _CONVERGED
            if ok or not math.isfinite(f):
                break
        return x, ok, True


def ranking(
    model,
    data=None,
    *,
    fit_result=None,
    init=None,
    fixed=None,
    bounds=None,
    mode=None,
    n_threads: int | None = None,
    progress=None,
) -> RankingResult:
    """Impacts of each constrained nuisance parameter on the POI (see the module docstring).

    Parameters
    ----------
    model : HistFactoryModel
    data : array_like, optional
        Main bins or main + auxiliary data (default: observed).
    fit_result : FitResult, optional
        The best fit to ``data`` with uncertainties (made here when not given). The
        refits use ``init``/``fixed``/``bounds`` to set up bounds and fixed parameters;
        pass the same ones as for ``fit_result``.
    init, fixed, bounds, mode : optional
        As in :func:`nextstat.fit`.
    n_threads : int, optional
        Worker threads for the refits (default :func:`nextstat.get_threads`, all cores
        unless :func:`nextstat.set_threads` said otherwise).
    progress : callable, optional
        ``progress(i, n)`` after each parameter's refits (``i`` of ``n`` done), called
        from the calling thread.

    Returns
    -------
    RankingResult
        Ranked entries for every free (not fixed) constrained parameter except the POI.
        ``mu_hat`` is the best-fit POI polished to the refits' precision (it differs from
        ``fit_result``'s by the fit's tolerance, ~1e-6 sigma); ``postfit_value`` and
        ``postfit_sigma`` are ``fit_result``'s.
    """
    prof = ProfileLikelihood(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    if fit_result is None:
        fit_result = fit(model, data, init=init, fixed=fixed, bounds=bounds, mode=mode)
    else:
        _check_fit(model, fit_result)
        if not np.all(np.isfinite(fit_result.uncertainties)):
            raise InvalidParameters("fit_result has no uncertainties; fit with uncertainties=True")
    poi = prof.poi
    theta = np.array(fit_result.bestfit, dtype=float)
    errs = np.asarray(fit_result.uncertainties, dtype=float)
    cov = fit_result.covariance
    cov = None if cov is None else np.asarray(cov, dtype=float)
    refitter = _Refitter(prof, theta, cov)
    mu_hat = float(refitter.x_hat[poi])
    pre = prefit_constraints(model)
    names = model.parameter_names()
    lower, upper = prof.lower, prof.upper
    nps = [j for j in range(model.n_params())
           if pre.constrained[j] and not prof.fixed[j] and j != poi]

    def run(chunk):
        # Candidate values, clipped to the bounds; one equal to theta_hat (the parameter
        # sits on that bound) has impact 0 and is not refitted.
        cands = np.full((len(chunk), 4), np.nan)
        zero = np.zeros((len(chunk), 4), dtype=bool)
        for k, j in enumerate(chunk):
            th = theta[j]
            for m, val in enumerate((th + pre.sigma[j], th - pre.sigma[j],
                                     th + errs[j], th - errs[j])):
                if math.isfinite(val):
                    val = min(max(val, lower[j]), upper[j])
                    zero[k, m] = val == th
                    cands[k, m] = math.nan if zero[k, m] else val
        mu, conv, fb = refitter.impacts(chunk, cands)
        imp = np.where(zero, 0.0, mu - mu_hat)
        ok = np.all(conv | zero, axis=1)
        n_fit = np.isfinite(cands).sum(axis=1)
        return [(imp[k].tolist(), bool(ok[k]), int(fb[k].sum()), int(n_fit[k]))
                for k in range(len(chunk))]

    n = len(nps)
    chunks = [nps[i:i + CHUNK] for i in range(0, n, CHUNK)]
    results: list = []
    workers = max(1, min(int(n_threads or get_threads()), len(chunks) or 1))
    if workers == 1:
        for chunk in chunks:
            results.extend(run(chunk))
            if progress is not None:
                progress(len(results), n)
    else:
        parts: list = [None] * len(chunks)
        done = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(run, c): i for i, c in enumerate(chunks)}
            for fut in as_completed(futures):
                i = futures[fut]
                parts[i] = fut.result()
                done += len(chunks[i])
                if progress is not None:
                    progress(done, n)
        for part in parts:
            results.extend(part)

    entries = []
    n_refits = n_fallback = 0
    for j, (imp, ok, n_fb, n_fit) in zip(nps, results, strict=True):
        s0 = float(pre.sigma[j])
        n_refits += n_fit
        n_fallback += n_fb
        entries.append(
            RankingEntry(
                name=names[j],
                kind=pre.kind[j],
                prefit_center=float(pre.center[j]),
                prefit_sigma=s0,
                postfit_value=float(theta[j]),
                postfit_sigma=float(errs[j]),
                pull=float((theta[j] - pre.center[j]) / s0),
                constraint=float(errs[j] / s0),
                impact_prefit_up=imp[0],
                impact_prefit_down=imp[1],
                impact_postfit_up=imp[2],
                impact_postfit_down=imp[3],
                converged=ok,
            )
        )
    order = sorted(range(n), key=lambda k: -_sort_key(entries[k]))
    entries = [entries[k] for k in order]
    converged = bool(fit_result.converged) and all(e.converged for e in entries)
    warnings = []
    if not fit_result.converged:
        warnings.append("the best fit did not converge")
    bad = [e.name for e in entries if not e.converged]
    if bad:
        warnings.append(f"refits did not converge for {', '.join(bad[:5])}"
                        + (" ..." if len(bad) > 5 else ""))
    return RankingResult(
        poi_name=model.poi_name,
        mu_hat=mu_hat,
        mu_hat_sigma=float(errs[poi]),
        entries=entries,
        n_refits=n_refits,
        n_fallback_refits=n_fallback,
        converged=converged,
        warnings=warnings,
    )


def _sort_key(e: RankingEntry) -> float:
    v = e.max_postfit_impact
    return v if math.isfinite(v) else -1.0


# ---------------------------------------------------------------------------------------
# pulls and correlations
# ---------------------------------------------------------------------------------------


@dataclass
class PullEntry:
    """Pull of one parameter (``pull``/``constraint`` are NaN for unconstrained ones)."""

    name: str
    kind: str
    constrained: bool
    pull: float
    constraint: float
    prefit_center: float
    prefit_sigma: float
    postfit_center: float
    postfit_sigma: float


@dataclass
class PullsResult:
    """Pulls in parameter order."""

    entries: list[PullEntry]
    poi_name: str | None

    @property
    def names(self) -> list[str]:
        """Parameter names, in entry order."""
        return [e.name for e in self.entries]

    def to_dict(self) -> dict:
        """Plain Python data (JSON-serialisable; NaN becomes None)."""
        return _clean(asdict(self))


def pulls(fit_result, model, *, include_unconstrained: bool = False) -> PullsResult:
    """Pulls ``(theta_hat - theta_0) / sigma_0`` and constraints ``sigma_hat / sigma_0``.

    Parameters
    ----------
    fit_result : FitResult
    model : HistFactoryModel
    include_unconstrained : bool
        Also list the free normfactors/shapefactors (other than the POI), flagged
        ``constrained=False`` with NaN pull and constraint. Default: left out.

    Returns
    -------
    PullsResult
        Free parameters only (fixed ones, and those whose fitted uncertainty is exactly 0,
        are left out), never the POI, in parameter order.
    """
    _check_fit(model, fit_result)
    pre = prefit_constraints(model)
    fixed = _fixed_mask(model, fit_result)
    poi = model.poi_index()
    x = np.asarray(fit_result.bestfit, dtype=float)
    errs = np.asarray(fit_result.uncertainties, dtype=float)
    entries = []
    for j, name in enumerate(model.parameter_names()):
        if fixed[j] or j == poi or not (pre.constrained[j] or include_unconstrained):
            continue
        if pre.constrained[j]:
            s0 = float(pre.sigma[j])
            pull = float((x[j] - pre.center[j]) / s0)
            con = float(errs[j] / s0)
        else:
            s0, pull, con = math.nan, math.nan, math.nan
        entries.append(PullEntry(name, pre.kind[j], bool(pre.constrained[j]), pull, con,
                                 float(pre.center[j]), s0, float(x[j]), float(errs[j])))
    return PullsResult(entries, model.poi_name)


@dataclass
class CorrelationResult:
    """A (possibly pruned) correlation matrix with its parameter names."""

    parameter_names: list[str]
    matrix: np.ndarray

    def to_dict(self) -> dict:
        """``{"parameter_names": [...], "corr": [[...]]}``."""
        return {"parameter_names": list(self.parameter_names),
                "corr": _clean(self.matrix.tolist())}


def correlation_matrix(fit_result, threshold: float | None = None) -> CorrelationResult:
    """The fit's correlation matrix over its free parameters.

    Parameters
    ----------
    fit_result : FitResult
        With a correlation matrix (``uncertainties=True``).
    threshold : float, optional
        Prune (as cabinetry's ``pruning_threshold``): keep only parameters whose largest
        ``|correlation|`` with any *other* parameter is at least ``threshold``.

    Returns
    -------
    CorrelationResult
        Fixed parameters (zero diagonal) are always left out.
    """
    corr = fit_result.correlation
    if corr is None:
        raise InvalidParameters("fit_result has no correlation matrix; fit with uncertainties")
    corr = np.asarray(corr, dtype=float)
    keep = np.diag(corr) != 0.0
    if threshold is not None:
        off = np.abs(corr - np.diag(np.diag(corr)))
        keep &= off.max(axis=1, initial=0.0) >= threshold
    idx = np.flatnonzero(keep)
    names = [fit_result.parameter_names[i] for i in idx]
    return CorrelationResult(names, corr[np.ix_(idx, idx)].copy())
