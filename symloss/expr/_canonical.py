"""Canonical forms of expressions: stable rewriting, constant rounding, canonical key and complexity.

SymPy already puts sums and products in a canonical order and merges like terms
(``u + u`` and ``2*u`` are the same object). On top of that symloss

- rewrites unstable patterns into stable primitives (:func:`stabilise`), e.g.
  ``log(1 + e^x) -> softplus(x)``, ``log(1 - e^x) -> log1mexp(x)``, ``1/(1 + e^-x) -> sigmoid(x)``;
- rounds floating constants to a fixed number of significant digits, so candidates that differ only in
  the 13th digit share one key;
- hashes SymPy's structural representation into a short hex key (:func:`canonical_key`).

Each function takes a SymPy expression (or text, parsed by symloss's grammar over every variable) within
the limits of :mod:`symloss.expr._bounds`, and raises :class:`~symloss.expr.FormulaError` otherwise.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import sympy as sp

from symloss.expr._functions import log1mexp, logsigmoid, sigmoid, softplus
from symloss.expr._grammar import as_expr, guarded

KEY_DIGITS = 12
KEY_CACHE = 8192
_KEYS: OrderedDict[sp.Basic, str] = OrderedDict()  # expression -> key, least recently used dropped


def _one_plus_exp(node: sp.Basic) -> tuple[int, sp.Expr] | None:
    """``(+1, x)`` for ``1 + e^x``, ``(-1, x)`` for ``1 - e^x``, else None (structurally, no matching)."""
    if not isinstance(node, sp.Add) or len(node.args) != 2:
        return None
    one, other = node.args
    if not (one.is_Number and one == 1 or one.is_Float and float(one) == 1.0):
        return None
    if isinstance(other, sp.exp):
        return 1, other.args[0]
    if isinstance(other, sp.Mul) and len(other.args) == 2 and other.args[0] == -1 and isinstance(other.args[1], sp.exp):
        return -1, other.args[1].args[0]
    return None


def _rewrite(node: sp.Basic) -> sp.Basic:
    """One node, its arguments already rewritten: the stable form of the patterns above, or ``node``."""
    if isinstance(node, sp.log):
        (arg,) = node.args
        if isinstance(arg, sigmoid):
            return logsigmoid(arg.args[0])
        found = _one_plus_exp(arg)
        if found is not None:
            sign, x = found
            return softplus(x) if sign > 0 else log1mexp(x)
    if isinstance(node, sp.Pow) and node.exp == -1:
        found = _one_plus_exp(node.base)
        if found is not None and found[0] > 0:
            return sigmoid(-found[1])  # 1/(1 + e^x) = sigma(-x); 1/(1 + e^-x) = sigma(x)
    return node


def stabilise(expr: sp.Expr | str) -> sp.Expr:
    """Rewrite overflow-prone patterns into symloss's stable functions, bottom-up in one pass:

    log(1 + e^x) -> softplus(x),  log(1 - e^x) -> log1mexp(x),  log(sigmoid(x)) -> logsigmoid(x),
    1/(1 + e^-x) -> sigmoid(x),   1/(1 + e^x) -> sigmoid(-x).

    The pass is structural (no pattern matching), so its cost is linear in the size of ``expr``.
    """
    expr = as_expr(expr, field="stabilise")
    with guarded("stabilise"):
        done: dict[sp.Basic, sp.Basic] = {}
        stack: list[tuple[sp.Basic, bool]] = [(expr, False)]
        while stack:
            node, expanded = stack.pop()
            if node in done:
                continue
            if not node.args:
                done[node] = node
            elif expanded:
                args = tuple(done[a] for a in node.args)
                rebuilt = node if args == node.args else node.func(*args)
                done[node] = _rewrite(rebuilt)
            else:
                stack.append((node, True))
                stack.extend((a, False) for a in node.args if a not in done)
        return as_expr(done[expr], field="stabilise")


def round_constants(expr: sp.Expr | str, digits: int = KEY_DIGITS) -> sp.Expr:
    """Round every Float in ``expr`` to ``digits`` significant digits (integers and rationals untouched)."""
    expr = as_expr(expr, field="round_constants")
    floats = {f: sp.Float(float(f"{float(f):.{digits}g}")) for f in expr.atoms(sp.Float)}
    with guarded("round_constants"):
        return expr.xreplace(floats) if floats else expr


def canonical_key(expr: sp.Expr | str) -> str:
    """A short hex digest of the canonical form: equal for trees SymPy's canonicalisation makes equal.

    >>> from symloss.expr import parse_formula
    >>> canonical_key(parse_formula("u + u", ["u"])) == canonical_key(parse_formula("2*u", ["u"]))
    True
    """
    expr = as_expr(expr, field="canonical_key")
    key = _KEYS.get(expr)
    if key is None:
        canonical = round_constants(expr, KEY_DIGITS)
        with guarded("canonical_key"):
            key = hashlib.sha1(sp.srepr(canonical).encode()).hexdigest()[:16]
        _KEYS[expr] = key
        if len(_KEYS) > KEY_CACHE:
            _KEYS.popitem(last=False)
    else:
        _KEYS.move_to_end(expr)
    return key


def complexity(expr: sp.Expr | str) -> int:
    """Number of nodes of the expression tree (symbols, numbers and operations)."""
    expr = as_expr(expr, field="complexity")
    return sum(1 for _ in sp.preorder_traversal(expr))
