"""Limits on the work a formula can cause, and the evaluation of its constant parts within them.

Every public function of :mod:`symloss.expr` that takes a formula checks it with :func:`check_bounds`
before doing anything else, so that parsing, stabilising, keying, compiling, checking and exporting it
take bounded time and memory. A formula is accepted when

- its tree has at most ``MAX_NODES`` = 2,000 nodes and depth at most ``MAX_DEPTH`` = 100;
- ``exp``, ``expc`` and ``softplus`` are nested at most ``MAX_EXP_NESTING`` = 10 deep on any path;
- every number in it is finite, real and at most ``MAX_CONSTANT`` = 1e6 in magnitude, and exact
  fractions have at most ``MAX_BITS`` = 4,096 bits;
- every constant sub-expression (one without variables), evaluated operation by operation in
  ``MP_PREC``-bit floating point, stays a finite real number of magnitude at most ``FLOAT_MAX``
  (float64's largest, about 1.8e308) at every step. ``exp(exp(exp(100)))`` is refused at
  ``exp(exp(100))`` (about 10^(1.2e43)) instead of being computed.

Anything else raises :class:`FormulaError` naming the limit and the accepted range.
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Callable

import mpmath
import sympy as sp

from symloss.expr._functions import expc, softplus
from symloss.expr._twins import CUSTOM_FUNCTIONS

MAX_NODES = 2000
MAX_DEPTH = 100
MAX_EXP_NESTING = 10
MAX_CONSTANT = 1e6
MAX_BITS = 4096
MAX_FLOAT_BITS = 1024
FLOAT_MAX = sys.float_info.max
MP_PREC = 96
_CHECKED_CACHE = 8192


class FormulaError(ValueError):
    """A formula is not in symloss's grammar, uses a name its slot does not allow, or is outside the
    limits of :mod:`symloss.expr._bounds` (size, depth, constants); the message names the limit."""


def show(node: sp.Basic, limit: int = 80) -> str:
    """A short text form of ``node`` for error messages (never ``format``, which fails on huge Floats)."""
    text = str(node)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _pow(base: mpmath.mpf, exponent: mpmath.mpf) -> mpmath.mpf:
    if base == 0 and exponent < 0:
        raise ValueError("division by zero")
    if base < 0 and not mpmath.isint(exponent):
        raise ValueError("a fractional power of a negative number")
    return mpmath.power(base, exponent)


def _log(x: mpmath.mpf) -> mpmath.mpf:
    if x <= 0:
        raise ValueError("the logarithm of a number <= 0")
    return mpmath.log(x)


def _heaviside(x: mpmath.mpf, at_zero: mpmath.mpf | None = None) -> mpmath.mpf:
    return mpmath.mpf(1) if x > 0 else mpmath.mpf(0) if x < 0 else mpmath.mpf(0.5) if at_zero is None else at_zero


FOLD_OPS: dict[type[sp.Basic], Callable[..., mpmath.mpf]] = {
    sp.Add: lambda *xs: mpmath.fsum(xs),
    sp.Mul: lambda *xs: mpmath.fprod(xs),
    sp.Pow: _pow,
    sp.exp: mpmath.exp,
    sp.log: _log,
    sp.Abs: abs,
    sp.tanh: mpmath.tanh,
    sp.sign: mpmath.sign,
    sp.Max: max,
    sp.Min: min,
    sp.Heaviside: _heaviside,
    **{cls: cls._mp for cls in CUSTOM_FUNCTIONS.values()},
}
"""SymPy operation -> its evaluation on mpmath numbers, used for constant sub-expressions."""

_GROWTH = (sp.exp, expc, softplus)


def _number_value(node: sp.Basic, field: str) -> mpmath.mpf:
    """The value of an atom without variables, after the magnitude and size limits."""
    if isinstance(node, sp.NumberSymbol):
        return mpmath.mpf(node.evalf(30)._mpf_)
    if not isinstance(node, sp.Rational | sp.Float):
        raise FormulaError(f"{field}: the number {show(node)} is not a finite real number; formulas take "
                           "finite real numbers only")
    if isinstance(node, sp.Rational):
        if node.p.bit_length() + node.q.bit_length() > MAX_BITS:
            raise FormulaError(f"{field}: an exact number with more than {MAX_BITS} bits; exact constants "
                               "must stay small (write it as a decimal)")
        value = mpmath.mpf(node.p) / node.q
    else:
        if not mpmath.isfinite(mpmath.mpf(node._mpf_)):
            raise FormulaError(f"{field}: the number {show(node)} is not a finite real number")
        if node._prec > MAX_FLOAT_BITS:
            raise FormulaError(f"{field}: a float with {node._prec} bits of precision; at most {MAX_FLOAT_BITS}")
        value = mpmath.mpf(node._mpf_)
    if abs(value) > MAX_CONSTANT:
        raise FormulaError(
            f"{field}: the number {mpmath.nstr(value, 6)} is outside the accepted range: numbers in a formula "
            f"must lie in [-{MAX_CONSTANT:g}, {MAX_CONSTANT:g}]; rescale the formula (the limit also applies to "
            "numbers SymPy forms, e.g. (1000*u)^3 = 1e9*u^3)"
        )
    return value


def fold_step(op: type[sp.Basic], args: list[mpmath.mpf], node: sp.Basic, field: str) -> mpmath.mpf:
    """Apply ``op`` to constant ``args`` in MP_PREC-bit arithmetic; a FormulaError unless the result is a
    finite real number within float64's range."""
    fn = FOLD_OPS.get(op)
    if fn is None:
        known = sorted(c.__name__ for c in FOLD_OPS)
        raise FormulaError(f"{field}: cannot evaluate the constant {show(node)}: operation {op.__name__!r} is "
                           f"not one symloss evaluates ({known})")
    try:
        with mpmath.workprec(MP_PREC):
            value = fn(*args)
    except (ValueError, ZeroDivisionError, TypeError) as exc:
        raise FormulaError(f"{field}: the constant {show(node)} is not a finite real number ({exc})") from None
    if isinstance(value, mpmath.mpc) or not mpmath.isfinite(value):
        raise FormulaError(f"{field}: the constant {show(node)} is not a finite real number")
    if abs(value) > FLOAT_MAX:
        raise FormulaError(
            f"{field}: the constant {show(node)} is about {mpmath.nstr(value, 3)}, beyond float64's range "
            f"(magnitude at most {FLOAT_MAX:.3g}); constant parts must stay finite at every step"
        )
    return mpmath.mpf(value)


class BoundsWalk:
    """Bottom-up passes over a DAG: tree size, height, exp nesting and constant value of every node.

    The tables persist between calls to :meth:`visit`, so the parser can visit each new node as it is
    built and pay only for the nodes it has not seen.
    """

    def __init__(self, field: str) -> None:
        self.field = field
        self.size: dict[sp.Basic, int] = {}
        self.height: dict[sp.Basic, int] = {}
        self.growth: dict[sp.Basic, int] = {}
        self.value: dict[sp.Basic, mpmath.mpf | None] = {}  # None: depends on a variable

    def leaf(self, node: sp.Basic) -> None:
        self.size[node] = self.height[node] = 1
        self.growth[node] = 0
        if isinstance(node, sp.Symbol):
            self.value[node] = None
        elif node.is_number or isinstance(node, sp.Number):
            self.value[node] = _number_value(node, self.field)
        else:  # a structural atom (e.g. a boolean inside a Piecewise): treated as variable, never folded
            self.value[node] = None

    def combine(self, node: sp.Basic) -> None:
        args = node.args
        size = 1 + sum(self.size[a] for a in args)
        if size > MAX_NODES:
            raise FormulaError(f"{self.field}: expression of more than {MAX_NODES} nodes (MAX_NODES); "
                               "simplify it or split it")
        self.size[node] = size
        self.height[node] = 1 + max(self.height[a] for a in args)
        if self.height[node] > MAX_DEPTH:
            raise _too_deep(self.field)
        self.growth[node] = max(self.growth[a] for a in args) + isinstance(node, _GROWTH)
        if self.growth[node] > MAX_EXP_NESTING:
            raise FormulaError(f"{self.field}: exp/expc/softplus nested {self.growth[node]} deep; at most "
                               f"{MAX_EXP_NESTING} (MAX_EXP_NESTING)")
        values = [self.value[a] for a in args]
        if any(v is None for v in values):
            self.value[node] = None
        else:
            self.value[node] = fold_step(type(node), values, node, self.field)

    def visit(self, expr: sp.Basic) -> None:
        """Check every node of ``expr`` not seen before (iteratively: no recursion limit to hit)."""
        stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
        depth: list[sp.Basic] = []  # the current path, for the depth limit
        while stack:
            node, expanded = stack.pop()
            if expanded:
                depth.pop()
                self.combine(node)
                continue
            if node in self.size:
                continue
            if not node.args:
                self.leaf(node)
                continue
            if len(depth) >= MAX_DEPTH:
                raise _too_deep(self.field)
            depth.append(node)
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in self.size)


def _too_deep(field: str) -> FormulaError:
    return FormulaError(f"{field}: expression nested deeper than {MAX_DEPTH} levels (MAX_DEPTH)")


_CHECKED: OrderedDict[sp.Basic, None] = OrderedDict()


def check_bounds(expr: sp.Basic, field: str = "formula") -> sp.Basic:
    """``expr`` itself when it is within the limits of this module; else a :class:`FormulaError`.

    Results are remembered (least recently used, 8,192 expressions), so checking again is a dict lookup.
    """
    try:
        if expr in _CHECKED:
            _CHECKED.move_to_end(expr)
            return expr
    except RecursionError:  # hashing an absurdly deep expression
        raise _too_deep(field) from None
    BoundsWalk(field).visit(expr)
    _CHECKED[expr] = None
    if len(_CHECKED) > _CHECKED_CACHE:
        _CHECKED.popitem(last=False)
    return expr


def constant_value(expr: sp.Basic, field: str = "formula") -> float:
    """The float value of a constant expression (no variables), evaluated within the limits above."""
    walk = BoundsWalk(field)
    walk.visit(expr)
    value = walk.value[expr]
    if value is None:
        raise FormulaError(f"{field}: {show(expr)} is not a constant")
    return float(value)
