"""Tests of nextstat's L-BFGS-B optimizer (nextstat/_ext/lbfgsb.pyx).

References are closed forms, KKT conditions and scipy.optimize's L-BFGS-B (used here only
as an independent reference implementation).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nextstat._ext.lbfgsb import (
    LBFGSB,
    MinimizeResult,
    Status,
    _minimize_rosenbrock_batch,
    _rosenbrock,
    minimize,
)
from scipy.optimize import minimize as scipy_minimize

from nextstat.errors import FitError, InvalidParameters

# Default pgtol is 1e-6 on the projected gradient; on the Rosenbrock valley (Hessian
# eigenvalues up to ~1e3 near the minimum) that bounds the error in x by ~1e-5.
ROSEN_X_ATOL = 1e-4
# f at a point within ROSEN_X_ATOL of the minimum is below ~1e-8.
ROSEN_F_ATOL = 1e-8
# Runs stop on pgtol (1e-6) or on a relative f-reduction of 1e-12; a run stopped by ftol
# on these well-scaled problems still has a projected gradient far below this.
KKT_ATOL = 1e-4
# scipy stops on its own criteria (factr=1e7 by default); where both converge to the same
# minimiser, x agrees to roughly the square root of that relative accuracy.
SCIPY_X_ATOL = 1e-3
# Objective values of the two implementations agree to this relative precision.
SCIPY_F_RTOL = 1e-7
# Rosenbrock-2 from (-1.2, 1) takes 36 iterations in scipy; allow some slack, not more.
ROSEN2_MAX_ITER = 60


def rosen_start(n):
    x0 = np.full(n, -1.2)
    x0[1::2] = 1.0
    return x0


def projected_gradient(x, g, lo, hi):
    """Infinity norm of the projected gradient ``x - P(x - g)``."""
    return float(np.max(np.abs(x - np.clip(x - g, lo, hi))))


def scipy_ref(fun, x0, lo=None, hi=None):
    bounds = None if lo is None else list(zip(lo, hi, strict=True))
    return scipy_minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 20000, "ftol": 1e-15, "gtol": 1e-10},
    )


def ask_tell(fun, x0, lo=None, hi=None, **opts):
    """Run the ask/tell loop by hand, recording every point asked for."""
    opt = LBFGSB(x0, lo, hi, **opts)
    asked = []
    x = opt.ask()
    while True:
        asked.append(x.copy())
        status = opt.tell(*fun(x))
        if status.is_terminal:
            return opt, np.array(asked)
        x = opt.ask()


# ---------------------------------------------------------------------------------------
# Rosenbrock
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 10, 100])
def test_rosenbrock_unconstrained(n):
    res = minimize(_rosenbrock, rosen_start(n))
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(n), atol=ROSEN_X_ATOL)
    assert res.fun < ROSEN_F_ATOL
    ref = scipy_ref(_rosenbrock, rosen_start(n))
    # iteration counts comparable to the reference implementation
    assert res.n_iter <= 1.3 * ref.nit + 10
    assert res.n_fev <= 1.3 * ref.nfev + 10


def test_rosenbrock2_iterations():
    res = minimize(_rosenbrock, [-1.2, 1.0])
    assert res.status == Status.CONVERGED_PGTOL
    assert res.n_iter < ROSEN2_MAX_ITER
    assert res.n_gev == res.n_fev


def test_rosenbrock2_bound_closed_form():
    # with x0 <= 0.8 the constrained minimiser is x0 = 0.8, x1 = 0.64 (f = 0.04)
    lo, hi = np.array([-2.0, -2.0]), np.array([0.8, 2.0])
    res = minimize(_rosenbrock, [-1.2, 1.0], lo, hi)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, [0.8, 0.64], atol=ROSEN_X_ATOL)
    assert res.x[0] == 0.8  # exactly on the bound
    assert res.n_active_bounds == 1
    assert res.fun == pytest.approx(0.04, abs=ROSEN_F_ATOL)
    # KKT: the gradient pushes against the active upper bound, vanishes elsewhere
    _, g = _rosenbrock(res.x)
    assert g[0] < 0
    assert abs(g[1]) < KKT_ATOL


@pytest.mark.parametrize("n", [2, 10, 100])
def test_rosenbrock_bounds_cut_off_minimum(n):
    lo, hi = np.full(n, -2.0), np.full(n, 0.8)
    res = minimize(_rosenbrock, rosen_start(n), lo, hi)
    assert res.success, res.message
    assert np.all(res.x >= lo) and np.all(res.x <= hi)
    _, g = _rosenbrock(res.x)
    assert projected_gradient(res.x, g, lo, hi) < KKT_ATOL
    assert res.n_active_bounds >= 1
    ref = scipy_ref(_rosenbrock, rosen_start(n), lo, hi)
    np.testing.assert_allclose(res.x, ref.x, atol=SCIPY_X_ATOL)
    assert res.fun == pytest.approx(ref.fun, rel=SCIPY_F_RTOL)


def test_rosenbrock_infinite_bounds_mixed():
    n = 6
    lo = np.array([-np.inf, 1.1, -np.inf, -2.0, -np.inf, -np.inf])
    hi = np.array([np.inf, np.inf, 0.5, np.inf, np.inf, 2.0])
    res = minimize(_rosenbrock, np.zeros(n), lo, hi)
    assert res.success, res.message
    assert np.all(res.x >= lo) and np.all(res.x <= hi)
    _, g = _rosenbrock(res.x)
    assert projected_gradient(res.x, g, lo, hi) < KKT_ATOL
    ref = scipy_ref(_rosenbrock, np.zeros(n), lo, hi)
    assert res.fun == pytest.approx(ref.fun, rel=SCIPY_F_RTOL)
    np.testing.assert_allclose(res.x, ref.x, atol=SCIPY_X_ATOL)


def test_all_bounds_infinite_equals_unbounded():
    n = 10
    a = minimize(_rosenbrock, rosen_start(n))
    b = minimize(_rosenbrock, rosen_start(n), np.full(n, -np.inf), np.full(n, np.inf))
    np.testing.assert_array_equal(a.x, b.x)
    assert a.n_fev == b.n_fev


# ---------------------------------------------------------------------------------------
# convex quadratics in random boxes (hypothesis)
# ---------------------------------------------------------------------------------------

# The QP runs use ftol=0, so they stop on pgtol, or when rounding hides every decrease.
# f is evaluated with an error of about n * eps * (1/2 |x|'|A||x| + |b|'|x|); a step
# along the projected gradient g with curvature <= lambda_max decreases f by at least
# ~|g|^2 / (2 lambda_max), so a run that stalls has |g| below this bound.
QP_PGTOL = 1e-6
# recomputing the projected gradient as x - P(x - g) rounds at the level of eps * |x|
QP_PGTOL_SLACK = 1.1
# scipy's answer and ours, both near the unique minimiser: f agrees to this (absolute).
QP_F_ATOL = 1e-8


def qp_stall_bound(A, b, x):
    n = x.size
    scale = 0.5 * np.abs(x) @ np.abs(A) @ np.abs(x) + np.abs(b) @ np.abs(x)
    lam_max = np.linalg.eigvalsh(A)[-1]
    return math.sqrt(2.0 * lam_max * n * np.finfo(float).eps * scale)


def quadratic(A, b):
    def fun(x):
        Ax = A @ x
        return 0.5 * x @ Ax - b @ x, Ax - b

    return fun


@st.composite
def boxed_qp(draw):
    n = draw(st.integers(1, 25))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.exp(rng.uniform(0.0, math.log(1e3), size=n))
    A = (q * eig) @ q.T
    A = 0.5 * (A + A.T)
    b = rng.normal(size=n) * 3.0
    lo = rng.uniform(-2.0, 0.5, size=n)
    hi = lo + rng.uniform(0.0, 2.5, size=n)
    kind = rng.integers(0, 5, size=n)
    lo[kind == 0] = -np.inf
    hi[kind == 1] = np.inf
    hi[kind == 2] = lo[kind == 2]  # fixed
    x0 = rng.uniform(-4.0, 4.0, size=n)  # often outside the box
    return A, b, lo, hi, x0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(boxed_qp())
def test_quadratic_kkt(problem):
    A, b, lo, hi, x0 = problem
    fun = quadratic(A, b)
    opt, asked = ask_tell(fun, x0, lo, hi, ftol=0.0, pgtol=QP_PGTOL)
    res = opt.result()
    assert res.status in (
        Status.CONVERGED_PGTOL,
        Status.CONVERGED_FTOL,  # a step that no longer changes f
        Status.ABNORMAL_LINE_SEARCH,  # no decrease visible above rounding
    ), res.message
    x = res.x
    assert np.all(x >= lo) and np.all(x <= hi)
    fixed = lo == hi
    assert np.all(asked[:, fixed] == lo[fixed])  # fixed variables never move
    assert np.all(asked >= lo) and np.all(asked <= hi)  # every trial point is feasible
    _, g = fun(x)
    pg = projected_gradient(x, g, lo, hi)
    if res.status == Status.CONVERGED_PGTOL:
        assert pg <= QP_PGTOL * QP_PGTOL_SLACK
    else:
        assert pg <= max(QP_PGTOL, qp_stall_bound(A, b, x)) * QP_PGTOL_SLACK
    ref = scipy_ref(fun, np.clip(x0, lo, hi), lo, hi)
    assert res.fun <= ref.fun + QP_F_ATOL


def test_quadratic_unconstrained_closed_form():
    rng = np.random.default_rng(3)
    n = 50
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    A = (q * np.linspace(1.0, 100.0, n)) @ q.T
    b = rng.normal(size=n)
    res = minimize(quadratic(A, b), np.zeros(n))
    assert res.success
    # |x - x*| <= |g| / lambda_min, |g| <= pgtol (or smaller at an ftol stop)
    np.testing.assert_allclose(res.x, np.linalg.solve(A, b), atol=KKT_ATOL)


def test_separable_quadratic_box_closed_form():
    # f = sum (x - c)^2 / 2 in [0, 1]^n: solution clip(c, 0, 1)
    c = np.array([-1.0, 0.3, 2.0, 0.9, -0.2, 5.0])
    res = minimize(lambda x: (0.5 * np.sum((x - c) ** 2), x - c), np.full(6, 0.5), 0.0, 1.0)
    assert res.success
    np.testing.assert_allclose(res.x, np.clip(c, 0.0, 1.0), atol=1e-12)
    assert res.n_active_bounds == 4


# ---------------------------------------------------------------------------------------
# fixed variables, projection of the start, degenerate curvature
# ---------------------------------------------------------------------------------------


def test_fixed_variables_never_move():
    n = 8
    lo, hi = np.full(n, -3.0), np.full(n, 3.0)
    fixed = np.array([1, 4, 7])
    lo[fixed] = hi[fixed] = [0.3, -0.7, 2.0]
    opt, asked = ask_tell(_rosenbrock, np.zeros(n), lo, hi)
    assert opt.status.converged, opt.message
    assert np.all(asked[:, fixed] == lo[fixed])
    assert np.all(opt.x[fixed] == lo[fixed])
    _, g = _rosenbrock(opt.x)
    free = np.setdiff1d(np.arange(n), fixed)
    assert projected_gradient(opt.x[free], g[free], lo[free], hi[free]) < KKT_ATOL
    assert opt.result().n_active_bounds >= fixed.size


def test_all_variables_fixed():
    res = minimize(_rosenbrock, [0.0, 0.0], [0.5, -1.0], [0.5, -1.0])
    assert res.status == Status.CONVERGED_PGTOL
    assert res.n_fev == 1 and res.n_iter == 0
    np.testing.assert_array_equal(res.x, [0.5, -1.0])


def test_start_outside_box_is_projected():
    lo, hi = np.array([-1.0, 0.5]), np.array([0.5, 2.0])
    opt = LBFGSB([3.0, -5.0], lo, hi)
    np.testing.assert_array_equal(opt.ask(), [0.5, 0.5])
    np.testing.assert_array_equal(opt.x, [0.5, 0.5])
    res = minimize(_rosenbrock, [3.0, -5.0], lo, hi)
    assert res.success
    assert np.all(res.x >= lo) and np.all(res.x <= hi)
    _, g = _rosenbrock(res.x)
    assert projected_gradient(res.x, g, lo, hi) < KKT_ATOL


def test_already_optimal_start():
    res = minimize(_rosenbrock, [1.0, 1.0])
    assert res.status == Status.CONVERGED_PGTOL
    assert res.n_iter == 0 and res.n_fev == 1
    assert res.initial_fun == res.fun == 0.0


def test_linear_objective_goes_to_corner():
    # zero curvature: every pair has s'y = 0 and is skipped
    c = np.array([1.0, -2.0, 0.5])
    lo, hi = np.array([-1.0, -1.0, -1.0]), np.array([2.0, 3.0, 1.0])
    res = minimize(lambda x: (c @ x, c.copy()), np.zeros(3), lo, hi)
    assert res.status == Status.CONVERGED_PGTOL
    np.testing.assert_array_equal(res.x, [-1.0, 3.0, -1.0])
    assert res.proj_grad_norm == 0.0


def test_concave_objective_goes_to_vertex():
    # negative curvature: s'y < 0, pairs skipped; the maximiser of |x|^2 is a vertex
    lo, hi = np.array([-1.0, -2.0]), np.array([3.0, 1.0])
    res = minimize(lambda x: (-x @ x, -2.0 * x), [0.5, -0.1], lo, hi)
    assert res.status == Status.CONVERGED_PGTOL
    np.testing.assert_array_equal(res.x, [3.0, -2.0])


def test_history_length_one():
    res = minimize(_rosenbrock, rosen_start(10), m=1)
    assert res.success, res.message
    np.testing.assert_allclose(res.x, np.ones(10), atol=ROSEN_X_ATOL)


# ---------------------------------------------------------------------------------------
# non-finite objective values
# ---------------------------------------------------------------------------------------


def log_barrier(x):
    """``sum(x - 0.2 log x)``, minimum at x = 0.2; NaN (undefined) for x <= 0."""
    if np.any(x <= 0.0):
        return math.nan, np.full_like(x, math.nan)
    return float(np.sum(x - 0.2 * np.log(x))), 1.0 - 0.2 / x


def test_nan_region_is_avoided():
    # the first (unit-length) step from x0 leaves the domain: the line search backs off
    x0 = np.array([0.5, 0.6, 0.45])
    opt, asked = ask_tell(log_barrier, x0)
    assert opt.status.converged, opt.message
    # the Hessian is 0.2 / x^2 = 5 at the minimum: |x - 0.2| <= pgtol / 5 (ftol stop: ~1e-5)
    np.testing.assert_allclose(opt.x, 0.2, atol=1e-5)
    assert np.any(asked <= 0.0)  # the domain was left at least once...
    assert np.all(opt.x > 0.0) and math.isfinite(opt.f)  # ...but never accepted


def test_inf_values_are_rejected():
    def fun(x):
        if x[0] < 0.0:
            return math.inf, np.array([math.inf])
        return float((x[0] - 0.1) ** 2), np.array([2.0 * (x[0] - 0.1)])

    res = minimize(fun, [0.5])
    assert res.success, res.message
    assert res.x[0] == pytest.approx(0.1, abs=1e-6)


def test_nan_at_start():
    res = minimize(lambda x: (math.nan, np.zeros(2)), [1.0, 2.0])
    assert res.status == Status.NONFINITE
    assert res.n_fev == 1
    np.testing.assert_array_equal(res.x, [1.0, 2.0])
    res = minimize(lambda x: (1.0, np.array([0.0, math.nan])), [1.0, 2.0])
    assert res.status == Status.NONFINITE


def test_nan_everywhere_but_start_is_abnormal():
    x0 = np.array([1.0, -1.0])

    def fun(x):
        if np.array_equal(x, x0):
            return 1.0, np.array([1.0, -1.0])
        return math.nan, np.full(2, math.nan)

    res = minimize(fun, x0, max_ls=10)
    assert res.status == Status.ABNORMAL_LINE_SEARCH
    assert not res.success
    np.testing.assert_array_equal(res.x, x0)
    assert res.fun == 1.0
    assert res.n_fev == 1 + 10  # one line search, no memory to discard


def test_wrong_gradient_is_abnormal():
    # the gradient has the wrong sign: no step can decrease f
    res = minimize(lambda x: (float(x @ x), -2.0 * x), [1.0, 2.0])
    assert res.status == Status.ABNORMAL_LINE_SEARCH
    np.testing.assert_array_equal(res.x, [1.0, 2.0])


# ---------------------------------------------------------------------------------------
# the C driver, the ask/tell class and threads agree
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("bounds", [(None, None), (-2.0, 0.8), (0.0, np.inf)])
def test_ask_tell_matches_c_driver(bounds):
    rng = np.random.default_rng(11)
    x0s = rng.uniform(-1.5, 1.5, size=(4, 30))
    batch = _minimize_rosenbrock_batch(x0s, *bounds)
    for k, x0 in enumerate(x0s):
        res = minimize(_rosenbrock, x0, *bounds)
        # same state machine, same objective code: bit-identical runs
        np.testing.assert_array_equal(res.x, batch["x"][k])
        assert res.fun == batch["f"][k]
        assert res.status == batch["status"][k]
        assert res.n_iter == batch["n_iter"][k]
        assert res.n_fev == batch["n_fev"][k]
        assert res.proj_grad_norm == batch["proj_grad_norm"][k]


def test_parallel_batch_matches_serial():
    rng = np.random.default_rng(5)
    x0s = rng.uniform(-1.5, 1.5, size=(16, 200))
    one = _minimize_rosenbrock_batch(x0s, -2.0, 2.0, num_threads=1, max_iter=300)
    two = _minimize_rosenbrock_batch(x0s, -2.0, 2.0, num_threads=2, max_iter=300)
    for key in ("x", "f", "status", "n_iter", "n_fev"):
        np.testing.assert_array_equal(one[key], two[key])


def test_batch_200_parameters_converges():
    rng = np.random.default_rng(8)
    x0s = rng.uniform(0.0, 1.5, size=(4, 200))
    out = _minimize_rosenbrock_batch(x0s, 0.0, 2.0)
    assert np.all(
        (out["status"] == Status.CONVERGED_PGTOL) | (out["status"] == Status.CONVERGED_FTOL)
    )
    assert np.all(out["proj_grad_norm"] < KKT_ATOL)


# ---------------------------------------------------------------------------------------
# limits, statuses, the ask/tell protocol
# ---------------------------------------------------------------------------------------


def test_max_iter():
    res = minimize(_rosenbrock, rosen_start(10), max_iter=5)
    assert res.status == Status.MAX_ITER
    assert res.n_iter == 5
    assert res.fun < res.initial_fun
    res0 = minimize(_rosenbrock, rosen_start(10), max_iter=0)
    assert res0.status == Status.MAX_ITER and res0.n_fev == 1


def test_max_fev():
    res = minimize(_rosenbrock, rosen_start(10), max_fev=7)
    assert res.status == Status.MAX_FEV
    assert res.n_fev == 7
    assert res.fun == _rosenbrock(res.x)[0]  # x is an evaluated point
    assert res.fun < res.initial_fun


def test_iterates_decrease_monotonically():
    opt = LBFGSB(rosen_start(10))
    x = opt.ask()
    fs = []
    while True:
        status = opt.tell(*_rosenbrock(x))
        fs.append(opt.f)  # objective at the current iterate
        if status.is_terminal:
            break
        x = opt.ask()
    assert np.all(np.diff(fs) <= 0.0)
    assert len(set(fs)) == opt.n_iter + 1  # each accepted step decreases f strictly


def test_status_messages_and_flags():
    for s in Status:
        assert isinstance(s.message, str) and s.message
        assert s.is_terminal == (s not in (Status.EVALUATE, Status.NEW_ITERATION))
    assert Status.CONVERGED_PGTOL.converged and Status.CONVERGED_FTOL.converged
    assert not Status.MAX_ITER.converged


def test_result_object():
    res = minimize(_rosenbrock, [-1.2, 1.0])
    assert isinstance(res, MinimizeResult)
    assert res.message == res.status.message
    assert "CONVERGED" in repr(res)
    np.testing.assert_allclose(res.jac, _rosenbrock(res.x)[1])
    assert res.initial_fun == _rosenbrock(np.array([-1.2, 1.0]))[0]


def test_ask_tell_protocol_errors():
    opt = LBFGSB([0.0, 0.0])
    assert opt.status == Status.EVALUATE
    assert math.isnan(opt.f)
    with pytest.raises(InvalidParameters):
        opt.tell(1.0, np.zeros(3))
    with pytest.raises(InvalidParameters):
        opt.tell("abc", np.zeros(2))
    assert opt.tell(0.0, np.zeros(2)) == Status.CONVERGED_PGTOL
    with pytest.raises(FitError):
        opt.ask()
    with pytest.raises(FitError):
        opt.tell(0.0, np.zeros(2))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (([0.0, 0.0], [0.0, 0.0, 0.0]), {}),  # shape mismatch
        (([0.0, 0.0], None, [1.0]), {}),
        (([0.0, 0.0], [1.0, 0.0], [0.0, 0.0]), {}),  # lower > upper
        (([0.0, 0.0], [np.nan, 0.0]), {}),
        (([0.0, 0.0], np.inf), {}),
        (([np.nan, 0.0],), {}),
        (([],), {}),
        (([[0.0, 1.0]],), {}),
        (([0.0],), {"m": 0}),
        (([0.0],), {"max_fev": 0}),
        (([0.0],), {"max_iter": -1}),
        (([0.0],), {"pgtol": -1.0}),
        (([0.0],), {"ftol": math.nan}),
        (([0.0],), {"m": 2.5}),
    ],
)
def test_invalid_input(args, kwargs):
    with pytest.raises(InvalidParameters):
        LBFGSB(*args, **kwargs)


def test_invalid_parameters_is_value_error():
    with pytest.raises(ValueError):
        minimize(_rosenbrock, [0.0, 0.0], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(InvalidParameters, match="unknown"):
        _minimize_rosenbrock_batch(np.zeros((1, 2)), bogus=1)
