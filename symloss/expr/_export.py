"""Export expressions: readable LaTeX, standalone Torch source (no SymPy needed), and a JSON form.

The JSON form stores the formula as text in symloss's grammar; :func:`expr_from_json` parses it with
:func:`~symloss.expr.parse_formula`, so loading a file never evaluates code.
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

import sympy as sp

from symloss.expr._bounds import FormulaError, constant_value, show
from symloss.expr._canonical import canonical_key, complexity
from symloss.expr._elementary import Abs, Max, Min, sign, tanh
from symloss.expr._functions import (
    EXPC_MAX,
    LOG1MEXP_MAX,
    PDIV_EPS,
    PLOG_MIN,
    SQRTABS_EPS,
    expc,
    log1mexp,
    logsigmoid,
    pdiv,
    plog,
    relu,
    sigmoid,
    softplus,
    sqrtabs,
)
from symloss.expr._grammar import SYMBOLS, as_expr, guarded, parse_formula, to_formula

JSON_FORMAT = "symloss.expr/1"


def rationalise(expr: sp.Expr, *, max_denominator: int = 100, digits: int = 4) -> sp.Expr:
    """Replace floats by small fractions where exact (0.5 -> 1/2), else round to ``digits`` significant digits."""
    expr = as_expr(expr, field="rationalise")
    replacements = {}
    for f in expr.atoms(sp.Float):
        value = float(f)
        frac = Fraction(value).limit_denominator(max_denominator)
        if abs(float(frac) - value) <= 1e-9 * max(1.0, abs(value)):
            replacements[f] = sp.Rational(frac.numerator, frac.denominator)
        else:
            replacements[f] = sp.Float(float(f"{value:.{digits}g}"), digits)
    return expr.xreplace(replacements) if replacements else expr


def to_latex(expr: sp.Expr) -> str:
    """Readable LaTeX: rationalised constants, ``\\ln`` for logarithms, named stable functions."""
    expr = rationalise(as_expr(expr, field="to_latex"))
    with guarded("to_latex"):
        return sp.latex(expr, ln_notation=True)


# ---------------------------------------------------------------------------------------------------------
# Standalone Torch source.

_HELPERS: dict[type[sp.Function], tuple[str, str]] = {
    softplus: ("softplus", "def softplus(x):\n    return F.softplus(x)\n"),
    logsigmoid: ("logsigmoid", "def logsigmoid(x):\n    return F.logsigmoid(x)\n"),
    sigmoid: ("sigmoid", "def sigmoid(x):\n    return torch.sigmoid(x)\n"),
    relu: ("relu", "def relu(x):\n    return torch.relu(x)\n"),
    log1mexp: ("log1mexp", (
        "def log1mexp(x):\n"
        '    """log(1 - e^x), argument capped below 0."""\n'
        f"    x = x.clamp(max={LOG1MEXP_MAX!r})\n"
        "    ln2 = math.log(2.0)\n"
        "    near = torch.log(-torch.expm1(x.clamp(min=-ln2)))\n"
        "    far = torch.log1p(-torch.exp(x.clamp(max=-ln2)))\n"
        "    return torch.where(x > -ln2, near, far)\n")),
    expc: ("expc", f"def expc(x):\n    return torch.exp(x.clamp(max={EXPC_MAX!r}))\n"),
    plog: ("plog", f"def plog(x):\n    return torch.log(x.abs().clamp(min={PLOG_MIN!r}))\n"),
    sqrtabs: ("sqrtabs", f"def sqrtabs(x):\n    return torch.sqrt(x.abs() + {SQRTABS_EPS!r})\n"),
    pdiv: ("pdiv", (
        "def pdiv(a, b):\n"
        "    b = torch.as_tensor(b, dtype=a.dtype, device=a.device) if torch.is_tensor(a) else b\n"
        f"    safe = b.abs() > {PDIV_EPS!r}\n"
        "    q = a / torch.where(safe, b, torch.ones_like(b))\n"
        "    return torch.where(safe, q, torch.ones_like(q))\n")),
}
_TORCH_NAMES = {sp.exp: "torch.exp", sp.log: "torch.log", sp.Abs: "torch.abs", sp.tanh: "torch.tanh",
                sp.sign: "torch.sign", tanh: "torch.tanh", Abs: "torch.abs", sign: "torch.sign"}
_EXTREMA = "def _extremum(op, *xs):\n    ref = next(x for x in xs if torch.is_tensor(x))\n" \
    "    out = torch.as_tensor(xs[0], dtype=ref.dtype, device=ref.device)\n" \
    "    for x in xs[1:]:\n        out = op(out, torch.as_tensor(x, dtype=ref.dtype, device=ref.device))\n" \
    "    return out\n"


def _with_variables(expr: sp.Expr | str, variables: Sequence[str], field: str) -> tuple[sp.Expr, tuple[str, ...]]:
    """``expr`` as an expression whose symbols are all among ``variables``, themselves names of SYMBOLS."""
    if isinstance(variables, str) or not all(isinstance(v, str) for v in variables):
        raise FormulaError(f"{field}: variables must be a list of names from {sorted(SYMBOLS)}, got {variables!r}")
    variables = tuple(variables)
    unknown = [v[:40] for v in variables if v not in SYMBOLS]
    if unknown:
        raise FormulaError(f"{field}: unknown variable(s) {unknown}; symloss knows {sorted(SYMBOLS)}")
    expr = as_expr(expr, variables, field=field)
    missing = sorted(str(s)[:40] for s in expr.free_symbols if str(s) not in variables)
    if missing:
        raise FormulaError(f"{field}: symbol(s) {missing} are not among the variables {list(variables)}")
    return expr, variables


class _SourcePrinter:
    def __init__(self) -> None:
        self.helpers: dict[str, str] = {}

    def __call__(self, e: sp.Expr) -> str:
        if e.is_Symbol:
            return e.name
        if not e.free_symbols:
            return repr(constant_value(e, field="to_python"))
        if isinstance(e, sp.Add):
            return "(" + " + ".join(self(a) for a in e.args) + ")"
        if isinstance(e, sp.Mul):
            return "(" + " * ".join(self(a) for a in e.args) + ")"
        if isinstance(e, sp.Pow):
            base, exponent = e.args
            if exponent.is_Number:
                return f"torch.pow({self(base)}, {int(exponent) if exponent.is_Integer else float(exponent)!r})"
            return f"torch.pow({self(base)}, {self(exponent)})"
        if isinstance(e, sp.Max | sp.Min | Max | Min):
            self.helpers["_extremum"] = _EXTREMA
            op = "torch.maximum" if isinstance(e, sp.Max | Max) else "torch.minimum"
            return f"_extremum({op}, " + ", ".join(self(a) for a in e.args) + ")"
        if type(e) in _HELPERS:
            name, source = _HELPERS[type(e)]
            self.helpers[name] = source
            return f"{name}(" + ", ".join(self(a) for a in e.args) + ")"
        if type(e) in _TORCH_NAMES:
            return f"{_TORCH_NAMES[type(e)]}({self(e.args[0])})"
        raise FormulaError(f"to_python: operation {type(e).__name__!r} in {show(e)} has no Torch source form")


def to_python(expr: sp.Expr, variables: Sequence[str], *, name: str = "f") -> str:
    """Standalone Python source defining ``name(*variables)`` with Torch only (no SymPy, no symloss).

    ``variables`` must be names from :data:`SYMBOLS` and cover the expression's symbols, so that nothing
    but symloss's own names is ever written into the source.
    """
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"name={name!r}: not a Python identifier; use a name such as 'mirror'")
    expr, variables = _with_variables(expr, variables, "to_python")
    printer = _SourcePrinter()
    with guarded("to_python"):
        body = printer(expr)
    lines = ['"""Generated by symloss; needs only torch."""', "import math", "", "import torch",
             "import torch.nn.functional as F", "", ""]
    for source in printer.helpers.values():
        lines += [source, ""]
    signature = ", ".join(variables)
    lines += [f"def {name}({signature}):", f'    """{name}({signature}) = {to_formula(expr)}"""',
              f"    return {body}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------
# JSON.


def expr_to_json(expr: sp.Expr, variables: Sequence[str]) -> dict[str, Any]:
    """A JSON-serialisable record of ``expr``: formula text, variables, LaTeX, canonical key, complexity."""
    expr, variables = _with_variables(expr, variables, "expr_to_json")
    with guarded("expr_to_json"):
        formula = to_formula(expr)
    return {"format": JSON_FORMAT, "formula": formula, "variables": list(variables),
            "latex": to_latex(expr), "key": canonical_key(expr), "complexity": complexity(expr)}


def expr_from_json(record: dict[str, Any] | str, *, field: str = "expression") -> tuple[sp.Expr, tuple[str, ...]]:
    """Parse a record written by :func:`expr_to_json` (a dict or its JSON text) without evaluating code."""
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError; so are huge ints
            raise FormulaError(f"{field}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from exc
    if not isinstance(record, dict) or "formula" not in record or "variables" not in record:
        raise FormulaError(f"{field}: expected a JSON object with 'formula' and 'variables'")
    variables = record["variables"]
    if not isinstance(variables, list) or not all(isinstance(v, str) and v in SYMBOLS for v in variables):
        raise FormulaError(f"{field}: variables {variables!r} must be a list drawn from {sorted(SYMBOLS)}")
    return parse_formula(record["formula"], variables, field=field), tuple(variables)
