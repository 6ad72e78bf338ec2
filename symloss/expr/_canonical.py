"""Canonical forms of expressions: stable rewriting, constant rounding, canonical key and complexity.

SymPy already puts sums and products in a canonical order and merges like terms
(``u + u`` and ``2*u`` are the same object). On top of that symloss

- rewrites unstable patterns into stable primitives (:func:`stabilise`), e.g.
  ``log(1 + e^x) -> softplus(x)``, ``log(1 - e^x) -> log1mexp(x)``, ``1/(1 + e^-x) -> sigmoid(x)``;
- rounds floating constants to a fixed number of significant digits, so candidates that differ only in
  the 13th digit share one key;
- hashes SymPy's structural representation into a short hex key (:func:`canonical_key`).
"""

from __future__ import annotations

import hashlib

import sympy as sp

from symloss.expr._functions import log1mexp, logsigmoid, sigmoid, softplus

KEY_DIGITS = 12

_A = sp.Wild("a")


def _stabilise_once(expr: sp.Expr) -> sp.Expr:
    rules = [
        (sp.log(1 + sp.exp(_A)), lambda a: softplus(a)),
        (sp.log(1 - sp.exp(_A)), lambda a: log1mexp(a)),
        (sp.log(sigmoid(_A)), lambda a: logsigmoid(a)),
        (1 / (1 + sp.exp(-_A)), lambda a: sigmoid(a)),
        (1 / (1 + sp.exp(_A)), lambda a: sigmoid(-a)),
    ]
    for pattern, build in rules:
        expr = expr.replace(pattern, build)
    return expr


def stabilise(expr: sp.Expr) -> sp.Expr:
    """Rewrite overflow-prone patterns into symloss's stable functions (to a fixed point, at most 5 passes)."""
    for _ in range(5):
        new = _stabilise_once(expr)
        if new == expr:
            return new
        expr = new
    return expr


def round_constants(expr: sp.Expr, digits: int = KEY_DIGITS) -> sp.Expr:
    """Round every Float in ``expr`` to ``digits`` significant digits (integers and rationals untouched)."""
    floats = {f: sp.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sp.Float)}
    return expr.xreplace(floats) if floats else expr


def canonical_key(expr: sp.Expr) -> str:
    """A short hex digest of the canonical form: equal for trees SymPy's canonicalisation makes equal.

    >>> from symloss.expr import parse_formula
    >>> canonical_key(parse_formula("u + u", ["u"])) == canonical_key(parse_formula("2*u", ["u"]))
    True
    """
    canonical = round_constants(sp.sympify(expr), KEY_DIGITS)
    return hashlib.sha1(sp.srepr(canonical).encode()).hexdigest()[:16]


def complexity(expr: sp.Expr) -> int:
    """Number of nodes of the expression tree (symbols, numbers and operations)."""
    return sum(1 for _ in sp.preorder_traversal(expr))
