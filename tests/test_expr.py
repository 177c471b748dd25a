"""The expression language (nextstat.ntuple.expr) against numpy written by hand.

Three layers: a table of expressions with the numpy computation each must equal;
hypothesis-generated expression trees rendered to text and evaluated both by the
compiler and by a direct numpy interpretation of the same tree; malformed text with
the position the error must name.
"""

from __future__ import annotations

import math

import awkward as ak
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nextstat.errors import ExpressionError
from nextstat.ntuple.expr import FUNCTIONS, Expression, compile_expr, eval_expr

RNG = np.random.default_rng(7)
N = 257
COLS = {
    "a": RNG.normal(0.0, 3.0, N),
    "b": RNG.uniform(0.5, 4.0, N),
    "c": RNG.normal(1.0, 1.0, N),
    "njet": RNG.integers(0, 8, N).astype(np.int32),
    "flag": RNG.integers(0, 2, N).astype(np.bool_),
    "el.pt": RNG.uniform(0, 100, N),
}
A, B, C, NJ, FL = COLS["a"], COLS["b"], COLS["c"], COLS["njet"], COLS["flag"]
NJF = NJ.astype(np.float64)

#: Exact agreement is expected (the same ufuncs in the same order); a few table rows
#: combine ufuncs differently from the reference and get this relative tolerance.
REL_TOL = 1e-13

TABLE = [
    ("a + b * c", A + B * C),
    ("(a + b) * c", (A + B) * C),
    ("a - b - c", (A - B) - C),
    ("a / b / c", (A / B) / C),
    ("2 ** 3 ** 2", np.full(N, 2.0 ** (3.0**2))),
    ("-b ** 2", -(B**2)),
    ("b ** -1", B**-1.0),
    ("pow(b, c)", np.power(B, C)),
    ("a % 2", np.fmod(A, 2.0)),
    ("njet / 2", NJF / 2.0),
    ("njet * 1000000 * 1000000", NJF * 1e12),
    ("njet >= 4 && b > 2", (NJ >= 4) & (B > 2)),
    ("njet >= 4 and b > 2", (NJ >= 4) & (B > 2)),
    ("njet < 2 || c > 1 && a > 0", (NJ < 2) | ((C > 1) & (A > 0))),
    ("njet < 2 or c > 1", (NJ < 2) | (C > 1)),
    ("!flag", ~FL),
    ("not flag", ~FL),
    ("not a == b", ~(A == B)),
    ("!njet", NJ == 0),
    ("flag + flag", FL.astype(float) * 2),
    ("(a > 0) * b", (A > 0) * B),
    ("a != a", np.zeros(N, dtype=bool)),
    ("njet == 3", NJ == 3),
    ("a > 0 ? b : c", np.where(A > 0, B, C)),
    ("a > 0 ? b : c > 1 ? 1 : 0", np.where(A > 0, B, np.where(C > 1, 1.0, 0.0))),
    ("njet ? a : 0", np.where(NJ != 0, A, 0.0)),
    ("abs(a)", np.abs(A)),
    ("fabs(a) + TMath::Abs(a)", 2 * np.abs(A)),
    ("sqrt(b)", np.sqrt(B)),
    ("exp(c) + log(b) + log10(b)", np.exp(C) + np.log(B) + np.log10(B)),
    ("min(a, c) + max(a, c)", np.fmin(A, C) + np.fmax(A, C)),
    ("sin(a) * cos(a) / tan(b)", np.sin(A) * np.cos(A) / np.tan(B)),
    ("atan2(a, c)", np.arctan2(A, C)),
    ("TMath::ATan2(a, c)", np.arctan2(A, C)),
    ("floor(a) + ceil(a)", np.floor(A) + np.ceil(A)),
    ("TMath::Power(b, 2)", B**2),
    ("2 * pi * b", 2 * math.pi * B),
    ("TMath::Pi() * b", math.pi * B),
    ("1e3 * b + .5 + 2.", 1e3 * B + 0.5 + 2.0),
    ("el.pt / 1e3", COLS["el.pt"] / 1e3),
    ("true && a > 0", A > 0),
    ("a >\n 0 &&\n\tb > 1", (A > 0) & (B > 1)),
]


@pytest.mark.parametrize(("text", "expected"), TABLE, ids=[t for t, _ in TABLE])
def test_table(text, expected):
    got = Expression(text)(COLS)
    assert got.shape == (N,)
    if expected.dtype == np.bool_:
        assert got.dtype == np.bool_
        np.testing.assert_array_equal(got, expected)
    else:
        np.testing.assert_allclose(got, expected, rtol=REL_TOL, atol=0)


def test_branches_in_order_of_first_use():
    e = compile_expr("b > 1 && a + b * c > njet[0] ? sqrt(a) : TMath::Abs(z)")
    assert e.branches == ("b", "a", "c", "njet", "z")
    assert e.array_branches == ("njet",)
    assert Expression("2 * pi").branches == ()


def test_constant_expression_broadcasts():
    e = Expression("0.5 * 4")
    assert e.is_constant
    np.testing.assert_array_equal(e({"a": A}), np.full(N, 2.0))
    np.testing.assert_array_equal(e({}, n=3), np.full(3, 2.0))
    got = Expression("1 > 2")({"a": A})
    assert got.dtype == np.bool_ and not got.any()


def test_eval_expr_convenience():
    np.testing.assert_array_equal(eval_expr("a * 2", COLS), A * 2)


def test_fixed_size_array_indexing_and_out_of_range():
    x = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(Expression("x[2] - x[0]")({"x": x}), np.full(4, 2.0))
    out = Expression("x[3]")({"x": x})
    assert np.isnan(out).all()
    # A comparison with the missing element is false: a selection drops the event.
    assert not Expression("x[3] > -1e300")({"x": x}).any()


def test_jagged_indexing_pads_with_nan():
    jets = ak.Array([[50.0, 20.0], [], [30.0], [10.0, 5.0, 1.0]])
    got = Expression("jet_pt[1]")({"jet_pt": jets})
    np.testing.assert_array_equal(got, [20.0, np.nan, np.nan, 5.0])
    n = np.array([2, 0, 1, 3])
    got = Expression("n > 1 ? jet_pt[1] : 0")({"jet_pt": jets, "n": n})
    np.testing.assert_array_equal(got, [20.0, 0.0, 0.0, 5.0])
    ints = ak.Array([[1, 2], [3]])
    np.testing.assert_array_equal(Expression("v[0] + v[1]")({"v": ints}), [3.0, np.nan])


def test_array_branch_misuse():
    with pytest.raises(ExpressionError, match="is an array; index it"):
        Expression("x + 1")({"x": np.zeros((3, 2))})
    with pytest.raises(ExpressionError, match="is an array"):
        Expression("x + 1")({"x": ak.Array([[1.0], []])})
    with pytest.raises(ExpressionError, match="is a scalar and cannot be indexed"):
        Expression("x[0]")({"x": np.zeros(3)})
    with pytest.raises(ExpressionError, match="unknown branch 'y'") as info:
        Expression("x +\n   y")({"x": np.zeros(3)})
    assert (info.value.line, info.value.column) == (2, 4)


def test_domain_errors_are_silent_nan_and_inf(recwarn):
    got = Expression("sqrt(a) + log(a) + 1 / (a - a)")({"a": np.array([-1.0, 0.0, 4.0])})
    assert np.isnan(got[0]) and np.isnan(got[1]) and np.isposinf(got[2])
    assert np.isinf(Expression("1 / a")({"a": np.array([0.0])}))[0]
    assert not recwarn.list


def test_function_table_is_consistent():
    for name, (arity, fn) in FUNCTIONS.items():
        args = ", ".join(["b"] * arity)
        got = Expression(f"{name}({args})")(COLS)
        with np.errstate(all="ignore"):
            np.testing.assert_array_equal(got, fn(*([B] * arity)), err_msg=name)


# ---------------------------------------------------------------------------
# Malformed expressions and their positions
# ---------------------------------------------------------------------------

BAD = [
    ("a +", 1, 4, "unexpected end"),
    ("(a + b", 1, 7, "expected '\\)'"),
    ("a + b)", 1, 6, "unexpected '\\)'"),
    ("a = b", 1, 3, "did you mean '=='"),
    ("a & b", 1, 3, "did you mean '&&'"),
    ("a | b", 1, 3, "did you mean '||'"),
    ("a ^ 2", 1, 3, "did you mean '\\*\\*'"),
    ("a $ 2", 1, 3, "unexpected character '\\$'"),
    ("sqr(a)", 1, 1, "unknown function 'sqr' \\(did you mean 'sqrt'\\?\\)"),
    ("pow(a)", 1, 1, "pow\\(\\) takes 2 arguments, got 1"),
    ("abs(a, b)", 1, 1, "takes 1 argument, got 2"),
    ("x[-1]", 1, 3, "non-negative integer literal"),
    ("x[i]", 1, 3, "non-negative integer literal"),
    ("x[0", 1, 4, "expected '\\]'"),
    ("abs(x)[0]", 1, 7, "only a branch name can be indexed"),
    ("a ? b", 1, 6, "expected ':'"),
    ("a > 1 &&\n  && b", 2, 3, "unexpected '&&'"),
    ("3pt", 1, 1, "malformed number"),
    ("", 1, 1, "empty expression"),
    ("   ", 1, 1, "empty expression"),
    ("a b", 1, 3, "unexpected 'b'"),
    ("Foo::bar + 1", 1, 1, "unknown name 'Foo::bar'"),
    ("f(a,)", 1, 5, "unexpected '\\)'"),
]


@pytest.mark.parametrize(("text", "line", "column", "message"), BAD, ids=[b[0] for b in BAD])
def test_malformed_expressions_name_the_position(text, line, column, message):
    with pytest.raises(ExpressionError, match=message) as info:
        Expression(text)
    err = info.value
    assert (err.line, err.column) == (line, column)
    assert err.expression == text
    assert f"line {line}, column {column}" in str(err)


def test_non_string_is_an_expression_error():
    with pytest.raises(ExpressionError, match="expected a string"):
        Expression(3)


def test_never_evaluates_python():
    # Python syntax that is not part of the grammar must be rejected, not executed.
    for text in ["__import__('os')", "a.__class__", "lambda: 1", "[1, 2]", "'s'"]:
        with pytest.raises(ExpressionError):
            Expression(text)(COLS)


# ---------------------------------------------------------------------------
# Hypothesis: random trees from a small grammar, rendered and interpreted
# ---------------------------------------------------------------------------

LEAVES = ["a", "b", "c", "njet"]
BIN_ARITH = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.true_divide}
BIN_CMP = {"<": np.less, "<=": np.less_equal, ">": np.greater, ">=": np.greater_equal,
           "==": np.equal, "!=": np.not_equal}  # fmt: skip
UNARY_FN = {"abs": np.abs, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "sin": np.sin,
            "floor": np.floor}  # fmt: skip
BIN_FN = {"min": np.fmin, "max": np.fmax, "pow": np.power, "atan2": np.arctan2}


def _num_tree():
    leaf = st.one_of(
        st.sampled_from(LEAVES).map(lambda n: ("var", n)),
        st.floats(-5, 5, allow_nan=False).map(lambda v: ("num", round(v, 3))),
    )

    def extend(children):
        return st.one_of(
            st.tuples(st.just("bin"), st.sampled_from(sorted(BIN_ARITH)), children, children),
            st.tuples(st.just("neg"), children),
            st.tuples(st.just("fn1"), st.sampled_from(sorted(UNARY_FN)), children),
            st.tuples(st.just("fn2"), st.sampled_from(sorted(BIN_FN)), children, children),
            st.tuples(
                st.just("tern"),
                st.tuples(st.just("cmp"), st.sampled_from(sorted(BIN_CMP)), children, children),
                children,
                children,
            ),
        )

    return st.recursive(leaf, extend, max_leaves=8)


def _cond(num):
    cmp = st.tuples(st.just("cmp"), st.sampled_from(sorted(BIN_CMP)), num, num)
    return st.recursive(
        cmp,
        lambda c: st.one_of(
            st.tuples(st.sampled_from(["&&", "||", "and", "or"]), c, c),
            st.tuples(st.sampled_from(["!", "not"]), c),
        ),
        max_leaves=3,
    )


def render(t) -> str:
    kind = t[0]
    if kind == "var":
        return t[1]
    if kind == "num":
        return repr(float(t[1]))
    if kind == "bin" or kind == "cmp":
        return f"({render(t[2])} {t[1]} {render(t[3])})"
    if kind == "neg":
        return f"(-{render(t[1])})"
    if kind == "fn1":
        return f"{t[1]}({render(t[2])})"
    if kind == "fn2":
        return f"{t[1]}({render(t[2])}, {render(t[3])})"
    if kind == "tern":
        return f"({render(t[1])} ? {render(t[2])} : {render(t[3])})"
    if kind in ("&&", "||", "and", "or"):
        return f"({render(t[1])} {kind} {render(t[2])})"
    if kind in ("!", "not"):
        return f"({kind} {render(t[1])})"
    raise AssertionError(kind)


def interpret(t):
    """Numpy meaning of a tree, written independently of the compiler."""
    kind = t[0]
    if kind == "var":
        return COLS[t[1]].astype(np.float64)
    if kind == "num":
        return np.full(N, float(t[1]))
    if kind == "bin":
        return BIN_ARITH[t[1]](interpret(t[2]), interpret(t[3]))
    if kind == "cmp":
        return BIN_CMP[t[1]](interpret(t[2]), interpret(t[3]))
    if kind == "neg":
        return -interpret(t[1])
    if kind == "fn1":
        return UNARY_FN[t[1]](interpret(t[2]))
    if kind == "fn2":
        return BIN_FN[t[1]](interpret(t[2]), interpret(t[3]))
    if kind == "tern":
        return np.where(interpret(t[1]), interpret(t[2]), interpret(t[3]))
    if kind in ("&&", "and"):
        return interpret(t[1]) & interpret(t[2])
    if kind in ("||", "or"):
        return interpret(t[1]) | interpret(t[2])
    if kind in ("!", "not"):
        return ~interpret(t[1])
    raise AssertionError(kind)


NUM_TREES = _num_tree()
COND_TREES = _cond(NUM_TREES)


@given(NUM_TREES)
def test_random_numeric_expressions_match_numpy(tree):
    text = render(tree)
    with np.errstate(all="ignore"):
        expected = interpret(tree)
    got = Expression(text)(COLS)
    # Constant folding evaluates constant sub-trees with numpy float64 scalars; same
    # ufuncs, so the results agree to the last bit (nan where both are nan).
    np.testing.assert_array_equal(got, expected, err_msg=text)


@given(COND_TREES)
def test_random_conditions_match_numpy(tree):
    text = render(tree)
    with np.errstate(all="ignore"):
        expected = interpret(tree)
    got = Expression(text)(COLS)
    assert got.dtype == np.bool_
    np.testing.assert_array_equal(got, expected, err_msg=text)
