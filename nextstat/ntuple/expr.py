"""A small expression language for selections, weights and variables.

An expression such as ``njet >= 4 && abs(eta[0]) < 2.5 ? weight_mc * sf : 0`` is
parsed once into a tree and compiled into nested Python closures over numpy
ufuncs; evaluating it on a chunk of a TTree costs one numpy operation per node
on whole columns. No user text is ever passed to Python's ``eval``.

Grammar (lowest precedence first; ``**`` and ``?:`` are right-associative)::

    expr        := or_expr [ "?" expr ":" expr ]
    or_expr     := and_expr { ("||" | "or") and_expr }
    and_expr    := not_expr { ("&&" | "and") not_expr }
    not_expr    := "not" not_expr | equality
    equality    := relational { ("==" | "!=") relational }
    relational  := additive { ("<" | "<=" | ">" | ">=") additive }
    additive    := term { ("+" | "-") term }
    term        := unary { ("*" | "/" | "%") unary }
    unary       := ("-" | "+" | "!") unary | power
    power       := postfix [ "**" unary ]
    postfix     := primary { "[" INTEGER "]" }
    primary     := NUMBER | "true" | "false" | NAME | NAME "(" [ expr { "," expr } ] ")"
                 | "(" expr ")"

Semantics (the TTreeFormula / C conventions, on float64):

* Arithmetic is done in float64 (``7 / 2`` is 3.5); ``%`` is C's ``fmod`` (the sign
  of the dividend); division by zero gives ``inf`` / ``nan`` without a warning, as do
  ``sqrt`` and ``log`` outside their domain.
* Comparisons give booleans; booleans used in arithmetic count as 0 / 1. A number
  used as a condition (``&&``, ``||``, ``!``, ``?:``) is true when it is non-zero
  (NaN is true, as in C).
* ``c ? a : b`` evaluates both branches on the whole column and picks per event.
* ``x[i]`` takes element ``i`` (a non-negative integer literal) of a fixed-size or
  jagged array branch. An event whose array has no element ``i`` gets ``nan``: a
  comparison with it is false (so a selection drops the event) and a variable that
  is ``nan`` is not filled into any bin; as a weight it would poison the bin, so
  guard it (``n_jet > 2 ? jet_pt[2] : 0``).
* Names: branch names (letters, digits, ``_`` and ``.``), function names (below),
  ``TMath::`` spellings of the common functions, and the constants ``true`` /
  ``false`` / ``pi`` (``TMath::Pi()``).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nextstat.errors import ExpressionError

__all__ = ["Expression", "compile_expr", "eval_expr", "FUNCTIONS"]

# ---------------------------------------------------------------------------
# Tokens
# ---------------------------------------------------------------------------

_PUNCT = (
    "**", "&&", "||", "==", "!=", "<=", ">=",
    "+", "-", "*", "/", "%", "<", ">", "!", "?", ":", "(", ")", "[", "]", ",",
)  # fmt: skip
_WORD_OPS = {"and": "&&", "or": "||", "not": "not"}


@dataclass(frozen=True)
class _Tok:
    kind: str  # "num", "name", "op", "end"
    text: str
    pos: int  # 0-based offset into the expression
    value: float = 0.0


def _line_col(text: str, pos: int) -> tuple[int, int]:
    line = text.count("\n", 0, pos) + 1
    col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    return line, col


def _error(text: str, pos: int, message: str) -> ExpressionError:
    line, col = _line_col(text, pos)
    return ExpressionError(message, text, line, col)


def _scan_number(text: str, i: int) -> int:
    """End offset of the number literal starting at ``i`` (digits, '.', exponent)."""
    n = len(text)
    j = i
    while j < n and text[j].isdigit():
        j += 1
    if j < n and text[j] == ".":
        j += 1
        while j < n and text[j].isdigit():
            j += 1
    if j < n and text[j] in "eE":
        k = j + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k].isdigit():
            while k < n and text[k].isdigit():
                k += 1
            j = k
    return j


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit()):
            j = _scan_number(text, i)
            if j < n and (text[j].isalnum() or text[j] == "_"):
                raise _error(text, i, f"malformed number {text[i : j + 1]!r}")
            toks.append(_Tok("num", text[i:j], i, float(text[i:j])))
            i = j
            continue
        if c.isalpha() or c == "_":
            j = i + 1
            while j < n:
                if text[j].isalnum() or text[j] in "_.":
                    j += 1
                elif text.startswith("::", j) and j + 2 < n and (text[j + 2].isalpha()):
                    j += 2
                else:
                    break
            word = text[i:j]
            if word in _WORD_OPS:
                toks.append(_Tok("op", _WORD_OPS[word], i))
            else:
                toks.append(_Tok("name", word, i))
            i = j
            continue
        for p in _PUNCT:
            if text.startswith(p, i):
                toks.append(_Tok("op", p, i))
                i += len(p)
                break
        else:
            hint = {"=": "'==' for comparison", "&": "'&&'", "|": "'||'", "^": "'**' or pow()"}
            extra = f" (did you mean {hint[c]}?)" if c in hint else ""
            raise _error(text, i, f"unexpected character {c!r}{extra}")
    toks.append(_Tok("end", "", n))
    return toks


# ---------------------------------------------------------------------------
# Functions
# ---------------------------------------------------------------------------


#: name -> (number of arguments, numpy implementation). min / max ignore a NaN argument
#: (``np.fmin`` / ``np.fmax``), like C's ``fmin`` / ``fmax``.
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "abs": (1, np.abs),
    "fabs": (1, np.abs),
    "sqrt": (1, np.sqrt),
    "exp": (1, np.exp),
    "log": (1, np.log),
    "log10": (1, np.log10),
    "log2": (1, np.log2),
    "pow": (2, np.power),
    "min": (2, np.fmin),
    "max": (2, np.fmax),
    "sin": (1, np.sin),
    "cos": (1, np.cos),
    "tan": (1, np.tan),
    "asin": (1, np.arcsin),
    "acos": (1, np.arccos),
    "atan": (1, np.arctan),
    "atan2": (2, np.arctan2),
    "sinh": (1, np.sinh),
    "cosh": (1, np.cosh),
    "tanh": (1, np.tanh),
    "floor": (1, np.floor),
    "ceil": (1, np.ceil),
    "round": (1, np.round),
    "hypot": (2, np.hypot),
}
_TMATH = {
    "Abs": "abs", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Log10": "log10",
    "Log2": "log2", "Power": "pow", "Min": "min", "Max": "max", "Sin": "sin",
    "Cos": "cos", "Tan": "tan", "ASin": "asin", "ACos": "acos", "ATan": "atan",
    "ATan2": "atan2", "SinH": "sinh", "CosH": "cosh", "TanH": "tanh",
    "Floor": "floor", "Ceil": "ceil", "Hypot": "hypot",
}  # fmt: skip
for _k, _v in _TMATH.items():
    FUNCTIONS[f"TMath::{_k}"] = FUNCTIONS[_v]
FUNCTIONS["std::abs"] = FUNCTIONS["abs"]
_CONSTANTS = {"true": 1.0, "false": 0.0, "pi": math.pi}
_ZERO_ARG = {"TMath::Pi": math.pi, "TMath::E": math.e}

# ---------------------------------------------------------------------------
# AST: each node compiles itself into a closure env -> value
# ---------------------------------------------------------------------------

Env = Mapping[str, Any]
Fn = Callable[[Env], Any]


def _num(x: Any) -> Any:
    """Booleans and integers as float64 (C arithmetic on doubles, no int overflow)."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "biu":
        return x.astype(np.float64)
    if isinstance(x, (bool, np.bool_)):
        return float(x)
    return x


def _truth(x: Any) -> Any:
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.bool_ else x != 0
    return bool(x != 0)


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "+": lambda a, b: _num(a) + _num(b),
    "-": lambda a, b: _num(a) - _num(b),
    "*": lambda a, b: _num(a) * _num(b),
    "/": lambda a, b: np.true_divide(_num(a), _num(b)),
    "%": lambda a, b: np.fmod(_num(a), _num(b)),
    "**": lambda a, b: np.power(_num(a), _num(b)),
    "==": lambda a, b: np.equal(_num(a), _num(b)),
    "!=": lambda a, b: np.not_equal(_num(a), _num(b)),
    "<": lambda a, b: np.less(a, b),
    "<=": lambda a, b: np.less_equal(a, b),
    ">": lambda a, b: np.greater(a, b),
    ">=": lambda a, b: np.greater_equal(a, b),
    "&&": lambda a, b: np.logical_and(_truth(a), _truth(b)),
    "||": lambda a, b: np.logical_or(_truth(a), _truth(b)),
}


class _Node:
    pos: int

    def compile(self) -> Fn:  # pragma: no cover - abstract
        raise NotImplementedError

    def constant(self) -> Any:
        """The value when the node does not depend on any branch, else ``None``."""
        return None


@dataclass
class _Const(_Node):
    value: float
    pos: int

    def compile(self) -> Fn:
        v = self.value
        return lambda env: v

    def constant(self) -> Any:
        return self.value


@dataclass
class _Name(_Node):
    name: str
    pos: int
    text: str

    def compile(self) -> Fn:
        name, text, pos = self.name, self.text, self.pos

        def get(env: Env) -> Any:
            col = _column(env, name, text, pos)
            if _is_flat(col):
                return col
            return _as_flat(col, name, text, pos)

        return get


def _column(env: Env, name: str, text: str, pos: int) -> Any:
    try:
        return env[name]
    except KeyError:
        raise _error(text, pos, f"unknown branch {name!r}") from None


def _is_flat(col: Any) -> bool:
    """A plain 1-D numpy column (one number per event)."""
    return isinstance(col, np.ndarray) and col.ndim == 1 and col.dtype != object


def _as_flat(col: Any, name: str, text: str, pos: int) -> np.ndarray:
    bad = _error(text, pos, f"branch {name!r} is an array; index it, e.g. {name}[0]")
    if isinstance(col, np.ndarray) or getattr(col, "ndim", 1) != 1:
        raise bad
    try:
        arr = np.asarray(col)
    except ValueError:
        raise bad from None
    if arr.ndim != 1 or arr.dtype == object:
        raise bad
    return arr


def _take(col: Any, index: int) -> np.ndarray:
    """Element ``index`` of each event's array; ``nan`` where the array is too short."""
    if isinstance(col, np.ndarray) and col.ndim >= 2:
        if index < col.shape[1]:
            return col[:, index]
        return np.full(col.shape[0], np.nan)
    import awkward as ak  # only jagged columns reach this point

    arr = ak.pad_none(ak.Array(col), index + 1, axis=1, clip=True)[:, index]
    return ak.to_numpy(ak.fill_none(ak.values_astype(arr, np.float64), np.nan))


@dataclass
class _Index(_Node):
    name: str
    index: int
    pos: int
    text: str

    def compile(self) -> Fn:
        name, index, text, pos = self.name, self.index, self.text, self.pos

        def get(env: Env) -> Any:
            col = _column(env, name, text, pos)
            if _is_flat(col):
                raise _error(text, pos, f"branch {name!r} is a scalar and cannot be indexed")
            return _take(col, index)

        return get


@dataclass
class _Unary(_Node):
    op: str
    arg: _Node
    pos: int

    def _fn(self) -> Callable[[Any], Any]:
        if self.op == "-":
            return lambda a: -_num(a)
        if self.op == "+":
            return _num
        return lambda a: np.logical_not(_truth(a))

    def compile(self) -> Fn:
        f, a = self._fn(), self.arg.compile()
        return lambda env: f(a(env))

    def constant(self) -> Any:
        c = self.arg.constant()
        return None if c is None else self._fn()(c)


@dataclass
class _Binary(_Node):
    op: str
    left: _Node
    right: _Node
    pos: int

    def compile(self) -> Fn:
        f, a, b = _BINARY[self.op], self.left.compile(), self.right.compile()
        return lambda env: f(a(env), b(env))

    def constant(self) -> Any:
        a, b = self.left.constant(), self.right.constant()
        if a is None or b is None:
            return None
        with np.errstate(all="ignore"):
            return _BINARY[self.op](np.float64(a), np.float64(b))


@dataclass
class _Ternary(_Node):
    cond: _Node
    then: _Node
    other: _Node
    pos: int

    def compile(self) -> Fn:
        c, a, b = self.cond.compile(), self.then.compile(), self.other.compile()
        return lambda env: np.where(_truth(c(env)), _num(a(env)), _num(b(env)))

    def constant(self) -> Any:
        c = self.cond.constant()
        a, b = self.then.constant(), self.other.constant()
        if c is None or a is None or b is None:
            return None
        return _num(a) if _truth(c) else _num(b)


@dataclass
class _Call(_Node):
    name: str
    args: list[_Node]
    pos: int

    def compile(self) -> Fn:
        fn = FUNCTIONS[self.name][1]
        parts = [a.compile() for a in self.args]
        if len(parts) == 1:
            (p,) = parts
            return lambda env: fn(_num(p(env)))
        return lambda env: fn(*[_num(p(env)) for p in parts])

    def constant(self) -> Any:
        vals = [a.constant() for a in self.args]
        if any(v is None for v in vals):
            return None
        with np.errstate(all="ignore"):
            return FUNCTIONS[self.name][1](*[np.float64(_num(v)) for v in vals])


# ---------------------------------------------------------------------------
# Parser (recursive descent)
# ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0
        self.branches: dict[str, None] = {}
        self.array_branches: dict[str, None] = {}

    # token helpers
    @property
    def tok(self) -> _Tok:
        return self.toks[self.i]

    def _at(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.text in ops

    def _advance(self) -> _Tok:
        t = self.toks[self.i]
        self.i += 1
        return t

    def _fail(self, tok: _Tok, message: str | None = None) -> ExpressionError:
        if message is None:
            message = (
                "unexpected end of expression"
                if tok.kind == "end"
                else (f"unexpected {tok.text!r}")
            )
        return _error(self.text, tok.pos, message)

    def _expect(self, op: str, opener: _Tok | None = None) -> _Tok:
        if not self._at(op):
            what = "end of expression" if self.tok.kind == "end" else repr(self.tok.text)
            msg = f"expected {op!r}, found {what}"
            if opener is not None:
                line, col = _line_col(self.text, opener.pos)
                msg += f" (to close {opener.text!r} at line {line}, column {col})"
            raise self._fail(self.tok, msg)
        return self._advance()

    # grammar
    def parse(self) -> _Node:
        if self.tok.kind == "end":
            raise _error(self.text, 0, "empty expression")
        node = self.expr()
        if self.tok.kind != "end":
            raise self._fail(self.tok)
        return node

    def expr(self) -> _Node:
        cond = self.or_expr()
        if self._at("?"):
            q = self._advance()
            then = self.expr()
            self._expect(":", q)
            other = self.expr()
            return _Ternary(cond, then, other, q.pos)
        return cond

    def _left_assoc(self, sub: Callable[[], _Node], ops: tuple[str, ...]) -> _Node:
        node = sub()
        while self._at(*ops):
            t = self._advance()
            node = _Binary(t.text, node, sub(), t.pos)
        return node

    def or_expr(self) -> _Node:
        return self._left_assoc(self.and_expr, ("||",))

    def and_expr(self) -> _Node:
        return self._left_assoc(self.not_expr, ("&&",))

    def not_expr(self) -> _Node:
        if self._at("not"):
            t = self._advance()
            return _Unary("!", self.not_expr(), t.pos)
        return self.equality()

    def equality(self) -> _Node:
        return self._left_assoc(self.relational, ("==", "!="))

    def relational(self) -> _Node:
        return self._left_assoc(self.additive, ("<", "<=", ">", ">="))

    def additive(self) -> _Node:
        return self._left_assoc(self.term, ("+", "-"))

    def term(self) -> _Node:
        return self._left_assoc(self.unary, ("*", "/", "%"))

    def unary(self) -> _Node:
        if self._at("-", "+", "!"):
            t = self._advance()
            return _Unary(t.text, self.unary(), t.pos)
        return self.power()

    def power(self) -> _Node:
        base = self.postfix()
        if self._at("**"):
            t = self._advance()
            return _Binary("**", base, self.unary(), t.pos)
        return base

    def postfix(self) -> _Node:
        node = self.primary()
        while self._at("["):
            open_tok = self._advance()
            if not isinstance(node, _Name):
                raise self._fail(open_tok, "only a branch name can be indexed")
            t = self.tok
            if t.kind != "num" or not t.text.isdigit():
                raise self._fail(t, "an index must be a non-negative integer literal")
            self._advance()
            self._expect("]", open_tok)
            self.array_branches[node.name] = None
            node = _Index(node.name, int(t.text), node.pos, self.text)
        return node

    def primary(self) -> _Node:
        t = self.tok
        if t.kind == "num":
            self._advance()
            return _Const(t.value, t.pos)
        if t.kind == "name":
            self._advance()
            if self._at("("):
                return self._call(t)
            if t.text in _CONSTANTS:
                return _Const(_CONSTANTS[t.text], t.pos)
            if "::" in t.text:
                raise self._fail(t, f"unknown name {t.text!r}")
            self.branches.setdefault(t.text, None)
            return _Name(t.text, t.pos, self.text)
        if self._at("("):
            open_tok = self._advance()
            node = self.expr()
            self._expect(")", open_tok)
            return node
        raise self._fail(t)

    def _call(self, name: _Tok) -> _Node:
        open_tok = self._advance()
        args: list[_Node] = []
        if not self._at(")"):
            args.append(self.expr())
            while self._at(","):
                self._advance()
                args.append(self.expr())
        self._expect(")", open_tok)
        if name.text in _ZERO_ARG and not args:
            return _Const(_ZERO_ARG[name.text], name.pos)
        if name.text not in FUNCTIONS:
            close = difflib.get_close_matches(name.text, list(FUNCTIONS), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise self._fail(name, f"unknown function {name.text!r}{hint}")
        arity = FUNCTIONS[name.text][0]
        if len(args) != arity:
            raise self._fail(
                name, f"{name.text}() takes {arity} argument{'s' * (arity != 1)}, got {len(args)}"
            )
        return _Call(name.text, args, name.pos)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------


def _fold(node: _Node) -> _Node:
    """Replace constant sub-trees by their value (so ``2 * pi / 3`` costs nothing per chunk)."""
    c = node.constant()
    if c is not None and not isinstance(node, _Const):
        return _Const(c, node.pos)
    for attr in ("arg", "left", "right", "cond", "then", "other"):
        child = getattr(node, attr, None)
        if isinstance(child, _Node):
            setattr(node, attr, _fold(child))
    if isinstance(node, _Call):
        node.args = [_fold(a) for a in node.args]
    return node


class Expression:
    """A compiled selection / weight / variable expression.

    Parameters
    ----------
    text : str
        The expression, in the grammar of :mod:`nextstat.ntuple.expr`.

    Attributes
    ----------
    text : str
        The source text.
    branches : tuple of str
        Branch names the expression reads, in order of first use: load these and
        nothing else.
    array_branches : tuple of str
        The subset of ``branches`` that is indexed (``x[0]``), i.e. array branches.

    Raises
    ------
    ExpressionError
        When the text does not parse, with the 1-based line and column of the
        offending token.

    Examples
    --------
    >>> import numpy as np
    >>> e = Expression("njet >= 4 && pt > 25")
    >>> e.branches
    ('njet', 'pt')
    >>> e({"njet": np.array([3, 4]), "pt": np.array([30.0, 30.0])})
    array([False,  True])
    """

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ExpressionError(f"expected a string, got {type(text).__name__}", repr(text))
        parser = _Parser(text)
        tree = _fold(parser.parse())
        self.text = text
        self.branches: tuple[str, ...] = tuple(parser.branches)
        self.array_branches: tuple[str, ...] = tuple(parser.array_branches)
        self._tree = tree
        self._fn = tree.compile()

    @property
    def is_constant(self) -> bool:
        """Whether the expression reads no branch (e.g. a weight of ``1``)."""
        return isinstance(self._tree, _Const)

    def evaluate(self, columns: Mapping[str, Any], n: int | None = None) -> np.ndarray:
        """Evaluate on whole columns.

        Parameters
        ----------
        columns : mapping of str to array
            Branch name -> column: 1-d numpy arrays for scalar branches, 2-d numpy
            arrays for fixed-size arrays, awkward arrays for jagged ones.
        n : int, optional
            Number of events; needed only when the expression reads no branch (the
            constant is broadcast to this length). Defaults to the length of the
            first column.

        Returns
        -------
        numpy.ndarray
            One value per event (bool for conditions, float64 otherwise).
        """
        with np.errstate(all="ignore"):
            out = self._fn(columns)
        if isinstance(out, np.ndarray) and out.ndim == 1:
            return out
        if n is None:
            n = len(next(iter(columns.values()))) if columns else 1
        return np.full(n, out, dtype=np.bool_ if isinstance(out, (bool, np.bool_)) else None)

    __call__ = evaluate

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"


def compile_expr(text: str) -> Expression:
    """Compile ``text`` once; see :class:`Expression`."""
    return Expression(text)


def eval_expr(text: str, columns: Mapping[str, Any]) -> np.ndarray:
    """Compile and evaluate ``text`` on ``columns`` in one call (convenience)."""
    return Expression(text).evaluate(columns)
