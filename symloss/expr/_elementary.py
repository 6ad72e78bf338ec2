"""Real-valued versions of SymPy's tanh, Abs, sign, Max and Min, with cheap automatic simplification.

SymPy's own classes simplify at construction by asking whether their arguments are real, positive or
comparable, through ``as_real_imag``, ``signsimp`` and ``factor_terms``. For an argument whose sign SymPy
cannot decide (``log(u)``, ``sqrt(u - 1)``: complex for some real u) these questions cost a factor of about
3.5 per nesting level: eight nested ``tanh`` of ``log(u)`` took 2 s, and an ``abs`` of a ``min`` of 60
characters 1.9 s. In symloss every value is a real number or NaN (Torch semantics), so these classes are
real for real arguments and simplify structurally only:

- tanh(x): odd, tanh(-x) = -tanh(x); tanh(0) = 0
- Abs(x) = |x|: Abs(-x) = Abs(x), Abs(Abs(x)) = Abs(x)
- sign(x) in {-1, 0, 1}: odd
- Max(a, b), Min(a, b): two arguments in a canonical order, Max(a, a) = a

They print, key and differentiate under the same names as SymPy's (``Abs(u)``, ``Max(-1, u)``), and the
grammar's ``tanh``, ``abs``, ``sign``, ``max`` and ``min`` build them. SymPy's classes stay supported in
expressions built by hand (:data:`~symloss.expr.TORCH_OPS`).
"""

from __future__ import annotations

import mpmath
import sympy as sp

from symloss.expr._functions import _RealFunction


def _odd(cls: type[sp.Function], x: sp.Expr) -> sp.Expr | None:
    if x.is_Number and x == 0:
        return sp.Integer(0)
    if x.could_extract_minus_sign():
        return -cls(-x)
    return None


class tanh(_RealFunction):  # noqa: N801 - named as SymPy's
    """tanh(x) = (e^x - e^-x) / (e^x + e^-x)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        return _odd(cls, x)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return 1 - tanh(self.args[0]) ** 2

    @classmethod
    def _mp(cls, x):
        return mpmath.tanh(x)

    def _latex_body(self, printer) -> str:
        return r"\tanh{\left(%s \right)}" % self._latex_args(printer)[0]


class sign(_RealFunction):  # noqa: N801
    """sign(x) = -1, 0 or 1; its derivative is 0 (as Torch's)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        return _odd(cls, x)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Integer(0)

    @classmethod
    def _mp(cls, x):
        return mpmath.sign(x)

    def _latex_body(self, printer) -> str:
        return r"\operatorname{sign}{\left(%s \right)}" % self._latex_args(printer)[0]


class Abs(_RealFunction):
    """Abs(x) = |x|; its derivative is sign(x)."""

    nargs = 1

    @classmethod
    def eval(cls, x: sp.Expr) -> sp.Expr | None:
        if x.is_Number:
            return abs(x)
        if x.could_extract_minus_sign():
            return cls(-x)
        if isinstance(x, Abs):
            return x
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sign(self.args[0])

    @classmethod
    def _mp(cls, x):
        return abs(x)

    def _latex_body(self, printer) -> str:
        return r"\left|{%s}\right|" % self._latex_args(printer)[0]


class _Extremum(_RealFunction):
    nargs = 2
    _pick = max
    _side = 1  # +1: Max, -1: Min

    @classmethod
    def eval(cls, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        if a == b:
            return a
        if a.is_Number and b.is_Number:
            return cls._pick(a, b)
        if sp.default_sort_key(b) < sp.default_sort_key(a):
            return cls(b, a)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        """d/da = H(a - b) for Max, H(b - a) for Min (H(0) = 1/2); d/db likewise with a and b swapped."""
        a, b = self.args
        lead = self._side * (a - b)
        return sp.Heaviside(lead) if argindex == 1 else sp.Heaviside(-lead)

    @classmethod
    def _mp(cls, a, b):
        return cls._pick(a, b)

    def _latex_body(self, printer) -> str:
        name = "max" if self._side > 0 else "min"
        return r"\%s\left(%s, %s\right)" % (name, *self._latex_args(printer))


class Max(_Extremum):
    """Max(a, b)."""

    _pick = max
    _side = 1


class Min(_Extremum):
    """Min(a, b)."""

    _pick = min
    _side = -1
