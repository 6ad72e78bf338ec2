"""Numerically stable SymPy functions used by symloss expressions, with their Torch twins.

Every function here is a real-valued SymPy ``Function`` with

- ``fdiff``: its symbolic derivative (so SymPy can differentiate candidates),
- ``_eval_evalf``: a high-precision evaluation through mpmath, used as the reference in tests,
- ``_latex``: a readable LaTeX form,

and an entry in :data:`symloss.expr._twins.TORCH_IMPL` giving a Torch implementation whose values *and*
gradients are finite on the whole real line. Protected primitives carry their protection in their definition, so SymPy's
value and Torch's value agree everywhere:

================  ==============================================================  =======================
name              definition                                                      role
================  ==============================================================  =======================
softplus(x)       log(1 + e^x)                                                    DPO link, smooth relu
logsigmoid(x)     -softplus(-x) = log sigma(x)                                    log-likelihood of BT
sigmoid(x)        1 / (1 + e^-x)                                                  DiscoPOP modulation
log1mexp(x)       log(1 - e^min(x, -1e-12))                                       ORPO's log-odds map
relu(x)           max(x, 0)                                                       hinge link
expc(x)           e^min(x, 50)                                                    GP's clamped exp
plog(x)           log(max(|x|, 1e-10))                                            GP's protected log
pdiv(a, b)        a / b if |b| > 1e-6 else 1                                      GP's protected division
sqrtabs(x)        sqrt(|x| + 1e-12)                                               GP's sqrt of abs
================  ==============================================================  =======================
"""

from __future__ import annotations

import math
import sys

import mpmath
import sympy as sp

LOG1MEXP_MAX = -1e-12
EXPC_MAX = 50.0
PLOG_MIN = 1e-10
PDIV_EPS = 1e-6
SQRTABS_EPS = 1e-12
_LN2 = math.log(2.0)
_FLOAT_MAX = sys.float_info.max


class _RealFunction(sp.Function):
    """Base class: real for real arguments, evaluated numerically through :meth:`_mp`."""

    def __new__(cls, *args, **options):
        # SymPy's Function.__new__ passes str arguments to sympify, which evaluates Python: refuse text.
        for arg in args:
            if isinstance(arg, str | bytes):
                raise TypeError(
                    f"{cls.__name__}(): got the text {arg[:60]!r}; pass a SymPy expression, or parse text "
                    "with symloss.expr.parse_formula(text, variables) first"
                )
        return super().__new__(cls, *args, **options)

    @classmethod
    def _mp(cls, *args: mpmath.mpf) -> mpmath.mpf:  # pragma: no cover - abstract
        raise NotImplementedError

    def _eval_is_real(self) -> bool | None:
        return all(arg.is_real for arg in self.args) or None

    def _eval_evalf(self, prec: int) -> sp.Expr | None:
        """The value at ``prec`` bits for number arguments (floats, integers, fractions alike); None, so
        SymPy keeps the call unevaluated, when an argument is not a number or a value is beyond float64."""
        values = []
        for arg in self.args:
            value = arg if arg.is_Rational else arg._eval_evalf(prec)
            if value is None or not (value.is_Float or value.is_Rational):
                return None
            values.append(mpmath.mpf(value.p) / value.q if value.is_Rational else mpmath.mpf(value._mpf_))
        with mpmath.workprec(prec):
            if not all(mpmath.isfinite(v) and abs(v) <= _FLOAT_MAX for v in values):
                return None
            result = self._mp(*values)
            if not mpmath.isfinite(result) or abs(result) > _FLOAT_MAX:
                return None
            return sp.Float._new(mpmath.mpf(result)._mpf_, prec)

    def _latex_args(self, printer) -> list[str]:
        return [printer._print(arg) for arg in self.args]

    def _latex_body(self, printer) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _latex(self, printer, exp: str | None = None) -> str:
        body = self._latex_body(printer)
        return body if exp is None else r"\left(%s\right)^{%s}" % (body, exp)


class softplus(_RealFunction):  # noqa: N801 - SymPy functions are lower-case by convention
    """softplus(x) = log(1 + e^x)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    @classmethod
    def _mp(cls, x):
        return mpmath.log1p(mpmath.exp(x))

    def _latex_body(self, printer) -> str:
        return r"\operatorname{softplus}\left(%s\right)" % self._latex_args(printer)[0]


class logsigmoid(_RealFunction):  # noqa: N801
    """logsigmoid(x) = log sigma(x) = -softplus(-x)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(-self.args[0])

    @classmethod
    def _mp(cls, x):
        return -mpmath.log1p(mpmath.exp(-x))

    def _latex_body(self, printer) -> str:
        return r"\ln \sigma\left(%s\right)" % self._latex_args(printer)[0]


class sigmoid(_RealFunction):  # noqa: N801
    """sigmoid(x) = 1 / (1 + e^-x)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * sigmoid(-self.args[0])

    @classmethod
    def _mp(cls, x):
        return 1 / (1 + mpmath.exp(-x))

    def _latex_body(self, printer) -> str:
        return r"\sigma\left(%s\right)" % self._latex_args(printer)[0]


class log1mexp(_RealFunction):  # noqa: N801
    """log1mexp(x) = log(1 - e^x) for x < 0; the argument is capped at -1e-12 so the value stays finite."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return -sp.exp(x - log1mexp(x))

    @classmethod
    def _mp(cls, x):
        # the same two branches as the Torch form: log(1 - e^x) = log1p(-e^x) rounds to 0 nowhere
        x = min(x, mpmath.mpf(LOG1MEXP_MAX))
        return mpmath.log(-mpmath.expm1(x)) if x > -_LN2 else mpmath.log1p(-mpmath.exp(x))

    def _latex_body(self, printer) -> str:
        return r"\ln\left(1 - e^{%s}\right)" % self._latex_args(printer)[0]


class relu(_RealFunction):  # noqa: N801
    """relu(x) = max(x, 0)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sp.Heaviside(self.args[0], 0)

    @classmethod
    def _mp(cls, x):
        return max(x, mpmath.mpf(0))

    def _latex_body(self, printer) -> str:
        return r"\max\left(%s, 0\right)" % self._latex_args(printer)[0]


class expc(_RealFunction):  # noqa: N801
    """expc(x) = e^min(x, 50): the exponential, clamped so it never overflows."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return expc(self.args[0])

    @classmethod
    def _mp(cls, x):
        return mpmath.exp(min(x, mpmath.mpf(EXPC_MAX)))

    def _latex_body(self, printer) -> str:
        return r"e^{%s}" % self._latex_args(printer)[0]


class plog(_RealFunction):  # noqa: N801
    """plog(x) = log(max(|x|, 1e-10)): protected logarithm."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return pdiv(1, self.args[0])

    @classmethod
    def _mp(cls, x):
        return mpmath.log(max(abs(x), mpmath.mpf(PLOG_MIN)))

    def _latex_body(self, printer) -> str:
        return r"\ln\left|%s\right|" % self._latex_args(printer)[0]


class pdiv(_RealFunction):  # noqa: N801
    """pdiv(a, b) = a / b where |b| > 1e-6, else 1: protected division with finite gradients."""

    nargs = 2

    @classmethod
    def eval(cls, a: sp.Expr, b: sp.Expr) -> sp.Expr | None:
        """A constant denominator settles the protection: a / b exactly, or 1 (keeps formulas short)."""
        if b.is_Number:
            return a / b if abs(b) > PDIV_EPS else sp.Integer(1)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        return pdiv(1, b) if argindex == 1 else -pdiv(a, b**2)

    @classmethod
    def _mp(cls, a, b):
        return a / b if abs(b) > PDIV_EPS else mpmath.mpf(1)

    def _latex_body(self, printer) -> str:
        a, b = self._latex_args(printer)
        return r"\frac{%s}{%s}" % (a, b)


class sqrtabs(_RealFunction):  # noqa: N801
    """sqrtabs(x) = sqrt(|x| + 1e-12): square root of the absolute value, with a finite gradient at 0."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        x = self.args[0]
        return sp.sign(x) / (2 * sqrtabs(x))

    @classmethod
    def _mp(cls, x):
        return mpmath.sqrt(abs(x) + mpmath.mpf(SQRTABS_EPS))

    def _latex_body(self, printer) -> str:
        return r"\sqrt{\left|%s\right|}" % self._latex_args(printer)[0]
