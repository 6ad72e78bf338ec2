"""DEAP primitive sets for the slots of the MPO objective, and conversion between DEAP trees and SymPy.

Slots and their variables: ``mirror`` m(u[, t]), ``link`` g(z[, t]), ``imitation`` psi(u_w[, t]).
Primitives build SymPy expressions directly (a DEAP tree is converted by walking it, never with
``gp.compile``), so every evolved candidate is a SymPy expression over symloss's stable functions.
"""

from __future__ import annotations

import difflib
import functools
import math
import operator
import random
from collections.abc import Callable, Sequence

import sympy as sp
from deap import gp

from symloss.expr._bounds import MAX_NODES, FormulaError, constant_value, show
from symloss.expr._elementary import tanh
from symloss.expr._functions import expc, log1mexp, logsigmoid, pdiv, plog, softplus, sqrtabs
from symloss.expr._grammar import MAX_EXPONENT, SYMBOLS, as_expr, guarded, square

SLOT_VARIABLES: dict[str, tuple[str, ...]] = {"mirror": ("u",), "link": ("z",), "imitation": ("u_w",)}
"""Slot -> its main variable(s); temporally-aware slots add ``t``."""

CONSTANT_NAME = "c"


PRIMITIVES: dict[str, tuple[int, Callable[..., sp.Expr]]] = {
    "add": (2, operator.add),
    "sub": (2, operator.sub),
    "mul": (2, operator.mul),
    "div": (2, pdiv),
    "neg": (1, operator.neg),
    "exp": (1, expc),
    "log": (1, plog),
    "softplus": (1, softplus),
    "logsigmoid": (1, logsigmoid),
    "log1mexp": (1, log1mexp),
    "tanh": (1, tanh),
    "square": (1, square),
    "sqrtabs": (1, sqrtabs),
}
"""Primitive name -> (arity, SymPy builder). ``exp``, ``log`` and ``div`` are the protected versions."""

DEFAULT_PRIMITIVES: tuple[str, ...] = tuple(PRIMITIVES)


def random_constant(low: float, high: float, digits: int = 3) -> float:
    """A constant drawn uniformly from [low, high] by DEAP's global RNG, rounded to ``digits`` decimals."""
    return round(random.uniform(low, high), digits)


def slot_variables(slot: str, uses_t: bool = False) -> tuple[str, ...]:
    """Variables of ``slot`` in call order, e.g. ``("u", "t")`` for a temporally-aware mirror map."""
    if slot not in SLOT_VARIABLES:
        close = difflib.get_close_matches(slot, SLOT_VARIABLES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"slot={slot!r}: unknown slot; accepted: {sorted(SLOT_VARIABLES)}{hint}")
    return SLOT_VARIABLES[slot] + (("t",) if uses_t else ())


def make_pset(slot: str, *, uses_t: bool = False, primitives: Sequence[str] = DEFAULT_PRIMITIVES,
              constant_range: tuple[float, float] = (-1.0, 1.0)) -> gp.PrimitiveSet:
    """A DEAP primitive set for ``slot`` with the named ``primitives`` and ephemeral constants.

    Raises ValueError for an unknown slot, an unknown primitive or an empty primitive list.
    """
    variables = slot_variables(slot, uses_t)
    if not primitives:
        raise ValueError(f"primitives={list(primitives)}: empty; give at least one of {list(PRIMITIVES)}")
    unknown = [p for p in primitives if p not in PRIMITIVES]
    if unknown:
        close = difflib.get_close_matches(unknown[0], PRIMITIVES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"primitives: unknown {unknown}; accepted: {list(PRIMITIVES)}{hint}")
    low, high = constant_range
    if not low < high:
        raise ValueError(f"constant_range={constant_range}: need low < high")
    pset = gp.PrimitiveSet(slot, len(variables))
    pset.renameArguments(**{f"ARG{i}": name for i, name in enumerate(variables)})
    for name in dict.fromkeys(primitives):
        arity, build = PRIMITIVES[name]
        pset.addPrimitive(build, arity, name=name)
    pset.addEphemeralConstant(CONSTANT_NAME, functools.partial(random_constant, low, high))
    return pset


def tree_to_sympy(tree: Sequence[gp.Primitive | gp.Terminal]) -> sp.Expr:
    """Convert a DEAP prefix tree into a SymPy expression (iteratively, from the right).

    Raises :class:`~symloss.expr.FormulaError` for anything that is not a tree over symloss's primitives
    and for a result outside the limits of :mod:`symloss.expr._bounds`.
    """
    if isinstance(tree, str | bytes) or not isinstance(tree, Sequence):
        raise FormulaError(f"tree_to_sympy: expected a DEAP PrimitiveTree (a list of primitives and "
                           f"terminals), got {type(tree).__name__}; parse text with parse_formula instead")
    stack: list[sp.Expr] = []
    with guarded("tree_to_sympy"):
        for node in reversed(list(tree)):
            stack.append(_tree_node(node, stack))
    if len(stack) != 1:
        raise FormulaError(f"tree_to_sympy: malformed tree: {len(stack)} expressions left after conversion")
    return as_expr(stack[0], field="tree_to_sympy")


def _tree_node(node: object, stack: list[sp.Expr]) -> sp.Expr:
    """The SymPy form of one tree node, taking its arguments off ``stack``."""
    if isinstance(node, gp.Primitive):
        if node.name not in PRIMITIVES or PRIMITIVES[node.name][0] != node.arity or len(stack) < node.arity:
            raise FormulaError(f"tree_to_sympy: primitive {node.name!r} of arity {node.arity} is not one of "
                               f"symloss's {list(PRIMITIVES)} or lacks arguments")
        _, build = PRIMITIVES[node.name]
        return build(*[stack.pop() for _ in range(node.arity)])
    if not isinstance(node, gp.Terminal):
        raise FormulaError(f"tree_to_sympy: tree node of type {type(node).__name__}; expected DEAP primitives "
                           "and terminals")
    if isinstance(node.value, str):
        if node.value not in SYMBOLS:
            raise FormulaError(f"tree terminal {node.value[:40]!r} is not a symloss variable {sorted(SYMBOLS)}")
        return SYMBOLS[node.value]
    if isinstance(node.value, bool) or not isinstance(node.value, int | float) or not math.isfinite(node.value):
        raise FormulaError(f"tree_to_sympy: constant terminal {node.value!r} is not a finite number")
    value = float(node.value)
    return sp.Integer(int(value)) if value.is_integer() else sp.Float(value)


_FUNCTION_PRIMITIVE = {
    expc: "exp", sp.exp: "exp", plog: "log", sp.log: "log", softplus: "softplus",
    logsigmoid: "logsigmoid", log1mexp: "log1mexp", sp.tanh: "tanh", tanh: "tanh", sqrtabs: "sqrtabs",
}


def sympy_to_tree(expr: sp.Expr | str, pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """Convert a SymPy expression into a DEAP tree over ``pset`` (to seed a population with known maps).

    ``expr`` may be text, parsed by symloss's grammar over the arguments of ``pset``. ``exp``/``log``
    become the protected primitives, which agree with them on a valid candidate's domain; integer powers
    (|exponent| <= 64) become products. Raises :class:`~symloss.expr.FormulaError` (a ValueError) naming
    the operation when ``pset`` lacks a primitive the expression needs, or when the tree would exceed
    2,000 nodes.
    """
    if not isinstance(pset, gp.PrimitiveSet):
        raise FormulaError(f"sympy_to_tree: pset must be a DEAP PrimitiveSet (make_pset), got {type(pset).__name__}")
    expr = as_expr(expr, [a for a in pset.arguments if a in SYMBOLS], field="sympy_to_tree")
    with guarded("sympy_to_tree"):
        prefix = _prefix(expr, pset)
    return gp.PrimitiveTree(prefix)


def _primitive(pset: gp.PrimitiveSet, name: str, expr: sp.Expr) -> gp.Primitive:
    if name not in pset.mapping or not isinstance(pset.mapping[name], gp.Primitive):
        raise FormulaError(f"cannot express {show(expr)} over primitive set {pset.name!r}: it lacks {name!r}")
    return pset.mapping[name]


def _constant(pset: gp.PrimitiveSet, value: float) -> gp.Terminal:
    cls = pset.mapping[CONSTANT_NAME]
    terminal = cls.__new__(cls)  # no RNG draw: the value is given
    terminal.value = value
    return terminal


def _fold(pset: gp.PrimitiveSet, name: str, parts: list[list], expr: sp.Expr) -> list:
    prim = _primitive(pset, name, expr)
    if sum(len(p) for p in parts) > MAX_NODES:
        raise FormulaError(f"sympy_to_tree: the tree of {show(expr)} would exceed {MAX_NODES} nodes")
    out = parts[0]
    for part in parts[1:]:
        out = [prim, *out, *part]
    return out


def _prefix(expr: sp.Expr, pset: gp.PrimitiveSet) -> list:
    if expr.is_Symbol:
        if expr.name not in pset.arguments:
            raise FormulaError(f"variable {expr.name[:40]!r} is not an argument of primitive set {pset.name!r}")
        return [pset.mapping[expr.name]]
    if not expr.free_symbols:
        return [_constant(pset, constant_value(expr, field="sympy_to_tree"))]
    if isinstance(expr, sp.Add):
        return _fold(pset, "add", [_prefix(a, pset) for a in expr.args], expr)
    if isinstance(expr, sp.Mul):
        return _fold(pset, "mul", [_prefix(a, pset) for a in expr.args], expr)
    if isinstance(expr, sp.Pow):
        base, exponent = expr.args
        if exponent == 2 and "square" in pset.mapping:
            return [_primitive(pset, "square", expr), *_prefix(base, pset)]
        if exponent.is_Integer and abs(exponent) > MAX_EXPONENT:
            raise FormulaError(f"sympy_to_tree: power {show(expr)} has |exponent| > {MAX_EXPONENT}")
        if exponent.is_Integer and exponent > 0:
            return _fold(pset, "mul", [_prefix(base, pset)] * int(exponent), expr)
        if exponent.is_Integer and exponent < 0:
            return [_primitive(pset, "div", expr), _constant(pset, 1.0), *_prefix(base ** -exponent, pset)]
        raise FormulaError(f"cannot express power {show(expr)} with primitive set {pset.name!r}")
    if isinstance(expr, pdiv):
        return [_primitive(pset, "div", expr), *_prefix(expr.args[0], pset), *_prefix(expr.args[1], pset)]
    name = _FUNCTION_PRIMITIVE.get(type(expr))
    if name is None:
        raise FormulaError(f"operation {type(expr).__name__!r} in {show(expr)} has no primitive in symloss's sets")
    return [_primitive(pset, name, expr), *_prefix(expr.args[0], pset)]
