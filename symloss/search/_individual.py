"""Individuals of the loss search: one DEAP tree per evolved slot, serialisable to text without ``eval``.

DEAP's own ``PrimitiveTree.from_string`` evaluates unknown tokens; :func:`tree_from_string` parses the
prefix form ``add(u, mul(-1.0, log1mexp(u)))`` against a primitive set and accepts only its names and
plain numbers.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping

import sympy as sp
from deap import base, gp

from symloss.expr import tree_to_sympy
from symloss.expr._primitives import _constant

_TOKEN = re.compile(r"\s*([A-Za-z_][A-Za-z_0-9]*|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[(),])")


class SearchFitness(base.Fitness):
    """Two objectives: the fitness score (maximised) and complexity (minimised), for NSGA-II."""

    weights = (1.0, -1.0)


class Individual:
    """A candidate: ``trees[slot]`` is the DEAP tree of each evolved slot; ``fitness`` is DEAP's."""

    __slots__ = ("trees", "fitness")

    def __init__(self, trees: Mapping[str, gp.PrimitiveTree]) -> None:
        self.trees = dict(trees)
        self.fitness = SearchFitness()

    def copy(self) -> Individual:
        return Individual({slot: gp.PrimitiveTree(list(tree)) for slot, tree in self.trees.items()})

    def exprs(self) -> dict[str, sp.Expr]:
        """SymPy expression of each slot."""
        return {slot: tree_to_sympy(tree) for slot, tree in self.trees.items()}

    def to_strings(self) -> dict[str, str]:
        return {slot: str(tree) for slot, tree in self.trees.items()}

    @property
    def size(self) -> int:
        return sum(len(tree) for tree in self.trees.values())

    @property
    def height(self) -> int:
        return max(tree.height for tree in self.trees.values())


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters: a message never repeats a huge input."""
    shown = repr(value)
    return shown if len(shown) <= limit else shown[: limit - 3] + "..."


def tree_from_string(text: str, pset: gp.PrimitiveSet) -> gp.PrimitiveTree:
    """Parse DEAP's prefix notation against ``pset`` without evaluating anything.

    Raises ValueError naming the token when a name is not in ``pset`` or the text is malformed.
    """
    tokens, pos = [], 0
    while pos < len(text.rstrip()):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"tree {short_repr(text)}: unexpected character {text[pos]!r} at position {pos}")
        tokens.append(match.group(1))
        pos = match.end()
    nodes = []
    for token in tokens:
        if token in "(),":
            continue
        if token in pset.mapping:
            node = pset.mapping[token]
            if isinstance(node, type):  # an ephemeral class named by its constant name: not valid here
                raise ValueError(f"tree {short_repr(text)}: {token!r} is not a value")
            nodes.append(node)
        elif token[0].isalpha() or token[0] == "_":  # a name (also 'nan', 'inf'), never a number
            raise ValueError(f"tree {short_repr(text)}: unknown name {token!r} for primitive set {pset.name!r}")
        else:
            value = float(token)
            if not math.isfinite(value):
                raise ValueError(f"tree {short_repr(text)}: constant {token!r} is not finite")
            nodes.append(_constant(pset, value))
    tree = gp.PrimitiveTree(nodes)
    _check_arity(tree, text)
    return tree


def _check_arity(tree: gp.PrimitiveTree, text: str) -> None:
    needed = 1
    for node in tree:
        needed += node.arity - 1
        if needed < 0:
            break
    if needed != 0 or not len(tree):
        raise ValueError(f"tree {short_repr(text)}: malformed (arity mismatch)")


def individual_from_strings(strings: Mapping[str, str], psets: Mapping[str, gp.PrimitiveSet]) -> Individual:
    """Rebuild an individual from :meth:`Individual.to_strings` output."""
    unknown = sorted(set(strings) - set(psets))
    if unknown:
        raise ValueError(f"individual: unknown slot(s) {unknown}; this search evolves {sorted(psets)}")
    return Individual({slot: tree_from_string(text, psets[slot]) for slot, text in strings.items()})
